//! Sending one request through the throttle, with retries, and reading its body.

use super::retry::{backoff_delay, classify_status, parse_retry_after, RetryPolicy, StatusClass};
use super::throttle::Throttle;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::header::HeaderMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A complete answer: status, headers and the whole body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The URL requested.
    pub url: String,
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body, read in full.
    pub body: Bytes,
    /// Attempts it took (1 = first try).
    pub attempts: u32,
}

impl HttpResponse {
    /// A header as text, when present and readable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Why a request failed after the retry policy gave up (or did not apply).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A status the policy never retries (3xx, most 4xx); the response is kept
    /// so the caller can say what it means for its API.
    #[error("HTTP {} from {}", .0.status, .0.url)]
    Status(Box<HttpResponse>),
    /// A retryable status that kept coming back until the attempts or the time ran out.
    #[error("HTTP {status} from {url}, still failing after {attempts} attempts over {elapsed:?}")]
    RetriesExhausted {
        /// The URL requested.
        url: String,
        /// Last status seen.
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
    },
    /// A 2xx answer whose body did not parse (cut short by a proxy, malformed),
    /// on every attempt until the attempts or the time ran out (or at once for a
    /// request that is not idempotent).
    #[error("malformed body from {url} after {attempts} attempt(s) over {elapsed:?}")]
    MalformedBody {
        /// The URL requested.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
        /// The last parse error.
        #[source]
        source: serde_json::Error,
    },
    /// Timeout, connection or body error (retried only for idempotent requests).
    /// The message names the URL; the source is kept without it.
    #[error("request to {url} failed after {attempts} attempt(s): {kind}")]
    Transport {
        /// The URL requested.
        url: String,
        /// `timeout`, `connection` or `body`.
        kind: &'static str,
        /// Attempts made.
        attempts: u32,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// The request could not be built (a body that cannot be cloned for a retry).
    #[error("request to {url} cannot be retried: its body is a stream")]
    NotCloneable {
        /// The URL requested.
        url: String,
    },
    /// The caller could not build the next attempt (a streamed body could not
    /// be opened again, or the caller stopped retrying on purpose).
    #[error("request to {url} stopped after {attempts} attempt(s): {reason}")]
    Aborted {
        /// The URL requested.
        url: String,
        /// Attempts made before it stopped.
        attempts: u32,
        /// Why the caller stopped.
        reason: String,
    },
}

/// A `reqwest::Client` bound to a [`Throttle`] and a [`RetryPolicy`].
#[derive(Debug, Clone)]
pub struct RetryingClient {
    client: reqwest::Client,
    throttle: Arc<Throttle>,
    policy: RetryPolicy,
    rng: Arc<Mutex<StdRng>>,
    /// Messages and logs show the URL's origin only (the URL is a secret).
    hide_urls: bool,
}

impl RetryingClient {
    /// A client with jitter drawn from the OS entropy source.
    pub fn new(client: reqwest::Client, throttle: Arc<Throttle>, policy: RetryPolicy) -> Self {
        Self::with_rng(client, throttle, policy, StdRng::from_os_rng())
    }

    /// A client whose jitter sequence is fixed by `seed` (tests).
    pub fn with_seed(
        client: reqwest::Client,
        throttle: Arc<Throttle>,
        policy: RetryPolicy,
        seed: u64,
    ) -> Self {
        Self::with_rng(client, throttle, policy, StdRng::seed_from_u64(seed))
    }

    fn with_rng(
        client: reqwest::Client,
        throttle: Arc<Throttle>,
        policy: RetryPolicy,
        rng: StdRng,
    ) -> Self {
        RetryingClient {
            client,
            throttle,
            policy,
            rng: Arc::new(Mutex::new(rng)),
            hide_urls: false,
        }
    }

    /// This client's requests go to a URL that is itself a secret (a chat
    /// webhook whose path carries its token): its errors and logs show the
    /// URL's scheme and host only.
    pub fn hiding_urls(self) -> Self {
        RetryingClient {
            hide_urls: true,
            ..self
        }
    }

    /// `url` as errors and logs show it.
    fn shown(&self, url: &str) -> String {
        if !self.hide_urls {
            return url.to_string();
        }
        match url::Url::parse(url) {
            Ok(u) => format!(
                "{}://{}/[redacted]",
                u.scheme(),
                u.host_str().unwrap_or_default()
            ),
            Err(_) => "[redacted URL]".to_string(),
        }
    }

    /// The underlying client, to build requests with.
    pub fn inner(&self) -> &reqwest::Client {
        &self.client
    }

    /// The shared throttle (and its counters).
    pub fn throttle(&self) -> &Arc<Throttle> {
        &self.throttle
    }

    /// Sends `request`, retrying 408/429/5xx (honouring `Retry-After`) and, when
    /// `idempotent`, timeouts and connection errors. Every attempt waits for the
    /// throttle. Returns the 2xx answer with its body, or why it failed.
    ///
    /// Timeouts are retried only for idempotent requests too: a request that
    /// timed out may have been applied, and this project never writes twice.
    /// A write that carries an `Idempotency-Key` the server honours (the ERP
    /// API) IS idempotent: a resend with the same key is answered with the
    /// first result, never applied again, so such writes pass `true`.
    pub async fn send(
        &self,
        request: reqwest::Request,
        idempotent: bool,
    ) -> Result<HttpResponse, HttpError> {
        let (resp, ()) = self.send_parsed(request, idempotent, |_| Ok(())).await?;
        Ok(resp)
    }

    /// [`RetryingClient::send`], then `parse` on the 2xx body. A body that does
    /// not parse (JSON cut short by a flaky proxy, ...) is retried like a 5xx,
    /// within the same attempts, backoff and total time, when `idempotent`;
    /// then the answer is [`HttpError::MalformedBody`].
    pub async fn send_parsed<T>(
        &self,
        request: reqwest::Request,
        idempotent: bool,
        parse: impl Fn(&[u8]) -> Result<T, serde_json::Error>,
    ) -> Result<(HttpResponse, T), HttpError> {
        let url = self.shown(request.url().as_str());
        let build = |_attempt: u32| {
            let req = request
                .try_clone()
                .ok_or_else(|| HttpError::NotCloneable { url: url.clone() });
            std::future::ready(req)
        };
        self.send_built(&url, build, idempotent, parse).await
    }

    /// [`RetryingClient::send_parsed`] for a request built afresh for every
    /// attempt by `build(attempt)` (1 = first): a streamed body cannot be
    /// cloned, so each attempt opens its stream again. `build` may refuse an
    /// attempt with [`HttpError::Aborted`] (or any error), which ends the loop.
    pub async fn send_built<T, F, Fut>(
        &self,
        url: &str,
        mut build: F,
        idempotent: bool,
        parse: impl Fn(&[u8]) -> Result<T, serde_json::Error>,
    ) -> Result<(HttpResponse, T), HttpError>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<reqwest::Request, HttpError>>,
    {
        let url = self.shown(url);
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let req = build(attempt).await?;
            let outcome = self.attempt(req, &url, attempt).await;
            let (retry_after, give_up) = match outcome {
                Ok(resp) => match classify_status(resp.status) {
                    StatusClass::Success => match parse(&resp.body) {
                        Ok(parsed) => return Ok((resp, parsed)),
                        Err(source) => {
                            self.throttle.stats().record_malformed_body();
                            let err = HttpError::MalformedBody {
                                url: url.clone(),
                                attempts: attempt,
                                elapsed: started.elapsed(),
                                source,
                            };
                            if !idempotent {
                                return Err(err);
                            }
                            (None, err)
                        }
                    },
                    StatusClass::Fail => return Err(HttpError::Status(Box::new(resp))),
                    StatusClass::Retry => (
                        resp.header("retry-after").and_then(parse_retry_after),
                        HttpError::RetriesExhausted {
                            url: url.clone(),
                            status: resp.status,
                            attempts: attempt,
                            elapsed: started.elapsed(),
                        },
                    ),
                },
                Err((kind, source)) => {
                    let err = HttpError::Transport {
                        url: url.clone(),
                        kind,
                        attempts: attempt,
                        source: source.without_url(),
                    };
                    if !idempotent {
                        return Err(err);
                    }
                    (None, err)
                }
            };
            self.wait_before_retry(&url, attempt, retry_after, started, give_up)
                .await?;
        }
    }

    /// Sends `request` (retried like [`RetryingClient::send`] until a 2xx
    /// answer starts) and returns that answer with its body unread, to be
    /// streamed by the caller. Only the request start waits for the throttle
    /// and holds an in-flight slot; an error while streaming the body is the
    /// caller's to handle (it is not retried here).
    pub async fn open_stream(
        &self,
        request: reqwest::Request,
        idempotent: bool,
    ) -> Result<(reqwest::Response, u32), HttpError> {
        let url = self.shown(request.url().as_str());
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let req = request
                .try_clone()
                .ok_or_else(|| HttpError::NotCloneable { url: url.clone() })?;
            let sent = {
                let _slot = self.throttle.admit().await;
                self.client.execute(req).await
            };
            let stats = self.throttle.stats();
            let (retry_after, give_up) = match sent {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    stats.record_status(status);
                    match classify_status(status) {
                        StatusClass::Success => return Ok((resp, attempt)),
                        StatusClass::Fail => {
                            let headers = resp.headers().clone();
                            let body = resp.bytes().await.unwrap_or_default();
                            return Err(HttpError::Status(Box::new(HttpResponse {
                                url,
                                status,
                                headers,
                                body,
                                attempts: attempt,
                            })));
                        }
                        StatusClass::Retry => (
                            resp.headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok())
                                .and_then(parse_retry_after),
                            HttpError::RetriesExhausted {
                                url: url.clone(),
                                status,
                                attempts: attempt,
                                elapsed: started.elapsed(),
                            },
                        ),
                    }
                }
                Err(e) => {
                    stats.record_transport_error();
                    let kind = if e.is_timeout() {
                        "timeout"
                    } else {
                        "connection"
                    };
                    let err = HttpError::Transport {
                        url: url.clone(),
                        kind,
                        attempts: attempt,
                        source: e.without_url(),
                    };
                    if !idempotent {
                        return Err(err);
                    }
                    (None, err)
                }
            };
            self.wait_before_retry(&url, attempt, retry_after, started, give_up)
                .await?;
        }
    }

    /// Sleeps the backoff before attempt `attempt + 1` (jittered, `Retry-After`
    /// wins), or returns `give_up` when the attempts or the total time would
    /// run out.
    async fn wait_before_retry(
        &self,
        url: &str,
        attempt: u32,
        retry_after: Option<Duration>,
        started: Instant,
        give_up: HttpError,
    ) -> Result<(), HttpError> {
        let wait = {
            let unit: f64 = self.rng.lock().expect("rng lock").random();
            backoff_delay(&self.policy, attempt, retry_after, unit)
        };
        if attempt >= self.policy.max_attempts || started.elapsed() + wait > self.policy.max_total {
            return Err(give_up);
        }
        tracing::debug!(%url, attempt, wait_ms = wait.as_millis() as u64, "retrying request");
        self.throttle.stats().record_retry();
        tokio::time::sleep(wait).await;
        Ok(())
    }

    async fn attempt(
        &self,
        req: reqwest::Request,
        url: &str,
        attempt: u32,
    ) -> Result<HttpResponse, (&'static str, reqwest::Error)> {
        let _slot = self.throttle.admit().await;
        let stats = self.throttle.stats();
        let resp = self.client.execute(req).await.map_err(|e| {
            stats.record_transport_error();
            (
                if e.is_timeout() {
                    "timeout"
                } else {
                    "connection"
                },
                e,
            )
        })?;
        let status = resp.status().as_u16();
        stats.record_status(status);
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| {
            stats.record_transport_error();
            (if e.is_timeout() { "timeout" } else { "body" }, e)
        })?;
        stats.record_bytes(body.len());
        Ok(HttpResponse {
            url: url.to_string(),
            status,
            headers,
            body,
            attempts: attempt,
        })
    }
}
