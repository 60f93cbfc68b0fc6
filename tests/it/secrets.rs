//! No secret in any output. A job with known secret values (SpotDraft
//! client id and secret, ERP token, webhook HMAC key, ERP-event secret, chat
//! notification URL) runs as real child processes at `trace` level against
//! the sandbox: `validate --online`, a run that applies corrections, creates
//! contracts, uploads and attaches documents and notifies; the `schedule`
//! daemon taking a SpotDraft webhook and ERP events (one forged) and serving
//! `/metrics`, `/runs` and `/healthz`; then failing runs (a wrong client
//! secret, a wrong ERP token, an ERP answering 5xx, a notification URL that
//! does not answer). Every log line (stdout and stderr), every file the job
//! wrote (reports, snapshots, journal, run records, queues, lease), every
//! page the daemon served and every notification is searched for each secret,
//! its base64 and hex forms, and the sandbox's signed download links.

use crate::common::repo;
use base64::Engine;
use contract_recon::sandbox::dataset::ErpRecord;
use contract_recon::sandbox::{Dataset, Sandbox, SandboxConfig, SandboxCredentials};
use contract_recon::schedule::webhooks::signature::ErpEventKey;
use polars::prelude::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENT_ID: &str = "cid-4HqZr8Vw2Lx9Jt";
const CLIENT_SECRET: &str = "csec-Tq7Nd3Jm9Ry5Kp2W";
const ERP_TOKEN: &str = "erptok-Zx81Qv6Hn3BdYe";
const ERP_EVENT_SECRET: &str = "erpsec-Mk5Wt9Yc2Fp8Lr4G";
const NOTIFY_TOKEN: &str = "ntok-Gh6Vb2Nx8Qs4Ua";
const WRONG_CLIENT_SECRET: &str = "wrongcsec-P3Lk8Zt1Hv";
const WRONG_ERP_TOKEN: &str = "wrongerptok-R7Yd2Mq5Xc";

/// Every secret of the test, by name, in each form it could leak in.
fn needles(hmac_key: &[u8]) -> Vec<(String, String)> {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut out = vec![];
    for (name, value) in [
        ("client id", CLIENT_ID),
        ("client secret", CLIENT_SECRET),
        ("ERP token", ERP_TOKEN),
        ("ERP event secret", ERP_EVENT_SECRET),
        ("notification URL token", NOTIFY_TOKEN),
        ("wrong client secret", WRONG_CLIENT_SECRET),
        ("wrong ERP token", WRONG_ERP_TOKEN),
    ] {
        out.push((name.to_string(), value.to_string()));
        out.push((format!("{name} (base64)"), b64(value.as_bytes())));
        out.push((format!("{name} (hex)"), hex::encode(value.as_bytes())));
    }
    out.push(("HMAC key (base64)".into(), b64(hmac_key)));
    out.push(("HMAC key (hex)".into(), hex::encode(hmac_key)));
    out.push((
        "HMAC key (base64 without padding)".into(),
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(hmac_key),
    ));
    if let Ok(text) = std::str::from_utf8(hmac_key) {
        out.push(("HMAC key".into(), text.to_string()));
    }
    out.push(("signed download link".into(), "/_sandbox/signed/".into()));
    out
}

/// `(where, secret)` of every needle found in `text`.
fn leaks(place: &str, text: &str, needles: &[(String, String)]) -> Vec<String> {
    needles
        .iter()
        .filter(|(_, needle)| text.contains(needle.as_str()))
        .map(|(name, _)| {
            let line = text
                .lines()
                .find(|l| needles.iter().any(|(_, n)| l.contains(n.as_str())))
                .unwrap_or("");
            format!(
                "{place}: the {name} in: {}",
                line.chars().take(300).collect::<String>()
            )
        })
        .collect()
}

/// A Parquet file's every value as text (its bytes are compressed).
fn parquet_text(path: &Path) -> String {
    let df = ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut text = String::new();
    for column in df.columns() {
        text.push_str(column.name());
        text.push('\n');
        for value in column.as_materialized_series().iter() {
            text.push_str(&value.to_string());
            text.push('\n');
        }
    }
    text
}

/// Every file under `dir` as text: `(path, text)`.
fn files_text(dir: &Path) -> Vec<(String, String)> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                out.push((path.display().to_string(), parquet_text(&path)));
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.push((
                    path.display().to_string(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                ));
            }
        }
    }
    out
}

/// The job file: `jobs/create-demo.toml` against the test's sandbox (by URL,
/// credentials from the environment), applying over REST, with SpotDraft
/// webhooks, ERP events and notifications.
fn write_job(dir: &Path, sandbox: &Sandbox) -> PathBuf {
    let root = repo();
    let text = std::fs::read_to_string(root.join("jobs/create-demo.toml")).unwrap();
    let mut kept = String::new();
    let mut skip = false;
    for line in text.lines() {
        if line.starts_with('[') {
            skip = line == "[sandbox]" || line == "[apply.files]";
        }
        if !skip {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    let text = kept
        .replace(
            "name = \"create-demo\"",
            "name = \"secrets\"\nschedule = \"0 0 3 1 1 *\"",
        )
        .replace(
            "base_url = \"sandbox\"             # the embedded sandbox; a real workspace: \"https://api.us.spotdraft.com/api/\"",
            &format!(
                "base_url = \"{}\"\nclient_id_env = \"SD_CLIENT_ID\"\nclient_secret_env = \"SD_CLIENT_SECRET\"",
                sandbox.spotdraft_base_url()
            ),
        )
        .replace("requests_per_second = 50", "requests_per_second = 10")
        .replace("max_backoff_ms = 5000", "max_backoff_ms = 200")
        .replace("initial_backoff_ms = 100", "initial_backoff_ms = 20")
        .replace("max_attempts = 6", "max_attempts = 2")
        .replace("\"../fixtures/", &format!("\"{}/fixtures/", root.display()))
        .replace(
            "\"../out/create-demo\"",
            &format!("{:?}", dir.join("out").display().to_string()),
        )
        .replace("mode = \"plan\"", "mode = \"apply\"")
        .replace("sink = \"files\"", "sink = \"rest\"")
        + &format!(
            r#"
[apply.rest]
base_url = "{erp}"
token_env = "ERP_TOKEN"
requests_per_second = 100
max_in_flight = 4
request_timeout_secs = 5

[apply.rest.retry]
max_attempts = 2
initial_backoff_ms = 10
max_backoff_ms = 50
max_total_secs = 5

[webhooks]
hmac_key_env = "SD_WEBHOOK_KEY"
erp_secret_env = "ERP_EVENTS_SECRET"
debounce_secs = 1
max_wait_secs = 2

[notify]
url_env = "NOTIFY_URL"
on = ["failure", "new_drift"]
timeout_secs = 2
max_attempts = 2
"#,
            erp = sandbox.erp_base_url()
        );
    assert!(text.contains("SD_CLIENT_ID") && !text.contains("[sandbox]"));
    let path = dir.join("jobs/secrets.toml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

/// The environment of every child process: the secrets, and logs at `trace`.
struct Env {
    vars: Vec<(&'static str, String)>,
}

impl Env {
    fn with(&self, name: &'static str, value: &str) -> Env {
        let mut vars: Vec<_> = self
            .vars
            .iter()
            .filter(|(n, _)| *n != name)
            .cloned()
            .collect();
        vars.push((name, value.to_string()));
        Env { vars }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(crate::common::binary());
        cmd.args(args)
            .env("CONTRACT_RECON_LOG", "trace")
            .env("RUST_LOG", "trace")
            .env("RUST_BACKTRACE", "1");
        for (name, value) in &self.vars {
            cmd.env(name, value);
        }
        cmd
    }
}

/// The lines of `output` above debug level (for failure messages).
fn gist(output: &str) -> String {
    output
        .lines()
        .filter(|l| !l.contains("TRACE") && !l.contains("DEBUG"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The failed writes a run's printed apply summary counts
/// (`applied: ...; 3 failed; ...`).
fn failed_writes(output: &str) -> u64 {
    output
        .lines()
        .find(|l| l.trim_start().starts_with("applied:"))
        .and_then(|l| l.split("; ").find(|p| p.ends_with(" failed")))
        .and_then(|p| p.trim_end_matches(" failed").trim().parse().ok())
        .unwrap_or(0)
}

/// Everything a command printed, and its exit code.
struct Ran {
    what: String,
    code: Option<i32>,
    output: String,
}

fn run(env: &Env, args: &[&str]) -> Ran {
    let out = env.command(args).output().unwrap();
    Ran {
        what: args.join(" "),
        code: out.status.code(),
        output: format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Notifications received, and a server taking them at `/services/…/<token>`.
async fn notification_receiver() -> (Arc<Mutex<Vec<String>>>, String) {
    use axum::routing::post;
    let inbox: Arc<Mutex<Vec<String>>> = Arc::default();
    let kept = inbox.clone();
    let app = axum::Router::new().route(
        "/services/T0/B0/{token}",
        post(move |body: String| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (
        inbox,
        format!("http://{addr}/services/T0/B0/{NOTIFY_TOKEN}"),
    )
}

/// A free loopback port (bound, then released for the daemon).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn get_text(url: &str) -> Option<(u16, String)> {
    let resp = reqwest::get(url).await.ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().await.unwrap_or_default()))
}

/// Run records under `out/_history/secrets/` whose id starts with `prefix`.
fn records_of(out: &Path, prefix: &str) -> Vec<serde_json::Value> {
    let dir = out.join("_history/secrets");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
        .collect()
}

/// An executed contract linked to a record of the extract, with a contract
/// value: its composite id and number.
fn linked_contract(sandbox: &Sandbox) -> (String, i64) {
    let extract = std::fs::read_to_string(repo().join("fixtures/create/erp_extract.csv")).unwrap();
    let mut found: Vec<_> = sandbox
        .state()
        .contracts()
        .into_iter()
        .filter(|c| {
            let em = c.contract.external_metadata.id.clone().unwrap_or_default();
            c.contract.contract_status == "EXECUTED"
                && !em.trim().is_empty()
                && extract.contains(&format!("\n{},", em.trim()))
                && c.key_pointers
                    .iter()
                    .any(|k| k.field_name == "contract_value")
        })
        .collect();
    found.sort_by(|a, b| a.contract.id.cmp(&b.contract.id));
    let c = found.first().expect("a linked executed contract");
    (
        c.contract.id.composite().to_string(),
        c.contract.id.number().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_any_log_report_record_page_or_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let dataset = Dataset::load(&repo().join("fixtures/demo")).unwrap();
    let sandbox = Sandbox::start(
        SandboxConfig {
            rate_limit_per_sec: 1000,
            credentials: SandboxCredentials {
                client_id: CLIENT_ID.into(),
                client_secret: CLIENT_SECRET.into(),
                erp_token: ERP_TOKEN.into(),
            },
            seed: 7,
            ..SandboxConfig::default()
        },
        dataset,
    )
    .await
    .unwrap();
    for id in [
        "ERP-NEW-0001",
        "ERP-NEW-0002",
        "ERP-NEW-0003",
        "ERP-NEW-0004",
        "ERP-NEW-0005",
    ] {
        let record: ErpRecord =
            serde_json::from_value(serde_json::json!({"erp_record_id": id, "version": 1})).unwrap();
        sandbox.state().upsert_erp_record(record);
    }
    let hmac_key = sandbox.webhook_hmac_key();
    let needles = needles(&hmac_key);
    // The search finds each form it looks for.
    let planted = format!(
        "x {} y",
        base64::engine::general_purpose::STANDARD.encode(CLIENT_SECRET)
    );
    assert_eq!(leaks("planted", &planted, &needles).len(), 1);

    let (inbox, notify_url) = notification_receiver().await;
    let job = write_job(tmp.path(), &sandbox);
    let job_arg = job.to_str().unwrap();
    let env = Env {
        vars: vec![
            ("SD_CLIENT_ID", CLIENT_ID.into()),
            ("SD_CLIENT_SECRET", CLIENT_SECRET.into()),
            ("ERP_TOKEN", ERP_TOKEN.into()),
            (
                "SD_WEBHOOK_KEY",
                base64::engine::general_purpose::STANDARD.encode(&hmac_key),
            ),
            ("ERP_EVENTS_SECRET", ERP_EVENT_SECRET.into()),
            ("NOTIFY_URL", notify_url.clone()),
        ],
    };
    let mut ran: Vec<Ran> = vec![];
    let mut pages: Vec<(String, String)> = vec![];

    // 1. The credentials checked online.
    let step = run(&env, &["validate", "--online", job_arg]);
    assert_eq!(step.code, Some(0), "{}", gist(&step.output));
    ran.push(step);

    // 2. Runs whose ERP writes fail: a wrong ERP token (401), then an ERP
    // answering 5xx. Their corrections stay pending.
    let step = run(&env.with("ERP_TOKEN", WRONG_ERP_TOKEN), &["run", job_arg]);
    assert_ne!(failed_writes(&step.output), 0, "{}", gist(&step.output));
    ran.push(step);
    sandbox.faults().update(|f| f.erp.http.error_rate = 1.0);
    let step = run(&env, &["run", job_arg]);
    assert_ne!(failed_writes(&step.output), 0, "{}", gist(&step.output));
    ran.push(step);
    sandbox.faults().update(|f| f.erp.http.error_rate = 0.0);
    assert!(
        !sandbox.state().erp_writes().iter().any(|w| w.applied),
        "nothing applied in the ERP yet"
    );

    // 3. A run that applies: creates, corrections, documents, a notification.
    let step = run(&env, &["run", job_arg]);
    assert_eq!(step.code, Some(0), "{}", gist(&step.output));
    ran.push(step);
    let counters = sandbox.state().counters();
    assert_eq!(counters.contracts_created, 3, "creates sent");
    let writes = sandbox.state().erp_writes();
    assert!(
        writes
            .iter()
            .any(|w| w.applied && w.path.contains("attachments")),
        "a document attached in the ERP"
    );
    assert!(
        writes.iter().any(|w| w.applied && w.method == "PATCH"),
        "an ERP record corrected: {:?}",
        writes.iter().map(|w| &w.method).collect::<Vec<_>>()
    );
    assert!(!inbox.lock().unwrap().is_empty(), "new drift notified");
    ran.push(run(&env, &["runs", job_arg]));

    // 4. The daemon: a SpotDraft webhook and ERP events (one forged), its pages.
    let (contract, number) = linked_contract(&sandbox);
    assert!(sandbox.state().set_key_pointer_value(
        &contract,
        "contract_value",
        serde_json::json!(13579.25)
    ));
    let patched = |sandbox: &Sandbox| {
        sandbox
            .state()
            .erp_writes()
            .iter()
            .filter(|w| w.applied && w.method == "PATCH")
            .count()
    };
    let patched_before = patched(&sandbox);
    let (http_port, hooks_port) = (free_port(), free_port());
    let daemon_log = tmp.path().join("daemon.log");
    let log_file = std::fs::File::create(&daemon_log).unwrap();
    let mut daemon = env
        .command(&[
            "schedule",
            "--jobs",
            job.parent().unwrap().to_str().unwrap(),
            "--grace-secs",
            "20",
            "--http",
            &format!("127.0.0.1:{http_port}"),
            "--webhooks",
            &format!("127.0.0.1:{hooks_port}"),
        ])
        .stdout(Stdio::from(log_file.try_clone().unwrap()))
        .stderr(Stdio::from(log_file))
        .spawn()
        .unwrap();
    let http = format!("http://127.0.0.1:{http_port}");
    let hooks = format!("http://127.0.0.1:{hooks_port}");
    let started = Instant::now();
    while get_text(&format!("{http}/healthz")).await.is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the daemon never answered: {}",
            std::fs::read_to_string(&daemon_log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = crate::common::sandbox_sends_webhook(
        &sandbox,
        &format!("{hooks}/webhooks/spotdraft/secrets"),
        number,
        "CONTRACT_KEY_POINTER_UPDATION",
    )
    .await;
    assert_eq!(sent["status"], 202, "{sent}");
    let client = reqwest::Client::new();
    let body = br#"{"record_id": "ERP-NEW-0001", "event": "purchase_request.approved"}"#;
    let erp_url = format!("{hooks}/webhooks/erp/secrets");
    for (signature, expected) in [
        (ErpEventKey::new(ERP_EVENT_SECRET).sign(body), 202),
        (ErpEventKey::new(WRONG_ERP_TOKEN).sign(body), 401),
    ] {
        let status = client
            .post(&erp_url)
            .header("X-Contract-Recon-Signature", signature)
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), expected);
    }
    let started = Instant::now();
    while records_of(&out, "targeted-").len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no targeted runs: {}",
            std::fs::read_to_string(&daemon_log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for page in ["healthz", "metrics", "runs"] {
        let (status, text) = get_text(&format!("{http}/{page}")).await.unwrap();
        assert_eq!(status, 200, "/{page}: {text}");
        pages.push((format!("/{page}"), text));
    }
    assert!(
        pages[1].1.contains("erp_bad_signature"),
        "the forged event is counted: {}",
        pages[1].1
    );
    assert!(Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    while daemon.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(40) {
            let _ = daemon.kill();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ran.push(Ran {
        what: "schedule".into(),
        code: daemon.try_wait().unwrap().and_then(|s| s.code()),
        output: std::fs::read_to_string(&daemon_log).unwrap(),
    });
    assert!(
        patched(&sandbox) > patched_before,
        "the webhook's run corrected the ERP"
    );

    // 5. Failures of SpotDraft credentials, and of the notification.
    // A notification URL nothing answers (the same token), and a wrong
    // client secret: the run fails on SpotDraft's 401.
    let dead_url = format!(
        "http://127.0.0.1:{}/services/T0/B0/{NOTIFY_TOKEN}",
        free_port()
    );
    let step = run(
        &env.with("SD_CLIENT_SECRET", WRONG_CLIENT_SECRET)
            .with("NOTIFY_URL", &dead_url),
        &["run", job_arg],
    );
    assert_eq!(step.code, Some(1), "{}", gist(&step.output));
    assert!(step.output.contains("401"), "{}", gist(&step.output));
    ran.push(step);
    let step = run(
        &env.with("SD_CLIENT_SECRET", WRONG_CLIENT_SECRET),
        &["validate", "--online", job_arg],
    );
    assert_ne!(step.code, Some(0), "{}", gist(&step.output));
    ran.push(step);
    ran.push(run(&env, &["runs", job_arg]));

    // Logs were captured at every level.
    for r in ran.iter().filter(|r| !r.what.starts_with("runs")) {
        assert!(
            r.output.contains("TRACE"),
            "`{}` logged no trace line",
            r.what
        );
    }
    let mut found = vec![];
    for r in &ran {
        found.extend(leaks(&format!("`{}` output", r.what), &r.output, &needles));
    }
    for (page, text) in &pages {
        found.extend(leaks(page, text, &needles));
    }
    for (i, body) in inbox.lock().unwrap().iter().enumerate() {
        found.extend(leaks(&format!("notification {i}"), body, &needles));
    }
    let files = files_text(&out);
    assert!(
        files.iter().any(|(p, _)| p.contains("_journal"))
            && files.iter().any(|(p, _)| p.contains("_history"))
            && files.iter().any(|(p, _)| p.ends_with("drift.csv")),
        "journal, run records and reports searched"
    );
    for (path, text) in &files {
        found.extend(leaks(path, text, &needles));
    }
    assert!(found.is_empty(), "secrets leaked:\n{}", found.join("\n"));
    let lines: usize = ran.iter().map(|r| r.output.lines().count()).sum();
    println!(
        "searched {lines} log lines of {} commands, {} files, {} pages and {} notifications for {} secret forms",
        ran.len(),
        files.len(),
        pages.len(),
        inbox.lock().unwrap().len(),
        needles.len()
    );
    sandbox.shutdown().await;
}
