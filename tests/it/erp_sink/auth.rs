//! Auth: the sandbox's bearer token, and basic / custom-header auth seen by a
//! small real server that echoes the headers it received.

use super::{quick_retry, sink_config, start_erp, update};
use axum::http::HeaderMap;
use axum::routing::patch;
use axum::{Json, Router};
use contract_recon::erp::rest::{ErpAuth, RestSink, RestSinkConfig};
use contract_recon::erp::sink::{ErpSink, WriteOutcome};
use contract_recon::secret::Secret;
use serde_json::json;
use std::sync::{Arc, Mutex};

type Seen = Arc<Mutex<Vec<HeaderMap>>>;

/// Serves `PATCH /erp/contracts/{id}`, recording every request's headers.
async fn echo_server() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let app = Router::new().route(
        "/erp/contracts/{id}",
        patch(move |headers: HeaderMap| {
            record.lock().unwrap().push(headers);
            async { Json(json!({"version": 5})) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/erp/"), seen)
}

async fn send_with(auth: ErpAuth) -> HeaderMap {
    let (base, seen) = echo_server().await;
    let mut config = RestSinkConfig::new(base.parse().unwrap(), auth);
    config.retry = quick_retry();
    let sink = RestSink::new(config).unwrap();
    let mut u = update("E-1", "k-auth", &[("status", "A")]);
    u.if_match = Some("4".into());
    let outcome = sink.update_fields(&u).await;
    assert_eq!(
        outcome,
        WriteOutcome::Applied {
            version: Some("5".into()),
            replayed: false
        }
    );
    let headers = seen.lock().unwrap().pop().unwrap();
    assert_eq!(headers["idempotency-key"], "k-auth");
    assert_eq!(headers["if-match"], "\"4\"");
    headers
}

#[tokio::test]
async fn basic_and_custom_header_auth_are_sent() {
    let basic = send_with(ErpAuth::Basic {
        user: Secret::new("erp-user"),
        password: Secret::new("s3cret"),
    })
    .await;
    // base64("erp-user:s3cret")
    assert_eq!(basic["authorization"], "Basic ZXJwLXVzZXI6czNjcmV0");
    let custom = send_with(ErpAuth::Header {
        name: Secret::new("X-Api-Key"),
        value: Secret::new("key-123"),
    })
    .await;
    assert_eq!(custom["x-api-key"], "key-123");
    assert!(custom.get("authorization").is_none());
    let bearer = send_with(ErpAuth::Bearer(Secret::new("tok"))).await;
    assert_eq!(bearer["authorization"], "Bearer tok");
}

#[tokio::test]
async fn a_wrong_bearer_token_leaves_the_write_pending_for_the_next_run() {
    let sb = start_erp(1).await;
    let mut config = sink_config(&sb);
    config.auth = ErpAuth::Bearer(Secret::new("wrong-token-value"));
    let sink = RestSink::new(config).unwrap();
    let outcome = sink
        .update_fields(&update("E-1", "k", &[("status", "A")]))
        .await;
    // Refused credentials never reached the record: not a rejection of the
    // write, which would keep it from being sent again once the token is fixed.
    match &outcome {
        WriteOutcome::Pending { error } => {
            assert!(
                error.contains("HTTP 401") && error.contains("[apply.rest]"),
                "{error}"
            );
            assert!(!error.contains("wrong-token-value"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    sb.shutdown().await;
}
