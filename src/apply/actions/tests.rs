//! Unit tests of the planner: small literal frames through the real
//! reconciliation, then into actions.

use super::*;
use crate::job::ApplySettings;
use crate::reconcile::{demo_spec, reconcile, RunContext};

fn snapshot() -> DataFrame {
    let s = |v: &[Option<&str>]| v.iter().map(|x| x.map(str::to_string)).collect::<Vec<_>>();
    df![
        "id" => ["T-1", "T-2", "T-3"],
        "contract_num" => [1i64, 2, 3],
        "contract_status" => ["EXECUTED", "SIGN", "SIGN"],
        "deleted_at" => s(&[None, None, None]),
        "external_metadata.id" => ["E-1", "E-2", "E-3"],
        "external_metadata.record_data.vendor_id" => ["V1", "V2", "V3"],
        "external_metadata.record_data.po_number" => ["P1", "P2", "P3"],
        "external_metadata.record_data.legal_entity_id" => ["L1", "L1", "L1"],
        "key_pointers.contract_value" => s(&[Some("12500.5"), None, Some("7")]),
        "key_pointers.currency" => ["USD", "USD", "USD"],
        "key_pointers.effective_date" => s(&[Some("2026-01-05T10:00:00Z"), Some("2026-01-01"), Some("2026-01-01")]),
        "key_pointers.expiry_date" => s(&[None, None, None]),
        "document_sha256" => s(&[Some("ABCDEF"), None, None]),
    ]
    .unwrap()
}

fn records() -> DataFrame {
    let s = |v: &[Option<&str>]| v.iter().map(|x| x.map(str::to_string)).collect::<Vec<_>>();
    df![
        "erp_record_id" => [" E-1 ", "E-2", "E-3", "E-9"],
        "spotdraft_contract_id" => s(&[None, Some("T-2"), Some("T-3"), Some("T-99")]),
        "vendor_id" => ["V1", "V2", "WRONG", "V9"],
        "po_number" => ["P1", "P2", "P3", "P9"],
        "legal_entity_id" => ["L1", "L1", "L1", "L1"],
        "status" => ["PENDING_SIGNATURE", "PENDING_SIGNATURE", "PENDING_SIGNATURE", "ACTIVE"],
        "amount" => ["100", "500", "7.00", "1"],
        "currency" => ["USD", "USD", "USD", "USD"],
        "effective_date" => ["2026-01-01", "2026-01-01", "2026-01-01", "2026-01-01"],
        "expiry_date" => s(&[None, None, None, None]),
        "document_sha256" => s(&[None, None, None, None]),
        "version" => ["7", "1", "1", "1"],
    ]
    .unwrap()
}

fn settings() -> ApplySettings {
    ApplySettings {
        enabled: true,
        back_reference: true,
        if_match: Some("version".into()),
        ..ApplySettings::default()
    }
}

fn plan(settings: &ApplySettings) -> Vec<Action> {
    let spec = demo_spec();
    let ctx = RunContext {
        run_id: "run-1".into(),
        job: "demo".into(),
        detected_at: "2026-01-01T00:00:00Z".into(),
        known_existing_contract_ids: vec![],
    };
    let drift = reconcile(snapshot(), records(), &spec, &ctx).unwrap().drift;
    plan_actions(&PlanInput {
        job: "demo",
        drift: &drift,
        snapshot: &snapshot(),
        records: &records(),
        spec: &spec,
        settings,
        create: None,
    })
    .unwrap()
}

fn of_kind(actions: &[Action], kind: ActionKind) -> Vec<&Action> {
    actions.iter().filter(|a| a.kind == kind).collect()
}

#[test]
fn one_update_per_record_holds_every_differing_spotdraft_owned_field_formatted_for_the_erp() {
    let actions = plan(&settings());
    let e1 = of_kind(&actions, ActionKind::UpdateErpFields)
        .into_iter()
        .find(|a| a.erp_record_id.as_deref() == Some("E-1"))
        .expect("an update of E-1");
    let expected: BTreeMap<String, String> = [
        ("amount", "12500.50"),
        ("effective_date", "2026-01-05"),
        ("spotdraft_contract_id", "T-1"),
        ("status", "ACTIVE"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .into();
    assert_eq!(e1.fields, expected);
    assert_eq!(e1.if_match.as_deref(), Some("7"));
    assert!(e1.drift_kinds.contains("back_reference"));
    assert_eq!(
        of_kind(&actions, ActionKind::UpdateErpFields)
            .iter()
            .filter(|a| a.erp_record_id.as_deref() == Some("E-1"))
            .count(),
        1
    );
}

#[test]
fn a_null_spotdraft_value_is_never_written_but_reviewed_with_the_reason() {
    let actions = plan(&settings());
    let e2_updates: Vec<_> = of_kind(&actions, ActionKind::UpdateErpFields)
        .into_iter()
        .filter(|a| a.erp_record_id.as_deref() == Some("E-2"))
        .collect();
    assert!(
        e2_updates.iter().all(|a| !a.fields.contains_key("amount")),
        "{e2_updates:?}"
    );
    assert!(
        of_kind(&actions, ActionKind::Review)
            .iter()
            .any(|a| a.erp_record_id.as_deref() == Some("E-2")
                && a.reason.as_deref().unwrap_or("").contains("empty")),
        "{actions:#?}"
    );
}

#[test]
fn erp_sourced_fields_orphans_and_missing_documents_get_their_actions() {
    let actions = plan(&settings());
    // vendor_id comes from external_metadata: owner none by default.
    assert!(of_kind(&actions, ActionKind::Review)
        .iter()
        .any(|a| a.contract_id.as_deref() == Some("T-3")
            && a.reason.as_deref().unwrap_or("").starts_with("vendor_id")));
    assert!(of_kind(&actions, ActionKind::Review)
        .iter()
        .any(|a| a.drift_kinds.contains("orphan_erp_record")));
    let docs = of_kind(&actions, ActionKind::AttachDocument);
    assert_eq!(docs.len(), 1);
    assert_eq!(
        (
            docs[0].erp_record_id.as_deref(),
            docs[0].document_sha256.as_deref()
        ),
        (Some("E-1"), Some("abcdef"))
    );
    assert!(of_kind(&actions, ActionKind::SetExternalMetadata).is_empty());
}

#[test]
fn without_back_reference_the_empty_back_reference_is_left_alone() {
    let actions = plan(&ApplySettings {
        back_reference: false,
        ..settings()
    });
    assert!(actions
        .iter()
        .all(|a| !a.fields.contains_key("spotdraft_contract_id")));
}

#[test]
fn decimals_are_written_at_the_scale_and_dates_as_days() {
    assert_eq!(decimal_at_scale("12500.5", 2).as_deref(), Some("12500.50"));
    assert_eq!(decimal_at_scale("1,234.565", 2).as_deref(), Some("1234.57"));
    assert_eq!(decimal_at_scale("-0.004", 2).as_deref(), Some("0.00"));
    assert_eq!(decimal_at_scale("9.999", 2).as_deref(), Some("10.00"));
    assert_eq!(decimal_at_scale("12a", 2), None);
    let date = demo_spec()
        .compares
        .into_iter()
        .find(|c| c.field == "effective_date")
        .unwrap();
    assert_eq!(
        erp_value_of(&date, Some("2026-02-03T00:00:00Z")).as_deref(),
        Ok("2026-02-03")
    );
    assert!(erp_value_of(&date, Some("03/02/2026")).is_err());
    assert!(erp_value_of(&date, Some("  ")).is_err());
}

#[test]
fn every_drift_row_is_covered_by_exactly_one_action_which_keeps_its_drift_id() {
    let spec = demo_spec();
    let ctx = RunContext {
        run_id: "run-1".into(),
        job: "demo".into(),
        detected_at: "2026-01-01T00:00:00Z".into(),
        known_existing_contract_ids: vec![],
    };
    let drift = reconcile(snapshot(), records(), &spec, &ctx).unwrap().drift;
    let ids = text_col(&drift, "drift_id").unwrap();
    let (kinds, records) = (
        text_col(&drift, "drift_kind").unwrap(),
        text_col(&drift, "erp_record_id").unwrap(),
    );
    let actions = plan(&settings());
    for (i, id) in ids.iter().enumerate() {
        let id = id.as_deref().unwrap();
        let covering: Vec<&Action> = actions
            .iter()
            .filter(|a| a.drift_ids.contains(id))
            .collect();
        assert_eq!(covering.len(), 1, "{id} ({:?})", kinds[i]);
        assert!(covering[0]
            .drift_kinds
            .contains(kinds[i].as_deref().unwrap()));
    }
    // E-1's update holds its three field mismatches (and the back-reference, no row).
    let e1 = actions
        .iter()
        .find(|a| {
            a.kind == ActionKind::UpdateErpFields && a.erp_record_id.as_deref() == Some("E-1")
        })
        .unwrap();
    let e1_rows = (0..drift.height())
        .filter(|i| {
            kinds[*i].as_deref() == Some("field_mismatch")
                && records[*i].as_deref().map(str::trim) == Some("E-1")
        })
        .count();
    assert_eq!((e1.drift_ids.len(), e1_rows), (3, 3));
    let covered: usize = actions.iter().map(|a| a.drift_ids.len()).sum();
    assert_eq!(covered, drift.height());
}
