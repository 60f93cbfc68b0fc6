//! Runs a job end to end, in pipeline order: take the job's lease -> finish
//! what an interrupted run left -> load the ERP extract (cheap checks first) ->
//! ingest contracts from SpotDraft -> reconcile -> plan corrections -> compare
//! with the previous nightly run -> publish reports (the plan with them) ->
//! advance the watermark -> apply corrections (when asked) -> remove what
//! `[retention]` says is expired -> release the lease -> write the run record
//! -> notify (`[notify]`).
//!
//! [`run_job`] reads top to bottom in that order; the steps it calls live in
//! `steps.rs`, what a run returns in `outcome.rs`, and `contract-recon apply`
//! (a reviewed plan applied later) in [`apply_plan()`].

mod apply_plan;
mod backfill;
mod erp_targeted;
pub mod history;
pub mod notify;
mod online;
mod outcome;
mod partial;
pub mod retention;
mod steps;
mod targeted;

pub use apply_plan::{apply_plan, AppliedPlan, ApplyPlanRequest};
pub use backfill::{run_backfill, BackfillRequest};
pub use erp_targeted::run_erp_targeted;
pub use online::{check_online, fetch_webhook_key};
pub use outcome::{render_apply, RunOutcome};
pub use partial::{partial_run_id, scope_drift, scope_erp_drift, KINDS_NEEDING_EVERY_CONTRACT};
pub use targeted::{run_targeted, TargetHint, TargetSet};

use crate::apply::read_journal;
use crate::apply::stage::Planned;
use crate::ingest::{commit_watermark, ingest_with_control, IngestMode, WalkControl};
use crate::job::{ApplyMode, Job};
use crate::lease::{self, Holder, LeaseConfig, LeaseGuard};
use crate::reconcile::{reconcile, RunContext};
use crate::report::lifecycle::{Corrections, RunKind};
use crate::report::{InputCounts, RunInfo, Summary};
use crate::sandbox::StateHandle;
use crate::storage::Location;
use anyhow::Context;
use object_store::ObjectStore;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use steps::{confirm_named_contracts, output_location, track_across_runs};

/// An edit of the embedded sandbox's state before ingestion.
pub type SandboxEdit = Arc<dyn Fn(&StateHandle) + Send + Sync>;

/// How a run is done.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Full, incremental, or incremental when a watermark exists.
    pub mode: IngestMode,
    /// Write outputs to this store instead of the job's `output.url` (tests pass an in-memory store).
    pub output_store: Option<Arc<dyn ObjectStore>>,
    /// Take the job's lease even when another run holds it (an operator's
    /// `--break-lease`, for a holder known to be gone).
    pub break_lease: bool,
    /// Lease expiry and renewal (tests shorten it).
    pub lease: LeaseConfig,
    /// Why the run is made: only nightly runs (the default) are compared with
    /// by later runs.
    pub kind: RunKind,
    /// Called with the embedded sandbox's state once it has started, before
    /// ingestion (`demo --change` edits a contract there).
    pub edit_sandbox: Option<SandboxEdit>,
    /// Overrides `[apply] mode` for this run (`run --apply`, `run --plan-only`).
    pub apply_mode: Option<ApplyMode>,
    /// Apply over `[apply] max_actions_per_run`.
    pub force_apply: bool,
    /// The firing the scheduler starts this run for (kept in the run record);
    /// `None` for a one-off run.
    pub scheduled_for: Option<chrono::DateTime<chrono::Utc>>,
    /// Raised to stop the run at its next page or enrichment batch, progress
    /// checkpointed (the scheduler's shutdown); the run then fails, resumable.
    pub shutdown: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// Run on an extract the `[erp.extract]` guard would refuse (`run
    /// --accept-extract`): the failed check is logged as a warning.
    pub accept_extract: bool,
}

/// Runs `job` once, under the job's lease.
pub async fn run_job(job: &Job, opts: RunOptions) -> anyhow::Result<RunOutcome> {
    let started = chrono::Utc::now();
    // `run-YYYYMMDD-HHMMSS-xxxxxxxx`: Hive readers keep it as text (an all-digit or
    // date-like run id would be read back as a number or a datetime).
    let run_id = format!(
        "run-{}-{}",
        started.format("%Y%m%d-%H%M%S"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let output = output_location(job, &opts)?;
    let outcome = run_leased(job, &opts, &output, &run_id, started).await;
    let record = history::RunRecord::of_run(job, &run_id, &opts, started, &outcome);
    let recorded = match history::write_record(&output, &record).await {
        Ok(path) => Some(output.display_object(&path)),
        Err(e) => {
            tracing::warn!(job = %job.name, run = %run_id, error = %crate::error_chain::anyhow_chain(&e), "the run record was not written");
            None
        }
    };
    let notify = job.notify.as_ref();
    notify::notify_after_run(notify, &record, &outcome, opts.kind, recorded).await;
    outcome
}

/// Where `job` writes its outputs (the `output.url` folder is created when local).
pub fn job_output(job: &Job) -> anyhow::Result<Location> {
    output_location(job, &RunOptions::default())
}

/// Writes the record of a due run the scheduler did not start, and why.
pub async fn record_skipped(
    job: &Job,
    opts: &RunOptions,
    reason: &str,
) -> anyhow::Result<history::RunRecord> {
    let now = chrono::Utc::now();
    let record = history::RunRecord {
        job: job.name.clone(),
        run_id: format!(
            "run-{}-{}",
            now.format("%Y%m%d-%H%M%S"),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ),
        scheduled_for: opts.scheduled_for,
        started_at: now,
        finished_at: now,
        outcome: history::RunStatus::Skipped,
        exit_code: 0,
        counts: None,
        report: None,
        error: Some(reason.to_string()),
    };
    history::write_record(&output_location(job, opts)?, &record).await?;
    Ok(record)
}

/// The run under the job's lease, released at the end whatever happened.
async fn run_leased(
    job: &Job,
    opts: &RunOptions,
    output: &Location,
    run_id: &str,
    started: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<RunOutcome> {
    let lease = lease::acquire(
        output.store.clone(),
        &output.path,
        &job.name,
        Holder::current(run_id),
        &opts.lease,
        opts.break_lease,
    )
    .await?
    .keep_alive();
    let outcome = run_under_lease(job, opts, output, &lease, run_id.to_string(), started).await;
    if let (Some(settings), Ok(())) = (&job.retention, lease.check()) {
        remove_expired(job, settings, output, run_id).await;
    }
    if let Err(e) = lease.release().await {
        tracing::warn!(job = %job.name, error = %crate::error_chain::error_chain(&e), "the job's lease was not released; it expires by itself");
    }
    outcome
}

/// `[retention]`, at the end of a run of `job` while its lease is held; a
/// failure is logged, never the run's.
async fn remove_expired(
    job: &Job,
    settings: &crate::job::RetentionSettings,
    output: &Location,
    run_id: &str,
) {
    let pass = retention::Retention {
        store: &output.store,
        prefix: &output.path,
        job: &job.name,
        settings,
        max_plan_age: job.apply.max_plan_age,
        current_run: run_id,
        now: chrono::Utc::now(),
        // Local paths print as `/...`: the store is the file system from `/`.
        local_root: output
            .root
            .is_empty()
            .then(|| std::path::PathBuf::from("/")),
    };
    match pass.run().await {
        Ok(removed) => tracing::info!(
            job = %job.name, runs = removed.runs.len(), reports = removed.report_objects,
            staging = removed.staging_objects, spilled = removed.spilled_objects,
            journal = removed.journal_objects, history = removed.history_records,
            "retention: expired objects removed"
        ),
        Err(e) => {
            let e = anyhow::Error::new(e);
            tracing::warn!(job = %job.name, error = %crate::error_chain::anyhow_chain(&e), "retention stopped");
        }
    }
}

/// One run, top to bottom, while `lease` is held.
async fn run_under_lease(
    job: &Job,
    opts: &RunOptions,
    output: &Location,
    lease: &LeaseGuard,
    run_id: String,
    started: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<RunOutcome> {
    let mut timings = BTreeMap::new();
    let (store, prefix) = (&output.store, &output.path);

    // 1-2. Finish what an interrupted run left, move reports of the old
    //      layout, then the ERP extract: a wrong mapping or a broken file
    //      fails the run before any SpotDraft request is spent.
    let steps::Prologue {
        extract,
        acks,
        sandbox,
        settings,
    } = steps::prologue(job, opts, output, &mut timings).await?;

    // 3. SpotDraft. The walk stops at its next page if the lease is lost
    //    (another run may then own the job's run state).
    let t = Instant::now();
    let control = WalkControl {
        stop: Some(lease.lost_flag()),
        shutdown: opts.shutdown.clone(),
        ..WalkControl::default()
    };
    let ingested = ingest_with_control(&settings, store.clone(), prefix, opts.mode, &control).await;
    lease.check()?;
    let ingested = ingested.context("ingesting contracts from SpotDraft")?;
    timings.insert("ingest".to_string(), t.elapsed().as_millis() as u64);

    // 4. Contracts that ERP records name but the snapshot lacks (created after
    //    the run's start, outside the status filter, or gone): asked by id, so
    //    only the really missing ones become orphans.
    let mut ingestion = ingested.stats;
    let known_existing = confirm_named_contracts(
        &ingested.client,
        &ingested.snapshot,
        &extract.records,
        job,
        &mut ingestion,
    )
    .await?;
    // 5. Reconcile.
    let t = Instant::now();
    let started_at = started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let ctx = RunContext {
        run_id: run_id.clone(),
        job: job.name.clone(),
        detected_at: started_at.clone(),
        known_existing_contract_ids: known_existing,
    };
    let spec = job.reconcile.clone();
    let (records, snapshot) = (extract.records.clone(), ingested.snapshot.clone());
    let reconciled = tokio::task::spawn_blocking(move || reconcile(snapshot, records, &spec, &ctx))
        .await
        .context("reconciliation stopped")??;
    timings.insert("reconcile".to_string(), t.elapsed().as_millis() as u64);

    // 6. Corrections planned from the drift (published with the reports).
    let mode = opts.apply_mode.unwrap_or(job.apply.mode);
    let t = Instant::now();
    // Read whether or not corrections are on: resolved rows are the job's when
    // a correction of an earlier run covering them was applied.
    let journal = read_journal(store, prefix, &job.name).await?;
    let planned = if job.apply.enabled {
        let planned = steps::plan_corrections(
            job,
            mode,
            journal.clone(),
            reconciled.drift.clone(),
            ingested.snapshot.clone(),
            extract.records.clone(),
            job.create.clone(),
        )
        .await?;
        timings.insert("plan".to_string(), t.elapsed().as_millis() as u64);
        Some(planned)
    } else {
        None
    };

    // 7. Compare with the job's last complete nightly run: every row's status
    //    and age, the rows resolved since, the trend of recent runs.
    let t = Instant::now();
    let run = RunInfo {
        job: job.name.clone(),
        run_id,
        run_date: started.date_naive(),
        started_at,
        finished_at: String::new(),
    };
    let corrections = match &planned {
        Some(p) => Corrections::from_plan(&p.actions, journal),
        None => Corrections {
            journal,
            ..Corrections::default()
        },
    };
    let (tracked, trend) = track_across_runs(
        store,
        prefix,
        &run,
        reconciled.drift.clone(),
        acks,
        corrections,
    )
    .await?;
    timings.insert("lifecycle".to_string(), t.elapsed().as_millis() as u64);

    // 8. Reports, published only while the lease is still ours.
    let t = Instant::now();
    let run = RunInfo {
        // Milliseconds: runs of one job can finish within the same second, and
        // this orders them (latest.json, the previous nightly run).
        finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ..run
    };
    let stats = &reconciled.stats;
    let inputs = InputCounts {
        contracts: stats.contracts,
        contracts_in_scope: stats.contracts_in_scope,
        erp_rows_read: extract.rows_read,
        erp_rows_valid: stats.erp_records,
        erp_rows_rejected: extract.rejects.height() as u64,
    };
    let mut summary = Summary::from_drift(&run, &tracked.drift, inputs)?;
    summary.ingestion = ingestion;
    summary.reconcile = reconciled.stats.clone();
    summary.timings_ms = timings;
    summary.run_kind = opts.kind;
    summary.lifecycle = Some(tracked.counts.clone());
    summary.trend = trend;
    summary.apply = planned.as_ref().map(|p| p.summary.clone());
    lease.check()?;
    let location = steps::publish_run(
        job,
        output,
        &run,
        &tracked.drift,
        &extract.rejects,
        Some(&tracked.resolved),
        planned.as_ref(),
        &summary,
    )
    .await?;
    summary
        .timings_ms
        .insert("write_reports".to_string(), t.elapsed().as_millis() as u64);

    // 9. The watermark moves once ingestion, reconciliation and reports are
    //    done; what applying corrections does never holds it back.
    crate::crashpoint::hit(crate::crashpoint::BEFORE_WATERMARK);
    lease.check()?;
    commit_watermark(store.clone(), prefix, &job.name, &ingested.pending)
        .await
        .with_context(|| format!("advancing the watermark of job {:?}", job.name))?;

    // 10. Corrections applied, when asked, while the lease is still ours.
    if let (
        Some(Planned {
            actions,
            summary: plan_summary,
            ..
        }),
        ApplyMode::Apply,
    ) = (&planned, mode)
    {
        lease.check()?;
        let t = Instant::now();
        let applied = steps::apply_in_run(
            job,
            output,
            &run,
            actions,
            plan_summary.clone(),
            opts.force_apply,
            sandbox.as_ref(),
            &ingested.client,
        )
        .await?;
        summary.apply = Some(applied);
        summary
            .timings_ms
            .insert("apply".to_string(), t.elapsed().as_millis() as u64);
    }
    if let Some(sandbox) = sandbox {
        sandbox.shutdown().await;
    }

    Ok(steps::published_outcome(job, output, &location, summary))
}
