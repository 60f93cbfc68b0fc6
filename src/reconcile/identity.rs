//! Reconciliation: the stable identity of a drift row (`drift_id`), so the same
//! drift is recognized from one run to the next.
//!
//! The identity is built from the row's *key*, the parts joined by U+001F:
//! - the drift kind;
//! - the contract id, normalized like back-references
//!   (`[match.normalize] spotdraft_contract_id`);
//! - the ERP record id, normalized per `[match.normalize] erp_record_id`; left
//!   out (empty) for `unlinked_contract`, whose record is only a suggestion
//!   that may come and go;
//! - the field (`field_mismatch`, `unusable_erp_value`), else empty;
//! - for `link_conflict`, the other record's id (`erp_value`), normalized like
//!   record ids: a contract can conflict with several records.
//!
//! `drift_id` is the first 16 hex digits of the key's SHA-256. Within a run it
//! is unique: when two rows still share a key (two ERP rows with the same
//! record id, say, that differ in another column), each of them gets its
//! row's values (every column of the key's row but the run columns) appended
//! to the key. Such rows keep their identity across runs as long as those
//! values stay the same.

use super::normalize::normalize_key;
use super::spec::{kinds, ReconcileSpec};
use super::ReconcileError;
use polars::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Name of the identity column.
pub const DRIFT_ID: &str = "drift_id";

/// Separator between the parts of a key (never in normalized ids in practice,
/// and never ambiguous with an empty part).
const SEP: &str = "\u{1f}";

/// Columns whose raw values break a tie between rows that share a key.
const TIE_BREAK_COLUMNS: [&str; 10] = [
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
];

/// `drift` with a `drift_id` column (String), unique within the frame.
pub fn with_drift_id(drift: DataFrame, spec: &ReconcileSpec) -> Result<DataFrame, ReconcileError> {
    let contract = &spec.keys.spotdraft_contract_id_normalize;
    let record = &spec.keys.erp_record_id.normalize;
    let part = |e: Expr| e.fill_null(lit(""));
    let kind = col("drift_kind");
    let record_part = when(kind.clone().eq(lit(kinds::UNLINKED_CONTRACT)))
        .then(lit(""))
        .otherwise(part(normalize_key(col("erp_record_id"), record)));
    let other_record = when(kind.clone().eq(lit(kinds::LINK_CONFLICT)))
        .then(part(normalize_key(col("erp_value"), record)))
        .otherwise(lit(""));
    let mut tie: Vec<Expr> = TIE_BREAK_COLUMNS
        .iter()
        .map(|c| part(col(*c).cast(DataType::String)))
        .collect();
    tie.insert(0, lit(""));
    let keys = drift
        .clone()
        .lazy()
        .select([
            concat_str(
                [
                    part(kind),
                    part(normalize_key(col("contract_id"), contract)),
                    record_part,
                    part(col("field")),
                    other_record,
                ],
                SEP,
                false,
            )
            .alias("key"),
            concat_str(tie, SEP, false).alias("tie"),
        ])
        .collect()?;
    let key = keys.column("key")?.str()?;
    let tie = keys.column("tie")?.str()?;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for k in key.iter() {
        *seen.entry(k.unwrap_or("")).or_default() += 1;
    }
    let ids: Vec<String> = key
        .iter()
        .zip(tie.iter())
        .map(|(k, t)| {
            let k = k.unwrap_or("");
            if seen[k] > 1 {
                drift_id_of(&format!("{k}{}", t.unwrap_or("")))
            } else {
                drift_id_of(k)
            }
        })
        .collect();
    let mut out = drift;
    out.with_column(Column::new(DRIFT_ID.into(), ids))?;
    Ok(out)
}

/// The identity of a key: the first 16 hex digits of its SHA-256.
pub fn drift_id_of(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    hex::encode(&digest[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::demo_spec;

    fn frame() -> DataFrame {
        df! {
            "drift_kind" => ["field_mismatch", "field_mismatch", "unlinked_contract", "link_conflict", "link_conflict", "duplicate_link", "duplicate_link"],
            "severity" => ["high"; 7],
            "contract_id" => [Some(" t-1"), Some("T-1"), Some("T-2"), Some("T-3"), Some("T-3"), Some("T-4"), Some("T-4")],
            "erp_record_id" => [Some("erp-1"), Some("ERP-1 "), Some("ERP-2"), Some("ERP-3"), Some("ERP-3"), Some("ERP-4"), Some("ERP-4")],
            "legal_entity_id" => [None::<&str>, None, None, None, None, Some("LE-1"), Some("LE-2")],
            "vendor_id" => [None::<&str>; 7],
            "po_number" => [None::<&str>; 7],
            "field" => [Some("amount"), Some("status"), None, None, None, None, None],
            "spotdraft_value" => [None::<&str>; 7],
            "erp_value" => [None, None, None, Some("ERP-8"), Some("ERP-9"), None, None],
            "proposed_action" => ["x"; 7],
        }
        .unwrap()
    }

    #[test]
    fn ids_are_normalized_unique_and_leave_the_suggested_record_out() {
        let out = with_drift_id(frame(), &demo_spec()).unwrap();
        let ids: Vec<&str> = out
            .column(DRIFT_ID)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|v| v.unwrap())
            .collect();
        let unique: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
        assert_eq!(
            ids[0],
            drift_id_of("field_mismatch\u{1f}T-1\u{1f}ERP-1\u{1f}amount\u{1f}")
        );
        assert_eq!(
            ids[2],
            drift_id_of("unlinked_contract\u{1f}T-2\u{1f}\u{1f}\u{1f}")
        );
        assert_eq!(
            ids[3],
            drift_id_of("link_conflict\u{1f}T-3\u{1f}ERP-3\u{1f}\u{1f}ERP-8")
        );
        assert_eq!(ids[0].len(), 16);
    }
}
