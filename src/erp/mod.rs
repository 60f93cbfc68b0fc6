//! ERP side: extract loading.

pub mod extract;
pub mod sink;
