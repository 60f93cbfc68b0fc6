//! Lifecycle tests: small literal frames through [`track_drift`].

use super::acks::parse_acknowledgements;
use super::*;
use polars::prelude::*;
use std::path::Path;

/// Drift rows `(drift_id, spotdraft_value)` of one run.
fn drift(rows: &[(&str, &str)], detected_at: &str) -> DataFrame {
    let n = rows.len();
    let same = |v: &str| vec![Some(v.to_string()); n];
    let none = || vec![None::<String>; n];
    df! {
        "run_id" => same("r"),
        "job" => same("j"),
        "detected_at" => same(detected_at),
        "drift_kind" => same("field_mismatch"),
        "severity" => same("high"),
        "contract_id" => rows.iter().map(|r| format!("T-{}", r.0)).collect::<Vec<_>>(),
        "erp_record_id" => none(),
        "legal_entity_id" => none(),
        "vendor_id" => none(),
        "po_number" => none(),
        "field" => same("amount"),
        "spotdraft_value" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        "erp_value" => same("1"),
        "proposed_action" => same("update_erp_field"),
        "drift_id" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
    }
    .unwrap()
}

fn day(d: &str) -> chrono::NaiveDate {
    d.parse().unwrap()
}

fn run<'a>(id: &'a str, date: &str, at: &'a str) -> TrackedRun<'a> {
    TrackedRun {
        run_id: id,
        job: "j",
        run_date: day(date),
        detected_at: at,
    }
}

fn column(df: &DataFrame, name: &str) -> Vec<String> {
    df.column(name)
        .unwrap()
        .cast(&DataType::String)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.unwrap_or("").to_string())
        .collect()
}

#[test]
fn three_runs_count_and_date_new_open_and_resolved() {
    let none = Acknowledgements::default();
    let a = run("r1", "2026-03-01", "2026-03-01T02:30:00Z");
    let one = track_drift(
        &drift(&[("aa", "1"), ("bb", "2")], a.detected_at),
        None,
        &none,
        &a,
        &Corrections::default(),
    )
    .unwrap();
    assert_eq!(
        (one.counts.new, one.counts.open, one.counts.resolved),
        (2, 0, 0)
    );
    assert_eq!(column(&one.drift, "status"), ["new", "new"]);

    let b = run("r2", "2026-03-02", "2026-03-02T02:30:00Z");
    let cur = drift(&[("aa", "1"), ("bb", "9"), ("cc", "3")], b.detected_at);
    let two = track_drift(
        &cur,
        Some(("r1", &one.drift)),
        &none,
        &b,
        &Corrections::default(),
    )
    .unwrap();
    assert_eq!(column(&two.drift, "status"), ["open", "open", "new"]);
    assert_eq!(column(&two.drift, "first_seen_run_id"), ["r1", "r1", "r2"]);
    assert_eq!(column(&two.drift, "age_days"), ["1", "1", "0"]);
    assert_eq!(column(&two.drift, "runs_seen"), ["2", "2", "1"]);
    assert_eq!(
        column(&two.drift, "changed_since_last_run"),
        ["false", "true", "false"]
    );
    assert_eq!(two.counts.changed, 1);
    assert_eq!(two.counts.previous_run_id.as_deref(), Some("r1"));

    let c = run("r3", "2026-03-05", "2026-03-05T02:30:00Z");
    let cur = drift(&[("cc", "3")], c.detected_at);
    let three = track_drift(
        &cur,
        Some(("r2", &two.drift)),
        &none,
        &c,
        &Corrections::default(),
    )
    .unwrap();
    assert_eq!(
        (three.counts.new, three.counts.open, three.counts.resolved),
        (0, 1, 2)
    );
    assert_eq!(column(&three.drift, "age_days"), ["3"]);
    let r = &three.resolved;
    assert_eq!(column(r, "drift_id"), ["aa", "bb"]);
    assert_eq!(column(r, "resolved_at"), ["2026-03-05T02:30:00Z"; 2]);
    assert_eq!(column(r, "first_seen_at"), ["2026-03-01T02:30:00Z"; 2]);
    assert_eq!(column(r, "last_seen_run_id"), ["r2"; 2]);
    assert_eq!(column(r, "spotdraft_value"), ["1", "9"], "last values");
    assert_eq!(column(r, "runs_seen"), ["2", "2"]);
    assert_eq!(r.get_column_names().len(), RESOLVED_COLUMNS.len());
}

#[test]
fn an_acknowledgement_holds_until_it_expires_or_the_values_change() {
    let acks = |expires: &str| {
        let text = format!(
            "[[ack]]\ndrift_id = \"00000000000000aa\"\nreason = \"known\"\nauthor = \"ann\"\nexpires = {expires}\n"
        );
        parse_acknowledgements(Path::new("acks.toml"), &text).unwrap()
    };
    let id = "00000000000000aa";
    let a = run("r1", "2026-03-01", "2026-03-01T02:30:00Z");
    let one = track_drift(
        &drift(&[(id, "1"), ("bb", "2")], a.detected_at),
        None,
        &acks("2026-03-02"),
        &a,
        &Corrections::default(),
    )
    .unwrap();
    assert_eq!(column(&one.drift, "status"), ["acknowledged", "new"]);
    assert_eq!((one.counts.acknowledged, one.counts.new), (1, 1));
    assert_eq!(column(&one.drift, "acknowledged_by"), ["ann", ""]);

    // Same values, still unexpired: acknowledged.
    let b = run("r2", "2026-03-02", "2026-03-02T02:30:00Z");
    let two = track_drift(
        &drift(&[(id, "1")], b.detected_at),
        Some(("r1", &one.drift)),
        &acks("2026-03-02"),
        &b,
        &Corrections::default(),
    )
    .unwrap();
    assert_eq!(column(&two.drift, "status"), ["acknowledged"]);
    // Expired the day after.
    let c = run("r3", "2026-03-03", "2026-03-03T02:30:00Z");
    let three = track_drift(
        &drift(&[(id, "1")], c.detected_at),
        Some(("r2", &two.drift)),
        &acks("2026-03-02"),
        &c,
        &Corrections::default(),
    )
    .unwrap();
    assert_eq!(column(&three.drift, "status"), ["open"]);
    assert_eq!(three.counts.open, 1);
    // Renewed, but the values changed since it was given: open.
    let d = run("r4", "2026-03-04", "2026-03-04T02:30:00Z");
    let four = track_drift(
        &drift(&[(id, "7")], d.detected_at),
        Some(("r3", &three.drift)),
        &acks("2026-12-31"),
        &d,
        &Corrections::default(),
    )
    .unwrap();
    assert_eq!(column(&four.drift, "status"), ["open"]);
    assert_eq!(column(&four.drift, "changed_since_last_run"), ["true"]);
}

#[test]
fn corrections_carry_from_run_to_run_and_say_who_resolved_a_row() {
    use crate::apply::{Action, ActionKind, JournalEntry, JournalView};
    let none = Acknowledgements::default();
    let action = |key: &str, ids: &[&str]| Action {
        kind: ActionKind::UpdateErpFields,
        erp_record_id: None,
        contract_id: None,
        fields: Default::default(),
        document_sha256: None,
        if_match: None,
        reason: None,
        drift_kinds: Default::default(),
        drift_ids: ids.iter().map(|s| s.to_string()).collect(),
        key: key.into(),
        generation: 0,
    };
    let applied = |key: &str, at: &str| JournalEntry {
        key: key.into(),
        generation: 0,
        content_hash: key.into(),
        action: "update_erp_fields".into(),
        erp_record_id: None,
        contract_id: None,
        attempt: 1,
        outcome: "applied".into(),
        message: None,
        at: at.into(),
        run_id: "r1".into(),
        approved_by: None,
    };
    let a = run("r1", "2026-03-01", "2026-03-01T02:30:00Z");
    let plan = [action("ka", &["aa"]), action("kb", &["bb"])];
    let one = track_drift(
        &drift(&[("aa", "1"), ("bb", "2"), ("cc", "3")], a.detected_at),
        None,
        &none,
        &a,
        &Corrections::from_plan(&plan, JournalView::default()),
    )
    .unwrap();
    assert_eq!(column(&one.drift, "correction_id"), ["ka", "kb", ""]);
    assert_eq!(
        column(&one.drift, "correction_outcome"),
        ["planned", "planned", ""]
    );

    // r1 applied both; aa is gone, bb still shows (under a new key: the
    // extract was taken after the success), cc is gone without a correction.
    let journal = JournalView::from_entries(vec![
        applied("ka", "2026-03-01T02:31:00Z"),
        applied("kb", "2026-03-01T02:31:00Z"),
    ]);
    let b = run("r2", "2026-03-02", "2026-03-02T02:30:00Z");
    let two = track_drift(
        &drift(&[("bb", "2")], b.detected_at),
        Some(("r1", &one.drift)),
        &none,
        &b,
        &Corrections::from_plan(&[action("kb2", &["bb"])], journal),
    )
    .unwrap();
    assert_eq!(column(&two.drift, "correction_id"), ["kb2"]);
    assert_eq!(column(&two.drift, "correction_outcome"), ["applied"]);
    assert_eq!(
        column(&two.drift, "correction_at"),
        ["2026-03-01T02:31:00Z"]
    );
    assert_eq!(column(&two.resolved, "drift_id"), ["aa", "cc"]);
    assert_eq!(column(&two.resolved, "resolved_by"), ["job", "outside"]);
    assert_eq!(
        column(&two.resolved, "resolved_by_correction_id"),
        ["ka", ""]
    );
    assert_eq!((two.counts.resolved, two.counts.resolved_by_job), (2, 1));
}
