//! What backfills and targeted runs share once their contracts are in the
//! snapshot: reconcile -> keep the drift their scope can decide -> plan ->
//! track against the last nightly run (without resolving anything) ->
//! publish -> apply (when asked). No watermark, no `latest.json`.
//!
//! The rule for a partial run (README, "Drift kinds"): its contracts are
//! reconciled against the whole snapshot and the whole extract, so links,
//! duplicates and conflicts are decided with every contract the job knows,
//! and only the rows naming one of its contracts are reported. A partial
//! contract set cannot decide `orphan_erp_record` (an ERP record naming a
//! contract the run did not look at is not thereby an orphan), so that kind is
//! never reported; nor are rows resolved: a row of the last nightly run that
//! is not in a partial run may simply be out of its scope.

use super::{RunOptions, RunOutcome};
use crate::apply::read_journal;
use crate::apply::stage::Planned;
use crate::erp::extract::Extract;
use crate::ingest::IngestStats;
use crate::job::{ApplyMode, Job};
use crate::lease::{self, Holder, LeaseGuard};
use crate::reconcile::spec::kinds;
use crate::reconcile::{reconcile, RunContext};
use crate::report::lifecycle::{
    compare_with_previous_run, empty_resolved, Acknowledgements, Corrections, RunKind, TrackedRun,
};
use crate::report::RunScope;
use crate::report::{InputCounts, RunInfo, Summary};
use crate::sandbox::Sandbox;
use crate::spotdraft::SpotDraftClient;
use crate::storage::Location;
use anyhow::Context;
use chrono::{DateTime, Utc};
use polars::prelude::{BooleanChunked, DataFrame, NewChunkedArray};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// Drift kinds a partial contract set cannot decide: never reported by a
/// backfill or a targeted run.
pub const KINDS_NEEDING_EVERY_CONTRACT: [&str; 2] =
    [kinds::ORPHAN_ERP_RECORD, kinds::MISSING_IN_SPOTDRAFT];

/// A run id of `kind`: `backfill-YYYYMMDD-HHMMSS-xxxxxxxx`,
/// `targeted-…` (text to Hive readers, like nightly `run-…` ids).
pub fn partial_run_id(kind: RunKind, at: DateTime<Utc>) -> String {
    let name = match kind {
        RunKind::Nightly => "run",
        RunKind::Backfill => "backfill",
        RunKind::Targeted => "targeted",
    };
    format!(
        "{name}-{}-{}",
        at.format("%Y%m%d-%H%M%S"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// The partial run's SpotDraft figures over its whole SpotDraft step (the
/// lookup or walk and the enrichment), which started at `since`.
pub(super) fn time_spotdraft_step(stats: &mut IngestStats, since: Instant) {
    let elapsed = since.elapsed();
    stats.elapsed_ms = elapsed.as_millis() as u64;
    stats.achieved_requests_per_s = stats.http.requests as f64 / elapsed.as_secs_f64().max(1e-3);
}

/// Takes the job's lease for a partial run (as a nightly run does).
pub(super) async fn take_lease(
    job: &Job,
    opts: &RunOptions,
    output: &Location,
    run_id: &str,
) -> anyhow::Result<LeaseGuard> {
    Ok(lease::acquire(
        output.store.clone(),
        &output.path,
        &job.name,
        Holder::current(run_id),
        &opts.lease,
        opts.break_lease,
    )
    .await?
    .keep_alive())
}

/// Releases the lease, warning when it cannot.
pub(super) async fn release_lease(job: &Job, lease: LeaseGuard) {
    if let Err(e) = lease.release().await {
        tracing::warn!(job = %job.name, error = %crate::error_chain::error_chain(&e), "the job's lease was not released; it expires by itself");
    }
}

/// A partial run whose contracts are in the snapshot.
pub(super) struct PartialRun<'a> {
    pub job: &'a Job,
    pub opts: &'a RunOptions,
    pub output: &'a Location,
    pub lease: &'a LeaseGuard,
    pub run_id: String,
    pub started: DateTime<Utc>,
    pub kind: RunKind,
    /// What was asked, in words (kept in the summary).
    pub description: String,
    /// Composite ids of the run's contracts.
    pub contracts: BTreeSet<String>,
    /// A targeted ERP-record run: the records it covers (`None`: the run
    /// covers `contracts`). Only their `missing_in_spotdraft` rows are
    /// reported, and creates are planned for them.
    pub erp_records: Option<ErpScope>,
    /// The snapshot after the update (every contract of the job).
    pub snapshot: DataFrame,
    pub extract: Extract,
    pub acks: Acknowledgements,
    pub ingestion: IngestStats,
    pub client: SpotDraftClient,
    pub sandbox: Option<Sandbox>,
    pub timings: BTreeMap<String, u64>,
}

/// The records of a targeted ERP-record run.
pub(super) struct ErpScope {
    /// Record ids (trimmed) in the job's extract: what is reconciled and planned.
    pub found: BTreeSet<String>,
    /// Every record id asked for, in order.
    pub asked: Vec<String>,
    /// Asked ids the extract does not hold.
    pub not_found: Vec<String>,
}

/// The `missing_in_spotdraft` rows of `drift` whose (trimmed) ERP record id
/// is one of `records`.
pub fn scope_erp_drift(drift: &DataFrame, records: &BTreeSet<String>) -> anyhow::Result<DataFrame> {
    let ids = drift.column("erp_record_id")?.str()?;
    let kinds = drift.column("drift_kind")?.str()?;
    let keep: Vec<bool> = ids
        .iter()
        .zip(kinds.iter())
        .map(|(id, kind)| {
            kind == Some(kinds::MISSING_IN_SPOTDRAFT)
                && id.is_some_and(|id| records.contains(id.trim()))
        })
        .collect();
    let mask = BooleanChunked::from_slice("keep".into(), &keep);
    Ok(drift.filter(&mask)?)
}

/// The extract records whose (trimmed) id is one of `records`.
fn records_of(frame: &DataFrame, records: &BTreeSet<String>) -> anyhow::Result<DataFrame> {
    let ids = frame.column("erp_record_id")?.str()?;
    let keep: Vec<bool> = ids
        .iter()
        .map(|id| id.is_some_and(|id| records.contains(id.trim())))
        .collect();
    let mask = BooleanChunked::from_slice("keep".into(), &keep);
    Ok(frame.filter(&mask)?)
}

/// The rows of `drift` naming one of `contracts`, without the kinds a partial
/// run cannot decide.
pub fn scope_drift(drift: &DataFrame, contracts: &BTreeSet<String>) -> anyhow::Result<DataFrame> {
    let ids = drift.column("contract_id")?.str()?;
    let kinds = drift.column("drift_kind")?.str()?;
    let keep: Vec<bool> = ids
        .iter()
        .zip(kinds.iter())
        .map(|(id, kind)| {
            id.is_some_and(|id| contracts.contains(id))
                && !kind.is_some_and(|k| KINDS_NEEDING_EVERY_CONTRACT.contains(&k))
        })
        .collect();
    let mask = BooleanChunked::from_slice("keep".into(), &keep);
    Ok(drift.filter(&mask)?)
}

/// Of `contracts`, those live in the snapshot in a reconciled status (any
/// status when `statuses` is empty).
fn in_scope_count(
    snapshot: &DataFrame,
    contracts: &BTreeSet<String>,
    statuses: &[String],
) -> anyhow::Result<u64> {
    let ids = snapshot.column("id")?.str()?;
    let status = snapshot.column("contract_status")?.str()?;
    let deleted = snapshot.column("deleted_at")?.str()?;
    let n = ids
        .iter()
        .zip(status.iter())
        .zip(deleted.iter())
        .filter(|((id, st), del)| {
            id.is_some_and(|id| contracts.contains(id))
                && del.is_none()
                && (statuses.is_empty() || st.is_some_and(|s| statuses.iter().any(|x| x == s)))
        })
        .count();
    Ok(n as u64)
}

/// Reconciles, plans, tracks, publishes and (when asked) applies a partial run.
pub(super) async fn finish_partial_run(run: PartialRun<'_>) -> anyhow::Result<RunOutcome> {
    let PartialRun {
        job,
        opts,
        output,
        lease,
        run_id,
        started,
        kind,
        description,
        contracts,
        erp_records,
        snapshot,
        extract,
        acks,
        ingestion,
        client,
        sandbox,
        mut timings,
    } = run;
    let (store, prefix) = (&output.store, &output.path);

    // 1. Reconcile against everything the job knows; keep the run's rows.
    let t = Instant::now();
    let started_at = started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let ctx = RunContext {
        run_id: run_id.clone(),
        job: job.name.clone(),
        detected_at: started_at.clone(),
        known_existing_contract_ids: vec![],
    };
    let spec = job.reconcile.clone();
    let (records, snap) = (extract.records.clone(), snapshot.clone());
    let reconciled = tokio::task::spawn_blocking(move || reconcile(snap, records, &spec, &ctx))
        .await
        .context("reconciliation stopped")??;
    let drift = match &erp_records {
        None => scope_drift(&reconciled.drift, &contracts)?,
        Some(erp) => scope_erp_drift(&reconciled.drift, &erp.found)?,
    };
    let mut stats = reconciled.stats.clone();
    stats.drift_by_kind = kinds::ALL.iter().map(|k| (k.to_string(), 0)).collect();
    stats
        .drift_by_kind
        .extend(crate::reconcile::drift::count_by(&drift, "drift_kind")?);
    stats.drift_by_severity = ["low", "medium", "high"]
        .iter()
        .map(|k| (k.to_string(), 0))
        .collect();
    stats
        .drift_by_severity
        .extend(crate::reconcile::drift::count_by(&drift, "severity")?);
    timings.insert("reconcile".to_string(), t.elapsed().as_millis() as u64);

    // 2. Corrections of those rows, planned as a nightly run plans them.
    let mode = opts.apply_mode.unwrap_or(job.apply.mode);
    let journal = read_journal(store, prefix, &job.name).await?;
    let planned = if job.apply.enabled {
        let t = Instant::now();
        // An ERP-record run plans creates for its records only (and what
        // earlier creates of theirs still owe); `missing_in_spotdraft` needs
        // every contract, so other partial runs plan no creates.
        let (create, records) = match &erp_records {
            None => (None, extract.records.clone()),
            Some(erp) => (
                job.create.clone(),
                records_of(&extract.records, &erp.found)?,
            ),
        };
        let planned = super::steps::plan_corrections(
            job,
            mode,
            journal.clone(),
            drift.clone(),
            snapshot.clone(),
            records,
            create,
        )
        .await?;
        timings.insert("plan".to_string(), t.elapsed().as_millis() as u64);
        Some(planned)
    } else {
        None
    };

    // 3. Statuses against the last nightly run, nothing resolved.
    let run = RunInfo {
        job: job.name.clone(),
        run_id,
        run_date: started.date_naive(),
        started_at,
        finished_at: String::new(),
    };
    let corrections = match &planned {
        Some(p) => Corrections::from_plan(&p.actions, journal),
        None => Corrections {
            journal,
            ..Corrections::default()
        },
    };
    let tracked_run = TrackedRun {
        run_id: &run.run_id,
        job: &run.job,
        run_date: run.run_date,
        detected_at: &run.started_at,
    };
    let mut tracked =
        compare_with_previous_run(store, prefix, drift, acks, &tracked_run, corrections)
            .await
            .with_context(|| {
                format!("comparing with the last nightly run of job {:?}", job.name)
            })?;
    tracked.resolved = empty_resolved();
    tracked.counts.resolved = 0;
    tracked.counts.resolved_by_job = 0;

    // 4. Reports, marked with the run's kind (never `latest.json`).
    let t = Instant::now();
    let run = RunInfo {
        finished_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ..run
    };
    stats.contracts = contracts.len() as u64;
    stats.contracts_in_scope = in_scope_count(&snapshot, &contracts, &job.reconcile.statuses)?;
    let inputs = InputCounts {
        contracts: contracts.len() as u64,
        contracts_in_scope: stats.contracts_in_scope,
        erp_rows_read: extract.rows_read,
        erp_rows_valid: stats.erp_records,
        erp_rows_rejected: extract.rejects.height() as u64,
    };
    let mut summary = Summary::from_drift(&run, &tracked.drift, inputs)?;
    summary.ingestion = ingestion;
    summary.reconcile = stats;
    summary.timings_ms = timings;
    summary.run_kind = kind;
    summary.lifecycle = Some(tracked.counts.clone());
    summary.apply = planned.as_ref().map(|p| p.summary.clone());
    let kinds_not_reported: Vec<String> = match &erp_records {
        None => KINDS_NEEDING_EVERY_CONTRACT
            .iter()
            .map(|k| k.to_string())
            .collect(),
        Some(_) => kinds::ALL
            .iter()
            .filter(|k| **k != kinds::MISSING_IN_SPOTDRAFT)
            .map(|k| k.to_string())
            .collect(),
    };
    summary.scope = Some(RunScope {
        description,
        contracts: contracts.iter().cloned().collect(),
        kinds_not_reported,
        erp_records: erp_records.as_ref().map_or(vec![], |e| e.asked.clone()),
        erp_records_not_found: erp_records.as_ref().map_or(vec![], |e| e.not_found.clone()),
    });
    lease.check()?;
    let location = super::steps::publish_run(
        job,
        output,
        &run,
        &tracked.drift,
        &extract.rejects,
        None,
        planned.as_ref(),
        &summary,
    )
    .await?;
    summary
        .timings_ms
        .insert("write_reports".to_string(), t.elapsed().as_millis() as u64);

    // 5. Corrections applied, when asked, while the lease is still ours.
    if let (
        Some(Planned {
            actions,
            summary: plan_summary,
            ..
        }),
        ApplyMode::Apply,
    ) = (&planned, mode)
    {
        lease.check()?;
        let t = Instant::now();
        let applied = super::steps::apply_in_run(
            job,
            output,
            &run,
            actions,
            plan_summary.clone(),
            opts.force_apply,
            sandbox.as_ref(),
            &client,
        )
        .await?;
        summary.apply = Some(applied);
        summary
            .timings_ms
            .insert("apply".to_string(), t.elapsed().as_millis() as u64);
    }
    if let Some(sandbox) = sandbox {
        sandbox.shutdown().await;
    }

    Ok(super::steps::published_outcome(
        job, output, &location, summary,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::*;

    #[test]
    fn scoped_drift_keeps_the_runs_contracts_and_never_orphans() {
        let drift = df! {
            "drift_kind" => ["field_mismatch", "orphan_erp_record", "field_mismatch", "unusable_erp_value", "duplicate_link"],
            "contract_id" => [Some("T-1"), Some("T-1"), Some("T-2"), None, Some("T-3")],
            "erp_record_id" => ["E-1", "E-9", "E-2", "E-5", "E-3"],
        }
        .unwrap();
        let scope: BTreeSet<String> = ["T-1", "T-3"].iter().map(|s| s.to_string()).collect();
        let kept = scope_drift(&drift, &scope).unwrap();
        let records: Vec<Option<&str>> = kept
            .column("erp_record_id")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(records, [Some("E-1"), Some("E-3")]);
    }

    #[test]
    fn in_scope_counts_live_contracts_of_the_run_in_reconciled_statuses() {
        let snapshot = df! {
            "id" => ["T-1", "T-2", "T-3", "T-4"],
            "contract_status" => [Some("EXECUTED"), Some("DRAFT"), Some("EXECUTED"), Some("SIGN")],
            "deleted_at" => [None, None, Some("2026-01-01T00:00:00Z"), None],
        }
        .unwrap();
        let run: BTreeSet<String> = ["T-1", "T-2", "T-3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let statuses = vec!["EXECUTED".to_string(), "SIGN".to_string()];
        assert_eq!(in_scope_count(&snapshot, &run, &statuses).unwrap(), 1);
        assert_eq!(in_scope_count(&snapshot, &run, &[]).unwrap(), 2);
    }
}
