//! Reconciliation: the 1:1 linked pairs, the only pairs whose fields are
//! compared, with one mismatch flag per compared field and for the document.

use super::compare::add_mismatch;
use super::link::{is_key_pointer_source, key_source, KEY_NAMES};
use super::normalize::trimmed;
use super::spec::{CompareKind, CompareSpec, ReconcileSpec};
use super::ReconcileError;
use polars::prelude::*;

/// The 1:1 linked pairs that have something to report: one mismatch flag
/// `m_<i>` per compared field and `m_doc` for the document check, keeping only
/// rows where a flag is set (`c_idx`, `r_idx` and the flags). The raw values
/// shown in reports are looked up afterwards for these few rows, so the 1:1
/// pairs themselves are never kept with every compared column.
pub fn one_to_one_pairs(
    contracts: &DataFrame,
    records: &DataFrame,
    links: &DataFrame,
    spec: &ReconcileSpec,
) -> Result<DataFrame, ReconcileError> {
    let reused: Vec<Option<&str>> = spec
        .compares
        .iter()
        .map(|c| key_of_compare(c, spec))
        .collect();
    let mut c_cols = vec![
        col("c_idx"),
        col("c_status"),
        col("c_doc"),
        col("c_kp_fetched"),
        col("c_doc_fetched"),
    ];
    let mut r_cols = vec![col("r_idx"), col("r_doc")];
    r_cols.extend((0..spec.compares.len()).map(|i| col(format!("r_bad_{i}"))));
    for (i, key) in reused.iter().enumerate() {
        let (c, r) = match key {
            Some(key) => (format!("c_{key}_key"), format!("r_{key}_key")),
            None => (format!("c_cmp_{i}"), format!("r_cmp_{i}")),
        };
        if !c_cols.contains(&col(c.as_str())) {
            c_cols.push(col(c.as_str()));
            r_cols.push(col(r.as_str()));
        }
    }
    let inner = || JoinArgs::new(JoinType::Inner);
    let mut pairs = one_to_one(links)
        .select([col("c_idx"), col("r_idx")])
        .join(
            contracts.clone().lazy().select(c_cols),
            [col("c_idx")],
            [col("c_idx")],
            inner(),
        )
        .join(
            records.clone().lazy().select(r_cols),
            [col("r_idx")],
            [col("r_idx")],
            inner(),
        );
    let mut flags = Vec::new();
    for (i, cmp) in spec.compares.iter().enumerate() {
        let flag = format!("m_{i}");
        pairs = match reused[i] {
            // Already normalized the same way as a linking key: compare the keys.
            Some(key) => pairs.with_column(
                col(format!("c_{key}_key"))
                    .eq_missing(col(format!("r_{key}_key")))
                    .not()
                    .alias(flag.as_str()),
            ),
            None => add_mismatch(
                pairs,
                &cmp.kind,
                &format!("c_cmp_{i}"),
                &format!("r_cmp_{i}"),
                &flag,
            ),
        };
        // An unusable ERP value is reported as such, never compared on a guess.
        let mut compared = col(format!("r_bad_{i}")).not();
        if is_key_pointer_source(&cmp.spotdraft_column) {
            // Metadata values never fetched for this contract: nothing to compare.
            compared = compared.and(col("c_kp_fetched"));
        }
        pairs = pairs.with_column(col(flag.as_str()).and(compared).alias(flag.as_str()));
        flags.push(flag);
    }
    // Checksums are compared trimmed and case-insensitively: an executed contract
    // whose record has none, or (when the snapshot has one, fetched) a different
    // one. Each normalized once into a column, then compared by reference.
    let m_doc = if spec.check_documents {
        let hex = |c: &str| trimmed(col(c)).str().to_lowercase().alias(c);
        pairs = pairs.with_columns([hex("c_doc"), hex("r_doc")]);
        let lacking = col("r_doc").is_null().or(col("c_doc_fetched")
            .and(col("c_doc").is_not_null())
            .and(col("c_doc").neq(col("r_doc"))));
        col("c_status").eq(lit("EXECUTED")).and(lacking)
    } else {
        lit(false)
    };
    pairs = pairs.with_column(m_doc.alias("m_doc"));
    flags.push("m_doc".into());
    let any = flags
        .iter()
        .map(|f| col(f.as_str()).fill_null(lit(false)))
        .reduce(|a, b| a.or(b))
        .unwrap_or(lit(false));
    let mut keep = vec![col("c_idx"), col("r_idx")];
    keep.extend(flags.iter().map(|f| col(f.as_str())));
    Ok(pairs.filter(any).select(keep).collect()?)
}

/// Links that are the only link of their contract and of their record.
pub(crate) fn one_to_one(links: &DataFrame) -> LazyFrame {
    links
        .clone()
        .lazy()
        .filter(col("n_c").eq(lit(1)).and(col("n_r").eq(lit(1))))
}

/// Number of 1:1 linked pairs (the pairs whose fields are compared).
pub fn one_to_one_count(links: &DataFrame) -> Result<u64, ReconcileError> {
    Ok(one_to_one(links).collect()?.height() as u64)
}

/// Comparisons skipped because SpotDraft's values were never fetched, over the
/// 1:1 pairs: `(contracts with at least one skipped, comparisons skipped)`. Each
/// `key_pointers.*` comparison of a contract without `key_pointers_fetched_at`
/// counts one, and the checksum comparison of an executed contract without
/// `document_fetched_at` one (when documents are checked).
pub fn not_enriched_counts(
    contracts: &DataFrame,
    links: &DataFrame,
    spec: &ReconcileSpec,
) -> Result<(u64, u64), ReconcileError> {
    let kp_compares = spec
        .compares
        .iter()
        .filter(|c| is_key_pointer_source(&c.spotdraft_column))
        .count() as u64;
    let kp = when(col("c_kp_fetched"))
        .then(lit(0u64))
        .otherwise(lit(kp_compares));
    let doc = when(
        lit(spec.check_documents)
            .and(col("c_status").eq(lit("EXECUTED")))
            .and(col("c_doc_fetched").not()),
    )
    .then(lit(1u64))
    .otherwise(lit(0u64));
    let counts = one_to_one(links)
        .select([col("c_idx")])
        .join(
            contracts.clone().lazy().select([
                col("c_idx"),
                col("c_status"),
                col("c_kp_fetched"),
                col("c_doc_fetched"),
            ]),
            [col("c_idx")],
            [col("c_idx")],
            JoinArgs::new(JoinType::Inner),
        )
        .select([(kp + doc).alias("skipped")])
        .select([
            col("skipped")
                .gt(lit(0u64))
                .sum()
                .cast(DataType::UInt64)
                .alias("contracts"),
            col("skipped")
                .sum()
                .cast(DataType::UInt64)
                .alias("comparisons"),
        ])
        .collect()?;
    let get = |name: &str| -> Result<u64, ReconcileError> {
        Ok(counts.column(name)?.u64()?.get(0).unwrap_or(0))
    };
    Ok((get("contracts")?, get("comparisons")?))
}

/// The linking key a string comparison duplicates (same contract column, same ERP
/// column, same normalization), if any: its prepared key columns hold the very
/// values the comparison would compute.
fn key_of_compare(cmp: &CompareSpec, spec: &ReconcileSpec) -> Option<&'static str> {
    let CompareKind::String { normalize } = &cmp.kind else {
        return None;
    };
    KEY_NAMES.into_iter().find(|&key| {
        cmp.erp_column == key
            && key_source(spec, key).is_some_and(|src| {
                src.column == cmp.spotdraft_column && &src.normalize == normalize
            })
    })
}
