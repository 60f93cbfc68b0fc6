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
//!
//! `BENCH_WALK_CONTRACTS=1000000` (default 0: skipped) adds the walk's
//! bookkeeping at scale: a full walk (list only) of that many contracts at
//! 1,000 requests/s, the sandbox on its own thread, printing the client's CPU
//! time per page (process CPU minus the sandbox thread's), the state file's
//! size early and late in the walk, and the achieved page rate in each tenth
//! of the walk.

use chrono::Utc;
use contract_recon::http::RetryPolicy;
use contract_recon::ingest::{ingest, IngestMode, IngestSettings, RefreshBudget};
use contract_recon::sandbox::{Dataset, Sandbox, SandboxConfig};
use contract_recon::secret::Secret;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
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
    let walk_n: usize = std::env::var("BENCH_WALK_CONTRACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if walk_n > 0 {
        walk_at_scale(walk_n).await;
    }
    if load == 0 {
        return;
    }
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

/// CPU time (user + system) of this process, from `/proc/self/stat`.
fn process_cpu() -> Duration {
    cpu_from_stat(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

/// CPU time of one thread of this process.
fn thread_cpu(tid: u32) -> Duration {
    cpu_from_stat(
        &std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default(),
    )
}

fn cpu_from_stat(stat: &str) -> Duration {
    // Fields after the command name (which may hold spaces): utime is the
    // 14th field of the line, stime the 15th, in clock ticks (100 per second).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// A full walk of `n` contracts at 1,000 requests/s with the sandbox on a
/// thread of its own.
async fn walk_at_scale(n: usize) {
    let t = Instant::now();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let config = SandboxConfig {
                rate_limit_per_sec: 100_000,
                ..SandboxConfig::default()
            };
            let sb = Sandbox::start(config, dataset(n)).await.unwrap();
            let tid = std::fs::read_link("/proc/thread-self")
                .ok()
                .and_then(|p| p.file_name()?.to_str()?.parse::<u32>().ok())
                .unwrap_or(0);
            ready_tx.send((settings_for(&sb), sb.state(), tid)).unwrap();
            let _ = stop_rx.await;
            sb.shutdown().await;
        });
    });
    let (settings, state, server_tid) = ready_rx.recv().unwrap();
    println!(
        "walk at scale: {n} contracts loaded in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let settings = IngestSettings {
        requests_per_second: 1000,
        max_in_flight: 1,
        ..settings
    };
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let state_path = Path::from("bench/state/bench.json");

    // Samples every 250 ms: list requests so far, the state file's size and
    // the client's CPU time (the process's minus the sandbox thread's).
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let client_cpu = move || process_cpu().saturating_sub(thread_cpu(server_tid));
    let sampler = {
        let (store, state, sampling) = (store.clone(), state.clone(), sampling.clone());
        let state_path = state_path.clone();
        tokio::spawn(async move {
            let mut samples = vec![];
            let t = Instant::now();
            while sampling.load(std::sync::atomic::Ordering::SeqCst) {
                let pages = state.counters().list_requests;
                let size = store.head(&state_path).await.map(|m| m.size).unwrap_or(0);
                samples.push((t.elapsed(), pages, size, client_cpu()));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            samples
        })
    };
    let cpu0 = client_cpu();
    let t = Instant::now();
    let run = ingest(&settings, store, &Path::from("bench"), IngestMode::Full)
        .await
        .expect("full walk");
    let wall = t.elapsed();
    let cpu = client_cpu().saturating_sub(cpu0);
    sampling.store(false, std::sync::atomic::Ordering::SeqCst);
    let samples = sampler.await.unwrap();
    let pages = run.stats.requests.list.max(1);
    println!(
        "  {} list requests in {:.1} s ({:.0} pages/s), {} contracts",
        pages,
        wall.as_secs_f64(),
        pages as f64 / wall.as_secs_f64(),
        run.stats.contracts_fetched
    );
    println!(
        "  client CPU: {:.2} s in all, {:.0} µs per page (the sandbox thread excluded; the merge and snapshot write at the end included)",
        cpu.as_secs_f64(),
        cpu.as_micros() as f64 / pages as f64
    );
    // The walk's own pages: the last list request is the live count after it.
    let walk_pages = pages.saturating_sub(1).max(1);
    let during: Vec<_> = samples
        .iter()
        .filter(|s| s.1 > 0 && s.1 < walk_pages && s.2 > 0)
        .collect();
    if let (Some(first), Some(last)) = (during.first(), during.last()) {
        let largest = during.iter().map(|s| s.2).max().unwrap_or(0);
        println!(
            "  state file (written once per page): {} bytes at page {}, {} bytes at page {}, {} bytes at most",
            first.2, first.1, last.2, last.1, largest
        );
    }
    // Page rate and client CPU per page in each tenth of the walk.
    let (mut rates, mut cpus) = (vec![], vec![]);
    for k in 0..10u64 {
        let (lo, hi) = (walk_pages * k / 10, walk_pages * (k + 1) / 10);
        let a = samples.iter().find(|s| s.1 >= lo.max(1));
        // The first sample at or past the tenth's end (the last one before
        // it would stretch the last tenth over the merge after the walk).
        let b = samples.iter().find(|s| s.1 >= hi);
        if let (Some(a), Some(b)) = (a, b) {
            let (secs, n) = ((b.0 - a.0).as_secs_f64(), b.1.saturating_sub(a.1));
            if secs > 0.0 && n > 0 {
                rates.push(format!("{:.0}", n as f64 / secs));
                cpus.push(format!("{:.0}", (b.3 - a.3).as_micros() as f64 / n as f64));
            }
        }
    }
    println!("  pages/s by tenth of the walk: {}", rates.join(", "));
    println!("  client CPU µs per page by tenth: {}", cpus.join(", "));
    let _ = stop_tx.send(());
    server.join().unwrap();
}
