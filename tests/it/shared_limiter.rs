//! Two jobs on one SpotDraft workspace, run at once in one process, share the
//! workspace's limiter: the sandbox, which counts requests per workspace in a
//! sliding one-second window, never answers 429.

use crate::common::{demo_job_in, repo};
use contract_recon::job::{load_job, Job, SpotDraftTarget};
use contract_recon::runner::{run_job, RunOptions};
use contract_recon::sandbox::{Dataset, Sandbox, SandboxConfig};
use contract_recon::secret::Secret;
use std::path::Path;
use std::time::Instant;

/// The demo job, output under `dir/out`, on `sandbox`'s workspace at 15/s,
/// without documents.
fn job_on(dir: &Path, name: &str, sandbox: &Sandbox) -> Job {
    std::fs::create_dir_all(dir).unwrap();
    let mut job = load_job(&demo_job_in(dir, &dir.join("out"))).unwrap();
    let creds = sandbox.credentials().clone();
    job.name = name.into();
    job.spotdraft = SpotDraftTarget::Live {
        base_url: url::Url::parse(&sandbox.spotdraft_base_url()).unwrap(),
        client_id: Secret::new(creds.client_id),
        client_secret: Secret::new(creds.client_secret),
        user_email: None,
    };
    job.fetch.requests_per_second = 60;
    job.fetch.fetch_documents = false;
    job
}

/// The sandbox allows 80 requests per second per workspace (SpotDraft: 10; the
/// same rule, faster); each job asks for 60. Two jobs with a limiter each would
/// send 120/s and meet 429s; sharing one, they send 60/s together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_jobs_on_one_workspace_stay_within_its_limit_together() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = Dataset::load(&repo().join("fixtures/demo")).unwrap();
    let config = SandboxConfig {
        rate_limit_per_sec: 80,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(config, dataset).await.unwrap();
    let job_a = job_on(&tmp.path().join("a"), "demo-a", &sandbox);
    let job_b = job_on(&tmp.path().join("b"), "demo-b", &sandbox);
    let before = sandbox.state().counters();
    let start = Instant::now();
    let (a, b) = tokio::join!(
        run_job(&job_a, RunOptions::default()),
        run_job(&job_b, RunOptions::default())
    );
    let elapsed = start.elapsed().as_secs_f64();
    let (a, b) = (a.unwrap(), b.unwrap());
    let after = sandbox.state().counters();
    let requests = after.spotdraft_requests - before.spotdraft_requests;
    assert_eq!(
        after.rate_limited, before.rate_limited,
        "429s from the sandbox"
    );
    assert_eq!(
        a.summary.ingestion.http.status_429 + b.summary.ingestion.http.status_429,
        0
    );
    assert!(
        requests >= 20,
        "both jobs walked the workspace: {requests} requests"
    );
    // Evenly spaced at 60/s from the first request: (n - 1) / 60 s at least.
    let combined = (requests - 1) as f64 / elapsed;
    assert!(
        combined <= 61.0,
        "{requests} requests in {elapsed:.2}s: {combined:.1}/s"
    );
    eprintln!("{requests} requests in {elapsed:.2}s ({combined:.1}/s combined)");
}
