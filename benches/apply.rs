//! Apply benchmark against the sandbox ERP, which enforces exactly the limit
//! (`erp.rate_limit_per_sec`: any sliding 1-second window).
//!
//! Prints, for single writes and for the bulk endpoint: achieved writes/s
//! against the limit (target >= 95%), 429s (target 0), wall time. Then the
//! peak memory while a document streams from SpotDraft's download (sandbox)
//! into the ERP upload, for a small and a large document (target: the same).
//! `BENCH_UPDATES` (default 10,000), `BENCH_ERP_RPS` (200), `BENCH_BATCH`
//! (100), `BENCH_DOC_MB` (200) and `BENCH_SMALL_DOC_MB` (20) set the sizes.

use bytes::Bytes;
use contract_recon::erp::rest::{ErpAuth, RestSink, RestSinkConfig};
use contract_recon::erp::sink::{
    DocumentStream, DocumentUpload, ErpSink, FieldUpdate, OpenDocument, WriteOutcome,
};
use contract_recon::http::{RetryPolicy, Throttle};
use contract_recon::sandbox::dataset::ErpRecord;
use contract_recon::sandbox::{Dataset, Sandbox, SandboxConfig};
use contract_recon::secret::Secret;
use contract_recon::spotdraft::model::ContractId;
use contract_recon::spotdraft::{ClientConfig, SpotDraftClient};
use futures::StreamExt;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The journal's overhead: `n` field updates through the sink alone (8 in
/// flight, as the apply stage's lane), then as `n` planned actions through the
/// apply stage, which journals each completed batch (`batch_size` 50, the
/// default) to an output store: in memory, then a local folder. The ERP is
/// unlimited here, so the sink's own work is as small as it gets and the
/// journal's share as large.
async fn journal_overhead(sb: &Sandbox, n: usize) {
    use contract_recon::apply::execute::{execute_plan, ApplyContext};
    use contract_recon::apply::keys::{action_key, content_hash};
    use contract_recon::apply::spotdraft::SpotDraftSide;
    use contract_recon::apply::{Action, ActionKind, JournalView};
    use contract_recon::job::ApplySettings;

    let fast = sink(sb, 1_000_000);
    let t = Instant::now();
    let applied = futures::stream::iter(1..=n)
        .map(|i| {
            let s = fast.clone();
            async move { s.update_fields(&update(i, "plain")).await }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .iter()
        .filter(|o| matches!(o, WriteOutcome::Applied { .. }))
        .count();
    let plain = t.elapsed();
    println!(
        "journal overhead: sink alone, {n} single writes, 8 in flight: {:.2} s ({:.0} writes/s), applied {applied}",
        plain.as_secs_f64(),
        n as f64 / plain.as_secs_f64()
    );
    let settings = ApplySettings {
        max_actions_per_run: usize::MAX,
        ..ApplySettings::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let stores: Vec<(&str, Arc<dyn object_store::ObjectStore>)> = vec![
        ("in memory", Arc::new(object_store::memory::InMemory::new())),
        (
            "local folder",
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap()),
        ),
    ];
    for (run, (label, store)) in stores.into_iter().enumerate() {
        let tag = format!("journal{run}");
        let actions: Vec<Action> = (1..=n)
            .map(|i| {
                let mut a = Action {
                    kind: ActionKind::UpdateErpFields,
                    erp_record_id: Some(format!("E-{i}")),
                    contract_id: Some(format!("T-{i}")),
                    fields: [("status".to_string(), format!("{tag}-{i}"))].into(),
                    document_sha256: None,
                    if_match: None,
                    reason: None,
                    drift_kinds: Default::default(),
                    drift_ids: Default::default(),
                    key: String::new(),
                    generation: 0,
                };
                a.key = action_key(&content_hash("bench", &a), 0);
                a
            })
            .collect();
        let ctx = ApplyContext {
            job: "bench",
            plan_run_id: &tag,
            apply_id: &tag,
            approved_by: None,
            force: false,
            bulk: false,
            max_in_flight: 8,
            settings: &settings,
            store,
            prefix: object_store::path::Path::from("out"),
            create: None,
        };
        let journal = JournalView::from_entries(Vec::new());
        let t = Instant::now();
        let done = execute_plan(&actions, &journal, &fast, &SpotDraftSide(None), &ctx)
            .await
            .unwrap();
        let took = t.elapsed();
        let applied = done
            .results
            .iter()
            .filter(|r| r.outcome == "applied")
            .count();
        println!(
            "journal overhead: apply stage, {n} actions, journal {label} ({} batches): {:.2} s ({:.0} writes/s), {:+.1}% against the sink alone, applied {applied}",
            n.div_ceil(settings.batch_size),
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64(),
            100.0 * (took.as_secs_f64() / plain.as_secs_f64() - 1.0),
        );
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn dataset(records: usize, doc_sizes: &[usize]) -> Dataset {
    let erp_records = (1..=records)
        .map(|i| ErpRecord {
            erp_record_id: format!("E-{i}"),
            status: Some("PENDING".into()),
            version: 1,
            ..ErpRecord::default()
        })
        .collect();
    let mut contracts = vec![];
    let mut documents = BTreeMap::new();
    for (k, size) in doc_sizes.iter().enumerate() {
        let i = k + 1;
        let c = json!({"id": format!("T-{i}"), "created": "2026-01-01T00:00:00Z",
            "last_updated_on": "2026-01-01T00:00:00Z", "contract_name": format!("Doc {i}"),
            "contract_status": "EXECUTED", "document": format!("T-{i}.pdf"), "key_pointers": []});
        contracts.push(serde_json::from_value(c).unwrap());
        let bytes: Vec<u8> = (0..*size).map(|b| (b % 251) as u8).collect();
        documents.insert(format!("T-{i}.pdf"), Bytes::from(bytes));
    }
    Dataset {
        contracts,
        erp_records,
        documents,
    }
}

fn sink(sb: &Sandbox, rps: u32) -> RestSink {
    let auth = ErpAuth::Bearer(Secret::new(sb.credentials().erp_token.clone()));
    let mut config = RestSinkConfig::new(sb.erp_base_url().parse().unwrap(), auth);
    config.requests_per_second = rps;
    config.max_in_flight = 8;
    config.retry = RetryPolicy::default();
    RestSink::new(config).unwrap()
}

fn update(i: usize, run: &str) -> FieldUpdate {
    FieldUpdate {
        erp_record_id: format!("E-{i}"),
        fields: [("status".to_string(), format!("{run}-{i}"))].into(),
        if_match: None,
        idempotency_key: format!("{run}-{i}"),
    }
}

fn report(
    label: &str,
    writes: usize,
    wall: Duration,
    limit: u32,
    s: &RestSink,
    sb: &Sandbox,
    applied: usize,
) {
    let stats = s.throttle().stats().snapshot();
    let requests = stats.requests;
    let secs = wall.as_secs_f64();
    println!(
        "{label}: {writes} writes in {requests} requests, {secs:.1} s: {:.1} writes/s, {:.1} requests/s ({:.1}% of {limit}/s); \
         429s seen by the client {}, answered by the ERP limiter {}; retries {}; applied {applied}",
        writes as f64 / secs,
        requests as f64 / secs,
        100.0 * requests as f64 / secs / f64::from(limit),
        stats.status_429,
        sb.state().counters().erp_rate_limited,
        stats.retries,
    );
}

fn status_kb(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn stream_document(
    sd: &SpotDraftClient,
    erp: &RestSink,
    contract: &str,
    record: &str,
    size: usize,
) {
    // Reset the high-water mark (Linux: "5" to clear_refs), so VmHWM is this transfer's peak.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let rss_before = status_kb("VmRSS:");
    let (client, id) = (sd.clone(), ContractId::new(contract));
    let open: OpenDocument = Arc::new(move || {
        let (client, id) = (client.clone(), id.clone());
        Box::pin(async move {
            let dl = client
                .download_stream(&id)
                .await
                .map_err(std::io::Error::other)?;
            Ok(dl.stream as DocumentStream)
        })
    });
    let upload = DocumentUpload {
        erp_record_id: record.into(),
        file_name: format!("{contract}.pdf"),
        sha256: None,
        length: Some(size as u64),
        open,
        idempotency_key: format!("doc-{contract}-{record}"),
    };
    let t = Instant::now();
    let outcome = erp.attach_document(upload).await;
    let wall = t.elapsed();
    let hwm = status_kb("VmHWM:");
    println!(
        "document {} MB: {:?} in {:.2} s ({:.0} MB/s); RSS before {} MB, peak during {} MB, growth {} MB{}",
        size >> 20,
        matches!(outcome, WriteOutcome::Applied { .. }),
        wall.as_secs_f64(),
        size as f64 / 1048576.0 / wall.as_secs_f64(),
        rss_before >> 10,
        hwm >> 10,
        hwm.saturating_sub(rss_before) >> 10,
        if reset { "" } else { " (VmHWM not reset: peak since start)" },
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = env("BENCH_UPDATES", 10_000);
    let limit = env("BENCH_ERP_RPS", 200) as u32;
    let batch = env("BENCH_BATCH", 100).max(1);
    let big = env("BENCH_DOC_MB", 200) << 20;
    let small = env("BENCH_SMALL_DOC_MB", 20) << 20;
    let config = SandboxConfig {
        rate_limit_per_sec: 1000,
        ..SandboxConfig::default()
    };
    let sb = Sandbox::start(config, dataset(n, &[small, big]))
        .await
        .unwrap();
    sb.faults()
        .update(|f| f.erp.rate_limit_per_sec = Some(limit));
    println!("{n} field updates, ERP limit {limit}/s (exact, sliding 1 s window), sink at {limit}/s, 8 in flight");

    let single = sink(&sb, limit);
    let t = Instant::now();
    let outcomes: Vec<WriteOutcome> = futures::stream::iter(1..=n)
        .map(|i| {
            let s = single.clone();
            async move { s.update_fields(&update(i, "single")).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let applied = outcomes
        .iter()
        .filter(|o| matches!(o, WriteOutcome::Applied { .. }))
        .count();
    report(
        "single writes",
        n,
        t.elapsed(),
        limit,
        &single,
        &sb,
        applied,
    );

    let bulk = sink(&sb, limit);
    let rate_limited_before = sb.state().counters().erp_rate_limited;
    let updates: Vec<FieldUpdate> = (1..=n).map(|i| update(i, "bulk")).collect();
    let t = Instant::now();
    let results: Vec<Vec<WriteOutcome>> = futures::stream::iter(updates.chunks(batch).enumerate())
        .map(|(k, chunk)| {
            let s = bulk.clone();
            async move {
                s.update_fields_batch(chunk, &format!("bulk-batch-{k}"))
                    .await
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let applied = results
        .iter()
        .flatten()
        .filter(|o| matches!(o, WriteOutcome::Applied { .. }))
        .count();
    println!("(ERP limiter 429s before the bulk run: {rate_limited_before})");
    report(
        &format!("bulk, {batch} per request"),
        n,
        t.elapsed(),
        limit,
        &bulk,
        &sb,
        applied,
    );

    sb.faults().update(|f| f.erp.rate_limit_per_sec = None);
    journal_overhead(&sb, n).await;

    let c = sb.credentials();
    let sd = SpotDraftClient::new(
        ClientConfig {
            base_url: sb.spotdraft_base_url().parse().unwrap(),
            client_id: Secret::new(c.client_id.clone()),
            client_secret: Secret::new(c.client_secret.clone()),
            user_email: None,
            request_timeout: Duration::from_secs(600),
        },
        Arc::new(Throttle::new(10, 4)),
        RetryPolicy::default(),
    )
    .unwrap();
    let docs = sink(&sb, 10);
    println!(
        "process RSS with both documents loaded in the sandbox: {} MB",
        status_kb("VmRSS:") >> 10
    );
    stream_document(&sd, &docs, "T-1", "E-1", small).await;
    stream_document(&sd, &docs, "T-2", "E-2", big).await;
    stream_document(&sd, &docs, "T-1", "E-3", small).await;
    sb.shutdown().await;
}
