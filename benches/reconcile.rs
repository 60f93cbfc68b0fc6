//! Benchmark: generate (or reuse) a fixture dataset, load the snapshot and the
//! CSV extract, reconcile with five compared fields (vendor id, PO number,
//! status through the value map, amount in minor units, effective date), write
//! the drift as Parquet; prints wall time per stage and peak RSS (`VmHWM`,
//! reset after generating the dataset). Then runs the equivalent DuckDB SQL on
//! the same files (`benches/duckdb_reconcile.py`, needs `pip install duckdb`)
//! and prints both, with the ratio.
//!
//! Run optimized (never in debug):
//! `cargo bench --profile production --bench reconcile -- [DIR] [CONTRACTS]`
//! (defaults: `target/bench-data/recon-1000000`, 1,000,000 contracts). The
//! dataset is generated once into DIR and reused while its manifest's contract
//! count matches. `RUST_LOG=contract_recon=debug` adds the engine's own stage times.

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

fn report(stage: &str, started: Instant) {
    let rss = peak_rss_mib()
        .map(|m| format!("{m:.0} MiB"))
        .unwrap_or_else(|| "n/a".into());
    println!(
        "{stage:<22} {:>8.3} s   peak RSS so far {rss}",
        started.elapsed().as_secs_f64()
    );
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

/// Runs the DuckDB baseline on DIR; its JSON line, or why it could not run.
fn run_duckdb(dir: &Path) -> Result<serde_json::Value, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/duckdb_reconcile.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
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
        .map(|s| s.parse::<u64>())
        .transpose()
        .map_err(|e| anyhow::anyhow!("CONTRACTS must be a number: {e}"))?
        .unwrap_or(1_000_000);
    let dir = args
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("target/bench-data/recon-{contracts}")));

    if reusable(&dir, contracts) {
        println!("reusing dataset in {}", dir.display());
    } else {
        let started = Instant::now();
        let mut opts = GenOptions::new(contracts, 7, &dir);
        opts.snapshot = true;
        opts.documents = Some(false);
        gen::generate(&opts).with_context(|| format!("generating into {}", dir.display()))?;
        report("generate", started);
    }
    reset_peak_rss();

    let total = Instant::now();
    let started = Instant::now();
    let file = std::fs::File::open(dir.join(files::SNAPSHOT)).context("opening snapshot")?;
    let spec = bench_spec();
    // Only the columns the engine reads, as a columnar engine would.
    let mut columns = link::needed_snapshot_columns(&spec);
    columns.push("document_sha256".into());
    let snapshot = ParquetReader::new(file)
        .with_columns(Some(columns))
        .finish()
        .map_err(|e| anyhow::anyhow!("reading snapshot: {e}"))?;
    report("load snapshot", started);

    let started = Instant::now();
    std::fs::create_dir_all(&dir)?;
    let store = Arc::new(LocalFileSystem::new_with_prefix(&dir)?);
    let columns: BTreeMap<String, String> = ERP_EXTRACT_COLUMNS
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let url = format!("file://{}/{}", dir.display(), files::ERP_EXTRACT_CSV);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let extract = runtime.block_on(load_extract(ExtractSource {
        store,
        path: StorePath::from(files::ERP_EXTRACT_CSV),
        display_url: &url,
        format: ExtractFormat::Csv,
        columns: &columns,
    }))?;
    report("load extract (CSV)", started);

    let started = Instant::now();
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
    report("reconcile", started);

    let started = Instant::now();
    let drift_file = std::fs::File::create(dir.join("contract_recon_drift.parquet"))?;
    ParquetWriter::new(drift_file)
        .finish(&mut out.drift)
        .map_err(|e| anyhow::anyhow!("writing drift: {e}"))?;
    report("write drift Parquet", started);
    report("total", total);
    let ours_s = total.elapsed().as_secs_f64();
    let ours_mib = peak_rss_mib().unwrap_or(f64::NAN);

    println!(
        "contracts {contracts_n}, ERP records {records_n} (+{rejects_n} rejected), drift rows {}",
        out.drift.height()
    );
    println!("{}", serde_json::to_string_pretty(&out.stats)?);

    println!("\nbaseline: the equivalent DuckDB SQL on the same files (2 threads)");
    match run_duckdb(&dir) {
        Ok(duck) => {
            let duck_s = duck["seconds"].as_f64().unwrap_or(f64::NAN);
            println!("{duck}");
            println!("| engine | wall time | peak RSS | drift rows |");
            println!("|---|---|---|---|");
            println!("| contract-recon (Polars, all drift rules) | {ours_s:.2} s | {ours_mib:.0} MiB | {} |", out.drift.height());
            println!(
                "| {} (join + 5 comparisons) | {duck_s:.2} s | {} MiB | {} |",
                duck["engine"].as_str().unwrap_or("duckdb"),
                duck["peak_rss_mib"],
                duck["drift_rows"]
            );
            println!(
                "ratio contract-recon / DuckDB: {:.2}x the time",
                ours_s / duck_s
            );
        }
        Err(why) => println!(
            "DuckDB baseline not run: {why}\n(install it with `pip install duckdb==2.0.1`)"
        ),
    }
    Ok(())
}
