//! Enrichment planning: which contracts get their metadata values
//! (`key_pointers`) and executed document fetched, and what a fetch found.
//!
//! Only what reconciliation uses is fetched ([`Scope`]): metadata values when
//! the job names a `key_pointers.<field>`, for live contracts in the
//! reconciled statuses; documents with `fetch_documents`, for such contracts
//! in `EXECUTED` (when `EXECUTED` is reconciled). Within that scope a contract
//! is fetched when it is new or changed in this run, was never enriched (a
//! null `*_fetched_at`: a status newly reconciled, `fetch_documents` newly
//! on), lacks the raw values a newly named field needs (snapshots of older
//! versions), or, for metadata values, is among the stalest
//! ([`RefreshBudget`]): SpotDraft may edit a value without bumping anything
//! the list shows, so every value is re-verified within a bounded number of
//! runs. The fetching itself (checkpointed, resumable) is in `enrich_run.rs`.

use super::merge::Merged;
use super::snapshot::SnapshotRow;
use super::{IngestSettings, RefreshBudget};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The status whose executed document is compared.
pub const EXECUTED: &str = "EXECUTED";

/// What reconciliation uses, hence what is worth a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    /// Reconciled statuses (empty: every status).
    pub statuses: Vec<String>,
    /// The job names metadata value fields.
    pub key_pointers: bool,
    /// Executed documents are compared.
    pub documents: bool,
}

impl Scope {
    /// The scope of a job's settings.
    pub fn of(s: &IngestSettings) -> Self {
        Scope {
            statuses: s.reconciled_statuses.clone(),
            key_pointers: !s.key_pointer_fields.is_empty(),
            documents: s.fetch_documents,
        }
    }

    /// A live contract in a reconciled status.
    pub fn in_scope(&self, row: &SnapshotRow) -> bool {
        row.deleted_at.is_none()
            && (self.statuses.is_empty()
                || row
                    .contract_status
                    .as_ref()
                    .is_some_and(|s| self.statuses.contains(s)))
    }

    /// An in-scope contract whose executed document is compared.
    pub fn wants_document(&self, row: &SnapshotRow) -> bool {
        self.documents && self.in_scope(row) && row.contract_status.as_deref() == Some(EXECUTED)
    }
}

/// What to fetch for one contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Composite id.
    pub id: String,
    /// Fetch its metadata values.
    pub key_pointers: bool,
    /// Download its executed document.
    pub document: bool,
    /// Scheduled only by the refresh budget.
    pub refresh: bool,
}

impl Task {
    /// Requests this task makes when nothing goes wrong.
    pub fn requests(&self) -> u64 {
        u64::from(self.key_pointers) + u64::from(self.document)
    }
}

/// Plans the fetches of one run over the merged rows (ids in order).
/// `raw_values_missing`: the previous snapshot lacks a column for a field the
/// job names, so rows without raw values need theirs fetched.
pub fn plan(
    scope: &Scope,
    merged: &Merged,
    raw_values_missing: bool,
    budget: RefreshBudget,
) -> Vec<Task> {
    let mut tasks: BTreeMap<usize, Task> = BTreeMap::new();
    let mut stale: Vec<(Option<DateTime<Utc>>, usize)> = vec![];
    let mut in_scope = 0usize;
    for (i, row) in merged.rows.iter().enumerate() {
        if !scope.in_scope(row) {
            continue;
        }
        in_scope += 1;
        let changed = merged.changed.contains(&row.id);
        let kp = scope.key_pointers
            && (changed
                || row.key_pointers_fetched_at.is_none()
                || (raw_values_missing && row.key_pointers_all.is_none()));
        let doc = scope.wants_document(row) && (changed || row.document_fetched_at.is_none());
        if kp || doc {
            let task = Task {
                id: row.id.clone(),
                key_pointers: kp,
                document: doc,
                refresh: false,
            };
            tasks.insert(i, task);
        }
        if scope.key_pointers && !kp {
            stale.push((parse_time(row.key_pointers_fetched_at.as_deref()), i));
        }
    }
    // Stalest first; a never-dated value sorts first (None < Some).
    stale.sort_unstable();
    let n = if scope.key_pointers {
        budget.of(in_scope).min(stale.len())
    } else {
        0
    };
    for (_, i) in &stale[..n] {
        let task = tasks.entry(*i).or_insert_with(|| Task {
            id: merged.rows[*i].id.clone(),
            key_pointers: false,
            document: false,
            refresh: true,
        });
        task.key_pointers = true;
    }
    tasks.into_values().collect()
}

fn parse_time(t: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t?)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// What fetching one contract found; spilled in batches so a resumed run
/// does not fetch it again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnrichResult {
    /// Composite id.
    pub id: String,
    /// Every metadata value returned, when fetched.
    pub key_pointers: Option<BTreeMap<String, Option<String>>>,
    /// When they were fetched.
    pub key_pointers_fetched_at: Option<String>,
    /// SHA-256 of the executed document; `None` with `document_fetched_at`
    /// set: the contract exists but has no downloadable document.
    pub document_sha256: Option<String>,
    /// When the document was downloaded (or found missing).
    pub document_fetched_at: Option<String>,
    /// When a 404 and a lookup by id showed the contract gone.
    pub vanished_at: Option<String>,
}

impl EnrichResult {
    /// The contract exists and its document answered 404.
    pub fn document_unavailable(&self) -> bool {
        self.document_fetched_at.is_some() && self.document_sha256.is_none()
    }
}

/// Applies one result to its row; a vanished contract is marked deleted.
pub fn apply(merged: &mut Merged, r: &EnrichResult, fields: &[String]) {
    if let Some(at) = &r.vanished_at {
        merged.mark_deleted(&r.id, at);
        return;
    }
    let Some(i) = merged.index_of(&r.id) else {
        return;
    };
    let row = &mut merged.rows[i];
    if let (Some(all), Some(at)) = (&r.key_pointers, &r.key_pointers_fetched_at) {
        row.set_key_pointers(all.clone(), fields, at);
    }
    if let Some(at) = &r.document_fetched_at {
        row.document_sha256 = r.document_sha256.clone();
        row.document_fetched_at = Some(at.clone());
    }
}

/// Seconds since the oldest `key_pointers_fetched_at` among in-scope rows
/// (`None` when the job fetches no metadata values or none are fetched).
pub fn oldest_key_pointers_age_secs(
    scope: &Scope,
    rows: &[SnapshotRow],
    now: DateTime<Utc>,
) -> Option<u64> {
    if !scope.key_pointers {
        return None;
    }
    rows.iter()
        .filter(|r| scope.in_scope(r))
        .filter_map(|r| parse_time(r.key_pointers_fetched_at.as_deref()))
        .min()
        .map(|t| (now - t).num_seconds().max(0) as u64)
}

#[cfg(test)]
#[path = "enrich_tests.rs"]
mod tests;
