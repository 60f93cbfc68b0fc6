//! SpotDraft API: the client and its models. The complete page walk over
//! them is part of the ingest stage ([`crate::ingest::walk`]).

pub mod client;
#[cfg(test)]
pub(crate) mod fake;
pub mod model;

pub use client::{
    merge_external_metadata, ClientConfig, DocumentDownload, FetchError, ListQuery, RequestCounts,
    SpotDraftClient,
};
