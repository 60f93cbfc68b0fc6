//! Fuzz target: the ERP extract loader on arbitrary CSV bytes.
#![no_main]

#[path = "../../tests/it/fuzz_harness.rs"]
#[allow(dead_code)]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::extract(data, contract_recon::erp::extract::ExtractFormat::Csv);
});
