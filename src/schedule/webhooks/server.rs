//! The webhook endpoint: `POST /webhooks/spotdraft/{job}`. A delivery is
//! answered 2xx only once it is durably queued; anything else is refused
//! before it is processed:
//! - 404: no job of that name takes webhooks;
//! - 503: the daemon is stopping;
//! - 413: the body is larger than the job's `max_body_bytes` (refused on its
//!   `Content-Length` before reading it, or as soon as it is read past that);
//! - 401: `X-SD-WEBHOOK-CONTENT-HASH` missing or not the body's signature;
//! - 400: the body is not JSON with an integer `contract_id` (logged
//!   without the body);
//! - 500: the queue could not be written (SpotDraft delivers again).

use super::queue::{Enqueued, WebhookQueue};
use super::signature::{WebhookKey, SIGNATURE_HEADER};
use super::Delivery;
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

/// The endpoints by job name, and whether deliveries are still taken.
#[derive(Debug, Clone)]
pub struct WebhookState {
    endpoints: Arc<BTreeMap<String, Endpoint>>,
    accepting: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl WebhookState {
    /// Takes deliveries for `endpoints` (job name -> endpoint).
    pub fn new(endpoints: BTreeMap<String, Endpoint>, metrics: Arc<Metrics>) -> WebhookState {
        WebhookState {
            endpoints: Arc::new(endpoints),
            accepting: Arc::new(AtomicBool::new(true)),
            metrics,
        }
    }

    /// From now on deliveries are answered 503 (the daemon is stopping;
    /// SpotDraft delivers them again later).
    pub fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::SeqCst);
    }
}

/// `POST /webhooks/spotdraft/{job}`.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route("/webhooks/spotdraft/{job}", post(deliver))
        .with_state(state)
}

fn answer(code: StatusCode, message: &str) -> Response {
    (code, Json(json!({ "error": message }))).into_response()
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
    if !s.accepting.load(Ordering::SeqCst) {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping; deliver again later",
        );
    }
    let count = |outcome: &str| s.metrics.record_webhook(&job, outcome);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > endpoint.max_body_bytes as u64) {
        count("too_large");
        tracing::warn!(%job, bytes = declared, "webhook refused: body over max_body_bytes");
        return answer(StatusCode::PAYLOAD_TOO_LARGE, "body over max_body_bytes");
    }
    let Ok(body) = axum::body::to_bytes(body, endpoint.max_body_bytes).await else {
        count("too_large");
        tracing::warn!(%job, "webhook refused: body over max_body_bytes (or cut short)");
        return answer(StatusCode::PAYLOAD_TOO_LARGE, "body over max_body_bytes");
    };
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    if !signature.is_some_and(|sig| endpoint.key.verify(&body, sig)) {
        count("bad_signature");
        tracing::warn!(%job, signed = signature.is_some(), "webhook refused: bad or missing signature");
        return answer(
            StatusCode::UNAUTHORIZED,
            "bad or missing X-SD-WEBHOOK-CONTENT-HASH",
        );
    }
    // An object: serde would also read a struct from an array.
    let parsed = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body)
        .and_then(|object| serde_json::from_value::<Delivery>(object.into()));
    let delivery = match parsed {
        Ok(d) => d,
        Err(e) => {
            count("malformed");
            // The error's position only: its text may quote the body.
            tracing::warn!(
                %job, kind = ?e.classify(), line = e.line(), column = e.column(), bytes = body.len(),
                "webhook refused: not JSON with an integer contract_id"
            );
            return answer(
                StatusCode::BAD_REQUEST,
                "expected JSON with an integer contract_id",
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
            tracing::error!(%job, error = %e, "webhook not queued");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not queue the delivery",
            )
        }
    }
}
