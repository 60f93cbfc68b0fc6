//! A live workspace: contracts deleted between the walk and their
//! enrichment, executed contracts without a document, list bodies cut short,
//! status filters, and fetching only what reconciliation uses.

use super::{cell, chain, ingest_committed, live_ids, settings, store, strings};
use crate::sandbox_api::{document_bytes, start};
use contract_recon::ingest::{ingest, ingest_with_control, IngestError, IngestMode, WalkControl};
use contract_recon::sandbox::MutationKind;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::time::Duration;

fn deleted_ids(sb: &contract_recon::sandbox::Sandbox) -> BTreeSet<String> {
    sb.state()
        .mutations()
        .into_iter()
        .filter(|m| m.kind == MutationKind::Delete)
        .map(|m| m.contract_id)
        .collect()
}

fn all_ids(sb: &contract_recon::sandbox::Sandbox) -> BTreeSet<String> {
    sb.state()
        .contracts()
        .iter()
        .map(|c| c.contract.id.composite().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_deleted_between_walk_and_enrichment_is_marked_deleted() {
    let sb = start(60, 1000).await;
    let mut s = settings(&sb, 500);
    s.key_pointer_fields = vec!["contract_value".into()];
    sb.faults().update(|f| f.spotdraft.vanish_before_enrich = 2);
    let (store, prefix) = store();
    let out = ingest(&s, store, &prefix, IngestMode::Full).await.unwrap();
    let vanished = deleted_ids(&sb);
    assert_eq!(vanished.len(), 2);
    assert_eq!(out.stats.contracts_vanished, 2);
    assert_eq!(out.stats.contracts_deleted, 2);
    assert_eq!(live_ids(&out.snapshot), all_ids(&sb), "the sandbox's truth");
    let run_start = out.stats.run_start.unwrap().to_rfc3339();
    for id in &vanished {
        let at = cell(&out.snapshot, "deleted_at", id).expect("marked deleted");
        assert!(at.as_str() >= &run_start[..19], "deleted_at is now: {at}");
    }
    assert_eq!(out.stats.key_pointers_fetched, 58);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_resumed_after_a_failure_gets_past_contracts_gone_since() {
    let sb = start(60, 1000).await;
    let mut s = settings(&sb, 500);
    s.key_pointer_fields = vec!["contract_value".into()];
    let (store, prefix) = store();
    let stop = WalkControl {
        enrich_budget: Some(10),
        ..WalkControl::default()
    };
    let err = ingest_with_control(&s, store.clone(), &prefix, IngestMode::Full, &stop)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            IngestError::Stopped {
                done: 10,
                total: 60,
                ..
            }
        ),
        "{err}"
    );
    // Meanwhile T-9 (last in id order, not enriched yet) is deleted, and the
    // next metadata request finds its contract gone too.
    sb.state().remove_contract("T-9").unwrap();
    sb.faults().update(|f| f.spotdraft.vanish_before_enrich = 1);
    let kp_before = sb.state().counters().key_pointers_requests;
    let out = ingest(&s, store, &prefix, IngestMode::Auto).await.unwrap();
    assert!(out.stats.resumed);
    assert_eq!(
        out.stats.enrichment_resumed, 10,
        "the checkpoint is applied"
    );
    assert_eq!(out.stats.contracts_vanished, 1);
    assert_eq!(out.stats.contracts_deleted, 2, "T-9 and the vanished one");
    assert!(cell(&out.snapshot, "deleted_at", "T-9").is_some());
    assert_eq!(live_ids(&out.snapshot), all_ids(&sb));
    assert_eq!(
        sb.state().counters().key_pointers_requests - kp_before,
        60 - 10 - 1,
        "only contracts not checkpointed and not found deleted first"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executed_contract_without_its_document_keeps_a_null_checksum() {
    let sb = start(30, 1000).await;
    let mut t9 = sb.state().contract("T-9").unwrap();
    assert_eq!(t9.contract.contract_status, "EXECUTED");
    t9.document = None;
    sb.state().upsert_contract(t9);
    let mut s = settings(&sb, 500);
    s.fetch_documents = true;
    let (store, prefix) = store();
    let out = ingest(&s, store, &prefix, IngestMode::Full).await.unwrap();
    // EXECUTED: T-3, T-9, T-15, T-21, T-27.
    assert_eq!(out.stats.documents_fetched, 4);
    assert_eq!(out.stats.documents_unavailable, 1);
    assert_eq!(out.stats.contracts_deleted, 0);
    let df = &out.snapshot;
    assert_eq!(cell(df, "document_sha256", "T-9"), None);
    assert!(cell(df, "document_fetched_at", "T-9").is_some());
    assert_eq!(cell(df, "deleted_at", "T-9"), None);
    let sha = hex::encode(Sha256::digest(document_bytes(3)));
    assert_eq!(cell(df, "document_sha256", "T-3"), Some(sha));
    assert_eq!(cell(df, "document_fetched_at", "T-4"), None, "not executed");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_body_cut_short_is_retried_then_the_run_succeeds() {
    let sb = start(250, 1000).await;
    sb.faults().update(|f| f.spotdraft.truncated_body_next = 3);
    let (store, prefix) = store();
    let out = ingest(&settings(&sb, 500), store, &prefix, IngestMode::Full)
        .await
        .unwrap();
    assert_eq!(out.stats.http.malformed_bodies, 3);
    assert_eq!(
        out.stats.requests.list,
        3 + 3 + 1,
        "3 pages, 3 retries, the count"
    );
    assert_eq!(live_ids(&out.snapshot).len(), 250);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stays_cut_short_fails_naming_the_url_once() {
    let sb = start(250, 1000).await;
    sb.faults()
        .update(|f| f.spotdraft.truncated_body_next = 1000);
    let (store, prefix) = store();
    let err = ingest(&settings(&sb, 500), store, &prefix, IngestMode::Full)
        .await
        .unwrap_err();
    let rendered = chain(err);
    let base = sb.spotdraft_base_url();
    assert_eq!(rendered.matches(&base).count(), 1, "{rendered}");
    assert_eq!(rendered.matches("page 1)").count(), 1, "{rendered}");
    assert!(
        rendered.contains("malformed JSON from") && rendered.contains("after 8 attempt(s): "),
        "{rendered}"
    );
    assert_eq!(
        sb.state().counters().list_requests,
        8,
        "the policy's attempts"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_that_left_the_status_filter_is_not_marked_deleted() {
    let sb = start(60, 1000).await;
    let mut s = settings(&sb, 500);
    s.status_filter = vec!["SIGN".into(), "EXECUTED".into()];
    let (store, prefix) = store();
    let first = ingest_committed(&s, store.clone(), &prefix, IngestMode::Full)
        .await
        .unwrap();
    assert_eq!(live_ids(&first.snapshot).len(), 20);
    let set_status = |id: &str, status: &str| {
        let mut c = sb.state().contract(id).unwrap();
        c.contract.contract_status = status.into();
        c.contract.last_updated_on = Some(chrono::Utc::now().to_rfc3339());
        sb.state().upsert_contract(c);
    };
    tokio::time::sleep(Duration::from_millis(1100)).await;
    set_status("T-3", "DRAFT");
    sb.state().remove_contract("T-8").unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let full = ingest_committed(&s, store.clone(), &prefix, IngestMode::Full)
        .await
        .unwrap();
    assert_eq!(full.stats.contracts_left_filter, 1);
    assert_eq!(full.stats.contracts_deleted, 1);
    assert_eq!(cell(&full.snapshot, "deleted_at", "T-3"), None);
    assert_eq!(
        cell(&full.snapshot, "contract_status", "T-3").as_deref(),
        Some("DRAFT")
    );
    assert!(cell(&full.snapshot, "deleted_at", "T-8").is_some());
    // Incremental: the filtered walk misses T-9; the count notices, the search
    // finds it missing, the lookup by id finds it VOIDED.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    set_status("T-9", "VOIDED");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let inc = ingest(&s, store, &prefix, IngestMode::Incremental)
        .await
        .unwrap();
    assert_eq!(inc.stats.live_count_mismatch, Some(-1));
    assert_eq!(
        (inc.stats.contracts_left_filter, inc.stats.contracts_deleted),
        (1, 0)
    );
    assert_eq!(cell(&inc.snapshot, "deleted_at", "T-9"), None);
    assert_eq!(
        cell(&inc.snapshot, "contract_status", "T-9").as_deref(),
        Some("VOIDED")
    );
    let statuses = strings(&inc.snapshot, "contract_status");
    assert_eq!(
        statuses.len(),
        20,
        "no contract outside the filter was added"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_only_for_reconciled_statuses_documents_only_for_executed_in_scope() {
    let sb = start(60, 1000).await;
    let mut s = settings(&sb, 500);
    s.key_pointer_fields = vec!["contract_value".into()];
    s.fetch_documents = true;
    s.reconciled_statuses = vec!["SIGN".into(), "EXECUTED".into()];
    let (store, prefix) = store();
    let out = ingest(&s, store.clone(), &prefix, IngestMode::Full)
        .await
        .unwrap();
    // 10 SIGN (i % 6 == 2) and 10 EXECUTED (i % 6 == 3) of 60.
    assert_eq!(
        (
            out.stats.requests.key_pointers,
            out.stats.requests.documents
        ),
        (20, 10)
    );
    let c = sb.state().counters();
    assert_eq!((c.key_pointers_requests, c.document_requests), (20, 10));
    let df = &out.snapshot;
    assert!(cell(df, "key_pointers_fetched_at", "T-2").is_some());
    assert!(cell(df, "key_pointers.contract_value", "T-3").is_some());
    assert_eq!(
        cell(df, "key_pointers_fetched_at", "T-1"),
        None,
        "REDLINING"
    );
    assert_eq!(
        cell(df, "key_pointers", "T-4"),
        None,
        "ON_HOLD: not reconciled"
    );
    assert!(cell(df, "document_sha256", "T-3").is_some());
    // EXECUTED no longer reconciled: no document requests at all.
    s.reconciled_statuses = vec!["SIGN".into()];
    let prefix = prefix.clone().join("other");
    let out = ingest(&s, store, &prefix, IngestMode::Full).await.unwrap();
    assert_eq!(
        (
            out.stats.requests.key_pointers,
            out.stats.requests.documents
        ),
        (10, 0)
    );
    sb.shutdown().await;
}
