//! Benchmark: a whole nightly run at scale, as a deployment runs it. The
//! sandbox serves a generated dataset from its own process
//! (`contract-recon sandbox`, at 1,000 requests/s), and `contract-recon run`
//! runs the demo job's rules against it in another: walk, metadata values,
//! snapshot, extract, reconcile, reports, plan. Prints the run's wall time,
//! its stage times (from `summary.json`) and the peak RSS of the run's process
//! (`VmHWM`, read every 50 ms until it exits), and the sandbox's RSS apart.
//! Asserts nothing.
//!
//! `cargo bench --profile release --bench run -- [CONTRACTS]` (default
//! 1,000,000). The dataset is generated once into `target/bench-data/run-N`.

use anyhow::Context;
use contract_recon::sandbox::dataset::files;
use contract_recon::sandbox::gen::{self, GenOptions};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_contract-recon");

/// A `/proc/<pid>/status` value in MiB.
fn status_mib(pid: u32, key: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Kills the sandbox when the bench ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the sandbox on `dir`; returns it with its SpotDraft URL, client id and secret.
fn start_sandbox(dir: &Path) -> anyhow::Result<(Killed, String, String, String)> {
    let mut child = Command::new(BIN)
        .args(["sandbox", "--rate-limit", "1000", "--fixtures"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the sandbox")?;
    let stdout = child.stdout.take().context("sandbox stdout")?;
    let child = Killed(child);
    let (mut url, mut id, mut secret) = (String::new(), String::new(), String::new());
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let value = line.split_once(':').map(|(_, v)| v.trim().to_string());
        if line.starts_with("SpotDraft API:") {
            url = value.unwrap_or_default();
        } else if line.trim_start().starts_with("client-id:") {
            id = value.unwrap_or_default();
        } else if line.trim_start().starts_with("client-secret:") {
            secret = value.unwrap_or_default();
            break;
        }
    }
    anyhow::ensure!(
        !url.is_empty() && !secret.is_empty(),
        "the sandbox did not start"
    );
    Ok((child, url, id, secret))
}

/// The demo job pointed at the served sandbox, the dataset's extract and `out`.
fn job_text(url: &str, dir: &Path, out: &Path) -> anyhow::Result<String> {
    let demo =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs/demo.toml"))?;
    let (start, end) = (
        demo.find("[sandbox]").context("demo job: [sandbox]")?,
        demo.find("[erp.extract]")
            .context("demo job: [erp.extract]")?,
    );
    let extract = dir.join(files::ERP_EXTRACT_CSV);
    Ok(format!("{}{}", &demo[..start], &demo[end..])
        .replace(
            "base_url = \"sandbox\"",
            &format!("base_url = \"{url}\"\nclient_id_env = \"BENCH_SD_ID\"\nclient_secret_env = \"BENCH_SD_SECRET\""),
        )
        .replace("requests_per_second = 50", "requests_per_second = 1000")
        .replace("max_in_flight = 4", "max_in_flight = 16")
        .replace("fetch_documents = true", "fetch_documents = false")
        .replace(
            "url = \"../fixtures/demo/erp_extract.csv\"",
            &format!("url = {:?}", extract.display().to_string()),
        )
        .replace("url = \"../out/demo\"", &format!("url = {:?}", out.display().to_string()))
        .replace(
            "url = \"../out/demo-imports\"",
            &format!("url = {:?}", out.join("imports").display().to_string()),
        ))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let contracts: u64 = args
        .first()
        .map(|s| s.parse())
        .transpose()
        .context("CONTRACTS must be a number")?
        .unwrap_or(1_000_000);
    let dir = std::path::absolute(PathBuf::from(format!("target/bench-data/run-{contracts}")))?;
    if !dir.join(files::MANIFEST).exists() {
        let started = Instant::now();
        let mut opts = GenOptions::new(contracts, 7, &dir);
        opts.documents = Some(false);
        gen::generate(&opts).with_context(|| format!("generating into {}", dir.display()))?;
        println!(
            "generated {contracts} contracts in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let started = Instant::now();
    let (sandbox, url, id, secret) = start_sandbox(&dir)?;
    println!(
        "sandbox serving {contracts} contracts after {:.1} s, RSS {:.0} MiB (its own process)",
        started.elapsed().as_secs_f64(),
        status_mib(sandbox.0.id(), "VmRSS:").unwrap_or(f64::NAN)
    );
    let work = tempfile::tempdir()?;
    let out = work.path().join("out");
    let job = work.path().join("bench.toml");
    std::fs::write(&job, job_text(&url, &dir, &out)?)?;

    let started = Instant::now();
    let mut run = Command::new(BIN)
        .args(["run"])
        .arg(&job)
        .env("BENCH_SD_ID", id)
        .env("BENCH_SD_SECRET", secret)
        .env("CONTRACT_RECON_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let pid = run.id();
    let mut peak = 0f64;
    let status = loop {
        if let Some(hwm) = status_mib(pid, "VmHWM:") {
            peak = peak.max(hwm);
        }
        if let Some(status) = run.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let wall = started.elapsed().as_secs_f64();
    println!("run: {status}, {wall:.1} s, peak RSS of the run's process {peak:.0} MiB");
    println!(
        "sandbox RSS after the run {:.0} MiB (peak {:.0} MiB)",
        status_mib(sandbox.0.id(), "VmRSS:").unwrap_or(f64::NAN),
        status_mib(sandbox.0.id(), "VmHWM:").unwrap_or(f64::NAN)
    );
    let latest = std::fs::read_to_string(out.join("runs/job=demo/latest.json"))
        .context("the run published no latest.json")?;
    let latest: serde_json::Value = serde_json::from_str(&latest)?;
    println!("latest.json: {latest}");
    if let Some(summary) = latest
        .get("summary")
        .and_then(|s| s.as_str())
        // Paths in `latest.json` are from the store's root (`/` for a folder).
        .map(|s| Path::new("/").join(s))
        .and_then(|p| std::fs::read_to_string(p).ok())
    {
        let summary: serde_json::Value = serde_json::from_str(&summary)?;
        println!("inputs: {}", summary["inputs"]);
        println!("stage times (ms): {}", summary["timings"]);
        println!("drift rows: {}", summary["drift_total"]);
    }
    Ok(())
}
