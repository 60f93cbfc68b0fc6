//! Benchmark: generate (or reuse) a fixture dataset, load the snapshot and the
//! CSV extract, reconcile with the demo spec; prints wall time per stage and
//! peak RSS (`VmHWM`).
//!
//! Run optimized (never in debug):
//! `cargo bench --bench reconcile -- [DIR] [CONTRACTS]`
//! (defaults: `target/bench-data/recon-1000000`, 1,000,000 contracts). The
//! dataset is generated once into DIR and reused while its manifest's contract
//! count matches. `RUST_LOG=contract_recon=debug` adds the engine's own stage times.

use anyhow::Context;
use contract_recon::erp::extract::{load_extract, ExtractFormat, ExtractSource};
use contract_recon::reconcile::{demo_spec, reconcile, RunContext};
use contract_recon::sandbox::dataset::{files, ERP_EXTRACT_COLUMNS};
use contract_recon::sandbox::gen::{self, GenOptions, SNAPSHOT};
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use polars::prelude::{ParquetReader, SerReader};
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

/// True when DIR already holds a complete dataset of `contracts` contracts with a snapshot.
fn reusable(dir: &Path, contracts: u64) -> bool {
    let manifest = std::fs::read_to_string(dir.join(files::MANIFEST)).ok();
    let count = manifest
        .and_then(|m| serde_json::from_str::<serde_json::Value>(&m).ok())
        .and_then(|v| v.get("contracts").and_then(|c| c.as_u64()));
    count == Some(contracts)
        && dir.join(SNAPSHOT).exists()
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

    let total = Instant::now();
    let started = Instant::now();
    let file = std::fs::File::open(dir.join(SNAPSHOT)).context("opening snapshot")?;
    let snapshot = ParquetReader::new(file)
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
    };
    let (contracts_n, records_n, rejects_n) = (
        snapshot.height(),
        extract.records.height(),
        extract.rejects.height(),
    );
    let out = reconcile(snapshot, extract.records, &demo_spec(), &ctx)?;
    report("reconcile", started);
    report("load + reconcile", total);

    println!(
        "contracts {contracts_n}, ERP records {records_n} (+{rejects_n} rejected), drift rows {}",
        out.drift.height()
    );
    println!("{}", serde_json::to_string_pretty(&out.stats)?);
    Ok(())
}
