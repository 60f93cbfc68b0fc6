//! Scheduling stage, metrics: what the daemon's runs did, as Prometheus
//! metrics (through `prometheus-client`), fed by the launcher from each run's
//! outcome and served by [`super::http`] at `GET /metrics`.

use crate::runner::RunOutcome;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// The content type of [`Metrics::encode`]'s text (OpenMetrics, which
/// Prometheus scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabel {
    job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    job: String,
    /// `scheduled` or `targeted`.
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    job: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    job: String,
    outcome: String,
}

fn duration_histogram() -> Histogram {
    // 1 s to about 9 hours.
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

/// The daemon's metrics: one registry, cheap to update from any task.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    last_success: Family<JobLabel, Gauge>,
    duration: Family<JobLabel, Histogram, fn() -> Histogram>,
    drift: Family<KindLabels, Gauge>,
    api_requests: Family<JobLabel, Counter>,
    api_429: Family<JobLabel, Counter>,
    api_retries: Family<JobLabel, Counter>,
    apply_outcomes: Family<OutcomeLabels, Counter>,
    webhooks: Family<OutcomeLabels, Counter>,
}

/// What kind of run an outcome belongs to (the `kind` label of `runs_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKindLabel {
    /// Started by the job's schedule.
    Scheduled,
    /// Started by webhook deliveries.
    Targeted,
}

impl RunKindLabel {
    fn as_str(self) -> &'static str {
        match self {
            RunKindLabel::Scheduled => "scheduled",
            RunKindLabel::Targeted => "targeted",
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric, all names prefixed `contract_recon_`.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("contract_recon");
        let runs = Family::<RunLabels, Counter>::default();
        let last_success = Family::<JobLabel, Gauge>::default();
        let duration = Family::<JobLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        let drift = Family::<KindLabels, Gauge>::default();
        let api_requests = Family::<JobLabel, Counter>::default();
        let api_429 = Family::<JobLabel, Counter>::default();
        let api_retries = Family::<JobLabel, Counter>::default();
        let apply_outcomes = Family::<OutcomeLabels, Counter>::default();
        let webhooks = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "runs",
            "Runs by job, kind (scheduled, targeted) and outcome (ok, failed, refused_by_lease, skipped)",
            runs.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time the job's last successful run ended",
            last_success.clone(),
        );
        registry.register(
            "run_duration_seconds",
            "Wall time of the job's runs",
            duration.clone(),
        );
        registry.register(
            "drift_rows",
            "Drift rows of the job's last successful run, by drift kind",
            drift.clone(),
        );
        registry.register(
            "spotdraft_requests",
            "SpotDraft API requests (every attempt) made by the job's runs",
            api_requests.clone(),
        );
        registry.register(
            "spotdraft_429",
            "SpotDraft answers 429 (rate limited) to the job's runs",
            api_429.clone(),
        );
        registry.register(
            "spotdraft_retries",
            "SpotDraft requests retried by the job's runs",
            api_retries.clone(),
        );
        registry.register(
            "apply_outcomes",
            "Corrections applied by the job's runs, by outcome",
            apply_outcomes.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "Webhook deliveries by job and outcome (queued, duplicate, bad_signature, malformed, too_large, store_error)",
            webhooks.clone(),
        );
        Metrics {
            registry,
            runs,
            last_success,
            duration,
            drift,
            api_requests,
            api_429,
            api_retries,
            apply_outcomes,
            webhooks,
        }
    }

    /// Counts a run of `job` that took `took` and ended with `outcome`.
    pub fn record_run(
        &self,
        job: &str,
        kind: RunKindLabel,
        outcome: &anyhow::Result<RunOutcome>,
        took: Duration,
    ) {
        let label = JobLabel { job: job.into() };
        self.duration
            .get_or_create(&label)
            .observe(took.as_secs_f64());
        let status = match outcome {
            Ok(_) => "ok",
            Err(e) if is_lease_held(e) => "refused_by_lease",
            Err(_) => "failed",
        };
        self.count_run(job, kind, status);
        let Ok(done) = outcome else { return };
        let s = &done.summary;
        self.last_success
            .get_or_create(&label)
            .set(chrono::Utc::now().timestamp());
        for (kind, rows) in &s.by_kind {
            self.drift
                .get_or_create(&KindLabels {
                    job: job.into(),
                    kind: kind.clone(),
                })
                .set(*rows as i64);
        }
        let http = &s.ingestion.http;
        self.api_requests
            .get_or_create(&label)
            .inc_by(http.requests);
        self.api_429.get_or_create(&label).inc_by(http.status_429);
        self.api_retries.get_or_create(&label).inc_by(http.retries);
        for (outcome, n) in s.apply.iter().flat_map(|a| &a.outcomes) {
            self.apply_outcomes
                .get_or_create(&OutcomeLabels {
                    job: job.into(),
                    outcome: outcome.clone(),
                })
                .inc_by(*n);
        }
    }

    /// Counts a due run of `job` the scheduler skipped.
    pub fn record_skipped(&self, job: &str) {
        self.count_run(job, RunKindLabel::Scheduled, "skipped");
    }

    /// Counts a webhook delivery for `job` and what became of it.
    pub fn record_webhook(&self, job: &str, outcome: &str) {
        self.webhooks
            .get_or_create(&OutcomeLabels {
                job: job.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    fn count_run(&self, job: &str, kind: RunKindLabel, outcome: &str) {
        self.runs
            .get_or_create(&RunLabels {
                job: job.into(),
                kind: kind.as_str().into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// The metrics as OpenMetrics text (see [`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

fn is_lease_held(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<crate::lease::LeaseError>(),
        Some(crate::lease::LeaseError::Held { .. })
    )
}
