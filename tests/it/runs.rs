//! Runs you can trust: one run per job (the lease), cheap checks before any
//! SpotDraft request, and reports that are complete or invisible even when the
//! process is killed while publishing.

use crate::common::{
    demo_job_against_own_sandbox, demo_job_in, expected_drift, repo, reported_drift,
};
use contract_recon::crashpoint::CRASH_AT_ENV;
use contract_recon::lease::{self, Holder, LeaseConfig, LeaseError};
use contract_recon::runner::{run_job, RunOptions};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use polars::prelude::*;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

fn local(dir: &Path) -> Arc<dyn ObjectStore> {
    std::fs::create_dir_all(dir).unwrap();
    Arc::new(LocalFileSystem::new_with_prefix(dir).unwrap())
}

/// The object prefix of an absolute local folder inside `LocalFileSystem::new()`.
fn prefix_of(dir: &Path) -> ObjectPath {
    ObjectPath::from_absolute_path(dir).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_column_mapping_fails_before_any_spotdraft_request() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut job, sandbox) = demo_job_against_own_sandbox(tmp.path()).await;
    job.extract
        .columns
        .insert("po_number".into(), "PO_NO".into());
    let err = run_job(&job, RunOptions::default()).await.unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("PO_NO"), "{message}");
    assert_eq!(
        sandbox.state().counters().spotdraft_requests,
        0,
        "the extract is checked first"
    );
    assert!(!tmp.path().join("out/state").exists());
    assert!(!tmp.path().join("out/runs").exists());
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_of_one_job_at_once_one_runs_the_other_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (job, sandbox) = demo_job_against_own_sandbox(tmp.path()).await;
    let (a, b) = tokio::join!(
        run_job(&job, RunOptions::default()),
        run_job(&job, RunOptions::default())
    );
    let (ok, refused) = match (a, b) {
        (Ok(ok), Err(e)) | (Err(e), Ok(ok)) => (ok, e),
        (a, b) => panic!("exactly one run must win: {a:?} / {b:?}"),
    };
    match refused.downcast_ref::<LeaseError>() {
        Some(LeaseError::Held { holder, .. }) => {
            assert_eq!(holder.run_id, ok.summary.run_id);
            assert_eq!(holder.pid, std::process::id());
        }
        other => panic!("expected a held lease, got {other:?}: {refused:#}"),
    }
    let truth = expected_drift(&repo().join("fixtures/demo"));
    assert_eq!(reported_drift(Path::new(&ok.tables["drift"])), truth);

    // The winner released the lease and left consistent state: the next run
    // walks incrementally from its watermark and finds the same drift.
    let next = run_job(&job, RunOptions::default()).await.unwrap();
    assert_eq!(
        next.summary.ingestion.mode,
        Some(contract_recon::ingest::WalkMode::Incremental)
    );
    assert_eq!(reported_drift(Path::new(&next.tables["drift"])), truth);
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_taken_over_and_a_live_one_only_with_break_lease() {
    let tmp = tempfile::tempdir().unwrap();
    let (job, sandbox) = demo_job_against_own_sandbox(tmp.path()).await;
    let out = tmp.path().join("out");
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
    let short = LeaseConfig {
        ttl: Duration::from_millis(600),
        ..LeaseConfig::default()
    };
    let gone = Holder {
        host: "old-host".into(),
        pid: 4242,
        run_id: "run-gone".into(),
    };
    // A holder that died without releasing: its lease expires by itself.
    let held = lease::acquire(
        store.clone(),
        &prefix_of(&out),
        "demo",
        gone.clone(),
        &short,
        false,
    )
    .await
    .unwrap();
    drop(held);
    let err = run_job(&job, RunOptions::default()).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("run-gone (pid 4242 on old-host)"),
        "{err:#}"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    run_job(&job, RunOptions::default()).await.unwrap();

    // A live lease (long expiry) is only taken with --break-lease.
    let mut live = lease::acquire(
        store.clone(),
        &prefix_of(&out),
        "demo",
        gone,
        &LeaseConfig::default(),
        false,
    )
    .await
    .unwrap();
    assert!(run_job(&job, RunOptions::default()).await.is_err());
    let broke = RunOptions {
        break_lease: true,
        ..RunOptions::default()
    };
    run_job(&job, broke).await.unwrap();
    assert!(
        matches!(live.renew().await, Err(LeaseError::Lost { .. })),
        "the broken holder finds its lease gone"
    );
    sandbox.shutdown().await;
}

#[test]
fn the_cli_exits_4_naming_the_holder_of_a_live_lease() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let job = demo_job_in(tmp.path(), &out);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _lease = rt.block_on(async {
        let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
        std::fs::create_dir_all(&out).unwrap();
        let holder = Holder {
            host: "host-a".into(),
            pid: 77,
            run_id: "run-other".into(),
        };
        lease::acquire(
            store,
            &prefix_of(&out),
            "demo",
            holder,
            &LeaseConfig::default(),
            false,
        )
        .await
        .unwrap()
    });
    let run = Command::new(env!("CARGO_BIN_EXE_contract-recon"))
        .args(["run", job.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("run-other (pid 77 on host-a)"), "{stderr}");
    assert!(stderr.contains("--break-lease"), "{stderr}");
}

/// Runs the demo job in a child process that aborts at `crash_point`.
fn run_killed_at(job: &Path, crash_point: &str) {
    let run = Command::new(env!("CARGO_BIN_EXE_contract-recon"))
        .args(["run", job.to_str().unwrap()])
        .env(CRASH_AT_ENV, crash_point)
        .env("CONTRACT_RECON_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        !run.status.success(),
        "{crash_point}: the run must die there"
    );
    assert!(
        String::from_utf8_lossy(&run.stderr).contains(&format!("crash point {crash_point}")),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// The README's Polars recipe over `{out}/drift`: the run ids it sees.
fn runs_a_reader_sees(out: &Path) -> Vec<String> {
    let glob = format!("{}/drift/**/*.parquet", out.display());
    let args = ScanArgsParquet {
        hive_options: HiveOptions::new_enabled(),
        ..Default::default()
    };
    let df = match LazyFrame::scan_parquet(PlRefPath::new(glob), args).and_then(|lf| lf.collect()) {
        Ok(df) => df,
        Err(_) => return vec![],
    };
    let mut ids: Vec<String> = df
        .column("run_id")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn watermark(out: &Path) -> Option<String> {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("state/demo.json")).ok()?).ok()?;
    state["watermark"].as_str().map(str::to_string)
}

#[test]
fn a_run_killed_while_staging_leaves_nothing_visible() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let job = demo_job_in(tmp.path(), &out);
    run_killed_at(&job, "report.staged");
    assert!(runs_a_reader_sees(&out).is_empty());
    assert!(!out.join("runs").exists(), "no run record, no latest.json");
    assert_eq!(watermark(&out), None, "the watermark waits for the report");

    // The killed run's lease is still live: the operator, who knows it died, breaks it.
    let next = Command::new(env!("CARGO_BIN_EXE_contract-recon"))
        .args(["run", job.to_str().unwrap(), "--break-lease"])
        .output()
        .unwrap();
    assert!(
        next.status.success(),
        "{}",
        String::from_utf8_lossy(&next.stderr)
    );
    let seen = runs_a_reader_sees(&out);
    assert_eq!(seen.len(), 1, "only the complete run: {seen:?}");
    assert!(watermark(&out).is_some());
    let staged = local(&out).list(Some(&ObjectPath::from("_staging")));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let left: Vec<_> = rt
        .block_on(futures::TryStreamExt::try_collect::<Vec<_>>(staged))
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_run_killed_while_publishing_is_rolled_forward_by_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let job = demo_job_in(tmp.path(), &out);
    run_killed_at(&job, "report.publishing");
    // Committed: the drift file it managed to publish is final, and nothing
    // else says the run is complete yet.
    let killed = runs_a_reader_sees(&out);
    assert_eq!(killed.len(), 1, "{killed:?}");
    assert!(!out.join("runs/job=demo/latest.json").exists());
    assert_eq!(watermark(&out), None);
    let truth = expected_drift(&repo().join("fixtures/demo"));
    let killed_dir = std::fs::read_dir(out.join("drift/job=demo"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|d| d.unwrap().path())
        .next()
        .unwrap();
    assert_eq!(reported_drift(&killed_dir), truth);

    // The killed run's lease is still live: the operator, who knows it died, breaks it.
    let next = Command::new(env!("CARGO_BIN_EXE_contract-recon"))
        .args(["run", job.to_str().unwrap(), "--break-lease"])
        .output()
        .unwrap();
    assert!(
        next.status.success(),
        "{}",
        String::from_utf8_lossy(&next.stderr)
    );
    assert!(killed_dir.join("_SUCCESS").is_file(), "rolled forward");
    let record = out
        .join("runs/job=demo")
        .join(killed_dir.parent().unwrap().file_name().unwrap())
        .join(killed_dir.file_name().unwrap());
    assert!(record.join("_SUCCESS").is_file() && record.join("report.html").is_file());
    assert_eq!(runs_a_reader_sees(&out).len(), 2);
    assert!(watermark(&out).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_naming_contracts_outside_the_status_filter_are_not_orphans() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut job, sandbox) = demo_job_against_own_sandbox(tmp.path()).await;
    // Walk only the reconciled statuses: DRAFT and REDLINING contracts stay out
    // of the snapshot, and ERP records naming them must not become orphans.
    job.fetch.status_filter = job.reconcile.statuses.clone();
    // An ERP record created for DRAFT contract T-1005 (no drift of any kind: a
    // contract outside the reconciled statuses is not compared).
    let mut extract =
        std::fs::read_to_string(repo().join("fixtures/demo/erp_extract.csv")).unwrap();
    extract.push_str("ERP-DRAFT-1005,T-1005,,,LE-GB-01,,,,,,\n");
    let extract_path = tmp.path().join("erp_extract.csv");
    std::fs::write(&extract_path, extract).unwrap();
    job.extract.url = extract_path.display().to_string();
    let outcome = run_job(&job, RunOptions::default()).await.unwrap();
    let truth = expected_drift(&repo().join("fixtures/demo"));
    let orphans = |set: &std::collections::BTreeSet<crate::common::DriftKey>| {
        set.iter()
            .filter(|k| k.0 == "orphan_erp_record")
            .cloned()
            .collect::<Vec<_>>()
    };
    let found = reported_drift(Path::new(&outcome.tables["drift"]));
    assert_eq!(orphans(&found), orphans(&truth));
    assert!(!orphans(&truth).is_empty(), "the demo has real orphans");
    assert!(
        outcome.summary.ingestion.orphan_check_requests >= 1,
        "{:?}",
        outcome.summary.ingestion
    );
    assert_eq!(found, truth);
    sandbox.shutdown().await;
}
