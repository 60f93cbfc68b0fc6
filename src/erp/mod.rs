//! ERP side: extract loading.

pub mod extract;
