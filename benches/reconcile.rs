//! Benchmark: generate (or reuse) a fixture dataset, load the snapshot and the
//! ERP extract (CSV by default, or Parquet), reconcile with five compared fields
//! (vendor id, PO number, status through the value map, amount in minor units,
//! effective date) and every other drift rule, write the drift as Parquet;
//! prints wall and CPU time per stage and peak RSS (`VmHWM`, reset after
//! generating the dataset). Then runs the same work in DuckDB
//! (`benches/duckdb_reconcile.py`, needs `pip install duckdb==2.0.1`), checks
//! that both drift-row sets are equal (printing the first differences when they
//! are not) and only then prints both figures with the ratio.
//!
//! Run optimized (never in debug):
//! `cargo bench --profile release --bench reconcile -- [DIR] [CONTRACTS]`
//! (defaults: `target/bench-data/recon-<CONTRACTS>`, 1,000,000 contracts).
//! Environment: `BENCH_CONTRACTS` (instead of the second argument),
//! `BENCH_EXTRACT=csv|parquet` (default `csv`), `BENCH_DUCKDB=0` to skip the
//! baseline. The dataset is generated once into DIR and reused while its
//! manifest's contract count matches (generate large ones with
//! `contract-recon fixtures gen --snapshot --documents false` in a process of
//! their own, so the generator's memory is not this process's).
//! `RUST_LOG=contract_recon=debug` adds the engine's own stage times.

use anyhow::Context;
use contract_recon::erp::extract::{load_extract, ExtractFormat, ExtractSource};
use contract_recon::reconcile::spec::ReconcileSpec;
use contract_recon::reconcile::{demo_spec, link, reconcile, RunContext};
use contract_recon::sandbox::dataset::{files, ERP_EXTRACT_COLUMNS};
use contract_recon::sandbox::gen::{self, GenOptions};
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use polars::prelude::{ParquetReader, ParquetWriter, SerReader};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Peak resident set size of this process in MiB, from `/proc/self/status`.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU time (user + system) of this process in seconds, from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is field 3.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state.
    (ticks(11) + ticks(12)) / 100.0
}

/// A stage's start: wall clock and CPU time.
struct Stage {
    wall: Instant,
    cpu: f64,
}

impl Stage {
    fn start() -> Stage {
        Stage {
            wall: Instant::now(),
            cpu: cpu_seconds(),
        }
    }

    /// Prints the stage's wall and CPU time and the peak RSS so far.
    fn report(&self, stage: &str) -> f64 {
        let rss = peak_rss_mib()
            .map(|m| format!("{m:.0} MiB"))
            .unwrap_or_else(|| "n/a".into());
        let wall = self.wall.elapsed().as_secs_f64();
        println!(
            "{stage:<22} {wall:>8.3} s  (CPU {:>7.2} s)   peak RSS so far {rss}",
            cpu_seconds() - self.cpu
        );
        wall
    }
}

/// Resets the peak RSS counter, so the figures cover only what follows.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The demo spec restricted to the five fields the peers' figures compare.
fn bench_spec() -> ReconcileSpec {
    let mut spec = demo_spec();
    let five = [
        "vendor_id",
        "po_number",
        "status",
        "amount",
        "effective_date",
    ];
    spec.compares.retain(|c| five.contains(&c.field.as_str()));
    assert_eq!(
        spec.compares.len(),
        5,
        "the demo spec lost a benchmark field"
    );
    spec
}

/// Runs the DuckDB baseline on DIR, comparing its drift rows with the engine's
/// `drift` file; its JSON line, or why it could not run. The script's notes
/// (the first differing rows) are passed through.
fn run_duckdb(dir: &Path, extract: &str, drift: &Path) -> Result<serde_json::Value, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/duckdb_reconcile.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(dir)
        .args(["--extract", extract, "--compare"])
        .arg(drift)
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(stderr.trim().to_string());
    }
    eprint!("{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).map_err(|e| format!("unexpected output {stdout:?}: {e}"))
}

/// True when DIR already holds a complete dataset of `contracts` contracts with a snapshot.
fn reusable(dir: &Path, contracts: u64) -> bool {
    let manifest = std::fs::read_to_string(dir.join(files::MANIFEST)).ok();
    let count = manifest
        .and_then(|m| serde_json::from_str::<serde_json::Value>(&m).ok())
        .and_then(|v| v.get("contracts").and_then(|c| c.as_u64()));
    count == Some(contracts)
        && dir.join(files::SNAPSHOT).exists()
        && dir.join(files::ERP_EXTRACT_CSV).exists()
        && dir.join(files::ERP_EXTRACT_PARQUET).exists()
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let contracts: u64 = args
        .get(1)
        .cloned()
        .or_else(|| std::env::var("BENCH_CONTRACTS").ok())
        .map(|s| s.parse::<u64>())
        .transpose()
        .map_err(|e| anyhow::anyhow!("CONTRACTS (BENCH_CONTRACTS) must be a number: {e}"))?
        .unwrap_or(1_000_000);
    let dir = args
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("target/bench-data/recon-{contracts}")));
    let extract_kind = std::env::var("BENCH_EXTRACT").unwrap_or_else(|_| "csv".into());
    let (format, extract_file) = match extract_kind.as_str() {
        "csv" => (ExtractFormat::Csv, files::ERP_EXTRACT_CSV),
        "parquet" => (ExtractFormat::Parquet, files::ERP_EXTRACT_PARQUET),
        other => anyhow::bail!("BENCH_EXTRACT must be csv or parquet, not {other:?}"),
    };
    let duckdb = std::env::var("BENCH_DUCKDB").map_or(true, |v| v != "0");

    if reusable(&dir, contracts) {
        println!("reusing dataset in {}", dir.display());
    } else {
        let started = Stage::start();
        let mut opts = GenOptions::new(contracts, 7, &dir);
        opts.snapshot = true;
        opts.documents = Some(false);
        gen::generate(&opts).with_context(|| format!("generating into {}", dir.display()))?;
        started.report("generate");
    }
    reset_peak_rss();

    let total = Stage::start();
    let started = Stage::start();
    let file = std::fs::File::open(dir.join(files::SNAPSHOT)).context("opening snapshot")?;
    let spec = bench_spec();
    // Only the columns the engine reads, as a columnar engine would.
    let mut columns = link::needed_snapshot_columns(&spec);
    columns.push("document_sha256".into());
    let snapshot = ParquetReader::new(file)
        .with_columns(Some(columns))
        .finish()
        .map_err(|e| anyhow::anyhow!("reading snapshot: {e}"))?;
    started.report("load snapshot");

    let started = Stage::start();
    let store = Arc::new(LocalFileSystem::new_with_prefix(&dir)?);
    let columns: BTreeMap<String, String> = ERP_EXTRACT_COLUMNS
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let url = format!("file://{}/{extract_file}", dir.display());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let extract = runtime.block_on(load_extract(ExtractSource {
        store,
        path: StorePath::from(extract_file),
        display_url: &url,
        format,
        columns: &columns,
    }))?;
    started.report(&format!("load extract ({extract_kind})"));

    let started = Stage::start();
    let ctx = RunContext {
        run_id: "bench".into(),
        job: "demo".into(),
        detected_at: "2026-11-01T00:00:00Z".into(),
        known_existing_contract_ids: Vec::new(),
    };
    let (contracts_n, records_n, rejects_n) = (
        snapshot.height(),
        extract.records.height(),
        extract.rejects.height(),
    );
    let mut out = reconcile(snapshot, extract.records, &spec, &ctx)?;
    started.report("reconcile");

    let started = Stage::start();
    let drift_path = dir.join("contract_recon_drift.parquet");
    let drift_file = std::fs::File::create(&drift_path)?;
    ParquetWriter::new(drift_file)
        .finish(&mut out.drift)
        .map_err(|e| anyhow::anyhow!("writing drift: {e}"))?;
    started.report("write drift Parquet");
    let ours_s = total.report("total");
    let ours_cpu = cpu_seconds() - total.cpu;
    let ours_mib = peak_rss_mib().unwrap_or(f64::NAN);

    println!(
        "contracts {contracts_n}, ERP records {records_n} (+{rejects_n} rejected), drift rows {}",
        out.drift.height()
    );
    println!("{}", serde_json::to_string(&out.stats)?);
    if !duckdb {
        return Ok(());
    }

    println!("\nbaseline: the same work in DuckDB on the same files (2 threads)");
    let duck = match run_duckdb(&dir, &extract_kind, &drift_path) {
        Ok(duck) => duck,
        Err(why) => {
            println!(
                "DuckDB baseline not run: {why}\n(install it with `pip install duckdb==2.0.1`)"
            );
            return Ok(());
        }
    };
    println!("{duck}");
    if duck["same_drift_set"].as_bool() != Some(true) {
        println!(
            "drift sets DIFFER: {} rows only in the engine's, {} only in DuckDB's (first ones above); times not compared",
            duck["only_engine"], duck["only_duckdb"]
        );
        return Ok(());
    }
    println!(
        "drift sets equal: {} rows each, {} rejects each",
        out.drift.height(),
        duck["rejects"]
    );
    let duck_s = duck["seconds"].as_f64().unwrap_or(f64::NAN);
    let duck_mib = duck["peak_rss_mib"].as_f64().unwrap_or(f64::NAN);
    println!("| engine | wall time | CPU time | peak RSS | drift rows |");
    println!("|---|---|---|---|---|");
    println!(
        "| contract-recon | {ours_s:.2} s | {ours_cpu:.2} s | {ours_mib:.0} MiB | {} |",
        out.drift.height()
    );
    println!(
        "| {} | {duck_s:.2} s | {} s | {duck_mib:.0} MiB | {} |",
        duck["engine"].as_str().unwrap_or("duckdb"),
        duck["cpu_seconds"],
        duck["drift_rows"]
    );
    println!(
        "ratio contract-recon / DuckDB: {:.2}x the time, {:.2}x the peak memory",
        ours_s / duck_s,
        ours_mib / duck_mib
    );
    Ok(())
}
