//! Backfill walks: the contracts created (or last updated) in a historical
//! range, walked window by window with the nightly walk's shift-proof paging
//! ([`walk`]) inside the workspace's limiter, checkpointed in the output
//! store so a killed backfill resumes where it stopped.
//!
//! Layout, per backfill: `{prefix}/_backfill/<job>/<backfill_id>/state.json`
//! (the range, its windows, the windows done and the walk under way) and the
//! spilled pages under `.../pages/`. A page is spilled before the state that
//! names it; the state is saved after every page and after every window
//! (crash point `backfill.between_windows`, right after a window's save), so
//! a resumed backfill walks only the windows not done, continuing the window
//! under way at its next page.
//!
//! The walk never reads or moves the nightly state or its watermark.

use super::checkpoint::StateStore;
use super::progress::BackfillFeedback;
use super::state_error::StateError;
use super::walk::{walk, WalkControl, WalkError, WalkOptions, WalkState, WalkStore};
use super::window::{Window, WindowField};
use super::IngestSettings;
use crate::spotdraft::client::SpotDraftClient;
use crate::spotdraft::model::Contract;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Crash point: a window's progress is saved and the next one not started.
pub const CRASH_BETWEEN_WINDOWS: &str = "backfill.between_windows";

/// What a backfill re-reconciles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillRange {
    /// First day (UTC), inclusive.
    pub from: NaiveDate,
    /// Last day (UTC), inclusive.
    pub to: NaiveDate,
    /// The field the days range over.
    pub by: WindowField,
}

impl std::fmt::Display for BackfillRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let by = match self.by {
            WindowField::CreatedAt => "created_at",
            WindowField::LastUpdatedOn => "last_updated_on",
        };
        write!(f, "{by} from {} to {} (inclusive)", self.from, self.to)
    }
}

/// Why a backfill cannot start.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// A date that is not `YYYY-MM-DD`.
    #[error("{flag}: {value:?} is not a date (YYYY-MM-DD)")]
    BadDate {
        /// `--from` or `--to`.
        flag: &'static str,
        /// As given.
        value: String,
    },
    /// `--from` after `--to`.
    #[error("--from {from} is after --to {to}")]
    Reversed {
        /// `--from`.
        from: NaiveDate,
        /// `--to`.
        to: NaiveDate,
    },
    /// The range starts after the backfill's own start.
    #[error("--from {from} is in the future: nothing to backfill")]
    Future {
        /// `--from`.
        from: NaiveDate,
    },
    /// A window that is not `<n>d` or `<n>h` with n > 0.
    #[error("--window: {value:?} is not a window length (such as 30d or 12h)")]
    BadWindow {
        /// As given.
        value: String,
    },
    /// `--resume` without an unfinished backfill of the job.
    #[error("job {job}: no unfinished backfill to resume under {dir}")]
    NothingToResume {
        /// Job.
        job: String,
        /// Where backfills are kept.
        dir: String,
    },
    /// `--resume` with another range than the unfinished backfill's.
    #[error("job {job}: the unfinished backfill {backfill_id} covers {theirs}, not {asked}; resume it with its range, or start a new backfill without --resume")]
    OtherRange {
        /// Job.
        job: String,
        /// The unfinished backfill.
        backfill_id: String,
        /// Its range.
        theirs: BackfillRange,
        /// The range asked for.
        asked: BackfillRange,
    },
    /// The backfill state.
    #[error(transparent)]
    State(#[from] StateError),
}

/// `YYYY-MM-DD`, for `flag`.
pub fn parse_date(flag: &'static str, value: &str) -> Result<NaiveDate, BackfillError> {
    NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d").map_err(|_| BackfillError::BadDate {
        flag,
        value: value.to_string(),
    })
}

/// A window length: `<n>d` (days) or `<n>h` (hours), n > 0.
pub fn parse_window(value: &str) -> Result<chrono::Duration, BackfillError> {
    let bad = || BackfillError::BadWindow {
        value: value.to_string(),
    };
    let v = value.trim();
    let (digits, unit) = v.split_at(v.len().saturating_sub(1));
    let n: i64 = digits.parse().map_err(|_| bad())?;
    if n <= 0 || n > 100_000 {
        return Err(bad());
    }
    match unit {
        "d" => Ok(chrono::Duration::days(n)),
        "h" => Ok(chrono::Duration::hours(n)),
        _ => Err(bad()),
    }
}

/// The windows of `range`: `[from 00:00Z, to + 1 day 00:00Z)` cut at
/// `not_after` (the backfill's start: nothing can enter a window that ends
/// before it), in consecutive pieces of `length`.
pub fn windows_of(
    range: &BackfillRange,
    length: chrono::Duration,
    not_after: DateTime<Utc>,
) -> Result<Vec<Window>, BackfillError> {
    if range.from > range.to {
        return Err(BackfillError::Reversed {
            from: range.from,
            to: range.to,
        });
    }
    let day = |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"));
    let start = day(range.from);
    let end = range
        .to
        .succ_opt()
        .map(day)
        .unwrap_or(not_after)
        .min(not_after);
    if start >= end {
        return Err(BackfillError::Future { from: range.from });
    }
    let mut out = vec![];
    let mut at = start;
    while at < end {
        let next = (at + length).min(end);
        out.push(Window {
            field: range.by,
            start: at,
            end: next,
        });
        at = next;
    }
    Ok(out)
}

/// One backfill's checkpoint (`state.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackfillState {
    /// Its id (`backfill-YYYYMMDD-HHMMSS-xxxxxxxx`), also its report's run id.
    pub backfill_id: String,
    /// Job.
    pub job: String,
    /// The range asked for.
    pub range: BackfillRange,
    /// When it started (windows end at it at the latest).
    pub started_at: DateTime<Utc>,
    /// Its windows, in walk order.
    pub windows: Vec<Window>,
    /// Windows walked to the end.
    pub done: usize,
    /// Spilled pages of the windows done.
    pub pages: Vec<String>,
    /// The walk of window `done`, under way.
    pub current: Option<WalkState>,
    /// List requests made, over every process that worked on it.
    pub list_requests: u64,
    /// Pages walked in the windows done (for the ETA).
    pub pages_done: u64,
    /// Reported and done.
    pub finished: bool,
}

/// Where a job's backfills are kept: `{prefix}/_backfill/<job>/`.
pub fn backfills_root(prefix: &Path, job: &str) -> Path {
    prefix.clone().join("_backfill").join(job)
}

/// Reads and writes one backfill's state and pages.
#[derive(Debug, Clone)]
pub struct BackfillStore {
    store: Arc<dyn ObjectStore>,
    dir: Path,
    pages: StateStore,
}

impl BackfillStore {
    /// The folder of `backfill_id` of `job`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &Path, job: &str, backfill_id: &str) -> Self {
        let dir = backfills_root(prefix, job).join(backfill_id);
        BackfillStore {
            pages: StateStore::in_dir(store.clone(), &dir.clone().join("walk")),
            store,
            dir,
        }
    }

    /// The backfill's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Saves `state` (one put).
    pub async fn save(&self, state: &BackfillState) -> Result<(), StateError> {
        let path = self.dir.clone().join("state.json");
        let json = serde_json::to_vec_pretty(state).expect("state serializes");
        self.store
            .put(&path, PutPayload::from(json))
            .await
            .map(|_| ())
            .map_err(|source| StateError::Store {
                path: path.to_string(),
                source,
            })
    }

    /// Deletes the spilled pages (once the backfill is reported).
    pub async fn clear_pages(&self) -> Result<(), StateError> {
        self.pages.clear_all().await
    }
}

/// The newest unfinished backfill of `job`, if any (unreadable states are skipped with a warning).
pub async fn newest_unfinished(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    job: &str,
) -> Result<Option<BackfillState>, StateError> {
    let root = backfills_root(prefix, job);
    let metas: Vec<_> = store
        .list(Some(&root))
        .try_collect()
        .await
        .map_err(|source| StateError::Store {
            path: root.to_string(),
            source,
        })?;
    let mut newest: Option<BackfillState> = None;
    for meta in metas {
        let parts: Vec<_> = meta.location.parts().collect();
        let depth_ok = parts.len() == root.parts().count() + 2;
        if !depth_ok || meta.location.filename() != Some("state.json") {
            continue;
        }
        let bytes = match store.get(&meta.location).await {
            Ok(got) => got.bytes().await.ok(),
            Err(_) => None,
        };
        let Some(state) = bytes.and_then(|b| serde_json::from_slice::<BackfillState>(&b).ok())
        else {
            tracing::warn!(path = %meta.location, "skipping an unreadable backfill state");
            continue;
        };
        if state.finished || state.job != job {
            continue;
        }
        if newest
            .as_ref()
            .is_none_or(|n| state.started_at > n.started_at)
        {
            newest = Some(state);
        }
    }
    Ok(newest)
}

/// Saves the walk under way inside the backfill's state.
struct WindowWalkStore<'a> {
    store: &'a BackfillStore,
    state: BackfillState,
}

impl WalkStore for WindowWalkStore<'_> {
    async fn put_page(&self, key: &str, contracts: &[Contract]) -> Result<(), StateError> {
        self.store.pages.put_page(key, contracts).await
    }

    async fn get_page(&self, key: &str) -> Result<Vec<Contract>, StateError> {
        self.store.pages.get_page(key).await
    }

    async fn save_progress(&self, walk: &WalkState) -> Result<(), StateError> {
        let mut state = self.state.clone();
        state.current = Some(walk.clone());
        self.store.save(&state).await
    }
}

/// Walks the windows of `state` not done yet, saving after every page and
/// window; returns the contracts of every window (one per id, the newest
/// fetch), the pages done included.
pub async fn walk_backfill(
    settings: &IngestSettings,
    client: &SpotDraftClient,
    store: &BackfillStore,
    state: &mut BackfillState,
    control: &WalkControl,
) -> Result<Vec<Contract>, WalkError> {
    let opts = WalkOptions::new(settings.page_size, settings.status_filter.clone());
    let mut feedback = BackfillFeedback::new(&settings.job, state, settings);
    while state.done < state.windows.len() {
        let i = state.done;
        let mut walk_state = state
            .current
            .take()
            .unwrap_or_else(|| WalkState::new(vec![state.windows[i]], format!("w{i:05}")));
        let saver = WindowWalkStore {
            store,
            state: state.clone(),
        };
        let outcome = walk(client, &saver, &mut walk_state, &opts, control, &mut |e| {
            crate::crashpoint::hit(crate::crashpoint::BACKFILL_WINDOW_PAGE);
            feedback.page(e)
        })
        .await;
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                state.current = Some(walk_state);
                return Err(e);
            }
        };
        state.list_requests += outcome.list_requests;
        let keys: Vec<String> = walk_state.accepted_keys().collect();
        state.pages_done += keys.len() as u64;
        state.pages.extend(keys);
        state.done += 1;
        state.current = None;
        store.save(state).await?;
        feedback.window_done(state);
        if state.done < state.windows.len() {
            crate::crashpoint::hit(CRASH_BETWEEN_WINDOWS);
        }
    }
    feedback.finish();
    let mut contracts = vec![];
    for key in &state.pages {
        contracts.extend(store.pages.get_page(key).await?);
    }
    Ok(super::walk::newest_per_id(contracts))
}

#[cfg(test)]
#[path = "backfill_tests.rs"]
mod tests;
