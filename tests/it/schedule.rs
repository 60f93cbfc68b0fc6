//! `contract-recon schedule` as a process: its heartbeat fires a job, the
//! lease keeps two daemons on one job apart, and SIGTERM stops it cleanly.

use crate::common::demo_job_in;
use contract_recon::runner::history::{RunRecord, RunStatus};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the daemon if the test ends before it stopped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_daemon(jobs: &Path) -> Daemon {
    Daemon(
        Command::new(env!("CARGO_BIN_EXE_contract-recon"))
            .args([
                "schedule",
                "--jobs",
                jobs.to_str().unwrap(),
                "--grace-secs",
                "30",
            ])
            .env("CONTRACT_RECON_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn records(dir: &Path) -> Vec<RunRecord> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
        .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
        .collect()
}

fn stop(mut daemon: Daemon) -> String {
    let pid = daemon.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if let Some(status) = daemon.0.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            let mut out = String::new();
            std::io::Read::read_to_string(daemon.0.stdout.as_mut().unwrap(), &mut out).unwrap();
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not stop within its grace period"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_daemons_on_one_job_never_overlap_and_both_stop_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let jobs = tmp.path().join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    let path = demo_job_in(&jobs, &tmp.path().join("out"));
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("schedule = \"0 30 2 * * *\"", "schedule = \"* * * * * *\"");
    std::fs::write(&path, text).unwrap();
    std::fs::write(jobs.join("broken.toml"), "[job]\nname = \"broken\"\n").unwrap();

    let (first, second) = (start_daemon(&jobs), start_daemon(&jobs));
    let history = tmp.path().join("out/_history/demo");
    let deadline = Instant::now() + Duration::from_secs(120);
    let seen = loop {
        let seen: Vec<RunStatus> = records(&history).iter().map(|r| r.outcome).collect();
        if seen.contains(&RunStatus::Ok) && seen.contains(&RunStatus::RefusedByLease) {
            break seen;
        }
        assert!(Instant::now() < deadline, "outcomes so far: {seen:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        seen.contains(&RunStatus::Skipped),
        "a firing during a run is skipped: {seen:?}"
    );
    // Never two runs of the job at once: the finished runs' spans are disjoint.
    let mut spans: Vec<_> = records(&history)
        .into_iter()
        .filter(|r| r.outcome == RunStatus::Ok)
        .map(|r| (r.started_at, r.finished_at))
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "{spans:?}");
    }
    for daemon in [first, second] {
        let out = stop(daemon);
        assert!(out.contains("stopped:"), "{out}");
    }
}
