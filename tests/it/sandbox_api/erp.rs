//! The sandbox ERP API: records, patches, If-Match, idempotency, attachments,
//! batches, the write log and ERP faults.

use super::{client, erp, start};
use contract_recon::sandbox::ErpWrite;
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

async fn patch(
    sb: &contract_recon::sandbox::Sandbox,
    id: &str,
    key: &str,
    fields: Value,
) -> (u16, Value) {
    let resp = erp(sb, Method::PATCH, &format!("contracts/{id}"))
        .header("Idempotency-Key", key)
        .json(&json!({"fields": fields}))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn get_record_with_etag_auth_and_404() {
    let sb = start(3, 1000).await;
    let resp = erp(&sb, Method::GET, "contracts/E-2").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["etag"], "\"1\"");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["erp_record_id"], "E-2");
    assert_eq!(body["version"], 1);
    assert_eq!(body["fields"]["amount"], "2000.00");
    assert_eq!(body["fields"]["spotdraft_contract_id"], "T-2");
    assert_eq!(body["fields"]["po_number"], Value::Null);
    assert_eq!(body["attachments"], json!([]));
    let anonymous = client()
        .get(format!("{}contracts/E-2", sb.erp_base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = client()
        .get(format!("{}contracts/E-2", sb.erp_base_url()))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let missing = erp(&sb, Method::GET, "contracts/E-404")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap()["error"], "not_found");
    sb.shutdown().await;
}

#[tokio::test]
async fn patch_applies_checks_fields_and_if_match() {
    let sb = start(3, 1000).await;
    let (status, body) = patch(
        &sb,
        "E-1",
        "k1",
        json!({"po_number": "PO-77", "currency": null}),
    )
    .await;
    assert_eq!((status, body["version"].as_u64()), (200, Some(2)));
    let stored = sb.state().erp_record("E-1").unwrap();
    assert_eq!(
        (stored.po_number.as_deref(), stored.currency, stored.version),
        (Some("PO-77"), None, 2)
    );

    let (status, body) = patch(&sb, "E-1", "k2", json!({"colour": "blue"})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("unknown_field"))
    );
    let no_key = erp(&sb, Method::PATCH, "contracts/E-1")
        .json(&json!({"fields": {"po_number": "X"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 400);
    let (status, _) = patch(&sb, "E-404", "k3", json!({"po_number": "X"})).await;
    assert_eq!(status, 404);

    let stale = erp(&sb, Method::PATCH, "contracts/E-1")
        .header("Idempotency-Key", "k4")
        .header("If-Match", "\"1\"")
        .json(&json!({"fields": {"po_number": "PO-78"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412);
    assert_eq!(stale.json::<Value>().await.unwrap()["current_version"], 2);
    let fresh = erp(&sb, Method::PATCH, "contracts/E-1")
        .header("Idempotency-Key", "k5")
        .header("If-Match", "\"2\"")
        .json(&json!({"fields": {"po_number": "PO-78"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            fresh.status().as_u16(),
            fresh.headers()["etag"].to_str().unwrap()
        ),
        (200, "\"3\"")
    );
    assert_eq!(
        sb.state().erp_record("E-1").unwrap().po_number.as_deref(),
        Some("PO-78")
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn repeated_idempotency_key_replays_and_applies_once() {
    let sb = start(2, 1000).await;
    let first = patch(&sb, "E-2", "same-key", json!({"status": "TERMINATED"})).await;
    let second = patch(&sb, "E-2", "same-key", json!({"status": "TERMINATED"})).await;
    assert_eq!(first, second);
    assert_eq!(
        sb.state().erp_record("E-2").unwrap().version,
        2,
        "applied once"
    );
    let (status, body) = patch(&sb, "E-2", "same-key", json!({"status": "ACTIVE"})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    assert_eq!(
        sb.state().erp_record("E-2").unwrap().status.as_deref(),
        Some("TERMINATED")
    );

    let log = sb.state().erp_writes();
    let summary: Vec<_> = log
        .iter()
        .map(|w| (w.idempotency_key.as_deref(), w.applied, w.status))
        .collect();
    let key = Some("same-key");
    assert_eq!(
        summary,
        [(key, true, 200), (key, false, 200), (key, false, 422)]
    );
    assert!(log
        .iter()
        .all(|w| w.method == "PATCH" && w.path == "/erp/contracts/E-2"));
    let served: Vec<ErpWrite> = erp(&sb, Method::GET, "_writes")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, log);
    sb.shutdown().await;
}

fn attachment_form(bytes: &'static [u8], sha256: &str) -> Form {
    Form::new()
        .part(
            "file",
            Part::bytes(bytes)
                .file_name("T-1.pdf")
                .mime_str("application/pdf")
                .unwrap(),
        )
        .text("file_name", "T-1.pdf")
        .text("sha256", sha256.to_string())
}

#[tokio::test]
async fn attachment_checks_sha256_and_sets_document_hash() {
    let sb = start(1, 1000).await;
    let bytes: &'static [u8] = b"%PDF-1.4 executed copy";
    let good = hex::encode(Sha256::digest(bytes));
    let send = |key: &'static str, form: Form| {
        erp(&sb, Method::POST, "contracts/E-1/attachments")
            .header("Idempotency-Key", key)
            .multipart(form)
            .send()
    };
    let bad = send("a1", attachment_form(bytes, &"0".repeat(64)))
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    assert_eq!(
        bad.json::<Value>().await.unwrap()["error"],
        "sha256_mismatch"
    );
    assert_eq!(sb.state().erp_record("E-1").unwrap().document_sha256, None);

    let ok = send("a2", attachment_form(bytes, &good.to_uppercase()))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["fields"]["document_sha256"], good.as_str());
    assert_eq!(
        body["attachments"],
        json!([{"file_name": "T-1.pdf", "sha256": good, "size": bytes.len()}])
    );
    // A retry builds a new multipart body (new boundary) but is the same request.
    let replay = send("a2", attachment_form(bytes, &good)).await.unwrap();
    assert_eq!(replay.status(), 200);
    assert_eq!(sb.state().attachments("E-1").len(), 1);
    assert_eq!(sb.state().erp_record("E-1").unwrap().version, 2);
    sb.shutdown().await;
}

#[tokio::test]
async fn batch_answers_per_operation_and_replays_as_a_whole() {
    let sb = start(3, 1000).await;
    let body = json!({"operations": [
        {"op": "patch", "erp_record_id": "E-1", "fields": {"vendor_id": "V-100"}},
        {"op": "patch", "erp_record_id": "E-404", "fields": {"vendor_id": "V-1"}},
        {"op": "patch", "erp_record_id": "E-2", "fields": {"vendor_id": "V-2"}, "if_match": "\"7\""},
        {"op": "patch", "erp_record_id": "E-3", "fields": {"nope": "x"}},
        {"op": "patch", "erp_record_id": "E-3", "fields": {"amount": "9.99"}, "if_match": 1},
        {"op": "delete", "erp_record_id": "E-3"},
    ]});
    let send = || {
        erp(&sb, Method::POST, "batch")
            .header("Idempotency-Key", "b1")
            .json(&body)
            .send()
    };
    let resp = send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    let statuses: Vec<_> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [200, 404, 412, 422, 200, 422]);
    assert_eq!(answer["results"][0]["version"], 2);
    assert_eq!(answer["results"][4]["version"], 2);
    assert!(answer["results"][2]["error"]["message"].is_string());
    let state = sb.state();
    assert_eq!(
        state.erp_record("E-1").unwrap().vendor_id.as_deref(),
        Some("V-100")
    );
    assert_eq!(state.erp_record("E-2").unwrap().version, 1);
    assert_eq!(
        state.erp_record("E-3").unwrap().amount.as_deref(),
        Some("9.99")
    );
    let replay: Value = send().await.unwrap().json().await.unwrap();
    assert_eq!(replay, answer);
    assert_eq!(
        state.erp_record("E-1").unwrap().version,
        2,
        "replay applies nothing"
    );
    let applied: Vec<_> = state.erp_writes().iter().map(|w| w.applied).collect();
    assert_eq!(applied, [true, false]);
    sb.shutdown().await;
}

#[tokio::test]
async fn applied_but_502_is_applied_and_recorded_once() {
    let sb = start(2, 1000).await;
    sb.faults().update(|f| f.erp.applied_but_502_next = 1);
    let (status, body) = patch(&sb, "E-1", "k-502", json!({"po_number": "PO-1"})).await;
    assert_eq!((status, body["error"].as_str()), (502, Some("bad_gateway")));
    assert_eq!(
        sb.state().erp_record("E-1").unwrap().version,
        2,
        "applied despite the 502"
    );
    let (status, body) = patch(&sb, "E-1", "k-502", json!({"po_number": "PO-1"})).await;
    assert_eq!(
        (status, body["version"].as_u64()),
        (200, Some(2)),
        "the retry gets the first result"
    );
    assert_eq!(sb.state().erp_record("E-1").unwrap().version, 2);
    let log: Vec<_> = sb
        .state()
        .erp_writes()
        .iter()
        .map(|w| (w.applied, w.status))
        .collect();
    assert_eq!(log, [(true, 502), (false, 200)]);

    sb.faults().update(|f| {
        f.erp.http.burst_429 = 1;
        f.erp.http.retry_after_secs = Some(2);
    });
    let limited = erp(&sb, Method::PATCH, "contracts/E-2")
        .header("Idempotency-Key", "k-429")
        .json(&json!({"fields": {"po_number": "PO-2"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            limited.status().as_u16(),
            limited.headers()["retry-after"].to_str().unwrap()
        ),
        (429, "2")
    );
    sb.faults().update(|f| f.erp.http.error_rate = 1.0);
    let (status, _) = patch(&sb, "E-2", "k-500", json!({"po_number": "PO-2"})).await;
    assert!([500, 502, 503].contains(&status));
    assert_eq!(
        sb.state().erp_record("E-2").unwrap().version,
        1,
        "faults before the handler apply nothing"
    );
    let tail: Vec<_> = sb.state().erp_writes()[2..]
        .iter()
        .map(|w| w.applied)
        .collect();
    assert_eq!(tail, [false, false]);
    sb.shutdown().await;
}

#[tokio::test]
async fn an_exact_rate_limit_answers_429_over_the_window() {
    let sb = start(2, 1000).await;
    sb.faults().update(|f| f.erp.rate_limit_per_sec = Some(5));
    let mut statuses = vec![];
    for _ in 0..8 {
        let resp = erp(&sb, Method::GET, "contracts/E-1").send().await.unwrap();
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    assert_eq!(sb.state().counters().erp_rate_limited, 3);
    tokio::time::sleep(std::time::Duration::from_millis(1050)).await;
    let resp = erp(&sb, Method::GET, "contracts/E-1").send().await.unwrap();
    assert_eq!(resp.status(), 200, "the window slid");
    sb.faults().update(|f| f.erp.rate_limit_per_sec = None);
    sb.shutdown().await;
}
