//! Partial ingest: the contracts a backfill walked or a targeted run looked
//! up, upserted into the job's snapshot, without a walk of every contract and
//! without touching the nightly run state or its watermark.
//!
//! The contracts are merged by the rules of a full walk for the contracts
//! named ([`Merged::upsert`]: new, changed when the list item differs,
//! restored), nothing else is marked deleted except the ids the caller names.
//! Metadata values and documents are then fetched for the contracts named only,
//! by the enrichment plan of a nightly run (new, changed, never enriched),
//! plus the contracts whose metadata values are known to be stale (a
//! `CONTRACT_KEY_POINTER_UPDATION` webhook: values change without
//! `last_updated_on` moving). Enrichment spills its batches in a state folder
//! of the caller's, never in the nightly state.

use super::checkpoint::{Progress, StateStore, WalkMode};
use super::enrich::{self, Scope};
use super::enrich_run;
use super::merge::Merged;
use super::progress::Feedback;
use super::run_parts::{read_snapshot, write_snapshot, RunContext};
use super::snapshot::SnapshotRow;
use super::walk::{WalkControl, WalkState};
use super::{snapshot_path, IngestError, IngestSettings, IngestStats, RefreshBudget};
use crate::spotdraft::client::{filter_time, SpotDraftClient};
use crate::spotdraft::model::Contract;
use chrono::{SubsecRound, Utc};
use object_store::path::Path;
use object_store::ObjectStore;
use polars::prelude::DataFrame;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Instant;

/// What a partial run learned about some contracts.
#[derive(Debug, Clone, Default)]
pub struct PartialUpdate {
    /// List items fetched (a backfill's windows, a targeted lookup).
    pub seen: Vec<Contract>,
    /// Contract numbers (`123` of `T-123`) whose metadata values are fetched
    /// again even when their list item did not change.
    pub stale: BTreeSet<i64>,
    /// Contract numbers looked up by id: a live contract of the snapshot with
    /// such a number that `seen` lacks is gone, and marked deleted.
    pub looked_up: BTreeSet<i64>,
    /// Contract numbers SpotDraft said were deleted: marked deleted.
    pub deleted: BTreeSet<i64>,
}

/// The snapshot after a partial update.
#[derive(Debug)]
pub struct PartialOutcome {
    /// The whole snapshot as written.
    pub snapshot: DataFrame,
    /// Figures (`mode` and the watermarks stay `None`: no walk, no watermark;
    /// requests are the client's since it was made).
    pub stats: IngestStats,
    /// Composite ids newly marked deleted.
    pub marked_deleted: BTreeSet<String>,
}

/// Upserts `update` into the snapshot of `settings.job` under `prefix`,
/// enriching the contracts it names; enrichment batches go to `state_dir`
/// (deleted once the snapshot is written). The watermark is not read nor moved.
pub async fn upsert_contracts(
    settings: &IngestSettings,
    client: &SpotDraftClient,
    store: Arc<dyn ObjectStore>,
    prefix: &Path,
    state_dir: &Path,
    update: PartialUpdate,
    control: &WalkControl,
) -> Result<PartialOutcome, IngestError> {
    let started = Instant::now();
    let now = Utc::now().trunc_subsecs(0);
    let at = filter_time(&now);
    let states = StateStore::in_dir(store.clone(), state_dir);
    let snap_path = snapshot_path(prefix, &settings.job);
    let prev = read_snapshot(settings, &store, &snap_path)
        .await?
        .unwrap_or_default();
    let raw_values_missing = !prev.missing_key_pointer_fields.is_empty();
    let mut rows = prev.rows;
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    let mut merged = Merged {
        rows,
        ..Merged::default()
    };

    let named: HashSet<String> = update
        .seen
        .iter()
        .map(|c| c.id.composite().to_string())
        .collect();
    for c in &update.seen {
        merged.upsert(
            SnapshotRow::from_contract(c, &settings.record_data_keys),
            &at,
        );
    }
    // Stale metadata values: fetched again as if never fetched (the
    // document is not, unless the contract changed).
    for c in &update.seen {
        if c.id.number().is_some_and(|n| update.stale.contains(&n)) {
            if let Some(i) = merged.index_of(c.id.composite()) {
                merged.rows[i].key_pointers_fetched_at = None;
            }
        }
    }
    let gone: Vec<String> = merged
        .rows
        .iter()
        .filter(|r| {
            r.contract_num.is_some_and(|n| {
                update.deleted.contains(&n)
                    || (update.looked_up.contains(&n) && !named.contains(&r.id))
            })
        })
        .map(|r| r.id.clone())
        .collect();
    for id in &gone {
        merged.mark_deleted(id, &at);
    }

    let scope = Scope::of(settings);
    let tasks: Vec<_> = enrich::plan(
        &scope,
        &merged,
        raw_values_missing,
        RefreshBudget::Contracts(0),
    )
    .into_iter()
    .filter(|t| named.contains(&t.id))
    .collect();
    let ctx = RunContext {
        settings,
        client,
        states: &states,
        watermark: None,
        control,
    };
    let mut progress = Progress {
        mode: WalkMode::Incremental,
        run_start: now,
        walk: WalkState::new(vec![], now.format("p%Y%m%dT%H%M%SZ").to_string()),
        changes: None,
        enrich: None,
    };
    let mut feedback = Feedback::new(&settings.job);
    let totals = enrich_run::enrich(&ctx, &mut progress, &mut merged, tasks, &mut feedback).await?;
    feedback.finish();

    let mut stats = IngestStats {
        job: settings.job.clone(),
        contracts_fetched: update.seen.len(),
        contracts_changed: merged.changed.len(),
        contracts_new: merged.new,
        contracts_restored: merged.restored,
        contracts_deleted: merged.deleted.len(),
        contracts_vanished: totals.vanished,
        key_pointers_fetched: totals.key_pointers,
        documents_fetched: totals.documents,
        documents_unavailable: totals.unavailable,
        ..IngestStats::default()
    };
    let marked_deleted = merged.deleted.clone();
    crate::crashpoint::hit(crate::crashpoint::PARTIAL_BEFORE_SNAPSHOT);
    let snapshot = write_snapshot(settings, &store, &snap_path, merged.rows).await?;
    stats.snapshot_rows = snapshot.height();
    if let Err(e) = states.clear_all().await {
        tracing::warn!(job = %settings.job, error = %crate::error_chain::error_chain(&e), "spilled enrichment results not cleaned up");
    }
    // The client's figures since it was made: the caller's whole run.
    stats.requests = client.request_counts();
    stats.http = client.throttle().stats().snapshot();
    stats.elapsed_ms = started.elapsed().as_millis() as u64;
    stats.achieved_requests_per_s =
        stats.http.requests as f64 / started.elapsed().as_secs_f64().max(1e-3);
    Ok(PartialOutcome {
        snapshot,
        stats,
        marked_deleted,
    })
}
