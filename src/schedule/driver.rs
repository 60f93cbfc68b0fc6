//! Scheduling stage, the driver: the loop that turns ticks into runs
//! ([`serve`]), and `contract-recon schedule` itself ([`run`]), whose ticks
//! come from tokio-cron-scheduler (one repeated job, every second).
//!
//! tokio-cron-scheduler only provides the heartbeat: its own cron jobs keep
//! the UTC offset they were created with across a DST change, so the firing
//! instants come from [`super::calendar`] instead.
//!
//! Beside the loop, [`super::services`] serves the HTTP endpoints and the
//! webhooks, and drains the webhook queues; they stop with it.

use super::claims::RunClaims;
use super::daemon::{load_jobs_dir, Decision, Scheduler, SkipReason};
use super::http::DaemonStatus;
use super::metrics::{Metrics, RunKindLabel};
use super::services::Services;
use crate::job::Job;
use crate::runner::{self, history, RunOptions};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// `contract-recon schedule`'s settings.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// The folder of job files (`*.toml`); those with a `schedule` are run.
    pub jobs_dir: PathBuf,
    /// Runs going at once at most.
    pub max_concurrent_jobs: usize,
    /// How long running runs get to finish after SIGTERM or SIGINT.
    pub grace: Duration,
    /// Where `/healthz`, `/metrics` and `/runs` are served (`--http`), if at all.
    pub http: Option<SocketAddr>,
    /// Where SpotDraft's webhooks are taken (`--webhooks`), if at all; the
    /// same address as `http` serves both on one listener.
    pub webhooks: Option<SocketAddr>,
}

/// What the loop does with a due firing: start the run, or record its skip.
pub trait Launcher: Send + Sync + 'static {
    /// The run itself; ends when the run does.
    fn run(&self, job: Job, opts: RunOptions) -> BoxFuture<'static, ()>;
    /// A due firing that is not run.
    fn skipped(&self, job: Job, opts: RunOptions, reason: SkipReason) -> BoxFuture<'static, ()>;
    /// The loop is alive at `now` (once per tick), with `scheduler`'s jobs and runs.
    fn heartbeat(&self, now: DateTime<Utc>, scheduler: &Scheduler) {
        let _ = (now, scheduler);
    }
}

/// The product's launcher: [`runner::run_job`] under the job's in-process
/// claim (a targeted run of the job going makes the firing a `skipped`
/// run), a `skipped` run record, and the metrics and health they feed.
#[derive(Clone, Default)]
pub struct RunJobs {
    /// Run outcomes are counted here.
    pub metrics: Arc<Metrics>,
    /// Heartbeats go here.
    pub status: Option<Arc<DaemonStatus>>,
    /// One run per job at a time in this process.
    pub claims: RunClaims,
}

impl Launcher for RunJobs {
    fn run(&self, job: Job, opts: RunOptions) -> BoxFuture<'static, ()> {
        let (this, claim) = (self.clone(), self.claims.try_claim(&job.name));
        Box::pin(async move {
            let Some(_claim) = claim else {
                let reason = SkipReason::StillRunning;
                tracing::warn!(job = %job.name, "{} (a targeted run)", reason.describe());
                return this.skipped(job, opts, reason).await;
            };
            let started = std::time::Instant::now();
            let outcome = runner::run_job(&job, opts).await;
            this.metrics.record_run(
                &job.name,
                RunKindLabel::Scheduled,
                &outcome,
                started.elapsed(),
            );
            match outcome {
                Ok(outcome) => tracing::info!(
                    job = %job.name, run = %outcome.summary.run_id,
                    drift = outcome.drift_total(), report = %outcome.report_dir, "run finished"
                ),
                Err(e) => {
                    tracing::error!(job = %job.name, error = %crate::error_chain::anyhow_chain(&e), "run failed")
                }
            }
        })
    }

    fn skipped(&self, job: Job, opts: RunOptions, reason: SkipReason) -> BoxFuture<'static, ()> {
        self.metrics.record_skipped(&job.name);
        Box::pin(async move {
            if let Err(e) = runner::record_skipped(&job, &opts, reason.describe()).await {
                tracing::warn!(job = %job.name, error = %crate::error_chain::anyhow_chain(&e), "the skipped run was not recorded");
            }
        })
    }

    fn heartbeat(&self, now: DateTime<Utc>, scheduler: &Scheduler) {
        if let Some(status) = &self.status {
            // Targeted runs hold a claim without the scheduler knowing of them.
            let running = scheduler.running().max(self.claims.count());
            status.heartbeat(now, scheduler.loaded().cloned(), running);
        }
    }
}

/// How the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stopped {
    /// Runs that ended within the grace period.
    pub finished_in_grace: usize,
    /// Runs still going when it was over, dropped (resumable from their checkpoint).
    pub dropped: usize,
}

/// Runs `scheduler`: each instant received on `ticks` starts the due runs;
/// each message on `reload` reloads the jobs from `reload_dir` (when given);
/// `shutdown` stops new runs and gives running ones `grace`, their walk told
/// to stop at its next page. Also ends when `ticks` closes.
pub async fn serve(
    mut scheduler: Scheduler,
    mut ticks: mpsc::Receiver<DateTime<Utc>>,
    mut reload: mpsc::Receiver<()>,
    reload_dir: Option<PathBuf>,
    launcher: Arc<dyn Launcher>,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
) -> Stopped {
    let stop = Arc::new(AtomicBool::new(false));
    let mut running: JoinSet<()> = JoinSet::new();
    let mut names: HashMap<tokio::task::Id, String> = HashMap::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            tick = ticks.recv() => {
                let Some(now) = tick else { break };
                for due in scheduler.tick(now) {
                    let opts = RunOptions {
                        scheduled_for: Some(due.scheduled_for),
                        shutdown: Some(stop.clone()),
                        ..RunOptions::default()
                    };
                    let name = due.job.name.clone();
                    match due.decision {
                        Decision::Start => {
                            tracing::info!(job = %name, scheduled_for = %due.scheduled_for, "starting a run");
                            let id = running.spawn(launcher.run(due.job, opts)).id();
                            names.insert(id, name);
                        }
                        Decision::Skip(reason) => {
                            tracing::warn!(job = %name, scheduled_for = %due.scheduled_for, "{}", reason.describe());
                            launcher.skipped(due.job, opts, reason).await;
                        }
                    }
                }
                launcher.heartbeat(now, &scheduler);
            }
            Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                let id = match &done { Ok((id, ())) => *id, Err(e) => e.id() };
                if let Err(e) = &done {
                    tracing::error!(error = %e, "a run stopped abnormally");
                }
                if let Some(name) = names.remove(&id) {
                    scheduler.finished(&name);
                }
            }
            Some(()) = reload.recv() => {
                if let Some(dir) = &reload_dir {
                    reload_jobs(&mut scheduler, dir, Utc::now());
                }
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    tracing::info!(runs = running.len(), grace = ?grace, "stopping: no new runs");
    let mut stopped = Stopped::default();
    let drain = async {
        while running.join_next().await.is_some() {
            stopped.finished_in_grace += 1;
        }
    };
    if tokio::time::timeout(grace, drain).await.is_err() {
        stopped.dropped = running.len();
        tracing::warn!(
            runs = stopped.dropped,
            "grace period over: runs dropped; their leases expire and their checkpoints resume them"
        );
        running.shutdown().await;
    }
    stopped
}

/// Loads the jobs of `dir` into `scheduler` (SIGHUP), printing every problem.
/// A job whose file became invalid is dropped like a removed file, so stale
/// settings never run; a job whose schedule did not change keeps its next firing.
pub fn reload_jobs(scheduler: &mut Scheduler, dir: &std::path::Path, now: DateTime<Utc>) {
    let (jobs, problems) = load_jobs_dir(dir);
    report_problems(&problems);
    let names: BTreeSet<String> = jobs.iter().map(|j| j.name.clone()).collect();
    scheduler.retain(&names);
    for job in jobs {
        let name = job.name.clone();
        if let Err(e) = scheduler.load(job, None, now) {
            tracing::error!(job = %name, error = %crate::error_chain::anyhow_chain(&e), "job not scheduled");
        }
    }
    tracing::info!(jobs = ?scheduler.jobs(), "jobs loaded");
}

fn report_problems(problems: &[String]) {
    for p in problems {
        eprintln!("{p}");
        tracing::error!("job file skipped: {p}");
    }
}

/// When `job` last ran or was due, from its run history.
async fn last_run(job: &Job) -> Option<DateTime<Utc>> {
    let output = runner::job_output(job).ok()?;
    let records = history::read_records(output.store.as_ref(), &output.path, &job.name, 1)
        .await
        .map_err(|e| tracing::warn!(job = %job.name, error = %crate::error_chain::anyhow_chain(&e), "run history unreadable"))
        .ok()?;
    records
        .first()
        .map(|r| r.scheduled_for.unwrap_or(r.started_at))
}

/// `contract-recon schedule`: loads the job files of `config.jobs_dir` and runs
/// them on their schedules until `shutdown`; each message on `reload` (SIGHUP)
/// reloads the folder, as does a change to its job files ([`super::watch`]).
pub async fn run(
    config: DaemonConfig,
    reload: mpsc::Receiver<()>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<Stopped> {
    let now = Utc::now();
    let (jobs, problems) = load_jobs_dir(&config.jobs_dir);
    report_problems(&problems);
    let mut scheduler = Scheduler::new(config.max_concurrent_jobs);
    for job in jobs {
        let (name, last) = (job.name.clone(), last_run(&job).await);
        if let Err(e) = scheduler.load(job, last, now) {
            tracing::error!(job = %name, error = %crate::error_chain::anyhow_chain(&e), "job not scheduled");
        }
    }
    for name in scheduler.jobs() {
        tracing::info!(job = %name, next = ?scheduler.next_firing(&name), "scheduled");
    }

    // The endpoints first: an address that cannot be bound stops the daemon here.
    let launcher = RunJobs {
        metrics: Arc::new(Metrics::new()),
        status: Some(Arc::new(DaemonStatus::new(Duration::from_secs(30)))),
        claims: RunClaims::default(),
    };
    launcher.heartbeat(Utc::now(), &scheduler);
    let services = Services::start(&config, &scheduler, &launcher).await?;

    // The heartbeat: one repeated job, every second.
    let (tick_tx, ticks) = mpsc::channel(4);
    let mut heartbeat = tokio_cron_scheduler::JobScheduler::new().await?;
    heartbeat
        .add(tokio_cron_scheduler::Job::new_repeated_async(
            Duration::from_secs(1),
            move |_, _| {
                let tx = tick_tx.clone();
                Box::pin(async move {
                    // A full channel means the loop is behind: the next tick will do.
                    let _ = tx.try_send(Utc::now());
                })
            },
        )?)
        .await?;
    heartbeat.start().await?;
    let stopping = services.clone();
    let shutdown = async move {
        shutdown.await;
        stopping.stop();
    };
    let (reload, mut watchers) = reload_on_signal_or_change(reload, &config.jobs_dir);
    let mut stopped = serve(
        scheduler,
        ticks,
        reload,
        Some(config.jobs_dir.clone()),
        Arc::new(launcher),
        config.grace,
        shutdown,
    )
    .await;
    watchers.abort_all();
    stopped.dropped += services.finish(config.grace).await;
    heartbeat.shutdown().await?;
    Ok(stopped)
}

/// One reload channel fed by `signals` (SIGHUP) and by the watcher of `dir`.
fn reload_on_signal_or_change(
    mut signals: mpsc::Receiver<()>,
    dir: &std::path::Path,
) -> (mpsc::Receiver<()>, JoinSet<()>) {
    let (tx, rx) = mpsc::channel(4);
    let mut tasks = JoinSet::new();
    let forward = tx.clone();
    tasks.spawn(async move {
        while signals.recv().await.is_some() {
            if forward.send(()).await.is_err() {
                return;
            }
        }
    });
    tasks.spawn(super::watch::watch_jobs_dir(
        dir.to_path_buf(),
        super::watch::JOBS_DIR_POLL,
        tx,
    ));
    (rx, tasks)
}
