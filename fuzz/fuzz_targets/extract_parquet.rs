//! Fuzz target: the ERP extract loader on arbitrary Parquet bytes.
//!
//! The loader catches a panic of Polars' Parquet decoder on a damaged file
//! (it is that file's parse error); libFuzzer's panic hook would abort on it
//! before it is caught, so this target puts the default hook back. A panic
//! the loader does not catch still ends the run as a crash.
#![no_main]

#[path = "../../tests/it/fuzz_harness.rs"]
#[allow(dead_code)]
mod harness;

static DEFAULT_HOOK: std::sync::Once = std::sync::Once::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    DEFAULT_HOOK.call_once(|| {
        let _ = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
    });
    harness::extract(data, contract_recon::erp::extract::ExtractFormat::Parquet);
});
