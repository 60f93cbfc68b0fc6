//! Merging a walk into the previous snapshot: new, changed, deleted, restored.

use crate::ingest::checkpoint::WalkMode;
use crate::ingest::snapshot::SnapshotRow;
use std::collections::{BTreeSet, HashMap, HashSet};

/// The merged rows and what changed.
#[derive(Debug, Clone, Default)]
pub struct Merged {
    /// All rows, sorted by id: live ones and ones marked deleted.
    pub rows: Vec<SnapshotRow>,
    /// Ids of contracts new or changed in this run.
    pub changed: BTreeSet<String>,
    /// Contracts seen for the first time.
    pub new: usize,
    /// Ids of contracts newly marked deleted in this run.
    pub deleted: BTreeSet<String>,
    /// Contracts marked deleted before and seen again.
    pub restored: usize,
}

/// Merges the rows built from a walk (`fetched`, list columns only) into `prev`.
///
/// - A full walk calls a contract changed when it is new, was marked deleted,
///   its list item hash differs, or `updated` names it (the walk of contracts
///   updated since the watermark); contracts absent from it get
///   `deleted_at = run_start` (kept, never dropped).
/// - An incremental walk calls every returned contract changed (its window
///   is "updated since the watermark") and upserts it; absent ones are untouched.
///
/// Unchanged contracts keep their metadata values and document hash; changed
/// ones keep the previous values until enrichment replaces them.
pub fn merge(
    prev: Vec<SnapshotRow>,
    fetched: Vec<SnapshotRow>,
    mode: WalkMode,
    run_start: &str,
    updated: &HashSet<String>,
) -> Merged {
    let mut out = Merged::default();
    let mut prev: HashMap<String, SnapshotRow> =
        prev.into_iter().map(|r| (r.id.clone(), r)).collect();
    let mut rows = Vec::with_capacity(prev.len() + fetched.len());
    for row in fetched {
        let old = prev.remove(&row.id);
        let force = mode == WalkMode::Incremental || updated.contains(&row.id);
        rows.push(out.absorb(row, old, force, run_start));
    }
    for (_, mut p) in prev {
        if mode == WalkMode::Full && p.deleted_at.is_none() {
            p.deleted_at = Some(run_start.to_string());
            out.deleted.insert(p.id.clone());
        }
        rows.push(p);
    }
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    out.rows = rows;
    out
}

impl Merged {
    /// The row of contract `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.rows.binary_search_by(|r| r.id.as_str().cmp(id)).ok()
    }

    /// Marks contract `id` deleted at `at`; true when it was live.
    pub fn mark_deleted(&mut self, id: &str, at: &str) -> bool {
        let Some(i) = self.index_of(id) else {
            return false;
        };
        let row = &mut self.rows[i];
        if row.deleted_at.is_some() {
            return false;
        }
        row.deleted_at = Some(at.to_string());
        self.changed.remove(id);
        self.deleted.insert(id.to_string());
        true
    }

    /// Inserts or updates one contract seen after the walk (an existence check,
    /// the deletion search), by the rules of a full walk.
    pub fn upsert(&mut self, row: SnapshotRow, run_start: &str) {
        match self.index_of(&row.id) {
            Some(i) => {
                let mut old = std::mem::take(&mut self.rows[i]);
                if self.deleted.remove(&row.id) {
                    // Marked deleted earlier in this run, then found: no restore.
                    old.deleted_at = None;
                }
                self.rows[i] = self.absorb(row, Some(old), false, run_start);
            }
            None => {
                let at = self.rows.partition_point(|r| r.id < row.id);
                let row = self.absorb(row, None, false, run_start);
                self.rows.insert(at, row);
            }
        }
    }

    /// `row` (list columns) merged with its previous row `old`; `force` calls
    /// it changed whatever its hash.
    fn absorb(
        &mut self,
        mut row: SnapshotRow,
        old: Option<SnapshotRow>,
        force: bool,
        run_start: &str,
    ) -> SnapshotRow {
        let changed = match old {
            None => {
                self.new += 1;
                row.first_seen_at = Some(run_start.to_string());
                true
            }
            Some(p) => {
                let was_deleted = p.deleted_at.is_some();
                self.restored += usize::from(was_deleted);
                let changed = force || was_deleted || p.list_item_sha256 != row.list_item_sha256;
                row.first_seen_at = p.first_seen_at;
                row.key_pointers = p.key_pointers;
                row.key_pointers_all = p.key_pointers_all;
                row.key_pointers_fetched_at = p.key_pointers_fetched_at;
                row.document_sha256 = p.document_sha256;
                row.document_fetched_at = p.document_fetched_at;
                row.changed_at = p.changed_at;
                changed
            }
        };
        if changed {
            row.changed_at = Some(run_start.to_string());
            self.changed.insert(row.id.clone());
        }
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, hash: &str) -> SnapshotRow {
        SnapshotRow {
            id: id.into(),
            list_item_sha256: Some(hash.into()),
            ..SnapshotRow::default()
        }
    }

    fn prev_rows() -> Vec<SnapshotRow> {
        let mut a = row("T-1", "a");
        a.first_seen_at = Some("R0".into());
        a.changed_at = Some("R0".into());
        a.key_pointers.insert("value".into(), Some("10".into()));
        let mut b = row("T-2", "b");
        b.first_seen_at = Some("R0".into());
        let mut gone = row("T-3", "c");
        gone.deleted_at = Some("R0".into());
        vec![a, b, gone]
    }

    #[test]
    fn full_walk_marks_new_changed_deleted_and_restored() {
        // T-1 unchanged, T-2 absent, T-3 back, T-4 new.
        let fetched = vec![row("T-1", "a"), row("T-3", "c2"), row("T-4", "d")];
        let m = merge(prev_rows(), fetched, WalkMode::Full, "R1", &HashSet::new());
        let by = |id: &str| m.rows.iter().find(|r| r.id == id).unwrap().clone();
        assert_eq!(m.rows.len(), 4);
        assert_eq!((m.new, m.deleted.len(), m.restored), (1, 1, 1));
        let changed: Vec<_> = m.changed.iter().map(String::as_str).collect();
        assert_eq!(changed, vec!["T-3", "T-4"]);
        assert_eq!(by("T-1").changed_at.as_deref(), Some("R0"));
        assert_eq!(
            by("T-1").key_pointers["value"].as_deref(),
            Some("10"),
            "unchanged keeps its values"
        );
        assert_eq!(by("T-2").deleted_at.as_deref(), Some("R1"));
        assert_eq!(by("T-3").deleted_at, None);
        assert_eq!(by("T-3").changed_at.as_deref(), Some("R1"));
        assert_eq!(by("T-4").first_seen_at.as_deref(), Some("R1"));
    }

    #[test]
    fn incremental_walk_upserts_and_deletes_nothing() {
        let fetched = vec![row("T-1", "a"), row("T-5", "e")];
        let m = merge(
            prev_rows(),
            fetched,
            WalkMode::Incremental,
            "R1",
            &HashSet::new(),
        );
        assert_eq!(m.rows.len(), 4);
        assert_eq!((m.new, m.deleted.len()), (1, 0));
        assert_eq!(
            m.changed.len(),
            2,
            "every returned contract counts as changed"
        );
        let t2 = m.rows.iter().find(|r| r.id == "T-2").unwrap();
        assert_eq!(t2.deleted_at, None);
        let t1 = m.rows.iter().find(|r| r.id == "T-1").unwrap();
        assert_eq!(
            (t1.first_seen_at.as_deref(), t1.changed_at.as_deref()),
            (Some("R0"), Some("R1"))
        );
    }

    #[test]
    fn rows_found_or_gone_after_the_walk_update_the_counts() {
        // T-2 was absent from a full walk (marked deleted), then found by an
        // existence check with a new status: live again, changed, no restore.
        let mut m = merge(
            prev_rows(),
            vec![row("T-1", "a")],
            WalkMode::Full,
            "R1",
            &HashSet::new(),
        );
        assert_eq!(m.deleted.len(), 1);
        m.upsert(row("T-2", "b2"), "R1");
        assert_eq!((m.deleted.len(), m.restored, m.new), (0, 0, 0));
        let t2 = &m.rows[m.index_of("T-2").unwrap()];
        assert_eq!(
            (t2.deleted_at.as_deref(), t2.changed_at.as_deref()),
            (None, Some("R1"))
        );
        assert!(m.changed.contains("T-2"));
        // A contract the walk missed is new; a gone one is marked once.
        m.upsert(row("T-0", "z"), "R1");
        assert_eq!(m.new, 1);
        assert_eq!(m.rows[0].id, "T-0", "rows stay sorted");
        assert!(m.mark_deleted("T-1", "NOW"));
        assert!(!m.mark_deleted("T-1", "NOW"));
        assert!(!m.mark_deleted("T-3", "NOW"), "already deleted before");
        assert_eq!(
            m.rows[m.index_of("T-1").unwrap()].deleted_at.as_deref(),
            Some("NOW")
        );
        assert_eq!(m.deleted.len(), 1);
    }

    #[test]
    fn contracts_updated_since_the_watermark_count_as_changed_in_a_full_walk() {
        let updated: HashSet<String> = ["T-1".to_string()].into();
        let m = merge(
            prev_rows(),
            vec![row("T-1", "a"), row("T-2", "b")],
            WalkMode::Full,
            "R1",
            &updated,
        );
        let changed: Vec<_> = m.changed.iter().map(String::as_str).collect();
        assert_eq!(
            changed,
            ["T-1"],
            "same hash, but updated since the watermark"
        );
    }
}
