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
//! | `POST batch` | `{"operations": [{"op": "patch", "erp_record_id", "fields", "if_match"?}]}`; `200` `{"results": [...]}` |
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
//! - attachments: `422 sha256_mismatch` when `sha256` (hex) is not the SHA-256 of
//!   `file`; success stores the attachment, sets `document_sha256` and bumps `version`.
//! - batch: one key for the whole batch; operations are applied one by one (not
//!   atomically). Each result is `{erp_record_id, status, version?, error?}` with
//!   the status the same operation would get alone (`200`, `404`, `412`, `422`).
//! - every write attempt, whatever its outcome, is appended to the write log
//!   (`applied` is true only when state changed).
//!
//! Faults (`/_sandbox/faults`, `erp` section): random `5xx`, `429` bursts (with
//! optional `Retry-After`), slow answers, and `applied_but_502_next`: the next N
//! successful writes are applied, recorded and stored for replay, but answered `502`.

use crate::sandbox::dataset::{ErpRecord, ERP_EXTRACT_COLUMNS};
use crate::sandbox::faults::Api;
use crate::sandbox::server::AppState;
use crate::sandbox::store::{now_iso, Attachment, ErpWrite, State as Store, StoredResponse};
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Largest accepted request body (attachments), bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Response extension: whether the request changed ERP state.
#[derive(Debug, Clone, Copy)]
struct Applied(bool);

/// What a write did: its answer and whether it changed state.
struct Outcome {
    status: StatusCode,
    body: Value,
    applied: bool,
}

impl Outcome {
    fn error(status: StatusCode, code: &str, message: String) -> Outcome {
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
            post(post_attachment),
        )
        .route("/erp/batch", post(batch))
        .route("/erp/_writes", get(list_writes))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .route_layer(middleware::from_fn_with_state(state, gate))
}

fn erp_error(status: StatusCode, code: &str, message: &str) -> Response {
    respond(Outcome::error(status, code, message.to_string()))
}

fn respond(o: Outcome) -> Response {
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
            None => next.run(req).await,
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

fn record_json(st: &Store, r: &ErpRecord) -> Value {
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

/// Runs a write once per `Idempotency-Key`; a repeated key replays the stored answer.
fn idempotent(
    s: &AppState,
    headers: &HeaderMap,
    fingerprint: String,
    apply: impl FnOnce(&mut Store) -> Outcome,
) -> Response {
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
    else {
        return erp_error(
            StatusCode::BAD_REQUEST,
            "idempotency_key_required",
            "writes need an Idempotency-Key header",
        );
    };
    let outcome = {
        let mut st = s.store.lock();
        if let Some(prev) = st.idempotency.get(key) {
            if prev.fingerprint != fingerprint {
                let msg =
                    format!("Idempotency-Key {key:?} was already used for a different request");
                return erp_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    &msg,
                );
            }
            let status = StatusCode::from_u16(prev.status).unwrap_or(StatusCode::OK);
            let mut resp = respond(Outcome {
                status,
                body: prev.body.clone(),
                applied: false,
            });
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            return resp;
        }
        let outcome = apply(&mut st);
        let stored = StoredResponse {
            fingerprint,
            status: outcome.status.as_u16(),
            body: outcome.body.clone(),
        };
        st.idempotency.insert(key.to_string(), stored);
        outcome
    };
    if outcome.applied && s.faults.take_applied_but_502() {
        s.store.lock().counters.faults_injected += 1;
        let mut resp = erp_error(
            StatusCode::BAD_GATEWAY,
            "bad_gateway",
            "upstream answered badly (injected)",
        );
        resp.extensions_mut().insert(Applied(true));
        return resp;
    }
    respond(outcome)
}

/// `"3"`, `W/"3"`, `3` -> 3.
fn parse_version(raw: &str) -> Option<u64> {
    raw.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .ok()
}

/// Validates and applies a field patch to one record.
fn apply_patch(
    st: &mut Store,
    id: &str,
    fields: &Map<String, Value>,
    if_match: Option<u64>,
) -> Outcome {
    let Some(record) = st.erp.get(id).cloned() else {
        return Outcome::error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no ERP record {id}"),
        );
    };
    if let Some(expected) = if_match.filter(|v| *v != record.version) {
        let msg = format!(
            "record {id} is at version {}, If-Match named {expected}",
            record.version
        );
        let mut o = Outcome::error(StatusCode::PRECONDITION_FAILED, "precondition_failed", msg);
        o.body["current_version"] = json!(record.version);
        return o;
    }
    let mut obj = serde_json::to_value(&record).unwrap_or_else(|_| json!({}));
    for (name, value) in fields {
        let patchable = ERP_EXTRACT_COLUMNS
            .iter()
            .any(|(canonical, _)| canonical == name)
            && name != "erp_record_id";
        if !patchable {
            return Outcome::error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_field",
                format!("unknown field {name:?}"),
            );
        }
        if !(value.is_string() || value.is_null()) {
            let msg = format!("field {name:?} must be text or null, got {value}");
            return Outcome::error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", msg);
        }
        obj[name.as_str()] = value.clone();
    }
    let mut updated: ErpRecord = match serde_json::from_value(obj) {
        Ok(r) => r,
        Err(e) => {
            return Outcome::error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_value",
                e.to_string(),
            )
        }
    };
    updated.version = record.version + 1;
    st.erp.insert(id.to_string(), updated.clone());
    Outcome {
        status: StatusCode::OK,
        body: record_json(st, &updated),
        applied: true,
    }
}

async fn patch_record(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(fields) = parsed.get("fields").and_then(Value::as_object).cloned() else {
        return erp_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "body must be JSON {\"fields\": {...}}",
        );
    };
    let if_match = match headers
        .get(header::IF_MATCH)
        .map(|v| v.to_str().ok().and_then(parse_version))
    {
        Some(None) => {
            return erp_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "If-Match must be \"<version>\"",
            )
        }
        Some(Some(v)) => Some(v),
        None => None,
    };
    let fingerprint = format!("PATCH {id} {} {if_match:?}", Value::Object(fields.clone()));
    idempotent(&s, &headers, fingerprint, |st| {
        apply_patch(st, &id, &fields, if_match)
    })
}

async fn post_attachment(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let bad = |msg: &str| erp_error(StatusCode::BAD_REQUEST, "bad_request", msg);
    let Ok(mut multipart) = multipart else {
        return bad("body must be multipart/form-data");
    };
    let (mut file, mut file_name, mut claimed) = (None, None, None);
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return bad(&format!("bad multipart body: {e}")),
        };
        let name = field.name().unwrap_or_default().to_string();
        let upload_name = field.file_name().map(str::to_string);
        let Ok(bytes) = field.bytes().await else {
            return bad("bad multipart body");
        };
        match name.as_str() {
            "file" => {
                file_name = file_name.or(upload_name);
                file = Some(bytes);
            }
            "file_name" => file_name = Some(String::from_utf8_lossy(&bytes).into_owned()),
            "sha256" => claimed = Some(String::from_utf8_lossy(&bytes).trim().to_lowercase()),
            _ => {}
        }
    }
    let (Some(file), Some(file_name), Some(claimed)) = (file, file_name, claimed) else {
        return bad("multipart needs the parts file, file_name and sha256");
    };
    let actual = hex::encode(Sha256::digest(&file));
    let fingerprint = format!("ATTACH {id} {file_name} {claimed} {actual}");
    idempotent(&s, &headers, fingerprint, |st| {
        let Some(mut record) = st.erp.get(&id).cloned() else {
            return Outcome::error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no ERP record {id}"),
            );
        };
        if claimed != actual {
            let msg = format!("sha256 {claimed} does not match the uploaded bytes ({actual})");
            return Outcome::error(StatusCode::UNPROCESSABLE_ENTITY, "sha256_mismatch", msg);
        }
        let attachment = Attachment {
            file_name,
            sha256: actual.clone(),
            size: file.len() as u64,
        };
        st.attachments
            .entry(id.clone())
            .or_default()
            .push(attachment);
        record.document_sha256 = Some(actual);
        record.version += 1;
        st.erp.insert(id.clone(), record.clone());
        Outcome {
            status: StatusCode::OK,
            body: record_json(st, &record),
            applied: true,
        }
    })
}

async fn batch(State(s): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(ops) = parsed.get("operations").and_then(Value::as_array).cloned() else {
        return erp_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "body must be JSON {\"operations\": [...]}",
        );
    };
    let fingerprint = format!("BATCH {}", Value::Array(ops.clone()));
    idempotent(&s, &headers, fingerprint, |st| {
        let mut applied = false;
        let results: Vec<Value> = ops
            .iter()
            .map(|op| batch_op(st, op, &mut applied))
            .collect();
        Outcome {
            status: StatusCode::OK,
            body: json!({"results": results}),
            applied,
        }
    })
}

fn batch_op(st: &mut Store, op: &Value, applied: &mut bool) -> Value {
    let id = op
        .get("erp_record_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let if_match = match op.get("if_match") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or(()),
        Some(Value::String(s)) => parse_version(s).map(Some).ok_or(()),
        Some(_) => Err(()),
    };
    let outcome = match (
        op.get("op").and_then(Value::as_str),
        op.get("fields").and_then(Value::as_object),
        if_match,
    ) {
        (Some("patch"), Some(fields), Ok(if_match)) if !id.is_empty() => {
            apply_patch(st, &id, fields, if_match)
        }
        _ => {
            let msg = "operation must be {\"op\": \"patch\", \"erp_record_id\", \"fields\", \"if_match\"?}".to_string();
            Outcome::error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_operation", msg)
        }
    };
    *applied |= outcome.applied;
    let mut result = json!({"erp_record_id": id, "status": outcome.status.as_u16()});
    if outcome.status.is_success() {
        result["version"] = outcome.body["version"].clone();
    } else {
        result["error"] = outcome.body;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_from_etag_forms() {
        assert_eq!(parse_version("\"3\""), Some(3));
        assert_eq!(parse_version("W/\"4\""), Some(4));
        assert_eq!(parse_version("5"), Some(5));
        assert_eq!(parse_version("x"), None);
    }

    #[test]
    fn patch_checks_fields_values_and_version() {
        let mut st = Store::default();
        st.erp.insert(
            "E-1".into(),
            ErpRecord {
                erp_record_id: "E-1".into(),
                version: 1,
                ..ErpRecord::default()
            },
        );
        let fields = |v: Value| v.as_object().unwrap().clone();
        let bad_field = apply_patch(&mut st, "E-1", &fields(json!({"colour": "red"})), None);
        assert_eq!((bad_field.status.as_u16(), bad_field.applied), (422, false));
        assert_eq!(
            apply_patch(&mut st, "E-1", &fields(json!({"amount": 3})), None)
                .status
                .as_u16(),
            422
        );
        assert_eq!(
            apply_patch(
                &mut st,
                "E-1",
                &fields(json!({"erp_record_id": "E-2"})),
                None
            )
            .status
            .as_u16(),
            422
        );
        assert_eq!(
            apply_patch(&mut st, "E-1", &fields(json!({"amount": "1"})), Some(9))
                .status
                .as_u16(),
            412
        );
        let ok = apply_patch(
            &mut st,
            "E-1",
            &fields(json!({"amount": "1.50", "currency": null})),
            Some(1),
        );
        assert_eq!(
            (ok.status.as_u16(), ok.body["version"].as_u64()),
            (200, Some(2))
        );
        assert_eq!(st.erp["E-1"].amount.as_deref(), Some("1.50"));
        assert_eq!(
            apply_patch(&mut st, "E-9", &fields(json!({})), None)
                .status
                .as_u16(),
            404
        );
    }
}
