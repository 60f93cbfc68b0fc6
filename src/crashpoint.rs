//! Crash points: named places in a run where a test makes the process die at
//! once, as a `kill -9` would, to prove that a run killed there loses nothing
//! and publishes nothing half-written.
//!
//! `CONTRACT_RECON_CRASH_AT=<name>` aborts the process when the run reaches
//! `<name>`. Unset (always, outside tests), a crash point does nothing.
//!
//! Points: `ingest.enriching`, `ingest.before_snapshot`, `report.staged`,
//! `report.publishing`, `report.before_run_success`, `report.before_latest`,
//! `report.before_cleanup`, `apply.between_batches`, and
//! `backfill.between_windows` (a backfill window's progress saved, the next
//! window not started: [`crate::ingest::backfill::CRASH_BETWEEN_WINDOWS`]).
//! Creating contracts (`[create]`) has two more: [`CREATE_INTENT`] and
//! [`CREATE_RETURNED`].

/// The environment variable naming the crash point to die at.
pub const CRASH_AT_ENV: &str = "CONTRACT_RECON_CRASH_AT";

/// Aborts the process when [`CRASH_AT_ENV`] names `point`.
pub fn hit(point: &str) {
    if std::env::var_os(CRASH_AT_ENV).is_some_and(|v| v == point) {
        eprintln!("crash point {point}: aborting as asked by {CRASH_AT_ENV}");
        std::process::abort();
    }
}

/// After the first batch of creates journaled its intent, before any is sent.
pub const CREATE_INTENT: &str = "apply.create.intent";

/// After a create answered (or was adopted), before its result is journaled.
pub const CREATE_RETURNED: &str = "apply.create.returned";
