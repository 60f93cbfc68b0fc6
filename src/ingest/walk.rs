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

/// Spilled pages with consecutive keys: `{prefix}-{first:06}` and the
/// `count - 1` after it (a window attempt's pages are spilled in a row).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageSpan {
    /// Sequence number of the first page.
    pub first: u64,
    /// Pages in the span.
    pub count: u64,
}

impl PageSpan {
    /// The spill keys of the span's pages, in order.
    pub fn keys<'a>(&self, prefix: &'a str) -> impl Iterator<Item = String> + 'a {
        (self.first..self.first + self.count).map(move |n| page_key(prefix, n))
    }

    /// The sequence number after the span's last page.
    fn end(&self) -> u64 {
        self.first + self.count
    }
}

/// The spill key of page `n` of a walk whose keys start with `prefix`.
pub fn page_key(prefix: &str, n: u64) -> String {
    format!("{prefix}-{n:06}")
}

/// The window being walked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurrentWindow {
    /// The range.
    pub window: Window,
    /// Attempt number (from 1).
    pub attempt: u32,
    /// `total_results` of this attempt's first page (a page reporting
    /// another total abandons the attempt at once).
    #[serde(default)]
    pub total: Option<u64>,
    /// The next page to fetch (from 1).
    pub next_page: u32,
    /// The pages fetched in this attempt.
    #[serde(default)]
    pub span: PageSpan,
    /// Page totals as states written before spans kept them (read only).
    #[serde(default, rename = "page_totals", skip_serializing)]
    legacy_totals: Vec<u64>,
    /// Spill keys as states written before spans kept them (read only).
    #[serde(default, rename = "pages", skip_serializing)]
    legacy_pages: Vec<String>,
}

/// Everything a walk needs to resume: kept in the run state. Its size does
/// not grow with the pages walked: pages are kept as spans of keys, one per
/// accepted window attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalkState {
    /// Windows still to walk (a stack: the last is next).
    pub pending: Vec<PendingWindow>,
    /// The window under way.
    pub current: Option<CurrentWindow>,
    /// The pages of accepted windows.
    #[serde(default)]
    pub accepted: Vec<PageSpan>,
    /// Spill keys as states written before spans kept them (read only).
    #[serde(default, rename = "accepted_pages", skip_serializing)]
    legacy_accepted: Vec<String>,
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
    /// The spill keys of accepted pages, in order.
    pub fn accepted_keys(&self) -> impl Iterator<Item = String> + '_ {
        self.accepted
            .iter()
            .flat_map(|span| span.keys(&self.key_prefix))
    }

    /// Turns the key lists of a state written before spans into spans.
    pub(crate) fn upgrade(&mut self) -> Result<(), StateError> {
        let prefix = format!("{}-", self.key_prefix);
        let number = |key: &str| {
            key.strip_prefix(&prefix)
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| {
                    StateError::Invalid(format!(
                        "spill key {key:?} does not start with {prefix:?} and a number"
                    ))
                })
        };
        for key in std::mem::take(&mut self.legacy_accepted) {
            push_page(&mut self.accepted, number(&key)?);
        }
        if let Some(cur) = &mut self.current {
            if !cur.legacy_pages.is_empty() || !cur.legacy_totals.is_empty() {
                let mut spans = vec![];
                for key in std::mem::take(&mut cur.legacy_pages) {
                    push_page(&mut spans, number(&key)?);
                }
                let consistent = spans.len() <= 1
                    && cur
                        .legacy_totals
                        .iter()
                        .all(|t| Some(t) == cur.legacy_totals.first());
                cur.total = cur.legacy_totals.first().copied();
                cur.legacy_totals.clear();
                match (consistent, spans.first()) {
                    (true, Some(span)) => cur.span = *span,
                    (true, None) => {
                        cur.span = PageSpan {
                            first: self.next_key,
                            count: 0,
                        }
                    }
                    // Not a run of pages: walk the attempt again from its first page.
                    (false, _) => {
                        cur.total = None;
                        cur.next_page = 1;
                        cur.span = PageSpan {
                            first: self.next_key,
                            count: 0,
                        };
                    }
                }
            }
        }
        Ok(())
    }

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
            accepted: vec![],
            legacy_accepted: vec![],
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
    st.upgrade()?;
    let mut accepted = load_pages(store, st.accepted_keys()).await?;
    let mut current = match &st.current {
        Some(cur) => load_pages(store, cur.span.keys(&st.key_prefix)).await?,
        None => vec![],
    };
    // The ids of the current attempt, kept with it (one page's work per page).
    let mut seen: HashSet<ContractId> = current.iter().map(|c| c.id.clone()).collect();
    let mut requests = 0u64;
    store.save_progress(st).await?;
    loop {
        if st.current.is_none() {
            let Some(next) = st.pending.pop() else { break };
            st.current = Some(CurrentWindow {
                window: next.window,
                attempt: next.attempt,
                total: None,
                next_page: 1,
                span: PageSpan {
                    first: st.next_key,
                    count: 0,
                },
                legacy_totals: vec![],
                legacy_pages: vec![],
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
        let expected = *cur.total.get_or_insert(resp.total_results);
        let mut page_ids = HashSet::with_capacity(resp.results.len());
        let repeated = !resp
            .results
            .iter()
            .all(|c| !seen.contains(&c.id) && page_ids.insert(&c.id));
        if resp.total_results != expected || repeated {
            let mut observed: Vec<_> = current
                .iter()
                .chain(&resp.results)
                .filter_map(|c| window.time_of(c))
                .collect();
            observed.sort_unstable();
            current.clear();
            seen.clear();
            abandon(st, opts, &observed)?;
            store.save_progress(st).await?;
            continue;
        }
        drop(page_ids);
        let key = page_key(&st.key_prefix, st.next_key);
        st.next_key += 1;
        store.put_page(&key, &resp.results).await?;
        let short_page = resp.results.len() < opts.page_size as usize;
        seen.extend(resp.results.iter().map(|c| c.id.clone()));
        current.extend(resp.results);
        let cur = st.current.as_mut().expect("set above");
        cur.span.count += 1;
        cur.next_page += 1;
        on_page(&PageEvent {
            window,
            page,
            window_total: expected,
            contracts_so_far: accepted.len() + current.len(),
        });
        if short_page || current.len() as u64 >= expected {
            if walk_is_complete(&[expected], current.len()) {
                push_span(&mut st.accepted, cur.span);
                accepted.append(&mut current);
                seen.clear();
                st.current = None;
            } else {
                let observed: Vec<_> = current.iter().filter_map(|c| window.time_of(c)).collect();
                current.clear();
                seen.clear();
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

/// Adds page `n` to `spans`, extending the last span when `n` follows it.
fn push_page(spans: &mut Vec<PageSpan>, n: u64) {
    match spans.last_mut() {
        Some(last) if last.end() == n => last.count += 1,
        _ => spans.push(PageSpan { first: n, count: 1 }),
    }
}

/// Adds `span` to `spans`, merged with the last span when they meet.
fn push_span(spans: &mut Vec<PageSpan>, span: PageSpan) {
    match spans.last_mut() {
        Some(last) if last.end() == span.first => last.count += span.count,
        _ if span.count == 0 => {}
        _ => spans.push(span),
    }
}

async fn load_pages<S: WalkStore>(
    store: &S,
    keys: impl Iterator<Item = String>,
) -> Result<Vec<Contract>, StateError> {
    let mut out = vec![];
    for key in keys {
        out.extend(store.get_page(&key).await?);
    }
    Ok(out)
}

/// One contract per id, the last fetched winning, in first-seen order.
pub(crate) fn newest_per_id(contracts: Vec<Contract>) -> Vec<Contract> {
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
