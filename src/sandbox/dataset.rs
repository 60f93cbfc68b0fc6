//! Fixture dataset files: what the generator writes and the sandbox serves.
//!
//! A dataset directory holds:
//! - `contracts.jsonl`: one [`FixtureContract`] per line (the API item plus the
//!   sandbox-only `last_updated_on`, metadata values and document file);
//! - `documents/<file>.pdf`: executed documents;
//! - `erp_records.jsonl`: one [`ErpRecord`] per line, the ERP API's initial state;
//! - `erp_extract.csv` / `erp_extract.parquet`: the same records as an ERP
//!   export, with ERP-style column names (see [`ERP_EXTRACT_COLUMNS`]);
//! - `expected_drift.csv`: the truth, `drift_kind,contract_id,erp_record_id,field`;
//! - `manifest.json`: seed, counts and injected rates.

use crate::spotdraft::model::{Contract, KeyPointer};
use serde::{Deserialize, Serialize};

/// File names inside a dataset directory.
pub mod files {
    /// Contracts, JSON lines.
    pub const CONTRACTS: &str = "contracts.jsonl";
    /// ERP API initial state, JSON lines.
    pub const ERP_RECORDS: &str = "erp_records.jsonl";
    /// ERP extract as CSV.
    pub const ERP_EXTRACT_CSV: &str = "erp_extract.csv";
    /// ERP extract as Parquet.
    pub const ERP_EXTRACT_PARQUET: &str = "erp_extract.parquet";
    /// Expected drift (the truth).
    pub const EXPECTED_DRIFT: &str = "expected_drift.csv";
    /// Expected extract rejects: `row,reason_kind` (row = 1-based data row of the extract).
    pub const EXPECTED_REJECTS: &str = "expected_rejects.csv";
    /// Optional contract snapshot, as the ingestion stage writes it (benchmarks).
    pub const SNAPSHOT: &str = "snapshot.parquet";
    /// Generation parameters and counts.
    pub const MANIFEST: &str = "manifest.json";
    /// Folder of executed documents.
    pub const DOCUMENTS_DIR: &str = "documents";
}

/// Canonical ERP field name -> column name used in generated ERP extracts.
/// The demo job's `[erp.extract.columns]` maps exactly these.
pub const ERP_EXTRACT_COLUMNS: [(&str, &str); 11] = [
    ("erp_record_id", "RECORD_ID"),
    ("spotdraft_contract_id", "SD_CONTRACT_ID"),
    ("vendor_id", "VENDOR_NO"),
    ("po_number", "PO_NUMBER"),
    ("legal_entity_id", "LEGAL_ENTITY"),
    ("status", "STATUS"),
    ("amount", "AMOUNT"),
    ("currency", "CURRENCY"),
    ("effective_date", "EFFECTIVE_DATE"),
    ("expiry_date", "EXPIRY_DATE"),
    ("document_sha256", "DOC_SHA256"),
];

/// [`ERP_EXTRACT_COLUMNS`] as a job's `[erp.extract.columns]` table.
pub fn erp_extract_columns() -> std::collections::BTreeMap<String, String> {
    ERP_EXTRACT_COLUMNS
        .iter()
        .map(|(canonical, column)| (canonical.to_string(), column.to_string()))
        .collect()
}

/// One contract as the sandbox stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FixtureContract {
    /// The API list item. `last_updated_on` is always set in fixtures; the
    /// sandbox uses it for filters and ordering but does not send it.
    #[serde(flatten)]
    pub contract: Contract,
    /// Metadata values served by `key_pointers`.
    #[serde(default)]
    pub key_pointers: Vec<KeyPointer>,
    /// File name under `documents/` of the latest (executed) document, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
}

/// One ERP contract record (canonical field names), as the ERP API holds it.
/// All values are text as the ERP exports them; `None` is an empty cell.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErpRecord {
    /// ERP contract record id.
    pub erp_record_id: String,
    /// SpotDraft contract id the ERP record names (composite or integer form).
    #[serde(default)]
    pub spotdraft_contract_id: Option<String>,
    /// Vendor id.
    #[serde(default)]
    pub vendor_id: Option<String>,
    /// Purchase order number.
    #[serde(default)]
    pub po_number: Option<String>,
    /// Legal entity id.
    #[serde(default)]
    pub legal_entity_id: Option<String>,
    /// ERP status (`ACTIVE`, `PENDING_SIGNATURE`, ...).
    #[serde(default)]
    pub status: Option<String>,
    /// Amount as decimal text.
    #[serde(default)]
    pub amount: Option<String>,
    /// ISO currency code.
    #[serde(default)]
    pub currency: Option<String>,
    /// Effective date, `YYYY-MM-DD`.
    #[serde(default)]
    pub effective_date: Option<String>,
    /// Expiry date, `YYYY-MM-DD`.
    #[serde(default)]
    pub expiry_date: Option<String>,
    /// SHA-256 (hex) of the executed document the ERP holds.
    #[serde(default)]
    pub document_sha256: Option<String>,
    /// Record version for `If-Match`; starts at 1.
    #[serde(default = "first_version")]
    pub version: u64,
}

fn first_version() -> u64 {
    1
}

/// One row of `expected_drift.csv`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExpectedDrift {
    /// Drift kind name (`field_mismatch`, ...).
    pub drift_kind: String,
    /// SpotDraft contract id (composite), empty when none.
    pub contract_id: Option<String>,
    /// ERP record id, empty when none.
    pub erp_record_id: Option<String>,
    /// Compared field, for `field_mismatch` only.
    pub field: Option<String>,
}
