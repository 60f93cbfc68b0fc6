//! The ingest stage: the complete page walk, its time windows, enrichment,
//! the contract snapshot and the resumable run state.
//!
//! [`ingest`] walks SpotDraft (full or incremental, see [`walk`] and
//! [`window`]), fetches metadata values and document hashes for new or changed
//! contracts only, merges into the previous snapshot, writes the snapshot (one
//! put) and only then advances the watermark. A stopped or failed run keeps
//! its pages and resumes where it stopped: the walk saves its progress through
//! a [`WalkStore`], which the run state ([`checkpoint`]) implements.
//!
//! Deletions on incremental runs: after the walk, one `limit=1` request over
//! the whole created range gives the server's count; when it differs from the
//! snapshot's live contracts the difference is reported in
//! [`IngestStats::live_count_mismatch`] (no bisection: the next full walk marks
//! the deleted ones).

pub mod checkpoint;
pub mod merge;
pub mod progress;
mod run;
pub mod snapshot;
mod state_error;
pub mod walk;
pub mod window;

pub use checkpoint::{Checkpoint, CheckpointWalkStore, Progress, StateStore, WalkMode};
pub use run::{commit_watermark, ingest, ingest_with_control, snapshot_path};
pub use state_error::StateError;
pub use walk::{PageEvent, WalkControl, WalkError, WalkOptions, WalkOutcome, WalkState, WalkStore};
pub use window::{Window, WindowField};

use crate::http::{HttpStatsSnapshot, RetryPolicy};
use crate::secret::Secret;
use crate::spotdraft::client::{FetchError, RequestCounts};
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
    /// Contracts newly marked deleted.
    pub contracts_deleted: usize,
    /// Deleted contracts seen again.
    pub contracts_restored: usize,
    /// Rows in the snapshot (deleted ones included).
    pub snapshot_rows: usize,
    /// Window attempts abandoned because the list shifted.
    pub windows_rewalked: u64,
    /// Windows split in two.
    pub windows_split: u64,
    /// Incremental runs: server count of contracts created before the run's
    /// start minus the snapshot's live count (non-zero: deletions, or status
    /// changes out of the filter, happened; a full walk resolves them).
    pub live_count_mismatch: Option<i64>,
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
