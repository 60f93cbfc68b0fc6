//! Reconciliation: prepares the contract and record frames (normalized keys)
//! and links contracts to ERP records by id, back-reference and fallback key.
//!
//! Both prepared frames and the link table are materialized once; every drift
//! kind is derived from them, so no join is computed twice.

use super::normalize::{map_distinct, normalize_key, null_str, trimmed, trimmed_upper};
use super::spec::{
    unusable_flag, KeySource, ReconcileSpec, CANONICAL_ERP_FIELDS, UNUSABLE_FLAG_PREFIX,
};
use super::ReconcileError;
use polars::prelude::*;

/// The three key columns that may sit on both sides, by canonical name.
pub const KEY_NAMES: [&str; 3] = ["vendor_id", "po_number", "legal_entity_id"];

/// Link rule numbers in the `rule` column of the link table.
pub mod rule {
    /// Contract's ERP record id equals the record's id.
    pub const ID: i32 = 1;
    /// Record's back-reference names the contract.
    pub const BACK_REFERENCE: i32 = 2;
    /// Fallback composite key.
    pub const FALLBACK: i32 = 3;
}

/// The contract-side source of a key (`vendor_id`, `po_number`, `legal_entity_id`).
pub(crate) fn key_source<'a>(spec: &'a ReconcileSpec, name: &str) -> Option<&'a KeySource> {
    match name {
        "vendor_id" => spec.keys.vendor_id.as_ref(),
        "po_number" => spec.keys.po_number.as_ref(),
        "legal_entity_id" => spec.keys.legal_entity_id.as_ref(),
        _ => None,
    }
}

/// Whether the normalized key column `c_<name>_key` / `r_<name>_key` is read:
/// the key is part of the fallback key, or a string comparison reuses it.
/// Otherwise only the raw value is kept (reports show it), which saves the
/// normalization's string kernels over every row.
fn key_used(spec: &ReconcileSpec, name: &str) -> bool {
    spec.fallback_key.iter().any(|k| k == name)
        || spec
            .compares
            .iter()
            .any(|c| super::pairs::key_of_compare(c, spec) == Some(name))
}

/// Snapshot columns the engine reads, besides the spec's own.
const SNAPSHOT_BASE: [&str; 4] = ["id", "contract_num", "contract_status", "deleted_at"];

/// Snapshot columns the engine reads when present (see [`needed_snapshot_columns`]):
/// the executed document's checksum, and when the contract's metadata values and
/// document checksum were fetched (null: never, so those comparisons are skipped).
pub const OPTIONAL_SNAPSHOT_COLUMNS: [&str; 3] = [
    "document_sha256",
    KEY_POINTERS_FETCHED_AT,
    DOCUMENT_FETCHED_AT,
];

/// Snapshot column: when the contract's `key_pointers` were fetched (RFC 3339);
/// null means never, so `key_pointers.*` comparisons are skipped for it.
pub const KEY_POINTERS_FETCHED_AT: &str = "key_pointers_fetched_at";
/// Snapshot column: when the contract's executed-document checksum was fetched
/// (RFC 3339); null means never, so the checksum comparison is skipped for it.
pub const DOCUMENT_FETCHED_AT: &str = "document_fetched_at";

/// Whether a compared field's SpotDraft source is a metadata value (`key_pointers.*`),
/// fetched only when a contract is enriched.
pub fn is_key_pointer_source(column: &str) -> bool {
    column.starts_with("key_pointers.")
}

/// Snapshot columns the engine requires for `spec`. It also reads
/// [`OPTIONAL_SNAPSHOT_COLUMNS`] when present, so callers that load the
/// snapshot can project to these plus those.
pub fn needed_snapshot_columns(spec: &ReconcileSpec) -> Vec<String> {
    let mut needed: Vec<String> = SNAPSHOT_BASE.iter().map(|c| c.to_string()).collect();
    let keys = KEY_NAMES.iter().filter_map(|k| key_source(spec, k));
    let sources = std::iter::once(&spec.keys.erp_record_id)
        .chain(keys)
        .map(|s| s.column.clone())
        .chain(spec.compares.iter().map(|c| c.spotdraft_column.clone()));
    for column in sources {
        if !needed.contains(&column) {
            needed.push(column);
        }
    }
    needed
}

/// Checks that every snapshot column the spec names exists.
pub fn check_snapshot_columns(
    snapshot: &DataFrame,
    spec: &ReconcileSpec,
) -> Result<(), ReconcileError> {
    let schema = snapshot.schema();
    match needed_snapshot_columns(spec)
        .into_iter()
        .find(|c| !schema.contains(c))
    {
        None => Ok(()),
        Some(column) => Err(ReconcileError::MissingSnapshotColumn {
            column,
            available: schema.iter_names().map(|n| n.to_string()).collect(),
        }),
    }
}

/// Contract frame: `c_idx`, ids and keys, scope flags, enrichment flags
/// (`c_kp_fetched`, `c_doc_fetched`) and raw compared values (`c_cmp_<i>`).
pub fn prepare_contracts(
    snapshot: DataFrame,
    spec: &ReconcileSpec,
) -> Result<DataFrame, ReconcileError> {
    check_snapshot_columns(&snapshot, spec)?;
    let schema = snapshot.schema().clone();
    let has_doc = schema.contains("document_sha256");
    // Without the column every contract counts as fetched (older snapshots).
    let fetched = |column: &str| {
        if schema.contains(column) {
            trimmed(col(column).cast(DataType::String)).is_not_null()
        } else {
            lit(true)
        }
    };
    let back = &spec.keys.spotdraft_contract_id_normalize;
    // A handful of statuses: normalized once each, then looked up per row.
    let status = match map_distinct(&snapshot, "contract_status", trimmed_upper)? {
        Some(mapped) => mapped,
        None => trimmed(col("contract_status")).str().to_uppercase(),
    };
    let in_status = spec
        .statuses
        .iter()
        .map(|s| col("c_status").eq(lit(s.trim().to_uppercase())))
        .reduce(|a, b| a.or(b))
        .unwrap_or(lit(false))
        .fill_null(lit(false));
    let id_key = normalize_key(col("id"), back);
    // An integer's text has no spaces, case or leading zeros: nothing to normalize.
    let num_key = col("contract_num").cast(DataType::String);
    let erp = &spec.keys.erp_record_id;
    let mut exprs = vec![
        col("c_idx"),
        col("id").cast(DataType::String).alias("c_id"),
        id_key.clone().alias("c_id_key"),
        // The integer form, only when it differs from the composite id (`123` vs `123`).
        when(num_key.clone().eq_missing(id_key))
            .then(null_str())
            .otherwise(num_key)
            .alias("c_num_key"),
        status.alias("c_status"),
        trimmed(col("deleted_at").cast(DataType::String))
            .is_not_null()
            .alias("c_deleted"),
        col(erp.column.as_str())
            .cast(DataType::String)
            .alias("c_erp_raw"),
        normalize_key(col(erp.column.as_str()), &erp.normalize).alias("c_erp_key"),
        // Raw (shared with the snapshot, no copy): normalized only for the
        // executed pairs the document check reads.
        if has_doc {
            col("document_sha256").cast(DataType::String)
        } else {
            null_str()
        }
        .alias("c_doc"),
        fetched(KEY_POINTERS_FETCHED_AT).alias("c_kp_fetched"),
        fetched(DOCUMENT_FETCHED_AT).alias("c_doc_fetched"),
    ];
    for name in KEY_NAMES {
        let (raw, key) = match key_source(spec, name) {
            Some(src) if key_used(spec, name) => (
                col(src.column.as_str()).cast(DataType::String),
                normalize_key(col(src.column.as_str()), &src.normalize),
            ),
            Some(src) => (col(src.column.as_str()).cast(DataType::String), null_str()),
            None => (null_str(), null_str()),
        };
        exprs.push(raw.alias(format!("c_{name}")));
        exprs.push(key.alias(format!("c_{name}_key")));
    }
    for (i, c) in spec.compares.iter().enumerate() {
        exprs.push(
            col(c.spotdraft_column.as_str())
                .cast(DataType::String)
                .alias(format!("c_cmp_{i}")),
        );
    }
    let lf = snapshot
        .lazy()
        .with_row_index("c_idx", None)
        .select(exprs)
        .with_column(col("c_deleted").not().and(in_status).alias("c_in_scope"));
    Ok(lf.collect()?)
}

/// The canonical fields whose unusable-value flag (`_unusable_<field>`) the ERP
/// frame carries, in column order.
fn flagged_in(schema: &Schema) -> Vec<String> {
    schema
        .iter_names()
        .filter_map(|n| n.strip_prefix(UNUSABLE_FLAG_PREFIX))
        .filter(|f| CANONICAL_ERP_FIELDS.contains(f) && schema.contains(f))
        .map(str::to_string)
        .collect()
}

/// The canonical fields a prepared record frame has unusable-value columns for
/// (`r_unusable_<field>`, `r_value_<field>`).
pub fn unusable_fields(records: &DataFrame) -> Vec<String> {
    records
        .get_column_names()
        .iter()
        .filter_map(|n| n.strip_prefix("r_unusable_"))
        .map(str::to_string)
        .collect()
}

/// Record frame: `r_idx`, ids, back-reference, keys, raw compared values
/// (`r_cmp_<i>`) and whether each is unusable (`r_bad_<i>`), and per flagged
/// field its flag and raw value (`r_unusable_<field>`, `r_value_<field>`), and
/// `r_any_unusable`.
pub fn prepare_records(erp: DataFrame, spec: &ReconcileSpec) -> Result<DataFrame, ReconcileError> {
    let schema = erp.schema().clone();
    let flagged = flagged_in(&schema);
    let flag = |field: &str| {
        if flagged.iter().any(|f| f == field) {
            col(unusable_flag(field))
                .cast(DataType::Boolean)
                .fill_null(lit(false))
        } else {
            lit(false)
        }
    };
    let missing = |column: &str| ReconcileError::MissingErpColumn {
        column: column.to_string(),
        available: schema.iter_names().map(|n| n.to_string()).collect(),
    };
    if !schema.contains("erp_record_id") {
        return Err(missing("erp_record_id"));
    }
    if let Some(c) = spec
        .compares
        .iter()
        .find(|c| !schema.contains(&c.erp_column))
    {
        return Err(missing(&c.erp_column));
    }
    if let Some(rule) = spec
        .needs_contract
        .as_ref()
        .filter(|r| !schema.contains(&r.column))
    {
        return Err(missing(&rule.column));
    }
    let optional = |name: &str| {
        if schema.contains(name) {
            col(name).cast(DataType::String)
        } else {
            null_str()
        }
    };
    let mut exprs = vec![
        col("r_idx"),
        col("erp_record_id")
            .cast(DataType::String)
            .alias("r_erp_raw"),
        normalize_key(col("erp_record_id"), &spec.keys.erp_record_id.normalize).alias("r_erp_key"),
        optional("spotdraft_contract_id").alias("r_back_raw"),
        normalize_key(
            optional("spotdraft_contract_id"),
            &spec.keys.spotdraft_contract_id_normalize,
        )
        .alias("r_back_key"),
        optional("document_sha256").alias("r_doc"),
    ];
    for name in KEY_NAMES {
        let key = match key_source(spec, name) {
            Some(src) if key_used(spec, name) => normalize_key(optional(name), &src.normalize),
            _ => null_str(),
        };
        exprs.push(optional(name).alias(format!("r_{name}")));
        exprs.push(key.alias(format!("r_{name}_key")));
    }
    for (i, c) in spec.compares.iter().enumerate() {
        exprs.push(
            col(c.erp_column.as_str())
                .cast(DataType::String)
                .alias(format!("r_cmp_{i}")),
        );
        exprs.push(flag(&c.erp_column).alias(format!("r_bad_{i}")));
    }
    for f in &flagged {
        exprs.push(flag(f).alias(format!("r_unusable_{f}")));
        exprs.push(
            col(f.as_str())
                .cast(DataType::String)
                .alias(format!("r_value_{f}")),
        );
    }
    let any = flagged
        .iter()
        .map(|f| flag(f))
        .reduce(|a, b| a.or(b))
        .unwrap_or(lit(false));
    exprs.push(any.alias("r_any_unusable"));
    exprs.push(needs_contract(spec).alias("r_needs_contract"));
    Ok(erp
        .lazy()
        .with_row_index("r_idx", None)
        .select(exprs)
        .collect()?)
}

/// Whether a record needs a contract under the spec's rule (false without one):
/// its value trimmed, case-insensitively among the rule's values, or any
/// non-empty value when it lists none.
fn needs_contract(spec: &ReconcileSpec) -> Expr {
    let Some(rule) = &spec.needs_contract else {
        return lit(false);
    };
    let value = trimmed(col(rule.column.as_str()).cast(DataType::String))
        .str()
        .to_uppercase();
    let hit = if rule.values.is_empty() {
        value.is_not_null()
    } else {
        rule.values
            .iter()
            .map(|v| value.clone().eq(lit(v.trim().to_uppercase())))
            .reduce(|a, b| a.or(b))
            .unwrap_or(lit(false))
    };
    hit.fill_null(lit(false))
}

/// All links `(c_idx, r_idx, rule)` with `n_c` (links of the contract) and `n_r`
/// (links of the record), materialized once.
pub fn link(
    contracts: &DataFrame,
    records: &DataFrame,
    spec: &ReconcileSpec,
) -> Result<DataFrame, ReconcileError> {
    let in_scope = contracts.clone().lazy().filter(col("c_in_scope"));
    let recs = records.clone().lazy();
    let inner = || JoinArgs::new(JoinType::Inner);

    let by_id = in_scope
        .clone()
        .select([col("c_idx"), col("c_erp_key")])
        .filter(col("c_erp_key").is_not_null())
        .join(
            recs.clone()
                .select([col("r_idx"), col("r_erp_key")])
                .filter(col("r_erp_key").is_not_null()),
            [col("c_erp_key")],
            [col("r_erp_key")],
            inner(),
        )
        .select([col("c_idx"), col("r_idx"), lit(rule::ID).alias("rule")]);
    let back_keys = concat(
        [
            in_scope
                .clone()
                .select([col("c_idx"), col("c_id_key").alias("k")]),
            in_scope
                .clone()
                .select([col("c_idx"), col("c_num_key").alias("k")]),
        ],
        UnionArgs::default(),
    )?
    .filter(col("k").is_not_null());
    let by_back = back_keys
        .join(
            recs.clone()
                .select([col("r_idx"), col("r_back_key")])
                .filter(col("r_back_key").is_not_null()),
            [col("k")],
            [col("r_back_key")],
            inner(),
        )
        .select([
            col("c_idx"),
            col("r_idx"),
            lit(rule::BACK_REFERENCE).alias("rule"),
        ]);
    let strong = concat([by_id, by_back], UnionArgs::default())?
        .group_by([col("c_idx"), col("r_idx")])
        .agg([col("rule").min()])
        .collect()?;

    let mut all = vec![strong.clone().lazy()];
    if !spec.fallback_key.is_empty() {
        let mut c_keys = vec![col("c_idx")];
        let mut r_keys = vec![col("r_idx")];
        let (mut c_on, mut r_on) = (vec![], vec![]);
        for name in &spec.fallback_key {
            if !KEY_NAMES.contains(&name.as_str()) || key_source(spec, name).is_none() {
                return Err(ReconcileError::FallbackKeyNotConfigured { key: name.clone() });
            }
            c_keys.push(col(format!("c_{name}_key")));
            r_keys.push(col(format!("r_{name}_key")));
            c_on.push(col(format!("c_{name}_key")));
            r_on.push(col(format!("r_{name}_key")));
        }
        let all_set = |cols: &[Expr]| {
            cols.iter()
                .cloned()
                .map(|c| c.is_not_null())
                .reduce(|a, b| a.and(b))
                .unwrap_or(lit(true))
        };
        let anti = || JoinArgs::new(JoinType::Anti);
        let free_contracts = in_scope.select(c_keys).filter(all_set(&c_on)).join(
            strong.clone().lazy().select([col("c_idx")]),
            [col("c_idx")],
            [col("c_idx")],
            anti(),
        );
        let free_records = recs.select(r_keys).filter(all_set(&r_on)).join(
            strong.lazy().select([col("r_idx")]),
            [col("r_idx")],
            [col("r_idx")],
            anti(),
        );
        let fallback = free_contracts
            .join(free_records, c_on, r_on, inner())
            .select([
                col("c_idx"),
                col("r_idx"),
                lit(rule::FALLBACK).alias("rule"),
            ]);
        all.push(fallback);
    }
    let mut links = concat(all, UnionArgs::default())?.collect()?;
    // Links per contract and per record: counted in an array indexed by row
    // (the indices are the frames' row numbers), no group-by over the links.
    for (idx, name, height) in [
        ("c_idx", "n_c", contracts.height()),
        ("r_idx", "n_r", records.height()),
    ] {
        let at = links.column(idx)?.cast(&IDX_DTYPE)?;
        let at = at.idx()?;
        let mut counts = vec![0 as IdxSize; height];
        for i in at.iter().flatten() {
            let slot = counts.get_mut(i as usize).ok_or_else(|| {
                PolarsError::ComputeError(
                    format!("{idx} {i} past the frame's {height} rows").into(),
                )
            })?;
            *slot += 1;
        }
        let per_link: Vec<Option<IdxSize>> =
            at.iter().map(|i| i.map(|i| counts[i as usize])).collect();
        links.with_column(Column::new(name.into(), per_link))?;
    }
    Ok(links)
}
