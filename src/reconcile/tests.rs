//! Engine tests over small literal frames: links, drift kinds, scope.

use super::spec::{
    kinds, CompareKind, CompareSpec, KeySource, KeySpec, Normalize, ReconcileSpec, Severity,
};
use super::*;
use std::collections::BTreeMap;

mod conflicts;
mod enrichment;
mod missing_in_spotdraft;
mod orphans;
mod unusable;

/// One contract row: (id, num, status, deleted, erp id, vendor, po, amount, doc).
type C<'a> = (
    &'a str,
    i64,
    &'a str,
    bool,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);
/// One ERP row: (erp id, back-reference, vendor, po, amount, doc).
type R<'a> = (
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

fn snapshot(rows: &[C]) -> DataFrame {
    df!(
        "id" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        "contract_num" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        "contract_status" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        "deleted_at" => rows.iter().map(|r| r.3.then_some("2026-01-01T00:00:00Z")).collect::<Vec<_>>(),
        "external_metadata.id" => rows.iter().map(|r| r.4).collect::<Vec<_>>(),
        "external_metadata.record_data.vendor_id" => rows.iter().map(|r| r.5).collect::<Vec<_>>(),
        "external_metadata.record_data.po_number" => rows.iter().map(|r| r.6).collect::<Vec<_>>(),
        "key_pointers.contract_value" => rows.iter().map(|r| r.7).collect::<Vec<_>>(),
        "document_sha256" => rows.iter().map(|r| r.8).collect::<Vec<_>>(),
    )
    .unwrap()
}

fn erp(rows: &[R]) -> DataFrame {
    df!(
        "erp_record_id" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        "spotdraft_contract_id" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        "vendor_id" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        "po_number" => rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        "amount" => rows.iter().map(|r| r.4).collect::<Vec<_>>(),
        "document_sha256" => rows.iter().map(|r| r.5).collect::<Vec<_>>(),
        "_row" => (1..=rows.len() as u64).collect::<Vec<_>>(),
    )
    .unwrap()
}

fn spec() -> ReconcileSpec {
    use Normalize::*;
    let key = |c: &str, n: &[Normalize]| KeySource {
        column: c.to_string(),
        normalize: n.to_vec(),
    };
    ReconcileSpec {
        statuses: vec!["EXECUTED".into(), "SIGN".into()],
        keys: KeySpec {
            erp_record_id: key("external_metadata.id", &[Trim, Upper]),
            vendor_id: Some(key(
                "external_metadata.record_data.vendor_id",
                &[Trim, Upper],
            )),
            po_number: Some(key(
                "external_metadata.record_data.po_number",
                &[Trim, StripLeadingZeros],
            )),
            legal_entity_id: None,
            spotdraft_contract_id_normalize: vec![Trim, Upper],
        },
        fallback_key: vec!["vendor_id".into(), "po_number".into()],
        compares: vec![CompareSpec {
            field: "amount".into(),
            spotdraft_column: "key_pointers.contract_value".into(),
            erp_column: "amount".into(),
            kind: CompareKind::Decimal { scale: 2 },
            severity: Severity::High,
        }],
        check_documents: true,
        kind_severity: BTreeMap::from([(kinds::DUPLICATE_LINK.to_string(), Severity::High)]),
        needs_contract: None,
    }
}

fn ctx() -> RunContext {
    RunContext {
        run_id: "run-1".into(),
        job: "demo".into(),
        detected_at: "2026-03-01T00:00:00Z".into(),
        known_existing_contract_ids: Vec::new(),
    }
}

fn run(c: &[C], r: &[R]) -> ReconcileOutput {
    reconcile(snapshot(c), erp(r), &spec(), &ctx()).unwrap()
}

/// (kind, contract_id, erp_record_id, field) per drift row, nulls as "".
fn rows(out: &ReconcileOutput) -> Vec<[String; 4]> {
    let get = |name: &str| {
        let c = out.drift.column(name).unwrap().str().unwrap().clone();
        c.iter()
            .map(|v| v.unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    let (k, c, e, f) = (
        get("drift_kind"),
        get("contract_id"),
        get("erp_record_id"),
        get("field"),
    );
    (0..k.len())
        .map(|i| [k[i].clone(), c[i].clone(), e[i].clone(), f[i].clone()])
        .collect()
}

fn row(k: &str, c: &str, e: &str, f: &str) -> [String; 4] {
    [k, c, e, f].map(String::from)
}

fn column(out: &ReconcileOutput, name: &str) -> Vec<Option<String>> {
    out.drift
        .column(name)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.map(String::from))
        .collect()
}

const DOC: Option<&str> = Some("abc123");

#[test]
fn links_by_normalized_id_and_equal_pair_has_no_drift() {
    let out = run(
        &[(
            "T-1",
            1,
            "EXECUTED",
            false,
            Some(" e-1 "),
            None,
            None,
            Some("10.5"),
            DOC,
        )],
        &[("E-1", None, None, None, Some("10.50"), Some("ABC123"))],
    );
    assert_eq!(rows(&out), Vec::<[String; 4]>::new());
    assert_eq!(out.stats.linked_pairs, 1);
    assert_eq!(
        out.stats.links_by_rule,
        LinksByRule {
            id: 1,
            back_reference: 0,
            fallback: 0
        }
    );
    let names: Vec<String> = out
        .drift
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names, DRIFT_COLUMNS.to_vec());
}

#[test]
fn null_keys_never_match() {
    let out = run(
        &[("T-1", 1, "SIGN", false, Some("  "), None, None, None, None)],
        &[("  ", None, None, None, None, None)],
    );
    assert_eq!(rows(&out), [row("unlinked_contract", "T-1", "", "")]);
    assert_eq!(
        column(&out, "proposed_action"),
        [Some("link_or_create_erp_record".to_string())]
    );
    assert_eq!(out.stats.linked_pairs, 0);
}

#[test]
fn back_reference_matches_composite_and_integer_forms() {
    let out = run(
        &[
            ("T-5", 5, "SIGN", false, None, None, None, None, None),
            ("H-7", 7, "SIGN", false, None, None, None, None, None),
        ],
        &[
            ("E-5", Some(" t-5"), None, None, None, None),
            ("E-7", Some("7"), None, None, None, None),
        ],
    );
    assert_eq!(
        rows(&out),
        [
            row("unlinked_contract", "H-7", "E-7", ""),
            row("unlinked_contract", "T-5", "E-5", "")
        ]
    );
    assert_eq!(
        column(&out, "proposed_action")[0].as_deref(),
        Some("set_spotdraft_external_metadata_id")
    );
    assert_eq!(out.stats.links_by_rule.back_reference, 2);
    assert_eq!(out.stats.linked_pairs, 2);
}

#[test]
fn fallback_links_only_contracts_and_records_without_other_links() {
    let out = run(
        &[
            (
                "T-1",
                1,
                "SIGN",
                false,
                Some("E-1"),
                Some("V1"),
                Some("00123"),
                None,
                None,
            ),
            (
                "T-2",
                2,
                "SIGN",
                false,
                None,
                Some("V1"),
                Some("123"),
                None,
                None,
            ),
            (
                "T-3",
                3,
                "SIGN",
                false,
                None,
                Some("V2"),
                Some("9"),
                None,
                None,
            ),
            ("T-4", 4, "SIGN", false, None, None, Some("9"), None, None),
        ],
        &[
            ("E-1", None, Some("V1"), Some("123"), None, None),
            ("E-3", None, Some(" v2"), Some("009"), None, None),
        ],
    );
    assert_eq!(
        rows(&out),
        [
            row("unlinked_contract", "T-2", "", ""),
            row("unlinked_contract", "T-3", "E-3", ""),
            row("unlinked_contract", "T-4", "", ""),
        ]
    );
    assert_eq!(
        out.stats.links_by_rule,
        LinksByRule {
            id: 1,
            back_reference: 0,
            fallback: 1
        }
    );
}

#[test]
fn duplicate_links_in_both_directions_are_reported_and_not_compared() {
    let out = run(
        &[
            // E-9 links to T-1 (by id) and T-2 (by back-reference).
            (
                "T-1",
                1,
                "SIGN",
                false,
                Some("E-9"),
                None,
                None,
                Some("1"),
                None,
            ),
            ("T-2", 2, "SIGN", false, None, None, None, Some("2"), None),
            // T-4 links to E-4 (by id) and E-5 (by back-reference): also a
            // link conflict, covered in `conflicts`.
            (
                "T-4",
                4,
                "SIGN",
                false,
                Some("E-4"),
                None,
                None,
                Some("4"),
                None,
            ),
        ],
        &[
            ("E-9", Some("T-2"), None, None, Some("9"), None),
            ("E-4", None, None, None, Some("44"), None),
            ("E-5", Some("4"), None, None, Some("55"), None),
        ],
    );
    assert_eq!(
        rows(&out),
        [
            row("unlinked_contract", "T-2", "E-9", ""),
            row("link_conflict", "T-4", "E-4", ""),
            row("duplicate_link", "T-1", "E-9", ""),
            row("duplicate_link", "T-2", "E-9", ""),
            row("duplicate_link", "T-4", "E-4", ""),
            row("duplicate_link", "T-4", "E-5", ""),
        ]
    );
    assert_eq!(column(&out, "severity")[2].as_deref(), Some("high"));
    assert_eq!(
        column(&out, "proposed_action")[2].as_deref(),
        Some("resolve_duplicate_link")
    );
    assert_eq!(out.stats.linked_pairs, 0);
}

#[test]
fn missing_in_erp_and_orphans() {
    let out = run(
        &[
            (
                "T-1",
                1,
                "SIGN",
                false,
                Some("e-404"),
                None,
                None,
                None,
                None,
            ),
            ("T-6", 6, "DRAFT", false, None, None, None, None, None),
            ("T-8", 8, "SIGN", true, None, None, None, None, None),
        ],
        &[
            ("E-99", Some("T-99"), None, None, None, None),
            ("E-8", Some("T-8"), None, None, None, None),
            ("E-6", Some("T-6"), None, None, None, None),
            ("E-60", Some("6"), None, None, None, None),
        ],
    );
    assert_eq!(
        rows(&out),
        [
            row("missing_in_erp", "T-1", "e-404", ""),
            row("orphan_erp_record", "T-8", "E-8", ""),
            row("orphan_erp_record", "T-99", "E-99", ""),
        ]
    );
    assert_eq!(
        column(&out, "proposed_action")[0].as_deref(),
        Some("review_erp_link")
    );
    assert_eq!(
        column(&out, "proposed_action")[1].as_deref(),
        Some("review_orphan_erp_record")
    );
    assert_eq!(out.stats.contracts_in_scope, 1);
    assert_eq!(out.stats.contracts_deleted_skipped, 1);
}

#[test]
fn field_mismatch_and_missing_document_on_one_to_one_pairs() {
    let out = run(
        &[
            (
                "T-1",
                1,
                "EXECUTED",
                false,
                Some("E-1"),
                Some("V1"),
                None,
                Some("12500.5"),
                DOC,
            ),
            (
                "T-2",
                2,
                "EXECUTED",
                false,
                Some("E-2"),
                None,
                None,
                Some("100"),
                DOC,
            ),
            (
                "T-3",
                3,
                "SIGN",
                false,
                Some("E-3"),
                None,
                None,
                Some("1"),
                None,
            ),
            (
                "T-4",
                4,
                "EXECUTED",
                false,
                Some("E-4"),
                None,
                None,
                Some("1"),
                None,
            ),
        ],
        &[
            ("E-1", None, Some("V9"), None, Some("12500.51"), None),
            ("E-2", None, None, None, Some("100.004"), Some("ABC123")),
            ("E-3", None, None, None, Some("1"), None),
            ("E-4", None, None, None, Some("1"), Some("ffff")),
        ],
    );
    assert_eq!(
        rows(&out),
        [
            row("field_mismatch", "T-1", "E-1", "amount"),
            row("missing_document", "T-1", "E-1", "")
        ]
    );
    assert_eq!(
        column(&out, "spotdraft_value")[0].as_deref(),
        Some("12500.5")
    );
    assert_eq!(column(&out, "erp_value")[0].as_deref(), Some("12500.51"));
    assert_eq!(
        column(&out, "vendor_id")[0].as_deref(),
        Some("V1"),
        "contract side first"
    );
    assert_eq!(
        column(&out, "severity"),
        [Some("high".to_string()), Some("medium".to_string())]
    );
    assert_eq!(column(&out, "run_id")[0].as_deref(), Some("run-1"));
    assert_eq!(out.stats.drift_by_kind["field_mismatch"], 1);
    assert_eq!(out.stats.drift_by_kind["orphan_erp_record"], 0);
    assert_eq!(out.stats.drift_by_severity["high"], 1);
}

#[test]
fn deleted_and_out_of_scope_contracts_produce_no_drift() {
    let out = run(
        &[
            (
                "T-1",
                1,
                "EXECUTED",
                true,
                Some("E-404"),
                None,
                None,
                None,
                None,
            ),
            ("T-2", 2, "DRAFT", false, None, None, None, None, None),
            (
                "T-3",
                3,
                "DRAFT",
                false,
                Some("E-3"),
                None,
                None,
                Some("1"),
                None,
            ),
        ],
        &[("E-3", Some("T-3"), None, None, Some("2"), None)],
    );
    assert_eq!(rows(&out), Vec::<[String; 4]>::new());
    assert_eq!(out.stats.contracts, 3);
    assert_eq!(out.stats.contracts_in_scope, 0);
}

#[test]
fn missing_snapshot_column_is_named() {
    let mut s = spec();
    s.compares[0].spotdraft_column = "key_pointers.nope".into();
    let err = reconcile(snapshot(&[]), erp(&[]), &s, &ctx()).unwrap_err();
    assert!(
        matches!(&err, ReconcileError::MissingSnapshotColumn { column, .. } if column == "key_pointers.nope")
    );
    assert!(
        err.to_string().contains("key_pointers.nope")
            && err.to_string().contains("contract_status"),
        "{err}"
    );
}
