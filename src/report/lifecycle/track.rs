//! Report stage: the lifecycle of drift rows, pure: this run's rows against the
//! previous nightly run's rows and the acknowledgements.

use super::acks::Acknowledgements;
use super::corrections::Corrections;
use super::{status, LifecycleCounts, LIFECYCLE_COLUMNS, RESOLVED_COLUMNS};
use crate::reconcile::identity::{drift_id_of, DRIFT_ID};
use crate::reconcile::DRIFT_COLUMNS;
use polars::prelude::*;
use std::collections::{HashMap, HashSet};

/// The run being tracked.
#[derive(Debug, Clone)]
pub struct TrackedRun<'a> {
    /// Run id.
    pub run_id: &'a str,
    /// Job name.
    pub job: &'a str,
    /// The run's date: ages are counted to it, acknowledgements expire by it.
    pub run_date: chrono::NaiveDate,
    /// When the run started (RFC 3339): `first_seen_at` of new rows, `resolved_at`.
    pub detected_at: &'a str,
}

/// What [`track_drift`] returns.
#[derive(Debug, Clone)]
pub struct Tracked {
    /// This run's drift rows with the [`LIFECYCLE_COLUMNS`].
    pub drift: DataFrame,
    /// The previous run's rows that are gone ([`RESOLVED_COLUMNS`]).
    pub resolved: DataFrame,
    /// Counts by status.
    pub counts: LifecycleCounts,
}

/// The hash of a row's values (SpotDraft value, ERP value; null apart from empty).
pub fn values_hash(spotdraft: Option<&str>, erp: Option<&str>) -> String {
    let part = |v: Option<&str>| v.map_or("\u{0}".to_string(), |v| format!("={v}"));
    drift_id_of(&format!("{}\u{1f}{}", part(spotdraft), part(erp)))
}

/// A column of `df` as text (`None` for every row when `df` lacks it).
fn texts(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<String>>> {
    match df.column(name) {
        Ok(c) => Ok(c
            .cast(&DataType::String)?
            .str()?
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()),
        Err(_) => Ok(vec![None; df.height()]),
    }
}

/// `previous`: the previous nightly run's id and drift rows (as in its
/// `drift.parquet`); `None` for the job's first nightly run. `corrections`:
/// this run's plan and the journal (the default when corrections are off).
pub fn track_drift(
    current: &DataFrame,
    previous: Option<(&str, &DataFrame)>,
    acks: &Acknowledgements,
    run: &TrackedRun<'_>,
    corrections: &Corrections,
) -> PolarsResult<Tracked> {
    let n = current.height();
    let col = |name: &str| texts(current, name);
    let (ids, sd, erp) = (col(DRIFT_ID)?, col("spotdraft_value")?, col("erp_value")?);

    // The previous rows, by identity.
    let prev = match previous {
        Some((_, p)) => Some(PreviousRows::read(p)?),
        None => None,
    };
    let mut counts = LifecycleCounts {
        previous_run_id: previous.map(|(id, _)| id.to_string()),
        ..LifecycleCounts::default()
    };
    let mut out = LifecycleValues::with_capacity(n);
    for i in 0..n {
        let id = ids[i].clone().unwrap_or_default();
        let hash = values_hash(sd[i].as_deref(), erp[i].as_deref());
        let before = prev.as_ref().and_then(|p| p.at(&id));
        let (first_at, first_run, runs_seen, changed) = match before {
            Some(j) => {
                let p = prev.as_ref().expect("found in it");
                (
                    p.first_seen_at[j]
                        .clone()
                        .or_else(|| p.detected_at[j].clone()),
                    p.first_seen_run_id[j]
                        .clone()
                        .or_else(|| previous.map(|(r, _)| r.to_string())),
                    p.runs_seen[j].unwrap_or(1) + 1,
                    p.values_hash[j].as_ref().is_some_and(|h| *h != hash),
                )
            }
            None => (
                Some(run.detected_at.to_string()),
                Some(run.run_id.to_string()),
                1,
                false,
            ),
        };
        let age = first_at
            .as_deref()
            .and_then(|t| t.get(..10))
            .and_then(|d| d.parse::<chrono::NaiveDate>().ok())
            .map(|d| (run.run_date - d).num_days().max(0));

        // The acknowledgement, and the values it holds for.
        let ack = acks.0.get(&id);
        let pinned = ack.map(|a| {
            a.values_hash.clone().unwrap_or_else(|| {
                before
                    .and_then(|j| prev.as_ref().and_then(|p| p.ack_values_hash[j].clone()))
                    .unwrap_or_else(|| hash.clone())
            })
        });
        let acknowledged = ack.is_some_and(|a| a.holds_on(run.run_date))
            && pinned.as_deref() == Some(hash.as_str());
        let state = if acknowledged {
            counts.acknowledged += 1;
            status::ACKNOWLEDGED
        } else if before.is_some() {
            counts.open += 1;
            status::OPEN
        } else {
            counts.new += 1;
            status::NEW
        };
        counts.changed += u64::from(changed);
        let shown = ack.filter(|_| acknowledged);
        let earlier_key =
            before.and_then(|j| prev.as_ref().and_then(|p| p.correction_id[j].clone()));
        let fix = corrections.for_row(&id, earlier_key.as_deref());
        out.correction_action.push(fix.action);
        out.correction_id.push(fix.id);
        out.correction_outcome.push(fix.outcome);
        out.correction_at.push(fix.at);
        out.status.push(state);
        out.first_seen_at.push(first_at);
        out.first_seen_run_id.push(first_run);
        out.age_days.push(age);
        out.runs_seen.push(runs_seen);
        out.changed.push(changed);
        out.values_hash.push(hash);
        out.ack_by.push(shown.map(|a| a.author.clone()));
        out.ack_reason.push(shown.map(|a| a.reason.clone()));
        out.ack_until
            .push(shown.and_then(|a| a.expires.map(|d| d.to_string())));
        out.ack_hash.push(pinned);
    }
    let mut drift = current.select(DRIFT_COLUMNS)?;
    for column in out.columns() {
        drift.with_column(column)?;
    }

    let current_ids: HashSet<&str> = ids.iter().filter_map(|v| v.as_deref()).collect();
    let resolved = match (&prev, previous) {
        (Some(p), Some((prev_run, _))) => p.resolved(&current_ids, prev_run, run, corrections)?,
        _ => empty_resolved(),
    };
    counts.resolved = resolved.height() as u64;
    counts.resolved_by_job = resolved
        .column("resolved_by")?
        .str()?
        .iter()
        .filter(|v| *v == Some(super::corrections::BY_JOB))
        .count() as u64;
    Ok(Tracked {
        drift,
        resolved,
        counts,
    })
}

/// The lifecycle columns being built, row by row.
#[derive(Default)]
struct LifecycleValues {
    status: Vec<&'static str>,
    first_seen_at: Vec<Option<String>>,
    first_seen_run_id: Vec<Option<String>>,
    age_days: Vec<Option<i64>>,
    runs_seen: Vec<i64>,
    changed: Vec<bool>,
    values_hash: Vec<String>,
    ack_by: Vec<Option<String>>,
    ack_reason: Vec<Option<String>>,
    ack_until: Vec<Option<String>>,
    ack_hash: Vec<Option<String>>,
    correction_action: Vec<Option<String>>,
    correction_id: Vec<Option<String>>,
    correction_outcome: Vec<Option<String>>,
    correction_at: Vec<Option<String>>,
}

impl LifecycleValues {
    fn with_capacity(_n: usize) -> Self {
        Self::default()
    }

    fn columns(self) -> Vec<Column> {
        let names: Vec<&str> = LIFECYCLE_COLUMNS.iter().map(|(n, _)| *n).collect();
        vec![
            Column::new(names[0].into(), self.status),
            Column::new(names[1].into(), self.first_seen_at),
            Column::new(names[2].into(), self.first_seen_run_id),
            Column::new(names[3].into(), self.age_days),
            Column::new(names[4].into(), self.runs_seen),
            Column::new(names[5].into(), self.changed),
            Column::new(names[6].into(), self.values_hash),
            Column::new(names[7].into(), self.ack_by),
            Column::new(names[8].into(), self.ack_reason),
            Column::new(names[9].into(), self.ack_until),
            Column::new(names[10].into(), self.ack_hash),
            Column::new(names[11].into(), self.correction_action),
            Column::new(names[12].into(), self.correction_id),
            Column::new(names[13].into(), self.correction_outcome),
            Column::new(names[14].into(), self.correction_at),
        ]
    }
}

/// The previous run's rows, as columns, indexed by identity.
struct PreviousRows {
    frame: DataFrame,
    index: HashMap<String, usize>,
    ids: Vec<Option<String>>,
    detected_at: Vec<Option<String>>,
    first_seen_at: Vec<Option<String>>,
    first_seen_run_id: Vec<Option<String>>,
    runs_seen: Vec<Option<i64>>,
    values_hash: Vec<Option<String>>,
    ack_values_hash: Vec<Option<String>>,
    status: Vec<Option<String>>,
    correction_id: Vec<Option<String>>,
}

impl PreviousRows {
    fn read(df: &DataFrame) -> PolarsResult<PreviousRows> {
        let ids = texts(df, DRIFT_ID)?;
        let index = ids
            .iter()
            .enumerate()
            .filter_map(|(i, id)| id.clone().map(|id| (id, i)))
            .collect();
        let runs_seen = match df.column("runs_seen") {
            Ok(c) => c.cast(&DataType::Int64)?.i64()?.iter().collect(),
            Err(_) => vec![None; df.height()],
        };
        Ok(PreviousRows {
            frame: df.clone(),
            index,
            detected_at: texts(df, "detected_at")?,
            first_seen_at: texts(df, "first_seen_at")?,
            first_seen_run_id: texts(df, "first_seen_run_id")?,
            runs_seen,
            values_hash: texts(df, "values_hash")?,
            ack_values_hash: texts(df, "acknowledged_values_hash")?,
            status: texts(df, "status")?,
            correction_id: texts(df, "correction_id")?,
            ids,
        })
    }

    fn at(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// The rows whose identity is not in `current`, as the `resolved` table.
    fn resolved(
        &self,
        current: &HashSet<&str>,
        prev_run: &str,
        run: &TrackedRun<'_>,
        corrections: &Corrections,
    ) -> PolarsResult<DataFrame> {
        let gone: Vec<usize> = (0..self.ids.len())
            .filter(|i| {
                self.ids[*i]
                    .as_deref()
                    .is_some_and(|id| !current.contains(id))
            })
            .collect();
        let pick = |values: &[Option<String>]| -> Vec<Option<String>> {
            gone.iter().map(|i| values[*i].clone()).collect()
        };
        let text = |name: &str| -> PolarsResult<Vec<Option<String>>> {
            Ok(pick(&texts(&self.frame, name)?))
        };
        let same = |v: &str| vec![Some(v.to_string()); gone.len()];
        let (by, by_id): (Vec<_>, Vec<_>) = gone
            .iter()
            .map(|i| {
                let first_seen = self.first_seen_at[*i]
                    .as_ref()
                    .or(self.detected_at[*i].as_ref());
                let (by, id) = corrections.resolved_by(
                    self.correction_id[*i].as_deref(),
                    first_seen.map(String::as_str),
                );
                (Some(by.to_string()), id)
            })
            .unzip();
        let mut columns = Vec::with_capacity(RESOLVED_COLUMNS.len());
        for name in RESOLVED_COLUMNS {
            let values = match name {
                "run_id" => same(run.run_id),
                "job" => same(run.job),
                "resolved_at" => same(run.detected_at),
                "first_seen_at" => gone
                    .iter()
                    .map(|i| {
                        self.first_seen_at[*i]
                            .clone()
                            .or(self.detected_at[*i].clone())
                    })
                    .collect(),
                "first_seen_run_id" => gone
                    .iter()
                    .map(|i| {
                        self.first_seen_run_id[*i]
                            .clone()
                            .or(Some(prev_run.to_string()))
                    })
                    .collect(),
                "last_seen_at" => pick(&self.detected_at),
                "last_seen_run_id" => same(prev_run),
                "last_status" => pick(&self.status),
                "resolved_by" => by.clone(),
                "resolved_by_correction_id" => by_id.clone(),
                "runs_seen" => {
                    let runs: Vec<i64> = gone
                        .iter()
                        .map(|i| self.runs_seen[*i].unwrap_or(1))
                        .collect();
                    columns.push(Column::new(name.into(), runs));
                    continue;
                }
                other => text(other)?,
            };
            columns.push(Column::new(name.into(), values));
        }
        DataFrame::new(gone.len(), columns)
    }
}

/// An empty `resolved` table.
pub fn empty_resolved() -> DataFrame {
    let columns = RESOLVED_COLUMNS
        .iter()
        .map(|name| {
            let dtype = if *name == "runs_seen" {
                DataType::Int64
            } else {
                DataType::String
            };
            Column::new_empty((*name).into(), &dtype)
        })
        .collect();
    DataFrame::new(0, columns).expect("columns of equal (zero) length")
}
