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
//!
//! Raw columns, so a job that names a new key or field needs no refetch:
//! - `external_metadata.record_data`: the contract's whole `record_data` as
//!   JSON; every `external_metadata.record_data.<key>` column is derived from
//!   it, on every read and write.
//! - `key_pointers`: JSON object `{field_name: value_text}` of every metadata
//!   value the last fetch returned (null: never fetched by this version); the
//!   `key_pointers.<field_name>` columns are derived from it.
//!
//! Enrichment times (RFC 3339 UTC, milliseconds: `2026-11-01T02:30:07.125Z`):
//! - `key_pointers_fetched_at`: when the contract's metadata values were last
//!   fetched. Null means never fetched: the contract is *not enriched*, and a
//!   null `key_pointers.<field>` then says nothing about SpotDraft (not drift).
//! - `document_fetched_at`: when the executed document was last downloaded.
//!   With a null `document_sha256` it means SpotDraft had no downloadable
//!   document then; null means never asked.
//!
//! A snapshot written by an older version (no `key_pointers`, no `*_fetched_at`
//! columns) still loads: a row counts as enriched only when it has a value
//! (a metadata value, a document checksum), dated by its `changed_at` (else
//! `first_seen_at`, else 1970) so the refresh budget visits it early.

use crate::spotdraft::model::{value_text, Contract, KeyPointer};
use polars::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

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
pub const TAIL_COLUMNS: [&str; 8] = [
    "key_pointers",
    "key_pointers_fetched_at",
    "document_sha256",
    "document_fetched_at",
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
    /// The job's metadata value fields (derived from `key_pointers_all` when
    /// that is known, else as read from an older snapshot's columns).
    pub key_pointers: BTreeMap<String, Option<String>>,
    /// Every metadata value the last fetch returned, by `field_name`; `None`
    /// when never fetched by this version.
    pub key_pointers_all: Option<BTreeMap<String, Option<String>>>,
    /// When the metadata values were last fetched (RFC 3339 UTC).
    pub key_pointers_fetched_at: Option<String>,
    /// SHA-256 of the executed document.
    pub document_sha256: Option<String>,
    /// When the executed document was last downloaded, or found missing.
    pub document_fetched_at: Option<String>,
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

impl SnapshotRow {
    /// Keeps the metadata values of one fetch (`all`, every field returned)
    /// made at `at`, and derives the job's `fields` from them.
    pub fn set_key_pointers(
        &mut self,
        all: BTreeMap<String, Option<String>>,
        fields: &[String],
        at: &str,
    ) {
        self.key_pointers = derive_fields(&all, fields);
        self.key_pointers_all = Some(all);
        self.key_pointers_fetched_at = Some(at.to_string());
    }

    /// The value of metadata field `f`: from the last fetch when known, else
    /// as an older snapshot had it.
    pub fn key_pointer(&self, f: &str) -> Option<String> {
        match &self.key_pointers_all {
            Some(all) => all.get(f).cloned().flatten(),
            None => self.key_pointers.get(f).cloned().flatten(),
        }
    }
}

/// `{field_name: value_text}` of a metadata value fetch (the first value of a
/// repeated field name wins).
pub fn key_pointer_map(kps: &[KeyPointer]) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    for k in kps {
        out.entry(k.field_name.clone())
            .or_insert_with(|| value_text(&k.value));
    }
    out
}

fn derive_fields(
    all: &BTreeMap<String, Option<String>>,
    fields: &[String],
) -> BTreeMap<String, Option<String>> {
    fields
        .iter()
        .map(|f| (f.clone(), all.get(f).cloned().flatten()))
        .collect()
}

/// The `record_data` keys `keys` of a contract, from the raw
/// `external_metadata.record_data` JSON (`None` JSON: every key null).
/// `None` when the JSON does not parse.
pub fn record_data_from_json(
    json: Option<&str>,
    keys: &[String],
) -> Option<BTreeMap<String, Option<String>>> {
    let data: BTreeMap<String, serde_json::Value> = match json {
        None => BTreeMap::new(),
        Some(text) => serde_json::from_str(text).ok()?,
    };
    Some(
        keys.iter()
            .map(|k| (k.clone(), data.get(k).and_then(value_text)))
            .collect(),
    )
}

/// A snapshot read back, with what the job asks for that it lacks.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The rows.
    pub rows: Vec<SnapshotRow>,
    /// Metadata value fields the job names that the file has no column for:
    /// rows without `key_pointers_all` (written by an older version) need
    /// their values fetched once.
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
            r.key_pointer(f)
        }));
    }
    cols.push(s("key_pointers", &|r| {
        r.key_pointers_all
            .as_ref()
            .map(|m| serde_json::to_string(m).expect("a string map serializes"))
    }));
    cols.push(s("key_pointers_fetched_at", &|r| {
        r.key_pointers_fetched_at.clone()
    }));
    cols.push(s("document_sha256", &|r| r.document_sha256.clone()));
    cols.push(s("document_fetched_at", &|r| r.document_fetched_at.clone()));
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

mod read;
pub use read::from_parquet;

#[cfg(test)]
mod tests;
