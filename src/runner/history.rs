//! Run history: one small JSON record per run, scheduled or one-off, written
//! by [`super::run_job`] whatever the run's end (ok, failed, refused by the
//! lease) and by the scheduler for a due run it skipped.
//!
//! Records live in `{output}/_history/<job>/<run_id>.json`, beside the report
//! datasets rather than inside `runs/job=<job>/`: a folder that is not a
//! `key=value` partition there would confuse Hive readers of the `runs`
//! dataset, and readers skip `_`-prefixed folders.

use crate::storage::Location;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Reports written (corrections applied when asked).
    Ok,
    /// The run stopped with an error.
    Failed,
    /// The scheduler did not start a due run (the last one still going, the
    /// concurrency cap, or a missed run without `catch_up`).
    Skipped,
    /// Another run of the job held its lease.
    RefusedByLease,
}

impl RunStatus {
    /// The name in the record and the `runs` table.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
            RunStatus::RefusedByLease => "refused_by_lease",
        }
    }
}

/// Counts of a finished run, from its summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    /// Contracts in the snapshot.
    pub contracts: u64,
    /// ERP rows read.
    pub erp_rows_read: u64,
    /// ERP rows rejected.
    pub erp_rows_rejected: u64,
    /// Drift rows.
    pub drift: u64,
    /// Drift rows first seen in this run.
    pub drift_new: u64,
    /// Corrections that failed when the run applied its plan.
    pub apply_failed: u64,
}

/// One run's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The job.
    pub job: String,
    /// The run (`run-YYYYMMDD-HHMMSS-xxxxxxxx`).
    pub run_id: String,
    /// The firing the scheduler started it for; `None` for a one-off run.
    pub scheduled_for: Option<DateTime<Utc>>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// How it ended.
    pub outcome: RunStatus,
    /// The exit code `contract-recon run` gives such a run (without
    /// `--fail-on-drift`): 0 ok, 1 failed, 4 refused by the lease.
    pub exit_code: u8,
    /// Counts, for a run that finished.
    pub counts: Option<RunCounts>,
    /// The run's report folder, for a run that finished.
    pub report: Option<String>,
    /// Why the run failed or was skipped.
    pub error: Option<String>,
}

impl RunRecord {
    /// The record of a run of `job` that started at `started` and ended with `outcome`.
    pub fn of_run(
        job: &crate::job::Job,
        run_id: &str,
        opts: &super::RunOptions,
        started: DateTime<Utc>,
        outcome: &anyhow::Result<super::RunOutcome>,
    ) -> RunRecord {
        let mut record = RunRecord {
            job: job.name.clone(),
            run_id: run_id.to_string(),
            scheduled_for: opts.scheduled_for,
            started_at: started,
            finished_at: Utc::now(),
            outcome: RunStatus::Ok,
            exit_code: 0,
            counts: None,
            report: None,
            error: None,
        };
        match outcome {
            Ok(done) => {
                let s = &done.summary;
                let counts = RunCounts {
                    contracts: s.inputs.contracts,
                    erp_rows_read: s.inputs.erp_rows_read,
                    erp_rows_rejected: s.inputs.erp_rows_rejected,
                    drift: done.drift_total(),
                    drift_new: done.drift_new(),
                    apply_failed: done.apply_failed(),
                };
                if counts.apply_failed > 0 {
                    record.exit_code = 1;
                }
                record.counts = Some(counts);
                record.report = Some(done.report_dir.clone());
            }
            Err(e) => {
                let held = matches!(
                    e.downcast_ref::<crate::lease::LeaseError>(),
                    Some(crate::lease::LeaseError::Held { .. })
                );
                record.outcome = if held {
                    RunStatus::RefusedByLease
                } else {
                    RunStatus::Failed
                };
                record.exit_code = if held { 4 } else { 1 };
                record.error = Some(crate::error_chain::anyhow_chain(e));
            }
        }
        record
    }
}

/// The folder of `job`'s records under the output prefix.
pub fn history_dir(prefix: &Path, job: &str) -> Path {
    prefix.clone().join("_history").join(job)
}

/// Writes `record` (one put; a record is never rewritten).
pub async fn write_record(output: &Location, record: &RunRecord) -> anyhow::Result<Path> {
    let path = history_dir(&output.path, &record.job).join(format!("{}.json", record.run_id));
    let body = serde_json::to_vec_pretty(record)?;
    output
        .store
        .put(&path, PutPayload::from(body))
        .await
        .map_err(|e| anyhow::anyhow!("writing the run record {path}: {e}"))?;
    Ok(path)
}

/// `job`'s records, newest first, at most `limit`.
pub async fn read_records(
    store: &dyn ObjectStore,
    prefix: &Path,
    job: &str,
    limit: usize,
) -> anyhow::Result<Vec<RunRecord>> {
    let dir = history_dir(prefix, job);
    let mut paths: Vec<Path> = store
        .list(Some(&dir))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .map_err(|e| anyhow::anyhow!("listing the run history {dir}: {e}"))?;
    // Run ids start with their start time, so names sort by time.
    paths.retain(|p| p.filename().is_some_and(|f| f.ends_with(".json")));
    paths.sort_by(|a, b| b.cmp(a));
    let mut records = Vec::new();
    for path in paths.into_iter().take(limit) {
        let read = async { store.get(&path).await?.bytes().await };
        let bytes = read
            .await
            .map_err(|e| anyhow::anyhow!("reading the run record {path}: {e}"))?;
        match serde_json::from_slice::<RunRecord>(&bytes) {
            Ok(record) => records.push(record),
            Err(e) => {
                tracing::warn!(%path, error = %crate::error_chain::error_chain(&e), "unreadable run record skipped")
            }
        }
    }
    records.sort_by_key(|r| std::cmp::Reverse(r.started_at));
    Ok(records)
}

/// The records as a table for the terminal, in the order given.
pub fn render_records(records: &[RunRecord]) -> String {
    let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut out = format!(
        "{:<30} {:<21} {:>9} {:<17} {:>4} {:>7} {:>6}  report / error\n",
        "run_id", "started", "seconds", "outcome", "exit", "drift", "new"
    );
    for r in records {
        let seconds = (r.finished_at - r.started_at).num_milliseconds() as f64 / 1000.0;
        let (drift, new) = r
            .counts
            .as_ref()
            .map_or((String::from("-"), String::from("-")), |c| {
                (c.drift.to_string(), c.drift_new.to_string())
            });
        let detail = r
            .error
            .as_deref()
            .or(r.report.as_deref())
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("");
        out.push_str(&format!(
            "{:<30} {:<21} {:>9.1} {:<17} {:>4} {:>7} {:>6}  {}\n",
            r.run_id,
            time(&r.started_at),
            seconds,
            r.outcome.as_str(),
            r.exit_code,
            drift,
            new,
            detail
        ));
    }
    out
}
