//! Integration tests: one binary, one module per area.

mod apply;
mod backfill;
mod cli;
mod common;
mod erp_sink;
mod fixture_rules;
mod fixtures;
mod history;
mod ingest;
mod pipeline;
mod plan_outcomes;
mod reconcile;
mod run_history;
mod runs;
mod sandbox_api;
mod schedule;
mod targeted;
