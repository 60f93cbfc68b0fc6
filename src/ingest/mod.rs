//! The ingest stage: the complete page walk, its time windows, enrichment,
//! the contract snapshot and the resumable run state.
//!
//! [`ingest`] walks SpotDraft (full or incremental, see [`walk`] and
//! [`window`]), merges into the previous snapshot, finds the contracts that
//! are gone ([`deletions`]), fetches metadata values and document hashes
//! where reconciliation needs them ([`enrich`]), writes the snapshot (one
//! put) and leaves the watermark to the runner ([`commit_watermark`]).
//!
//! What is fetched again, and when:
//! - a full walk after the first also walks `last_updated_on` in
//!   [watermark − overlap, run start) (a second window set, same machinery):
//!   those contracts count as changed even when their list item is the same;
//! - metadata values (when the job names a `key_pointers.<field>`) for live
//!   contracts in the reconciled statuses that are new, changed, never
//!   enriched, or among the stalest ([`IngestSettings::refresh_per_run`]);
//! - executed documents (with `fetch_documents`) for such `EXECUTED` contracts
//!   when new, changed or never downloaded.
//!
//! Deletions: every run compares the server's count of contracts created
//! before its start (one `limit=1` request) with the snapshot's live ones;
//! when they differ, [`deletions`] narrows `created_at` windows by their
//! totals down to windows of one page, and marks the missing contracts
//! deleted. A contract answering 404 to its metadata values or document is
//! re-checked with one list request and marked deleted when gone. With a
//! status filter, missing contracts are first looked up by id (no status
//! filter): one that merely left the filter is kept, with its new list item.
//!
//! A stopped or failed run keeps its pages and enrichment results and resumes
//! where it stopped: the walks save their progress through a [`WalkStore`],
//! which the run state ([`checkpoint`]) implements, and enrichment spills its
//! results in batches there.
//!
//! Errors print either their cause or expose it through `source()`, never
//! both, so `main`'s rendered chain names each URL once.

pub mod backfill;
pub mod checkpoint;
pub mod deletions;
pub mod enrich;
mod enrich_run;
pub mod merge;
pub mod partial;
pub mod progress;
mod run;
mod run_parts;
pub mod snapshot;
mod state_error;
pub mod walk;
pub mod window;

pub use checkpoint::{
    Checkpoint, CheckpointWalkStore, EnrichProgress, Progress, StateStore, WalkMode, WalkSlot,
};
pub use partial::{upsert_contracts, PartialOutcome, PartialUpdate};
pub use run::{commit_watermark, ingest, ingest_with_control, snapshot_path};
pub use state_error::StateError;
pub use walk::{PageEvent, WalkControl, WalkError, WalkOptions, WalkOutcome, WalkState, WalkStore};
pub use window::{Window, WindowField};

use crate::http::{HttpStatsSnapshot, RetryPolicy};
use crate::secret::Secret;
use crate::spotdraft::client::{FetchError, RequestCounts};
use crate::spotdraft::SpotDraftClient;
use chrono::{DateTime, Utc};
use polars::prelude::DataFrame;
use serde::Serialize;
use std::time::Duration;

/// What one job's ingest needs.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Job name (state and snapshot paths).
    pub job: String,
    /// SpotDraft API base (`https://api.us.spotdraft.com/api/`).
    pub base_url: url::Url,
    /// `client-id`.
    pub client_id: Secret,
    /// `client-secret`.
    pub client_secret: Secret,
    /// Optional `user-email`.
    pub user_email: Option<String>,
    /// List page size (1..=100).
    pub page_size: u32,
    /// Workspace request rate (SpotDraft: 10).
    pub requests_per_second: u32,
    /// Requests in flight at once.
    pub max_in_flight: usize,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// `display_status` values to keep (empty: all).
    pub status_filter: Vec<String>,
    /// How far before the watermark an incremental walk starts.
    pub overlap: Duration,
    /// `external_metadata.record_data` keys to flatten into columns.
    pub record_data_keys: Vec<String>,
    /// Metadata value fields (`field_name`) to fetch into columns.
    pub key_pointer_fields: Vec<String>,
    /// Fetch the executed document of EXECUTED contracts and keep its SHA-256.
    pub fetch_documents: bool,
    /// Statuses the job reconciles (`[match] statuses`; empty: every status).
    /// Metadata values are fetched only for live contracts in them, documents
    /// only for `EXECUTED` contracts when `EXECUTED` is one of them.
    pub reconciled_statuses: Vec<String>,
    /// Contracts whose metadata values are fetched again each run, stalest
    /// first, so every value is re-verified within a bounded number of runs.
    pub refresh_per_run: RefreshBudget,
}

/// How many in-scope contracts get their metadata values fetched again per
/// run, oldest `key_pointers_fetched_at` first (`[spotdraft] refresh_per_run`:
/// a number, or a percentage such as `"2%"`). With `n` contracts per run every
/// value of `N` in-scope contracts is re-verified within `ceil(N / n)` runs;
/// with `p%`, within `ceil(100 / p)` runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshBudget {
    /// This many contracts per run (0: no refresh).
    Contracts(u64),
    /// This share of the in-scope contracts, in percent (0 to 100), rounded up.
    Percent(f64),
}

impl Default for RefreshBudget {
    /// 2% of the in-scope contracts: every value re-verified within 50 runs.
    fn default() -> Self {
        RefreshBudget::Percent(2.0)
    }
}

impl RefreshBudget {
    /// Contracts to refresh out of `in_scope`.
    pub fn of(&self, in_scope: usize) -> usize {
        match *self {
            RefreshBudget::Contracts(n) => usize::try_from(n).unwrap_or(usize::MAX).min(in_scope),
            RefreshBudget::Percent(p) => {
                let share = (in_scope as f64 * p.clamp(0.0, 100.0) / 100.0).ceil();
                (share as usize).min(in_scope)
            }
        }
    }
}

impl IngestSettings {
    /// A client for the workspace, drawing on the process's one limiter for
    /// the workspace (base URL plus client id, at `requests_per_second`, the
    /// lower one when jobs running at once configure different rates: see
    /// [`crate::http::workspaces`]), with its own `max_in_flight` cap and
    /// counters. Ingestion makes one; steps outside a run (applying a reviewed
    /// plan, `validate --online`) make theirs the same way.
    pub fn client(&self) -> Result<SpotDraftClient, FetchError> {
        let config = crate::spotdraft::ClientConfig {
            base_url: self.base_url.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            user_email: self.user_email.clone(),
            request_timeout: self.request_timeout,
        };
        let rate =
            crate::http::workspace_rate(&self.base_url, &self.client_id, self.requests_per_second);
        let throttle =
            std::sync::Arc::new(crate::http::Throttle::sharing(rate, self.max_in_flight));
        SpotDraftClient::new(config, throttle, self.retry.clone())
    }
}

/// Which walk to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IngestMode {
    /// Incremental if a watermark exists, else full; resumes any unfinished walk.
    #[default]
    Auto,
    /// Every contract created before the run's start.
    Full,
    /// Contracts updated since the watermark (minus the overlap).
    Incremental,
}

/// Figures of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct IngestStats {
    /// Job name.
    pub job: String,
    /// Full or incremental.
    pub mode: Option<WalkMode>,
    /// True when the run continued an unfinished walk.
    pub resumed: bool,
    /// The run's start (the new watermark).
    pub run_start: Option<DateTime<Utc>>,
    /// Watermark before the run.
    pub watermark_before: Option<DateTime<Utc>>,
    /// Watermark after the run, once the runner commits it.
    pub watermark_after: Option<DateTime<Utc>>,
    /// Requests per endpoint (attempts).
    pub requests: RequestCounts,
    /// Throttle and retry counters (429s, retries, limiter wait, bytes).
    pub http: HttpStatsSnapshot,
    /// All requests divided by the run's wall time.
    pub achieved_requests_per_s: f64,
    /// Wall time, ms.
    pub elapsed_ms: u64,
    /// Contracts returned by the walk.
    pub contracts_fetched: usize,
    /// New or changed contracts.
    pub contracts_changed: usize,
    /// New contracts.
    pub contracts_new: usize,
    /// Contracts newly marked deleted (absent from a full walk, found missing
    /// by the deletion search, or vanished during enrichment).
    pub contracts_deleted: usize,
    /// Contracts that answered 404 to their metadata values or document and
    /// that a list request by id no longer finds (marked deleted).
    pub contracts_vanished: usize,
    /// Contracts absent from a status-filtered walk that a lookup by id still
    /// finds (their status left the filter): kept, with their new list item.
    pub contracts_left_filter: usize,
    /// Contracts returned by the walk of `last_updated_on` in
    /// [watermark − overlap, run start) (the incremental walk itself, or the
    /// second window set of a full walk after the first).
    pub contracts_updated_since_watermark: usize,
    /// Deleted contracts seen again.
    pub contracts_restored: usize,
    /// Rows in the snapshot (deleted ones included).
    pub snapshot_rows: usize,
    /// Window attempts abandoned because the list shifted.
    pub windows_rewalked: u64,
    /// Windows split in two.
    pub windows_split: u64,
    /// Server count of contracts created before the run's start (in the
    /// status filter) minus the snapshot's live count after the walk; non-zero
    /// starts the deletion search, which resolves it.
    pub live_count_mismatch: Option<i64>,
    /// List requests the deletion search made after the live count (window
    /// totals, window listings, lookups by id); 0 when the count agreed.
    pub deletion_search_requests: u64,
    /// List requests asking about contracts that ERP records name and the
    /// snapshot lacks (so that only really missing ones become orphans).
    pub orphan_check_requests: u64,
    /// Contracts whose metadata values were fetched (this run and the
    /// checkpoint it resumed).
    pub key_pointers_fetched: usize,
    /// Of those, fetched again only by the refresh budget (stalest first).
    pub key_pointers_refreshed: usize,
    /// Executed documents downloaded and hashed.
    pub documents_fetched: usize,
    /// In-scope `EXECUTED` contracts whose document answered 404 while the
    /// contract exists: kept with a null `document_sha256`.
    pub documents_unavailable: usize,
    /// Contracts enriched by the checkpoint of an interrupted run, not fetched again.
    pub enrichment_resumed: usize,
    /// Age at the end of the run of the oldest metadata values among live
    /// in-scope contracts (seconds since their `key_pointers_fetched_at`).
    pub oldest_key_pointers_age_secs: Option<u64>,
}

/// A finished run.
#[derive(Debug)]
pub struct IngestOutcome {
    /// The snapshot as written.
    pub snapshot: DataFrame,
    /// Figures.
    pub stats: IngestStats,
    /// The watermark this ingest earns, moved by [`commit_watermark`] once the
    /// run's later stages are done.
    pub pending: PendingWatermark,
    /// The workspace's client, sharing the ingest's rate limiter, for the
    /// run's later lookups (contracts that ERP records name).
    pub client: SpotDraftClient,
}

/// A watermark not yet committed: the start of the run whose snapshot is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingWatermark {
    /// The run's start.
    pub run_start: DateTime<Utc>,
}

/// Why a run failed. Pages fetched are kept and the watermark is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A setting is unusable.
    #[error("job {job}: setting `{key}`: {message}")]
    Config {
        /// Job.
        job: String,
        /// Setting name.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// An incremental run was asked for without a previous full run.
    #[error("job {job}: an incremental run needs a watermark in {state}; run a full walk first")]
    NoWatermark {
        /// Job.
        job: String,
        /// State file.
        state: String,
    },
    /// The walk failed or was stopped.
    #[error("job {job}")]
    Walk {
        /// Job.
        job: String,
        /// Cause.
        #[source]
        source: WalkError,
    },
    /// A SpotDraft call outside the walk failed.
    #[error("job {job}: {what}")]
    Fetch {
        /// Job.
        job: String,
        /// What was being fetched (names the contract).
        what: String,
        /// Cause.
        #[source]
        source: Box<FetchError>,
    },
    /// Run state.
    #[error("job {job}")]
    State {
        /// Job.
        job: String,
        /// Cause.
        #[source]
        source: StateError,
    },
    /// Enrichment was stopped (lease lost, budget); its results are kept.
    #[error(
        "job {job}: enrichment stopped after {done} of {total} contracts; the next run resumes it"
    )]
    Stopped {
        /// Job.
        job: String,
        /// Contracts enriched so far (checkpoint included).
        done: usize,
        /// Contracts to enrich in this run.
        total: usize,
    },
    /// The snapshot could not be read, built or written.
    #[error("job {job}: snapshot {path}: {message}")]
    Snapshot {
        /// Job.
        job: String,
        /// Object path.
        path: String,
        /// What failed.
        message: String,
    },
}
