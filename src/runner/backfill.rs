//! `contract-recon backfill`: the contracts of a historical range
//! re-reconciled, under the job's lease: walk the range window by window
//! (resumable, see [`crate::ingest::backfill`]) -> upsert what was seen into
//! the snapshot (no watermark) -> reconcile those contracts against the
//! latest extract -> a report and plan of kind backfill (`backfill-…` run id),
//! applied only through `contract-recon apply <job> <run_id>` or when the
//! job's `[apply] mode` says so. `latest.json`, the watermark and the drift
//! lifecycle are never moved (see `partial.rs`).

use super::history;
use super::partial::{
    finish_partial_run, partial_run_id, release_lease, take_lease, time_spotdraft_step, PartialRun,
};
use super::steps::output_location;
use super::{RunOptions, RunOutcome};
use crate::ingest::backfill::{
    newest_unfinished, walk_backfill, windows_of, BackfillError, BackfillRange, BackfillState,
    BackfillStore,
};
use crate::ingest::{upsert_contracts, PartialUpdate, WalkControl};
use crate::job::Job;
use crate::lease::LeaseGuard;
use crate::report::lifecycle::RunKind;
use crate::storage::Location;
use anyhow::Context;
use chrono::{DateTime, SubsecRound, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// What `contract-recon backfill` asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct BackfillRequest {
    /// The range and the field it ranges over.
    pub range: BackfillRange,
    /// Window length (`--window`, default 30 days).
    pub window: chrono::Duration,
    /// Resume the newest unfinished backfill of the job (same range).
    pub resume: bool,
}

/// Runs (or resumes) a backfill of `job` under the job's lease.
pub async fn run_backfill(
    job: &Job,
    request: &BackfillRequest,
    opts: RunOptions,
) -> anyhow::Result<RunOutcome> {
    let started = Utc::now().trunc_subsecs(0);
    // Checked before the lease or any request.
    windows_of(&request.range, request.window, started)?;
    let opts = RunOptions {
        kind: RunKind::Backfill,
        ..opts
    };
    let output = output_location(job, &opts)?;
    let fresh_id = partial_run_id(RunKind::Backfill, started);
    let lease = take_lease(job, &opts, &output, &fresh_id).await?;
    let state = match pick_state(job, request, &output, &fresh_id, started).await {
        Ok(state) => state,
        Err(e) => {
            release_lease(job, lease).await;
            return Err(e);
        }
    };
    let run_id = state.backfill_id.clone();
    let outcome = backfill_under_lease(job, &opts, &output, &lease, state).await;
    release_lease(job, lease).await;
    let record = history::RunRecord::of_run(job, &run_id, &opts, started, &outcome);
    if let Err(e) = history::write_record(&output, &record).await {
        tracing::warn!(job = %job.name, run = %run_id, error = %crate::error_chain::anyhow_chain(&e), "the run record was not written");
    }
    outcome
}

/// A new backfill's state, or with `resume` the newest unfinished one (same range).
async fn pick_state(
    job: &Job,
    request: &BackfillRequest,
    output: &Location,
    fresh_id: &str,
    started: DateTime<Utc>,
) -> anyhow::Result<BackfillState> {
    if request.resume {
        let found = newest_unfinished(&output.store, &output.path, &job.name).await?;
        let Some(state) = found else {
            return Err(BackfillError::NothingToResume {
                job: job.name.clone(),
                dir: output.display_object(&crate::ingest::backfill::backfills_root(
                    &output.path,
                    &job.name,
                )),
            }
            .into());
        };
        if state.range != request.range {
            return Err(BackfillError::OtherRange {
                job: job.name.clone(),
                backfill_id: state.backfill_id,
                theirs: state.range,
                asked: request.range,
            }
            .into());
        }
        tracing::info!(job = %job.name, backfill = %state.backfill_id, done = state.done, windows = state.windows.len(), "resuming the backfill");
        return Ok(state);
    }
    Ok(BackfillState {
        backfill_id: fresh_id.to_string(),
        job: job.name.clone(),
        range: request.range,
        started_at: started,
        windows: windows_of(&request.range, request.window, started)?,
        done: 0,
        pages: vec![],
        current: None,
        list_requests: 0,
        pages_done: 0,
        finished: false,
    })
}

async fn backfill_under_lease(
    job: &Job,
    opts: &RunOptions,
    output: &Location,
    lease: &LeaseGuard,
    mut state: BackfillState,
) -> anyhow::Result<RunOutcome> {
    // Counts in the summary are this process's; a resumed backfill's earlier
    // list requests are in its state (`list_requests`).
    let request_resumed = state.done > 0 || state.current.is_some();
    let mut timings = BTreeMap::new();
    let (store, prefix) = (&output.store, &output.path);
    // 1. What an interrupted run left, then the ERP extract: a broken file
    //    fails before any request.
    let super::steps::Prologue {
        extract,
        acks,
        sandbox,
        settings,
    } = super::steps::prologue(job, opts, output, &mut timings).await?;
    let bf_store = BackfillStore::new(store.clone(), prefix, &job.name, &state.backfill_id);
    bf_store.save(&state).await?;

    // 2. The range, window by window.
    let t = Instant::now();
    let client = settings.client()?;
    let control = WalkControl {
        stop: Some(lease.lost_flag()),
        shutdown: opts.shutdown.clone(),
        ..WalkControl::default()
    };
    let seen = walk_backfill(&settings, &client, &bf_store, &mut state, &control).await;
    lease.check()?;
    let seen = seen.with_context(|| {
        format!(
            "backfill {} of job {:?} ({}); resume it with --resume",
            state.backfill_id, job.name, state.range
        )
    })?;

    // 3. Into the snapshot, no watermark.
    let contracts: BTreeSet<String> = seen.iter().map(|c| c.id.composite().to_string()).collect();
    let update = PartialUpdate {
        seen,
        ..PartialUpdate::default()
    };
    let enrich_dir = bf_store.dir().clone().join("enrich");
    let updated = upsert_contracts(
        &settings,
        &client,
        store.clone(),
        prefix,
        &enrich_dir,
        update,
        &control,
    )
    .await
    .with_context(|| format!("updating the snapshot of job {:?}", job.name))?;
    lease.check()?;
    timings.insert("ingest".to_string(), t.elapsed().as_millis() as u64);
    let mut ingestion = updated.stats;
    ingestion.resumed = request_resumed;
    time_spotdraft_step(&mut ingestion, t);

    // 4. Reconcile, plan, report (apply when the job says so).
    let outcome = finish_partial_run(PartialRun {
        job,
        opts,
        output,
        lease,
        run_id: state.backfill_id.clone(),
        started: Utc::now(),
        kind: RunKind::Backfill,
        description: state.range.to_string(),
        contracts,
        erp_records: None,
        snapshot: updated.snapshot,
        extract,
        acks,
        ingestion,
        client,
        sandbox,
        timings,
    })
    .await?;
    state.finished = true;
    bf_store.save(&state).await?;
    if let Err(e) = bf_store.clear_pages().await {
        tracing::warn!(job = %job.name, error = %crate::error_chain::error_chain(&e), "the backfill's spilled pages were not cleaned up");
    }
    Ok(outcome)
}
