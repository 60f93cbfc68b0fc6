//! The sandbox's faults of a live workspace: list bodies cut mid-JSON,
//! contracts deleted between a walk and their enrichment, metadata values
//! edited without any change to the list, and the per-request HTTP faults of
//! both APIs (429 with and without `Retry-After`, hung requests, connections
//! closed mid-body, JSON cut short).

use super::{erp, ids, list, sd, start};
use contract_recon::sandbox::MutationKind;
use reqwest::Method;
use serde_json::{json, Value};

const LIST: &str = "v2.1/public/contracts/";

#[tokio::test]
async fn truncated_bodies_are_cut_inside_with_a_matching_length_then_stop() {
    let sb = start(30, 1000).await;
    let whole = sd(&sb, Method::GET, LIST).send().await.unwrap();
    let whole_len = whole.bytes().await.unwrap().len();
    sb.faults().update(|f| f.spotdraft.truncated_body_next = 3);
    for _ in 0..3 {
        let r = sd(&sb, Method::GET, LIST).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let declared: usize = r.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let body = r.bytes().await.unwrap();
        assert_eq!(declared, body.len(), "a proxy's cut: length matches");
        assert!(!body.is_empty() && body.len() < whole_len);
        assert!(serde_json::from_slice::<Value>(&body).is_err());
    }
    assert_eq!(list(&sb, "").await["total_results"], 30, "only the next 3");
    assert_eq!(sb.faults().get().spotdraft.truncated_body_next, 0);
    assert_eq!(sb.state().counters().faults_injected, 3);
    sb.shutdown().await;
}

#[tokio::test]
async fn a_contract_vanishes_for_real_before_its_metadata_or_document() {
    let sb = start(6, 1000).await;
    sb.faults().update(|f| f.spotdraft.vanish_before_enrich = 2);
    // An unknown contract does not use the fault up.
    let unknown = sd(&sb, Method::GET, "v2.1/public/contracts/T-99/key_pointers");
    assert_eq!(unknown.send().await.unwrap().status(), 404);
    let kp = sd(&sb, Method::GET, "v2.1/public/contracts/T-2/key_pointers");
    let kp = kp.send().await.unwrap();
    assert_eq!(kp.status(), 404);
    assert_eq!(
        kp.json::<Value>().await.unwrap()["code"],
        "SD_CONTRACT_NOT_FOUND"
    );
    let doc = sd(&sb, Method::POST, "v2.1/public/contracts/T-3/download");
    assert_eq!(doc.send().await.unwrap().status(), 404);
    // The fault is used up: T-5 answers its document.
    let doc = sd(&sb, Method::POST, "v2.1/public/contracts/T-5/download");
    assert_eq!(doc.send().await.unwrap().status(), 200);
    let page = list(&sb, "limit=100").await;
    assert_eq!(page["total_results"], 4);
    let left = ids(&page);
    assert!(!left.contains(&"T-2".to_string()) && !left.contains(&"T-3".to_string()));
    let gone = list(&sb, "filter__contract_id[$in]=T-2,T-3,T-4").await;
    assert_eq!(ids(&gone), ["T-4"]);
    let deletes: Vec<_> = sb
        .state()
        .mutations()
        .into_iter()
        .filter(|m| m.kind == MutationKind::Delete)
        .map(|m| m.contract_id)
        .collect();
    assert_eq!(deletes, ["T-2", "T-3"]);
    let c = sb.state().counters();
    assert_eq!((c.key_pointers_requests, c.document_requests), (2, 2));
    sb.shutdown().await;
}

#[tokio::test]
async fn a_metadata_value_edit_leaves_the_list_untouched() {
    let sb = start(5, 1000).await;
    let before = list(&sb, "limit=100").await;
    assert!(sb
        .state()
        .set_key_pointer_value("T-4", "contract_value", json!(1234.5)));
    assert!(sb
        .state()
        .set_key_pointer_value("T-4", "region", json!("EMEA")));
    assert!(!sb
        .state()
        .set_key_pointer_value("T-9", "region", json!("EMEA")));
    assert_eq!(
        list(&sb, "limit=100").await,
        before,
        "same items, same order"
    );
    let since = "filter__last_updated_on[$gte]=2026-06-01T00:00:00Z";
    assert_eq!(list(&sb, since).await["total_results"], 0, "no bump");
    let kps: Value = sd(&sb, Method::GET, "v2.1/public/contracts/T-4/key_pointers")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let value = |name: &str| {
        kps.as_array()
            .unwrap()
            .iter()
            .find(|k| k["field_name"] == name)
            .map(|k| k["value"].clone())
    };
    assert_eq!(value("contract_value"), Some(json!(1234.5)));
    assert_eq!(value("region"), Some(json!("EMEA")));
    sb.shutdown().await;
}

#[tokio::test]
async fn throttles_come_with_and_without_retry_after_and_are_counted() {
    let sb = start(3, 1000).await;
    sb.faults().update(|f| f.spotdraft.http.throttle_rate = 1.0);
    let r = sd(&sb, Method::GET, LIST).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_none());
    sb.faults().update(|f| {
        f.spotdraft.http.throttle_rate = 0.0;
        f.spotdraft.http.throttle_retry_after_rate = 1.0;
        f.spotdraft.http.retry_after_secs = Some(7);
    });
    let r = sd(&sb, Method::GET, LIST).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    let counts = sb.faults().counts();
    assert_eq!((counts.throttled, counts.throttled_retry_after), (1, 1));
    assert_eq!(counts.total(), 2);
    sb.shutdown().await;
}

#[tokio::test]
async fn a_hung_request_is_never_answered_within_the_clients_timeout() {
    let sb = start(3, 1000).await;
    sb.faults().update(|f| f.erp.http.hang_rate = 1.0);
    let started = std::time::Instant::now();
    let r = erp(&sb, Method::GET, "contracts/E-1")
        .timeout(std::time::Duration::from_millis(300))
        .send()
        .await;
    assert!(r.is_err_and(|e| e.is_timeout()));
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    assert_eq!(sb.faults().counts().hung, 1);
    sb.faults().update(|f| f.erp.http.hang_rate = 0.0);
    let r = erp(&sb, Method::GET, "contracts/E-1").send().await.unwrap();
    assert_eq!(r.status(), 200);
    sb.shutdown().await;
}

#[tokio::test]
async fn a_reset_cuts_the_answer_after_the_write_was_applied_and_a_resend_is_replayed() {
    let sb = start(3, 1000).await;
    sb.faults().update(|f| f.erp.http.reset_rate = 1.0);
    let patch = || {
        erp(&sb, Method::PATCH, "contracts/E-2")
            .header("idempotency-key", "reset-1")
            .json(&json!({"fields": {"po_number": "PO-77"}}))
    };
    let r = patch().send().await.unwrap();
    assert_eq!(r.status(), 200, "the status line and headers arrive");
    let declared: usize = r.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(declared > 0);
    assert!(
        r.bytes().await.is_err(),
        "the body is cut by the connection closing"
    );
    let record = sb.state().erp_record("E-2").unwrap();
    assert_eq!(record.po_number.as_deref(), Some("PO-77"), "applied");
    assert_eq!(record.version, 2);
    assert_eq!(sb.faults().counts().resets, 1);

    sb.faults().update(|f| f.erp.http.reset_rate = 0.0);
    let again = patch().send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(
        sb.state().erp_record("E-2").unwrap().version,
        2,
        "applied once"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn truncation_cuts_json_answers_of_any_endpoint_but_never_documents() {
    let sb = start(3, 1000).await;
    let whole = erp(&sb, Method::GET, "contracts/E-1").send().await.unwrap();
    let whole_len = whole.bytes().await.unwrap().len();
    sb.faults().update(|f| {
        f.erp.http.truncate_rate = 1.0;
        f.spotdraft.http.truncate_rate = 1.0;
    });
    let r = erp(&sb, Method::GET, "contracts/E-1").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let declared: usize = r.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = r.bytes().await.unwrap();
    assert_eq!(declared, body.len(), "a proxy's cut: the length matches");
    assert!(body.len() < whole_len);
    assert!(serde_json::from_slice::<Value>(&body).is_err());
    // A document (not JSON) arrives whole.
    let doc = sd(&sb, Method::POST, "v2.1/public/contracts/T-1/download")
        .send()
        .await
        .unwrap();
    assert_eq!(doc.status(), 200);
    assert_eq!(doc.bytes().await.unwrap(), super::document_bytes(1));
    assert_eq!(sb.faults().counts().truncated, 1);
    sb.shutdown().await;
}
