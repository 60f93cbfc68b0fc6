//! The sandbox SpotDraft API, creation side: `POST contracts/` (Create
//! Contract, v2.1: 201 `ExternalCreateContractResponse`, 400 with SpotDraft's
//! error body), `GET contracts/by_external_metadata/{id}` (a bare array of at
//! most 50 `ExternalContractV3`, matched on the raw id), `POST
//! supported_documents/{contract_id}/` (`{name, file_name, file_base64}`, 201
//! `SupportedDocumentResponse`) and `GET templates/{id}/metadata`
//! (`TemplateMetaDataResponseV2`).
//!
//! Faults: `create_committed_then_502_next` commits a creation and answers
//! 502 (a lost answer); `supported_documents_503_next` refuses uploads.

use super::dataset::FixtureContract;
use super::server::AppState;
use super::spotdraft::{api_contract, not_found, sd_error};
use super::store::{now_iso, SupportedDocument, Template};
use crate::spotdraft::model::{Contract, ContractId, ExternalMetadata};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Most contracts `by_external_metadata` answers.
pub const BY_EXTERNAL_METADATA_LIMIT: usize = 50;

fn bad_request(message: &str) -> Response {
    sd_error(StatusCode::BAD_REQUEST, "SD_INVALID_REQUEST", message)
}

/// Checks a create body against the template; the error names the key.
fn check_create(body: &Value, templates: &[Template]) -> Result<(Template, Value), String> {
    let obj = body.as_object().ok_or("the body must be a JSON object")?;
    let template_id = obj
        .get("contract_template_id")
        .and_then(Value::as_i64)
        .ok_or("contract_template_id: required, an integer")?;
    let template = templates
        .iter()
        .find(|t| t.id == template_id)
        .cloned()
        .ok_or_else(|| format!("contract_template_id: template {template_id} does not exist"))?;
    let data = match obj.get("contract_data") {
        None => Map::new(),
        Some(Value::Object(o)) => o.clone(),
        Some(_) => return Err("contract_data: must be an object".into()),
    };
    for (k, v) in &data {
        let Some((_, kind)) = template.fields.iter().find(|(name, _)| name == k) else {
            return Err(format!(
                "contract_data.{k}: not a field of template {template_id}"
            ));
        };
        let ok = match kind.as_str() {
            "string" => v.is_string(),
            "int" => v.is_i64() || v.is_u64(),
            "float" => {
                v.is_number()
                    || (v.get("type").is_some_and(Value::is_string)
                        && v.get("value").is_some_and(Value::is_number))
            }
            "date" => v
                .as_str()
                .is_some_and(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()),
            _ => true,
        };
        if !ok {
            return Err(format!("contract_data.{k}: not a valid {kind} value"));
        }
    }
    let parties = obj
        .get("counter_party_details")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or("counter_party_details: required, a non-empty array")?;
    for (i, p) in parties.iter().enumerate() {
        let individual = p
            .get("is_individual")
            .and_then(Value::as_bool)
            .ok_or_else(|| {
                format!("counter_party_details[{i}].is_individual: required, a boolean")
            })?;
        let poc = p
            .get("poc_details")
            .and_then(Value::as_object)
            .ok_or_else(|| format!("counter_party_details[{i}].poc_details: required"))?;
        if !poc
            .get("email")
            .and_then(Value::as_str)
            .is_some_and(|e| e.contains('@'))
        {
            return Err(format!(
                "counter_party_details[{i}].poc_details.email: required, an email address"
            ));
        }
        let named = p
            .get("organization_name")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.trim().is_empty());
        if !individual && !named {
            return Err(format!(
                "counter_party_details[{i}].organization_name: required when is_individual is false"
            ));
        }
    }
    let metadata = match obj.get("external_metadata") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return Err("external_metadata: must be an object".into()),
    };
    Ok((template, metadata))
}

/// `POST contracts/`: creates a DRAFT contract from a template.
pub(crate) async fn create_contract(
    State(s): State<AppState>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("The body is not JSON.");
    };
    let templates: Vec<Template> = s.store.lock().templates.values().cloned().collect();
    let (template, metadata) = match check_create(&body, &templates) {
        Ok(ok) => ok,
        Err(message) => return bad_request(&message),
    };
    let Ok(external_metadata) = serde_json::from_value::<ExternalMetadata>(metadata) else {
        return bad_request("external_metadata: not a valid external metadata object");
    };
    let party = body["counter_party_details"][0]
        .get("organization_name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            let poc = &body["counter_party_details"][0]["poc_details"];
            format!(
                "{} {}",
                poc["first_name"].as_str().unwrap_or(""),
                poc["last_name"].as_str().unwrap_or("")
            )
            .trim()
            .to_string()
        });
    let now = now_iso();
    let created = {
        let mut st = s.store.lock();
        let n = st.max_contract_number() + 1;
        let id = format!("T-{n}");
        let contract = Contract {
            id: ContractId::new(id),
            created: now.clone(),
            contract_name: body["contract_name"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| template.name.clone()),
            contract_link: format!("https://app.spotdraft.com/contracts/v2/{n}"),
            contract_status: "DRAFT".into(),
            created_by: "api@sandbox.example".into(),
            counter_party_name: party,
            contract_type_name: template.name.clone(),
            contract_type_id: Some(template.contract_type_id),
            external_metadata,
            reference_id: Some(format!("SD-{n}")),
            last_updated_on: Some(now),
        };
        let fixture = FixtureContract {
            contract,
            key_pointers: Vec::new(),
            document: None,
        };
        st.put_contract(fixture.clone());
        st.counters.contracts_created += 1;
        fixture
    };
    if s.faults.take_create_committed_then_502() {
        s.store.lock().counters.faults_injected += 1;
        return sd_error(
            StatusCode::BAD_GATEWAY,
            "SD_SERVER_ERROR",
            "Injected sandbox fault: created, answer lost.",
        );
    }
    let mut v = api_contract(&created);
    if let Some(o) = v.as_object_mut() {
        o.insert("contract_id".into(), json!(created.contract.id.number()));
        o.insert(
            "external_metadata".into(),
            serde_json::to_value(&created.contract.external_metadata).unwrap_or(json!({})),
        );
    }
    (StatusCode::CREATED, Json(v)).into_response()
}

/// An `ExternalContractV3`: the list item with an integer `id`.
fn contract_v3(c: &FixtureContract) -> Value {
    let mut v = api_contract(c);
    if let Some(o) = v.as_object_mut() {
        o.insert("id".into(), json!(c.contract.id.number()));
        o.insert(
            "external_metadata".into(),
            serde_json::to_value(&c.contract.external_metadata).unwrap_or(json!({})),
        );
        o.entry("reference_id").or_insert(json!(""));
    }
    v
}

/// `GET contracts/by_external_metadata/{id}`: up to 50 contracts whose
/// `external_metadata.id` is exactly `id`, as a bare array.
pub(crate) async fn by_external_metadata(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let st = s.store.lock();
    let found: Vec<Value> = st
        .ordered()
        .filter(|c| c.contract.external_metadata.id.as_deref() == Some(id.as_str()))
        .take(BY_EXTERNAL_METADATA_LIMIT)
        .map(contract_v3)
        .collect();
    Json(found).into_response()
}

/// `POST supported_documents/{contract_id}/`: stores a base64 document.
pub(crate) async fn upload_supported_document(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if s.faults.take_supported_documents_503() {
        s.store.lock().counters.faults_injected += 1;
        return sd_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "SD_SERVER_ERROR",
            "Injected sandbox fault.",
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("The body is not JSON.");
    };
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.trim().is_empty())
            .map(str::to_string)
    };
    let (Some(name), Some(file_name), Some(encoded)) =
        (text("name"), text("file_name"), text("file_base64"))
    else {
        return bad_request("name, file_name and file_base64 are required.");
    };
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(encoded.as_bytes()) else {
        return bad_request("file_base64: not valid base64.");
    };
    let mut st = s.store.lock();
    let Some(key) = st.resolve_id(&id) else {
        drop(st);
        return not_found(&id);
    };
    let next = st.supported_documents.values().map(Vec::len).sum::<usize>() as u64 + 1;
    let doc = SupportedDocument {
        id: next,
        name: name.clone(),
        file_name,
        sha256: hex::encode(Sha256::digest(&bytes)),
        size: bytes.len() as u64,
    };
    st.supported_documents.entry(key).or_default().push(doc);
    st.counters.supported_documents_stored += 1;
    let created = now_iso();
    (
        StatusCode::CREATED,
        Json(json!({"id": next, "name": name, "created": created})),
    )
        .into_response()
}

/// `GET templates/{id}/metadata`: the template's fields.
pub(crate) async fn template_metadata(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let template = id
        .parse::<i64>()
        .ok()
        .and_then(|n| s.store.lock().templates.get(&n).cloned());
    let Some(t) = template else {
        return sd_error(
            StatusCode::NOT_FOUND,
            "SD_TEMPLATE_NOT_FOUND",
            &format!("Template {id} does not exist."),
        );
    };
    let attributes: Vec<Value> = t
        .fields
        .iter()
        .map(|(variable, kind)| json!({"display_label": variable, "variable": variable, "type": kind}))
        .collect();
    Json(json!({ "attributes": attributes, "counter_party_kind": "Organisation" })).into_response()
}
