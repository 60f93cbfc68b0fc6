//! Reconciliation: normalize keys, link contracts to ERP records, classify drift.

pub mod spec;
