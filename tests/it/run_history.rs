//! Run history: every run, successful or not, leaves a record that
//! `contract-recon runs` lists newest first.

use crate::common::{cli, demo_job_in};
use contract_recon::job::load_job;
use contract_recon::runner::history::{read_records, RunStatus};
use contract_recon::runner::{job_output, run_job, RunOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successful_and_failed_runs_both_leave_a_record_that_runs_lists() {
    let tmp = tempfile::tempdir().unwrap();
    let path = demo_job_in(tmp.path(), &tmp.path().join("out"));
    let job = load_job(&path).unwrap();
    let done = run_job(&job, RunOptions::default()).await.unwrap();

    let mut broken = job.clone();
    broken
        .extract
        .columns
        .insert("po_number".into(), "PO_NO".into());
    assert!(run_job(&broken, RunOptions::default()).await.is_err());

    let output = job_output(&job).unwrap();
    let records = read_records(output.store.as_ref(), &output.path, &job.name, 10)
        .await
        .unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    let (failed, ok) = (&records[0], &records[1]);
    assert_eq!(ok.outcome, RunStatus::Ok);
    assert_eq!(ok.exit_code, 0);
    assert_eq!(ok.run_id, done.summary.run_id);
    assert_eq!(ok.report.as_deref(), Some(done.report_dir.as_str()));
    assert_eq!(ok.counts.as_ref().unwrap().drift, done.drift_total());
    assert!(ok.finished_at >= ok.started_at);
    assert_eq!(failed.outcome, RunStatus::Failed);
    assert_eq!(failed.exit_code, 1);
    assert!(failed.counts.is_none());
    assert!(
        failed.error.as_deref().unwrap().contains("PO_NO"),
        "{failed:?}"
    );
    // Beside the runs dataset, not inside it.
    assert!(tmp.path().join("out/_history/demo").is_dir());
    assert!(!tmp.path().join("out/runs/job=demo/history").exists());

    let listed = cli(&["runs", path.to_str().unwrap(), "--limit", "5"]);
    assert!(listed.status.success());
    let table = String::from_utf8(listed.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[1].starts_with(&failed.run_id) && lines[1].contains("failed"),
        "{table}"
    );
    assert!(
        lines[2].starts_with(&ok.run_id) && lines[2].contains(" ok "),
        "{table}"
    );

    let one = cli(&["runs", path.to_str().unwrap(), "--limit", "1"]);
    assert_eq!(String::from_utf8(one.stdout).unwrap().lines().count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_told_to_stop_ends_failed_releases_its_lease_and_the_next_run_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let job = load_job(&demo_job_in(tmp.path(), &tmp.path().join("out"))).unwrap();
    // The scheduler's shutdown, raised before the walk's first page.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let opts = RunOptions {
        shutdown: Some(stop),
        ..RunOptions::default()
    };
    let err = run_job(&job, opts).await.unwrap_err();
    assert!(format!("{err:#}").contains("stopped"), "{err:#}");
    // Not refused by a lease left behind: the stopped run released it.
    run_job(&job, RunOptions::default()).await.unwrap();
    let output = job_output(&job).unwrap();
    let outcomes: Vec<RunStatus> = read_records(output.store.as_ref(), &output.path, &job.name, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.outcome)
        .collect();
    assert_eq!(outcomes, [RunStatus::Ok, RunStatus::Failed]);
}
