//! Engine tests: ERP rows with an unusable value still link, are reported
//! once per unusable value, and that value is never compared.

use super::*;
use crate::reconcile::spec::unusable_flag;

/// `df` with a Boolean column `name` added.
fn with_bool(mut df: DataFrame, name: &str, values: &[bool]) -> DataFrame {
    df.with_column(Column::new(name.into(), values.to_vec()))
        .unwrap();
    df
}

fn with_text(mut df: DataFrame, name: &str, values: &[Option<&str>]) -> DataFrame {
    df.with_column(Column::new(name.into(), values.to_vec()))
        .unwrap();
    df
}

/// The test spec plus a string comparison of the vendor.
fn spec_with_vendor() -> ReconcileSpec {
    let mut s = spec();
    s.compares.push(CompareSpec {
        field: "vendor_id".into(),
        spotdraft_column: "external_metadata.record_data.vendor_id".into(),
        erp_column: "vendor_id".into(),
        kind: CompareKind::String {
            normalize: vec![Normalize::Trim],
        },
        severity: Severity::Medium,
    });
    s
}

#[test]
fn unusable_values_link_are_reported_and_are_not_compared() {
    let contracts = snapshot(&[
        (
            "T-1",
            1,
            "SIGN",
            false,
            Some("E-1"),
            Some("V1"),
            None,
            Some("12.34"),
            None,
        ),
        ("T-3", 3, "SIGN", false, None, None, None, Some("5"), None),
        (
            "T-4",
            4,
            "SIGN",
            false,
            Some("E-4"),
            None,
            None,
            Some("7"),
            None,
        ),
    ]);
    let records = erp(&[
        // T-1's record: amount unreadable, vendor differs.
        ("E-1", None, Some("V9"), None, Some("12,3.4"), None),
        // Nobody's record.
        ("E-2", None, None, None, Some("n/a"), None),
        // Linked to T-3 by its back-reference only.
        ("E-3", Some("T-3"), None, None, Some("5x"), None),
        // T-4's record: expiry date unreadable (not a compared field), amount fine.
        ("E-4", None, None, None, Some("8"), None),
    ]);
    let records = with_bool(
        records,
        &unusable_flag("amount"),
        &[true, true, true, false],
    );
    let records = with_text(
        records,
        "expiry_date",
        &[None, None, None, Some("31/02/2026")],
    );
    let records = with_bool(
        records,
        &unusable_flag("expiry_date"),
        &[false, false, false, true],
    );
    let out = reconcile(contracts, records, &spec_with_vendor(), &ctx()).unwrap();
    assert_eq!(
        rows(&out),
        [
            row("unlinked_contract", "T-3", "E-3", ""),
            row("unusable_erp_value", "", "E-2", "amount"),
            row("unusable_erp_value", "T-1", "E-1", "amount"),
            row("unusable_erp_value", "T-3", "E-3", "amount"),
            row("unusable_erp_value", "T-4", "E-4", "expiry_date"),
            row("field_mismatch", "T-1", "E-1", "vendor_id"),
            row("field_mismatch", "T-4", "E-4", "amount"),
        ]
    );
    let values = |name: &str| column(&out, name)[1..5].to_vec();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        values("erp_value"),
        [s("n/a"), s("12,3.4"), s("5x"), s("31/02/2026")]
    );
    assert_eq!(
        values("spotdraft_value"),
        [None, s("12.34"), s("5"), None],
        "SpotDraft's value of the compared field reading it, when linked"
    );
    assert!(values("proposed_action")
        .iter()
        .all(|a| a.as_deref() == Some("fix_erp_value")));
    assert!(values("severity")
        .iter()
        .all(|a| a.as_deref() == Some("medium")));
    assert_eq!(out.stats.erp_records, 0);
    assert_eq!(out.stats.erp_records_with_unusable_values, 4);
    assert_eq!(out.stats.drift_by_kind["unusable_erp_value"], 4);
    assert_eq!(out.stats.drift_by_kind["missing_in_erp"], 0);
}

#[test]
fn without_flags_every_value_is_compared() {
    let contracts = snapshot(&[(
        "T-1",
        1,
        "SIGN",
        false,
        Some("E-1"),
        None,
        None,
        Some("12.34"),
        None,
    )]);
    let records = erp(&[("E-1", None, None, None, Some("12,3.4"), None)]);
    let out = reconcile(contracts, records, &spec(), &ctx()).unwrap();
    assert_eq!(rows(&out), [row("field_mismatch", "T-1", "E-1", "amount")]);
    assert_eq!(out.stats.erp_records, 1);
    assert_eq!(out.stats.erp_records_with_unusable_values, 0);
}
