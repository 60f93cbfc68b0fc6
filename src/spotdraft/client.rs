//! SpotDraft API client (v2.1): list contracts, metadata values, documents.
//!
//! Auth headers come from [`Secret`]s and are never logged; redirects are not
//! followed (SpotDraft answers 302 for `http://` or a trailing-slash mismatch,
//! and following one would hide a misconfiguration); every request goes through
//! the shared [`RetryingClient`] (throttle + retries). A JSON body that does
//! not parse (cut short by a flaky proxy) is retried like a 5xx.
//!
//! Error messages name the URL once: each error either prints its cause or
//! exposes it through `source()`, never both, so a rendered chain
//! (`{:#}` of an `anyhow::Error`) does not repeat itself.
//!
//! Existence checks ([`SpotDraftClient::contract_exists`],
//! [`SpotDraftClient::existing_contracts`]) are list requests filtered on
//! `contract_id` with no status filter (see `lookup.rs`).

use crate::http::{HttpError, RetryPolicy, RetryingClient, Throttle};
use crate::secret::Secret;
use crate::spotdraft::model::{
    ApiErrorBody, ContractId, ContractListResponse, ContractType, KeyPointer, KeyPointerDefinition,
};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Method;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Where and how to reach one SpotDraft workspace.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Regional API base, ending in `/api/` (e.g. `https://api.us.spotdraft.com/api/`).
    pub base_url: Url,
    /// `client-id` header.
    pub client_id: Secret,
    /// `client-secret` header.
    pub client_secret: Secret,
    /// Optional `user-email` header (impersonation).
    pub user_email: Option<String>,
    /// Timeout of one request (connect + answer + body).
    pub request_timeout: Duration,
}

/// Why a SpotDraft call failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Credentials refused.
    #[error("{status} from {url}: check client-id/client-secret and the workspace region {base_url}{detail}")]
    Unauthorized {
        /// 401 or 403.
        status: u16,
        /// The URL requested.
        url: String,
        /// The configured base URL (the region).
        base_url: String,
        /// The server's explanation, when it gave one (`: ...`).
        detail: String,
    },
    /// A redirect, which is never followed.
    #[error("{status} redirect from {url} to {location}: use the exact https base URL and path (redirects are not followed)")]
    Redirect {
        /// 3xx status.
        status: u16,
        /// The URL requested.
        url: String,
        /// The `Location` header (`<none>` when missing).
        location: String,
    },
    /// Another non-retryable status.
    #[error("{status} from {url}{detail}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The URL requested.
        url: String,
        /// The server's explanation, when it gave one (`: ...`).
        detail: String,
    },
    /// A 2xx answer whose body is not the documented JSON, on every attempt
    /// the retry policy allowed. The URL names the page of a list request.
    #[error("malformed JSON from {url} after {attempts} attempt(s)")]
    MalformedJson {
        /// The URL requested.
        url: String,
        /// The list page, for list requests.
        page: Option<u32>,
        /// Attempts made.
        attempts: u32,
        /// The last parse error.
        #[source]
        source: serde_json::Error,
    },
    /// Retries exhausted or a transport failure.
    #[error(transparent)]
    Http(HttpError),
    /// The base URL cannot take a path (e.g. `mailto:`), or the HTTP client could not be built.
    #[error("invalid SpotDraft configuration: {0}")]
    Config(String),
}

impl FetchError {
    /// True for a 404: the contract (or its document) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, FetchError::Status { status: 404, .. })
    }
}

/// One list request: page, page size and filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Page, from 1.
    pub page: u32,
    /// Page size (at most 100).
    pub limit: u32,
    /// `filter__created_at[$gte]`.
    pub created_gte: Option<DateTime<Utc>>,
    /// `filter__created_at[$lt]`.
    pub created_lt: Option<DateTime<Utc>>,
    /// `filter__last_updated_on[$gte]`.
    pub updated_gte: Option<DateTime<Utc>>,
    /// `filter__last_updated_on[$lt]`.
    pub updated_lt: Option<DateTime<Utc>>,
    /// `filter__display_status[$in]` (omitted when empty).
    pub statuses: Vec<String>,
    /// `filter__contract_id[$eq]` (one id) or `filter__contract_id[$in]`
    /// (several); omitted when empty. Composite (`T-123`) or integer ids.
    pub contract_ids: Vec<String>,
}

/// Formats a time the way filters take it: `2026-11-01T00:00:00Z`.
pub fn filter_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

impl ListQuery {
    /// The query string pairs, in a fixed order.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut q = vec![
            ("page", self.page.max(1).to_string()),
            ("limit", self.limit.clamp(1, 100).to_string()),
        ];
        let times = [
            ("filter__created_at[$gte]", &self.created_gte),
            ("filter__created_at[$lt]", &self.created_lt),
            ("filter__last_updated_on[$gte]", &self.updated_gte),
            ("filter__last_updated_on[$lt]", &self.updated_lt),
        ];
        for (k, v) in times {
            if let Some(t) = v {
                q.push((k, filter_time(t)));
            }
        }
        if !self.statuses.is_empty() {
            q.push(("filter__display_status[$in]", self.statuses.join(",")));
        }
        match self.contract_ids.as_slice() {
            [] => {}
            [one] => q.push(("filter__contract_id[$eq]", one.clone())),
            many => {
                let escaped: Vec<String> = many.iter().map(|i| i.replace(',', "\\,")).collect();
                q.push(("filter__contract_id[$in]", escaped.join(",")));
            }
        }
        q
    }
}

/// Requests made per endpoint (first attempts and retries alike).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RequestCounts {
    /// Contract list calls.
    pub list: u64,
    /// Metadata value calls.
    pub key_pointers: u64,
    /// Document downloads.
    pub documents: u64,
    /// `external_metadata` reads and writes.
    pub external_metadata: u64,
    /// Contract creation attempts (`POST contracts/`, lookups not included).
    pub creates: u64,
}

#[derive(Debug, Default)]
struct Counters {
    list: AtomicU64,
    key_pointers: AtomicU64,
    documents: AtomicU64,
    external_metadata: AtomicU64,
    creates: AtomicU64,
}

/// A client for one SpotDraft workspace.
#[derive(Debug, Clone)]
pub struct SpotDraftClient {
    http: RetryingClient,
    config: ClientConfig,
    counters: Arc<Counters>,
}

impl SpotDraftClient {
    /// Builds a client; `throttle` is the workspace's shared budget.
    pub fn new(
        config: ClientConfig,
        throttle: Arc<Throttle>,
        policy: RetryPolicy,
    ) -> Result<Self, FetchError> {
        let inner = Self::build_http(&config)?;
        Ok(Self::from_parts(
            RetryingClient::new(inner, throttle, policy),
            config,
        ))
    }

    /// As [`SpotDraftClient::new`] with a fixed jitter seed (tests).
    pub fn with_seed(
        config: ClientConfig,
        throttle: Arc<Throttle>,
        policy: RetryPolicy,
        seed: u64,
    ) -> Result<Self, FetchError> {
        let inner = Self::build_http(&config)?;
        Ok(Self::from_parts(
            RetryingClient::with_seed(inner, throttle, policy, seed),
            config,
        ))
    }

    fn build_http(config: &ClientConfig) -> Result<reqwest::Client, FetchError> {
        if config.base_url.cannot_be_a_base() {
            return Err(FetchError::Config(format!(
                "base_url {} cannot hold a path",
                config.base_url
            )));
        }
        reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| FetchError::Config(format!("HTTP client: {e}")))
    }

    fn from_parts(http: RetryingClient, config: ClientConfig) -> Self {
        SpotDraftClient {
            http,
            config,
            counters: Arc::default(),
        }
    }

    /// The shared throttle (its counters cover every request of the workspace).
    pub fn throttle(&self) -> &Arc<Throttle> {
        self.http.throttle()
    }

    /// Requests made by this client (and its clones) per endpoint.
    pub fn request_counts(&self) -> RequestCounts {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RequestCounts {
            list: r(&self.counters.list),
            key_pointers: r(&self.counters.key_pointers),
            documents: r(&self.counters.documents),
            external_metadata: r(&self.counters.external_metadata),
            creates: r(&self.counters.creates),
        }
    }

    /// `GET v2.1/public/contracts/` with the query's page and filters.
    pub async fn list_contracts(
        &self,
        query: &ListQuery,
    ) -> Result<ContractListResponse, FetchError> {
        let mut url = self.endpoint(&["v2.1", "public", "contracts", ""])?;
        url.query_pairs_mut().extend_pairs(query.pairs());
        let parse = |b: &[u8]| serde_json::from_slice(b);
        let call = Call::new(Method::GET, url, &self.counters.list);
        self.call_parsed(call.page(query.page), parse).await
    }

    /// `GET v2.1/public/contracts/{id}/key_pointers`: the contract's metadata values.
    pub async fn key_pointers(&self, id: &ContractId) -> Result<Vec<KeyPointer>, FetchError> {
        let url = self.endpoint(&[
            "v2.1",
            "public",
            "contracts",
            id.composite(),
            "key_pointers",
        ])?;
        let parse = |b: &[u8]| serde_json::from_slice(b);
        self.call_parsed(
            Call::new(Method::GET, url, &self.counters.key_pointers),
            parse,
        )
        .await
    }

    /// `GET v2.1/public/contract_types/`: the workspace's contract types.
    pub async fn contract_types(&self) -> Result<Vec<ContractType>, FetchError> {
        let url = self.endpoint(&["v2.1", "public", "contract_types", ""])?;
        let parse = |b: &[u8]| serde_json::from_slice(b);
        self.call_parsed(Call::new(Method::GET, url, &self.counters.list), parse)
            .await
    }

    /// `GET v2.1/public/key_pointers/?contract_type_id=`: the metadata
    /// definitions (which fields exist) of one contract type.
    pub async fn key_pointer_definitions(
        &self,
        contract_type_id: i64,
    ) -> Result<Vec<KeyPointerDefinition>, FetchError> {
        let mut url = self.endpoint(&["v2.1", "public", "key_pointers", ""])?;
        url.query_pairs_mut()
            .append_pair("contract_type_id", &contract_type_id.to_string());
        let parse = |b: &[u8]| serde_json::from_slice(b);
        self.call_parsed(
            Call::new(Method::GET, url, &self.counters.key_pointers),
            parse,
        )
        .await
    }

    /// `POST v2.1/public/contracts/{id}/download`: the latest (for executed
    /// contracts, the executed) document's bytes. Read-only, so retried like a GET.
    pub async fn download(&self, id: &ContractId) -> Result<Bytes, FetchError> {
        let url = self.endpoint(&["v2.1", "public", "contracts", id.composite(), "download"])?;
        let parse = |b: &[u8]| Ok(Bytes::copy_from_slice(b));
        self.call_parsed(
            Call::new(Method::POST, url, &self.counters.documents),
            parse,
        )
        .await
    }

    fn endpoint(&self, segments: &[&str]) -> Result<Url, FetchError> {
        let mut url = self.config.base_url.clone();
        url.path_segments_mut()
            .map_err(|_| {
                FetchError::Config(format!(
                    "base_url {} cannot hold a path",
                    self.config.base_url
                ))
            })?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// A request with the auth headers.
    fn authed(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .inner()
            .request(method, url)
            .header("client-id", self.config.client_id.expose())
            .header("client-secret", self.config.client_secret.expose())
            .header("accept", "application/json");
        if let Some(email) = &self.config.user_email {
            req = req.header("user-email", email);
        }
        req
    }

    /// Sends one idempotent call (a read, or a write of a whole object),
    /// retried, its body parsed by `parse` and retried when it does not parse.
    async fn call_parsed<T>(
        &self,
        call: Call<'_>,
        parse: impl Fn(&[u8]) -> Result<T, serde_json::Error>,
    ) -> Result<T, FetchError> {
        let Call {
            method,
            url,
            counter,
            page,
            body,
        } = call;
        let mut req = self.authed(method, url.clone());
        if let Some(body) = body {
            req = req.json(body);
        }
        let req = req
            .build()
            .map_err(|e| FetchError::Config(format!("request to {url}: {e}")))?;
        let result = self.http.send_parsed(req, true, parse).await;
        // Count attempts, not calls: a retried list request costs budget too.
        let attempts = match &result {
            Ok((r, _)) => r.attempts,
            Err(e) => attempts_of(e),
        } as u64;
        counter.fetch_add(attempts, Ordering::Relaxed);
        result.map(|(_, t)| t).map_err(|e| self.explain(e, page))
    }

    fn explain(&self, err: HttpError, page: Option<u32>) -> FetchError {
        let resp = match err {
            HttpError::Status(resp) => resp,
            HttpError::MalformedBody {
                url,
                attempts,
                source,
                ..
            } => {
                return FetchError::MalformedJson {
                    url,
                    page,
                    attempts,
                    source,
                }
            }
            other => return FetchError::Http(other),
        };
        let detail = serde_json::from_slice::<ApiErrorBody>(&resp.body)
            .ok()
            .and_then(|b| b.detail.or(b.message).map(|m| format!(": {m}")))
            .unwrap_or_default();
        match resp.status {
            401 | 403 => FetchError::Unauthorized {
                status: resp.status,
                url: resp.url.clone(),
                base_url: self.config.base_url.to_string(),
                detail,
            },
            300..=399 => FetchError::Redirect {
                status: resp.status,
                url: resp.url.clone(),
                location: resp.header("location").unwrap_or("<none>").to_string(),
            },
            status => FetchError::Status {
                status,
                url: resp.url.clone(),
                detail,
            },
        }
    }
}

/// Attempts a failed request made.
fn attempts_of(err: &HttpError) -> u32 {
    match err {
        HttpError::Status(r) => r.attempts,
        HttpError::RetriesExhausted { attempts, .. }
        | HttpError::Transport { attempts, .. }
        | HttpError::MalformedBody { attempts, .. }
        | HttpError::Aborted { attempts, .. } => *attempts,
        HttpError::NotCloneable { .. } => 0,
    }
}

/// One call: where, which counter, the list page for errors, a JSON body.
struct Call<'a> {
    method: Method,
    url: Url,
    counter: &'a AtomicU64,
    page: Option<u32>,
    body: Option<&'a serde_json::Value>,
}

impl<'a> Call<'a> {
    fn new(method: Method, url: Url, counter: &'a AtomicU64) -> Self {
        Call {
            method,
            url,
            counter,
            page: None,
            body: None,
        }
    }

    fn page(mut self, page: u32) -> Self {
        self.page = Some(page);
        self
    }

    fn json(mut self, body: &'a serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }
}

mod create;
mod lookup;
#[cfg(test)]
mod tests;
mod webhooks;
mod write_back;

pub use create::{CreateOutcome, LinkedContract};
pub use write_back::{merge_external_metadata, DocumentDownload};
