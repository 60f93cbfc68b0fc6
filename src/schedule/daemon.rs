//! Scheduling stage, the daemon: which jobs are due ([`Scheduler::tick`],
//! pure, driven by the instants it is given), and the loop that starts their
//! runs and stops cleanly ([`serve`], [`run`]).
//!
//! Rules:
//! - a job never overlaps itself: a firing due while its last run is still
//!   going is skipped (logged, and recorded as a `skipped` run);
//! - at most `max_concurrent_jobs` runs at once: a firing due over the cap is
//!   skipped the same way, not queued (a queued run would start at an
//!   unpredictable time, perhaps into its own next firing);
//! - at startup, a firing missed while the daemon was down (the run history
//!   says when the job last ran) runs once when the job says `catch_up = true`,
//!   and is skipped with a log line otherwise;
//! - on shutdown no run starts; running ones get a grace period, during which
//!   their SpotDraft walk stops at its next page (progress checkpointed), then
//!   whatever is left is dropped: the lease expires and the checkpoint resumes
//!   the run next time.

use super::calendar::Calendar;
use crate::job::{load_job, Job};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What to do with a due firing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start the run.
    Start,
    /// Do not run it, for this reason.
    Skip(SkipReason),
}

/// Why a due firing is not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The job's previous run is still going.
    StillRunning,
    /// `max_concurrent_jobs` runs are going.
    ConcurrencyCap,
    /// Missed while the daemon was down, and the job does not catch up.
    MissedWhileDown,
}

impl SkipReason {
    /// For the log and the run record.
    pub fn describe(self) -> &'static str {
        match self {
            SkipReason::StillRunning => "skipped: the job's previous run is still going",
            SkipReason::ConcurrencyCap => "skipped: max_concurrent_jobs runs are going",
            SkipReason::MissedWhileDown => {
                "skipped: missed while the scheduler was down (catch_up = false)"
            }
        }
    }
}

/// A firing that fell due.
#[derive(Debug, Clone)]
pub struct Due {
    /// The job.
    pub job: Job,
    /// The firing.
    pub scheduled_for: DateTime<Utc>,
    /// Start it or skip it.
    pub decision: Decision,
}

struct Entry {
    job: Job,
    calendar: Calendar,
    next: Option<DateTime<Utc>>,
    /// A firing missed while the daemon was down, reported at the first tick.
    missed: Option<DateTime<Utc>>,
}

/// The loaded jobs, when each fires next, and which are running.
pub struct Scheduler {
    entries: BTreeMap<String, Entry>,
    running: BTreeSet<String>,
    max_concurrent: usize,
}

impl Scheduler {
    /// An empty scheduler allowing `max_concurrent` runs at once (at least 1).
    pub fn new(max_concurrent: usize) -> Scheduler {
        Scheduler {
            entries: BTreeMap::new(),
            running: BTreeSet::new(),
            max_concurrent: max_concurrent.max(1),
        }
    }

    /// Adds (or replaces) `job`, which must have a schedule; `last_run`: when
    /// it last ran or was due (from the run history), to find a firing missed
    /// before `now`. Replacing a job with the same schedule keeps its next firing.
    pub fn load(
        &mut self,
        job: Job,
        last_run: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let schedule = job
            .schedule
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("job {:?} has no schedule", job.name))?;
        let calendar = Calendar::new(schedule)?;
        if let Some(old) = self.entries.get_mut(&job.name) {
            let same = old.job.schedule.as_ref().map(|s| (&s.cron, s.timezone))
                == Some((&schedule.cron, schedule.timezone));
            if same {
                old.job = job;
                return Ok(());
            }
        }
        let missed = last_run.and_then(|last| last_missed(&calendar, last, now));
        let entry = Entry {
            next: calendar.next_after(now),
            calendar,
            job,
            missed,
        };
        self.entries.insert(entry.job.name.clone(), entry);
        Ok(())
    }

    /// Keeps only the jobs named (a reload dropped the others; their running
    /// runs go on).
    pub fn retain(&mut self, names: &BTreeSet<String>) {
        self.entries.retain(|name, _| names.contains(name));
    }

    /// The firings due at `now`, each to start or to skip, in job name order;
    /// started ones count as running until [`Scheduler::finished`].
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Due> {
        let mut due = Vec::new();
        for (name, entry) in &mut self.entries {
            if let Some(missed) = entry.missed.take() {
                let catch_up = entry.job.schedule.as_ref().is_some_and(|s| s.catch_up);
                let decision = if catch_up {
                    Decision::Start
                } else {
                    Decision::Skip(SkipReason::MissedWhileDown)
                };
                due.push((name.clone(), missed, decision));
            }
            if let Some(next) = entry.next.filter(|n| *n <= now) {
                // From `now`: a daemon that was suspended fires once, not once per firing missed.
                entry.next = entry.calendar.next_after(now);
                due.push((name.clone(), next, Decision::Start));
            }
        }
        due.into_iter()
            .map(|(name, scheduled_for, decision)| {
                let decision = match decision {
                    Decision::Start if self.running.contains(&name) => {
                        Decision::Skip(SkipReason::StillRunning)
                    }
                    Decision::Start if self.running.len() >= self.max_concurrent => {
                        Decision::Skip(SkipReason::ConcurrencyCap)
                    }
                    Decision::Start => {
                        self.running.insert(name.clone());
                        Decision::Start
                    }
                    skip => skip,
                };
                Due {
                    job: self.entries[&name].job.clone(),
                    scheduled_for,
                    decision,
                }
            })
            .collect()
    }

    /// The run of `job` started by a tick has ended.
    pub fn finished(&mut self, job: &str) {
        self.running.remove(job);
    }

    /// When `job` fires next.
    pub fn next_firing(&self, job: &str) -> Option<DateTime<Utc>> {
        self.entries.get(job).and_then(|e| e.next)
    }

    /// The loaded jobs' names.
    pub fn jobs(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// The loaded jobs, in name order.
    pub fn loaded(&self) -> impl Iterator<Item = &Job> {
        self.entries.values().map(|e| &e.job)
    }

    /// Runs going.
    pub fn running(&self) -> usize {
        self.running.len()
    }
}

/// The latest firing in (last, now], if any.
fn last_missed(
    calendar: &Calendar,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let mut missed = None;
    let mut at = last;
    // Bounded: a job down for years with a per-second cron is not worth the loop.
    for _ in 0..100_000 {
        match calendar.next_after(at) {
            Some(next) if next <= now => {
                missed = Some(next);
                at = next;
            }
            _ => break,
        }
    }
    missed
}

/// The job files of `dir` (`*.toml`, in name order) that have a schedule; a
/// file that does not load is reported as `file: key: reason` lines and
/// skipped, as is a second job of the same name.
pub fn load_jobs_dir(dir: &Path) -> (Vec<Job>, Vec<String>) {
    let mut files: Vec<_> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(e) => return (Vec::new(), vec![format!("{}: -: {e}", dir.display())]),
    };
    files.sort();
    let (mut jobs, mut problems) = (Vec::<Job>::new(), Vec::new());
    for file in files {
        match load_job(&file) {
            Ok(job) if job.schedule.is_none() => {
                tracing::debug!(file = %file.display(), "no schedule: runs on demand only");
            }
            Ok(job) if jobs.iter().any(|j| j.name == job.name) => problems.push(format!(
                "{}: job.name: {:?} is already the name of another job file in {}",
                file.display(),
                job.name,
                dir.display()
            )),
            Ok(job) => jobs.push(job),
            Err(errors) => problems.extend(errors.0.iter().map(|p| p.to_string())),
        }
    }
    (jobs, problems)
}
