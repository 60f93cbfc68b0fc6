//! A SpotDraft webhook end to end over loopback: SpotDraft (the sandbox)
//! signs and sends a delivery, the endpoint verifies and queues it, the
//! consumer runs a targeted run, and the correction is planned. Prints how
//! long that took.

use crate::common::{demo_job_against_own_sandbox, text};
use contract_recon::runner::{job_output, run_job, RunOptions};
use contract_recon::sandbox::dataset::FixtureContract;
use contract_recon::schedule::claims::RunClaims;
use contract_recon::schedule::metrics::Metrics;
use contract_recon::schedule::webhooks::consumer::{Consumer, ConsumerTiming, RunTargeted};
use contract_recon::schedule::webhooks::queue::WebhookQueue;
use contract_recon::schedule::webhooks::server::{router, Endpoint, WebhookState};
use contract_recon::schedule::webhooks::signature::WebhookKey;
use polars::prelude::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `plan.parquet` files of targeted runs under `out`.
fn targeted_plans(out: &Path) -> Vec<PathBuf> {
    let root = out.join("plan/job=demo");
    let mut found = vec![];
    for date in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for run in std::fs::read_dir(date.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = run.file_name().to_string_lossy().to_string();
            let plan = run.path().join("plan.parquet");
            if name.starts_with("run_id=targeted-") && run.path().join("_SUCCESS").exists() {
                found.push(plan);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_becomes_a_planned_correction() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (job, sandbox) = demo_job_against_own_sandbox(tmp.path()).await;
    let nightly = run_job(&job, RunOptions::default()).await.unwrap();
    let drift = ParquetReader::new(
        std::fs::File::open(Path::new(&nightly.tables["drift"]).join("drift.parquet")).unwrap(),
    )
    .finish()
    .unwrap();
    let named: BTreeSet<String> = text(&drift, "contract_id")
        .into_iter()
        .chain(
            text(&drift, "erp_record_id")
                .into_iter()
                .map(|r| r.trim().to_uppercase()),
        )
        .collect();

    // An executed contract without drift, linked to an ERP record: its
    // contract value edited in SpotDraft (a metadata value; the list item
    // and last_updated_on unchanged).
    let state = sandbox.state();
    let mut clean: Vec<FixtureContract> = state
        .contracts()
        .into_iter()
        .filter(|c| {
            let em = c.contract.external_metadata.id.clone().unwrap_or_default();
            c.contract.contract_status == "EXECUTED"
                && !em.trim().is_empty()
                && !named.contains(c.contract.id.composite())
                && !named.contains(&em.trim().to_uppercase())
                && c.key_pointers
                    .iter()
                    .any(|k| k.field_name == "contract_value")
        })
        .collect();
    clean.sort_by(|a, b| a.contract.id.cmp(&b.contract.id));
    let target = clean.first().expect("a clean executed contract").clone();
    let record = target
        .contract
        .external_metadata
        .id
        .clone()
        .unwrap()
        .trim()
        .to_uppercase();
    let number = target.contract.id.number().unwrap();
    assert!(state.set_key_pointer_value(
        target.contract.id.composite(),
        "contract_value",
        serde_json::json!(4321.5)
    ));

    // The daemon's webhook endpoint and consumer for the job.
    let output = job_output(&job).unwrap();
    let queue = WebhookQueue::new(output.store.clone(), &output.path, &job.name);
    let wake = Arc::new(tokio::sync::Notify::new());
    let metrics = Arc::new(Metrics::new());
    let endpoint = Endpoint {
        key: WebhookKey::from_bytes(sandbox.webhook_hmac_key()),
        max_body_bytes: 64 * 1024,
        queue: queue.clone(),
        wake: wake.clone(),
    };
    let hooks = WebhookState::new(
        [(job.name.clone(), endpoint)].into_iter().collect(),
        metrics.clone(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(hooks)).await });
    let consumer = Consumer {
        job: job.clone(),
        queue,
        wake,
        runs: Arc::new(RunTargeted { metrics }),
        claims: RunClaims::default(),
        timing: ConsumerTiming {
            debounce: Duration::from_millis(200),
            max_wait: Duration::from_secs(2),
            ..ConsumerTiming::of_job(&job)
        },
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let consuming = tokio::spawn(consumer.run(stop_rx));

    // SpotDraft sends the delivery, signed with its key.
    let started = Instant::now();
    let sent = crate::common::sandbox_sends_webhook(
        &sandbox,
        &format!("http://{addr}/webhooks/spotdraft/demo"),
        number,
        "CONTRACT_KEY_POINTER_UPDATION",
    )
    .await;
    assert_eq!(sent["status"], 202, "{sent}");
    let answered = started.elapsed();

    let mut plans = vec![];
    for _ in 0..300 {
        plans = targeted_plans(&out);
        if !plans.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let planned = started.elapsed();
    assert_eq!(plans.len(), 1, "one targeted run planned");
    let plan = ParquetReader::new(std::fs::File::open(&plans[0]).unwrap())
        .finish()
        .unwrap();
    let rows: Vec<(String, String, String)> = (0..plan.height())
        .map(|i| {
            (
                text(&plan, "action")[i].clone(),
                text(&plan, "erp_record_id")[i].trim().to_uppercase(),
                text(&plan, "values")[i].clone(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [(
            "update_erp_fields".to_string(),
            record,
            r#"{"amount":"4321.50"}"#.to_string()
        )]
    );
    println!(
        "webhook -> planned correction: answered 202 in {} ms, plan published {} ms after the delivery (debounce 200 ms)",
        answered.as_millis(),
        planned.as_millis()
    );
    stop_tx.send(true).unwrap();
    consuming.await.unwrap();
    // Entries are removed once their run succeeded.
    let output = job_output(&job).unwrap();
    let left = WebhookQueue::new(output.store.clone(), &output.path, &job.name)
        .pending()
        .await
        .unwrap();
    assert!(left.is_empty(), "{} entries left", left.len());
}
