//! Reconciliation: the demo spec, shared by tests, the benchmark and examples.

use super::spec::{
    CompareKind, CompareSpec, KeySource, KeySpec, Normalize, ReconcileSpec, Severity,
};
use std::collections::BTreeMap;

fn key(column: &str, normalize: &[Normalize]) -> KeySource {
    KeySource {
        column: column.to_string(),
        normalize: normalize.to_vec(),
    }
}

fn compare(
    field: &str,
    spotdraft_column: &str,
    kind: CompareKind,
    severity: Severity,
) -> CompareSpec {
    CompareSpec {
        field: field.to_string(),
        spotdraft_column: spotdraft_column.to_string(),
        erp_column: field.to_string(),
        kind,
        severity,
    }
}

/// The demo job's reconciliation: the generated fixtures' truth is written
/// against exactly this spec.
///
/// Keys: `external_metadata.id` [trim, upper]; vendor and PO from
/// `external_metadata.record_data`; fallback on (vendor_id, po_number);
/// statuses SIGN, EXECUTED, ON_HOLD, VOIDED; documents checked. Compared:
/// vendor_id, po_number, status (enum), amount (decimal, 2), currency,
/// effective_date, expiry_date.
pub fn demo_spec() -> ReconcileSpec {
    use Normalize::{StripLeadingZeros, Trim, Upper};
    let string = |normalize: &[Normalize]| CompareKind::String {
        normalize: normalize.to_vec(),
    };
    let status_map = [
        ("EXECUTED", "ACTIVE"),
        ("SIGN", "PENDING_SIGNATURE"),
        ("ON_HOLD", "ON_HOLD"),
        ("VOIDED", "CANCELLED"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect::<BTreeMap<_, _>>();
    ReconcileSpec {
        statuses: ["SIGN", "EXECUTED", "ON_HOLD", "VOIDED"]
            .map(String::from)
            .to_vec(),
        keys: KeySpec {
            erp_record_id: key("external_metadata.id", &[Trim, Upper]),
            vendor_id: Some(key(
                "external_metadata.record_data.vendor_id",
                &[Trim, Upper],
            )),
            po_number: Some(key(
                "external_metadata.record_data.po_number",
                &[Trim, Upper, StripLeadingZeros],
            )),
            legal_entity_id: Some(key(
                "external_metadata.record_data.legal_entity_id",
                &[Trim, Upper],
            )),
            spotdraft_contract_id_normalize: vec![Trim, Upper],
        },
        fallback_key: vec!["vendor_id".to_string(), "po_number".to_string()],
        compares: vec![
            compare(
                "vendor_id",
                "external_metadata.record_data.vendor_id",
                string(&[Trim, Upper]),
                Severity::High,
            ),
            compare(
                "po_number",
                "external_metadata.record_data.po_number",
                string(&[Trim, Upper, StripLeadingZeros]),
                Severity::High,
            ),
            compare(
                "status",
                "contract_status",
                CompareKind::Enum { values: status_map },
                Severity::High,
            ),
            compare(
                "amount",
                "key_pointers.contract_value",
                CompareKind::Decimal { scale: 2 },
                Severity::High,
            ),
            compare(
                "currency",
                "key_pointers.currency",
                string(&[Trim, Upper]),
                Severity::Medium,
            ),
            compare(
                "effective_date",
                "key_pointers.effective_date",
                CompareKind::Date,
                Severity::Medium,
            ),
            compare(
                "expiry_date",
                "key_pointers.expiry_date",
                CompareKind::Date,
                Severity::Low,
            ),
        ],
        check_documents: true,
        // As `[severity]` in jobs/demo.toml (a job test checks they agree).
        kind_severity: [
            ("unlinked_contract", Severity::Medium),
            ("missing_in_erp", Severity::High),
            ("link_conflict", Severity::High),
            ("orphan_erp_record", Severity::Medium),
            ("duplicate_link", Severity::High),
            ("unusable_erp_value", Severity::Medium),
            ("missing_document", Severity::High),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        needs_contract: None,
    }
}
