//! Walk windows: half-open time ranges of the contract list, the rule that
//! accepts a walk of one, and how an unsettled window is split.

use crate::spotdraft::client::ListQuery;
use crate::spotdraft::model::Contract;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The field a window ranges over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WindowField {
    /// `created_at`: immutable, so contracts created during a walk fall outside
    /// a window that ends at the run's start; used by full walks.
    CreatedAt,
    /// `last_updated_on`, bounded above by the run's start; used by incremental walks.
    LastUpdatedOn,
}

/// `[start, end)` over one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// The filtered field.
    pub field: WindowField,
    /// Inclusive start (`[$gte]`).
    pub start: DateTime<Utc>,
    /// Exclusive end (`[$lt]`).
    pub end: DateTime<Utc>,
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.field {
            WindowField::CreatedAt => "created_at",
            WindowField::LastUpdatedOn => "last_updated_on",
        };
        write!(
            f,
            "{name} in [{}, {})",
            self.start.to_rfc3339(),
            self.end.to_rfc3339()
        )
    }
}

/// The start of every full walk: 1970-01-01T00:00:00Z.
pub fn epoch() -> DateTime<Utc> {
    Utc.timestamp_opt(0, 0).single().expect("epoch is valid")
}

impl Window {
    /// The full walk of a run started at `run_start`: everything created before it.
    pub fn full(run_start: DateTime<Utc>) -> Self {
        Window {
            field: WindowField::CreatedAt,
            start: epoch(),
            end: run_start,
        }
    }

    /// The list request for page `page` of this window.
    pub fn query(&self, page: u32, limit: u32, statuses: &[String]) -> ListQuery {
        let mut q = ListQuery {
            page,
            limit,
            statuses: statuses.to_vec(),
            ..ListQuery::default()
        };
        match self.field {
            WindowField::CreatedAt => {
                q.created_gte = Some(self.start);
                q.created_lt = Some(self.end);
            }
            WindowField::LastUpdatedOn => {
                q.updated_gte = Some(self.start);
                q.updated_lt = Some(self.end);
            }
        }
        q
    }

    /// The time of `c` on this window's field, when the contract carries it.
    pub fn time_of(&self, c: &Contract) -> Option<DateTime<Utc>> {
        let raw = match self.field {
            WindowField::CreatedAt => Some(c.created.as_str()),
            WindowField::LastUpdatedOn => c.last_updated_on.as_deref(),
        }?;
        DateTime::parse_from_rfc3339(raw)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// Splits the window in two at a whole second strictly inside it.
    ///
    /// The split point is the median of `observed` (the field's values seen on
    /// the unsettled walk) when that falls inside, so each half holds about half
    /// the contracts even though a full walk starts at 1970; otherwise the
    /// middle of the range. `None` when the window is narrower than 2 seconds.
    pub fn split(&self, observed: &[DateTime<Utc>]) -> Option<(Window, Window)> {
        let (s, e) = (self.start.timestamp(), ceil_secs(self.end));
        let inside = |t: i64| t > s && t < e;
        let mut secs: Vec<i64> = observed
            .iter()
            .map(|t| t.timestamp())
            .filter(|t| inside(*t))
            .collect();
        secs.sort_unstable();
        let at = match secs.get(secs.len() / 2) {
            Some(m) => *m,
            None => s + (e - s) / 2,
        };
        if !inside(at) {
            return None;
        }
        let mid = Utc.timestamp_opt(at, 0).single()?;
        Some((
            Window { end: mid, ..*self },
            Window {
                start: mid,
                ..*self
            },
        ))
    }
}

fn ceil_secs(t: DateTime<Utc>) -> i64 {
    t.timestamp() + i64::from(t.timestamp_subsec_nanos() > 0)
}

/// The acceptance rule: a walk of a window is complete when every page
/// reported the same `total_results` and the distinct ids fetched equal it.
///
/// Why that suffices under "ordered by last update, descending": contracts
/// cannot enter the window during the walk (it ends at the run's start, on a
/// field that only moves forward), so the only changes are deletions, which
/// change `total_results`, and updates that move a contract to the front,
/// which shift the rest by one: the walker then sees one contract twice and
/// misses another, so distinct < total. A window with total ≤ page size is a
/// single request and always consistent.
pub fn walk_is_complete(page_totals: &[u64], distinct: usize) -> bool {
    match page_totals.first() {
        None => false,
        Some(first) => page_totals.iter().all(|t| t == first) && distinct as u64 == *first,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn acceptance_needs_stable_totals_and_no_missing_ids() {
        assert!(walk_is_complete(&[250, 250, 250], 250));
        assert!(walk_is_complete(&[0], 0));
        assert!(!walk_is_complete(&[], 0));
        // A deletion during the walk: the total moved.
        assert!(!walk_is_complete(&[250, 249, 249], 249));
        // A reorder: a duplicate and a skip, same total.
        assert!(!walk_is_complete(&[250, 250, 250], 249));
    }

    #[test]
    fn split_uses_the_median_of_observed_times() {
        let w = Window::full(t("2026-06-01T00:00:00Z"));
        let seen = [
            t("2026-01-01T00:00:00Z"),
            t("2026-02-01T00:00:00Z"),
            t("2026-03-01T00:00:00Z"),
        ];
        let (a, b) = w.split(&seen).unwrap();
        assert_eq!((a.start, a.end), (epoch(), t("2026-02-01T00:00:00Z")));
        assert_eq!((b.start, b.end), (t("2026-02-01T00:00:00Z"), w.end));
        assert_eq!(a.field, WindowField::CreatedAt);
    }

    #[test]
    fn split_falls_back_to_the_middle_and_stops_at_one_second() {
        let w = Window {
            field: WindowField::LastUpdatedOn,
            start: t("2026-01-01T00:00:00Z"),
            end: t("2026-01-01T00:00:10Z"),
        };
        // Observed values outside the window are ignored.
        let (a, b) = w.split(&[t("2025-01-01T00:00:00Z")]).unwrap();
        assert_eq!(a.end, t("2026-01-01T00:00:05Z"));
        assert_eq!(b.start, a.end);
        let narrow = Window {
            end: t("2026-01-01T00:00:01Z"),
            ..w
        };
        assert_eq!(narrow.split(&[]), None);
        let two = Window {
            end: t("2026-01-01T00:00:02Z"),
            ..w
        };
        assert!(two.split(&[]).is_some());
    }

    #[test]
    fn query_filters_the_window_field() {
        let w = Window::full(t("2026-06-01T00:00:00Z"));
        let pairs = w.query(3, 100, &["EXECUTED".into(), "SIGN".into()]).pairs();
        let get = |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        assert_eq!(get("page").as_deref(), Some("3"));
        assert_eq!(
            get("filter__created_at[$gte]").as_deref(),
            Some("1970-01-01T00:00:00Z")
        );
        assert_eq!(
            get("filter__created_at[$lt]").as_deref(),
            Some("2026-06-01T00:00:00Z")
        );
        assert_eq!(
            get("filter__display_status[$in]").as_deref(),
            Some("EXECUTED,SIGN")
        );
        assert_eq!(get("filter__last_updated_on[$gte]"), None);
    }
}
