//! Report stage: where a run's tables live in the output store.
//!
//! Every table is its own Hive-partitioned dataset, kept apart per job:
//!
//! ```text
//! {output}/drift/job=<job>/run_date=YYYY-MM-DD/run_id=<id>/drift.parquet, drift.csv, _SUCCESS
//! {output}/rejects/job=<job>/run_date=YYYY-MM-DD/run_id=<id>/rejects.parquet, rejects.csv, _SUCCESS
//! {output}/runs/job=<job>/run_date=YYYY-MM-DD/run_id=<id>/summary.json, report.html, _SUCCESS
//! {output}/resolved/job=<job>/run_date=YYYY-MM-DD/run_id=<id>/resolved.parquet, resolved.csv, _SUCCESS
//! {output}/runs/job=<job>/latest.json
//! {output}/_staging/<job>/<run_id>/...      (outside every dataset root)
//! ```
//!
//! `plan` and `apply_results` (corrections) take the same shape, as will
//! `drift_history`, so a `{output}/drift/**/*.parquet` glob never mixes
//! them into drift rows.

use object_store::path::Path;

/// The dataset of drift rows.
pub const DRIFT_TABLE: &str = "drift";
/// The dataset of rejected ERP extract rows.
pub const REJECTS_TABLE: &str = "rejects";
/// One folder per run: `summary.json`, `report.html` and the run's `_SUCCESS`
/// (written last, holding the run record).
pub const RUNS_TABLE: &str = "runs";
/// The dataset of drift rows that were gone in a nightly run (one file per run,
/// listing the previous nightly run's rows that this run no longer finds).
pub const RESOLVED_TABLE: &str = "resolved";
/// The dataset of planned corrections (one row per action).
pub const PLAN_TABLE: &str = "plan";
/// The dataset of what each applied action did.
pub const APPLY_RESULTS_TABLE: &str = "apply_results";
/// Folder, under the output prefix, where runs are written before they are published.
pub const STAGING_DIR: &str = "_staging";

/// `{prefix}/{table}/job={job}`: one job's part of a dataset.
pub fn job_root(prefix: &Path, table: &str, job: &str) -> Path {
    prefix
        .clone()
        .join(table)
        .join(format!("job={job}").as_str())
}

/// `{prefix}/{table}/job={job}/run_date=YYYY-MM-DD/run_id={run_id}`.
pub fn table_run_dir(
    prefix: &Path,
    table: &str,
    job: &str,
    run_date: chrono::NaiveDate,
    run_id: &str,
) -> Path {
    job_root(prefix, table, job)
        .join(format!("run_date={}", run_date.format("%Y-%m-%d")).as_str())
        .join(format!("run_id={run_id}").as_str())
}

/// `{prefix}/runs/job={job}/latest.json`: the job's newest complete run.
pub fn latest_path(prefix: &Path, job: &str) -> Path {
    job_root(prefix, RUNS_TABLE, job).join(super::LATEST_FILE)
}

/// `{prefix}/_staging/{job}`: runs of `job` written but not yet published.
pub fn staging_root(prefix: &Path, job: &str) -> Path {
    prefix.clone().join(STAGING_DIR).join(job)
}

/// `{prefix}/_staging/{job}/{run_id}`.
pub fn staging_dir(prefix: &Path, job: &str, run_id: &str) -> Path {
    staging_root(prefix, job).join(run_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_partitioned_by_job_then_date_then_run() {
        let p = Path::from("out");
        let d = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        assert_eq!(
            table_run_dir(&p, DRIFT_TABLE, "us", d, "run-1").as_ref(),
            "out/drift/job=us/run_date=2026-11-30/run_id=run-1"
        );
        assert_eq!(
            latest_path(&p, "us").as_ref(),
            "out/runs/job=us/latest.json"
        );
        assert_eq!(
            staging_dir(&p, "us", "run-1").as_ref(),
            "out/_staging/us/run-1"
        );
    }
}
