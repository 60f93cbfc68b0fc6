//! Integration tests: the sandbox SpotDraft and ERP servers, over real HTTP on loopback.

mod erp;
mod live_faults;
mod openapi;
mod spotdraft;

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use contract_recon::sandbox::dataset::{ErpRecord, FixtureContract};
use contract_recon::sandbox::{Dataset, Sandbox, SandboxConfig};
use contract_recon::spotdraft::model::KNOWN_STATUSES;
use reqwest::{Method, RequestBuilder};
use serde_json::json;
use std::collections::BTreeMap;

/// Creation instant of test contract `T-i`: 2026-01-01 plus i hours.
pub fn created_at(i: usize) -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::hours(i as i64)
}

/// Last update instant of test contract `T-i`: 2026-03-01 plus i minutes.
pub fn updated_at(i: usize) -> DateTime<Utc> {
    "2026-03-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::minutes(i as i64)
}

/// ISO 8601 UTC text of an instant.
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Contracts `T-1..=T-n`; statuses cycle through the known ones; every odd one has a document.
pub fn contracts(n: usize) -> Vec<FixtureContract> {
    (1..=n)
        .map(|i| {
            let item = json!({
                "id": format!("T-{i}"),
                "created": iso(created_at(i)),
                "last_updated_on": iso(updated_at(i)),
                "contract_name": format!("Contract {i}"),
                "contract_link": format!("https://app.spotdraft.com/contracts/v2/{i}"),
                "contract_status": KNOWN_STATUSES[i % KNOWN_STATUSES.len()],
                "created_by": "Tester",
                "counter_party_name": if i % 2 == 0 { "Globex" } else { "Initech" },
                "contract_type_name": "MSA",
                "contract_type_id": 7,
                "external_metadata": if i % 3 == 0 { json!({"id": format!("E-{i}"), "integration_name": "ERP", "record_data": {"po_number": format!("PO-{i}")}}) } else { json!({}) },
                "reference_id": format!("SD-{i}"),
                "key_pointers": [
                    {"id": i * 10, "value": 1000 * i, "label": "Contract value", "field_name": "contract_value", "data_type": "currency", "format_option": {"currency": "EUR"}},
                    {"id": i * 10 + 1, "value": "2026-12-31", "label": "Expiry", "field_name": "expiry_date", "data_type": "date", "format_option": {}},
                ],
                "document": (i % 2 == 1).then(|| format!("T-{i}.pdf")),
            });
            serde_json::from_value(item).unwrap()
        })
        .collect()
}

/// The PDF bytes served for `T-i`.
pub fn document_bytes(i: usize) -> Bytes {
    Bytes::from(format!("%PDF-1.4 test document of T-{i}\n%%EOF"))
}

/// ERP records `E-1..=E-n`, linked to `T-i`.
pub fn erp_records(n: usize) -> Vec<ErpRecord> {
    (1..=n)
        .map(|i| ErpRecord {
            erp_record_id: format!("E-{i}"),
            spotdraft_contract_id: Some(format!("T-{i}")),
            vendor_id: Some(format!("V-{i}")),
            status: Some("ACTIVE".into()),
            amount: Some(format!("{}.00", 1000 * i)),
            currency: Some("EUR".into()),
            version: 1,
            ..ErpRecord::default()
        })
        .collect()
}

/// A dataset of `n` contracts (with their documents) and `n` ERP records.
pub fn dataset(n: usize) -> Dataset {
    let contracts = contracts(n);
    let documents: BTreeMap<String, Bytes> = contracts
        .iter()
        .enumerate()
        .filter_map(|(k, c)| c.document.clone().map(|d| (d, document_bytes(k + 1))))
        .collect();
    Dataset {
        contracts,
        erp_records: erp_records(n),
        documents,
    }
}

/// Starts a sandbox on a free port with `n` contracts and the given rate limit.
pub async fn start(n: usize, rate_limit_per_sec: u32) -> Sandbox {
    let config = SandboxConfig {
        rate_limit_per_sec,
        seed: 42,
        ..SandboxConfig::default()
    };
    Sandbox::start(config, dataset(n)).await.unwrap()
}

/// An HTTP client that does not follow redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// An authenticated SpotDraft request; `path` is relative to the API base (`v2.1/...`).
pub fn sd(sb: &Sandbox, method: Method, path: &str) -> RequestBuilder {
    let c = sb.credentials();
    client()
        .request(method, format!("{}{path}", sb.spotdraft_base_url()))
        .header("client-id", &c.client_id)
        .header("client-secret", &c.client_secret)
}

/// An authenticated ERP request; `path` is relative to the ERP base (`contracts/E-1`).
pub fn erp(sb: &Sandbox, method: Method, path: &str) -> RequestBuilder {
    client()
        .request(method, format!("{}{path}", sb.erp_base_url()))
        .bearer_auth(&sb.credentials().erp_token)
}

/// GETs a list page and returns its JSON.
pub async fn list(sb: &Sandbox, query: &str) -> serde_json::Value {
    let resp = sd(sb, Method::GET, &format!("v2.1/public/contracts/?{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "list {query}");
    resp.json().await.unwrap()
}

/// Ids of a list page's results.
pub fn ids(page: &serde_json::Value) -> Vec<String> {
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}
