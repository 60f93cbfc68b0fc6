//! The contract snapshot: one row per contract ever seen, as Parquet at
//! `{prefix}/snapshots/<job>/snapshot.parquet` (one put, so readers see the old
//! file or the new one, never half of one).
//!
//! Columns (names are read literally by the reconcile engine): see
//! [`BASE_COLUMNS`], then `external_metadata.record_data.<key>` and
//! `key_pointers.<field_name>` for each key/field the job names, then
//! [`TAIL_COLUMNS`]. All are strings except `contract_num` and
//! `contract_type_id` (Int64). `list_item_sha256` (SHA-256 of the list item's
//! JSON) is how a full walk tells a changed contract from an unchanged one.

use crate::spotdraft::model::{value_text, Contract};
use bytes::Bytes;
use polars::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Cursor;

/// Columns before the per-job ones.
pub const BASE_COLUMNS: [&str; 13] = [
    "id",
    "contract_num",
    "contract_name",
    "contract_status",
    "counter_party_name",
    "contract_type_name",
    "contract_type_id",
    "created",
    "reference_id",
    "external_metadata.id",
    "external_metadata.integration_name",
    "external_metadata.record_type",
    "external_metadata.record_data",
];

/// Columns after the per-job ones.
pub const TAIL_COLUMNS: [&str; 5] = [
    "document_sha256",
    "list_item_sha256",
    "first_seen_at",
    "changed_at",
    "deleted_at",
];

/// Prefix of the per-key `record_data` columns.
pub const RECORD_DATA_PREFIX: &str = "external_metadata.record_data.";
/// Prefix of the per-field metadata value columns.
pub const KEY_POINTERS_PREFIX: &str = "key_pointers.";

/// One contract in the snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SnapshotRow {
    /// Composite id as sent.
    pub id: String,
    /// Numeric part of the id.
    pub contract_num: Option<i64>,
    /// Name.
    pub contract_name: Option<String>,
    /// Status, verbatim.
    pub contract_status: Option<String>,
    /// Counterparty.
    pub counter_party_name: Option<String>,
    /// Contract type name.
    pub contract_type_name: Option<String>,
    /// Contract type id.
    pub contract_type_id: Option<i64>,
    /// Creation time as sent.
    pub created: Option<String>,
    /// Reference id.
    pub reference_id: Option<String>,
    /// `external_metadata.id`.
    pub em_id: Option<String>,
    /// `external_metadata.integration_name`.
    pub em_integration_name: Option<String>,
    /// `external_metadata.record_type`.
    pub em_record_type: Option<String>,
    /// `external_metadata.record_data` as JSON text (`None` when empty).
    pub em_record_data: Option<String>,
    /// The job's `record_data` keys.
    pub record_data: BTreeMap<String, Option<String>>,
    /// The job's metadata value fields.
    pub key_pointers: BTreeMap<String, Option<String>>,
    /// SHA-256 of the executed document.
    pub document_sha256: Option<String>,
    /// SHA-256 of the list item's JSON.
    pub list_item_sha256: Option<String>,
    /// Run start of the run that first saw it.
    pub first_seen_at: Option<String>,
    /// Run start of the run that last saw it change.
    pub changed_at: Option<String>,
    /// Run start of the full walk that found it gone.
    pub deleted_at: Option<String>,
}

fn text(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// SHA-256 hex of a contract's list item JSON (its serialized form).
pub fn list_item_sha256(c: &Contract) -> String {
    let json = serde_json::to_vec(c).expect("a contract serializes");
    hex::encode(Sha256::digest(json))
}

impl SnapshotRow {
    /// The list-derived columns of `c`; enrichment and run bookkeeping left empty.
    pub fn from_contract(c: &Contract, record_data_keys: &[String]) -> Self {
        let em = &c.external_metadata;
        SnapshotRow {
            id: c.id.composite().to_string(),
            contract_num: c.id.number(),
            contract_name: text(&c.contract_name),
            contract_status: text(&c.contract_status),
            counter_party_name: text(&c.counter_party_name),
            contract_type_name: text(&c.contract_type_name),
            contract_type_id: c.contract_type_id,
            created: text(&c.created),
            reference_id: c.reference_id.clone(),
            em_id: em.id.clone(),
            em_integration_name: em.integration_name.clone(),
            em_record_type: em.record_type.clone(),
            em_record_data: (!em.record_data.is_empty())
                .then(|| serde_json::to_string(&em.record_data).expect("json")),
            record_data: record_data_keys
                .iter()
                .map(|k| (k.clone(), em.record_data.get(k).and_then(value_text)))
                .collect(),
            list_item_sha256: Some(list_item_sha256(c)),
            ..SnapshotRow::default()
        }
    }
}

/// A snapshot read back, with what the job asks for that it lacks.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The rows.
    pub rows: Vec<SnapshotRow>,
    /// Metadata value fields the job names that the file has no column for
    /// (every contract then needs its values fetched once).
    pub missing_key_pointer_fields: Vec<String>,
}

/// Builds the snapshot frame, in the column order documented above.
pub fn to_frame(
    rows: &[SnapshotRow],
    record_data_keys: &[String],
    key_pointer_fields: &[String],
) -> PolarsResult<DataFrame> {
    let s = |name: &str, f: &dyn Fn(&SnapshotRow) -> Option<String>| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let n = |name: &str, f: &dyn Fn(&SnapshotRow) -> Option<i64>| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>())
    };
    let mut cols = vec![
        s("id", &|r| Some(r.id.clone())),
        n("contract_num", &|r| r.contract_num),
        s("contract_name", &|r| r.contract_name.clone()),
        s("contract_status", &|r| r.contract_status.clone()),
        s("counter_party_name", &|r| r.counter_party_name.clone()),
        s("contract_type_name", &|r| r.contract_type_name.clone()),
        n("contract_type_id", &|r| r.contract_type_id),
        s("created", &|r| r.created.clone()),
        s("reference_id", &|r| r.reference_id.clone()),
        s("external_metadata.id", &|r| r.em_id.clone()),
        s("external_metadata.integration_name", &|r| {
            r.em_integration_name.clone()
        }),
        s("external_metadata.record_type", &|r| {
            r.em_record_type.clone()
        }),
        s("external_metadata.record_data", &|r| {
            r.em_record_data.clone()
        }),
    ];
    for k in record_data_keys {
        cols.push(s(&format!("{RECORD_DATA_PREFIX}{k}"), &|r| {
            r.record_data.get(k).cloned().flatten()
        }));
    }
    for f in key_pointer_fields {
        cols.push(s(&format!("{KEY_POINTERS_PREFIX}{f}"), &|r| {
            r.key_pointers.get(f).cloned().flatten()
        }));
    }
    cols.push(s("document_sha256", &|r| r.document_sha256.clone()));
    cols.push(s("list_item_sha256", &|r| r.list_item_sha256.clone()));
    cols.push(s("first_seen_at", &|r| r.first_seen_at.clone()));
    cols.push(s("changed_at", &|r| r.changed_at.clone()));
    cols.push(s("deleted_at", &|r| r.deleted_at.clone()));
    DataFrame::new(rows.len(), cols)
}

/// Parquet bytes of a frame.
pub fn frame_to_parquet(df: &mut DataFrame) -> PolarsResult<Vec<u8>> {
    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf).finish(df)?;
    Ok(buf)
}

fn str_col(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<String>>> {
    match df.column(name) {
        Err(_) => Ok(vec![None; df.height()]),
        Ok(c) => Ok(c
            .as_materialized_series()
            .str()?
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()),
    }
}

fn int_col(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<i64>>> {
    match df.column(name) {
        Err(_) => Ok(vec![None; df.height()]),
        Ok(c) => Ok(c
            .as_materialized_series()
            .cast(&DataType::Int64)?
            .i64()?
            .iter()
            .collect()),
    }
}

/// Reads a snapshot written by [`to_frame`] + [`frame_to_parquet`].
pub fn from_parquet(
    bytes: Bytes,
    record_data_keys: &[String],
    key_pointer_fields: &[String],
) -> PolarsResult<Snapshot> {
    let df = ParquetReader::new(Cursor::new(bytes)).finish()?;
    let h = df.height();
    let ids = str_col(&df, "id")?;
    let mut cols: BTreeMap<&str, Vec<Option<String>>> = BTreeMap::new();
    for name in BASE_COLUMNS
        .iter()
        .chain(TAIL_COLUMNS.iter())
        .filter(|n| !["id", "contract_num", "contract_type_id"].contains(n))
    {
        cols.insert(name, str_col(&df, name)?);
    }
    let nums = int_col(&df, "contract_num")?;
    let types = int_col(&df, "contract_type_id")?;
    let rd: Vec<(String, Vec<Option<String>>)> = record_data_keys
        .iter()
        .map(|k| {
            Ok((
                k.clone(),
                str_col(&df, &format!("{RECORD_DATA_PREFIX}{k}"))?,
            ))
        })
        .collect::<PolarsResult<_>>()?;
    let missing_key_pointer_fields: Vec<String> = key_pointer_fields
        .iter()
        .filter(|f| df.column(&format!("{KEY_POINTERS_PREFIX}{f}")).is_err())
        .cloned()
        .collect();
    let kp: Vec<(String, Vec<Option<String>>)> = key_pointer_fields
        .iter()
        .map(|f| {
            Ok((
                f.clone(),
                str_col(&df, &format!("{KEY_POINTERS_PREFIX}{f}"))?,
            ))
        })
        .collect::<PolarsResult<_>>()?;
    let mut rows = Vec::with_capacity(h);
    for i in 0..h {
        let g = |name: &str| cols[name][i].clone();
        rows.push(SnapshotRow {
            id: ids[i].clone().unwrap_or_default(),
            contract_num: nums[i],
            contract_name: g("contract_name"),
            contract_status: g("contract_status"),
            counter_party_name: g("counter_party_name"),
            contract_type_name: g("contract_type_name"),
            contract_type_id: types[i],
            created: g("created"),
            reference_id: g("reference_id"),
            em_id: g("external_metadata.id"),
            em_integration_name: g("external_metadata.integration_name"),
            em_record_type: g("external_metadata.record_type"),
            em_record_data: g("external_metadata.record_data"),
            record_data: rd.iter().map(|(k, v)| (k.clone(), v[i].clone())).collect(),
            key_pointers: kp.iter().map(|(k, v)| (k.clone(), v[i].clone())).collect(),
            document_sha256: g("document_sha256"),
            list_item_sha256: g("list_item_sha256"),
            first_seen_at: g("first_seen_at"),
            changed_at: g("changed_at"),
            deleted_at: g("deleted_at"),
        });
    }
    Ok(Snapshot {
        rows,
        missing_key_pointer_fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let a =
            contract(r#"{"id":"T-1","created":"2026-01-01T00:00:00Z","contract_status":"SIGN"}"#);
        let b = contract(
            r#"{"id":"T-1","created":"2026-01-01T00:00:00Z","contract_status":"EXECUTED"}"#,
        );
        assert_eq!(list_item_sha256(&a), list_item_sha256(&a.clone()));
        assert_ne!(list_item_sha256(&a), list_item_sha256(&b));
    }
}
