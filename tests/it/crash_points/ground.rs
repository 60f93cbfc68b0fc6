//! The ground of one crash scenario: its own sandbox (part of the demo
//! workspace, with the purchase requests of `fixtures/create` in its ERP), its
//! own output folder and job file, and the job run as a real child process of
//! `target/debug/contract-recon`.

use crate::common::repo;
use contract_recon::crashpoint::CRASH_AT_ENV;
use contract_recon::sandbox::dataset::ErpRecord;
use contract_recon::sandbox::{Dataset, Sandbox, SandboxConfig};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use tokio::sync::Semaphore;

/// The job's name (`jobs/create-demo.toml`).
pub const JOB: &str = "create-demo";

/// Contract numbers of the demo workspace kept: every contract its drift
/// truth names, and eight clean ones. 26 contracts: 3 pages of 10.
const KEPT: [i64; 26] = [
    1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1035, 1050, 1053, 1072, 1076, 1078, 1092, 1114,
    1142, 1150, 1183, 1215, 1228, 1241, 1259, 1260, 1278, 1295,
];

/// ERP records of `fixtures/create` that need a contract (or are listed for review).
const NEW_RECORDS: [&str; 5] = [
    "ERP-NEW-0001",
    "ERP-NEW-0002",
    "ERP-NEW-0003",
    "ERP-NEW-0004",
    "ERP-NEW-0005",
];

/// Child processes going at once, over every scenario of the test binary:
/// they mostly wait on SpotDraft's 10 requests/s, so more than the cores.
fn children() -> &'static Semaphore {
    static CHILDREN: OnceLock<Semaphore> = OnceLock::new();
    CHILDREN.get_or_init(|| Semaphore::new(8))
}

/// A sandbox, an output folder and a job file of one scenario.
pub struct Ground {
    /// Holds the output and the job file.
    pub tmp: tempfile::TempDir,
    /// SpotDraft and the ERP of this scenario alone.
    pub sandbox: Sandbox,
    /// The job file.
    pub job: PathBuf,
    /// The job's `[output] url`.
    pub out: PathBuf,
}

impl Ground {
    /// A fresh sandbox and output; the job applies corrections over REST in
    /// batches of 2 and creates contracts, at SpotDraft's 10 requests/s.
    pub async fn new() -> Ground {
        let tmp = tempfile::tempdir().unwrap();
        let mut dataset = Dataset::load(&repo().join("fixtures/demo")).unwrap();
        dataset
            .contracts
            .retain(|c| c.contract.id.number().is_some_and(|n| KEPT.contains(&n)));
        let config = SandboxConfig {
            rate_limit_per_sec: 1000,
            ..SandboxConfig::default()
        };
        let sandbox = Sandbox::start(config, dataset).await.unwrap();
        for id in NEW_RECORDS {
            let record: ErpRecord =
                serde_json::from_value(serde_json::json!({"erp_record_id": id, "version": 1}))
                    .unwrap();
            sandbox.state().upsert_erp_record(record);
        }
        let out = tmp.path().join("out");
        let job = tmp.path().join("jobs").join(format!("{JOB}.toml"));
        std::fs::create_dir_all(job.parent().unwrap()).unwrap();
        std::fs::write(&job, job_text(&sandbox, &out)).unwrap();
        Ground {
            tmp,
            sandbox,
            job,
            out,
        }
    }

    /// The job file's path, as an argument.
    pub fn job_arg(&self) -> &str {
        self.job.to_str().unwrap()
    }

    /// Runs `contract-recon <args>`, dying at `crash_at` when given.
    pub async fn run(&self, args: &[&str], crash_at: Option<&str>) -> Output {
        let _slot = children().acquire().await.unwrap();
        let mut cmd = self.command(args);
        if let Some(point) = crash_at {
            cmd.env(CRASH_AT_ENV, point);
        }
        cmd.output().await.unwrap()
    }

    /// Runs `contract-recon <args>` to success.
    pub async fn run_ok(&self, args: &[&str]) -> Output {
        let out = self.run(args, None).await;
        assert!(out.status.success(), "{args:?}\n{}", said(&out));
        out
    }

    /// Runs `contract-recon <args>`, which must die at `point`.
    pub async fn run_killed(&self, args: &[&str], point: &str) {
        let out = self.run(args, Some(point)).await;
        let name = point.split('#').next().unwrap();
        assert!(
            !out.status.success() && said(&out).contains(&format!("crash point {name} ")),
            "{point}: the run must die there\n{}",
            said(&out)
        );
    }

    /// `contract-recon <args>` as a command with the job's secrets.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let creds = self.sandbox.credentials();
        let mut cmd = tokio::process::Command::new(crate::common::binary());
        cmd.args(args)
            .env("CONTRACT_RECON_LOG", "warn")
            .env("SD_ID", &creds.client_id)
            .env("SD_SECRET", &creds.client_secret)
            .env("ERP_TOKEN", &creds.erp_token)
            .kill_on_drop(true);
        cmd
    }

    /// Asks the sandbox to deliver SpotDraft's webhook for `contract_id` to
    /// the daemon listening on `addr`; the receiver's status.
    pub async fn send_webhook(&self, addr: &str, contract_id: i64) -> u16 {
        let answer = crate::common::sandbox_sends_webhook(
            &self.sandbox,
            &format!("http://{addr}/webhooks/spotdraft/{JOB}"),
            contract_id,
            "CONTRACT_EXECUTED",
        )
        .await;
        answer["status"].as_u64().unwrap_or(0) as u16
    }
}

/// What a child printed, for failure messages.
pub fn said(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `jobs/create-demo.toml` against `sandbox`: SpotDraft at 10 requests/s in
/// pages of 10, corrections applied over REST in batches of 2, webhooks taken
/// by a daemon, output under `out`.
fn job_text(sandbox: &Sandbox, out: &Path) -> String {
    let root = repo();
    let text = std::fs::read_to_string(root.join("jobs/create-demo.toml")).unwrap();
    let at = |s: &str| text.find(s).unwrap_or_else(|| panic!("{s}"));
    let spotdraft = format!(
        "[spotdraft]\nbase_url = \"{}\"\nclient_id_env = \"SD_ID\"\nclient_secret_env = \"SD_SECRET\"\n\
         page_size = 10\nrequests_per_second = 10\nfetch_documents = true\n\n\
         [spotdraft.retry]\ninitial_backoff_ms = 10\nmax_backoff_ms = 100\n\n",
        sandbox.spotdraft_base_url()
    );
    let apply = format!(
        "\n[apply]\nenabled = true\nmode = \"apply\"\nsink = \"rest\"\nbatch_size = 2\n\n\
         [apply.rest]\nbase_url = \"{}\"\ntoken_env = \"ERP_TOKEN\"\nrequests_per_second = 200\nmax_in_flight = 1\n\n\
         [webhooks]\ndebounce_secs = 1\nmax_wait_secs = 2\n",
        sandbox.erp_base_url()
    );
    format!(
        "{}{spotdraft}{}{apply}{}",
        &text[..at("[spotdraft]")],
        &text[at("[erp.extract]")..at("\n[apply]")],
        &text[at("\n[create]")..]
    )
    // A schedule far away: the daemon takes the job's webhooks, never fires it.
    .replace(
        "name = \"create-demo\"",
        "name = \"create-demo\"\nschedule = \"0 0 3 29 2 *\"",
    )
    .replace("\"../fixtures/", &format!("\"{}/fixtures/", root.display()))
    .replace("\"../out/create-demo\"", &format!("{out:?}"))
}
