//! Local SpotDraft and ERP servers with switchable faults, and the fixture generator.

pub mod dataset;
pub mod gen;
