//! `missing_in_spotdraft`: records the `[create]` rule says need a contract,
//! that name none, and that no live contract of any status links to.

use super::*;
use crate::reconcile::spec::NeedsContract;

fn spec_with(values: &[&str]) -> ReconcileSpec {
    ReconcileSpec {
        needs_contract: Some(NeedsContract {
            column: "stage".into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }),
        ..spec()
    }
}

fn missing(values: &[&str]) -> Vec<String> {
    let contracts = [
        // Out of scope (DRAFT), names e-2: still a contract for E-2.
        (
            "T-2",
            2,
            "DRAFT",
            false,
            Some("e-2"),
            None,
            None,
            None,
            None,
        ),
        // Deleted: no contract for E-3.
        (
            "T-3",
            3,
            "EXECUTED",
            true,
            Some("E-3"),
            None,
            None,
            None,
            None,
        ),
        // Linked to E-6 by the fallback key only, in a status not reconciled.
        (
            "T-6",
            6,
            "REDLINING",
            false,
            None,
            Some("V6"),
            Some("P6"),
            None,
            None,
        ),
    ];
    let records = [
        ("E-1", None, None, None, None, None),
        ("E-2", None, None, None, None, None),
        ("E-3", None, None, None, None, None),
        ("E-4", Some("T-404"), None, None, None, None),
        ("E-5", None, None, None, None, None),
        ("E-6", None, Some("V6"), Some("P6"), None, None),
        ("E-7", None, None, None, None, None),
    ];
    let mut erp = erp(&records);
    let stage = [
        Some("APPROVED"),
        Some(" approved "),
        Some("APPROVED"),
        Some("APPROVED"),
        Some("DRAFT"),
        Some("APPROVED"),
        None,
    ];
    erp.with_column(Column::new("stage".into(), stage.to_vec()))
        .unwrap();
    let out = reconcile(snapshot(&contracts), erp, &spec_with(values), &ctx()).unwrap();
    let found: Vec<[String; 4]> = rows(&out)
        .into_iter()
        .filter(|r| r[0] == kinds::MISSING_IN_SPOTDRAFT)
        .collect();
    for r in &found {
        assert_eq!(r[1], "", "no contract: {r:?}");
    }
    let actions = column(&out, "proposed_action");
    let kinds_col = column(&out, "drift_kind");
    for (k, a) in kinds_col.iter().zip(&actions) {
        if k.as_deref() == Some(kinds::MISSING_IN_SPOTDRAFT) {
            assert_eq!(a.as_deref(), Some("create_spotdraft_contract"));
        }
    }
    assert_eq!(
        out.stats.drift_by_kind[kinds::MISSING_IN_SPOTDRAFT],
        found.len() as u64
    );
    found.into_iter().map(|r| r[2].clone()).collect()
}

#[test]
fn records_needing_a_contract_that_none_links_are_missing_in_spotdraft() {
    // E-2 has a DRAFT contract, E-4 names one (an orphan instead), E-5 is not
    // approved, E-6 links by the fallback key, E-7 has no stage.
    assert_eq!(missing(&["approved"]), ["E-1", "E-3"]);
}

#[test]
fn a_rule_without_values_takes_any_non_empty_value() {
    assert_eq!(missing(&[]), ["E-1", "E-3", "E-5"]);
}

#[test]
fn without_a_rule_there_is_no_missing_in_spotdraft() {
    let out = run(&[], &[("E-1", None, None, None, None, None)]);
    assert!(rows(&out)
        .iter()
        .all(|r| r[0] != kinds::MISSING_IN_SPOTDRAFT));
    assert_eq!(out.stats.drift_by_kind[kinds::MISSING_IN_SPOTDRAFT], 0);
}

#[test]
fn the_rule_column_must_be_in_the_extract() {
    let spec = ReconcileSpec {
        needs_contract: Some(NeedsContract {
            column: "nope".into(),
            values: vec![],
        }),
        ..spec()
    };
    let err = reconcile(snapshot(&[]), erp(&[]), &spec, &ctx()).unwrap_err();
    assert!(err.to_string().contains("`nope`"), "{err}");
}
