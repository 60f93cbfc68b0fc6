//! Apply stage, end to end: plan a run's corrections, apply a plan through the
//! job's sink and publish its results, and load a published plan for
//! `contract-recon apply` (refusing one that must not be applied).

use super::actions::{plan_actions, Action, ActionKind, PlanInput};
use super::execute::{execute_plan, ApplyContext, Execution};
use super::journal::JournalView;
use super::keys::{action_key, assign_keys, content_hash};
use super::plan::{plan_checksum, plan_frame, plan_from_frame};
use super::results::results_frame;
use super::spotdraft::SpotDraftSide;
use super::ApplyError;
use crate::erp::files::FilesSink;
use crate::erp::rest::{ErpAuth as RestAuth, PathTemplates, RestSink, RestSinkConfig};
use crate::error_chain::error_chain;
use crate::job::{ErpAuth, Job, RestSinkSettings, SinkSettings};
use crate::report::layout::{job_root, table_run_dir, APPLY_RESULTS_TABLE, PLAN_TABLE, RUNS_TABLE};
use crate::report::{
    write_table_run_with, ApplySummary, ExtraTable, ReportFormats, RunInfo, Summary, SUCCESS_FILE,
};
use crate::secret::Secret;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use polars::prelude::*;
use std::sync::Arc;

/// The outcome counts of an application (the summary's `apply` section), in
/// its `apply_results` folder.
pub const APPLY_SUMMARY_FILE: &str = "apply_summary.json";

/// A planned run: its actions (keys assigned), the `plan` table and the summary section.
pub struct Planned {
    /// The actions, in plan order.
    pub actions: Vec<Action>,
    /// The `plan` table.
    pub frame: DataFrame,
    /// The summary's `apply` section (planned counts, checksum).
    pub summary: ApplySummary,
}

/// Plans `input`'s corrections, keyed against `journal`.
pub fn prepare_plan(
    input: &PlanInput,
    journal: &JournalView,
    extract_as_of: Option<chrono::DateTime<chrono::Utc>>,
    mode: &str,
) -> Result<Planned, ApplyError> {
    let mut actions = plan_actions(input)?;
    actions.extend(super::create::plan_creates(input, journal)?);
    assign_keys(input.job, &mut actions, journal, extract_as_of);
    // What waits for a create (its back-reference, its document) is planned
    // until it is applied, once.
    let mut seen = std::collections::HashSet::new();
    actions.retain(|a| {
        !super::create_lane::waits_for_create(a)
            || (seen.insert(a.key.clone())
                && journal
                    .latest(&a.key)
                    .is_none_or(|e| e.outcome != "applied"))
    });
    let polars = |source: PolarsError| ApplyError::Polars {
        job: input.job.to_string(),
        source: Box::new(source),
    };
    let frame = plan_frame(&actions).map_err(polars)?;
    let mut summary = ApplySummary {
        mode: mode.to_string(),
        plan_checksum: plan_checksum(&frame).map_err(polars)?,
        ..ApplySummary::default()
    };
    for a in &actions {
        *summary
            .planned
            .entry(a.kind.as_str().to_string())
            .or_default() += 1;
        if a.kind == ActionKind::Review {
            let reason = a.reason.clone().unwrap_or_default();
            // Field reasons start with the field name: count by the reason itself.
            *summary.review_reasons.entry(reason).or_default() += 1;
        }
    }
    Ok(Planned {
        actions,
        frame,
        summary,
    })
}

/// How an application is asked for.
pub struct ApplyRequest<'a> {
    /// The run whose plan is applied.
    pub plan_run_id: &'a str,
    /// This application's id: the run id when a run applies its own plan, the
    /// `apply` command's id otherwise (names the journal folder and the
    /// `apply_results` folder).
    pub apply_id: &'a str,
    /// The `run_date=` of the results.
    pub run_date: chrono::NaiveDate,
    /// Who approved the plan.
    pub approved_by: Option<&'a str>,
    /// Apply over `max_actions_per_run`.
    pub force: bool,
}

/// What corrections are written to besides the sink's own settings.
#[derive(Default)]
pub struct Targets {
    /// The embedded sandbox's ERP (base URL, bearer token), when the job's
    /// `apply.rest.base_url` is `"sandbox"`.
    pub sandbox_erp: Option<(url::Url, Secret)>,
    /// SpotDraft (documents, write-backs); `None`: those stay pending.
    pub spotdraft: Option<crate::spotdraft::SpotDraftClient>,
}

/// The REST sink the job describes.
pub fn rest_sink(
    job: &Job,
    rest: &RestSinkSettings,
    sandbox_erp: Option<&(url::Url, Secret)>,
) -> Result<RestSink, ApplyError> {
    let bad = |message: String| ApplyError::Sink {
        job: job.name.clone(),
        key: "apply.rest.base_url".into(),
        message,
    };
    let (base_url, auth) = match (&rest.base_url, &rest.auth, sandbox_erp) {
        (None, _, Some((url, token))) => (url.clone(), RestAuth::Bearer(token.clone())),
        (None, _, None) => {
            return Err(bad(
                "\"sandbox\" needs the embedded sandbox, which this run did not start".into(),
            ))
        }
        (Some(url), ErpAuth::Bearer(t), _) => (url.clone(), RestAuth::Bearer(t.clone())),
        (Some(url), ErpAuth::Basic { user, password }, _) => (
            url.clone(),
            RestAuth::Basic {
                user: user.clone(),
                password: password.clone(),
            },
        ),
        (Some(url), ErpAuth::Header { name, value }, _) => (
            url.clone(),
            RestAuth::Header {
                name: Secret::new(name.clone()),
                value: value.clone(),
            },
        ),
        (Some(_), ErpAuth::Sandbox, _) => return Err(bad("no credentials for the ERP".into())),
    };
    let id = |t: &str| t.replace("{erp_record_id}", "{id}");
    let config = RestSinkConfig {
        paths: PathTemplates {
            record: id(&rest.update_path),
            attachments: id(&rest.attach_path),
            batch: rest.batch_path.clone(),
        },
        requests_per_second: rest.requests_per_second,
        max_in_flight: rest.max_in_flight,
        request_timeout: rest.request_timeout,
        retry: rest.retry.clone(),
        ..RestSinkConfig::new(base_url, auth)
    };
    RestSink::new(config).map_err(|e| bad(e.to_string()))
}

/// Applies `actions` through the job's sink, journals each batch, and
/// publishes the `apply_results` table. Returns the execution and the summary
/// section with outcomes counted.
#[allow(clippy::too_many_arguments)]
pub async fn apply_actions(
    job: &Job,
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    actions: &[Action],
    journal: &JournalView,
    request: &ApplyRequest<'_>,
    mut summary: ApplySummary,
    targets: Targets,
) -> Result<(Execution, ApplySummary), ApplyError> {
    let spotdraft = SpotDraftSide(targets.spotdraft);
    let settings = &job.apply;
    let ctx = |bulk: bool, max_in_flight: usize| ApplyContext {
        job: &job.name,
        plan_run_id: request.plan_run_id,
        apply_id: request.apply_id,
        approved_by: request.approved_by,
        force: request.force,
        bulk,
        max_in_flight,
        settings,
        store: store.clone(),
        prefix: prefix.clone(),
        create: job.create.as_ref(),
    };
    let execution = match &settings.sink {
        Some(SinkSettings::Files { url }) => {
            let at = crate::storage::resolve(url).map_err(|e| ApplyError::Sink {
                job: job.name.clone(),
                key: "apply.files.url".into(),
                message: crate::error_chain::error_chain(&e),
            })?;
            let sink = FilesSink::new(at.store.clone(), &at.path, &job.name, request.apply_id);
            execute_plan(actions, journal, &sink, &spotdraft, &ctx(true, 4)).await?
        }
        Some(SinkSettings::Rest(rest)) => {
            let sink = rest_sink(job, rest, targets.sandbox_erp.as_ref())?;
            execute_plan(
                actions,
                journal,
                &sink,
                &spotdraft,
                &ctx(rest.use_batch, rest.max_in_flight),
            )
            .await?
        }
        None => {
            return Err(ApplyError::Sink {
                job: job.name.clone(),
                key: "apply.sink".into(),
                message: "no sink configured".into(),
            })
        }
    };
    summary.refused = execution.refused.clone();
    summary.document_bytes = execution.document_bytes;
    summary.count(execution.results.iter().map(|r| r.outcome.as_str()));
    let frame = results_frame(&execution.results, request.plan_run_id).map_err(|source| {
        ApplyError::Polars {
            job: job.name.clone(),
            source: Box::new(source),
        }
    })?;
    let run = RunInfo {
        job: job.name.clone(),
        run_id: request.apply_id.to_string(),
        run_date: request.run_date,
        started_at: String::new(),
        finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let formats = ReportFormats {
        parquet: job.output.parquet,
        csv: job.output.csv,
        html: false,
    };
    // The outcome counts next to the results: a run that applies its own plan
    // has already published its summary.json (with the planned counts only).
    let counts = serde_json::to_vec_pretty(&summary).map_err(|e| ApplyError::Sink {
        job: job.name.clone(),
        key: "output.url".into(),
        message: format!("encoding {APPLY_SUMMARY_FILE}: {e}"),
    })?;
    write_table_run_with(
        store.clone(),
        prefix,
        &run,
        ExtraTable {
            name: APPLY_RESULTS_TABLE,
            frame,
        },
        &formats,
        vec![(APPLY_SUMMARY_FILE.to_string(), counts)],
    )
    .await
    .map_err(|e| ApplyError::Sink {
        job: job.name.clone(),
        key: "output.url".into(),
        message: format!("publishing apply_results: {}", error_chain(&e)),
    })?;
    Ok((execution, summary))
}

/// A published plan, checked.
pub struct LoadedPlan {
    /// The actions as written.
    pub actions: Vec<Action>,
    /// The run's summary (with its `apply` section).
    pub summary: Summary,
}

/// Loads the plan of `run_id` of `job` for `contract-recon apply`, refusing,
/// before anything is sent: a run that is not complete (no `_SUCCESS`), a plan
/// of another job, a plan whose content no longer matches its checksum or its
/// keys, and a plan older than `[apply] max_plan_age_days`.
pub async fn load_plan(
    job: &Job,
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    run_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<LoadedPlan, ApplyError> {
    let refuse = |reason: String| ApplyError::PlanRefused {
        job: job.name.clone(),
        run_id: run_id.to_string(),
        reason,
    };
    let run_date = find_run_date(store, prefix, &job.name, run_id)
        .await?
        .ok_or_else(|| {
            refuse(format!(
                "no run {run_id} of job {} under {}",
                job.name,
                job_root(prefix, RUNS_TABLE, &job.name)
            ))
        })?;
    let runs_dir = table_run_dir(prefix, RUNS_TABLE, &job.name, run_date, run_id);
    let plan_dir = table_run_dir(prefix, PLAN_TABLE, &job.name, run_date, run_id);
    for dir in [&runs_dir, &plan_dir] {
        if get(store, &dir.clone().join(SUCCESS_FILE), &job.name)
            .await?
            .is_none()
        {
            return Err(refuse(format!(
                "{dir} has no {SUCCESS_FILE}: the run did not complete"
            )));
        }
    }
    let summary_path = runs_dir.clone().join("summary.json");
    let bytes = get(store, &summary_path, &job.name)
        .await?
        .ok_or_else(|| refuse(format!("{summary_path} is missing")))?;
    let summary: Summary = serde_json::from_slice(&bytes)
        .map_err(|e| refuse(format!("{summary_path} is unreadable: {e}")))?;
    if summary.job != job.name {
        return Err(refuse(format!(
            "the plan belongs to job {:?}, not {:?}",
            summary.job, job.name
        )));
    }
    let Some(apply) = &summary.apply else {
        return Err(refuse(
            "the run planned no corrections ([apply] was not enabled)".into(),
        ));
    };
    let age = now.signed_duration_since(
        chrono::DateTime::parse_from_rfc3339(&summary.finished_at)
            .map(|t| t.to_utc())
            .unwrap_or(now),
    );
    let max = chrono::Duration::from_std(job.apply.max_plan_age).unwrap_or(chrono::TimeDelta::MAX);
    if age > max {
        return Err(refuse(format!(
            "the plan is {} days old, older than [apply] max_plan_age_days = {}: run the job again for a fresh plan",
            age.num_days(),
            max.num_days()
        )));
    }
    let plan_path = plan_dir.clone().join("plan.parquet");
    let csv_path = plan_dir.join("plan.csv");
    let frame = match get(store, &plan_path, &job.name).await? {
        Some(bytes) => ParquetReader::new(std::io::Cursor::new(bytes.to_vec())).finish(),
        None => {
            let bytes = get(store, &csv_path, &job.name)
                .await?
                .ok_or_else(|| refuse(format!("{plan_path} is missing")))?;
            CsvReadOptions::default()
                .with_has_header(true)
                .with_infer_schema_length(Some(0))
                .into_reader_with_file_handle(std::io::Cursor::new(bytes.to_vec()))
                .finish()
        }
    }
    .map_err(|e| refuse(format!("{plan_path} is unreadable: {}", error_chain(&e))))?;
    let checksum =
        plan_checksum(&frame).map_err(|e| refuse(format!("{plan_path}: {}", error_chain(&e))))?;
    if checksum != apply.plan_checksum {
        return Err(refuse(format!(
            "{plan_path} no longer matches the checksum its run recorded ({} != {}): it was modified",
            checksum, apply.plan_checksum
        )));
    }
    let actions = plan_from_frame(&frame).map_err(|e| refuse(format!("{plan_path}: {e}")))?;
    for a in &actions {
        let expected = action_key(&content_hash(&job.name, a), a.generation);
        if a.key != expected {
            return Err(ApplyError::KeyMismatch {
                job: job.name.clone(),
                run_id: run_id.to_string(),
                record: a
                    .erp_record_id
                    .clone()
                    .or_else(|| a.contract_id.clone())
                    .unwrap_or_default(),
                key: a.key.clone(),
                expected,
            });
        }
    }
    Ok(LoadedPlan { actions, summary })
}

async fn get(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    job: &str,
) -> Result<Option<bytes::Bytes>, ApplyError> {
    let err = |source| ApplyError::Store {
        job: job.to_string(),
        op: "reading",
        path: path.to_string(),
        source: Box::new(source),
    };
    match store.get(path).await {
        Ok(got) => Ok(Some(got.bytes().await.map_err(err)?)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(err(e)),
    }
}

/// The `run_date=` partition holding `run_id` of `job` in `runs`.
async fn find_run_date(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    job: &str,
    run_id: &str,
) -> Result<Option<chrono::NaiveDate>, ApplyError> {
    let root = job_root(prefix, RUNS_TABLE, job);
    let listed = store
        .list_with_delimiter(Some(&root))
        .await
        .map_err(|source| ApplyError::Store {
            job: job.to_string(),
            op: "listing",
            path: root.to_string(),
            source: Box::new(source),
        })?;
    for dir in listed.common_prefixes {
        let Some(date) = dir
            .filename()
            .and_then(|d| d.strip_prefix("run_date="))
            .and_then(|d| d.parse().ok())
        else {
            continue;
        };
        let run_dir = table_run_dir(prefix, RUNS_TABLE, job, date, run_id);
        if get(store, &run_dir.join(SUCCESS_FILE), job)
            .await?
            .is_some()
        {
            return Ok(Some(date));
        }
        // An incomplete run still has its folder: say so rather than "no run".
        let listed = store
            .list_with_delimiter(Some(&dir))
            .await
            .map_err(|source| ApplyError::Store {
                job: job.to_string(),
                op: "listing",
                path: dir.to_string(),
                source: Box::new(source),
            })?;
        if listed
            .common_prefixes
            .iter()
            .any(|p| p.filename() == Some(&format!("run_id={run_id}")))
        {
            return Ok(Some(date));
        }
    }
    Ok(None)
}
