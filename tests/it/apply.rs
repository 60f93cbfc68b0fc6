//! Corrections over real loopback HTTP against the sandbox's ERP: a plan
//! changes nothing, an application is exactly-once under faults and on rerun,
//! the cap refuses an oversized run, documents arrive with their checksums,
//! and `apply` refuses plans it must not apply.

use crate::common::{demo_job_against_own_sandbox, repo, rest_sink_to};
use contract_recon::job::{ApplyMode, Job, SinkSettings, SpotDraftTarget};
use contract_recon::runner::{apply_plan, run_job, ApplyPlanRequest, RunOptions, RunOutcome};
use contract_recon::sandbox::{Dataset, Sandbox, SandboxConfig};
use contract_recon::secret::Secret;
use polars::prelude::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// The demo job against a sandbox the test owns, correcting its ERP over REST.
async fn job_and_sandbox(tmp: &Path) -> (Job, Sandbox) {
    let (mut job, sandbox) = demo_job_against_own_sandbox(tmp).await;
    job.apply.sink = Some(rest_sink_to(&sandbox, 8));
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
    // The outcome counts are published next to the results (summary.json was
    // published before the application, with the planned counts).
    let counts: contract_recon::report::ApplySummary = serde_json::from_slice(
        &std::fs::read(
            Path::new(&applied.tables["runs"].replace("/runs/", "/apply_results/"))
                .join("apply_summary.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(counts.outcomes, summary.outcomes);
    assert_eq!(counts.outcomes.get("applied").copied(), Some(sent as u64));
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

/// Points `job` at its own copy of the demo extract and returns its path.
fn own_extract(tmp: &Path, job: &mut Job) -> std::path::PathBuf {
    let path = tmp.join("erp_extract.csv");
    std::fs::copy(repo().join("fixtures/demo/erp_extract.csv"), &path).unwrap();
    job.extract.url = path.display().to_string();
    path
}

/// Rewrites the extract at `path` as a fresh export of the sandbox ERP: every
/// mapped column of a known record takes the record's current value (a
/// `VERSION` column too, when `with_version`).
fn export_extract(sandbox: &Sandbox, job: &Job, path: &Path, with_version: bool) {
    let mut df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .unwrap()
        .finish()
        .unwrap();
    let id_col = &job.extract.columns["erp_record_id"];
    let ids = text(&df, id_col);
    let records: Vec<Option<serde_json::Value>> = ids
        .iter()
        .map(|id| {
            sandbox
                .state()
                .erp_record(id.trim())
                .map(|r| serde_json::to_value(r).unwrap())
        })
        .collect();
    let mut columns: Vec<(String, String)> = job
        .extract
        .columns
        .iter()
        .filter(|(canonical, _)| *canonical != "erp_record_id" && *canonical != "version")
        .map(|(c, e)| (c.clone(), e.clone()))
        .collect();
    if with_version {
        columns.push(("version".into(), "VERSION".into()));
    }
    for (canonical, column) in columns {
        let old = if df.column(&column).is_ok() {
            text(&df, &column)
        } else {
            vec![String::new(); df.height()]
        };
        let new: StringChunked = records
            .iter()
            .zip(old)
            .map(|(r, old)| match r {
                Some(r) => Some(match &r[canonical.as_str()] {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    _ => String::new(),
                }),
                None => Some(old),
            })
            .collect();
        df.with_column(
            new.into_series()
                .with_name(column.as_str().into())
                .into_column(),
        )
        .unwrap();
    }
    // A later export: its modification time is after every earlier application.
    std::thread::sleep(Duration::from_millis(20));
    CsvWriter::new(std::fs::File::create(path).unwrap())
        .finish(&mut df)
        .unwrap();
}

/// `PATCH`es record `id` of the sandbox ERP directly (an ERP user's edit).
async fn erp_patch(sandbox: &Sandbox, id: &str, fields: serde_json::Value, key: &str) {
    let url = format!(
        "{}/contracts/{}",
        sandbox.erp_base_url().trim_end_matches('/'),
        urlencoding(id)
    );
    let resp = reqwest::Client::new()
        .patch(url)
        .bearer_auth(&sandbox.credentials().erp_token)
        .header("Idempotency-Key", key)
        .json(&serde_json::json!({ "fields": fields }))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    assert!(
        status.is_success(),
        "{status}: {}",
        resp.text().await.unwrap()
    );
}

fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The applied writes of the sandbox ERP's log whose path names record `id`.
fn writes_to(sandbox: &Sandbox, id: &str) -> Vec<contract_recon::sandbox::store::ErpWrite> {
    let needle = format!("/contracts/{}", urlencoding(id));
    sandbox
        .state()
        .erp_writes()
        .into_iter()
        .filter(|w| w.path.ends_with(&needle) || w.path.contains(&format!("{needle}/")))
        .collect()
}

fn results_of(outcome: &RunOutcome) -> DataFrame {
    read_table(
        &outcome.tables["runs"].replace("/runs/", "/apply_results/"),
        "apply_results.parquet",
    )
}

fn sendable(plan: &DataFrame) -> Vec<usize> {
    let kinds = text(plan, "action");
    (0..plan.height())
        .filter(|i| kinds[*i] != "review")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revert_in_the_erp_is_corrected_again_with_a_new_generation_and_not_resent_when_nothing_changed(
) {
    let tmp = tempfile::tempdir().unwrap();
    let (mut job, sandbox) = job_and_sandbox(tmp.path()).await;
    let extract = own_extract(tmp.path(), &mut job);
    let before: Vec<serde_json::Value> = sandbox
        .state()
        .erp_records()
        .iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect();
    let first = run(&job, ApplyMode::Apply).await;
    assert_eq!(first.summary.apply.as_ref().unwrap().failed, 0);
    let plan = read_table(&first.tables["plan"], "plan.parquet");
    let (kinds, ids, values, keys) = (
        text(&plan, "action"),
        text(&plan, "erp_record_id"),
        text(&plan, "values"),
        text(&plan, "action_id"),
    );
    // An update whose every field had a text value before (an ERP user can put them back).
    let (i, old) = (0..plan.height())
        .filter(|i| kinds[*i] == "update_erp_fields")
        .find_map(|i| {
            let v: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&values[i]).unwrap();
            let rec = before
                .iter()
                .find(|r| r["erp_record_id"] == ids[i].as_str())?;
            let old: serde_json::Map<String, serde_json::Value> = v
                .keys()
                .map(|k| (k.clone(), rec[k.as_str()].clone()))
                .collect();
            old.values().all(|x| x.is_string()).then_some((i, old))
        })
        .expect("an update of text values");
    let record = ids[i].clone();
    let corrected = sandbox.state().erp_record(&record).unwrap();

    // Someone puts the old values back, and the next export shows them.
    erp_patch(
        &sandbox,
        &record,
        serde_json::Value::Object(old),
        "revert-1",
    )
    .await;
    export_extract(&sandbox, &job, &extract, false);
    let writes_before = applied_writes(&sandbox).1;
    let second = run(&job, ApplyMode::Apply).await;
    let plan2 = read_table(&second.tables["plan"], "plan.parquet");
    let again = sendable(&plan2);
    assert_eq!(again.len(), 1, "only the reverted record: {plan2}");
    let j = again[0];
    assert_eq!(text(&plan2, "erp_record_id")[j], record);
    assert_eq!(text(&plan2, "values")[j], values[i], "the same content");
    assert_eq!(text(&plan2, "generation")[j], "1", "the next generation");
    let key2 = text(&plan2, "action_id")[j].clone();
    assert_ne!(key2, keys[i], "a new key");
    assert_eq!(
        text(&results_of(&second), "outcome")
            .iter()
            .filter(|o| *o == "applied")
            .count(),
        1
    );
    assert_eq!(applied_writes(&sandbox).1, writes_before + 1);
    let last = writes_to(&sandbox, &record).pop().unwrap();
    assert_eq!(last.idempotency_key.as_deref(), Some(key2.as_str()));
    let fixed = sandbox.state().erp_record(&record).unwrap();
    assert_eq!(
        serde_json::to_value(&fixed).unwrap()["status"],
        serde_json::to_value(&corrected).unwrap()["status"]
    );

    // Nothing changed since: the same correction is not sent again.
    let third = run(&job, ApplyMode::Apply).await;
    assert_eq!(applied_writes(&sandbox).1, writes_before + 1);
    let outcomes = third.summary.apply.unwrap().outcomes;
    assert_eq!(
        outcomes.get("already_applied").copied(),
        Some(1),
        "{outcomes:?}"
    );
    assert_eq!(outcomes.get("applied"), None, "{outcomes:?}");
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_precondition_failure_for_one_action_is_kept_for_review_never_stops_the_others_and_is_not_resent(
) {
    let tmp = tempfile::tempdir().unwrap();
    let (mut job, sandbox) = job_and_sandbox(tmp.path()).await;
    let extract = own_extract(tmp.path(), &mut job);
    job.extract
        .columns
        .insert("version".into(), "VERSION".into());
    job.apply.if_match = Some("version".into());
    export_extract(&sandbox, &job, &extract, true);

    let planned = run(&job, ApplyMode::Plan).await;
    let plan = read_table(&planned.tables["plan"], "plan.parquet");
    let (kinds, ids) = (text(&plan, "action"), text(&plan, "erp_record_id"));
    let i = (0..plan.height())
        .find(|i| kinds[*i] == "update_erp_fields")
        .unwrap();
    assert_eq!(text(&plan, "if_match")[i], "1");
    let record = ids[i].clone();
    // The record moves on after the export: its version is no longer the extract's.
    let current = serde_json::to_value(sandbox.state().erp_record(&record).unwrap()).unwrap();
    let (field, value) = ["currency", "vendor_id", "po_number", "status"]
        .iter()
        .find_map(|f| current[*f].as_str().map(|v| (f.to_string(), v.to_string())))
        .unwrap();
    erp_patch(
        &sandbox,
        &record,
        serde_json::json!({ field: value }),
        "edit-1",
    )
    .await;
    let edits = applied_writes(&sandbox).1;

    let applied = run(&job, ApplyMode::Apply).await;
    let results = results_of(&applied);
    let (outcomes, rids, statuses, messages) = (
        text(&results, "outcome"),
        text(&results, "erp_record_id"),
        text(&results, "status"),
        text(&results, "message"),
    );
    let r = (0..results.height())
        .find(|r| rids[*r] == record && outcomes[*r] != "review")
        .unwrap();
    assert_eq!(outcomes[r], "rejected", "{results}");
    assert_eq!(statuses[r], "412");
    assert!(
        messages[r].contains("precondition_failed"),
        "{}",
        messages[r]
    );
    let others = sendable(&plan).len() - 1;
    assert!(others > 0);
    assert_eq!(
        outcomes.iter().filter(|o| *o == "applied").count(),
        others,
        "the others were applied: {outcomes:?}"
    );
    assert_eq!(applied_writes(&sandbox).1, edits + others);
    assert!(applied.summary.apply.as_ref().unwrap().failed >= 1);
    let tried = writes_to(&sandbox, &record).len();

    // The same content is not sent again.
    let again = run(&job, ApplyMode::Apply).await;
    assert_eq!(writes_to(&sandbox, &record).len(), tried, "not re-sent");
    let results = results_of(&again);
    let (outcomes, rids, messages) = (
        text(&results, "outcome"),
        text(&results, "erp_record_id"),
        text(&results, "message"),
    );
    let r = (0..results.height())
        .find(|r| rids[*r] == record && outcomes[*r] != "review")
        .unwrap();
    assert_eq!(outcomes[r], "rejected_earlier");
    assert!(
        messages[r].contains("precondition_failed"),
        "{}",
        messages[r]
    );

    // A new export carries the record's current version: new content, sent and applied.
    export_extract(&sandbox, &job, &extract, true);
    let fresh = run(&job, ApplyMode::Apply).await;
    let results = results_of(&fresh);
    let (outcomes, rids) = (text(&results, "outcome"), text(&results, "erp_record_id"));
    let r = (0..results.height())
        .find(|r| rids[*r] == record && outcomes[*r] != "review")
        .unwrap();
    assert_eq!(outcomes[r], "applied", "{results}");
    assert_eq!(writes_to(&sandbox, &record).len(), tried + 1);
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_null_spotdraft_value_is_never_written_to_the_erp() {
    let tmp = tempfile::tempdir().unwrap();
    let (job, sandbox) = job_and_sandbox(tmp.path()).await;
    // A linked contract whose record has an amount loses its contract value.
    let contract = sandbox
        .state()
        .contracts()
        .into_iter()
        .find(|c| {
            let id = c.contract.external_metadata.id.clone().unwrap_or_default();
            c.key_pointers
                .iter()
                .any(|k| k.field_name == "contract_value" && !k.value.is_null())
                && sandbox
                    .state()
                    .erp_record(id.trim())
                    .is_some_and(|r| r.amount.is_some())
        })
        .unwrap();
    let record = contract.contract.external_metadata.id.clone().unwrap();
    let record = record.trim().to_string();
    assert!(sandbox.state().set_key_pointer_value(
        &contract.contract.id.to_string(),
        "contract_value",
        serde_json::Value::Null
    ));
    let amount = sandbox.state().erp_record(&record).unwrap().amount;

    let applied = run(&job, ApplyMode::Apply).await;
    assert!(
        applied_writes(&sandbox).1 > 0,
        "other corrections were sent"
    );
    assert_eq!(
        sandbox.state().erp_record(&record).unwrap().amount,
        amount,
        "the amount is kept"
    );
    let plan = read_table(&applied.tables["plan"], "plan.parquet");
    let (kinds, ids, values) = (
        text(&plan, "action"),
        text(&plan, "erp_record_id"),
        text(&plan, "values"),
    );
    for i in (0..plan.height()).filter(|i| ids[*i] == record && kinds[*i] != "review") {
        assert!(!values[i].contains("\"amount\""), "{}", values[i]);
    }
    assert!(
        (0..plan.height()).any(|i| ids[i] == record && kinds[i] == "review"),
        "the null value is listed for review: {plan}"
    );
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_are_retried_with_the_same_key_with_exactly_once_effect() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut job, sandbox) = job_and_sandbox(tmp.path()).await;
    if let Some(SinkSettings::Rest(rest)) = &mut job.apply.sink {
        rest.request_timeout = Duration::from_millis(300);
    }
    sandbox.faults().update(|f| {
        f.erp.http.slow_rate = 0.4;
        f.erp.http.slow_ms = 1_000;
    });
    let applied = run(&job, ApplyMode::Apply).await;
    let summary = applied.summary.apply.clone().unwrap();
    assert_eq!(summary.failed, 0, "{summary:?}");
    let results = results_of(&applied);
    let sent = text(&results, "outcome")
        .iter()
        .filter(|o| *o == "applied")
        .count();
    let requests = sandbox.state().counters().erp_requests as usize;
    assert!(
        requests > sent,
        "some requests timed out and were sent again: {requests} requests, {sent} writes"
    );
    assert_eq!(
        applied_writes(&sandbox),
        (sent, sent),
        "distinct keys == applied writes == actions"
    );
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_arrive_with_matching_checksums_computed_while_streaming() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut job, sandbox) = job_and_sandbox(tmp.path()).await;
    job.fetch.fetch_documents = false;
    // An ERP that holds no documents yet: every executed contract's is missing.
    let extract = own_extract(tmp.path(), &mut job);
    let mut df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .try_into_reader_with_file_path(Some(extract.clone()))
        .unwrap()
        .finish()
        .unwrap();
    let none: StringChunked = (0..df.height()).map(|_| None::<&str>).collect();
    df.with_column(
        none.into_series()
            .with_name("DOC_SHA256".into())
            .into_column(),
    )
    .unwrap();
    CsvWriter::new(std::fs::File::create(&extract).unwrap())
        .finish(&mut df)
        .unwrap();
    let applied = run(&job, ApplyMode::Apply).await;
    let plan = read_table(&applied.tables["plan"], "plan.parquet");
    let (kinds, ids, contracts, sums) = (
        text(&plan, "action"),
        text(&plan, "erp_record_id"),
        text(&plan, "contract_id"),
        text(&plan, "document_sha256"),
    );
    let documents: Vec<(usize, String)> = (0..plan.height())
        .filter(|i| kinds[*i] == "attach_document")
        .filter_map(|i| Some((i, sandbox.state().contract(&contracts[i])?.document?)))
        .collect();
    assert!(!documents.is_empty(), "{plan}");
    let results = results_of(&applied);
    let (keys, outcomes, messages) = (
        text(&results, "action_id"),
        text(&results, "outcome"),
        text(&results, "message"),
    );
    let plan_keys = text(&plan, "action_id");
    for (i, file) in documents {
        assert!(
            sums[i].is_empty(),
            "no checksum in the snapshot: {}",
            sums[i]
        );
        let r = keys.iter().position(|k| *k == plan_keys[i]).unwrap();
        if sandbox.state().erp_record(&ids[i]).is_none() {
            // A record the extract holds and the ERP does not: a 404, kept.
            assert_eq!(outcomes[r], "rejected", "{}", ids[i]);
            assert!(messages[r].contains("not_found"), "{}", messages[r]);
            continue;
        }
        assert_eq!(outcomes[r], "applied", "{}: {}", ids[i], messages[r]);
        let bytes = std::fs::read(repo().join("fixtures/demo/documents").join(&file)).unwrap();
        let expected = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        let stored = sandbox.state().attachments(&ids[i]);
        assert_eq!(stored.len(), 1, "{}", ids[i]);
        assert_eq!(
            stored[0].sha256.to_ascii_lowercase(),
            expected,
            "{}",
            ids[i]
        );
        assert_eq!(stored[0].size, bytes.len() as u64);
    }
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spotdraft_write_back_keeps_the_other_metadata_and_is_seen_by_the_next_ingest() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut job, sandbox) = job_and_sandbox(tmp.path()).await;
    job.apply.spotdraft_writeback = true;
    for field in ["vendor_id", "po_number"] {
        job.apply
            .owners
            .insert(field.into(), contract_recon::job::Owner::Erp);
    }
    let before: std::collections::BTreeMap<String, _> = sandbox
        .state()
        .contracts()
        .into_iter()
        .map(|c| (c.contract.id.to_string(), c.contract.external_metadata))
        .collect();
    let applied = run(&job, ApplyMode::Apply).await;
    let plan = read_table(&applied.tables["plan"], "plan.parquet");
    let (kinds, contracts, values) = (
        text(&plan, "action"),
        text(&plan, "contract_id"),
        text(&plan, "values"),
    );
    let write_backs: Vec<usize> = (0..plan.height())
        .filter(|i| kinds[*i] == "set_external_metadata")
        .collect();
    assert!(!write_backs.is_empty(), "{plan}");
    let results = results_of(&applied);
    let (rkeys, outcomes) = (text(&results, "action_id"), text(&results, "outcome"));
    let keys = text(&plan, "action_id");
    let mut checked = 0;
    for i in write_backs {
        let r = rkeys.iter().position(|k| *k == keys[i]).unwrap();
        assert_eq!(outcomes[r], "applied", "{}", contracts[i]);
        let old = &before[&contracts[i]];
        let now = sandbox
            .state()
            .contract(&contracts[i])
            .unwrap()
            .contract
            .external_metadata;
        let written: std::collections::BTreeMap<String, String> =
            serde_json::from_str(&values[i]).unwrap();
        assert_eq!(now.integration_name, old.integration_name);
        assert_eq!(now.record_type, old.record_type);
        for (k, v) in &written {
            let key = k.rsplit('.').next().unwrap();
            if key == "id" {
                assert_eq!(now.id.as_deref(), Some(v.as_str()));
            } else {
                assert_eq!(now.record_data[key], serde_json::json!(v), "{k}");
            }
        }
        for (k, v) in &old.record_data {
            if !written
                .keys()
                .any(|w| w.rsplit('.').next() == Some(k.as_str()))
            {
                assert_eq!(now.record_data.get(k), Some(v), "{k} kept");
            }
        }
        checked += 1;
    }
    assert!(checked > 0);

    // The next (incremental) ingest sees the written values: no drift left to
    // write back. Its window ends at its start, in whole seconds: a later second.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let next = run(&job, ApplyMode::Plan).await;
    let plan = read_table(&next.tables["plan"], "plan.parquet");
    assert!(
        !text(&plan, "action")
            .iter()
            .any(|a| a == "set_external_metadata"),
        "{plan}"
    );
    assert!(next.summary.ingestion.contracts_changed >= checked);
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_online_refuses_credentials_the_workspace_does_not_accept() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut job, sandbox) = job_and_sandbox(tmp.path()).await;
    assert_eq!(
        contract_recon::runner::check_online(&job).await.unwrap(),
        vec![]
    );
    if let SpotDraftTarget::Live { client_secret, .. } = &mut job.spotdraft {
        *client_secret = Secret::new("wrong".to_string());
    }
    let problems = contract_recon::runner::check_online(&job).await.unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, "spotdraft.client_id_env");
    assert!(problems[0].1.contains("credentials"), "{problems:?}");
    sandbox.shutdown().await;
}
