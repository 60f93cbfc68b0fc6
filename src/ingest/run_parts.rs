//! The parts of a run around the walk and enrichment: the client, a new run's
//! progress, reading and writing the snapshot, and settling which contracts
//! exist (status-filter lookups, the live count and the deletion search).

use super::checkpoint::{Checkpoint, Progress, StateStore, WalkMode};
use super::deletions::{counted, find_missing, verify_absent, window_total};
use super::merge::Merged;
use super::snapshot::{self, Snapshot, SnapshotRow};
use super::walk::{WalkControl, WalkError, WalkOptions, WalkState};
use super::window::{Window, WindowField};
use super::{IngestError, IngestMode, IngestSettings, IngestStats};
use crate::spotdraft::client::SpotDraftClient;
use chrono::{DateTime, SubsecRound, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::collections::HashSet;
use std::sync::Arc;

/// What the steps of a run share.
pub(super) struct RunContext<'a> {
    pub settings: &'a IngestSettings,
    pub client: &'a SpotDraftClient,
    pub states: &'a StateStore,
    /// The watermark before the run (kept in every state saved).
    pub watermark: Option<DateTime<Utc>>,
    pub control: &'a WalkControl,
}

fn overlap(s: &IngestSettings) -> chrono::Duration {
    chrono::Duration::from_std(s.overlap).unwrap_or(chrono::Duration::zero())
}

/// A new run's progress: the main walk, and for a full walk after the first
/// the walk of contracts updated since the watermark minus the overlap.
pub(super) fn new_progress(
    s: &IngestSettings,
    cp: &Checkpoint,
    mode: IngestMode,
    states: &StateStore,
) -> Result<Progress, IngestError> {
    let run_start: DateTime<Utc> = Utc::now().trunc_subsecs(0);
    let (mode, window) = match (mode, cp.watermark) {
        (IngestMode::Full, _) | (IngestMode::Auto, None) => {
            (WalkMode::Full, Window::full(run_start))
        }
        (IngestMode::Incremental | IngestMode::Auto, Some(wm)) => {
            let start = (wm - overlap(s)).trunc_subsecs(0);
            (
                WalkMode::Incremental,
                Window {
                    field: WindowField::LastUpdatedOn,
                    start,
                    end: run_start,
                },
            )
        }
        (IngestMode::Incremental, None) => {
            return Err(IngestError::NoWatermark {
                job: s.job.clone(),
                state: states.state_path().to_string(),
            })
        }
    };
    let key_prefix = run_start.format("%Y%m%dT%H%M%SZ").to_string();
    let changes = match (mode, cp.watermark) {
        (WalkMode::Full, Some(wm)) => {
            let window = Window {
                field: WindowField::LastUpdatedOn,
                start: (wm - overlap(s)).trunc_subsecs(0),
                end: run_start,
            };
            Some(WalkState::new(vec![window], format!("{key_prefix}u")))
        }
        _ => None,
    };
    Ok(Progress {
        mode,
        run_start,
        walk: WalkState::new(vec![window], key_prefix),
        changes,
        enrich: None,
    })
}

/// The previous snapshot, `None` when there is none.
pub(super) async fn read_snapshot(
    s: &IngestSettings,
    store: &Arc<dyn ObjectStore>,
    path: &Path,
) -> Result<Option<Snapshot>, IngestError> {
    let err = |message: String| IngestError::Snapshot {
        job: s.job.clone(),
        path: path.to_string(),
        message,
    };
    let bytes = match store.get(path).await {
        Ok(r) => r.bytes().await.map_err(|e| err(e.to_string()))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(err(e.to_string())),
    };
    let (keys, fields) = (s.record_data_keys.clone(), s.key_pointer_fields.clone());
    let parsed = tokio::task::spawn_blocking(move || snapshot::from_parquet(bytes, &keys, &fields))
        .await
        .map_err(|e| err(format!("reader panicked: {e}")))?;
    parsed.map(Some).map_err(|e| err(e.to_string()))
}

/// Writes the snapshot in one put; returns the frame written.
pub(super) async fn write_snapshot(
    s: &IngestSettings,
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    rows: Vec<SnapshotRow>,
) -> Result<polars::prelude::DataFrame, IngestError> {
    let err = |message: String| IngestError::Snapshot {
        job: s.job.clone(),
        path: path.to_string(),
        message,
    };
    let (keys, fields) = (s.record_data_keys.clone(), s.key_pointer_fields.clone());
    let built = tokio::task::spawn_blocking(move || {
        let mut df = snapshot::to_frame(&rows, &keys, &fields)?;
        let bytes = snapshot::frame_to_parquet(&mut df)?;
        Ok::<_, polars::prelude::PolarsError>((df, bytes))
    })
    .await
    .map_err(|e| err(format!("writer panicked: {e}")))?;
    let (df, bytes) = built.map_err(|e| err(e.to_string()))?;
    store
        .put(path, PutPayload::from(bytes))
        .await
        .map_err(|e| err(e.to_string()))?;
    Ok(df)
}

/// Full walks with a status filter: of the live contracts of `prev` the walk
/// did not return, the list rows of those that still exist (their status left
/// the filter), so the merge keeps them; the others are left to be marked
/// deleted. Adds the lookups to `stats.deletion_search_requests`.
pub(super) async fn still_existing(
    s: &IngestSettings,
    client: &SpotDraftClient,
    prev: &[SnapshotRow],
    walked: &HashSet<String>,
    stats: &mut IngestStats,
) -> Result<Vec<SnapshotRow>, IngestError> {
    let absent: Vec<String> = prev
        .iter()
        .filter(|r| r.deleted_at.is_none() && !walked.contains(&r.id))
        .map(|r| r.id.clone())
        .collect();
    if s.status_filter.is_empty() || absent.is_empty() {
        return Ok(vec![]);
    }
    let before = client.request_counts().list;
    let (found, _gone) =
        verify_absent(client, &absent)
            .await
            .map_err(|source| IngestError::Fetch {
                job: s.job.clone(),
                what: format!(
                    "looking up {} contracts absent from the filtered walk",
                    absent.len()
                ),
                source: Box::new(source),
            })?;
    stats.deletion_search_requests += client.request_counts().list - before;
    stats.contracts_left_filter += found.len();
    Ok(found
        .iter()
        .map(|c| SnapshotRow::from_contract(c, &s.record_data_keys))
        .collect())
}

/// Compares the server's live count with the snapshot's and, when they
/// differ, finds the missing contracts ([`super::deletions`]): those still
/// existing outside the status filter are updated, the others marked deleted
/// at the run's start; contracts the snapshot lacked are added.
pub(super) async fn settle_deletions(
    s: &IngestSettings,
    client: &SpotDraftClient,
    merged: &mut Merged,
    run_start: DateTime<Utc>,
    run_start_text: &str,
    stats: &mut IngestStats,
) -> Result<(), IngestError> {
    let walk_err = |source: WalkError| IngestError::Walk {
        job: s.job.clone(),
        source,
    };
    let root = Window::full(run_start);
    let total = window_total(client, &root, &s.status_filter)
        .await
        .map_err(walk_err)?;
    let local = counted(&merged.rows, run_start, &s.status_filter);
    stats.live_count_mismatch = Some(total as i64 - local.len() as i64);
    if total == local.len() as u64 {
        return Ok(());
    }
    let before = client.request_counts().list;
    let opts = WalkOptions::new(s.page_size, s.status_filter.clone());
    let found = find_missing(client, &local, root, total, &opts)
        .await
        .map_err(walk_err)?;
    let (existing, gone) = if s.status_filter.is_empty() || found.missing.is_empty() {
        (vec![], found.missing)
    } else {
        verify_absent(client, &found.missing)
            .await
            .map_err(|source| IngestError::Fetch {
                job: s.job.clone(),
                what: "looking up contracts missing from their window".into(),
                source: Box::new(source),
            })?
    };
    stats.deletion_search_requests += client.request_counts().list - before;
    stats.contracts_left_filter += existing.len();
    tracing::info!(
        job = %s.job,
        mismatch = total as i64 - local.len() as i64,
        deleted = gone.len(),
        left_filter = existing.len(),
        unknown = found.unknown.len(),
        requests = client.request_counts().list - before,
        "deletion search finished"
    );
    for id in &gone {
        merged.mark_deleted(id, run_start_text);
    }
    for c in existing.iter().chain(&found.unknown) {
        merged.upsert(
            SnapshotRow::from_contract(c, &s.record_data_keys),
            run_start_text,
        );
    }
    Ok(())
}
