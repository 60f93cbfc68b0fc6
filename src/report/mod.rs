//! Drift reports: Parquet, CSV, summary JSON and an HTML page.
//!
//! One run's reports live under
//! `{output_prefix}/drift/run_date=YYYY-MM-DD/run_id=<id>/`:
//! `drift.parquet`, `drift.csv`, `summary.json`, `report.html`, `rejects.csv`
//! and, written last, `_SUCCESS`. Then `{output_prefix}/drift/latest.json`
//! points at the newest complete run. A reader that sees `_SUCCESS` (or follows
//! `latest.json`) never sees half a report.
//!
//! `drift.parquet` holds every drift column but `run_id`, which readers take
//! from the path: read `{output_prefix}/drift/**/*.parquet` with Hive
//! partitioning (Polars `hive_partitioning`, DuckDB `hive_partitioning=true`,
//! pyarrow/pandas `partitioning="hive"`) to get `run_date` (a date) and `run_id`.
//! pyarrow refuses a column that is both in the file and in the path, hence the drop.
//! Recipes checked against the written files (the folder also holds JSON, CSV and
//! HTML, which the globs and options below skip):
//! - DuckDB: `read_parquet('out/drift/**/*.parquet', hive_partitioning=true)`;
//! - Polars: `pl.scan_parquet('out/drift/**/*.parquet', hive_partitioning=True)`;
//! - pandas: `pyarrow.dataset.dataset('out/drift', format='parquet', partitioning='hive',
//!   exclude_invalid_files=True).to_table().to_pandas()`.
//!
//! The drift frame has the String columns of [`DRIFT_COLUMNS`], in that order;
//! the rejects frame has `row` (u64), `reason` and `erp_record_id`.

mod html;
mod summary;
mod write;

#[cfg(test)]
mod tests;

pub use html::{render_html, HTML_DRIFT_ROWS, HTML_REJECT_ROWS};
pub use summary::{empty_drift_frame, InputCounts, RunInfo, Summary, NO_LEGAL_ENTITY};
pub use write::{
    read_latest, run_dir, write_reports, LatestPointer, ReportFormats, ReportLocation, LATEST_FILE,
    PARQUET_DROPPED_COLUMN, SUCCESS_FILE,
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
    #[error("building {path}: {source}")]
    Polars {
        /// The object path (or summary part) being built.
        path: String,
        /// Polars' own message.
        #[source]
        source: Box<polars::error::PolarsError>,
    },
    /// A JSON document could not be written or read.
    #[error("JSON at {path}: {source}")]
    Json {
        /// The object path.
        path: String,
        /// serde_json's message.
        #[source]
        source: serde_json::Error,
    },
    /// The object store refused a read or a write.
    #[error("{op} {path} in {store}: {source}")]
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
    /// The blocking task that ran the Polars work panicked or was cancelled.
    #[error("report task for {dir} failed: {source}")]
    Task {
        /// The run directory.
        dir: String,
        /// tokio's message.
        #[source]
        source: tokio::task::JoinError,
    },
}
