//! Every input the fuzzer found a crash with (`fixtures/fuzz/<target>/`),
//! replayed through the fuzz target's own body (`fuzz_harness`): each ran
//! into a panic or a broken promise once, and must not any more. The
//! bad-extract corpus (`fixtures/bad/`) and the shipped job files go through
//! the same bodies.

use crate::common::repo;
use crate::fuzz_harness;
use contract_recon::erp::extract::ExtractFormat;
use std::path::PathBuf;

/// The files of `fixtures/fuzz/<target>/`, sorted (none when the target
/// never crashed).
fn kept(target: &str) -> Vec<PathBuf> {
    let dir = repo().join("fixtures/fuzz").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return vec![];
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "md"))
        .collect();
    files.sort();
    files
}

fn replay(target: &str, body: impl Fn(&[u8])) -> usize {
    let files = kept(target);
    for file in &files {
        let data = std::fs::read(file).unwrap();
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&data))).is_err() {
            panic!("{} panics again", file.display());
        }
    }
    files.len()
}

#[test]
fn extract_csv_crashes_stay_fixed() {
    replay("extract_csv", |d| {
        fuzz_harness::extract(d, ExtractFormat::Csv)
    });
}

#[test]
fn extract_parquet_crashes_stay_fixed() {
    replay("extract_parquet", |d| {
        fuzz_harness::extract(d, ExtractFormat::Parquet)
    });
}

#[test]
fn job_file_crashes_stay_fixed() {
    replay("job_file", fuzz_harness::job_file);
}

#[test]
fn webhook_crashes_stay_fixed() {
    replay("webhook", fuzz_harness::webhook);
}

#[test]
fn the_seed_corpus_passes_every_target() {
    for entry in std::fs::read_dir(repo().join("fixtures/bad"))
        .unwrap()
        .flatten()
    {
        let path = entry.path();
        let data = std::fs::read(&path).unwrap();
        match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => fuzz_harness::extract(&data, ExtractFormat::Csv),
            Some("parquet") => fuzz_harness::extract(&data, ExtractFormat::Parquet),
            _ => {}
        }
    }
    for entry in std::fs::read_dir(repo().join("jobs")).unwrap().flatten() {
        fuzz_harness::job_file(&std::fs::read(entry.path()).unwrap());
    }
    fuzz_harness::webhook(b"key\nnot-a-signature\n{\"contract_id\": 12}");
}

#[test]
fn damaged_parquet_files_that_crashed_a_decoder_are_parse_errors_naming_them() {
    // Both once crashed Polars' Parquet decoder (a panic; an abort on a 2^61-byte
    // allocation); the loader reads Parquet with the `parquet` crate now.
    for name in ["decoder_range_panic.parquet", "page_alloc_abort.parquet"] {
        let path = repo().join("fixtures/fuzz/extract_parquet").join(name);
        let bytes = bytes::Bytes::from(std::fs::read(&path).unwrap());
        // The demo's whole mapping: each file is damaged in one of its columns.
        let columns = fuzz_harness::demo_columns();
        let err = contract_recon::erp::extract::parse_and_validate(
            name,
            bytes,
            ExtractFormat::Parquet,
            &columns,
        )
        .unwrap_err();
        let text = contract_recon::error_chain::error_chain(&err);
        assert!(
            matches!(
                err,
                contract_recon::erp::extract::ExtractError::Parse { .. }
            ) && text.starts_with(&format!("cannot parse ERP extract {name} as Parquet: ")),
            "{text}"
        );
    }
}
