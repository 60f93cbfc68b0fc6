//! Contracts created from ERP records: `POST v2.1/public/contracts/` (which
//! takes no idempotency key), the reverse lookup that makes a create safe to
//! retry (`GET v2.1/public/contracts/by_external_metadata/{id}`, no trailing
//! slash), supporting documents (`POST v2.1/public/supported_documents/{id}/`)
//! and template metadata (`GET v2.1/public/templates/{id}/metadata`).
//!
//! **Never twice.** [`SpotDraftClient::create_contract_once`] looks the ERP id
//! up before the first attempt and before every retry, and adopts a contract
//! that already carries it instead of creating another: a create whose answer
//! was lost (a 502 after the commit, a timeout, a body cut short) is found on
//! the next attempt, or by the next run.

use super::{Call, FetchError, SpotDraftClient};
use crate::http::HttpError;
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// A contract as `by_external_metadata` lists it (`ExternalContractV3`: an
/// integer id in the schema; a composite `T-123` is read too).
#[derive(Debug, Clone, Deserialize)]
pub struct LinkedContract {
    /// Contract id as sent: an integer, or a composite id.
    pub id: Value,
    /// Status.
    #[serde(default)]
    pub contract_status: String,
    /// The contract's `external_metadata`, as sent.
    #[serde(default)]
    pub external_metadata: Option<Value>,
}

/// What [`SpotDraftClient::create_contract_once`] ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// A new contract: its composite id (`T-123`).
    Created(String),
    /// A contract already carried the ERP id (an earlier create whose answer
    /// was lost): its id, composite when known, else the integer.
    Adopted(String),
}

impl CreateOutcome {
    /// The contract's id.
    pub fn contract_id(&self) -> &str {
        match self {
            CreateOutcome::Created(id) | CreateOutcome::Adopted(id) => id,
        }
    }
}

/// The answer to a create (`ExternalCreateContractResponse`), the fields read.
#[derive(Debug, Deserialize)]
struct Created {
    id: Value,
    #[serde(default)]
    contract_id: Option<i64>,
}

impl SpotDraftClient {
    /// `GET v2.1/public/contracts/by_external_metadata/{erp_id}`: the contracts
    /// (at most 50) whose `external_metadata.id` is `erp_id`, matched on the raw
    /// string.
    pub async fn contracts_by_external_metadata(
        &self,
        erp_id: &str,
    ) -> Result<Vec<LinkedContract>, FetchError> {
        let url = self.endpoint(&[
            "v2.1",
            "public",
            "contracts",
            "by_external_metadata",
            erp_id,
        ])?;
        // A bare array; the published example nests it once more, so one
        // level of nesting is read too.
        let parse = |b: &[u8]| {
            let items: Vec<Value> = serde_json::from_slice(b)?;
            let flat: Vec<Value> = items
                .into_iter()
                .flat_map(|v| match v {
                    Value::Array(inner) => inner,
                    other => vec![other],
                })
                .collect();
            serde_json::from_value::<Vec<LinkedContract>>(Value::Array(flat))
        };
        self.call_parsed(Call::new(Method::GET, url, &self.counters.list), parse)
            .await
    }

    /// The composite id (`T-123`) of an integer id found by
    /// [`SpotDraftClient::contracts_by_external_metadata`], through one list
    /// request filtered on it; the integer as text when no single contract has it.
    async fn composite_of(&self, number: i64) -> Result<String, FetchError> {
        let ids = [crate::spotdraft::model::ContractId::new(number.to_string())];
        let items = self.existing_contract_items(&ids).await?;
        Ok(match items.as_slice() {
            [one] => one.id.composite().to_string(),
            _ => number.to_string(),
        })
    }

    /// The contract already carrying `erp_id` in `external_metadata.id`, when
    /// there is one (the oldest, by id, when there are several).
    pub async fn find_created(&self, erp_id: &str) -> Result<Option<String>, FetchError> {
        let found = self.contracts_by_external_metadata(erp_id).await?;
        let ids: Vec<crate::spotdraft::model::ContractId> = found
            .iter()
            .filter_map(|c| match &c.id {
                Value::Number(n) => Some(n.to_string()),
                Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
                _ => None,
            })
            .map(crate::spotdraft::model::ContractId::new)
            .collect();
        let Some(oldest) = ids.iter().min_by_key(|id| id.number().unwrap_or(i64::MAX)) else {
            return Ok(None);
        };
        if oldest.composite().parse::<i64>().is_err() {
            return Ok(Some(oldest.composite().to_string()));
        }
        match oldest.number() {
            Some(n) => Ok(Some(self.composite_of(n).await?)),
            None => Ok(Some(oldest.composite().to_string())),
        }
    }

    /// Creates one contract (`POST v2.1/public/contracts/` with `body`) for
    /// the ERP record `erp_id`, the very string `body.external_metadata.id`
    /// holds, unless one exists: before the first attempt and before every
    /// retry (5xx, 429, timeout, a body cut short) the id is looked up, and a
    /// contract found is adopted instead. A 4xx is not retried.
    pub async fn create_contract_once(
        &self,
        erp_id: &str,
        body: &Value,
    ) -> Result<CreateOutcome, FetchError> {
        let url = self.endpoint(&["v2.1", "public", "contracts", ""])?;
        let adopted: Arc<Mutex<Option<String>>> = Arc::default();
        let lookup_error: Arc<Mutex<Option<FetchError>>> = Arc::default();
        let build = |attempt: u32| {
            let (adopted, lookup_error, url) = (adopted.clone(), lookup_error.clone(), url.clone());
            async move {
                let stop = |reason: &str| HttpError::Aborted {
                    url: url.to_string(),
                    attempts: attempt - 1,
                    reason: reason.to_string(),
                };
                match self.find_created(erp_id).await {
                    Ok(Some(id)) => {
                        *adopted.lock().unwrap_or_else(|p| p.into_inner()) = Some(id);
                        return Err(stop("a contract already carries this ERP id"));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        *lookup_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        return Err(stop("the lookup by external_metadata failed"));
                    }
                }
                self.authed(Method::POST, url.clone())
                    .json(body)
                    .build()
                    .map_err(|_| stop("the request could not be built"))
            }
        };
        let parse = |b: &[u8]| serde_json::from_slice::<Created>(b);
        let result = self.http.send_built(url.as_str(), build, true, parse).await;
        let attempts = match &result {
            Ok((r, _)) => r.attempts,
            Err(e) => super::attempts_of(e),
        };
        self.counters
            .creates
            .fetch_add(u64::from(attempts), std::sync::atomic::Ordering::Relaxed);
        if let Some(id) = adopted.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Ok(CreateOutcome::Adopted(id));
        }
        if let Some(e) = lookup_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Err(e);
        }
        let (_, created) = result.map_err(|e| self.explain(e, None))?;
        let id = match (&created.id, created.contract_id) {
            (Value::String(s), _) if !s.trim().is_empty() => s.trim().to_string(),
            (Value::Number(n), _) => n.to_string(),
            (_, Some(n)) => n.to_string(),
            _ => String::new(),
        };
        Ok(CreateOutcome::Created(id))
    }

    /// `POST v2.1/public/supported_documents/{contract_id}/` with
    /// `{name, file_name, file_base64}`. Not retried on a lost answer (a
    /// second upload would be a second document): 429 and 5xx answers,
    /// which store nothing, are.
    pub async fn upload_supported_document(
        &self,
        contract_id: &str,
        name: &str,
        file_name: &str,
        bytes: &[u8],
    ) -> Result<(), FetchError> {
        use base64::Engine;
        let url = self.endpoint(&["v2.1", "public", "supported_documents", contract_id, ""])?;
        let body = serde_json::json!({
            "name": name,
            "file_name": file_name,
            "file_base64": base64::engine::general_purpose::STANDARD.encode(bytes),
        });
        let req = self
            .authed(Method::POST, url.clone())
            .json(&body)
            .build()
            .map_err(|e| FetchError::Config(format!("request to {url}: {e}")))?;
        let result = self.http.send(req, false).await;
        let attempts = match &result {
            Ok(r) => r.attempts,
            Err(e) => super::attempts_of(e),
        };
        self.counters
            .documents
            .fetch_add(u64::from(attempts), std::sync::atomic::Ordering::Relaxed);
        result.map(|_| ()).map_err(|e| self.explain(e, None))
    }

    /// `GET v2.1/public/templates/{id}/metadata`: the `variable` of every
    /// field of the template (what `contract_data` keys may be).
    pub async fn template_fields(&self, template_id: i64) -> Result<Vec<String>, FetchError> {
        let url = self.endpoint(&[
            "v2.1",
            "public",
            "templates",
            &template_id.to_string(),
            "metadata",
        ])?;
        let parse = |b: &[u8]| serde_json::from_slice::<Value>(b);
        let body = self
            .call_parsed(Call::new(Method::GET, url, &self.counters.list), parse)
            .await?;
        Ok(body
            .get("attributes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| a.get("variable").and_then(Value::as_str))
            .map(str::to_string)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{RetryPolicy, Throttle};
    use crate::secret::Secret;
    use axum::extract::State;
    use axum::routing::get;
    use axum::{Json, Router};
    use serde_json::json;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    /// A server whose first create is committed but answered 502, whose
    /// lookup answers in the example's nested form, and whose list resolves
    /// contract 12 to `T-12`.
    #[derive(Default)]
    struct Server {
        creates: AtomicU32,
        lookups: AtomicU32,
    }

    async fn start() -> (url::Url, Arc<Server>) {
        let server = Arc::new(Server::default());
        let app = Router::new()
            .route(
                "/api/v2.1/public/contracts/",
                get(|| async {
                    Json(
                        json!({"page": 1, "limit": 100, "total_results": 1, "results": [
                        {"id": "T-12", "created": "2026-01-01T00:00:00Z"}]}),
                    )
                })
                .post(|State(s): State<Arc<Server>>| async move {
                    s.creates.fetch_add(1, Ordering::SeqCst);
                    axum::http::StatusCode::BAD_GATEWAY
                }),
            )
            .route(
                "/api/v2.1/public/contracts/by_external_metadata/{id}",
                get(
                    |State(s): State<Arc<Server>>,
                     axum::extract::Path(id): axum::extract::Path<String>| async move {
                        s.lookups.fetch_add(1, Ordering::SeqCst);
                        let committed = s.creates.load(Ordering::SeqCst) > 0;
                        match (id.as_str(), committed) {
                            ("ERP 1/a", true) => {
                                Json(json!([[{"id": 12, "contract_status": "DRAFT"}]]))
                            }
                            ("ERP-2", _) => Json(json!([{"id": "H-7"}, {"id": "T-9"}])),
                            _ => Json(json!([])),
                        }
                    },
                ),
            )
            .with_state(server.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}/api/").parse().unwrap(), server)
    }

    fn client(base: url::Url) -> SpotDraftClient {
        let config = super::super::ClientConfig {
            base_url: base,
            client_id: Secret::new("id"),
            client_secret: Secret::new("secret"),
            user_email: None,
            request_timeout: Duration::from_secs(5),
        };
        let policy = RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            max_total: Duration::from_secs(5),
        };
        SpotDraftClient::with_seed(config, Arc::new(Throttle::new(100, 2)), policy, 1).unwrap()
    }

    #[tokio::test]
    async fn a_create_whose_answer_is_lost_is_adopted_on_its_retry_not_sent_twice() {
        let (base, server) = start().await;
        let c = client(base);
        let body = json!({"contract_template_id": 1, "external_metadata": {"id": "ERP 1/a"}});
        let outcome = c.create_contract_once("ERP 1/a", &body).await.unwrap();
        assert_eq!(outcome, CreateOutcome::Adopted("T-12".into()));
        assert_eq!(server.creates.load(Ordering::SeqCst), 1, "sent once");
        assert_eq!(
            server.lookups.load(Ordering::SeqCst),
            2,
            "looked up before the first attempt and before the retry"
        );
        assert_eq!(c.request_counts().creates, 1);
    }

    #[tokio::test]
    async fn the_oldest_contract_carrying_the_id_is_the_one_found() {
        let (base, _) = start().await;
        let c = client(base);
        assert_eq!(
            c.find_created("ERP-2").await.unwrap().as_deref(),
            Some("H-7")
        );
        assert_eq!(c.find_created("ERP-3").await.unwrap(), None);
    }
}
