//! Integration tests: one binary, one module per area.

mod cli;
mod fixtures;
mod ingest;
mod reconcile;
mod sandbox_api;
