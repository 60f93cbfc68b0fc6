//! Crash points end to end: a real child process of `contract-recon` dies at
//! a named point (`CONTRACT_RECON_CRASH_AT`, an abort as sudden as `kill -9`)
//! of a nightly run, a webhook-triggered targeted run or a backfill, and is
//! run again. Each scenario has its own sandbox and output, and ends as an
//! uninterrupted run of the same job and data does:
//! - the same drift rows (as a set), in the first complete report and after
//!   the job settled;
//! - the same effects: the same idempotency keys applied in the ERP, each once
//!   (distinct keys == applied writes), the same ERP records, contracts
//!   created and supporting documents stored;
//! - no visible partial report, after the kill and after the rerun
//!   ([`checks::assert_no_partial_report`]);
//! - the watermark never ahead of the data ([`checks::assert_watermark_not_ahead`]).
//!
//! Scenarios run concurrently: they mostly wait on SpotDraft's 10 requests/s.

mod checks;
mod ground;

use crate::common::DriftKey;
use checks::{
    assert_no_partial_report, assert_same_effects, assert_watermark_not_ahead, complete_runs,
    effects, Effects,
};
use ground::{said, Ground, JOB};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A run's walk covers changes before its start, taken to the second: the
/// next run starts at least this long after one that created contracts.
const NEXT_RUN_AFTER: Duration = Duration::from_millis(1100);

/// Crash points of a nightly run (creating contracts, applying corrections
/// over REST), in the order it reaches them; `#n`: the n-th time.
const NIGHTLY_POINTS: [&str; 15] = [
    "ingest.walk_page#2",
    "ingest.enrich_result#5",
    "ingest.before_snapshot",
    "ingest.snapshot_written",
    "report.staging#2",
    "report.staged",
    "report.before_run_success",
    "report.before_latest",
    "report.before_cleanup",
    "run.before_watermark",
    "apply.create.intent",
    "apply.create.returned",
    "apply.between_batches",
    "apply.document_mid_upload",
    "apply.between_batches#3",
];

/// Where a job ended after a run (killed at a point, then run again) and one
/// more run to settle.
#[derive(Debug)]
struct Ending {
    /// Drift of the first complete nightly report.
    first: BTreeSet<DriftKey>,
    /// Drift of the settling run's report.
    last: BTreeSet<DriftKey>,
    /// Files of the first complete report, in publish order.
    files: Vec<String>,
    /// ERP and SpotDraft after the rerun.
    effects: Effects,
}

/// Runs the job killed at `point` (uninterrupted with `None`), again, then once
/// more to settle, checking what a reader sees after each.
async fn nightly(point: Option<String>) -> Ending {
    let g = Ground::new().await;
    let at = point.as_deref().unwrap_or("uninterrupted");
    let job = g.job_arg();
    let mut rerun = vec!["run", job];
    if let Some(point) = &point {
        g.run_killed(&["run", job], point).await;
        assert_no_partial_report(&g.out, false, &format!("{at}, killed"));
        assert_watermark_not_ahead(&g.out, &format!("{at}, killed"));
        let killed = effects(&g.sandbox, &format!("{at}, killed"));
        if point == "apply.document_mid_upload" {
            // The ERP saw the upload begin and its body end short: nothing stored.
            let cut: Vec<_> = g
                .sandbox
                .state()
                .erp_writes()
                .into_iter()
                .filter(|w| w.path.ends_with("/attachments"))
                .collect();
            assert!(
                cut.len() == 1 && !cut[0].applied && cut[0].status == 400,
                "{cut:?}"
            );
            assert!(killed.attachments.is_empty());
        }
        tokio::time::sleep(NEXT_RUN_AFTER).await;
        // The killed run's lease is still live: its operator breaks it.
        rerun.push("--break-lease");
        g.run_ok(&rerun).await;
        let after = effects(&g.sandbox, at);
        assert!(
            killed.applied_keys.is_subset(&after.applied_keys),
            "{at}: the rerun sent other keys for the same writes"
        );
    } else {
        g.run_ok(&rerun).await;
    }
    assert_no_partial_report(&g.out, true, &format!("{at}, rerun"));
    assert_watermark_not_ahead(&g.out, &format!("{at}, rerun"));
    let after_rerun = effects(&g.sandbox, at);

    tokio::time::sleep(NEXT_RUN_AFTER).await;
    g.run_ok(&["run", job]).await;
    assert_no_partial_report(&g.out, true, &format!("{at}, settled"));
    assert_watermark_not_ahead(&g.out, &format!("{at}, settled"));
    assert_same_effects(
        &effects(&g.sandbox, at),
        &after_rerun,
        &format!("{at}: a settled job writes again"),
    );
    let runs = complete_runs(&g.out, Some("nightly"));
    let (first, last) = (runs.first().unwrap(), runs.last().unwrap());
    let ending = Ending {
        first: first.drift(),
        last: last.drift(),
        files: first.files.clone(),
        effects: after_rerun,
    };
    g.sandbox.shutdown().await;
    ending
}

/// Asserts that `got` (killed at `point`) ended as `reference`.
fn assert_same_ending(point: &str, got: &Ending, reference: &Ending) {
    assert_eq!(got.first, reference.first, "{point}: first report's drift");
    assert_eq!(got.last, reference.last, "{point}: settled drift");
    assert_same_effects(&got.effects, &reference.effects, point);
}

/// The uninterrupted run does what the kills interrupt: it creates
/// contracts, writes fields and attaches documents in the ERP, in batches.
fn assert_reference_does_everything(reference: &Ending) {
    let e = &reference.effects;
    assert_eq!(e.contracts_created, 3, "{e:?}");
    assert_eq!(e.supported_documents, 1);
    assert!(e.contracts_per_record.values().filter(|n| **n == 1).count() == 3);
    assert!(e.applied_keys.len() >= 6, "{:?}", e.applied_keys);
    assert_eq!(e.attachments.len(), 1, "a document attached: {e:?}");
    assert!(reference
        .first
        .iter()
        .any(|k| k.0 == "missing_in_spotdraft"));
    assert!(
        !reference.last.iter().any(|k| k.0 == "missing_in_spotdraft"
            && ["ERP-NEW-0001", "ERP-NEW-0002", "ERP-NEW-0003"].contains(&k.2.as_str())),
        "the created contracts close their drift"
    );
    assert!(reference.files.len() >= 6, "{:?}", reference.files);
}

/// Every nightly point, then one kill after each report file published.
async fn nightly_points(every_file: bool) {
    let started = Instant::now();
    let reference = tokio::spawn(nightly(None));
    let killed: Vec<_> = NIGHTLY_POINTS
        .iter()
        .map(|p| {
            let p = p.to_string();
            tokio::spawn(async move { (p.clone(), nightly(Some(p)).await) })
        })
        .collect();
    let reference = reference.await.unwrap();
    assert_reference_does_everything(&reference);
    // While writing each report file: killed after the n-th is published.
    let files = reference.files.len();
    let picked: Vec<usize> = match every_file {
        true => (1..=files).collect(),
        false => vec![1, files / 2, files],
    };
    let per_file: Vec<_> = picked
        .into_iter()
        .map(|n| {
            let p = format!("report.publishing#{n}");
            tokio::spawn(async move { (p.clone(), nightly(Some(p)).await) })
        })
        .collect();
    let mut points = 0;
    for task in killed.into_iter().chain(per_file) {
        let (point, ending) = task.await.unwrap();
        assert_same_ending(&point, &ending, &reference);
        points += 1;
    }
    println!(
        "crash points: {points} nightly kills (report of {files} files) each ended as the uninterrupted run, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nightly_run_killed_at_any_point_then_run_again_ends_as_an_uninterrupted_run() {
    nightly_points(false).await;
}

/// The long variant: a kill after every report file published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long variant: a kill after every report file"]
async fn a_nightly_run_killed_after_each_report_file_ends_as_an_uninterrupted_run() {
    nightly_points(true).await;
}

/// A backfill of 2 windows of 2 pages, killed at `point`, resumed; its
/// report's drift and the effects.
async fn backfill(point: Option<&str>) -> (BTreeSet<DriftKey>, Effects) {
    let g = Ground::new().await;
    let job = g.job_arg();
    g.run_ok(&["run", job, "--plan-only"]).await;
    let mut args = vec![
        "backfill",
        job,
        "--from",
        "2025-01-01",
        "--to",
        "2026-12-31",
        "--window",
        "365d",
    ];
    let at = point.unwrap_or("uninterrupted backfill");
    if let Some(point) = point {
        g.run_killed(&args, point).await;
        assert_no_partial_report(&g.out, false, &format!("{at}, killed"));
        assert_watermark_not_ahead(&g.out, &format!("{at}, killed"));
        args.extend(["--resume", "--break-lease"]);
    }
    let done = g.run_ok(&args).await;
    assert_no_partial_report(&g.out, true, at);
    assert_watermark_not_ahead(&g.out, at);
    let runs = complete_runs(&g.out, Some("backfill"));
    assert_eq!(runs.len(), 1, "{at}: {runs:?}\n{}", said(&done));
    let ending = (runs[0].drift(), effects(&g.sandbox, at));
    g.sandbox.shutdown().await;
    ending
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_killed_in_a_window_or_between_windows_then_resumed_ends_as_an_uninterrupted_one(
) {
    let (reference, mid, between) = tokio::join!(
        backfill(None),
        backfill(Some("backfill.window_page#2")),
        backfill(Some("backfill.between_windows")),
    );
    assert!(!reference.0.is_empty());
    assert!(!reference.1.applied_keys.is_empty(), "the backfill applies");
    assert_eq!(mid.0, reference.0, "killed mid-window: drift");
    assert_same_effects(&mid.1, &reference.1, "killed mid-window");
    assert_eq!(between.0, reference.0, "killed between windows: drift");
    assert_same_effects(&between.1, &reference.1, "killed between windows");
}

/// A free loopback address for a daemon's webhooks.
fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// `schedule --webhooks` for the ground's jobs, dying at `crash_at` when given.
fn daemon(g: &Ground, addr: &str, crash_at: Option<&str>) -> tokio::process::Child {
    let jobs = g.job.parent().unwrap().to_str().unwrap();
    let mut cmd = g.command(&["schedule", "--jobs", jobs, "--webhooks", addr]);
    if let Some(point) = crash_at {
        cmd.env(contract_recon::crashpoint::CRASH_AT_ENV, point);
    }
    let log = std::fs::File::create(daemon_log(g)).unwrap();
    cmd.stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// A minute passes: the dead daemon's lease (its newest object) expires.
fn expire_lease(g: &Ground) {
    let dir = g.out.join("_leases").join(JOB);
    let mut objects: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    objects.sort();
    let newest = objects.last().unwrap();
    let mut lease: serde_json::Value =
        serde_json::from_slice(&std::fs::read(newest).unwrap()).unwrap();
    lease["expires_at"] = "2000-01-01T00:00:00Z".into();
    std::fs::write(newest, serde_json::to_vec(&lease).unwrap()).unwrap();
}

/// Where the daemon's stderr goes.
fn daemon_log(g: &Ground) -> std::path::PathBuf {
    g.tmp.path().join("daemon.log")
}

/// Waits up to a minute for `done`; whether it came.
async fn wait_for(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

/// A webhook for H-1078 (a field mismatch SpotDraft owns) makes the daemon's targeted run
/// correct it; the daemon dies at `point` in that run and is started again.
/// The targeted report's drift and the effects.
async fn webhook_run(point: Option<&str>) -> (BTreeSet<DriftKey>, Effects) {
    let g = Ground::new().await;
    g.run_ok(&["run", g.job_arg(), "--plan-only"]).await;
    let before = effects(&g.sandbox, "nightly plan");
    assert!(before.applied_keys.is_empty(), "a plan writes nothing");
    let at = point.unwrap_or("uninterrupted webhook run");
    let queue = g.out.join("_webhooks").join(JOB).join("queue");
    let addr = free_addr();
    let mut first = daemon(&g, &addr, point);
    let deadline = Instant::now() + Duration::from_secs(30);
    while g.send_webhook(&addr, 1078).await != 202 {
        assert!(
            Instant::now() < deadline,
            "{at}: the daemon never took the webhook"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if let Some(point) = point {
        let died = tokio::time::timeout(Duration::from_secs(60), first.wait())
            .await
            .expect("the daemon dies at the crash point")
            .unwrap();
        let stderr = std::fs::read_to_string(daemon_log(&g)).unwrap();
        assert!(
            !died.success() && stderr.contains(&format!("crash point {point} ")),
            "{stderr}"
        );
        assert_no_partial_report(&g.out, false, &format!("{at}, killed"));
        assert_watermark_not_ahead(&g.out, &format!("{at}, killed"));
        assert_eq!(
            std::fs::read_dir(&queue).unwrap().count(),
            1,
            "still queued"
        );
        expire_lease(&g);
        first = daemon(&g, &addr, None);
    }
    let ran = wait_for(|| {
        !complete_runs(&g.out, Some("targeted")).is_empty()
            && std::fs::read_dir(&queue).is_ok_and(|mut d| d.next().is_none())
    })
    .await;
    assert!(
        ran,
        "{at}: no targeted run\n{}",
        std::fs::read_to_string(daemon_log(&g)).unwrap_or_default()
    );
    first.kill().await.unwrap();
    assert_no_partial_report(&g.out, true, at);
    assert_watermark_not_ahead(&g.out, at);
    let runs = complete_runs(&g.out, Some("targeted"));
    assert_eq!(runs.len(), 1, "{at}: {runs:?}");
    let ending = (runs[0].drift(), effects(&g.sandbox, at));
    g.sandbox.shutdown().await;
    ending
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_triggered_run_killed_then_run_by_the_restarted_daemon_ends_as_an_uninterrupted_one(
) {
    let (reference, killed) = tokio::join!(
        webhook_run(None),
        webhook_run(Some("partial.before_snapshot")),
    );
    assert!(
        reference.0.iter().any(|k| k.1 == "H-1078"),
        "{:?}",
        reference.0
    );
    assert!(
        !reference.1.applied_keys.is_empty(),
        "the targeted run corrects"
    );
    assert_eq!(killed.0, reference.0, "drift");
    assert_same_effects(&killed.1, &reference.1, "webhook run");
}
