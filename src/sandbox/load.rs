//! Loading a fixture dataset directory into what the sandbox serves.

use crate::sandbox::dataset::{files, ErpRecord, FixtureContract};
use crate::sandbox::SandboxError;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::Path;

/// What the sandbox serves: contracts, the ERP API's initial records and the
/// documents (file name under `documents/` -> bytes).
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// SpotDraft contracts.
    pub contracts: Vec<FixtureContract>,
    /// ERP records.
    pub erp_records: Vec<ErpRecord>,
    /// Documents by file name.
    pub documents: BTreeMap<String, Bytes>,
}

impl Dataset {
    /// Reads `contracts.jsonl` (required), `erp_records.jsonl` and `documents/`
    /// (both optional: missing means empty) from a dataset directory.
    /// A line that does not parse is an error naming the file and line.
    pub fn load(dir: &Path) -> Result<Dataset, SandboxError> {
        let contracts = read_jsonl(&dir.join(files::CONTRACTS), true)?;
        let erp_records = read_jsonl(&dir.join(files::ERP_RECORDS), false)?;
        let mut documents = BTreeMap::new();
        let docs_dir = dir.join(files::DOCUMENTS_DIR);
        if docs_dir.is_dir() {
            let read_err = |source| SandboxError::Read {
                path: docs_dir.clone(),
                source,
            };
            for entry in std::fs::read_dir(&docs_dir).map_err(read_err)? {
                let path = entry.map_err(read_err)?.path();
                if !path.is_file() {
                    continue;
                }
                let bytes = std::fs::read(&path).map_err(|source| SandboxError::Read {
                    path: path.clone(),
                    source,
                })?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                documents.insert(name, Bytes::from(bytes));
            }
        }
        Ok(Dataset {
            contracts,
            erp_records,
            documents,
        })
    }
}

fn read_jsonl<T: DeserializeOwned>(path: &Path, required: bool) -> Result<Vec<T>, SandboxError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SandboxError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let item = serde_json::from_str(line).map_err(|source| SandboxError::BadLine {
            path: path.to_path_buf(),
            line: i + 1,
            source,
        })?;
        out.push(item);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTRACT: &str = r#"{"id":"T-1","created":"2026-01-01T00:00:00Z","last_updated_on":"2026-01-02T00:00:00Z","document":"T-1.pdf"}"#;

    #[test]
    fn loads_contracts_records_and_documents_and_tolerates_missing_optional_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(files::CONTRACTS), format!("{CONTRACT}\n\n")).unwrap();
        let only_contracts = Dataset::load(dir.path()).unwrap();
        assert_eq!(only_contracts.contracts.len(), 1);
        assert!(only_contracts.erp_records.is_empty() && only_contracts.documents.is_empty());

        std::fs::write(
            dir.path().join(files::ERP_RECORDS),
            "{\"erp_record_id\":\"E-1\"}\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join(files::DOCUMENTS_DIR)).unwrap();
        std::fs::write(
            dir.path().join(files::DOCUMENTS_DIR).join("T-1.pdf"),
            b"%PDF-1.4",
        )
        .unwrap();
        let full = Dataset::load(dir.path()).unwrap();
        assert_eq!(full.erp_records[0].version, 1);
        assert_eq!(full.documents["T-1.pdf"].as_ref(), b"%PDF-1.4");
    }

    #[test]
    fn bad_line_names_file_and_line_and_missing_contracts_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Dataset::load(dir.path()),
            Err(SandboxError::Read { .. })
        ));
        std::fs::write(
            dir.path().join(files::CONTRACTS),
            format!("{CONTRACT}\n{{\"id\":\n"),
        )
        .unwrap();
        let msg = Dataset::load(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("contracts.jsonl") && msg.contains("line 2"),
            "{msg}"
        );
    }
}
