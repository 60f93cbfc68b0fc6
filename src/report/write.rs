//! Report stage: serializes a run's files (Parquet, CSV, JSON, HTML), then
//! stages and publishes them.
//!
//! CSV files are written for spreadsheets, so they follow OWASP's guidance on
//! CSV injection: a text cell that begins with `=`, `+`, `-`, `@`, a tab or a
//! carriage return gets a leading `'`, so a spreadsheet shows it as text instead
//! of running it as a formula. Negative numbers in text columns are no
//! exception (`-12.5` is written `'-12.5`): one rule, no guessing what is a
//! number. A cell that already begins with `'` gets one too, so the rule can be
//! undone exactly: remove one leading `'` from every cell that starts with one.
//! A null is an empty field and an empty string is `""`, so the two stay apart.
//! Parquet files hold the raw values, untouched.

use super::layout::{table_run_dir, DRIFT_TABLE, REJECTS_TABLE, RESOLVED_TABLE, RUNS_TABLE};
use super::publish::{exists, publish, stage, ReportLocation, RunManifest};
use super::summary::{normalize_drift, normalize_rejects};
use super::{render_html_with_plan, ReportError, RunInfo, Summary};
use object_store::path::Path;
use object_store::ObjectStore;
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Name of the completion marker, written after every other file of a run.
pub const SUCCESS_FILE: &str = "_SUCCESS";
/// The drift columns left out of `drift.parquet`: readers take them from the
/// `job=` and `run_id=` path segments (Hive partitioning). `drift.csv` keeps
/// every column.
pub const PARQUET_DROPPED_COLUMNS: [&str; 2] = ["job", "run_id"];
/// Name of the pointer to a job's newest complete run (`{output}/runs/job=<job>/latest.json`).
pub const LATEST_FILE: &str = "latest.json";
/// A text cell matching this gets a leading `'` in CSV files: the characters a
/// spreadsheet takes as the start of a formula (OWASP), and `'` itself so the
/// prefix can be removed without ambiguity.
pub const CSV_ESCAPED_START: &str = r"^[=+\-@\t\r']";

/// Which optional formats to write. `summary.json`, `rejects.csv` and `_SUCCESS`
/// are always written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportFormats {
    /// Write `drift.parquet` and `rejects.parquet` (Hive-partitioned by job, run_date and run_id).
    pub parquet: bool,
    /// Write `drift.csv`.
    pub csv: bool,
    /// Write `report.html`.
    pub html: bool,
}

impl Default for ReportFormats {
    fn default() -> Self {
        ReportFormats {
            parquet: true,
            csv: true,
            html: true,
        }
    }
}

/// Writes one run's reports: stages every file, commits the run, then
/// publishes it into the datasets (see [`super::publish`]), `_SUCCESS` last,
/// then moves the job's `latest.json` when the run is the newest complete one
/// (by run date, then finish time). A failure before the commit leaves nothing
/// in any dataset; a failure after it leaves a run that the next run of the job
/// publishes. A run whose `_SUCCESS` already exists is refused
/// ([`ReportError::AlreadyComplete`]): a report is never written twice.
pub async fn write_reports(
    store: Arc<dyn ObjectStore>,
    output_prefix: &Path,
    run: &RunInfo,
    drift: &DataFrame,
    rejects: &DataFrame,
    summary: &Summary,
    formats: &ReportFormats,
) -> Result<ReportLocation, ReportError> {
    let tables = RunTables {
        drift,
        rejects,
        resolved: None,
        extra: &[],
    };
    write_run_reports(store, output_prefix, run, tables, summary, formats).await
}

/// The frames of one run's tables.
#[derive(Debug, Clone, Copy)]
pub struct RunTables<'a> {
    /// Drift rows ([`crate::reconcile::DRIFT_COLUMNS`], then the lifecycle columns when tracked).
    pub drift: &'a DataFrame,
    /// Rejected ERP rows.
    pub rejects: &'a DataFrame,
    /// Drift of the previous nightly run that is gone (the `resolved` table),
    /// when the run tracked its drift across runs.
    pub resolved: Option<&'a DataFrame>,
    /// Further tables published in the same commit (`plan`); the `plan` table
    /// also gets a section in `report.html`.
    pub extra: &'a [ExtraTable],
}

/// A table a run writes besides drift, rejects and resolved (`plan`): written
/// as `<name>.parquet` (when Parquet is on) and `<name>.csv` (always, escaped
/// like `drift.csv`) in the run's folder of dataset `<name>`, staged and
/// published with the run's other files.
#[derive(Debug, Clone)]
pub struct ExtraTable {
    /// Table (dataset) name, also the file name.
    pub name: &'static str,
    /// Its rows.
    pub frame: DataFrame,
}

/// [`write_reports`] with every table of the run, the `resolved` table included.
pub async fn write_run_reports(
    store: Arc<dyn ObjectStore>,
    output_prefix: &Path,
    run: &RunInfo,
    tables: RunTables<'_>,
    summary: &Summary,
    formats: &ReportFormats,
) -> Result<ReportLocation, ReportError> {
    let (drift, rejects) = (tables.drift, tables.rejects);
    let resolved = tables.resolved.cloned();
    let extra = tables.extra.to_vec();
    let runs_dir = table_run_dir(
        output_prefix,
        RUNS_TABLE,
        &run.job,
        run.run_date,
        &run.run_id,
    );
    let success = runs_dir.clone().join(SUCCESS_FILE);
    if exists(&store, &success).await? {
        return Err(ReportError::AlreadyComplete {
            path: success.to_string(),
        });
    }

    let (drift, rejects) = (drift.clone(), rejects.clone());
    let (summary_owned, formats_owned, dir_name) =
        (summary.clone(), *formats, runs_dir.to_string());
    let files = tokio::task::spawn_blocking(move || {
        let mut files = serialize_files(
            &drift,
            &rejects,
            &extra,
            &summary_owned,
            &formats_owned,
            &dir_name,
        )?;
        // Before the `runs` files: the run record is published last.
        let at = files
            .iter()
            .position(|(name, _)| name.starts_with(&format!("{RUNS_TABLE}/")))
            .unwrap_or(files.len());
        let mut tables = Vec::new();
        if let Some(resolved) = resolved {
            tables.extend(serialize_resolved(&resolved, &formats_owned, &dir_name)?);
        }
        for t in &extra {
            tables.extend(table_files(t, &formats_owned, &dir_name)?);
        }
        files.splice(at..at, tables);
        Ok::<_, ReportError>(files)
    })
    .await
    .map_err(|source| ReportError::Task {
        dir: runs_dir.to_string(),
        source,
    })??;

    let manifest = RunManifest {
        job: run.job.clone(),
        run_id: run.run_id.clone(),
        run_date: run.run_date,
        finished_at: run.finished_at.clone(),
        drift_total: summary.drift_total,
        kind: summary.run_kind,
        lifecycle: summary.lifecycle.clone(),
        files: files.iter().map(|(name, _)| name.clone()).collect(),
    };
    stage(&store, output_prefix, &manifest, files).await?;
    publish(&store, output_prefix, &manifest).await
}

/// Builds every file but the `_SUCCESS` markers, as `(<table>/<name>, bytes)`,
/// in publish order. Polars work: run on a blocking thread.
fn serialize_files(
    drift: &DataFrame,
    rejects: &DataFrame,
    extra: &[ExtraTable],
    summary: &Summary,
    formats: &ReportFormats,
    dir: &str,
) -> Result<Vec<(String, Vec<u8>)>, ReportError> {
    let drift = normalize_drift(drift)?;
    let mut rejects = normalize_rejects(rejects)?;
    let polars_err = |name: &str| {
        let path = format!("{dir}: {name}");
        move |source| ReportError::Polars {
            path,
            source: Box::new(source),
        }
    };
    let drift_file = |name: &str| format!("{DRIFT_TABLE}/{name}");
    let rejects_file = |name: &str| format!("{REJECTS_TABLE}/{name}");
    let mut files = Vec::new();
    if formats.parquet {
        // `job` and `run_id` come from the Hive path; in the file too, pyarrow
        // (pandas) refuses to merge the file's column with the partition's.
        let name = drift_file("drift.parquet");
        let mut in_file = without_path_columns(&drift).map_err(polars_err(&name))?;
        files.push((
            name.clone(),
            write_parquet(&mut in_file).map_err(polars_err(&name))?,
        ));
    }
    if formats.csv {
        let name = drift_file("drift.csv");
        files.push((name.clone(), write_csv(&drift).map_err(polars_err(&name))?));
    }
    if formats.parquet {
        let name = rejects_file("rejects.parquet");
        files.push((
            name.clone(),
            write_parquet(&mut rejects).map_err(polars_err(&name))?,
        ));
    }
    let name = rejects_file("rejects.csv");
    files.push((
        name.clone(),
        write_csv(&rejects).map_err(polars_err(&name))?,
    ));
    let summary_json = serde_json::to_vec_pretty(summary).map_err(|source| ReportError::Json {
        path: format!("{dir}/summary.json"),
        source,
    })?;
    files.push((format!("{RUNS_TABLE}/summary.json"), summary_json));
    if formats.html {
        let plan = extra
            .iter()
            .find(|t| t.name == super::layout::PLAN_TABLE)
            .map(|t| &t.frame);
        let page = render_html_with_plan(summary, &drift, &rejects, plan)?;
        files.push((format!("{RUNS_TABLE}/report.html"), page.into_bytes()));
    }
    Ok(files)
}

/// The `resolved` table's files (`resolved.parquet` with the `parquet` format,
/// `resolved.csv` with `csv`), as `(<table>/<name>, bytes)`.
fn serialize_resolved(
    resolved: &DataFrame,
    formats: &ReportFormats,
    dir: &str,
) -> Result<Vec<(String, Vec<u8>)>, ReportError> {
    let err = |name: &str| {
        let path = format!("{dir}: {name}");
        move |source| ReportError::Polars {
            path,
            source: Box::new(source),
        }
    };
    let mut files = Vec::new();
    if formats.parquet {
        let name = format!("{RESOLVED_TABLE}/resolved.parquet");
        let mut in_file = without_path_columns(resolved).map_err(err(&name))?;
        files.push((
            name.clone(),
            write_parquet(&mut in_file).map_err(err(&name))?,
        ));
    }
    if formats.csv {
        let name = format!("{RESOLVED_TABLE}/resolved.csv");
        files.push((name.clone(), write_csv(resolved).map_err(err(&name))?));
    }
    Ok(files)
}

/// `(<table>/<table>.parquet | .csv, bytes)` of one extra table.
fn table_files(
    t: &ExtraTable,
    formats: &ReportFormats,
    dir: &str,
) -> Result<Vec<(String, Vec<u8>)>, ReportError> {
    let err = |name: &str| {
        let path = format!("{dir}: {name}");
        move |source| ReportError::Polars {
            path,
            source: Box::new(source),
        }
    };
    let mut files = Vec::new();
    if formats.parquet {
        let name = format!("{0}/{0}.parquet", t.name);
        let mut frame = t.frame.clone();
        files.push((name.clone(), write_parquet(&mut frame).map_err(err(&name))?));
    }
    let name = format!("{0}/{0}.csv", t.name);
    files.push((name.clone(), write_csv(&t.frame).map_err(err(&name))?));
    Ok(files)
}

/// Publishes one table for a run through staging and a manifest, as
/// [`write_reports`] does, without touching the run's record or `latest.json`
/// (the `apply_results` of an application, written after the run's reports).
/// `run.run_id` names the folder (`run_id=`) and the staging area.
pub async fn write_table_run(
    store: Arc<dyn ObjectStore>,
    output_prefix: &Path,
    run: &RunInfo,
    table: ExtraTable,
    formats: &ReportFormats,
) -> Result<ReportLocation, ReportError> {
    write_table_run_with(store, output_prefix, run, table, formats, Vec::new()).await
}

/// [`write_table_run`] with further files (name in the table's folder, bytes)
/// published with the table, under the same manifest.
pub async fn write_table_run_with(
    store: Arc<dyn ObjectStore>,
    output_prefix: &Path,
    run: &RunInfo,
    table: ExtraTable,
    formats: &ReportFormats,
    extra_files: Vec<(String, Vec<u8>)>,
) -> Result<ReportLocation, ReportError> {
    let name = table.name;
    let dir = table_run_dir(
        output_prefix,
        table.name,
        &run.job,
        run.run_date,
        &run.run_id,
    );
    let (formats_owned, dir_name) = (*formats, dir.to_string());
    let files = tokio::task::spawn_blocking(move || table_files(&table, &formats_owned, &dir_name))
        .await
        .map_err(|source| ReportError::Task {
            dir: dir.to_string(),
            source,
        })??;
    let mut files = files;
    files.extend(
        extra_files
            .into_iter()
            .map(|(file, bytes)| (format!("{name}/{file}"), bytes)),
    );
    let manifest = RunManifest {
        job: run.job.clone(),
        run_id: run.run_id.clone(),
        run_date: run.run_date,
        finished_at: run.finished_at.clone(),
        drift_total: 0,
        kind: Default::default(),
        lifecycle: None,
        files: files.iter().map(|(name, _)| name.clone()).collect(),
    };
    stage(&store, output_prefix, &manifest, files).await?;
    publish(&store, output_prefix, &manifest).await
}

/// `df` without `job` and `run_id`, which Hive readers take from the path.
fn without_path_columns(df: &DataFrame) -> PolarsResult<DataFrame> {
    let keep: Vec<PlSmallStr> = df
        .get_column_names()
        .into_iter()
        .filter(|c| !PARQUET_DROPPED_COLUMNS.contains(&c.as_str()))
        .cloned()
        .collect();
    df.select(keep)
}

fn write_parquet(df: &mut DataFrame) -> PolarsResult<Vec<u8>> {
    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf).finish(df)?;
    Ok(buf)
}

/// `df` as CSV: text cells escaped per [`CSV_ESCAPED_START`], null as an empty
/// field, an empty string as `""` (Polars quotes it under `Necessary`).
pub(crate) fn write_csv(df: &DataFrame) -> PolarsResult<Vec<u8>> {
    let mut safe = csv_safe(df)?;
    let mut buf = Vec::new();
    CsvWriter::new(&mut buf)
        .include_header(true)
        .with_quote_style(QuoteStyle::Necessary)
        .with_null_value(PlSmallStr::EMPTY)
        .finish(&mut safe)?;
    Ok(buf)
}

/// `df` with a leading `'` on every text cell that matches [`CSV_ESCAPED_START`];
/// other columns and cells unchanged.
pub(crate) fn csv_safe(df: &DataFrame) -> PolarsResult<DataFrame> {
    let exprs: Vec<Expr> = df
        .schema()
        .iter()
        .map(|(name, dtype)| {
            let c = col(name.clone());
            if dtype == &DataType::String {
                when(c.clone().str().contains(lit(CSV_ESCAPED_START), true))
                    .then(concat_str([lit("'"), c.clone()], "", false))
                    .otherwise(c)
                    .alias(name.clone())
            } else {
                c
            }
        })
        .collect();
    df.clone().lazy().select(exprs).collect()
}
