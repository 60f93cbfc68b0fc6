//! The ERP event endpoint over a real socket: the SpotDraft endpoint's rules
//! (404, 503, 413, 401, 400, 500, 2xx only once queued, replays deduplicated)
//! with its own header, body and queue.

use super::queue::{ErpQueueEntry, WebhookQueue};
use super::server::{router, ErpEndpoint, WebhookState};
use super::signature::{ErpEventKey, ERP_SIGNATURE_HEADER};
use crate::schedule::metrics::Metrics;
use crate::test_store::FaultyStore;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStore;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Notify;

const SECRET: &[u8] = b"a-shared-secret-of-the-erp";
const BODY: &str = r#"{"record_id":" ERP-123 ","event":"purchase_request.approved"}"#;

struct ErpHook {
    url: String,
    queue: WebhookQueue<ErpQueueEntry>,
    state: WebhookState,
}

/// The ERP endpoint of job `acme` on a loopback port, queueing into `store`.
async fn erp_hook(store: Arc<dyn ObjectStore>, max_body_bytes: usize) -> ErpHook {
    let queue = WebhookQueue::erp(store, &Path::from("out"), "acme");
    let endpoint = ErpEndpoint {
        key: ErpEventKey::new(SECRET),
        max_body_bytes,
        queue: queue.clone(),
        wake: Arc::new(Notify::new()),
    };
    let state = WebhookState::new(BTreeMap::new(), Arc::new(Metrics::new()))
        .with_erp(BTreeMap::from([("acme".to_string(), endpoint)]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    ErpHook {
        url: format!("http://{addr}/webhooks/erp/acme"),
        queue,
        state,
    }
}

async fn post(url: &str, body: &str, signature: Option<String>) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(sig) = signature {
        req = req.header(ERP_SIGNATURE_HEADER, sig);
    }
    req.send().await.unwrap()
}

async fn signed(url: &str, body: &str) -> reqwest::Response {
    post(
        url,
        body,
        Some(ErpEventKey::new(SECRET).sign(body.as_bytes())),
    )
    .await
}

#[tokio::test]
async fn a_signed_event_is_queued_before_the_answer_and_a_replay_is_a_duplicate() {
    let h = erp_hook(Arc::new(InMemory::new()), 1024).await;
    let resp = signed(&h.url, BODY).await;
    assert_eq!(resp.status(), 202);
    let pending = h.queue.pending().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].entry.record_id, "ERP-123");
    assert_eq!(
        pending[0].entry.event.as_deref(),
        Some("purchase_request.approved")
    );
    assert!(pending[0]
        .path
        .as_ref()
        .starts_with("out/_webhooks/acme/erp_queue/ERP-123-purchase_requestapproved-"));
    let answer: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(answer["duplicate"], false);
    let again: serde_json::Value = signed(&h.url, BODY).await.json().await.unwrap();
    assert_eq!(again["duplicate"], true);
    assert_eq!(h.queue.pending().await.unwrap().len(), 1);
}

#[tokio::test]
async fn bad_events_are_refused_and_nothing_is_queued() {
    let h = erp_hook(Arc::new(InMemory::new()), 256).await;
    let sha512 = super::signature::WebhookKey::from_bytes(SECRET).sign(BODY.as_bytes());
    let refusals = [
        post(&h.url, BODY, None).await.status(),
        post(&h.url, BODY, Some("sha256=00".into())).await.status(),
        post(&h.url, BODY, Some(format!("sha256={sha512}")))
            .await
            .status(),
    ];
    assert_eq!(refusals, [401, 401, 401]);
    for body in [
        "not json",
        r#"["ERP-1"]"#,
        r#"{"record_id": 123}"#,
        r#"{"record_id": "  "}"#,
        r#"{"event": "x"}"#,
    ] {
        assert_eq!(signed(&h.url, body).await.status(), 400, "{body}");
    }
    let big = format!(r#"{{"record_id":"ERP-1","pad":"{}"}}"#, "x".repeat(300));
    assert_eq!(signed(&h.url, &big).await.status(), 413);
    let other = h.url.replace("/acme", "/nobody");
    assert_eq!(signed(&other, BODY).await.status(), 404);
    let spotdraft = h.url.replace("/erp/", "/spotdraft/");
    assert_eq!(signed(&spotdraft, BODY).await.status(), 404);
    assert!(h.queue.pending().await.unwrap().is_empty());
    h.state.stop_accepting();
    assert_eq!(signed(&h.url, BODY).await.status(), 503);
    assert!(h.queue.pending().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_event_the_store_cannot_queue_is_a_5xx() {
    let store = FaultyStore::in_memory();
    let h = erp_hook(store.clone(), 1024).await;
    store.fail_writes(true);
    assert_eq!(signed(&h.url, BODY).await.status(), 500);
    store.fail_writes(false);
    assert!(h.queue.pending().await.unwrap().is_empty());
    assert_eq!(signed(&h.url, BODY).await.status(), 202);
}
