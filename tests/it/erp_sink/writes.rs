//! Field updates, single and bulk: outcomes, replays and retries.

use super::{log, sink, start_erp, update};
use contract_recon::erp::sink::{ErpSink, WriteOutcome};

fn applied(version: u64, replayed: bool) -> WriteOutcome {
    WriteOutcome::Applied {
        version: Some(version.to_string()),
        replayed,
    }
}

#[tokio::test]
async fn an_update_applies_and_a_repeated_key_replays() {
    let sb = start_erp(3).await;
    let s = sink(&sb);
    let u = update(
        "E-1",
        "k-1",
        &[("po_number", "PO-9"), ("status", "EXECUTED")],
    );
    assert_eq!(s.update_fields(&u).await, applied(2, false));
    assert_eq!(s.update_fields(&u).await, applied(2, true));
    let rec = sb.state().erp_record("E-1").unwrap();
    assert_eq!((rec.po_number.as_deref(), rec.version), (Some("PO-9"), 2));
    let k = Some("k-1".to_string());
    assert_eq!(log(&sb), vec![(k.clone(), true, 200), (k, false, 200)]);
    sb.shutdown().await;
}

#[tokio::test]
async fn stale_versions_unknown_records_and_fields_are_rejected_with_the_erp_code() {
    let sb = start_erp(3).await;
    let s = sink(&sb);
    let mut stale = update("E-2", "k-a", &[("po_number", "PO-1")]);
    stale.if_match = Some("7".into());
    let code = |o: WriteOutcome| match o {
        WriteOutcome::Rejected {
            status,
            code,
            message,
        } => {
            assert!(!message.is_empty());
            (status, code.unwrap_or_default())
        }
        other => panic!("not rejected: {other:?}"),
    };
    assert_eq!(
        code(s.update_fields(&stale).await),
        (412, "precondition_failed".into())
    );
    stale.if_match = Some("1".into());
    stale.idempotency_key = "k-b".into();
    assert_eq!(s.update_fields(&stale).await, applied(2, false));
    let missing = update("E-404", "k-c", &[("po_number", "PO-1")]);
    assert_eq!(
        code(s.update_fields(&missing).await),
        (404, "not_found".into())
    );
    let unknown = update("E-3", "k-d", &[("colour", "red")]);
    assert_eq!(
        code(s.update_fields(&unknown).await),
        (422, "unknown_field".into())
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn bursts_of_429_and_5xx_are_retried_with_the_same_key() {
    let sb = start_erp(12).await;
    let s = sink(&sb);
    sb.faults().update(|f| {
        f.erp.http.burst_429 = 3;
        f.erp.http.retry_after_secs = Some(0);
    });
    assert_eq!(
        s.update_fields(&update("E-1", "k-1", &[("status", "A")]))
            .await,
        applied(2, false)
    );
    sb.faults().update(|f| f.erp.http.error_rate = 0.5);
    for i in 2..=11 {
        let u = update(&format!("E-{i}"), &format!("k-{i}"), &[("status", "B")]);
        assert_eq!(s.update_fields(&u).await, applied(2, false), "E-{i}");
    }
    let stats = s.throttle().stats().snapshot();
    assert_eq!(stats.status_429, 3);
    assert!(stats.responses_5xx > 0, "{stats:?}");
    // Every key applied exactly once, whatever the attempts.
    let applied_keys: Vec<_> = log(&sb).into_iter().filter(|w| w.1).map(|w| w.0).collect();
    assert_eq!(applied_keys.len(), 11);
    sb.shutdown().await;
}

#[tokio::test]
async fn retries_that_run_out_leave_the_write_pending() {
    let sb = start_erp(2).await;
    let s = sink(&sb);
    sb.faults().update(|f| f.erp.http.burst_429 = 100);
    let outcome = s
        .update_fields(&update("E-1", "k-1", &[("status", "A")]))
        .await;
    assert!(
        matches!(outcome, WriteOutcome::Pending { .. }),
        "{outcome:?}"
    );
    assert_eq!(sb.state().erp_record("E-1").unwrap().version, 1);
    sb.shutdown().await;
}

#[tokio::test]
async fn a_lost_response_is_retried_with_its_key_and_applied_once() {
    let sb = start_erp(2).await;
    let s = sink(&sb);
    sb.faults().update(|f| f.erp.applied_but_502_next = 1);
    let outcome = s
        .update_fields(&update("E-1", "lost", &[("status", "A")]))
        .await;
    assert_eq!(outcome, applied(2, true));
    let k = Some("lost".to_string());
    assert_eq!(log(&sb), vec![(k.clone(), true, 502), (k, false, 200)]);
    assert_eq!(sb.state().erp_record("E-1").unwrap().version, 2);
    sb.shutdown().await;
}

#[tokio::test]
async fn a_record_id_is_percent_encoded_in_the_path() {
    let sb = start_erp(1).await;
    let s = sink(&sb);
    let outcome = s
        .update_fields(&update("ERP 12/3", "k-enc", &[("status", "A")]))
        .await;
    assert_eq!(outcome, applied(2, false));
    assert_eq!(
        sb.state().erp_record("ERP 12/3").unwrap().status.as_deref(),
        Some("A")
    );
    let path = sb.state().erp_writes()[0].path.clone();
    assert_eq!(path, "/erp/contracts/ERP%2012%2F3");
    sb.shutdown().await;
}

#[tokio::test]
async fn a_batch_maps_each_operation_and_its_keys_apply_once() {
    let sb = start_erp(4).await;
    let s = sink(&sb);
    let mut stale = update("E-2", "op-2", &[("status", "X")]);
    stale.if_match = Some("9".into());
    let ops = vec![
        update("E-1", "op-1", &[("status", "X")]),
        stale,
        update("E-404", "op-3", &[("status", "X")]),
        update("E-3", "op-4", &[("colour", "X")]),
        update("ERP 12/3", "op-5", &[("status", "X")]),
    ];
    let out = s.update_fields_batch(&ops, "batch-1").await;
    let statuses: Vec<_> = out
        .iter()
        .map(|o| match o {
            WriteOutcome::Applied { replayed, .. } => (200, String::new(), *replayed),
            WriteOutcome::Rejected { status, code, .. } => {
                (*status, code.clone().unwrap_or_default(), false)
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            (200, String::new(), false),
            (412, "precondition_failed".into(), false),
            (404, "not_found".into(), false),
            (422, "unknown_field".into(), false),
            (200, String::new(), false),
        ]
    );
    // The same operations in another batch (another batch key): each
    // operation's own key replays it, nothing is applied again.
    let again = s.update_fields_batch(&ops[..1], "batch-2").await;
    assert_eq!(again, vec![applied(2, true)]);
    // And a single PATCH with an operation's key replays it too.
    assert_eq!(s.update_fields(&ops[4]).await, applied(2, true));
    assert_eq!(sb.state().erp_record("E-1").unwrap().version, 2);
    // A batch whose response is lost is retried with its key: replayed.
    sb.faults().update(|f| f.erp.applied_but_502_next = 1);
    let lost = s
        .update_fields_batch(&[update("E-4", "op-6", &[("status", "Y")])], "batch-3")
        .await;
    assert_eq!(lost, vec![applied(2, true)]);
    assert_eq!(sb.state().erp_record("E-4").unwrap().version, 2);
    sb.shutdown().await;
}
