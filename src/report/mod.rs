//! Drift reports: Parquet, CSV, summary JSON and an HTML page, published so
//! that a reader sees a run complete or not at all.
//!
//! Every table is its own Hive dataset, kept apart per job (see [`layout`]):
//! `{output}/drift/job=<job>/run_date=YYYY-MM-DD/run_id=<id>/drift.parquet`
//! (and `drift.csv`), `{output}/rejects/...` (`rejects.parquet`, `rejects.csv`),
//! `{output}/resolved/...` (`resolved.parquet`, `resolved.csv`: drift of the
//! previous nightly run that is gone, see [`lifecycle`]) and
//! `{output}/runs/...` (`summary.json`, `report.html`). Each run folder gets
//! `_SUCCESS` once its files are in place, the run's folder in `runs` last,
//! then `{output}/runs/job=<job>/latest.json` points at the job's newest
//! complete run. How a run is staged, committed and published, and how an
//! interrupted one is finished, is in [`publish`].
//!
//! `drift.parquet` holds every drift column but `job` and `run_id`, which
//! readers take from the path: read `{output}/drift/**/*.parquet` with Hive
//! partitioning (Polars `hive_partitioning`, DuckDB `hive_partitioning=true`,
//! pyarrow/pandas `partitioning="hive"`) to get `job`, `run_date` (a date) and
//! `run_id`. pyarrow refuses a column that is both in the file and in the path,
//! hence the drop.
//!
//! `drift.csv` and `rejects.csv` neutralize cells a spreadsheet would run as
//! formulas (a leading `'`, see [`write`]'s module doc); null is an empty field
//! and an empty string `""`. The Parquet files keep raw values.
//!
//! The drift frame has the String columns of [`DRIFT_COLUMNS`], in that order;
//! the rejects frame has `row` (u64), `reason` and `erp_record_id`.

mod html;
mod html_lifecycle;
mod latest;
pub mod layout;
pub mod lifecycle;
pub mod migrate;
pub mod publish;
mod summary;
mod write;

#[cfg(test)]
mod tests;

pub use html::{
    render_html, render_html_with_plan, HTML_DRIFT_ROWS, HTML_PLAN_ROWS, HTML_REJECT_ROWS,
};
pub use latest::{read_latest, rebuild_latest, LatestPointer};
pub use publish::{publish, recover_staged, Recovery, ReportLocation, RunManifest};
pub use summary::{
    empty_drift_frame, ApplySummary, InputCounts, RunInfo, RunScope, Summary, NO_LEGAL_ENTITY,
};
pub use write::{
    write_reports, write_run_reports, write_table_run, write_table_run_with, ExtraTable,
    ReportFormats, RunTables, LATEST_FILE, PARQUET_DROPPED_COLUMNS, SUCCESS_FILE,
};

/// Columns of the drift frame, in order (all String): the reconciliation engine's output.
pub use crate::reconcile::DRIFT_COLUMNS;

/// Columns of the rejects frame, in order: `row` (u64), `reason`, `erp_record_id`.
pub const REJECT_COLUMNS: [&str; 3] = ["row", "reason", "erp_record_id"];

/// What went wrong while building or writing a report. Each variant names the
/// object path or the frame column at fault.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A frame lacks a column the report needs, or it has the wrong type.
    #[error("{frame} frame: column `{column}` is missing or not {expected}")]
    Column {
        /// `drift` or `rejects`.
        frame: &'static str,
        /// The column at fault.
        column: String,
        /// The type the report expects.
        expected: &'static str,
        /// Polars' own message.
        #[source]
        source: Box<polars::error::PolarsError>,
    },
    /// Polars failed while computing a breakdown or serializing a file.
    #[error("building {path}")]
    Polars {
        /// The object path (or summary part) being built.
        path: String,
        /// Polars' own message.
        #[source]
        source: Box<polars::error::PolarsError>,
    },
    /// A JSON document could not be written or read.
    #[error("JSON at {path}")]
    Json {
        /// The object path.
        path: String,
        /// serde_json's message.
        #[source]
        source: serde_json::Error,
    },
    /// The object store refused a read or a write.
    #[error("{op} {path} in {store}")]
    Store {
        /// `writing`, `reading` or `checking`.
        op: &'static str,
        /// The object path.
        path: String,
        /// The store (its Display, e.g. the bucket or folder).
        store: String,
        /// object_store's message.
        #[source]
        source: Box<object_store::Error>,
    },
    /// This run's directory already has `_SUCCESS`: a report is never written twice.
    #[error("report already complete at {path}; a run id is written once")]
    AlreadyComplete {
        /// The `_SUCCESS` object path.
        path: String,
    },
    /// `latest.json` points at a run whose `_SUCCESS` is missing.
    #[error("{latest} points at {dir}, which has no _SUCCESS")]
    IncompleteRun {
        /// The `latest.json` path.
        latest: String,
        /// The run directory it names.
        dir: String,
    },
    /// A staged manifest is not what this version writes.
    #[error("staged run manifest: {message}")]
    Manifest {
        /// What is wrong.
        message: String,
    },
    /// `latest.json` kept changing under this run's conditional puts.
    #[error("{path}: another writer kept updating it; gave up after {attempts} attempts")]
    Contended {
        /// The `latest.json` path.
        path: String,
        /// Conditional puts tried.
        attempts: usize,
    },
    /// The blocking task that ran the Polars work panicked or was cancelled.
    #[error("report task for {dir} failed")]
    Task {
        /// The run directory.
        dir: String,
        /// tokio's message.
        #[source]
        source: tokio::task::JoinError,
    },
}
