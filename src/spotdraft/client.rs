//! SpotDraft API client (v2.1): list contracts, metadata values, documents.
//!
//! Auth headers come from [`Secret`]s and are never logged; redirects are not
//! followed (SpotDraft answers 302 for `http://` or a trailing-slash mismatch,
//! and following one would hide a misconfiguration); every request goes through
//! the shared [`RetryingClient`] (throttle + retries).

use crate::http::{HttpError, HttpResponse, RetryPolicy, RetryingClient, Throttle};
use crate::secret::Secret;
use crate::spotdraft::model::{ApiErrorBody, ContractId, ContractListResponse, KeyPointer};
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
    /// A 2xx answer whose body is not the documented JSON (not retried).
    #[error("malformed JSON from {url}{}: {source}", page.map(|p| format!(" (page {p})")).unwrap_or_default())]
    MalformedJson {
        /// The URL requested.
        url: String,
        /// The list page, for list requests.
        page: Option<u32>,
        /// The parse error.
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
}

#[derive(Debug, Default)]
struct Counters {
    list: AtomicU64,
    key_pointers: AtomicU64,
    documents: AtomicU64,
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
        }
    }

    /// `GET v2.1/public/contracts/` with the query's page and filters.
    pub async fn list_contracts(
        &self,
        query: &ListQuery,
    ) -> Result<ContractListResponse, FetchError> {
        let mut url = self.endpoint(&["v2.1", "public", "contracts", ""])?;
        url.query_pairs_mut().extend_pairs(query.pairs());
        let resp = self.call(Method::GET, url, &self.counters.list).await?;
        serde_json::from_slice(&resp.body).map_err(|source| FetchError::MalformedJson {
            url: resp.url,
            page: Some(query.page),
            source,
        })
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
        let resp = self
            .call(Method::GET, url, &self.counters.key_pointers)
            .await?;
        serde_json::from_slice(&resp.body).map_err(|source| FetchError::MalformedJson {
            url: resp.url,
            page: None,
            source,
        })
    }

    /// `POST v2.1/public/contracts/{id}/download`: the latest (for executed
    /// contracts, the executed) document's bytes. Read-only, so retried like a GET.
    pub async fn download(&self, id: &ContractId) -> Result<Bytes, FetchError> {
        let url = self.endpoint(&["v2.1", "public", "contracts", id.composite(), "download"])?;
        Ok(self
            .call(Method::POST, url, &self.counters.documents)
            .await?
            .body)
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

    async fn call(
        &self,
        method: Method,
        url: Url,
        counter: &AtomicU64,
    ) -> Result<HttpResponse, FetchError> {
        let mut req = self
            .http
            .inner()
            .request(method, url.clone())
            .header("client-id", self.config.client_id.expose())
            .header("client-secret", self.config.client_secret.expose())
            .header("accept", "application/json");
        if let Some(email) = &self.config.user_email {
            req = req.header("user-email", email);
        }
        let req = req
            .build()
            .map_err(|e| FetchError::Config(format!("request to {url}: {e}")))?;
        let result = self.http.send(req, true).await;
        // Count attempts, not calls: a retried list request costs budget too.
        let attempts = match &result {
            Ok(r) => r.attempts as u64,
            Err(HttpError::Status(r)) => r.attempts as u64,
            Err(
                HttpError::RetriesExhausted { attempts, .. }
                | HttpError::Transport { attempts, .. },
            ) => *attempts as u64,
            Err(HttpError::NotCloneable { .. }) => 0,
        };
        counter.fetch_add(attempts, Ordering::Relaxed);
        result.map_err(|e| self.explain(e))
    }

    fn explain(&self, err: HttpError) -> FetchError {
        let HttpError::Status(resp) = err else {
            return FetchError::Http(err);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spotdraft::fake::{self, FakeState};

    fn client(base: Url, rps: u32) -> SpotDraftClient {
        let cfg = ClientConfig {
            base_url: base,
            client_id: Secret::new("id-1"),
            client_secret: Secret::new("s3cret"),
            user_email: Some("ops@example.com".into()),
            request_timeout: Duration::from_secs(5),
        };
        let policy = RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(10),
            max_total: Duration::from_secs(5),
        };
        SpotDraftClient::with_seed(cfg, Arc::new(Throttle::new(rps, 2)), policy, 42).unwrap()
    }

    fn q(page: u32) -> ListQuery {
        ListQuery {
            page,
            limit: 2,
            ..ListQuery::default()
        }
    }

    #[tokio::test]
    async fn sends_auth_headers_and_reads_a_page() {
        let (base, st) = fake::start(FakeState {
            contracts: fake::contracts(3),
            ..FakeState::default()
        })
        .await;
        let c = client(base, 100);
        let page = c.list_contracts(&q(2)).await.unwrap();
        assert_eq!(
            (page.page, page.total_results, page.results.len()),
            (2, 3, 1)
        );
        let h = st.lock().unwrap().last_headers.clone().unwrap();
        assert_eq!(h["client-id"], "id-1");
        assert_eq!(h["client-secret"], "s3cret");
        assert_eq!(h["user-email"], "ops@example.com");
        assert_eq!(c.request_counts().list, 1);
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "Debug leaks the secret"
        );
    }

    #[tokio::test]
    async fn retries_429_with_and_without_retry_after_and_5xx() {
        let mut state = FakeState {
            contracts: fake::contracts(1),
            ..FakeState::default()
        };
        state
            .script
            .extend([(429, Some("0"), ""), (429, None, ""), (503, None, "down")]);
        let (base, st) = fake::start(state).await;
        let c = client(base, 100);
        assert_eq!(c.list_contracts(&q(1)).await.unwrap().results.len(), 1);
        assert_eq!(st.lock().unwrap().list_requests, 4);
        let stats = c.throttle().stats().snapshot();
        assert_eq!(
            (
                stats.retries,
                stats.status_429,
                stats.responses_5xx,
                stats.requests
            ),
            (3, 2, 1, 4)
        );
        assert_eq!(c.request_counts().list, 4);
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts() {
        let mut state = FakeState::default();
        state.script.extend([
            (500, None, ""),
            (500, None, ""),
            (500, None, ""),
            (500, None, ""),
            (500, None, ""),
        ]);
        let (base, st) = fake::start(state).await;
        let err = client(base, 100).list_contracts(&q(1)).await.unwrap_err();
        assert!(
            matches!(
                err,
                FetchError::Http(HttpError::RetriesExhausted {
                    attempts: 4,
                    status: 500,
                    ..
                })
            ),
            "{err}"
        );
        assert_eq!(st.lock().unwrap().list_requests, 4);
    }

    #[tokio::test]
    async fn unauthorized_fails_at_once_with_a_hint() {
        let mut state = FakeState::default();
        state.script.push_back((
            401,
            None,
            r#"{"detail":"Invalid credentials","code":"SD_AUTH"}"#,
        ));
        let (base, st) = fake::start(state).await;
        let err = client(base.clone(), 100)
            .list_contracts(&q(1))
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("401 from http://") && msg.contains("check client-id/client-secret"),
            "{msg}"
        );
        assert!(
            msg.contains(base.as_str()) && msg.contains("Invalid credentials"),
            "{msg}"
        );
        assert!(!msg.contains("s3cret"));
        assert_eq!(st.lock().unwrap().list_requests, 1);
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let mut state = FakeState::default();
        state
            .script
            .push_back((302, Some("https://elsewhere.example/api/"), ""));
        let (base, _st) = fake::start(state).await;
        let err = client(base, 100).list_contracts(&q(1)).await.unwrap_err();
        assert!(
            matches!(&err, FetchError::Redirect { status: 302, location, .. } if location == "https://elsewhere.example/api/")
        );
        assert!(
            err.to_string().contains("v2.1/public/contracts/?page=1"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn malformed_json_is_not_retried_and_names_url_and_page() {
        let mut state = FakeState::default();
        state
            .script
            .push_back((200, None, "{\"page\": 1, \"results\": [oops"));
        let (base, st) = fake::start(state).await;
        let err = client(base, 100).list_contracts(&q(7)).await.unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("malformed JSON from http://")
                && msg.contains("page=7")
                && msg.contains("(page 7)"),
            "{msg}"
        );
        assert_eq!(st.lock().unwrap().list_requests, 1);
    }

    #[tokio::test]
    async fn key_pointers_and_download() {
        let (base, st) = fake::start(FakeState::default()).await;
        let c = client(base, 100);
        let kp = c.key_pointers(&ContractId::new("T-9")).await.unwrap();
        assert_eq!(kp[0].field_name, "contract_value");
        assert_eq!(kp[0].value, "value-of-T-9");
        assert_eq!(
            &c.download(&ContractId::new("T-9")).await.unwrap()[..],
            b"%PDF T-9"
        );
        assert_eq!(st.lock().unwrap().other_requests, 2);
        assert_eq!(
            c.request_counts(),
            RequestCounts {
                list: 0,
                key_pointers: 1,
                documents: 1
            }
        );
    }
}
