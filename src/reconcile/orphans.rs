//! Reconciliation: which contracts ERP back-references may name without being
//! orphans. A back-reference names a live contract of the snapshot, or one of
//! the contracts the caller knows to exist outside it (a `status_filter` walk
//! leaves contracts in other statuses out of the snapshot).
//!
//! The runner asks [`orphan_candidates`] which contract ids to look up in
//! SpotDraft, looks them up, and passes the ones that exist as
//! [`super::RunContext::known_existing_contract_ids`]. Both sides are matched
//! under the back-reference normalization, composite (`T-123`) or integer
//! (`123`) form.

use super::normalize::{normalize_key, trimmed};
use super::spec::ReconcileSpec;
use super::ReconcileError;
use polars::prelude::*;

/// The integer part of a contract id, as SpotDraft numbers contracts:
/// `T-123` -> `123`, `123` -> `123`; `None` when there is none.
fn integer_part(id: &str) -> Option<String> {
    let id = id.trim();
    let digits = id.split_once('-').map_or(id, |(_, n)| n);
    digits.parse::<i64>().ok().map(|n| n.to_string())
}

/// Keys (column `k`) under which a back-reference names one of `ids`: each id
/// normalized like back-references, and its integer part.
pub fn known_contract_keys(ids: &[String], spec: &ReconcileSpec) -> PolarsResult<LazyFrame> {
    let numbers: Vec<Option<String>> = ids.iter().map(|id| integer_part(id)).collect();
    let frame = df!("id" => ids, "num" => numbers)?.lazy();
    let back = &spec.keys.spotdraft_contract_id_normalize;
    concat(
        [
            frame
                .clone()
                .select([normalize_key(col("id"), back).alias("k")]),
            frame.select([col("num").alias("k")]),
        ],
        UnionArgs::default(),
    )
    .map(|keys| {
        keys.filter(col("k").is_not_null())
            .unique(None, UniqueKeepStrategy::Any)
    })
}

/// The contract ids ERP records name that are not live in `snapshot` (absent,
/// or present with `deleted_at` set): the back-references that would be
/// `orphan_erp_record` unless SpotDraft knows the contract. Distinct, trimmed,
/// as the records write them, sorted. Empty when the extract has no
/// `spotdraft_contract_id` column.
///
/// `snapshot` needs `id`, `contract_num` and `deleted_at`; `erp` is what
/// [`super::reconcile`] takes. Runs Polars `collect`: call it from a blocking
/// thread (or a multi-thread runtime), not from a current-thread tokio runtime.
pub fn orphan_candidates(
    snapshot: &DataFrame,
    erp: &DataFrame,
    spec: &ReconcileSpec,
) -> Result<Vec<String>, ReconcileError> {
    let schema = snapshot.schema();
    if let Some(column) = ["id", "contract_num", "deleted_at"]
        .into_iter()
        .find(|c| !schema.contains(c))
    {
        return Err(ReconcileError::MissingSnapshotColumn {
            column: column.to_string(),
            available: schema.iter_names().map(|n| n.to_string()).collect(),
        });
    }
    if !erp.schema().contains("spotdraft_contract_id") {
        return Ok(Vec::new());
    }
    let back = &spec.keys.spotdraft_contract_id_normalize;
    let live = snapshot
        .clone()
        .lazy()
        .filter(trimmed(col("deleted_at").cast(DataType::String)).is_null());
    let live_keys = concat(
        [
            live.clone()
                .select([normalize_key(col("id"), back).alias("k")]),
            live.select([col("contract_num").cast(DataType::String).alias("k")]),
        ],
        UnionArgs::default(),
    )?
    .filter(col("k").is_not_null());
    let named = erp
        .clone()
        .lazy()
        .select([
            trimmed(col("spotdraft_contract_id")).alias("raw"),
            normalize_key(col("spotdraft_contract_id"), back).alias("key"),
        ])
        .filter(col("key").is_not_null().and(col("raw").is_not_null()))
        .join(
            live_keys,
            [col("key")],
            [col("k")],
            JoinArgs::new(JoinType::Anti),
        )
        .select([col("raw")])
        .unique(None, UniqueKeepStrategy::Any)
        .sort(["raw"], SortMultipleOptions::default())
        .collect()?;
    let raw = named.column("raw")?.str()?;
    Ok(raw.iter().flatten().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_part_follows_spotdraft_numbering() {
        assert_eq!(integer_part("T-123").as_deref(), Some("123"));
        assert_eq!(integer_part(" 123 ").as_deref(), Some("123"));
        assert_eq!(integer_part("H-0042").as_deref(), Some("42"));
        assert_eq!(integer_part("T-12a"), None);
        assert_eq!(integer_part(""), None);
    }
}
