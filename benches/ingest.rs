//! Ingest benchmark against the sandbox at SpotDraft's 10 requests/s.
//!
//! Prints achieved requests/s (target >= 9.5), 429s (target 0), list requests
//! per 100 contracts (target <= 1), then an incremental run after 1% of the
//! contracts changed, compared with the full walk. `BENCH_CONTRACTS` sets the
//! size (default 100,000: the full walk takes ~100 s at 10/s).
//!
//! Then the limit under load: a run that fetches metadata values for
//! `BENCH_LOAD_CONTRACTS` contracts (default 600; 4 requests in flight) at a
//! configured 10/s against the sandbox's sliding 1-second window, once on a
//! quiet machine and once while two busy-loop processes keep both cores busy.
//! `BENCH_CONTRACTS=0` runs only this part.

use chrono::Utc;
use contract_recon::http::RetryPolicy;
use contract_recon::ingest::{ingest, IngestMode, IngestSettings, RefreshBudget};
use contract_recon::sandbox::{Dataset, Sandbox, SandboxConfig};
use contract_recon::secret::Secret;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStore;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn dataset(n: usize) -> Dataset {
    let t0: chrono::DateTime<Utc> = "2024-01-01T00:00:00Z".parse().unwrap();
    let contracts = (1..=n)
        .map(|i| {
            let created = (t0 + chrono::Duration::minutes(i as i64)).to_rfc3339();
            serde_json::from_value(json!({
                "id": format!("T-{i}"), "created": created, "last_updated_on": created,
                "contract_name": format!("Contract {i}"), "contract_status": "EXECUTED",
                "external_metadata": {"id": format!("E-{i}"), "record_data": {"po_number": format!("PO-{i}")}},
                "key_pointers": [],
            }))
            .unwrap()
        })
        .collect();
    Dataset {
        contracts,
        erp_records: vec![],
        documents: Default::default(),
    }
}

fn settings_for(sb: &Sandbox) -> IngestSettings {
    IngestSettings {
        job: "bench".into(),
        base_url: sb.spotdraft_base_url().parse().unwrap(),
        client_id: Secret::new(sb.credentials().client_id.clone()),
        client_secret: Secret::new(sb.credentials().client_secret.clone()),
        user_email: None,
        page_size: 100,
        requests_per_second: 10,
        max_in_flight: 4,
        request_timeout: Duration::from_secs(30),
        retry: RetryPolicy::default(),
        status_filter: vec![],
        overlap: Duration::ZERO,
        record_data_keys: vec!["po_number".into()],
        key_pointer_fields: vec![],
        fetch_documents: false,
        reconciled_statuses: vec![],
        refresh_per_run: RefreshBudget::Contracts(0),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("BENCH_CONTRACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    if n > 0 {
        walk_and_increment(n).await;
    }
    let load: usize = std::env::var("BENCH_LOAD_CONTRACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    limit_under_load(load, "quiet machine").await;
    let busy = BusyCores::start();
    limit_under_load(load, "both cores kept busy by two other processes").await;
    drop(busy);
}

/// The full walk of `n` contracts, then an incremental run after 1% changed.
async fn walk_and_increment(n: usize) {
    let sb = Sandbox::start(
        SandboxConfig {
            rate_limit_per_sec: 10,
            ..SandboxConfig::default()
        },
        dataset(n),
    )
    .await
    .unwrap();
    let settings = settings_for(&sb);
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let prefix = Path::from("bench");

    let t = Instant::now();
    let full = ingest(&settings, store.clone(), &prefix, IngestMode::Full)
        .await
        .expect("full walk");
    let s = &full.stats;
    println!(
        "full walk: {n} contracts in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    println!(
        "  achieved requests/s: {:.2} (target >= 9.5)",
        s.achieved_requests_per_s
    );
    println!(
        "  429s: {} client / {} sandbox (target 0)",
        s.http.status_429,
        sb.state().counters().rate_limited
    );
    println!(
        "  list requests per 100 contracts: {:.3} (target <= 1)",
        s.requests.list as f64 * 100.0 / n as f64
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let changed = n / 100;
    for i in (1..=n).step_by(100).take(changed) {
        sb.state().touch_contract(&format!("T-{i}"));
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t = Instant::now();
    let inc = ingest(&settings, store, &prefix, IngestMode::Incremental)
        .await
        .expect("incremental walk");
    let i = &inc.stats;
    println!(
        "incremental: {} changed of {n} in {:.1} s",
        i.contracts_fetched,
        t.elapsed().as_secs_f64()
    );
    println!(
        "  requests: {} vs {} for the full walk ({:.2}%), 429s: {}",
        i.http.requests,
        s.http.requests,
        i.http.requests as f64 * 100.0 / s.http.requests.max(1) as f64,
        i.http.status_429
    );
    sb.shutdown().await;
}

/// A run fetching metadata values for `n` contracts at 10/s; prints the
/// achieved rate and the 429s seen by client and sandbox.
async fn limit_under_load(n: usize, label: &str) {
    let sb = Sandbox::start(
        SandboxConfig {
            rate_limit_per_sec: 10,
            ..SandboxConfig::default()
        },
        dataset(n),
    )
    .await
    .unwrap();
    let settings = IngestSettings {
        key_pointer_fields: vec!["po_number".into()],
        reconciled_statuses: vec!["EXECUTED".into()],
        refresh_per_run: RefreshBudget::Contracts(0),
        ..settings_for(&sb)
    };
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let t = Instant::now();
    let run = ingest(&settings, store, &Path::from("bench"), IngestMode::Full)
        .await
        .expect("walk with metadata values");
    let s = &run.stats;
    println!(
        "limit, {label}: {} requests in {:.1} s = {:.2} requests/s (target >= 9.5), 429s: {} client / {} sandbox (target 0)",
        s.http.requests,
        t.elapsed().as_secs_f64(),
        s.achieved_requests_per_s,
        s.http.status_429,
        sb.state().counters().rate_limited
    );
    sb.shutdown().await;
}

/// Two busy-loop processes, one per core, killed on drop.
struct BusyCores(Vec<std::process::Child>);

impl BusyCores {
    fn start() -> Self {
        let spawn = || {
            std::process::Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
                .expect("a busy-loop process")
        };
        BusyCores(vec![spawn(), spawn()])
    }
}

impl Drop for BusyCores {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
