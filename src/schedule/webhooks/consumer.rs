//! The webhook consumer: one task per job drains its queue into targeted
//! runs. It waits `debounce` after the last delivery (at most `max_wait`
//! after the first), makes one run of up to `max_contracts_per_run`
//! contracts, and removes the entries that run covered only once it
//! succeeded; a failed run leaves them and is tried again after a backoff.
//! Entries left by an earlier daemon are picked up at start.
//!
//! The same consumer drains a job's ERP event queue ([`ErpQueueEntry`]) into
//! targeted ERP-record runs ([`RunErpTargeted`]): what a batch is and what
//! runs it is the entry type's [`Lane`].
//!
//! Never over the job's scheduled run: a run waits for the job's
//! [`RunClaims`] claim (this process), and the targeted run itself takes the
//! job's lease (other daemons).

use super::queue::{ErpQueueEntry, QueueEntry, QueueItem, Queued, WebhookQueue};
use crate::job::Job;
use crate::runner::{self, RunOptions, TargetSet};
use crate::schedule::claims::RunClaims;
use crate::schedule::metrics::{Metrics, RunKindLabel};
use futures::future::BoxFuture;
use object_store::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// What "run these contracts" (or these ERP records) means (tests record
/// the calls instead).
pub trait TargetedRuns<T = TargetSet>: Send + Sync + 'static {
    /// One targeted run of `job` over `targets`; `Ok` once it succeeded.
    fn run(&self, job: Job, targets: T) -> BoxFuture<'static, anyhow::Result<()>>;
}

/// A queue's entries as the targets of one run.
pub trait Lane: QueueItem {
    /// What one run covers.
    type Targets: Send + 'static;
    /// The first `max` targets of `pending` (oldest first) and every entry
    /// of those targets (removed once the run succeeded).
    fn batch(pending: &[Queued<Self>], max: usize) -> (Self::Targets, Vec<Path>);
    /// How many targets (for the log).
    fn count(targets: &Self::Targets) -> usize;
}

impl Lane for QueueEntry {
    type Targets = TargetSet;
    fn batch(pending: &[Queued<Self>], max: usize) -> (TargetSet, Vec<Path>) {
        batch(pending, max)
    }
    fn count(targets: &TargetSet) -> usize {
        targets.contracts.len()
    }
}

impl Lane for ErpQueueEntry {
    type Targets = Vec<String>;
    fn batch(pending: &[Queued<Self>], max: usize) -> (Vec<String>, Vec<Path>) {
        erp_batch(pending, max)
    }
    fn count(targets: &Vec<String>) -> usize {
        targets.len()
    }
}

/// The product's targeted ERP-record runs: [`runner::run_erp_targeted`],
/// counted in the metrics (as targeted runs).
pub struct RunErpTargeted {
    /// Where outcomes are counted.
    pub metrics: Arc<Metrics>,
}

impl TargetedRuns<Vec<String>> for RunErpTargeted {
    fn run(&self, job: Job, records: Vec<String>) -> BoxFuture<'static, anyhow::Result<()>> {
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let started = Instant::now();
            let outcome = runner::run_erp_targeted(&job, &records, RunOptions::default()).await;
            metrics.record_run(
                &job.name,
                RunKindLabel::Targeted,
                &outcome,
                started.elapsed(),
            );
            let done = outcome?;
            tracing::info!(
                job = %job.name, records = records.len(), run = %done.summary.run_id,
                planned = ?done.summary.apply.as_ref().map(|a| &a.planned),
                "targeted ERP-record run finished"
            );
            Ok(())
        })
    }
}

/// The product's targeted runs: [`runner::run_targeted`], counted in the metrics.
pub struct RunTargeted {
    /// Where outcomes are counted.
    pub metrics: Arc<Metrics>,
}

impl TargetedRuns for RunTargeted {
    fn run(&self, job: Job, targets: TargetSet) -> BoxFuture<'static, anyhow::Result<()>> {
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let started = Instant::now();
            // No shutdown flag: a targeted run is small and is let finish
            // within the daemon's grace period.
            let outcome = runner::run_targeted(&job, &targets, RunOptions::default()).await;
            metrics.record_run(
                &job.name,
                RunKindLabel::Targeted,
                &outcome,
                started.elapsed(),
            );
            let done = outcome?;
            tracing::info!(
                job = %job.name, contracts = targets.contracts.len(),
                run = %done.summary.run_id, drift = done.drift_total(), "targeted run finished"
            );
            Ok(())
        })
    }
}

/// The consumer's timings.
#[derive(Debug, Clone)]
pub struct ConsumerTiming {
    /// Quiet time after the last delivery before a run.
    pub debounce: Duration,
    /// Longest wait after the first delivery waiting.
    pub max_wait: Duration,
    /// Contracts per run at most.
    pub max_contracts: usize,
    /// First wait after a failed run (or an unreadable queue); doubles each
    /// failure up to `retry_max`.
    pub retry_initial: Duration,
    /// Longest wait after failures.
    pub retry_max: Duration,
    /// How often a run waiting for the job's claim looks again.
    pub claim_poll: Duration,
}

impl ConsumerTiming {
    /// The job's `[webhooks]` timings (the job must have the section).
    pub fn of_job(job: &Job) -> ConsumerTiming {
        let w = job.webhooks.as_ref();
        ConsumerTiming {
            debounce: w.map_or(Duration::from_secs(10), |w| w.debounce),
            max_wait: w.map_or(Duration::from_secs(120), |w| w.max_wait),
            max_contracts: w.map_or(100, |w| w.max_contracts_per_run),
            retry_initial: Duration::from_secs(30),
            retry_max: Duration::from_secs(900),
            claim_poll: Duration::from_secs(1),
        }
    }
}

/// What one consumer works with (of SpotDraft's deliveries by default, of
/// ERP events with `E` = [`ErpQueueEntry`]).
pub struct Consumer<E: Lane = QueueEntry> {
    /// The job.
    pub job: Job,
    /// Its queue.
    pub queue: WebhookQueue<E>,
    /// Woken by each new entry.
    pub wake: Arc<Notify>,
    /// Runs the targets.
    pub runs: Arc<dyn TargetedRuns<E::Targets>>,
    /// The daemon's per-job claims.
    pub claims: RunClaims,
    /// Timings.
    pub timing: ConsumerTiming,
}

/// Sleeps `d`; false when `stop` fired first.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.changed() => false,
    }
}

impl<E: Lane> Consumer<E> {
    /// Drains the queue until `stop` turns true (or its sender is gone); a
    /// run going then is let finish.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let name = self.job.name.clone();
        let t = self.timing.clone();
        let mut backoff = t.retry_initial;
        let mut wait_first = true;
        while !*stop.borrow() {
            let pending = match self.queue.pending().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(job = %name, error = %crate::error_chain::error_chain(&e), "webhook queue unreadable");
                    if !sleep_or_stop(backoff, &mut stop).await {
                        return;
                    }
                    backoff = (backoff * 2).min(t.retry_max);
                    continue;
                }
            };
            if pending.is_empty() {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = stop.changed() => return,
                }
                wait_first = true;
                continue;
            }
            if wait_first {
                if !self.debounce(&mut stop).await {
                    return;
                }
                wait_first = false;
                // Deliveries that came in during the wait join the run.
                continue;
            }
            let (targets, covered) = E::batch(&pending, t.max_contracts);
            let claim = loop {
                if let Some(claim) = self.claims.try_claim(&name) {
                    break claim;
                }
                tracing::debug!(job = %name, "a run of the job is going: the targeted run waits");
                if !sleep_or_stop(t.claim_poll, &mut stop).await {
                    return;
                }
            };
            tracing::info!(job = %name, targets = E::count(&targets), "targeted run");
            let result = self.runs.run(self.job.clone(), targets).await;
            drop(claim);
            match result {
                Ok(()) => {
                    if let Err(e) = self.queue.remove(&covered).await {
                        tracing::error!(job = %name, error = %crate::error_chain::error_chain(&e), "covered webhook entries not removed (they will be run again)");
                    }
                    backoff = t.retry_initial;
                    // Entries beyond the batch run next, without a new wait.
                    wait_first = pending.len() == covered.len();
                }
                Err(e) => {
                    tracing::error!(
                        job = %name, error = %crate::error_chain::anyhow_chain(&e), retry_in = ?backoff,
                        "targeted run failed: its webhook entries stay queued"
                    );
                    if !sleep_or_stop(backoff, &mut stop).await {
                        return;
                    }
                    backoff = (backoff * 2).min(t.retry_max);
                }
            }
        }
    }

    /// Waits until no delivery came for `debounce`, or `max_wait` passed;
    /// false when `stop` fired first.
    async fn debounce(&self, stop: &mut watch::Receiver<bool>) -> bool {
        // tokio's clock, like the sleeps (a paused clock in tests moves both).
        let first = tokio::time::Instant::now();
        loop {
            let left = self.timing.max_wait.saturating_sub(first.elapsed());
            if left.is_zero() {
                return true;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.timing.debounce.min(left)) => return true,
                _ = self.wake.notified() => {}
                _ = stop.changed() => return false,
            }
        }
    }
}

/// The first `max_contracts` contracts of `pending` (oldest first) as
/// targets, each with the strongest hint of its entries, and every entry of
/// those contracts (removed once the run succeeded).
pub fn batch(pending: &[Queued], max_contracts: usize) -> (TargetSet, Vec<Path>) {
    let mut targets = TargetSet::default();
    let mut covered = Vec::new();
    for q in pending {
        let id = q.entry.contract_id;
        if !targets.contracts.contains_key(&id) && targets.contracts.len() >= max_contracts {
            continue;
        }
        let hint = targets.contracts.entry(id).or_default();
        *hint = (*hint).max(q.entry.hint());
        covered.push(q.path.clone());
    }
    (targets, covered)
}

/// The first `max_records` distinct record ids of `pending` (oldest first)
/// and every entry of those records.
pub fn erp_batch(
    pending: &[Queued<ErpQueueEntry>],
    max_records: usize,
) -> (Vec<String>, Vec<Path>) {
    let mut records: Vec<String> = Vec::new();
    let mut covered = Vec::new();
    for q in pending {
        let id = &q.entry.record_id;
        if !records.contains(id) {
            if records.len() >= max_records {
                continue;
            }
            records.push(id.clone());
        }
        covered.push(q.path.clone());
    }
    (records, covered)
}
