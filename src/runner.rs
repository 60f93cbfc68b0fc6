//! Runs a job end to end, in pipeline order: take the job's lease -> finish
//! what an interrupted run left -> load the ERP extract (cheap checks first) ->
//! ingest contracts from SpotDraft -> reconcile -> plan corrections -> compare
//! with the previous nightly run -> publish reports (the plan with them) ->
//! advance the watermark -> apply corrections (when asked) -> release the lease.

use crate::apply::stage::{apply_actions, prepare_plan, ApplyRequest, Planned};
use crate::apply::{read_journal, PlanInput};
use crate::erp::extract::{load_extract, Extract, ExtractFormat, ExtractSource};
use crate::ingest::IngestStats;
use crate::ingest::{
    commit_watermark, ingest_with_control, IngestMode, IngestSettings, WalkControl, WalkMode,
};
use crate::job::{ApplyMode, ExtractFileFormat, Job, SpotDraftTarget};
use crate::lease::{self, Holder, LeaseConfig, LeaseGuard};
use crate::reconcile::{orphan_candidates, reconcile, RunContext};
use crate::report::layout::PLAN_TABLE;
use crate::report::lifecycle::{
    compare_with_previous_run, load_acknowledgements, recent_trend, Acknowledgements, RunKind,
    Tracked, TrackedRun, TrendPoint,
};
use crate::report::migrate::migrate_legacy_reports;
use crate::report::{
    recover_staged, write_run_reports, ExtraTable, InputCounts, ReportFormats, RunInfo, RunTables,
    Summary,
};
use crate::sandbox::{Dataset, Sandbox, SandboxConfig, StateHandle};
use crate::secret::Secret;
use crate::spotdraft::model::ContractId;
use crate::spotdraft::SpotDraftClient;
use crate::storage::{self, Location};
use anyhow::Context;
use object_store::ObjectStore;
use polars::prelude::DataFrame;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// An edit of the embedded sandbox's state before ingestion.
pub type SandboxEdit = Arc<dyn Fn(&StateHandle) + Send + Sync>;

/// How a run is done.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Full, incremental, or incremental when a watermark exists.
    pub mode: IngestMode,
    /// Write outputs to this store instead of the job's `output.url` (tests pass an in-memory store).
    pub output_store: Option<Arc<dyn ObjectStore>>,
    /// Take the job's lease even when another run holds it (an operator's
    /// `--break-lease`, for a holder known to be gone).
    pub break_lease: bool,
    /// Lease expiry and renewal (tests shorten it).
    pub lease: LeaseConfig,
    /// Why the run is made: only nightly runs (the default) are compared with
    /// by later runs.
    pub kind: RunKind,
    /// Called with the embedded sandbox's state once it has started, before
    /// ingestion (`demo --change` edits a contract there).
    pub edit_sandbox: Option<SandboxEdit>,
    /// Overrides `[apply] mode` for this run (`run --apply`, `run --plan-only`).
    pub apply_mode: Option<ApplyMode>,
    /// Apply over `[apply] max_actions_per_run`.
    pub force_apply: bool,
}

/// What a finished run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// The run's summary (also written as `summary.json`).
    pub summary: Summary,
    /// The run's folder with `summary.json` and `report.html`, as a person can open it.
    pub report_dir: String,
    /// The run's folder in each table (`drift`, `rejects`, `runs`), as a person can open it.
    pub tables: BTreeMap<String, String>,
    /// The HTML report, when written.
    pub report_html: Option<String>,
}

impl RunOutcome {
    /// Number of drift rows.
    pub fn drift_total(&self) -> u64 {
        self.summary.drift_total
    }

    /// Drift rows first seen in this run (all of them in the job's first nightly run).
    pub fn drift_new(&self) -> u64 {
        self.summary
            .lifecycle
            .as_ref()
            .map_or(self.summary.drift_total, |l| l.new)
    }

    /// Actions that failed when the run applied its plan (rejected, checksum
    /// mismatch, pending after retries).
    pub fn apply_failed(&self) -> u64 {
        self.summary.apply.as_ref().map_or(0, |a| a.failed)
    }

    /// A short, human summary for the terminal.
    pub fn render_summary(&self) -> String {
        let s = &self.summary;
        let mut out = format!(
            "job {} run {}: {} contracts ({} in scope), {} ERP rows ({} rejected) -> {} drift rows\n",
            s.job, s.run_id, s.inputs.contracts, s.inputs.contracts_in_scope, s.inputs.erp_rows_read, s.inputs.erp_rows_rejected, s.drift_total
        );
        let api = &s.ingestion;
        out.push_str(&format!(
            "ingest ({}): {} contracts fetched, {} changed, {} deleted; {} requests (list {}, key_pointers {}, documents {}), {} x 429, {} retries, {:.1} requests/s\n",
            match api.mode {
                Some(WalkMode::Full) => "full",
                Some(WalkMode::Incremental) => "incremental",
                None => "?",
            },
            api.contracts_fetched,
            api.contracts_changed,
            api.contracts_deleted,
            api.http.requests,
            api.requests.list,
            api.requests.key_pointers,
            api.requests.documents,
            api.http.status_429,
            api.http.retries,
            api.achieved_requests_per_s,
        ));
        let mut notes = Vec::new();
        if api.contracts_vanished > 0 {
            notes.push(format!(
                "{} vanished during the run",
                api.contracts_vanished
            ));
        }
        if api.documents_unavailable > 0 {
            notes.push(format!(
                "{} executed without a downloadable document",
                api.documents_unavailable
            ));
        }
        if api.key_pointers_refreshed > 0 {
            notes.push(format!(
                "{} metadata values re-verified",
                api.key_pointers_refreshed
            ));
        }
        if let Some(age) = api.oldest_key_pointers_age_secs.filter(|a| *a >= 86_400) {
            notes.push(format!(
                "oldest metadata value {:.1} days old",
                age as f64 / 86_400.0
            ));
        }
        if !notes.is_empty() {
            out.push_str(&format!("        {}\n", notes.join("; ")));
        }
        for (kind, n) in &s.by_kind {
            out.push_str(&format!("  {kind:<20} {n}\n"));
        }
        if let Some(l) = &s.lifecycle {
            let since = match &l.previous_run_id {
                Some(id) => format!("since run {id}"),
                None => "first nightly run".to_string(),
            };
            out.push_str(&format!(
                "drift: {} new, {} open, {} acknowledged, {} resolved ({since})\n",
                l.new, l.open, l.acknowledged, l.resolved
            ));
            if l.changed > 0 {
                out.push_str(&format!(
                    "        {} changed values since the last run\n",
                    l.changed
                ));
            }
        }
        if let Some(apply) = &s.apply {
            out.push_str(&render_apply(apply));
        }
        out.push_str(&format!("reports: {}\n", self.report_dir));
        if let Some(plan) = self.tables.get(PLAN_TABLE) {
            out.push_str(&format!("plan:    {plan}\n"));
        }
        if let Some(drift) = self.tables.get(crate::report::layout::DRIFT_TABLE) {
            out.push_str(&format!("drift:   {drift}\n"));
        }
        if let Some(resolved) = self.tables.get(crate::report::layout::RESOLVED_TABLE) {
            out.push_str(&format!("resolved: {resolved}\n"));
        }
        if let Some(html) = &self.report_html {
            out.push_str(&format!("open:    {html}\n"));
        }
        out
    }
}

/// The terminal lines of the `apply` section.
pub fn render_apply(apply: &crate::report::ApplySummary) -> String {
    let join = |m: &BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = format!(
        "corrections ({}): planned {}\n",
        apply.mode,
        join(&apply.planned)
    );
    if !apply.outcomes.is_empty() {
        out.push_str(&format!(
            "        applied: {}; {} failed; {} document bytes\n",
            join(&apply.outcomes),
            apply.failed,
            apply.document_bytes
        ));
    }
    if let Some(why) = &apply.refused {
        out.push_str(&format!("        {why}\n"));
    }
    out
}

/// Runs `job` once, under the job's lease.
pub async fn run_job(job: &Job, opts: RunOptions) -> anyhow::Result<RunOutcome> {
    let started = chrono::Utc::now();
    // `run-YYYYMMDD-HHMMSS-xxxxxxxx`: Hive readers keep it as text (an all-digit or
    // date-like run id would be read back as a number or a datetime).
    let run_id = format!(
        "run-{}-{}",
        started.format("%Y%m%d-%H%M%S"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let output = output_location(job, &opts)?;

    let lease = lease::acquire(
        output.store.clone(),
        &output.path,
        &job.name,
        Holder::current(&run_id),
        &opts.lease,
        opts.break_lease,
    )
    .await?
    .keep_alive();
    let outcome = run_under_lease(job, &opts, &output, &lease, run_id, started).await;
    if let Err(e) = lease.release().await {
        tracing::warn!(job = %job.name, error = %e, "the job's lease was not released; it expires by itself");
    }
    outcome
}

/// One run, top to bottom, while `lease` is held.
async fn run_under_lease(
    job: &Job,
    opts: &RunOptions,
    output: &Location,
    lease: &LeaseGuard,
    run_id: String,
    started: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<RunOutcome> {
    let mut timings = BTreeMap::new();
    let (store, prefix) = (&output.store, &output.path);

    // 1. Finish what an interrupted run left: publish a committed report,
    //    delete an uncommitted one, move reports of the old layout.
    let recovery = recover_staged(store, prefix, &job.name).await?;
    if !recovery.rolled_forward.is_empty() {
        tracing::info!(job = %job.name, runs = ?recovery.rolled_forward, "published the reports of interrupted runs");
    }
    migrate_legacy_reports(store, prefix, &job.name).await?;

    // 2. The ERP extract first: a wrong mapping or a broken file fails the run
    //    before any SpotDraft request is spent.
    let t = Instant::now();
    let extract = load_job_extract(job).await?;
    let acks = load_job_acknowledgements(job)?;
    timings.insert("load_extract".to_string(), t.elapsed().as_millis() as u64);

    // 3. SpotDraft. The walk stops at its next page if the lease is lost
    //    (another run may then own the job's run state).
    let (sandbox, settings) = ingest_settings(job).await?;
    if let (Some(sandbox), Some(edit)) = (&sandbox, &opts.edit_sandbox) {
        edit(&sandbox.state());
    }
    let t = Instant::now();
    let control = WalkControl {
        stop: Some(lease.lost_flag()),
        ..WalkControl::default()
    };
    let ingested = ingest_with_control(&settings, store.clone(), prefix, opts.mode, &control).await;
    lease.check()?;
    let ingested = ingested.context("ingesting contracts from SpotDraft")?;
    timings.insert("ingest".to_string(), t.elapsed().as_millis() as u64);

    // 4. Contracts that ERP records name but the snapshot lacks (created after
    //    the run's start, outside the status filter, or gone): asked by id, so
    //    only the really missing ones become orphans.
    let mut ingestion = ingested.stats;
    let known_existing = confirm_named_contracts(
        &ingested.client,
        &ingested.snapshot,
        &extract.records,
        job,
        &mut ingestion,
    )
    .await?;
    // 5. Reconcile.
    let t = Instant::now();
    let started_at = started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let ctx = RunContext {
        run_id: run_id.clone(),
        job: job.name.clone(),
        detected_at: started_at.clone(),
        known_existing_contract_ids: known_existing,
    };
    let spec = job.reconcile.clone();
    let (records, snapshot) = (extract.records.clone(), ingested.snapshot.clone());
    let reconciled = tokio::task::spawn_blocking(move || reconcile(snapshot, records, &spec, &ctx))
        .await
        .context("reconciliation stopped")??;
    timings.insert("reconcile".to_string(), t.elapsed().as_millis() as u64);

    // 6. Corrections planned from the drift (published with the reports).
    let mode = opts.apply_mode.unwrap_or(job.apply.mode);
    let t = Instant::now();
    let planned = if job.apply.enabled {
        let journal = read_journal(store, prefix, &job.name).await?;
        let as_of = extract_as_of(job).await;
        let (job_owned, drift) = (job.clone(), reconciled.drift.clone());
        let (snapshot, records) = (ingested.snapshot.clone(), extract.records.clone());
        let mode_name = if mode == ApplyMode::Apply {
            "apply"
        } else {
            "plan"
        };
        let planned = tokio::task::spawn_blocking(move || {
            let input = PlanInput {
                job: &job_owned.name,
                drift: &drift,
                snapshot: &snapshot,
                records: &records,
                spec: &job_owned.reconcile,
                settings: &job_owned.apply,
            };
            prepare_plan(&input, &journal, as_of, mode_name)
        })
        .await
        .context("planning corrections stopped")??;
        timings.insert("plan".to_string(), t.elapsed().as_millis() as u64);
        Some(planned)
    } else {
        None
    };

    // 7. Compare with the job's last complete nightly run: every row's status
    //    and age, the rows resolved since, the trend of recent runs.
    let t = Instant::now();
    let run = RunInfo {
        job: job.name.clone(),
        run_id,
        run_date: started.date_naive(),
        started_at,
        finished_at: String::new(),
    };
    let (tracked, trend) =
        track_across_runs(store, prefix, &run, reconciled.drift.clone(), acks).await?;
    timings.insert("lifecycle".to_string(), t.elapsed().as_millis() as u64);

    // 8. Reports, published only while the lease is still ours.
    let t = Instant::now();
    let run = RunInfo {
        // Milliseconds: runs of one job can finish within the same second, and
        // this orders them (latest.json, the previous nightly run).
        finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ..run
    };
    let stats = &reconciled.stats;
    let inputs = InputCounts {
        contracts: stats.contracts,
        contracts_in_scope: stats.contracts_in_scope,
        erp_rows_read: extract.rows_read,
        erp_rows_valid: stats.erp_records,
        erp_rows_rejected: extract.rejects.height() as u64,
    };
    let mut summary = Summary::from_drift(&run, &tracked.drift, inputs)?;
    summary.ingestion = ingestion;
    summary.reconcile = reconciled.stats.clone();
    summary.timings_ms = timings;
    summary.run_kind = opts.kind;
    summary.lifecycle = Some(tracked.counts.clone());
    summary.trend = trend;
    summary.apply = planned.as_ref().map(|p| p.summary.clone());
    let formats = ReportFormats {
        parquet: job.output.parquet,
        csv: job.output.csv,
        html: job.output.html,
    };
    lease.check()?;
    let extra: Vec<ExtraTable> = planned
        .iter()
        .map(|p| ExtraTable {
            name: PLAN_TABLE,
            frame: p.frame.clone(),
        })
        .collect();
    let tables = RunTables {
        drift: &tracked.drift,
        rejects: &extract.rejects,
        resolved: Some(&tracked.resolved),
        extra: &extra,
    };
    let location =
        write_run_reports(store.clone(), prefix, &run, tables, &summary, &formats).await?;
    summary
        .timings_ms
        .insert("write_reports".to_string(), t.elapsed().as_millis() as u64);

    // 9. The watermark moves once ingestion, reconciliation and reports are
    //    done; what applying corrections does never holds it back.
    lease.check()?;
    commit_watermark(store.clone(), prefix, &job.name, &ingested.pending)
        .await
        .with_context(|| format!("advancing the watermark of job {:?}", job.name))?;

    // 10. Corrections applied, when asked, while the lease is still ours.
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
        let journal = read_journal(store, prefix, &job.name).await?;
        let request = ApplyRequest {
            plan_run_id: &run.run_id,
            apply_id: &run.run_id,
            run_date: run.run_date,
            approved_by: None,
            force: opts.force_apply,
        };
        let targets = crate::apply::stage::Targets {
            sandbox_erp: sandbox_erp(sandbox.as_ref())?,
            spotdraft: Some(ingested.client.clone()),
        };
        let (_, applied) = apply_actions(
            job,
            store,
            prefix,
            actions,
            &journal,
            &request,
            plan_summary.clone(),
            targets,
        )
        .await
        .with_context(|| format!("applying the corrections of run {}", run.run_id))?;
        summary.apply = Some(applied);
        summary
            .timings_ms
            .insert("apply".to_string(), t.elapsed().as_millis() as u64);
    }
    if let Some(sandbox) = sandbox {
        sandbox.shutdown().await;
    }

    let report_dir = output.display_object(&location.dir);
    let tables = location
        .tables
        .iter()
        .map(|(t, dir)| (t.clone(), output.display_object(dir)))
        .collect();
    let report_html = job.output.html.then(|| format!("{report_dir}/report.html"));
    Ok(RunOutcome {
        summary,
        report_dir,
        tables,
        report_html,
    })
}

/// This run's drift against the job's last complete nightly run (see
/// [`crate::report::lifecycle`]), and the counts of recent nightly runs ending
/// with this one.
async fn track_across_runs(
    store: &Arc<dyn ObjectStore>,
    prefix: &object_store::path::Path,
    run: &RunInfo,
    drift: DataFrame,
    acks: Acknowledgements,
) -> anyhow::Result<(Tracked, Vec<TrendPoint>)> {
    let tracked_run = TrackedRun {
        run_id: &run.run_id,
        job: &run.job,
        run_date: run.run_date,
        detected_at: &run.started_at,
    };
    let tracked = compare_with_previous_run(store, prefix, drift, acks, &tracked_run)
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
fn load_job_acknowledgements(job: &Job) -> anyhow::Result<Acknowledgements> {
    match &job.report.acknowledgements {
        Some(path) => Ok(load_acknowledgements(path)
            .with_context(|| format!("report.acknowledgements of job {:?}", job.name))?),
        None => Ok(Acknowledgements::default()),
    }
}

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
        let client = SpotDraftClient::new(
            crate::spotdraft::client::ClientConfig {
                base_url: settings.base_url.clone(),
                client_id: settings.client_id.clone(),
                client_secret: settings.client_secret.clone(),
                user_email: settings.user_email.clone(),
                request_timeout: settings.request_timeout,
            },
            Arc::new(crate::http::Throttle::new(
                settings.requests_per_second,
                settings.max_in_flight,
            )),
            settings.retry.clone(),
        )
        .context("spotdraft.base_url")?;
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
        tracing::warn!(job = %job.name, error = %e, "the job's lease was not released; it expires by itself");
    }
    outcome
}

/// The contracts that ERP records name, are not live in the snapshot, and
/// SpotDraft confirms exist (one list request per 100 ids). Counted in
/// `stats.orphan_check_requests`.
async fn confirm_named_contracts(
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
fn sandbox_erp(sandbox: Option<&Sandbox>) -> anyhow::Result<Option<(url::Url, Secret)>> {
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
async fn extract_as_of(job: &Job) -> Option<chrono::DateTime<chrono::Utc>> {
    let at = storage::resolve(&job.extract.url).ok()?;
    use object_store::ObjectStoreExt;
    at.store.head(&at.path).await.ok().map(|m| m.last_modified)
}

/// Loads and validates the job's ERP extract.
async fn load_job_extract(job: &Job) -> anyhow::Result<Extract> {
    let extract_at = storage::resolve(&job.extract.url)?;
    Ok(load_extract(ExtractSource {
        store: extract_at.store.clone(),
        path: extract_at.path.clone(),
        display_url: &extract_at.display,
        format: match job.extract.format {
            ExtractFileFormat::Csv => ExtractFormat::Csv,
            ExtractFileFormat::Parquet => ExtractFormat::Parquet,
        },
        columns: &job.extract.columns,
    })
    .await?)
}

fn output_location(job: &Job, opts: &RunOptions) -> anyhow::Result<Location> {
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
async fn ingest_settings(job: &Job) -> anyhow::Result<(Option<Sandbox>, IngestSettings)> {
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

/// What `validate --online` checks against the job's SpotDraft workspace (the
/// embedded sandbox for `base_url = "sandbox"`): the credentials, with one
/// list request of one contract, then that every metadata field a `[[compare]]`
/// reads (`key_pointers.<field>`) is defined for some contract type of the
/// workspace (`GET v2.1/public/contract_types/`, then
/// `GET v2.1/public/key_pointers/?contract_type_id=` for each). Returns the
/// problems as (key, reason).
pub async fn check_online(job: &Job) -> anyhow::Result<Vec<(String, String)>> {
    let (sandbox, settings) = ingest_settings(job).await?;
    let client = SpotDraftClient::new(
        crate::spotdraft::client::ClientConfig {
            base_url: settings.base_url.clone(),
            client_id: settings.client_id.clone(),
            client_secret: settings.client_secret.clone(),
            user_email: settings.user_email.clone(),
            request_timeout: settings.request_timeout,
        },
        Arc::new(crate::http::Throttle::new(
            settings.requests_per_second,
            settings.max_in_flight,
        )),
        settings.retry.clone(),
    )
    .context("spotdraft.base_url")?;
    let problems = online_problems(job, &client).await;
    if let Some(sandbox) = sandbox {
        sandbox.shutdown().await;
    }
    Ok(problems)
}

async fn online_problems(job: &Job, client: &SpotDraftClient) -> Vec<(String, String)> {
    let query = crate::spotdraft::client::ListQuery {
        page: 1,
        limit: 1,
        ..Default::default()
    };
    if let Err(e) = client.list_contracts(&query).await {
        return vec![(
            "spotdraft.client_id_env".into(),
            format!(
                "listing one contract failed, so the credentials (or base_url) do not work: {e}"
            ),
        )];
    }
    let named: Vec<(usize, &str)> = job
        .reconcile
        .compares
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((i, c.spotdraft_column.strip_prefix("key_pointers.")?)))
        .collect();
    if named.is_empty() {
        return Vec::new();
    }
    let types = match client.contract_types().await {
        Ok(types) => types,
        Err(e) => {
            return vec![(
                "spotdraft".into(),
                format!("GET v2.1/public/contract_types/ failed: {e}"),
            )]
        }
    };
    let mut defined = std::collections::BTreeSet::new();
    for t in &types {
        match client.key_pointer_definitions(t.id).await {
            Ok(definitions) => defined.extend(
                definitions
                    .into_iter()
                    .flat_map(|d| d.descriptors)
                    .map(|d| d.variable),
            ),
            Err(e) => {
                return vec![(
                    "spotdraft".into(),
                    format!(
                        "GET v2.1/public/key_pointers/?contract_type_id={} failed: {e}",
                        t.id
                    ),
                )]
            }
        }
    }
    named
        .into_iter()
        .filter(|(_, field)| !defined.contains(*field))
        .map(|(i, field)| {
            (
                format!("compare[{i}].spotdraft"),
                format!(
                    "metadata field {field:?} does not exist in the workspace (no definition of its {} contract types names it)",
                    types.len()
                ),
            )
        })
        .collect()
}
