//! Benchmark: loading an ERP extract, streamed against whole-file, from a
//! local folder and from the in-memory store, CSV and Parquet. Prints, per
//! case, the file size, the bytes fetched, the load time and the peak memory
//! the load added (`VmHWM` after the load less `VmRSS` before it, the store's
//! own copy of the file excluded), and the ratio of streamed to whole-file.
//! Each case runs in a fresh child process, so one case's peak never hides
//! another's. Asserts nothing.
//!
//! The generator's extract has only the mapped columns; the `wide-` cases add
//! six unmapped text columns, as ERP exports have, which the streamed loader
//! never keeps (nor, for Parquet, fetches). "whole" reads the object into
//! memory first and parses it from there ([`parse_and_validate`]), the
//! loader's former way.
//!
//! `cargo bench --bench extract -- [ROWS]` (default 1,000,000 contracts; the
//! generator writes about 0.75 ERP rows per contract). The dataset is
//! generated once into `target/bench-data/extract-ROWS` and reused.

use anyhow::Context;
use contract_recon::erp::extract::{
    load_extract, parse_and_validate, Extract, ExtractFormat, ExtractSource,
};
use contract_recon::sandbox::dataset::{erp_extract_columns, files};
use contract_recon::sandbox::gen::{self, GenOptions};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use polars::prelude::SerReader;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// The environment variable a child process reads its case from.
const CASE_ENV: &str = "EXTRACT_BENCH_CASE";

/// The generator's extract with unmapped columns added, as ERP exports have.
const WIDE_CSV: &str = "erp_extract_wide.csv";
/// The same as Parquet (Snappy, Polars' row groups).
const WIDE_PARQUET: &str = "erp_extract_wide.parquet";
/// Unmapped columns added to each row of the wide extract.
const EXTRA_COLUMNS: [&str; 6] = [
    "DESCRIPTION",
    "NOTES",
    "BUYER_NAME",
    "COST_CENTER",
    "CREATED_BY",
    "LAST_CHANGED_AT",
];

/// Writes the wide copies of the generator's CSV extract.
fn write_wide(dir: &Path) -> anyhow::Result<()> {
    let mut reader = csv::Reader::from_path(dir.join(files::ERP_EXTRACT_CSV))?;
    let mut writer = csv::Writer::from_path(dir.join(WIDE_CSV))?;
    let mut header = reader.headers()?.clone();
    EXTRA_COLUMNS.iter().for_each(|c| header.push_field(c));
    writer.write_record(&header)?;
    for (i, record) in reader.records().enumerate() {
        let mut record = record?;
        record.push_field(&format!(
            "Framework agreement for services, lot {i}, renewal terms per schedule B"
        ));
        record.push_field(&format!(
            "Reviewed by procurement; ticket PRQ-{:07}",
            i * 7 % 9_999_991
        ));
        record.push_field(&format!("Buyer {}", i % 977));
        record.push_field(&format!("CC-{:05}", i % 4099));
        record.push_field(&format!("user{:04}@example.com", i % 5003));
        record.push_field(&format!(
            "2026-{:02}-{:02}T10:{:02}:00Z",
            i % 12 + 1,
            i % 28 + 1,
            i % 60
        ));
        writer.write_record(&record)?;
    }
    writer.flush()?;
    let mut frame = polars::prelude::CsvReadOptions::default()
        .with_infer_schema_length(Some(0))
        .try_into_reader_with_file_path(Some(dir.join(WIDE_CSV)))?
        .finish()?;
    let mut out = std::fs::File::create(dir.join(WIDE_PARQUET))?;
    polars::prelude::ParquetWriter::new(&mut out).finish(&mut frame)?;
    Ok(())
}

fn status_mib(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// One case in this process: prints a tab-separated line for the parent.
fn run_case(case: &str, dir: &Path) -> anyhow::Result<()> {
    let parts: Vec<&str> = case.split(',').collect();
    let [format, store, mode] = parts[..] else {
        anyhow::bail!("bad case {case}");
    };
    let (file, format) = match format {
        "csv" => (dir.join(files::ERP_EXTRACT_CSV), ExtractFormat::Csv),
        "wide-csv" => (dir.join(WIDE_CSV), ExtractFormat::Csv),
        "wide-parquet" => (dir.join(WIDE_PARQUET), ExtractFormat::Parquet),
        _ => (dir.join(files::ERP_EXTRACT_PARQUET), ExtractFormat::Parquet),
    };
    let file_bytes = std::fs::metadata(&file)?.len();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (store, path): (Arc<dyn ObjectStore>, StorePath) = match store {
        "local" => (
            Arc::new(LocalFileSystem::new()),
            StorePath::from_filesystem_path(&file)?,
        ),
        _ => {
            let memory: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
            let at = StorePath::from("extract");
            let bytes = std::fs::read(&file)?;
            runtime.block_on(memory.put(&at, PutPayload::from(bytes)))?;
            (memory, at)
        }
    };
    let columns = erp_extract_columns();
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = status_mib("VmRSS:");
    let started = Instant::now();
    let extract: Extract = runtime.block_on(async {
        let url = file.display().to_string();
        if mode == "stream" {
            load_extract(ExtractSource {
                store,
                path,
                display_url: &url,
                format,
                columns: &columns,
            })
            .await
            .map_err(anyhow::Error::from)
        } else {
            let bytes = store.get(&path).await?.bytes().await?;
            tokio::task::spawn_blocking(move || {
                parse_and_validate(&url, bytes, format, &columns).map_err(anyhow::Error::from)
            })
            .await?
        }
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let peak = status_mib("VmHWM:") - before;
    println!(
        "{case}\t{file_bytes}\t{}\t{seconds:.3}\t{peak:.0}\t{}\t{:.0}",
        if mode == "stream" {
            extract.bytes_fetched
        } else {
            file_bytes
        },
        extract.records.height(),
        extract.records.estimated_size() as f64 / (1 << 20) as f64,
    );
    Ok(())
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
        .context("ROWS must be a number")?
        .unwrap_or(1_000_000);
    let dir = PathBuf::from(format!("target/bench-data/extract-{contracts}"));
    if let Ok(case) = std::env::var(CASE_ENV) {
        return run_case(&case, &dir);
    }
    if !dir.join(files::ERP_EXTRACT_PARQUET).exists() {
        let mut opts = GenOptions::new(contracts, 7, &dir);
        opts.documents = Some(false);
        gen::generate(&opts).with_context(|| format!("generating into {}", dir.display()))?;
    }
    if !dir.join(WIDE_PARQUET).exists() {
        write_wide(&dir).context("writing the wide extracts")?;
    }
    println!(
        "{:<26} {:>9} {:>9} {:>8} {:>10} {:>9} {:>10}",
        "case", "file MiB", "fetched", "seconds", "peak+ MiB", "records", "frame MiB"
    );
    let mut peaks: BTreeMap<String, f64> = BTreeMap::new();
    let formats = ["csv", "parquet", "wide-csv", "wide-parquet"];
    for format in formats {
        for store in ["local", "memory"] {
            for mode in ["whole", "stream"] {
                let case = format!("{format},{store},{mode}");
                let out = std::process::Command::new(std::env::current_exe()?)
                    .args(std::env::args().skip(1))
                    .env(CASE_ENV, &case)
                    .output()?;
                let line = String::from_utf8_lossy(&out.stdout);
                let cells: Vec<&str> = line.trim().split('\t').collect();
                if cells.len() != 7 {
                    println!("{case}: failed: {}", String::from_utf8_lossy(&out.stderr));
                    continue;
                }
                let mib = |s: &str| s.parse::<f64>().unwrap_or(f64::NAN) / (1 << 20) as f64;
                println!(
                    "{:<26} {:>9.1} {:>9.1} {:>8} {:>10} {:>9} {:>10}",
                    case,
                    mib(cells[1]),
                    mib(cells[2]),
                    cells[3],
                    cells[4],
                    cells[5],
                    cells[6]
                );
                peaks.insert(case, cells[4].parse().unwrap_or(f64::NAN));
            }
        }
    }
    for format in formats {
        for store in ["local", "memory"] {
            let whole = peaks.get(&format!("{format},{store},whole"));
            let stream = peaks.get(&format!("{format},{store},stream"));
            if let (Some(w), Some(s)) = (whole, stream) {
                println!(
                    "{format} from {store}: streamed peak is {:.2}x the whole-file peak",
                    s / w
                );
            }
        }
    }
    Ok(())
}
