//! Report stage: drift across runs. Each run's drift rows are compared, by
//! `drift_id`, with the drift of the job's last complete nightly run:
//!
//! - every row gets a `status`: `new` (not in that run), `open` (in it too) or
//!   `acknowledged` (listed in the job's acknowledgement file, see [`acks`]);
//!   with `first_seen_at`, `first_seen_run_id`, `age_days`, `runs_seen` and
//!   `changed_since_last_run` (same identity, other values);
//! - rows of that run that are gone are the run's `resolved` rows (their
//!   identity, last values and `resolved_at`), written to the `resolved`
//!   dataset;
//! - with corrections on, every row gets the correction planned for it and its
//!   latest journaled outcome, and every resolved row who fixed it (see
//!   [`corrections`]);
//! - the counts go into the summary and the run record, and the counts of
//!   recent nightly runs into the summary's trend.
//!
//! Only nightly runs ([`RunKind::Nightly`]) are compared with: a backfill or a
//! targeted run neither feeds nor breaks the chain, and a failed run never
//! published, so it is never found. The previous run's rows are read from its
//! `drift.parquet` (the `parquet` output format); without it, every row is new.

pub mod acks;
pub mod corrections;
mod previous;
mod track;

#[cfg(test)]
mod tests;

pub use acks::{load_acknowledgements, AckError, Acknowledgement, Acknowledgements};
pub use corrections::Corrections;
pub use previous::{
    compare_with_previous_run, previous_erp_rows_valid, previous_nightly_run, recent_trend,
    PreviousRun,
};
pub use track::{empty_resolved, track_drift, values_hash, Tracked, TrackedRun};

use polars::prelude::DataType;
use serde::{Deserialize, Serialize};

/// Statuses of a drift row.
pub mod status {
    /// Not in the previous nightly run.
    pub const NEW: &str = "new";
    /// In the previous nightly run too, and not acknowledged.
    pub const OPEN: &str = "open";
    /// Listed in the acknowledgement file, unexpired, values unchanged.
    pub const ACKNOWLEDGED: &str = "acknowledged";
}

/// Why a run was made. Only nightly runs are compared with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// The job's regular run (`run`, `demo`): feeds the lifecycle chain.
    #[default]
    Nightly,
    /// A run for an earlier date.
    Backfill,
    /// A run over part of the data.
    Targeted,
}

/// Drift rows by status, and the rows resolved since the previous nightly run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleCounts {
    /// Rows first seen in this run.
    pub new: u64,
    /// Rows seen in the previous nightly run too, not acknowledged.
    pub open: u64,
    /// Rows acknowledged (not counted as open).
    pub acknowledged: u64,
    /// Rows of the previous nightly run that are gone.
    pub resolved: u64,
    /// Of the resolved rows, those an applied correction of the job covered
    /// (`resolved_by = job`).
    #[serde(default)]
    pub resolved_by_job: u64,
    /// Rows whose values changed under the same identity (among new/open/acknowledged).
    pub changed: u64,
    /// The run compared with; `None` for the job's first nightly run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_run_id: Option<String>,
}

/// One run in the trend chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrendPoint {
    /// Run id.
    pub run_id: String,
    /// Run date.
    pub run_date: chrono::NaiveDate,
    /// The run's counts.
    pub counts: LifecycleCounts,
}

/// Runs shown in the trend (this one included).
pub const TREND_RUNS: usize = 30;

/// Columns the lifecycle adds to the drift table, after [`crate::reconcile::DRIFT_COLUMNS`],
/// with their types.
pub const LIFECYCLE_COLUMNS: [(&str, DataType); 15] = [
    ("status", DataType::String),
    ("first_seen_at", DataType::String),
    ("first_seen_run_id", DataType::String),
    ("age_days", DataType::Int64),
    ("runs_seen", DataType::Int64),
    ("changed_since_last_run", DataType::Boolean),
    ("values_hash", DataType::String),
    ("acknowledged_by", DataType::String),
    ("acknowledged_reason", DataType::String),
    ("acknowledged_until", DataType::String),
    ("acknowledged_values_hash", DataType::String),
    ("correction_action", DataType::String),
    ("correction_id", DataType::String),
    ("correction_outcome", DataType::String),
    ("correction_at", DataType::String),
];

/// Columns of the `resolved` table, in order (`runs_seen` Int64, the rest String).
/// `run_id` and `job` are the resolving run's (taken from the path in Parquet).
pub const RESOLVED_COLUMNS: [&str; 23] = [
    "run_id",
    "job",
    "resolved_at",
    "drift_id",
    "drift_kind",
    "severity",
    "contract_id",
    "erp_record_id",
    "legal_entity_id",
    "vendor_id",
    "po_number",
    "field",
    "spotdraft_value",
    "erp_value",
    "proposed_action",
    "first_seen_at",
    "first_seen_run_id",
    "last_seen_at",
    "last_seen_run_id",
    "last_status",
    "runs_seen",
    "resolved_by",
    "resolved_by_correction_id",
];
