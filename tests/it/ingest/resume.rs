//! A run killed while enriching (a real child process aborted at the crash
//! point `ingest.enriching`) resumes without fetching again what its first
//! batch checkpointed.

use crate::common::{demo_job_in, expected_drift, repo, reported_drift};
use contract_recon::crashpoint::CRASH_AT_ENV;
use contract_recon::ingest::IngestStats;
use contract_recon::job::load_job;
use contract_recon::runner::{run_job, RunOptions};
use std::path::Path;
use std::process::Command;

fn enrichment_requests(s: &IngestStats) -> u64 {
    s.requests.key_pointers + s.requests.documents
}

#[test]
fn a_run_killed_while_enriching_resumes_without_refetching() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let job_file = demo_job_in(tmp.path(), &out);
    let killed = Command::new(env!("CARGO_BIN_EXE_contract-recon"))
        .args(["run", job_file.to_str().unwrap()])
        .env(CRASH_AT_ENV, "ingest.enriching")
        .env("CONTRACT_RECON_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&killed.stderr);
    assert!(!killed.status.success(), "{stderr}");
    assert!(stderr.contains("crash point ingest.enriching"), "{stderr}");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("state/demo.json")).unwrap()).unwrap();
    assert_eq!(state["progress"]["enrich"]["batches"], 1, "{state}");
    assert_eq!(
        std::fs::read_dir(out.join("state/demo/enrich"))
            .unwrap()
            .count(),
        1
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let job = load_job(&job_file).unwrap();
    let resume = RunOptions {
        break_lease: true, // the killed run's lease is still live
        ..RunOptions::default()
    };
    let resumed = rt.block_on(run_job(&job, resume)).unwrap();
    let fresh_tmp = tempfile::tempdir().unwrap();
    let fresh_job = load_job(&demo_job_in(
        fresh_tmp.path(),
        &fresh_tmp.path().join("out"),
    ))
    .unwrap();
    let fresh = rt
        .block_on(run_job(&fresh_job, RunOptions::default()))
        .unwrap();

    let (r, f) = (&resumed.summary.ingestion, &fresh.summary.ingestion);
    assert!(r.resumed);
    assert_eq!(r.enrichment_resumed, 100, "one batch checkpointed");
    assert_eq!(
        r.key_pointers_fetched, f.key_pointers_fetched,
        "same result"
    );
    let saved = enrichment_requests(f) - enrichment_requests(r);
    println!(
        "enrichment resume after a kill: {} requests instead of {} ({saved} saved by the checkpoint of 100 contracts)",
        enrichment_requests(r),
        enrichment_requests(f)
    );
    assert!((100..=200).contains(&saved), "{saved}");
    assert_eq!(r.requests.list, f.requests.list - 3, "pages from the spill");
    let truth = expected_drift(&repo().join("fixtures/demo"));
    assert_eq!(reported_drift(Path::new(&resumed.tables["drift"])), truth);
    assert!(
        !out.join("state/demo/enrich").exists()
            || std::fs::read_dir(out.join("state/demo/enrich"))
                .unwrap()
                .count()
                == 0,
        "spilled batches are cleaned up"
    );
}
