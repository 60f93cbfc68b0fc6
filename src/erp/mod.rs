//! ERP side: extract loading, and the correction sinks (`sink`, `files`).

pub mod extract;
pub mod files;
pub mod sink;
