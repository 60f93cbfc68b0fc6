//! Faulty services and stores, end to end: whole jobs against the sandbox at
//! high fault rates ([`services`]), an output store that fails part-way
//! ([`store`]), a real S3-compatible server in the test process ([`s3`]), and
//! a long soak ([`soak`], ignored; `SOAK_SECS` sets its length).
//!
//! The sandbox draws its faults from a seed; the client must succeed whatever
//! the seed. Tests take it from `FAULT_SEED` when set, else from the clock,
//! and print it, so a failing draw can be replayed.

mod s3;
mod services;
mod soak;
mod store;

use crate::common::{demo_job_in, repo, rest_sink_to};
use contract_recon::http::RetryPolicy;
use contract_recon::job::{Job, SinkSettings, SpotDraftTarget};
use contract_recon::sandbox::dataset::ErpRecord;
use contract_recon::sandbox::{
    Dataset, ErpWrite, FaultsConfig, HttpFaults, Sandbox, SandboxConfig,
};
use contract_recon::secret::Secret;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// The fault seed of this test: `FAULT_SEED`, else drawn from the clock. Printed.
pub fn fault_seed(test: &str) -> u64 {
    let seed = std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
    eprintln!("{test}: FAULT_SEED={seed}");
    seed
}

/// Every HTTP fault at once, about a third of requests in all: 10% 5xx, 5%
/// 429 without and 3% with `Retry-After: 1`, 5% slow (300 ms), 1% hung
/// (until the client's timeout), 5% connections closed mid-body after the
/// handler ran, 5% JSON bodies cut short with a matching length.
pub fn high_rates() -> HttpFaults {
    HttpFaults {
        error_rate: 0.10,
        throttle_rate: 0.05,
        throttle_retry_after_rate: 0.03,
        retry_after_secs: Some(1),
        slow_rate: 0.05,
        slow_ms: 300,
        hang_rate: 0.01,
        hang_ms: 0,
        reset_rate: 0.05,
        truncate_rate: 0.05,
        ..HttpFaults::default()
    }
}

/// [`high_rates`] on both APIs, and three ERP writes applied but answered 502.
pub fn high_faults() -> FaultsConfig {
    let mut config = FaultsConfig::default();
    config.spotdraft.http = high_rates();
    config.erp.http = high_rates();
    config.erp.applied_but_502_next = 3;
    config
}

/// The demo job (output under `tmp/out`) against a sandbox this test owns,
/// drawing its faults from `seed`, applying its corrections to the sandbox's
/// ERP over REST. Timeouts of 2 s end hung requests; 12 attempts with short
/// backoffs ride out a third of requests failing.
pub async fn job_against_faulty_sandbox(tmp: &Path, seed: u64) -> (Job, Sandbox) {
    let mut job = contract_recon::job::load_job(&demo_job_in(tmp, &tmp.join("out"))).unwrap();
    let dataset = Dataset::load(&repo().join("fixtures/demo")).unwrap();
    let config = SandboxConfig {
        rate_limit_per_sec: 1000,
        seed,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(config, dataset).await.unwrap();
    let creds = sandbox.credentials().clone();
    job.spotdraft = SpotDraftTarget::Live {
        base_url: url::Url::parse(&sandbox.spotdraft_base_url()).unwrap(),
        client_id: Secret::new(creds.client_id),
        client_secret: Secret::new(creds.client_secret),
        user_email: None,
    };
    let fetch = &mut job.fetch;
    fetch.requests_per_second = 1000;
    fetch.request_timeout = Duration::from_secs(2);
    fetch.max_attempts = 12;
    fetch.initial_backoff = Duration::from_millis(10);
    fetch.max_backoff = Duration::from_millis(200);
    fetch.max_retry_total = Duration::from_secs(60);
    let mut sink = rest_sink_to(&sandbox, 12);
    if let SinkSettings::Rest(rest) = &mut sink {
        rest.request_timeout = Duration::from_secs(2);
        rest.retry = RetryPolicy {
            max_attempts: 12,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(200),
            max_total: Duration::from_secs(60),
        };
    }
    job.apply.sink = Some(sink);
    (job, sandbox)
}

/// What the ERP holds: every record (fields and version) and its attachments.
pub type ErpState = BTreeMap<String, (ErpRecord, Vec<String>)>;

/// The sandbox ERP's records, versions and attachment checksums.
pub fn erp_state(sandbox: &Sandbox) -> ErpState {
    let state = sandbox.state();
    state
        .erp_records()
        .into_iter()
        .map(|r| {
            let sums = state
                .attachments(&r.erp_record_id)
                .into_iter()
                .map(|a| a.sha256.to_ascii_lowercase())
                .collect();
            (r.erp_record_id.clone(), (r, sums))
        })
        .collect()
}

/// (distinct idempotency keys of applied writes, applied writes) in the ERP's write log.
pub fn applied_writes(writes: &[ErpWrite]) -> (usize, usize) {
    let applied: Vec<_> = writes.iter().filter(|w| w.applied).collect();
    let keys: BTreeSet<_> = applied.iter().map(|w| w.idempotency_key.clone()).collect();
    (keys.len(), applied.len())
}

/// An error and its sources on one line.
pub fn chain(e: &anyhow::Error) -> String {
    format!("{e:#}")
}
