//! Correction sink `rest`: the documented ERP REST contract (README, "ERP
//! API"): `PATCH contracts/{id}`, the bulk `POST batch` and the multipart
//! `POST contracts/{id}/attachments`.
//!
//! Every request goes through the shared [`RetryingClient`] (one GCRA limiter
//! at `requests_per_second` and one in-flight cap per sink). Writes carry an
//! `Idempotency-Key`, so they are sent as idempotent: 408/429/5xx, timeouts
//! and lost responses (connection cut after sending) are retried with the
//! same key, and the ERP answers a repeat with the first result
//! (`Idempotent-Replayed: true`) without applying it again.

mod upload;

use crate::erp::sink::{DocumentUpload, ErpSink, FieldUpdate, WriteOutcome};
use crate::http::{HttpError, HttpResponse, RetryPolicy, RetryingClient, Throttle};
use crate::secret::Secret;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Where each request goes, relative to the base URL. `{id}` is replaced by
/// the record id, percent-encoded as one path segment (`ERP 12/3` ->
/// `ERP%2012%2F3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplates {
    /// Field updates (`PATCH`); default `contracts/{id}`.
    pub record: String,
    /// Document uploads (multipart `POST`); default `contracts/{id}/attachments`.
    pub attachments: String,
    /// Bulk field updates (`POST`); default `batch`.
    pub batch: String,
}

impl Default for PathTemplates {
    fn default() -> Self {
        PathTemplates {
            record: "contracts/{id}".into(),
            attachments: "contracts/{id}/attachments".into(),
            batch: "batch".into(),
        }
    }
}

/// How the sink authenticates. Every secret prints as `[redacted]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErpAuth {
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
    /// `Authorization: Basic base64(user:password)`.
    Basic {
        /// User name.
        user: Secret,
        /// Password.
        password: Secret,
    },
    /// A header of the ERP's own (`X-Api-Key: <value>`, say).
    Header {
        /// Header name.
        name: Secret,
        /// Header value.
        value: Secret,
    },
}

/// Configuration of a [`RestSink`] (the apply stage builds it from the job file).
#[derive(Debug, Clone)]
pub struct RestSinkConfig {
    /// ERP API base, ending in `/` (`http://HOST:PORT/erp/`).
    pub base_url: Url,
    /// Path templates under `base_url`.
    pub paths: PathTemplates,
    /// Credentials sent with every request.
    pub auth: ErpAuth,
    /// Requests per second to the ERP, retries included (GCRA, burst 1: evenly spaced).
    pub requests_per_second: u32,
    /// Requests in flight at once, uploads included.
    pub max_in_flight: usize,
    /// Timeout of one field update or batch request (connect + answer + body).
    pub request_timeout: Duration,
    /// Timeout of one document upload attempt, the whole body streamed.
    pub upload_timeout: Duration,
    /// Retries of 408/429/5xx, timeouts and lost responses (same key each time).
    pub retry: RetryPolicy,
}

impl RestSinkConfig {
    /// A configuration with the default paths, 10 requests/s, 4 in flight,
    /// a 30 s request timeout, a 10 min upload timeout and the default retry policy.
    pub fn new(base_url: Url, auth: ErpAuth) -> Self {
        RestSinkConfig {
            base_url,
            paths: PathTemplates::default(),
            auth,
            requests_per_second: 10,
            max_in_flight: 4,
            request_timeout: Duration::from_secs(30),
            upload_timeout: Duration::from_secs(600),
            retry: RetryPolicy::default(),
        }
    }
}

/// Why a [`RestSink`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RestSinkError {
    /// The base URL cannot take a path, or a path template is empty.
    #[error("invalid ERP sink configuration: {0}")]
    Config(String),
}

/// The ERP REST sink.
#[derive(Debug, Clone)]
pub struct RestSink {
    http: RetryingClient,
    config: Arc<RestSinkConfig>,
}

/// An ERP error body: `{"error": "<code>", "message": "<text>"}`.
#[derive(Debug, Default, Deserialize)]
struct ErpErrorBody {
    error: Option<String>,
    message: Option<String>,
}

impl RestSink {
    /// A sink with its own throttle at `requests_per_second` / `max_in_flight`.
    pub fn new(config: RestSinkConfig) -> Result<Self, RestSinkError> {
        let throttle = Arc::new(Throttle::new(
            config.requests_per_second,
            config.max_in_flight,
        ));
        let client = Self::build_http(&config)?;
        Ok(Self::from_parts(
            RetryingClient::new(client, throttle, config.retry.clone()),
            config,
        ))
    }

    /// As [`RestSink::new`] with a fixed jitter seed (tests).
    pub fn with_seed(config: RestSinkConfig, seed: u64) -> Result<Self, RestSinkError> {
        let throttle = Arc::new(Throttle::new(
            config.requests_per_second,
            config.max_in_flight,
        ));
        let client = Self::build_http(&config)?;
        Ok(Self::from_parts(
            RetryingClient::with_seed(client, throttle, config.retry.clone(), seed),
            config,
        ))
    }

    fn build_http(config: &RestSinkConfig) -> Result<reqwest::Client, RestSinkError> {
        if config.base_url.cannot_be_a_base() {
            let msg = format!("base_url {} cannot hold a path", config.base_url);
            return Err(RestSinkError::Config(msg));
        }
        let p = &config.paths;
        for (key, t) in [
            ("record", &p.record),
            ("attachments", &p.attachments),
            ("batch", &p.batch),
        ] {
            if t.trim_matches('/').is_empty() {
                return Err(RestSinkError::Config(format!("path {key} is empty")));
            }
        }
        reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| RestSinkError::Config(format!("HTTP client: {e}")))
    }

    fn from_parts(http: RetryingClient, config: RestSinkConfig) -> Self {
        RestSink {
            http,
            config: Arc::new(config),
        }
    }

    /// The sink's throttle (its counters cover every request sent).
    pub fn throttle(&self) -> &Arc<Throttle> {
        self.http.throttle()
    }

    /// `template` under the base URL, `{id}` percent-encoded as a path segment.
    pub fn url_for(&self, template: &str, id: &str) -> Url {
        let mut url = self.config.base_url.clone();
        if let Ok(mut segs) = url.path_segments_mut() {
            segs.pop_if_empty();
            for seg in template.trim_matches('/').split('/') {
                segs.push(&seg.replace("{id}", id));
            }
        }
        url
    }

    /// A request with the auth header, `Accept: application/json` and the key.
    fn request(&self, method: Method, url: Url, key: &str) -> reqwest::RequestBuilder {
        let req = self
            .http
            .inner()
            .request(method, url)
            .header("accept", "application/json")
            .header("idempotency-key", key);
        match &self.config.auth {
            ErpAuth::Bearer(token) => req.bearer_auth(token.expose()),
            ErpAuth::Basic { user, password } => {
                req.basic_auth(user.expose(), Some(password.expose()))
            }
            ErpAuth::Header { name, value } => {
                match reqwest::header::HeaderValue::from_str(value.expose()) {
                    Ok(mut v) => {
                        v.set_sensitive(true);
                        req.header(name.expose(), v)
                    }
                    Err(_) => req.header(name.expose(), ""),
                }
            }
        }
    }

    /// Sends one JSON write and maps the answer to an outcome.
    async fn send_write(
        &self,
        req: reqwest::RequestBuilder,
    ) -> (Option<HttpResponse>, WriteOutcome) {
        let req = match req.timeout(self.config.request_timeout).build() {
            Ok(r) => r,
            Err(e) => return (None, pending(format!("request could not be built: {e}"))),
        };
        let parse = |b: &[u8]| serde_json::from_slice::<Value>(b);
        match self.http.send_parsed(req, true, parse).await {
            Ok((resp, body)) => {
                let outcome = applied(&resp, &body);
                (Some(resp), outcome)
            }
            Err(e) => (None, failed(e)),
        }
    }
}

/// `3` -> `"3"`; an already quoted or weak ETag is sent as is.
pub fn if_match_header(version: &str) -> String {
    let v = version.trim();
    if v.starts_with('"') || v.starts_with("W/") {
        v.to_string()
    } else {
        format!("\"{v}\"")
    }
}

fn version_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// A 2xx answer: the record's version from the body, else from the `ETag`.
fn applied(resp: &HttpResponse, body: &Value) -> WriteOutcome {
    let version = body.get("version").and_then(version_text).or_else(|| {
        resp.header("etag").map(|e| {
            e.trim()
                .trim_start_matches("W/")
                .trim_matches('"')
                .to_string()
        })
    });
    WriteOutcome::Applied {
        version,
        replayed: is_replayed(resp),
    }
}

/// `Idempotent-Replayed: true`: the ERP answered a repeated key with its first result.
fn is_replayed(resp: &HttpResponse) -> bool {
    resp.header("idempotent-replayed")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

fn pending(error: String) -> WriteOutcome {
    WriteOutcome::Pending { error }
}

/// A failed request: a non-retryable status is `Rejected` with the ERP's
/// code and message; refused credentials (401, 403: the write never reached
/// the record), retries that ran out and transport failures are `Pending`,
/// sent again by the next run.
fn failed(err: HttpError) -> WriteOutcome {
    match err {
        HttpError::Status(resp) if matches!(resp.status, 401 | 403) => pending(format!(
            "the ERP refused the credentials (HTTP {}): check [apply.rest]'s auth; sent again by the next run",
            resp.status
        )),
        HttpError::Status(resp) => rejected(resp.status, &resp.body),
        other => pending(crate::error_chain::error_chain(&other)),
    }
}

fn rejected(status: u16, body: &[u8]) -> WriteOutcome {
    let parsed: ErpErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let message = parsed.message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        text.chars().take(500).collect()
    });
    WriteOutcome::Rejected {
        status,
        code: parsed.error,
        message,
    }
}

/// One batch result `{erp_record_id, status, version?, error?, replayed?}`.
fn batch_result(result: &Value) -> WriteOutcome {
    let status = result.get("status").and_then(Value::as_u64).unwrap_or(0) as u16;
    if (200..300).contains(&status) {
        return WriteOutcome::Applied {
            version: result.get("version").and_then(version_text),
            replayed: result.get("replayed").and_then(Value::as_bool) == Some(true),
        };
    }
    let error = result.get("error").cloned().unwrap_or(Value::Null);
    let body = serde_json::to_vec(&error).unwrap_or_default();
    match status {
        401 | 403 | 408 | 429 | 500..=599 => {
            pending(format!("batch operation answered {status}: {error}"))
        }
        0 => pending(format!("batch result without a status: {result}")),
        _ => rejected(status, &body),
    }
}

fn patch_operation(u: &FieldUpdate) -> Value {
    let fields: Map<String, Value> = u
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let mut op = json!({
        "op": "patch",
        "erp_record_id": u.erp_record_id,
        "fields": fields,
        "idempotency_key": u.idempotency_key,
    });
    if let Some(v) = &u.if_match {
        op["if_match"] = Value::String(v.clone());
    }
    op
}

impl ErpSink for RestSink {
    async fn update_fields(&self, update: &FieldUpdate) -> WriteOutcome {
        let url = self.url_for(&self.config.paths.record, &update.erp_record_id);
        let fields: Map<String, Value> = update
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut req = self
            .request(Method::PATCH, url, &update.idempotency_key)
            .json(&json!({ "fields": fields }));
        if let Some(v) = &update.if_match {
            req = req.header("if-match", if_match_header(v));
        }
        self.send_write(req).await.1
    }

    async fn update_fields_batch(
        &self,
        updates: &[FieldUpdate],
        batch_key: &str,
    ) -> Vec<WriteOutcome> {
        if updates.is_empty() {
            return vec![];
        }
        let url = self.url_for(&self.config.paths.batch, "");
        let ops: Vec<Value> = updates.iter().map(patch_operation).collect();
        let req = self
            .request(Method::POST, url, batch_key)
            .json(&json!({ "operations": ops }));
        let (resp, outcome) = self.send_write(req).await;
        let Some(resp) = resp else {
            // The whole request failed: every update shares its fate.
            return vec![outcome; updates.len()];
        };
        let body: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        let results = body.get("results").and_then(Value::as_array);
        let batch_replayed = is_replayed(&resp);
        match results {
            Some(r) if r.len() == updates.len() => r
                .iter()
                .map(|r| match batch_result(r) {
                    WriteOutcome::Applied { version, replayed } => WriteOutcome::Applied {
                        version,
                        replayed: replayed || batch_replayed,
                    },
                    other => other,
                })
                .collect(),
            _ => {
                let msg = format!(
                    "batch answer has {} results for {} operations",
                    results.map_or(0, Vec::len),
                    updates.len()
                );
                vec![pending(msg); updates.len()]
            }
        }
    }

    async fn attach_document(&self, upload: DocumentUpload) -> WriteOutcome {
        upload::attach(self, upload).await
    }
}

#[cfg(test)]
mod tests;
