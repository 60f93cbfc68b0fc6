//! Snapshot round trips, older files, and derived columns.

use super::*;
use bytes::Bytes;

fn contract(json: &str) -> Contract {
    serde_json::from_str(json).unwrap()
}

#[test]
fn rows_round_trip_through_parquet_with_literal_column_names() {
    let c = contract(
        r#"{"id":"T-42","created":"2026-01-02T03:04:05Z","contract_name":"MSA","contract_status":"EXECUTED",
            "contract_type_id":7,"external_metadata":{"id":99,"record_type":"po","record_data":{"vendor_id":"V-1","amount":12.5}}}"#,
    );
    let keys = vec![
        "vendor_id".to_string(),
        "amount".to_string(),
        "absent".to_string(),
    ];
    let mut row = SnapshotRow::from_contract(&c, &keys);
    row.key_pointers
        .insert("contract_value".into(), Some("1000".into()));
    row.first_seen_at = Some("2026-02-01T00:00:00Z".into());
    let kp = vec!["contract_value".to_string()];
    let mut df = to_frame(std::slice::from_ref(&row), &keys, &kp).unwrap();
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(
        names.contains(&"external_metadata.record_data.vendor_id".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"key_pointers.contract_value".to_string()));
    assert_eq!(df.column("contract_num").unwrap().dtype(), &DataType::Int64);
    assert_eq!(
        df.column("contract_type_id").unwrap().dtype(),
        &DataType::Int64
    );
    let bytes = frame_to_parquet(&mut df).unwrap();
    let back = from_parquet(Bytes::from(bytes), &keys, &kp).unwrap();
    assert_eq!(back.rows, vec![row.clone()]);
    assert!(back.missing_key_pointer_fields.is_empty());
    assert_eq!(row.contract_num, Some(42));
    assert_eq!(row.em_id.as_deref(), Some("99"));
    assert_eq!(row.record_data["amount"].as_deref(), Some("12.5"));
    assert_eq!(row.record_data["absent"], None);
    // A field the job adds later is reported missing.
    let more = vec!["contract_value".to_string(), "currency".to_string()];
    let back = from_parquet(
        Bytes::from(frame_to_parquet(&mut df).unwrap()),
        &keys,
        &more,
    )
    .unwrap();
    assert_eq!(
        back.missing_key_pointer_fields,
        vec!["currency".to_string()]
    );
}

#[test]
fn list_item_hash_changes_with_the_item() {
    let a = contract(r#"{"id":"T-1","created":"2026-01-01T00:00:00Z","contract_status":"SIGN"}"#);
    let b =
        contract(r#"{"id":"T-1","created":"2026-01-01T00:00:00Z","contract_status":"EXECUTED"}"#);
    assert_eq!(list_item_sha256(&a), list_item_sha256(&a.clone()));
    assert_ne!(list_item_sha256(&a), list_item_sha256(&b));
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn enriched_row() -> SnapshotRow {
    let c = contract(
        r#"{"id":"T-7","created":"2026-01-02T03:04:05Z","contract_status":"EXECUTED",
            "external_metadata":{"id":"E-7","record_data":{"po_number":"PO-7","legal_entity_id":"LE-1","n":3}}}"#,
    );
    let mut row = SnapshotRow::from_contract(&c, &strings(&["po_number"]));
    let all = BTreeMap::from([
        ("contract_value".to_string(), Some("1000".to_string())),
        ("currency".to_string(), Some("EUR".to_string())),
        ("notes".to_string(), None),
    ]);
    row.set_key_pointers(all, &strings(&["contract_value"]), "2026-11-01T02:00:00Z");
    row.document_sha256 = Some("ab".repeat(32));
    row.document_fetched_at = Some("2026-11-01T02:00:01Z".into());
    row.changed_at = Some("2026-10-01T00:00:00Z".into());
    row
}

fn parquet(rows: &[SnapshotRow], keys: &[String], fields: &[String]) -> Bytes {
    Bytes::from(frame_to_parquet(&mut to_frame(rows, keys, fields).unwrap()).unwrap())
}

#[test]
fn raw_json_columns_fill_newly_named_keys_and_fields_without_a_refetch() {
    let row = enriched_row();
    let bytes = parquet(
        std::slice::from_ref(&row),
        &strings(&["po_number"]),
        &strings(&["contract_value"]),
    );
    let (keys, fields) = (
        strings(&["po_number", "legal_entity_id", "n"]),
        strings(&["contract_value", "currency", "notes", "never_returned"]),
    );
    let back = from_parquet(bytes.clone(), &keys, &fields).unwrap();
    let r = &back.rows[0];
    assert_eq!(r.record_data["legal_entity_id"].as_deref(), Some("LE-1"));
    assert_eq!(r.record_data["n"].as_deref(), Some("3"));
    assert_eq!(r.key_pointers["currency"].as_deref(), Some("EUR"));
    assert_eq!(r.key_pointers["never_returned"], None);
    assert_eq!(r.key_pointers_all, row.key_pointers_all);
    assert_eq!(
        r.key_pointers_fetched_at.as_deref(),
        Some("2026-11-01T02:00:00Z")
    );
    // Columns exist for the new names; the row needs no fetch for them.
    assert_eq!(back.missing_key_pointer_fields.len(), 3);
    let df = to_frame(&back.rows, &keys, &fields).unwrap();
    let cell = |name: &str| {
        df.column(name)
            .unwrap()
            .str()
            .unwrap()
            .get(0)
            .map(str::to_string)
    };
    assert_eq!(cell("key_pointers.currency").as_deref(), Some("EUR"));
    assert_eq!(
        cell("external_metadata.record_data.legal_entity_id").as_deref(),
        Some("LE-1")
    );
    assert_eq!(
        cell("key_pointers").as_deref(),
        Some(r#"{"contract_value":"1000","currency":"EUR","notes":null}"#)
    );
    assert_eq!(
        cell("document_fetched_at").as_deref(),
        Some("2026-11-01T02:00:01Z")
    );
}

#[test]
fn an_older_snapshot_loads_and_counts_rows_with_values_as_enriched() {
    let mut with_values = enriched_row();
    with_values.key_pointers_all = None;
    let mut without = SnapshotRow {
        id: "T-8".into(),
        first_seen_at: Some("2026-09-01T00:00:00Z".into()),
        ..SnapshotRow::default()
    };
    without.key_pointers.insert("contract_value".into(), None);
    let fields = strings(&["contract_value"]);
    let mut df = to_frame(&[with_values, without], &strings(&["po_number"]), &fields).unwrap();
    for gone in [
        "key_pointers",
        "key_pointers_fetched_at",
        "document_fetched_at",
    ] {
        df = df.drop(gone).unwrap();
    }
    let bytes = Bytes::from(frame_to_parquet(&mut df).unwrap());
    let back = from_parquet(bytes, &strings(&["po_number"]), &fields).unwrap();
    let (a, b) = (&back.rows[0], &back.rows[1]);
    assert_eq!(a.key_pointers["contract_value"].as_deref(), Some("1000"));
    assert_eq!(a.key_pointers_all, None, "the full set is unknown");
    assert_eq!(
        (
            a.key_pointers_fetched_at.as_deref(),
            a.document_fetched_at.as_deref()
        ),
        (Some("2026-10-01T00:00:00Z"), Some("2026-10-01T00:00:00Z")),
        "dated by the run that changed it"
    );
    assert_eq!(
        (
            b.key_pointers_fetched_at.as_deref(),
            b.document_fetched_at.as_deref()
        ),
        (None, None),
        "no values: not enriched"
    );
}
