//! Changes the sandbox makes to its own contracts while a client works: the
//! page-shift mutations (create, update, delete during a walk) and contracts
//! that vanish between a client's walk and its enrichment. Each is recorded as
//! a [`Mutation`] so tests can compute the expected final set.

use crate::sandbox::dataset::FixtureContract;
use crate::sandbox::server::AppState;
use crate::sandbox::store::{now_iso, Mutation, MutationKind};
use crate::spotdraft::model::{Contract, ContractId, ExternalMetadata, KNOWN_STATUSES};

/// One page-shift mutation: create, update or delete a contract, recorded.
pub(crate) fn perform(s: &AppState, kind: MutationKind) {
    let count = s.store.lock().contract_count();
    let index = s.faults.pick(count);
    let now = now_iso();
    let mut st = s.store.lock();
    let picked = st
        .ordered()
        .nth(index)
        .map(|c| c.contract.id.composite().to_string());
    let contract_id = match (kind, picked) {
        (MutationKind::Create, _) => {
            let n = st.max_contract_number() + 1;
            let id = format!("T-{n}");
            let contract = Contract {
                id: ContractId::new(id.clone()),
                created: now.clone(),
                contract_name: format!("Sandbox contract {id}"),
                contract_link: format!("https://app.spotdraft.com/contracts/v2/{n}"),
                contract_status: "DRAFT".into(),
                created_by: "Sandbox".into(),
                counter_party_name: "Page Shift Ltd".into(),
                contract_type_name: "Standard NDA".into(),
                contract_type_id: Some(1),
                external_metadata: ExternalMetadata::default(),
                reference_id: None,
                last_updated_on: Some(now.clone()),
            };
            st.put_contract(FixtureContract {
                contract,
                key_pointers: Vec::new(),
                document: None,
            });
            id
        }
        (MutationKind::Update, Some(id)) => {
            if let Some(mut c) = st.remove_contract(&id) {
                let pos = KNOWN_STATUSES
                    .iter()
                    .position(|k| *k == c.contract.contract_status);
                c.contract.contract_status =
                    KNOWN_STATUSES[pos.map_or(0, |p| (p + 1) % KNOWN_STATUSES.len())].into();
                c.contract.last_updated_on = Some(now.clone());
                st.put_contract(c);
            }
            id
        }
        (MutationKind::Delete, Some(id)) => {
            st.remove_contract(&id);
            id
        }
        (_, None) => return,
    };
    tracing::debug!(?kind, %contract_id, "page shift mutation");
    st.mutations.push(Mutation {
        kind,
        contract_id,
        at: now,
    });
}

/// The `vanish_before_enrich` fault: when `id` names an existing contract and
/// the fault is armed, deletes the contract (recorded as a `delete` mutation)
/// and returns true; the caller then answers 404.
pub(crate) fn vanish_before_enrich(s: &AppState, id: &str) -> bool {
    let Some(key) = s.store.lock().resolve_id(id) else {
        return false;
    };
    if !s.faults.take_vanish() {
        return false;
    }
    let mut st = s.store.lock();
    if st.remove_contract(&key).is_none() {
        return false;
    }
    st.counters.faults_injected += 1;
    st.mutations.push(Mutation {
        kind: MutationKind::Delete,
        contract_id: key.clone(),
        at: now_iso(),
    });
    tracing::debug!(contract_id = %key, "contract vanished before enrichment");
    true
}
