//! Contracts created from ERP records (`[create]`, `jobs/create-demo.toml`)
//! over real loopback HTTP against the sandbox: `missing_in_spotdraft` found,
//! a plan without side effects, creates under 5xx, 429 and lost answers with
//! one contract per record (also after a kill and a rerun), the ERP
//! back-reference written, a failed document transfer that leaves the
//! contract created, and a rejected create never sent again.

use crate::common::{repo, rest_sink_to};
use contract_recon::job::{load_job, ApplyMode, Job, SpotDraftTarget};
use contract_recon::runner::{run_job, RunOptions, RunOutcome};
use contract_recon::sandbox::dataset::ErpRecord;
use contract_recon::sandbox::{Dataset, Sandbox, SandboxConfig};
use contract_recon::secret::Secret;
use polars::prelude::*;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The records of `fixtures/create` that need a contract and can get one.
const CREATABLE: [&str; 3] = ["ERP-NEW-0001", "ERP-NEW-0002", "ERP-NEW-0003"];

/// `jobs/create-demo.toml` with absolute paths, output under `out`.
fn create_job_in(dir: &Path, out: &Path) -> PathBuf {
    let root = repo();
    let text = std::fs::read_to_string(root.join("jobs/create-demo.toml"))
        .unwrap()
        .replace("\"../fixtures/", &format!("\"{}/fixtures/", root.display()))
        .replace("\"../out/create-demo\"", &format!("{out:?}"))
        .replace(
            "\"../out/create-demo-imports\"",
            &format!("{:?}", dir.join("imports")),
        );
    let path = dir.join("create-demo.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A sandbox serving the demo contracts, its ERP holding the new records too.
async fn sandbox() -> Sandbox {
    let dataset = Dataset::load(&repo().join("fixtures/demo")).unwrap();
    let config = SandboxConfig {
        rate_limit_per_sec: 1000,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(config, dataset).await.unwrap();
    for id in CREATABLE.iter().chain(&["ERP-NEW-0004", "ERP-NEW-0005"]) {
        let record: ErpRecord =
            serde_json::from_value(serde_json::json!({"erp_record_id": id, "version": 1})).unwrap();
        sandbox.state().upsert_erp_record(record);
    }
    sandbox
}

/// The create job against a sandbox the test owns, back-references over REST.
pub(crate) async fn job_and_sandbox(tmp: &Path) -> (Job, Sandbox) {
    let mut job = load_job(&create_job_in(tmp, &tmp.join("out"))).unwrap();
    let sandbox = sandbox().await;
    let creds = sandbox.credentials().clone();
    job.spotdraft = SpotDraftTarget::Live {
        base_url: url::Url::parse(&sandbox.spotdraft_base_url()).unwrap(),
        client_id: Secret::new(creds.client_id),
        client_secret: Secret::new(creds.client_secret),
        user_email: None,
    };
    job.fetch.requests_per_second = 1000;
    job.fetch.initial_backoff = std::time::Duration::from_millis(5);
    job.fetch.max_backoff = std::time::Duration::from_millis(50);
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

fn table(outcome: &RunOutcome, name: &str) -> DataFrame {
    let dir = match name {
        "apply_results" => outcome.tables["runs"].replace("/runs/", "/apply_results/"),
        _ => outcome.tables[name].clone(),
    };
    let file = std::fs::File::open(Path::new(&dir).join(format!("{name}.parquet"))).unwrap();
    ParquetReader::new(file).finish().unwrap()
}

fn text(df: &DataFrame, col: &str) -> Vec<String> {
    crate::common::text(df, col)
}

/// `(action, erp_record_id, outcome, message)` of a run's applied results.
fn results(outcome: &RunOutcome) -> Vec<(String, String, String, String)> {
    let df = table(outcome, "apply_results");
    let (a, e, o, m) = (
        text(&df, "action"),
        text(&df, "erp_record_id"),
        text(&df, "outcome"),
        text(&df, "message"),
    );
    (0..df.height())
        .map(|i| (a[i].clone(), e[i].clone(), o[i].clone(), m[i].clone()))
        .collect()
}

/// The `missing_in_spotdraft` record ids of a run's drift.
fn missing(outcome: &RunOutcome) -> Vec<String> {
    let df = table(outcome, "drift");
    let (k, e) = (text(&df, "drift_kind"), text(&df, "erp_record_id"));
    let mut ids: Vec<String> = (0..df.height())
        .filter(|i| k[*i] == "missing_in_spotdraft")
        .map(|i| e[i].clone())
        .collect();
    ids.sort();
    ids
}

/// The sandbox contracts carrying `erp_id` in `external_metadata.id`.
pub(crate) fn contracts_of(sandbox: &Sandbox, erp_id: &str) -> Vec<String> {
    sandbox
        .state()
        .contracts_with_external_id(erp_id)
        .iter()
        .map(|c| c.contract.id.composite().to_string())
        .collect()
}

/// Exactly one contract per creatable record, and none for the others; its id.
fn one_contract_each(sandbox: &Sandbox) -> Vec<String> {
    for other in ["ERP-NEW-0004", "ERP-NEW-0005"] {
        assert!(contracts_of(sandbox, other).is_empty(), "{other}");
    }
    CREATABLE
        .iter()
        .map(|id| {
            let found = contracts_of(sandbox, id);
            assert_eq!(found.len(), 1, "{id}: {found:?}");
            found[0].clone()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_records_are_found_and_a_plan_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (job, sandbox) = job_and_sandbox(tmp.path()).await;
    let planned = run(&job, ApplyMode::Plan).await;
    // NEW-0005 is not APPROVED: it needs no contract (yet).
    assert_eq!(
        missing(&planned),
        [
            "ERP-NEW-0001",
            "ERP-NEW-0002",
            "ERP-NEW-0003",
            "ERP-NEW-0004"
        ]
    );
    assert_eq!(
        planned.summary.reconcile.drift_by_kind["missing_in_spotdraft"],
        4
    );
    let counters = sandbox.state().counters();
    assert_eq!(counters.contracts_created, 0, "a plan creates nothing");
    assert_eq!(counters.supported_documents_stored, 0);
    assert!(
        sandbox.state().erp_writes().is_empty(),
        "a plan writes nothing"
    );

    let plan = table(&planned, "plan");
    let (action, erp, values, reason) = (
        text(&plan, "action"),
        text(&plan, "erp_record_id"),
        text(&plan, "values"),
        text(&plan, "reason"),
    );
    let of = |kind: &str| -> Vec<usize> {
        (0..plan.height())
            .filter(|i| action[*i] == kind && erp[*i].starts_with("ERP-NEW"))
            .collect()
    };
    let creates = of("create_contract");
    assert_eq!(creates.len(), 3);
    let first: serde_json::Value = serde_json::from_str(&values[creates[0]]).unwrap();
    let metadata: serde_json::Value =
        serde_json::from_str(first["external_metadata"].as_str().unwrap()).unwrap();
    assert_eq!(
        metadata["id"], "ERP-NEW-0001",
        "the id written is the id looked up"
    );
    assert_eq!(metadata["record_data"]["po_number"], "PO-90001");
    assert_eq!(first["contract_template_id"], "1204");
    assert_eq!(
        of("update_erp_fields").len(),
        3,
        "one back-reference per create"
    );
    assert_eq!(of("upload_supporting_document").len(), 1);
    let review = of("review");
    assert_eq!(review.len(), 1);
    assert!(reason[review[0]].contains("\"SERVICES\" has no template"));
    let html = std::fs::read_to_string(planned.report_html.as_ref().unwrap()).unwrap();
    assert!(html.contains("missing_in_spotdraft"));
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_under_5xx_429_and_lost_answers_make_one_contract_per_record_and_close_the_loop() {
    let tmp = tempfile::tempdir().unwrap();
    let (job, sandbox) = job_and_sandbox(tmp.path()).await;
    sandbox.faults().update(|f| {
        f.spotdraft.http.error_rate = 0.05;
        f.spotdraft.http.burst_429 = 3;
        f.spotdraft.create_committed_then_502_next = 2;
    });
    let applied = run(&job, ApplyMode::Apply).await;
    let ids = one_contract_each(&sandbox);
    assert_eq!(sandbox.state().counters().contracts_created, 3);
    let rows = results(&applied);
    let creates: Vec<_> = rows.iter().filter(|r| r.0 == "create_contract").collect();
    assert_eq!(creates.len(), 3);
    assert!(creates.iter().all(|r| r.2 == "applied"), "{creates:?}");
    let adopted = creates
        .iter()
        .filter(|r| r.3.starts_with("adopted"))
        .count();
    assert_eq!(
        adopted, 2,
        "the two lost answers were found by lookup: {creates:?}"
    );

    // The loop is closed: each ERP record names its new contract.
    for (erp_id, contract) in CREATABLE.iter().zip(&ids) {
        let record = sandbox.state().erp_record(erp_id).unwrap();
        assert_eq!(
            record.spotdraft_contract_id.as_deref(),
            Some(contract.as_str())
        );
    }
    // The document went to the contract of its record.
    let docs = sandbox.state().supported_documents(&ids[0]);
    let pdf = std::fs::read(repo().join("fixtures/create/documents/PO-90001.pdf")).unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].sha256, hex::encode(Sha256::digest(&pdf)));

    // The new DRAFT contracts close the drift; nothing is created or sent again.
    sandbox.faults().update(|f| *f = Default::default());
    let writes = sandbox.state().erp_writes().len();
    // A walk covers changes before its start, taken to the second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let next = run(&job, ApplyMode::Apply).await;
    assert_eq!(missing(&next), ["ERP-NEW-0004"]);
    assert_eq!(sandbox.state().counters().contracts_created, 3);
    assert_eq!(sandbox.state().supported_documents(&ids[0]).len(), 1);
    assert!(results(&next).iter().all(|r| r.0 != "create_contract"));
    let new_writes: Vec<_> = sandbox.state().erp_writes()[writes..]
        .iter()
        .filter(|w| w.path.contains("ERP-NEW"))
        .cloned()
        .collect();
    assert!(new_writes.is_empty(), "{new_writes:?}");
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_document_transfer_leaves_the_contract_created_and_is_retried_later() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut job, sandbox) = job_and_sandbox(tmp.path()).await;
    job.fetch.max_attempts = 2;
    sandbox
        .faults()
        .update(|f| f.spotdraft.supported_documents_503_next = 1000);
    let first = run(&job, ApplyMode::Apply).await;
    let ids = one_contract_each(&sandbox);
    let rows = results(&first);
    let upload = rows
        .iter()
        .find(|r| r.0 == "upload_supporting_document")
        .unwrap();
    assert_eq!(upload.2, "pending", "{upload:?}");
    assert!(rows
        .iter()
        .filter(|r| r.0 == "create_contract")
        .all(|r| r.2 == "applied"));
    assert!(sandbox.state().supported_documents(&ids[0]).is_empty());
    assert_eq!(
        sandbox
            .state()
            .erp_record("ERP-NEW-0001")
            .unwrap()
            .spotdraft_contract_id
            .as_deref(),
        Some(ids[0].as_str()),
        "the back-reference does not wait for the document"
    );

    sandbox.faults().update(|f| *f = Default::default());
    let second = run(&job, ApplyMode::Apply).await;
    let rows = results(&second);
    let upload = rows
        .iter()
        .find(|r| r.0 == "upload_supporting_document")
        .unwrap();
    assert_eq!(upload.2, "applied", "{upload:?}");
    assert_eq!(sandbox.state().supported_documents(&ids[0]).len(), 1);
    assert_eq!(sandbox.state().counters().contracts_created, 3);
    // Applied: not planned again.
    let third = run(&job, ApplyMode::Apply).await;
    assert!(results(&third)
        .iter()
        .all(|r| r.0 != "upload_supporting_document"));
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_spotdraft_rejects_is_reviewed_and_never_sent_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut job, sandbox) = job_and_sandbox(tmp.path()).await;
    let create = job.create.as_mut().unwrap();
    if let contract_recon::job::create::TemplateChoice::ByColumn { templates, .. } =
        &mut create.template
    {
        templates.insert("MSA".into(), 9999);
    }
    let first = run(&job, ApplyMode::Apply).await;
    let rows = results(&first);
    let rejected = rows
        .iter()
        .find(|r| r.0 == "create_contract" && r.1 == "ERP-NEW-0002")
        .unwrap();
    assert_eq!(rejected.2, "rejected");
    assert!(rejected.3.contains("9999"), "{rejected:?}");
    let waiting = rows
        .iter()
        .find(|r| r.0 == "update_erp_fields" && r.1 == "ERP-NEW-0002")
        .unwrap();
    assert_eq!(waiting.2, "not_sent");
    assert_eq!(sandbox.state().counters().contracts_created, 2);
    let second = run(&job, ApplyMode::Apply).await;
    let again = results(&second)
        .into_iter()
        .find(|r| r.0 == "create_contract" && r.1 == "ERP-NEW-0002")
        .unwrap();
    assert_eq!(again.2, "rejected_earlier");
    assert_eq!(sandbox.state().counters().contracts_created, 2);
    sandbox.shutdown().await;
}

/// The create job as a file a child process runs against `sandbox`.
fn child_job(tmp: &Path, sandbox: &Sandbox) -> PathBuf {
    let text = std::fs::read_to_string(create_job_in(tmp, &tmp.join("out"))).unwrap();
    let (start, end) = (
        text.find("[spotdraft]").unwrap(),
        text.find("[erp.extract]").unwrap(),
    );
    let spotdraft = format!(
        "[spotdraft]\nbase_url = \"{}\"\nclient_id_env = \"SD_ID\"\nclient_secret_env = \"SD_SECRET\"\nrequests_per_second = 10\n\n[spotdraft.retry]\ninitial_backoff_ms = 10\nmax_backoff_ms = 100\n\n",
        sandbox.spotdraft_base_url()
    );
    let (apply_at, create_at) = (
        text.find("\n[apply]").unwrap(),
        text.find("\n[create]").unwrap(),
    );
    let apply = format!(
        "[apply]\nenabled = true\nmode = \"apply\"\nsink = \"rest\"\nbatch_size = 2\n\n[apply.rest]\nbase_url = \"{}\"\ntoken_env = \"ERP_TOKEN\"\nrequests_per_second = 200\nmax_in_flight = 1\n\n",
        sandbox.erp_base_url()
    );
    let job = format!(
        "{}{spotdraft}{}{apply}{}",
        &text[..start],
        &text[end..apply_at],
        &text[create_at..]
    );
    let path = tmp.join("child.toml");
    std::fs::write(&path, job).unwrap();
    path
}

/// Runs the job in a child process, killed at `crash_at` when given.
fn run_child(job: &Path, sandbox: &Sandbox, crash_at: Option<&str>) -> std::process::Output {
    let creds = sandbox.credentials();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_contract-recon"));
    cmd.args(["run", job.to_str().unwrap(), "--break-lease"])
        .env("CONTRACT_RECON_LOG", "warn")
        .env("SD_ID", &creds.client_id)
        .env("SD_SECRET", &creds.client_secret)
        .env("ERP_TOKEN", &creds.erp_token);
    if let Some(point) = crash_at {
        cmd.env(contract_recon::crashpoint::CRASH_AT_ENV, point);
    }
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_batch_killed_at_any_point_then_rerun_makes_exactly_one_contract_per_record() {
    let tmp = tempfile::tempdir().unwrap();
    let sandbox = sandbox().await;
    let job = child_job(tmp.path(), &sandbox);
    // Killed after the first create answered, before its result is journaled.
    let killed = run_child(&job, &sandbox, Some("apply.create.returned"));
    let stderr = String::from_utf8_lossy(&killed.stderr);
    assert!(
        !killed.status.success() && stderr.contains("crash point apply.create.returned"),
        "{stderr}"
    );
    assert_eq!(sandbox.state().counters().contracts_created, 1);
    // Killed again after journaling the next batch's intent; then with the
    // answers of two committed creates lost and 5xx around.
    let killed = run_child(&job, &sandbox, Some("apply.create.intent"));
    assert!(!killed.status.success());
    assert_eq!(sandbox.state().counters().contracts_created, 1);
    sandbox.faults().update(|f| {
        f.spotdraft.create_committed_then_502_next = 2;
        f.spotdraft.http.burst_429 = 2;
    });
    let rerun = run_child(&job, &sandbox, None);
    assert!(
        rerun.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&rerun.stdout),
        String::from_utf8_lossy(&rerun.stderr)
    );
    let ids = one_contract_each(&sandbox);
    assert_eq!(
        sandbox.state().counters().contracts_created,
        3,
        "one creation per record over three runs"
    );
    for (erp_id, contract) in CREATABLE.iter().zip(&ids) {
        let record = sandbox.state().erp_record(erp_id).unwrap();
        assert_eq!(
            record.spotdraft_contract_id.as_deref(),
            Some(contract.as_str())
        );
    }
    // And once more: nothing left to create.
    let again = run_child(&job, &sandbox, None);
    assert!(again.status.success());
    assert_eq!(sandbox.state().counters().contracts_created, 3);
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_online_checks_every_template_and_its_contract_data_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut job, sandbox) = job_and_sandbox(tmp.path()).await;
    assert_eq!(
        contract_recon::runner::check_online(&job).await.unwrap(),
        Vec::<(String, String)>::new()
    );
    let create = job.create.as_mut().unwrap();
    if let contract_recon::job::create::TemplateChoice::ByColumn { templates, .. } =
        &mut create.template
    {
        templates.insert("MSA".into(), 9999);
    }
    let field = create.contract_data["vendor_name"].clone();
    create.contract_data.insert("vendor_nmae".into(), field);
    let problems = contract_recon::runner::check_online(&job).await.unwrap();
    let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["create.contract_data.vendor_nmae", "create.templates"],
        "{problems:?}"
    );
    assert!(problems[0]
        .1
        .contains("template 1204 has no field \"vendor_nmae\""));
    assert!(problems[1].1.contains("template 9999 does not exist"));
    assert_eq!(sandbox.state().counters().contracts_created, 0);
    sandbox.shutdown().await;
}
