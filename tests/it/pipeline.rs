//! End to end through the library: the embedded sandbox serves the demo
//! fixtures, the job ingests, reconciles and writes reports, and the drift
//! equals the dataset's truth.

use crate::common::{demo_job_in, expected_drift, repo, reported_drift};
use contract_recon::ingest::IngestMode;
use contract_recon::job::load_job;
use contract_recon::runner::{run_job, RunOptions};
use std::path::Path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_job_finds_exactly_the_injected_drift() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let job = load_job(&demo_job_in(tmp.path(), &out)).unwrap();

    let first = run_job(&job, RunOptions::default()).await.unwrap();
    let dir = Path::new(&first.report_dir);
    let truth = expected_drift(&repo().join("fixtures/demo"));
    let found = reported_drift(dir);
    let missing: Vec<_> = truth.difference(&found).collect();
    let extra: Vec<_> = found.difference(&truth).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:#?}\nextra {extra:#?}"
    );
    assert_eq!(first.drift_total(), truth.len() as u64);
    for f in [
        "drift.parquet",
        "drift.csv",
        "summary.json",
        "report.html",
        "rejects.csv",
        "_SUCCESS",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing in {}", dir.display());
    }
    let latest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("drift/latest.json")).unwrap()).unwrap();
    assert_eq!(latest["run_id"], first.summary.run_id.as_str());

    // A second run finds a watermark: it walks incrementally, changes nothing, finds the same drift.
    let second = run_job(
        &job,
        RunOptions {
            mode: IngestMode::Auto,
            ..RunOptions::default()
        },
    )
    .await
    .unwrap();
    assert_ne!(second.summary.run_id, first.summary.run_id);
    assert_eq!(reported_drift(Path::new(&second.report_dir)), truth);
    assert_eq!(
        second.summary.ingestion["mode"], "incremental",
        "{}",
        second.summary.ingestion
    );
}
