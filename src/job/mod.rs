//! Job files: raw TOML structs ([`raw`]) validated once into a typed [`Job`].
//!
//! Relative paths in a job file are read from the job file's own folder, so a
//! job runs the same from any working directory (cron, systemd, a shell).

pub mod create;
pub mod raw;
mod validate;

pub use validate::{
    default_owner, load_job, load_job_text, load_job_with_env, JobProblem, JobProblems,
};

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
    /// Corrections: planned, and applied when asked.
    pub apply: ApplySettings,
    /// `[webhooks]`: SpotDraft webhook deliveries turned into targeted runs
    /// (by `contract-recon schedule --webhooks`); `None` without the section.
    pub webhooks: Option<WebhookSettings>,
    /// `[create]`: contracts created for ERP records that need one (`None`: off).
    pub create: Option<create::CreateSettings>,
    /// Where to say that a run failed or found new drift (`[notify]`).
    pub notify: Option<NotifySettings>,
    /// What is removed at the end of a run, and when (`[retention]`).
    pub retention: Option<RetentionSettings>,
}

/// `[webhooks]`: how the daemon takes SpotDraft's webhook deliveries for the job.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Where the HMAC key comes from.
    pub hmac_key: WebhookKeySource,
    /// Larger bodies are refused (413) before being read whole.
    pub max_body_bytes: usize,
    /// A targeted run starts this long after the last delivery...
    pub debounce: Duration,
    /// ...but no later than this after the first one waiting.
    pub max_wait: Duration,
    /// Contracts per targeted run at most (the rest wait for the next one).
    /// ERP events: records per targeted ERP run at most.
    pub max_contracts_per_run: usize,
    /// The shared secret ERP events are signed with (`erp_secret_env`);
    /// `None`: the job takes no ERP events.
    pub erp_secret: Option<ErpEventSecret>,
}

/// The shared secret of ERP events (`[webhooks] erp_secret_env`).
#[derive(Debug, Clone)]
pub struct ErpEventSecret {
    /// The variable's name.
    pub var: String,
    /// Its value, used as the HMAC-SHA256 key as given.
    pub secret: Secret,
}

/// Where the webhook HMAC key comes from.
#[derive(Debug, Clone)]
pub enum WebhookKeySource {
    /// An environment variable, base64 as SpotDraft gives it (checked to
    /// decode when the job file was validated).
    Env {
        /// The variable's name.
        var: String,
        /// Its value, base64.
        key: Secret,
    },
    /// Fetched once from SpotDraft's `GET v2.1/public/webhooks/hmac_key/`
    /// when the daemon starts.
    Fetch,
}

/// `[notify]`, validated.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// The webhook URL (a secret: Slack's carries its token).
    pub url: Secret,
    /// Send when a run fails (or corrections it applied fail).
    pub on_failure: bool,
    /// Send when a nightly run finds drift not in the previous nightly run.
    pub on_new_drift: bool,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Retries.
    pub retry: crate::http::RetryPolicy,
}

/// `[retention]`, validated: ages past which things are removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Reports, leftover staging and spilled pages.
    pub keep_days: u32,
    /// Run records.
    pub history_keep_days: u32,
    /// Correction journals; `None`: kept for ever.
    pub journal_keep_days: Option<u32>,
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
    /// Run a firing missed while the scheduler was down, once, at its startup.
    pub catch_up: bool,
}

/// Parses a job's cron expression the one way the product reads it: seconds
/// first (6 or 7 fields), and day-of-month AND day-of-week must both match
/// when both are restricted (as tokio-cron-scheduler reads them).
pub fn parse_cron(expr: &str) -> Result<croner::Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
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
    /// When the extract looks like a broken export (`min_rows`, `max_row_drop`, `max_age_hours`).
    pub guard: ExtractGuard,
}

/// `[erp.extract]` guard against a broken export: the run fails before any
/// report or plan when one of these is not met (`run --accept-extract` overrides).
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractGuard {
    /// Fewest data rows (0: no check).
    pub min_rows: u64,
    /// Largest share the valid row count may fall by since the last complete
    /// nightly run (1: no check).
    pub max_row_drop: f64,
    /// Oldest the extract may be, by its last modification.
    pub max_age: Option<std::time::Duration>,
}

impl Default for ExtractGuard {
    fn default() -> Self {
        ExtractGuard {
            min_rows: 1,
            max_row_drop: 0.5,
            max_age: None,
        }
    }
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

/// Which system's value is the truth for a compared field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    /// SpotDraft's value is written into the ERP.
    Spotdraft,
    /// The ERP's value is written into the contract's `external_metadata` (opt-in).
    Erp,
    /// Nobody decides automatically: the row is listed for review.
    None,
}

/// Whether a run only plans corrections or also applies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApplyMode {
    /// Write the plan; change nothing.
    #[default]
    Plan,
    /// Write the plan, then apply it.
    Apply,
}

/// How the ERP REST sink authenticates.
#[derive(Debug, Clone)]
pub enum ErpAuth {
    /// No auth header (the sandbox ERP is given its token by the runner).
    Sandbox,
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
    /// `Authorization: Basic ...`.
    Basic {
        /// User.
        user: Secret,
        /// Password.
        password: Secret,
    },
    /// A custom header.
    Header {
        /// Header name.
        name: String,
        /// Header value.
        value: Secret,
    },
}

/// `[apply.rest]`, validated.
#[derive(Debug, Clone)]
pub struct RestSinkSettings {
    /// Base URL; `None` for the embedded sandbox's ERP.
    pub base_url: Option<url::Url>,
    /// Authentication.
    pub auth: ErpAuth,
    /// Field update path template (`{erp_record_id}` is replaced, percent-encoded).
    pub update_path: String,
    /// Attachment upload path template.
    pub attach_path: String,
    /// Bulk endpoint path.
    pub batch_path: String,
    /// Send field updates through the bulk endpoint.
    pub use_batch: bool,
    /// Requests per second.
    pub requests_per_second: u32,
    /// Requests in flight at once.
    pub max_in_flight: usize,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Retry policy.
    pub retry: crate::http::RetryPolicy,
}

/// Where ERP corrections go.
#[derive(Debug, Clone)]
pub enum SinkSettings {
    /// The ERP REST API.
    Rest(Box<RestSinkSettings>),
    /// Import files in an object store (URL or absolute local path).
    Files {
        /// Where the files go.
        url: String,
    },
}

/// `[apply]`, validated.
#[derive(Debug, Clone)]
pub struct ApplySettings {
    /// Plan corrections after each run.
    pub enabled: bool,
    /// Plan only, or apply too.
    pub mode: ApplyMode,
    /// Where ERP corrections go (`None` when `[apply]` is off).
    pub sink: Option<SinkSettings>,
    /// Actions per batch.
    pub batch_size: usize,
    /// Sendable actions per run at most (over it, nothing is applied unless forced).
    pub max_actions_per_run: usize,
    /// Document bytes uploaded per run at most.
    pub max_document_bytes_per_run: u64,
    /// Oldest plan `contract-recon apply` accepts.
    pub max_plan_age: Duration,
    /// Write ERP-owned values into SpotDraft.
    pub spotdraft_writeback: bool,
    /// Correct empty or wrong ERP back-references of pairs linked by id.
    pub back_reference: bool,
    /// Canonical extract column sent as `If-Match`.
    pub if_match: Option<String>,
    /// Owner of each compared field, by field name.
    pub owners: BTreeMap<String, Owner>,
}

impl Default for ApplySettings {
    fn default() -> Self {
        ApplySettings {
            enabled: false,
            mode: ApplyMode::Plan,
            sink: None,
            batch_size: 50,
            max_actions_per_run: 1000,
            max_document_bytes_per_run: 1 << 30,
            max_plan_age: Duration::from_secs(7 * 86_400),
            spotdraft_writeback: false,
            back_reference: false,
            if_match: None,
            owners: BTreeMap::new(),
        }
    }
}
