//! Reconciliation: the 1:1 linked pairs, the only pairs whose fields are
//! compared, with one mismatch flag per compared field and for the document.

use super::compare::add_mismatch;
use super::drift::gather;
use super::link::{is_key_pointer_source, key_source, KEY_NAMES};
use super::normalize::{map_distinct, trimmed, trimmed_upper};
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
    let mut c_cols: Vec<String> = [
        "c_idx",
        "c_status",
        "c_doc",
        "c_kp_fetched",
        "c_doc_fetched",
    ]
    .map(String::from)
    .to_vec();
    let mut r_cols: Vec<String> = vec!["r_idx".into(), "r_doc".into()];
    r_cols.extend((0..spec.compares.len()).map(|i| format!("r_bad_{i}")));
    for (i, key) in reused.iter().enumerate() {
        let (c, r) = match key {
            Some(key) => (format!("c_{key}_key"), format!("r_{key}_key")),
            None => (format!("c_cmp_{i}"), format!("r_cmp_{i}")),
        };
        if !c_cols.contains(&c) {
            c_cols.push(c);
            r_cols.push(r);
        }
    }
    // The 1:1 links' contract and record columns, gathered by row index.
    let at = one_to_one(links)
        .select([col("c_idx"), col("r_idx")])
        .collect()?;
    // In chunks of pairs, so the gathered columns of every 1:1 pair are never
    // all in memory at once (7.3M pairs of 14 text columns: 1.6 GB).
    let executed = || col("c_status").eq(lit("EXECUTED"));
    let (mut flags, mut typed): (Vec<String>, Vec<usize>) = (Vec::new(), Vec::new());
    let mut candidates: Option<DataFrame> = None;
    let mut offset = 0;
    loop {
        let chunk = at.slice(offset as i64, PAIR_CHUNK);
        let mut frame = gather(contracts, &c_cols, chunk.column("c_idx")?)?;
        frame.hstack_mut(gather(records, &r_cols, chunk.column("r_idx")?)?.columns())?;
        // Two passes. Over every 1:1 pair, only cheap flags: key and string
        // comparisons, and for typed comparisons (numbers, decimals, dates) and the
        // document check whether the raw texts differ at all (equal texts always
        // compare equal). The typed parses then run on the few candidate rows only.
        let mut on_distinct = std::collections::HashMap::new();
        for (i, cmp) in spec.compares.iter().enumerate() {
            if let (None, CompareKind::Enum { values }) = (reused[i], &cmp.kind) {
                let (sd, erp) = (format!("c_cmp_{i}"), format!("r_cmp_{i}"));
                if let Some(m) = enum_mismatch_on_distinct(&frame, &sd, &erp, values)? {
                    on_distinct.insert(i, m);
                }
            }
        }
        let mut pairs = frame.lazy();
        flags.clear();
        typed.clear();
        for (i, cmp) in spec.compares.iter().enumerate() {
            let flag = format!("m_{i}");
            let (sd, erp) = (format!("c_cmp_{i}"), format!("r_cmp_{i}"));
            pairs = match (reused[i], &cmp.kind) {
                // Already normalized the same way as a linking key: compare the keys.
                (Some(key), _) => pairs.with_column(
                    col(format!("c_{key}_key"))
                        .eq_missing(col(format!("r_{key}_key")))
                        .not()
                        .alias(flag.as_str()),
                ),
                (
                    None,
                    CompareKind::Number { .. } | CompareKind::Decimal { .. } | CompareKind::Date,
                ) => {
                    typed.push(i);
                    pairs.with_column(
                        col(sd.as_str())
                            .eq_missing(col(erp.as_str()))
                            .not()
                            .alias(flag.as_str()),
                    )
                }
                (None, kind) => match on_distinct.remove(&i) {
                    Some(m) => pairs.with_column(m.alias(flag.as_str())),
                    None => add_mismatch(pairs, kind, &sd, &erp, &flag),
                },
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
        // one. Equal raw texts differ only when both are blank (the record has none).
        let m_doc = if spec.check_documents {
            let blank = col("r_doc").str().contains(lit(r"\S"), true).not();
            executed().and(
                col("r_doc")
                    .is_null()
                    .or(blank)
                    .or(col("c_doc").eq_missing(col("r_doc")).not()),
            )
        } else {
            lit(false)
        };
        pairs = pairs.with_column(m_doc.alias("m_doc"));
        flags.push("m_doc".into());
        let any = || {
            flags
                .iter()
                .map(|f| col(f.as_str()).fill_null(lit(false)))
                .reduce(|a, b| a.or(b))
                .unwrap_or(lit(false))
        };
        let found = pairs.filter(any()).collect()?;
        match candidates.as_mut() {
            None => candidates = Some(found),
            Some(all) => {
                all.vstack_mut(&found)?;
            }
        }
        offset += PAIR_CHUNK;
        if offset >= at.height() {
            break;
        }
    }
    let candidates = candidates.unwrap_or_default();
    let any = || {
        flags
            .iter()
            .map(|f| col(f.as_str()).fill_null(lit(false)))
            .reduce(|a, b| a.or(b))
            .unwrap_or(lit(false))
    };

    // Second pass, on the candidates: the typed comparisons and the document check.
    let mut pairs = candidates.lazy();
    for &i in &typed {
        let (flag, exact) = (format!("m_{i}"), format!("t_{i}"));
        let (sd, erp) = (format!("c_cmp_{i}"), format!("r_cmp_{i}"));
        pairs = add_mismatch(pairs, &spec.compares[i].kind, &sd, &erp, &exact).with_column(
            col(flag.as_str())
                .and(col(exact.as_str()))
                .alias(flag.as_str()),
        );
    }
    if spec.check_documents {
        // Each checksum normalized once into a column, then compared by reference.
        let hex = |c: &str| trimmed(col(c)).str().to_lowercase().alias(c);
        pairs = pairs.with_columns([hex("c_doc"), hex("r_doc")]);
        let lacking = col("r_doc").is_null().or(col("c_doc_fetched")
            .and(col("c_doc").is_not_null())
            .and(col("c_doc").neq(col("r_doc"))));
        pairs = pairs.with_column(col("m_doc").and(executed().and(lacking)).alias("m_doc"));
    }
    let mut keep = vec![col("c_idx"), col("r_idx")];
    keep.extend(flags.iter().map(|f| col(f.as_str())));
    Ok(pairs.filter(any()).select(keep).collect()?)
}

/// An enum comparison ([`add_mismatch`]'s rule) from lookups of the distinct
/// values of each side: the SpotDraft value becomes the ERP value it maps to
/// (trimmed, upper case; a marker that no trimmed text equals when it is not
/// in the map; null when absent), the ERP value is trimmed and upper-cased, and
/// the two are compared with nulls equal. `None` when a side has too many
/// distinct values for a lookup to pay.
fn enum_mismatch_on_distinct(
    frame: &DataFrame,
    sd: &str,
    erp: &str,
    values: &std::collections::BTreeMap<String, String>,
) -> Result<Option<Expr>, ReconcileError> {
    // A trimmed text never starts with white space.
    const UNMAPPED: &str = " unmapped";
    let map: std::collections::HashMap<String, String> = values
        .iter()
        .map(|(from, to)| (from.trim().to_uppercase(), to.trim().to_uppercase()))
        .collect();
    let expected = map_distinct(frame, sd, |v| {
        trimmed_upper(v).map(|u| map.get(&u).cloned().unwrap_or_else(|| UNMAPPED.into()))
    })?;
    let actual = map_distinct(frame, erp, trimmed_upper)?;
    Ok(expected
        .zip(actual)
        .map(|(expected, actual)| expected.neq_missing(actual)))
}

/// Pairs compared per chunk in [`one_to_one_pairs`].
const PAIR_CHUNK: usize = 1 << 20;

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
    let at = one_to_one(links).select([col("c_idx")]).collect()?;
    let cols = ["c_status", "c_kp_fetched", "c_doc_fetched"].map(String::from);
    let counts = gather(contracts, &cols, at.column("c_idx")?)?
        .lazy()
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
pub(crate) fn key_of_compare(cmp: &CompareSpec, spec: &ReconcileSpec) -> Option<&'static str> {
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
