//! `contract-recon apply`: a run's reviewed plan applied as written, under the
//! job's lease.

use super::steps::{ingest_settings, output_location, sandbox_erp};
use super::RunOptions;
use crate::apply::read_journal;
use crate::apply::stage::{apply_actions, ApplyRequest};
use crate::job::Job;
use crate::lease::{self, Holder, LeaseConfig};
use crate::report::recover_staged;
use anyhow::Context;
use object_store::ObjectStore;
use std::sync::Arc;

/// What `contract-recon apply` asks for.
#[derive(Clone, Default)]
pub struct ApplyPlanRequest {
    /// The run whose plan is applied.
    pub run_id: String,
    /// Who approved it (journaled).
    pub approved_by: Option<String>,
    /// Apply over `[apply] max_actions_per_run`.
    pub force: bool,
    /// Output store instead of the job's `output.url` (tests).
    pub output_store: Option<Arc<dyn ObjectStore>>,
    /// Lease expiry and renewal.
    pub lease: LeaseConfig,
    /// "Now", for the plan's age (tests move it).
    pub now: Option<chrono::DateTime<chrono::Utc>>,
}

/// What an application of a reviewed plan did.
#[derive(Debug)]
pub struct AppliedPlan {
    /// This application's id (journal and `apply_results` folder).
    pub apply_id: String,
    /// Planned counts and outcomes.
    pub summary: crate::report::ApplySummary,
    /// The `apply_results` folder.
    pub results_dir: Option<String>,
    /// Every action's outcome.
    pub results: Vec<crate::apply::ActionResult>,
}

/// Applies the published plan of `request.run_id`, as written, under the job's
/// lease. The plan is checked first (complete run, this job's, unmodified, not
/// older than `max_plan_age_days`): a refused plan sends nothing.
pub async fn apply_plan(job: &Job, request: ApplyPlanRequest) -> anyhow::Result<AppliedPlan> {
    let now = request.now.unwrap_or_else(chrono::Utc::now);
    let apply_id = format!(
        "apply-{}-{}",
        now.format("%Y%m%d-%H%M%S"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let opts = RunOptions {
        output_store: request.output_store.clone(),
        ..RunOptions::default()
    };
    let output = output_location(job, &opts)?;
    let (store, prefix) = (&output.store, &output.path);
    let lease = lease::acquire(
        store.clone(),
        prefix,
        &job.name,
        Holder::current(&apply_id),
        &request.lease,
        false,
    )
    .await?
    .keep_alive();
    let outcome = async {
        recover_staged(store, prefix, &job.name).await?;
        let plan = crate::apply::stage::load_plan(job, store, prefix, &request.run_id, now).await?;
        let journal = read_journal(store, prefix, &job.name).await?;
        lease.check()?;
        let planned = plan.summary.apply.clone().unwrap_or_default();
        let apply_request = ApplyRequest {
            plan_run_id: &request.run_id,
            apply_id: &apply_id,
            run_date: now.date_naive(),
            approved_by: request.approved_by.as_deref(),
            force: request.force,
        };
        // SpotDraft (documents, write-backs) and, for the embedded sandbox, a
        // fresh sandbox: the demo's lives only as long as a command.
        let (sandbox, settings) = ingest_settings(job).await?;
        let client = settings.client().context("spotdraft.base_url")?;
        let targets = crate::apply::stage::Targets {
            sandbox_erp: sandbox_erp(sandbox.as_ref())?,
            spotdraft: Some(client),
        };
        let applied = apply_actions(
            job,
            store,
            prefix,
            &plan.actions,
            &journal,
            &apply_request,
            planned,
            targets,
        )
        .await;
        if let Some(sandbox) = sandbox {
            sandbox.shutdown().await;
        }
        let (execution, summary) = applied?;
        let dir = crate::report::layout::table_run_dir(
            prefix,
            crate::report::layout::APPLY_RESULTS_TABLE,
            &job.name,
            now.date_naive(),
            &apply_id,
        );
        anyhow::Ok(AppliedPlan {
            apply_id: apply_id.clone(),
            summary,
            results_dir: Some(output.display_object(&dir)),
            results: execution.results,
        })
    }
    .await;
    if let Err(e) = lease.release().await {
        tracing::warn!(job = %job.name, error = %crate::error_chain::error_chain(&e), "the job's lease was not released; it expires by itself");
    }
    outcome
}
