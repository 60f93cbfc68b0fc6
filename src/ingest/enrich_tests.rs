//! Enrichment planning: scope, new and changed contracts, never-enriched
//! ones, the refresh budget, and applying results.

use super::*;
use std::collections::BTreeSet;

fn row(id: &str, status: &str, kp_at: Option<&str>, doc_at: Option<&str>) -> SnapshotRow {
    SnapshotRow {
        id: id.into(),
        contract_status: Some(status.into()),
        key_pointers_fetched_at: kp_at.map(str::to_string),
        key_pointers_all: kp_at.map(|_| BTreeMap::new()),
        document_fetched_at: doc_at.map(str::to_string),
        ..SnapshotRow::default()
    }
}

fn scope() -> Scope {
    Scope {
        statuses: vec!["SIGN".into(), "EXECUTED".into()],
        key_pointers: true,
        documents: true,
    }
}

fn merged(rows: Vec<SnapshotRow>, changed: &[&str]) -> Merged {
    Merged {
        rows,
        changed: changed.iter().map(|s| s.to_string()).collect(),
        ..Merged::default()
    }
}

const T1: &str = "2026-10-01T00:00:00Z";
const T2: &str = "2026-10-02T00:00:00Z";
const T3: &str = "2026-10-03T00:00:00Z";

#[test]
fn only_reconciled_live_contracts_and_only_executed_documents() {
    let mut gone = row("T-5", "EXECUTED", None, None);
    gone.deleted_at = Some(T1.into());
    let m = merged(
        vec![
            row("T-1", "DRAFT", None, None),
            row("T-2", "SIGN", None, None),
            row("T-3", "EXECUTED", None, None),
            row("T-4", "EXECUTED", Some(T1), Some(T1)),
            gone,
        ],
        &["T-1", "T-2", "T-3", "T-5"],
    );
    let tasks = plan(&scope(), &m, false, RefreshBudget::Contracts(0));
    let got: Vec<_> = tasks
        .iter()
        .map(|t| (t.id.as_str(), t.key_pointers, t.document))
        .collect();
    assert_eq!(
        got,
        [("T-2", true, false), ("T-3", true, true)],
        "DRAFT out of scope, T-4 unchanged and enriched, T-5 deleted"
    );
    let no_docs = Scope {
        statuses: vec!["SIGN".into()],
        ..scope()
    };
    let tasks = plan(&no_docs, &m, false, RefreshBudget::Contracts(0));
    assert_eq!(tasks.len(), 1, "EXECUTED not reconciled: nothing for T-3");
}

#[test]
fn never_enriched_or_missing_raw_values_are_fetched_without_a_change() {
    let mut old = row("T-2", "SIGN", Some(T1), None);
    old.key_pointers_all = None; // written by an older version
    let m = merged(
        vec![
            row("T-1", "EXECUTED", None, Some(T1)),
            old,
            row("T-3", "EXECUTED", Some(T1), None),
        ],
        &[],
    );
    let ids = |tasks: Vec<Task>| {
        tasks
            .into_iter()
            .map(|t| (t.id, t.key_pointers, t.document))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(plan(&scope(), &m, false, RefreshBudget::Contracts(0))),
        [
            ("T-1".to_string(), true, false),
            ("T-3".to_string(), false, true)
        ]
    );
    assert_eq!(
        ids(plan(&scope(), &m, true, RefreshBudget::Contracts(0)))[1],
        ("T-2".to_string(), true, false),
        "a newly named field needs the raw values T-2 lacks"
    );
}

#[test]
fn the_refresh_budget_takes_the_stalest_and_covers_everyone_in_bounded_runs() {
    let rows = vec![
        row("T-1", "SIGN", Some(T3), None),
        row("T-2", "SIGN", Some(T1), None),
        row("T-3", "SIGN", Some(T2), None),
        row("T-4", "SIGN", Some(T1), None),
        row("T-5", "SIGN", Some(T3), None),
    ];
    let mut m = merged(rows, &["T-2"]);
    let tasks = plan(&scope(), &m, false, RefreshBudget::Contracts(2));
    let got: Vec<_> = tasks.iter().map(|t| (t.id.as_str(), t.refresh)).collect();
    assert_eq!(got, [("T-2", false), ("T-3", true), ("T-4", true)]);
    // Applying the fetches and planning again: everyone within ceil(5/2) runs.
    let mut seen = BTreeSet::new();
    m.changed.clear();
    for run in 0..3 {
        let at = format!("2026-11-0{}T00:00:00Z", run + 1);
        for t in plan(&scope(), &m, false, RefreshBudget::Percent(40.0)) {
            seen.insert(t.id.clone());
            let r = EnrichResult {
                id: t.id,
                key_pointers: Some(BTreeMap::new()),
                key_pointers_fetched_at: Some(at.clone()),
                ..EnrichResult::default()
            };
            apply(&mut m, &r, &[]);
        }
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(RefreshBudget::Percent(2.0).of(301), 7, "rounded up");
    assert_eq!(RefreshBudget::Percent(0.0).of(301), 0);
    assert_eq!(RefreshBudget::Contracts(500).of(301), 301);
}

#[test]
fn results_set_values_mark_gone_contracts_and_date_the_oldest() {
    let mut m = merged(
        vec![
            row("T-1", "EXECUTED", Some(T1), None),
            row("T-2", "SIGN", Some(T2), None),
        ],
        &[],
    );
    let fields = vec!["contract_value".to_string()];
    let value = BTreeMap::from([("contract_value".to_string(), Some("7".to_string()))]);
    apply(
        &mut m,
        &EnrichResult {
            id: "T-1".into(),
            key_pointers: Some(value),
            key_pointers_fetched_at: Some(T3.into()),
            document_fetched_at: Some(T3.into()),
            ..EnrichResult::default()
        },
        &fields,
    );
    let t1 = &m.rows[0];
    assert_eq!(t1.key_pointer("contract_value").as_deref(), Some("7"));
    assert_eq!(
        (
            t1.document_sha256.as_deref(),
            t1.document_fetched_at.as_deref()
        ),
        (None, Some(T3)),
        "document unavailable: null checksum, dated"
    );
    let now = DateTime::parse_from_rfc3339("2026-10-04T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(
        oldest_key_pointers_age_secs(&scope(), &m.rows, now),
        Some(2 * 86_400)
    );
    apply(
        &mut m,
        &EnrichResult {
            id: "T-2".into(),
            vanished_at: Some(T3.into()),
            ..EnrichResult::default()
        },
        &fields,
    );
    assert_eq!(m.rows[1].deleted_at.as_deref(), Some(T3));
    assert!(m.deleted.contains("T-2"));
    assert_eq!(
        oldest_key_pointers_age_secs(&scope(), &m.rows, now),
        Some(86_400),
        "deleted rows no longer count"
    );
}
