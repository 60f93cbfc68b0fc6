//! Local SpotDraft and ERP servers with switchable faults, and the fixture generator.
//!
//! [`Sandbox::start`] serves a [`Dataset`] on one port: SpotDraft's v2.1 API
//! under `/api/` ([`spotdraft`]), the ERP REST API under `/erp/` ([`erp`]) and
//! admin endpoints under `/_sandbox/` (`GET/PUT /_sandbox/faults` with the
//! [`FaultsConfig`] JSON, `GET /_sandbox/stats`, the signed download links, and
//! `POST /_sandbox/webhooks/send`, which delivers a signed webhook: [`webhooks`]).
//! [`FaultyStore`] is the object store counterpart of the servers' faults.

pub mod dataset;
mod demo_change;
pub mod gen;

pub mod erp;
mod erp_writes;
pub mod faults;
pub mod faulty_store;
pub mod filters;
pub mod load;
mod mutations;
pub mod server;
pub mod spotdraft;
mod spotdraft_create;
pub mod store;
pub mod webhooks;

pub use demo_change::{demo_change, DEMO_CHANGE_CONTRACT};
pub use faults::{
    ErpFaults, FaultCounts, FaultsConfig, FaultsHandle, HttpFaults, PageShift, SpotDraftFaults,
};
pub use faulty_store::FaultyStore;
pub use load::Dataset;
pub use server::{Sandbox, SandboxConfig, SandboxCredentials, SandboxError};
pub use store::{
    default_templates, Attachment, Counters, ErpWrite, Mutation, MutationKind, StateHandle,
    SupportedDocument, Template,
};
