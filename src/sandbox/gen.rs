//! Deterministic fixture generator: writes a dataset directory (see
//! [`crate::sandbox::dataset`]) of contracts, ERP records and extracts, executed
//! documents and the expected drift, for a number of contracts and a seed.
//!
//! The same seed and count give byte-identical files: all randomness comes from
//! seeded `StdRng`s, timestamps derive from a fixed epoch (2026-11-01T00:00:00Z),
//! and nothing iterates a hash map. Each file is written under a temporary name
//! and renamed when complete; `manifest.json` is renamed last.
//!
//! Injected drift follows the rules in [`crate::reconcile::spec`]: each in-scope
//! contract gets at most one injection, chosen in [`plan`], so the truth in
//! `expected_drift.csv` holds by construction.

mod contract;
mod inject;
mod output;
mod pdf;
mod plan;

use crate::reconcile::spec::kinds;
use crate::sandbox::dataset::{files, ExpectedDrift};
use contract::{Base, Ids};
use output::{PendingFile, SnapshotColumns};
use plan::{Extra, Plan};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Contract counts up to which documents are written unless told otherwise.
pub const DOCUMENTS_DEFAULT_LIMIT: u64 = 10_000;
/// Largest supported contract count (PO numbers stay unique below it).
pub const MAX_CONTRACTS: u64 = contract::Ids::MAX_CONTRACTS;
/// Contract statuses the demo job reconciles.
pub const IN_SCOPE_STATUSES: [&str; 4] = ["SIGN", "EXECUTED", "ON_HOLD", "VOIDED"];

/// What to generate, and where.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// Number of contracts (1 to [`MAX_CONTRACTS`]).
    pub contracts: u64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Output folder; created when missing. Existing files of the same names are replaced.
    pub out: PathBuf,
    /// Write executed PDFs under `documents/`; `None` means yes up to
    /// [`DOCUMENTS_DEFAULT_LIMIT`] contracts. Checksums are computed either way.
    pub documents: Option<bool>,
    /// Also write `snapshot.parquet`.
    pub snapshot: bool,
}

impl GenOptions {
    /// Options with the defaults: documents by count, no snapshot.
    pub fn new(contracts: u64, seed: u64, out: impl Into<PathBuf>) -> GenOptions {
        GenOptions {
            contracts,
            seed,
            out: out.into(),
            documents: None,
            snapshot: false,
        }
    }

    /// Whether documents are written.
    pub fn writes_documents(&self) -> bool {
        self.documents
            .unwrap_or(self.contracts <= DOCUMENTS_DEFAULT_LIMIT)
    }
}

/// Injection rates, as written to the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct GenRates {
    /// Share of in-scope contracts per non-field drift kind.
    pub drift_kind: f64,
    /// Share of in-scope contracts per compared field.
    pub field_mismatch_per_field: f64,
    /// Share of clean in-scope contracts with one kind of noise.
    pub noise: f64,
    /// Extra rejected extract rows, belonging to no contract, per contract.
    pub rejects: f64,
}

/// Counts of what was generated; also the body of `manifest.json`.
#[derive(Debug, Clone, Serialize)]
pub struct GenSummary {
    /// Seed used.
    pub seed: u64,
    /// Contracts written.
    pub contracts: u64,
    /// Contracts by status.
    pub contracts_by_status: BTreeMap<String, u64>,
    /// Statuses the demo job reconciles.
    pub in_scope_statuses: Vec<String>,
    /// Contracts in those statuses.
    pub in_scope_contracts: u64,
    /// Rows of `erp_records.jsonl`: the extract's rows with a record id, rejected
    /// for an unusable value or not.
    pub erp_records: u64,
    /// Data rows of `erp_extract.csv` / `.parquet`.
    pub extract_rows: u64,
    /// Reject rows by `reason_kind`.
    pub rejects: BTreeMap<String, u64>,
    /// Rows of `expected_drift.csv` by drift kind (every kind listed).
    pub expected_drift: BTreeMap<String, u64>,
    /// `field_mismatch` rows by field.
    pub field_mismatch_by_field: BTreeMap<String, u64>,
    /// Clean rows carrying noise that is not drift, by noise kind.
    pub noise: BTreeMap<String, u64>,
    /// Executed documents (written or not).
    pub documents: u64,
    /// Whether documents were written under `documents/`.
    pub documents_written: bool,
    /// Injection rates.
    pub rates: GenRates,
    /// Files written, relative to the output folder (documents as `documents/`).
    pub files: Vec<String>,
}

/// Why a dataset could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// The contract count is out of range.
    #[error("--contracts must be between 1 and {max}, got {got}")]
    ContractCount {
        /// Requested count.
        got: u64,
        /// Largest supported count.
        max: u64,
    },
    /// The output folder could not be created.
    #[error("cannot create output folder {path}")]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A record could not be serialized.
    #[error("cannot serialize a row of {path}")]
    Serialize {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// A Parquet file could not be built or written.
    #[error("cannot write Parquet file {path}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: polars::error::PolarsError,
    },
}

fn json_line(path: &std::path::Path, value: &impl Serialize) -> Result<Vec<u8>, GenError> {
    let mut line = serde_json::to_vec(value).map_err(|source| GenError::Serialize {
        path: path.to_path_buf(),
        source,
    })?;
    line.push(b'\n');
    Ok(line)
}

/// The open output files of one run.
struct Sinks {
    contracts: PendingFile,
    erp_jsonl: PendingFile,
    extract_csv: PendingFile,
    rejects: PendingFile,
    extract: output::TextColumns,
    snapshot: Option<SnapshotColumns>,
    extract_rows: u64,
    erp_records: u64,
}

impl Sinks {
    fn open(opts: &GenOptions) -> Result<Sinks, GenError> {
        let mut s = Sinks {
            contracts: PendingFile::create(opts.out.join(files::CONTRACTS))?,
            erp_jsonl: PendingFile::create(opts.out.join(files::ERP_RECORDS))?,
            extract_csv: PendingFile::create(opts.out.join(files::ERP_EXTRACT_CSV))?,
            rejects: PendingFile::create(opts.out.join(files::EXPECTED_REJECTS))?,
            extract: output::extract_columns(),
            snapshot: opts.snapshot.then(SnapshotColumns::new),
            extract_rows: 0,
            erp_records: 0,
        };
        s.extract_csv.write(output::extract_header().as_bytes())?;
        s.rejects.write(b"row,reason_kind\n")?;
        Ok(s)
    }

    /// Appends an extract row, and its reject line when the loader rejects it.
    /// Every row with a record id is an ERP record, rejected or not, so it also
    /// goes to `erp_records.jsonl`.
    fn record(
        &mut self,
        r: &crate::sandbox::dataset::ErpRecord,
        reject: Option<&str>,
    ) -> Result<(), GenError> {
        self.extract_rows += 1;
        self.extract_csv.write(output::extract_line(r).as_bytes())?;
        self.extract.push(&output::extract_values(r));
        if let Some(kind) = reject {
            self.rejects
                .write(format!("{},{kind}\n", self.extract_rows).as_bytes())?;
        }
        if r.erp_record_id.is_empty() {
            return Ok(());
        }
        self.erp_records += 1;
        let line = json_line(self.erp_jsonl.path(), r)?;
        self.erp_jsonl.write(&line)
    }
}

fn drift_csv(rows: &mut [ExpectedDrift]) -> String {
    rows.sort();
    let mut out = String::from("drift_kind,contract_id,erp_record_id,field\n");
    for r in rows.iter() {
        out.push_str(&r.drift_kind);
        for v in [&r.contract_id, &r.erp_record_id, &r.field] {
            out.push(',');
            output::csv_cell(&mut out, v.as_deref());
        }
        out.push('\n');
    }
    out
}

fn count(map: &mut BTreeMap<String, u64>, key: &str) {
    *map.entry(key.to_string()).or_default() += 1;
}

/// Generates a dataset into `opts.out`.
pub fn generate(opts: &GenOptions) -> Result<GenSummary, GenError> {
    if opts.contracts == 0 || opts.contracts > MAX_CONTRACTS {
        return Err(GenError::ContractCount {
            got: opts.contracts,
            max: MAX_CONTRACTS,
        });
    }
    let docs_on = opts.writes_documents();
    let docs_dir = opts.out.join(files::DOCUMENTS_DIR);
    let dir = if docs_on { &docs_dir } else { &opts.out };
    std::fs::create_dir_all(dir).map_err(|source| GenError::CreateDir {
        path: dir.clone(),
        source,
    })?;

    let n = opts.contracts as usize;
    let plan = Plan::new(n, &mut StdRng::seed_from_u64(opts.seed));
    let mut rng = StdRng::seed_from_u64(opts.seed ^ 0x5EED_F1C7_0DA7_A5E7);
    let mut ids = Ids::new(opts.contracts, &mut rng);
    let mut sinks = Sinks::open(opts)?;
    let mut drift: Vec<ExpectedDrift> = Vec::new();
    let mut summary = GenSummary {
        seed: opts.seed,
        contracts: opts.contracts,
        contracts_by_status: BTreeMap::new(),
        in_scope_statuses: IN_SCOPE_STATUSES.iter().map(|s| s.to_string()).collect(),
        in_scope_contracts: 0,
        erp_records: 0,
        extract_rows: 0,
        rejects: BTreeMap::new(),
        // Generated datasets have no `[create]` rule: no `missing_in_spotdraft`.
        expected_drift: kinds::ALL
            .iter()
            .filter(|k| **k != kinds::MISSING_IN_SPOTDRAFT)
            .map(|k| (k.to_string(), 0))
            .collect(),
        field_mismatch_by_field: BTreeMap::new(),
        noise: BTreeMap::new(),
        documents: 0,
        documents_written: docs_on,
        rates: GenRates {
            drift_kind: plan::DRIFT_KIND_RATE,
            field_mismatch_per_field: plan::FIELD_MISMATCH_RATE,
            noise: plan::NOISE_RATE,
            rejects: plan::REJECT_RATE,
        },
        files: Vec::new(),
    };
    let mut extras = plan.extras.iter().peekable();
    let mut orphans = 0u64;
    for i in 0..n {
        let status = plan.statuses[i];
        let base = Base::draw(i as u64, status, &ids, &mut rng);
        let out = inject::apply(&base, plan.roles[i], &mut ids, &mut rng);
        count(&mut summary.contracts_by_status, status.name());
        summary.in_scope_contracts += u64::from(status.in_scope());
        if let Some(noise) = out.noise {
            count(&mut summary.noise, noise.name());
        }
        let line = json_line(sinks.contracts.path(), &out.contract)?;
        sinks.contracts.write(&line)?;
        if let Some(s) = sinks.snapshot.as_mut() {
            s.push(&out.contract, base.sha());
        }
        if let Some(kind) = out.reject {
            count(&mut summary.rejects, kind.name());
        }
        for r in &out.records {
            sinks.record(r, out.reject.map(|k| k.name()))?;
        }
        drift.extend(out.drift);
        if let Some((file, bytes, _)) = &base.pdf {
            summary.documents += 1;
            if docs_on {
                output::write_whole(docs_dir.join(file), bytes)?;
            }
        }
        while let Some((_, extra)) = extras.next_if(|(at, _)| *at == i) {
            match extra {
                Extra::Orphan => {
                    let (record, row) = inject::orphan(
                        inject::orphan_number(opts.contracts, orphans),
                        &mut ids,
                        &mut rng,
                    );
                    orphans += 1;
                    sinks.record(&record, None)?;
                    drift.push(row);
                }
                Extra::Reject(kind) => {
                    let (record, row) = inject::reject(*kind, &mut ids, &mut rng);
                    sinks.record(&record, Some(kind.name()))?;
                    drift.extend(row);
                    count(&mut summary.rejects, kind.name());
                }
            }
        }
    }
    for d in &drift {
        count(&mut summary.expected_drift, &d.drift_kind);
        if let (kinds::FIELD_MISMATCH, Some(f)) = (d.drift_kind.as_str(), &d.field) {
            count(&mut summary.field_mismatch_by_field, f);
        }
    }
    summary.extract_rows = sinks.extract_rows;
    summary.erp_records = sinks.erp_records;

    let Sinks {
        contracts,
        erp_jsonl,
        extract_csv,
        rejects,
        extract,
        snapshot,
        ..
    } = sinks;
    let (rows, columns) = extract.finish();
    let parquet_path = opts.out.join(files::ERP_EXTRACT_PARQUET);
    let frame =
        polars::prelude::DataFrame::new(rows, columns).map_err(|source| GenError::Parquet {
            path: parquet_path.clone(),
            source,
        })?;
    output::write_parquet(parquet_path, frame)?;
    if let Some(s) = snapshot {
        let path = opts.out.join(files::SNAPSHOT);
        let frame = s.finish().map_err(|source| GenError::Parquet {
            path: path.clone(),
            source,
        })?;
        output::write_parquet(path, frame)?;
        summary.files.push(files::SNAPSHOT.into());
    }
    for f in [contracts, erp_jsonl, extract_csv, rejects] {
        f.commit()?;
    }
    output::write_whole(
        opts.out.join(files::EXPECTED_DRIFT),
        drift_csv(&mut drift).as_bytes(),
    )?;
    summary.files.extend(
        [
            files::CONTRACTS,
            files::ERP_RECORDS,
            files::ERP_EXTRACT_CSV,
            files::ERP_EXTRACT_PARQUET,
            files::EXPECTED_REJECTS,
        ]
        .map(String::from),
    );
    summary
        .files
        .extend([files::EXPECTED_DRIFT, files::MANIFEST].map(String::from));
    if docs_on {
        summary.files.push(format!("{}/", files::DOCUMENTS_DIR));
    }
    summary.files.sort();
    let mut manifest =
        serde_json::to_vec_pretty(&summary).map_err(|source| GenError::Serialize {
            path: opts.out.join(files::MANIFEST),
            source,
        })?;
    manifest.push(b'\n');
    output::write_whole(opts.out.join(files::MANIFEST), &manifest)?;
    Ok(summary)
}
