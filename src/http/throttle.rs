//! One rate limiter and one in-flight cap per workspace, and the request counters.

use serde::Serialize;
use std::collections::VecDeque;
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

/// How much longer than one second the client's window is: a server that
/// counts requests in any sliding 1-second window sees them up to this much
/// closer together than they were sent (scheduling delays on a busy machine,
/// connection set-up) and still never more than the rate.
pub const WINDOW_GUARD: Duration = Duration::from_millis(30);

/// The request rate of one workspace. Every [`Throttle`] talking to the
/// workspace shares one (see [`super::workspaces`]); the rate can only be
/// lowered.
///
/// Two rules hold for every admission:
/// - requests take slots `1/rps` apart, each slot following the previous
///   slot (not the previous request), so a late wake-up (a busy machine,
///   the timer's 1 ms tick) is made up by the next request instead of lost;
/// - any `rps` consecutive admissions, at the times actually taken, span at
///   least one second plus [`WINDOW_GUARD`], so a server counting any
///   sliding 1-second window never sees more than `rps`.
///
/// The achieved rate is `rps / (1 s + guard)`: 9.71/s at 10/s, 194/s at
/// 200/s. (A GCRA limiter such as governor's bounds a token bucket, not a
/// sliding-window count: with a burst of one it loses every late wake-up,
/// with more it lets `rps + 1` requests into a server-side second.)
#[derive(Debug)]
pub struct SharedRate {
    pacing: Mutex<Pacing>,
    guard: Duration,
}

/// The rate's clock: the rate in force, the last `rps` admission times, and
/// the next slot.
#[derive(Debug)]
struct Pacing {
    rps: u32,
    spacing: Duration,
    admitted: VecDeque<Instant>,
    next: Option<Instant>,
}

impl SharedRate {
    /// A rate of `rps` requests per second (0 reads as 1).
    pub fn new(rps: u32) -> Self {
        Self::with_guard(rps, WINDOW_GUARD)
    }

    /// As [`SharedRate::new`], with the window `guard` given.
    pub fn with_guard(rps: u32, guard: Duration) -> Self {
        let rps = rps.max(1);
        SharedRate {
            pacing: Mutex::new(Pacing {
                rps,
                spacing: Duration::from_secs(1) / rps,
                admitted: VecDeque::with_capacity(rps as usize + 1),
                next: None,
            }),
            guard,
        }
    }

    /// The rate in force.
    pub fn requests_per_second(&self) -> u32 {
        self.lock().rps
    }

    /// Lowers the rate to `rps` when it is lower than the one in force (the
    /// admissions so far still count against the new window); returns the
    /// rate in force afterwards.
    pub fn lower_to(&self, rps: u32) -> u32 {
        let mut p = self.lock();
        let rps = rps.max(1);
        if rps < p.rps {
            p.rps = rps;
            p.spacing = Duration::from_secs(1) / rps;
        }
        p.rps
    }

    /// Admits a request at `now` (`None`), or says when to try again.
    fn try_admit(&self, now: Instant) -> Option<Instant> {
        let mut pacing = self.lock();
        let Pacing {
            rps,
            spacing,
            admitted,
            next,
        } = &mut *pacing;
        let rps = *rps as usize;
        let mut ready = next.unwrap_or(now);
        if admitted.len() >= rps {
            let oldest = admitted[admitted.len() - rps];
            ready = ready.max(oldest + Duration::from_secs(1) + self.guard);
        }
        if ready > now {
            return Some(ready);
        }
        // The next slot follows this one's, not the late wake-up's, unless
        // the rate sat idle for more than a slot.
        let late = now.duration_since(ready);
        *next = Some(if late < *spacing { ready } else { now } + *spacing);
        admitted.push_back(now);
        while admitted.len() > rps {
            admitted.pop_front();
        }
        None
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pacing> {
        self.pacing.lock().unwrap_or_else(|p| p.into_inner())
    }
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
    /// A throttle with its own rate of `rps` requests per second (0 reads
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

    /// Waits for an in-flight slot, then for the rate; counts the request
    /// and the time spent waiting on the rate.
    pub async fn admit(&self) -> Admission<'_> {
        let permit = self
            .in_flight
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let started = Instant::now();
        while let Some(ready) = self.rate.try_admit(Instant::now()) {
            tokio::time::sleep_until(ready.into()).await;
        }
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
        // No ceiling: on a busy machine a sleep may end late (the simulated
        // tests below check the spacing itself).
        assert!(took >= Duration::from_millis(190), "{took:?}");
        assert_eq!(t.stats().snapshot().requests, 11);
        assert!(t.stats().snapshot().limiter_wait_ms >= 150);
    }

    /// Admits `n` requests on a simulated clock, each wait ending `late(k)`
    /// after the instant the throttle named.
    fn simulate(t: &Throttle, n: usize, late: impl Fn(usize) -> Duration) -> Vec<Instant> {
        let mut now = Instant::now();
        let mut admitted = Vec::with_capacity(n);
        while admitted.len() < n {
            match t.rate.try_admit(now) {
                None => admitted.push(now),
                Some(ready) => now = ready + late(admitted.len()),
            }
        }
        admitted
    }

    /// The most admissions found in any half-open window `[t, t + 1 s)`.
    fn busiest_second(admitted: &[Instant]) -> usize {
        (0..admitted.len())
            .map(|i| {
                admitted[i..]
                    .iter()
                    .take_while(|t| t.duration_since(admitted[i]) < Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    fn rate(admitted: &[Instant]) -> f64 {
        let span = admitted[admitted.len() - 1].duration_since(admitted[0]);
        (admitted.len() - 1) as f64 / span.as_secs_f64()
    }

    #[test]
    fn no_second_holds_more_than_the_rate_even_when_the_server_sees_them_closer() {
        let t = Throttle::new(10, 4);
        let admitted = simulate(&t, 300, |k| Duration::from_millis((k % 7) as u64 * 9));
        assert!(busiest_second(&admitted) <= 10);
        // Requests sent on time, some seen by the server 25 ms late:
        // the guard still keeps every server-side second at 10 or fewer.
        let admitted = simulate(&Throttle::new(10, 4), 300, |_| Duration::ZERO);
        let seen: Vec<Instant> = admitted
            .iter()
            .enumerate()
            .map(|(k, t)| {
                if k % 37 == 3 {
                    *t + Duration::from_millis(25)
                } else {
                    *t
                }
            })
            .collect();
        let mut sorted = seen.clone();
        sorted.sort();
        assert!(busiest_second(&sorted) <= 10, "{}", busiest_second(&sorted));
    }

    #[test]
    fn late_wake_ups_are_made_up_not_lost() {
        // Every wait ends 2 ms late (a busy machine). Pacing each request
        // from the last (a GCRA limiter with a burst of one) would give
        // 1 / (103 ms + 2 ms) = 9.52/s; the window makes the lateness up.
        let t = Throttle::new(10, 4);
        let admitted = simulate(&t, 200, |_| Duration::from_millis(2));
        let r = rate(&admitted);
        assert!(r >= 9.65, "{r:.3} requests/s");
        assert!(busiest_second(&admitted) <= 10);
        // At 200/s a 1 ms late wake-up is a fifth of a slot: still made up.
        let t = Throttle::new(200, 8);
        let admitted = simulate(&t, 1000, |_| Duration::from_millis(1));
        let r = rate(&admitted);
        assert!(r >= 190.0, "{r:.1} requests/s");
        assert!(busiest_second(&admitted) <= 200);
        // On time, the rate is rps / (1 s + guard).
        let t = Throttle::new(10, 4);
        let r = rate(&simulate(&t, 201, |_| Duration::ZERO));
        assert!((r - 10.0 / 1.03).abs() < 0.01, "{r:.3} requests/s");
    }

    #[tokio::test]
    async fn concurrent_requests_keep_every_second_within_the_rate() {
        let t = Arc::new(Throttle::new(50, 8));
        let admitted = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (t, admitted) = (t.clone(), admitted.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..10 {
                    let _a = t.admit().await;
                    admitted.lock().unwrap().push(Instant::now());
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let mut admitted = admitted.lock().unwrap().clone();
        admitted.sort();
        assert_eq!(admitted.len(), 80);
        assert!(
            busiest_second(&admitted) <= 50,
            "{}",
            busiest_second(&admitted)
        );
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
