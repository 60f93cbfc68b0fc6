//! Targeted runs: a few contracts (named by webhooks) reconciled against the
//! job's latest extract, with a small report and plan of their own.
//!
//! A targeted run is not a nightly run: it never moves `latest.json`, the
//! watermark or the drift lifecycle, and reports only the drift kinds its
//! scope can decide (see `partial.rs`).
//!
//! Under the job's lease: the contracts are looked up by id
//! (`filter__contract_id[$in]`, up to 100 ids a request, no status filter);
//! those found are upserted into the snapshot (metadata values fetched again
//! for [`TargetHint::MetadataStale`] ones, and as a nightly run would for new
//! or changed ones); a [`TargetHint::Deleted`] contract, or one the lookup
//! does not find, is marked deleted. They are then reconciled, with the ERP
//! records linked to them, against the job's latest extract: a small report
//! and plan (`targeted-…` run id), applied when the job's `[apply] mode` (or
//! [`RunOptions::apply_mode`]) says so.

use super::history;
use super::partial::{
    finish_partial_run, partial_run_id, release_lease, take_lease, time_spotdraft_step, PartialRun,
};
use super::steps::output_location;
use super::{RunOptions, RunOutcome};
use crate::ingest::{upsert_contracts, PartialUpdate, WalkControl};
use crate::job::Job;
use crate::lease::LeaseGuard;
use crate::report::lifecycle::RunKind;
use crate::spotdraft::model::ContractId;
use crate::storage::Location;
use anyhow::Context;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

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
    let started = chrono::Utc::now();
    let run_id = partial_run_id(RunKind::Targeted, started);
    let opts = RunOptions {
        kind: RunKind::Targeted,
        ..opts
    };
    let outcome = async {
        anyhow::ensure!(
            !targets.contracts.is_empty(),
            "a targeted run of job {:?} needs at least one contract",
            job.name
        );
        let output = output_location(job, &opts)?;
        let lease = take_lease(job, &opts, &output, &run_id).await?;
        let outcome =
            targeted_under_lease(job, targets, &opts, &output, &lease, &run_id, started).await;
        release_lease(job, lease).await;
        outcome
    }
    .await;
    if let Ok(output) = output_location(job, &opts) {
        let record = history::RunRecord::of_run(job, &run_id, &opts, started, &outcome);
        if let Err(e) = history::write_record(&output, &record).await {
            tracing::warn!(job = %job.name, run = %run_id, error = %crate::error_chain::anyhow_chain(&e), "the run record was not written");
        }
    }
    outcome
}

/// The contracts' numbers by what is done with them: looked up (changed or
/// stale), stale, deleted.
fn split_targets(targets: &TargetSet) -> (BTreeSet<i64>, BTreeSet<i64>, BTreeSet<i64>) {
    let (mut lookup, mut stale, mut deleted) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for (&id, &hint) in &targets.contracts {
        match hint {
            TargetHint::Changed => {
                lookup.insert(id);
            }
            TargetHint::MetadataStale => {
                lookup.insert(id);
                stale.insert(id);
            }
            TargetHint::Deleted => {
                deleted.insert(id);
            }
        }
    }
    (lookup, stale, deleted)
}

/// `contracts 12, 34 (metadata stale), 56 (deleted)`.
fn describe(targets: &TargetSet) -> String {
    let items: Vec<String> = targets
        .contracts
        .iter()
        .map(|(id, hint)| match hint {
            TargetHint::Changed => id.to_string(),
            TargetHint::MetadataStale => format!("{id} (metadata stale)"),
            TargetHint::Deleted => format!("{id} (deleted)"),
        })
        .collect();
    format!("contracts {}", items.join(", "))
}

async fn targeted_under_lease(
    job: &Job,
    targets: &TargetSet,
    opts: &RunOptions,
    output: &Location,
    lease: &LeaseGuard,
    run_id: &str,
    started: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<RunOutcome> {
    let mut timings = BTreeMap::new();
    let (store, prefix) = (&output.store, &output.path);
    // 1. What an interrupted run left, then the ERP extract, as a nightly
    //    run does.
    let super::steps::Prologue {
        extract,
        acks,
        sandbox,
        settings,
    } = super::steps::prologue(job, opts, output, &mut timings).await?;

    // 2. The contracts, by id.
    let t = Instant::now();
    let client = settings.client()?;
    let (looked_up, stale, deleted) = split_targets(targets);
    let ids: Vec<ContractId> = looked_up
        .iter()
        .map(|n| ContractId::new(n.to_string()))
        .collect();
    let seen = if ids.is_empty() {
        vec![]
    } else {
        client
            .existing_contract_items(&ids)
            .await
            .with_context(|| format!("looking up {} contracts by id in SpotDraft", ids.len()))?
    };
    // An integer id matches every contract with that number; keep the asked ones.
    let seen: Vec<_> = seen
        .into_iter()
        .filter(|c| c.id.number().is_some_and(|n| looked_up.contains(&n)))
        .collect();
    lease.check()?;

    // 3. Into the snapshot (no walk, no watermark).
    let control = WalkControl {
        stop: Some(lease.lost_flag()),
        shutdown: opts.shutdown.clone(),
        ..WalkControl::default()
    };
    let state_dir = prefix
        .clone()
        .join("_targeted")
        .join(job.name.as_str())
        .join(run_id);
    let update = PartialUpdate {
        seen: seen.clone(),
        stale,
        looked_up,
        deleted,
    };
    let updated = upsert_contracts(
        &settings,
        &client,
        store.clone(),
        prefix,
        &state_dir,
        update,
        &control,
    )
    .await
    .with_context(|| format!("updating the snapshot of job {:?}", job.name))?;
    lease.check()?;
    timings.insert("ingest".to_string(), t.elapsed().as_millis() as u64);
    let mut ingestion = updated.stats;
    time_spotdraft_step(&mut ingestion, t);
    let contracts: BTreeSet<String> = seen
        .iter()
        .map(|c| c.id.composite().to_string())
        .chain(updated.marked_deleted.iter().cloned())
        .collect();

    // 4. Reconcile, plan, report, apply.
    finish_partial_run(PartialRun {
        job,
        opts,
        output,
        lease,
        run_id: run_id.to_string(),
        started,
        kind: RunKind::Targeted,
        description: describe(targets),
        contracts,
        erp_records: None,
        snapshot: updated.snapshot,
        extract,
        acks,
        ingestion,
        client,
        sandbox,
        timings,
    })
    .await
}
