//! contract-recon keeps SpotDraft contracts and an ERP in agreement.
//!
//! The pipeline, one module per stage:
//! - [`job`]: job files (TOML) parsed and validated into a typed [`job::Job`];
//! - [`http`]: the retry and throttle policy shared by every HTTP client;
//! - [`spotdraft`]: the SpotDraft API client and its models;
//! - [`ingest`]: the complete page walk over time windows, enrichment, the
//!   contract snapshot (Parquet) and the resumable run state (checkpoints);
//! - [`erp`]: ERP extract loading (CSV/Parquet through object_store);
//! - [`reconcile`]: normalization, linking and drift classification, in Polars only;
//! - [`report`]: drift reports (Parquet, CSV, summary JSON, HTML);
//! - [`sandbox`]: local SpotDraft and ERP servers with faults, and the fixture generator;
//! - [`runner`]: runs a job end to end, reading top to bottom like the pipeline;
//! - [`schedule`]: the `schedule` daemon: the calendar (cron across DST), which
//!   jobs are due, and the run history;
//! - [`lease`]: one run per job at a time, through a lease object in the output store;
//! - [`commands`]: what each command of the CLI prints and its exit code;
//! - [`crashpoint`]: named points where crash tests make a run die;
//! - [`error_chain`]: an error and its causes on one line, each said once.

pub mod apply;
pub mod commands;
pub mod crashpoint;
pub mod erp;
pub mod error_chain;
pub mod http;
pub mod ingest;
pub mod job;
pub mod lease;
pub mod reconcile;
pub mod report;
pub mod runner;
pub mod sandbox;
pub mod schedule;
pub mod secret;
pub mod spotdraft;
pub mod storage;
/// The object store that fails on demand, under the name the unit tests use.
#[cfg(test)]
pub(crate) mod test_store {
    pub(crate) use crate::sandbox::faulty_store::{FaultyStore, INJECTED};
}
