//! Fuzz target: the job-file parser and validator on arbitrary text.
#![no_main]

#[path = "../../tests/it/fuzz_harness.rs"]
#[allow(dead_code)]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::job_file(data);
});
