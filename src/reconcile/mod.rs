//! Reconciliation: normalize keys, link contracts to ERP records, classify drift.
//!
//! Pure: [`reconcile`] takes the contract snapshot and the ERP extract as
//! DataFrames plus a [`spec::ReconcileSpec`] and returns the drift table and
//! counts. It does no I/O. The rules are in [`spec`]'s module doc.
//!
//! The plan materializes four frames once each (prepared contracts, prepared
//! records, the link table, the 1:1 pairs) and derives every drift kind from
//! them, so no join runs twice.

pub mod compare;
pub mod conflict;
pub mod drift;
pub mod identity;
pub mod link;
pub mod normalize;
pub mod orphans;
pub mod pairs;
pub mod spec;
pub mod testing;

#[cfg(test)]
mod tests;

use polars::prelude::*;
use serde::Serialize;
use spec::{kinds, ReconcileSpec};
use std::collections::BTreeMap;

pub use drift::DRIFT_COLUMNS;
pub use orphans::orphan_candidates;
pub use testing::demo_spec;

/// What a run adds to the two frames: its identity, written in every drift
/// row, and what it learned about contracts outside the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunContext {
    /// Run id (also the report folder name).
    pub run_id: String,
    /// Job name.
    pub job: String,
    /// When the run detected the drift, ISO 8601 UTC.
    pub detected_at: String,
    /// Contracts known to exist in SpotDraft although they are not live in the
    /// snapshot (e.g. outside the walk's `status_filter`): ERP records naming
    /// them are not `orphan_erp_record`. Composite (`T-123`) or integer
    /// (`123`) ids, matched like back-references; a composite id also matches
    /// its integer form. Fill it by looking up [`orphans::orphan_candidates`]
    /// in SpotDraft; empty when nothing was looked up.
    pub known_existing_contract_ids: Vec<String>,
}

/// Links counted by the first rule that made them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct LinksByRule {
    /// Contract's ERP record id equals the record's id.
    pub id: u64,
    /// Record's back-reference names the contract (and no id link).
    pub back_reference: u64,
    /// Fallback composite key.
    pub fallback: u64,
}

/// Counts for the run summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ReconcileStats {
    /// Contracts in the snapshot, deleted ones included.
    pub contracts: u64,
    /// Contracts in scope (status listed in the job, not deleted).
    pub contracts_in_scope: u64,
    /// Contracts skipped because they are deleted.
    pub contracts_deleted_skipped: u64,
    /// ERP records whose values are all usable (the extract's valid rows).
    pub erp_records: u64,
    /// ERP records reconciled although a value could not be read: linked and
    /// reported (`unusable_erp_value`), that value not compared. The extract
    /// lists them in its rejects too.
    pub erp_records_with_unusable_values: u64,
    /// 1:1 linked pairs, the ones whose fields were compared.
    pub linked_pairs: u64,
    /// All links by rule, duplicates included.
    pub links_by_rule: LinksByRule,
    /// 1:1 linked contracts with at least one comparison skipped because
    /// SpotDraft's values were never fetched (`key_pointers_fetched_at` or
    /// `document_fetched_at` null in the snapshot).
    pub not_enriched_contracts: u64,
    /// Comparisons skipped for that reason: one per `key_pointers.*` compared
    /// field, and one per executed document checksum.
    pub not_enriched_comparisons: u64,
    /// Drift rows per kind; every kind is listed, zeros included.
    pub drift_by_kind: BTreeMap<String, u64>,
    /// Drift rows per severity; `low`, `medium` and `high` are always listed.
    pub drift_by_severity: BTreeMap<String, u64>,
}

/// What [`reconcile`] returns.
#[derive(Debug, Clone)]
pub struct ReconcileOutput {
    /// Drift rows, columns [`DRIFT_COLUMNS`] (all String), sorted.
    pub drift: DataFrame,
    /// Counts for the summary.
    pub stats: ReconcileStats,
}

/// Why reconciliation could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The job names a snapshot column the snapshot lacks.
    #[error("the contract snapshot has no column `{column}` (the job names it); available columns: {}", available.join(", "))]
    MissingSnapshotColumn {
        /// The missing column.
        column: String,
        /// Columns the snapshot has.
        available: Vec<String>,
    },
    /// A compared field names an ERP column the extract lacks (or the record id is missing).
    #[error("the ERP extract has no canonical column `{column}` (map it in the job's extract columns); available columns: {}", available.join(", "))]
    MissingErpColumn {
        /// The missing canonical column.
        column: String,
        /// Columns the extract has.
        available: Vec<String>,
    },
    /// The fallback key names a key that has no snapshot column in the job.
    #[error("fallback key `{key}` has no SpotDraft column configured (set keys.{key}); allowed: vendor_id, po_number, legal_entity_id")]
    FallbackKeyNotConfigured {
        /// The fallback key name.
        key: String,
    },
    /// Polars failed while computing the plan.
    #[error("reconciliation failed in Polars")]
    Polars(#[from] PolarsError),
}

/// Reconciles the contract snapshot against the ERP extract under `spec`.
///
/// `snapshot`: one row per contract, String columns except `contract_num`
/// (Int64): `id`, `contract_num`, `contract_status`, `deleted_at` and every
/// column the spec names (optionally those of [`link::OPTIONAL_SNAPSHOT_COLUMNS`]:
/// `document_sha256`, `key_pointers_fetched_at`, `document_fetched_at`). `erp`: the extract's
/// valid records with canonical column names (`erp::extract::Extract::records`).
pub fn reconcile(
    snapshot: DataFrame,
    erp: DataFrame,
    spec: &ReconcileSpec,
    ctx: &RunContext,
) -> Result<ReconcileOutput, ReconcileError> {
    let contracts_total = snapshot.height() as u64;
    let clock = std::time::Instant::now();
    let lap = |stage: &str| {
        tracing::debug!(
            stage,
            elapsed_ms = clock.elapsed().as_millis() as u64,
            "reconcile"
        )
    };
    let contracts = link::prepare_contracts(snapshot, spec)?;
    lap("prepare contracts");
    let records = link::prepare_records(erp, spec)?;
    lap("prepare records");
    let links = link::link(&contracts, &records, spec)?;
    lap("link");
    let pairs = pairs::one_to_one_pairs(&contracts, &records, &links, spec)?;
    lap("pairs");
    let drift = drift::drift_table(&contracts, &records, &links, &pairs, spec, ctx)?;
    lap("drift table");
    let (not_enriched_contracts, not_enriched_comparisons) =
        pairs::not_enriched_counts(&contracts, &links, spec)?;

    let flags = contracts
        .clone()
        .lazy()
        .select([
            col("c_in_scope")
                .sum()
                .cast(DataType::UInt64)
                .alias("in_scope"),
            col("c_deleted")
                .sum()
                .cast(DataType::UInt64)
                .alias("deleted"),
        ])
        .collect()?;
    let flag = |name: &str| -> Result<u64, ReconcileError> {
        Ok(flags.column(name)?.u64()?.get(0).unwrap_or(0))
    };
    let unusable = records.column("r_any_unusable")?.bool()?.sum().unwrap_or(0) as u64;
    let erp_records = records.height() as u64 - unusable;
    let mut links_by_rule = LinksByRule::default();
    for (rule, n) in drift::count_by(&links, "rule")? {
        match rule.parse::<i32>() {
            Ok(link::rule::ID) => links_by_rule.id = n,
            Ok(link::rule::BACK_REFERENCE) => links_by_rule.back_reference = n,
            Ok(link::rule::FALLBACK) => links_by_rule.fallback = n,
            _ => {}
        }
    }
    let mut drift_by_kind: BTreeMap<String, u64> =
        kinds::ALL.iter().map(|k| (k.to_string(), 0)).collect();
    drift_by_kind.extend(drift::count_by(&drift, "drift_kind")?);
    let mut drift_by_severity: BTreeMap<String, u64> = ["low", "medium", "high"]
        .iter()
        .map(|k| (k.to_string(), 0))
        .collect();
    drift_by_severity.extend(drift::count_by(&drift, "severity")?);

    let stats = ReconcileStats {
        contracts: contracts_total,
        contracts_in_scope: flag("in_scope")?,
        contracts_deleted_skipped: flag("deleted")?,
        erp_records,
        erp_records_with_unusable_values: unusable,
        linked_pairs: pairs::one_to_one_count(&links)?,
        links_by_rule,
        not_enriched_contracts,
        not_enriched_comparisons,
        drift_by_kind,
        drift_by_severity,
    };
    Ok(ReconcileOutput { drift, stats })
}
