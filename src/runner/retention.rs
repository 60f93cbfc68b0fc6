//! The end of a run, retention: what `[retention]` says is too old is removed,
//! under the job's lease, after the run.
//!
//! | what | where | age from | kept for |
//! |---|---|---|---|
//! | reports | `{table}/job=<job>/run_date=D/run_id=R/` in every dataset | `D` | `keep_days` |
//! | staging | `_staging/<job>/<run_id>/` | the run id's time | `keep_days` |
//! | spilled pages | `state/<job>/pages/`, `state/<job>/enrich/` | modification time | `keep_days` |
//! | journals | `_journal/<job>/<apply_id>/` | the apply id's time, else modification time | `journal_keep_days` (default: for ever) |
//! | run records | `_history/<job>/<run_id>.json` | the run id's time | `history_keep_days` |
//!
//! Never removed, whatever their age:
//! - the run `latest.json` names, and the newest nightly run (the next run
//!   compares with it);
//! - a run whose `plan` is younger than `[apply] max_plan_age_days` (it may
//!   still be applied) unless the journal settled every action it sends
//!   (`applied`, `rejected` or `checksum_mismatch`: never sent again); a plan
//!   or a journal that cannot be read counts as unsettled;
//! - this run, and staging holding a `manifest.json` (committed: the next run
//!   publishes it);
//! - the job's run state and snapshot, and spilled pages while the run state
//!   has an unfinished walk (the next run resumes from them).
//!
//! A run's report folders go `runs` first, each folder's `_SUCCESS` first, so
//! a reader never takes a half-removed run for a complete one; what a crash
//! leaves is removed by the next run.

use crate::apply::{plan_from_frame, read_journal, JournalView};
use crate::ingest::{StateError, StateStore};
use crate::job::RetentionSettings;
use crate::report::layout::{job_root, staging_root, PLAN_TABLE, RUNS_TABLE, STAGING_DIR};
use crate::report::lifecycle::previous_nightly_run;
use crate::report::publish::MANIFEST_FILE;
use crate::report::{read_latest, ReportError, SUCCESS_FILE};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use polars::prelude::{CsvReadOptions, DataFrame, ParquetReader, SerReader};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Journal outcomes after which an action is never sent again.
const SETTLED: [&str; 3] = ["applied", "rejected", "checksum_mismatch"];

/// Why retention stopped (what it removed before stays removed).
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// Listing or deleting failed.
    #[error("retention of job {job}: {op} {path}")]
    Store {
        /// Job.
        job: String,
        /// `listing` or `deleting`.
        op: &'static str,
        /// Object path.
        path: String,
        /// Cause.
        #[source]
        source: object_store::Error,
    },
    /// `latest.json` or the run records could not be read: no report is removed.
    #[error("retention of job {job}: the runs to keep are unknown")]
    Report {
        /// Job.
        job: String,
        /// Cause.
        #[source]
        source: ReportError,
    },
    /// The run state could not be read: no spilled page is removed.
    #[error("retention of job {job}: the run state is unreadable")]
    State {
        /// Job.
        job: String,
        /// Cause.
        #[source]
        source: StateError,
    },
}

/// What one pass removed, in objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// Runs whose report folders were removed.
    pub runs: BTreeSet<String>,
    /// Objects of report folders.
    pub report_objects: usize,
    /// Staged objects.
    pub staging_objects: usize,
    /// Spilled pages and enrichment batches.
    pub spilled_objects: usize,
    /// Journal objects.
    pub journal_objects: usize,
    /// Run records.
    pub history_records: usize,
}

/// One job's retention pass.
pub struct Retention<'a> {
    /// The output store.
    pub store: &'a Arc<dyn ObjectStore>,
    /// The output prefix.
    pub prefix: &'a Path,
    /// The job.
    pub job: &'a str,
    /// How long things are kept.
    pub settings: &'a RetentionSettings,
    /// `[apply] max_plan_age_days`: plans younger than this are kept.
    pub max_plan_age: Duration,
    /// The run making the pass (kept).
    pub current_run: &'a str,
    /// The time ages are measured from.
    pub now: DateTime<Utc>,
    /// Where the store's paths start on disk, when it is a local file system
    /// (`/` for `LocalFileSystem::new()`): folders left empty are removed too.
    pub local_root: Option<std::path::PathBuf>,
}

impl Retention<'_> {
    /// Removes what is expired; see the module documentation.
    pub async fn run(&self) -> Result<Removed, RetentionError> {
        let mut removed = Removed::default();
        self.reports(&mut removed).await?;
        self.staging(&mut removed).await?;
        self.spilled(&mut removed).await?;
        if let Some(days) = self.settings.journal_keep_days {
            let root = crate::apply::journal::journal_root(self.prefix, self.job);
            removed.journal_objects = self.expire_by_name(&root, days).await?;
        }
        let root = super::history::history_dir(self.prefix, self.job);
        removed.history_records = self
            .expire_by_name(&root, self.settings.history_keep_days)
            .await?;
        if removed != Removed::default() {
            self.prune_empty_folders().await?;
        }
        Ok(removed)
    }

    /// On a local file system, the folders the job's removed objects left
    /// empty (object stores have no folders).
    async fn prune_empty_folders(&self) -> Result<(), RetentionError> {
        let Some(disk) = &self.local_root else {
            return Ok(());
        };
        let mut roots = vec![
            staging_root(self.prefix, self.job),
            crate::apply::journal::journal_root(self.prefix, self.job),
            self.prefix.clone().join("state").join(self.job),
        ];
        for table in self.child_dirs(self.prefix).await? {
            if !table.starts_with('_') {
                roots.push(job_root(self.prefix, &table, self.job));
            }
        }
        for root in roots {
            let dir = disk.join(root.as_ref());
            if dir.is_dir() {
                remove_empty_subfolders(&dir);
            }
        }
        Ok(())
    }

    fn cutoff(&self, days: u32) -> DateTime<Utc> {
        self.now - chrono::Duration::days(i64::from(days))
    }

    /// The runs whose reports stay whatever their age.
    async fn protected_runs(&self) -> Result<BTreeSet<String>, RetentionError> {
        let report = |source| RetentionError::Report {
            job: self.job.to_string(),
            source,
        };
        let mut keep = BTreeSet::from([self.current_run.to_string()]);
        if let Some(latest) = read_latest(self.store.clone(), self.prefix, self.job)
            .await
            .map_err(report)?
        {
            keep.insert(latest.run_id);
        }
        if let Some(previous) = previous_nightly_run(self.store, self.prefix, self.job, "")
            .await
            .map_err(report)?
        {
            keep.insert(previous.run_id);
        }
        Ok(keep)
    }

    /// Every dataset's run folders dated before the cutoff, but the protected runs.
    async fn reports(&self, removed: &mut Removed) -> Result<(), RetentionError> {
        let cutoff = self.cutoff(self.settings.keep_days).date_naive();
        let plan_cutoff = (self.now
            - chrono::Duration::from_std(self.max_plan_age).unwrap_or_default())
        .date_naive();
        let keep = self.protected_runs().await?;
        let mut tables: Vec<String> = self
            .child_dirs(self.prefix)
            .await?
            .into_iter()
            .filter(|t| !t.starts_with('_'))
            .collect();
        // `runs` first: its `_SUCCESS` is the run's record.
        tables.sort_by_key(|t| (t != RUNS_TABLE, t.clone()));
        // Expired runs whose plan may still be applied, and is not settled.
        let plan_root = job_root(self.prefix, PLAN_TABLE, self.job);
        let candidates: Vec<(String, Path)> = self
            .run_dirs(&plan_root)
            .await?
            .into_iter()
            .filter(|(date, run_id, _)| {
                *date >= plan_cutoff && *date < cutoff && !keep.contains(run_id)
            })
            .map(|(_, run_id, dir)| (run_id, dir))
            .collect();
        let mut young_plans = BTreeSet::new();
        if !candidates.is_empty() {
            let journal = read_journal(self.store, self.prefix, self.job).await;
            for (run_id, dir) in candidates {
                let settled = match &journal {
                    Ok(journal) => self.plan_settled(&dir, journal).await,
                    Err(_) => false,
                };
                if !settled {
                    young_plans.insert(run_id);
                }
            }
        }
        for table in tables {
            let root = job_root(self.prefix, &table, self.job);
            for (date, run_id, dir) in self.run_dirs(&root).await? {
                if date >= cutoff || keep.contains(&run_id) || young_plans.contains(&run_id) {
                    continue;
                }
                // A local file system keeps the emptied folders: counted once.
                let n = self.delete_dir(&dir, Some(SUCCESS_FILE)).await?;
                if n > 0 {
                    removed.report_objects += n;
                    removed.runs.insert(run_id);
                }
            }
        }
        Ok(())
    }

    /// Whether every action the plan in `dir` sends is settled in `journal`;
    /// false when the plan cannot be read.
    async fn plan_settled(&self, dir: &Path, journal: &JournalView) -> bool {
        let Some(frame) = self.read_plan(dir).await else {
            return false;
        };
        let Ok(actions) = plan_from_frame(&frame) else {
            return false;
        };
        actions.iter().filter(|a| a.is_sendable()).all(|a| {
            journal
                .latest(&a.key)
                .is_some_and(|e| SETTLED.contains(&e.outcome.as_str()))
        })
    }

    /// `plan.parquet`, else `plan.csv`, of the run folder `dir`.
    async fn read_plan(&self, dir: &Path) -> Option<DataFrame> {
        for file in ["plan.parquet", "plan.csv"] {
            let Ok(got) = self.store.get(&dir.clone().join(file)).await else {
                continue;
            };
            let bytes = got.bytes().await.ok()?;
            let cursor = std::io::Cursor::new(bytes.to_vec());
            let frame = if file.ends_with(".parquet") {
                ParquetReader::new(cursor).finish().ok()
            } else {
                CsvReadOptions::default()
                    .with_has_header(true)
                    .with_infer_schema_length(Some(0))
                    .into_reader_with_file_handle(cursor)
                    .finish()
                    .ok()
            };
            return frame;
        }
        None
    }

    /// `run_date=D/run_id=R` folders under `root`.
    async fn run_dirs(
        &self,
        root: &Path,
    ) -> Result<Vec<(NaiveDate, String, Path)>, RetentionError> {
        let mut runs = Vec::new();
        for date_dir in self.child_dirs(root).await? {
            let Some(date) = date_dir
                .strip_prefix("run_date=")
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            else {
                continue;
            };
            let date_path = root.clone().join(date_dir.as_str());
            for run_dir in self.child_dirs(&date_path).await? {
                if let Some(run_id) = run_dir.strip_prefix("run_id=") {
                    let dir = date_path.clone().join(run_dir.as_str());
                    runs.push((date, run_id.to_string(), dir));
                }
            }
        }
        Ok(runs)
    }

    /// Staged runs older than the cutoff, but this run and committed ones.
    async fn staging(&self, removed: &mut Removed) -> Result<(), RetentionError> {
        let cutoff = self.cutoff(self.settings.keep_days);
        let root = staging_root(self.prefix, self.job);
        debug_assert!(root.as_ref().contains(STAGING_DIR));
        for run_id in self.child_dirs(&root).await? {
            if run_id == self.current_run {
                continue;
            }
            let dir = root.clone().join(run_id.as_str());
            let objects = self.list(&dir).await?;
            if objects
                .iter()
                .any(|m| m.location.filename() == Some(MANIFEST_FILE))
            {
                continue;
            }
            let newest = objects.iter().map(|m| m.last_modified).max();
            let at = time_of_name(&run_id).or(newest);
            if at.is_some_and(|t| t < cutoff) {
                removed.staging_objects += self.delete_dir(&dir, None).await?;
            }
        }
        Ok(())
    }

    /// Spilled pages older than the cutoff, when no walk is unfinished.
    async fn spilled(&self, removed: &mut Removed) -> Result<(), RetentionError> {
        let state = StateStore::new(self.store.clone(), self.prefix, self.job);
        let checkpoint = state.load().await.map_err(|source| RetentionError::State {
            job: self.job.to_string(),
            source,
        })?;
        if checkpoint.progress.is_some() {
            return Ok(());
        }
        let cutoff = self.cutoff(self.settings.keep_days);
        let job_state = self.prefix.clone().join("state").join(self.job);
        for dir in ["pages", "enrich"] {
            for meta in self.list(&job_state.clone().join(dir)).await? {
                if meta.last_modified < cutoff {
                    self.delete(&meta.location).await?;
                    removed.spilled_objects += 1;
                }
            }
        }
        Ok(())
    }

    /// Objects under `root` older than `days`, aged by the run id (or apply
    /// id) their path names, else by their modification time.
    async fn expire_by_name(&self, root: &Path, days: u32) -> Result<usize, RetentionError> {
        let cutoff = self.cutoff(days);
        let mut n = 0;
        for meta in self.list(root).await? {
            let rel = meta.location.as_ref()[root.as_ref().len()..].trim_start_matches('/');
            let first = rel.split('/').next().unwrap_or_default();
            let named = first.trim_end_matches(".json");
            if named == self.current_run {
                continue;
            }
            let at = time_of_name(named).unwrap_or(meta.last_modified);
            if at < cutoff {
                self.delete(&meta.location).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn child_dirs(&self, dir: &Path) -> Result<Vec<String>, RetentionError> {
        let listed = self
            .store
            .list_with_delimiter(Some(dir))
            .await
            .map_err(|source| self.store_err("listing", dir, source))?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect())
    }

    async fn list(&self, dir: &Path) -> Result<Vec<ObjectMeta>, RetentionError> {
        self.store
            .list(Some(dir))
            .try_collect()
            .await
            .map_err(|source| self.store_err("listing", dir, source))
    }

    /// Deletes every object under `dir`, the one named `first` before the others.
    async fn delete_dir(&self, dir: &Path, first: Option<&str>) -> Result<usize, RetentionError> {
        let mut objects: Vec<Path> = self
            .list(dir)
            .await?
            .into_iter()
            .map(|m| m.location)
            .collect();
        objects.sort_by_key(|p| (p.filename() != first, p.as_ref().to_string()));
        for path in &objects {
            self.delete(path).await?;
        }
        Ok(objects.len())
    }

    async fn delete(&self, path: &Path) -> Result<(), RetentionError> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(self.store_err("deleting", path, source)),
        }
    }

    fn store_err(
        &self,
        op: &'static str,
        path: &Path,
        source: object_store::Error,
    ) -> RetentionError {
        RetentionError::Store {
            job: self.job.to_string(),
            op,
            path: path.to_string(),
            source,
        }
    }
}

/// Removes the empty folders below `dir` (not `dir`), deepest first; files
/// and folders holding any are left alone.
fn remove_empty_subfolders(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_empty_subfolders(&path);
            // Fails, harmlessly, unless the folder is now empty.
            let _ = std::fs::remove_dir(&path);
        }
    }
}

/// The time a run id names: `run-YYYYMMDD-HHMMSS-…` (other names: none).
pub fn time_of_name(name: &str) -> Option<DateTime<Utc>> {
    let stamp = name.strip_prefix("run-")?.get(..15)?;
    NaiveDateTime::parse_from_str(stamp, "%Y%m%d-%H%M%S")
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests;
