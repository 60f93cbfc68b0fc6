//! Helpers shared by the integration tests.

use polars::prelude::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// One drift row as the truth file and the reports both identify it.
pub type DriftKey = (String, String, String, String);

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of `jobs/demo.toml` with absolute fixture paths and the output under `out`.
pub fn demo_job_in(dir: &Path, out: &Path) -> PathBuf {
    let root = repo();
    let text = std::fs::read_to_string(root.join("jobs/demo.toml"))
        .unwrap()
        .replace("\"../fixtures/", &format!("\"{}/fixtures/", root.display()))
        .replace("\"../out/demo\"", &format!("\"{}\"", out.display()));
    let path = dir.join("demo.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A column of `df` as text, nulls as "".
pub fn text(df: &DataFrame, col: &str) -> Vec<String> {
    let c = df
        .column(col)
        .unwrap_or_else(|e| panic!("column {col}: {e}"));
    let s = c.cast(&DataType::String).unwrap();
    s.str()
        .unwrap()
        .iter()
        .map(|v| v.unwrap_or("").to_string())
        .collect()
}

/// The (kind, contract_id, erp_record_id, field) of every row of a drift frame.
pub fn drift_keys(df: &DataFrame) -> BTreeSet<DriftKey> {
    let (k, c, e, f) = (
        text(df, "drift_kind"),
        text(df, "contract_id"),
        text(df, "erp_record_id"),
        text(df, "field"),
    );
    (0..df.height())
        .map(|i| (k[i].clone(), c[i].clone(), e[i].clone(), f[i].clone()))
        .collect()
}

/// Asserts that every drift row has a `drift_id` and no two rows share one.
pub fn assert_drift_ids_unique(df: &DataFrame) {
    let ids = text(df, "drift_id");
    assert!(ids.iter().all(|id| id.len() == 16), "{ids:?}");
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "drift_id repeats within a run");
    assert!(!ids.is_empty());
}

/// Reads a CSV with every column as text.
pub fn read_csv_text(path: &Path) -> DataFrame {
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .finish()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The truth of a generated dataset: `expected_drift.csv`.
pub fn expected_drift(dataset: &Path) -> BTreeSet<DriftKey> {
    drift_keys(&read_csv_text(&dataset.join("expected_drift.csv")))
}

/// The drift rows of a report folder's `drift.parquet`.
pub fn reported_drift(report_dir: &Path) -> BTreeSet<DriftKey> {
    let file = std::fs::File::open(report_dir.join("drift.parquet")).unwrap();
    drift_keys(&ParquetReader::new(file).finish().unwrap())
}

/// Runs the built `contract-recon` binary.
pub fn cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_contract-recon"))
        .args(args)
        .env("CONTRACT_RECON_LOG", "warn")
        .output()
        .unwrap()
}
