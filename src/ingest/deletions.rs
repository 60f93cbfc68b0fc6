//! Finding the contracts that are gone, the same night.
//!
//! After the walk, one `limit=1` list request gives the server's count of
//! contracts created before the run's start (in the status filter); the
//! snapshot's live contracts in the same range are counted locally. When the
//! two differ, [`find_missing`] narrows `created_at` windows by their totals:
//! a window whose server total (`limit=1`) equals the snapshot's count in it
//! is settled; one that differs is split at the median of the snapshot's
//! creation times in it (the server total of the second half is the parent's
//! minus the first's, one request per split), until a window holds at most
//! one page, which is then walked (the complete-walk machinery of
//! [`super::walk`], kept in memory) and compared id by id. Each deletion costs
//! about `2 log2(N / page_size)` requests: 2 deletions among 1,000 contracts,
//! about 10 requests; among 1,000,000, about 40. Contracts created at or after
//! the run's start are outside every window.
//!
//! With a status filter a contract missing from the filtered list may only
//! have changed status: [`verify_absent`] looks the missing ones up by id
//! (no status filter, 100 per request) before they are marked deleted.

use super::snapshot::SnapshotRow;
use super::state_error::StateError;
use super::walk::{walk, WalkControl, WalkError, WalkOptions, WalkState, WalkStore};
use super::window::Window;
use crate::spotdraft::client::{FetchError, SpotDraftClient};
use crate::spotdraft::model::{Contract, ContractId};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// What the search found.
#[derive(Debug, Default)]
pub struct SearchOutcome {
    /// Ids the snapshot has live that their window no longer lists.
    pub missing: Vec<String>,
    /// Contracts a window lists that the snapshot lacks (or has deleted).
    pub unknown: Vec<Contract>,
    /// List requests made (window totals and listings).
    pub requests: u64,
}

/// The rows the live count covers: live, created before `run_start` (parsed),
/// and in `statuses` when the walk is filtered. Sorted by creation time.
pub fn counted(
    rows: &[SnapshotRow],
    run_start: DateTime<Utc>,
    statuses: &[String],
) -> Vec<(DateTime<Utc>, String)> {
    let mut out: Vec<(DateTime<Utc>, String)> = rows
        .iter()
        .filter(|r| r.deleted_at.is_none())
        .filter(|r| {
            statuses.is_empty()
                || r.contract_status
                    .as_ref()
                    .is_some_and(|s| statuses.contains(s))
        })
        .filter_map(|r| {
            let t = DateTime::parse_from_rfc3339(r.created.as_deref()?).ok()?;
            Some((t.with_timezone(&Utc), r.id.clone()))
        })
        .filter(|(t, _)| *t < run_start)
        .collect();
    out.sort_unstable();
    out
}

/// The `limit=1` total of a window.
pub async fn window_total(
    client: &SpotDraftClient,
    window: &Window,
    statuses: &[String],
) -> Result<u64, WalkError> {
    client
        .list_contracts(&window.query(1, 1, statuses))
        .await
        .map(|r| r.total_results)
        .map_err(|source| WalkError::Fetch {
            window: *window,
            page: 1,
            source: Box::new(source),
        })
}

/// Narrows `root` (whose server total is `root_total`) down to the windows
/// whose totals disagree with `local` (from [`counted`]) and lists those.
pub async fn find_missing(
    client: &SpotDraftClient,
    local: &[(DateTime<Utc>, String)],
    root: Window,
    root_total: u64,
    opts: &WalkOptions,
) -> Result<SearchOutcome, WalkError> {
    let mut out = SearchOutcome::default();
    let mut stack = vec![(root, root_total)];
    while let Some((w, total)) = stack.pop() {
        let inside = in_window(local, &w);
        if total == inside.len() as u64 {
            continue;
        }
        let times: Vec<DateTime<Utc>> = inside.iter().map(|(t, _)| *t).collect();
        let halves = (total > u64::from(opts.page_size))
            .then(|| w.split(&times))
            .flatten();
        let Some((early, late)) = halves else {
            let listed = list_window(client, w, opts, &mut out.requests).await?;
            let known: HashSet<&str> = inside.iter().map(|(_, id)| id.as_str()).collect();
            let seen: HashSet<String> = listed
                .iter()
                .map(|c| c.id.composite().to_string())
                .collect();
            out.missing.extend(
                inside
                    .iter()
                    .filter(|(_, id)| !seen.contains(id))
                    .map(|(_, id)| id.clone()),
            );
            out.unknown.extend(
                listed
                    .into_iter()
                    .filter(|c| !known.contains(c.id.composite())),
            );
            continue;
        };
        let early_total = window_total(client, &early, &opts.statuses).await?;
        out.requests += 1;
        stack.push((late, total.saturating_sub(early_total)));
        stack.push((early, early_total));
    }
    out.missing.sort_unstable();
    Ok(out)
}

fn in_window<'a>(
    local: &'a [(DateTime<Utc>, String)],
    w: &Window,
) -> &'a [(DateTime<Utc>, String)] {
    let from = local.partition_point(|(t, _)| *t < w.start);
    let to = local.partition_point(|(t, _)| *t < w.end);
    &local[from..to.max(from)]
}

/// Walks one window completely (usually one page), in memory.
async fn list_window(
    client: &SpotDraftClient,
    window: Window,
    opts: &WalkOptions,
    requests: &mut u64,
) -> Result<Vec<Contract>, WalkError> {
    let store = MemoryWalkStore::default();
    let mut state = WalkState::new(vec![window], "search".into());
    let outcome = walk(
        client,
        &store,
        &mut state,
        opts,
        &WalkControl::default(),
        &mut |_| {},
    )
    .await;
    // Requests of a failed listing are not reported; the run fails anyway.
    let outcome = outcome?;
    *requests += outcome.list_requests;
    Ok(outcome.contracts)
}

/// Of `ids` missing from a status-filtered list, the list items of those that
/// still exist (their status left the filter) and the ids that are gone.
pub async fn verify_absent(
    client: &SpotDraftClient,
    ids: &[String],
) -> Result<(Vec<Contract>, Vec<String>), FetchError> {
    let wanted: Vec<ContractId> = ids.iter().map(ContractId::new).collect();
    let found = client.existing_contract_items(&wanted).await?;
    let there: HashSet<&str> = found.iter().map(|c| c.id.composite()).collect();
    let gone = ids
        .iter()
        .filter(|id| !there.contains(id.as_str()))
        .cloned()
        .collect();
    Ok((found, gone))
}

/// A [`WalkStore`] in memory, for walks that need no resume.
#[derive(Debug, Default)]
pub struct MemoryWalkStore {
    pages: Mutex<HashMap<String, Vec<Contract>>>,
}

impl WalkStore for MemoryWalkStore {
    async fn put_page(&self, key: &str, contracts: &[Contract]) -> Result<(), StateError> {
        let mut pages = self.pages.lock().unwrap_or_else(|p| p.into_inner());
        pages.insert(key.to_string(), contracts.to_vec());
        Ok(())
    }

    async fn get_page(&self, key: &str) -> Result<Vec<Contract>, StateError> {
        let pages = self.pages.lock().unwrap_or_else(|p| p.into_inner());
        Ok(pages.get(key).cloned().unwrap_or_default())
    }

    async fn save_progress(&self, _walk: &WalkState) -> Result<(), StateError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::window::epoch;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn row(id: &str, created: &str, status: &str, deleted: bool) -> SnapshotRow {
        SnapshotRow {
            id: id.into(),
            created: Some(created.into()),
            contract_status: Some(status.into()),
            deleted_at: deleted.then(|| "x".to_string()),
            ..SnapshotRow::default()
        }
    }

    #[test]
    fn counted_rows_are_live_in_range_in_filter_and_sorted() {
        let rows = vec![
            row("T-3", "2026-03-01T00:00:00Z", "SIGN", false),
            row("T-1", "2026-01-01T00:00:00Z", "SIGN", false),
            row("T-2", "2026-02-01T00:00:00Z", "DRAFT", false),
            row("T-4", "2026-04-01T00:00:00Z", "SIGN", true),
            row("T-5", "2026-12-01T00:00:00Z", "SIGN", false),
            row("T-6", "not a time", "SIGN", false),
        ];
        let run_start = t("2026-06-01T00:00:00Z");
        let ids = |v: Vec<(DateTime<Utc>, String)>| v.into_iter().map(|x| x.1).collect::<Vec<_>>();
        assert_eq!(ids(counted(&rows, run_start, &[])), ["T-1", "T-2", "T-3"]);
        assert_eq!(
            ids(counted(&rows, run_start, &["SIGN".to_string()])),
            ["T-1", "T-3"]
        );
        let local = counted(&rows, run_start, &[]);
        let w = Window {
            start: t("2026-02-01T00:00:00Z"),
            ..Window::full(t("2026-03-01T00:00:00Z"))
        };
        assert_eq!(in_window(&local, &w).len(), 1, "[start, end)");
        assert_eq!(in_window(&local, &Window::full(run_start)).len(), 3);
        assert!(in_window(&local, &Window::full(epoch())).is_empty());
    }
}
