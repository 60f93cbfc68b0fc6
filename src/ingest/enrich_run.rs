//! Fetching what the enrichment plan asks for, `max_in_flight` contracts at a
//! time inside the workspace's limiter, resumably.
//!
//! Results are spilled in batches of [`BATCH`] (`{prefix}/state/<job>/enrich/`,
//! counted in the state file) as they arrive, and on any failure or stop
//! before the error is returned; a resumed run applies the spilled results and
//! fetches only the rest. Crash point `ingest.enriching`: right after the first
//! batch of a call is checkpointed.
//!
//! A 404 never fails the run by itself: the contract is looked up by id (one
//! list request, no status filter). Gone: it is marked deleted (`deleted_at` =
//! now). Still there: a 404 on its document means it has none to download
//! (null checksum, counted); a 404 on its metadata values fails the request.

use super::checkpoint::{Checkpoint, EnrichProgress, Progress};
use super::enrich::{apply, EnrichResult, Task};
use super::merge::Merged;
use super::progress::{EnrichEvent, Feedback};
use super::run_parts::RunContext;
use super::snapshot::key_pointer_map;
use super::IngestError;
use crate::spotdraft::client::{FetchError, SpotDraftClient};
use crate::spotdraft::model::ContractId;
use chrono::{SecondsFormat, Utc};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::time::Instant;

/// Results per spilled batch: at 10 requests/s, 10 to 20 s of work.
pub const BATCH: usize = 100;

/// Figures of one enrichment (checkpointed results included).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Totals {
    pub key_pointers: usize,
    pub refreshed: usize,
    pub documents: usize,
    pub unavailable: usize,
    pub vanished: usize,
    pub resumed: usize,
}

impl Totals {
    fn count(&mut self, r: &EnrichResult, refresh: &HashSet<String>) {
        if r.vanished_at.is_some() {
            self.vanished += 1;
            return;
        }
        if r.key_pointers.is_some() {
            self.key_pointers += 1;
            self.refreshed += usize::from(refresh.contains(&r.id));
        }
        self.documents += usize::from(r.document_sha256.is_some());
        self.unavailable += usize::from(r.document_unavailable());
    }
}

/// A fetch that failed: which contract, which request.
struct Failure {
    id: String,
    what: &'static str,
    source: FetchError,
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Runs `tasks` over `merged`, saving results under `progress.enrich`.
pub(crate) async fn enrich(
    ctx: &RunContext<'_>,
    progress: &mut Progress,
    merged: &mut Merged,
    tasks: Vec<Task>,
    feedback: &mut Feedback,
) -> Result<Totals, IngestError> {
    let s = ctx.settings;
    let state_err = |source| IngestError::State {
        job: s.job.clone(),
        source,
    };
    let refresh: HashSet<String> = tasks
        .iter()
        .filter(|t| t.refresh)
        .map(|t| t.id.clone())
        .collect();
    let mut totals = Totals::default();
    let key_prefix = format!("{}e", progress.walk.key_prefix);
    let spilled = progress.enrich.get_or_insert(EnrichProgress {
        key_prefix,
        batches: 0,
    });
    let mut done: HashSet<String> = HashSet::new();
    for n in 0..spilled.batches {
        let batch = ctx
            .states
            .get_enrich_batch(&spilled.key(n))
            .await
            .map_err(state_err)?;
        for r in batch {
            apply(merged, &r, &s.key_pointer_fields);
            totals.count(&r, &refresh);
            done.insert(r.id);
        }
    }
    totals.resumed = done.len();
    let pending: Vec<Task> = tasks
        .into_iter()
        .filter(|t| !done.contains(&t.id))
        .collect();
    let total = done.len() + pending.len();
    let mut event = EnrichEvent {
        done: done.len(),
        total,
        requests_left: pending.iter().map(Task::requests).sum(),
        requests_per_second: s.requests_per_second,
        started: Instant::now(),
        done_at_start: done.len(),
    };
    feedback.enrich(&event);
    let mut results = futures::stream::iter(pending)
        .map(|t| fetch_one(ctx.client, t))
        .buffer_unordered(s.max_in_flight.max(1));
    let mut batch: Vec<EnrichResult> = vec![];
    let mut flushed_once = false;
    let mut this_call = 0u64;
    while let Some(outcome) = results.next().await {
        let (r, planned) = match outcome {
            Ok(ok) => ok,
            Err(f) => {
                flush(ctx, progress, &mut batch).await?;
                return Err(IngestError::Fetch {
                    job: s.job.clone(),
                    what: format!("{} of contract {}", f.what, f.id),
                    source: Box::new(f.source),
                });
            }
        };
        apply(merged, &r, &s.key_pointer_fields);
        totals.count(&r, &refresh);
        batch.push(r);
        crate::crashpoint::hit(crate::crashpoint::ENRICH_RESULT);
        this_call += 1;
        event.done += 1;
        event.requests_left = event.requests_left.saturating_sub(planned);
        feedback.enrich(&event);
        if batch.len() >= BATCH {
            flush(ctx, progress, &mut batch).await?;
            if !flushed_once {
                flushed_once = true;
                crate::crashpoint::hit("ingest.enriching");
            }
        }
        let over_budget = ctx.control.enrich_budget.is_some_and(|b| this_call >= b);
        if (ctx.control.stopped() || over_budget) && event.done < total {
            flush(ctx, progress, &mut batch).await?;
            return Err(IngestError::Stopped {
                job: s.job.clone(),
                done: event.done,
                total,
            });
        }
    }
    flush(ctx, progress, &mut batch).await?;
    Ok(totals)
}

/// Spills `batch` (when not empty) and saves the state that counts it.
async fn flush(
    ctx: &RunContext<'_>,
    progress: &mut Progress,
    batch: &mut Vec<EnrichResult>,
) -> Result<(), IngestError> {
    if batch.is_empty() {
        return Ok(());
    }
    let state_err = |source| IngestError::State {
        job: ctx.settings.job.clone(),
        source,
    };
    let spilled = progress
        .enrich
        .as_mut()
        .expect("enrich() sets the enrichment progress first");
    ctx.states
        .put_enrich_batch(&spilled.key(spilled.batches), batch)
        .await
        .map_err(state_err)?;
    spilled.batches += 1;
    let checkpoint = Checkpoint {
        watermark: ctx.watermark,
        progress: Some(progress.clone()),
    };
    ctx.states.save(&checkpoint).await.map_err(state_err)?;
    batch.clear();
    Ok(())
}

/// Fetches one contract's metadata values and/or document; returns what it
/// found and the requests it was planned to make.
async fn fetch_one(client: &SpotDraftClient, task: Task) -> Result<(EnrichResult, u64), Failure> {
    let planned = task.requests();
    let id = ContractId::new(task.id.clone());
    let fail = |what, source| Failure {
        id: task.id.clone(),
        what,
        source,
    };
    let mut r = EnrichResult {
        id: task.id.clone(),
        ..EnrichResult::default()
    };
    if task.key_pointers {
        match client.key_pointers(&id).await {
            Ok(kps) => {
                r.key_pointers = Some(key_pointer_map(&kps));
                r.key_pointers_fetched_at = Some(now());
            }
            Err(e) if e.is_not_found() => {
                if !exists(client, &id).await.map_err(|e| fail("lookup", e))? {
                    r.vanished_at = Some(now());
                    return Ok((r, planned));
                }
                return Err(fail("metadata values", e));
            }
            Err(e) => return Err(fail("metadata values", e)),
        }
    }
    if task.document {
        match client.download(&id).await {
            Ok(bytes) => r.document_sha256 = Some(hex::encode(Sha256::digest(&bytes))),
            Err(e) if e.is_not_found() => {
                if !exists(client, &id).await.map_err(|e| fail("lookup", e))? {
                    r.vanished_at = Some(now());
                    return Ok((r, planned));
                }
                tracing::warn!(contract = %id, "executed contract without a downloadable document");
            }
            Err(e) => return Err(fail("document", e)),
        }
        r.document_fetched_at = Some(now());
    }
    Ok((r, planned))
}

async fn exists(client: &SpotDraftClient, id: &ContractId) -> Result<bool, FetchError> {
    client.contract_exists(id).await
}
