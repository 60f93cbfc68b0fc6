//! OpenAPI conformance: the sandbox's real responses validated against the
//! vendored SpotDraft description with a small validator for the OpenAPI 3.0
//! subset the spec uses (type, properties, required, items, nullable, enum,
//! $ref, allOf/anyOf/oneOf).

use super::{sd, start};
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::OnceLock;

/// The vendored spec as JSON (YAML keys stringified).
fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/spotdraft/openapi.yml"
        );
        let text = std::fs::read_to_string(path).unwrap();
        yaml_to_json(serde_yaml::from_str(&text).unwrap())
    })
}

fn yaml_to_json(v: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::to_value(&n).unwrap_or(Value::Null),
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        other => serde_yaml::to_string(&other).unwrap().trim().to_string(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(t) => yaml_to_json(t.value),
    }
}

/// The JSON schema of a documented response.
fn response_schema(path: &str, method: &str, status: &str) -> &'static Value {
    let op = &spec()["paths"][path][method];
    let schema = &op["responses"][status]["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "no {status} JSON schema for {method} {path}"
    );
    schema
}

fn resolve(reference: &str) -> &'static Value {
    let pointer = reference
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("external $ref {reference}"));
    spec()
        .pointer(pointer)
        .unwrap_or_else(|| panic!("dangling $ref {reference}"))
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        other => panic!("unsupported schema type {other}"),
    }
}

/// Validates `v` against `schema`; returns one message per violation, with its JSON path.
pub fn validate(schema: &Value, v: &Value, at: &str) -> Vec<String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return validate(resolve(r), v, at);
    }
    if v.is_null() && schema.get("nullable") == Some(&json!(true)) {
        return vec![];
    }
    let mut errors = Vec::new();
    let subs = |key: &str| {
        schema
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for s in subs("allOf") {
        errors.extend(validate(&s, v, at));
    }
    for (key, ok) in [("anyOf", 1..=usize::MAX), ("oneOf", 1..=1)] {
        let alternatives = subs(key);
        if !alternatives.is_empty() {
            let passing = alternatives
                .iter()
                .filter(|s| validate(s, v, at).is_empty())
                .count();
            if !ok.contains(&passing) {
                errors.push(format!(
                    "{at}: {passing} of the {key} alternatives match {v}"
                ));
            }
        }
    }
    if let Some(ty) = schema.get("type").and_then(Value::as_str) {
        if !type_matches(ty, v) {
            errors.push(format!("{at}: expected {ty}, got {v}"));
            return errors;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(v) {
            errors.push(format!("{at}: {v} not in enum {allowed:?}"));
        }
    }
    if let Some(obj) = v.as_object() {
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = name.as_str().unwrap_or_default();
            if !obj.contains_key(name) {
                errors.push(format!("{at}: missing required property {name:?}"));
            }
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, sub) in props {
                if let Some(value) = obj.get(name) {
                    errors.extend(validate(sub, value, &format!("{at}/{name}")));
                }
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            errors.extend(validate(items, item, &format!("{at}/{i}")));
        }
    }
    errors
}

fn assert_conforms(path: &str, method: &str, status: &str, body: &Value) {
    let errors = validate(response_schema(path, method, status), body, "");
    assert!(
        errors.is_empty(),
        "{method} {path} {status} does not conform: {errors:#?}\n{body}"
    );
}

async fn call(
    sb: &contract_recon::sandbox::Sandbox,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = sd(sb, method, path);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

const BASE: &str = "/api/v2.1/public/";

#[tokio::test]
async fn responses_conform_to_the_published_schemas() {
    let sb = start(12, 1000).await;
    let (status, list) = call(&sb, Method::GET, "v2.1/public/contracts/?limit=12", None).await;
    assert_eq!(
        (status, list["results"].as_array().unwrap().len()),
        (200, 12)
    );
    assert_conforms(&format!("{BASE}contracts/"), "get", "200", &list);

    let (status, kps) = call(
        &sb,
        Method::GET,
        "v2.1/public/contracts/T-3/key_pointers",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_conforms(
        &format!("{BASE}contracts/{{composite_id}}/key_pointers"),
        "get",
        "200",
        &kps,
    );

    let (status, link) = call(
        &sb,
        Method::POST,
        "v2.1/public/contracts/T-3/download_link",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_conforms(
        &format!("{BASE}contracts/{{composite_id}}/download_link"),
        "post",
        "200",
        &link,
    );

    let em_path = format!("{BASE}contracts/{{contract_id}}/external_metadata");
    let (status, em) = call(
        &sb,
        Method::GET,
        "v2.1/public/contracts/T-3/external_metadata",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_conforms(&em_path, "get", "200", &em);
    let new = json!({"external_metadata": {"id": "E-77", "integration_name": "ERP", "record_type": "Contract", "record_data": {"po_number": "PO-1"}}});
    let (status, posted) = call(
        &sb,
        Method::POST,
        "v2.1/public/contracts/T-3/external_metadata",
        Some(new),
    )
    .await;
    assert_eq!(status, 200);
    assert_conforms(&em_path, "post", "200", &posted);
    let (status, missing) = call(
        &sb,
        Method::GET,
        "v2.1/public/contracts/T-999/external_metadata",
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_conforms(&em_path, "get", "404", &missing);
    let (status, bad) = call(
        &sb,
        Method::POST,
        "v2.1/public/contracts/T-3/external_metadata",
        Some(json!({"x": 1})),
    )
    .await;
    assert_eq!(status, 400);
    assert_conforms(&em_path, "post", "400", &bad);

    let (status, key) = call(&sb, Method::GET, "v2.1/public/webhooks/hmac_key/", None).await;
    assert_eq!(status, 200);
    assert_conforms(&format!("{BASE}webhooks/hmac_key/"), "get", "200", &key);

    let (status, types) = call(&sb, Method::GET, "v2.1/public/contract_types/", None).await;
    assert_eq!(status, 200);
    assert_conforms(&format!("{BASE}contract_types/"), "get", "200", &types);
    let type_id = types[0]["id"].as_i64().unwrap();
    let (status, definitions) = call(
        &sb,
        Method::GET,
        &format!("v2.1/public/key_pointers/?contract_type_id={type_id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(!definitions.as_array().unwrap().is_empty());
    assert_conforms(&format!("{BASE}key_pointers/"), "get", "200", &definitions);
    sb.shutdown().await;
}

#[tokio::test]
async fn validator_rejects_missing_required_fields_and_wrong_types() {
    let sb = start(3, 1000).await;
    let (_, good) = call(&sb, Method::GET, "v2.1/public/contracts/", None).await;
    let schema = response_schema(&format!("{BASE}contracts/"), "get", "200");
    assert!(validate(schema, &good, "").is_empty());

    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("total_results");
    let errors = validate(schema, &missing, "");
    assert!(
        errors.iter().any(|e| e.contains("total_results")),
        "{errors:?}"
    );

    let mut nested_missing = good.clone();
    nested_missing["results"][1]
        .as_object_mut()
        .unwrap()
        .remove("contract_status");
    let errors = validate(schema, &nested_missing, "");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("/results/1") && e.contains("contract_status")),
        "{errors:?}"
    );

    let mut wrong_type = good.clone();
    wrong_type["page"] = json!("1");
    wrong_type["results"][0]["contract_type_id"] = json!(7.5);
    let errors = validate(schema, &wrong_type, "");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("/page: expected integer")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("/results/0/contract_type_id: expected integer")),
        "{errors:?}"
    );

    let kp_schema = response_schema(
        &format!("{BASE}contracts/{{composite_id}}/key_pointers"),
        "get",
        "200",
    );
    let bad_kp = json!([{"id": 1, "value": null, "label": "", "field_name": "", "data_type": "", "format_option": {}}]);
    let errors = validate(kp_schema, &bad_kp, "");
    assert!(
        errors.iter().any(|e| e.contains("anyOf")),
        "value null matches no anyOf branch: {errors:?}"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn creation_endpoints_conform_to_the_published_schemas() {
    let sb = start(3, 1000).await;
    let body = json!({
        "contract_template_id": 1204,
        "contract_name": "Acme purchase agreement",
        "contract_data": {"vendor_name": "Acme", "agreement_date": "2026-03-28", "contract_value": {"type": "USD", "value": 12000}},
        "counter_party_details": [{"is_individual": false, "organization_name": "Acme",
            "poc_details": {"first_name": "Avery", "last_name": "Stone", "email": "avery@acme.example"},
            "organization_details": {"jurisdiction_iso_code": "US"}}],
        "external_metadata": {"id": "ERP 7/a", "integration_name": "NetSuite", "record_type": "purchase_request"}
    });
    let (status, created) = call(
        &sb,
        Method::POST,
        "v2.1/public/contracts/",
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_conforms(&format!("{BASE}contracts/"), "post", "201", &created);
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["contract_status"], "DRAFT");
    assert_eq!(created["external_metadata"]["id"], "ERP 7/a");

    // A template field that does not exist: 400 with SpotDraft's error body
    // (the create operation documents no 400 schema; this is the one
    // supported_documents documents, with every key required).
    let mut bad = body.clone();
    bad["contract_data"]["no_such_field"] = json!("x");
    let (status, error) = call(&sb, Method::POST, "v2.1/public/contracts/", Some(bad)).await;
    assert_eq!(status, 400);
    assert!(
        error["message"].as_str().unwrap().contains("no_such_field"),
        "{error}"
    );
    assert_conforms(
        &format!("{BASE}supported_documents/{{contract_id}}/"),
        "post",
        "400",
        &error,
    );
    assert_eq!(
        sb.state().counters().contracts_created,
        1,
        "a 400 creates nothing"
    );

    // Matched on the raw id (percent-encoded in the path), a bare array.
    let path = "v2.1/public/contracts/by_external_metadata/ERP%207%2Fa";
    let (status, found) = call(&sb, Method::GET, path, None).await;
    assert_eq!(status, 200);
    assert_conforms(
        &format!("{BASE}contracts/by_external_metadata/{{external_metadata_id}}"),
        "get",
        "200",
        &found,
    );
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["id"], created["contract_id"]);
    let (_, none) = call(
        &sb,
        Method::GET,
        "v2.1/public/contracts/by_external_metadata/erp%207%2Fa",
        None,
    )
    .await;
    assert_eq!(none, json!([]), "the id is matched exactly");
    // The documented path has no trailing slash: the other form is a redirect.
    let resp = sd(&sb, Method::GET, &format!("{path}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 302);

    let upload = json!({"name": "PO", "file_name": "po.pdf", "file_base64": "JVBERi0xLjQK"});
    let (status, stored) = call(
        &sb,
        Method::POST,
        &format!("v2.1/public/supported_documents/{id}/"),
        Some(upload),
    )
    .await;
    assert_eq!(status, 201);
    assert_conforms(
        &format!("{BASE}supported_documents/{{contract_id}}/"),
        "post",
        "201",
        &stored,
    );
    let (status, refused) = call(
        &sb,
        Method::POST,
        &format!("v2.1/public/supported_documents/{id}/"),
        Some(json!({"name": "PO"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_conforms(
        &format!("{BASE}supported_documents/{{contract_id}}/"),
        "post",
        "400",
        &refused,
    );
    assert_eq!(sb.state().supported_documents(&id).len(), 1);

    let (status, meta) = call(
        &sb,
        Method::GET,
        "v2.1/public/templates/1204/metadata",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_conforms(
        &format!("{BASE}templates/{{template_id}}/metadata"),
        "get",
        "200",
        &meta,
    );
    let variables: Vec<&str> = meta["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["variable"].as_str().unwrap())
        .collect();
    assert!(variables.contains(&"contract_value"), "{variables:?}");
    sb.shutdown().await;
}
