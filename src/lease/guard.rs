//! [`LeaseGuard`]: a lease renewed by a background task.

use super::{Clock, Holder, Lease, LeaseError};
use crate::error_chain::error_chain;
use chrono::{DateTime, Utc};
use object_store::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// A held lease that a background task renews every TTL/3. Ask [`LeaseGuard::check`]
/// before steps that must not run without the lease; [`LeaseGuard::release`] at the
/// end. Dropping the guard stops the renewals: the lease then expires.
#[derive(Debug)]
pub struct LeaseGuard {
    lease: Arc<tokio::sync::Mutex<Lease>>,
    status: Arc<Mutex<Status>>,
    lost_flag: Arc<AtomicBool>,
    task: JoinHandle<()>,
    job: String,
    holder: Holder,
    previous: Option<Holder>,
    clock: Clock,
}

/// What the renewal task found out.
#[derive(Debug)]
struct Status {
    /// The lease object written last.
    path: Path,
    /// Expiry written by the last successful renewal.
    expires_at: DateTime<Utc>,
    /// Set once the lease is lost (sticky), with the run that took it, if known.
    lost: Option<Option<Holder>>,
}

impl LeaseGuard {
    pub(super) fn start(lease: Lease) -> Self {
        let status = Status {
            path: lease.path().clone(),
            expires_at: lease.expires_at(),
            lost: None,
        };
        let job = lease.ctx.job.clone();
        let holder = lease.ctx.holder.clone();
        let previous = lease.previous.clone();
        let clock = lease.ctx.clock.clone();
        // tokio's interval refuses a zero period.
        let period = (lease.ctx.ttl / 3).max(Duration::from_millis(1));
        let lease = Arc::new(tokio::sync::Mutex::new(lease));
        let status = Arc::new(Mutex::new(status));
        let lost_flag = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(renew_every(
            period,
            Arc::clone(&lease),
            Arc::clone(&status),
            Arc::clone(&lost_flag),
        ));
        LeaseGuard {
            lease,
            status,
            lost_flag,
            task,
            job,
            holder,
            previous,
            clock,
        }
    }

    /// `Err(LeaseError::Lost{..})` once a renewal found the lease taken by another run,
    /// or when no renewal succeeded for a whole TTL (renewals that fail for other
    /// reasons are logged and retried at the next tick). Once lost, always lost.
    pub fn check(&self) -> Result<(), LeaseError> {
        let mut status = lock(&self.status);
        if status.lost.is_none() && self.clock.now() >= status.expires_at {
            status.lost = Some(None);
        }
        match &status.lost {
            None => Ok(()),
            Some(by) => Err(LeaseError::Lost {
                job: self.job.clone(),
                path: status.path.clone(),
                by: by.clone(),
            }),
        }
    }

    /// A flag the renewal task sets once it finds the lease lost (taken, or not
    /// renewed for a whole TTL): long loops (the page walk) stop on it between
    /// steps. [`LeaseGuard::check`] says why.
    pub fn lost_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.lost_flag)
    }

    /// Stops the renewals, then releases the lease.
    pub async fn release(mut self) -> Result<(), LeaseError> {
        self.task.abort();
        // Wait for the task to end so no renewal is in flight any more.
        let _ = (&mut self.task).await;
        let mut lease = self.lease.lock().await;
        lease.write(true).await
    }

    /// This run.
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// The run whose expired (or broken) lease this one replaced.
    pub fn previous_holder(&self) -> Option<&Holder> {
        self.previous.as_ref()
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(status: &Mutex<Status>) -> MutexGuard<'_, Status> {
    status
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn renew_every(
    period: Duration,
    lease: Arc<tokio::sync::Mutex<Lease>>,
    status: Arc<Mutex<Status>>,
    lost_flag: Arc<AtomicBool>,
) {
    let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let mut lease = lease.lock().await;
        {
            let mut status = lock(&status);
            if status.lost.is_none() && lease.ctx.clock.now() >= status.expires_at {
                tracing::error!(
                    job = %lease.ctx.job, path = %status.path,
                    "the lease expired: no renewal succeeded for a whole TTL"
                );
                status.lost = Some(None);
            }
            if status.lost.is_some() {
                lost_flag.store(true, Ordering::SeqCst);
                return;
            }
        }
        let renewed = lease.renew().await;
        let mut status = lock(&status);
        match renewed {
            Ok(()) => {
                status.expires_at = lease.expires_at();
                status.path = lease.path().clone();
            }
            Err(LeaseError::Lost { by, .. }) => {
                match &by {
                    Some(by) => tracing::error!(
                        job = %lease.ctx.job, path = %status.path, "the lease was taken by {by}"
                    ),
                    None => tracing::error!(
                        job = %lease.ctx.job, path = %status.path,
                        "the lease expired or was removed before it could be renewed"
                    ),
                }
                status.lost = Some(by);
                lost_flag.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => tracing::warn!(
                job = %lease.ctx.job, path = %status.path, error = %error_chain(&e),
                "lease renewal failed; retrying at the next tick"
            ),
        }
    }
}
