//! Integration tests: ingest against the sandbox SpotDraft API over loopback.
//! The submodules cover a live workspace: contracts that vanish, bodies cut
//! short, what is fetched and refreshed, deletions, and resuming.

mod deletions;
mod fresh;
mod live;
mod resume;

use crate::sandbox_api::start;
use chrono::{DateTime, Utc};
use contract_recon::http::RetryPolicy;
use contract_recon::ingest::{
    commit_watermark, ingest, ingest_with_control, IngestError, IngestMode, IngestOutcome,
    IngestSettings, RefreshBudget, StateStore, WalkControl,
};
use contract_recon::sandbox::faults::PageShift;
use contract_recon::sandbox::Sandbox;
use contract_recon::secret::Secret;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use polars::prelude::*;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// An ingest whose watermark is committed, as the runner does once the run's
/// reports are published.
pub async fn ingest_committed(
    s: &IngestSettings,
    store: Arc<dyn ObjectStore>,
    prefix: &Path,
    mode: IngestMode,
) -> Result<IngestOutcome, IngestError> {
    let out = ingest(s, store.clone(), prefix, mode).await?;
    commit_watermark(store, prefix, &s.job, &out.pending).await?;
    Ok(out)
}

/// Settings against `sb` at `rps`: no metadata fields, no documents, no refresh.
pub fn settings(sb: &Sandbox, rps: u32) -> IngestSettings {
    IngestSettings {
        job: "nightly".into(),
        base_url: sb.spotdraft_base_url().parse().unwrap(),
        client_id: Secret::new(sb.credentials().client_id.clone()),
        client_secret: Secret::new(sb.credentials().client_secret.clone()),
        user_email: None,
        page_size: 100,
        requests_per_second: rps,
        max_in_flight: 4,
        request_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(50),
            max_total: Duration::from_secs(20),
        },
        status_filter: vec![],
        overlap: Duration::ZERO,
        record_data_keys: vec!["po_number".into()],
        key_pointer_fields: vec![],
        fetch_documents: false,
        reconciled_statuses: vec![],
        refresh_per_run: RefreshBudget::Contracts(0),
    }
}

/// The error as `main` prints it: the whole chain, `{:#}`.
pub fn chain(err: IngestError) -> String {
    format!("{:#}", anyhow::Error::from(err))
}

/// An in-memory output store and prefix.
pub fn store() -> (Arc<dyn ObjectStore>, Path) {
    (Arc::new(InMemory::new()), Path::from("runs"))
}

/// A text column.
pub fn strings(df: &DataFrame, col: &str) -> Vec<Option<String>> {
    df.column(col)
        .unwrap()
        .as_materialized_series()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

/// The value of `col` in the row of contract `id`.
pub fn cell(df: &DataFrame, col: &str, id: &str) -> Option<String> {
    let ids = strings(df, "id");
    let i = ids
        .iter()
        .position(|v| v.as_deref() == Some(id))
        .unwrap_or_else(|| panic!("{id} is not in the snapshot"));
    strings(df, col)[i].clone()
}

/// Ids of rows not marked deleted.
pub fn live_ids(df: &DataFrame) -> BTreeSet<String> {
    let ids = strings(df, "id");
    let deleted = strings(df, "deleted_at");
    ids.into_iter()
        .zip(deleted)
        .filter(|(_, d)| d.is_none())
        .map(|(i, _)| i.unwrap())
        .collect()
}

/// The sandbox's contracts created before `t`.
pub fn truth_before(sb: &Sandbox, t: DateTime<Utc>) -> BTreeSet<String> {
    sb.state()
        .contracts()
        .into_iter()
        .filter(|c| c.contract.created.parse::<DateTime<Utc>>().unwrap() < t)
        .map(|c| c.contract.id.composite().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_walk_is_exact_while_pages_shift() {
    let sb = start(1200, 1000).await;
    sb.faults().update(|f| {
        f.spotdraft.page_shift = Some(PageShift {
            mutations: 15,
            every_n_list_requests: 3,
        })
    });
    let (store, prefix) = store();
    let out = ingest(&settings(&sb, 500), store, &prefix, IngestMode::Full)
        .await
        .unwrap();
    assert_eq!(
        sb.faults().page_shift_done(),
        15,
        "the mutations happened during the walk"
    );
    let run_start = out.stats.run_start.unwrap();
    assert_eq!(live_ids(&out.snapshot), truth_before(&sb, run_start));
    assert!(out.stats.windows_rewalked > 0, "{:?}", out.stats);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_full_walk_costs_one_list_request_per_page_plus_the_live_count() {
    let sb = start(350, 1000).await;
    let (store, prefix) = store();
    let out = ingest(&settings(&sb, 500), store, &prefix, IngestMode::Auto)
        .await
        .unwrap();
    assert_eq!(out.stats.requests.list, 4 + 1);
    assert_eq!(sb.state().counters().list_requests, 4 + 1);
    assert_eq!(out.stats.live_count_mismatch, Some(0));
    assert_eq!(out.snapshot.height(), 350);
    assert_eq!(
        strings(&out.snapshot, "external_metadata.record_data.po_number")[2].as_deref(),
        None
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_429_bursts_and_5xx() {
    let sb = start(250, 1000).await;
    sb.faults().update(|f| {
        f.spotdraft.http.burst_429 = 2;
        f.spotdraft.http.retry_after_secs = Some(1);
    });
    let (store, prefix) = store();
    let s = settings(&sb, 500);
    let first = ingest(&s, store.clone(), &prefix, IngestMode::Full)
        .await
        .unwrap();
    assert_eq!(first.stats.http.status_429, 2);
    assert_eq!(live_ids(&first.snapshot).len(), 250);
    // No Retry-After this time, and random 5xx.
    sb.faults().update(|f| {
        f.spotdraft.http.burst_429 = 3;
        f.spotdraft.http.retry_after_secs = None;
        f.spotdraft.http.error_rate = 0.2;
    });
    let second = ingest(&s, store, &prefix, IngestMode::Full).await.unwrap();
    assert!(second.stats.http.retries >= 3, "{:?}", second.stats.http);
    assert_eq!(live_ids(&second.snapshot).len(), 250);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_fails_at_once() {
    let sb = start(10, 1000).await;
    let mut s = settings(&sb, 500);
    s.client_secret = Secret::new("wrong");
    let (store, prefix) = store();
    let err = ingest(&s, store, &prefix, IngestMode::Full)
        .await
        .unwrap_err();
    let err = chain(err);
    assert!(
        err.contains("401") && err.contains("check client-id/client-secret"),
        "{err}"
    );
    assert!(!err.contains("wrong"), "the secret leaked: {err}");
    assert_eq!(sb.state().counters().spotdraft_requests, 1, "no retry");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_then_bad_json_then_resume_fetches_only_missing_pages() {
    let sb = start(650, 1000).await;
    let (store, prefix) = store();
    let s = settings(&sb, 500);
    let budget = WalkControl {
        page_budget: Some(3),
        ..WalkControl::default()
    };
    let err = ingest_with_control(&s, store.clone(), &prefix, IngestMode::Full, &budget)
        .await
        .unwrap_err();
    assert!(chain(err).contains("stopped after 3"));
    // Page 4 answers 200 with broken JSON on all 8 attempts the policy allows:
    // the run fails naming the page, and keeps pages 1..=3.
    sb.faults().update(|f| f.spotdraft.malformed_json_next = 8);
    let err = ingest(&s, store.clone(), &prefix, IngestMode::Auto)
        .await
        .unwrap_err();
    let err = chain(err);
    assert!(
        err.contains("malformed JSON") && err.contains("page=4") && err.contains("page 4)"),
        "{err}"
    );
    assert_eq!(sb.state().counters().list_requests, 3 + 8, "{err}");
    let state = StateStore::new(store.clone(), &prefix, "nightly")
        .load()
        .await
        .unwrap();
    assert_eq!(
        state.watermark, None,
        "a failed run does not move the watermark"
    );
    assert!(
        store
            .head(&Path::from("runs/snapshots/nightly/snapshot.parquet"))
            .await
            .is_err(),
        "no snapshot yet"
    );
    let out = ingest(&s, store.clone(), &prefix, IngestMode::Auto)
        .await
        .unwrap();
    assert!(out.stats.resumed);
    assert_eq!(
        out.stats.requests.list,
        4 + 1,
        "pages 4..=7 again, 1..=3 from the spill, and the live count"
    );
    assert_eq!(live_ids(&out.snapshot).len(), 650);
    let states = StateStore::new(store.clone(), &prefix, "nightly");
    let state = states.load().await.unwrap();
    assert_eq!(
        state.watermark, None,
        "the watermark waits for the runner's commit"
    );
    assert!(state.progress.is_none());
    commit_watermark(store, &prefix, "nightly", &out.pending)
        .await
        .unwrap();
    assert_eq!(states.load().await.unwrap().watermark, out.stats.run_start);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_run_merges_one_percent_of_changes() {
    let sb = start(1000, 1000).await;
    let (store, prefix) = store();
    let mut s = settings(&sb, 500);
    s.key_pointer_fields = vec!["contract_value".into()];
    let full = ingest_committed(&s, store.clone(), &prefix, IngestMode::Full)
        .await
        .unwrap();
    assert_eq!(
        full.stats.requests.key_pointers, 1000,
        "every new contract gets its values once"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let changed: Vec<String> = (1..=10).map(|i| format!("T-{}", i * 97)).collect();
    for id in &changed {
        let mut c = sb.state().contract(id).unwrap();
        c.contract.contract_status = "VOIDED".into();
        c.contract.last_updated_on = Some(Utc::now().to_rfc3339());
        sb.state().upsert_contract(c);
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let inc = ingest(&s, store, &prefix, IngestMode::Auto).await.unwrap();
    assert_eq!(inc.stats.contracts_fetched, 10);
    assert_eq!(
        inc.stats.requests.list, 2,
        "one page plus the live-count check"
    );
    assert_eq!(inc.stats.requests.key_pointers, 10);
    assert_eq!(inc.stats.live_count_mismatch, Some(0));
    // The merged snapshot equals the sandbox's truth.
    let ids = strings(&inc.snapshot, "id");
    let statuses = strings(&inc.snapshot, "contract_status");
    let truth = sb.state().contracts();
    assert_eq!(ids.len(), truth.len());
    for c in truth {
        let k = ids
            .iter()
            .position(|i| i.as_deref() == Some(c.contract.id.composite()))
            .unwrap();
        assert_eq!(
            statuses[k].as_deref(),
            Some(c.contract.contract_status.as_str()),
            "{}",
            c.contract.id
        );
    }
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_contracts_are_marked_the_same_night_not_dropped() {
    let sb = start(120, 1000).await;
    let (store, prefix) = store();
    let s = settings(&sb, 500);
    ingest_committed(&s, store.clone(), &prefix, IngestMode::Full)
        .await
        .unwrap();
    for id in ["T-5", "T-50"] {
        sb.state().remove_contract(id).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let inc = ingest(&s, store.clone(), &prefix, IngestMode::Incremental)
        .await
        .unwrap();
    assert_eq!(
        inc.stats.live_count_mismatch,
        Some(-2),
        "the cheap count notices"
    );
    assert_eq!(inc.stats.contracts_deleted, 2, "and the search finds them");
    assert_eq!(inc.snapshot.height(), 120);
    let live = live_ids(&inc.snapshot);
    assert_eq!(live.len(), 118);
    assert!(!live.contains("T-5") && !live.contains("T-50"));
    let full = ingest(&s, store, &prefix, IngestMode::Full).await.unwrap();
    assert_eq!(
        full.stats.contracts_deleted, 0,
        "nothing left for a full walk"
    );
    assert_eq!(live_ids(&full.snapshot), live);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limiter_holds_the_sandbox_rate() {
    // 1 list page + the live count + 24 metadata calls at 10/s: ~2.5 s. The sandbox
    // allows 11/s so that network jitter between two evenly spaced requests cannot
    // put 11 arrivals into one second and flake the test; the benchmark measures the
    // client against the exact 10/s limit (0 429s over 1,000 requests).
    let sb = start(24, 11).await;
    let (store, prefix) = store();
    let mut s = settings(&sb, 10);
    s.key_pointer_fields = vec!["contract_value".into()];
    let out = ingest(&s, store, &prefix, IngestMode::Full).await.unwrap();
    assert_eq!(out.stats.http.requests, 26);
    assert_eq!(sb.state().counters().rate_limited, 0);
    assert_eq!(out.stats.http.status_429, 0);
    assert!(
        out.stats.achieved_requests_per_s <= 10.5,
        "{}",
        out.stats.achieved_requests_per_s
    );
    assert!(out.stats.elapsed_ms >= 2300, "{}", out.stats.elapsed_ms);
    sb.shutdown().await;
}
