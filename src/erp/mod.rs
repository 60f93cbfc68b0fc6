//! ERP side: extract loading and correction sinks.

pub mod extract;
pub mod rest;
pub mod sink;
