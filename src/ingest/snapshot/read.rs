//! Reading a snapshot back, from this version or an older one: derived
//! columns are rebuilt from the raw JSON columns, and missing enrichment
//! times are inferred from the values a row has (see the module doc).

use super::{
    derive_fields, record_data_from_json, Snapshot, SnapshotRow, BASE_COLUMNS, KEY_POINTERS_PREFIX,
    RECORD_DATA_PREFIX, TAIL_COLUMNS,
};
use bytes::Bytes;
use polars::prelude::*;
use std::collections::BTreeMap;
use std::io::Cursor;

/// The date given to values an older snapshot holds without their fetch time
/// and without a run time: the oldest possible.
const UNKNOWN_TIME: &str = "1970-01-01T00:00:00Z";

fn str_col(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<String>>> {
    match df.column(name) {
        Err(_) => Ok(vec![None; df.height()]),
        Ok(c) => Ok(c
            .as_materialized_series()
            .cast(&DataType::String)?
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

fn has(df: &DataFrame, name: &str) -> bool {
    df.column(name).is_ok()
}

/// Reads a snapshot written by [`super::to_frame`] + [`super::frame_to_parquet`],
/// by this version or an older one, for a job naming `record_data_keys` and
/// `key_pointer_fields`.
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
    let per_key = |prefix: &str, names: &[String]| {
        names
            .iter()
            .map(|k| Ok((k.clone(), str_col(&df, &format!("{prefix}{k}"))?)))
            .collect::<PolarsResult<Vec<_>>>()
    };
    let rd = per_key(RECORD_DATA_PREFIX, record_data_keys)?;
    let kp = per_key(KEY_POINTERS_PREFIX, key_pointer_fields)?;
    let missing_key_pointer_fields: Vec<String> = key_pointer_fields
        .iter()
        .filter(|f| !has(&df, &format!("{KEY_POINTERS_PREFIX}{f}")))
        .cloned()
        .collect();
    let (kp_times, doc_times) = (
        has(&df, "key_pointers_fetched_at"),
        has(&df, "document_fetched_at"),
    );
    let mut rows = Vec::with_capacity(h);
    for i in 0..h {
        let g = |name: &str| cols[name][i].clone();
        let em_record_data = g("external_metadata.record_data");
        let record_data = record_data_from_json(em_record_data.as_deref(), record_data_keys)
            .unwrap_or_else(|| rd.iter().map(|(k, v)| (k.clone(), v[i].clone())).collect());
        let key_pointers_all: Option<BTreeMap<String, Option<String>>> =
            g("key_pointers").and_then(|j| serde_json::from_str(&j).ok());
        let key_pointers = match &key_pointers_all {
            Some(all) => derive_fields(all, key_pointer_fields),
            None => kp.iter().map(|(k, v)| (k.clone(), v[i].clone())).collect(),
        };
        let mut row = SnapshotRow {
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
            em_record_data,
            record_data,
            key_pointers,
            key_pointers_all,
            key_pointers_fetched_at: g("key_pointers_fetched_at"),
            document_sha256: g("document_sha256"),
            document_fetched_at: g("document_fetched_at"),
            list_item_sha256: g("list_item_sha256"),
            first_seen_at: g("first_seen_at"),
            changed_at: g("changed_at"),
            deleted_at: g("deleted_at"),
        };
        infer_times(&mut row, kp_times, doc_times);
        rows.push(row);
    }
    Ok(Snapshot {
        rows,
        missing_key_pointer_fields,
    })
}

/// An older snapshot has values but no fetch times: a row with a metadata
/// value (a document checksum) counts as fetched when it last changed.
fn infer_times(row: &mut SnapshotRow, kp_times: bool, doc_times: bool) {
    let when = || {
        row.changed_at
            .clone()
            .or_else(|| row.first_seen_at.clone())
            .unwrap_or_else(|| UNKNOWN_TIME.to_string())
    };
    if !kp_times && row.key_pointers.values().any(Option::is_some) {
        row.key_pointers_fetched_at = Some(when());
    }
    if !doc_times && row.document_sha256.is_some() {
        row.document_fetched_at = Some(when());
    }
}
