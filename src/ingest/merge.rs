//! Merging a walk into the previous snapshot: new, changed, deleted, restored.

use crate::ingest::checkpoint::WalkMode;
use crate::ingest::snapshot::SnapshotRow;
use std::collections::HashMap;

/// The merged rows and what changed.
#[derive(Debug, Clone, Default)]
pub struct Merged {
    /// All rows, sorted by id: live ones and ones marked deleted.
    pub rows: Vec<SnapshotRow>,
    /// Indices (into `rows`) of contracts new or changed in this run.
    pub changed: Vec<usize>,
    /// Contracts seen for the first time.
    pub new: usize,
    /// Contracts newly marked deleted (full walks only).
    pub deleted: usize,
    /// Contracts marked deleted before and seen again.
    pub restored: usize,
}

/// Merges the rows built from a walk (`fetched`, list columns only) into `prev`.
///
/// - A full walk calls a contract changed when it is new, was marked deleted,
///   or its list item hash differs; contracts absent from it get
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
) -> Merged {
    let mut out = Merged::default();
    let mut prev: HashMap<String, SnapshotRow> =
        prev.into_iter().map(|r| (r.id.clone(), r)).collect();
    let mut rows = Vec::with_capacity(prev.len() + fetched.len());
    let mut changed_ids = std::collections::HashSet::new();
    for mut row in fetched {
        let changed = match prev.remove(&row.id) {
            None => {
                out.new += 1;
                row.first_seen_at = Some(run_start.to_string());
                true
            }
            Some(p) => {
                let was_deleted = p.deleted_at.is_some();
                out.restored += usize::from(was_deleted);
                let changed = mode == WalkMode::Incremental
                    || was_deleted
                    || p.list_item_sha256 != row.list_item_sha256;
                row.first_seen_at = p.first_seen_at;
                row.key_pointers = p.key_pointers;
                row.document_sha256 = p.document_sha256;
                row.changed_at = p.changed_at;
                changed
            }
        };
        if changed {
            row.changed_at = Some(run_start.to_string());
            changed_ids.insert(row.id.clone());
        }
        rows.push(row);
    }
    for (_, mut p) in prev {
        if mode == WalkMode::Full && p.deleted_at.is_none() {
            p.deleted_at = Some(run_start.to_string());
            out.deleted += 1;
        }
        rows.push(p);
    }
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    out.changed = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| changed_ids.contains(&r.id))
        .map(|(i, _)| i)
        .collect();
    out.rows = rows;
    out
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
        let m = merge(prev_rows(), fetched, WalkMode::Full, "R1");
        let by = |id: &str| m.rows.iter().find(|r| r.id == id).unwrap().clone();
        assert_eq!(m.rows.len(), 4);
        assert_eq!((m.new, m.deleted, m.restored), (1, 1, 1));
        let changed: Vec<_> = m.changed.iter().map(|i| m.rows[*i].id.as_str()).collect();
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
        let m = merge(prev_rows(), fetched, WalkMode::Incremental, "R1");
        assert_eq!(m.rows.len(), 4);
        assert_eq!((m.new, m.deleted), (1, 0));
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
}
