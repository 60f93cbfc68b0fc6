//! Job file validation of `[apply]` and the per-field owners of `[[compare]]`.

use super::super::raw::{RawApply, RawCompare, RawJobFile, RawRetry};
use super::super::*;
use super::Validator;
use crate::ingest::snapshot;

/// Extract columns only corrections read (besides the canonical ones).
pub(super) const APPLY_ERP_COLUMNS: [&str; 1] = ["version"];

/// The default owner of a field read from `source`: SpotDraft owns its list
/// fields and metadata values; `external_metadata.*` came from the ERP, so
/// nobody decides it automatically.
pub fn default_owner(source: &str) -> Owner {
    if source.starts_with("external_metadata") {
        Owner::None
    } else {
        Owner::Spotdraft
    }
}

impl Validator {
    /// `[apply]`, with the owners of `compares`. `sandbox`: the job uses the
    /// embedded sandbox (only then may `apply.rest.base_url` be `"sandbox"`).
    pub(super) fn apply(
        &mut self,
        raw: &RawJobFile,
        sandbox: bool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<ApplySettings> {
        let ok = self.problems.len();
        let columns = &raw.erp.extract.columns;
        let owners = self.owners(&raw.compare);
        let Some(a) = &raw.apply else {
            return (self.problems.len() == ok).then(|| ApplySettings {
                owners,
                ..ApplySettings::default()
            });
        };
        let mode = match a.mode.as_deref().unwrap_or("plan") {
            "plan" => ApplyMode::Plan,
            "apply" => ApplyMode::Apply,
            other => {
                self.bad("apply.mode", format!("{other:?} is not one of plan, apply"));
                ApplyMode::Plan
            }
        };
        let sink = self.sink(a, sandbox, env);
        let batch_size = a.batch_size.unwrap_or(50);
        if !(1..=1000).contains(&batch_size) {
            self.bad(
                "apply.batch_size",
                format!("{batch_size} is out of range 1..=1000"),
            );
        }
        let max_actions_per_run = a.max_actions_per_run.unwrap_or(1000);
        if max_actions_per_run == 0 {
            self.bad("apply.max_actions_per_run", "must be at least 1");
        }
        let days = a.max_plan_age_days.unwrap_or(7);
        if days == 0 {
            self.bad("apply.max_plan_age_days", "must be at least 1");
        }
        let mapped = |c: &str| columns.contains_key(c);
        let back_reference = match a.back_reference {
            Some(true) if !mapped("spotdraft_contract_id") => {
                self.bad("apply.back_reference", "true, but erp.extract.columns does not map spotdraft_contract_id (the back-reference it would correct)");
                false
            }
            Some(b) => b,
            None => mapped("spotdraft_contract_id"),
        };
        let if_match = match &a.if_match {
            Some(c) if !mapped(c) => {
                self.bad(
                    "apply.if_match",
                    format!(
                        "{c:?} is not mapped in erp.extract.columns (mapped: {})",
                        columns.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
                None
            }
            Some(c) => Some(c.clone()),
            None => mapped("version").then(|| "version".to_string()),
        };
        if a.enabled && sink.is_none() && self.problems.len() == ok {
            self.bad("apply.sink", "missing key: `rest` or `files`");
        }
        let spotdraft_writeback = a.spotdraft_writeback.unwrap_or(false);
        for (i, c) in raw.compare.iter().enumerate() {
            if c.owner.as_deref() == Some("erp") && !spotdraft_writeback && a.enabled {
                tracing::debug!(field = %c.field, index = i, "owner erp without spotdraft_writeback: listed for review");
            }
        }
        (self.problems.len() == ok).then(|| ApplySettings {
            enabled: a.enabled,
            mode,
            sink,
            batch_size,
            max_actions_per_run,
            max_document_bytes_per_run: a.max_document_bytes_per_run.unwrap_or(1 << 30),
            max_plan_age: Duration::from_secs(u64::from(days) * 86_400),
            spotdraft_writeback,
            back_reference,
            if_match,
            owners,
        })
    }

    fn owners(&mut self, compares: &[RawCompare]) -> BTreeMap<String, Owner> {
        let mut owners = BTreeMap::new();
        for (i, c) in compares.iter().enumerate() {
            let source = c.spotdraft.trim();
            let owner = match c.owner.as_deref() {
                None => default_owner(source),
                Some("spotdraft") => Owner::Spotdraft,
                Some("none") => Owner::None,
                Some("erp") => {
                    let writable = source == "external_metadata.id"
                        || source
                            .strip_prefix(snapshot::RECORD_DATA_PREFIX)
                            .is_some_and(|k| !k.is_empty());
                    if !writable {
                        self.bad(format!("compare[{i}].owner"), format!("\"erp\" writes the ERP's value into the contract, but {source:?} is not external_metadata.id or external_metadata.record_data.<key>"));
                    }
                    Owner::Erp
                }
                Some(other) => {
                    self.bad(
                        format!("compare[{i}].owner"),
                        format!("{other:?} is not one of spotdraft, erp, none"),
                    );
                    Owner::None
                }
            };
            owners.insert(c.field.clone(), owner);
        }
        owners
    }

    fn sink(
        &mut self,
        a: &RawApply,
        sandbox: bool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<SinkSettings> {
        let unused = |v: &mut Self, key: &str, present: bool, sink: &str| {
            if present {
                v.bad(key, format!("only read with sink = {sink:?}"));
            }
        };
        match a.sink.as_deref() {
            None => {
                unused(self, "apply.rest", a.rest.is_some(), "rest");
                unused(self, "apply.files", a.files.is_some(), "files");
                None
            }
            Some("files") => {
                unused(self, "apply.rest", a.rest.is_some(), "rest");
                let Some(files) = &a.files else {
                    self.bad(
                        "apply.files",
                        "missing section: sink = \"files\" needs [apply.files] with a url",
                    );
                    return None;
                };
                let url = self.location("apply.files.url", &files.url)?;
                Some(SinkSettings::Files { url })
            }
            Some("rest") => {
                unused(self, "apply.files", a.files.is_some(), "files");
                let Some(rest) = &a.rest else {
                    self.bad(
                        "apply.rest",
                        "missing section: sink = \"rest\" needs [apply.rest] with a base_url",
                    );
                    return None;
                };
                let base = rest.base_url.trim();
                let base_url = if base == "sandbox" {
                    if !sandbox {
                        self.bad("apply.rest.base_url", "\"sandbox\" is the embedded sandbox's ERP: only with spotdraft.base_url = \"sandbox\"");
                    }
                    None
                } else {
                    match url::Url::parse(base) {
                        Ok(mut u)
                            if u.scheme() == "https"
                                || (u.scheme() == "http" && super::is_loopback(&u)) =>
                        {
                            if !u.path().ends_with('/') {
                                let p = format!("{}/", u.path());
                                u.set_path(&p);
                            }
                            Some(u)
                        }
                        Ok(u) => {
                            self.bad(
                                "apply.rest.base_url",
                                format!("{u} must be https:// (plain http only on loopback)"),
                            );
                            None
                        }
                        Err(e) => {
                            self.bad("apply.rest.base_url", format!("{base:?} is not a URL: {e}"));
                            None
                        }
                    }
                };
                let auth = self.erp_auth(rest, base == "sandbox", env);
                let rps = rest.requests_per_second.unwrap_or(5);
                if rps == 0 || rps > 1000 {
                    self.bad(
                        "apply.rest.requests_per_second",
                        format!("{rps} is out of range 1..=1000"),
                    );
                }
                let max_in_flight = rest.max_in_flight.unwrap_or(2);
                if max_in_flight == 0 || max_in_flight > 64 {
                    self.bad(
                        "apply.rest.max_in_flight",
                        format!("{max_in_flight} is out of range 1..=64"),
                    );
                }
                let timeout = rest.request_timeout_secs.unwrap_or(30);
                if timeout == 0 {
                    self.bad("apply.rest.request_timeout_secs", "must be at least 1");
                }
                let update_path = rest
                    .update_path
                    .clone()
                    .unwrap_or_else(|| "contracts/{erp_record_id}".into());
                let attach_path = rest
                    .attach_path
                    .clone()
                    .unwrap_or_else(|| "contracts/{erp_record_id}/attachments".into());
                for (key, t) in [
                    ("apply.rest.update_path", &update_path),
                    ("apply.rest.attach_path", &attach_path),
                ] {
                    if !t.contains("{erp_record_id}") {
                        self.bad(key, format!("{t:?} must contain {{erp_record_id}}"));
                    }
                }
                let retry = self.retry("apply.rest.retry", rest.retry.as_ref());
                Some(SinkSettings::Rest(Box::new(RestSinkSettings {
                    base_url,
                    auth: auth?,
                    update_path,
                    attach_path,
                    batch_path: rest.batch_path.clone().unwrap_or_else(|| "batch".into()),
                    use_batch: rest.use_batch.unwrap_or(false),
                    requests_per_second: rps,
                    max_in_flight,
                    request_timeout: Duration::from_secs(timeout),
                    retry,
                })))
            }
            Some(other) => {
                self.bad("apply.sink", format!("{other:?} is not one of rest, files"));
                None
            }
        }
    }

    fn erp_auth(
        &mut self,
        rest: &super::super::raw::RawRestSink,
        sandbox: bool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<ErpAuth> {
        let given = [
            rest.token_env.is_some(),
            rest.basic_user_env.is_some() || rest.basic_password_env.is_some(),
            rest.header_name.is_some() || rest.header_value_env.is_some(),
        ];
        match given.iter().filter(|g| **g).count() {
            0 if sandbox => return Some(ErpAuth::Sandbox),
            0 => {
                self.bad("apply.rest", "missing auth: set token_env, basic_user_env + basic_password_env, or header_name + header_value_env");
                return None;
            }
            1 => {}
            _ => {
                self.bad(
                    "apply.rest",
                    "several auth methods: set only one of token_env, basic_*_env, header_*",
                );
                return None;
            }
        }
        if rest.token_env.is_some() {
            return self
                .secret("apply.rest.token_env", rest.token_env.as_deref(), env)
                .map(ErpAuth::Bearer);
        }
        if given[1] {
            let user = self.secret(
                "apply.rest.basic_user_env",
                rest.basic_user_env.as_deref(),
                env,
            );
            let password = self.secret(
                "apply.rest.basic_password_env",
                rest.basic_password_env.as_deref(),
                env,
            );
            return Some(ErpAuth::Basic {
                user: user?,
                password: password?,
            });
        }
        let name = match rest.header_name.as_deref().map(str::trim) {
            Some(n)
                if !n.is_empty()
                    && reqwest::header::HeaderName::from_bytes(n.as_bytes()).is_ok() =>
            {
                Some(n.to_string())
            }
            other => {
                self.bad(
                    "apply.rest.header_name",
                    format!("{:?} is not a header name", other.unwrap_or("")),
                );
                None
            }
        };
        let value = self.secret(
            "apply.rest.header_value_env",
            rest.header_value_env.as_deref(),
            env,
        );
        Some(ErpAuth::Header {
            name: name?,
            value: value?,
        })
    }

    /// A `[... .retry]` table checked (every problem under `key`) into a policy;
    /// SpotDraft's and the ERP's share it.
    pub(super) fn retry(
        &mut self,
        key: &str,
        retry: Option<&RawRetry>,
    ) -> crate::http::RetryPolicy {
        let max_attempts = retry.and_then(|r| r.max_attempts).unwrap_or(6);
        if max_attempts == 0 {
            self.bad(
                format!("{key}.max_attempts"),
                "must be at least 1 (the first attempt counts)",
            );
        }
        let initial = retry.and_then(|r| r.initial_backoff_ms).unwrap_or(250);
        let max_backoff = retry.and_then(|r| r.max_backoff_ms).unwrap_or(30_000);
        if initial == 0 || max_backoff < initial {
            self.bad(key, format!("initial_backoff_ms ({initial}) must be at least 1 and at most max_backoff_ms ({max_backoff})"));
        }
        crate::http::RetryPolicy {
            max_attempts: max_attempts.max(1),
            initial_backoff: Duration::from_millis(initial),
            max_backoff: Duration::from_millis(max_backoff),
            max_total: Duration::from_secs(retry.and_then(|r| r.max_total_secs).unwrap_or(300)),
        }
    }
}
