//! Freshness and config changes: a metadata value edited without any list
//! change is picked up by the refresh budget within its bound; a newly named
//! `record_data` key or metadata field is filled from the stored raw JSON
//! without a single request for it.

use super::{cell, ingest_committed, settings, store};
use crate::sandbox_api::start;
use contract_recon::ingest::{IngestMode, RefreshBudget};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_without_a_list_change_is_picked_up_within_the_refresh_bound() {
    let sb = start(100, 1000).await;
    let mut s = settings(&sb, 500);
    s.key_pointer_fields = vec!["contract_value".into()];
    s.refresh_per_run = RefreshBudget::Percent(25.0);
    let (store, prefix) = store();
    let first = ingest_committed(&s, store.clone(), &prefix, IngestMode::Full)
        .await
        .unwrap();
    assert_eq!(first.stats.key_pointers_fetched, 100);
    assert_eq!(first.stats.key_pointers_refreshed, 0, "all fetched as new");
    // One value changes; nothing the list shows moves (no new list item, no
    // last_updated_on bump), so only the refresh budget can see it.
    assert!(sb
        .state()
        .set_key_pointer_value("T-77", "contract_value", json!(4242)));
    // 25% per run: every value re-verified within ceil(100 / 25) = 4 runs.
    let mut picked_up_in = None;
    for run in 1..=4 {
        let out = ingest_committed(&s, store.clone(), &prefix, IngestMode::Incremental)
            .await
            .unwrap();
        assert_eq!(out.stats.contracts_fetched, 0, "the list shows no change");
        assert_eq!(out.stats.requests.key_pointers, 25, "the budget, no more");
        assert_eq!(out.stats.key_pointers_refreshed, 25);
        assert!(out.stats.oldest_key_pointers_age_secs.is_some());
        let value = cell(&out.snapshot, "key_pointers.contract_value", "T-77");
        if value.as_deref() == Some("4242") && picked_up_in.is_none() {
            picked_up_in = Some(run);
        }
    }
    let run = picked_up_in.expect("the edit is picked up within 4 runs");
    println!("metadata edit without a list change picked up on incremental run {run} of at most 4");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_data_key_named_between_runs_is_filled_without_a_refetch() {
    let sb = start(30, 1000).await;
    for i in [3, 6, 9] {
        let mut c = sb.state().contract(&format!("T-{i}")).unwrap();
        let data = &mut c.contract.external_metadata.record_data;
        data.insert("vendor_id".into(), json!(format!("V-{i}")));
        sb.state().upsert_contract(c);
    }
    let mut s = settings(&sb, 500);
    s.key_pointer_fields = vec!["contract_value".into()];
    let (store, prefix) = store();
    ingest_committed(&s, store.clone(), &prefix, IngestMode::Full)
        .await
        .unwrap();
    let before = sb.state().counters();
    s.record_data_keys.push("vendor_id".into());
    let out = ingest_committed(&s, store, &prefix, IngestMode::Incremental)
        .await
        .unwrap();
    let after = sb.state().counters();
    assert_eq!(
        after.key_pointers_requests - before.key_pointers_requests,
        0,
        "no metadata request"
    );
    assert_eq!(
        after.list_requests - before.list_requests,
        2,
        "the incremental page (empty) and the live count only"
    );
    let col = "external_metadata.record_data.vendor_id";
    assert_eq!(cell(&out.snapshot, col, "T-6").as_deref(), Some("V-6"));
    assert_eq!(cell(&out.snapshot, col, "T-4"), None);
    assert_eq!(
        cell(
            &out.snapshot,
            "external_metadata.record_data.po_number",
            "T-9"
        )
        .as_deref(),
        Some("PO-9")
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metadata_field_named_between_runs_is_filled_without_a_refetch() {
    let sb = start(30, 1000).await;
    let mut s = settings(&sb, 500);
    s.key_pointer_fields = vec!["contract_value".into()];
    let (store, prefix) = store();
    let first = ingest_committed(&s, store.clone(), &prefix, IngestMode::Full)
        .await
        .unwrap();
    assert_eq!(first.stats.requests.key_pointers, 30);
    s.key_pointer_fields.push("expiry_date".into());
    let out = ingest_committed(&s, store, &prefix, IngestMode::Incremental)
        .await
        .unwrap();
    assert_eq!(out.stats.requests.key_pointers, 0, "no refetch");
    let df = &out.snapshot;
    assert_eq!(
        cell(df, "key_pointers.expiry_date", "T-5").as_deref(),
        Some("2026-12-31")
    );
    assert_eq!(
        cell(df, "key_pointers.contract_value", "T-5").as_deref(),
        Some("5000")
    );
    sb.shutdown().await;
}
