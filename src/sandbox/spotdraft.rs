//! The sandbox SpotDraft API (v2.1 paths under `/api/`), shaped like SpotDraft's
//! published OpenAPI description: client-id/secret auth, a per-workspace rate
//! limit, the contract list with filters, metadata values, documents,
//! external metadata and the webhook HMAC key.

use crate::sandbox::dataset::FixtureContract;
use crate::sandbox::faults::{self, Api};
use crate::sandbox::filters::parse_list_query;
use crate::sandbox::mutations;
use crate::sandbox::server::AppState;
use crate::sandbox::store::{now_iso, SignedLink};
use crate::spotdraft::model::ExternalMetadata;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

/// How long a download link stays valid.
pub const SIGNED_LINK_TTL: Duration = Duration::from_secs(15 * 60);

const CONTRACTS: &str = "/api/v2.1/public/contracts/";
const KEY_POINTERS: &str = "/api/v2.1/public/contracts/{composite_id}/key_pointers";
const DOWNLOAD: &str = "/api/v2.1/public/contracts/{composite_id}/download";
const DOWNLOAD_LINK: &str = "/api/v2.1/public/contracts/{composite_id}/download_link";
const EXTERNAL_METADATA: &str = "/api/v2.1/public/contracts/{contract_id}/external_metadata";
const HMAC_KEY: &str = "/api/v2.1/public/webhooks/hmac_key/";
const CONTRACT_TYPES: &str = "/api/v2.1/public/contract_types/";
const KEY_POINTER_DEFINITIONS: &str = "/api/v2.1/public/key_pointers/";
const BY_EXTERNAL_METADATA: &str =
    "/api/v2.1/public/contracts/by_external_metadata/{external_metadata_id}";
const SUPPORTED_DOCUMENTS: &str = "/api/v2.1/public/supported_documents/{contract_id}/";
const TEMPLATE_METADATA: &str = "/api/v2.1/public/templates/{template_id}/metadata";
/// The documented paths served, exactly (slash included or not).
const DOCUMENTED: [&str; 11] = [
    BY_EXTERNAL_METADATA,
    SUPPORTED_DOCUMENTS,
    TEMPLATE_METADATA,
    CONTRACT_TYPES,
    KEY_POINTER_DEFINITIONS,
    CONTRACTS,
    KEY_POINTERS,
    DOWNLOAD,
    DOWNLOAD_LINK,
    EXTERNAL_METADATA,
    HMAC_KEY,
];

/// SpotDraft routes, behind the auth / rate limit / fault gate.
pub(crate) fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route(
            CONTRACTS,
            get(list_contracts).post(super::spotdraft_create::create_contract),
        )
        .route(
            BY_EXTERNAL_METADATA,
            get(super::spotdraft_create::by_external_metadata),
        )
        .route(
            SUPPORTED_DOCUMENTS,
            post(super::spotdraft_create::upload_supported_document),
        )
        .route(
            TEMPLATE_METADATA,
            get(super::spotdraft_create::template_metadata),
        )
        .route(KEY_POINTERS, get(key_pointers))
        .route(DOWNLOAD, post(download))
        .route(DOWNLOAD_LINK, post(download_link))
        .route(
            EXTERNAL_METADATA,
            get(get_external_metadata).post(post_external_metadata),
        )
        .route(HMAC_KEY, get(hmac_key))
        .route(CONTRACT_TYPES, get(contract_types))
        .route(KEY_POINTER_DEFINITIONS, get(key_pointer_definitions))
        .route_layer(middleware::from_fn_with_state(state, gate))
}

/// SpotDraft's error body `{detail, message, code, status_code}`.
pub(crate) fn sd_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"detail": message, "message": message, "code": code, "status_code": status.as_u16()});
    (status, Json(body)).into_response()
}

pub(crate) fn not_found(id: &str) -> Response {
    sd_error(
        StatusCode::NOT_FOUND,
        "SD_CONTRACT_NOT_FOUND",
        &format!("Contract {id} does not exist."),
    )
}

/// Unmatched paths: 302 to the documented path on a trailing-slash mismatch, else 404.
pub(crate) async fn fallback(uri: Uri) -> Response {
    let path = uri.path();
    if !path.starts_with("/api/") {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "not_found", "message": format!("no route {path}")})),
        )
            .into_response();
    }
    let toggled = match path.strip_suffix('/') {
        Some(p) => p.to_string(),
        None => format!("{path}/"),
    };
    if DOCUMENTED.iter().any(|t| matches_template(t, &toggled)) {
        let location = match uri.query() {
            Some(q) => format!("{toggled}?{q}"),
            None => toggled,
        };
        let mut resp = StatusCode::FOUND.into_response();
        if let Ok(v) = HeaderValue::from_str(&location) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        return resp;
    }
    sd_error(
        StatusCode::NOT_FOUND,
        "SD_NOT_FOUND",
        &format!("No such API path: {path}"),
    )
}

fn matches_template(template: &str, path: &str) -> bool {
    let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()))
}

/// Auth, then the sliding-window rate limit, then injected faults.
async fn gate(State(s): State<AppState>, req: Request, next: Next) -> Response {
    s.store.lock().counters.spotdraft_requests += 1;
    let headers = req.headers();
    let header_text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (client_id, secret) = (header_text("client-id"), header_text("client-secret"));
    if client_id != s.credentials.client_id || secret != s.credentials.client_secret {
        s.store.lock().counters.unauthorized += 1;
        return sd_error(
            StatusCode::UNAUTHORIZED,
            "SD_AUTHENTICATION_FAILED",
            "Invalid client-id or client-secret.",
        );
    }
    if !admit(&s, &client_id) {
        s.store.lock().counters.rate_limited += 1;
        return sd_error(
            StatusCode::TOO_MANY_REQUESTS,
            "SD_RATE_LIMIT_EXCEEDED",
            "Request was throttled.",
        );
    }
    let decision = s.faults.decide(Api::SpotDraft);
    if let Some(delay) = decision.delay {
        tokio::time::sleep(delay).await;
    }
    if let Some((status, retry_after)) = decision.reject {
        s.store.lock().counters.faults_injected += 1;
        let code = if status == StatusCode::TOO_MANY_REQUESTS {
            "SD_RATE_LIMIT_EXCEEDED"
        } else {
            "SD_SERVER_ERROR"
        };
        let mut resp = sd_error(status, code, "Injected sandbox fault.");
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        return resp;
    }
    let resp = next.run(req).await;
    faults::spoil(&s.faults, decision.cut, resp).await
}

/// Records this request in the workspace's 1-second window; false when over the limit.
fn admit(s: &AppState, workspace: &str) -> bool {
    let now = Instant::now();
    let mut windows = s.windows.lock().unwrap_or_else(|p| p.into_inner());
    let window = windows.entry(workspace.to_string()).or_default();
    while window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
    {
        window.pop_front();
    }
    window.push_back(now);
    window.len() <= s.rate_limit_per_sec as usize
}

/// A contract as the API sends it: no `last_updated_on`, with `created_by_workspace`.
pub(crate) fn api_contract(c: &FixtureContract) -> Value {
    let mut v = serde_json::to_value(&c.contract).unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.remove("last_updated_on");
        obj.entry("created_by_workspace").or_insert(json!(1));
    }
    v
}

async fn list_contracts(State(s): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    if let Some(kind) = s.faults.page_shift_tick() {
        mutations::perform(&s, kind);
    }
    let query = match parse_list_query(raw.as_deref().unwrap_or("")) {
        Ok(q) => q,
        Err(e) => return sd_error(StatusCode::BAD_REQUEST, "SD_INVALID_QUERY_PARAMETER", &e.0),
    };
    let start = u64::from(query.page - 1) * u64::from(query.limit);
    let end = start + u64::from(query.limit);
    let (total, results) = {
        let mut st = s.store.lock();
        st.counters.list_requests += 1;
        let ids = st.listing(&query.selection, |c| query.matches(c));
        let len = ids.len();
        let page = &ids[(start as usize).min(len)..(end as usize).min(len)];
        let results: Vec<Value> = page
            .iter()
            .filter_map(|id| st.contract(id))
            .map(api_contract)
            .collect();
        (ids.len() as u64, results)
    };
    let body = json!({"page": query.page, "limit": query.limit, "total_results": total, "results": results});
    let mut bytes = serde_json::to_vec(&body).unwrap_or_default();
    let cut = if s.faults.take_malformed() {
        Some(bytes.len() / 2)
    } else {
        s.faults.take_truncation(bytes.len())
    };
    if let Some(at) = cut {
        s.store.lock().counters.faults_injected += 1;
        bytes.truncate(at);
    }
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

async fn key_pointers(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    s.store.lock().counters.key_pointers_requests += 1;
    if mutations::vanish_before_enrich(&s, &id) {
        return not_found(&id);
    }
    let st = s.store.lock();
    match st.resolve_id(&id).and_then(|k| st.contract(&k)) {
        Some(c) => Json(c.key_pointers.clone()).into_response(),
        None => not_found(&id),
    }
}

/// `GET contract_types/`: the contract types of the workspace's contracts,
/// `[{id, name}]` by id.
async fn contract_types(State(s): State<AppState>) -> Response {
    let st = s.store.lock();
    let types: std::collections::BTreeMap<i64, String> = st
        .ordered()
        .filter_map(|c| {
            let c = &c.contract;
            Some((c.contract_type_id?, c.contract_type_name.clone()))
        })
        .collect();
    let body: Vec<Value> = types
        .into_iter()
        .map(|(id, name)| json!({"id": id, "name": name}))
        .collect();
    Json(body).into_response()
}

/// `GET key_pointers/?contract_type_id=` (required): the metadata definitions
/// of a contract type, one per field name its contracts hold, as
/// `KeyPointerDomainModel` (`{id, descriptors: [{display_label, variable, type}], section}`).
async fn key_pointer_definitions(
    State(s): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let Some(type_id) = q
        .get("contract_type_id")
        .and_then(|v| v.parse::<i64>().ok())
    else {
        return sd_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "contract_type_id (integer) is required",
        );
    };
    let st = s.store.lock();
    let mut fields: std::collections::BTreeMap<String, (i64, String)> = Default::default();
    for c in st
        .ordered()
        .filter(|c| c.contract.contract_type_id == Some(type_id))
    {
        for k in &c.key_pointers {
            fields
                .entry(k.field_name.clone())
                .or_insert((k.id, k.label.clone()));
        }
    }
    let body: Vec<Value> = fields
        .into_iter()
        .map(|(variable, (id, label))| {
            json!({
                "id": id,
                "descriptors": [{"display_label": label, "variable": variable, "type": "string"}],
                "section": {"id": 1, "section_type": "SYSTEM_DEFINED", "name": "Key Pointers"},
            })
        })
        .collect();
    Json(body).into_response()
}

/// Why a document cannot be served.
enum Missing {
    Contract,
    Document,
}

/// The contract's document name.
fn document_of(s: &AppState, id: &str) -> Result<String, Missing> {
    let st = s.store.lock();
    let c = st
        .resolve_id(id)
        .and_then(|k| st.contract(&k))
        .ok_or(Missing::Contract)?;
    c.document
        .clone()
        .filter(|d| st.documents.contains_key(d))
        .ok_or(Missing::Document)
}

fn missing(id: &str, what: Missing) -> Response {
    match what {
        Missing::Contract => not_found(id),
        Missing::Document => {
            let msg = format!("Contract {id} has no downloadable document.");
            sd_error(StatusCode::NOT_FOUND, "SD_DOCUMENT_NOT_FOUND", &msg)
        }
    }
}

async fn download(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    s.store.lock().counters.document_requests += 1;
    if mutations::vanish_before_enrich(&s, &id) {
        return not_found(&id);
    }
    let doc = match document_of(&s, &id) {
        Ok(d) => d,
        Err(what) => return missing(&id, what),
    };
    let bytes = s
        .store
        .lock()
        .documents
        .get(&doc)
        .cloned()
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/pdf")], bytes).into_response()
}

async fn download_link(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let doc = match document_of(&s, &id) {
        Ok(d) => d,
        Err(what) => return missing(&id, what),
    };
    let token = uuid::Uuid::new_v4().simple().to_string();
    let link = SignedLink {
        document: doc.clone(),
        expires: Instant::now() + SIGNED_LINK_TTL,
    };
    s.store.lock().links.insert(token.clone(), link);
    let url = format!("{}/_sandbox/signed/{token}", s.origin);
    Json(json!({"url": url, "file_name": doc, "current_version_id": 1})).into_response()
}

async fn get_external_metadata(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let st = s.store.lock();
    match st.resolve_id(&id).and_then(|k| st.contract(&k)) {
        Some(c) => Json(json!({"external_metadata": c.contract.external_metadata})).into_response(),
        None => not_found(&id),
    }
}

async fn post_external_metadata(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let parsed = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        match v.get("external_metadata") {
            Some(em @ Value::Object(_)) => {
                serde_json::from_value::<ExternalMetadata>(em.clone()).ok()
            }
            _ => None,
        }
    });
    let Some(metadata) = parsed else {
        let msg = "Body must be a JSON object {\"external_metadata\": {...}}.";
        return sd_error(StatusCode::BAD_REQUEST, "SD_INVALID_REQUEST", msg);
    };
    let mut st = s.store.lock();
    let Some(key) = st.resolve_id(&id) else {
        return not_found(&id);
    };
    if let Some(mut c) = st.remove_contract(&key) {
        c.contract.external_metadata = metadata.clone();
        c.contract.last_updated_on = Some(now_iso());
        st.put_contract(c);
    }
    Json(json!({"external_metadata": metadata})).into_response()
}

async fn hmac_key(State(s): State<AppState>) -> Response {
    Json(json!({"hmac_key": base64::engine::general_purpose::STANDARD.encode(&s.hmac_key)}))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_only_the_documented_slash_form() {
        assert!(matches_template(
            KEY_POINTERS,
            "/api/v2.1/public/contracts/T-1/key_pointers"
        ));
        assert!(!matches_template(
            KEY_POINTERS,
            "/api/v2.1/public/contracts/T-1/key_pointers/"
        ));
        assert!(!matches_template(
            KEY_POINTERS,
            "/api/v2.1/public/contracts//key_pointers"
        ));
        assert!(matches_template(CONTRACTS, "/api/v2.1/public/contracts/"));
        assert!(!matches_template(CONTRACTS, "/api/v2.1/public/contracts"));
    }
}
