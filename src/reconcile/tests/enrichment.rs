//! Engine tests: not enriched is never drift (`key_pointers_fetched_at`,
//! `document_fetched_at`).

use super::*;

/// `df` with a text column `name` added.
fn with_text(mut df: DataFrame, name: &str, values: &[Option<&str>]) -> DataFrame {
    df.with_column(Column::new(name.into(), values.to_vec()))
        .unwrap();
    df
}

#[test]
fn metadata_values_never_fetched_are_not_compared() {
    let contracts = [
        (
            "T-1",
            1,
            "SIGN",
            false,
            Some("E-1"),
            None,
            None,
            Some("10"),
            None,
        ),
        (
            "T-2",
            2,
            "SIGN",
            false,
            Some("E-2"),
            Some("V1"),
            None,
            Some("20"),
            None,
        ),
    ];
    let records = [
        ("E-1", None, None, None, Some("11"), None),
        ("E-2", None, Some("V9"), None, Some("21"), None),
    ];
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
    // Without the column (older snapshots): compared as before.
    let out = reconcile(snapshot(&contracts), erp(&records), &s, &ctx()).unwrap();
    assert_eq!(
        rows(&out),
        [
            row("field_mismatch", "T-1", "E-1", "amount"),
            row("field_mismatch", "T-2", "E-2", "amount"),
            row("field_mismatch", "T-2", "E-2", "vendor_id"),
        ]
    );
    assert_eq!(
        (
            out.stats.not_enriched_contracts,
            out.stats.not_enriched_comparisons
        ),
        (0, 0)
    );
    // T-2's metadata values were never fetched: its amount (a key pointer) is
    // skipped, its vendor (external metadata) still compared.
    let snap = with_text(
        snapshot(&contracts),
        "key_pointers_fetched_at",
        &[Some("2026-03-01T00:00:00Z"), None],
    );
    let out = reconcile(snap, erp(&records), &s, &ctx()).unwrap();
    assert_eq!(
        rows(&out),
        [
            row("field_mismatch", "T-1", "E-1", "amount"),
            row("field_mismatch", "T-2", "E-2", "vendor_id"),
        ]
    );
    assert_eq!(out.stats.not_enriched_contracts, 1);
    assert_eq!(out.stats.not_enriched_comparisons, 1);
}

#[test]
fn document_checksum_never_fetched_is_not_compared_but_a_missing_document_is_drift() {
    let executed = |id: &'static str, n: i64, erp: &'static str| {
        (
            id,
            n,
            "EXECUTED",
            false,
            Some(erp),
            None,
            None,
            Some("1"),
            DOC,
        )
    };
    let contracts = [
        executed("T-1", 1, "E-1"),
        executed("T-2", 2, "E-2"),
        executed("T-3", 3, "E-3"),
    ];
    let records = [
        // Another checksum than T-1's (fetched) and T-2's (never fetched).
        ("E-1", None, None, None, Some("1"), Some("ffff")),
        ("E-2", None, None, None, Some("1"), Some("ffff")),
        // No document at all: drift whether or not T-3's was fetched.
        ("E-3", None, None, None, Some("1"), None),
    ];
    let out = run(&contracts, &records);
    assert_eq!(
        rows(&out),
        [
            row("missing_document", "T-1", "E-1", ""),
            row("missing_document", "T-2", "E-2", ""),
            row("missing_document", "T-3", "E-3", ""),
        ]
    );
    let snap = with_text(
        snapshot(&contracts),
        "document_fetched_at",
        &[Some("2026-03-01T00:00:00Z"), None, None],
    );
    let out = reconcile(snap, erp(&records), &spec(), &ctx()).unwrap();
    assert_eq!(
        rows(&out),
        [
            row("missing_document", "T-1", "E-1", ""),
            row("missing_document", "T-3", "E-3", ""),
        ]
    );
    assert_eq!(out.stats.not_enriched_contracts, 2);
    assert_eq!(out.stats.not_enriched_comparisons, 2);
}
