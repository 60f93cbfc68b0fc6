//! One ingest run, top to bottom: state -> walk -> merge -> enrich -> snapshot -> watermark.

use super::checkpoint::{Checkpoint, CheckpointWalkStore, Progress, StateStore, WalkMode};
use super::merge::{merge, Merged};
use super::progress::Feedback;
use super::snapshot::{self, Snapshot, SnapshotRow};
use super::walk::{walk, WalkControl, WalkOptions, WalkState};
use super::window::{Window, WindowField};
use super::{
    IngestError, IngestMode, IngestOutcome, IngestSettings, IngestStats, PendingWatermark,
};
use crate::http::Throttle;
use crate::spotdraft::client::{filter_time, ClientConfig, SpotDraftClient};
use crate::spotdraft::model::ContractId;
use chrono::{DateTime, SubsecRound, Utc};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};
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

/// [`ingest`] with a page budget or stop flag on the walk (tests, shutdown).
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
    let throttle = Arc::new(Throttle::new(
        settings.requests_per_second,
        settings.max_in_flight,
    ));
    let client = SpotDraftClient::new(client_config(settings), throttle, settings.retry.clone())
        .map_err(|e| config_err("base_url", e.to_string()))?;

    // 1. State: resume an unfinished walk of the same mode, or start one.
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

    // 3. Walk.
    let mut feedback = Feedback::new(&job);
    let opts = WalkOptions::new(settings.page_size, settings.status_filter.clone());
    let walk_store = CheckpointWalkStore::new(&states, cp.watermark, &progress);
    let walked = walk(
        &client,
        &walk_store,
        &mut progress.walk,
        &opts,
        control,
        &mut |e| feedback.page(e),
    )
    .await;
    let walked = walked.map_err(|source| IngestError::Walk {
        job: job.clone(),
        source,
    })?;
    (stats.windows_rewalked, stats.windows_split) =
        (progress.walk.windows_rewalked, progress.walk.windows_split);
    stats.contracts_fetched = walked.contracts.len();

    // 4. Merge, then fetch metadata values and documents for what changed.
    let fetched: Vec<SnapshotRow> = walked
        .contracts
        .iter()
        .map(|c| SnapshotRow::from_contract(c, &settings.record_data_keys))
        .collect();
    let mut merged = merge(prev.rows, fetched, progress.mode, &run_start_text);
    (stats.contracts_changed, stats.contracts_new) = (merged.changed.len(), merged.new);
    (stats.contracts_deleted, stats.contracts_restored) = (merged.deleted, merged.restored);
    enrich(
        settings,
        &client,
        &mut merged,
        !prev.missing_key_pointer_fields.is_empty(),
        &feedback,
    )
    .await?;
    feedback.finish();

    // 5. Incremental: cheap deletion check (one request).
    if progress.mode == WalkMode::Incremental {
        let q = Window::full(progress.run_start).query(1, 1, &settings.status_filter);
        let resp = client
            .list_contracts(&q)
            .await
            .map_err(|source| IngestError::Fetch {
                job: job.clone(),
                what: "counting live contracts".into(),
                source: Box::new(source),
            })?;
        let live = merged
            .rows
            .iter()
            .filter(|r| r.deleted_at.is_none())
            .count() as i64;
        stats.live_count_mismatch = Some(resp.total_results as i64 - live);
    }

    crate::crashpoint::hit("ingest.before_snapshot");
    // 6. Snapshot (one put), then close the walk and clean the spilled pages.
    //    The watermark stays where it was: the runner moves it with
    //    [`commit_watermark`] once the run's reports are published, so a run that
    //    fails after this point walks the same changes again.
    let snapshot = write_snapshot(settings, &store, &snap_path, merged.rows).await?;
    stats.snapshot_rows = snapshot.height();
    let done = Checkpoint {
        watermark: cp.watermark,
        progress: None,
    };
    states.save(&done).await.map_err(state_err)?;
    stats.watermark_after = Some(progress.run_start);
    if let Err(e) = states.clear_pages().await {
        tracing::warn!(job = %job, error = %e, "spilled pages not cleaned up");
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

fn client_config(s: &IngestSettings) -> ClientConfig {
    ClientConfig {
        base_url: s.base_url.clone(),
        client_id: s.client_id.clone(),
        client_secret: s.client_secret.clone(),
        user_email: s.user_email.clone(),
        request_timeout: s.request_timeout,
    }
}

fn new_progress(
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
            let overlap = chrono::Duration::from_std(s.overlap).unwrap_or(chrono::Duration::zero());
            let start = (wm - overlap).trunc_subsecs(0);
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
    Ok(Progress {
        mode,
        run_start,
        walk: WalkState::new(vec![window], key_prefix),
    })
}

async fn read_snapshot(
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

async fn write_snapshot(
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

/// Fetches metadata values (when the job names fields) and executed document
/// hashes (when enabled) for changed contracts — or for every live contract
/// when the snapshot lacks a column the job now names — `max_in_flight` at a
/// time, all inside the workspace's limiter.
async fn enrich(
    s: &IngestSettings,
    client: &SpotDraftClient,
    merged: &mut Merged,
    refresh_all_key_pointers: bool,
    feedback: &Feedback,
) -> Result<(), IngestError> {
    let wants_kp = !s.key_pointer_fields.is_empty();
    let mut jobs: Vec<(usize, bool, bool)> = vec![];
    let changed: std::collections::HashSet<usize> = merged.changed.iter().copied().collect();
    for (i, row) in merged.rows.iter().enumerate() {
        let is_changed = changed.contains(&i);
        let kp = wants_kp && row.deleted_at.is_none() && (is_changed || refresh_all_key_pointers);
        let doc =
            s.fetch_documents && is_changed && row.contract_status.as_deref() == Some("EXECUTED");
        if kp || doc {
            jobs.push((i, kp, doc));
        }
    }
    let total = jobs.len();
    let jobs: Vec<_> = jobs
        .into_iter()
        .map(|(i, kp, doc)| (i, ContractId::new(merged.rows[i].id.clone()), kp, doc))
        .collect();
    let mut results = futures::stream::iter(jobs)
        .map(|(i, id, kp, doc)| async move {
            let kps = if kp {
                Some(
                    client
                        .key_pointers(&id)
                        .await
                        .map_err(|e| (id.clone(), "metadata values", e))?,
                )
            } else {
                None
            };
            let sha = if doc {
                let bytes = client
                    .download(&id)
                    .await
                    .map_err(|e| (id.clone(), "document", e))?;
                Some(hex::encode(Sha256::digest(&bytes)))
            } else {
                None
            };
            Ok::<_, (ContractId, &str, _)>((i, kps, sha))
        })
        .buffer_unordered(s.max_in_flight.max(1));
    let mut done = 0;
    while let Some(r) = results.next().await {
        let (i, kps, sha) = r.map_err(|(id, what, source)| IngestError::Fetch {
            job: s.job.clone(),
            what: format!("{what} of contract {id}"),
            source: Box::new(source),
        })?;
        let row = &mut merged.rows[i];
        if let Some(kps) = kps {
            row.key_pointers = s
                .key_pointer_fields
                .iter()
                .map(|f| {
                    (
                        f.clone(),
                        kps.iter()
                            .find(|k| &k.field_name == f)
                            .and_then(|k| crate::spotdraft::model::value_text(&k.value)),
                    )
                })
                .collect();
        }
        if sha.is_some() {
            row.document_sha256 = sha;
        }
        done += 1;
        feedback.enrich(done, total);
    }
    Ok(())
}
