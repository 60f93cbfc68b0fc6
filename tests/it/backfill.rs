//! Backfills over loopback against a sandbox the test owns: only the
//! contracts of the range are reported, latest.json and the watermark stay
//! where they are, and a backfill killed between windows resumes without
//! walking a window twice.

use crate::common::{demo_job_against_own_sandbox, drift_keys, repo, DriftKey};
use contract_recon::crashpoint::CRASH_AT_ENV;
use contract_recon::ingest::backfill::BackfillRange;
use contract_recon::ingest::WindowField;
use contract_recon::report::lifecycle::RunKind;
use contract_recon::runner::{run_backfill, run_job, BackfillRequest, RunOptions};
use contract_recon::sandbox::{Dataset, Sandbox, SandboxConfig, StateHandle};
use polars::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const FROM: &str = "2025-01-01";
const TO: &str = "2025-06-30";

fn read_parquet(path: &Path) -> DataFrame {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ParquetReader::new(file).finish().unwrap()
}

/// Contracts of the sandbox created on days FROM..=TO, by composite id, with their creation day.
fn created_in_range(state: &StateHandle) -> BTreeMap<String, String> {
    state
        .contracts()
        .into_iter()
        .map(|c| {
            (
                c.contract.id.composite().to_string(),
                c.contract.created[..10].to_string(),
            )
        })
        .filter(|(_, day)| day.as_str() >= FROM && day.as_str() <= TO)
        .collect()
}

fn range() -> BackfillRange {
    BackfillRange {
        from: FROM.parse().unwrap(),
        to: TO.parse().unwrap(),
        by: WindowField::CreatedAt,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_reports_only_its_range_and_leaves_latest_and_the_watermark_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (job, sandbox) = demo_job_against_own_sandbox(tmp.path()).await;
    let nightly = run_job(&job, RunOptions::default()).await.unwrap();
    let latest_path = out.join("runs/job=demo/latest.json");
    let state_path = out.join("state/demo.json");
    let (latest_before, state_before) = (
        std::fs::read(&latest_path).unwrap(),
        std::fs::read(&state_path).unwrap(),
    );

    let in_range = created_in_range(&sandbox.state());
    assert!(
        in_range.len() > 20 && in_range.len() < 150,
        "{}",
        in_range.len()
    );
    let request = BackfillRequest {
        range: range(),
        window: chrono::Duration::days(30),
        resume: false,
    };
    let backfill = run_backfill(&job, &request, RunOptions::default())
        .await
        .unwrap();
    let s = &backfill.summary;
    assert_eq!(s.run_kind, RunKind::Backfill);
    assert!(s.run_id.starts_with("backfill-"), "{}", s.run_id);
    assert!(backfill.report_dir.contains("run_id=backfill-"));
    let scope = s.scope.as_ref().unwrap();
    let scoped: BTreeSet<&String> = scope.contracts.iter().collect();
    assert_eq!(scoped, in_range.keys().collect::<BTreeSet<_>>());

    // The nightly run's rows about those contracts, orphans aside: the
    // backfill saw the same data, so it finds the same drift.
    let nightly_drift = read_parquet(&Path::new(&nightly.tables["drift"]).join("drift.parquet"));
    let expected: BTreeSet<DriftKey> = drift_keys(&nightly_drift)
        .into_iter()
        .filter(|(kind, contract, _, _)| {
            in_range.contains_key(contract) && kind != "orphan_erp_record"
        })
        .collect();
    assert!(!expected.is_empty());
    let found = drift_keys(&read_parquet(
        &Path::new(&backfill.tables["drift"]).join("drift.parquet"),
    ));
    assert_eq!(found, expected);
    assert!(backfill.tables.contains_key("plan"));
    assert_eq!(s.lifecycle.as_ref().unwrap().resolved, 0);

    assert_eq!(std::fs::read(&latest_path).unwrap(), latest_before);
    assert_eq!(std::fs::read(&state_path).unwrap(), state_before);
}

/// A job file for a child process: the demo job against `sandbox`, 5
/// contracts a page (so windows take several pages), output under `tmp/out`.
fn child_job(tmp: &Path, sandbox: &Sandbox) -> PathBuf {
    let demo = std::fs::read_to_string(repo().join("jobs/demo.toml")).unwrap();
    let (start, end) = (
        demo.find("[spotdraft]").unwrap(),
        demo.find("[erp.extract]").unwrap(),
    );
    let spotdraft = format!(
        "[spotdraft]\nbase_url = \"{}\"\nclient_id_env = \"SD_ID\"\nclient_secret_env = \"SD_SECRET\"\npage_size = 5\nrequests_per_second = 10\nfetch_documents = true\n\n",
        sandbox.spotdraft_base_url()
    );
    let text = format!("{}{}{}", &demo[..start], spotdraft, &demo[end..])
        .replace(
            "\"../fixtures/",
            &format!("\"{}/fixtures/", repo().display()),
        )
        .replace("\"../out/demo\"", &format!("{:?}", tmp.join("out")))
        .replace(
            "\"../out/demo-imports\"",
            &format!("{:?}", tmp.join("imports")),
        );
    let path = tmp.join("child.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn backfill_child(
    job: &Path,
    sandbox: &Sandbox,
    extra: &[&str],
    crash_at: Option<&str>,
) -> std::process::Output {
    let creds = sandbox.credentials();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_contract-recon"));
    cmd.args([
        "backfill",
        job.to_str().unwrap(),
        "--from",
        FROM,
        "--to",
        TO,
    ])
    .args(["--window", "30d"])
    .args(extra)
    .env("CONTRACT_RECON_LOG", "warn")
    .env("SD_ID", &creds.client_id)
    .env("SD_SECRET", &creds.client_secret);
    if let Some(point) = crash_at {
        cmd.env(CRASH_AT_ENV, point);
    }
    cmd.output().unwrap()
}

/// List requests a complete walk of the range's windows costs: one page per
/// 5 contracts, one request for an empty window.
fn pages_of_windows(in_range: &BTreeMap<String, String>) -> (u64, u64) {
    let windows = contract_recon::ingest::backfill::windows_of(
        &range(),
        chrono::Duration::days(30),
        chrono::Utc::now(),
    )
    .unwrap();
    let count = |w: &contract_recon::ingest::Window| {
        let (a, b) = (
            w.start.format("%Y-%m-%d").to_string(),
            w.end.format("%Y-%m-%d").to_string(),
        );
        in_range.values().filter(|d| **d >= a && **d < b).count() as u64
    };
    let pages: Vec<u64> = windows
        .iter()
        .map(|w| count(w).div_ceil(5).max(1))
        .collect();
    (pages[0], pages.iter().sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_killed_between_windows_resumes_without_walking_a_window_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(
        SandboxConfig {
            rate_limit_per_sec: 1000,
            ..SandboxConfig::default()
        },
        Dataset::load(&repo().join("fixtures/demo")).unwrap(),
    )
    .await
    .unwrap();
    let job = child_job(tmp.path(), &sandbox);
    let state = sandbox.state();
    let in_range = created_in_range(&state);
    let (first_window_pages, all_pages) = pages_of_windows(&in_range);
    assert!(all_pages > first_window_pages);

    // Bad input is refused before anything is done.
    for (args, message) in [
        (
            vec!["--from", "2025-02-30", "--to", TO],
            "--from: \"2025-02-30\" is not a date",
        ),
        (
            vec!["--from", "2025-07-01", "--to", TO],
            "--from 2025-07-01 is after --to 2025-06-30",
        ),
        (
            vec!["--from", FROM, "--to", TO, "--window", "30x"],
            "--window: \"30x\" is not a window length",
        ),
    ] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_contract-recon"));
        let out = cmd
            .args(["backfill", job.to_str().unwrap()])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    assert_eq!(state.counters().list_requests, 0);

    let killed = backfill_child(&job, &sandbox, &[], Some("backfill.between_windows"));
    let stderr = String::from_utf8_lossy(&killed.stderr);
    assert!(
        !killed.status.success() && stderr.contains("crash point backfill.between_windows"),
        "{stderr}"
    );
    assert_eq!(state.counters().list_requests, first_window_pages);

    // Another range is refused, naming the unfinished backfill's.
    let other = std::process::Command::new(env!("CARGO_BIN_EXE_contract-recon"))
        .args(["backfill", job.to_str().unwrap(), "--from", FROM])
        .args(["--to", "2025-05-31", "--resume", "--break-lease"])
        .env("SD_ID", &sandbox.credentials().client_id)
        .env("SD_SECRET", &sandbox.credentials().client_secret)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success());
    assert!(
        stderr.contains("covers created_at from 2025-01-01 to 2025-06-30"),
        "{stderr}"
    );
    assert_eq!(state.counters().list_requests, first_window_pages);

    let resumed = backfill_child(&job, &sandbox, &["--resume", "--break-lease"], None);
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(
        resumed.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert!(stdout.contains("run backfill-"), "{stdout}");
    // Every window walked once over both processes: the killed window's
    // pages are not asked again.
    assert_eq!(state.counters().list_requests, all_pages);

    // The snapshot holds exactly the range's contracts; no nightly state.
    let out = tmp.path().join("out");
    let snapshot = read_parquet(&out.join("snapshots/demo/snapshot.parquet"));
    let ids: BTreeSet<String> = crate::common::text(&snapshot, "id").into_iter().collect();
    assert_eq!(ids, in_range.keys().cloned().collect::<BTreeSet<_>>());
    assert!(!out.join("runs/job=demo/latest.json").exists());
    assert!(!out.join("state/demo.json").exists(), "no watermark");

    // Nothing left to resume.
    let again = backfill_child(&job, &sandbox, &["--resume"], None);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && stderr.contains("no unfinished backfill to resume"),
        "{stderr}"
    );
    sandbox.shutdown().await;
}
