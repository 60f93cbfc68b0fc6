//! The daemon's HTTP endpoints over a real socket: `/healthz`, `/metrics`
//! (read back with a Prometheus text parser) and `/runs`.

use super::http::{router, DaemonStatus, HttpState};
use super::metrics::{Metrics, RunKindLabel};
use crate::job::{load_job, Job};
use crate::runner::history::{self, RunRecord, RunStatus};
use crate::runner::RunOutcome;
use chrono::{Duration as Days, TimeZone, Utc};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

async fn start(state: HttpState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(state);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn state() -> HttpState {
    HttpState {
        status: Arc::new(DaemonStatus::new(Duration::from_secs(30))),
        metrics: Arc::new(Metrics::new()),
    }
}

/// The demo job named `name`, writing into `dir`.
fn job_in(dir: &Path, name: &str) -> Job {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("jobs/demo.toml"))
        .unwrap()
        .replace("\"../fixtures/", &format!("\"{}/fixtures/", root.display()))
        .replace("\"../out/", &format!("\"{}/out/", dir.display()))
        .replace("name = \"demo\"", &format!("name = \"{name}\""));
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    load_job(&path).unwrap()
}

/// A finished run's outcome with chosen figures.
fn outcome() -> RunOutcome {
    let summary = json!({
        "job": "nightly", "run_id": "run-20260301-023000-abcdef12", "run_date": "2026-03-01",
        "started_at": "2026-03-01T02:30:00Z", "finished_at": "2026-03-01T02:31:00Z",
        "inputs": {"contracts": 10, "contracts_in_scope": 9, "erp_rows_read": 8,
                   "erp_rows_valid": 8, "erp_rows_rejected": 0},
        "drift_total": 4,
        "by_kind": {"field_mismatch": 3, "missing_in_erp": 1, "orphan_erp_record": 0},
        "by_severity": {}, "by_legal_entity": {}, "by_field": {}, "timings_ms": {},
        "ingestion": {"http": {"requests": 17, "status_429": 2, "retries": 3}},
        "reconcile": {},
        "apply": {"mode": "apply", "outcomes": {"applied": 5, "rejected": 1}, "failed": 1},
    });
    RunOutcome {
        summary: serde_json::from_value(summary).unwrap(),
        report_dir: "out/nightly/run".into(),
        tables: Default::default(),
        report_html: None,
    }
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_carry_a_recorded_run() {
    let s = state();
    s.metrics.record_run(
        "nightly",
        RunKindLabel::Scheduled,
        &Ok(outcome()),
        Duration::from_secs(5),
    );
    s.metrics.record_run(
        "nightly",
        RunKindLabel::Scheduled,
        &Err(anyhow::anyhow!("boom")),
        Duration::from_secs(1),
    );
    s.metrics.record_skipped("nightly");
    let url = start(s).await;
    let resp = reqwest::get(format!("{url}/metrics")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = resp.text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let value = |metric: &str, labels: &[(&str, &str)]| {
        let found: Vec<_> = scrape
            .samples
            .iter()
            .filter(|s| {
                s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
            })
            .collect();
        assert_eq!(found.len(), 1, "{metric} {labels:?} in\n{text}");
        found[0].value.clone()
    };
    use prometheus_parse::Value::{Counter, Gauge, Histogram, Untyped};
    // The parser types a counter's `_total` samples (OpenMetrics) as untyped.
    let counter = |metric: &str, labels: &[(&str, &str)]| match value(metric, labels) {
        Counter(v) | Untyped(v) => v,
        other => panic!("{metric} is not a counter: {other:?}"),
    };
    for family in [
        "contract_recon_runs",
        "contract_recon_drift_rows",
        "contract_recon_run_duration_seconds",
    ] {
        assert!(scrape.docs.contains_key(family), "no HELP for {family}");
    }
    let job = ("job", "nightly");
    let runs = "contract_recon_runs_total";
    assert_eq!(
        counter(runs, &[job, ("kind", "scheduled"), ("outcome", "ok")]),
        1.0
    );
    assert_eq!(counter(runs, &[job, ("outcome", "failed")]), 1.0);
    assert_eq!(counter(runs, &[job, ("outcome", "skipped")]), 1.0);
    let drift = "contract_recon_drift_rows";
    assert_eq!(value(drift, &[job, ("kind", "field_mismatch")]), Gauge(3.0));
    assert_eq!(value(drift, &[job, ("kind", "missing_in_erp")]), Gauge(1.0));
    assert_eq!(
        value(drift, &[job, ("kind", "orphan_erp_record")]),
        Gauge(0.0)
    );
    assert_eq!(
        counter("contract_recon_spotdraft_requests_total", &[job]),
        17.0
    );
    assert_eq!(counter("contract_recon_spotdraft_429_total", &[job]), 2.0);
    assert_eq!(
        counter("contract_recon_spotdraft_retries_total", &[job]),
        3.0
    );
    let apply = "contract_recon_apply_outcomes_total";
    assert_eq!(counter(apply, &[job, ("outcome", "applied")]), 5.0);
    assert_eq!(counter(apply, &[job, ("outcome", "rejected")]), 1.0);
    let Gauge(last) = value("contract_recon_last_success_timestamp_seconds", &[job]) else {
        panic!("last success is a gauge")
    };
    assert!(
        (Utc::now().timestamp() as f64 - last).abs() < 60.0,
        "{last}"
    );
    // Two runs observed: 5 s and 1 s.
    let Histogram(buckets) = value("contract_recon_run_duration_seconds", &[job]) else {
        panic!("run duration is a histogram")
    };
    let count_le = |le: f64| buckets.iter().find(|b| b.less_than == le).unwrap().count;
    assert_eq!(
        (count_le(1.0), count_le(4.0), count_le(8.0)),
        (1.0, 1.0, 2.0)
    );
}

#[tokio::test]
async fn healthz_reports_jobs_and_runs_and_a_stalled_or_stopping_loop() {
    let s = state();
    let dir = tempfile::tempdir().unwrap();
    let jobs = vec![job_in(dir.path(), "a"), job_in(dir.path(), "b")];
    s.status.heartbeat(Utc::now(), jobs.clone(), 1);
    let url = start(s.clone()).await;
    let resp = reqwest::get(format!("{url}/healthz")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        (body["jobs_loaded"].as_u64(), body["runs_going"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(body["status"], "ok");
    // No heartbeat for a minute (stalls after 30 s).
    s.status
        .heartbeat(Utc::now() - Days::seconds(60), jobs.clone(), 1);
    let resp = reqwest::get(format!("{url}/healthz")).await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "stalled");
    s.status.heartbeat(Utc::now(), jobs, 0);
    s.status.stopping();
    let resp = reqwest::get(format!("{url}/healthz")).await.unwrap();
    assert_eq!(resp.status(), 503);
}

fn record(job: &str, run_id: &str, minute: u32, outcome: RunStatus) -> RunRecord {
    let at = Utc.with_ymd_and_hms(2026, 3, 1, 2, minute, 0).unwrap();
    RunRecord {
        job: job.into(),
        run_id: run_id.into(),
        scheduled_for: Some(at),
        started_at: at,
        finished_at: at + Days::seconds(30),
        outcome,
        exit_code: 0,
        counts: None,
        report: None,
        error: None,
    }
}

#[tokio::test]
async fn runs_lists_recent_runs_of_a_job_or_of_all() {
    let s = state();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (job_in(dir.path(), "a"), job_in(dir.path(), "b"));
    for (job, id, minute, outcome) in [
        (&a, "run-20260301-020000-aaaaaaa1", 0, RunStatus::Ok),
        (&a, "run-20260301-021000-aaaaaaa2", 10, RunStatus::Failed),
        (&a, "run-20260301-022000-aaaaaaa3", 20, RunStatus::Skipped),
        (&b, "run-20260301-021500-bbbbbbb1", 15, RunStatus::Ok),
    ] {
        let output = crate::runner::job_output(job).unwrap();
        history::write_record(&output, &record(&job.name, id, minute, outcome))
            .await
            .unwrap();
    }
    s.status.heartbeat(Utc::now(), vec![a, b], 0);
    let url = start(s).await;
    let get = |q: &str| {
        let url = format!("{url}/runs{q}");
        async move { reqwest::get(url).await.unwrap() }
    };
    let ids = |v: serde_json::Value| -> Vec<String> {
        v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["run_id"].as_str().unwrap().to_string())
            .collect()
    };
    let resp = get("?job=a&limit=2").await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        ids(body.clone()),
        [
            "run-20260301-022000-aaaaaaa3",
            "run-20260301-021000-aaaaaaa2"
        ]
    );
    assert_eq!(body["runs"][0]["outcome"], "skipped");
    let all: serde_json::Value = get("?limit=3").await.json().await.unwrap();
    assert_eq!(
        ids(all),
        [
            "run-20260301-022000-aaaaaaa3",
            "run-20260301-021500-bbbbbbb1",
            "run-20260301-021000-aaaaaaa2"
        ]
    );
    assert_eq!(get("?job=nobody").await.status(), 404);
}

/// A free loopback port (bound, then released).
fn free_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_health_metrics_and_webhooks_on_one_address() {
    use crate::sandbox::{Dataset, Sandbox, SandboxConfig};
    use crate::schedule::driver::{self, DaemonConfig};
    use crate::schedule::webhooks::signature::{WebhookKey, SIGNATURE_HEADER};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The key the embedded sandbox signs with, read from a sandbox of our own
    // (the daemon fetches it from its job's sandbox over the API).
    let sandbox = Sandbox::start(
        SandboxConfig::default(),
        Dataset::load(&root.join("fixtures/demo")).unwrap(),
    )
    .await
    .unwrap();
    let key = WebhookKey::from_bytes(sandbox.webhook_hmac_key());
    sandbox.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    let jobs = dir.path().join("jobs");
    std::fs::create_dir(&jobs).unwrap();
    let text = std::fs::read_to_string(root.join("jobs/demo.toml"))
        .unwrap()
        .replace("\"../fixtures/", &format!("\"{}/fixtures/", root.display()))
        .replace("\"../out/", &format!("\"{}/out/", dir.path().display()))
        .replace("0 30 2 * * *", "0 0 3 1 1 *")
        + "\n[webhooks]\ndebounce_secs = 0\nmax_wait_secs = 1\n";
    std::fs::write(jobs.join("demo.toml"), text).unwrap();
    let addr = free_addr();
    let config = DaemonConfig {
        jobs_dir: jobs,
        max_concurrent_jobs: 1,
        grace: Duration::from_secs(5),
        http: Some(addr),
        webhooks: Some(addr),
    };
    let (_reload_tx, reload) = tokio::sync::mpsc::channel(1);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(driver::run(config, reload, async move {
        let _ = stop_rx.await;
    }));
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let mut health = None;
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
            health = Some(r.json::<serde_json::Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health = health.expect("the daemon answers /healthz");
    assert_eq!(health["jobs_loaded"], 1, "{health}");

    let body = r#"{"activity":"CONTRACT_EXECUTED","contract_id":1072}"#;
    let resp = client
        .post(format!("{base}/webhooks/spotdraft/demo"))
        .header(SIGNATURE_HEADER, key.sign(body.as_bytes()))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let queue = dir.path().join("out/demo/_webhooks/demo/queue");
    assert_eq!(std::fs::read_dir(&queue).unwrap().count(), 1);

    // The consumer's targeted run is counted, whatever its outcome.
    let mut counted = false;
    for _ in 0..200 {
        let text = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("contract_recon_runs_total{job=\"demo\",kind=\"targeted\"")
            && text.contains(
                "contract_recon_webhook_deliveries_total{job=\"demo\",outcome=\"queued\"} 1",
            )
        {
            counted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(counted, "no targeted run in /metrics");
    stop_tx.send(()).unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(10), daemon)
        .await
        .expect("the daemon stops within its grace")
        .unwrap()
        .unwrap();
    assert_eq!(stopped.dropped, 0);
}
