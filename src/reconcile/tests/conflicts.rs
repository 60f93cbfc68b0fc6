//! Engine tests: link conflicts, one per branch of the rule.

use super::*;

/// A SIGN contract naming ERP record `erp` (or none), amount `amount`.
fn contract(id: &'static str, num: i64, erp: Option<&'static str>) -> C<'static> {
    (id, num, "SIGN", false, erp, None, None, Some("10"), None)
}

/// A record `id` naming contract `back`, amount `amount`.
fn record(id: &'static str, back: Option<&'static str>, amount: &'static str) -> R<'static> {
    (id, back, None, None, Some(amount), None)
}

/// (kind, contract, erp_record_id, erp_value, proposed_action) per row, nulls as "".
fn conflict_rows(out: &ReconcileOutput) -> Vec<[String; 5]> {
    let cols = [
        "drift_kind",
        "contract_id",
        "erp_record_id",
        "erp_value",
        "proposed_action",
    ]
    .map(|n| column(out, n));
    (0..out.drift.height())
        .map(|i| std::array::from_fn(|k| cols[k][i].clone().unwrap_or_default()))
        .collect()
}

fn conflict(c: &str, named: &str, other: &str, action: &str) -> [String; 5] {
    ["link_conflict", c, named, other, action].map(String::from)
}

fn kind_row(kind: &str, c: &str, e: &str, action: &str) -> [String; 5] {
    [kind, c, e, "", action].map(String::from)
}

#[test]
fn named_record_absent_and_one_record_naming_the_contract_back() {
    // T-1 names E-404, which the extract lacks; E-7 names T-1 back.
    let out = run(
        &[contract("T-1", 1, Some("e-404"))],
        &[record("E-7", Some("T-1"), "11")],
    );
    assert_eq!(
        conflict_rows(&out),
        [
            conflict("T-1", "e-404", "E-7", "set_spotdraft_external_metadata_id"),
            // The pair is 1:1 by back-reference: compared as usual.
            ["field_mismatch", "T-1", "E-7", "11", "update_erp_field"].map(String::from),
        ],
        "the conflict replaces missing_in_erp"
    );
    assert_eq!(out.stats.drift_by_kind["missing_in_erp"], 0);
    assert_eq!(out.stats.drift_by_kind["link_conflict"], 1);
    assert_eq!(column(&out, "severity")[0].as_deref(), Some("medium"));
}

#[test]
fn named_record_present_and_another_record_naming_the_contract_back() {
    // T-2's record E-2 exists (and names it back); E-8 names it back too.
    let out = run(
        &[contract("T-2", 2, Some("E-2"))],
        &[
            record("E-2", Some("T-2"), "10"),
            record("E-8", Some("2"), "10"),
        ],
    );
    assert_eq!(
        conflict_rows(&out),
        [
            conflict("T-2", "E-2", "E-8", "update_erp_back_reference"),
            kind_row("duplicate_link", "T-2", "E-2", "resolve_duplicate_link"),
            kind_row("duplicate_link", "T-2", "E-8", "resolve_duplicate_link"),
        ]
    );
}

#[test]
fn several_records_naming_the_contract_back_need_review() {
    // T-3 names the absent E-405; E-9 and E-10 both name T-3 back.
    let out = run(
        &[contract("T-3", 3, Some("E-405"))],
        &[
            record("E-9", Some("T-3"), "10"),
            record("E-10", Some("3"), "10"),
        ],
    );
    assert_eq!(
        conflict_rows(&out),
        [
            kind_row("missing_in_erp", "T-3", "E-405", "review_erp_link"),
            conflict("T-3", "E-405", "E-10", "review_link_conflict"),
            conflict("T-3", "E-405", "E-9", "review_link_conflict"),
            kind_row("duplicate_link", "T-3", "E-10", "resolve_duplicate_link"),
            kind_row("duplicate_link", "T-3", "E-9", "resolve_duplicate_link"),
        ]
    );
}

#[test]
fn a_record_claimed_by_another_contract_needs_review() {
    // T-4 names the absent E-406; E-11 names T-4 back but T-5 names E-11.
    let out = run(
        &[
            contract("T-4", 4, Some("E-406")),
            contract("T-5", 5, Some("E-11")),
        ],
        &[record("E-11", Some("T-4"), "10")],
    );
    assert_eq!(
        conflict_rows(&out),
        [
            kind_row("missing_in_erp", "T-4", "E-406", "review_erp_link"),
            conflict("T-4", "E-406", "E-11", "review_link_conflict"),
            kind_row("duplicate_link", "T-4", "E-11", "resolve_duplicate_link"),
            kind_row("duplicate_link", "T-5", "E-11", "resolve_duplicate_link"),
        ]
    );
}

#[test]
fn agreeing_links_and_unlinked_contracts_are_no_conflict() {
    // T-6 and E-6 name each other; T-7 has no ERP id (unlinked, not a conflict).
    let out = run(
        &[contract("T-6", 6, Some("E-6")), contract("T-7", 7, None)],
        &[
            record("E-6", Some("T-6"), "10"),
            record("E-12", Some("T-7"), "10"),
        ],
    );
    assert_eq!(
        conflict_rows(&out),
        [kind_row(
            "unlinked_contract",
            "T-7",
            "E-12",
            "set_spotdraft_external_metadata_id"
        )]
    );
    assert_eq!(out.stats.drift_by_kind["link_conflict"], 0);
}
