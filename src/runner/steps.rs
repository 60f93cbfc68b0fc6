//! The steps a run calls: inputs (extract, acknowledgements, SpotDraft
//! settings and the embedded sandbox), the orphan check, the comparison with
//! the previous nightly run.

use super::RunOptions;
use crate::erp::extract::{load_extract, Extract, ExtractFormat, ExtractSource, GuardInput};
use crate::ingest::IngestSettings;
use crate::ingest::IngestStats;
use crate::job::{ExtractFileFormat, Job, SpotDraftTarget};
use crate::reconcile::orphan_candidates;
use crate::report::lifecycle::{
    compare_with_previous_run, load_acknowledgements, previous_erp_rows_valid, recent_trend,
    Acknowledgements, Corrections, Tracked, TrackedRun, TrendPoint,
};
use crate::report::RunInfo;
use crate::sandbox::{Dataset, Sandbox, SandboxConfig};
use crate::secret::Secret;
use crate::spotdraft::model::ContractId;
use crate::spotdraft::SpotDraftClient;
use crate::storage::{self, Location};
use anyhow::Context;
use object_store::ObjectStore;
use polars::prelude::DataFrame;
use std::sync::Arc;

/// This run's drift against the job's last complete nightly run (see
/// [`crate::report::lifecycle`]), and the counts of recent nightly runs ending
/// with this one.
pub(super) async fn track_across_runs(
    store: &Arc<dyn ObjectStore>,
    prefix: &object_store::path::Path,
    run: &RunInfo,
    drift: DataFrame,
    acks: Acknowledgements,
    corrections: Corrections,
) -> anyhow::Result<(Tracked, Vec<TrendPoint>)> {
    let tracked_run = TrackedRun {
        run_id: &run.run_id,
        job: &run.job,
        run_date: run.run_date,
        detected_at: &run.started_at,
    };
    let tracked = compare_with_previous_run(store, prefix, drift, acks, &tracked_run, corrections)
        .await
        .with_context(|| {
            format!(
                "comparing with the previous nightly run of job {:?}",
                run.job
            )
        })?;
    let point = TrendPoint {
        run_id: run.run_id.clone(),
        run_date: run.run_date,
        counts: tracked.counts.clone(),
    };
    let trend = recent_trend(store, prefix, &run.job, point).await?;
    Ok((tracked, trend))
}

/// The job's acknowledgement file (`[report] acknowledgements`), if it has one.
pub(super) fn load_job_acknowledgements(job: &Job) -> anyhow::Result<Acknowledgements> {
    match &job.report.acknowledgements {
        Some(path) => Ok(load_acknowledgements(path)
            .with_context(|| format!("report.acknowledgements of job {:?}", job.name))?),
        None => Ok(Acknowledgements::default()),
    }
}

/// The contracts that ERP records name, are not live in the snapshot, and
/// SpotDraft confirms exist (one list request per 100 ids). Counted in
/// `stats.orphan_check_requests`.
pub(super) async fn confirm_named_contracts(
    client: &SpotDraftClient,
    snapshot: &DataFrame,
    records: &DataFrame,
    job: &Job,
    stats: &mut IngestStats,
) -> anyhow::Result<Vec<String>> {
    let (snapshot, records, spec) = (snapshot.clone(), records.clone(), job.reconcile.clone());
    let candidates =
        tokio::task::spawn_blocking(move || orphan_candidates(&snapshot, &records, &spec))
            .await
            .context("finding the contracts ERP records name")??;
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let before = client.request_counts().list;
    let ids: Vec<ContractId> = candidates.into_iter().map(ContractId::new).collect();
    let found = client.existing_contracts(&ids).await.with_context(|| {
        format!(
            "asking SpotDraft about {} contracts named by ERP records",
            ids.len()
        )
    })?;
    stats.orphan_check_requests = client.request_counts().list - before;
    Ok(found.into_iter().collect())
}

/// The embedded sandbox's ERP base URL and token.
pub(super) fn sandbox_erp(sandbox: Option<&Sandbox>) -> anyhow::Result<Option<(url::Url, Secret)>> {
    let Some(sandbox) = sandbox else {
        return Ok(None);
    };
    let url = url::Url::parse(&sandbox.erp_base_url())?;
    Ok(Some((
        url,
        Secret::new(sandbox.credentials().erp_token.clone()),
    )))
}

/// When the extract was taken: its object's last modification. `None` when the
/// store does not say (every journaled success then counts as before it).
pub(super) async fn extract_as_of(job: &Job) -> Option<chrono::DateTime<chrono::Utc>> {
    let at = storage::resolve(&job.extract.url).ok()?;
    use object_store::ObjectStoreExt;
    at.store.head(&at.path).await.ok().map(|m| m.last_modified)
}

/// Loads and validates the job's ERP extract, then checks it against the
/// job's guard (`[erp.extract] min_rows`, `max_row_drop`, `max_age_hours`)
/// unless `opts.accept_extract`: a failed check ([`crate::erp::extract::GuardError`]) fails the run
/// before any report or plan.
pub(super) async fn load_job_extract(
    job: &Job,
    output: &Location,
    opts: &RunOptions,
) -> anyhow::Result<Extract> {
    let extract_at = storage::resolve(&job.extract.url)?;
    let extract = load_extract(ExtractSource {
        store: extract_at.store.clone(),
        path: extract_at.path.clone(),
        display_url: &extract_at.display,
        format: match job.extract.format {
            ExtractFileFormat::Csv => ExtractFormat::Csv,
            ExtractFileFormat::Parquet => ExtractFormat::Parquet,
        },
        columns: &job.extract.columns,
    })
    .await?;
    tracing::info!(
        job = %job.name,
        extract = %extract_at.display,
        rows_read = extract.rows_read,
        rows_rejected = extract.rejects.height(),
        bytes_fetched = extract.bytes_fetched,
        "ERP extract loaded"
    );
    let guard = &job.extract.guard;
    let previous = if guard.max_row_drop < 1.0 {
        previous_erp_rows_valid(&output.store, &output.path, &job.name)
            .await
            .context("reading the previous nightly run's ERP row count")?
    } else {
        None
    };
    let modified = match guard.max_age {
        Some(_) => {
            use object_store::ObjectStoreExt;
            let meta = extract_at
                .store
                .head(&extract_at.path)
                .await
                .with_context(|| {
                    format!("reading the last-modified time of {}", extract_at.display)
                })?;
            Some(meta.last_modified)
        }
        None => None,
    };
    let input = GuardInput {
        url: &extract_at.display,
        previous: previous.as_ref().map(|(id, n)| (id.as_str(), *n)),
        modified,
        now: chrono::Utc::now(),
    };
    match extract.check_guard(guard, &input) {
        Ok(()) => {}
        Err(e) if opts.accept_extract => {
            tracing::warn!(job = %job.name, reason = %e, "extract guard overridden by --accept-extract");
        }
        Err(e) => return Err(e.into()),
    }
    Ok(extract)
}

pub(super) fn output_location(job: &Job, opts: &RunOptions) -> anyhow::Result<Location> {
    if let Some(store) = &opts.output_store {
        return Ok(Location::in_store(store.clone(), &job.name));
    }
    if !job.output.url.contains("://") {
        std::fs::create_dir_all(&job.output.url)
            .with_context(|| format!("output.url: cannot create {}", job.output.url))?;
    }
    Ok(storage::resolve(&job.output.url)?)
}

/// Ingestion settings from the job, starting the embedded sandbox when the job uses it.
pub(super) async fn ingest_settings(
    job: &Job,
) -> anyhow::Result<(Option<Sandbox>, IngestSettings)> {
    let (sandbox, base_url, client_id, client_secret, user_email) = match &job.spotdraft {
        SpotDraftTarget::Live {
            base_url,
            client_id,
            client_secret,
            user_email,
        } => (
            None,
            base_url.clone(),
            client_id.clone(),
            client_secret.clone(),
            user_email.clone(),
        ),
        SpotDraftTarget::Sandbox {
            fixtures,
            rate_limit_per_sec,
        } => {
            let dataset = Dataset::load(fixtures)
                .with_context(|| format!("sandbox.fixtures: loading {}", fixtures.display()))?;
            let config = SandboxConfig {
                rate_limit_per_sec: *rate_limit_per_sec,
                ..SandboxConfig::default()
            };
            let sandbox = Sandbox::start(config, dataset)
                .await
                .context("starting the embedded sandbox")?;
            let base_url = url::Url::parse(&sandbox.spotdraft_base_url())?;
            let creds = sandbox.credentials().clone();
            (
                Some(sandbox),
                base_url,
                Secret::new(creds.client_id),
                Secret::new(creds.client_secret),
                None,
            )
        }
    };
    let f = &job.fetch;
    let settings = IngestSettings {
        job: job.name.clone(),
        base_url,
        client_id,
        client_secret,
        user_email,
        page_size: f.page_size,
        requests_per_second: f.requests_per_second,
        max_in_flight: f.max_in_flight,
        request_timeout: f.request_timeout,
        retry: crate::http::RetryPolicy {
            max_attempts: f.max_attempts,
            initial_backoff: f.initial_backoff,
            max_backoff: f.max_backoff,
            max_total: f.max_retry_total,
        },
        status_filter: f.status_filter.clone(),
        overlap: f.overlap,
        record_data_keys: f.record_data_keys.clone(),
        key_pointer_fields: f.key_pointer_fields.clone(),
        fetch_documents: f.fetch_documents,
        reconciled_statuses: job.reconcile.statuses.clone(),
        refresh_per_run: f.refresh_per_run,
    };
    Ok((sandbox, settings))
}

/// What every run does first, under the job's lease: finish what an
/// interrupted run left (publish a committed report, delete an uncommitted
/// one), move reports of the old layout, load the ERP extract and the
/// acknowledgements (a wrong mapping or a broken file fails the run before any
/// SpotDraft request is spent), then the SpotDraft settings (the embedded
/// sandbox started, and edited when `opts` asks).
pub(super) async fn prologue(
    job: &Job,
    opts: &RunOptions,
    output: &Location,
    timings: &mut std::collections::BTreeMap<String, u64>,
) -> anyhow::Result<Prologue> {
    let (store, prefix) = (&output.store, &output.path);
    let recovery = crate::report::recover_staged(store, prefix, &job.name).await?;
    if !recovery.rolled_forward.is_empty() {
        tracing::info!(job = %job.name, runs = ?recovery.rolled_forward, "published the reports of interrupted runs");
    }
    crate::report::migrate::migrate_legacy_reports(store, prefix, &job.name).await?;
    let t = std::time::Instant::now();
    let extract = load_job_extract(job, output, opts).await?;
    let acks = load_job_acknowledgements(job)?;
    timings.insert("load_extract".to_string(), t.elapsed().as_millis() as u64);
    let (sandbox, settings) = ingest_settings(job).await?;
    if let (Some(sandbox), Some(edit)) = (&sandbox, &opts.edit_sandbox) {
        edit(&sandbox.state());
    }
    Ok(Prologue {
        extract,
        acks,
        sandbox,
        settings,
    })
}

/// What [`prologue`] leaves a run.
pub(super) struct Prologue {
    /// The ERP extract, validated.
    pub extract: Extract,
    /// The job's acknowledgements.
    pub acks: Acknowledgements,
    /// The embedded sandbox, when the job uses it (shut down at the end).
    pub sandbox: Option<Sandbox>,
    /// How to reach SpotDraft.
    pub settings: IngestSettings,
}

/// Applies a run's planned `actions` in the run itself (`[apply] mode =
/// "apply"` or `--apply`), journaled under the run's id; the apply summary.
#[allow(clippy::too_many_arguments)]
pub(super) async fn apply_in_run(
    job: &Job,
    output: &Location,
    run: &RunInfo,
    actions: &[crate::apply::Action],
    plan_summary: crate::apply::ApplySummary,
    force: bool,
    sandbox: Option<&Sandbox>,
    client: &SpotDraftClient,
) -> anyhow::Result<crate::apply::ApplySummary> {
    let (store, prefix) = (&output.store, &output.path);
    let journal = crate::apply::read_journal(store, prefix, &job.name).await?;
    let request = crate::apply::stage::ApplyRequest {
        plan_run_id: &run.run_id,
        apply_id: &run.run_id,
        run_date: run.run_date,
        approved_by: None,
        force,
    };
    let targets = crate::apply::stage::Targets {
        sandbox_erp: sandbox_erp(sandbox)?,
        spotdraft: Some(client.clone()),
    };
    let (_, applied) = crate::apply::stage::apply_actions(
        job,
        store,
        prefix,
        actions,
        &journal,
        &request,
        plan_summary,
        targets,
    )
    .await
    .with_context(|| format!("applying the corrections of run {}", run.run_id))?;
    Ok(applied)
}

/// The outcome of a run whose reports were published at `location`.
pub(super) fn published_outcome(
    job: &Job,
    output: &Location,
    location: &crate::report::ReportLocation,
    summary: crate::report::Summary,
) -> super::RunOutcome {
    let report_dir = output.display_object(&location.dir);
    let tables = location
        .tables
        .iter()
        .map(|(t, dir)| (t.clone(), output.display_object(dir)))
        .collect();
    let report_html = job.output.html.then(|| format!("{report_dir}/report.html"));
    super::RunOutcome {
        summary,
        report_dir,
        tables,
        report_html,
    }
}

/// Publishes a run's tables (drift, rejects, resolved when given, the plan
/// when corrections were planned) with its summary, in the job's formats.
#[allow(clippy::too_many_arguments)]
pub(super) async fn publish_run(
    job: &Job,
    output: &Location,
    run: &RunInfo,
    drift: &DataFrame,
    rejects: &DataFrame,
    resolved: Option<&DataFrame>,
    planned: Option<&crate::apply::stage::Planned>,
    summary: &crate::report::Summary,
) -> anyhow::Result<crate::report::ReportLocation> {
    let formats = crate::report::ReportFormats {
        parquet: job.output.parquet,
        csv: job.output.csv,
        html: job.output.html,
    };
    let extra: Vec<crate::report::ExtraTable> = planned
        .iter()
        .map(|p| crate::report::ExtraTable {
            name: crate::report::layout::PLAN_TABLE,
            frame: p.frame.clone(),
        })
        .collect();
    let tables = crate::report::RunTables {
        drift,
        rejects,
        resolved,
        extra: &extra,
    };
    let location = crate::report::write_run_reports(
        output.store.clone(),
        &output.path,
        run,
        tables,
        summary,
        &formats,
    )
    .await?;
    Ok(location)
}

/// Plans the corrections (and, with `create`, the contract creations) of a
/// run's `drift`, off the async threads; `mode` names the plan (`plan` or
/// `apply`).
pub(super) async fn plan_corrections(
    job: &Job,
    mode: crate::job::ApplyMode,
    journal: crate::apply::JournalView,
    drift: DataFrame,
    snapshot: DataFrame,
    records: DataFrame,
    create: Option<crate::job::create::CreateSettings>,
) -> anyhow::Result<crate::apply::stage::Planned> {
    let as_of = extract_as_of(job).await;
    let job = job.clone();
    let mode_name = if mode == crate::job::ApplyMode::Apply {
        "apply"
    } else {
        "plan"
    };
    tokio::task::spawn_blocking(move || {
        let input = crate::apply::PlanInput {
            job: &job.name,
            drift: &drift,
            snapshot: &snapshot,
            records: &records,
            spec: &job.reconcile,
            settings: &job.apply,
            create: create.as_ref(),
        };
        crate::apply::stage::prepare_plan(&input, &journal, as_of, mode_name)
    })
    .await
    .context("planning corrections stopped")?
    .map_err(Into::into)
}
