//! Report stage: moves reports written by earlier versions into the per-job,
//! per-table layout.
//!
//! Earlier versions wrote every file of a run to
//! `{output}/drift/run_date=D/run_id=R/` and kept one `{output}/drift/latest.json`
//! for all jobs. Left there, those folders would break the Hive datasets
//! (`drift/**/*.parquet` would mix paths with and without `job=`). The first run
//! of a job on the new version therefore moves that job's complete runs (the
//! job is read from each run's `summary.json`) through the normal publishing
//! path, so they get the new markers and feed `latest.json`. A run that never
//! completed (no `_SUCCESS`) was never a report: its files are set aside under
//! `{output}/_legacy_incomplete/` instead of deleted. The old `latest.json` goes
//! once no old run folder is left.

use super::layout::{DRIFT_TABLE, REJECTS_TABLE, RUNS_TABLE};
use super::publish::{exists, get_json, publish, put, stage, store_err, RunManifest};
use super::{ReportError, LATEST_FILE, PARQUET_DROPPED_COLUMNS, SUCCESS_FILE};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use polars::prelude::*;
use std::sync::Arc;

/// Folder, under the output prefix, where incomplete old runs are set aside.
pub const LEGACY_INCOMPLETE_DIR: &str = "_legacy_incomplete";

/// The fields of an old `summary.json` that the move needs.
#[derive(Debug, serde::Deserialize)]
struct LegacySummary {
    job: String,
    run_id: String,
    run_date: chrono::NaiveDate,
    finished_at: String,
    drift_total: u64,
}

/// What [`migrate_legacy_reports`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Migration {
    /// Complete runs moved into the new layout.
    pub moved: Vec<String>,
    /// Incomplete runs set aside under [`LEGACY_INCOMPLETE_DIR`].
    pub set_aside: Vec<String>,
}

/// Moves `job`'s runs from the old single-folder layout; see the module doc.
/// Call it under the job's lease.
pub async fn migrate_legacy_reports(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    job: &str,
) -> Result<Migration, ReportError> {
    let mut done = Migration::default();
    let old_root = prefix.clone().join(DRIFT_TABLE);
    let mut remaining = 0;
    for date_dir in sub_dirs(store, &old_root).await? {
        if !date_dir.filename().unwrap_or("").starts_with("run_date=") {
            continue;
        }
        for run_dir in sub_dirs(store, &date_dir).await? {
            let run_id = run_dir
                .filename()
                .and_then(|n| n.strip_prefix("run_id="))
                .unwrap_or_default()
                .to_string();
            let summary: Option<LegacySummary> =
                get_json(store, &run_dir.clone().join("summary.json"))
                    .await
                    .unwrap_or(None);
            if summary.as_ref().is_some_and(|s| s.job != job) {
                remaining += 1;
                continue;
            }
            let complete = exists(store, &run_dir.clone().join(SUCCESS_FILE)).await?;
            match summary {
                Some(summary) if complete => {
                    move_complete_run(store, prefix, &run_dir, &summary).await?;
                    tracing::info!(job, run_id = %run_id, "moved a report into the per-job layout");
                    done.moved.push(run_id);
                }
                _ => {
                    let to = prefix
                        .clone()
                        .join(LEGACY_INCOMPLETE_DIR)
                        .join(date_dir.filename().unwrap_or_default())
                        .join(run_dir.filename().unwrap_or_default());
                    move_objects(store, &run_dir, &to).await?;
                    tracing::warn!(job, run_id = %run_id, to = %to, "set aside an old run that never completed");
                    done.set_aside.push(run_id);
                }
            }
        }
    }
    let old_latest = old_root.join(LATEST_FILE);
    if remaining == 0 && exists(store, &old_latest).await? {
        store
            .delete(&old_latest)
            .await
            .map_err(|source| store_err("deleting", &old_latest, store, source))?;
    }
    Ok(done)
}

/// Publishes an old complete run under the new layout, then deletes the old folder.
async fn move_complete_run(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    run_dir: &Path,
    summary: &LegacySummary,
) -> Result<(), ReportError> {
    let moves = [
        ("drift.parquet", DRIFT_TABLE),
        ("drift.csv", DRIFT_TABLE),
        ("rejects.csv", REJECTS_TABLE),
        ("summary.json", RUNS_TABLE),
        ("report.html", RUNS_TABLE),
    ];
    let mut files = Vec::new();
    for (name, table) in moves {
        let path = run_dir.clone().join(name);
        let bytes = match store.get(&path).await {
            Ok(got) => got
                .bytes()
                .await
                .map_err(|source| store_err("reading", &path, store, source))?
                .to_vec(),
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(source) => return Err(store_err("reading", &path, store, source)),
        };
        let bytes = if name == "drift.parquet" {
            drop_path_columns(bytes).map_err(|source| ReportError::Polars {
                path: path.to_string(),
                source: Box::new(source),
            })?
        } else {
            bytes
        };
        files.push((format!("{table}/{name}"), bytes));
    }
    let manifest = RunManifest {
        job: summary.job.clone(),
        run_id: summary.run_id.clone(),
        run_date: summary.run_date,
        finished_at: summary.finished_at.clone(),
        drift_total: summary.drift_total,
        kind: Default::default(),
        lifecycle: None,
        files: files.iter().map(|(n, _)| n.clone()).collect(),
    };
    stage(store, prefix, &manifest, files).await?;
    publish(store, prefix, &manifest).await?;
    // `_SUCCESS` first: a folder half deleted then reads as incomplete and is
    // set aside, never published again with files missing.
    let success = run_dir.clone().join(SUCCESS_FILE);
    store
        .delete(&success)
        .await
        .map_err(|source| store_err("deleting", &success, store, source))?;
    delete_all(store, run_dir).await
}

/// The old `drift.parquet` holds `job`, which now comes from the path.
fn drop_path_columns(bytes: Vec<u8>) -> PolarsResult<Vec<u8>> {
    let df = ParquetReader::new(std::io::Cursor::new(bytes)).finish()?;
    let keep: Vec<PlSmallStr> = df
        .get_column_names()
        .into_iter()
        .filter(|c| !PARQUET_DROPPED_COLUMNS.contains(&c.as_str()))
        .cloned()
        .collect();
    let mut df = df.select(keep)?;
    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf).finish(&mut df)?;
    Ok(buf)
}

async fn sub_dirs(store: &Arc<dyn ObjectStore>, dir: &Path) -> Result<Vec<Path>, ReportError> {
    store
        .list_with_delimiter(Some(dir))
        .await
        .map(|l| l.common_prefixes)
        .map_err(|source| store_err("listing", dir, store, source))
}

async fn list_all(
    store: &Arc<dyn ObjectStore>,
    dir: &Path,
) -> Result<Vec<object_store::ObjectMeta>, ReportError> {
    store
        .list(Some(dir))
        .try_collect()
        .await
        .map_err(|source| store_err("listing", dir, store, source))
}

async fn move_objects(
    store: &Arc<dyn ObjectStore>,
    from: &Path,
    to: &Path,
) -> Result<(), ReportError> {
    for meta in list_all(store, from).await? {
        let name = meta.location.filename().unwrap_or_default();
        let target = to.clone().join(name);
        let bytes = store
            .get(&meta.location)
            .await
            .map_err(|source| store_err("reading", &meta.location, store, source))?
            .bytes()
            .await
            .map_err(|source| store_err("reading", &meta.location, store, source))?;
        put(store, &target, bytes.to_vec()).await?;
    }
    delete_all(store, from).await
}

async fn delete_all(store: &Arc<dyn ObjectStore>, dir: &Path) -> Result<(), ReportError> {
    for meta in list_all(store, dir).await? {
        match store.delete(&meta.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => return Err(store_err("deleting", &meta.location, store, source)),
        }
    }
    Ok(())
}
