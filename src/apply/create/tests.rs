use super::*;
use crate::job::create::{ContractField, CounterParty, NamePart};
use crate::reconcile::spec::NeedsContract;

fn settings() -> CreateSettings {
    CreateSettings {
        needs_contract: NeedsContract {
            column: "status".into(),
            values: vec!["APPROVED".into()],
        },
        template: TemplateChoice::ByColumn {
            column: "contract_type".into(),
            templates: BTreeMap::from([("PA".to_string(), 1204), ("NDA".to_string(), 1205)]),
        },
        contract_name: vec![
            NamePart::Column("vendor_name".into()),
            NamePart::Text(" - PO ".into()),
            NamePart::Column("po_number".into()),
        ],
        integration_name: "NetSuite".into(),
        record_type: "purchase_order".into(),
        record_data: BTreeMap::from([
            ("po_number".to_string(), "po_number".to_string()),
            ("vendor_id".to_string(), "vendor_id".to_string()),
        ]),
        contract_data: BTreeMap::from([
            (
                "agreement_date".to_string(),
                ContractField {
                    column: "effective_date".into(),
                    kind: FieldKind::Date,
                },
            ),
            (
                "contract_value".to_string(),
                ContractField {
                    column: "amount".into(),
                    kind: FieldKind::Currency {
                        column: Some("currency".into()),
                        fixed: None,
                    },
                },
            ),
        ]),
        counter_party: CounterParty {
            is_individual: false,
            organization_name: Some("vendor_name".into()),
            contact_name: "contact_name".into(),
            contact_email: "contact_email".into(),
            jurisdiction: Some("country".into()),
        },
        document_column: Some("document".into()),
        documents_base: std::path::PathBuf::from("/tmp"),
        max_creates_per_run: 10,
    }
}

fn record(pairs: &[(&str, &str)]) -> Record {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn full() -> Record {
    record(&[
        ("contract_type", "PA"),
        ("vendor_name", "Acme GmbH"),
        ("po_number", "PO-77"),
        ("vendor_id", "V-1"),
        ("effective_date", "2026-03-28T00:00:00Z"),
        ("amount", "12500.50"),
        ("currency", "eur"),
        ("contact_name", "Avery Jo Stone"),
        ("contact_email", "avery@acme.example"),
        ("country", "de"),
    ])
}

#[test]
fn a_record_becomes_the_v2_1_create_body() {
    let fields = create_fields(" E-1 ".trim(), &full(), &settings()).unwrap();
    let mut a = Action::new(ActionKind::CreateContract, Some("E-1"), None, "k");
    a.fields = fields;
    let body = create_body(&a).unwrap();
    assert_eq!(
        body,
        json!({
            "contract_template_id": 1204,
            "contract_name": "Acme GmbH - PO PO-77",
            "contract_data": {
                "agreement_date": "2026-03-28",
                "contract_value": {"type": "EUR", "value": 12500.5}
            },
            "counter_party_details": [{
                "is_individual": false,
                "organization_name": "Acme GmbH",
                "poc_details": {"first_name": "Avery", "last_name": "Jo Stone", "email": "avery@acme.example"},
                "organization_details": {"jurisdiction_iso_code": "DE"}
            }],
            "external_metadata": {
                "id": "E-1", "integration_name": "NetSuite", "record_type": "purchase_order",
                "record_data": {"po_number": "PO-77", "vendor_id": "V-1"}
            }
        })
    );
}

#[test]
fn records_that_cannot_make_a_valid_body_say_why() {
    let s = settings();
    let mut r = full();
    r.insert("contract_type".into(), "MSA".into());
    assert!(create_fields("E-1", &r, &s)
        .unwrap_err()
        .contains("\"MSA\" has no template"));
    let mut r = full();
    r.insert("amount".into(), "twelve".into());
    assert!(create_fields("E-1", &r, &s)
        .unwrap_err()
        .contains("contract_data.contract_value"));
    let mut r = full();
    r.remove("contact_email");
    assert!(create_fields("E-1", &r, &s)
        .unwrap_err()
        .contains("contact_email"));
    let mut r = full();
    r.insert("effective_date".into(), "28/03/2026".into());
    assert!(create_fields("E-1", &r, &s)
        .unwrap_err()
        .contains("is not a date"));
}

#[test]
fn empty_optional_values_are_left_out() {
    let mut r = full();
    r.remove("effective_date");
    r.remove("country");
    let f = create_fields("E-1", &r, &settings()).unwrap();
    assert_eq!(
        f["contract_data"],
        r#"{"contract_value":{"type":"EUR","value":12500.5}}"#
    );
    assert!(!f["counter_party_details"].contains("organization_details"));
}

#[test]
fn follow_ups_wait_for_the_contract_and_get_its_id() {
    let mut back = Action::new(ActionKind::UpdateErpFields, Some("E-1"), None, "k");
    back.fields
        .insert("spotdraft_contract_id".into(), CREATED_CONTRACT_ID.into());
    assert!(crate::apply::create_lane::waits_for_create(&back));
    let created = BTreeMap::from([("E-1".to_string(), "T-9".to_string())]);
    let r = crate::apply::create_lane::resolve(&back, &created).unwrap();
    assert_eq!(r.fields["spotdraft_contract_id"], "T-9");
    assert_eq!(r.contract_id.as_deref(), Some("T-9"));
    assert!(crate::apply::create_lane::resolve(&back, &BTreeMap::new()).is_none());
}
