//! The webhook endpoints: `POST /webhooks/spotdraft/{job}` (SpotDraft's
//! deliveries) and `POST /webhooks/erp/{job}` (ERP events, see
//! [`ErpEndpoint`]). A delivery is answered 2xx only once it is durably
//! queued; anything else is refused before it is processed:
//! - 404: no job of that name takes webhooks (ERP events: no job of that name
//!   takes them);
//! - 503: the daemon is stopping;
//! - 413: the body is larger than the job's `max_body_bytes` (refused on its
//!   `Content-Length` before reading it, or as soon as it is read past that);
//! - 401: `X-SD-WEBHOOK-CONTENT-HASH` (ERP events:
//!   `X-Contract-Recon-Signature`) missing or not the body's signature;
//! - 400: the body is not a JSON object with an integer `contract_id` (ERP
//!   events: a non-empty string `record_id`), logged without the body;
//! - 500: the queue could not be written (SpotDraft delivers again).

use super::queue::{Enqueued, ErpQueueEntry, WebhookQueue};
use super::signature::{ErpEventKey, WebhookKey, ERP_SIGNATURE_HEADER, SIGNATURE_HEADER};
use super::{Delivery, ErpEvent};
use crate::schedule::metrics::Metrics;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

/// One job's webhook endpoint.
#[derive(Debug)]
pub struct Endpoint {
    /// The key deliveries are signed with.
    pub key: WebhookKey,
    /// Larger bodies are refused.
    pub max_body_bytes: usize,
    /// Where deliveries are queued.
    pub queue: WebhookQueue,
    /// Told of each new entry (the job's consumer waits on it).
    pub wake: Arc<Notify>,
}

/// One job's ERP event endpoint (a job with `[create]` on and
/// `[webhooks] erp_secret_env`).
#[derive(Debug)]
pub struct ErpEndpoint {
    /// The shared secret events are signed with.
    pub key: ErpEventKey,
    /// Larger bodies are refused.
    pub max_body_bytes: usize,
    /// Where events are queued.
    pub queue: WebhookQueue<ErpQueueEntry>,
    /// Told of each new entry (the job's ERP consumer waits on it).
    pub wake: Arc<Notify>,
}

/// The endpoints by job name, and whether deliveries are still taken.
#[derive(Debug, Clone)]
pub struct WebhookState {
    endpoints: Arc<BTreeMap<String, Endpoint>>,
    erp_endpoints: Arc<BTreeMap<String, ErpEndpoint>>,
    accepting: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl WebhookState {
    /// Takes deliveries for `endpoints` (job name -> endpoint).
    pub fn new(endpoints: BTreeMap<String, Endpoint>, metrics: Arc<Metrics>) -> WebhookState {
        WebhookState {
            endpoints: Arc::new(endpoints),
            erp_endpoints: Arc::new(BTreeMap::new()),
            accepting: Arc::new(AtomicBool::new(true)),
            metrics,
        }
    }

    /// Also takes ERP events for `erp` (job name -> endpoint).
    pub fn with_erp(self, erp: BTreeMap<String, ErpEndpoint>) -> WebhookState {
        WebhookState {
            erp_endpoints: Arc::new(erp),
            ..self
        }
    }

    /// From now on deliveries are answered 503 (the daemon is stopping;
    /// SpotDraft delivers them again later).
    pub fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::SeqCst);
    }
}

/// `POST /webhooks/spotdraft/{job}` and `POST /webhooks/erp/{job}`.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route("/webhooks/spotdraft/{job}", post(deliver))
        .route("/webhooks/erp/{job}", post(deliver_erp))
        .with_state(state)
}

fn answer(code: StatusCode, message: &str) -> Response {
    (code, Json(json!({ "error": message }))).into_response()
}

/// Why a delivery whose body was read is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The signature header is missing or does not sign the body (401).
    BadSignature,
    /// The body is not the expected JSON object (400). Only the error's
    /// position is kept: its text may quote the body.
    Malformed {
        /// serde_json's class of the error (syntax, data, EOF).
        kind: String,
        /// Line of the error in the body (1-based; 0 for a shape error).
        line: usize,
        /// Column of the error in the body.
        column: usize,
    },
}

impl Refusal {
    fn malformed(e: &serde_json::Error) -> Refusal {
        Refusal::Malformed {
            kind: format!("{:?}", e.classify()),
            line: e.line(),
            column: e.column(),
        }
    }
}

/// `T` from a JSON object body (serde would also read a struct from an
/// array).
fn parse_object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body)
        .and_then(|object| serde_json::from_value::<T>(object.into()))
        .map_err(|e| Refusal::malformed(&e))
}

/// A SpotDraft delivery as the endpoint checks it once read: `signature`
/// (the `X-SD-WEBHOOK-CONTENT-HASH` header) signs `body` with `key`, and
/// the body is a JSON object with an integer `contract_id`. Pure: no I/O.
pub fn check_delivery(
    key: &WebhookKey,
    body: &[u8],
    signature: Option<&str>,
) -> Result<Delivery, Refusal> {
    if !signature.is_some_and(|sig| key.verify(body, sig)) {
        return Err(Refusal::BadSignature);
    }
    parse_object(body)
}

/// An ERP event as the endpoint checks it once read: `signature` (the
/// `X-Contract-Recon-Signature` header) signs `body` with `key`, and the
/// body is a JSON object with a non-empty string `record_id`. Pure: no I/O.
pub fn check_erp_event(
    key: &ErpEventKey,
    body: &[u8],
    signature: Option<&str>,
) -> Result<ErpEvent, Refusal> {
    if !signature.is_some_and(|sig| key.verify(body, sig)) {
        return Err(Refusal::BadSignature);
    }
    let event: ErpEvent = parse_object(body)?;
    if event.record_id.trim().is_empty() {
        return Err(Refusal::Malformed {
            kind: "Data".into(),
            line: 0,
            column: 0,
        });
    }
    Ok(event)
}

/// The body once the daemon takes deliveries and it is within
/// `max_body_bytes`; else the answer (503, 413), counted and logged.
async fn read_body(
    s: &WebhookState,
    job: &str,
    metric_prefix: &str,
    max_body_bytes: usize,
    headers: &HeaderMap,
    body: Body,
) -> Result<axum::body::Bytes, Response> {
    if !s.accepting.load(Ordering::SeqCst) {
        return Err(answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping; deliver again later",
        ));
    }
    let too_large = || {
        s.metrics
            .record_webhook(job, &format!("{metric_prefix}too_large"));
        answer(StatusCode::PAYLOAD_TOO_LARGE, "body over max_body_bytes")
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body_bytes as u64) {
        tracing::warn!(%job, bytes = declared, "webhook refused: body over max_body_bytes");
        return Err(too_large());
    }
    axum::body::to_bytes(body, max_body_bytes)
        .await
        .map_err(|_| {
            tracing::warn!(%job, "webhook refused: body over max_body_bytes (or cut short)");
            too_large()
        })
}

/// The answer to a refused delivery (401, 400), counted and logged without
/// the body.
fn refuse(
    s: &WebhookState,
    job: &str,
    metric_prefix: &str,
    signature_header: &str,
    expected: &str,
    bytes: usize,
    refusal: Refusal,
) -> Response {
    let count = |outcome: &str| {
        s.metrics
            .record_webhook(job, &format!("{metric_prefix}{outcome}"))
    };
    match refusal {
        Refusal::BadSignature => {
            count("bad_signature");
            tracing::warn!(%job, header = signature_header, "webhook refused: bad or missing signature");
            answer(
                StatusCode::UNAUTHORIZED,
                &format!("bad or missing {signature_header}"),
            )
        }
        Refusal::Malformed { kind, line, column } => {
            count("malformed");
            tracing::warn!(%job, %kind, line, column, bytes, "webhook refused: not {expected}");
            answer(StatusCode::BAD_REQUEST, &format!("expected {expected}"))
        }
    }
}

/// The value of header `name`, when it is text.
fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn deliver(
    State(s): State<WebhookState>,
    Path(job): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(endpoint) = s.endpoints.get(&job) else {
        return answer(StatusCode::NOT_FOUND, "no job of this name takes webhooks");
    };
    let body = match read_body(&s, &job, "", endpoint.max_body_bytes, &headers, body).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let count = |outcome: &str| s.metrics.record_webhook(&job, outcome);
    let signature = header_text(&headers, SIGNATURE_HEADER);
    let delivery = match check_delivery(&endpoint.key, &body, signature) {
        Ok(delivery) => delivery,
        Err(refusal) => {
            let expected = "JSON with an integer contract_id";
            return refuse(
                &s,
                &job,
                "",
                SIGNATURE_HEADER,
                expected,
                body.len(),
                refusal,
            );
        }
    };
    match endpoint.queue.enqueue(&delivery, &body).await {
        Ok(queued) => {
            let duplicate = queued == Enqueued::Duplicate;
            count(if duplicate { "duplicate" } else { "queued" });
            tracing::info!(
                %job, contract_id = delivery.contract_id, activity = ?delivery.activity, duplicate,
                "webhook queued"
            );
            endpoint.wake.notify_one();
            let body = json!({ "queued": delivery.contract_id, "duplicate": duplicate });
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
        Err(e) => {
            count("store_error");
            tracing::error!(%job, error = %crate::error_chain::error_chain(&e), "webhook not queued");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not queue the delivery",
            )
        }
    }
}

async fn deliver_erp(
    State(s): State<WebhookState>,
    Path(job): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(endpoint) = s.erp_endpoints.get(&job) else {
        return answer(
            StatusCode::NOT_FOUND,
            "no job of this name takes ERP events",
        );
    };
    let body = match read_body(&s, &job, "erp_", endpoint.max_body_bytes, &headers, body).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let count = |outcome: &str| s.metrics.record_webhook(&job, &format!("erp_{outcome}"));
    let signature = header_text(&headers, ERP_SIGNATURE_HEADER);
    let event = match check_erp_event(&endpoint.key, &body, signature) {
        Ok(event) => event,
        Err(refusal) => {
            let expected = "JSON with a non-empty string record_id";
            return refuse(
                &s,
                &job,
                "erp_",
                ERP_SIGNATURE_HEADER,
                expected,
                body.len(),
                refusal,
            );
        }
    };
    match endpoint.queue.enqueue(&event, &body).await {
        Ok(queued) => {
            let duplicate = queued == Enqueued::Duplicate;
            count(if duplicate { "duplicate" } else { "queued" });
            tracing::info!(
                %job, record_id = %event.record_id.trim(), event = ?event.event, duplicate,
                "ERP event queued"
            );
            endpoint.wake.notify_one();
            let body = json!({ "queued": event.record_id.trim(), "duplicate": duplicate });
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
        Err(e) => {
            count("store_error");
            tracing::error!(%job, error = %crate::error_chain::error_chain(&e), "ERP event not queued");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not queue the event",
            )
        }
    }
}
