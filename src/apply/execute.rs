//! Apply stage: the executor. Runs a plan's sendable actions through a
//! correction sink in batches of `batch_size`, field updates and SpotDraft
//! write-backs in one lane and executed documents in their own (a slow upload
//! never holds back a field update), and writes one journal object per
//! completed batch.
//!
//! - An action the journal says was applied is skipped (`already_applied`);
//!   one the ERP rejected is not re-sent with the same content
//!   (`rejected_earlier`); a pending one is sent again with the same key.
//! - More sendable actions than `max_actions_per_run`: nothing is sent and the
//!   summary says why, unless forced.
//! - Documents stop at `max_document_bytes_per_run`; the rest stay for the next run.
//! - Crash point `apply.between_batches`: after each batch's journal object.
//! - Creates (`[create]`) go first, in their own lane (`super::create_lane`);
//!   the back-references and document uploads waiting for them follow, with
//!   the contract ids filled in; more creates than `max_creates_per_run`:
//!   nothing is sent, unless forced.

use super::actions::{Action, ActionKind};
use super::create_lane::{
    creates_lane, resolve, supporting_documents_lane, waits_for_create, ContractCreator,
};
use super::journal::{append_batch, BatchRecord, JournalEntry, JournalView};
use super::keys::{batch_key, content_hash};
use super::results::ActionResult;
use super::ApplyError;
use crate::erp::sink::{DocumentUpload, ErpSink, FieldUpdate, OpenDocument, WriteOutcome};
use crate::job::ApplySettings;
use futures::stream::StreamExt;
use object_store::path::Path;
use object_store::ObjectStore;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A document ready to upload: how to open its bytes (once per upload
/// attempt), and its length when known.
pub type OpenedDocument = (OpenDocument, Option<u64>);

/// Where executed documents are read from (SpotDraft's download).
pub trait DocumentSource: Send + Sync {
    /// Opens the executed document of `contract_id` (the first stream is
    /// opened here, to learn its length; a retried upload opens it again).
    fn open_document(
        &self,
        contract_id: &str,
    ) -> impl Future<Output = Result<OpenedDocument, String>> + Send;
}

/// Writes values into a contract's `external_metadata` (merged with what is there).
pub trait MetadataWriter: Send + Sync {
    /// Merges `values` (`id` or `record_data.<key>`) into the contract's metadata.
    fn set_external_metadata(
        &self,
        contract_id: &str,
        values: &BTreeMap<String, String>,
        idempotency_key: &str,
    ) -> impl Future<Output = WriteOutcome> + Send;
}

/// No SpotDraft client: documents and write-backs stay pending.
pub struct NoSpotDraft;

impl DocumentSource for NoSpotDraft {
    async fn open_document(&self, _contract_id: &str) -> Result<OpenedDocument, String> {
        Err("no SpotDraft client to download the document from".into())
    }
}

impl ContractCreator for NoSpotDraft {
    async fn create_contract(
        &self,
        _erp_id: &str,
        _body: &serde_json::Value,
    ) -> super::create_lane::CreateResult {
        super::create_lane::CreateResult::Pending(
            "no SpotDraft client to create the contract with".into(),
        )
    }

    async fn find_contract(&self, _erp_id: &str) -> Result<Option<String>, String> {
        Err("no SpotDraft client to look the record up with".into())
    }

    async fn upload_supporting_document(&self, _c: &str, _f: &str, _b: Vec<u8>) -> WriteOutcome {
        WriteOutcome::Pending {
            error: "no SpotDraft client to upload the document with".into(),
        }
    }
}

impl MetadataWriter for NoSpotDraft {
    async fn set_external_metadata(
        &self,
        _c: &str,
        _v: &BTreeMap<String, String>,
        _k: &str,
    ) -> WriteOutcome {
        WriteOutcome::Pending {
            error: "no SpotDraft client to write external_metadata with".into(),
        }
    }
}

/// Who applies what, where the journal goes.
pub struct ApplyContext<'a> {
    /// Job.
    pub job: &'a str,
    /// The run whose plan this is.
    pub plan_run_id: &'a str,
    /// This application's id (journal folder).
    pub apply_id: &'a str,
    /// Who approved the plan.
    pub approved_by: Option<&'a str>,
    /// Apply even over `max_actions_per_run`.
    pub force: bool,
    /// Send field updates in bulk (one `update_fields_batch` per batch).
    pub bulk: bool,
    /// Requests in flight at once from this side.
    pub max_in_flight: usize,
    /// `[apply]`.
    pub settings: &'a ApplySettings,
    /// The output store (journal).
    pub store: Arc<dyn ObjectStore>,
    /// The output prefix.
    pub prefix: Path,
    /// `[create]`, when on (its cap, and where documents are read from).
    pub create: Option<&'a crate::job::create::CreateSettings>,
}

/// What an execution did.
#[derive(Debug, Clone, Default)]
pub struct Execution {
    /// One result per action, in plan order.
    pub results: Vec<ActionResult>,
    /// Why nothing was sent, when the cap refused the run.
    pub refused: Option<String>,
    /// Document bytes uploaded.
    pub document_bytes: u64,
}

fn result(
    a: &Action,
    outcome: &str,
    status: Option<u16>,
    message: Option<String>,
    attempt: u32,
) -> ActionResult {
    ActionResult {
        key: a.key.clone(),
        generation: a.generation,
        action: a.kind.as_str().to_string(),
        erp_record_id: a.erp_record_id.clone(),
        contract_id: a.contract_id.clone(),
        outcome: outcome.to_string(),
        status,
        message,
        attempt,
    }
}

/// Runs `actions` (a plan, keys assigned) through `sink` and `spotdraft`.
pub async fn execute_plan<S, D>(
    actions: &[Action],
    journal: &JournalView,
    sink: &S,
    spotdraft: &D,
    ctx: &ApplyContext<'_>,
) -> Result<Execution, ApplyError>
where
    S: ErpSink,
    D: DocumentSource + MetadataWriter + ContractCreator,
{
    let mut results: Vec<Option<ActionResult>> = vec![None; actions.len()];
    let (mut fields, mut documents) = (Vec::new(), Vec::new());
    let (mut creates, mut follow_ups) = (Vec::new(), Vec::new());
    for (i, a) in actions.iter().enumerate() {
        if !a.is_sendable() {
            results[i] = Some(result(a, "review", None, a.reason.clone(), 0));
            continue;
        }
        match journal.latest(&a.key) {
            Some(e) if e.outcome == "applied" => {
                results[i] = Some(result(
                    a,
                    "already_applied",
                    None,
                    Some(format!("applied at {}", e.at)),
                    journal.attempts(&a.key),
                ));
                continue;
            }
            Some(e) if e.outcome == "rejected" || e.outcome == "checksum_mismatch" => {
                let message = format!(
                    "not re-sent with the same content: {}",
                    e.message.clone().unwrap_or_default()
                );
                results[i] = Some(result(
                    a,
                    "rejected_earlier",
                    None,
                    Some(message),
                    journal.attempts(&a.key),
                ));
                continue;
            }
            _ => {}
        }
        if a.kind == ActionKind::CreateContract {
            creates.push(i);
        } else if waits_for_create(a) {
            follow_ups.push(i);
        } else if a.kind == ActionKind::AttachDocument {
            documents.push(i);
        } else {
            fields.push(i);
        }
    }
    let to_send = fields.len() + documents.len() + creates.len() + follow_ups.len();
    let cap = ctx.settings.max_actions_per_run;
    let create_cap = ctx.create.map_or(usize::MAX, |c| c.max_creates_per_run);
    let why = if to_send > cap {
        Some(format!(
            "{to_send} actions to send exceed [apply] max_actions_per_run = {cap}"
        ))
    } else if creates.len() > create_cap {
        Some(format!(
            "{} contracts to create exceed [create] max_creates_per_run = {create_cap}",
            creates.len()
        ))
    } else {
        None
    };
    if let Some(why) = why.filter(|_| !ctx.force) {
        let why = format!(
            "{why}: nothing applied (review the plan, then `contract-recon apply {} {} --force`)",
            ctx.job, ctx.plan_run_id
        );
        for i in fields
            .into_iter()
            .chain(documents)
            .chain(creates)
            .chain(follow_ups)
        {
            results[i] = Some(result(&actions[i], "not_sent", None, Some(why.clone()), 0));
        }
        return Ok(Execution {
            results: results.into_iter().flatten().collect(),
            refused: Some(why),
            document_bytes: 0,
        });
    }
    // Creates first: what waits for them needs their contract ids.
    let mut created = journal.applied_creates();
    for (i, r) in creates_lane(actions, &creates, journal, spotdraft, ctx).await? {
        if let (Some(erp), Some(id), "applied") = (
            actions[i].erp_record_id.clone(),
            r.contract_id.clone(),
            r.outcome.as_str(),
        ) {
            created.insert(erp, id);
        }
        results[i] = Some(r);
    }
    let mut resolved: Vec<Action> = actions.to_vec();
    let mut uploads = Vec::new();
    for i in follow_ups {
        let a = &actions[i];
        // A contract created by a run killed before journaling it: looked up.
        let erp = a.erp_record_id.clone().unwrap_or_default();
        if !created.contains_key(&erp)
            && !creates
                .iter()
                .any(|c| actions[*c].erp_record_id == a.erp_record_id)
        {
            match spotdraft.find_contract(&erp).await {
                Ok(Some(id)) => {
                    created.insert(erp, id);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(job = ctx.job, error = %e, "a follow-up waits: its contract could not be looked up")
                }
            }
        }
        match resolve(a, &created) {
            Some(r) => {
                if r.kind == ActionKind::UploadSupportingDocument {
                    uploads.push(i);
                } else {
                    fields.push(i);
                }
                resolved[i] = r;
            }
            None => {
                let why = format!(
                    "waits for the create_contract of record {}: no contract yet; sent by the run that creates it",
                    a.erp_record_id.as_deref().unwrap_or("?")
                );
                results[i] = Some(result(a, "not_sent", None, Some(why), 0));
            }
        }
    }
    fields.sort_unstable();
    let base = ctx
        .create
        .map(|c| c.documents_base.clone())
        .unwrap_or_default();
    let actions = &resolved[..];
    let bytes = AtomicU64::new(0);
    let (f, d, u) = tokio::join!(
        fields_lane(actions, &fields, journal, sink, spotdraft, ctx),
        documents_lane(actions, &documents, journal, sink, spotdraft, ctx, &bytes),
        supporting_documents_lane(actions, &uploads, journal, spotdraft, ctx, &base),
    );
    for (i, r) in f?.into_iter().chain(d?).chain(u?) {
        results[i] = Some(r);
    }
    Ok(Execution {
        results: results.into_iter().flatten().collect(),
        refused: None,
        document_bytes: bytes.load(Ordering::Relaxed),
    })
}

fn outcome_of(a: &Action, outcome: WriteOutcome, attempt: u32) -> ActionResult {
    match outcome {
        WriteOutcome::Applied { replayed, .. } => result(
            a,
            "applied",
            Some(200),
            replayed.then(|| "the ERP replayed an earlier result for this key".into()),
            attempt,
        ),
        WriteOutcome::Rejected {
            status,
            code,
            message,
        } => {
            let message = match code {
                Some(code) => format!("{code}: {message}"),
                None => message,
            };
            result(a, "rejected", Some(status), Some(message), attempt)
        }
        WriteOutcome::Pending { error } => result(a, "pending", None, Some(error), attempt),
        WriteOutcome::ChecksumMismatch { expected, actual } => result(
            a,
            "checksum_mismatch",
            None,
            Some(format!(
                "expected sha256 {expected}, streamed {actual}: nothing stored"
            )),
            attempt,
        ),
    }
}

/// Journals a completed batch; the crash point follows the first one.
async fn journal_batch(
    ctx: &ApplyContext<'_>,
    lane: &str,
    batch: u32,
    actions: &[Action],
    done: &[(usize, ActionResult)],
) -> Result<(), ApplyError> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let keys: Vec<&str> = done.iter().map(|(i, _)| actions[*i].key.as_str()).collect();
    let entries = done
        .iter()
        .filter(|(_, r)| r.attempt > 0)
        .map(|(i, r)| JournalEntry {
            key: r.key.clone(),
            generation: r.generation,
            content_hash: content_hash(ctx.job, &actions[*i]),
            action: r.action.clone(),
            erp_record_id: r.erp_record_id.clone(),
            contract_id: r.contract_id.clone(),
            attempt: r.attempt,
            outcome: match r.outcome.as_str() {
                "applied" | "rejected" | "checksum_mismatch" => r.outcome.clone(),
                _ => "pending".into(),
            },
            message: r.message.clone(),
            at: now.clone(),
            run_id: ctx.plan_run_id.to_string(),
            approved_by: ctx.approved_by.map(str::to_string),
        })
        .collect::<Vec<_>>();
    if entries.is_empty() {
        return Ok(());
    }
    let record = BatchRecord {
        job: ctx.job.to_string(),
        apply_id: ctx.apply_id.to_string(),
        lane: lane.to_string(),
        batch,
        batch_key: batch_key(&keys),
        entries,
    };
    append_batch(&ctx.store, &ctx.prefix, &record).await?;
    crate::crashpoint::hit("apply.between_batches");
    Ok(())
}

async fn fields_lane<S: ErpSink, D: MetadataWriter>(
    actions: &[Action],
    todo: &[usize],
    journal: &JournalView,
    sink: &S,
    spotdraft: &D,
    ctx: &ApplyContext<'_>,
) -> Result<Vec<(usize, ActionResult)>, ApplyError> {
    let mut out = Vec::new();
    for (n, chunk) in todo.chunks(ctx.settings.batch_size.max(1)).enumerate() {
        let attempt = |i: usize| journal.attempts(&actions[i].key) + 1;
        let (updates, write_backs): (Vec<usize>, Vec<usize>) = chunk
            .iter()
            .partition(|i| actions[**i].kind == ActionKind::UpdateErpFields);
        let field_update = |i: usize| FieldUpdate {
            erp_record_id: actions[i].erp_record_id.clone().unwrap_or_default(),
            fields: actions[i].fields.clone(),
            if_match: actions[i].if_match.clone(),
            idempotency_key: actions[i].key.clone(),
        };
        let mut done: Vec<(usize, ActionResult)> = Vec::new();
        if ctx.bulk && !updates.is_empty() {
            let batch: Vec<FieldUpdate> = updates.iter().map(|i| field_update(*i)).collect();
            let key = batch_key(
                &batch
                    .iter()
                    .map(|u| u.idempotency_key.as_str())
                    .collect::<Vec<_>>(),
            );
            let outcomes = sink.update_fields_batch(&batch, &key).await;
            for (k, i) in updates.iter().enumerate() {
                let outcome = outcomes.get(k).cloned().unwrap_or(WriteOutcome::Pending {
                    error: "the sink returned no outcome".into(),
                });
                done.push((*i, outcome_of(&actions[*i], outcome, attempt(*i))));
            }
        } else {
            let sent: Vec<(usize, ActionResult)> = futures::stream::iter(updates.iter().copied())
                .map(|i| {
                    let update = field_update(i);
                    async move {
                        (
                            i,
                            outcome_of(&actions[i], sink.update_fields(&update).await, attempt(i)),
                        )
                    }
                })
                .buffer_unordered(ctx.max_in_flight.max(1))
                .collect()
                .await;
            done.extend(sent);
        }
        let written: Vec<(usize, ActionResult)> =
            futures::stream::iter(write_backs.iter().copied())
                .map(|i| async move {
                    let a = &actions[i];
                    let outcome = spotdraft
                        .set_external_metadata(
                            a.contract_id.as_deref().unwrap_or(""),
                            &a.fields,
                            &a.key,
                        )
                        .await;
                    (i, outcome_of(a, outcome, attempt(i)))
                })
                .buffer_unordered(ctx.max_in_flight.max(1))
                .collect()
                .await;
        done.extend(written);
        done.sort_by_key(|(i, _)| *i);
        journal_batch(ctx, "fields", n as u32 + 1, actions, &done).await?;
        out.extend(done);
    }
    Ok(out)
}

async fn documents_lane<S: ErpSink, D: DocumentSource>(
    actions: &[Action],
    todo: &[usize],
    journal: &JournalView,
    sink: &S,
    spotdraft: &D,
    ctx: &ApplyContext<'_>,
    bytes: &AtomicU64,
) -> Result<Vec<(usize, ActionResult)>, ApplyError> {
    let budget = ctx.settings.max_document_bytes_per_run;
    let mut out = Vec::new();
    for (n, chunk) in todo.chunks(ctx.settings.batch_size.max(1)).enumerate() {
        let mut done = Vec::new();
        for &i in chunk {
            let a = &actions[i];
            let attempt = journal.attempts(&a.key) + 1;
            let used = bytes.load(Ordering::Relaxed);
            if used >= budget {
                done.push((
                    i,
                    result(
                        a,
                        "not_sent",
                        None,
                        Some(format!(
                            "[apply] max_document_bytes_per_run = {budget} reached; sent next run"
                        )),
                        0,
                    ),
                ));
                continue;
            }
            let (open, length) = match spotdraft
                .open_document(a.contract_id.as_deref().unwrap_or(""))
                .await
            {
                Ok(opened) => opened,
                Err(error) => {
                    done.push((i, result(a, "pending", None, Some(error), attempt)));
                    continue;
                }
            };
            if length.is_some_and(|len| used + len > budget) {
                let message = format!(
                    "document of {} bytes would pass [apply] max_document_bytes_per_run = {budget}; sent next run",
                    length.unwrap_or(0)
                );
                done.push((i, result(a, "not_sent", None, Some(message), 0)));
                continue;
            }
            let counter = Arc::new(AtomicU64::new(0));
            let seen = counter.clone();
            let counted: OpenDocument = Arc::new(move || {
                let (opening, seen) = (open(), seen.clone());
                Box::pin(async move {
                    let stream = opening.await?;
                    Ok(stream
                        .inspect(move |chunk| {
                            if let Ok(c) = chunk {
                                seen.fetch_add(c.len() as u64, Ordering::Relaxed);
                            }
                        })
                        .boxed())
                })
            });
            let upload = DocumentUpload {
                erp_record_id: a.erp_record_id.clone().unwrap_or_default(),
                file_name: format!("{}.pdf", a.contract_id.as_deref().unwrap_or("document")),
                sha256: a.document_sha256.clone(),
                length,
                open: counted,
                idempotency_key: a.key.clone(),
            };
            let outcome = sink.attach_document(upload).await;
            bytes.fetch_add(counter.load(Ordering::Relaxed), Ordering::Relaxed);
            done.push((i, outcome_of(a, outcome, attempt)));
        }
        journal_batch(ctx, "documents", n as u32 + 1, actions, &done).await?;
        out.extend(done);
    }
    Ok(out)
}
