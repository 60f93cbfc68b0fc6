//! Corrections over real loopback HTTP against the sandbox's ERP: a plan
//! changes nothing, an application is exactly-once under faults and on rerun,
//! the cap refuses an oversized run, documents arrive with their checksums,
//! and `apply` refuses plans it must not apply.

use crate::common::{demo_job_in, repo};
use contract_recon::http::RetryPolicy;
use contract_recon::job::{
    load_job, ApplyMode, ErpAuth, Job, RestSinkSettings, SinkSettings, SpotDraftTarget,
};
use contract_recon::runner::{apply_plan, run_job, ApplyPlanRequest, RunOptions, RunOutcome};
use contract_recon::sandbox::{Dataset, Sandbox, SandboxConfig};
use contract_recon::secret::Secret;
use polars::prelude::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// The demo job against a sandbox the test owns, correcting its ERP over REST.
async fn job_and_sandbox(tmp: &Path) -> (Job, Sandbox) {
    let mut job = load_job(&demo_job_in(tmp, &tmp.join("out"))).unwrap();
    let dataset = Dataset::load(&repo().join("fixtures/demo")).unwrap();
    let config = SandboxConfig {
        rate_limit_per_sec: 1000,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(config, dataset).await.unwrap();
    let creds = sandbox.credentials().clone();
    job.spotdraft = SpotDraftTarget::Live {
        base_url: url::Url::parse(&sandbox.spotdraft_base_url()).unwrap(),
        client_id: Secret::new(creds.client_id),
        client_secret: Secret::new(creds.client_secret),
        user_email: None,
    };
    job.fetch.requests_per_second = 1000;
    job.apply.sink = Some(SinkSettings::Rest(Box::new(RestSinkSettings {
        base_url: Some(url::Url::parse(&sandbox.erp_base_url()).unwrap()),
        auth: ErpAuth::Bearer(Secret::new(creds.erp_token)),
        update_path: "contracts/{erp_record_id}".into(),
        attach_path: "contracts/{erp_record_id}/attachments".into(),
        batch_path: "batch".into(),
        use_batch: false,
        requests_per_second: 500,
        max_in_flight: 4,
        request_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(50),
            max_total: Duration::from_secs(30),
        },
    })));
    (job, sandbox)
}

async fn run(job: &Job, mode: ApplyMode) -> RunOutcome {
    run_job(
        job,
        RunOptions {
            apply_mode: Some(mode),
            ..RunOptions::default()
        },
    )
    .await
    .unwrap()
}

fn read_table(dir: &str, name: &str) -> DataFrame {
    let file = std::fs::File::open(Path::new(dir).join(name)).unwrap();
    ParquetReader::new(file).finish().unwrap()
}

fn text(df: &DataFrame, col: &str) -> Vec<String> {
    crate::common::text(df, col)
}

/// (distinct idempotency keys of applied writes, applied writes) in the ERP's write log.
fn applied_writes(sandbox: &Sandbox) -> (usize, usize) {
    let writes = sandbox.state().erp_writes();
    let applied: Vec<_> = writes.iter().filter(|w| w.applied).collect();
    let keys: BTreeSet<_> = applied.iter().map(|w| w.idempotency_key.clone()).collect();
    (keys.len(), applied.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_changes_nothing_and_an_application_is_exactly_once_under_erp_faults() {
    let tmp = tempfile::tempdir().unwrap();
    let (job, sandbox) = job_and_sandbox(tmp.path()).await;

    let planned = run(&job, ApplyMode::Plan).await;
    assert!(
        sandbox.state().erp_writes().is_empty(),
        "a plan writes nothing"
    );
    let plan = read_table(&planned.tables["plan"], "plan.parquet");
    let actions = text(&plan, "action");
    let updates = actions.iter().filter(|a| *a == "update_erp_fields").count();
    let documents = actions.iter().filter(|a| *a == "attach_document").count();
    assert!(updates > 0 && documents > 0, "{actions:?}");
    let html = std::fs::read_to_string(planned.report_html.as_ref().unwrap()).unwrap();
    assert!(html.contains("Planned corrections"));
    // Nothing written is ever empty.
    for values in text(&plan, "values") {
        let v: std::collections::BTreeMap<String, String> = serde_json::from_str(&values).unwrap();
        assert!(v.values().all(|x| !x.trim().is_empty()), "{values}");
    }

    // 5xx, 429 bursts and responses lost after the write was applied.
    sandbox.faults().update(|f| {
        f.erp.http.error_rate = 0.2;
        f.erp.http.burst_429 = 3;
        f.erp.applied_but_502_next = 3;
    });
    let applied = run(&job, ApplyMode::Apply).await;
    let summary = applied.summary.apply.clone().unwrap();
    assert_eq!(summary.failed, 0, "{summary:?}");
    let results = read_table(
        &applied.tables["runs"].replace("/runs/", "/apply_results/"),
        "apply_results.parquet",
    );
    let outcomes = text(&results, "outcome");
    let sent = outcomes.iter().filter(|o| *o == "applied").count();
    assert_eq!(sent, updates + documents, "{outcomes:?}");
    let (keys, writes) = applied_writes(&sandbox);
    assert_eq!(
        (keys, writes),
        (sent, sent),
        "distinct keys == applied writes == actions"
    );
    // Documents arrived with the snapshot's checksums (fetch_documents is on).
    let (ids, kinds, sums) = (
        text(&plan, "erp_record_id"),
        text(&plan, "action"),
        text(&plan, "document_sha256"),
    );
    for i in (0..plan.height()).filter(|i| kinds[*i] == "attach_document") {
        let stored = sandbox.state().attachments(&ids[i]);
        assert_eq!(stored.len(), 1, "{}", ids[i]);
        assert!(!sums[i].is_empty());
        assert_eq!(stored[0].sha256.to_ascii_lowercase(), sums[i], "{}", ids[i]);
    }

    // The extract is older than the application: a rerun sends nothing again.
    sandbox.faults().update(|f| *f = Default::default());
    let again = run(&job, ApplyMode::Apply).await;
    assert_eq!(applied_writes(&sandbox), (sent, sent));
    let outcomes = again.summary.apply.unwrap().outcomes;
    assert_eq!(
        outcomes.get("already_applied").copied(),
        Some(sent as u64),
        "{outcomes:?}"
    );
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_refuses_an_oversized_run_and_apply_refuses_modified_foreign_and_old_plans() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut job, sandbox) = job_and_sandbox(tmp.path()).await;
    job.apply.max_actions_per_run = 1;
    let refused = run(&job, ApplyMode::Apply).await;
    let apply = refused.summary.apply.clone().unwrap();
    assert!(
        apply
            .refused
            .as_deref()
            .unwrap_or("")
            .contains("max_actions_per_run"),
        "{apply:?}"
    );
    assert!(sandbox.state().erp_writes().is_empty());

    let run_id = refused.summary.run_id.clone();
    let now = chrono::Utc::now();
    let ask = |days: i64| ApplyPlanRequest {
        run_id: run_id.clone(),
        approved_by: Some("controller".into()),
        force: true,
        now: Some(now + chrono::Duration::days(days)),
        ..ApplyPlanRequest::default()
    };
    // Too old.
    let err = apply_plan(&job, ask(8)).await.unwrap_err().to_string();
    assert!(err.contains("max_plan_age_days"), "{err}");
    // Another job's run.
    let mut other = job.clone();
    other.name = "other".into();
    let err = apply_plan(&other, ask(0)).await.unwrap_err().to_string();
    assert!(err.contains("no run"), "{err}");
    // A modified plan.
    let plan_dir = refused.tables["plan"].clone();
    let csv = Path::new(&plan_dir).join("plan.parquet");
    let mut plan = read_table(&plan_dir, "plan.parquet");
    let values = plan.column("values").unwrap().str().unwrap().clone();
    let edited: StringChunked = values
        .iter()
        .map(|v| v.map(|v| v.replacen("ACTIVE", "CANCELLED", 1)))
        .collect();
    plan.with_column(
        edited
            .into_series()
            .with_name("values".into())
            .into_column(),
    )
    .unwrap();
    let original = std::fs::read(&csv).unwrap();
    ParquetWriter::new(std::fs::File::create(&csv).unwrap())
        .finish(&mut plan)
        .unwrap();
    let err = apply_plan(&job, ask(0)).await.unwrap_err().to_string();
    assert!(err.contains("modified"), "{err}");
    assert!(
        sandbox.state().erp_writes().is_empty(),
        "refused before anything is sent"
    );

    // The reviewed plan, restored, applies with --force.
    std::fs::write(&csv, original).unwrap();
    let applied = apply_plan(&job, ask(0)).await.unwrap();
    assert_eq!(applied.summary.failed, 0, "{:?}", applied.summary);
    assert!(applied_writes(&sandbox).1 > 1);
    sandbox.shutdown().await;
}

/// A job file for a child process: a generated dataset of `contracts` served
/// by a sandbox the test owns, corrections over REST to its ERP, batches of 2.
async fn child_job(tmp: &Path, contracts: u64) -> (std::path::PathBuf, Sandbox) {
    let data = tmp.join("data");
    let opts = contract_recon::sandbox::gen::GenOptions {
        documents: Some(true),
        ..contract_recon::sandbox::gen::GenOptions::new(contracts, 7, &data)
    };
    contract_recon::sandbox::gen::generate(&opts).unwrap();
    let sandbox = Sandbox::start(
        SandboxConfig {
            rate_limit_per_sec: 1000,
            ..SandboxConfig::default()
        },
        Dataset::load(&data).unwrap(),
    )
    .await
    .unwrap();
    let demo = std::fs::read_to_string(repo().join("jobs/demo.toml")).unwrap();
    let (start, end) = (
        demo.find("[spotdraft]").unwrap(),
        demo.find("[erp.extract]").unwrap(),
    );
    let spotdraft = format!(
        "[spotdraft]\nbase_url = \"{}\"\nclient_id_env = \"SD_ID\"\nclient_secret_env = \"SD_SECRET\"\nrequests_per_second = 10\nfetch_documents = true\n\n",
        sandbox.spotdraft_base_url()
    );
    let apply_at = demo.find("[apply]").unwrap();
    let apply = format!(
        "[apply]\nenabled = true\nmode = \"apply\"\nsink = \"rest\"\nbatch_size = 2\n\n[apply.rest]\nbase_url = \"{}\"\ntoken_env = \"ERP_TOKEN\"\nrequests_per_second = 200\n",
        sandbox.erp_base_url()
    );
    let text = format!(
        "{}{}{}{}",
        &demo[..start],
        spotdraft,
        &demo[end..apply_at],
        apply
    )
    .replace(
        "\"../fixtures/demo/erp_extract.csv\"",
        &format!("{:?}", data.join("erp_extract.csv")),
    )
    .replace("\"../out/demo\"", &format!("{:?}", tmp.join("out")));
    let path = tmp.join("child.toml");
    std::fs::write(&path, text).unwrap();
    (path, sandbox)
}

fn run_child(job: &Path, sandbox: &Sandbox, crash_at: Option<&str>) -> std::process::Output {
    let creds = sandbox.credentials();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_contract-recon"));
    cmd.args(["run", job.to_str().unwrap()])
        .env("CONTRACT_RECON_LOG", "warn")
        .env("SD_ID", &creds.client_id)
        .env("SD_SECRET", &creds.client_secret)
        .env("ERP_TOKEN", &creds.erp_token);
    match crash_at {
        Some(point) => cmd.env(contract_recon::crashpoint::CRASH_AT_ENV, point),
        // The killed run's process is gone: take its lease.
        None => cmd.arg("--break-lease"),
    };
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_apply_then_run_again_has_exactly_once_effect() {
    let tmp = tempfile::tempdir().unwrap();
    let (job, sandbox) = child_job(tmp.path(), 40).await;
    let killed = run_child(&job, &sandbox, Some("apply.between_batches"));
    let stderr = String::from_utf8_lossy(&killed.stderr);
    assert!(
        !killed.status.success() && stderr.contains("crash point apply.between_batches"),
        "{stderr}"
    );
    let after_kill = applied_writes(&sandbox);
    assert!(
        after_kill.1 >= 1,
        "the first batch was applied before the kill"
    );

    let rerun = run_child(&job, &sandbox, None);
    let stdout = String::from_utf8_lossy(&rerun.stdout);
    assert!(
        rerun.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&rerun.stderr)
    );
    let (keys, writes) = applied_writes(&sandbox);
    assert_eq!(keys, writes, "no key applied twice");
    assert!(writes > after_kill.1, "the rerun applied the rest");
    // Every planned sendable action was applied exactly once over both runs.
    let plans = glob_files(&tmp.path().join("out/plan"), "plan.parquet");
    let last = plans.last().unwrap();
    let plan = ParquetReader::new(std::fs::File::open(last).unwrap())
        .finish()
        .unwrap();
    let sendable = text(&plan, "action")
        .iter()
        .filter(|a| *a != "review")
        .count();
    assert_eq!(
        writes, sendable,
        "distinct keys == applied writes == actions"
    );
    sandbox.shutdown().await;
}

fn glob_files(dir: &Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == name) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
