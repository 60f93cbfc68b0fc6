//! Reconciliation: link conflicts, where a contract's ERP record id names one
//! record while another record's back-reference names the contract.
//!
//! Derived from the link table alone: every record whose id is the contract's
//! ERP record id links to it by id (rule 1), every record naming it back does so
//! by back-reference (rule 2, kept only when the same record has no id link), so
//! the rule-2 links of a contract with an ERP record id are exactly the records
//! that contradict it. The exact rule is in [`super::spec`]'s module doc.

use super::drift::actions;
use super::link::rule;
use polars::prelude::*;

/// One row per conflicting record: `c_idx`, `r_idx` (the record whose
/// back-reference names the contract), `erp_override` (the id the contract
/// names, as it writes it), `erp_value` (the other record's id, as the extract
/// writes it) and `proposed_action`.
pub fn link_conflicts(contracts: &DataFrame, records: &DataFrame, links: &DataFrame) -> LazyFrame {
    let count = |r: i32| col("rule").eq(lit(r)).cast(DataType::Int64).sum();
    let per_contract = links.clone().lazy().group_by([col("c_idx")]).agg([
        count(rule::ID).alias("n_id"),
        count(rule::BACK_REFERENCE).alias("n_back"),
    ]);
    let naming = contracts
        .clone()
        .lazy()
        .filter(col("c_in_scope").and(col("c_erp_key").is_not_null()))
        .select([col("c_idx"), col("c_erp_raw").alias("erp_override")]);
    let inner = || JoinArgs::new(JoinType::Inner);
    let one = |name: &str| col(name).cast(DataType::Int64).eq(lit(1i64));
    // The fix is clear only when the other record is claimed by nobody else and
    // is the contract's only contradicting record.
    let clear = one("n_back").and(one("n_r"));
    let action = when(clear.clone().and(col("n_id").eq(lit(0i64))))
        .then(lit(actions::SET_SPOTDRAFT_EXTERNAL_METADATA_ID))
        .when(clear.and(col("n_id").eq(lit(1i64))))
        .then(lit(actions::UPDATE_ERP_BACK_REFERENCE))
        .otherwise(lit(actions::REVIEW_LINK_CONFLICT));
    links
        .clone()
        .lazy()
        .filter(col("rule").eq(lit(rule::BACK_REFERENCE)))
        .select([col("c_idx"), col("r_idx"), col("n_r")])
        .join(naming, [col("c_idx")], [col("c_idx")], inner())
        .join(per_contract, [col("c_idx")], [col("c_idx")], inner())
        .join(
            records
                .clone()
                .lazy()
                .select([col("r_idx"), col("r_erp_raw").alias("erp_value")]),
            [col("r_idx")],
            [col("r_idx")],
            inner(),
        )
        .select([
            col("c_idx"),
            col("r_idx"),
            col("erp_override"),
            col("erp_value"),
            action.alias("proposed_action"),
        ])
}
