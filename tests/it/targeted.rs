//! Targeted runs (`run_targeted`, `run --contracts`) over loopback against a
//! sandbox the test owns: contracts looked up by id, upserted into the
//! snapshot, reconciled; latest.json, the watermark and the lifecycle untouched.

use crate::common::{demo_job_against_own_sandbox, drift_keys, text};
use contract_recon::report::lifecycle::RunKind;
use contract_recon::runner::{
    apply_plan, run_job, run_targeted, ApplyPlanRequest, RunOptions, TargetHint, TargetSet,
};
use contract_recon::sandbox::dataset::FixtureContract;
use contract_recon::sandbox::StateHandle;
use polars::prelude::*;
use std::collections::BTreeSet;
use std::path::Path;

fn read_parquet(path: &Path) -> DataFrame {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ParquetReader::new(file).finish().unwrap()
}

/// Executed contracts linked by id to an ERP record, that no drift row of
/// `drift` names (by contract or by record).
fn clean_executed(state: &StateHandle, drift: &DataFrame) -> Vec<FixtureContract> {
    let named: BTreeSet<String> = text(drift, "contract_id")
        .into_iter()
        .chain(text(drift, "erp_record_id"))
        .collect();
    let mut out: Vec<FixtureContract> = state
        .contracts()
        .into_iter()
        .filter(|c| {
            let em = c
                .contract
                .external_metadata
                .id
                .clone()
                .unwrap_or_default()
                .trim()
                .to_uppercase();
            c.contract.contract_status == "EXECUTED"
                && !em.is_empty()
                && !named.contains(c.contract.id.composite())
                && !named.contains(&em)
        })
        .collect();
    out.sort_by(|a, b| a.contract.id.cmp(&b.contract.id));
    out
}

/// Every path under `dir`, as text.
fn paths_under(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut out = vec![];
    for e in entries {
        let p = e.unwrap().path();
        out.push(p.display().to_string());
        if p.is_dir() {
            out.extend(paths_under(&p));
        }
    }
    out
}

fn number(c: &FixtureContract) -> i64 {
    c.contract.id.number().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_targeted_run_finds_and_plans_its_contracts_drift_and_leaves_nightly_state_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (mut job, sandbox) = demo_job_against_own_sandbox(tmp.path()).await;
    job.apply.sink = Some(crate::common::rest_sink_to(&sandbox, 4));
    let nightly = run_job(&job, RunOptions::default()).await.unwrap();
    let nightly_drift = read_parquet(&Path::new(&nightly.tables["drift"]).join("drift.parquet"));
    let latest_path = out.join("runs/job=demo/latest.json");
    let state_path = out.join("state/demo.json");
    let (latest_before, state_before) = (
        std::fs::read(&latest_path).unwrap(),
        std::fs::read(&state_path).unwrap(),
    );

    // Two clean contracts edited in SpotDraft: one's vendor id (its list
    // item changes), the other's contract value alone (a metadata value
    // edited without its list item or last_updated_on moving).
    let state = sandbox.state();
    let clean = clean_executed(&state, &nightly_drift);
    assert!(clean.len() >= 4, "the demo has clean executed contracts");
    let (mut edited, valued) = (clean[0].clone(), clean[1].clone());
    edited
        .contract
        .external_metadata
        .record_data
        .insert("vendor_id".into(), serde_json::json!("V-TARGETED"));
    state.upsert_contract(edited.clone());
    assert!(state.touch_contract(edited.contract.id.composite()));
    assert!(state.set_key_pointer_value(
        valued.contract.id.composite(),
        "contract_value",
        serde_json::json!(1.0)
    ));

    let targets = TargetSet {
        contracts: [
            (number(&edited), TargetHint::Changed),
            (number(&valued), TargetHint::MetadataStale),
        ]
        .into_iter()
        .collect(),
    };
    let before = state.counters();
    let run = run_targeted(&job, &targets, RunOptions::default())
        .await
        .unwrap();
    let after = state.counters();

    let s = &run.summary;
    assert_eq!(s.run_kind, RunKind::Targeted);
    assert!(s.run_id.starts_with("targeted-"), "{}", s.run_id);
    assert!(
        run.report_dir.contains("run_id=targeted-"),
        "{}",
        run.report_dir
    );
    let drift = read_parquet(&Path::new(&run.tables["drift"]).join("drift.parquet"));
    // Record ids compared as the job normalizes them (trim, upper): the
    // extract may spell one differently from the contract naming it.
    let em = |c: &FixtureContract| {
        c.contract
            .external_metadata
            .id
            .clone()
            .unwrap()
            .trim()
            .to_uppercase()
    };
    let expected: BTreeSet<_> = [
        (
            "field_mismatch".to_string(),
            edited.contract.id.composite().to_string(),
            em(&edited),
            "vendor_id".to_string(),
        ),
        (
            "field_mismatch".to_string(),
            valued.contract.id.composite().to_string(),
            em(&valued),
            "amount".to_string(),
        ),
    ]
    .into_iter()
    .collect();
    let found: BTreeSet<_> = drift_keys(&drift)
        .into_iter()
        .map(|(k, c, e, f)| (k, c, e.to_uppercase(), f))
        .collect();
    assert_eq!(found, expected);
    assert_eq!(s.by_kind["orphan_erp_record"], 0);
    assert_eq!(s.lifecycle.as_ref().unwrap().resolved, 0);
    assert!(!run.tables.contains_key("resolved"), "{:?}", run.tables);
    assert!(
        !paths_under(&out.join("resolved"))
            .iter()
            .any(|p| p.contains(&s.run_id)),
        "no resolved rows from a targeted run"
    );
    let scope = s.scope.as_ref().unwrap();
    assert_eq!(
        scope.kinds_not_reported,
        ["orphan_erp_record", "missing_in_spotdraft"]
    );
    assert_eq!(scope.contracts.len(), 2);
    assert_eq!((s.inputs.contracts, s.inputs.contracts_in_scope), (2, 2));
    let html = std::fs::read_to_string(run.report_html.as_ref().unwrap()).unwrap();
    assert!(
        html.contains("Targeted run of contracts")
            && html.contains("not reported: orphan_erp_record"),
        "the report says what it covers"
    );

    // The corrections are planned: the ERP amount gets SpotDraft's value;
    // a vendor id (a key a link may rest on) goes to review.
    let plan = read_parquet(&Path::new(&run.tables["plan"]).join("plan.parquet"));
    let rows: BTreeSet<(String, String, String)> = (0..plan.height())
        .map(|i| {
            (
                text(&plan, "action")[i].clone(),
                text(&plan, "erp_record_id")[i].to_uppercase(),
                text(&plan, "values")[i].clone(),
            )
        })
        .collect();
    let expected_plan: BTreeSet<(String, String, String)> = [
        (
            "update_erp_fields".to_string(),
            em(&valued),
            r#"{"amount":"1.00"}"#.to_string(),
        ),
        ("review".to_string(), em(&edited), "{}".to_string()),
    ]
    .into_iter()
    .collect();
    assert_eq!(rows, expected_plan);

    // Nightly state untouched; the snapshot has the new values.
    assert_eq!(std::fs::read(&latest_path).unwrap(), latest_before);
    assert_eq!(std::fs::read(&state_path).unwrap(), state_before);
    let snapshot = read_parquet(&out.join("snapshots/demo/snapshot.parquet"));
    let ids = text(&snapshot, "id");
    let vendors = text(&snapshot, "external_metadata.record_data.vendor_id");
    let i = ids
        .iter()
        .position(|id| id == edited.contract.id.composite())
        .unwrap();
    assert_eq!(vendors[i], "V-TARGETED");
    // Two contracts: one lookup, their metadata values, the edited one's document.
    assert_eq!(after.list_requests - before.list_requests, 1);
    assert_eq!(
        after.key_pointers_requests - before.key_pointers_requests,
        2
    );
    assert_eq!(after.document_requests - before.document_requests, 1);

    // The plan is reviewed and applied like a nightly run's, by its run id.
    let applied = apply_plan(
        &job,
        ApplyPlanRequest {
            run_id: s.run_id.clone(),
            ..ApplyPlanRequest::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(applied.summary.failed, 0, "{:?}", applied.summary);
    let record = state
        .erp_records()
        .into_iter()
        .find(|r| r.erp_record_id.to_uppercase() == em(&valued))
        .unwrap();
    assert_eq!(record.amount.as_deref(), Some("1.00"));

    // The next nightly run still compares with the nightly run before it.
    let next = run_job(&job, RunOptions::default()).await.unwrap();
    assert_eq!(
        next.summary
            .lifecycle
            .as_ref()
            .unwrap()
            .previous_run_id
            .as_deref(),
        Some(nightly.summary.run_id.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_hint_or_a_lookup_finding_nothing_marks_the_contract_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (job, sandbox) = demo_job_against_own_sandbox(tmp.path()).await;
    let nightly = run_job(&job, RunOptions::default()).await.unwrap();
    let nightly_drift = read_parquet(&Path::new(&nightly.tables["drift"]).join("drift.parquet"));
    let state = sandbox.state();
    let clean = clean_executed(&state, &nightly_drift);
    let (removed, said_deleted, kept) = (&clean[0], &clean[1], &clean[2]);
    state
        .remove_contract(removed.contract.id.composite())
        .unwrap();

    let targets = TargetSet {
        contracts: [
            (number(removed), TargetHint::Changed),
            (number(said_deleted), TargetHint::Deleted),
        ]
        .into_iter()
        .collect(),
    };
    let before = state.counters();
    let run = run_targeted(&job, &targets, RunOptions::default())
        .await
        .unwrap();
    let after = state.counters();
    // Only the changed one is asked about; the deleted hint is trusted.
    assert_eq!(after.list_requests - before.list_requests, 1);

    let snapshot = read_parquet(&out.join("snapshots/demo/snapshot.parquet"));
    let (ids, deleted) = (text(&snapshot, "id"), text(&snapshot, "deleted_at"));
    let deleted_at = |c: &FixtureContract| {
        let i = ids
            .iter()
            .position(|id| id == c.contract.id.composite())
            .unwrap();
        deleted[i].clone()
    };
    assert!(!deleted_at(removed).is_empty());
    assert!(!deleted_at(said_deleted).is_empty());
    assert!(deleted_at(kept).is_empty());
    let mut expected = vec![
        removed.contract.id.composite().to_string(),
        said_deleted.contract.id.composite().to_string(),
    ];
    expected.sort();
    assert_eq!(run.summary.scope.as_ref().unwrap().contracts, expected);
    // Their ERP records now name deleted contracts: a nightly run reports
    // them as orphans, a targeted run does not.
    assert_eq!(run.drift_total(), 0, "{:?}", run.summary.by_kind);
    let next = run_job(&job, RunOptions::default()).await.unwrap();
    assert!(next.summary.by_kind["orphan_erp_record"] >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targeted_runs_and_backfills_take_the_jobs_lease() {
    use contract_recon::ingest::backfill::BackfillRange;
    use contract_recon::lease::LeaseError;
    use contract_recon::runner::{run_backfill, BackfillRequest};
    let tmp = tempfile::tempdir().unwrap();
    let (job, _sandbox) = demo_job_against_own_sandbox(tmp.path()).await;
    let targets = TargetSet {
        contracts: [(1072, TargetHint::Changed)].into_iter().collect(),
    };
    let held = |r: &anyhow::Result<contract_recon::runner::RunOutcome>| {
        r.as_ref().err().is_some_and(|e| {
            matches!(
                e.downcast_ref::<LeaseError>(),
                Some(LeaseError::Held { .. })
            )
        })
    };
    let (a, b) = tokio::join!(
        run_job(&job, RunOptions::default()),
        run_targeted(&job, &targets, RunOptions::default())
    );
    assert!(
        (a.is_ok() && held(&b)) || (held(&a) && b.is_ok()),
        "exactly one runs: {:?} / {:?}",
        a.as_ref().map(|o| &o.summary.run_id),
        b.as_ref().map(|o| &o.summary.run_id)
    );
    let request = BackfillRequest {
        range: BackfillRange {
            from: "2025-01-01".parse().unwrap(),
            to: "2025-03-31".parse().unwrap(),
            by: contract_recon::ingest::WindowField::CreatedAt,
        },
        window: chrono::Duration::days(30),
        resume: false,
    };
    let (a, b) = tokio::join!(
        run_backfill(&job, &request, RunOptions::default()),
        run_targeted(&job, &targets, RunOptions::default())
    );
    assert!(
        (a.is_ok() && held(&b)) || (held(&a) && b.is_ok()),
        "exactly one runs: {:?} / {:?}",
        a.as_ref().map(|o| &o.summary.run_id),
        b.as_ref().map(|o| &o.summary.run_id)
    );
}
