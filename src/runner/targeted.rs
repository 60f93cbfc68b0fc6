//! Targeted runs: a few contracts (named by webhooks) reconciled against the
//! job's latest extract, with a small report and plan of their own.
//!
//! A targeted run is not a nightly run: it never moves `latest.json`, the
//! watermark or the drift lifecycle, and reports only the drift kinds its
//! scope can decide.

use super::{RunOptions, RunOutcome};
use crate::job::Job;
use std::collections::BTreeMap;

/// What a webhook said of a contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum TargetHint {
    /// Something changed (a milestone): look it up again.
    #[default]
    Changed,
    /// Its metadata values changed (`CONTRACT_KEY_POINTER_UPDATION`): fetch
    /// them again even when `last_updated_on` did not move.
    MetadataStale,
    /// SpotDraft said it was deleted (`CONTRACT_DELETED`).
    Deleted,
}

/// The contracts a targeted run looks at, by SpotDraft's integer contract id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetSet {
    /// Contract id -> the strongest hint received for it.
    pub contracts: BTreeMap<i64, TargetHint>,
}

/// Runs `job` over `targets` only, under the job's lease.
pub async fn run_targeted(
    job: &Job,
    targets: &TargetSet,
    opts: RunOptions,
) -> anyhow::Result<RunOutcome> {
    let _ = (job, targets, opts);
    anyhow::bail!("targeted runs are not available yet")
}
