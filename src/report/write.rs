//! Report stage: serializes a run's files and puts them to the object store,
//! `_SUCCESS` last, then moves `latest.json`.

use super::summary::{normalize_drift, normalize_rejects};
use super::{render_html, ReportError, RunInfo, Summary};
use futures::future::try_join_all;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Name of the completion marker, written after every other file of a run.
pub const SUCCESS_FILE: &str = "_SUCCESS";
/// The drift column left out of `drift.parquet`: readers take it from the
/// `run_id=` path segment (Hive partitioning). `drift.csv` keeps every column.
pub const PARQUET_DROPPED_COLUMN: &str = "run_id";
/// Name of the pointer to the newest complete run, under `{output_prefix}/drift/`.
pub const LATEST_FILE: &str = "latest.json";

/// Which optional formats to write. `summary.json`, `rejects.csv` and `_SUCCESS`
/// are always written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportFormats {
    /// Write `drift.parquet` (Hive-partitioned by run_date and run_id).
    pub parquet: bool,
    /// Write `drift.csv`.
    pub csv: bool,
    /// Write `report.html`.
    pub html: bool,
}

impl Default for ReportFormats {
    fn default() -> Self {
        ReportFormats {
            parquet: true,
            csv: true,
            html: true,
        }
    }
}

/// Where a run's reports were written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportLocation {
    /// `{output_prefix}/drift/run_date=YYYY-MM-DD/run_id=<id>`.
    pub dir: Path,
    /// File names written in `dir`, in write order; `_SUCCESS` is last.
    pub files: Vec<String>,
}

/// Contents of `latest.json`: the newest complete run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatestPointer {
    /// Run id.
    pub run_id: String,
    /// Run date.
    pub run_date: chrono::NaiveDate,
    /// The run's directory (object path, relative to the store).
    pub dir: String,
    /// The run's `summary.json` (object path).
    pub summary: String,
    /// When the run finished (RFC 3339).
    pub finished_at: String,
    /// Number of drift rows.
    pub drift_total: u64,
}

/// The directory of one run's reports: `{output_prefix}/drift/run_date=YYYY-MM-DD/run_id=<id>`.
pub fn run_dir(output_prefix: &Path, run: &RunInfo) -> Path {
    output_prefix
        .clone()
        .join("drift")
        .join(format!("run_date={}", run.run_date.format("%Y-%m-%d")).as_str())
        .join(format!("run_id={}", run.run_id).as_str())
}

/// Writes one run's reports under [`run_dir`], `_SUCCESS` last, then points
/// `latest.json` at the run when it is the newest complete one (by run date,
/// then finish time). A failed write leaves no `_SUCCESS` and does not move
/// `latest.json`. A run whose `_SUCCESS` already exists is refused
/// ([`ReportError::AlreadyComplete`]): a report is never written twice.
pub async fn write_reports(
    store: Arc<dyn ObjectStore>,
    output_prefix: &Path,
    run: &RunInfo,
    drift: &DataFrame,
    rejects: &DataFrame,
    summary: &Summary,
    formats: &ReportFormats,
) -> Result<ReportLocation, ReportError> {
    let dir = run_dir(output_prefix, run);
    let success = dir.clone().join(SUCCESS_FILE);
    match store.head(&success).await {
        Ok(_) => {
            return Err(ReportError::AlreadyComplete {
                path: success.to_string(),
            })
        }
        Err(object_store::Error::NotFound { .. }) => {}
        Err(source) => return Err(store_err("checking", &success, &store, source)),
    }

    let (drift, rejects) = (drift.clone(), rejects.clone());
    let (summary_owned, formats_owned, dir_name) = (summary.clone(), *formats, dir.to_string());
    let files = tokio::task::spawn_blocking(move || {
        serialize_files(&drift, &rejects, &summary_owned, &formats_owned, &dir_name)
    })
    .await
    .map_err(|source| ReportError::Task {
        dir: dir.to_string(),
        source,
    })??;

    let mut names: Vec<String> = files.iter().map(|(name, _)| name.to_string()).collect();
    try_join_all(files.into_iter().map(|(name, bytes)| {
        let (store, path) = (store.clone(), dir.clone().join(name));
        async move {
            store
                .put(&path, PutPayload::from(bytes))
                .await
                .map_err(|source| store_err("writing", &path, &store, source))
        }
    }))
    .await?;

    let manifest = serde_json::json!({
        "run_id": run.run_id, "run_date": run.run_date, "files": names,
    });
    put_json(&store, &success, &manifest).await?;
    names.push(SUCCESS_FILE.to_string());

    update_latest(&store, output_prefix, run, &dir, summary.drift_total).await?;
    Ok(ReportLocation { dir, files: names })
}

/// Reads `{output_prefix}/drift/latest.json`. `None` when no run has completed.
/// Checks that the run it names has `_SUCCESS`.
pub async fn read_latest(
    store: Arc<dyn ObjectStore>,
    output_prefix: &Path,
) -> Result<Option<LatestPointer>, ReportError> {
    let latest_path = output_prefix.clone().join("drift").join(LATEST_FILE);
    let Some(latest) = get_latest(&store, &latest_path).await? else {
        return Ok(None);
    };
    let incomplete = || ReportError::IncompleteRun {
        latest: latest_path.to_string(),
        dir: latest.dir.clone(),
    };
    let success = Path::parse(&latest.dir)
        .map_err(|_| incomplete())?
        .join(SUCCESS_FILE);
    match store.head(&success).await {
        Ok(_) => Ok(Some(latest)),
        Err(object_store::Error::NotFound { .. }) => Err(incomplete()),
        Err(source) => Err(store_err("checking", &success, &store, source)),
    }
}

/// Moves `latest.json` to this run unless it already names a newer run.
/// Read-then-write: two writers finishing at once may race; the later put wins.
async fn update_latest(
    store: &Arc<dyn ObjectStore>,
    output_prefix: &Path,
    run: &RunInfo,
    dir: &Path,
    drift_total: u64,
) -> Result<(), ReportError> {
    let latest_path = output_prefix.clone().join("drift").join(LATEST_FILE);
    if let Some(current) = get_latest(store, &latest_path).await? {
        let current_key = (current.run_date, current.finished_at.as_str());
        if current_key > (run.run_date, run.finished_at.as_str()) {
            return Ok(());
        }
    }
    let pointer = LatestPointer {
        run_id: run.run_id.clone(),
        run_date: run.run_date,
        dir: dir.to_string(),
        summary: dir.clone().join("summary.json").to_string(),
        finished_at: run.finished_at.clone(),
        drift_total,
    };
    put_json(store, &latest_path, &pointer).await
}

async fn get_latest(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
) -> Result<Option<LatestPointer>, ReportError> {
    let bytes = match store.get(path).await {
        Ok(got) => got
            .bytes()
            .await
            .map_err(|source| store_err("reading", path, store, source))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(source) => return Err(store_err("reading", path, store, source)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| ReportError::Json {
            path: path.to_string(),
            source,
        })
}

async fn put_json<T: Serialize>(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    value: &T,
) -> Result<(), ReportError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| ReportError::Json {
        path: path.to_string(),
        source,
    })?;
    store
        .put(path, PutPayload::from(bytes))
        .await
        .map(|_| ())
        .map_err(|source| store_err("writing", path, store, source))
}

fn store_err(
    op: &'static str,
    path: &Path,
    store: &Arc<dyn ObjectStore>,
    source: object_store::Error,
) -> ReportError {
    ReportError::Store {
        op,
        path: path.to_string(),
        store: store.to_string(),
        source: Box::new(source),
    }
}

/// Builds every file but `_SUCCESS`, in write order. Polars work: run on a blocking thread.
fn serialize_files(
    drift: &DataFrame,
    rejects: &DataFrame,
    summary: &Summary,
    formats: &ReportFormats,
    dir: &str,
) -> Result<Vec<(&'static str, Vec<u8>)>, ReportError> {
    let mut drift = normalize_drift(drift)?;
    let mut rejects = normalize_rejects(rejects)?;
    let polars_err = |name: &str| {
        let path = format!("{dir}/{name}");
        move |source| ReportError::Polars {
            path,
            source: Box::new(source),
        }
    };
    let mut files = Vec::new();
    if formats.parquet {
        // `run_id` comes from the Hive path; in the file too, pyarrow (pandas) refuses
        // to merge the file's column with the partition's.
        let mut without_run_id = drift
            .drop(PARQUET_DROPPED_COLUMN)
            .map_err(polars_err("drift.parquet"))?;
        let mut buf = Vec::new();
        ParquetWriter::new(&mut buf)
            .finish(&mut without_run_id)
            .map_err(polars_err("drift.parquet"))?;
        files.push(("drift.parquet", buf));
    }
    if formats.csv {
        files.push((
            "drift.csv",
            write_csv(&mut drift).map_err(polars_err("drift.csv"))?,
        ));
    }
    files.push((
        "rejects.csv",
        write_csv(&mut rejects).map_err(polars_err("rejects.csv"))?,
    ));
    let summary_json = serde_json::to_vec_pretty(summary).map_err(|source| ReportError::Json {
        path: format!("{dir}/summary.json"),
        source,
    })?;
    files.push(("summary.json", summary_json));
    if formats.html {
        let page = render_html(summary, &drift, &rejects)?;
        files.push(("report.html", page.into_bytes()));
    }
    Ok(files)
}

fn write_csv(df: &mut DataFrame) -> PolarsResult<Vec<u8>> {
    let mut buf = Vec::new();
    CsvWriter::new(&mut buf).include_header(true).finish(df)?;
    Ok(buf)
}
