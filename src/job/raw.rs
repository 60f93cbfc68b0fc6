//! Job file as written: serde structs that mirror the TOML one to one.
//!
//! Unknown keys are rejected everywhere. Every field's doc comment is the
//! user's reference for that key (the README's job-file section repeats it).

use serde::Deserialize;
use std::collections::BTreeMap;

/// A whole job file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJobFile {
    /// `[job]`: name and schedule.
    pub job: RawJob,
    /// `[spotdraft]`: the SpotDraft workspace and how to page through it.
    pub spotdraft: RawSpotDraft,
    /// `[sandbox]`: serve SpotDraft from the embedded sandbox (when `spotdraft.base_url = "sandbox"`).
    pub sandbox: Option<RawSandbox>,
    /// `[erp]`: where the ERP extract comes from.
    pub erp: RawErp,
    /// `[match]`: where the ERP ids live on a contract, and how keys are normalized.
    #[serde(rename = "match")]
    pub matching: RawMatch,
    /// `[[compare]]`: one entry per compared field.
    #[serde(default)]
    pub compare: Vec<RawCompare>,
    /// `[severity]`: severity of each non-field drift kind.
    #[serde(default)]
    pub severity: BTreeMap<String, String>,
    /// `[output]`: where reports, snapshots and state are written.
    pub output: RawOutput,
    /// `[apply]`: corrections planned from drift and written into the ERP (and,
    /// opt-in, into SpotDraft's `external_metadata`).
    pub apply: Option<RawApply>,
    /// `[report]`: how drift is followed from run to run.
    pub report: Option<RawReport>,
    /// `[webhooks]`: SpotDraft webhook deliveries reconciled in small targeted
    /// runs (by `contract-recon schedule --webhooks`).
    pub webhooks: Option<RawWebhooks>,
    /// `[create]`: ERP records that need a SpotDraft contract and have none
    /// (`missing_in_spotdraft`), and the contracts created for them (opt-in).
    pub create: Option<RawCreate>,
    /// `[notify]`: a chat notification (Slack-compatible webhook) when a run
    /// fails or finds new drift.
    pub notify: Option<RawNotify>,
    /// `[retention]`: how long reports, run state leftovers, journals and run
    /// records are kept. Without it nothing is removed.
    pub retention: Option<RawRetention>,
}

/// `[job]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJob {
    /// Job name: letters, digits, `-` and `_`. Names the snapshot, state and report folders.
    pub name: String,
    /// Cron schedule for `contract-recon schedule`, seconds first (6 or 7 fields), e.g.
    /// `"0 30 2 * * *"` for 02:30:00 every day. Optional: a job without one only runs on demand.
    pub schedule: Option<String>,
    /// IANA time zone the schedule is read in (default `UTC`), e.g. `"Europe/Berlin"`.
    pub timezone: Option<String>,
    /// What `contract-recon schedule` does, at startup, with a firing missed
    /// while it was down (told by the run history): `true` runs it once, right
    /// away (however many firings were missed); `false` (the default) skips it
    /// with a log line and a `skipped` run record. Needs `schedule`.
    pub catch_up: Option<bool>,
}

/// `[spotdraft]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpotDraft {
    /// API base URL including `/api/`, e.g. `https://api.us.spotdraft.com/api/` (regions: in, us, eu, me),
    /// or `"sandbox"` to use the embedded sandbox described by `[sandbox]`.
    pub base_url: String,
    /// Name of the environment variable holding the `client-id`. Required unless `base_url = "sandbox"`.
    pub client_id_env: Option<String>,
    /// Name of the environment variable holding the `client-secret`. Required unless `base_url = "sandbox"`.
    pub client_secret_env: Option<String>,
    /// Optional workspace user to act as (`user-email` header).
    pub user_email: Option<String>,
    /// Contracts per list request, 1 to 100 (default 100).
    pub page_size: Option<u32>,
    /// Requests per second to this workspace, 1 to 10 for SpotDraft's published limit (default 10).
    pub requests_per_second: Option<u32>,
    /// Requests in flight at once (default 4).
    pub max_in_flight: Option<usize>,
    /// Per-request timeout in seconds (default 30).
    pub request_timeout_secs: Option<u64>,
    /// Only walk contracts in these statuses (`filter__display_status[$in]`). Default: all statuses.
    pub status_filter: Option<Vec<String>>,
    /// Incremental runs re-read changes this many seconds before the last watermark (default 600).
    pub incremental_overlap_secs: Option<u64>,
    /// Download executed documents of new or changed EXECUTED contracts to compare checksums (default false).
    pub fetch_documents: Option<bool>,
    /// Contracts in the reconciled statuses whose metadata values are fetched again each run, stalest
    /// first, so that values SpotDraft edits without any change to the list are re-verified: a number
    /// (`500`) or a percentage of those contracts (`"2%"`, the default; `0` turns it off). With `p%`
    /// every value is re-verified within `ceil(100 / p)` runs; with `n`, within `ceil(contracts / n)`.
    pub refresh_per_run: Option<RawRefresh>,
    /// `[spotdraft.retry]`: retry limits.
    pub retry: Option<RawRetry>,
}

/// `refresh_per_run`: a count or a percentage.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawRefresh {
    /// Contracts per run.
    Count(i64),
    /// `"<p>%"`.
    Text(String),
}

/// `[spotdraft.retry]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    /// Attempts per request, including the first (default 6).
    pub max_attempts: Option<u32>,
    /// First backoff in milliseconds; doubles each retry, with full jitter (default 250).
    pub initial_backoff_ms: Option<u64>,
    /// Largest backoff in milliseconds (default 30000).
    pub max_backoff_ms: Option<u64>,
    /// Give up retrying one request after this many seconds in total (default 300).
    pub max_total_secs: Option<u64>,
}

/// `[sandbox]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSandbox {
    /// Fixture dataset directory the sandbox serves (relative paths are read from the job file's folder).
    pub fixtures: String,
    /// Rate limit the sandbox enforces per workspace, requests per second (default 10).
    pub rate_limit_per_sec: Option<u32>,
}

/// `[erp]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawErp {
    /// `[erp.extract]`: the ERP extract file.
    pub extract: RawExtract,
}

/// `[erp.extract]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExtract {
    /// Local path (relative to the job file's folder), `file://`, `s3://`, `gs://`, `az://` or `memory://` URL.
    pub url: String,
    /// `csv` or `parquet`. Default: from the file extension.
    pub format: Option<String>,
    /// Canonical name -> the extract's own column name. Canonical names: erp_record_id (required),
    /// spotdraft_contract_id, vendor_id, po_number, legal_entity_id, status, amount, currency,
    /// effective_date, expiry_date, document_sha256, and any extra name a `[[compare]]` uses.
    pub columns: BTreeMap<String, String>,
    /// Guard: fewer data rows than this fails the run before any report or
    /// plan (default 1: an empty or header-only file, as a failed export
    /// leaves, fails; 0 turns the check off).
    pub min_rows: Option<u64>,
    /// Guard: the largest share (0 to 1) by which the valid row count may fall
    /// since the job's last complete nightly run before the run fails
    /// (default 0.5; 1 turns the check off).
    pub max_row_drop: Option<f64>,
    /// Guard: the oldest the extract may be, in hours since its object's last
    /// modification, before the run fails (default: no limit).
    pub max_age_hours: Option<f64>,
}

/// `[match]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    /// Contract statuses that are reconciled (default SIGN, EXECUTED, ON_HOLD, VOIDED).
    pub statuses: Option<Vec<String>>,
    /// Where the ERP record id lives on a contract (default `external_metadata.id`).
    pub erp_record_id: Option<String>,
    /// Where the vendor id lives, e.g. `external_metadata.record_data.vendor_id`.
    pub vendor_id: Option<String>,
    /// Where the purchase order number lives, e.g. `external_metadata.record_data.po_number`.
    pub po_number: Option<String>,
    /// Where the legal entity id lives, e.g. `external_metadata.record_data.legal_entity_id`.
    pub legal_entity_id: Option<String>,
    /// Fallback composite key used for contracts with no other link, e.g. `["vendor_id", "po_number"]`.
    pub fallback_key: Option<Vec<String>>,
    /// Normalization per key (`erp_record_id`, `vendor_id`, `po_number`, `legal_entity_id`,
    /// `spotdraft_contract_id`): a list of `trim`, `upper`, `lower`, `strip_leading_zeros`.
    /// Default for every key: `["trim", "upper"]`.
    #[serde(default)]
    pub normalize: BTreeMap<String, Vec<String>>,
}

/// `[[compare]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompare {
    /// Field name shown in reports.
    pub field: String,
    /// SpotDraft source: a list field (`contract_status`, `contract_name`, `counter_party_name`,
    /// `contract_type_name`, `created`, `reference_id`), an `external_metadata.<id|integration_name|record_type>`
    /// or `external_metadata.record_data.<key>` path, or `key_pointers.<field_name>` for a metadata value.
    pub spotdraft: String,
    /// Canonical ERP column (a key of `[erp.extract.columns]`).
    pub erp: String,
    /// `string`, `number`, `decimal`, `date` or `enum`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For `string`: normalization steps (default `["trim"]`).
    pub normalize: Option<Vec<String>>,
    /// For `number`: largest absolute difference still equal (default 0).
    pub abs_tolerance: Option<f64>,
    /// For `number`: largest relative difference still equal (default 0).
    pub rel_tolerance: Option<f64>,
    /// For `decimal`: decimal places of the minor unit (default 2).
    pub scale: Option<u32>,
    /// For `enum`: SpotDraft value -> ERP value.
    pub values: Option<BTreeMap<String, String>>,
    /// `low`, `medium` or `high` (default `medium`).
    pub severity: Option<String>,
    /// Which system's value is the truth for this field when corrections are
    /// planned: `spotdraft` (a mismatch becomes an ERP field update), `erp` (a
    /// mismatch becomes a write-back into the contract's `external_metadata`,
    /// only with `[apply] spotdraft_writeback = true`; the SpotDraft source must
    /// be `external_metadata.id` or `external_metadata.record_data.<key>`) or
    /// `none` (listed for review, never written). Default: `spotdraft` when the
    /// SpotDraft source is a list field or `key_pointers.*` (values SpotDraft
    /// owns), `none` otherwise (`external_metadata.*` values came from the ERP).
    pub owner: Option<String>,
}

/// `[output]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    /// Local folder (relative to the job file's folder) or object store URL (`s3://bucket/prefix`, ...).
    pub url: String,
    /// Report formats among `parquet`, `csv`, `html` (default all three). `summary.json` is always written.
    pub formats: Option<Vec<String>>,
}

/// `[report]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReport {
    /// Acknowledgement file (TOML, relative to the job file's folder): drift
    /// identities accepted for now, each with a `reason`, an `author` and an
    /// optional `expires` date. Listed rows are reported as `acknowledged` and
    /// not counted as open. Default: none.
    pub acknowledgements: Option<String>,
}

/// `[apply]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApply {
    /// Plan corrections after each run (default false). Nothing is written unless `mode = "apply"`,
    /// `run --apply` or `contract-recon apply <job> <run_id>`.
    pub enabled: bool,
    /// `plan` (default): write the `plan` dataset and change nothing; `apply`: also apply it.
    /// `run --apply` and `run --plan-only` override it for one run.
    pub mode: Option<String>,
    /// Where ERP corrections go: `rest` (the ERP REST API, `[apply.rest]`) or `files`
    /// (import files in an object store, `[apply.files]`). Required when `enabled`.
    pub sink: Option<String>,
    /// Actions per batch (one journal object, one bulk request), 1 to 1000 (default 50).
    pub batch_size: Option<usize>,
    /// A run planning more sendable actions than this applies nothing and says why, unless
    /// `--force` (default 1000).
    pub max_actions_per_run: Option<usize>,
    /// Executed-document bytes uploaded per run at most (default 1073741824, 1 GiB); documents
    /// beyond it stay pending for the next run.
    pub max_document_bytes_per_run: Option<u64>,
    /// `contract-recon apply` refuses a plan older than this many days (default 7).
    pub max_plan_age_days: Option<u32>,
    /// Write ERP-owned values and ERP ids into SpotDraft's `external_metadata` (default false).
    pub spotdraft_writeback: Option<bool>,
    /// Correct the ERP's back-reference (`spotdraft_contract_id`) of a pair linked by id when it is
    /// empty or names another contract (default true when the extract maps `spotdraft_contract_id`).
    pub back_reference: Option<bool>,
    /// Canonical extract column holding the record's version, sent as `If-Match` (default
    /// `version` when the extract maps it; the column must be mapped in `[erp.extract.columns]`).
    pub if_match: Option<String>,
    /// `[apply.rest]`: the ERP REST API (`sink = "rest"`).
    pub rest: Option<RawRestSink>,
    /// `[apply.files]`: import files (`sink = "files"`).
    pub files: Option<RawFilesSink>,
}

/// `[apply.rest]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRestSink {
    /// ERP API base URL (`https://erp.example.com/api/`), or `"sandbox"` for the embedded
    /// sandbox's ERP (only with `spotdraft.base_url = "sandbox"`).
    pub base_url: String,
    /// Environment variable holding a bearer token (`Authorization: Bearer ...`).
    pub token_env: Option<String>,
    /// Environment variable holding the basic-auth user (with `basic_password_env`).
    pub basic_user_env: Option<String>,
    /// Environment variable holding the basic-auth password (with `basic_user_env`).
    pub basic_password_env: Option<String>,
    /// Name of a custom auth header (with `header_value_env`), e.g. `X-Api-Key`.
    pub header_name: Option<String>,
    /// Environment variable holding the custom header's value.
    pub header_value_env: Option<String>,
    /// Path of a record's field update, relative to `base_url` (default `contracts/{erp_record_id}`).
    pub update_path: Option<String>,
    /// Path of a record's attachment upload (default `contracts/{erp_record_id}/attachments`).
    pub attach_path: Option<String>,
    /// Path of the bulk endpoint (default `batch`).
    pub batch_path: Option<String>,
    /// Send field updates through the bulk endpoint, one request per batch (default false).
    pub use_batch: Option<bool>,
    /// Requests per second to the ERP (default 5).
    pub requests_per_second: Option<u32>,
    /// Requests in flight at once, 1 to 64 (default 2).
    pub max_in_flight: Option<usize>,
    /// Per-request timeout in seconds (default 30).
    pub request_timeout_secs: Option<u64>,
    /// `[apply.rest.retry]`: retry limits (same keys and defaults as `[spotdraft.retry]`).
    pub retry: Option<RawRetry>,
}

/// `[apply.files]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFilesSink {
    /// Folder or object store URL the import files go to (`{url}/<job>/<run_id>/batch-0001.csv`).
    pub url: String,
}

/// `[webhooks]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhooks {
    /// Environment variable holding the webhook HMAC key, base64-encoded as
    /// SpotDraft's `GET v2.1/public/webhooks/hmac_key/` gives it. Default: the
    /// daemon fetches the key from that endpoint once, at startup.
    pub hmac_key_env: Option<String>,
    /// Webhook bodies larger than this are refused with 413, 1 to 16777216
    /// (default 262144, 256 KiB).
    pub max_body_bytes: Option<u64>,
    /// A targeted run starts this many seconds after the last delivery, so a
    /// burst of deliveries makes one run (default 10).
    pub debounce_secs: Option<u64>,
    /// ...and at most this many seconds after the first delivery waiting,
    /// however long the burst goes on; at least `debounce_secs` (default 120).
    pub max_wait_secs: Option<u64>,
    /// Contracts per targeted run at most, 1 to 1000; the others wait for the
    /// next run (default 100).
    pub max_contracts_per_run: Option<usize>,
    /// Environment variable holding the shared secret ERP events are signed
    /// with (`X-Contract-Recon-Signature: sha256=<hex HMAC-SHA256 of the raw
    /// body>`), at least 16 bytes, used as given. With it, the daemon also
    /// takes `POST /webhooks/erp/<job>`; the job needs `[create] enabled = true`.
    /// Default: no ERP events.
    pub erp_secret_env: Option<String>,
}

/// `[create]`: contracts created in SpotDraft for ERP records that need one and
/// have none. Every column named here is a name mapped in `[erp.extract.columns]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCreate {
    /// Find `missing_in_spotdraft` and plan a `create_contract` for each (default false).
    /// Needs `[apply] enabled` (plan, review and apply work as for corrections) and no
    /// `spotdraft.status_filter` (links are checked against contracts in every status).
    pub enabled: Option<bool>,
    /// Which ERP records need a contract: `{ column = "status", values = ["APPROVED"] }`
    /// (trimmed, case-insensitive), or `{ column = "needs_contract" }` for any non-empty value.
    pub needs_contract: RawNeedsContract,
    /// One template id for every contract (`contract_template_id`). Or `template_column` and
    /// `templates`.
    pub template_id: Option<i64>,
    /// Column whose value chooses the template through `templates`, e.g. `contract_type`.
    pub template_column: Option<String>,
    /// Value of `template_column` -> template id, e.g. `{ MSA = 1204, NDA = 1205 }`. A record
    /// whose value is not listed is planned as `review`.
    #[serde(default)]
    pub templates: BTreeMap<String, i64>,
    /// The contract's name, a template over columns: `"{vendor_name} – PO {po_number}"`.
    /// Names never link anything: linkage comes from `external_metadata` only.
    pub contract_name: String,
    /// `external_metadata.integration_name` written at creation, e.g. `"NetSuite"`.
    pub integration_name: String,
    /// `external_metadata.record_type` written at creation, e.g. `"purchase_order"`.
    pub record_type: String,
    /// `external_metadata.record_data` keys written at creation: key -> column. Default: every
    /// `[match]` key (`vendor_id`, `po_number`, `legal_entity_id`) read from
    /// `external_metadata.record_data.<key>`, from the column of the same canonical name.
    pub record_data: Option<BTreeMap<String, String>>,
    /// `contract_data` of the template, field name -> `{ column, type }` with `type` among
    /// `text`, `number`, `date` (`YYYY-MM-DD`) and `currency` (`{type, value}`: with
    /// `currency_column` or a fixed `currency`).
    #[serde(default)]
    pub contract_data: BTreeMap<String, RawContractField>,
    /// `[create.counter_party]`: the counterparty, from ERP columns.
    pub counter_party: RawCounterParty,
    /// Column holding a document for the contract (a local path, relative ones read from the
    /// extract's folder, or an object store URL), uploaded as a supporting document
    /// (`supported_documents`) after the contract exists, in its own lane. Optional.
    pub document_column: Option<String>,
    /// A run planning more creates than this creates nothing and says why, unless `--force`
    /// (default 100).
    pub max_creates_per_run: Option<usize>,
}

/// `[create] needs_contract`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNeedsContract {
    /// The column read.
    pub column: String,
    /// Values that need a contract (trimmed, case-insensitive); absent or empty: any non-empty value.
    #[serde(default)]
    pub values: Vec<String>,
}

/// One `[create.contract_data]` field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContractField {
    /// The column read.
    pub column: String,
    /// `text`, `number`, `date` or `currency`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For `currency`: the column holding the ISO currency code.
    pub currency_column: Option<String>,
    /// For `currency`: a fixed ISO currency code (instead of `currency_column`).
    pub currency: Option<String>,
}

/// `[create.counter_party]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCounterParty {
    /// The counterparty is a person, not an organization (default false).
    pub is_individual: Option<bool>,
    /// Column holding the organization's legal name (required unless `is_individual`).
    pub organization_name: Option<String>,
    /// Column holding the contact's full name, split at the first space into
    /// `poc_details.first_name` and `last_name`.
    pub contact_name: String,
    /// Column holding the contact's email (`poc_details.email`).
    pub contact_email: String,
    /// Column holding `organization_details.jurisdiction_iso_code` (optional).
    pub jurisdiction: Option<String>,
}

/// `[notify]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    /// Name of the environment variable holding the webhook URL (a Slack
    /// incoming webhook, or anything taking the same JSON). The URL is a
    /// secret: it never appears in logs or errors. `https://`, or `http://`
    /// on loopback only.
    pub url_env: String,
    /// When to send: `"failure"` (the run failed, or corrections it applied
    /// failed) and/or `"new_drift"` (a nightly run found drift rows not in the
    /// previous nightly run). Default: both.
    pub on: Option<Vec<String>>,
    /// Per-attempt timeout in seconds (default 10).
    pub timeout_secs: Option<u64>,
    /// Attempts in all, the first included, 1 to 10 (default 4); 408, 429,
    /// 5xx and connection errors are retried with jittered backoff, within 60 s.
    pub max_attempts: Option<u32>,
}

/// `[retention]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    /// Days a run's reports (its folders in every table dataset), leftover
    /// staging and spilled pages are kept, at least 1. Removed at the end of a
    /// run; never the run `latest.json` names, the newest nightly run (the next
    /// run compares with it), a run whose plan is younger than
    /// `[apply] max_plan_age_days` and not yet applied or rejected in full,
    /// nor the job's run state.
    pub keep_days: u32,
    /// Days run records (`_history`) are kept, at least 1 (default `keep_days`).
    pub history_keep_days: Option<u32>,
    /// Days correction journals (`_journal`) are kept (default: kept for
    /// ever). The journal is how a rerun knows what was applied, and how a
    /// correction needed again gets a new idempotency key: keep it longer than
    /// the ERP remembers idempotency keys, and at least `[apply]
    /// max_plan_age_days`.
    pub journal_keep_days: Option<u32>,
}
