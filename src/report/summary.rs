//! Report stage: the run summary (`summary.json`) and the frame checks every writer shares.

use super::lifecycle::{LifecycleCounts, RunKind, TrendPoint, LIFECYCLE_COLUMNS};
use super::{ReportError, DRIFT_COLUMNS, REJECT_COLUMNS};
use crate::reconcile::identity::DRIFT_ID;
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Label used in `by_legal_entity` for drift rows without a legal entity.
pub const NO_LEGAL_ENTITY: &str = "(none)";

/// Which run a report belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Job name, as in the job file.
    pub job: String,
    /// Unique id of this run; one report directory per run id. Use a UUID or a
    /// word prefix (`run-20250301-060500`): Hive readers infer the `run_id=` path
    /// value's type, so an all-digit id reads as an integer (DuckDB, Polars) and
    /// `20250301T060500Z` makes Polars fail parsing it as a datetime.
    pub run_id: String,
    /// The business date of the run (the `run_date=` partition).
    pub run_date: chrono::NaiveDate,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    /// When the run finished (RFC 3339, UTC); orders runs of one date in `latest.json`.
    pub finished_at: String,
}

/// How many records went in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputCounts {
    /// Contracts in the snapshot (not deleted).
    pub contracts: u64,
    /// Contracts whose status is in scope.
    pub contracts_in_scope: u64,
    /// ERP extract rows read.
    pub erp_rows_read: u64,
    /// ERP extract rows that passed validation.
    pub erp_rows_valid: u64,
    /// ERP extract rows rejected (listed in `rejects.csv`).
    pub erp_rows_rejected: u64,
}

/// The run summary written as `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Job name.
    pub job: String,
    /// Run id.
    pub run_id: String,
    /// Run date.
    pub run_date: chrono::NaiveDate,
    /// Start time (RFC 3339).
    pub started_at: String,
    /// Finish time (RFC 3339).
    pub finished_at: String,
    /// Input counts.
    pub inputs: InputCounts,
    /// Number of drift rows.
    pub drift_total: u64,
    /// Drift rows per drift kind; every kind of `reconcile::spec::kinds::ALL` is present.
    pub by_kind: BTreeMap<String, u64>,
    /// Drift rows per severity (`low`, `medium`, `high` always present).
    pub by_severity: BTreeMap<String, u64>,
    /// Drift rows per legal entity; rows without one count under `(none)`.
    pub by_legal_entity: BTreeMap<String, u64>,
    /// `field_mismatch` rows per field (other kinds are not counted here, even
    /// when they name a field, like `unusable_erp_value`).
    pub by_field: BTreeMap<String, u64>,
    /// Stage timings in milliseconds, by stage name; set by the runner.
    pub timings_ms: BTreeMap<String, u64>,
    /// API figures from ingestion (requests, retries, pages...); set by the runner.
    pub ingestion: crate::ingest::IngestStats,
    /// Reconciliation engine statistics; set by the runner.
    pub reconcile: crate::reconcile::ReconcileStats,
    /// Why the run was made (summaries without it are nightly).
    #[serde(default)]
    pub run_kind: RunKind,
    /// Drift by status and rows resolved since the previous nightly run; set by the runner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<LifecycleCounts>,
    /// Counts of the job's recent nightly runs, oldest first, this run last; set by the runner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trend: Vec<TrendPoint>,
    /// Corrections planned (and applied), when `[apply]` is enabled; set by the runner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply: Option<ApplySummary>,
    /// What a backfill or a targeted run covered; `None` for a nightly run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<RunScope>,
}

/// The part of a job a backfill or a targeted run covered, and the drift
/// kinds it could not decide.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunScope {
    /// What was asked, in words (`created_at in [2026-01-01, 2026-03-01)`,
    /// `contracts 12, 34`).
    pub description: String,
    /// Composite ids of the contracts reconciled (seen, or marked deleted).
    pub contracts: Vec<String>,
    /// Drift kinds left out because they need every contract of the job
    /// (a targeted ERP-record run: every kind but `missing_in_spotdraft`).
    pub kinds_not_reported: Vec<String>,
    /// A targeted ERP-record run (ERP events): the record ids asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub erp_records: Vec<String>,
    /// ...and those of them the job's extract does not hold (nothing was
    /// planned for them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub erp_records_not_found: Vec<String>,
}

/// The summary's `apply` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApplySummary {
    /// `plan` or `apply`.
    pub mode: String,
    /// SHA-256 of the plan's canonical content (`apply::plan_checksum`).
    pub plan_checksum: String,
    /// Planned actions by action kind (`review` included).
    pub planned: BTreeMap<String, u64>,
    /// Review rows by reason.
    pub review_reasons: BTreeMap<String, u64>,
    /// Outcomes by outcome name, when the plan was applied.
    pub outcomes: BTreeMap<String, u64>,
    /// Why nothing was applied (the cap), when so.
    pub refused: Option<String>,
    /// Executed-document bytes uploaded.
    pub document_bytes: u64,
    /// Actions that failed (rejected, checksum mismatch, pending after retries).
    pub failed: u64,
}

impl ApplySummary {
    /// Counts outcomes (by name) into the summary; `failed` counts the
    /// failing ones (rejected, checksum mismatch, pending after retries).
    pub fn count<'a>(&mut self, outcomes: impl IntoIterator<Item = &'a str>) {
        self.outcomes.clear();
        self.failed = 0;
        for o in outcomes {
            *self.outcomes.entry(o.to_string()).or_default() += 1;
            if matches!(o, "rejected" | "checksum_mismatch" | "pending") {
                self.failed += 1;
            }
        }
    }
}

impl Summary {
    /// Builds the summary of `drift` with Polars group-bys. `timings_ms`,
    /// `ingestion` and `reconcile` start empty; the runner fills them in.
    ///
    /// Runs Polars `collect`: call it from a blocking thread (or a multi-thread
    /// runtime), not from a current-thread tokio runtime.
    pub fn from_drift(
        run: &RunInfo,
        drift: &DataFrame,
        inputs: InputCounts,
    ) -> Result<Summary, ReportError> {
        let drift = normalize_drift(drift)?;
        let mut by_kind: BTreeMap<String, u64> = crate::reconcile::spec::kinds::ALL
            .iter()
            .map(|k| (k.to_string(), 0))
            .collect();
        by_kind.extend(count_by(&drift, "drift_kind", None)?);
        let mut by_severity: BTreeMap<String, u64> = ["low", "medium", "high"]
            .iter()
            .map(|s| (s.to_string(), 0))
            .collect();
        by_severity.extend(count_by(&drift, "severity", None)?);
        Ok(Summary {
            job: run.job.clone(),
            run_id: run.run_id.clone(),
            run_date: run.run_date,
            started_at: run.started_at.clone(),
            finished_at: run.finished_at.clone(),
            inputs,
            drift_total: drift.height() as u64,
            by_kind,
            by_severity,
            by_legal_entity: count_by(&drift, "legal_entity_id", Some(NO_LEGAL_ENTITY))?,
            by_field: count_by(&field_mismatches(&drift)?, "field", None)?,
            timings_ms: BTreeMap::new(),
            ingestion: Default::default(),
            reconcile: Default::default(),
            run_kind: RunKind::default(),
            lifecycle: None,
            trend: Vec::new(),
            apply: None,
            scope: None,
        })
    }
}

/// The `field_mismatch` rows of `drift` (other kinds may name a field too).
fn field_mismatches(drift: &DataFrame) -> Result<DataFrame, ReportError> {
    drift
        .clone()
        .lazy()
        .filter(col("drift_kind").eq(lit(crate::reconcile::spec::kinds::FIELD_MISMATCH)))
        .collect()
        .map_err(|source| ReportError::Polars {
            path: "summary.by_field".into(),
            source: Box::new(source),
        })
}

/// Counts rows per value of `column`. Null values count under `null_label`,
/// or are left out when it is `None`.
fn count_by(
    drift: &DataFrame,
    column: &str,
    null_label: Option<&str>,
) -> Result<BTreeMap<String, u64>, ReportError> {
    let polars_err = |source| ReportError::Polars {
        path: format!("summary.by_{column}"),
        source: Box::new(source),
    };
    let counts = drift
        .clone()
        .lazy()
        .group_by([col(column)])
        .agg([len().cast(DataType::UInt64).alias("__count")])
        .collect()
        .map_err(polars_err)?;
    let keys = counts
        .column(column)
        .and_then(|c| c.str())
        .map_err(polars_err)?;
    let ns = counts
        .column("__count")
        .and_then(|c| c.u64())
        .map_err(polars_err)?;
    let mut out = BTreeMap::new();
    for (key, n) in keys.iter().zip(ns.iter()) {
        let key = match (key, null_label) {
            (Some(k), _) => k,
            (None, Some(label)) => label,
            (None, None) => continue,
        };
        *out.entry(key.to_string()).or_insert(0) += n.unwrap_or(0);
    }
    Ok(out)
}

/// An empty drift frame with the report's columns.
pub fn empty_drift_frame() -> DataFrame {
    let columns: Vec<Column> = DRIFT_COLUMNS
        .iter()
        .map(|name| Column::new_empty((*name).into(), &DataType::String))
        .chain(
            LIFECYCLE_COLUMNS
                .iter()
                .map(|(name, dtype)| Column::new_empty((*name).into(), dtype)),
        )
        .collect();
    DataFrame::new(0, columns).expect("columns of equal (zero) length")
}

/// The drift frame as the reports write it: [`DRIFT_COLUMNS`] in order, all
/// String (all-null columns are cast), then the [`LIFECYCLE_COLUMNS`] with their
/// types. `drift_id` and the lifecycle columns are null when the frame lacks
/// them. A frame without columns is an empty report.
pub(crate) fn normalize_drift(drift: &DataFrame) -> Result<DataFrame, ReportError> {
    if drift.width() == 0 {
        return Ok(empty_drift_frame());
    }
    let mut columns = Vec::with_capacity(DRIFT_COLUMNS.len() + LIFECYCLE_COLUMNS.len());
    for name in DRIFT_COLUMNS {
        if name == DRIFT_ID && drift.column(name).is_err() {
            columns.push(Column::full_null(
                name.into(),
                drift.height(),
                &DataType::String,
            ));
            continue;
        }
        columns.push(string_column("drift", drift, name)?);
    }
    for (name, dtype) in &LIFECYCLE_COLUMNS {
        let column = match drift.column(name) {
            Ok(c) => c.cast(dtype).map_err(|source| ReportError::Column {
                frame: "drift",
                column: name.to_string(),
                expected: "of the lifecycle column's type",
                source: Box::new(source),
            })?,
            Err(_) => Column::full_null((*name).into(), drift.height(), dtype),
        };
        columns.push(column);
    }
    DataFrame::new(drift.height(), columns).map_err(|source| ReportError::Polars {
        path: "drift frame".into(),
        source: Box::new(source),
    })
}

/// The rejects frame as written: `row` as u64, `reason` and `erp_record_id` as String.
pub(crate) fn normalize_rejects(rejects: &DataFrame) -> Result<DataFrame, ReportError> {
    if rejects.width() == 0 {
        let columns = vec![
            Column::new_empty("row".into(), &DataType::UInt64),
            Column::new_empty("reason".into(), &DataType::String),
            Column::new_empty("erp_record_id".into(), &DataType::String),
        ];
        return Ok(DataFrame::new(0, columns).expect("columns of equal (zero) length"));
    }
    let row = rejects
        .column(REJECT_COLUMNS[0])
        .and_then(|c| match c.dtype() {
            dt if dt.is_integer() || dt.is_null() => c.cast(&DataType::UInt64),
            dt => polars_bail!(SchemaMismatch: "got {dt}"),
        })
        .map_err(|source| ReportError::Column {
            frame: "rejects",
            column: "row".into(),
            expected: "an integer",
            source: Box::new(source),
        })?;
    let columns = vec![
        row,
        string_column("rejects", rejects, REJECT_COLUMNS[1])?,
        string_column("rejects", rejects, REJECT_COLUMNS[2])?,
    ];
    DataFrame::new(rejects.height(), columns).map_err(|source| ReportError::Polars {
        path: "rejects frame".into(),
        source: Box::new(source),
    })
}

fn string_column(frame: &'static str, df: &DataFrame, name: &str) -> Result<Column, ReportError> {
    df.column(name)
        .and_then(|c| match c.dtype() {
            DataType::String => Ok(c.clone()),
            DataType::Null => c.cast(&DataType::String),
            dt => polars_bail!(SchemaMismatch: "got {dt}"),
        })
        .map_err(|source| ReportError::Column {
            frame,
            column: name.to_string(),
            expected: "String",
            source: Box::new(source),
        })
}
