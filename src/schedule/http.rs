//! Scheduling stage, the daemon's HTTP endpoints: `GET /healthz` (is the
//! scheduling loop alive), `GET /metrics` (Prometheus) and `GET /runs`
//! (recent runs from the run history), on a loopback address unless told
//! otherwise.

use super::metrics::{self, Metrics};
use crate::job::Job;
use crate::runner::{self, history};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The address `--http` binds by default.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:9464";
/// The address `--webhooks` binds by default.
pub const DEFAULT_WEBHOOKS_ADDR: &str = "127.0.0.1:9465";

/// What `/healthz` and `/runs` know of the daemon, updated by its loop at
/// every heartbeat (once a second).
#[derive(Debug)]
pub struct DaemonStatus {
    inner: Mutex<StatusInner>,
    started: DateTime<Utc>,
    stall_after: Duration,
}

#[derive(Debug, Default)]
struct StatusInner {
    jobs: BTreeMap<String, Job>,
    running: usize,
    last_heartbeat: Option<DateTime<Utc>>,
    stopping: bool,
}

impl DaemonStatus {
    /// A status that calls the loop stalled when no heartbeat came for `stall_after`.
    pub fn new(stall_after: Duration) -> DaemonStatus {
        DaemonStatus {
            inner: Mutex::default(),
            started: Utc::now(),
            stall_after,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StatusInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The loop is alive at `at`, with these jobs loaded and `running` runs going.
    pub fn heartbeat(
        &self,
        at: DateTime<Utc>,
        jobs: impl IntoIterator<Item = Job>,
        running: usize,
    ) {
        let mut inner = self.lock();
        inner.jobs = jobs.into_iter().map(|j| (j.name.clone(), j)).collect();
        inner.running = running;
        inner.last_heartbeat = Some(at);
    }

    /// The daemon is stopping (SIGTERM): `/healthz` answers 503.
    pub fn stopping(&self) {
        self.lock().stopping = true;
    }

    /// The job named `name`, when loaded.
    pub fn job(&self, name: &str) -> Option<Job> {
        self.lock().jobs.get(name).cloned()
    }

    fn jobs(&self) -> Vec<Job> {
        self.lock().jobs.values().cloned().collect()
    }

    /// `/healthz`'s status code and body at `now`.
    pub fn health(&self, now: DateTime<Utc>) -> (StatusCode, serde_json::Value) {
        let inner = self.lock();
        let since = inner.last_heartbeat.unwrap_or(self.started);
        let stalled = (now - since).to_std().unwrap_or_default() > self.stall_after;
        let status = if inner.stopping {
            "stopping"
        } else if stalled {
            "stalled"
        } else {
            "ok"
        };
        let body = json!({
            "status": status,
            "jobs_loaded": inner.jobs.len(),
            "runs_going": inner.running,
            "last_heartbeat": inner.last_heartbeat,
        });
        let code = if status == "ok" {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (code, body)
    }
}

/// What the endpoints read.
#[derive(Clone)]
pub struct HttpState {
    /// The loop's status.
    pub status: Arc<DaemonStatus>,
    /// The runs' metrics.
    pub metrics: Arc<Metrics>,
}

/// `/healthz`, `/metrics` and `/runs`.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/runs", get(runs))
        .with_state(state)
}

async fn healthz(State(s): State<HttpState>) -> Response {
    let (code, body) = s.status.health(Utc::now());
    (code, Json(body)).into_response()
}

async fn metrics_text(State(s): State<HttpState>) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        s.metrics.encode(),
    )
        .into_response()
}

/// `/runs`'s query.
#[derive(Debug, Deserialize)]
struct RunsQuery {
    job: Option<String>,
    limit: Option<usize>,
}

async fn runs(State(s): State<HttpState>, Query(q): Query<RunsQuery>) -> Response {
    let limit = q.limit.unwrap_or(20).clamp(1, 1000);
    let jobs = match &q.job {
        Some(name) => match s.status.job(name) {
            Some(job) => vec![job],
            None => {
                let body = json!({"error": format!("no job {name:?} is loaded")});
                return (StatusCode::NOT_FOUND, Json(body)).into_response();
            }
        },
        None => s.status.jobs(),
    };
    let mut records = Vec::new();
    for job in &jobs {
        let read = async {
            let output = runner::job_output(job)?;
            history::read_records(output.store.as_ref(), &output.path, &job.name, limit).await
        };
        match read.await {
            Ok(mut r) => records.append(&mut r),
            Err(e) => {
                tracing::warn!(job = %job.name, error = %crate::error_chain::anyhow_chain(&e), "run history unreadable");
                let body = json!({"error": format!("job {}: run history unreadable", job.name)});
                return (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response();
            }
        }
    }
    records.sort_by_key(|r| std::cmp::Reverse(r.started_at));
    records.truncate(limit);
    Json(json!({ "runs": records })).into_response()
}

/// Binds `addr` for `what` (`--http`, `--webhooks`); a non-loopback address
/// is only bound because it was asked for, and says so in the log.
pub async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "{what}: listening on a non-loopback address, as asked");
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("{what}: cannot listen on {addr}: {e}"))?;
    tracing::info!(addr = %listener.local_addr()?, "{what}: listening");
    Ok(listener)
}
