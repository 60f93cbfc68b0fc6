//! `[notify]` over a real socket: a local receiver takes the webhook POSTs.

use crate::common::{demo_job_against_own_sandbox, text};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use contract_recon::http::RetryPolicy;
use contract_recon::job::{Job, NotifySettings};
use contract_recon::runner::{run_job, RunOptions};
use contract_recon::secret::Secret;
use polars::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the receiver got, and how many of the next POSTs it answers 503.
#[derive(Clone, Default)]
struct Inbox {
    bodies: Arc<Mutex<Vec<String>>>,
    failing: Arc<Mutex<u32>>,
}

async fn receive(State(inbox): State<Inbox>, body: String) -> StatusCode {
    inbox.bodies.lock().unwrap().push(body);
    let mut failing = inbox.failing.lock().unwrap();
    if *failing > 0 {
        *failing -= 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    StatusCode::OK
}

/// A receiver on a loopback port; the webhook URL carries a token, as Slack's does.
async fn receiver() -> (Inbox, String) {
    let inbox = Inbox::default();
    let app = Router::new()
        .route("/services/T000/B000/{token}", post(receive))
        .with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (
        inbox,
        format!("http://{addr}/services/T000/B000/hook-token-sekrit"),
    )
}

fn notify_to(job: &mut Job, url: &str, max_attempts: u32) {
    job.notify = Some(NotifySettings {
        url: Secret::new(url),
        on_failure: true,
        on_new_drift: true,
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            max_total: Duration::from_secs(10),
        },
    });
}

/// Asserts that `body` holds none of the secrets nor the values of `drift`.
fn assert_no_secret_nor_value(body: &str, job: &Job, drift: Option<&DataFrame>) {
    for secret in [
        "hook-token-sekrit",
        "sandbox-client-secret",
        "sandbox-client-id",
    ] {
        assert!(!body.contains(secret), "{secret} in {body}");
    }
    let contract_recon::job::SpotDraftTarget::Live { client_secret, .. } = &job.spotdraft else {
        panic!("a live workspace")
    };
    assert!(!body.contains(client_secret.expose()));
    let Some(drift) = drift else { return };
    let mut values = 0;
    for col in ["spotdraft_value", "erp_value"] {
        for v in text(drift, col).iter().filter(|v| v.len() >= 4) {
            values += 1;
            assert!(!body.contains(v.as_str()), "value {v:?} of {col} in {body}");
        }
    }
    assert!(values > 10, "the drift has values to leak: {values}");
}

fn read_drift(dir: &str) -> DataFrame {
    let file = std::fs::File::open(std::path::Path::new(dir).join("drift.parquet")).unwrap();
    ParquetReader::new(file).finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_drift_is_notified_once_and_not_again_when_nothing_is_new() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut job, _sandbox) = demo_job_against_own_sandbox(tmp.path()).await;
    let (inbox, url) = receiver().await;
    notify_to(&mut job, &url, 3);
    // The receiver is down for the first attempt: the retry delivers it.
    *inbox.failing.lock().unwrap() = 1;

    let first = run_job(&job, RunOptions::default()).await.unwrap();
    let bodies = inbox.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2, "one 503, then the delivery");
    let body: serde_json::Value = serde_json::from_str(&bodies[1]).unwrap();
    let text = body["text"].as_str().unwrap();
    let new = first.summary.lifecycle.as_ref().unwrap().new;
    assert!(new > 0);
    assert!(
        text.contains(&format!("job demo, run {}", first.summary.run_id)),
        "{text}"
    );
    assert!(text.contains(&format!("{new} new drift row(s)")), "{text}");
    let blocks = body["blocks"].to_string();
    for (kind, n) in &first.summary.by_kind {
        assert!(
            blocks.contains(&format!("`{kind}`: {n}")),
            "{kind} in {blocks}"
        );
    }
    assert!(blocks.contains(&first.report_dir), "{blocks}");
    assert_no_secret_nor_value(&bodies[1], &job, Some(&read_drift(&first.tables["drift"])));

    let second = run_job(&job, RunOptions::default()).await.unwrap();
    assert_eq!(second.summary.lifecycle.as_ref().unwrap().new, 0);
    assert!(second.drift_total() > 0, "old drift is still there");
    assert_eq!(
        inbox.bodies.lock().unwrap().len(),
        2,
        "nothing new: no notification"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_notified_and_an_undeliverable_notice_fails_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut job, _sandbox) = demo_job_against_own_sandbox(tmp.path()).await;
    let (inbox, url) = receiver().await;
    notify_to(&mut job, &url, 2);
    let good_extract = job.extract.url.clone();
    let broken = tmp.path().join("broken.csv");
    std::fs::write(&broken, "RECORD_ID,SOMETHING\nERP-1,x\n").unwrap();
    job.extract.url = broken.display().to_string();

    let err = run_job(&job, RunOptions::default()).await.unwrap_err();
    let bodies = inbox.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let body: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
    let text = body["text"].as_str().unwrap();
    assert!(text.contains("job demo, run run-"), "{text}");
    assert!(text.contains(" failed: "), "{text}");
    assert!(text.contains(&err.to_string()), "{text} / {err}");
    assert!(
        body["blocks"].to_string().contains("_history/demo/run-"),
        "{body}"
    );
    assert_no_secret_nor_value(&bodies[0], &job, None);

    // The receiver refuses every attempt: the run still succeeds.
    *inbox.failing.lock().unwrap() = 100;
    job.extract.url = good_extract;
    let ok = run_job(&job, RunOptions::default()).await;
    assert!(ok.is_ok(), "{:#}", ok.unwrap_err());
    assert_eq!(
        inbox.bodies.lock().unwrap().len(),
        3,
        "2 attempts, then given up"
    );
}
