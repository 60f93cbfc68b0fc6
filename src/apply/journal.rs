//! Apply stage: the journal, append-only in the output store, one object per
//! completed batch under `{output}/_journal/<job>/<apply_id>/<lane>-<nnnn>.json`
//! (outside every dataset root). Reading it gives, per key, the latest outcome,
//! and per content, when it was applied successfully.

use super::ApplyError;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// The outcome of a create's journal entry written before it is sent.
pub const INTENT: &str = "intent";

/// Folder of the journal under the output prefix.
pub const JOURNAL_DIR: &str = "_journal";

/// What happened to one action in one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The action's key.
    pub key: String,
    /// Its generation.
    pub generation: u32,
    /// Hash of its content ([`super::keys::content_hash`]).
    pub content_hash: String,
    /// `update_erp_fields`, `attach_document`, `set_external_metadata`.
    pub action: String,
    /// The ERP record.
    pub erp_record_id: Option<String>,
    /// The contract.
    pub contract_id: Option<String>,
    /// 1 for the first attempt of this key, then counting up over runs.
    pub attempt: u32,
    /// `applied`, `pending`, `rejected` or `checksum_mismatch`; `intent` for a
    /// `create_contract` about to be sent (journaled before the request).
    pub outcome: String,
    /// The ERP's message or the last error.
    pub message: Option<String>,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The run whose plan this is.
    pub run_id: String,
    /// Who approved the plan (`contract-recon apply --approved-by`).
    pub approved_by: Option<String>,
}

/// One journal object: a completed batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchRecord {
    /// Job.
    pub job: String,
    /// The apply (the run id, or the `apply` command's own id).
    pub apply_id: String,
    /// `fields` or `documents`.
    pub lane: String,
    /// Batch number in its lane, from 1.
    pub batch: u32,
    /// The batch's key.
    pub batch_key: String,
    /// One entry per action.
    pub entries: Vec<JournalEntry>,
}

/// The journal, read.
#[derive(Debug, Clone, Default)]
pub struct JournalView {
    latest: HashMap<String, JournalEntry>,
    attempts: HashMap<String, u32>,
    successes: HashMap<String, Vec<chrono::DateTime<chrono::Utc>>>,
}

impl JournalView {
    /// The view of `entries` (any order).
    pub fn from_entries(entries: Vec<JournalEntry>) -> JournalView {
        let mut view = JournalView::default();
        for e in entries {
            // A create's intent, journaled before it is sent: the latest entry
            // only while nothing else is known of its key, and no attempt.
            if e.outcome == INTENT {
                view.latest.entry(e.key.clone()).or_insert(e);
                continue;
            }
            *view.attempts.entry(e.key.clone()).or_default() += 1;
            if e.outcome == "applied" {
                if let Ok(at) = chrono::DateTime::parse_from_rfc3339(&e.at) {
                    let list = view.successes.entry(e.content_hash.clone()).or_default();
                    // One success per key: a replayed key is the same application.
                    if view
                        .latest
                        .get(&e.key)
                        .is_none_or(|l| l.outcome != "applied")
                    {
                        list.push(at.to_utc());
                    }
                }
            }
            match view.latest.get(&e.key) {
                Some(l) if l.outcome != INTENT && (l.at > e.at || l.outcome == "applied") => {}
                _ => {
                    view.latest.insert(e.key.clone(), e);
                }
            }
        }
        view
    }

    /// The latest entry of `key` (an `applied` one wins: a key applied stays applied).
    pub fn latest(&self, key: &str) -> Option<&JournalEntry> {
        self.latest.get(key)
    }

    /// `(erp_record_id, contract_id)` of every `create_contract` applied
    /// (created or adopted), by record id.
    pub fn applied_creates(&self) -> std::collections::BTreeMap<String, String> {
        self.latest
            .values()
            .filter(|e| e.action == "create_contract" && e.outcome == "applied")
            .filter_map(|e| Some((e.erp_record_id.clone()?, e.contract_id.clone()?)))
            .collect()
    }

    /// Attempts journaled for `key`.
    pub fn attempts(&self, key: &str) -> u32 {
        self.attempts.get(key).copied().unwrap_or(0)
    }

    /// Successful applications of content `hash` before `as_of` (all when `None`).
    pub fn successes_before(
        &self,
        hash: &str,
        as_of: Option<chrono::DateTime<chrono::Utc>>,
    ) -> u32 {
        self.successes
            .get(hash)
            .map(|v| v.iter().filter(|at| as_of.is_none_or(|t| **at < t)).count() as u32)
            .unwrap_or(0)
    }
}

/// `{prefix}/_journal/<job>`.
pub fn journal_root(prefix: &Path, job: &str) -> Path {
    prefix.clone().join(JOURNAL_DIR).join(job)
}

/// Reads every journal object of `job`.
pub async fn read_journal(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    job: &str,
) -> Result<JournalView, ApplyError> {
    let root = journal_root(prefix, job);
    let store_err = |op: &'static str, path: &Path, source| ApplyError::Store {
        job: job.to_string(),
        op,
        path: path.to_string(),
        source: Box::new(source),
    };
    let objects: Vec<_> = store
        .list(Some(&root))
        .try_collect()
        .await
        .map_err(|e| store_err("listing", &root, e))?;
    let mut entries = Vec::new();
    for meta in objects {
        if !meta.location.as_ref().ends_with(".json") {
            continue;
        }
        let bytes = store
            .get(&meta.location)
            .await
            .map_err(|e| store_err("reading", &meta.location, e))?
            .bytes()
            .await
            .map_err(|e| store_err("reading", &meta.location, e))?;
        let record: BatchRecord =
            serde_json::from_slice(&bytes).map_err(|e| ApplyError::Corrupt {
                job: job.to_string(),
                path: meta.location.to_string(),
                message: e.to_string(),
            })?;
        entries.extend(record.entries);
    }
    Ok(JournalView::from_entries(entries))
}

/// Appends one completed batch.
pub async fn append_batch(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    record: &BatchRecord,
) -> Result<Path, ApplyError> {
    let path = journal_root(prefix, &record.job)
        .join(record.apply_id.as_str())
        .join(
            format!(
                "{}-{:04}-{}.json",
                record.lane,
                record.batch,
                &record.batch_key[..12.min(record.batch_key.len())]
            )
            .as_str(),
        );
    let bytes = serde_json::to_vec_pretty(record).map_err(|e| ApplyError::Corrupt {
        job: record.job.clone(),
        path: path.to_string(),
        message: e.to_string(),
    })?;
    store
        .put(&path, PutPayload::from(bytes))
        .await
        .map_err(|source| ApplyError::Store {
            job: record.job.clone(),
            op: "writing",
            path: path.to_string(),
            source: Box::new(source),
        })?;
    Ok(path)
}
