//! Errors say each cause once: real error chains (a run whose extract is
//! missing, one whose extract is a truncated Parquet file, an unreadable
//! acknowledgement file, a dataset folder that does not exist) rendered the
//! way the CLI, run records and logs render them, with no segment repeated.

use crate::common::{demo_job_against_own_sandbox, repo};
use contract_recon::error_chain::{anyhow_chain, error_chain};
use contract_recon::job::ExtractFileFormat;
use contract_recon::runner::{run_job, RunOptions};
use std::path::Path;

/// The `": "`-separated segments of `text` that occur more than once.
fn repeated(text: &str) -> Vec<String> {
    let segments: Vec<&str> = text.split(": ").map(str::trim).collect();
    let mut out = vec![];
    for (i, s) in segments.iter().enumerate() {
        if segments[..i].contains(s) && !out.contains(&s.to_string()) {
            out.push(s.to_string());
        }
    }
    out
}

fn assert_said_once(text: &str) {
    assert!(
        repeated(text).is_empty(),
        "repeats {:?} in: {text}",
        repeated(text)
    );
}

#[test]
fn the_check_finds_a_repeat() {
    assert_eq!(
        repeated("no data: empty CSV: no data: empty CSV"),
        ["no data", "empty CSV"]
    );
}

async fn failed_run(extract: &Path, format: ExtractFileFormat) -> anyhow::Error {
    let tmp = tempfile::tempdir().unwrap();
    let (mut job, sandbox) = demo_job_against_own_sandbox(tmp.path()).await;
    job.extract.url = extract.display().to_string();
    job.extract.format = format;
    let err = run_job(&job, RunOptions::default()).await.unwrap_err();
    sandbox.shutdown().await;
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_extract_names_each_cause_once() {
    let missing = repo().join("fixtures/bad/no_such_extract.csv");
    let err = failed_run(&missing, ExtractFileFormat::Csv).await;
    let text = anyhow_chain(&err);
    assert!(text.contains("no_such_extract.csv"), "{text}");
    assert!(err.chain().count() >= 2, "a chain: {text}");
    // object_store's "not found" prints its io::Error and returns it as its
    // source: anyhow's `{:#}` says it twice, error_chain once.
    assert_said_once(&text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_parquet_extract_names_each_cause_once() {
    let truncated = repo().join("fixtures/bad/truncated.parquet");
    let err = failed_run(&truncated, ExtractFileFormat::Parquet).await;
    let text = anyhow_chain(&err);
    assert!(text.contains("truncated.parquet"), "{text}");
    assert_said_once(&text);
}

#[test]
fn an_unreadable_acknowledgement_file_names_each_cause_once() {
    let path = repo().join("fixtures/no_such_acks.toml");
    let err = contract_recon::report::lifecycle::acks::load_acknowledgements(&path).unwrap_err();
    let text = error_chain(&err);
    assert!(
        text.contains("no_such_acks.toml") && text.contains("No such file"),
        "{text}"
    );
    assert_said_once(&text);
    assert_said_once(&format!("{:#}", anyhow::Error::new(err)));
}

#[test]
fn a_missing_dataset_names_each_cause_once() {
    let err = contract_recon::sandbox::Dataset::load(&repo().join("fixtures/no_such_dataset"))
        .unwrap_err();
    let text = error_chain(&err);
    assert!(text.contains("no_such_dataset"), "{text}");
    assert_said_once(&text);
    assert_said_once(&format!("{:#}", anyhow::Error::new(err)));
}
