//! Reconciliation: classifies drift from the materialized contracts, records and
//! links, and assembles the sorted drift table.

use super::conflict::link_conflicts;
use super::identity::with_drift_id;
use super::link::unusable_fields;
use super::normalize::null_str;
use super::orphans::known_contract_keys;
use super::spec::{kinds, ReconcileSpec, Severity};
use super::{ReconcileError, RunContext};
use polars::prelude::*;

/// Columns of the drift table, in order. Columns are only ever added, at the
/// end (readers combine runs by name).
pub const DRIFT_COLUMNS: [&str; 15] = [
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
    super::identity::DRIFT_ID,
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
    /// `unlinked_contract` with exactly one linked record; `link_conflict` when
    /// the contract names an absent record and one other record names it back.
    pub const SET_SPOTDRAFT_EXTERNAL_METADATA_ID: &str = "set_spotdraft_external_metadata_id";
    /// `link_conflict` when the contract's record exists and one other record's
    /// back-reference names the contract: that back-reference is stale.
    pub const UPDATE_ERP_BACK_REFERENCE: &str = "update_erp_back_reference";
    /// `link_conflict` otherwise (several records, or a record claimed twice).
    pub const REVIEW_LINK_CONFLICT: &str = "review_link_conflict";
    /// `unlinked_contract` without a record.
    pub const LINK_OR_CREATE_ERP_RECORD: &str = "link_or_create_erp_record";
    /// `duplicate_link`.
    pub const RESOLVE_DUPLICATE_LINK: &str = "resolve_duplicate_link";
    /// `missing_in_spotdraft`: create the contract (`[create]`).
    pub const CREATE_SPOTDRAFT_CONTRACT: &str = "create_spotdraft_contract";
    /// `unusable_erp_value`: correct the value in the ERP (SpotDraft's value is
    /// shown when a compared field reads it); nothing is written automatically.
    pub const FIX_ERP_VALUE: &str = "fix_erp_value";
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

    let conflicts = link_conflicts(contracts, records, links);
    // A conflict that says which id to write on the contract replaces its
    // `missing_in_erp`: one actionable row instead of two.
    let resolved = conflicts
        .clone()
        .filter(col("proposed_action").eq(lit(actions::SET_SPOTDRAFT_EXTERNAL_METADATA_ID)))
        .select([col("c_idx")]);
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
        .join(resolved, [col("c_idx")], [col("c_idx")], anti())
        .select([col("c_idx"), col("c_erp_raw").alias("erp_override")]);
    out.push(with_kind(
        missing,
        kinds::MISSING_IN_ERP,
        spec,
        lit(actions::REVIEW_ERP_LINK),
    ));
    let conflicts = conflicts.with_columns(kind_cols(kinds::LINK_CONFLICT, spec));
    out.push(conflicts);

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

    // The record's one contract, when it links to exactly one.
    let only_contract = || {
        l().filter(col("n_r").eq(lit(1)))
            .select([col("c_idx"), col("r_idx")])
    };
    for f in unusable_fields(records) {
        let rows = r()
            .filter(col(format!("r_unusable_{f}")))
            .select([
                col("r_idx"),
                lit(f.as_str()).alias("field"),
                col(format!("r_value_{f}")).alias("erp_value"),
            ])
            .join(only_contract(), [col("r_idx")], [col("r_idx")], left());
        // SpotDraft's value of the first compared field that reads it: what the
        // ERP value should most likely be.
        let rows = match spec.compares.iter().position(|c| c.erp_column == f) {
            Some(i) => rows.join(
                c().select([
                    col("c_idx"),
                    col(format!("c_cmp_{i}")).alias("spotdraft_value"),
                ]),
                [col("c_idx")],
                [col("c_idx")],
                left(),
            ),
            None => rows.with_column(null_str().alias("spotdraft_value")),
        };
        out.push(with_kind(
            rows,
            kinds::UNUSABLE_ERP_VALUE,
            spec,
            lit(actions::FIX_ERP_VALUE),
        ));
    }

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

    if spec.needs_contract.is_some() {
        out.push(with_kind(
            missing_in_spotdraft(contracts, records, spec),
            kinds::MISSING_IN_SPOTDRAFT,
            spec,
            lit(actions::CREATE_SPOTDRAFT_CONTRACT),
        ));
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

/// Records that need a contract, name none, and that no live contract of any
/// status links to by id or by the fallback key (`r_idx`).
fn missing_in_spotdraft(
    contracts: &DataFrame,
    records: &DataFrame,
    spec: &ReconcileSpec,
) -> LazyFrame {
    let anti = || JoinArgs::new(JoinType::Anti);
    let live = contracts.clone().lazy().filter(col("c_deleted").not());
    let mut needing = records
        .clone()
        .lazy()
        .filter(col("r_needs_contract").and(col("r_back_key").is_null()))
        .join(
            live.clone()
                .select([col("c_erp_key")])
                .filter(col("c_erp_key").is_not_null()),
            [col("r_erp_key")],
            [col("c_erp_key")],
            anti(),
        );
    if !spec.fallback_key.is_empty() {
        let c_on: Vec<Expr> = spec
            .fallback_key
            .iter()
            .map(|k| col(format!("c_{k}_key")))
            .collect();
        let r_on: Vec<Expr> = spec
            .fallback_key
            .iter()
            .map(|k| col(format!("r_{k}_key")))
            .collect();
        let set = c_on
            .iter()
            .cloned()
            .map(|c| c.is_not_null())
            .reduce(|a, b| a.and(b))
            .unwrap_or(lit(true));
        needing = needing.join(live.select(c_on.clone()).filter(set), r_on, c_on, anti());
    }
    needing.select([col("r_idx")])
}

/// The flagged pairs with the raw compared values (`c_cmp_<i>`, `r_cmp_<i>`) that
/// field rows show, gathered by row index for the few flagged rows only.
fn with_raw_values(
    pairs: &DataFrame,
    contracts: &DataFrame,
    records: &DataFrame,
    spec: &ReconcileSpec,
) -> Result<DataFrame, ReconcileError> {
    let n = spec.compares.len();
    let c_cols: Vec<String> = (0..n).map(|i| format!("c_cmp_{i}")).collect();
    let r_cols: Vec<String> = (0..n).map(|i| format!("r_cmp_{i}")).collect();
    with_details(pairs.clone(), contracts, records, &c_cols, &r_cols)
}

/// `df` with columns `c_cols` of the contract each row names (`c_idx`, the
/// contract frame's row index) and `r_cols` of the record (`r_idx`); either
/// index may be null or absent, and then so are the details. A gather by row
/// index: no hash join over the whole contract or record frame.
fn with_details(
    mut df: DataFrame,
    contracts: &DataFrame,
    records: &DataFrame,
    c_cols: &[String],
    r_cols: &[String],
) -> Result<DataFrame, ReconcileError> {
    for (idx, frame, cols) in [("c_idx", contracts, c_cols), ("r_idx", records, r_cols)] {
        let details = match df.column(idx) {
            Ok(at) => gather(frame, cols, at)?,
            Err(_) => {
                let nulls = cols
                    .iter()
                    .map(|c| {
                        let dtype = frame.column(c)?.dtype().clone();
                        Ok(Column::full_null(c.as_str().into(), df.height(), &dtype))
                    })
                    .collect::<PolarsResult<Vec<_>>>()?;
                DataFrame::new(df.height(), nulls)?
            }
        };
        df.hstack_mut(details.columns())?;
    }
    Ok(df)
}

/// Columns `cols` of `frame` at the row indices `at` (a null index gives a null row).
pub(crate) fn gather(
    frame: &DataFrame,
    cols: &[String],
    at: &Column,
) -> Result<DataFrame, ReconcileError> {
    let at = at.cast(&IDX_DTYPE)?;
    Ok(frame.select(cols.iter().cloned())?.take(at.idx()?)?)
}

/// The drift table: every kind, joined to contract and record details, with the
/// run columns, sorted by kind (report order), contract id, record id, field,
/// ERP value and SpotDraft value.
/// Rows are unique on all their columns: identical rows (two ERP rows with one
/// record id linked to one contract, say) are kept once, in sorted order. The
/// last column, `drift_id`, is the row's identity across runs (see [`super::identity`]).
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
    )?
    .collect()?;
    let names = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let c_cols = names(&["c_id", "c_vendor_id", "c_po_number", "c_legal_entity_id"]);
    let r_cols = names(&[
        "r_erp_raw",
        "r_vendor_id",
        "r_po_number",
        "r_legal_entity_id",
    ]);
    let text = |name: &str| col(name).cast(DataType::String);
    let either = |a: &str, b: &str| when(text(a).is_not_null()).then(text(a)).otherwise(text(b));
    let sort = SortMultipleOptions::default()
        .with_nulls_last(false)
        .with_maintain_order(true);
    let df = with_details(all, contracts, records, &c_cols, &r_cols)?
        .lazy()
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
        .sort(
            [
                "kind_ord",
                "contract_id",
                "erp_record_id",
                "field",
                "erp_value",
                "spotdraft_value",
            ],
            sort,
        )
        .select(
            DRIFT_COLUMNS[..DRIFT_COLUMNS.len() - 1]
                .iter()
                .map(|c| col(*c))
                .collect::<Vec<_>>(),
        )
        .unique_stable(None, UniqueKeepStrategy::First)
        .collect()?;
    with_drift_id(df, spec)
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
