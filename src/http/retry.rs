//! Retry policy: which answers are retried, and how long to wait before the next attempt.

use std::time::Duration;

/// How a request is retried. Randomness (the jitter) is not part of the policy:
/// [`backoff_delay`] takes the random unit as an argument, and
/// [`crate::http::RetryingClient::with_seed`] fixes it for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included (1 = no retry).
    pub max_attempts: u32,
    /// Backoff ceiling before the first retry; doubles on each retry.
    pub initial_backoff: Duration,
    /// Cap on one backoff.
    pub max_backoff: Duration,
    /// Cap on the time spent on one request, retries and waits included: a retry
    /// whose wait would end after it is not made.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(20),
            max_total: Duration::from_secs(180),
        }
    }
}

/// What to do with an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// 2xx: done.
    Success,
    /// 408, 429, 5xx: transient, retry.
    Retry,
    /// Everything else (1xx, 3xx, other 4xx): an error that a retry cannot fix.
    Fail,
}

/// Classifies a status code. The one place that decides what is retried.
pub fn classify_status(status: u16) -> StatusClass {
    match status {
        200..=299 => StatusClass::Success,
        408 | 429 | 500..=599 => StatusClass::Retry,
        _ => StatusClass::Fail,
    }
}

/// Reads a `Retry-After` header given in seconds (`"3"`, `"1.5"`). HTTP dates
/// and garbage read as `None` (the exponential backoff applies then).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    if secs.is_finite() && secs >= 0.0 {
        Some(Duration::from_secs_f64(secs.min(86_400.0)))
    } else {
        None
    }
}

/// The wait before retry number `retry` (1 = the first retry).
///
/// Without `Retry-After` this is FULL jitter: `unit * min(max_backoff,
/// initial_backoff * 2^(retry-1))`, `unit` drawn uniformly from `[0, 1)`.
/// With `Retry-After` the server's figure is used as is (it knows when its
/// window reopens), not capped by `max_backoff`; the caller still checks
/// `max_total`.
pub fn backoff_delay(
    policy: &RetryPolicy,
    retry: u32,
    retry_after: Option<Duration>,
    unit: f64,
) -> Duration {
    if let Some(wait) = retry_after {
        return wait;
    }
    let exp = retry.saturating_sub(1).min(31);
    let ceiling = policy
        .initial_backoff
        .saturating_mul(1u32 << exp)
        .min(policy.max_backoff);
    ceiling.mul_f64(unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            max_total: Duration::from_secs(60),
        }
    }

    #[test]
    fn statuses_are_classified() {
        for s in [200, 201, 204, 299] {
            assert_eq!(classify_status(s), StatusClass::Success, "{s}");
        }
        for s in [408, 429, 500, 502, 503, 504, 599] {
            assert_eq!(classify_status(s), StatusClass::Retry, "{s}");
        }
        for s in [100, 301, 302, 400, 401, 403, 404, 409, 422] {
            assert_eq!(classify_status(s), StatusClass::Fail, "{s}");
        }
    }

    #[test]
    fn backoff_doubles_then_caps() {
        let p = policy();
        // unit just below 1 shows the ceiling of each retry.
        let ceil = |r| backoff_delay(&p, r, None, 1.0);
        assert_eq!(ceil(1), Duration::from_millis(100));
        assert_eq!(ceil(2), Duration::from_millis(200));
        assert_eq!(ceil(5), Duration::from_millis(1600));
        assert_eq!(ceil(6), Duration::from_secs(2));
        assert_eq!(ceil(40), Duration::from_secs(2));
        assert_eq!(backoff_delay(&p, 3, None, 0.0), Duration::ZERO);
        assert_eq!(backoff_delay(&p, 3, None, 0.5), Duration::from_millis(200));
    }

    #[test]
    fn full_jitter_stays_in_bounds_and_is_reproducible_with_a_seed() {
        let p = policy();
        let draw = |seed| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            (1..=8)
                .map(|r| backoff_delay(&p, r, None, rng.random::<f64>()))
                .collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        assert_ne!(a, draw(8));
        for (i, d) in a.iter().enumerate() {
            let ceiling = backoff_delay(&p, i as u32 + 1, None, 1.0);
            assert!(*d < ceiling, "retry {}: {d:?} >= {ceiling:?}", i + 1);
        }
        // Full jitter: over many draws the waits spread over the whole range.
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let waits: Vec<_> = (0..1000)
            .map(|_| backoff_delay(&p, 6, None, rng.random::<f64>()))
            .collect();
        assert!(waits.iter().any(|d| *d < Duration::from_millis(200)));
        assert!(waits.iter().any(|d| *d > Duration::from_millis(1800)));
    }

    #[test]
    fn retry_after_wins_over_backoff() {
        let p = policy();
        assert_eq!(
            backoff_delay(&p, 1, Some(Duration::from_secs(3)), 0.9),
            Duration::from_secs(3)
        );
        assert_eq!(parse_retry_after(" 2 "), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
