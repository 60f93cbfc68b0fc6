//! Report stage: complete or invisible. A run's files are written to a staging
//! area outside every dataset, committed by a manifest, then published into the
//! datasets, `_SUCCESS` last, then `latest.json`.
//!
//! Object stores have no rename, so publishing copies. The staged
//! `manifest.json` is the commit point:
//! - before it exists, nothing of the run is in any dataset; a run that dies
//!   there leaves only staged objects, which the next run of the job deletes;
//! - once it exists, the run *will* be published: [`recover_staged`] (called by
//!   the next run of the job, under its lease) copies whatever is missing and
//!   writes the markers. Publishing is idempotent, so a run that dies while
//!   publishing is rolled forward, never rolled back.
//!
//! Each dataset holds one object per table per run, and a copy is atomic, so a
//! dataset reader sees a run's rows all at once or not at all, and only rows of
//! a committed run, which are final.

use super::latest::update_latest;
use super::layout::{staging_dir, staging_root, table_run_dir, RUNS_TABLE};
use super::{ReportError, SUCCESS_FILE};
use crate::crashpoint;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Tables published after their run, through their own manifest.
pub const ADDED_LATER_TABLES: [&str; 1] = [super::layout::APPLY_RESULTS_TABLE];

/// Name of the staged commit marker.
pub const MANIFEST_FILE: &str = "manifest.json";

/// What a committed run publishes. Written as the staged `manifest.json` (the
/// commit point) and, at the end of publishing, as the run's `_SUCCESS` in the
/// `runs` dataset (the run record that `latest.json` is rebuilt from).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunManifest {
    /// Job name.
    pub job: String,
    /// Run id.
    pub run_id: String,
    /// Run date (the `run_date=` partition).
    pub run_date: chrono::NaiveDate,
    /// When the run finished (RFC 3339); orders runs of one date.
    pub finished_at: String,
    /// Number of drift rows.
    pub drift_total: u64,
    /// Why the run was made; only nightly runs are compared with (records
    /// without it are nightly).
    #[serde(default)]
    pub kind: super::lifecycle::RunKind,
    /// Drift by status and rows resolved, when the run tracked them: the
    /// report's trend reads these, not the Parquet files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<super::lifecycle::LifecycleCounts>,
    /// Files as `<table>/<file name>`, in publish order.
    pub files: Vec<String>,
}

impl RunManifest {
    /// Every table the run writes, `runs` last (unless the manifest only adds
    /// a table to a run already published: see [`RunManifest::writes_runs`]).
    pub fn tables(&self) -> Vec<String> {
        let mut tables: Vec<String> = self
            .files
            .iter()
            .filter_map(|f| f.split_once('/').map(|(t, _)| t.to_string()))
            .filter(|t| t != RUNS_TABLE)
            .collect();
        tables.dedup();
        if self.writes_runs() {
            tables.push(RUNS_TABLE.to_string());
        }
        tables
    }

    /// Whether publishing writes the run's record in `runs` and moves
    /// `latest.json`: always, except for a manifest whose files all belong to
    /// tables written after their run was published ([`ADDED_LATER_TABLES`]:
    /// `apply_results`), which leaves the run record and `latest.json` alone.
    pub fn writes_runs(&self) -> bool {
        !self.files.iter().all(|f| {
            ADDED_LATER_TABLES
                .iter()
                .any(|t| f.starts_with(&format!("{t}/")))
        }) || self.files.is_empty()
    }

    /// The run's folder in `table`.
    pub fn table_dir(&self, prefix: &Path, table: &str) -> Path {
        table_run_dir(prefix, table, &self.job, self.run_date, &self.run_id)
    }

    /// Every table's folder, by table name.
    pub fn table_dirs(&self, prefix: &Path) -> BTreeMap<String, Path> {
        self.tables()
            .into_iter()
            .map(|t| {
                let dir = self.table_dir(prefix, &t);
                (t, dir)
            })
            .collect()
    }
}

/// Where a published run is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportLocation {
    /// The run's folder in `runs`: `summary.json`, `report.html`, `_SUCCESS`.
    pub dir: Path,
    /// Every table's folder for this run, by table name (`runs` included).
    pub tables: BTreeMap<String, Path>,
    /// Files published, as `<table>/<file name>`, then `_SUCCESS` markers.
    pub files: Vec<String>,
}

/// What [`recover_staged`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Committed runs whose publishing was finished.
    pub rolled_forward: Vec<String>,
    /// Uncommitted runs whose staged files were deleted.
    pub discarded: Vec<String>,
}

/// Writes `files` (`(<table>/<name>, bytes)`) to the run's staging folder, then
/// the manifest that commits them.
pub async fn stage(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    manifest: &RunManifest,
    files: Vec<(String, Vec<u8>)>,
) -> Result<(), ReportError> {
    let staging = staging_dir(prefix, &manifest.job, &manifest.run_id);
    futures::future::try_join_all(files.into_iter().map(|(name, bytes)| {
        let path = join_rel(&staging, &name);
        async move {
            put(store, &path, bytes).await?;
            crashpoint::hit(crashpoint::REPORT_STAGING);
            Ok::<_, ReportError>(())
        }
    }))
    .await?;
    crashpoint::hit("report.staged");
    put_json(store, &staging.clone().join(MANIFEST_FILE), manifest).await
}

/// Publishes a committed run: copies its staged files into the datasets, writes
/// each table's `_SUCCESS`, the run's `_SUCCESS` last, moves `latest.json` (nightly runs only), and
/// deletes the staging folder. Idempotent: running it again on a run that was
/// (partly) published finishes it and changes nothing already there.
pub async fn publish(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    manifest: &RunManifest,
) -> Result<ReportLocation, ReportError> {
    let staging = staging_dir(prefix, &manifest.job, &manifest.run_id);
    for file in &manifest.files {
        let (table, name) = split_file(file)?;
        let to = manifest.table_dir(prefix, table).join(name);
        copy_staged(store, &join_rel(&staging, file), &to).await?;
        crashpoint::hit("report.publishing");
    }
    let mut published = manifest.files.clone();
    for table in manifest.tables() {
        let dir = manifest.table_dir(prefix, &table);
        let marker = dir.clone().join(SUCCESS_FILE);
        if table == RUNS_TABLE {
            crashpoint::hit("report.before_run_success");
            put_json(store, &marker, manifest).await?;
        } else {
            let files: Vec<&str> = manifest
                .files
                .iter()
                .filter_map(|f| f.strip_prefix(&format!("{table}/")))
                .collect();
            let record = serde_json::json!({"run_id": manifest.run_id, "files": files});
            put_json(store, &marker, &record).await?;
        }
        published.push(format!("{table}/{SUCCESS_FILE}"));
    }
    crashpoint::hit("report.before_latest");
    // Only a nightly run moves `latest.json`: a backfill or a targeted run
    // reports on part of the contracts, never the job's state.
    if manifest.writes_runs() && manifest.kind == super::lifecycle::RunKind::Nightly {
        update_latest(store, prefix, manifest).await?;
    }
    crashpoint::hit("report.before_cleanup");
    delete_staging(store, &staging).await?;
    Ok(ReportLocation {
        dir: manifest.table_dir(prefix, RUNS_TABLE),
        tables: manifest.table_dirs(prefix),
        files: published,
    })
}

/// Finishes what earlier runs of `job` left in staging: a committed run is
/// published (rolled forward), an uncommitted one deleted. Call it under the
/// job's lease, before the run writes anything.
pub async fn recover_staged(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    job: &str,
) -> Result<Recovery, ReportError> {
    let root = staging_root(prefix, job);
    let listed = store
        .list_with_delimiter(Some(&root))
        .await
        .map_err(|source| store_err("listing", &root, store, source))?;
    let mut recovery = Recovery::default();
    for dir in listed.common_prefixes {
        let run_id = dir.filename().unwrap_or_default().to_string();
        let manifest_path = dir.clone().join(MANIFEST_FILE);
        match get_json::<RunManifest>(store, &manifest_path).await? {
            Some(manifest) => {
                tracing::warn!(job, run_id = %run_id, "finishing the publishing of a run that stopped after it was committed");
                publish(store, prefix, &manifest).await?;
                recovery.rolled_forward.push(run_id);
            }
            None => {
                // A folder the local file system keeps after its files went.
                let mut objects = store.list(Some(&dir));
                if objects
                    .try_next()
                    .await
                    .map_err(|source| store_err("listing", &dir, store, source))?
                    .is_none()
                {
                    continue;
                }
                drop(objects);
                tracing::warn!(job, run_id = %run_id, "deleting the staged files of a run that stopped before it was committed");
                delete_staging(store, &dir).await?;
                recovery.discarded.push(run_id);
            }
        }
    }
    Ok(recovery)
}

/// Copies a staged object into place. A staged object already gone while its
/// destination exists was copied by an earlier attempt.
async fn copy_staged(
    store: &Arc<dyn ObjectStore>,
    from: &Path,
    to: &Path,
) -> Result<(), ReportError> {
    match store.copy(from, to).await {
        Ok(()) => Ok(()),
        Err(object_store::Error::NotFound { .. }) if exists(store, to).await? => Ok(()),
        Err(source) => Err(store_err("publishing", to, store, source)),
    }
}

/// Deletes a staging folder, the manifest first: a half-deleted folder then
/// reads as uncommitted and is deleted, never re-published from missing files.
async fn delete_staging(store: &Arc<dyn ObjectStore>, dir: &Path) -> Result<(), ReportError> {
    delete(store, &dir.clone().join(MANIFEST_FILE)).await?;
    let objects: Vec<_> = store
        .list(Some(dir))
        .try_collect()
        .await
        .map_err(|source| store_err("listing", dir, store, source))?;
    for meta in objects {
        delete(store, &meta.location).await?;
    }
    Ok(())
}

async fn delete(store: &Arc<dyn ObjectStore>, path: &Path) -> Result<(), ReportError> {
    match store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(source) => Err(store_err("deleting", path, store, source)),
    }
}

fn split_file(file: &str) -> Result<(&str, &str), ReportError> {
    file.split_once('/').ok_or_else(|| ReportError::Manifest {
        message: format!("file {file:?} is not `<table>/<name>`"),
    })
}

fn join_rel(dir: &Path, rel: &str) -> Path {
    rel.split('/').fold(dir.clone(), |p, part| p.join(part))
}

/// True when `path` exists.
pub(super) async fn exists(store: &Arc<dyn ObjectStore>, path: &Path) -> Result<bool, ReportError> {
    match store.head(path).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(source) => Err(store_err("checking", path, store, source)),
    }
}

/// Reads a JSON object; `None` when it does not exist.
pub(super) async fn get_json<T: serde::de::DeserializeOwned>(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
) -> Result<Option<T>, ReportError> {
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

pub(super) async fn put(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    bytes: Vec<u8>,
) -> Result<(), ReportError> {
    store
        .put(path, PutPayload::from(bytes))
        .await
        .map(|_| ())
        .map_err(|source| store_err("writing", path, store, source))
}

pub(super) async fn put_json<T: Serialize>(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    value: &T,
) -> Result<(), ReportError> {
    put(store, path, to_json(path, value)?).await
}

pub(super) fn to_json<T: Serialize>(path: &Path, value: &T) -> Result<Vec<u8>, ReportError> {
    serde_json::to_vec_pretty(value).map_err(|source| ReportError::Json {
        path: path.to_string(),
        source,
    })
}

pub(super) fn store_err(
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
