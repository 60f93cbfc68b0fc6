//! Deletions found the same night, in few requests, and a snapshot that
//! equals the sandbox's truth while pages shift and contracts vanish.

use super::{ingest_committed, live_ids, settings, store, truth_before};
use crate::sandbox_api::start;
use contract_recon::ingest::{ingest, IngestMode, RefreshBudget};
use contract_recon::sandbox::faults::PageShift;
use contract_recon::sandbox::MutationKind;
use std::collections::BTreeSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deletions_among_1000_are_found_the_same_night_in_a_few_requests() {
    let sb = start(1000, 1000).await;
    let s = settings(&sb, 500);
    let (store, prefix) = store();
    ingest_committed(&s, store.clone(), &prefix, IngestMode::Full)
        .await
        .unwrap();
    for id in ["T-123", "T-777"] {
        sb.state().remove_contract(id).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = sb.state().counters().list_requests;
    let inc = ingest_committed(&s, store.clone(), &prefix, IngestMode::Incremental)
        .await
        .unwrap();
    let st = &inc.stats;
    assert_eq!(st.live_count_mismatch, Some(-2));
    assert_eq!(st.contracts_deleted, 2);
    let truth: BTreeSet<String> = sb
        .state()
        .contracts()
        .iter()
        .map(|c| c.contract.id.composite().to_string())
        .collect();
    assert_eq!(
        live_ids(&inc.snapshot),
        truth,
        "exactly the sandbox's live set"
    );
    assert_eq!(inc.snapshot.height(), 1000, "marked, not dropped");
    let run_requests = sb.state().counters().list_requests - before;
    println!(
        "deletion search: 2 deletions among 1,000 contracts found with {} requests \
         (the run: {run_requests} list requests in all)",
        st.deletion_search_requests
    );
    assert!(
        st.deletion_search_requests <= 30,
        "logarithmic: {}",
        st.deletion_search_requests
    );
    assert_eq!(
        run_requests,
        1 + 1 + st.deletion_search_requests,
        "page, count, search"
    );
    // The next night agrees at once.
    let next = ingest(&s, store, &prefix, IngestMode::Incremental)
        .await
        .unwrap();
    assert_eq!(
        (
            next.stats.live_count_mismatch,
            next.stats.deletion_search_requests
        ),
        (Some(0), 0)
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shifting_pages_and_vanishing_contracts_leave_exactly_the_truth() {
    let sb = start(1200, 1000).await;
    let mut s = settings(&sb, 500);
    s.key_pointer_fields = vec!["contract_value".into()];
    let (store, prefix) = store();
    let first = ingest_committed(&s, store.clone(), &prefix, IngestMode::Full)
        .await
        .unwrap();
    let known = live_ids(&first.snapshot);
    // Creates, updates and deletes while the walk pages (one per list request,
    // all during the walk), then 3 contracts vanish before their metadata values.
    sb.faults().update(|f| {
        f.spotdraft.page_shift = Some(PageShift {
            mutations: 9,
            every_n_list_requests: 1,
        });
        f.spotdraft.vanish_before_enrich = 3;
    });
    s.refresh_per_run = RefreshBudget::Contracts(50);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let out = ingest(&s, store, &prefix, IngestMode::Full).await.unwrap();
    assert_eq!(sb.faults().page_shift_done(), 9);
    assert_eq!(out.stats.contracts_vanished, 3);
    let run_start = out.stats.run_start.unwrap();
    let live = live_ids(&out.snapshot);
    assert_eq!(
        live,
        truth_before(&sb, run_start),
        "exactly the sandbox's truth"
    );
    let deleted_during_run: BTreeSet<String> = sb
        .state()
        .mutations()
        .into_iter()
        .filter(|m| m.kind == MutationKind::Delete)
        .map(|m| m.contract_id)
        .filter(|id| known.contains(id))
        .collect();
    // 3 vanished, and up to 3 page-shift deletes (one may hit a contract it created).
    assert!(deleted_during_run.len() >= 3, "{deleted_during_run:?}");
    let all_rows: BTreeSet<String> = super::strings(&out.snapshot, "id")
        .into_iter()
        .flatten()
        .collect();
    for id in &deleted_during_run {
        assert!(
            all_rows.contains(id) && !live.contains(id),
            "{id}: kept and marked deleted"
        );
    }
    assert_eq!(out.stats.contracts_deleted, deleted_during_run.len());
    sb.shutdown().await;
}
