//! Job files: raw TOML structs ([`raw`]) validated once into a typed [`Job`].
//!
//! Relative paths in a job file are read from the job file's own folder, so a
//! job runs the same from any working directory (cron, systemd, a shell).

pub mod raw;
mod validate;

pub use validate::{load_job, load_job_with_env, JobProblem, JobProblems};

use crate::reconcile::spec::ReconcileSpec;
use crate::secret::Secret;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A validated job: every value checked, every default applied.
#[derive(Debug, Clone)]
pub struct Job {
    /// Job name (letters, digits, `-`, `_`).
    pub name: String,
    /// The job file it came from.
    pub source: PathBuf,
    /// Cron schedule, when the job has one.
    pub schedule: Option<Schedule>,
    /// The SpotDraft workspace: a real one or the embedded sandbox.
    pub spotdraft: SpotDraftTarget,
    /// How contracts are paged and fetched.
    pub fetch: FetchSettings,
    /// The ERP extract.
    pub extract: ExtractSettings,
    /// What is compared and how.
    pub reconcile: ReconcileSpec,
    /// Where results go.
    pub output: OutputSettings,
    /// How drift is followed from run to run.
    pub report: ReportSettings,
}

/// `[report]`: how drift is followed from run to run.
#[derive(Debug, Clone, Default)]
pub struct ReportSettings {
    /// The acknowledgement file (absolute, or relative to the working folder
    /// when the job file's path was), read at the start of every run.
    pub acknowledgements: Option<PathBuf>,
}

/// A cron schedule, seconds first, read in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The expression as written.
    pub cron: String,
    /// Time zone it is read in.
    pub timezone: chrono_tz::Tz,
}

/// Which SpotDraft API the job talks to.
#[derive(Debug, Clone)]
pub enum SpotDraftTarget {
    /// A real workspace.
    Live {
        /// Base URL including `/api/`.
        base_url: url::Url,
        /// `client-id` header value.
        client_id: Secret,
        /// `client-secret` header value.
        client_secret: Secret,
        /// `user-email` header value.
        user_email: Option<String>,
    },
    /// The embedded sandbox, started by the run itself.
    Sandbox {
        /// Fixture dataset directory (resolved).
        fixtures: PathBuf,
        /// Rate limit the sandbox enforces.
        rate_limit_per_sec: u32,
    },
}

/// Paging and fetching settings.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// Contracts per list request (1..=100).
    pub page_size: u32,
    /// Requests per second to the workspace.
    pub requests_per_second: u32,
    /// Requests in flight at once.
    pub max_in_flight: usize,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Attempts per request, including the first.
    pub max_attempts: u32,
    /// First backoff.
    pub initial_backoff: Duration,
    /// Largest backoff.
    pub max_backoff: Duration,
    /// Total retry time per request.
    pub max_retry_total: Duration,
    /// Status filter for the list (empty: all).
    pub status_filter: Vec<String>,
    /// Incremental overlap.
    pub overlap: Duration,
    /// Whether executed documents are downloaded and hashed.
    pub fetch_documents: bool,
    /// `record_data` keys the job reads (snapshot columns `external_metadata.record_data.<key>`).
    pub record_data_keys: Vec<String>,
    /// Metadata value field names the job reads (snapshot columns `key_pointers.<field>`).
    pub key_pointer_fields: Vec<String>,
    /// In-scope contracts whose metadata values are fetched again each run, stalest first.
    pub refresh_per_run: crate::ingest::RefreshBudget,
}

/// ERP extract location and shape.
#[derive(Debug, Clone)]
pub struct ExtractSettings {
    /// URL or absolute local path.
    pub url: String,
    /// File format.
    pub format: ExtractFileFormat,
    /// Canonical name -> extract column name.
    pub columns: BTreeMap<String, String>,
}

/// ERP extract file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtractFileFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
}

/// Output location and formats.
#[derive(Debug, Clone)]
pub struct OutputSettings {
    /// URL or absolute local path of the output root.
    pub url: String,
    /// Write `drift.parquet`.
    pub parquet: bool,
    /// Write `drift.csv`.
    pub csv: bool,
    /// Write `report.html`.
    pub html: bool,
}
