//! Integration tests: one binary, one module per area.

mod apply;
mod backfill;
mod cli;
mod common;
mod create;
mod deploy;
mod erp_events;
mod erp_sink;
mod extract_guard;
mod fixture_rules;
mod fixtures;
mod history;
mod ingest;
mod notify;
mod pipeline;
mod plan_outcomes;
mod reconcile;
mod resume_after_stop;
mod retention;
mod run_history;
mod runs;
mod sandbox_api;
mod schedule;
mod shared_limiter;
mod targeted;
mod webhook_flow;
