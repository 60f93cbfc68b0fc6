//! The webhook endpoint over a real socket (the consumer's tests, which
//! use these helpers, are in `consumer_tests.rs`).

use super::consumer::batch;
use super::queue::WebhookQueue;
use super::server::{router, Endpoint, WebhookState};
use super::signature::{WebhookKey, SIGNATURE_HEADER};
use crate::runner::TargetHint;
use crate::schedule::metrics::Metrics;
use crate::test_store::FaultyStore;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStore;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Notify;

/// SpotDraft's example key (openapi.yml, `WebhookSecretKeyResponse`), base64.
const KEY_B64: &str =
    "zJDCvFUXhByUkPcQIzf+dt2W7bqm6x6Fb2o/gLhfUgXyPqvPcrZ6P9yYtoUrI4dErHzq2t+4gjZ4zH2btdpoSA==";
pub(super) const BODY: &str = r#"{"activity":"CONTRACT_EXECUTED","contract_id":1072}"#;
/// `BODY`'s signature with `KEY_B64`, computed apart from this code
/// (Python: `hmac.new(base64.b64decode(key), body, hashlib.sha512).hexdigest()`).
const BODY_SIGNATURE: &str = "16fd2859e9dbf8281a64c6dbdf2d541300b69d46920bf17dad1db6d38b7765fcc600ec212d5559094c61b85b27fad13732163f7735af91ca32610d5ef5860c26";

pub(super) fn key() -> WebhookKey {
    WebhookKey::from_base64(KEY_B64).unwrap()
}

pub(super) struct Hook {
    pub(super) url: String,
    pub(super) queue: WebhookQueue,
    pub(super) wake: Arc<Notify>,
    state: WebhookState,
}

/// The endpoint of job `acme` on a loopback port, queueing into `store`.
pub(super) async fn hook(store: Arc<dyn ObjectStore>, max_body_bytes: usize) -> Hook {
    hook_with_key(store, max_body_bytes, key()).await
}

async fn hook_with_key(
    store: Arc<dyn ObjectStore>,
    max_body_bytes: usize,
    key: WebhookKey,
) -> Hook {
    let queue = WebhookQueue::new(store, &Path::from("out"), "acme");
    let wake = Arc::new(Notify::new());
    let endpoint = Endpoint {
        key,
        max_body_bytes,
        queue: queue.clone(),
        wake: wake.clone(),
    };
    let state = WebhookState::new(
        BTreeMap::from([("acme".to_string(), endpoint)]),
        Arc::new(Metrics::new()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Hook {
        url: format!("http://{addr}/webhooks/spotdraft/acme"),
        queue,
        wake,
        state,
    }
}

async fn post(url: &str, body: &str, signature: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(sig) = signature {
        req = req.header(SIGNATURE_HEADER, sig);
    }
    req.send().await.unwrap()
}

pub(super) async fn signed(url: &str, body: &str) -> reqwest::Response {
    post(url, body, Some(&key().sign(body.as_bytes()))).await
}

#[test]
fn signature_is_hex_hmac_sha512_of_the_body_with_the_decoded_key() {
    assert_eq!(key().sign(BODY.as_bytes()), BODY_SIGNATURE);
    assert!(key().verify(BODY.as_bytes(), BODY_SIGNATURE));
    assert!(key().verify(BODY.as_bytes(), &BODY_SIGNATURE.to_uppercase()));
    assert!(!key().verify(b"{}", BODY_SIGNATURE));
    assert!(!key().verify(BODY.as_bytes(), "not hex"));
    assert!(WebhookKey::from_base64("not base64!").is_err());
    // The key used as its base64 text instead of decoded: another signature.
    let undecoded = WebhookKey::from_bytes(KEY_B64.as_bytes());
    assert_ne!(undecoded.sign(BODY.as_bytes()), BODY_SIGNATURE);
}

#[tokio::test]
async fn a_signed_delivery_is_queued_before_the_answer() {
    let h = hook(Arc::new(InMemory::new()), 1024).await;
    let resp = post(&h.url, BODY, Some(BODY_SIGNATURE)).await;
    assert_eq!(resp.status(), 202);
    // Queued by the time the answer arrives.
    let pending = h.queue.pending().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].entry.contract_id, 1072);
    assert_eq!(
        pending[0].entry.activity.as_deref(),
        Some("CONTRACT_EXECUTED")
    );
    assert!(pending[0]
        .path
        .as_ref()
        .starts_with("out/_webhooks/acme/queue/1072-"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["duplicate"], false);
}

#[tokio::test]
async fn bad_or_missing_signatures_are_refused_and_nothing_is_queued() {
    let h = hook(Arc::new(InMemory::new()), 1024).await;
    let other = WebhookKey::from_bytes(b"another key".to_vec()).sign(BODY.as_bytes());
    let undecoded = WebhookKey::from_bytes(KEY_B64.as_bytes()).sign(BODY.as_bytes());
    let tampered = BODY.replace("1072", "1073");
    for (body, sig) in [
        (BODY, Some(other.as_str())),
        (BODY, Some(undecoded.as_str())),
        (BODY, None),
        (BODY, Some("")),
        (BODY, Some("zz-not-hex")),
        (tampered.as_str(), Some(BODY_SIGNATURE)),
    ] {
        let resp = post(&h.url, body, sig).await;
        assert_eq!(resp.status(), 401, "signature {sig:?}");
    }
    assert!(h.queue.pending().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_replayed_delivery_is_accepted_and_queued_once() {
    let h = hook(Arc::new(InMemory::new()), 1024).await;
    let first = signed(&h.url, BODY).await;
    let again = signed(&h.url, BODY).await;
    assert_eq!(
        (first.status().as_u16(), again.status().as_u16()),
        (202, 202)
    );
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again["duplicate"], true);
    let pending = h.queue.pending().await.unwrap();
    assert_eq!(pending.len(), 1);
    let (targets, covered) = batch(&pending, 100);
    assert_eq!(
        targets.contracts,
        BTreeMap::from([(1072, TargetHint::Changed)])
    );
    assert_eq!(covered.len(), 1);
}

#[tokio::test]
async fn an_oversized_body_is_refused_whether_its_length_is_declared_or_not() {
    let h = hook(Arc::new(InMemory::new()), 64).await;
    let big = format!(
        r#"{{"contract_id":1,"contract_title":"{}"}}"#,
        "x".repeat(200)
    );
    let resp = signed(&h.url, &big).await;
    assert_eq!(resp.status(), 413);
    // Chunked: no Content-Length, refused once read past the limit.
    let chunks: Vec<Result<String, std::io::Error>> =
        vec![Ok(big[..50].into()), Ok(big[50..].into())];
    let resp = reqwest::Client::new()
        .post(&h.url)
        .header(SIGNATURE_HEADER, key().sign(big.as_bytes()))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert!(h.queue.pending().await.unwrap().is_empty());
    // A body within the limit passes.
    assert_eq!(signed(&h.url, r#"{"contract_id":1}"#).await.status(), 202);
}

#[tokio::test]
async fn malformed_json_is_a_400_and_unknown_jobs_a_404() {
    let h = hook(Arc::new(InMemory::new()), 1024).await;
    for body in [
        "{not json",
        r#"{"activity":"CONTRACT_EXECUTED"}"#,
        r#"{"contract_id":"T-1072"}"#,
        r#"[1072]"#,
    ] {
        assert_eq!(signed(&h.url, body).await.status(), 400, "{body}");
    }
    assert!(h.queue.pending().await.unwrap().is_empty());
    let other = h.url.replace("/acme", "/nobody");
    assert_eq!(signed(&other, BODY).await.status(), 404);
}

#[tokio::test]
async fn a_delivery_the_store_cannot_queue_is_a_5xx() {
    let store = FaultyStore::in_memory();
    let h = hook(store.clone(), 1024).await;
    store.fail_writes(true);
    let resp = signed(&h.url, BODY).await;
    assert_eq!(resp.status(), 500);
    store.fail_writes(false);
    assert!(h.queue.pending().await.unwrap().is_empty());
    // SpotDraft's next delivery of it is queued.
    assert_eq!(signed(&h.url, BODY).await.status(), 202);
    assert_eq!(h.queue.pending().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_stopping_daemon_answers_503() {
    let h = hook(Arc::new(InMemory::new()), 1024).await;
    h.state.stop_accepting();
    assert_eq!(signed(&h.url, BODY).await.status(), 503);
    assert!(h.queue.pending().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_sandbox_delivers_webhooks_the_endpoint_accepts() {
    use crate::sandbox::{Dataset, Sandbox, SandboxConfig};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let sandbox = Sandbox::start(
        SandboxConfig::default(),
        Dataset::load(&root.join("fixtures/demo")).unwrap(),
    )
    .await
    .unwrap();
    let client = reqwest::Client::new();
    // The key as the daemon gets it: from the API, base64.
    let served: serde_json::Value = client
        .get(format!(
            "{}v2.1/public/webhooks/hmac_key/",
            sandbox.spotdraft_base_url()
        ))
        .header("client-id", &sandbox.credentials().client_id)
        .header("client-secret", &sandbox.credentials().client_secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = WebhookKey::from_base64(served["hmac_key"].as_str().unwrap()).unwrap();
    let h = hook_with_key(Arc::new(InMemory::new()), 4096, key).await;
    let send = format!("http://{}/_sandbox/webhooks/send", sandbox.local_addr());
    let resp: serde_json::Value = client
        .post(&send)
        .json(
            &serde_json::json!({"url": h.url, "contract_id": 1072, "activity": "CONTRACT_DELETED"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["status"], 202, "{resp}");
    let pending = h.queue.pending().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].entry.hint(), TargetHint::Deleted);
    // An endpoint with another key refuses the sandbox's deliveries.
    let other = hook(Arc::new(InMemory::new()), 4096).await;
    let resp: serde_json::Value = client
        .post(&send)
        .json(&serde_json::json!({"url": other.url, "body": {"contract_id": 1}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["status"], 401, "{resp}");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn the_queue_deduplicates_and_removes_on_a_local_file_system_too() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let queue = WebhookQueue::new(store, &Path::from("out"), "acme");
    assert!(queue.pending().await.unwrap().is_empty(), "no folder yet");
    let delivery: super::Delivery = serde_json::from_str(BODY).unwrap();
    use super::queue::Enqueued;
    let first = queue.enqueue(&delivery, BODY.as_bytes()).await.unwrap();
    let again = queue.enqueue(&delivery, BODY.as_bytes()).await.unwrap();
    assert_eq!((first, again), (Enqueued::New, Enqueued::Duplicate));
    let pending = queue.pending().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert!(dir.path().join(pending[0].path.as_ref()).is_file());
    queue.remove(&[pending[0].path.clone()]).await.unwrap();
    assert!(queue.pending().await.unwrap().is_empty());
}
