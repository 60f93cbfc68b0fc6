//! ERP sandbox writes: idempotency keys, field patches, attachments and batches
//! (the contract is documented in [`crate::sandbox::erp`]).

use crate::sandbox::dataset::{ErpRecord, ERP_EXTRACT_COLUMNS};
use crate::sandbox::erp::{erp_error, record_json, respond, Applied, Outcome};
use crate::sandbox::server::AppState;
use crate::sandbox::store::{Attachment, State as Store, StoredResponse};
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

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

/// What a repeated key must match to replay a patch (single or batch operation).
fn patch_fingerprint(id: &str, fields: &Map<String, Value>, if_match: Option<u64>) -> String {
    format!("PATCH {id} {} {if_match:?}", Value::Object(fields.clone()))
}

/// A batch operation with its own `idempotency_key`: applied once per key,
/// like a single `PATCH` with that key (the two share one key space); a
/// repeat replays the stored answer (`replayed`).
fn keyed_patch(
    st: &mut Store,
    key: &str,
    id: &str,
    fields: &Map<String, Value>,
    if_match: Option<u64>,
) -> (Outcome, bool) {
    let fingerprint = patch_fingerprint(id, fields, if_match);
    if let Some(prev) = st.idempotency.get(key) {
        if prev.fingerprint != fingerprint {
            let msg = format!("Idempotency-Key {key:?} was already used for a different request");
            let o = Outcome::error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                msg,
            );
            return (o, false);
        }
        let status = StatusCode::from_u16(prev.status).unwrap_or(StatusCode::OK);
        let o = Outcome {
            status,
            body: prev.body.clone(),
            applied: false,
        };
        return (o, true);
    }
    let outcome = apply_patch(st, id, fields, if_match);
    let stored = StoredResponse {
        fingerprint,
        status: outcome.status.as_u16(),
        body: outcome.body.clone(),
    };
    st.idempotency.insert(key.to_string(), stored);
    (outcome, false)
}

pub(crate) async fn patch_record(
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
    let fingerprint = patch_fingerprint(&id, &fields, if_match);
    idempotent(&s, &headers, fingerprint, |st| {
        apply_patch(st, &id, &fields, if_match)
    })
}

pub(crate) async fn post_attachment(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let bad = |msg: &str| erp_error(StatusCode::BAD_REQUEST, "bad_request", msg);
    let Ok(mut multipart) = multipart else {
        return bad("body must be multipart/form-data");
    };
    // Parts in any order; the file is hashed as it arrives, never held whole.
    let (mut file, mut file_name, mut claimed) = (None::<(String, u64)>, None, None);
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return bad(&format!("bad multipart body: {e}")),
        };
        let name = field.name().unwrap_or_default().to_string();
        let upload_name = field.file_name().map(str::to_string);
        if name == "file" {
            let (mut hasher, mut size) = (Sha256::new(), 0u64);
            loop {
                match field.chunk().await {
                    Ok(Some(chunk)) => {
                        hasher.update(&chunk);
                        size += chunk.len() as u64;
                    }
                    Ok(None) => break,
                    Err(e) => return bad(&format!("bad multipart body: {e}")),
                }
            }
            file_name = file_name.or(upload_name);
            file = Some((hex::encode(hasher.finalize()), size));
            continue;
        }
        let Ok(bytes) = field.bytes().await else {
            return bad("bad multipart body");
        };
        match name.as_str() {
            "file_name" => file_name = Some(String::from_utf8_lossy(&bytes).into_owned()),
            "sha256" => claimed = Some(String::from_utf8_lossy(&bytes).trim().to_lowercase()),
            _ => {}
        }
    }
    let (Some((actual, size)), Some(file_name), Some(claimed)) = (file, file_name, claimed) else {
        return bad("multipart needs the parts file, file_name and sha256");
    };
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
            size,
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

pub(crate) async fn batch(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
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
    let key = match op.get("idempotency_key") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(k)) if !k.is_empty() => Ok(Some(k.as_str())),
        Some(_) => Err(()),
    };
    let (outcome, replayed) = match (
        op.get("op").and_then(Value::as_str),
        op.get("fields").and_then(Value::as_object),
        if_match,
        key,
    ) {
        (Some("patch"), Some(fields), Ok(if_match), Ok(key)) if !id.is_empty() => match key {
            Some(key) => keyed_patch(st, key, &id, fields, if_match),
            None => (apply_patch(st, &id, fields, if_match), false),
        },
        _ => {
            let msg = "operation must be {\"op\": \"patch\", \"erp_record_id\", \"fields\", \"if_match\"?, \"idempotency_key\"?}".to_string();
            let o = Outcome::error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_operation", msg);
            (o, false)
        }
    };
    *applied |= outcome.applied;
    let mut result = json!({"erp_record_id": id, "status": outcome.status.as_u16()});
    if outcome.status.is_success() {
        result["version"] = outcome.body["version"].clone();
    } else {
        result["error"] = outcome.body;
    }
    if replayed {
        result["replayed"] = json!(true);
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
