//! Fuzz target: the webhook endpoints' signature check and body parse
//! (SpotDraft deliveries and ERP events), input `key \n signature \n body`.
#![no_main]

#[path = "../../tests/it/fuzz_harness.rs"]
#[allow(dead_code)]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::webhook(data);
});
