//! Job file validation: TOML -> [`RawJobFile`] -> [`Job`], every problem reported
//! as `file: key: reason`.

use super::raw::{RawCompare, RawJobFile, RawMatch, RawRefresh, RawReport};
use super::*;
use crate::ingest::{snapshot, RefreshBudget};
use crate::reconcile::spec::{
    kinds, CompareKind, CompareSpec, KeySource, KeySpec, Normalize, ReconcileSpec, Severity,
    CANONICAL_ERP_FIELDS,
};
use std::fmt;
use std::path::Path;

/// One problem in a job file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobProblem {
    /// The job file.
    pub file: String,
    /// Dotted key at fault (`spotdraft.page_size`, `compare[2].type`), or `-` for the whole file.
    pub key: String,
    /// What is wrong and what is expected.
    pub reason: String,
}

impl fmt::Display for JobProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.key, self.reason)
    }
}

/// Every problem found in one job file (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobProblems(pub Vec<JobProblem>);

impl fmt::Display for JobProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for JobProblems {}

/// Loads and validates a job file, reading secrets from the process environment.
pub fn load_job(path: &Path) -> Result<Job, JobProblems> {
    load_job_with_env(path, &|name| std::env::var(name).ok())
}

/// Loads and validates a job file, reading secrets through `env` (tests and the demo
/// pass their own lookup).
pub fn load_job_with_env(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Job, JobProblems> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        JobProblems(vec![JobProblem {
            file: path.display().to_string(),
            key: "-".into(),
            reason: format!("cannot read the job file: {e}"),
        }])
    })?;
    load_job_text(path, &text, env)
}

/// Validates a job file's `text` as if read from `path` (relative paths are
/// read from its folder; problems name it), reading secrets through `env`.
pub fn load_job_text(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Job, JobProblems> {
    let file = path.display().to_string();
    let problem = |key: &str, reason: String| {
        JobProblems(vec![JobProblem {
            file: file.clone(),
            key: key.into(),
            reason,
        }])
    };
    let raw: RawJobFile = toml::from_str(text).map_err(|e| {
        let (key, reason) = describe_toml_error(text, &e);
        problem(&key, reason)
    })?;
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut v = Validator {
        file: file.clone(),
        base_dir,
        problems: Vec::new(),
        create_columns: Vec::new(),
    };
    let job = v.job(raw, path, env);
    match job {
        Some(job) if v.problems.is_empty() => Ok(job),
        _ => Err(JobProblems(v.problems)),
    }
}

/// Turns a TOML/serde error into (dotted key, reason) using its span.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> (String, String) {
    let message = e.message().trim().to_string();
    let Some(span) = e.span() else {
        return ("-".into(), message);
    };
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
    let section = text[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next());
    let key = if let Some(field) = missing {
        match (line.starts_with('['), section) {
            (true, Some(s)) => format!("{s}.{field}"),
            _ => field.to_string(),
        }
    } else if line.starts_with('[') {
        line.trim_matches(|c| c == '[' || c == ']')
            .trim()
            .to_string()
    } else {
        let name = line
            .split('=')
            .next()
            .unwrap_or(line)
            .trim()
            .trim_matches('"');
        match section {
            Some(s) => format!("{s}.{name}"),
            None => name.to_string(),
        }
    };
    let reason = match missing {
        Some(_) if key.contains('.') => "missing key".to_string(),
        Some(_) => "missing section".to_string(),
        None => message.replace("unknown field", "unknown key"),
    };
    (key, format!("{reason} (line {line_no})"))
}

struct Validator {
    file: String,
    base_dir: PathBuf,
    problems: Vec<JobProblem>,
    /// Extract column names `[create]` reads (allowed besides the canonical ones).
    create_columns: Vec<String>,
}

const KEY_NAMES: [&str; 5] = [
    "erp_record_id",
    "vendor_id",
    "po_number",
    "legal_entity_id",
    "spotdraft_contract_id",
];

impl Validator {
    fn bad(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(JobProblem {
            file: self.file.clone(),
            key: key.into(),
            reason: reason.into(),
        });
    }

    fn job(
        &mut self,
        raw: RawJobFile,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<Job> {
        let name = raw.job.name.trim().to_string();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.bad(
                "job.name",
                format!("{name:?} must be non-empty and use only letters, digits, '-' and '_'"),
            );
        }
        let timezone = match raw
            .job
            .timezone
            .as_deref()
            .unwrap_or("UTC")
            .parse::<chrono_tz::Tz>()
        {
            Ok(tz) => Some(tz),
            Err(_) => {
                self.bad(
                    "job.timezone",
                    format!(
                        "unknown time zone {:?} (use an IANA name such as \"Europe/Berlin\")",
                        raw.job.timezone.clone().unwrap_or_default()
                    ),
                );
                None
            }
        };
        let schedule = raw.job.schedule.clone().and_then(|cron| {
            let parsed = super::parse_cron(&cron);
            match parsed {
                Ok(_) => timezone.map(|timezone| Schedule {
                    cron,
                    timezone,
                    catch_up: raw.job.catch_up.unwrap_or(false),
                }),
                Err(e) => {
                    self.bad("job.schedule", format!("unparsable cron {cron:?}: {e} (6 or 7 fields, seconds first, e.g. \"0 30 2 * * *\")"));
                    None
                }
            }
        });
        if raw.job.catch_up.is_some() && raw.job.schedule.is_none() {
            self.bad(
                "job.catch_up",
                "only means something with job.schedule (a job without one only runs on demand)",
            );
        }
        let spotdraft = self.spotdraft_target(&raw, env);
        // The sandbox, embedded or served on this machine, takes any rate.
        let local_server = match &spotdraft {
            Some(SpotDraftTarget::Sandbox { .. }) => true,
            Some(SpotDraftTarget::Live { base_url, .. }) => is_loopback(base_url),
            None => false,
        };
        let fetch = self.fetch(&raw, local_server);
        let extract = self.extract(&raw);
        self.create_columns = create::create_columns(raw.create.as_ref());
        let create = self.create(&raw);
        let reconcile = self.reconcile(
            &raw.matching,
            &raw.compare,
            &raw.severity,
            &raw.erp.extract.columns,
        );
        let output = self.output(&raw.output.url, raw.output.formats.as_deref());
        let apply = self.apply(
            &raw,
            matches!(spotdraft, Some(SpotDraftTarget::Sandbox { .. })),
            env,
        );
        let report = self.report(raw.report.as_ref());
        let create_enabled = raw.create.as_ref().is_some_and(|c| c.enabled == Some(true));
        let webhooks = self.webhooks(raw.webhooks.as_ref(), env, create_enabled);
        let notify = self.notify(raw.notify.as_ref(), env);
        let retention = self.retention(raw.retention.as_ref(), raw.apply.as_ref());
        let mut fetch = fetch?;
        let mut reconcile = reconcile?;
        reconcile.needs_contract = create.as_ref().map(|c| c.needs_contract.clone());
        for source in reconcile
            .compares
            .iter()
            .map(|c| c.spotdraft_column.as_str())
            .chain(key_columns(&reconcile.keys))
        {
            if let Some(k) = source.strip_prefix(snapshot::RECORD_DATA_PREFIX) {
                push_unique(&mut fetch.record_data_keys, k);
            } else if let Some(k) = source.strip_prefix(snapshot::KEY_POINTERS_PREFIX) {
                push_unique(&mut fetch.key_pointer_fields, k);
            }
        }
        Some(Job {
            name,
            source: path.to_path_buf(),
            schedule,
            spotdraft: spotdraft?,
            fetch,
            extract: extract?,
            reconcile,
            output: output?,
            report: report?,
            apply: apply?,
            webhooks: webhooks?,
            create,
            notify: notify?,
            retention: retention?,
        })
    }

    fn report(&mut self, raw: Option<&RawReport>) -> Option<ReportSettings> {
        let Some(file) = raw.and_then(|r| r.acknowledgements.as_deref()) else {
            return Some(ReportSettings::default());
        };
        if file.trim().is_empty() {
            self.bad("report.acknowledgements", "empty path");
            return None;
        }
        let path = self.base_dir.join(file.trim());
        if !path.is_file() {
            self.bad(
                "report.acknowledgements",
                format!("{} is not a file", path.display()),
            );
            return None;
        }
        Some(ReportSettings {
            acknowledgements: Some(path),
        })
    }

    fn spotdraft_target(
        &mut self,
        raw: &RawJobFile,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<SpotDraftTarget> {
        let sd = &raw.spotdraft;
        if sd.base_url.trim() == "sandbox" {
            let Some(sandbox) = &raw.sandbox else {
                self.bad("sandbox", "missing section: `spotdraft.base_url = \"sandbox\"` needs a [sandbox] section naming the fixtures");
                return None;
            };
            let fixtures = self.base_dir.join(&sandbox.fixtures);
            if !fixtures.is_dir() {
                self.bad(
                    "sandbox.fixtures",
                    format!("{} is not a folder", fixtures.display()),
                );
            }
            let rate = sandbox.rate_limit_per_sec.unwrap_or(10);
            if rate == 0 {
                self.bad("sandbox.rate_limit_per_sec", "must be at least 1");
            }
            return Some(SpotDraftTarget::Sandbox {
                fixtures,
                rate_limit_per_sec: rate,
            });
        }
        if raw.sandbox.is_some() {
            self.bad(
                "sandbox",
                "a [sandbox] section is only read when `spotdraft.base_url = \"sandbox\"`",
            );
        }
        let base_url = match url::Url::parse(sd.base_url.trim()) {
            Ok(mut u) if u.scheme() == "https" || (u.scheme() == "http" && is_loopback(&u)) => {
                if !u.path().ends_with('/') {
                    let p = format!("{}/", u.path());
                    u.set_path(&p);
                }
                Some(u)
            }
            Ok(u) => {
                self.bad(
                    "spotdraft.base_url",
                    format!("{u} must be https:// (SpotDraft answers plain http with a 302)"),
                );
                None
            }
            Err(e) => {
                self.bad(
                    "spotdraft.base_url",
                    format!(
                        "{:?} is not a URL: {e} (e.g. \"https://api.us.spotdraft.com/api/\")",
                        sd.base_url
                    ),
                );
                None
            }
        };
        let client_id = self.secret("spotdraft.client_id_env", sd.client_id_env.as_deref(), env);
        let client_secret = self.secret(
            "spotdraft.client_secret_env",
            sd.client_secret_env.as_deref(),
            env,
        );
        Some(SpotDraftTarget::Live {
            base_url: base_url?,
            client_id: client_id?,
            client_secret: client_secret?,
            user_email: sd.user_email.clone(),
        })
    }

    fn secret(
        &mut self,
        key: &str,
        var: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<Secret> {
        let Some(var) = var else {
            self.bad(
                key,
                "missing key: name the environment variable that holds this secret",
            );
            return None;
        };
        match env(var) {
            Some(v) if !v.trim().is_empty() => Some(Secret::new(v.trim())),
            _ => {
                self.bad(key, format!("environment variable {var} is not set"));
                None
            }
        }
    }

    fn fetch(&mut self, raw: &RawJobFile, sandbox: bool) -> Option<FetchSettings> {
        let sd = &raw.spotdraft;
        let ok = self.problems.len();
        let page_size = sd.page_size.unwrap_or(100);
        if !(1..=100).contains(&page_size) {
            self.bad(
                "spotdraft.page_size",
                format!("{page_size} is out of range 1..=100"),
            );
        }
        let rps = sd.requests_per_second.unwrap_or(10);
        let max_rps = if sandbox { 1000 } else { 10 };
        if rps == 0 || rps > max_rps {
            self.bad("spotdraft.requests_per_second", format!("{rps} is out of range 1..={max_rps} (SpotDraft allows 10 requests/s per workspace)"));
        }
        let max_in_flight = sd.max_in_flight.unwrap_or(4);
        if max_in_flight == 0 || max_in_flight > 64 {
            self.bad(
                "spotdraft.max_in_flight",
                format!("{max_in_flight} is out of range 1..=64"),
            );
        }
        let timeout = sd.request_timeout_secs.unwrap_or(30);
        if timeout == 0 {
            self.bad("spotdraft.request_timeout_secs", "must be at least 1");
        }
        let retry = self.retry("spotdraft.retry", sd.retry.as_ref());
        let status_filter: Vec<String> = sd
            .status_filter
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|s| s.trim().to_uppercase())
            .collect();
        if status_filter.iter().any(String::is_empty) {
            self.bad("spotdraft.status_filter", "contains an empty status");
        }
        let refresh_per_run = self.refresh(sd.refresh_per_run.as_ref());
        (self.problems.len() == ok).then(|| FetchSettings {
            refresh_per_run: refresh_per_run.unwrap_or_default(),
            page_size,
            requests_per_second: rps,
            max_in_flight,
            request_timeout: Duration::from_secs(timeout),
            max_attempts: retry.max_attempts,
            initial_backoff: retry.initial_backoff,
            max_backoff: retry.max_backoff,
            max_retry_total: retry.max_total,
            status_filter,
            overlap: Duration::from_secs(sd.incremental_overlap_secs.unwrap_or(600)),
            fetch_documents: sd.fetch_documents.unwrap_or(false),
            record_data_keys: Vec::new(),
            key_pointer_fields: Vec::new(),
        })
    }

    fn refresh(&mut self, raw: Option<&RawRefresh>) -> Option<RefreshBudget> {
        let key = "spotdraft.refresh_per_run";
        match raw {
            None => Some(RefreshBudget::default()),
            Some(RawRefresh::Count(n)) if *n >= 0 => Some(RefreshBudget::Contracts(*n as u64)),
            Some(RawRefresh::Count(n)) => {
                self.bad(
                    key,
                    format!(
                        "{n} is negative (a number of contracts, or a percentage such as \"2%\")"
                    ),
                );
                None
            }
            Some(RawRefresh::Text(t)) => {
                let p = t
                    .trim()
                    .strip_suffix('%')
                    .and_then(|p| p.trim().parse::<f64>().ok());
                match p {
                    Some(p) if (0.0..=100.0).contains(&p) => Some(RefreshBudget::Percent(p)),
                    _ => {
                        self.bad(key, format!("{t:?} is not a percentage from \"0%\" to \"100%\" (or use a number of contracts)"));
                        None
                    }
                }
            }
        }
    }

    fn extract(&mut self, raw: &RawJobFile) -> Option<ExtractSettings> {
        let ex = &raw.erp.extract;
        let ok = self.problems.len();
        let url = self.location("erp.extract.url", &ex.url);
        let format = match ex.format.as_deref().map(str::to_ascii_lowercase) {
            Some(f) if f == "csv" => Some(ExtractFileFormat::Csv),
            Some(f) if f == "parquet" => Some(ExtractFileFormat::Parquet),
            Some(f) => {
                self.bad(
                    "erp.extract.format",
                    format!("{f:?} is not one of csv, parquet"),
                );
                None
            }
            None => {
                let lower = ex.url.to_ascii_lowercase();
                if lower.ends_with(".csv") {
                    Some(ExtractFileFormat::Csv)
                } else if lower.ends_with(".parquet") || lower.ends_with(".pq") {
                    Some(ExtractFileFormat::Parquet)
                } else {
                    self.bad("erp.extract.format", format!("cannot tell the format of {:?} from its extension; set format = \"csv\" or \"parquet\"", ex.url));
                    None
                }
            }
        };
        if !ex.columns.contains_key("erp_record_id") {
            self.bad(
                "erp.extract.columns.erp_record_id",
                "missing key: the extract column holding the ERP record id is required",
            );
        }
        for (canonical, column) in &ex.columns {
            if column.trim().is_empty() {
                self.bad(
                    format!("erp.extract.columns.{canonical}"),
                    "empty column name",
                );
            }
        }
        let mut guard = ExtractGuard::default();
        if let Some(n) = ex.min_rows {
            guard.min_rows = n;
        }
        if let Some(share) = ex.max_row_drop {
            if (0.0..=1.0).contains(&share) {
                guard.max_row_drop = share;
            } else {
                self.bad(
                    "erp.extract.max_row_drop",
                    format!("{share} is not a share between 0 and 1 (0.5: fail when the valid rows fell by more than half)"),
                );
            }
        }
        if let Some(hours) = ex.max_age_hours {
            if hours.is_finite() && hours > 0.0 {
                guard.max_age = Some(std::time::Duration::from_secs_f64(hours * 3600.0));
            } else {
                self.bad(
                    "erp.extract.max_age_hours",
                    format!("{hours} is not a positive number of hours"),
                );
            }
        }
        (self.problems.len() == ok).then(|| ExtractSettings {
            url: url.unwrap_or_default(),
            format: format.unwrap_or(ExtractFileFormat::Csv),
            columns: ex.columns.clone(),
            guard,
        })
    }

    fn output(&mut self, url: &str, formats: Option<&[String]>) -> Option<OutputSettings> {
        let url = self.location("output.url", url)?;
        let formats: Vec<String> = formats
            .map(|f| f.to_vec())
            .unwrap_or_else(|| vec!["parquet".into(), "csv".into(), "html".into()]);
        let mut out = OutputSettings {
            url,
            parquet: false,
            csv: false,
            html: false,
        };
        for f in &formats {
            match f.to_ascii_lowercase().as_str() {
                "parquet" => out.parquet = true,
                "csv" => out.csv = true,
                "html" => out.html = true,
                other => self.bad(
                    "output.formats",
                    format!("{other:?} is not one of parquet, csv, html"),
                ),
            }
        }
        Some(out)
    }

    /// A local path (resolved against the job file's folder) or an object store URL.
    fn location(&mut self, key: &str, value: &str) -> Option<String> {
        let value = value.trim();
        if value.is_empty() {
            self.bad(key, "empty location");
            return None;
        }
        match value.split_once("://") {
            Some((scheme, _)) => {
                if [
                    "file", "s3", "s3a", "gs", "az", "abfs", "abfss", "azure", "memory",
                ]
                .contains(&scheme)
                {
                    Some(value.to_string())
                } else {
                    self.bad(key, format!("unsupported URL scheme {scheme:?} (use a local path, file://, s3://, gs://, az:// or memory://)"));
                    None
                }
            }
            None => {
                let joined = self.base_dir.join(value);
                let abs = std::path::absolute(&joined).unwrap_or(joined);
                Some(lexically_normal(&abs).display().to_string())
            }
        }
    }

    fn normalize_steps(&mut self, key: &str, steps: &[String]) -> Vec<Normalize> {
        let mut out = Vec::new();
        for s in steps {
            match s.as_str() {
                "trim" => out.push(Normalize::Trim),
                "upper" => out.push(Normalize::Upper),
                "lower" => out.push(Normalize::Lower),
                "strip_leading_zeros" => out.push(Normalize::StripLeadingZeros),
                other => self.bad(
                    key,
                    format!("{other:?} is not one of trim, upper, lower, strip_leading_zeros"),
                ),
            }
        }
        out
    }

    fn source(&mut self, key: &str, value: &str) -> Option<String> {
        let v = value.trim();
        // Exactly the snapshot's columns: the fixed ones, and the per-job ones that
        // ingestion adds for each `record_data` key and metadata value a job names.
        let ok = snapshot::BASE_COLUMNS.contains(&v)
            || v == "document_sha256"
            || v.strip_prefix(snapshot::RECORD_DATA_PREFIX)
                .is_some_and(|k| !k.is_empty())
            || v.strip_prefix(snapshot::KEY_POINTERS_PREFIX)
                .is_some_and(|k| !k.is_empty());
        if ok {
            Some(v.to_string())
        } else {
            let fixed = snapshot::BASE_COLUMNS.join(", ");
            self.bad(key, format!("{v:?} is not a contract field: use one of {fixed}, document_sha256, external_metadata.record_data.<key> or key_pointers.<field_name>"));
            None
        }
    }

    fn reconcile(
        &mut self,
        m: &RawMatch,
        compares: &[RawCompare],
        severity: &BTreeMap<String, String>,
        columns: &BTreeMap<String, String>,
    ) -> Option<ReconcileSpec> {
        let ok = self.problems.len();
        for k in m.normalize.keys() {
            if !KEY_NAMES.contains(&k.as_str()) {
                self.bad(
                    format!("match.normalize.{k}"),
                    format!("unknown key; expected one of {}", KEY_NAMES.join(", ")),
                );
            }
        }
        let default_steps = vec![Normalize::Trim, Normalize::Upper];
        let steps_for = |v: &mut Self, name: &str| match m.normalize.get(name) {
            Some(s) => v.normalize_steps(&format!("match.normalize.{name}"), s),
            None => default_steps.clone(),
        };
        let key = |v: &mut Self,
                   name: &str,
                   value: Option<&String>,
                   default: Option<&str>|
         -> Option<KeySource> {
            let raw = value.map(String::as_str).or(default)?;
            let column = v.source(&format!("match.{name}"), raw)?;
            Some(KeySource {
                column,
                normalize: steps_for(v, name),
            })
        };
        let erp_record_id = key(
            self,
            "erp_record_id",
            m.erp_record_id.as_ref(),
            Some("external_metadata.id"),
        );
        let vendor_id = key(self, "vendor_id", m.vendor_id.as_ref(), None);
        let po_number = key(self, "po_number", m.po_number.as_ref(), None);
        let legal_entity_id = key(self, "legal_entity_id", m.legal_entity_id.as_ref(), None);
        let back_ref = match m.normalize.get("spotdraft_contract_id") {
            Some(s) => self.normalize_steps("match.normalize.spotdraft_contract_id", s),
            None => default_steps.clone(),
        };
        let fallback_key = m.fallback_key.clone().unwrap_or_default();
        for k in &fallback_key {
            let configured = match k.as_str() {
                "vendor_id" => vendor_id.is_some(),
                "po_number" => po_number.is_some(),
                "legal_entity_id" => legal_entity_id.is_some(),
                _ => {
                    self.bad(
                        "match.fallback_key",
                        format!("{k:?} is not one of vendor_id, po_number, legal_entity_id"),
                    );
                    continue;
                }
            };
            if !configured {
                self.bad("match.fallback_key", format!("{k:?} is used in the fallback key but match.{k} does not say where it lives"));
            }
            if !columns.contains_key(k) {
                self.bad(
                    "match.fallback_key",
                    format!(
                        "{k:?} is used in the fallback key but erp.extract.columns does not map it"
                    ),
                );
            }
        }
        let statuses: Vec<String> = m
            .statuses
            .clone()
            .unwrap_or_else(|| {
                ["SIGN", "EXECUTED", "ON_HOLD", "VOIDED"]
                    .map(String::from)
                    .to_vec()
            })
            .iter()
            .map(|s| s.trim().to_uppercase())
            .collect();
        if statuses.is_empty() {
            self.bad("match.statuses", "empty: no contract would be reconciled");
        }
        let mut specs = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (i, c) in compares.iter().enumerate() {
            let at = |k: &str| format!("compare[{i}].{k}");
            if !seen.insert(c.field.clone()) {
                self.bad(at("field"), format!("{:?} is compared twice", c.field));
            }
            let source = self.source(&at("spotdraft"), &c.spotdraft);
            if !columns.contains_key(&c.erp) {
                self.bad(
                    at("erp"),
                    format!(
                        "{:?} is not mapped in erp.extract.columns (mapped: {})",
                        c.erp,
                        columns.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            let severity = self.severity(&at("severity"), c.severity.as_deref());
            let kind = self.compare_kind(i, c);
            if let (Some(spotdraft_column), Some(kind)) = (source, kind) {
                specs.push(CompareSpec {
                    field: c.field.clone(),
                    spotdraft_column,
                    erp_column: c.erp.clone(),
                    kind,
                    severity,
                });
            }
        }
        let mut kind_severity = BTreeMap::new();
        for (kind, value) in severity {
            if !kinds::ALL.contains(&kind.as_str()) || kind == kinds::FIELD_MISMATCH {
                self.bad(
                    format!("severity.{kind}"),
                    "unknown drift kind (field_mismatch severity is set per [[compare]])",
                );
                continue;
            }
            kind_severity.insert(
                kind.clone(),
                self.severity(&format!("severity.{kind}"), Some(value)),
            );
        }
        let unknown: Vec<&String> = columns
            .keys()
            .filter(|k| {
                !CANONICAL_ERP_FIELDS.contains(&k.as_str())
                    && !apply::APPLY_ERP_COLUMNS.contains(&k.as_str())
                    && !self.create_columns.contains(k)
                    && !compares.iter().any(|c| &c.erp == *k)
            })
            .collect();
        for k in unknown {
            self.bad(
                format!("erp.extract.columns.{k}"),
                format!(
                    "unknown canonical name; expected one of {}, {} or a name a [[compare]] uses",
                    CANONICAL_ERP_FIELDS.join(", "),
                    apply::APPLY_ERP_COLUMNS.join(", ")
                ),
            );
        }
        if self.problems.len() != ok {
            return None;
        }
        Some(ReconcileSpec {
            statuses,
            keys: KeySpec {
                erp_record_id: erp_record_id?,
                vendor_id,
                po_number,
                legal_entity_id,
                spotdraft_contract_id_normalize: back_ref,
            },
            fallback_key,
            compares: specs,
            check_documents: columns.contains_key("document_sha256"),
            kind_severity,
            needs_contract: None,
        })
    }

    fn severity(&mut self, key: &str, value: Option<&str>) -> Severity {
        match value.unwrap_or("medium") {
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            other => {
                self.bad(key, format!("{other:?} is not one of low, medium, high"));
                Severity::Medium
            }
        }
    }

    fn compare_kind(&mut self, i: usize, c: &RawCompare) -> Option<CompareKind> {
        let at = |k: &str| format!("compare[{i}].{k}");
        let unused = |v: &mut Self, k: &str, present: bool| {
            if present {
                v.bad(at(k), format!("not used by type {:?}", c.kind));
            }
        };
        let kind = match c.kind.as_str() {
            "string" => CompareKind::String {
                normalize: match &c.normalize {
                    Some(s) => self.normalize_steps(&at("normalize"), s),
                    None => vec![Normalize::Trim],
                },
            },
            "number" => {
                let abs_tolerance = c.abs_tolerance.unwrap_or(0.0);
                let rel_tolerance = c.rel_tolerance.unwrap_or(0.0);
                if !(abs_tolerance >= 0.0 && rel_tolerance >= 0.0) {
                    self.bad(
                        at("abs_tolerance"),
                        "tolerances must be zero or positive numbers",
                    );
                }
                CompareKind::Number {
                    abs_tolerance,
                    rel_tolerance,
                }
            }
            "decimal" => {
                let scale = c.scale.unwrap_or(2);
                if scale > 9 {
                    self.bad(at("scale"), format!("{scale} is out of range 0..=9"));
                }
                CompareKind::Decimal { scale }
            }
            "date" => CompareKind::Date,
            "enum" => match &c.values {
                Some(values) if !values.is_empty() => CompareKind::Enum {
                    values: values.clone(),
                },
                _ => {
                    self.bad(at("values"), "type \"enum\" needs a non-empty value map, e.g. values = { EXECUTED = \"ACTIVE\" }");
                    return None;
                }
            },
            other => {
                self.bad(
                    at("type"),
                    format!("{other:?} is not one of string, number, decimal, date, enum"),
                );
                return None;
            }
        };
        let is = |k: &str| c.kind == k;
        unused(self, "normalize", c.normalize.is_some() && !is("string"));
        unused(
            self,
            "abs_tolerance",
            c.abs_tolerance.is_some() && !is("number"),
        );
        unused(
            self,
            "rel_tolerance",
            c.rel_tolerance.is_some() && !is("number"),
        );
        unused(self, "scale", c.scale.is_some() && !is("decimal"));
        unused(self, "values", c.values.is_some() && !is("enum"));
        Some(kind)
    }
}

fn key_columns(keys: &KeySpec) -> impl Iterator<Item = &str> {
    [
        Some(&keys.erp_record_id),
        keys.vendor_id.as_ref(),
        keys.po_number.as_ref(),
        keys.legal_entity_id.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|k| k.column.as_str())
}

/// `a/b/../c/./d` -> `a/c/d`, without touching the file system (the folder may not
/// exist yet). Object stores refuse `..` segments.
fn lexically_normal(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn push_unique(v: &mut Vec<String>, k: &str) {
    if !v.iter().any(|x| x == k) {
        v.push(k.to_string());
    }
}

fn is_loopback(u: &url::Url) -> bool {
    matches!(
        u.host_str(),
        Some("localhost") | Some("127.0.0.1") | Some("[::1]")
    )
}

mod apply;
mod ops;
mod webhooks;
pub use apply::default_owner;
mod create;

#[cfg(test)]
mod tests;
