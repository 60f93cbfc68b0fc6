//! Targeted ERP-record runs: a few ERP records (named by ERP events) given
//! their missing contracts, with a small report and plan of their own.
//!
//! Like a targeted run over contracts (`targeted.rs`), it never moves
//! `latest.json`, the watermark or the drift lifecycle. It needs the job's
//! contract snapshot (a nightly run made it): without it every record would
//! look missing. Under the job's lease:
//! the job's latest extract is loaded and the asked records it holds are kept
//! (an id it does not hold is reported in the summary's scope as not found
//! and logged; nothing is planned for it). Each kept record's contracts are
//! looked up by ERP id (`GET v2.1/public/contracts/by_external_metadata/{id}`)
//! and upserted into the snapshot, so a contract created since the last
//! nightly run links its record. The whole snapshot is then reconciled with
//! the whole extract (`missing_in_spotdraft`: the record needs a contract by
//! the `[create]` rule and no live contract links it), only those records'
//! `missing_in_spotdraft` rows are reported, and `create_contract` with its
//! follow-ups (the ERP back-reference, the document) is planned for them, and
//! applied when the job's `[apply] mode` (or [`RunOptions::apply_mode`]) says
//! so. The create lane looks the ERP id up again before creating: a record
//! whose contract already exists is adopted, never created twice.

use super::history;
use super::partial::{
    finish_partial_run, partial_run_id, release_lease, take_lease, time_spotdraft_step, ErpScope,
    PartialRun,
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
use object_store::ObjectStoreExt;
use polars::prelude::DataFrame;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// Runs `job` for the ERP records `record_ids` only (trimmed; duplicates
/// ignored), under the job's lease. The job needs `[create]` on.
pub async fn run_erp_targeted(
    job: &Job,
    record_ids: &[String],
    opts: RunOptions,
) -> anyhow::Result<RunOutcome> {
    let started = chrono::Utc::now();
    let run_id = partial_run_id(RunKind::Targeted, started);
    let opts = RunOptions {
        kind: RunKind::Targeted,
        ..opts
    };
    let mut asked: Vec<String> = Vec::new();
    for id in record_ids
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        if !asked.iter().any(|a| a == id) {
            asked.push(id.to_string());
        }
    }
    let outcome = async {
        anyhow::ensure!(
            job.create.is_some(),
            "job {:?} has no [create] enabled = true: ERP records cannot be given contracts",
            job.name
        );
        anyhow::ensure!(
            !asked.is_empty(),
            "a targeted ERP-record run of job {:?} needs at least one record id",
            job.name
        );
        let output = output_location(job, &opts)?;
        let lease = take_lease(job, &opts, &output, &run_id).await?;
        let outcome = erp_under_lease(job, &asked, &opts, &output, &lease, &run_id, started).await;
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

/// The trimmed record ids of the extract's `erp_record_id` column.
fn extract_ids(records: &DataFrame) -> anyhow::Result<BTreeSet<String>> {
    Ok(records
        .column("erp_record_id")?
        .str()?
        .iter()
        .flatten()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

/// `ERP records A, B (not in the extract: C)`.
fn describe(asked: &[String], not_found: &[String]) -> String {
    let mut text = format!("ERP records {}", asked.join(", "));
    if !not_found.is_empty() {
        text.push_str(&format!(" (not in the extract: {})", not_found.join(", ")));
    }
    text
}

async fn erp_under_lease(
    job: &Job,
    asked: &[String],
    opts: &RunOptions,
    output: &Location,
    lease: &LeaseGuard,
    run_id: &str,
    started: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<RunOutcome> {
    let mut timings = BTreeMap::new();
    let (store, prefix) = (&output.store, &output.path);

    // 0. A record is missing only against every contract the job knows: the
    //    snapshot of a nightly run is needed.
    let snap = crate::ingest::snapshot_path(prefix, &job.name);
    match store.head(&snap).await {
        Ok(_) => {}
        Err(object_store::Error::NotFound { .. }) => anyhow::bail!(
            "job {:?} has no contract snapshot yet ({}): run it once (contract-recon run) before ERP events can be decided",
            job.name,
            output.display_object(&snap)
        ),
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("reading {}", output.display_object(&snap))))
        }
    }

    // 1. What an interrupted run left, then the ERP extract: which of the
    //    asked records it holds.
    let super::steps::Prologue {
        extract,
        acks,
        sandbox,
        settings,
    } = super::steps::prologue(job, opts, output, &mut timings).await?;
    let held = extract_ids(&extract.records)?;
    let (found, not_found): (Vec<String>, Vec<String>) =
        asked.iter().cloned().partition(|id| held.contains(id));
    if !not_found.is_empty() {
        tracing::warn!(
            job = %job.name, run = %run_id, records = ?not_found,
            "ERP records not in the job's extract: nothing planned for them"
        );
    }

    // 2. The records' contracts, by ERP id, into the snapshot.
    let t = Instant::now();
    let client = settings.client()?;
    let mut ids: Vec<ContractId> = Vec::new();
    for erp_id in &found {
        let linked = client
            .contracts_by_external_metadata(erp_id)
            .await
            .with_context(|| format!("looking up ERP record {erp_id:?} in SpotDraft"))?;
        ids.extend(linked.iter().filter_map(|c| match &c.id {
            serde_json::Value::Number(n) => Some(ContractId::new(n.to_string())),
            serde_json::Value::String(s) if !s.trim().is_empty() => {
                Some(ContractId::new(s.trim().to_string()))
            }
            _ => None,
        }));
    }
    let wanted: BTreeSet<&str> = found.iter().map(String::as_str).collect();
    let seen = if ids.is_empty() {
        vec![]
    } else {
        client
            .existing_contract_items(&ids)
            .await
            .with_context(|| format!("looking up {} contracts by id in SpotDraft", ids.len()))?
    };
    // An integer id matches every contract with that number: keep the ones
    // carrying an asked ERP id.
    let seen: Vec<_> = seen
        .into_iter()
        .filter(|c| {
            c.external_metadata
                .id
                .as_deref()
                .is_some_and(|id| wanted.contains(id.trim()))
        })
        .collect();
    lease.check()?;
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
        seen,
        ..PartialUpdate::default()
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

    // 3. Reconcile, plan the creates, report, apply.
    finish_partial_run(PartialRun {
        job,
        opts,
        output,
        lease,
        run_id: run_id.to_string(),
        started,
        kind: RunKind::Targeted,
        description: describe(asked, &not_found),
        contracts: BTreeSet::new(),
        erp_records: Some(ErpScope {
            found: found.into_iter().collect(),
            asked: asked.to_vec(),
            not_found,
        }),
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

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::*;

    #[test]
    fn extract_ids_are_trimmed_and_skip_empty_ones() {
        let records =
            df! { "erp_record_id" => [Some(" ERP-1 "), None, Some(""), Some("ERP-2")] }.unwrap();
        let ids: Vec<String> = extract_ids(&records).unwrap().into_iter().collect();
        assert_eq!(ids, ["ERP-1", "ERP-2"]);
    }

    #[test]
    fn the_description_names_records_not_found() {
        let asked = ["A".to_string(), "B".to_string()];
        assert_eq!(describe(&asked, &[]), "ERP records A, B");
        assert_eq!(
            describe(&asked, &["B".to_string()]),
            "ERP records A, B (not in the extract: B)"
        );
    }
}
