//! What a crash must never break, read from the output folder and the
//! sandbox as a reader (an analyst, `latest.json`, the ERP) sees them.

use super::ground::JOB;
use crate::common::{drift_keys, DriftKey};
use contract_recon::sandbox::Sandbox;
use polars::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A run with its `_SUCCESS` in the `runs` dataset.
#[derive(Debug, Clone)]
pub struct CompleteRun {
    /// Run id.
    pub run_id: String,
    /// Its folder in the `runs` dataset.
    pub dir: PathBuf,
    /// `nightly`, `backfill` or `targeted`.
    pub kind: String,
    /// When it finished (orders runs).
    pub finished_at: String,
    /// Its files, `<table>/<name>`, in publish order.
    pub files: Vec<String>,
}

impl CompleteRun {
    /// The run's folder in `table`.
    pub fn table_dir(&self, table: &str) -> PathBuf {
        let s = self
            .dir
            .to_string_lossy()
            .replace("/runs/job=", &format!("/{table}/job="));
        PathBuf::from(s)
    }

    /// The run's drift rows, as a set.
    pub fn drift(&self) -> BTreeSet<DriftKey> {
        let path = self.table_dir("drift").join("drift.parquet");
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        drift_keys(&ParquetReader::new(file).finish().unwrap())
    }
}

fn json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    found.sort();
    found
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_file() && !is_local_store_temp_file(&e.path()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    found
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = vec![];
    for sub in subdirs(dir) {
        found.extend(files_under(&sub));
    }
    found.extend(files_in(dir).into_iter().map(|f| dir.join(f)));
    found
}

/// Every run folder (`run_date=*/run_id=*`) of `table`, with its run id.
fn run_folders(out: &Path, table: &str) -> Vec<(String, PathBuf)> {
    let root = out.join(table).join(format!("job={JOB}"));
    subdirs(&root)
        .iter()
        .flat_map(|date| subdirs(date))
        .map(|dir| {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            (name.trim_start_matches("run_id=").to_string(), dir)
        })
        .collect()
}

/// The runs `_SUCCESS` marks complete, of `kind` (any with `None`), oldest first.
pub fn complete_runs(out: &Path, kind: Option<&str>) -> Vec<CompleteRun> {
    let mut runs: Vec<CompleteRun> = run_folders(out, "runs")
        .into_iter()
        .filter(|(_, dir)| dir.join("_SUCCESS").is_file())
        .map(|(run_id, dir)| {
            let manifest = json(&dir.join("_SUCCESS"));
            CompleteRun {
                run_id,
                kind: manifest["kind"].as_str().unwrap_or("nightly").to_string(),
                finished_at: manifest["finished_at"].as_str().unwrap().to_string(),
                files: serde_json::from_value(manifest["files"].clone()).unwrap(),
                dir,
            }
        })
        .filter(|r| kind.is_none_or(|k| r.kind == k))
        .collect();
    runs.sort_by(|a, b| a.finished_at.cmp(&b.finished_at));
    runs
}

/// Staged manifests of committed, not yet published runs, by run id.
fn staged_manifests(out: &Path) -> BTreeMap<String, (PathBuf, Vec<String>)> {
    subdirs(&out.join("_staging").join(JOB))
        .into_iter()
        .filter(|dir| dir.join("manifest.json").is_file())
        .map(|dir| {
            let manifest = json(&dir.join("manifest.json"));
            let run_id = manifest["run_id"].as_str().unwrap().to_string();
            let files = serde_json::from_value(manifest["files"].clone()).unwrap();
            (run_id, (dir, files))
        })
        .collect()
}

/// No visible partial report:
/// - `latest.json` names a complete nightly run, the newest once `settled`;
/// - every `_SUCCESS` (a table's or the run's) comes after all its files,
///   each of which reads back (Parquet parses);
/// - a run folder without its `_SUCCESS` exists only between a kill and the
///   next run, and then holds only files of a committed run (its staged
///   manifest), byte for byte as staged: final rows, which the next run
///   completes. `settled`: no such folder, and nothing left in staging.
pub fn assert_no_partial_report(out: &Path, settled: bool, at: &str) {
    let complete = complete_runs(out, None);
    let staged = staged_manifests(out);
    let tables: Vec<String> = subdirs(out)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|t| !t.starts_with('_') && t != "state" && t != "snapshots")
        .collect();
    for table in &tables {
        for (run_id, dir) in run_folders(out, table) {
            let present: Vec<String> = files_in(&dir)
                .into_iter()
                .filter(|f| f != "_SUCCESS")
                .collect();
            if dir.join("_SUCCESS").is_file() {
                let listed: Vec<String> = if table == "runs" {
                    let run = complete.iter().find(|r| r.run_id == run_id).unwrap();
                    for file in &run.files {
                        let (t, name) = file.split_once('/').unwrap();
                        let there = run.table_dir(t);
                        assert!(
                            there.join(name).is_file(),
                            "{at}: {file} of complete run {run_id}"
                        );
                        assert!(
                            there.join("_SUCCESS").is_file(),
                            "{at}: {t}/_SUCCESS of {run_id}"
                        );
                    }
                    vec![]
                } else {
                    serde_json::from_value(json(&dir.join("_SUCCESS"))["files"].clone()).unwrap()
                };
                for name in &listed {
                    assert!(
                        present.contains(name),
                        "{at}: {table}/{name} of {run_id} missing under its _SUCCESS"
                    );
                }
                for name in present.iter().filter(|n| n.ends_with(".parquet")) {
                    let file = std::fs::File::open(dir.join(name)).unwrap();
                    ParquetReader::new(file)
                        .finish()
                        .unwrap_or_else(|e| panic!("{at}: {table}/{name} of {run_id}: {e}"));
                }
            } else {
                assert!(
                    !settled,
                    "{at}: {dir:?} has no _SUCCESS after a complete run"
                );
                let (staging, files) = staged.get(&run_id).unwrap_or_else(|| {
                    panic!("{at}: {dir:?} is visible without _SUCCESS and its run is not committed")
                });
                for name in &present {
                    let file = format!("{table}/{name}");
                    assert!(
                        files.contains(&file),
                        "{at}: {file} of {run_id} is not in its manifest"
                    );
                    assert_eq!(
                        std::fs::read(dir.join(name)).unwrap(),
                        std::fs::read(staging.join(&file)).unwrap(),
                        "{at}: {file} of {run_id} differs from what was committed"
                    );
                }
            }
        }
    }
    let latest = out
        .join("runs")
        .join(format!("job={JOB}"))
        .join("latest.json");
    let nightly: Vec<&CompleteRun> = complete.iter().filter(|r| r.kind == "nightly").collect();
    if latest.is_file() {
        let run_id = json(&latest)["run_id"].as_str().unwrap().to_string();
        assert!(
            nightly.iter().any(|r| r.run_id == run_id),
            "{at}: latest.json names {run_id}, not a complete nightly run"
        );
        if settled {
            assert_eq!(
                Some(&run_id),
                nightly.last().map(|r| &r.run_id),
                "{at}: latest.json is not the newest run"
            );
        }
    } else {
        assert!(
            !settled || nightly.is_empty(),
            "{at}: complete runs and no latest.json"
        );
    }
    if settled {
        // The local file system keeps emptied folders: files count.
        let left = files_under(&out.join("_staging").join(JOB));
        assert!(left.is_empty(), "{at}: left in staging: {left:?}");
    }
}

/// A temporary file of object_store's local backend (`<name>#<digits>`,
/// renamed into place when a put completes): a kill mid-put leaves one,
/// which no listing or reader of the store ever sees, so the checks skip it.
fn is_local_store_temp_file(file: &Path) -> bool {
    file.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.rsplit_once('#'))
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The watermark is never ahead of the data: unset until a nightly run is
/// complete, and never later than the walk of the newest complete one.
pub fn assert_watermark_not_ahead(out: &Path, at: &str) {
    let state = out.join("state").join(format!("{JOB}.json"));
    let watermark = state
        .is_file()
        .then(|| json(&state)["watermark"].as_str().map(str::to_string))
        .flatten();
    let Some(watermark) = watermark else { return };
    let watermark = chrono::DateTime::parse_from_rfc3339(&watermark).unwrap();
    let covered = complete_runs(out, Some("nightly"))
        .iter()
        .filter_map(|r| {
            let summary = json(&r.dir.join("summary.json"));
            let after = summary["ingestion"]["watermark_after"]
                .as_str()?
                .to_string();
            Some(chrono::DateTime::parse_from_rfc3339(&after).unwrap())
        })
        .max();
    assert!(
        covered.is_some_and(|c| watermark <= c),
        "{at}: watermark {watermark} ahead of the newest complete run's walk ({covered:?})"
    );
}

/// Everything written to the ERP and SpotDraft, as a crash must leave it.
#[derive(Debug, PartialEq)]
pub struct Effects {
    /// Idempotency keys of the ERP writes applied.
    pub applied_keys: BTreeSet<String>,
    /// Every ERP record (fields, version).
    pub erp_records: Vec<serde_json::Value>,
    /// Attachments stored, by ERP record.
    pub attachments: BTreeMap<String, Vec<serde_json::Value>>,
    /// Contracts created in SpotDraft.
    pub contracts_created: u64,
    /// Supporting documents stored in SpotDraft.
    pub supported_documents: u64,
    /// Per purchase request: the contracts naming it.
    pub contracts_per_record: BTreeMap<String, usize>,
}

/// What the sandbox holds; every ERP write applied at most once per key
/// (distinct idempotency keys == applied writes).
pub fn effects(sandbox: &Sandbox, at: &str) -> Effects {
    let state = sandbox.state();
    let applied: Vec<String> = state
        .erp_writes()
        .into_iter()
        .filter(|w| w.applied)
        .map(|w| w.idempotency_key.unwrap_or_default())
        .collect();
    let applied_keys: BTreeSet<String> = applied.iter().cloned().collect();
    assert_eq!(
        applied_keys.len(),
        applied.len(),
        "{at}: a key applied twice"
    );
    assert!(!applied_keys.contains(""), "{at}: a write without a key");
    let mut records = state.erp_records();
    records.sort_by(|a, b| a.erp_record_id.cmp(&b.erp_record_id));
    let contracts_per_record = records
        .iter()
        .filter(|r| r.erp_record_id.starts_with("ERP-NEW"))
        .map(|r| {
            let n = state.contracts_with_external_id(&r.erp_record_id).len();
            (r.erp_record_id.clone(), n)
        })
        .collect();
    let attachments = records
        .iter()
        .map(|r| {
            let stored = state.attachments(&r.erp_record_id);
            let stored = stored.iter().map(|a| serde_json::to_value(a).unwrap());
            (r.erp_record_id.clone(), stored.collect::<Vec<_>>())
        })
        .filter(|(_, a)| !a.is_empty())
        .collect();
    let counters = state.counters();
    Effects {
        attachments,
        applied_keys,
        erp_records: records
            .iter()
            .map(|r| serde_json::to_value(r).unwrap())
            .collect(),
        contracts_created: counters.contracts_created,
        supported_documents: counters.supported_documents_stored,
        contracts_per_record,
    }
}

/// Asserts that `got` equals `want`, naming what differs (keys, records).
pub fn assert_same_effects(got: &Effects, want: &Effects, at: &str) {
    if got == want {
        return;
    }
    let keys: Vec<_> = got
        .applied_keys
        .symmetric_difference(&want.applied_keys)
        .collect();
    let records: Vec<_> = got
        .erp_records
        .iter()
        .zip(&want.erp_records)
        .filter(|(g, w)| g != w)
        .collect();
    panic!(
        "{at}: effects differ\nkeys in one only: {keys:?}\nrecords (got, want): {records:#?}\n\
         attachments: {:?} / {:?}\ncreated: {} / {}, documents: {} / {}, per record: {:?} / {:?}",
        got.attachments,
        want.attachments,
        got.contracts_created,
        want.contracts_created,
        got.supported_documents,
        want.supported_documents,
        got.contracts_per_record,
        want.contracts_per_record
    );
}
