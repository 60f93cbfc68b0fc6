//! The soak: whole jobs, one after another for `SOAK_SECS` seconds (default
//! 1800), each against a fresh sandbox with every HTTP fault at high rates
//! (a fresh seed per job) and an output store failing 2% of its writes. Every
//! job must end as the fault-free run: same drift, same ERP records and
//! versions, distinct idempotency keys == applied writes. Prints its figures.
//!
//! `SOAK_SECS=240 cargo test --test it faults::soak -- --ignored --nocapture`

use super::services::{fault_free_result, result_of, run_until_complete};
use super::{fault_seed, high_faults, job_against_faulty_sandbox};
use contract_recon::sandbox::{FaultCounts, FaultyStore};
use object_store::ObjectStore;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: SOAK_SECS seconds (default 1800)"]
async fn soak_whole_jobs_at_high_fault_rates() {
    let secs = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1800);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let clean = fault_free_result().await;
    let base_seed = fault_seed("soak_whole_jobs_at_high_fault_rates");
    let (mut jobs, mut runs, mut failed_runs) = (0u64, 0u64, 0u64);
    let (mut requests, mut retries, mut store_faults) = (0u64, 0u64, 0u64);
    let mut faults = FaultCounts::default();
    let started = Instant::now();
    while Instant::now() < deadline {
        let seed = base_seed.wrapping_add(jobs);
        let tmp = tempfile::tempdir().unwrap();
        let (job, sandbox) = job_against_faulty_sandbox(tmp.path(), seed).await;
        sandbox.faults().set(high_faults());
        let store = FaultyStore::in_memory();
        store.fail_write_rate(0.02, seed);
        let output: Arc<dyn ObjectStore> = store.clone();
        // At 2% of writes failing, a run of ~100 writes fails more often
        // than not (each failure clear, its rerun resuming): up to 40 runs.
        let done = run_until_complete(&job, &sandbox, Some(output), 40).await;
        let ended = result_of(&done, &sandbox, Some(store.as_ref())).await;
        assert_eq!(ended.drift, clean.drift, "seed {seed}");
        assert_eq!(ended.writes, clean.writes, "seed {seed}");
        assert!(ended.erp == clean.erp, "seed {seed}: the ERP differs");

        jobs += 1;
        runs += done.runs as u64;
        failed_runs += done.failures.len() as u64;
        let counters = sandbox.state().counters();
        requests += counters.spotdraft_requests + counters.erp_requests;
        retries += done.outcome.summary.ingestion.http.retries;
        store_faults += store.injected();
        let c = sandbox.faults().counts();
        faults.server_errors += c.server_errors;
        faults.throttled += c.throttled;
        faults.throttled_retry_after += c.throttled_retry_after;
        faults.slow += c.slow;
        faults.hung += c.hung;
        faults.resets += c.resets;
        faults.truncated += c.truncated;
        sandbox.shutdown().await;
    }
    println!(
        "soak {:.0} s: {jobs} jobs, all equal to the fault-free run; {runs} runs ({failed_runs} failed, rerun); \
         {requests} requests to the sandbox, {} HTTP faults injected {faults:?}; \
         {store_faults} object store write failures; {retries} SpotDraft retries in completed runs",
        started.elapsed().as_secs_f64(),
        faults.total(),
    );
    assert!(jobs > 0);
}
