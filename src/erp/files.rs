//! Correction sink `files`: each batch of field updates written as CSV and
//! JSONL import files to an object store, for ERPs that load files:
//! `{url}/<job>/<run_id>/batch-0001-<batch key>.csv` and `.jsonl`, executed
//! documents beside them under `documents/<erp_record_id>/<file name>` with a
//! `.json` sidecar (checksum, size, key).
//!
//! Idempotent by key: a batch is named by its number and key, a document by
//! its record and file name, so a batch or document written again with the
//! same key replaces the same object.

use super::sink::{DocumentUpload, ErpSink, FieldUpdate, WriteOutcome};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Writes corrections as import files.
pub struct FilesSink {
    store: Arc<dyn ObjectStore>,
    dir: Path,
    batches: AtomicU32,
}

impl FilesSink {
    /// A sink writing under `{prefix}/<job>/<run_id>/` of `store`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &Path, job: &str, run_id: &str) -> FilesSink {
        FilesSink {
            store,
            dir: prefix.clone().join(job).join(run_id),
            batches: AtomicU32::new(0),
        }
    }

    /// The folder the files go to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), String> {
        let path = self.dir.clone().join(name);
        self.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| format!("writing {path}: {e}"))
    }
}

/// One CSV field: quoted when it holds a comma, quote or line break.
fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

/// The CSV (`idempotency_key,erp_record_id,if_match,field,value`, one line per
/// field) and JSONL (one object per update) of a batch.
pub fn batch_files(updates: &[FieldUpdate]) -> (String, String) {
    let mut csv = String::from("idempotency_key,erp_record_id,if_match,field,value\n");
    let mut jsonl = String::new();
    for u in updates {
        for (field, value) in &u.fields {
            let cells = [
                u.idempotency_key.as_str(),
                u.erp_record_id.as_str(),
                u.if_match.as_deref().unwrap_or(""),
                field.as_str(),
                value.as_str(),
            ];
            csv.push_str(&cells.map(csv_field).join(","));
            csv.push('\n');
        }
        let line = serde_json::json!({
            "idempotency_key": u.idempotency_key,
            "erp_record_id": u.erp_record_id,
            "if_match": u.if_match,
            "fields": u.fields,
        });
        jsonl.push_str(&line.to_string());
        jsonl.push('\n');
    }
    (csv, jsonl)
}

fn applied() -> WriteOutcome {
    WriteOutcome::Applied {
        version: None,
        replayed: false,
    }
}

impl ErpSink for FilesSink {
    async fn update_fields(&self, update: &FieldUpdate) -> WriteOutcome {
        let key = update.idempotency_key.clone();
        self.update_fields_batch(std::slice::from_ref(update), &key)
            .await
            .pop()
            .unwrap_or(WriteOutcome::Pending {
                error: "no outcome".into(),
            })
    }

    async fn update_fields_batch(
        &self,
        updates: &[FieldUpdate],
        batch_key: &str,
    ) -> Vec<WriteOutcome> {
        let n = self.batches.fetch_add(1, Ordering::Relaxed) + 1;
        let short = &batch_key[..batch_key.len().min(12)];
        let (csv, jsonl) = batch_files(updates);
        let written = async {
            self.put(&format!("batch-{n:04}-{short}.jsonl"), jsonl.into_bytes())
                .await?;
            self.put(&format!("batch-{n:04}-{short}.csv"), csv.into_bytes())
                .await
        }
        .await;
        let outcome = match written {
            Ok(()) => applied(),
            Err(error) => WriteOutcome::Pending { error },
        };
        vec![outcome; updates.len()]
    }

    async fn attach_document(&self, upload: DocumentUpload) -> WriteOutcome {
        let base = self
            .dir
            .clone()
            .join("documents")
            .join(upload.erp_record_id.as_str());
        let path = base.clone().join(upload.file_name.as_str());
        let mut writer = match self.store.put_multipart(&path).await {
            Ok(w) => WriteMultipart::new(w),
            Err(e) => {
                return WriteOutcome::Pending {
                    error: format!("writing {path}: {e}"),
                }
            }
        };
        let (mut hasher, mut size) = (Sha256::new(), 0u64);
        let mut body = match (upload.open)().await {
            Ok(body) => body,
            Err(e) => {
                let _ = writer.abort().await;
                return WriteOutcome::Pending {
                    error: format!("opening the document: {e}"),
                };
            }
        };
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(bytes) => {
                    hasher.update(&bytes);
                    size += bytes.len() as u64;
                    writer.write(&bytes);
                }
                Err(e) => {
                    let _ = writer.abort().await;
                    return WriteOutcome::Pending {
                        error: format!("reading the document: {e}"),
                    };
                }
            }
        }
        let actual = hex::encode(hasher.finalize());
        if let Some(expected) = upload.sha256.as_deref().map(str::to_ascii_lowercase) {
            if expected != actual {
                let _ = writer.abort().await;
                return WriteOutcome::ChecksumMismatch { expected, actual };
            }
        }
        if let Err(e) = writer.finish().await {
            return WriteOutcome::Pending {
                error: format!("writing {path}: {e}"),
            };
        }
        let sidecar = serde_json::json!({
            "erp_record_id": upload.erp_record_id,
            "file_name": upload.file_name,
            "sha256": actual,
            "size": size,
            "idempotency_key": upload.idempotency_key,
        });
        let meta = base.join(format!("{}.json", upload.file_name).as_str());
        match self
            .store
            .put(&meta, PutPayload::from(sidecar.to_string().into_bytes()))
            .await
        {
            Ok(_) => applied(),
            Err(e) => WriteOutcome::Pending {
                error: format!("writing {meta}: {e}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use object_store::memory::InMemory;
    use std::collections::BTreeMap;

    fn update(id: &str, key: &str) -> FieldUpdate {
        FieldUpdate {
            erp_record_id: id.into(),
            fields: BTreeMap::from([
                ("status".into(), "ACTIVE".into()),
                ("po_number".into(), "PO,1".into()),
            ]),
            if_match: Some("3".into()),
            idempotency_key: key.into(),
        }
    }

    async fn read(store: &Arc<dyn ObjectStore>, path: &str) -> String {
        let got = store
            .get(&Path::from(path))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        String::from_utf8(got.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_batch_becomes_csv_and_jsonl_named_by_its_key() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let sink = FilesSink::new(store.clone(), &Path::from("imports"), "us", "run-1");
        let outcomes = sink
            .update_fields_batch(
                &[update("ERP-1", "k1"), update("ERP 2", "k2")],
                "batchkey0123456789",
            )
            .await;
        assert_eq!(outcomes, vec![applied(), applied()]);
        let csv = read(&store, "imports/us/run-1/batch-0001-batchkey0123.csv").await;
        assert_eq!(csv.lines().count(), 5, "{csv}");
        assert!(csv.contains("k1,ERP-1,3,po_number,\"PO,1\""), "{csv}");
        let jsonl = read(&store, "imports/us/run-1/batch-0001-batchkey0123.jsonl").await;
        let first: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
        assert_eq!(first["fields"]["status"], "ACTIVE");
    }

    fn doc(body: &'static [u8], sha256: Option<String>) -> DocumentUpload {
        DocumentUpload {
            erp_record_id: "ERP-1".into(),
            file_name: "T-1.pdf".into(),
            sha256,
            length: Some(body.len() as u64),
            open: Arc::new(move || {
                Box::pin(async move {
                    let chunks = vec![
                        Ok(Bytes::from_static(&body[..3])),
                        Ok(Bytes::from_static(&body[3..])),
                    ];
                    Ok(futures::stream::iter(chunks).boxed())
                })
            }),
            idempotency_key: "k".into(),
        }
    }

    #[tokio::test]
    async fn a_document_is_stored_only_when_its_checksum_matches() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let sink = FilesSink::new(store.clone(), &Path::from("imports"), "us", "run-1");
        let body: &'static [u8] = b"%PDF-1.7 executed";
        let good = hex::encode(Sha256::digest(body));
        let bad = sink.attach_document(doc(body, Some("00".repeat(32)))).await;
        assert!(
            matches!(bad, WriteOutcome::ChecksumMismatch { .. }),
            "{bad:?}"
        );
        assert!(store
            .head(&Path::from("imports/us/run-1/documents/ERP-1/T-1.pdf"))
            .await
            .is_err());
        assert_eq!(
            sink.attach_document(doc(body, Some(good.clone()))).await,
            applied()
        );
        assert_eq!(
            read(&store, "imports/us/run-1/documents/ERP-1/T-1.pdf")
                .await
                .as_bytes(),
            body
        );
        assert_eq!(sink.attach_document(doc(body, None)).await, applied());
        let meta: serde_json::Value = serde_json::from_str(
            &read(&store, "imports/us/run-1/documents/ERP-1/T-1.pdf.json").await,
        )
        .unwrap();
        assert_eq!(meta["sha256"], good);
    }
}
