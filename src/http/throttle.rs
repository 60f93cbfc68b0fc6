//! One rate limiter and one in-flight cap per workspace, and the request counters.

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Serialize;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Counters shared by every request through one [`Throttle`] (atomics, so
/// concurrent requests update them without a lock).
#[derive(Debug, Default)]
pub struct HttpStats {
    requests: AtomicU64,
    responses_2xx: AtomicU64,
    responses_3xx: AtomicU64,
    responses_4xx: AtomicU64,
    responses_5xx: AtomicU64,
    status_429: AtomicU64,
    transport_errors: AtomicU64,
    retries: AtomicU64,
    malformed_bodies: AtomicU64,
    limiter_wait_us: AtomicU64,
    bytes_received: AtomicU64,
}

/// A copy of [`HttpStats`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct HttpStatsSnapshot {
    /// Requests sent (every attempt counts).
    pub requests: u64,
    /// 2xx answers.
    pub responses_2xx: u64,
    /// 3xx answers.
    pub responses_3xx: u64,
    /// 4xx answers (429 included).
    pub responses_4xx: u64,
    /// 5xx answers.
    pub responses_5xx: u64,
    /// 429 answers.
    pub status_429: u64,
    /// Timeouts, connection and body errors.
    pub transport_errors: u64,
    /// Attempts after the first.
    pub retries: u64,
    /// 2xx answers whose body did not parse (cut short or malformed), each retried.
    pub malformed_bodies: u64,
    /// Time spent waiting on the rate limiter, summed over requests, in ms.
    pub limiter_wait_ms: u64,
    /// Response body bytes read.
    pub bytes_received: u64,
}

impl HttpStats {
    pub(crate) fn record_status(&self, status: u16) {
        let slot = match status {
            200..=299 => &self.responses_2xx,
            300..=399 => &self.responses_3xx,
            400..=499 => &self.responses_4xx,
            _ => &self.responses_5xx,
        };
        slot.fetch_add(1, Ordering::Relaxed);
        if status == 429 {
            self.status_429.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn record_transport_error(&self) {
        self.transport_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_malformed_body(&self) {
        self.malformed_bodies.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_bytes(&self, n: usize) {
        self.bytes_received.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Reads all counters.
    pub fn snapshot(&self) -> HttpStatsSnapshot {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        HttpStatsSnapshot {
            requests: r(&self.requests),
            responses_2xx: r(&self.responses_2xx),
            responses_3xx: r(&self.responses_3xx),
            responses_4xx: r(&self.responses_4xx),
            responses_5xx: r(&self.responses_5xx),
            status_429: r(&self.status_429),
            transport_errors: r(&self.transport_errors),
            retries: r(&self.retries),
            malformed_bodies: r(&self.malformed_bodies),
            limiter_wait_ms: r(&self.limiter_wait_us) / 1000,
            bytes_received: r(&self.bytes_received),
        }
    }
}

/// The request budget of one workspace: a GCRA limiter at `rps` with a burst
/// of 1 (requests evenly spaced `1/rps` apart, so a server counting per second
/// never sees more than `rps`), and a semaphore capping requests in flight.
/// Share it (`Arc<Throttle>`) between every client talking to the workspace.
#[derive(Debug)]
pub struct Throttle {
    limiter: DefaultDirectRateLimiter,
    in_flight: Semaphore,
    rps: u32,
    stats: HttpStats,
}

/// Permission to send one request; holds an in-flight slot until dropped.
pub struct Admission<'a> {
    _permit: SemaphorePermit<'a>,
}

impl Throttle {
    /// A throttle at `rps` requests per second (0 reads as 1) with at most
    /// `max_in_flight` requests in flight (0 reads as 1).
    pub fn new(rps: u32, max_in_flight: usize) -> Self {
        let rps = rps.max(1);
        let period = Duration::from_secs(1) / rps;
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::MIN);
        Throttle {
            limiter: RateLimiter::direct(quota),
            in_flight: Semaphore::new(max_in_flight.max(1)),
            rps,
            stats: HttpStats::default(),
        }
    }

    /// The configured rate.
    pub fn requests_per_second(&self) -> u32 {
        self.rps
    }

    /// Waits for an in-flight slot, then for the limiter; counts the request
    /// and the time spent waiting on the limiter.
    pub async fn admit(&self) -> Admission<'_> {
        let permit = self
            .in_flight
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let started = Instant::now();
        self.limiter.until_ready().await;
        let waited = started.elapsed().as_micros() as u64;
        self.stats
            .limiter_wait_us
            .fetch_add(waited, Ordering::Relaxed);
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        Admission { _permit: permit }
    }

    /// The counters of every request admitted so far.
    pub fn stats(&self) -> &HttpStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_are_evenly_spaced_at_the_rate() {
        let t = Throttle::new(50, 4);
        let start = Instant::now();
        for _ in 0..11 {
            let _a = t.admit().await;
        }
        // 11 admissions at 50/s with burst 1: the first is free, then 10 x 20 ms.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(190), "{took:?}");
        assert!(took < Duration::from_millis(600), "{took:?}");
        assert_eq!(t.stats().snapshot().requests, 11);
        assert!(t.stats().snapshot().limiter_wait_ms >= 150);
    }

    #[tokio::test]
    async fn in_flight_is_capped() {
        let t = Throttle::new(1000, 1);
        let a = t.admit().await;
        let second = tokio::time::timeout(Duration::from_millis(50), t.admit()).await;
        assert!(
            second.is_err(),
            "a second request was admitted while one was in flight"
        );
        drop(a);
        let _b = tokio::time::timeout(Duration::from_millis(500), t.admit())
            .await
            .expect("admitted after release");
    }
}
