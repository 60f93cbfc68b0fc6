//! ERP extract loading (CSV/Parquet through object_store) with a rejects list.
//!
//! The file is read whole through the object store and parsed by Polars from
//! memory. CSV columns are all read as text (no type inference: `00123` keeps
//! its zeros); Parquet columns are cast to text. Rows are validated in Polars,
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
//! Amounts: an optional sign, digits and an optional `.` fraction; `,`
//! thousands separators are accepted only in groups of three before the point
//! (`1,234.50`), the one form that cannot be read as a decimal comma.

use crate::reconcile::normalize::{decimal_text, parse_date, trimmed};
use crate::reconcile::spec::{unusable_flag, CANONICAL_ERP_FIELDS};
use object_store::{ObjectStore, ObjectStoreExt};
use polars::prelude::*;
use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

/// File format of an extract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtractFormat {
    /// Comma-separated with a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
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
}

/// Why an extract could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The object store could not return the file.
    #[error("cannot read ERP extract {url}: {source}")]
    Read {
        /// The extract's URL.
        url: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// The bytes are not a readable CSV or Parquet file.
    #[error("cannot parse ERP extract {url} as {format}: {source}")]
    Parse {
        /// The extract's URL.
        url: String,
        /// `CSV` or `Parquet`.
        format: &'static str,
        /// Polars' error.
        #[source]
        source: PolarsError,
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
    #[error("cannot validate ERP extract {url}: {source}")]
    Validate {
        /// The extract's URL.
        url: String,
        /// Polars' error.
        #[source]
        source: PolarsError,
    },
}

/// Loads an extract: reads the file, maps its columns and splits valid rows from rejects.
///
/// Runs Polars on the blocking pool, so it is safe on any tokio runtime.
pub async fn load_extract(src: ExtractSource<'_>) -> Result<Extract, ExtractError> {
    let url = src.display_url.to_string();
    check_mapping(&url, src.columns)?;
    let read_err = |source| ExtractError::Read {
        url: url.clone(),
        source,
    };
    let bytes = src
        .store
        .get(&src.path)
        .await
        .map_err(read_err)?
        .bytes()
        .await
        .map_err(read_err)?;
    let columns = src.columns.clone();
    let format = src.format;
    let task_url = url.clone();
    tokio::task::spawn_blocking(move || parse_and_validate(&task_url, bytes, format, &columns))
        .await
        .map_err(|e| ExtractError::Validate {
            url,
            source: PolarsError::ComputeError(format!("validation task failed: {e}").into()),
        })?
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

/// Parses `bytes` and validates the rows (synchronous Polars work).
pub fn parse_and_validate(
    url: &str,
    bytes: bytes::Bytes,
    format: ExtractFormat,
    columns: &BTreeMap<String, String>,
) -> Result<Extract, ExtractError> {
    let raw = read_frame(url, bytes, format)?;
    let available: Vec<String> = raw
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    if let Some((canonical, column)) = columns.iter().find(|(_, c)| !available.contains(c)) {
        return Err(ExtractError::MissingColumn {
            url: url.to_string(),
            column: column.clone(),
            canonical: canonical.clone(),
            available,
        });
    }
    let rows_read = raw.height() as u64;
    validate(raw, columns)
        .map(|(records, rejects)| Extract {
            records,
            rejects,
            rows_read,
        })
        .map_err(|source| ExtractError::Validate {
            url: url.to_string(),
            source,
        })
}

fn read_frame(
    url: &str,
    bytes: bytes::Bytes,
    format: ExtractFormat,
) -> Result<DataFrame, ExtractError> {
    let (name, result) = match format {
        ExtractFormat::Csv => (
            "CSV",
            CsvReadOptions::default()
                .with_has_header(true)
                .with_infer_schema_length(Some(0))
                .into_reader_with_file_handle(Cursor::new(bytes))
                .finish(),
        ),
        ExtractFormat::Parquet => ("Parquet", ParquetReader::new(Cursor::new(bytes)).finish()),
    };
    result.map_err(|source| ExtractError::Parse {
        url: url.to_string(),
        format: name,
        source,
    })
}

/// Maps columns to canonical names, blanks to null, and lists rejects; records
/// keep every row with a record id, with the unusable-value flags.
fn validate(
    raw: DataFrame,
    columns: &BTreeMap<String, String>,
) -> PolarsResult<(DataFrame, DataFrame)> {
    let mapped: Vec<Expr> = columns
        .iter()
        .map(|(canonical, column)| {
            let text = col(column.as_str()).cast(DataType::String);
            when(trimmed(text.clone()).is_null())
                .then(lit(NULL).cast(DataType::String))
                .otherwise(text)
                .alias(canonical.as_str())
        })
        .collect();
    let row = (col("_idx").cast(DataType::UInt64) + lit(1u64)).alias("_row");
    let mut exprs = vec![row];
    exprs.extend(mapped);
    let framed = raw.lazy().with_row_index("_idx", None).select(exprs);

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
    let records = checked
        .lazy()
        .filter(col("_bad_id").not())
        .drop(cols(["_bad_id", "_bad"]))
        .collect()?;
    Ok((records, rejects))
}
