//! ERP side: extract loading, and the correction sinks (`sink`: the interface;
//! `rest`: the ERP REST API; `files`: import files in an object store).

pub mod extract;
pub mod files;
pub mod rest;
pub mod sink;

#[cfg(test)]
mod bad_extract_tests;
