//! The sandbox ERP API: a generic JSON REST contract for ERP contract records.
//!
//! ## ERP sandbox API
//!
//! Base URL: `http://HOST:PORT/erp/`. Every request needs
//! `Authorization: Bearer <erp_token>` (else `401`). Errors are JSON
//! `{"error": "<code>", "message": "<text>"}`.
//!
//! | Request | Answer |
//! |---|---|
//! | `GET contracts/{erp_record_id}` | `200` record, `ETag: "<version>"`; `404` unknown |
//! | `PATCH contracts/{erp_record_id}` | body `{"fields": {...}}`; `200` record with the new version |
//! | `POST contracts/{erp_record_id}/attachments` | multipart `file`, `file_name`, `sha256`; `200` record |
//! | `POST batch` | `{"operations": [{"op": "patch", "erp_record_id", "fields", "if_match"?, "idempotency_key"?}]}`; `200` `{"results": [...]}` |
//! | `GET _writes` | the write log: `[{at, method, path, idempotency_key, applied, status}]` |
//!
//! A record is
//! `{"erp_record_id", "version", "fields": {<canonical name>: text or null}, "attachments": [{file_name, sha256, size}]}`.
//! Canonical field names: `spotdraft_contract_id`, `vendor_id`, `po_number`,
//! `legal_entity_id`, `status`, `amount`, `currency`, `effective_date`,
//! `expiry_date`, `document_sha256`. Values are text or `null`.
//!
//! Writes (`PATCH`, `POST`):
//! - need an `Idempotency-Key` header (`400 idempotency_key_required` without).
//!   A repeated key answers the first result (same status and body, header
//!   `Idempotent-Replayed: true`) without applying again; the same key on a
//!   different request is `422 idempotency_key_reused`.
//! - `PATCH`: an unknown field name or a non-text value is `422 unknown_field` /
//!   `422 invalid_value` (nothing applied). Optional `If-Match: "<version>"`:
//!   `412 precondition_failed` when the record has moved on. Success bumps `version`.
//! - attachments: parts in any order (`sha256` before or after `file`); the file
//!   is hashed as it arrives. `422 sha256_mismatch` when `sha256` (hex) is not the SHA-256 of
//!   `file`; a body cut short stores nothing; success stores the attachment, sets `document_sha256` and bumps `version`.
//! - batch: the `Idempotency-Key` header keys the whole batch; operations are
//!   applied one by one (not atomically). Each result is
//!   `{erp_record_id, status, version?, error?, replayed?}` with the status the
//!   same operation would get alone (`200`, `404`, `412`, `422`). An operation
//!   may carry its own `idempotency_key` (optional): it is then applied once per
//!   key, in any batch or as a single `PATCH` with that key (one key space), and
//!   a repeat answers its first result with `"replayed": true`.
//! - every write attempt, whatever its outcome, is appended to the write log
//!   (`applied` is true only when state changed).
//!
//! Faults (`/_sandbox/faults`, `erp` section): random `5xx`, `429` bursts (with
//! optional `Retry-After`), slow answers, `applied_but_502_next`: the next N
//! successful writes are applied, recorded and stored for replay, but answered
//! `502`, and `rate_limit_per_sec`: an exact limit, more than N requests in any
//! sliding 1-second window answered `429 rate_limited`.

use crate::sandbox::dataset::ErpRecord;
use crate::sandbox::erp_writes::{batch, patch_record, post_attachment};
use crate::sandbox::faults::{self, Api};
use crate::sandbox::server::AppState;
use crate::sandbox::store::{now_iso, ErpWrite, State as Store};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

/// Largest accepted request body (field updates, batches), bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Largest accepted attachment upload, bytes (streamed and hashed, never held whole).
pub const MAX_ATTACHMENT_BYTES: usize = 4 * 1024 * 1024 * 1024;

/// Response extension: whether the request changed ERP state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Applied(pub bool);

/// What a write did: its answer and whether it changed state.
pub(crate) struct Outcome {
    pub status: StatusCode,
    pub body: Value,
    pub applied: bool,
}

impl Outcome {
    pub fn error(status: StatusCode, code: &str, message: String) -> Outcome {
        Outcome {
            status,
            body: json!({"error": code, "message": message}),
            applied: false,
        }
    }
}

/// ERP routes, behind the bearer auth / fault gate that also keeps the write log.
pub(crate) fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/erp/contracts/{erp_record_id}",
            get(get_record).patch(patch_record),
        )
        .route(
            "/erp/contracts/{erp_record_id}/attachments",
            post(post_attachment).layer(DefaultBodyLimit::max(MAX_ATTACHMENT_BYTES)),
        )
        .route("/erp/batch", post(batch))
        .route("/erp/_writes", get(list_writes))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .route_layer(middleware::from_fn_with_state(state, gate))
}

pub(crate) fn erp_error(status: StatusCode, code: &str, message: &str) -> Response {
    respond(Outcome::error(status, code, message.to_string()))
}

pub(crate) fn respond(o: Outcome) -> Response {
    let etag = o
        .body
        .get("version")
        .and_then(Value::as_u64)
        .filter(|_| o.status.is_success());
    let mut resp = (o.status, Json(o.body)).into_response();
    if let Some(v) = etag.and_then(|v| HeaderValue::from_str(&format!("\"{v}\"")).ok()) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp.extensions_mut().insert(Applied(o.applied));
    resp
}

async fn gate(State(s): State<AppState>, req: Request, next: Next) -> Response {
    s.store.lock().counters.erp_requests += 1;
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let (key, authorized) = {
        let text = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let expected = format!("Bearer {}", s.credentials.erp_token);
        (
            text("idempotency-key"),
            text("authorization").as_deref() == Some(expected.as_str()),
        )
    };
    let resp = if !authorized {
        erp_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
        )
    } else if path == "/erp/_writes" {
        next.run(req).await
    } else if !admit(&s) {
        s.store.lock().counters.erp_rate_limited += 1;
        let msg = "more requests in one second than erp.rate_limit_per_sec allows";
        erp_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", msg)
    } else {
        let decision = s.faults.decide(Api::Erp);
        if let Some(delay) = decision.delay {
            tokio::time::sleep(delay).await;
        }
        match decision.reject {
            Some((status, retry_after)) => {
                s.store.lock().counters.faults_injected += 1;
                let mut resp = erp_error(status, "injected_fault", "injected sandbox fault");
                if let Some(secs) = retry_after {
                    resp.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                }
                resp
            }
            None => {
                let resp = next.run(req).await;
                faults::spoil(&s.faults, decision.cut, resp).await
            }
        }
    };
    if matches!(
        method,
        Method::POST | Method::PATCH | Method::PUT | Method::DELETE
    ) {
        let applied = resp.extensions().get::<Applied>().is_some_and(|a| a.0);
        let write = ErpWrite {
            at: now_iso(),
            method: method.to_string(),
            path,
            idempotency_key: key,
            applied,
            status: resp.status().as_u16(),
        };
        s.store.lock().writes.push(write);
    }
    resp
}

/// Records this request in the ERP's sliding 1-second window; false when it
/// is over `erp.rate_limit_per_sec` (always true without a limit).
fn admit(s: &AppState) -> bool {
    let Some(limit) = s.faults.erp_rate_limit() else {
        return true;
    };
    let now = tokio::time::Instant::now();
    let mut window = s.erp_window.lock().unwrap_or_else(|p| p.into_inner());
    while window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= std::time::Duration::from_secs(1))
    {
        window.pop_front();
    }
    window.push_back(now);
    window.len() <= limit as usize
}

pub(crate) fn record_json(st: &Store, r: &ErpRecord) -> Value {
    let mut fields = serde_json::to_value(r).unwrap_or_else(|_| json!({}));
    if let Some(obj) = fields.as_object_mut() {
        obj.remove("erp_record_id");
        obj.remove("version");
    }
    let attachments = st
        .attachments
        .get(&r.erp_record_id)
        .cloned()
        .unwrap_or_default();
    json!({"erp_record_id": r.erp_record_id, "version": r.version, "fields": fields, "attachments": attachments})
}

async fn get_record(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let st = s.store.lock();
    match st.erp.get(&id) {
        Some(r) => respond(Outcome {
            status: StatusCode::OK,
            body: record_json(&st, r),
            applied: false,
        }),
        None => erp_error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no ERP record {id}"),
        ),
    }
}

async fn list_writes(State(s): State<AppState>) -> Response {
    Json(s.store.lock().writes.clone()).into_response()
}
