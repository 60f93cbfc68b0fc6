//! Run feedback: a progress bar on a terminal, `tracing` events otherwise.
//!
//! Enrichment shows contracts done and to do, the achieved rate, and an ETA
//! computed from the requests still planned and the configured requests/s
//! (the limiter's rate, which is what bounds the run). A backfill shows its
//! windows done and an ETA from the pages left at that rate.

use super::backfill::BackfillState;
use super::walk::PageEvent;
use super::IngestSettings;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

/// Shows walk progress: pages, contracts, requests/s, ETA.
pub struct Feedback {
    bar: Option<ProgressBar>,
    started: Instant,
    pages: u64,
    enriching: bool,
}

/// Enrichment progress.
#[derive(Debug, Clone)]
pub struct EnrichEvent {
    /// Contracts enriched (a resumed checkpoint's included).
    pub done: usize,
    /// Contracts to enrich in this run.
    pub total: usize,
    /// Requests still planned (one per metadata fetch, one per document).
    pub requests_left: u64,
    /// The configured workspace rate.
    pub requests_per_second: u32,
    /// When this call started enriching.
    pub started: Instant,
    /// Contracts done when this call started (from the checkpoint).
    pub done_at_start: usize,
}

impl EnrichEvent {
    /// Contracts per second achieved by this call.
    pub fn rate_per_s(&self) -> f64 {
        (self.done - self.done_at_start) as f64 / self.started.elapsed().as_secs_f64().max(1e-3)
    }

    /// Seconds left at the configured rate.
    pub fn eta_secs(&self) -> u64 {
        self.requests_left
            .div_ceil(u64::from(self.requests_per_second.max(1)))
    }
}

/// `1h02m03s`.
pub fn hms(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

impl Feedback {
    /// A bar when stderr is a terminal, log lines otherwise.
    pub fn new(job: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} contracts {msg} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_prefix(job.to_string());
            bar
        });
        Feedback {
            bar,
            started: Instant::now(),
            pages: 0,
            enriching: false,
        }
    }

    /// Called after each list page.
    pub fn page(&mut self, e: &PageEvent) {
        self.pages += 1;
        let rps = self.pages as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        match &self.bar {
            Some(bar) => {
                bar.set_length(
                    bar.length()
                        .unwrap_or(0)
                        .max(e.window_total)
                        .max(e.contracts_so_far as u64),
                );
                bar.set_position(e.contracts_so_far as u64);
                bar.set_message(format!("page {} | {rps:.1} list req/s", self.pages));
            }
            None => tracing::info!(
                window = %e.window,
                page = e.page,
                window_total = e.window_total,
                contracts = e.contracts_so_far,
                list_requests_per_s = format!("{rps:.2}"),
                "contract page fetched"
            ),
        }
    }

    /// Called for enrichment progress (metadata values, documents): at the
    /// start and after each contract.
    pub fn enrich(&mut self, e: &EnrichEvent) {
        let (rate, eta) = (e.rate_per_s(), e.eta_secs());
        match &self.bar {
            Some(bar) => {
                if !self.enriching {
                    self.enriching = true;
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{prefix} [{bar:30}] {pos}/{len} enriched {msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                }
                bar.set_length(e.total as u64);
                bar.set_position(e.done as u64);
                bar.set_message(format!("| {rate:.1} contracts/s | ETA {}", hms(eta)));
            }
            None if e.done == e.done_at_start
                || e.done.is_multiple_of(100)
                || e.done == e.total =>
            {
                tracing::info!(
                    done = e.done,
                    total = e.total,
                    contracts_per_s = format!("{rate:.2}"),
                    requests_left = e.requests_left,
                    eta = %hms(eta),
                    "enriching contracts (metadata values, documents)"
                )
            }
            None => {}
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Seconds left at `requests_per_second`: the pages left of the window
/// under way plus, for each window not started, the average pages of the
/// windows done (one page when none is done yet).
pub fn backfill_eta_secs(
    windows_left: u64,
    pages_done: u64,
    windows_done: u64,
    current_pages_left: u64,
    requests_per_second: u32,
) -> u64 {
    let per_window = if windows_done == 0 {
        1
    } else {
        pages_done.div_ceil(windows_done).max(1)
    };
    let pages = current_pages_left + windows_left * per_window;
    pages.div_ceil(u64::from(requests_per_second.max(1)))
}

/// A bar over the windows (a terminal), log lines otherwise.
pub(crate) struct BackfillFeedback {
    bar: Option<ProgressBar>,
    windows: u64,
    done: u64,
    pages_done: u64,
    rps: u32,
    page_size: u64,
}

impl BackfillFeedback {
    pub(crate) fn new(job: &str, state: &BackfillState, settings: &IngestSettings) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(state.windows.len() as u64);
            let style = ProgressStyle::with_template(
                "{prefix} backfill [{bar:30}] {pos}/{len} windows {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_prefix(job.to_string());
            bar.set_position(state.done as u64);
            bar
        });
        BackfillFeedback {
            bar,
            windows: state.windows.len() as u64,
            done: state.done as u64,
            pages_done: state.pages_done,
            rps: settings.requests_per_second,
            page_size: u64::from(settings.page_size.max(1)),
        }
    }

    pub(crate) fn page(&mut self, e: &PageEvent) {
        let window_pages = e.window_total.div_ceil(self.page_size.max(1));
        let left_here = window_pages.saturating_sub(u64::from(e.page));
        let windows_left = self.windows.saturating_sub(self.done + 1);
        let eta = backfill_eta_secs(
            windows_left,
            self.pages_done,
            self.done,
            left_here,
            self.rps,
        );
        let msg = format!("| {} page {} | ETA {}", e.window, e.page, hms(eta));
        match &self.bar {
            Some(bar) => bar.set_message(msg),
            None => {
                tracing::info!(window = %e.window, page = e.page, window_total = e.window_total, eta = %hms(eta), "backfill page fetched")
            }
        }
    }

    pub(crate) fn window_done(&mut self, state: &BackfillState) {
        self.done = state.done as u64;
        self.pages_done = state.pages_done;
        let windows_left = self.windows.saturating_sub(self.done);
        let eta = backfill_eta_secs(windows_left, self.pages_done, self.done, 0, self.rps);
        match &self.bar {
            Some(bar) => {
                bar.set_position(self.done);
                bar.set_message(format!("| ETA {}", hms(eta)));
            }
            None => {
                tracing::info!(done = self.done, windows = self.windows, eta = %hms(eta), "backfill window walked")
            }
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_comes_from_the_configured_rate() {
        let e = EnrichEvent {
            done: 10,
            total: 110,
            requests_left: 150,
            requests_per_second: 10,
            started: Instant::now(),
            done_at_start: 0,
        };
        assert_eq!(e.eta_secs(), 15);
        assert_eq!(hms(3723), "1h02m03s");
        assert_eq!(hms(63), "1m03s");
        assert_eq!(hms(9), "9s");
        assert!(e.rate_per_s() > 0.0);
    }
}
