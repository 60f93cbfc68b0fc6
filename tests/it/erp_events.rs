//! ERP events end to end over loopback: the ERP signs and posts a record id
//! to `POST /webhooks/erp/{job}`, the endpoint verifies and queues it, the
//! consumer's targeted ERP-record run plans and (mode apply) creates the
//! record's contract in the sandbox, once. Prints how long that took.

use crate::common::text;
use crate::create::{contracts_of, job_and_sandbox};
use contract_recon::job::ApplyMode;
use contract_recon::runner::{job_output, run_erp_targeted, run_job, RunOptions};
use contract_recon::schedule::claims::RunClaims;
use contract_recon::schedule::metrics::Metrics;
use contract_recon::schedule::webhooks::consumer::{Consumer, ConsumerTiming, RunErpTargeted};
use contract_recon::schedule::webhooks::queue::{ErpQueueEntry, WebhookQueue};
use contract_recon::schedule::webhooks::server::{router, ErpEndpoint, WebhookState};
use contract_recon::schedule::webhooks::signature::ErpEventKey;
use polars::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &[u8] = b"erp-events-shared-secret-0123456789";

/// The `plan.parquet` files of published targeted runs under `out`, oldest first.
fn targeted_plans(out: &Path) -> Vec<PathBuf> {
    let root = out.join("plan/job=create-demo");
    let mut found = vec![];
    for date in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for run in std::fs::read_dir(date.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = run.file_name().to_string_lossy().to_string();
            if name.starts_with("run_id=targeted-") && run.path().join("_SUCCESS").exists() {
                found.push(run.path().join("plan.parquet"));
            }
        }
    }
    // Run ids start with the time, to the second; the files' times break ties.
    found.sort_by_key(|p| {
        std::fs::metadata(p.parent().unwrap().join("_SUCCESS"))
            .and_then(|m| m.modified())
            .ok()
    });
    found
}

/// `(action, erp_record_id)` of a plan, sorted.
fn plan_rows(plan: &Path) -> Vec<(String, String)> {
    let df = ParquetReader::new(std::fs::File::open(plan).unwrap())
        .finish()
        .unwrap();
    let (a, e) = (text(&df, "action"), text(&df, "erp_record_id"));
    let mut rows: Vec<_> = (0..df.height())
        .map(|i| (a[i].clone(), e[i].clone()))
        .collect();
    rows.sort();
    rows
}

async fn post(url: &str, body: &[u8], signature: Option<&str>) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(sig) = signature {
        req = req.header("X-Contract-Recon-Signature", sig);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn queue_drained(queue: &WebhookQueue<ErpQueueEntry>) {
    for _ in 0..1500 {
        if queue.pending().await.unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for the queue to empty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_erp_event_creates_the_records_contract_once() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (mut job, sandbox) = job_and_sandbox(tmp.path()).await;
    // The nightly run that made the snapshot, in plan mode: nothing created.
    run_job(
        &job,
        RunOptions {
            apply_mode: Some(ApplyMode::Plan),
            ..RunOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(sandbox.state().counters().contracts_created, 0);
    job.apply.mode = ApplyMode::Apply;

    // The daemon's ERP endpoint and consumer for the job.
    let output = job_output(&job).unwrap();
    let queue = WebhookQueue::erp(output.store.clone(), &output.path, &job.name);
    let wake = Arc::new(tokio::sync::Notify::new());
    let metrics = Arc::new(Metrics::new());
    let endpoint = ErpEndpoint {
        key: ErpEventKey::new(SECRET),
        max_body_bytes: 64 * 1024,
        queue: queue.clone(),
        wake: wake.clone(),
    };
    let hooks = WebhookState::new(BTreeMap::new(), metrics.clone())
        .with_erp([(job.name.clone(), endpoint)].into_iter().collect());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(hooks)).await });
    let consumer = Consumer {
        job: job.clone(),
        queue: queue.clone(),
        wake,
        runs: Arc::new(RunErpTargeted {
            metrics: metrics.clone(),
        }),
        claims: RunClaims::default(),
        timing: ConsumerTiming {
            debounce: Duration::from_millis(200),
            max_wait: Duration::from_secs(2),
            ..ConsumerTiming::of_job(&job)
        },
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let consuming = tokio::spawn(consumer.run(stop_rx));
    let url = format!("http://{addr}/webhooks/erp/create-demo");
    let body = br#"{"record_id": "ERP-NEW-0001", "event": "purchase_request.approved"}"#;

    // Refused: a bad signature (another secret), none, a job without ERP events.
    let forged = ErpEventKey::new(*b"not-the-shared-secret-at-all").sign(body);
    assert_eq!(post(&url, body, Some(&forged)).await.0, 401);
    assert_eq!(post(&url, body, None).await.0, 401);
    let good = ErpEventKey::new(SECRET).sign(body);
    let hex_only = good.trim_start_matches("sha256=").to_string();
    assert_eq!(post(&url, body, Some(&hex_only)).await.0, 401);
    let other = format!("http://{addr}/webhooks/erp/demo");
    assert_eq!(post(&other, body, Some(&good)).await.0, 404);
    let no_id = br#"{"event": "purchase_request.approved"}"#;
    let no_id_sig = ErpEventKey::new(SECRET).sign(no_id);
    assert_eq!(post(&url, no_id, Some(&no_id_sig)).await.0, 400);
    assert!(queue.pending().await.unwrap().is_empty(), "nothing queued");

    // The signed event: one contract, planned then created.
    let started = Instant::now();
    let (status, answer) = post(&url, body, Some(&good)).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["queued"], "ERP-NEW-0001");
    assert_eq!(answer["duplicate"], false);
    let answered = started.elapsed();
    wait_for("the contract", || {
        !contracts_of(&sandbox, "ERP-NEW-0001").is_empty()
    })
    .await;
    let created = started.elapsed();
    queue_drained(&queue).await;
    assert_eq!(contracts_of(&sandbox, "ERP-NEW-0001").len(), 1);
    assert_eq!(sandbox.state().counters().contracts_created, 1);
    for other in ["ERP-NEW-0002", "ERP-NEW-0003"] {
        assert!(contracts_of(&sandbox, other).is_empty(), "{other}");
    }
    let plans = targeted_plans(&out);
    assert_eq!(plans.len(), 1, "one targeted run");
    let expected: Vec<(String, String)> = [
        "create_contract",
        "update_erp_fields",
        "upload_supporting_document",
    ]
    .iter()
    .map(|a| (a.to_string(), "ERP-NEW-0001".to_string()))
    .collect();
    assert_eq!(plan_rows(&plans[0]), expected);
    // The loop is closed: the ERP record names its contract.
    let contract = contracts_of(&sandbox, "ERP-NEW-0001")[0].clone();
    let record = sandbox.state().erp_record("ERP-NEW-0001").unwrap();
    assert_eq!(
        record.spotdraft_contract_id.as_deref(),
        Some(contract.as_str())
    );

    // Replayed (twice: the second while the first is queued): nothing more.
    let (status, first) = post(&url, body, Some(&good)).await;
    assert_eq!(
        (status, &first["duplicate"]),
        (202, &serde_json::json!(false))
    );
    let (status, again) = post(&url, body, Some(&good)).await;
    assert_eq!(
        (status, &again["duplicate"]),
        (202, &serde_json::json!(true))
    );
    wait_for("the replay's run", || targeted_plans(&out).len() == 2).await;
    queue_drained(&queue).await;
    let replayed = plan_rows(&targeted_plans(&out)[1]);
    assert!(
        replayed.iter().all(|(a, _)| a != "create_contract"),
        "the new contract links the record: {replayed:?}"
    );
    assert_eq!(sandbox.state().counters().contracts_created, 1);
    assert_eq!(contracts_of(&sandbox, "ERP-NEW-0001").len(), 1);

    println!(
        "ERP event -> contract: answered 202 in {} ms, contract in the sandbox {} ms after the POST (debounce 200 ms)",
        answered.as_millis(),
        created.as_millis()
    );
    let metrics_text = metrics.encode();
    assert!(metrics_text.contains("erp_bad_signature"), "{metrics_text}");
    stop_tx.send(true).unwrap();
    consuming.await.unwrap();
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erp_record_run_plans_only_its_records_and_names_those_not_in_the_extract() {
    let tmp = tempfile::tempdir().unwrap();
    let (job, sandbox) = job_and_sandbox(tmp.path()).await;
    let plan_only = || RunOptions {
        apply_mode: Some(ApplyMode::Plan),
        ..RunOptions::default()
    };
    // No snapshot yet: refused (every record would look missing).
    let err = run_erp_targeted(&job, &["ERP-NEW-0002".to_string()], plan_only())
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("no contract snapshot yet"),
        "{err:#}"
    );
    let nightly = run_job(&job, plan_only()).await.unwrap();
    let latest = std::fs::read(tmp.path().join("out/runs/job=create-demo/latest.json")).ok();

    let asked = [" ERP-NEW-0002 ".to_string(), "ERP-NOPE-0009".to_string()];
    let run = run_erp_targeted(&job, &asked, plan_only()).await.unwrap();
    let scope = run.summary.scope.clone().unwrap();
    assert_eq!(scope.erp_records, ["ERP-NEW-0002", "ERP-NOPE-0009"]);
    assert_eq!(scope.erp_records_not_found, ["ERP-NOPE-0009"]);
    assert!(scope
        .description
        .contains("not in the extract: ERP-NOPE-0009"));
    assert!(!scope
        .kinds_not_reported
        .contains(&"missing_in_spotdraft".to_string()));
    let drift = ParquetReader::new(
        std::fs::File::open(Path::new(&run.tables["drift"]).join("drift.parquet")).unwrap(),
    )
    .finish()
    .unwrap();
    let rows: BTreeSet<(String, String)> = text(&drift, "drift_kind")
        .into_iter()
        .zip(text(&drift, "erp_record_id"))
        .collect();
    assert_eq!(
        rows,
        [(
            "missing_in_spotdraft".to_string(),
            "ERP-NEW-0002".to_string()
        )]
        .into_iter()
        .collect()
    );
    let plan = plan_rows(&Path::new(&run.tables["plan"]).join("plan.parquet"));
    assert_eq!(
        plan,
        [
            ("create_contract".to_string(), "ERP-NEW-0002".to_string()),
            ("update_erp_fields".to_string(), "ERP-NEW-0002".to_string())
        ]
    );
    assert_eq!(sandbox.state().counters().contracts_created, 0, "a plan");
    let html = std::fs::read_to_string(run.report_html.as_ref().unwrap()).unwrap();
    assert!(
        html.contains("ERP records ERP-NEW-0002, ERP-NOPE-0009")
            && html.contains("missing contracts are reported"),
        "the report says what the run covers"
    );
    // A partial run: the nightly run's latest.json is not moved.
    assert_eq!(
        std::fs::read(tmp.path().join("out/runs/job=create-demo/latest.json")).ok(),
        latest
    );
    assert_ne!(run.summary.run_id, nightly.summary.run_id);
    sandbox.shutdown().await;
}
