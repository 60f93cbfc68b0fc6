//! One ingest run, top to bottom: state -> walks -> merge -> deletions ->
//! enrichment -> snapshot. The watermark is the runner's to move.

use super::checkpoint::{
    Checkpoint, CheckpointWalkStore, Progress, StateStore, WalkMode, WalkSlot,
};
use super::enrich::{self, Scope};
use super::enrich_run;
use super::merge::merge;
use super::progress::Feedback;
use super::run_parts::{
    new_progress, read_snapshot, settle_deletions, still_existing, write_snapshot, RunContext,
};
use super::snapshot::SnapshotRow;
use super::walk::{walk, WalkControl, WalkOptions, WalkOutcome};
use super::{
    IngestError, IngestMode, IngestOutcome, IngestSettings, IngestStats, PendingWatermark,
};
use crate::spotdraft::client::filter_time;
use chrono::Utc;
use object_store::path::Path;
use object_store::ObjectStore;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

/// `{prefix}/snapshots/<job>/snapshot.parquet`.
pub fn snapshot_path(prefix: &Path, job: &str) -> Path {
    prefix
        .clone()
        .join("snapshots")
        .join(job)
        .join("snapshot.parquet")
}

/// Runs one ingest of `settings.job`; see the module doc.
pub async fn ingest(
    settings: &IngestSettings,
    store: Arc<dyn ObjectStore>,
    prefix: &Path,
    mode: IngestMode,
) -> Result<IngestOutcome, IngestError> {
    ingest_with_control(settings, store, prefix, mode, &WalkControl::default()).await
}

/// [`ingest`] with a page or enrichment budget, or a stop flag (tests, a lost
/// lease): a stopped run saves its state first and the next run resumes it.
pub async fn ingest_with_control(
    settings: &IngestSettings,
    store: Arc<dyn ObjectStore>,
    prefix: &Path,
    mode: IngestMode,
    control: &WalkControl,
) -> Result<IngestOutcome, IngestError> {
    let started = Instant::now();
    let job = settings.job.clone();
    let config_err = |key, message: String| IngestError::Config {
        job: job.clone(),
        key,
        message,
    };
    if !(1..=100).contains(&settings.page_size) {
        return Err(config_err(
            "page_size",
            format!("{} is not in 1..=100", settings.page_size),
        ));
    }
    let state_err = |source| IngestError::State {
        job: job.clone(),
        source,
    };
    let states = StateStore::new(store.clone(), prefix, &job);
    let client = settings
        .client()
        .map_err(|e| config_err("base_url", e.to_string()))?;

    // 1. State: resume an unfinished run of the same mode, or start one.
    let mut cp = states.load().await.map_err(state_err)?;
    let mut stats = IngestStats {
        job: job.clone(),
        watermark_before: cp.watermark,
        ..IngestStats::default()
    };
    let resumable = cp.progress.as_ref().is_some_and(|p| match mode {
        IngestMode::Auto => true,
        IngestMode::Full => p.mode == WalkMode::Full,
        IngestMode::Incremental => p.mode == WalkMode::Incremental,
    });
    if resumable {
        stats.resumed = true;
    } else {
        cp.progress = Some(new_progress(settings, &cp, mode, &states)?);
        states.save(&cp).await.map_err(state_err)?;
    }
    let mut progress = cp.progress.clone().expect("set above");
    let run_start_text = filter_time(&progress.run_start);
    (stats.mode, stats.run_start) = (Some(progress.mode), Some(progress.run_start));

    // 2. Previous snapshot.
    let snap_path = snapshot_path(prefix, &job);
    let prev = read_snapshot(settings, &store, &snap_path).await?;
    if progress.mode == WalkMode::Incremental && prev.is_none() {
        return Err(IngestError::Snapshot {
            job,
            path: snap_path.to_string(),
            message:
                "missing, but the state has a watermark; delete the state file to run a full walk"
                    .into(),
        });
    }
    let prev = prev.unwrap_or_default();

    // 3. Walks: the main one, then (full walks after the first) the contracts
    //    updated since the watermark minus the overlap.
    let mut feedback = Feedback::new(&job);
    let ctx = RunContext {
        settings,
        client: &client,
        states: &states,
        watermark: cp.watermark,
        control,
    };
    let walked = walk_slot(&ctx, &mut progress, WalkSlot::Main, &mut feedback).await?;
    let updated: HashSet<String> = match progress.mode {
        WalkMode::Incremental => ids(&walked),
        WalkMode::Full if progress.changes.is_some() => {
            let changes = walk_slot(&ctx, &mut progress, WalkSlot::Changes, &mut feedback).await?;
            ids(&changes)
        }
        WalkMode::Full => HashSet::new(),
    };
    stats.contracts_updated_since_watermark = updated.len();
    let w = &progress.walk;
    (stats.windows_rewalked, stats.windows_split) = (w.windows_rewalked, w.windows_split);
    if let Some(c) = &progress.changes {
        stats.windows_rewalked += c.windows_rewalked;
        stats.windows_split += c.windows_split;
    }
    stats.contracts_fetched = walked.contracts.len();

    // 4. Merge (with a status filter, contracts absent from a full walk are
    //    looked up by id first: one that left the filter is not deleted).
    let mut fetched: Vec<SnapshotRow> = walked
        .contracts
        .iter()
        .map(|c| SnapshotRow::from_contract(c, &settings.record_data_keys))
        .collect();
    if progress.mode == WalkMode::Full {
        let seen = ids(&walked);
        fetched.extend(still_existing(settings, &client, &prev.rows, &seen, &mut stats).await?);
    }
    let mut merged = merge(prev.rows, fetched, progress.mode, &run_start_text, &updated);
    (stats.contracts_changed, stats.contracts_new) = (merged.changed.len(), merged.new);

    // 5. Deletions the same night: live count, then the search when it differs.
    settle_deletions(
        settings,
        &client,
        &mut merged,
        progress.run_start,
        &run_start_text,
        &mut stats,
    )
    .await?;
    stats.contracts_restored = merged.restored;

    // 6. Metadata values and documents, where reconciliation uses them.
    let scope = Scope::of(settings);
    let tasks = enrich::plan(
        &scope,
        &merged,
        !prev.missing_key_pointer_fields.is_empty(),
        settings.refresh_per_run,
    );
    let totals = enrich_run::enrich(&ctx, &mut progress, &mut merged, tasks, &mut feedback).await?;
    feedback.finish();
    stats.key_pointers_fetched = totals.key_pointers;
    stats.key_pointers_refreshed = totals.refreshed;
    stats.documents_fetched = totals.documents;
    stats.documents_unavailable = totals.unavailable;
    stats.contracts_vanished = totals.vanished;
    stats.enrichment_resumed = totals.resumed;
    stats.contracts_deleted = merged.deleted.len();
    stats.oldest_key_pointers_age_secs =
        enrich::oldest_key_pointers_age_secs(&scope, &merged.rows, Utc::now());

    crate::crashpoint::hit("ingest.before_snapshot");
    // 7. Snapshot (one put), then close the run and clean the spilled objects.
    //    The watermark stays where it was: the runner moves it with
    //    [`commit_watermark`] once the run's reports are published, so a run that
    //    fails after this point walks the same changes again.
    let snapshot = write_snapshot(settings, &store, &snap_path, merged.rows).await?;
    crate::crashpoint::hit(crate::crashpoint::SNAPSHOT_WRITTEN);
    stats.snapshot_rows = snapshot.height();
    let done = Checkpoint {
        watermark: cp.watermark,
        progress: None,
    };
    states.save(&done).await.map_err(state_err)?;
    stats.watermark_after = Some(progress.run_start);
    if let Err(e) = states.clear_pages().await {
        tracing::warn!(job = %job, error = %crate::error_chain::error_chain(&e), "spilled pages not cleaned up");
    }

    stats.requests = client.request_counts();
    stats.http = client.throttle().stats().snapshot();
    stats.elapsed_ms = started.elapsed().as_millis() as u64;
    stats.achieved_requests_per_s =
        stats.http.requests as f64 / started.elapsed().as_secs_f64().max(1e-3);
    tracing::info!(job = %job, stats = %serde_json::to_string(&stats).unwrap_or_default(), "ingest finished");
    Ok(IngestOutcome {
        snapshot,
        stats,
        pending: PendingWatermark {
            run_start: progress.run_start,
        },
        client,
    })
}

fn ids(walked: &WalkOutcome) -> HashSet<String> {
    walked
        .contracts
        .iter()
        .map(|c| c.id.composite().to_string())
        .collect()
}

/// Walks one slot of the run's progress to the end, saving it in the state.
async fn walk_slot(
    ctx: &RunContext<'_>,
    progress: &mut Progress,
    slot: WalkSlot,
    feedback: &mut Feedback,
) -> Result<WalkOutcome, IngestError> {
    let s = ctx.settings;
    let opts = WalkOptions::new(s.page_size, s.status_filter.clone());
    let store = CheckpointWalkStore::for_slot(ctx.states, ctx.watermark, progress, slot);
    let state = match slot {
        WalkSlot::Main => &mut progress.walk,
        WalkSlot::Changes => match progress.changes.as_mut() {
            Some(c) => c,
            None => {
                return Ok(WalkOutcome {
                    contracts: vec![],
                    list_requests: 0,
                })
            }
        },
    };
    walk(ctx.client, &store, state, &opts, ctx.control, &mut |e| {
        crate::crashpoint::hit(crate::crashpoint::WALK_PAGE);
        feedback.page(e)
    })
    .await
    .map_err(|source| IngestError::Walk {
        job: s.job.clone(),
        source,
    })
}

/// Advances `job`'s watermark to the start of the run that produced `pending`,
/// once everything that run had to do is done. Never moves it backwards.
pub async fn commit_watermark(
    store: Arc<dyn ObjectStore>,
    prefix: &Path,
    job: &str,
    pending: &PendingWatermark,
) -> Result<(), IngestError> {
    let state_err = |source| IngestError::State {
        job: job.to_string(),
        source,
    };
    let states = StateStore::new(store, prefix, job);
    let mut cp = states.load().await.map_err(state_err)?;
    if cp.watermark.is_some_and(|w| w >= pending.run_start) {
        return Ok(());
    }
    cp.watermark = Some(pending.run_start);
    states.save(&cp).await.map_err(state_err)
}
