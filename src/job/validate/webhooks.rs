//! Job file validation of `[webhooks]`.

use super::super::raw::RawWebhooks;
use super::super::*;
use super::Validator;
use base64::Engine;

/// `max_body_bytes` at most.
const MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;

/// The ERP events' shared secret is at least this long.
pub const MIN_ERP_SECRET_BYTES: usize = 16;

impl Validator {
    /// `[webhooks]`: `Some(None)` without the section, `None` when invalid.
    pub(super) fn webhooks(
        &mut self,
        raw: Option<&RawWebhooks>,
        env: &dyn Fn(&str) -> Option<String>,
        create_enabled: bool,
    ) -> Option<Option<WebhookSettings>> {
        let Some(w) = raw else {
            return Some(None);
        };
        let ok = self.problems.len();
        let hmac_key = match w.hmac_key_env.as_deref().map(str::trim) {
            None => WebhookKeySource::Fetch,
            Some(var) => self.webhook_key_env(var, env),
        };
        let max_body_bytes = w.max_body_bytes.unwrap_or(256 * 1024);
        if !(1..=MAX_BODY_BYTES).contains(&max_body_bytes) {
            self.bad(
                "webhooks.max_body_bytes",
                format!("{max_body_bytes} is out of range: 1 to {MAX_BODY_BYTES}"),
            );
        }
        let debounce_secs = w.debounce_secs.unwrap_or(10);
        let max_wait_secs = w.max_wait_secs.unwrap_or(120.max(debounce_secs));
        if max_wait_secs < debounce_secs {
            self.bad(
                "webhooks.max_wait_secs",
                format!("{max_wait_secs} is less than webhooks.debounce_secs ({debounce_secs})"),
            );
        }
        let max_contracts = w.max_contracts_per_run.unwrap_or(100);
        if !(1..=1000).contains(&max_contracts) {
            self.bad(
                "webhooks.max_contracts_per_run",
                format!("{max_contracts} is out of range: 1 to 1000"),
            );
        }
        let erp_secret = w
            .erp_secret_env
            .as_deref()
            .map(str::trim)
            .and_then(|var| self.erp_secret_env(var, env, create_enabled));
        (self.problems.len() == ok).then_some(Some(WebhookSettings {
            hmac_key,
            max_body_bytes: max_body_bytes as usize,
            debounce: Duration::from_secs(debounce_secs),
            max_wait: Duration::from_secs(max_wait_secs),
            max_contracts_per_run: max_contracts,
            erp_secret,
        }))
    }

    /// The ERP events' shared secret in `var`: set, at least
    /// [`MIN_ERP_SECRET_BYTES`] long, for a job with `[create]` on (its value
    /// is never printed).
    fn erp_secret_env(
        &mut self,
        var: &str,
        env: &dyn Fn(&str) -> Option<String>,
        create_enabled: bool,
    ) -> Option<ErpEventSecret> {
        let key = "webhooks.erp_secret_env";
        if var.is_empty() {
            self.bad(
                key,
                "empty variable name (leave the key out to take no ERP events)",
            );
            return None;
        }
        if !create_enabled {
            self.bad(
                key,
                "ERP events create contracts: the job needs [create] enabled = true",
            );
        }
        let Some(value) = env(var) else {
            self.bad(key, format!("environment variable {var} is not set"));
            return None;
        };
        if value.len() < MIN_ERP_SECRET_BYTES {
            self.bad(
                key,
                format!(
                    "the value of environment variable {var} is shorter than {MIN_ERP_SECRET_BYTES} bytes"
                ),
            );
            return None;
        }
        Some(ErpEventSecret {
            var: var.to_string(),
            secret: Secret::new(value),
        })
    }

    /// The key in `var`, which must be set and be base64 (its value is never
    /// printed).
    fn webhook_key_env(
        &mut self,
        var: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> WebhookKeySource {
        let key = "webhooks.hmac_key_env";
        let fetch = WebhookKeySource::Fetch;
        if var.is_empty() {
            self.bad(
                key,
                "empty variable name (leave the key out to fetch the key from SpotDraft)",
            );
            return fetch;
        }
        let Some(value) = env(var) else {
            self.bad(key, format!("environment variable {var} is not set"));
            return fetch;
        };
        match base64::engine::general_purpose::STANDARD.decode(value.trim()) {
            Ok(bytes) if !bytes.is_empty() => WebhookKeySource::Env {
                var: var.to_string(),
                key: Secret::new(value.trim()),
            },
            _ => {
                self.bad(
                    key,
                    format!(
                        "the value of environment variable {var} is not a base64 key (give it as SpotDraft's GET v2.1/public/webhooks/hmac_key/ answers it)"
                    ),
                );
                fetch
            }
        }
    }
}
