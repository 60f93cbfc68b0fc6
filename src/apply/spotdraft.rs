//! Apply stage: the SpotDraft side of corrections: executed documents read
//! from SpotDraft's download (streamed), and `external_metadata` write-backs
//! that read the contract's current metadata, merge the ERP-owned values in
//! and write the whole object back (keeping `integration_name`, `record_type`
//! and every other `record_data` key), contracts created and supporting
//! documents uploaded (`[create]`), through the workspace's shared limiter.

use super::create_lane::{ContractCreator, CreateResult};
use super::execute::{DocumentSource, MetadataWriter, OpenedDocument};
use crate::erp::sink::{DocumentStream, OpenDocument, WriteOutcome};
use crate::spotdraft::client::merge_external_metadata;
use crate::spotdraft::client::FetchError;
use crate::spotdraft::model::ContractId;
use crate::spotdraft::SpotDraftClient;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// SpotDraft, when the run has a client (`None`: documents and write-backs stay pending).
pub struct SpotDraftSide(pub Option<SpotDraftClient>);

impl DocumentSource for SpotDraftSide {
    async fn open_document(&self, contract_id: &str) -> Result<OpenedDocument, String> {
        let Some(client) = &self.0 else {
            return Err("no SpotDraft client to download the document from".into());
        };
        let download = client
            .download_stream(&ContractId::new(contract_id))
            .await
            .map_err(|e| format!("downloading the executed document of {contract_id}: {e}"))?;
        // The first attempt streams this download; a retried one downloads again.
        let first: Arc<Mutex<Option<DocumentStream>>> = Arc::new(Mutex::new(Some(download.stream)));
        let (client, id) = (client.clone(), contract_id.to_string());
        let open: OpenDocument = Arc::new(move || {
            let first = first.lock().ok().and_then(|mut f| f.take());
            let (client, id) = (client.clone(), id.clone());
            Box::pin(async move {
                if let Some(stream) = first {
                    return Ok(stream);
                }
                client
                    .download_stream(&ContractId::new(&id))
                    .await
                    .map(|d| d.stream)
                    .map_err(|e| {
                        std::io::Error::other(format!(
                            "downloading the executed document of {id}: {e}"
                        ))
                    })
            })
        });
        Ok((open, download.length))
    }
}

impl MetadataWriter for SpotDraftSide {
    async fn set_external_metadata(
        &self,
        contract_id: &str,
        values: &BTreeMap<String, String>,
        _idempotency_key: &str,
    ) -> WriteOutcome {
        let Some(client) = &self.0 else {
            return WriteOutcome::Pending {
                error: "no SpotDraft client to write external_metadata with".into(),
            };
        };
        let id = ContractId::new(contract_id);
        let current = match client.external_metadata(&id).await {
            Ok(current) => current,
            Err(e) => {
                return WriteOutcome::Pending {
                    error: format!("reading the external_metadata of {contract_id}: {e}"),
                }
            }
        };
        let owned: BTreeMap<String, String> = values
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("record_data.")?.to_string(), v.clone())))
            .collect();
        let merged = merge_external_metadata(
            current.as_ref(),
            values.get("id").map(String::as_str),
            &owned,
        );
        match client.set_external_metadata(&id, &merged).await {
            Ok(()) => WriteOutcome::Applied {
                version: None,
                replayed: false,
            },
            Err(e) => WriteOutcome::Pending {
                error: format!("writing the external_metadata of {contract_id}: {e}"),
            },
        }
    }
}

impl ContractCreator for SpotDraftSide {
    async fn create_contract(&self, erp_id: &str, body: &serde_json::Value) -> CreateResult {
        let Some(client) = &self.0 else {
            return CreateResult::Pending("no SpotDraft client to create the contract with".into());
        };
        match client.create_contract_once(erp_id, body).await {
            Ok(done) => CreateResult::Done(done),
            Err(FetchError::Status { status, detail, .. })
                if (400..500).contains(&status) && status != 408 && status != 429 =>
            {
                CreateResult::Rejected {
                    status,
                    message: detail.trim_start_matches(": ").to_string(),
                }
            }
            Err(e) => CreateResult::Pending(format!("creating the contract of {erp_id}: {e}")),
        }
    }

    async fn find_contract(&self, erp_id: &str) -> Result<Option<String>, String> {
        let Some(client) = &self.0 else {
            return Err("no SpotDraft client to look the record up with".into());
        };
        client
            .find_created(erp_id)
            .await
            .map_err(|e| format!("looking up the contract of {erp_id}: {e}"))
    }

    async fn upload_supporting_document(
        &self,
        contract_id: &str,
        file_name: &str,
        bytes: Vec<u8>,
    ) -> WriteOutcome {
        let Some(client) = &self.0 else {
            return WriteOutcome::Pending {
                error: "no SpotDraft client to upload the document with".into(),
            };
        };
        match client
            .upload_supported_document(contract_id, file_name, file_name, &bytes)
            .await
        {
            Ok(()) => WriteOutcome::Applied {
                version: None,
                replayed: false,
            },
            Err(FetchError::Status { status, detail, .. })
                if (400..500).contains(&status) && status != 408 && status != 429 =>
            {
                WriteOutcome::Rejected {
                    status,
                    code: None,
                    message: detail.trim_start_matches(": ").to_string(),
                }
            }
            Err(e) => WriteOutcome::Pending {
                error: format!("uploading a supporting document to {contract_id}: {e}"),
            },
        }
    }
}
