//! Existence checks: is a contract (still) there? v2.1 has no single-contract
//! GET, so these are list requests filtered on `contract_id` (API notes), with
//! no status filter: a contract that merely changed status is still found.

use super::{FetchError, ListQuery, SpotDraftClient};
use crate::spotdraft::model::{Contract, ContractId};
use std::collections::HashSet;

/// Ids per `filter__contract_id[$in]` request; also its page size.
pub const IDS_PER_REQUEST: usize = 100;

impl SpotDraftClient {
    /// One list request, `filter__contract_id[$eq]=<id>&limit=1`: true when a
    /// contract with this id exists, in any status.
    pub async fn contract_exists(&self, id: &ContractId) -> Result<bool, FetchError> {
        let q = ListQuery {
            page: 1,
            limit: 1,
            contract_ids: vec![id.composite().to_string()],
            ..ListQuery::default()
        };
        Ok(self.list_contracts(&q).await?.total_results > 0)
    }

    /// The list items of the contracts among `ids` that exist, in any status,
    /// one per id: `filter__contract_id[$in]` requests of up to 100 ids with
    /// `limit=100` (a second page only when integer ids match more than 100
    /// contracts). Ids are composite (`T-123`, `H-123`) or integers (`123`,
    /// which matches the contracts with that number).
    pub async fn existing_contract_items(
        &self,
        ids: &[ContractId],
    ) -> Result<Vec<Contract>, FetchError> {
        let mut wanted: Vec<String> = ids
            .iter()
            .map(|i| i.composite().to_string())
            .filter(|i| !i.is_empty())
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut seen = HashSet::new();
        let mut out = vec![];
        for chunk in wanted.chunks(IDS_PER_REQUEST) {
            let mut page = 1u32;
            loop {
                let q = ListQuery {
                    page,
                    limit: IDS_PER_REQUEST as u32,
                    contract_ids: chunk.to_vec(),
                    ..ListQuery::default()
                };
                let resp = self.list_contracts(&q).await?;
                let got = resp.results.len();
                for c in resp.results {
                    if seen.insert(c.id.clone()) {
                        out.push(c);
                    }
                }
                let fetched = u64::from(page) * IDS_PER_REQUEST as u64;
                if got < IDS_PER_REQUEST || fetched >= resp.total_results {
                    break;
                }
                page += 1;
            }
        }
        Ok(out)
    }

    /// The composite ids (as the list sends them: `T-123`) of the contracts
    /// among `ids` that exist, in any status; see
    /// [`SpotDraftClient::existing_contract_items`] for the requests made. An
    /// integer id found comes back in its composite form: match it with
    /// [`ContractId::number`].
    pub async fn existing_contracts(
        &self,
        ids: &[ContractId],
    ) -> Result<HashSet<String>, FetchError> {
        Ok(self
            .existing_contract_items(ids)
            .await?
            .into_iter()
            .map(|c| c.id.composite().to_string())
            .collect())
    }
}
