//! Report stage: plan outcomes. Each drift row gets the correction planned for
//! it (the action covering its `drift_id`) and the latest outcome the journal
//! knows; each resolved row gets who fixed it: `job` when an applied correction
//! covering it is journaled (applied after the row first appeared), else `outside`.

use crate::apply::{Action, JournalView};
use std::collections::HashMap;

/// Outcome of a planned action the journal has never seen.
pub const PLANNED: &str = "planned";
/// `resolved_by` of a row an applied correction covered.
pub const BY_JOB: &str = "job";
/// `resolved_by` of any other resolved row (fixed by hand, or in the source).
pub const BY_OUTSIDE: &str = "outside";

/// What the lifecycle knows about corrections: this run's plan, by drift row,
/// and the journal.
#[derive(Debug, Clone, Default)]
pub struct Corrections {
    /// `drift_id` -> (action kind, action key) of this run's plan; empty when
    /// corrections are off.
    pub planned: HashMap<String, (String, String)>,
    /// The journal as it was before this run applied anything.
    pub journal: JournalView,
}

/// The correction columns of one drift row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowCorrection {
    /// `correction_action`.
    pub action: Option<String>,
    /// `correction_id`: the action's key.
    pub id: Option<String>,
    /// `correction_outcome`.
    pub outcome: Option<String>,
    /// `correction_at`.
    pub at: Option<String>,
}

impl Corrections {
    /// Corrections from `actions` (the planner keeps each action's `drift_ids`).
    pub fn from_plan(actions: &[Action], journal: JournalView) -> Corrections {
        let mut planned = HashMap::new();
        for a in actions {
            for id in &a.drift_ids {
                planned
                    .entry(id.clone())
                    .or_insert_with(|| (a.kind.as_str().to_string(), a.key.clone()));
            }
        }
        Corrections { planned, journal }
    }

    /// The row `drift_id`'s correction. `earlier_key`: the `correction_id` the
    /// previous nightly run gave the same row (its outcome is shown when this
    /// run's key was never sent: a success not yet in the extract, say).
    pub fn for_row(&self, drift_id: &str, earlier_key: Option<&str>) -> RowCorrection {
        let Some((action, key)) = self.planned.get(drift_id) else {
            return RowCorrection::default();
        };
        let entry = self
            .journal
            .latest(key)
            .or_else(|| earlier_key.and_then(|k| self.journal.latest(k)));
        RowCorrection {
            action: Some(action.clone()),
            id: Some(key.clone()),
            outcome: Some(entry.map_or(PLANNED.to_string(), |e| e.outcome.clone())),
            at: entry.map(|e| e.at.clone()),
        }
    }

    /// Who fixed a resolved row, first seen at `first_seen_at`, to which the
    /// run that last saw it gave `correction_id`: `(job, that id)` when the
    /// journal holds that key applied at or after `first_seen_at`, else
    /// `(outside, None)`.
    ///
    /// The key, not the last run's start, ties the success to the row: a key
    /// applied before the last run and still planned by it means that run's
    /// extract was taken before the success (a correction needed again after
    /// it gets the next generation, another key), so the success is what the
    /// next extract shows.
    pub fn resolved_by(
        &self,
        correction_id: Option<&str>,
        first_seen_at: Option<&str>,
    ) -> (&'static str, Option<String>) {
        let applied = correction_id
            .and_then(|k| self.journal.latest(k))
            .filter(|e| e.outcome == "applied")
            .filter(|e| match (parse(&e.at), first_seen_at.and_then(parse)) {
                (Some(at), Some(seen)) => at >= seen,
                _ => true,
            });
        match applied {
            Some(e) => (BY_JOB, Some(e.key.clone())),
            None => (BY_OUTSIDE, None),
        }
    }
}

fn parse(t: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.to_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{ActionKind, JournalEntry};
    use std::collections::{BTreeMap, BTreeSet};

    fn action(kind: ActionKind, key: &str, ids: &[&str]) -> Action {
        Action {
            kind,
            erp_record_id: Some("ERP-1".into()),
            contract_id: Some("T-1".into()),
            fields: BTreeMap::new(),
            document_sha256: None,
            if_match: None,
            reason: None,
            drift_kinds: BTreeSet::new(),
            drift_ids: ids.iter().map(|s| s.to_string()).collect(),
            key: key.into(),
            generation: 0,
        }
    }

    fn entry(key: &str, outcome: &str, at: &str) -> JournalEntry {
        JournalEntry {
            key: key.into(),
            generation: 0,
            content_hash: format!("h-{key}"),
            action: "update_erp_fields".into(),
            erp_record_id: Some("ERP-1".into()),
            contract_id: None,
            attempt: 1,
            outcome: outcome.into(),
            message: None,
            at: at.into(),
            run_id: "run-1".into(),
            approved_by: None,
        }
    }

    #[test]
    fn rows_map_to_the_action_covering_them_with_the_journals_latest_outcome() {
        let actions = [
            action(ActionKind::UpdateErpFields, "k1", &["d1", "d2"]),
            action(ActionKind::Review, "k2", &["d3"]),
            action(ActionKind::AttachDocument, "k3", &["d4"]),
        ];
        let journal = JournalView::from_entries(vec![
            entry("k1", "pending", "2026-01-01T00:00:00Z"),
            entry("k1", "applied", "2026-01-01T01:00:00Z"),
            entry("old", "rejected", "2025-12-31T00:00:00Z"),
        ]);
        let c = Corrections::from_plan(&actions, journal);
        let d2 = c.for_row("d2", None);
        assert_eq!(
            (
                d2.action.as_deref(),
                d2.id.as_deref(),
                d2.outcome.as_deref()
            ),
            (Some("update_erp_fields"), Some("k1"), Some("applied"))
        );
        assert_eq!(d2.at.as_deref(), Some("2026-01-01T01:00:00Z"));
        let d3 = c.for_row("d3", None);
        assert_eq!(
            (d3.action.as_deref(), d3.outcome.as_deref(), d3.at),
            (Some("review"), Some(PLANNED), None)
        );
        // Never sent under this key: the same row's earlier key tells.
        let d4 = c.for_row("d4", Some("old"));
        assert_eq!(
            (d4.id.as_deref(), d4.outcome.as_deref()),
            (Some("k3"), Some("rejected"))
        );
        assert_eq!(c.for_row("d9", Some("k1")), RowCorrection::default());
    }

    #[test]
    fn a_resolved_row_is_the_jobs_only_when_its_correction_was_applied_after_it_appeared() {
        let journal = JournalView::from_entries(vec![
            entry("k1", "applied", "2026-01-02T00:00:10Z"),
            entry("k2", "rejected", "2026-01-02T00:00:10Z"),
            entry("k3", "applied", "2026-01-01T00:00:00Z"),
            entry("k4", "applied", "2026-01-05T00:00:00Z"),
        ]);
        let c = Corrections {
            journal,
            ..Corrections::default()
        };
        let seen = Some("2026-01-02T00:00:00Z");
        assert_eq!(c.resolved_by(Some("k1"), seen), (BY_JOB, Some("k1".into())));
        assert_eq!(c.resolved_by(Some("k2"), seen), (BY_OUTSIDE, None));
        assert_eq!(c.resolved_by(Some("k3"), seen), (BY_OUTSIDE, None));
        assert_eq!(c.resolved_by(None, seen), (BY_OUTSIDE, None));
        assert_eq!(c.resolved_by(Some("k9"), seen), (BY_OUTSIDE, None));
        // Applied days ago, still reported while the extract lagged: the job's.
        assert_eq!(c.resolved_by(Some("k4"), seen), (BY_JOB, Some("k4".into())));
    }
}
