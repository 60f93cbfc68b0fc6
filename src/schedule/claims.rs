//! Scheduling stage, run claims: inside one daemon, at most one run per job
//! at a time, whoever starts it (the schedule or the webhook consumer). The
//! job's lease covers two daemons or replicas.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// The jobs with a run going in this process.
#[derive(Debug, Clone, Default)]
pub struct RunClaims(Arc<Mutex<BTreeSet<String>>>);

/// A job's claim, released when dropped.
#[derive(Debug)]
pub struct RunClaim {
    claims: RunClaims,
    job: String,
}

impl RunClaims {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims `job` for one run; `None` while another run of it is going.
    pub fn try_claim(&self, job: &str) -> Option<RunClaim> {
        self.lock().insert(job.to_string()).then(|| RunClaim {
            claims: self.clone(),
            job: job.to_string(),
        })
    }

    /// Runs going (claims held).
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// True while a run of `job` is going.
    pub fn is_claimed(&self, job: &str) -> bool {
        self.lock().contains(job)
    }
}

impl Drop for RunClaim {
    fn drop(&mut self) {
        self.claims.lock().remove(&self.job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_per_job_until_dropped() {
        let claims = RunClaims::default();
        let a = claims.try_claim("a").expect("first claim");
        assert!(claims.try_claim("a").is_none());
        let _b = claims.try_claim("b").expect("another job");
        drop(a);
        assert!(!claims.is_claimed("a"));
        assert!(claims.try_claim("a").is_some());
    }
}
