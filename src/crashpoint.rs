//! Crash points: named places in a run where a test makes the process die at
//! once, as a `kill -9` would, to prove that a run killed there loses nothing
//! and publishes nothing half-written.
//!
//! `CONTRACT_RECON_CRASH_AT=<name>` aborts the process the first time the run
//! reaches `<name>`; `<name>#<n>` the `n`-th time (points reached once per
//! page, file, batch or document). Unset (always, outside tests), a crash
//! point does nothing.
//!
//! Points, in the order a nightly run reaches them:
//! - [`WALK_PAGE`] (`ingest.walk_page`): a page of the walk spilled, its
//!   progress not yet saved (once per page);
//! - `ingest.enriching`: the first batch of 100 enrichment results spilled;
//!   [`ENRICH_RESULT`] (`ingest.enrich_result`): one contract's metadata values
//!   or document fetched, not yet spilled (once per contract);
//! - `ingest.before_snapshot`, then [`SNAPSHOT_WRITTEN`]
//!   (`ingest.snapshot_written`): the snapshot put, the run state not closed;
//! - [`REPORT_STAGING`] (`report.staging`): one report file staged (once per
//!   file), then `report.staged`: every file staged, the manifest (the commit
//!   point) not written;
//! - `report.publishing`: one staged file copied into its dataset (once per
//!   file, in the manifest's order), then `report.before_run_success`,
//!   `report.before_latest` (between the run's `_SUCCESS` and `latest.json`)
//!   and `report.before_cleanup`;
//! - [`BEFORE_WATERMARK`] (`run.before_watermark`): the reports published, the
//!   watermark not moved;
//! - [`CREATE_INTENT`] and [`CREATE_RETURNED`]: right before and right after a
//!   contract create (`[create]`);
//! - `apply.between_batches`: after a batch's journal object (once per batch);
//! - [`DOCUMENT_MID_UPLOAD`] (`apply.document_mid_upload`): part of an executed
//!   document sent to the ERP, the request body not finished.
//!
//! Partial runs add [`PARTIAL_BEFORE_SNAPSHOT`] (`partial.before_snapshot`: a
//! targeted or backfill run's contracts looked up and enriched, its snapshot
//! upsert not written), [`BACKFILL_WINDOW_PAGE`] (`backfill.window_page`: a page
//! of a backfill window spilled, once per page) and `backfill.between_windows`
//! (a backfill window's progress saved, the next window not started:
//! [`crate::ingest::backfill::CRASH_BETWEEN_WINDOWS`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable naming the crash point to die at.
pub const CRASH_AT_ENV: &str = "CONTRACT_RECON_CRASH_AT";

/// A page of the nightly walk spilled, its progress not yet saved.
pub const WALK_PAGE: &str = "ingest.walk_page";

/// One contract's enrichment fetched, not yet spilled.
pub const ENRICH_RESULT: &str = "ingest.enrich_result";

/// The snapshot written, the run's state not yet closed.
pub const SNAPSHOT_WRITTEN: &str = "ingest.snapshot_written";

/// One report file staged, before the manifest that commits the run.
pub const REPORT_STAGING: &str = "report.staging";

/// The reports published, the watermark not yet moved.
pub const BEFORE_WATERMARK: &str = "run.before_watermark";

/// After the first batch of creates journaled its intent, before any is sent.
pub const CREATE_INTENT: &str = "apply.create.intent";

/// After a create answered (or was adopted), before its result is journaled.
pub const CREATE_RETURNED: &str = "apply.create.returned";

/// Part of an executed document sent to the ERP, its request body unfinished.
pub const DOCUMENT_MID_UPLOAD: &str = "apply.document_mid_upload";

/// A partial run's contracts looked up and enriched, the snapshot not written.
pub const PARTIAL_BEFORE_SNAPSHOT: &str = "partial.before_snapshot";

/// A page of a backfill window spilled, its progress not yet saved.
pub const BACKFILL_WINDOW_PAGE: &str = "backfill.window_page";

/// The crash point a process was started with, and how often it was reached.
struct Armed {
    point: String,
    nth: u64,
    reached: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let value = std::env::var(CRASH_AT_ENV).ok()?;
            let (point, nth) = parse(&value);
            Some(Armed {
                point,
                nth,
                reached: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Splits `<name>` or `<name>#<n>` into the point's name and the time it is
/// reached to die at (1 without a count; a count that is not a positive
/// number is part of the name, which then matches no point).
fn parse(value: &str) -> (String, u64) {
    match value.rsplit_once('#') {
        Some((point, n)) => match n.parse::<u64>() {
            Ok(n) if n > 0 => (point.to_string(), n),
            _ => (value.to_string(), 1),
        },
        None => (value.to_string(), 1),
    }
}

/// Whether [`CRASH_AT_ENV`] names `point` (for a point that must first let
/// something happen, such as bytes reach the network).
pub fn is_armed(point: &str) -> bool {
    armed().is_some_and(|a| a.point == point)
}

/// Aborts the process when [`CRASH_AT_ENV`] names `point` and this is the
/// time it asks for.
pub fn hit(point: &str) {
    let Some(armed) = armed() else { return };
    if armed.point != point {
        return;
    }
    let reached = armed.reached.fetch_add(1, Ordering::SeqCst) + 1;
    if reached == armed.nth {
        eprintln!(
            "crash point {point} (reached {reached} times): aborting as asked by {CRASH_AT_ENV}"
        );
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn a_point_dies_the_first_time_unless_a_count_says_otherwise() {
        assert_eq!(parse("report.staged"), ("report.staged".into(), 1));
        assert_eq!(
            parse("report.publishing#3"),
            ("report.publishing".into(), 3)
        );
        assert_eq!(
            parse("report.publishing#0"),
            ("report.publishing#0".into(), 1)
        );
        assert_eq!(
            parse("report.publishing#x"),
            ("report.publishing#x".into(), 1)
        );
    }
}
