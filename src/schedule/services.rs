//! Scheduling stage, the daemon's services beside its loop: the HTTP
//! endpoints (`--http`), the webhook endpoints (`--webhooks`) and one webhook
//! consumer per job that takes webhooks (and one more per job that takes ERP
//! events); started with the daemon, told to stop with it, and given the
//! same grace period.

use super::daemon::Scheduler;
use super::driver::{DaemonConfig, RunJobs};
use super::http::{self, HttpState};
use super::webhooks::consumer::{Consumer, ConsumerTiming, RunErpTargeted, RunTargeted};
use super::webhooks::queue::{ErpQueueEntry, WebhookQueue};
use super::webhooks::server::{self as webhook_server, Endpoint, ErpEndpoint, WebhookState};
use super::webhooks::signature::{ErpEventKey, WebhookKey};
use crate::job::{Job, WebhookKeySource};
use crate::runner;
use axum::Router;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};
use tokio::task::{JoinHandle, JoinSet};

/// The running services; clones share them.
#[derive(Clone)]
pub struct Services {
    inner: Arc<Inner>,
}

struct Inner {
    launcher: RunJobs,
    webhooks: Option<WebhookState>,
    stop: watch::Sender<bool>,
    stopped_at: Mutex<Option<Instant>>,
    consumers: tokio::sync::Mutex<JoinSet<()>>,
    servers: Mutex<Vec<JoinHandle<()>>>,
}

impl Services {
    /// Binds `config.http` and `config.webhooks` (one listener when they are
    /// the same address) and starts a webhook consumer for each of
    /// `scheduler`'s jobs with a `[webhooks]` section (when `--webhooks`).
    pub async fn start(
        config: &DaemonConfig,
        scheduler: &Scheduler,
        launcher: &RunJobs,
    ) -> anyhow::Result<Services> {
        let (stop, stop_rx) = watch::channel(false);
        let mut consumers = JoinSet::new();
        let webhooks = match config.webhooks {
            None => None,
            Some(_) => {
                let mut endpoints = BTreeMap::new();
                let mut erp_endpoints = BTreeMap::new();
                for job in scheduler.loaded().filter(|j| j.webhooks.is_some()) {
                    let Some((endpoint, consumer)) = webhook_job(job, launcher).await else {
                        continue;
                    };
                    consumers.spawn(consumer.run(stop_rx.clone()));
                    endpoints.insert(job.name.clone(), endpoint);
                    if let Some((endpoint, consumer)) = erp_job(job, launcher) {
                        consumers.spawn(consumer.run(stop_rx.clone()));
                        erp_endpoints.insert(job.name.clone(), endpoint);
                    }
                }
                if endpoints.is_empty() {
                    tracing::warn!("--webhooks: no scheduled job has a [webhooks] section");
                }
                tracing::info!(
                    jobs = ?endpoints.keys().collect::<Vec<_>>(),
                    erp_events = ?erp_endpoints.keys().collect::<Vec<_>>(),
                    "webhooks taken"
                );
                Some(WebhookState::new(endpoints, launcher.metrics.clone()).with_erp(erp_endpoints))
            }
        };
        let http = launcher.status.clone().map(|status| {
            http::router(HttpState {
                status,
                metrics: launcher.metrics.clone(),
            })
        });
        let mut listeners: Vec<(SocketAddr, Router, &str)> = Vec::new();
        if let (Some(addr), Some(router)) = (config.http, http) {
            listeners.push((addr, router, "--http"));
        }
        if let (Some(addr), Some(state)) = (config.webhooks, &webhooks) {
            let router = webhook_server::router(state.clone());
            match listeners.iter_mut().find(|(a, _, _)| *a == addr) {
                Some(same) => same.1 = std::mem::take(&mut same.1).merge(router),
                None => listeners.push((addr, router, "--webhooks")),
            }
        }
        let mut servers = Vec::new();
        for (addr, router, what) in listeners {
            let listener = http::bind(addr, what).await?;
            servers.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    tracing::error!(error = %crate::error_chain::error_chain(&e), "{what}: server stopped");
                }
            }));
        }
        Ok(Services {
            inner: Arc::new(Inner {
                launcher: launcher.clone(),
                webhooks,
                stop,
                stopped_at: Mutex::new(None),
                consumers: tokio::sync::Mutex::new(consumers),
                servers: Mutex::new(servers),
            }),
        })
    }

    /// SIGTERM: `/healthz` answers 503, webhooks are refused with 503, and
    /// consumers start no new run.
    pub fn stop(&self) {
        let mut at = self
            .inner
            .stopped_at
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if at.is_some() {
            return;
        }
        *at = Some(Instant::now());
        if let Some(status) = &self.inner.launcher.status {
            status.stopping();
        }
        if let Some(w) = &self.inner.webhooks {
            w.stop_accepting();
        }
        let _ = self.inner.stop.send(true);
    }

    /// Waits for the consumers' going runs until `grace` after [`Services::stop`],
    /// then stops the servers. Returns the targeted runs dropped when it was over.
    pub async fn finish(&self, grace: Duration) -> usize {
        self.stop();
        let since = self
            .inner
            .stopped_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or_else(Instant::now);
        let deadline = tokio::time::Instant::from_std(since + grace);
        let mut consumers = self.inner.consumers.lock().await;
        let busy = consumers.len();
        let mut ended = 0;
        let drain = async {
            while consumers.join_next().await.is_some() {
                ended += 1;
            }
        };
        let timed_out = tokio::time::timeout_at(deadline, drain).await.is_err();
        let dropped = if timed_out {
            tracing::warn!(
                "grace period over: a targeted run dropped (its webhook entries stay queued)"
            );
            consumers.shutdown().await;
            busy - ended
        } else {
            0
        };
        for server in self
            .inner
            .servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            server.abort();
        }
        dropped
    }
}

/// The endpoint and consumer of `job`, or `None` (logged) when its key or
/// output cannot be had.
async fn webhook_job(job: &Job, launcher: &RunJobs) -> Option<(Endpoint, Consumer)> {
    let settings = job.webhooks.as_ref()?;
    let key = match &settings.hmac_key {
        WebhookKeySource::Env { var, key } => WebhookKey::from_base64(key.expose())
            .map_err(|e| anyhow::anyhow!("webhooks.hmac_key_env ({var}): {e}")),
        WebhookKeySource::Fetch => match runner::fetch_webhook_key(job).await {
            Ok(key) => WebhookKey::from_base64(key.expose())
                .map_err(|e| anyhow::anyhow!("SpotDraft's hmac_key: {e}")),
            Err(e) => Err(e),
        },
    };
    let output = runner::job_output(job);
    let (key, output) = match (key, output) {
        (Ok(key), Ok(output)) => (key, output),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(job = %job.name, error = %crate::error_chain::anyhow_chain(&e), "webhooks not taken for this job");
            return None;
        }
    };
    let queue = WebhookQueue::new(output.store.clone(), &output.path, &job.name);
    let wake = Arc::new(Notify::new());
    let endpoint = Endpoint {
        key,
        max_body_bytes: settings.max_body_bytes,
        queue: queue.clone(),
        wake: wake.clone(),
    };
    let consumer = Consumer {
        job: job.clone(),
        queue,
        wake,
        runs: Arc::new(RunTargeted {
            metrics: launcher.metrics.clone(),
        }),
        claims: launcher.claims.clone(),
        timing: ConsumerTiming::of_job(job),
    };
    Some((endpoint, consumer))
}

/// The ERP event endpoint and consumer of `job`, when it takes ERP events
/// (`[webhooks] erp_secret_env`, `[create]` on); `None` (logged) when its
/// output cannot be had.
fn erp_job(job: &Job, launcher: &RunJobs) -> Option<(ErpEndpoint, Consumer<ErpQueueEntry>)> {
    let settings = job.webhooks.as_ref()?;
    let secret = settings.erp_secret.as_ref()?;
    if job.create.is_none() {
        tracing::error!(job = %job.name, "ERP events not taken: the job has no [create] enabled = true");
        return None;
    }
    let output = match runner::job_output(job) {
        Ok(output) => output,
        Err(e) => {
            tracing::error!(job = %job.name, error = %crate::error_chain::anyhow_chain(&e), "ERP events not taken for this job");
            return None;
        }
    };
    let queue = WebhookQueue::erp(output.store.clone(), &output.path, &job.name);
    let wake = Arc::new(Notify::new());
    let endpoint = ErpEndpoint {
        key: ErpEventKey::new(secret.secret.expose().as_bytes()),
        max_body_bytes: settings.max_body_bytes,
        queue: queue.clone(),
        wake: wake.clone(),
    };
    let consumer = Consumer {
        job: job.clone(),
        queue,
        wake,
        runs: Arc::new(RunErpTargeted {
            metrics: launcher.metrics.clone(),
        }),
        claims: launcher.claims.clone(),
        timing: ConsumerTiming::of_job(job),
    };
    Some((endpoint, consumer))
}
