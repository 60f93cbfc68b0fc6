//! End to end through the library: the embedded sandbox serves the demo
//! fixtures, the job ingests, reconciles and writes reports, and the drift
//! equals the dataset's truth.

use crate::common::{demo_job_in, expected_drift, repo, reported_drift};
use contract_recon::ingest::{IngestMode, WalkMode};
use contract_recon::job::load_job;
use contract_recon::runner::{run_job, RunOptions};
use std::path::Path;

/// Files (not folders) under `dir`, at any depth.
fn files_under(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| e.unwrap().path())
        .map(|p| if p.is_dir() { files_under(&p) } else { 1 })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_job_finds_exactly_the_injected_drift() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let job = load_job(&demo_job_in(tmp.path(), &out)).unwrap();

    let first = run_job(&job, RunOptions::default()).await.unwrap();
    let drift_dir = Path::new(&first.tables["drift"]);
    let truth = expected_drift(&repo().join("fixtures/demo"));
    let found = reported_drift(drift_dir);
    let missing: Vec<_> = truth.difference(&found).collect();
    let extra: Vec<_> = found.difference(&truth).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:#?}\nextra {extra:#?}"
    );
    assert_eq!(first.drift_total(), truth.len() as u64);
    let file = std::fs::File::open(drift_dir.join("drift.parquet")).unwrap();
    let rows = {
        use polars::prelude::*;
        ParquetReader::new(file).finish().unwrap()
    };
    crate::common::assert_drift_ids_unique(&rows);
    for (table, files) in [
        ("drift", &["drift.parquet", "drift.csv", "_SUCCESS"][..]),
        ("rejects", &["rejects.parquet", "rejects.csv", "_SUCCESS"]),
        ("runs", &["summary.json", "report.html", "_SUCCESS"]),
    ] {
        let dir = Path::new(&first.tables[table]);
        assert!(
            dir.starts_with(out.join(table).join("job=demo")),
            "{}",
            dir.display()
        );
        for f in files {
            assert!(dir.join(f).is_file(), "{f} missing in {}", dir.display());
        }
    }
    assert_eq!(first.report_dir, first.tables["runs"]);
    let latest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("runs/job=demo/latest.json")).unwrap())
            .unwrap();
    assert_eq!(latest["run_id"], first.summary.run_id.as_str());
    assert_eq!(
        files_under(&out.join("_staging")),
        0,
        "nothing left in staging"
    );

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
    assert_eq!(reported_drift(Path::new(&second.tables["drift"])), truth);
    assert_eq!(
        second.summary.ingestion.mode,
        Some(WalkMode::Incremental),
        "{:?}",
        second.summary.ingestion
    );
}
