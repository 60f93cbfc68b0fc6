//! The sandbox's webhook sender: `POST /_sandbox/webhooks/send` delivers one
//! webhook to a URL the way SpotDraft does (the body signed in
//! `X-SD-WEBHOOK-CONTENT-HASH` with the key `GET v2.1/public/webhooks/hmac_key/`
//! serves), so a daemon can be tried end to end against the sandbox.
//!
//! Request: `{"url": "...", "contract_id": 1072, "activity": "CONTRACT_EXECUTED"}`
//! (a `ContractActivityDomainModel` body is built), or `{"url": "...", "body": {...}}`
//! (sent as given). Answer: `{"status": <the receiver's status>, "body": "<its body>"}`.

use super::server::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha512;

/// `POST /_sandbox/webhooks/send`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendWebhook {
    url: String,
    contract_id: Option<i64>,
    activity: Option<String>,
    body: Option<Value>,
}

/// Hex HMAC-SHA512 of `body` with `key` (SpotDraft's webhook signature).
pub fn sign_webhook(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha512>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

pub(crate) async fn send_webhook(State(s): State<AppState>, body: axum::body::Bytes) -> Response {
    let bad = |m: String| (StatusCode::BAD_REQUEST, Json(json!({ "error": m }))).into_response();
    let req: SendWebhook = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad(format!("bad request JSON: {e}")),
    };
    let payload = match (req.body, req.contract_id) {
        (Some(body), _) => body,
        (None, Some(id)) => json!({
            "activity": req.activity.as_deref().unwrap_or("CONTRACT_EXECUTED"),
            "activity_data": {
                "performed_by": {"name": "SYSTEM"},
                "timestamp": chrono::Utc::now().to_rfc3339(),
            },
            "contract_id": id,
        }),
        (None, None) => return bad("give `contract_id` (and `activity`) or `body`".into()),
    };
    let bytes = payload.to_string().into_bytes();
    let signature = sign_webhook(&s.hmac_key, &bytes);
    let sent = reqwest::Client::new()
        .post(&req.url)
        .header("content-type", "application/json")
        .header("X-SD-WEBHOOK-CONTENT-HASH", signature)
        .body(bytes)
        .send()
        .await;
    match sent {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            Json(json!({ "status": status, "body": text })).into_response()
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({ "error": format!("POST {}: {e}", req.url) })),
        )
            .into_response(),
    }
}
