//! SpotDraft API: models, client, complete page walk.

pub mod client;
pub mod model;
pub mod walk;
#[cfg(test)]
pub(crate) mod fake;
pub mod window;

pub use client::{ClientConfig, FetchError, ListQuery, RequestCounts, SpotDraftClient};
