//! Scheduling stage, webhooks: SpotDraft's webhook deliveries verified
//! ([`signature`]), durably queued in the job's output store ([`queue`]) by
//! the endpoint ([`server`]), and drained into small targeted runs
//! ([`consumer`]). ERP events (`POST /webhooks/erp/{job}`, a record id signed
//! with the job's shared secret) go the same way into their own queue and
//! targeted ERP-record runs, which create the records' missing contracts.
//!
//! SpotDraft signs each body (`X-SD-WEBHOOK-CONTENT-HASH`: hex HMAC-SHA512
//! keyed with the base64-decoded key of `GET v2.1/public/webhooks/hmac_key/`)
//! and sends no event id or timestamp: a replayed delivery is accepted and
//! deduplicated by the queue, not rejected.

pub mod consumer;
pub mod queue;
pub mod server;
pub mod signature;

#[cfg(test)]
mod consumer_tests;
#[cfg(test)]
mod erp_tests;
#[cfg(test)]
mod tests;

use crate::runner::TargetHint;
use serde::Deserialize;

/// The part of a delivery's body (SpotDraft's `ContractActivityDomainModel`)
/// the daemon reads; the rest is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Delivery {
    /// The contract's integer id (not the composite `T-123` form).
    pub contract_id: i64,
    /// The event (`CONTRACT_EXECUTED`, `CONTRACT_DELETED`, ...).
    #[serde(default)]
    pub activity: Option<String>,
}

/// An ERP event's body: `{"record_id": "ERP-123", "event": "purchase_request.approved"}`;
/// other fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErpEvent {
    /// The ERP record id, as the extract's `erp_record_id` holds it (a
    /// non-empty string).
    pub record_id: String,
    /// What happened in the ERP (free text, logged and kept in the queue).
    #[serde(default)]
    pub event: Option<String>,
}

impl Delivery {
    /// What the event says of the contract.
    pub fn hint(&self) -> TargetHint {
        hint_of(self.activity.as_deref().unwrap_or(""))
    }
}

/// The targeted run's hint for an event: `CONTRACT_KEY_POINTER_UPDATION`
/// marks the metadata values stale, `CONTRACT_DELETED` the contract deleted,
/// any other event makes the contract looked up again.
pub fn hint_of(activity: &str) -> TargetHint {
    match activity {
        "CONTRACT_KEY_POINTER_UPDATION" => TargetHint::MetadataStale,
        "CONTRACT_DELETED" => TargetHint::Deleted,
        _ => TargetHint::Changed,
    }
}
