//! One rate limiter per workspace, one in-flight cap per client, and the
//! request counters.

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Serialize;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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

/// The request rate of one workspace: a GCRA limiter at `rps` with a burst
/// of 1 (requests evenly spaced `1/rps` apart, so a server counting per second
/// never sees more than `rps`). Every [`Throttle`] talking to the workspace
/// shares one (see [`super::workspaces`]); the rate can only be lowered.
#[derive(Debug)]
pub struct SharedRate {
    current: Mutex<(u32, Arc<DefaultDirectRateLimiter>)>,
}

impl SharedRate {
    /// A limiter at `rps` requests per second (0 reads as 1).
    pub fn new(rps: u32) -> Self {
        let rps = rps.max(1);
        SharedRate {
            current: Mutex::new((rps, Arc::new(gcra(rps)))),
        }
    }

    /// The rate in force.
    pub fn requests_per_second(&self) -> u32 {
        self.lock().0
    }

    /// Lowers the rate to `rps` when it is lower than the one in force (a new
    /// limiter from now on); returns the rate in force afterwards.
    pub fn lower_to(&self, rps: u32) -> u32 {
        let mut current = self.lock();
        let rps = rps.max(1);
        if rps < current.0 {
            *current = (rps, Arc::new(gcra(rps)));
        }
        current.0
    }

    fn limiter(&self) -> Arc<DefaultDirectRateLimiter> {
        self.lock().1.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u32, Arc<DefaultDirectRateLimiter>)> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn gcra(rps: u32) -> DefaultDirectRateLimiter {
    let period = Duration::from_secs(1) / rps;
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::MIN);
    RateLimiter::direct(quota)
}

/// The request budget of one client: the workspace's [`SharedRate`] (its own,
/// or one shared with the other clients of the workspace), a semaphore capping
/// this client's requests in flight, and this client's counters. Share it
/// (`Arc<Throttle>`) between the clones of one client.
#[derive(Debug)]
pub struct Throttle {
    rate: Arc<SharedRate>,
    in_flight: Semaphore,
    stats: HttpStats,
}

/// Permission to send one request; holds an in-flight slot until dropped.
pub struct Admission<'a> {
    _permit: SemaphorePermit<'a>,
}

impl Throttle {
    /// A throttle with its own limiter at `rps` requests per second (0 reads
    /// as 1) and at most `max_in_flight` requests in flight (0 reads as 1).
    pub fn new(rps: u32, max_in_flight: usize) -> Self {
        Throttle::sharing(Arc::new(SharedRate::new(rps)), max_in_flight)
    }

    /// A throttle drawing on `rate`, shared with other throttles, with its own
    /// in-flight cap (0 reads as 1) and counters.
    pub fn sharing(rate: Arc<SharedRate>, max_in_flight: usize) -> Self {
        Throttle {
            rate,
            in_flight: Semaphore::new(max_in_flight.max(1)),
            stats: HttpStats::default(),
        }
    }

    /// The rate in force.
    pub fn requests_per_second(&self) -> u32 {
        self.rate.requests_per_second()
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
        self.rate.limiter().until_ready().await;
        let waited = started.elapsed().as_micros() as u64;
        self.stats
            .limiter_wait_us
            .fetch_add(waited, Ordering::Relaxed);
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        Admission { _permit: permit }
    }

    /// The counters of every request admitted so far through this throttle.
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

    #[tokio::test]
    async fn throttles_sharing_a_rate_space_their_requests_together() {
        let rate = Arc::new(SharedRate::new(50));
        let a = Arc::new(Throttle::sharing(rate.clone(), 4));
        let b = Arc::new(Throttle::sharing(rate, 4));
        let admit = |t: Arc<Throttle>| async move {
            for _ in 0..5 {
                let _x = t.admit().await;
            }
        };
        let start = Instant::now();
        tokio::join!(admit(a.clone()), admit(b.clone()));
        // 10 admissions at 50/s in all: the first free, then 9 x 20 ms.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(170), "{took:?}");
        assert_eq!(a.stats().snapshot().requests, 5);
        assert_eq!(b.stats().snapshot().requests, 5);
    }

    #[tokio::test]
    async fn a_shared_rate_is_only_lowered() {
        let rate = SharedRate::new(10);
        assert_eq!(rate.lower_to(20), 10);
        assert_eq!(rate.lower_to(4), 4);
        assert_eq!(rate.requests_per_second(), 4);
        let t = Throttle::sharing(Arc::new(rate), 1);
        let start = Instant::now();
        for _ in 0..3 {
            let _a = t.admit().await;
        }
        // 3 admissions at 4/s: the first free, then 2 x 250 ms.
        assert!(
            start.elapsed() >= Duration::from_millis(480),
            "{:?}",
            start.elapsed()
        );
    }
}
