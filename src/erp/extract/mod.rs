//! ERP extract loading (CSV/Parquet through object_store) with a rejects list.
//!
//! The file is streamed from the object store, never whole in memory: CSV
//! record by record as its bytes arrive ([`csv`]), Parquet by ranges with the
//! `parquet` crate's async reader, fetching the footer and then only the
//! mapped columns' chunks ([`parquet`]). Only the mapped columns are kept, all
//! as text (no type inference: `00123` keeps its zeros; Parquet numbers, dates
//! and decimals get their text form). Rows are validated in Polars,
//! and a row that fails a check goes to [`Extract::rejects`] with its row number
//! and the reason (the first failing check):
//! - a row with an empty record id cannot be linked to anything: it is in the
//!   rejects only;
//! - a row with an unparsable date (`effective_date`, `expiry_date`) or amount
//!   still exists in the ERP: it is in the rejects *and* in
//!   [`Extract::records`], its raw text kept and flagged unusable in
//!   `_unusable_<field>` (see [`crate::reconcile::spec::unusable_flag`]), so
//!   reconciliation links it, reports the value and never compares it.
//!
//! CSV is read record by record (the `csv` crate, RFC 4180 quoting, a UTF-8
//! BOM skipped, CRLF or LF) before Polars sees it, so a bad row is one reject,
//! never the whole file's failure:
//! - a row with more or fewer fields than the header is rejected naming its
//!   line and field count (its fields cannot be trusted to be in their columns);
//! - a row with a byte that is not UTF-8 is rejected naming its line, column
//!   and byte (the file's encoding is wrong for that row; guessing one would
//!   put a silently wrong value in the reports).
//!
//! The file as a whole fails, naming it and the problem, when it is empty,
//! its header is not UTF-8 or names a column twice, or its header has one
//! column and lacks the mapped ones (another delimiter than `,`).
//!
//! Amounts: an optional sign, digits and an optional `.` fraction; `,`
//! thousands separators are accepted only in groups of three before the point
//! (`1,234.50`), the one form that cannot be read as a decimal comma.

mod csv;
mod parquet;

use crate::reconcile::normalize::{decimal_text, parse_date};
use crate::reconcile::spec::{unusable_flag, CANONICAL_ERP_FIELDS};
use object_store::{ObjectStore, ObjectStoreExt};
use polars::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

/// File format of an extract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtractFormat {
    /// Comma-separated with a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
}

impl ExtractFormat {
    /// `CSV` or `Parquet`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            ExtractFormat::Csv => "CSV",
            ExtractFormat::Parquet => "Parquet",
        }
    }
}

/// Where an extract lives and how its columns map to canonical names.
#[derive(Clone)]
pub struct ExtractSource<'a> {
    /// Store holding the file.
    pub store: Arc<dyn ObjectStore>,
    /// Path of the file inside the store.
    pub path: object_store::path::Path,
    /// The file's URL as the job names it, for messages.
    pub display_url: &'a str,
    /// File format.
    pub format: ExtractFormat,
    /// Canonical name -> the extract's own column name.
    pub columns: &'a BTreeMap<String, String>,
}

/// A loaded extract: records and rejected rows.
#[derive(Debug, Clone)]
pub struct Extract {
    /// Every row with a record id: the mapped canonical columns (String, raw
    /// text), `_row` (UInt64, 1-based data row number in the source) and, per
    /// mapped date or amount field, `_unusable_<field>` (Boolean): true where
    /// that value could not be read (such a row is also in `rejects`).
    pub records: DataFrame,
    /// Rejected rows: `row` (UInt64), `reason` (String), `erp_record_id` (String,
    /// raw). Rows with a record id are in `records` too.
    pub rejects: DataFrame,
    /// Data rows read from the file.
    pub rows_read: u64,
    /// Bytes fetched from the store: the whole file for CSV; the footer and
    /// the mapped columns' chunks for Parquet.
    pub bytes_fetched: u64,
}

/// Why an extract could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The object store could not return the file.
    #[error("cannot read ERP extract {url}")]
    Read {
        /// The extract's URL.
        url: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// The bytes are not a readable CSV or Parquet file.
    #[error("cannot parse ERP extract {url} as {format}")]
    Parse {
        /// The extract's URL.
        url: String,
        /// `CSV` or `Parquet`.
        format: &'static str,
        /// The reader's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store's stream of the file broke off part-way.
    #[error("cannot read ERP extract {url} past line {line}")]
    ReadStream {
        /// The extract's URL.
        url: String,
        /// The last line read whole.
        line: u64,
        /// The stream's error.
        #[source]
        source: std::io::Error,
    },
    /// The file has no header (zero bytes, or only blank lines).
    #[error("ERP extract {url} is empty: no header line and no rows (a failed ERP export?)")]
    Empty {
        /// The extract's URL.
        url: String,
    },
    /// The CSV header is unusable (not UTF-8).
    #[error("ERP extract {url}, line 1 (header): {problem}")]
    Header {
        /// The extract's URL.
        url: String,
        /// What is wrong.
        problem: String,
    },
    /// The header names a column twice: which one the mapping means is unknown.
    #[error("ERP extract {url} names column `{column}` twice in its header (columns {first} and {second})")]
    DuplicateColumn {
        /// The extract's URL.
        url: String,
        /// The repeated name.
        column: String,
        /// 1-based position of its first occurrence.
        first: usize,
        /// 1-based position of the repeat.
        second: usize,
    },
    /// The header is a single column lacking the mapped ones: the file uses
    /// another delimiter.
    #[error("ERP extract {url}: its header has 1 column (`{header}`) and none of the mapped columns (expected {expected}): the job reads `,`-delimited CSV{}", found.map(|d| format!(" and the header contains `{d}`; export it with `,`")).unwrap_or_default())]
    Delimiter {
        /// The extract's URL.
        url: String,
        /// The header line (shortened).
        header: String,
        /// Mapped columns, comma-separated.
        expected: String,
        /// Another delimiter seen in the header (`;`, tab, `|`).
        found: Option<char>,
    },
    /// A mapped Parquet column has a type that has no text form.
    #[error("ERP extract {url}: column `{column}` is of type {dtype}; mapped columns must hold text, numbers, dates or booleans")]
    ColumnType {
        /// The extract's URL.
        url: String,
        /// The column.
        column: String,
        /// Its Arrow type, lower case.
        dtype: String,
    },
    /// A mapped column does not exist in the file.
    #[error("ERP extract {url} has no column `{column}` (mapped to `{canonical}`); its columns are: {}", available.join(", "))]
    MissingColumn {
        /// The extract's URL.
        url: String,
        /// The extract's column name from the mapping.
        column: String,
        /// The canonical name it maps to.
        canonical: String,
        /// Columns the file has.
        available: Vec<String>,
    },
    /// The column mapping names an unknown canonical field or lacks `erp_record_id`.
    #[error("column mapping for ERP extract {url}: {problem}")]
    Mapping {
        /// The extract's URL.
        url: String,
        /// What is wrong.
        problem: String,
    },
    /// Validation failed inside Polars.
    #[error("cannot validate ERP extract {url}")]
    Validate {
        /// The extract's URL.
        url: String,
        /// Polars' error.
        #[source]
        source: PolarsError,
    },
}

/// Loads an extract: streams the file from its store, maps its columns and
/// splits valid rows from rejects.
///
/// Neither format is ever whole in memory: CSV is parsed as its bytes arrive,
/// Parquet is read by ranges (its footer, then only the mapped columns' chunks).
/// The reading and Polars work run on the blocking pool, so this is safe on
/// any tokio runtime.
pub async fn load_extract(src: ExtractSource<'_>) -> Result<Extract, ExtractError> {
    let url = src.display_url.to_string();
    check_mapping(&url, src.columns)?;
    let columns = src.columns.clone();
    let format = src.format;
    let read_err = |source| ExtractError::Read {
        url: url.clone(),
        source,
    };
    let handle = tokio::runtime::Handle::current();
    let task_url = url.clone();
    let task = match format {
        ExtractFormat::Csv => {
            let got = src.store.get(&src.path).await.map_err(read_err)?;
            let size = got.meta.size;
            let reader = csv::StreamRead::new(handle, got.into_stream());
            tokio::task::spawn_blocking(move || {
                let raw = csv::read_csv(&task_url, reader, &columns, size)?;
                finish(&task_url, raw, &columns)
            })
        }
        ExtractFormat::Parquet => {
            let size = src.store.head(&src.path).await.map_err(read_err)?.size;
            let reader = parquet::StoreReader::new(src.store.clone(), src.path.clone(), size);
            tokio::task::spawn_blocking(move || {
                let raw = handle.block_on(parquet::read_parquet(&task_url, reader, &columns))?;
                finish(&task_url, raw, &columns)
            })
        }
    };
    task.await.unwrap_or_else(|e| {
        // A damaged file can make a decoder panic instead of erring: that is
        // still this file's parse error, not the process's.
        Err(if e.is_panic() {
            damaged(&url, format)
        } else {
            ExtractError::Parse {
                url,
                format: format.name(),
                source: format!("the loading task failed: {e}").into(),
            }
        })
    })
}

/// The error for a file whose decoder panicked.
fn damaged(url: &str, format: ExtractFormat) -> ExtractError {
    ExtractError::Parse {
        url: url.to_string(),
        format: format.name(),
        source: "the file is damaged (the decoder stopped)".into(),
    }
}

fn check_mapping(url: &str, columns: &BTreeMap<String, String>) -> Result<(), ExtractError> {
    let problem = |problem: String| {
        Err(ExtractError::Mapping {
            url: url.to_string(),
            problem,
        })
    };
    // Besides the canonical fields, a job maps the names its `[[compare]]`s and
    // corrections read (`version`); `validate` checks those against the job.
    // Only the loader's own column names are off limits.
    if let Some(name) = columns.keys().find(|k| k.is_empty() || k.starts_with('_')) {
        return problem(format!(
            "`{name}` is not a usable name (canonical fields: {})",
            CANONICAL_ERP_FIELDS.join(", ")
        ));
    }
    if !columns.contains_key("erp_record_id") {
        return problem("`erp_record_id` must be mapped".to_string());
    }
    Ok(())
}

/// Parses a whole file already in memory and validates its rows: the same
/// readers as [`load_extract`], over `bytes` instead of a stream (tests and
/// fuzzing).
pub fn parse_and_validate(
    url: &str,
    bytes: bytes::Bytes,
    format: ExtractFormat,
    columns: &BTreeMap<String, String>,
) -> Result<Extract, ExtractError> {
    check_mapping(url, columns)?;
    let raw = match format {
        ExtractFormat::Csv => {
            let size = bytes.len() as u64;
            csv::read_csv(url, std::io::Cursor::new(bytes), columns, size)?
        }
        // A damaged file can make the decoder panic instead of erring: that
        // is still this file's parse error, not the process's.
        ExtractFormat::Parquet => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            parquet::read_parquet_bytes(url, bytes, columns)
        }))
        .unwrap_or_else(|_| Err(damaged(url, format)))?,
    };
    finish(url, raw, columns)
}

/// What a reader hands on: the mapped columns as text, a row number column,
/// the rows that cannot be records, and the number of data rows read.
struct RawRows {
    /// `_row` and each mapped column of the file (String; a value that is
    /// empty or only whitespace as null).
    frame: DataFrame,
    /// Rows rejected while reading (CSV: wrong field count, not UTF-8).
    bad: Vec<BadRow>,
    /// Data rows in the file.
    rows_read: u64,
    /// Bytes fetched from the store.
    bytes_fetched: u64,
}

/// Validates what a reader produced.
fn finish(
    url: &str,
    raw: RawRows,
    columns: &BTreeMap<String, String>,
) -> Result<Extract, ExtractError> {
    validate(raw.frame, columns, &raw.bad)
        .map(|(records, rejects)| Extract {
            records,
            rejects,
            rows_read: raw.rows_read,
            bytes_fetched: raw.bytes_fetched,
        })
        .map_err(|source| ExtractError::Validate {
            url: url.to_string(),
            source,
        })
}

/// Fails naming the first mapped column the file lacks; a CSV header of one
/// column means another delimiter than `,`.
fn check_columns(
    url: &str,
    format: ExtractFormat,
    available: &[String],
    columns: &BTreeMap<String, String>,
) -> Result<(), ExtractError> {
    let Some((canonical, column)) = columns.iter().find(|(_, c)| !available.contains(c)) else {
        return Ok(());
    };
    if format == ExtractFormat::Csv && available.len() == 1 {
        let header = &available[0];
        return Err(ExtractError::Delimiter {
            url: url.to_string(),
            header: header.chars().take(80).collect(),
            expected: columns.values().cloned().collect::<Vec<_>>().join(", "),
            found: [';', '\t', '|'].into_iter().find(|d| header.contains(*d)),
        });
    }
    Err(ExtractError::MissingColumn {
        url: url.to_string(),
        column: column.clone(),
        canonical: canonical.clone(),
        available: available.to_vec(),
    })
}

/// The internal column holding each row's 1-based data row number.
const ROW: &str = "_row";

/// A CSV data row that cannot be a record, rejected with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BadRow {
    /// 1-based data row number.
    row: u64,
    /// The record id as far as it can be read.
    erp_record_id: Option<String>,
    /// Why, naming the line.
    reason: String,
}

/// The distinct file columns `columns` maps, in mapping order.
fn mapped_columns(columns: &BTreeMap<String, String>) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for c in columns.values() {
        if !names.contains(&c.as_str()) {
            names.push(c);
        }
    }
    names
}

/// Maps columns to canonical names, blanks to null, and lists rejects; records
/// keep every row with a record id, with the unusable-value flags.
fn validate(
    raw: DataFrame,
    columns: &BTreeMap<String, String>,
    bad_rows: &[BadRow],
) -> PolarsResult<(DataFrame, DataFrame)> {
    let mapped: Vec<Expr> = columns
        .iter()
        // The readers give a blank value as null already: renaming is all.
        .map(|(canonical, column)| col(column.as_str()).alias(canonical.as_str()))
        .collect();
    let mut exprs = vec![col(ROW)];
    exprs.extend(mapped);
    let framed = raw.lazy().select(exprs);

    // One boolean per check over every row; the messages are built afterwards
    // for the rejected rows only (a handful), not for every row.
    let mut checks: Vec<(String, Expr, Expr)> = Vec::new(); // (flag column, bad, message)
    let id_column = &columns["erp_record_id"];
    checks.push((
        "_bad_id".into(),
        col("erp_record_id").is_null(),
        lit(format!("{id_column}: empty record id")),
    ));
    for (canonical, what) in [
        ("effective_date", "date"),
        ("expiry_date", "date"),
        ("amount", "amount"),
    ] {
        let Some(column) = columns.get(canonical) else {
            continue;
        };
        let value = col(canonical);
        let unusable = match what {
            "date" => parse_date(value.clone()).is_null(),
            _ => decimal_text(value.clone()).is_null(),
        };
        let message = concat_str(
            [
                lit(format!("{column}: unparsable {what} \"")),
                value.clone(),
                lit("\""),
            ],
            "",
            false,
        );
        checks.push((
            unusable_flag(canonical),
            value.is_not_null().and(unusable),
            message,
        ));
    }
    let flags: Vec<String> = checks.iter().map(|(name, _, _)| name.clone()).collect();
    let any_bad = flags
        .iter()
        .map(|f| col(f.as_str()))
        .reduce(|a, b| a.or(b))
        .unwrap_or(lit(false));
    let checked = framed
        .with_columns(
            checks
                .iter()
                .map(|(name, bad, _)| bad.clone().alias(name.as_str()))
                .collect::<Vec<_>>(),
        )
        .with_column(any_bad.alias("_bad"))
        .collect()?;

    // First failing check wins, in the order above.
    let mut reason: Expr = lit(NULL).cast(DataType::String);
    for (name, _, message) in checks.into_iter().rev() {
        reason = when(col(name.as_str())).then(message).otherwise(reason);
    }
    let rejects = checked
        .clone()
        .lazy()
        .filter(col("_bad"))
        .select([
            col("_row").alias("row"),
            reason.alias("reason"),
            col("erp_record_id"),
        ])
        .collect()?;
    let rejects = if bad_rows.is_empty() {
        rejects
    } else {
        let structural = DataFrame::new(
            bad_rows.len(),
            vec![
                Column::new(
                    "row".into(),
                    bad_rows.iter().map(|b| b.row).collect::<Vec<_>>(),
                ),
                Column::new(
                    "reason".into(),
                    bad_rows
                        .iter()
                        .map(|b| b.reason.clone())
                        .collect::<Vec<_>>(),
                ),
                Column::new(
                    "erp_record_id".into(),
                    bad_rows
                        .iter()
                        .map(|b| b.erp_record_id.clone())
                        .collect::<Vec<_>>(),
                ),
            ],
        )?;
        rejects
            .vstack(&structural)?
            .sort(["row"], SortMultipleOptions::default())?
    };
    // Rows without a record id are rare: without any, the columns are kept
    // as they are instead of copied by a filter.
    let any_without_id = checked.column("_bad_id")?.bool()?.any();
    let mut records = checked.lazy();
    if any_without_id {
        records = records.filter(col("_bad_id").not());
    }
    let records = records.drop(cols(["_bad_id", "_bad"])).collect()?;
    Ok((records, rejects))
}

/// Why the extract guard (`[erp.extract] min_rows`, `max_row_drop`,
/// `max_age_hours`) stopped a run before any report or plan.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GuardError {
    /// Fewer data rows than `min_rows`.
    #[error("ERP extract {url} has {rows} data rows, fewer than [erp.extract] min_rows = {min_rows} (an empty or header-only file, as a failed export leaves); no report or plan was made (run --accept-extract to run on it anyway)")]
    TooFewRows {
        /// The extract's URL.
        url: String,
        /// Data rows read.
        rows: u64,
        /// The job's `min_rows`.
        min_rows: u64,
    },
    /// The valid row count fell by more than `max_row_drop`.
    #[error("ERP extract {url} has {valid} valid rows, {previous} in the last complete nightly run {previous_run}: a drop of {:.1}%, more than [erp.extract] max_row_drop = {max_row_drop}; no report or plan was made (run --accept-extract to run on it anyway)", drop_share(*previous, *valid) * 100.0)]
    RowDrop {
        /// The extract's URL.
        url: String,
        /// Valid rows now.
        valid: u64,
        /// Valid rows in the previous nightly run.
        previous: u64,
        /// That run's id.
        previous_run: String,
        /// The job's `max_row_drop`.
        max_row_drop: f64,
    },
    /// Older than `max_age_hours`.
    #[error("ERP extract {url} was last modified at {modified}, {age_hours:.1} hours ago, older than [erp.extract] max_age_hours = {max_age_hours}; no report or plan was made (run --accept-extract to run on it anyway)")]
    TooOld {
        /// The extract's URL.
        url: String,
        /// Its last modification (RFC 3339).
        modified: String,
        /// Its age in hours.
        age_hours: f64,
        /// The job's `max_age_hours`.
        max_age_hours: f64,
    },
}

/// The share by which `now` is below `before` (0 when it is not).
fn drop_share(before: u64, now: u64) -> f64 {
    if before == 0 || now >= before {
        0.0
    } else {
        (before - now) as f64 / before as f64
    }
}

/// What the guard checks a loaded extract against.
#[derive(Debug, Clone)]
pub struct GuardInput<'a> {
    /// The extract's URL, for messages.
    pub url: &'a str,
    /// The previous complete nightly run's id and valid row count
    /// (`inputs.erp_rows_valid` of its `summary.json`), if there is one.
    pub previous: Option<(&'a str, u64)>,
    /// The extract object's last modification, when the store says.
    pub modified: Option<chrono::DateTime<chrono::Utc>>,
    /// The time now.
    pub now: chrono::DateTime<chrono::Utc>,
}

impl Extract {
    /// Rows with a record id and every value usable: rows read less rejected
    /// rows (each rejected row is listed once). The count a run's summary
    /// gives as `inputs.erp_rows_valid`.
    pub fn rows_valid(&self) -> u64 {
        self.rows_read.saturating_sub(self.rejects.height() as u64)
    }

    /// Checks the extract against the job's guard; the first failed check wins
    /// (row count, then drop since the previous run, then age).
    pub fn check_guard(
        &self,
        guard: &crate::job::ExtractGuard,
        input: &GuardInput<'_>,
    ) -> Result<(), GuardError> {
        let url = input.url.to_string();
        if self.rows_read < guard.min_rows {
            return Err(GuardError::TooFewRows {
                url,
                rows: self.rows_read,
                min_rows: guard.min_rows,
            });
        }
        let valid = self.rows_valid();
        if let Some((previous_run, previous)) = input.previous {
            if drop_share(previous, valid) > guard.max_row_drop {
                return Err(GuardError::RowDrop {
                    url,
                    valid,
                    previous,
                    previous_run: previous_run.to_string(),
                    max_row_drop: guard.max_row_drop,
                });
            }
        }
        if let (Some(max), Some(modified)) = (guard.max_age, input.modified) {
            let age = (input.now - modified).to_std().unwrap_or_default();
            if age > max {
                return Err(GuardError::TooOld {
                    url,
                    modified: modified.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    age_hours: age.as_secs_f64() / 3600.0,
                    max_age_hours: max.as_secs_f64() / 3600.0,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
