//! SpotDraft API shapes (v2.1), as published in SpotDraft's OpenAPI description.
//!
//! These types are shared by the client, the sandbox and the fixture generator,
//! so the sandbox can only serve what the client can read.

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Contract statuses named in the API notes. Unknown statuses are kept verbatim
/// as strings everywhere; this list is only used to generate fixtures.
pub const KNOWN_STATUSES: [&str; 6] = [
    "DRAFT",
    "REDLINING",
    "SIGN",
    "EXECUTED",
    "ON_HOLD",
    "VOIDED",
];

/// A contract id as the API returns it: composite (`T-123`, `H-123`) or a plain integer.
///
/// Both forms deserialize; [`ContractId::composite`] is the canonical text form
/// used in snapshots and reports, [`ContractId::number`] the integer part that
/// webhooks carry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ContractId(String);

impl ContractId {
    /// Wraps an id string as received (already trimmed).
    pub fn new(raw: impl Into<String>) -> Self {
        ContractId(raw.into().trim().to_string())
    }

    /// The id exactly as the API sent it (`T-123`, or `123` for integer ids).
    pub fn composite(&self) -> &str {
        &self.0
    }

    /// The numeric part: `T-123` -> 123, `123` -> 123. `None` when there is none.
    pub fn number(&self) -> Option<i64> {
        let digits = match self.0.split_once('-') {
            Some((_, n)) => n,
            None => &self.0,
        };
        digits.parse().ok()
    }
}

impl fmt::Display for ContractId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ContractId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Str(String),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Int(n) => ContractId(n.to_string()),
            Raw::Str(s) => ContractId::new(s),
        })
    }
}

/// `external_metadata` on a contract: the link to the upstream (ERP) record.
///
/// The API may omit it, send `null` or send `{}`; all three read as
/// `ExternalMetadata::default()` through [`deserialize_external_metadata`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExternalMetadata {
    /// Upstream record id (the ERP contract record id). Strings and numbers are
    /// both accepted and kept as text.
    #[serde(
        default,
        deserialize_with = "deserialize_opt_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<String>,
    /// Name of the integration that wrote the metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_name: Option<String>,
    /// Upstream record type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_type: Option<String>,
    /// Free-form upstream fields: vendor id, PO number, legal entity and so on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub record_data: BTreeMap<String, serde_json::Value>,
    /// Object configuration id, when the integration uses one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_configuration_id: Option<serde_json::Value>,
}

impl ExternalMetadata {
    /// True when the metadata carries nothing at all (`{}`).
    pub fn is_empty(&self) -> bool {
        *self == ExternalMetadata::default()
    }
}

/// One item of `GET v2.1/public/contracts/` (`ContractResponseV2`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contract {
    /// Composite id (`T-123`) or integer id.
    pub id: ContractId,
    /// Creation time, ISO 8601 UTC.
    pub created: String,
    /// Name shown to users.
    #[serde(default)]
    pub contract_name: String,
    /// Link to the contract in the SpotDraft app.
    #[serde(default)]
    pub contract_link: String,
    /// Status (`DRAFT`, `EXECUTED`, ...); unknown values are kept as sent.
    #[serde(default)]
    pub contract_status: String,
    /// Full name of the creator.
    #[serde(default)]
    pub created_by: String,
    /// Counterparty name.
    #[serde(default)]
    pub counter_party_name: String,
    /// Contract type name.
    #[serde(default)]
    pub contract_type_name: String,
    /// Contract type id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_type_id: Option<i64>,
    /// Upstream link; missing, `null` and `{}` all read as empty.
    #[serde(default, deserialize_with = "deserialize_external_metadata")]
    pub external_metadata: ExternalMetadata,
    /// Human reference id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_id: Option<String>,
    /// Last update time, when the server sends one (the published schema does not list it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_on: Option<String>,
}

/// Response of the contract list (`ContractListResponseV2`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContractListResponse {
    /// Page number, starting at 1.
    pub page: u32,
    /// Page size used.
    pub limit: u32,
    /// Number of contracts matching the filters at the time of the request.
    pub total_results: u64,
    /// The contracts of this page.
    pub results: Vec<Contract>,
}

/// A contract type of the workspace (`ContractTypeDomainModel`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContractType {
    /// Contract type id.
    pub id: i64,
    /// Name shown to users.
    #[serde(default)]
    pub name: String,
}

/// A metadata definition of a contract type (`KeyPointerDomainModel`): which
/// field it is, not a contract's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyPointerDefinition {
    /// Definition id.
    pub id: i64,
    /// The variables it stores; `variable` is the field name values carry.
    #[serde(default)]
    pub descriptors: Vec<KeyPointerDescriptor>,
}

/// One variable of a metadata definition (`CfPublicDescriptor`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyPointerDescriptor {
    /// The field name (`contract_value`).
    pub variable: String,
    /// The label shown to users.
    #[serde(default)]
    pub display_label: Option<String>,
}

/// One metadata value (`ContractKeyPointerMinimalResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyPointer {
    /// Key pointer id.
    pub id: i64,
    /// The value: number, string, list, object or boolean.
    pub value: serde_json::Value,
    /// Label shown to users.
    #[serde(default)]
    pub label: String,
    /// Stable field name (used by job files to pick a value).
    #[serde(default)]
    pub field_name: String,
    /// Data type name.
    #[serde(default)]
    pub data_type: String,
    /// Display format options.
    #[serde(default)]
    pub format_option: serde_json::Value,
}

/// Error body SpotDraft sends with 4xx/5xx answers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// Human-readable detail.
    #[serde(default)]
    pub detail: Option<String>,
    /// Message.
    #[serde(default)]
    pub message: Option<String>,
    /// SpotDraft error code (`SD_...`).
    #[serde(default)]
    pub code: Option<String>,
    /// HTTP status repeated in the body.
    #[serde(default)]
    pub status_code: Option<u16>,
}

/// `POST .../download_link` answer: a temporary signed URL. Never log `url`.
#[derive(Clone, Serialize, Deserialize)]
pub struct DownloadLink {
    /// Signed URL (secret-like: it grants access to the document).
    pub url: String,
    /// File name of the document.
    #[serde(default)]
    pub file_name: String,
    /// Version id of the document.
    #[serde(default)]
    pub current_version_id: Option<serde_json::Value>,
}

impl fmt::Debug for DownloadLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DownloadLink")
            .field("url", &"[redacted]")
            .field("file_name", &self.file_name)
            .field("current_version_id", &self.current_version_id)
            .finish()
    }
}

/// Reads `external_metadata` that may be missing, `null` or `{}`.
pub fn deserialize_external_metadata<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<ExternalMetadata, D::Error> {
    Ok(Option::<ExternalMetadata>::deserialize(d)?.unwrap_or_default())
}

/// Reads an optional id that may be a string or a number, as text; `""` reads as `None`.
pub fn deserialize_opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

/// Text form of a JSON value for flat columns: strings as-is, null as `None`,
/// everything else as compact JSON.
pub fn value_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_composite_and_integer_forms() {
        let a: ContractId = serde_json::from_str("\"T-123\"").unwrap();
        let b: ContractId = serde_json::from_str("123").unwrap();
        assert_eq!(a.composite(), "T-123");
        assert_eq!(a.number(), Some(123));
        assert_eq!(b.composite(), "123");
        assert_eq!(b.number(), Some(123));
    }

    #[test]
    fn external_metadata_missing_null_or_empty_reads_as_empty() {
        let base = r#"{"id":"T-1","created":"2026-01-01T00:00:00Z"}"#;
        let with = |em: &str| {
            format!(r#"{{"id":"T-1","created":"2026-01-01T00:00:00Z","external_metadata":{em}}}"#)
        };
        for json in [base.to_string(), with("null"), with("{}")] {
            let c: Contract = serde_json::from_str(&json).unwrap();
            assert!(c.external_metadata.is_empty(), "{json}");
        }
        let c: Contract =
            serde_json::from_str(&with(r#"{"id":42,"record_data":{"po":"7"}}"#)).unwrap();
        assert_eq!(c.external_metadata.id.as_deref(), Some("42"));
        assert_eq!(c.external_metadata.record_data["po"], "7");
    }

    #[test]
    fn unknown_status_is_kept() {
        let c: Contract = serde_json::from_str(
            r#"{"id":"H-9","created":"2026-01-01T00:00:00Z","contract_status":"ARCHIVED_X"}"#,
        )
        .unwrap();
        assert_eq!(c.contract_status, "ARCHIVED_X");
    }

    #[test]
    fn download_link_debug_hides_url() {
        let l = DownloadLink {
            url: "https://signed/secret".into(),
            file_name: "a.pdf".into(),
            current_version_id: None,
        };
        assert!(!format!("{l:?}").contains("secret"));
    }
}
