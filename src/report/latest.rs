//! Report stage: `latest.json`, one per job, pointing at the job's newest
//! complete nightly run (by run date, then finish time). Backfills and
//! targeted runs never move it: they report on part of the contracts.
//!
//! It changes only by conditional put (`PutMode::Create` when absent,
//! `PutMode::Update` on the version read), retried when another writer got in
//! first. A store without conditional updates (the local file system) gets a
//! plain put: the job's lease already lets only one run of the job write.
//! A missing or unreadable `latest.json` is rebuilt from the runs' `_SUCCESS`
//! records, with a warning.

use super::layout::{job_root, latest_path, RUNS_TABLE};
use super::publish::{exists, get_json, store_err, to_json, RunManifest};
use super::{ReportError, SUCCESS_FILE};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Contents of `latest.json`: the job's newest complete run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatestPointer {
    /// Job name.
    pub job: String,
    /// Run id.
    pub run_id: String,
    /// Run date.
    pub run_date: chrono::NaiveDate,
    /// The run's folder in the `runs` dataset (`summary.json`, `report.html`).
    pub dir: String,
    /// The run's `summary.json` (object path).
    pub summary: String,
    /// The run's folder in every table it wrote, by table name.
    pub tables: BTreeMap<String, String>,
    /// When the run finished (RFC 3339).
    pub finished_at: String,
    /// Number of drift rows.
    pub drift_total: u64,
    /// Why the run was made (pointers without it name a nightly run).
    #[serde(default)]
    pub kind: super::lifecycle::RunKind,
}

impl LatestPointer {
    /// The pointer to a published run.
    pub fn to_run(prefix: &Path, run: &RunManifest) -> LatestPointer {
        let dir = run.table_dir(prefix, RUNS_TABLE);
        LatestPointer {
            job: run.job.clone(),
            run_id: run.run_id.clone(),
            run_date: run.run_date,
            summary: dir.clone().join("summary.json").to_string(),
            dir: dir.to_string(),
            tables: run
                .table_dirs(prefix)
                .into_iter()
                .map(|(t, d)| (t, d.to_string()))
                .collect(),
            finished_at: run.finished_at.clone(),
            drift_total: run.drift_total,
            kind: run.kind,
        }
    }

    fn order_key(&self) -> RunOrder {
        run_order(self.run_date, &self.finished_at)
    }
}

/// How runs are ordered: by run date, then finish time (parsed, so that
/// `…:10Z` and `…:10.250Z` compare as times), then the text as written.
pub(crate) type RunOrder = (
    chrono::NaiveDate,
    Option<chrono::DateTime<chrono::Utc>>,
    String,
);

/// The [`RunOrder`] of a run.
pub(crate) fn run_order(run_date: chrono::NaiveDate, finished_at: &str) -> RunOrder {
    let at = chrono::DateTime::parse_from_rfc3339(finished_at)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc));
    (run_date, at, finished_at.to_string())
}

/// Reads the job's `latest.json`; `None` when no run has completed. A corrupt
/// one is rebuilt from the run records (with a warning, without writing). The
/// run it names must have its `_SUCCESS`.
pub async fn read_latest(
    store: Arc<dyn ObjectStore>,
    prefix: &Path,
    job: &str,
) -> Result<Option<LatestPointer>, ReportError> {
    let path = latest_path(prefix, job);
    let latest = match get_json::<LatestPointer>(&store, &path).await {
        Ok(latest) => latest,
        Err(ReportError::Json { source, .. }) => {
            tracing::warn!(path = %path, error = %source, "latest.json is unreadable; using the newest run record instead");
            rebuild_latest(&store, prefix, job).await?
        }
        Err(e) => return Err(e),
    };
    let Some(latest) = latest else {
        return Ok(None);
    };
    let incomplete = || ReportError::IncompleteRun {
        latest: path.to_string(),
        dir: latest.dir.clone(),
    };
    let success = Path::parse(&latest.dir)
        .map_err(|_| incomplete())?
        .join(SUCCESS_FILE);
    if exists(&store, &success).await? {
        Ok(Some(latest))
    } else {
        Err(incomplete())
    }
}

/// Points the job's `latest.json` at `run` unless it names a newer run.
pub(super) async fn update_latest(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    run: &RunManifest,
) -> Result<(), ReportError> {
    const ATTEMPTS: usize = 5;
    let path = latest_path(prefix, &run.job);
    let candidate = LatestPointer::to_run(prefix, run);
    for _ in 0..ATTEMPTS {
        let (current, version) = read_versioned(store, prefix, run, &path).await?;
        let newest = match current {
            Some(cur) if cur.order_key() >= candidate.order_key() => cur,
            _ => candidate.clone(),
        };
        if version
            .as_ref()
            .is_some_and(|v| v.pointer.as_ref() == Some(&newest))
        {
            return Ok(());
        }
        let mode = match &version {
            Some(v) => PutMode::Update(v.version.clone()),
            None => PutMode::Create,
        };
        let bytes = to_json(&path, &newest)?;
        match put_mode(store, &path, bytes.clone(), mode).await {
            Ok(()) => return Ok(()),
            Err(object_store::Error::NotImplemented { .. }) => {
                return put_mode(store, &path, bytes, PutMode::Overwrite)
                    .await
                    .map_err(|source| store_err("writing", &path, store, source));
            }
            Err(object_store::Error::Precondition { .. })
            | Err(object_store::Error::AlreadyExists { .. }) => continue,
            Err(source) => return Err(store_err("writing", &path, store, source)),
        }
    }
    Err(ReportError::Contended {
        path: path.to_string(),
        attempts: ATTEMPTS,
    })
}

/// The object as read: its parsed pointer (`None` when unreadable) and version.
struct Versioned {
    pointer: Option<LatestPointer>,
    version: UpdateVersion,
}

/// The current pointer (rebuilt from run records when missing or unreadable)
/// and, when the object exists, its version for a conditional update.
async fn read_versioned(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    run: &RunManifest,
    path: &Path,
) -> Result<(Option<LatestPointer>, Option<Versioned>), ReportError> {
    let job = run.job.as_str();
    let got = match store.get(path).await {
        Ok(got) => Some(got),
        Err(object_store::Error::NotFound { .. }) => None,
        Err(source) => return Err(store_err("reading", path, store, source)),
    };
    let Some(got) = got else {
        let rebuilt = rebuild_latest(store, prefix, job).await?;
        // The run being published has its record already; only an older one
        // means a pointer went missing.
        if let Some(r) = rebuilt.as_ref().filter(|r| r.run_id != run.run_id) {
            tracing::warn!(path = %path, run_id = %r.run_id, "latest.json was missing; rebuilt from the run records");
        }
        return Ok((rebuilt, None));
    };
    let version = UpdateVersion {
        e_tag: got.meta.e_tag.clone(),
        version: got.meta.version.clone(),
    };
    let bytes = got
        .bytes()
        .await
        .map_err(|source| store_err("reading", path, store, source))?;
    match serde_json::from_slice::<LatestPointer>(&bytes) {
        Ok(pointer) => Ok((
            Some(pointer.clone()),
            Some(Versioned {
                pointer: Some(pointer),
                version,
            }),
        )),
        Err(e) => {
            tracing::warn!(path = %path, error = %crate::error_chain::error_chain(&e), "latest.json is unreadable; rebuilding it from the run records");
            let rebuilt = rebuild_latest(store, prefix, job).await?;
            Ok((
                rebuilt,
                Some(Versioned {
                    pointer: None,
                    version,
                }),
            ))
        }
    }
}

/// The newest nightly run among the job's run records (`runs/job=<job>/**/_SUCCESS`).
pub async fn rebuild_latest(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    job: &str,
) -> Result<Option<LatestPointer>, ReportError> {
    let root = job_root(prefix, RUNS_TABLE, job);
    let objects: Vec<_> = store
        .list(Some(&root))
        .try_collect()
        .await
        .map_err(|source| store_err("listing", &root, store, source))?;
    let mut newest: Option<LatestPointer> = None;
    for meta in objects {
        if meta.location.filename() != Some(SUCCESS_FILE) {
            continue;
        }
        let record = match get_json::<RunManifest>(store, &meta.location).await {
            Ok(Some(r)) if r.job == job && r.kind == super::lifecycle::RunKind::Nightly => r,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %crate::error_chain::error_chain(&e), "skipping an unreadable run record");
                continue;
            }
        };
        let pointer = LatestPointer::to_run(prefix, &record);
        if newest
            .as_ref()
            .is_none_or(|n| pointer.order_key() > n.order_key())
        {
            newest = Some(pointer);
        }
    }
    Ok(newest)
}

async fn put_mode(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    bytes: Vec<u8>,
    mode: PutMode,
) -> object_store::Result<()> {
    let opts = PutOptions {
        mode,
        ..PutOptions::default()
    };
    store
        .put_opts(path, PutPayload::from(bytes), opts)
        .await
        .map(|_| ())
}
