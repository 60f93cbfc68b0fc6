//! A run stopped mid-walk by the scheduler's shutdown (`RunOptions.shutdown`)
//! fails resumable; the next run continues from the saved page and reports
//! what an uninterrupted run reports.

use crate::common::{demo_job_against_own_sandbox, reported_drift};
use contract_recon::job::Job;
use contract_recon::runner::{run_job, RunOptions, RunOutcome};
use contract_recon::sandbox::Sandbox;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// List pages of 20 at 40 requests/s: the demo's 300 contracts take 15 pages
/// at least, 25 ms apart, so a stop lands between two known pages.
fn paged(mut job: Job) -> Job {
    job.fetch.page_size = 20;
    job.fetch.requests_per_second = 40;
    job.fetch.fetch_documents = false;
    job
}

/// Runs `job`, counting the sandbox's list requests during the run.
async fn run_counting(
    job: &Job,
    sandbox: &Sandbox,
    opts: RunOptions,
) -> (anyhow::Result<RunOutcome>, u64) {
    let before = sandbox.state().counters().list_requests;
    let outcome = run_job(job, opts).await;
    (outcome, sandbox.state().counters().list_requests - before)
}

fn drift_of(outcome: &RunOutcome) -> std::collections::BTreeSet<crate::common::DriftKey> {
    reported_drift(Path::new(&outcome.tables["drift"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_mid_walk_resumes_from_its_saved_page() {
    let tmp = tempfile::tempdir().unwrap();
    let (fresh_dir, stopped_dir) = (tmp.path().join("fresh"), tmp.path().join("stopped"));
    std::fs::create_dir_all(&fresh_dir).unwrap();
    std::fs::create_dir_all(&stopped_dir).unwrap();
    let (job, sandbox) = demo_job_against_own_sandbox(&stopped_dir).await;
    let job = paged(job);
    // The same job over the same workspace, its own output: the uninterrupted run.
    let (mut fresh_job, other) = demo_job_against_own_sandbox(&fresh_dir).await;
    drop(other);
    fresh_job.spotdraft = job.spotdraft.clone();
    let fresh_job = paged(fresh_job);
    let (fresh, fresh_requests) = run_counting(&fresh_job, &sandbox, RunOptions::default()).await;
    let fresh = fresh.unwrap();
    assert!(fresh_requests >= 15, "{fresh_requests} list requests");

    // The shutdown raised once the sandbox has answered 5 list requests of this run.
    let stop = Arc::new(AtomicBool::new(false));
    let start_count = sandbox.state().counters().list_requests;
    let watcher = {
        let (stop, state) = (stop.clone(), sandbox.state());
        tokio::spawn(async move {
            while state.counters().list_requests < start_count + 5 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            stop.store(true, Ordering::SeqCst);
        })
    };
    let opts = RunOptions {
        shutdown: Some(stop),
        ..RunOptions::default()
    };
    let (first, first_requests) = run_counting(&job, &sandbox, opts).await;
    watcher.await.unwrap();
    let err = first.expect_err("the stopped run fails");
    let message = format!("{err:#}");
    assert!(message.contains("walk stopped after"), "{message}");
    assert!(message.contains("the next run resumes it"), "{message}");
    assert!(
        first_requests < fresh_requests,
        "stopped after {first_requests} of {fresh_requests} list requests"
    );

    let (second, second_requests) = run_counting(&job, &sandbox, RunOptions::default()).await;
    let second = second.unwrap();
    assert!(
        second.summary.ingestion.resumed,
        "the second run resumed the walk"
    );
    assert!(
        second_requests < fresh_requests,
        "the resumed run made {second_requests} list requests, a fresh walk {fresh_requests}"
    );
    assert!(
        first_requests + second_requests >= fresh_requests,
        "{first_requests} + {second_requests} list requests for a walk of {fresh_requests}"
    );
    assert!(!drift_of(&fresh).is_empty());
    assert_eq!(drift_of(&second), drift_of(&fresh));
    assert_eq!(
        second.summary.ingestion.contracts_fetched,
        fresh.summary.ingestion.contracts_fetched
    );
    eprintln!(
        "fresh walk {fresh_requests} list requests; stopped after {first_requests}, resumed with {second_requests}"
    );
}
