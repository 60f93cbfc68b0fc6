//! Report stage: finds the job's last complete nightly run and reads what the
//! lifecycle needs from it (its drift rows) and from recent run records (the
//! trend).

use super::acks::Acknowledgements;
use super::corrections::Corrections;
use super::track::{track_drift, Tracked, TrackedRun};
use super::{RunKind, TrendPoint, TREND_RUNS};
use crate::report::layout::{job_root, DRIFT_TABLE, RUNS_TABLE};
use crate::report::publish::{get_json, store_err, RunManifest};
use crate::report::{read_latest, ReportError, SUCCESS_FILE};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use polars::prelude::*;
use std::sync::Arc;

/// The run a nightly run is compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousRun {
    /// Its run id.
    pub run_id: String,
    /// Its folder in the `drift` dataset.
    pub drift_dir: Path,
    /// Its `summary.json`.
    pub summary: Path,
}

/// The job's newest complete nightly run other than `run_id`: `latest.json`'s
/// run when it is nightly, else the newest nightly among the run records.
pub async fn previous_nightly_run(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    job: &str,
    run_id: &str,
) -> Result<Option<PreviousRun>, ReportError> {
    if let Some(latest) = read_latest(store.clone(), prefix, job).await? {
        if latest.kind == RunKind::Nightly && latest.run_id != run_id {
            if let Some(dir) = latest.tables.get(DRIFT_TABLE) {
                return Ok(Some(PreviousRun {
                    run_id: latest.run_id,
                    drift_dir: Path::from(dir.as_str()),
                    summary: Path::from(latest.summary.as_str()),
                }));
            }
        }
    }
    let newest = run_records(store, prefix, job, usize::MAX)
        .await?
        .into_iter()
        .rev()
        .find(|r| r.kind == RunKind::Nightly && r.run_id != run_id);
    Ok(newest.map(|r| PreviousRun {
        drift_dir: r.table_dir(prefix, DRIFT_TABLE),
        summary: r.table_dir(prefix, RUNS_TABLE).join("summary.json"),
        run_id: r.run_id,
    }))
}

/// Tracks this run's `drift` against the job's last complete nightly run.
pub async fn compare_with_previous_run(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    drift: DataFrame,
    acks: Acknowledgements,
    run: &TrackedRun<'_>,
    corrections: Corrections,
) -> Result<Tracked, ReportError> {
    let previous = previous_nightly_run(store, prefix, run.job, run.run_id).await?;
    let previous = match previous {
        Some(p) => read_previous_drift(store, &p)
            .await?
            .map(|frame| (p.run_id, frame)),
        None => None,
    };
    let owned = OwnedRun::from(run);
    tokio::task::spawn_blocking(move || {
        let prev = previous.as_ref().map(|(id, df)| (id.as_str(), df));
        track_drift(&drift, prev, &acks, &owned.borrow(), &corrections)
    })
    .await
    .map_err(|source| ReportError::Task {
        dir: format!("lifecycle of {}", run.run_id),
        source,
    })?
    .map_err(|source| ReportError::Polars {
        path: format!("lifecycle of {}", run.run_id),
        source: Box::new(source),
    })
}

/// The previous run's `drift.parquet`; `None` (with a warning) when it has
/// none (written without the `parquet` format) or its rows have no identity
/// (written by an older version).
async fn read_previous_drift(
    store: &Arc<dyn ObjectStore>,
    previous: &PreviousRun,
) -> Result<Option<DataFrame>, ReportError> {
    let path = previous.drift_dir.clone().join("drift.parquet");
    let bytes = match store.get(&path).await {
        Ok(got) => got
            .bytes()
            .await
            .map_err(|source| store_err("reading", &path, store, source))?,
        Err(object_store::Error::NotFound { .. }) => {
            tracing::warn!(path = %path, "the previous nightly run has no drift.parquet; every drift row counts as new");
            return Ok(None);
        }
        Err(source) => return Err(store_err("reading", &path, store, source)),
    };
    let df = ParquetReader::new(std::io::Cursor::new(bytes))
        .finish()
        .map_err(|source| ReportError::Polars {
            path: path.to_string(),
            source: Box::new(source),
        })?;
    if df.column(crate::reconcile::identity::DRIFT_ID).is_err() {
        tracing::warn!(path = %path, "the previous nightly run's drift has no drift_id; every drift row counts as new");
        return Ok(None);
    }
    Ok(Some(df))
}

/// The counts of the job's recent nightly runs that recorded them, oldest
/// first, ending with `current`: at most [`TREND_RUNS`] points.
pub async fn recent_trend(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    job: &str,
    current: TrendPoint,
) -> Result<Vec<TrendPoint>, ReportError> {
    let mut points: Vec<TrendPoint> = run_records(store, prefix, job, TREND_RUNS * 2)
        .await?
        .into_iter()
        .filter(|r| r.kind == RunKind::Nightly && r.run_id != current.run_id)
        .filter_map(|r| {
            r.lifecycle.map(|counts| TrendPoint {
                run_id: r.run_id,
                run_date: r.run_date,
                counts,
            })
        })
        .collect();
    let keep = points.len().saturating_sub(TREND_RUNS - 1);
    points.drain(..keep);
    points.push(current);
    Ok(points)
}

/// The job's newest `limit` run records (`runs/job=<job>/**/_SUCCESS`), oldest
/// first (by run date, then finish time). Unreadable records are skipped with a warning.
async fn run_records(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    job: &str,
    limit: usize,
) -> Result<Vec<RunManifest>, ReportError> {
    let root = job_root(prefix, RUNS_TABLE, job);
    let mut paths: Vec<Path> = store
        .list(Some(&root))
        .try_collect::<Vec<_>>()
        .await
        .map_err(|source| store_err("listing", &root, store, source))?
        .into_iter()
        .map(|m| m.location)
        .filter(|p| p.filename() == Some(SUCCESS_FILE))
        .collect();
    // `run_date=YYYY-MM-DD/run_id=run-YYYYMMDD-HHMMSS-…`: path order is run order.
    paths.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
    let skip = paths.len().saturating_sub(limit);
    let mut records = Vec::new();
    for path in &paths[skip..] {
        match get_json::<RunManifest>(store, path).await {
            Ok(Some(r)) if r.job == job => records.push(r),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %crate::error_chain::error_chain(&e), "skipping an unreadable run record")
            }
        }
    }
    records.sort_by_cached_key(|r| crate::report::latest::run_order(r.run_date, &r.finished_at));
    Ok(records)
}

/// [`TrackedRun`] with owned strings, to cross into a blocking task.
struct OwnedRun {
    run_id: String,
    job: String,
    run_date: chrono::NaiveDate,
    detected_at: String,
}

impl OwnedRun {
    fn from(run: &TrackedRun<'_>) -> OwnedRun {
        OwnedRun {
            run_id: run.run_id.to_string(),
            job: run.job.to_string(),
            run_date: run.run_date,
            detected_at: run.detected_at.to_string(),
        }
    }

    fn borrow(&self) -> TrackedRun<'_> {
        TrackedRun {
            run_id: &self.run_id,
            job: &self.job,
            run_date: self.run_date,
            detected_at: &self.detected_at,
        }
    }
}

/// The job's last complete nightly run's id and valid ERP row count
/// (`inputs.erp_rows_valid` of its `summary.json`); `None` when there is no
/// such run or its summary cannot be read (with a warning).
pub async fn previous_erp_rows_valid(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    job: &str,
) -> Result<Option<(String, u64)>, ReportError> {
    let Some(previous) = previous_nightly_run(store, prefix, job, "").await? else {
        return Ok(None);
    };
    match get_json::<crate::report::Summary>(store, &previous.summary).await {
        Ok(Some(summary)) => Ok(Some((previous.run_id, summary.inputs.erp_rows_valid))),
        Ok(None) => Ok(None),
        Err(e) => {
            tracing::warn!(path = %previous.summary, error = %crate::error_chain::error_chain(&e), "the previous nightly run's summary is unreadable; the row-drop check is skipped");
            Ok(None)
        }
    }
}
