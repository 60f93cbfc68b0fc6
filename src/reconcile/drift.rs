//! Reconciliation: classifies drift from the materialized contracts, records and
//! links, and assembles the sorted drift table.

use super::compare::add_mismatch;
use super::link::{is_key_pointer_source, key_source, KEY_NAMES};
use super::normalize::{null_str, trimmed};
use super::orphans::known_contract_keys;
use super::spec::{kinds, CompareKind, CompareSpec, ReconcileSpec, Severity};
use super::{ReconcileError, RunContext};
use polars::prelude::*;

/// Columns of the drift table, in order.
pub const DRIFT_COLUMNS: [&str; 14] = [
    "run_id",
    "job",
    "detected_at",
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
];

/// The action a person takes for each non-field drift kind.
pub mod actions {
    /// `field_mismatch`.
    pub const UPDATE_ERP_FIELD: &str = "update_erp_field";
    /// `missing_document`.
    pub const PUSH_EXECUTED_DOCUMENT: &str = "push_executed_document";
    /// `missing_in_erp`.
    pub const REVIEW_ERP_LINK: &str = "review_erp_link";
    /// `orphan_erp_record`.
    pub const REVIEW_ORPHAN_ERP_RECORD: &str = "review_orphan_erp_record";
    /// `unlinked_contract` with exactly one linked record.
    pub const SET_SPOTDRAFT_EXTERNAL_METADATA_ID: &str = "set_spotdraft_external_metadata_id";
    /// `unlinked_contract` without a record.
    pub const LINK_OR_CREATE_ERP_RECORD: &str = "link_or_create_erp_record";
    /// `duplicate_link`.
    pub const RESOLVE_DUPLICATE_LINK: &str = "resolve_duplicate_link";
}

fn kind_cols(kind: &str, spec: &ReconcileSpec) -> [Expr; 3] {
    let ord = kinds::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(kinds::ALL.len()) as u32;
    let severity = spec
        .kind_severity
        .get(kind)
        .copied()
        .unwrap_or(Severity::Medium);
    [
        lit(ord).alias("kind_ord"),
        lit(kind).alias("drift_kind"),
        lit(severity.as_str()).alias("severity"),
    ]
}

fn with_kind(lf: LazyFrame, kind: &str, spec: &ReconcileSpec, action: Expr) -> LazyFrame {
    let mut cols = kind_cols(kind, spec).to_vec();
    cols.push(action.alias("proposed_action"));
    lf.with_columns(cols)
}

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
        if is_key_pointer_source(&cmp.spotdraft_column) {
            // Metadata values never fetched for this contract: nothing to compare.
            pairs = pairs.with_column(
                col(flag.as_str())
                    .and(col("c_kp_fetched"))
                    .alias(flag.as_str()),
            );
        }
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
fn one_to_one(links: &DataFrame) -> LazyFrame {
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

/// Drift rows of every kind, as lazy pieces over the materialized frames.
/// `known`: keys (`k`) of contracts known to exist outside the snapshot.
fn pieces(
    contracts: &DataFrame,
    records: &DataFrame,
    links: &DataFrame,
    pairs: &DataFrame,
    spec: &ReconcileSpec,
    known: LazyFrame,
) -> Vec<LazyFrame> {
    let c = || contracts.clone().lazy();
    let r = || records.clone().lazy();
    let l = || links.clone().lazy();
    let left = || JoinArgs::new(JoinType::Left);
    let anti = || JoinArgs::new(JoinType::Anti);
    let mut out = Vec::new();

    let unlinked = c()
        .filter(col("c_in_scope").and(col("c_erp_key").is_null()))
        .select([col("c_idx")])
        .join(
            l().filter(col("n_c").eq(lit(1)))
                .select([col("c_idx"), col("r_idx")]),
            [col("c_idx")],
            [col("c_idx")],
            left(),
        );
    let action = when(col("r_idx").is_not_null())
        .then(lit(actions::SET_SPOTDRAFT_EXTERNAL_METADATA_ID))
        .otherwise(lit(actions::LINK_OR_CREATE_ERP_RECORD));
    // This piece carries every optional column, so the diagonal concat always has them.
    let unlinked = unlinked.with_columns(
        [
            "contract_override",
            "erp_override",
            "field",
            "spotdraft_value",
            "erp_value",
        ]
        .map(|n| null_str().alias(n)),
    );
    out.push(with_kind(unlinked, kinds::UNLINKED_CONTRACT, spec, action));

    let missing = c()
        .filter(col("c_in_scope").and(col("c_erp_key").is_not_null()))
        .select([col("c_idx"), col("c_erp_key"), col("c_erp_raw")])
        .join(
            r().select([col("r_erp_key")])
                .filter(col("r_erp_key").is_not_null()),
            [col("c_erp_key")],
            [col("r_erp_key")],
            anti(),
        )
        .select([col("c_idx"), col("c_erp_raw").alias("erp_override")]);
    out.push(with_kind(
        missing,
        kinds::MISSING_IN_ERP,
        spec,
        lit(actions::REVIEW_ERP_LINK),
    ));

    let alive = |key: &str| {
        c().filter(col("c_deleted").not().and(col(key).is_not_null()))
            .select([col(key).alias("k")])
    };
    let orphans = r()
        .filter(col("r_back_key").is_not_null())
        .select([col("r_idx"), col("r_back_key"), col("r_back_raw")])
        .join(alive("c_id_key"), [col("r_back_key")], [col("k")], anti())
        .join(alive("c_num_key"), [col("r_back_key")], [col("k")], anti())
        .join(known, [col("r_back_key")], [col("k")], anti())
        .select([col("r_idx"), col("r_back_raw").alias("contract_override")]);
    out.push(with_kind(
        orphans,
        kinds::ORPHAN_ERP_RECORD,
        spec,
        lit(actions::REVIEW_ORPHAN_ERP_RECORD),
    ));

    let duplicates = l()
        .filter(col("n_c").gt(lit(1)).or(col("n_r").gt(lit(1))))
        .select([col("c_idx"), col("r_idx")]);
    out.push(with_kind(
        duplicates,
        kinds::DUPLICATE_LINK,
        spec,
        lit(actions::RESOLVE_DUPLICATE_LINK),
    ));

    let ord = kinds::ALL
        .iter()
        .position(|k| *k == kinds::FIELD_MISMATCH)
        .unwrap_or(0) as u32;
    for (i, cmp) in spec.compares.iter().enumerate() {
        let (sd, erp) = (format!("c_cmp_{i}"), format!("r_cmp_{i}"));
        let rows = pairs.clone().lazy().filter(col(format!("m_{i}"))).select([
            col("c_idx"),
            col("r_idx"),
            lit(ord).alias("kind_ord"),
            lit(kinds::FIELD_MISMATCH).alias("drift_kind"),
            lit(cmp.severity.as_str()).alias("severity"),
            lit(cmp.field.as_str()).alias("field"),
            col(sd.as_str()).alias("spotdraft_value"),
            col(erp.as_str()).alias("erp_value"),
            lit(actions::UPDATE_ERP_FIELD).alias("proposed_action"),
        ]);
        out.push(rows);
    }

    if spec.check_documents {
        let docs = pairs
            .clone()
            .lazy()
            .filter(col("m_doc"))
            .select([col("c_idx"), col("r_idx")]);
        out.push(with_kind(
            docs,
            kinds::MISSING_DOCUMENT,
            spec,
            lit(actions::PUSH_EXECUTED_DOCUMENT),
        ));
    }
    out
}

/// The flagged pairs with the raw compared values (`c_cmp_<i>`, `r_cmp_<i>`) that
/// field rows show: two joins for all fields, on the few flagged rows only.
fn with_raw_values(
    pairs: &DataFrame,
    contracts: &DataFrame,
    records: &DataFrame,
    spec: &ReconcileSpec,
) -> Result<DataFrame, ReconcileError> {
    let n = spec.compares.len();
    let mut c_cols = vec![col("c_idx")];
    c_cols.extend((0..n).map(|i| col(format!("c_cmp_{i}"))));
    let mut r_cols = vec![col("r_idx")];
    r_cols.extend((0..n).map(|i| col(format!("r_cmp_{i}"))));
    Ok(with_details(pairs.clone().lazy(), contracts, records, c_cols, r_cols).collect()?)
}

/// `lf` with columns of the contract (by `c_idx`) and of the record (by `r_idx`)
/// each row names; either may be absent (left joins).
fn with_details(
    lf: LazyFrame,
    contracts: &DataFrame,
    records: &DataFrame,
    c_cols: Vec<Expr>,
    r_cols: Vec<Expr>,
) -> LazyFrame {
    let left = || JoinArgs::new(JoinType::Left);
    lf.join(
        contracts.clone().lazy().select(c_cols),
        [col("c_idx")],
        [col("c_idx")],
        left(),
    )
    .join(
        records.clone().lazy().select(r_cols),
        [col("r_idx")],
        [col("r_idx")],
        left(),
    )
}

/// The drift table: every kind, joined to contract and record details, with the
/// run columns, sorted by kind (report order), contract id, record id, field.
/// Rows are unique on all their columns: identical rows (two ERP rows with one
/// record id linked to one contract, say) are kept once, in sorted order.
pub fn drift_table(
    contracts: &DataFrame,
    records: &DataFrame,
    links: &DataFrame,
    pairs: &DataFrame,
    spec: &ReconcileSpec,
    ctx: &RunContext,
) -> Result<DataFrame, ReconcileError> {
    let known = known_contract_keys(&ctx.known_existing_contract_ids, spec)?;
    let args = UnionArgs {
        to_supertypes: true,
        ..Default::default()
    };
    let flagged = with_raw_values(pairs, contracts, records, spec)?;
    let all = concat_lf_diagonal(
        pieces(contracts, records, links, &flagged, spec, known),
        args,
    )?;
    let c_cols = [
        col("c_idx"),
        col("c_id"),
        col("c_vendor_id"),
        col("c_po_number"),
        col("c_legal_entity_id"),
    ];
    let r_cols = [
        col("r_idx"),
        col("r_erp_raw"),
        col("r_vendor_id"),
        col("r_po_number"),
        col("r_legal_entity_id"),
    ];
    let text = |name: &str| col(name).cast(DataType::String);
    let either = |a: &str, b: &str| when(text(a).is_not_null()).then(text(a)).otherwise(text(b));
    let sort = SortMultipleOptions::default()
        .with_nulls_last(false)
        .with_maintain_order(true);
    let df = with_details(all, contracts, records, c_cols.to_vec(), r_cols.to_vec())
        .select([
            col("kind_ord"),
            lit(ctx.run_id.as_str()).alias("run_id"),
            lit(ctx.job.as_str()).alias("job"),
            lit(ctx.detected_at.as_str()).alias("detected_at"),
            text("drift_kind"),
            text("severity"),
            either("contract_override", "c_id").alias("contract_id"),
            either("erp_override", "r_erp_raw").alias("erp_record_id"),
            either("c_legal_entity_id", "r_legal_entity_id").alias("legal_entity_id"),
            either("c_vendor_id", "r_vendor_id").alias("vendor_id"),
            either("c_po_number", "r_po_number").alias("po_number"),
            text("field"),
            text("spotdraft_value"),
            text("erp_value"),
            text("proposed_action"),
        ])
        .sort(["kind_ord", "contract_id", "erp_record_id", "field"], sort)
        .select(DRIFT_COLUMNS.map(col))
        .unique_stable(None, UniqueKeepStrategy::First)
        .collect()?;
    Ok(df)
}

/// `(value, count)` of one column of `df`, counted in Polars.
pub fn count_by(df: &DataFrame, column: &str) -> Result<Vec<(String, u64)>, ReconcileError> {
    let counts = df
        .clone()
        .lazy()
        .group_by([col(column)
            .cast(DataType::String)
            .fill_null(lit(""))
            .alias("v")])
        .agg([len().cast(DataType::UInt64).alias("n")])
        .collect()?;
    let values = counts.column("v")?.str()?.clone();
    let ns = counts.column("n")?.u64()?.clone();
    Ok(values
        .iter()
        .zip(ns.iter())
        .map(|(v, n)| (v.unwrap_or_default().to_string(), n.unwrap_or(0)))
        .collect())
}
