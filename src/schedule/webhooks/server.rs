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

/// The checks every delivery passes before its body is parsed, for a job's
/// endpoint of one kind.
struct Gate<'a> {
    /// Metric outcomes are prefixed with this (`""`, `"erp_"`).
    metric_prefix: &'static str,
    max_body_bytes: usize,
    /// The signature's header.
    header: &'static str,
    /// Whether a header value signs the body.
    verify: &'a (dyn Fn(&[u8], &str) -> bool + Send + Sync),
}

/// The body once the daemon takes deliveries, it is within
/// `max_body_bytes` and its signature is good; else the answer (503, 413,
/// 401), counted and logged.
async fn signed_body(
    s: &WebhookState,
    job: &str,
    gate: Gate<'_>,
    headers: &HeaderMap,
    body: Body,
) -> Result<axum::body::Bytes, Response> {
    if !s.accepting.load(Ordering::SeqCst) {
        return Err(answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping; deliver again later",
        ));
    }
    let count = |outcome: &str| {
        s.metrics
            .record_webhook(job, &format!("{}{outcome}", gate.metric_prefix))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > gate.max_body_bytes as u64) {
        count("too_large");
        tracing::warn!(%job, bytes = declared, "webhook refused: body over max_body_bytes");
        return Err(answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body over max_body_bytes",
        ));
    }
    let Ok(body) = axum::body::to_bytes(body, gate.max_body_bytes).await else {
        count("too_large");
        tracing::warn!(%job, "webhook refused: body over max_body_bytes (or cut short)");
        return Err(answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body over max_body_bytes",
        ));
    };
    let signature = headers.get(gate.header).and_then(|v| v.to_str().ok());
    if !signature.is_some_and(|sig| (gate.verify)(&body, sig)) {
        count("bad_signature");
        tracing::warn!(%job, header = gate.header, signed = signature.is_some(), "webhook refused: bad or missing signature");
        return Err(answer(
            StatusCode::UNAUTHORIZED,
            &format!("bad or missing {}", gate.header),
        ));
    }
    Ok(body)
}

/// `T` from a JSON object body (serde would also read a struct from an
/// array); `None` (counted `malformed`, logged without the body) otherwise.
fn parse_object<T: serde::de::DeserializeOwned>(
    body: &[u8],
    job: &str,
    expected: &str,
    count: &dyn Fn(&str),
) -> Option<T> {
    let parsed = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body)
        .and_then(|object| serde_json::from_value::<T>(object.into()));
    match parsed {
        Ok(t) => Some(t),
        Err(e) => {
            count("malformed");
            // The error's position only: its text may quote the body.
            tracing::warn!(
                %job, kind = ?e.classify(), line = e.line(), column = e.column(), bytes = body.len(),
                "webhook refused: not {expected}"
            );
            None
        }
    }
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
    let verify = |body: &[u8], sig: &str| endpoint.key.verify(body, sig);
    let gate = Gate {
        metric_prefix: "",
        max_body_bytes: endpoint.max_body_bytes,
        header: SIGNATURE_HEADER,
        verify: &verify,
    };
    let body = match signed_body(&s, &job, gate, &headers, body).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let count = |outcome: &str| s.metrics.record_webhook(&job, outcome);
    let expected = "JSON with an integer contract_id";
    let Some(delivery) = parse_object::<Delivery>(&body, &job, expected, &count) else {
        return answer(StatusCode::BAD_REQUEST, &format!("expected {expected}"));
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
            tracing::error!(%job, error = %e, "webhook not queued");
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
    let verify = |body: &[u8], sig: &str| endpoint.key.verify(body, sig);
    let gate = Gate {
        metric_prefix: "erp_",
        max_body_bytes: endpoint.max_body_bytes,
        header: ERP_SIGNATURE_HEADER,
        verify: &verify,
    };
    let body = match signed_body(&s, &job, gate, &headers, body).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let count = |outcome: &str| s.metrics.record_webhook(&job, &format!("erp_{outcome}"));
    let expected = "JSON with a non-empty string record_id";
    let Some(event) = parse_object::<ErpEvent>(&body, &job, expected, &count) else {
        return answer(StatusCode::BAD_REQUEST, &format!("expected {expected}"));
    };
    if event.record_id.trim().is_empty() {
        count("malformed");
        tracing::warn!(%job, "ERP event refused: empty record_id");
        return answer(StatusCode::BAD_REQUEST, &format!("expected {expected}"));
    }
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
            tracing::error!(%job, error = %e, "ERP event not queued");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not queue the event",
            )
        }
    }
}
