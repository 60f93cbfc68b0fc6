//! Sandbox state: contracts in list order, documents, ERP records, the ERP
//! write log, page-shift mutations and request counters.

use crate::sandbox::dataset::{ErpRecord, FixtureContract};
use crate::spotdraft::model::{ContractId, KeyPointer};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// Request counters, readable through [`StateHandle::counters`] and `GET /_sandbox/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Every request that reached the SpotDraft side (any status).
    pub spotdraft_requests: u64,
    /// Contract list requests answered by the list handler.
    pub list_requests: u64,
    /// Metadata value (`key_pointers`) requests that passed auth and faults.
    pub key_pointers_requests: u64,
    /// Document (`download`) requests that passed auth and faults.
    pub document_requests: u64,
    /// SpotDraft requests answered 401.
    pub unauthorized: u64,
    /// SpotDraft requests answered 429 by the rate limiter.
    pub rate_limited: u64,
    /// Requests (both APIs) answered by an injected fault (429 burst, 5xx,
    /// malformed or truncated JSON, a contract vanished before enrichment).
    pub faults_injected: u64,
    /// Every request that reached the ERP side (any status).
    pub erp_requests: u64,
    /// ERP requests answered 429 by `erp.rate_limit_per_sec`.
    #[serde(default)]
    pub erp_rate_limited: u64,
    /// Contracts created through `POST contracts/` (committed, whatever was answered).
    #[serde(default)]
    pub contracts_created: u64,
    /// Supporting documents stored through `supported_documents`.
    #[serde(default)]
    pub supported_documents_stored: u64,
}

/// A supporting document stored on a contract (`supported_documents`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportedDocument {
    /// Its id.
    pub id: u64,
    /// `name` as sent.
    pub name: String,
    /// `file_name` as sent.
    pub file_name: String,
    /// SHA-256 (hex) of the decoded bytes.
    pub sha256: String,
    /// Size of the decoded bytes.
    pub size: u64,
}

/// A contract template the sandbox creates contracts from: its id, the
/// contract type it makes, and its fields (`variable`, `type`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// Template id (`contract_template_id`).
    pub id: i64,
    /// Template and contract type name.
    pub name: String,
    /// Contract type of the contracts it makes.
    pub contract_type_id: i64,
    /// `(variable, type)` of each field, types as `TemplateMetaDataResponseV2` names them.
    pub fields: Vec<(String, String)>,
}

/// The sandbox's templates: 1204 (a purchase agreement) and 1205 (a master services agreement).
pub fn default_templates() -> Vec<Template> {
    let f = |v: &str, t: &str| (v.to_string(), t.to_string());
    vec![
        Template {
            id: 1204,
            name: "Purchase Agreement".into(),
            contract_type_id: 1,
            fields: vec![
                f("vendor_name", "string"),
                f("po_number", "string"),
                f("agreement_date", "date"),
                f("contract_value", "float"),
                f("quantity", "int"),
            ],
        },
        Template {
            id: 1205,
            name: "Master Services Agreement".into(),
            contract_type_id: 2,
            fields: vec![
                f("vendor_name", "string"),
                f("po_number", "string"),
                f("agreement_date", "date"),
                f("contract_value", "float"),
            ],
        },
    ]
}

/// Kind of a page-shift mutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MutationKind {
    /// A new contract was created (created = last_updated_on = now).
    Create,
    /// A contract's status changed and its last_updated_on moved to now.
    Update,
    /// A contract was deleted.
    Delete,
}

/// One page-shift mutation, recorded so tests can compute the expected final set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mutation {
    /// What happened.
    pub kind: MutationKind,
    /// Composite id of the contract concerned.
    pub contract_id: String,
    /// When, ISO 8601 UTC.
    pub at: String,
}

/// One ERP write attempt (PATCH/POST under `/erp/`), whatever its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpWrite {
    /// When the answer was sent, ISO 8601 UTC.
    pub at: String,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// `Idempotency-Key` header, when sent.
    pub idempotency_key: Option<String>,
    /// True when this attempt changed ERP state (false for replays, rejections and faults).
    pub applied: bool,
    /// HTTP status answered.
    pub status: u16,
}

/// An attachment stored on an ERP record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// File name sent by the client.
    pub file_name: String,
    /// SHA-256 (hex, lowercase) of the bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// A stored answer to an idempotent write: replayed for a repeated key.
#[derive(Debug, Clone)]
pub(crate) struct StoredResponse {
    pub fingerprint: String,
    pub status: u16,
    pub body: serde_json::Value,
}

/// A signed download link.
#[derive(Debug, Clone)]
pub(crate) struct SignedLink {
    pub document: String,
    pub expires: tokio::time::Instant,
}

/// List-order key: `last_updated_on` descending, then id number, then id text.
type OrderKey = (Reverse<i64>, i64, String);

/// Everything the servers mutate, behind one lock (never held across an await).
#[derive(Debug, Default)]
pub(crate) struct State {
    contracts: BTreeMap<String, FixtureContract>,
    order: BTreeSet<OrderKey>,
    pub documents: BTreeMap<String, Bytes>,
    pub erp: BTreeMap<String, ErpRecord>,
    pub attachments: BTreeMap<String, Vec<Attachment>>,
    pub writes: Vec<ErpWrite>,
    pub idempotency: HashMap<String, StoredResponse>,
    pub mutations: Vec<Mutation>,
    pub counters: Counters,
    pub links: HashMap<String, SignedLink>,
    /// Bumped by every change to the set or the order of contracts.
    version: u64,
    /// Ids of the contracts a list selection matches, in list order, and the
    /// `version` they were computed at: the pages of one listing are slices
    /// of it, so a page costs the same in a workspace of any size.
    listings: HashMap<String, (u64, Arc<Vec<String>>)>,
    pub templates: BTreeMap<i64, Template>,
    pub supported_documents: BTreeMap<String, Vec<SupportedDocument>>,
}

/// Listings kept at most (each walk window is one).
const LISTINGS_KEPT: usize = 32;

/// Current time as the API writes it (ISO 8601 UTC, milliseconds).
pub fn now_iso() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses an ISO 8601 / RFC 3339 instant (`Z` or offset) to UTC.
pub fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// Millisecond instant a contract sorts by: `last_updated_on`, else `created`.
fn updated_millis(c: &FixtureContract) -> i64 {
    let text = c
        .contract
        .last_updated_on
        .as_deref()
        .unwrap_or(&c.contract.created);
    parse_instant(text)
        .map(|d| d.timestamp_millis())
        .unwrap_or(0)
}

fn order_key(c: &FixtureContract) -> OrderKey {
    let id = c.contract.id.composite().to_string();
    (
        Reverse(updated_millis(c)),
        c.contract.id.number().unwrap_or(i64::MAX),
        id,
    )
}

impl State {
    /// Inserts or replaces a contract, keeping the list order index in step.
    pub fn put_contract(&mut self, c: FixtureContract) {
        let id = c.contract.id.composite().to_string();
        if let Some(old) = self.contracts.remove(&id) {
            self.order.remove(&order_key(&old));
        }
        self.version += 1;
        self.order.insert(order_key(&c));
        self.contracts.insert(id, c);
    }

    /// Removes a contract by composite id.
    pub fn remove_contract(&mut self, id: &str) -> Option<FixtureContract> {
        let old = self.contracts.remove(id)?;
        self.version += 1;
        self.order.remove(&order_key(&old));
        Some(old)
    }

    /// A contract by composite id.
    pub fn contract(&self, id: &str) -> Option<&FixtureContract> {
        self.contracts.get(id)
    }

    /// Resolves an id as a client may send it: composite (`T-1`) or integer (`1`,
    /// matching the one contract with that number).
    pub fn resolve_id(&self, raw: &str) -> Option<String> {
        if self.contracts.contains_key(raw) {
            return Some(raw.to_string());
        }
        let n: i64 = raw.parse().ok()?;
        let mut hits = self
            .contracts
            .keys()
            .filter(|k| ContractId::new(k.as_str()).number() == Some(n));
        let first = hits.next()?;
        hits.next().is_none().then(|| first.clone())
    }

    /// Ids of the contracts that `selection` (a list query without its page)
    /// matches, in list order: computed once per selection and change of the
    /// contracts, then reused by every page.
    pub fn listing(
        &mut self,
        selection: &str,
        matches: impl Fn(&FixtureContract) -> bool,
    ) -> Arc<Vec<String>> {
        if let Some((version, ids)) = self.listings.get(selection) {
            if *version == self.version {
                return ids.clone();
            }
        }
        let ids: Arc<Vec<String>> = Arc::new(
            self.ordered()
                .filter(|c| matches(c))
                .map(|c| c.contract.id.composite().to_string())
                .collect(),
        );
        if self.listings.len() >= LISTINGS_KEPT {
            self.listings.retain(|_, (v, _)| *v == self.version);
            if self.listings.len() >= LISTINGS_KEPT {
                self.listings.clear();
            }
        }
        self.listings
            .insert(selection.to_string(), (self.version, ids.clone()));
        ids
    }

    /// Contracts in list order.
    pub fn ordered(&self) -> impl Iterator<Item = &FixtureContract> {
        self.order
            .iter()
            .filter_map(|(_, _, id)| self.contracts.get(id))
    }

    /// Number of contracts.
    pub fn contract_count(&self) -> usize {
        self.contracts.len()
    }

    /// Sets `last_updated_on` to now (moving the contract to the front).
    pub fn touch_contract(&mut self, id: &str) -> bool {
        match self.remove_contract(id) {
            Some(mut c) => {
                c.contract.last_updated_on = Some(now_iso());
                self.put_contract(c);
                true
            }
            None => false,
        }
    }

    /// Largest id number in use (0 when empty).
    pub fn max_contract_number(&self) -> i64 {
        self.contracts
            .values()
            .filter_map(|c| c.contract.id.number())
            .max()
            .unwrap_or(0)
    }
}

/// Shared handle on the sandbox state: inspect and mutate contracts and ERP
/// records, read counters, mutations and the ERP write log. Cheap to clone.
#[derive(Clone, Default)]
pub struct StateHandle(Arc<Mutex<State>>);

impl StateHandle {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// All contracts in list order (`last_updated_on` descending, then id).
    pub fn contracts(&self) -> Vec<FixtureContract> {
        self.lock().ordered().cloned().collect()
    }

    /// One contract by composite id.
    pub fn contract(&self, id: &str) -> Option<FixtureContract> {
        self.lock().contract(id).cloned()
    }

    /// Inserts or replaces a contract (keyed by its composite id).
    pub fn upsert_contract(&self, contract: FixtureContract) {
        self.lock().put_contract(contract);
    }

    /// Removes a contract; returns it when it existed.
    pub fn remove_contract(&self, id: &str) -> Option<FixtureContract> {
        self.lock().remove_contract(id)
    }

    /// Edits one metadata value of a contract as SpotDraft may without touching
    /// the list: the list item and `last_updated_on` stay as they are. Adds the
    /// field when the contract has none of that name; false when the contract
    /// is unknown.
    pub fn set_key_pointer_value(
        &self,
        id: &str,
        field_name: &str,
        value: serde_json::Value,
    ) -> bool {
        let mut st = self.lock();
        let Some(c) = st.contracts.get_mut(id) else {
            return false;
        };
        match c
            .key_pointers
            .iter_mut()
            .find(|k| k.field_name == field_name)
        {
            Some(k) => k.value = value,
            None => {
                let next = c.key_pointers.iter().map(|k| k.id).max().unwrap_or(0) + 1;
                c.key_pointers.push(KeyPointer {
                    id: next,
                    value,
                    label: field_name.to_string(),
                    field_name: field_name.to_string(),
                    data_type: "text".into(),
                    format_option: serde_json::json!({}),
                });
            }
        }
        true
    }

    /// Sets a contract's `last_updated_on` to now; false when unknown.
    pub fn touch_contract(&self, id: &str) -> bool {
        self.lock().touch_contract(id)
    }

    /// All ERP records, by id.
    pub fn erp_records(&self) -> Vec<ErpRecord> {
        self.lock().erp.values().cloned().collect()
    }

    /// Inserts or replaces an ERP record (keyed by its id).
    pub fn upsert_erp_record(&self, record: ErpRecord) {
        self.lock().erp.insert(record.erp_record_id.clone(), record);
    }

    /// One ERP record.
    pub fn erp_record(&self, id: &str) -> Option<ErpRecord> {
        self.lock().erp.get(id).cloned()
    }

    /// Attachments stored on an ERP record, oldest first.
    pub fn attachments(&self, erp_record_id: &str) -> Vec<Attachment> {
        self.lock()
            .attachments
            .get(erp_record_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Every ERP write attempt so far, in order.
    pub fn erp_writes(&self) -> Vec<ErpWrite> {
        self.lock().writes.clone()
    }

    /// Page-shift mutations performed so far, in order.
    pub fn mutations(&self) -> Vec<Mutation> {
        self.lock().mutations.clone()
    }

    /// Request counters.
    pub fn counters(&self) -> Counters {
        self.lock().counters.clone()
    }

    /// Adds or replaces a template (the sandbox starts with [`default_templates`]).
    pub fn put_template(&self, template: Template) {
        self.lock().templates.insert(template.id, template);
    }

    /// The supporting documents stored on a contract, oldest first.
    pub fn supported_documents(&self, contract_id: &str) -> Vec<SupportedDocument> {
        self.lock()
            .supported_documents
            .get(contract_id)
            .cloned()
            .unwrap_or_default()
    }

    /// The live contracts whose `external_metadata.id` is exactly `erp_id`.
    pub fn contracts_with_external_id(&self, erp_id: &str) -> Vec<FixtureContract> {
        self.lock()
            .ordered()
            .filter(|c| c.contract.external_metadata.id.as_deref() == Some(erp_id))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spotdraft::model::Contract;

    fn contract(id: &str, updated: &str) -> FixtureContract {
        let json = serde_json::json!({"id": id, "created": "2026-01-01T00:00:00Z", "last_updated_on": updated});
        let contract: Contract = serde_json::from_value(json).unwrap();
        FixtureContract {
            contract,
            key_pointers: vec![],
            document: None,
        }
    }

    #[test]
    fn a_listing_is_reused_by_its_pages_and_recomputed_after_a_change() {
        let mut s = State::default();
        for i in 1..=5 {
            s.put_contract(contract(
                &format!("T-{i}"),
                &format!("2026-01-0{i}T00:00:00Z"),
            ));
        }
        let calls = std::cell::Cell::new(0);
        let odd = |c: &FixtureContract| {
            calls.set(calls.get() + 1);
            c.contract.id.number().unwrap_or(0) % 2 == 1
        };
        let first = s.listing("filter__x=1", odd);
        assert_eq!(*first, ["T-5", "T-3", "T-1"]);
        let again = s.listing("filter__x=1", odd);
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(
            calls.get(),
            5,
            "the second page filtered the contracts again"
        );
        assert!(s.touch_contract("T-1"));
        assert_eq!(*s.listing("filter__x=1", odd), ["T-1", "T-5", "T-3"]);
        s.remove_contract("T-5");
        assert_eq!(*s.listing("filter__x=1", odd), ["T-1", "T-3"]);
        assert_eq!(*s.listing("other", |_| true), ["T-1", "T-4", "T-3", "T-2"]);
    }

    #[test]
    fn order_is_updated_desc_then_id_number_and_follows_touches() {
        let mut s = State::default();
        s.put_contract(contract("T-10", "2026-01-02T00:00:00Z"));
        s.put_contract(contract("T-2", "2026-01-02T00:00:00Z"));
        s.put_contract(contract("T-3", "2026-01-03T00:00:00+01:00"));
        let ids = |s: &State| {
            s.ordered()
                .map(|c| c.contract.id.composite().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&s), ["T-3", "T-2", "T-10"]);
        assert!(s.touch_contract("T-10"));
        assert_eq!(ids(&s), ["T-10", "T-3", "T-2"]);
        assert!(s.remove_contract("T-3").is_some());
        assert_eq!(ids(&s), ["T-10", "T-2"]);
        assert_eq!(s.contract_count(), 2);
    }

    #[test]
    fn integer_ids_resolve_only_when_unambiguous() {
        let mut s = State::default();
        s.put_contract(contract("T-1", "2026-01-01T00:00:00Z"));
        s.put_contract(contract("T-2", "2026-01-01T00:00:00Z"));
        s.put_contract(contract("H-2", "2026-01-01T00:00:00Z"));
        assert_eq!(s.resolve_id("1").as_deref(), Some("T-1"));
        assert_eq!(s.resolve_id("H-2").as_deref(), Some("H-2"));
        assert_eq!(s.resolve_id("2"), None);
        assert_eq!(s.resolve_id("9"), None);
    }
}
