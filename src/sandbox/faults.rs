//! Switchable faults for the sandbox servers, deterministic from a seed.
//!
//! The configuration is plain serde JSON (what `GET/PUT /_sandbox/faults`
//! exchange). Counters such as `burst_429` count down as they fire, so reading
//! the configuration back shows what is left.

use crate::sandbox::store::MutationKind;
use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// All faults, per API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultsConfig {
    /// Faults of the SpotDraft API.
    pub spotdraft: SpotDraftFaults,
    /// Faults of the ERP API.
    pub erp: ErpFaults,
}

/// Faults that apply to any request before it reaches its handler.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpFaults {
    /// Share of requests (0 to 1) answered with a random 500, 502 or 503.
    pub error_rate: f64,
    /// The next N requests are answered 429.
    pub burst_429: u32,
    /// `Retry-After` seconds sent with the burst 429s; no header when absent.
    pub retry_after_secs: Option<u64>,
    /// Share of requests (0 to 1) delayed by `slow_ms` before being answered.
    pub slow_rate: f64,
    /// Delay of a slow response, milliseconds.
    pub slow_ms: u64,
    /// Share of requests (0 to 1) answered 429 without `Retry-After`.
    pub throttle_rate: f64,
    /// Share of requests (0 to 1) answered 429 with `Retry-After:
    /// retry_after_secs` (1 when `retry_after_secs` is not set).
    pub throttle_retry_after_rate: f64,
    /// Share of requests (0 to 1) never answered: held for `hang_ms` (an hour
    /// when 0) before the handler, so only the client's timeout ends them.
    pub hang_rate: f64,
    /// How long a hung request is held, milliseconds (0: an hour).
    pub hang_ms: u64,
    /// Share of requests (0 to 1) whose answer is cut mid-body by closing the
    /// connection: the handler ran (a write is applied), the status and the
    /// whole body's `Content-Length` were sent, then part of the body.
    pub reset_rate: f64,
    /// Share of JSON answers (0 to 1) cut at a seeded point inside the body,
    /// status kept, with a `Content-Length` that matches the cut body (a flaky
    /// proxy); the handler ran. Other answers (documents) are never cut so.
    pub truncate_rate: f64,
}

/// SpotDraft-only faults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpotDraftFaults {
    /// Faults applied to every SpotDraft request.
    pub http: HttpFaults,
    /// The next N contract list responses are truncated JSON with status 200
    /// (cut in half).
    pub malformed_json_next: u32,
    /// The next N contract list responses are cut mid-JSON at a seeded point,
    /// status 200 with a `Content-Length` that matches the cut body, as a flaky
    /// proxy sends them.
    pub truncated_body_next: u32,
    /// The next N metadata value (`key_pointers`) or document (`download`)
    /// requests for an existing contract delete that contract first (for real:
    /// the list no longer shows it; recorded as a `delete` mutation) and answer
    /// 404: a contract deleted between a client's walk and its enrichment.
    pub vanish_before_enrich: u32,
    /// Mutations performed while a client walks the pages.
    pub page_shift: Option<PageShift>,
    /// The next N contract creations (`POST contracts/`) are committed (the
    /// contract exists, with its `external_metadata`) but answered 502: a
    /// create whose answer was lost.
    pub create_committed_then_502_next: u32,
    /// The next N `supported_documents` uploads are answered 503 without
    /// storing anything.
    pub supported_documents_503_next: u32,
}

/// On every Nth list request (before answering), one mutation, cycling
/// create, update, delete, until `mutations` have been done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageShift {
    /// Total number of mutations to perform.
    pub mutations: u32,
    /// Perform one every this many list requests (0 disables).
    pub every_n_list_requests: u32,
}

/// ERP-only faults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ErpFaults {
    /// Faults applied to every ERP request.
    pub http: HttpFaults,
    /// The next N successful writes are applied and recorded, but answered 502.
    pub applied_but_502_next: u32,
    /// An exact rate limit: a request that would make more than this many ERP
    /// requests in any sliding 1-second window (rejected ones count too) is
    /// answered 429 `rate_limited`. `None`: no limit.
    pub rate_limit_per_sec: Option<u32>,
}

/// Which API a fault decision is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    SpotDraft,
    Erp,
}

/// What to do with one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Decision {
    /// Answer this status instead of calling the handler; `Some(secs)` adds `Retry-After`.
    pub reject: Option<(StatusCode, Option<u64>)>,
    /// Wait this long first (a slow or a hung answer).
    pub delay: Option<Duration>,
    /// Spoil the handler's answer this way.
    pub cut: Option<Cut>,
}

/// How an answer is spoiled after its handler ran.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cut {
    /// Send this share (0 to 1) of the body, then close the connection.
    Reset(f64),
    /// Send this share (0 to 1) of a JSON body, with a matching `Content-Length`.
    Truncate(f64),
}

/// How many faults of each kind were injected, both APIs together
/// (`GET /_sandbox/stats` `faults`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultCounts {
    /// Answers 500, 502 or 503 (`error_rate`).
    pub server_errors: u64,
    /// Answers 429 without `Retry-After` (`throttle_rate`, bursts without it).
    pub throttled: u64,
    /// Answers 429 with `Retry-After` (`throttle_retry_after_rate`, bursts with it).
    pub throttled_retry_after: u64,
    /// Slow answers (`slow_rate`).
    pub slow: u64,
    /// Requests held unanswered (`hang_rate`).
    pub hung: u64,
    /// Connections closed mid-body (`reset_rate`).
    pub resets: u64,
    /// JSON bodies cut with a matching length (`truncate_rate`, `truncated_body_next`,
    /// `malformed_json_next`).
    pub truncated: u64,
}

impl FaultCounts {
    /// Every fault counted.
    pub fn total(&self) -> u64 {
        self.server_errors
            + self.throttled
            + self.throttled_retry_after
            + self.slow
            + self.hung
            + self.resets
            + self.truncated
    }
}

/// How long a hung request is held when `hang_ms` is 0.
const HANG_DEFAULT: Duration = Duration::from_secs(3600);

#[derive(Debug)]
struct Inner {
    config: FaultsConfig,
    rng: StdRng,
    shift_seen: u64,
    shift_done: u32,
    counts: FaultCounts,
}

/// Runtime switch for faults. Cheap to clone; all clones share one state.
#[derive(Clone, Debug)]
pub struct FaultsHandle(Arc<Mutex<Inner>>);

const SHIFT_CYCLE: [MutationKind; 3] = [
    MutationKind::Create,
    MutationKind::Update,
    MutationKind::Delete,
];

impl FaultsHandle {
    /// No faults; random choices drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        let inner = Inner {
            config: FaultsConfig::default(),
            rng: StdRng::seed_from_u64(seed),
            shift_seen: 0,
            shift_done: 0,
            counts: FaultCounts::default(),
        };
        FaultsHandle(Arc::new(Mutex::new(inner)))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current configuration (counters show what is left).
    pub fn get(&self) -> FaultsConfig {
        self.lock().config.clone()
    }

    /// Replaces the configuration. A changed `page_shift` restarts its count.
    pub fn set(&self, config: FaultsConfig) {
        let mut inner = self.lock();
        if inner.config.spotdraft.page_shift != config.spotdraft.page_shift {
            inner.shift_seen = 0;
            inner.shift_done = 0;
        }
        inner.config = config;
    }

    /// Changes the configuration in place (same rules as [`FaultsHandle::set`]).
    pub fn update(&self, change: impl FnOnce(&mut FaultsConfig)) {
        let mut config = self.get();
        change(&mut config);
        self.set(config);
    }

    /// Number of page-shift mutations performed since `page_shift` was last set.
    pub fn page_shift_done(&self) -> u32 {
        self.lock().shift_done
    }

    /// Decides the fate of one request (counts burst 429s down, and counts
    /// the faults decided).
    pub(crate) fn decide(&self, api: Api) -> Decision {
        let mut inner = self.lock();
        let Inner {
            config,
            rng,
            counts,
            ..
        } = &mut *inner;
        let http = match api {
            Api::SpotDraft => &mut config.spotdraft.http,
            Api::Erp => &mut config.erp.http,
        };
        let mut decision = Decision::default();
        if draw(rng, http.hang_rate) {
            counts.hung += 1;
            decision.delay = Some(match http.hang_ms {
                0 => HANG_DEFAULT,
                ms => Duration::from_millis(ms),
            });
        } else if draw(rng, http.slow_rate) {
            counts.slow += 1;
            decision.delay = Some(Duration::from_millis(http.slow_ms));
        }
        if http.burst_429 > 0 {
            http.burst_429 -= 1;
            decision.reject = Some((StatusCode::TOO_MANY_REQUESTS, http.retry_after_secs));
        } else if draw(rng, http.error_rate) {
            let status = [
                StatusCode::INTERNAL_SERVER_ERROR,
                StatusCode::BAD_GATEWAY,
                StatusCode::SERVICE_UNAVAILABLE,
            ][rng.random_range(0..3)];
            decision.reject = Some((status, None));
        } else if draw(rng, http.throttle_rate) {
            decision.reject = Some((StatusCode::TOO_MANY_REQUESTS, None));
        } else if draw(rng, http.throttle_retry_after_rate) {
            let secs = http.retry_after_secs.unwrap_or(1);
            decision.reject = Some((StatusCode::TOO_MANY_REQUESTS, Some(secs)));
        } else if draw(rng, http.reset_rate) {
            decision.cut = Some(Cut::Reset(rng.random::<f64>()));
        } else if draw(rng, http.truncate_rate) {
            decision.cut = Some(Cut::Truncate(rng.random::<f64>()));
        }
        match decision.reject {
            Some((StatusCode::TOO_MANY_REQUESTS, None)) => counts.throttled += 1,
            Some((StatusCode::TOO_MANY_REQUESTS, Some(_))) => counts.throttled_retry_after += 1,
            Some(_) => counts.server_errors += 1,
            None => {}
        }
        decision
    }

    /// Counts one spoiled answer (`Reset`, or a `Truncate` of a JSON body).
    pub(crate) fn count_cut(&self, cut: Cut) {
        let mut inner = self.lock();
        match cut {
            Cut::Reset(_) => inner.counts.resets += 1,
            Cut::Truncate(_) => inner.counts.truncated += 1,
        }
    }

    /// The faults injected so far, by kind.
    pub fn counts(&self) -> FaultCounts {
        self.lock().counts.clone()
    }

    /// True (and counts down) when this list response must be malformed.
    pub(crate) fn take_malformed(&self) -> bool {
        let mut inner = self.lock();
        let taken = take(&mut inner.config.spotdraft.malformed_json_next);
        inner.counts.truncated += u64::from(taken);
        taken
    }

    /// Where to cut this list response of `len` bytes (and counts down), when
    /// it must be truncated: a seeded point strictly inside the body.
    pub(crate) fn take_truncation(&self, len: usize) -> Option<usize> {
        let mut inner = self.lock();
        if !take(&mut inner.config.spotdraft.truncated_body_next) {
            return None;
        }
        inner.counts.truncated += 1;
        Some(inner.rng.random_range(1..len.max(2)))
    }

    /// True (and counts down) when this metadata or document request must find
    /// its contract deleted.
    pub(crate) fn take_vanish(&self) -> bool {
        take(&mut self.lock().config.spotdraft.vanish_before_enrich)
    }

    /// True (and counts down) when this committed creation must be answered 502.
    pub(crate) fn take_create_committed_then_502(&self) -> bool {
        take(&mut self.lock().config.spotdraft.create_committed_then_502_next)
    }

    /// True (and counts down) when this document upload must be answered 503.
    pub(crate) fn take_supported_documents_503(&self) -> bool {
        take(&mut self.lock().config.spotdraft.supported_documents_503_next)
    }

    /// True (and counts down) when this successful ERP write must be answered 502.
    pub(crate) fn take_applied_but_502(&self) -> bool {
        take(&mut self.lock().config.erp.applied_but_502_next)
    }

    /// The ERP's exact rate limit, when one is set.
    pub(crate) fn erp_rate_limit(&self) -> Option<u32> {
        self.lock().config.erp.rate_limit_per_sec
    }

    /// Counts one list request; returns the mutation to perform before answering it.
    pub(crate) fn page_shift_tick(&self) -> Option<MutationKind> {
        let mut inner = self.lock();
        let shift = inner.config.spotdraft.page_shift?;
        if shift.every_n_list_requests == 0 || inner.shift_done >= shift.mutations {
            return None;
        }
        inner.shift_seen += 1;
        if !inner
            .shift_seen
            .is_multiple_of(u64::from(shift.every_n_list_requests))
        {
            return None;
        }
        let kind = SHIFT_CYCLE[inner.shift_done as usize % SHIFT_CYCLE.len()];
        inner.shift_done += 1;
        Some(kind)
    }

    /// A seeded index in `0..n` (`n` > 0).
    pub(crate) fn pick(&self, n: usize) -> usize {
        self.lock().rng.random_range(0..n.max(1))
    }
}

/// Applies `decision.cut` to a handler's answer, counting it; other answers
/// pass unchanged (a `Truncate` of an answer that is not JSON too).
pub(crate) async fn spoil(faults: &FaultsHandle, cut: Option<Cut>, resp: Response) -> Response {
    let Some(cut) = cut else {
        return resp;
    };
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if matches!(cut, Cut::Truncate(_)) && !json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "sandbox: unreadable answer",
        )
            .into_response();
    };
    faults.count_cut(cut);
    let (Cut::Reset(share) | Cut::Truncate(share)) = cut;
    // Strictly inside the body: at least one byte sent (when there are two)
    // and at least one missing.
    let at = ((bytes.len() as f64 * share) as usize)
        .max(1)
        .min(bytes.len().saturating_sub(1));
    let head = bytes.slice(..at);
    let body = match cut {
        Cut::Truncate(_) => {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(at));
            Body::from(head)
        }
        Cut::Reset(_) => {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            let reset = std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "sandbox: connection reset mid-body (injected)",
            );
            // The head goes out (and is flushed, while the stream waits)
            // before the connection is closed.
            let sent = futures::stream::iter([Ok(head)]);
            let closed = futures::stream::once(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Err(reset)
            });
            Body::from_stream(sent.chain(closed))
        }
    };
    Response::from_parts(parts, body)
}

/// True with probability `rate` (never when `rate` is 0).
fn draw(rng: &mut StdRng, rate: f64) -> bool {
    rate > 0.0 && rng.random_bool(rate.clamp(0.0, 1.0))
}

fn take(counter: &mut u32) -> bool {
    if *counter > 0 {
        *counter -= 1;
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_counts_down_and_carries_retry_after() {
        let f = FaultsHandle::new(1);
        f.update(|c| {
            c.spotdraft.http.burst_429 = 2;
            c.spotdraft.http.retry_after_secs = Some(3);
        });
        let expected = Some((StatusCode::TOO_MANY_REQUESTS, Some(3)));
        assert_eq!(f.decide(Api::SpotDraft).reject, expected);
        assert_eq!(f.decide(Api::Erp).reject, None, "ERP has its own faults");
        assert_eq!(f.decide(Api::SpotDraft).reject, expected);
        assert_eq!(f.decide(Api::SpotDraft).reject, None);
        assert_eq!(f.get().spotdraft.http.burst_429, 0);
    }

    #[test]
    fn error_rate_is_deterministic_from_the_seed() {
        let run = |seed| {
            let f = FaultsHandle::new(seed);
            f.update(|c| c.erp.http.error_rate = 0.5);
            (0..64)
                .map(|_| f.decide(Api::Erp).reject.map(|r| r.0.as_u16()))
                .collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        let failures = a.iter().flatten().count();
        assert!(
            (10..=54).contains(&failures),
            "{failures} of 64 at rate 0.5"
        );
        assert!(a.iter().flatten().all(|s| [500, 502, 503].contains(s)));
    }

    #[test]
    fn page_shift_cycles_every_nth_request_until_done() {
        let f = FaultsHandle::new(0);
        f.update(|c| {
            c.spotdraft.page_shift = Some(PageShift {
                mutations: 4,
                every_n_list_requests: 2,
            })
        });
        let ticks: Vec<_> = (0..12).map(|_| f.page_shift_tick()).collect();
        use MutationKind::*;
        let expected = [
            None,
            Some(Create),
            None,
            Some(Update),
            None,
            Some(Delete),
            None,
            Some(Create),
        ];
        assert_eq!(&ticks[..8], &expected);
        assert!(ticks[8..].iter().all(Option::is_none));
        assert_eq!(f.page_shift_done(), 4);
    }

    #[test]
    fn truncation_cuts_strictly_inside_and_counts_down() {
        let f = FaultsHandle::new(3);
        f.update(|c| c.spotdraft.truncated_body_next = 20);
        for _ in 0..20 {
            let at = f.take_truncation(10).unwrap();
            assert!((1..10).contains(&at), "{at}");
        }
        assert_eq!(f.take_truncation(10), None);
        f.update(|c| c.spotdraft.vanish_before_enrich = 1);
        assert!(f.take_vanish());
        assert!(!f.take_vanish());
    }

    #[test]
    fn config_json_round_trips_and_rejects_unknown_fields() {
        let json = r#"{"spotdraft":{"http":{"burst_429":1},"truncated_body_next":2,"vanish_before_enrich":1,"page_shift":{"mutations":3,"every_n_list_requests":1}}}"#;
        let c: FaultsConfig = serde_json::from_str(json).unwrap();
        assert_eq!(c.spotdraft.http.burst_429, 1);
        assert_eq!(
            (
                c.spotdraft.truncated_body_next,
                c.spotdraft.vanish_before_enrich
            ),
            (2, 1)
        );
        assert_eq!(
            serde_json::from_value::<FaultsConfig>(serde_json::to_value(&c).unwrap()).unwrap(),
            c
        );
        assert!(serde_json::from_str::<FaultsConfig>(r#"{"spotdraft":{"burst":1}}"#).is_err());
    }
}
