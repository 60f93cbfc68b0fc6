//! SpotDraft API: models, client, complete page walk.

pub mod client;
#[cfg(test)]
pub(crate) mod fake;
pub mod model;
pub mod walk;
pub mod window;

pub use client::{ClientConfig, FetchError, ListQuery, RequestCounts, SpotDraftClient};
