//! The product's launcher feeding the metrics and the run history: a real
//! run of the demo job against its embedded sandbox, read back through
//! `/metrics` and `/runs` and checked against the fixture's expected drift.

use super::driver::{Launcher, RunJobs};
use super::http::{router, DaemonStatus, HttpState};
use crate::job::load_job;
use crate::reconcile::spec::kinds;
use crate::runner::RunOptions;
use chrono::Utc;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_run_shows_in_metrics_and_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root.join("jobs/demo.toml"))
        .unwrap()
        .replace("\"../fixtures/", &format!("\"{}/fixtures/", root.display()))
        .replace("\"../out/", &format!("\"{}/out/", dir.path().display()));
    let path = dir.path().join("demo.toml");
    std::fs::write(&path, text).unwrap();
    let job = load_job(&path).unwrap();

    let status = Arc::new(DaemonStatus::new(Duration::from_secs(30)));
    let launcher = RunJobs {
        status: Some(status.clone()),
        ..RunJobs::default()
    };
    launcher
        .run(
            job.clone(),
            RunOptions {
                scheduled_for: Some(Utc::now()),
                ..RunOptions::default()
            },
        )
        .await;
    status.heartbeat(Utc::now(), vec![job], 0);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(HttpState {
        status,
        metrics: launcher.metrics.clone(),
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // The fixture's truth, per drift kind.
    let expected = std::fs::read_to_string(root.join("fixtures/demo/expected_drift.csv")).unwrap();
    let mut by_kind: BTreeMap<&str, f64> = kinds::ALL.iter().map(|k| (*k, 0.0)).collect();
    for line in expected.lines().skip(1).filter(|l| !l.is_empty()) {
        *by_kind.get_mut(line.split(',').next().unwrap()).unwrap() += 1.0;
    }

    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let sample = |metric: &str, label: Option<(&str, &str)>| {
        let found: Vec<f64> = scrape
            .samples
            .iter()
            .filter(|s| s.metric == metric && s.labels.get("job") == Some("demo"))
            .filter(|s| label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .collect();
        assert_eq!(found.len(), 1, "{metric} {label:?} in\n{text}");
        found[0]
    };
    assert_eq!(
        sample("contract_recon_runs_total", Some(("outcome", "ok"))),
        1.0
    );
    for (kind, rows) in &by_kind {
        assert_eq!(
            sample("contract_recon_drift_rows", Some(("kind", kind))),
            *rows,
            "{kind}"
        );
    }
    assert!(sample("contract_recon_spotdraft_requests_total", None) > 0.0);
    assert!(sample("contract_recon_last_success_timestamp_seconds", None) > 0.0);

    let runs: serde_json::Value = reqwest::get(format!("http://{addr}/runs?job=demo"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["outcome"], "ok");
    let total: f64 = by_kind.values().sum();
    assert_eq!(runs[0]["counts"]["drift"].as_f64(), Some(total));
}
