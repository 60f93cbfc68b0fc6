//! Apply stage: the create lane (`create_contract`), the follow-ups that wait
//! for it (the back-reference, `update_erp_fields` of `spotdraft_contract_id`,
//! and `upload_supporting_document`), and the supporting-documents lane.
//!
//! **Never twice.** SpotDraft's Create Contract takes no idempotency key, so:
//! - each batch journals an `intent` entry per create before sending any;
//! - every attempt (the first, each retry, and each rerun of a create the
//!   journal does not hold as applied) first looks the record id up with
//!   `by_external_metadata` and adopts a contract that already carries it;
//! - the result (with the contract id) is journaled per batch.
//!
//! A run killed anywhere in a batch (crash points `apply.create.intent`,
//! after the first batch's intent, and `apply.create.returned`, after the
//! first create answered and before its result is journaled) leaves intents
//! that the next run resolves by lookup: one contract per ERP record.
//!
//! Documents never block creation: uploads run after the creates, in their
//! own lane, and a failed one stays pending for a later run.

use super::actions::{Action, ActionKind};
use super::create::{create_body, CREATED_CONTRACT_ID, DOCUMENT_FIELD};
use super::execute::ApplyContext;
use super::journal::{append_batch, BatchRecord, JournalEntry, JournalView, INTENT};
use super::keys::{batch_key, content_hash};
use super::results::ActionResult;
use super::ApplyError;
use crate::erp::sink::WriteOutcome;
use crate::spotdraft::client::CreateOutcome;
use futures::stream::StreamExt;
use object_store::ObjectStoreExt;
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path as FsPath;

/// What a create attempt ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateResult {
    /// Created, or adopted from an earlier attempt.
    Done(CreateOutcome),
    /// SpotDraft refused the body (4xx other than 408/429): not sent again
    /// with the same content.
    Rejected {
        /// HTTP status.
        status: u16,
        /// SpotDraft's message.
        message: String,
    },
    /// Not known to be done (retries exhausted, a timeout): the next run looks
    /// the record up again before creating.
    Pending(String),
}

/// Creates contracts and uploads supporting documents in SpotDraft.
pub trait ContractCreator: Send + Sync {
    /// Creates the contract of `erp_id` from `body`, unless one carries the id.
    fn create_contract(
        &self,
        erp_id: &str,
        body: &Value,
    ) -> impl Future<Output = CreateResult> + Send;

    /// The contract carrying `erp_id` in `external_metadata.id`, when one does.
    fn find_contract(
        &self,
        erp_id: &str,
    ) -> impl Future<Output = Result<Option<String>, String>> + Send;

    /// Uploads `bytes` as a supporting document of `contract_id`.
    fn upload_supporting_document(
        &self,
        contract_id: &str,
        file_name: &str,
        bytes: Vec<u8>,
    ) -> impl Future<Output = WriteOutcome> + Send;
}

fn result(a: &Action, outcome: &str, message: Option<String>, attempt: u32) -> ActionResult {
    ActionResult {
        key: a.key.clone(),
        generation: a.generation,
        action: a.kind.as_str().to_string(),
        erp_record_id: a.erp_record_id.clone(),
        contract_id: a.contract_id.clone(),
        outcome: outcome.to_string(),
        status: None,
        message,
        attempt,
    }
}

async fn journal(
    ctx: &ApplyContext<'_>,
    lane: &str,
    batch: u32,
    entries: Vec<JournalEntry>,
) -> Result<(), ApplyError> {
    if entries.is_empty() {
        return Ok(());
    }
    let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
    let record = BatchRecord {
        job: ctx.job.to_string(),
        apply_id: ctx.apply_id.to_string(),
        lane: lane.to_string(),
        batch,
        batch_key: batch_key(&keys),
        entries,
    };
    append_batch(&ctx.store, &ctx.prefix, &record).await?;
    Ok(())
}

fn entry(ctx: &ApplyContext<'_>, a: &Action, r: &ActionResult, outcome: &str) -> JournalEntry {
    JournalEntry {
        key: a.key.clone(),
        generation: a.generation,
        content_hash: content_hash(ctx.job, a),
        action: a.kind.as_str().to_string(),
        erp_record_id: a.erp_record_id.clone(),
        contract_id: r.contract_id.clone(),
        attempt: r.attempt,
        outcome: outcome.to_string(),
        message: r.message.clone(),
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        run_id: ctx.plan_run_id.to_string(),
        approved_by: ctx.approved_by.map(str::to_string),
    }
}

/// Sends the creates `todo` (indices into `actions`) in batches: intent
/// journaled, each create looked up then sent, results journaled.
pub async fn creates_lane<C: ContractCreator>(
    actions: &[Action],
    todo: &[usize],
    journal_view: &JournalView,
    creator: &C,
    ctx: &ApplyContext<'_>,
) -> Result<Vec<(usize, ActionResult)>, ApplyError> {
    let mut out = Vec::new();
    for (n, chunk) in todo.chunks(ctx.settings.batch_size.max(1)).enumerate() {
        let batch = n as u32 + 1;
        let attempt = |i: usize| journal_view.attempts(&actions[i].key) + 1;
        let intents = chunk
            .iter()
            .map(|&i| {
                let r = result(
                    &actions[i],
                    INTENT,
                    Some("about to be sent".into()),
                    attempt(i),
                );
                entry(ctx, &actions[i], &r, INTENT)
            })
            .collect();
        journal(ctx, "create-intent", batch, intents).await?;
        if batch == 1 {
            crate::crashpoint::hit(crate::crashpoint::CREATE_INTENT);
        }
        let done: Vec<(usize, ActionResult)> = futures::stream::iter(chunk.iter().copied())
            .map(|i| async move {
                let a = &actions[i];
                let erp_id = a.erp_record_id.clone().unwrap_or_default();
                let outcome = match create_body(a) {
                    Ok(body) => creator.create_contract(&erp_id, &body).await,
                    Err(e) => CreateResult::Rejected {
                        status: 0,
                        message: format!("the plan's create body is unreadable: {e}"),
                    },
                };
                crate::crashpoint::hit(crate::crashpoint::CREATE_RETURNED);
                let mut r = result(a, "pending", None, attempt(i));
                match outcome {
                    CreateResult::Done(CreateOutcome::Created(id)) => {
                        r.outcome = "applied".into();
                        r.status = Some(201);
                        r.message = Some(format!("created {id}"));
                        r.contract_id = Some(id);
                    }
                    CreateResult::Done(CreateOutcome::Adopted(id)) => {
                        r.outcome = "applied".into();
                        r.message = Some(format!(
                            "adopted {id}: it already carried this ERP id (an earlier create whose answer was lost)"
                        ));
                        r.contract_id = Some(id);
                    }
                    CreateResult::Rejected { status, message } => {
                        r.outcome = "rejected".into();
                        r.status = (status > 0).then_some(status);
                        r.message = Some(message);
                    }
                    CreateResult::Pending(error) => r.message = Some(error),
                }
                (i, r)
            })
            .buffer_unordered(ctx.max_in_flight.max(1))
            .collect()
            .await;
        let mut done = done;
        done.sort_by_key(|(i, _)| *i);
        let entries = done
            .iter()
            .map(|(i, r)| entry(ctx, &actions[*i], r, &r.outcome))
            .collect();
        journal(ctx, "create", batch, entries).await?;
        out.extend(done);
    }
    Ok(out)
}

/// Whether an action waits for its record's create (a back-reference of a
/// contract not yet known, or an upload).
pub fn waits_for_create(a: &Action) -> bool {
    match a.kind {
        ActionKind::UploadSupportingDocument => true,
        ActionKind::UpdateErpFields => a.fields.values().any(|v| v == CREATED_CONTRACT_ID),
        _ => false,
    }
}

/// `a` with its record's created contract filled in, or `None` when that
/// contract is not known (its create failed, or was not sent).
pub fn resolve(a: &Action, created: &BTreeMap<String, String>) -> Option<Action> {
    let id = created.get(a.erp_record_id.as_deref()?)?;
    let mut resolved = a.clone();
    resolved.contract_id = Some(id.clone());
    for v in resolved.fields.values_mut() {
        if v == CREATED_CONTRACT_ID {
            *v = id.clone();
        }
    }
    Some(resolved)
}

/// Reads a document named by the extract: an object store URL, `file://`,
/// or a local path (relative ones from `base`).
pub async fn read_document(base: &FsPath, location: &str) -> Result<Vec<u8>, String> {
    let url = if location.contains("://") {
        location.to_string()
    } else {
        let p = FsPath::new(location);
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        };
        std::path::absolute(&p)
            .map_err(|e| format!("document {location}: {e}"))?
            .display()
            .to_string()
    };
    let at = crate::storage::resolve(&url).map_err(|e| {
        format!(
            "document {location}: {}",
            crate::error_chain::error_chain(&e)
        )
    })?;
    let got = at
        .store
        .get(&at.path)
        .await
        .map_err(|e| format!("reading document {location}: {e}"))?;
    got.bytes()
        .await
        .map(|b| b.to_vec())
        .map_err(|e| format!("reading document {location}: {e}"))
}

/// Uploads the supporting documents `todo` (contract ids resolved), one
/// journal object per batch.
pub async fn supporting_documents_lane<C: ContractCreator>(
    actions: &[Action],
    todo: &[usize],
    journal_view: &JournalView,
    creator: &C,
    ctx: &ApplyContext<'_>,
    base: &FsPath,
) -> Result<Vec<(usize, ActionResult)>, ApplyError> {
    let mut out = Vec::new();
    for (n, chunk) in todo.chunks(ctx.settings.batch_size.max(1)).enumerate() {
        let mut done = Vec::new();
        for &i in chunk {
            let a = &actions[i];
            let attempt = journal_view.attempts(&a.key) + 1;
            let location = a.fields.get(DOCUMENT_FIELD).cloned().unwrap_or_default();
            let mut r = result(a, "pending", None, attempt);
            match read_document(base, &location).await {
                Err(e) => r.message = Some(e),
                Ok(bytes) => {
                    let file_name = location
                        .rsplit(['/', '\\'])
                        .next()
                        .unwrap_or("document")
                        .to_string();
                    let contract = a.contract_id.clone().unwrap_or_default();
                    match creator
                        .upload_supporting_document(&contract, &file_name, bytes)
                        .await
                    {
                        WriteOutcome::Applied { .. } => {
                            r.outcome = "applied".into();
                            r.status = Some(201);
                        }
                        WriteOutcome::Rejected {
                            status, message, ..
                        } => {
                            r.outcome = "rejected".into();
                            r.status = Some(status);
                            r.message = Some(message);
                        }
                        WriteOutcome::Pending { error } => r.message = Some(error),
                        WriteOutcome::ChecksumMismatch { expected, actual } => {
                            r.message = Some(format!("checksum {actual}, expected {expected}"))
                        }
                    }
                }
            }
            done.push((i, r));
        }
        let entries = done
            .iter()
            .map(|(i, r)| entry(ctx, &actions[*i], r, &r.outcome))
            .collect();
        journal(ctx, "supporting-documents", n as u32 + 1, entries).await?;
        out.extend(done);
    }
    Ok(out)
}
