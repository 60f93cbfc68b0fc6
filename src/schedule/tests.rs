//! The scheduler's rules with chosen instants, and its loop with short real
//! durations (the product's tokio has no `test-util`, whose feature change
//! would rebuild every crate above tokio for the tests).

use super::daemon::{load_jobs_dir, Decision, Scheduler, SkipReason};
use super::driver::{serve, Launcher, Stopped};
use crate::job::{load_job, Job};
use crate::runner::RunOptions;
use chrono::{DateTime, Duration, Utc};
use futures::future::BoxFuture;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// A copy of the demo job named `name` in `dir`, with this `[job]` section tail.
fn job_file(dir: &Path, name: &str, job_keys: &str) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("jobs/demo.toml"))
        .unwrap()
        .replace("\"../fixtures/", &format!("\"{}/fixtures/", root.display()))
        .replace("\"../out/", &format!("\"{}/out/", dir.display()))
        .replace(
            "name = \"demo\"\nschedule = \"0 30 2 * * *\"        # 02:30:00 every night, seconds first\ntimezone = \"UTC\"",
            &format!("name = \"{name}\"\n{job_keys}"),
        );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn job(name: &str, job_keys: &str) -> Job {
    let dir = tempfile::tempdir().unwrap();
    load_job(&job_file(dir.path(), name, job_keys)).unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// The firings started by ticks every `step` over [from, to), finishing each run at once.
fn started(s: &mut Scheduler, from: &str, to: &str, step: Duration) -> Vec<DateTime<Utc>> {
    let (mut now, to) = (utc(from), utc(to));
    let mut out = Vec::new();
    while now < to {
        for due in s.tick(now) {
            assert_eq!(due.decision, Decision::Start, "{due:?}");
            out.push(due.scheduled_for);
            s.finished(&due.job.name);
        }
        now += step;
    }
    out
}

#[test]
fn fires_on_schedule_in_the_job_time_zone() {
    let mut s = Scheduler::new(2);
    let j = job(
        "nightly",
        "schedule = \"0 30 2 * * *\"\ntimezone = \"Europe/Berlin\"",
    );
    s.load(j, None, utc("2026-01-14T12:00:00Z")).unwrap();
    assert!(s.tick(utc("2026-01-15T01:29:59Z")).is_empty());
    let due = s.tick(utc("2026-01-15T01:30:00Z"));
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].decision, Decision::Start);
    assert_eq!(due[0].scheduled_for, utc("2026-01-15T01:30:00Z"));
    assert_eq!(s.next_firing("nightly"), Some(utc("2026-01-16T01:30:00Z")));
}

#[test]
fn fires_once_on_both_dst_nights() {
    let keys = "schedule = \"0 30 2 * * *\"\ntimezone = \"Europe/Berlin\"";
    let mut s = Scheduler::new(2);
    s.load(job("spring", keys), None, utc("2026-03-28T12:00:00Z"))
        .unwrap();
    let fired = started(
        &mut s,
        "2026-03-28T12:00:00Z",
        "2026-03-30T12:00:00Z",
        Duration::seconds(30),
    );
    // 02:30 does not exist on the 29th: 03:00 CEST; then 02:30 CEST.
    assert_eq!(
        fired,
        [utc("2026-03-29T01:00:00Z"), utc("2026-03-30T00:30:00Z")]
    );

    let keys = "schedule = \"0 30 1 * * *\"\ntimezone = \"America/New_York\"";
    let mut s = Scheduler::new(2);
    s.load(job("fall", keys), None, utc("2026-10-31T12:00:00Z"))
        .unwrap();
    let fired = started(
        &mut s,
        "2026-10-31T12:00:00Z",
        "2026-11-02T12:00:00Z",
        Duration::seconds(30),
    );
    // 01:30 happens twice on 1 November: only the first (EDT) fires.
    assert_eq!(
        fired,
        [utc("2026-11-01T05:30:00Z"), utc("2026-11-02T06:30:00Z")]
    );
}

#[test]
fn a_firing_due_while_the_last_run_is_going_is_skipped() {
    let mut s = Scheduler::new(4);
    s.load(
        job("quarter", "schedule = \"0 */15 * * * *\""),
        None,
        utc("2026-05-01T00:00:00Z"),
    )
    .unwrap();
    let first = s.tick(utc("2026-05-01T00:15:00Z"));
    assert_eq!(first[0].decision, Decision::Start);
    // Still running 15 minutes later.
    let second = s.tick(utc("2026-05-01T00:30:00Z"));
    assert_eq!(second[0].decision, Decision::Skip(SkipReason::StillRunning));
    s.finished("quarter");
    let third = s.tick(utc("2026-05-01T00:45:00Z"));
    assert_eq!(third[0].decision, Decision::Start);
}

#[test]
fn firings_over_the_concurrency_cap_are_skipped() {
    let mut s = Scheduler::new(1);
    let now = utc("2026-05-01T00:00:00Z");
    for name in ["a", "b"] {
        s.load(job(name, "schedule = \"0 0 * * * *\""), None, now)
            .unwrap();
    }
    let due = s.tick(utc("2026-05-01T01:00:00Z"));
    let decisions: Vec<_> = due
        .iter()
        .map(|d| (d.job.name.as_str(), d.decision.clone()))
        .collect();
    assert_eq!(
        decisions,
        [
            ("a", Decision::Start),
            ("b", Decision::Skip(SkipReason::ConcurrencyCap))
        ]
    );
    assert_eq!(s.running(), 1);
}

#[test]
fn a_run_missed_while_down_runs_once_with_catch_up_and_is_skipped_without() {
    // Last ran on the 10th at 02:30; the daemon comes back on the 13th at 09:00.
    let (last, now) = (utc("2026-05-10T02:30:00Z"), utc("2026-05-13T09:00:00Z"));
    for (catch_up, expected) in [
        (true, Decision::Start),
        (false, Decision::Skip(SkipReason::MissedWhileDown)),
    ] {
        let keys = format!("schedule = \"0 30 2 * * *\"\ncatch_up = {catch_up}");
        let mut s = Scheduler::new(2);
        s.load(job("nightly", &keys), Some(last), now).unwrap();
        let due = s.tick(now);
        assert_eq!(due.len(), 1, "once, for three missed nights: {due:?}");
        assert_eq!(due[0].decision, expected);
        assert_eq!(due[0].scheduled_for, utc("2026-05-13T02:30:00Z"));
        assert!(s.tick(now + Duration::seconds(1)).is_empty());
    }
    // Nothing missed: no history yet, or the last run after the last firing.
    for last in [None, Some(utc("2026-05-13T02:30:00Z"))] {
        let mut s = Scheduler::new(2);
        s.load(
            job("nightly", "schedule = \"0 30 2 * * *\"\ncatch_up = true"),
            last,
            now,
        )
        .unwrap();
        assert!(s.tick(now).is_empty());
    }
}

#[test]
fn an_invalid_job_file_is_reported_and_the_others_load() {
    let dir = tempfile::tempdir().unwrap();
    job_file(dir.path(), "good", "schedule = \"0 30 2 * * *\"");
    job_file(dir.path(), "on_demand", "");
    job_file(
        dir.path(),
        "broken",
        "schedule = \"30 2 * * *\"\ntimezone = \"Mars/Olympus\"",
    );
    let (jobs, problems) = load_jobs_dir(dir.path());
    let names: Vec<_> = jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["good"]);
    let broken = dir.path().join("broken.toml").display().to_string();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with(&format!("{broken}: job.timezone: "))),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with(&format!("{broken}: job.schedule: "))),
        "{problems:?}"
    );
}

/// A launcher whose runs take `run_for` unless told to stop.
struct FakeRuns {
    run_for: std::time::Duration,
    log: Arc<Mutex<Vec<String>>>,
}

impl Launcher for FakeRuns {
    fn run(&self, job: Job, opts: RunOptions) -> BoxFuture<'static, ()> {
        let (run_for, log) = (self.run_for, self.log.clone());
        Box::pin(async move {
            log.lock().unwrap().push(format!("start {}", job.name));
            let stop = opts.shutdown.unwrap();
            let deadline = tokio::time::Instant::now() + run_for;
            // Checks its stop flag between "pages", as the walk does.
            while tokio::time::Instant::now() < deadline {
                if stop.load(Ordering::SeqCst) {
                    log.lock().unwrap().push(format!("stopped {}", job.name));
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            log.lock().unwrap().push(format!("done {}", job.name));
        })
    }

    fn skipped(&self, job: Job, _: RunOptions, reason: SkipReason) -> BoxFuture<'static, ()> {
        self.log
            .lock()
            .unwrap()
            .push(format!("skip {} {reason:?}", job.name));
        Box::pin(async {})
    }
}

/// Serves one "quarter" job (every 15 minutes) with fake runs of `run_for`
/// ms, sends `ticks`, then stops it with `grace` ms; how long the stop took.
async fn serve_fake(
    run_for: u64,
    ticks: &[&str],
    ignore_stop: bool,
    grace: u64,
) -> (Stopped, Vec<String>, std::time::Duration) {
    let mut s = Scheduler::new(2);
    s.load(
        job("quarter", "schedule = \"0 */15 * * * *\""),
        None,
        utc("2026-05-01T00:00:00Z"),
    )
    .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let launcher: Arc<dyn Launcher> = if ignore_stop {
        Arc::new(Stubborn(FakeRuns {
            run_for: std::time::Duration::from_millis(run_for),
            log: log.clone(),
        }))
    } else {
        Arc::new(FakeRuns {
            run_for: std::time::Duration::from_millis(run_for),
            log: log.clone(),
        })
    };
    let (tick_tx, tick_rx) = mpsc::channel(16);
    let (_reload_tx, reload_rx) = mpsc::channel(1);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(serve(
        s,
        tick_rx,
        reload_rx,
        None,
        launcher,
        std::time::Duration::from_millis(grace),
        async move {
            let _ = stop_rx.await;
        },
    ));
    for t in ticks {
        tick_tx.send(utc(t)).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let asked = tokio::time::Instant::now();
    stop_tx.send(()).unwrap();
    let stopped = served.await.unwrap();
    let log = log.lock().unwrap().clone();
    (stopped, log, asked.elapsed())
}

/// Runs that ignore the stop flag (a stage with no stop point).
struct Stubborn(FakeRuns);

impl Launcher for Stubborn {
    fn run(&self, job: Job, _: RunOptions) -> BoxFuture<'static, ()> {
        let opts = RunOptions {
            shutdown: Some(Arc::new(std::sync::atomic::AtomicBool::new(false))),
            ..RunOptions::default()
        };
        self.0.run(job, opts)
    }

    fn skipped(&self, job: Job, opts: RunOptions, reason: SkipReason) -> BoxFuture<'static, ()> {
        self.0.skipped(job, opts, reason)
    }
}

// The loop's tests run on tokio's paused clock: runs of minutes and grace
// periods of the daemon's real size, measured exactly.
#[tokio::test(start_paused = true)]
async fn the_loop_starts_due_runs_and_skips_an_overlapping_firing() {
    let ticks = [
        "2026-05-01T00:14:59Z",
        "2026-05-01T00:15:00Z",
        "2026-05-01T00:30:00Z",
    ];
    // Runs of 20 minutes: the 00:30 firing finds the 00:15 run going.
    let (stopped, log, _) = serve_fake(20 * 60_000, &ticks, false, 120_000).await;
    assert_eq!(
        log,
        [
            "start quarter",
            "skip quarter StillRunning",
            "stopped quarter"
        ]
    );
    assert_eq!(
        stopped,
        Stopped {
            finished_in_grace: 1,
            dropped: 0
        }
    );
}

#[tokio::test(start_paused = true)]
async fn graceful_stop_waits_for_a_run_then_drops_it_after_the_grace_period() {
    let ticks = ["2026-05-01T00:15:00Z"];
    let (minute, grace) = (60_000, 120_000);
    // A 10-minute run that stops at its next "page" (every 10 ms) ends within
    // the 2-minute grace period, at once.
    let (stopped, log, waited) = serve_fake(10 * minute, &ticks, false, grace).await;
    assert_eq!(
        stopped,
        Stopped {
            finished_in_grace: 1,
            dropped: 0
        }
    );
    assert_eq!(log, ["start quarter", "stopped quarter"]);
    assert!(waited <= std::time::Duration::from_millis(10), "{waited:?}");
    // A run without stop points, ending by itself after 100 s, is waited for.
    let (stopped, log, waited) = serve_fake(100_000, &ticks, true, grace).await;
    assert_eq!(
        stopped,
        Stopped {
            finished_in_grace: 1,
            dropped: 0
        }
    );
    assert_eq!(log, ["start quarter", "done quarter"]);
    assert!(waited < std::time::Duration::from_secs(100), "{waited:?}");
    // One that would take 10 minutes is dropped when the 2 minutes are over.
    let (stopped, log, waited) = serve_fake(10 * minute, &ticks, true, grace).await;
    assert_eq!(
        stopped,
        Stopped {
            finished_in_grace: 0,
            dropped: 1
        }
    );
    assert_eq!(log, ["start quarter"]);
    assert!(
        waited >= std::time::Duration::from_secs(120)
            && waited <= std::time::Duration::from_millis(120_010),
        "{waited:?}"
    );
}

/// The loop's reloads fed by the folder's watcher: a job file added is
/// scheduled, and once it turns invalid it no longer runs.
#[tokio::test]
async fn a_job_file_added_then_broken_is_picked_up_without_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let launcher: Arc<dyn Launcher> = Arc::new(FakeRuns {
        run_for: std::time::Duration::ZERO,
        log: log.clone(),
    });
    let (tick_tx, tick_rx) = mpsc::channel(16);
    let (reload_tx, reload_rx) = mpsc::channel(4);
    let every = std::time::Duration::from_millis(40);
    let watcher = tokio::spawn(super::watch::watch_jobs_dir(
        dir.path().to_path_buf(),
        every,
        reload_tx,
    ));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(serve(
        Scheduler::new(2),
        tick_rx,
        reload_rx,
        Some(dir.path().to_path_buf()),
        launcher,
        std::time::Duration::from_millis(100),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let settle = || tokio::time::sleep(std::time::Duration::from_millis(400));
    let tick = |secs: i64| tick_tx.send(Utc::now() + Duration::seconds(secs));

    settle().await; // the watcher's first look: an empty folder
    let file = job_file(dir.path(), "every-second", "schedule = \"* * * * * *\"");
    settle().await;
    tick(3).await.unwrap();
    settle().await;
    assert_eq!(
        *log.lock().unwrap(),
        ["start every-second", "done every-second"]
    );

    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("* * * * * *", "not a cron")).unwrap();
    settle().await;
    tick(6).await.unwrap();
    settle().await;
    assert_eq!(log.lock().unwrap().len(), 2, "{:?}", log.lock().unwrap());

    stop_tx.send(()).unwrap();
    served.await.unwrap();
    watcher.abort();
}
