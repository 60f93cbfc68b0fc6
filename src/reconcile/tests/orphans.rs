//! Engine tests: orphan records, contracts known outside the snapshot, and
//! identical drift rows.

use super::*;

#[test]
fn two_erp_rows_with_one_record_id_give_each_drift_row_once() {
    // Both rows carry E-1 and name T-1 back: two links of T-1, each
    // reported as the same duplicate_link row (T-1, E-1).
    let both = ("E-1", Some("T-1"), None, None, Some("5"), None);
    let out = run(
        &[(
            "T-1",
            1,
            "SIGN",
            false,
            Some("E-1"),
            None,
            None,
            Some("5"),
            None,
        )],
        &[both, both],
    );
    assert_eq!(rows(&out), [row("duplicate_link", "T-1", "E-1", "")]);
    assert_eq!(out.drift.height(), 1);
    assert_eq!(out.stats.drift_by_kind["duplicate_link"], 1);
    assert_eq!(out.stats.links_by_rule.id, 2, "both rows still link");
}

/// T-1 live (out of scope, still existing), T-8 deleted; records naming T-1, T-8 and contracts the snapshot lacks.
fn outside_the_snapshot() -> (DataFrame, DataFrame) {
    let contracts = [
        ("T-1", 1, "DRAFT", false, None, None, None, None, None),
        ("T-8", 8, "SIGN", true, None, None, None, None, None),
    ];
    let records = [
        ("E-1", Some("T-500"), None, None, None, None),
        ("E-2", Some("501"), None, None, None, None),
        ("E-3", Some("T-502"), None, None, None, None),
        ("E-4", Some("T-8"), None, None, None, None),
        ("E-5", Some(" t-1"), None, None, None, None),
        ("E-6", Some(" T-500 "), None, None, None, None),
    ];
    (snapshot(&contracts), erp(&records))
}

#[test]
fn orphan_candidates_are_the_back_references_not_live_in_the_snapshot() {
    let (snap, records) = outside_the_snapshot();
    let got = orphan_candidates(&snap, &records, &spec()).unwrap();
    assert_eq!(got, ["501", "T-500", "T-502", "T-8"]);
    let without = records.drop("spotdraft_contract_id").unwrap();
    assert!(orphan_candidates(&snap, &without, &spec())
        .unwrap()
        .is_empty());
    let err = orphan_candidates(&snap.drop("deleted_at").unwrap(), &records, &spec()).unwrap_err();
    assert!(err.to_string().contains("deleted_at"), "{err}");
}

#[test]
fn records_naming_contracts_known_outside_the_snapshot_are_not_orphans() {
    let (snap, records) = outside_the_snapshot();
    let out = reconcile(snap.clone(), records.clone(), &spec(), &ctx()).unwrap();
    let orphans = [
        row("orphan_erp_record", " T-500 ", "E-6", ""),
        row("orphan_erp_record", "501", "E-2", ""),
        row("orphan_erp_record", "T-500", "E-1", ""),
        row("orphan_erp_record", "T-502", "E-3", ""),
        row("orphan_erp_record", "T-8", "E-4", ""),
    ];
    assert_eq!(rows(&out), orphans);

    // SpotDraft knows T-500, T-501 (named by its integer form) and the deleted
    // T-8; `502` alone does not vouch for the composite `T-502`.
    let known = RunContext {
        known_existing_contract_ids: ["t-500", "T-501", "T-8", "502"].map(String::from).to_vec(),
        ..ctx()
    };
    let out = reconcile(snap, records, &spec(), &known).unwrap();
    assert_eq!(rows(&out), [orphans[3].clone()]);
    assert_eq!(out.stats.drift_by_kind["orphan_erp_record"], 1);
}
