//! The complete walk of the contract list, despite pages that shift under it.
//!
//! The list has no cursor and no documented order (the sandbox, like the real
//! service may, orders by last update, newest first), so a contract updated
//! during a walk jumps to the front and one deleted shifts the rest back. The
//! walk therefore works on [`Window`]s, half-open ranges of a field that only
//! moves forward and is bounded by the run's fixed start: `created_at` in
//! `[epoch, run_start)` for a full walk, `last_updated_on` in
//! `[watermark - overlap, run_start)` for an incremental one. Nothing can enter
//! such a window while it is walked, and [`walk_is_complete`] detects anything
//! that left or moved.
//!
//! A window is walked page by page; the attempt is abandoned as soon as a page
//! reports another `total_results` or repeats an id (a shift), which saves the
//! rest of its pages. An unsettled window is walked again once, then split in
//! two (at the median of the times seen, see [`Window::split`]) so that each
//! half needs fewer pages than the interval between mutations; a window of at
//! most one page is always consistent. Without faults a walk costs exactly
//! `ceil(N / page_size)` list requests and nothing else.
//!
//! After every page the page is spilled and the [`WalkState`] saved through
//! the [`WalkStore`] (the run state, see [`super::checkpoint`]), so a stopped
//! or failed walk resumes at the next page.

use super::state_error::StateError;
use super::window::Window;
use crate::spotdraft::client::{FetchError, SpotDraftClient};
use crate::spotdraft::model::{Contract, ContractId};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use super::window::walk_is_complete;

/// Where a walk keeps its pages and its progress, so a stopped walk resumes.
///
/// A page is put before the progress that names it is saved.
pub trait WalkStore {
    /// Keeps one fetched page under `key`.
    fn put_page(
        &self,
        key: &str,
        contracts: &[Contract],
    ) -> impl Future<Output = Result<(), StateError>> + Send;

    /// Reads back the page kept under `key`.
    fn get_page(&self, key: &str)
        -> impl Future<Output = Result<Vec<Contract>, StateError>> + Send;

    /// Saves the walk's state (replacing the previous one).
    fn save_progress(
        &self,
        walk: &WalkState,
    ) -> impl Future<Output = Result<(), StateError>> + Send;
}

/// A window waiting to be walked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingWindow {
    /// The range.
    pub window: Window,
    /// Attempt number it will be walked with (from 1).
    pub attempt: u32,
}

/// The window being walked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurrentWindow {
    /// The range.
    pub window: Window,
    /// Attempt number (from 1).
    pub attempt: u32,
    /// `total_results` of each page fetched in this attempt.
    pub page_totals: Vec<u64>,
    /// The next page to fetch (from 1).
    pub next_page: u32,
    /// Spill keys of the pages fetched in this attempt.
    pub pages: Vec<String>,
}

/// Everything a walk needs to resume: kept in the run state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalkState {
    /// Windows still to walk (a stack: the last is next).
    pub pending: Vec<PendingWindow>,
    /// The window under way.
    pub current: Option<CurrentWindow>,
    /// Spill keys of the pages of accepted windows.
    pub accepted_pages: Vec<String>,
    /// Prefix of this run's spill keys.
    pub key_prefix: String,
    /// Next spill sequence number.
    pub next_key: u64,
    /// Window attempts abandoned as unsettled.
    pub windows_rewalked: u64,
    /// Windows split in two.
    pub windows_split: u64,
}

impl WalkState {
    /// A fresh walk of `windows`, spilling pages under keys starting with `key_prefix`.
    pub fn new(windows: Vec<Window>, key_prefix: String) -> Self {
        let pending = windows
            .into_iter()
            .rev()
            .map(|window| PendingWindow { window, attempt: 1 })
            .collect();
        WalkState {
            pending,
            current: None,
            accepted_pages: vec![],
            key_prefix,
            next_key: 0,
            windows_rewalked: 0,
            windows_split: 0,
        }
    }
}

/// Tuning of the walk.
#[derive(Debug, Clone)]
pub struct WalkOptions {
    /// Page size (1..=100).
    pub page_size: u32,
    /// `filter__display_status[$in]` values (none: no filter).
    pub statuses: Vec<String>,
    /// Attempts of a window before it is split.
    pub attempts_before_split: u32,
    /// Attempts of a window that cannot be split any more before giving up.
    pub max_attempts: u32,
    /// Abandoned attempts over the whole walk before giving up.
    pub max_rewalks: u64,
}

impl WalkOptions {
    /// Defaults for `page_size` and `statuses`: 2 attempts before a split,
    /// 6 for an unsplittable window, 2,000 abandoned attempts in all.
    pub fn new(page_size: u32, statuses: Vec<String>) -> Self {
        WalkOptions {
            page_size: page_size.clamp(1, 100),
            statuses,
            attempts_before_split: 2,
            max_attempts: 6,
            max_rewalks: 2000,
        }
    }
}

/// Stops a run between pages or enrichment results (tests, a lost lease).
/// The state is saved first.
#[derive(Debug, Clone, Default)]
pub struct WalkControl {
    /// Stop the walk after this many list requests in this call.
    pub page_budget: Option<u64>,
    /// Stop enrichment after this many contracts enriched in this call.
    pub enrich_budget: Option<u64>,
    /// Stop when set (the walk and enrichment both check it).
    pub stop: Option<Arc<AtomicBool>>,
    /// Stop when set, too: the scheduler's shutdown (a second flag, so that
    /// a lost lease and a shutdown stay apart).
    pub shutdown: Option<Arc<AtomicBool>>,
}

impl WalkControl {
    /// True when the stop flag is raised.
    pub fn stopped(&self) -> bool {
        [&self.stop, &self.shutdown]
            .into_iter()
            .flatten()
            .any(|s| s.load(Ordering::SeqCst))
    }
}

/// One page fetched, for progress display.
#[derive(Debug, Clone)]
pub struct PageEvent {
    /// The window walked.
    pub window: Window,
    /// Its page number.
    pub page: u32,
    /// The page's `total_results`.
    pub window_total: u64,
    /// Contracts in accepted windows plus the current attempt.
    pub contracts_so_far: usize,
}

/// Why a walk ended early.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// A list request failed; the pages before it are kept.
    #[error("listing contracts ({window}, page {page}) failed")]
    Fetch {
        /// The window.
        window: Window,
        /// The page.
        page: u32,
        /// The client's error.
        #[source]
        source: Box<FetchError>,
    },
    /// The run state could not be written or read.
    #[error(transparent)]
    State(#[from] StateError),
    /// A window kept changing while walked.
    #[error("{window} never settled after {attempts} attempts: contracts keep changing faster than it can be paged; retry later")]
    NeverSettled {
        /// The window.
        window: Window,
        /// Attempts made.
        attempts: u32,
    },
    /// Stopped by [`WalkControl`]; resume with the saved state.
    #[error("walk stopped after {pages} list requests; the next run resumes it")]
    Stopped {
        /// List requests made in this call.
        pages: u64,
    },
}

/// A finished walk.
#[derive(Debug, Clone)]
pub struct WalkOutcome {
    /// The contracts, one per id (the newest fetch).
    pub contracts: Vec<Contract>,
    /// List requests made in this call (a resume counts only its own).
    pub list_requests: u64,
}

/// Walks the windows of `st` to the end, updating it and saving it through
/// `store` after every page.
pub async fn walk<S: WalkStore>(
    client: &SpotDraftClient,
    store: &S,
    st: &mut WalkState,
    opts: &WalkOptions,
    control: &WalkControl,
    on_page: &mut (dyn FnMut(&PageEvent) + Send),
) -> Result<WalkOutcome, WalkError> {
    let mut accepted = load_pages(store, &st.accepted_pages).await?;
    let mut current = match &st.current {
        Some(cur) => load_pages(store, &cur.pages).await?,
        None => vec![],
    };
    let mut requests = 0u64;
    store.save_progress(st).await?;
    loop {
        if st.current.is_none() {
            let Some(next) = st.pending.pop() else { break };
            st.current = Some(CurrentWindow {
                window: next.window,
                attempt: next.attempt,
                page_totals: vec![],
                next_page: 1,
                pages: vec![],
            });
        }
        if control.stopped() || control.page_budget.is_some_and(|b| requests >= b) {
            store.save_progress(st).await?;
            return Err(WalkError::Stopped { pages: requests });
        }
        let cur = st.current.as_mut().expect("set above");
        let (window, page) = (cur.window, cur.next_page);
        let resp = client
            .list_contracts(&window.query(page, opts.page_size, &opts.statuses))
            .await
            .map_err(|source| WalkError::Fetch {
                window,
                page,
                source: Box::new(source),
            })?;
        requests += 1;
        let expected = *cur.page_totals.first().unwrap_or(&resp.total_results);
        cur.page_totals.push(resp.total_results);
        let mut seen: HashSet<&ContractId> = current.iter().map(|c| &c.id).collect();
        let repeated = !resp.results.iter().all(|c| seen.insert(&c.id));
        if resp.total_results != expected || repeated {
            let mut observed: Vec<_> = current
                .iter()
                .chain(&resp.results)
                .filter_map(|c| window.time_of(c))
                .collect();
            observed.sort_unstable();
            current.clear();
            abandon(st, opts, &observed)?;
            store.save_progress(st).await?;
            continue;
        }
        let key = format!("{}-{:06}", st.key_prefix, st.next_key);
        st.next_key += 1;
        store.put_page(&key, &resp.results).await?;
        let short_page = resp.results.len() < opts.page_size as usize;
        current.extend(resp.results);
        let cur = st.current.as_mut().expect("set above");
        cur.pages.push(key);
        cur.next_page += 1;
        on_page(&PageEvent {
            window,
            page,
            window_total: expected,
            contracts_so_far: accepted.len() + current.len(),
        });
        if short_page || current.len() as u64 >= expected {
            if walk_is_complete(&cur.page_totals, current.len()) {
                st.accepted_pages.append(&mut cur.pages);
                accepted.append(&mut current);
                st.current = None;
            } else {
                let observed: Vec<_> = current.iter().filter_map(|c| window.time_of(c)).collect();
                current.clear();
                abandon(st, opts, &observed)?;
            }
        }
        store.save_progress(st).await?;
    }
    Ok(WalkOutcome {
        contracts: newest_per_id(accepted),
        list_requests: requests,
    })
}

/// Gives up the current attempt: walk again, split, or fail.
fn abandon(
    st: &mut WalkState,
    opts: &WalkOptions,
    observed: &[chrono::DateTime<chrono::Utc>],
) -> Result<(), WalkError> {
    let cur = st.current.take().expect("abandon() needs a current window");
    st.windows_rewalked += 1;
    tracing::info!(window = %cur.window, attempt = cur.attempt, "window changed while walked; walking it again");
    let (window, attempt) = (cur.window, cur.attempt);
    if st.windows_rewalked > opts.max_rewalks {
        return Err(WalkError::NeverSettled {
            window,
            attempts: attempt,
        });
    }
    if attempt < opts.attempts_before_split {
        st.pending.push(PendingWindow {
            window,
            attempt: attempt + 1,
        });
    } else if let Some((early, late)) = window.split(observed) {
        st.windows_split += 1;
        st.pending.push(PendingWindow {
            window: late,
            attempt: 1,
        });
        st.pending.push(PendingWindow {
            window: early,
            attempt: 1,
        });
    } else if attempt < opts.max_attempts {
        st.pending.push(PendingWindow {
            window,
            attempt: attempt + 1,
        });
    } else {
        return Err(WalkError::NeverSettled {
            window,
            attempts: attempt,
        });
    }
    Ok(())
}

async fn load_pages<S: WalkStore>(store: &S, keys: &[String]) -> Result<Vec<Contract>, StateError> {
    let mut out = vec![];
    for key in keys {
        out.extend(store.get_page(key).await?);
    }
    Ok(out)
}

/// One contract per id, the last fetched winning, in first-seen order.
fn newest_per_id(contracts: Vec<Contract>) -> Vec<Contract> {
    let mut index: HashMap<ContractId, usize> = HashMap::new();
    let mut out: Vec<Contract> = Vec::with_capacity(contracts.len());
    for c in contracts {
        match index.get(&c.id) {
            Some(&i) => out[i] = c,
            None => {
                index.insert(c.id.clone(), out.len());
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "walk_tests.rs"]
mod tests;
