//! Run feedback: a progress bar on a terminal, `tracing` events otherwise.

use super::walk::PageEvent;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

/// Shows walk progress: pages, contracts, requests/s, ETA.
pub struct Feedback {
    bar: Option<ProgressBar>,
    started: Instant,
    pages: u64,
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

    /// Called for enrichment progress (metadata values, documents).
    pub fn enrich(&self, done: usize, of: usize) {
        match &self.bar {
            Some(bar) => bar.set_message(format!("metadata/documents {done}/{of}")),
            None if done.is_multiple_of(100) || done == of => {
                tracing::info!(done, of, "metadata values and documents fetched")
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
