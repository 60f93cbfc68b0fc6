//! Documents streamed out of SpotDraft, and `external_metadata` read, merged
//! and written back (the ERP-owned ids a correction writes on a contract).

use super::{Call, FetchError, SpotDraftClient};
use crate::spotdraft::model::ContractId;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use reqwest::Method;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

/// A document being downloaded: its bytes as they arrive, and its length
/// when the server sent one.
pub struct DocumentDownload {
    /// The body, chunk by chunk; a connection cut mid-body is an error item.
    pub stream: BoxStream<'static, Result<Bytes, std::io::Error>>,
    /// `Content-Length`, when sent.
    pub length: Option<u64>,
}

impl std::fmt::Debug for DocumentDownload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentDownload")
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

impl SpotDraftClient {
    /// `POST v2.1/public/contracts/{id}/download`, streamed: the answer's
    /// start goes through the workspace's limiter and retries (429, 5xx,
    /// timeouts), then its body is handed over unread, never whole in memory.
    /// Reading the body is not retried here: a caller that needs the bytes
    /// again (a retried upload) calls this again.
    pub async fn download_stream(&self, id: &ContractId) -> Result<DocumentDownload, FetchError> {
        let url = self.endpoint(&["v2.1", "public", "contracts", id.composite(), "download"])?;
        let req = self
            .authed(Method::POST, url.clone())
            .header("accept", "application/pdf, application/octet-stream, */*")
            .build()
            .map_err(|e| FetchError::Config(format!("request to {url}: {e}")))?;
        let result = self.http.open_stream(req, true).await;
        let attempts = match &result {
            Ok((_, a)) => *a,
            Err(e) => super::attempts_of(e),
        };
        self.counters
            .documents
            .fetch_add(u64::from(attempts), Ordering::Relaxed);
        let (resp, _) = result.map_err(|e| self.explain(e, None))?;
        let length = resp.content_length();
        let stream = resp.bytes_stream().map_err(std::io::Error::other).boxed();
        Ok(DocumentDownload { stream, length })
    }

    /// `GET v2.1/public/contracts/{id}/external_metadata`: the contract's
    /// `external_metadata` object as sent (`None` when missing or `null`).
    pub async fn external_metadata(&self, id: &ContractId) -> Result<Option<Value>, FetchError> {
        let url = self.external_metadata_url(id)?;
        let parse = |b: &[u8]| serde_json::from_slice::<Value>(b);
        let call = Call::new(Method::GET, url, &self.counters.external_metadata);
        let body = self.call_parsed(call, parse).await?;
        Ok(match body.get("external_metadata") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.clone()),
        })
    }

    /// `POST v2.1/public/contracts/{id}/external_metadata` with
    /// `{"external_metadata": value}`: replaces the whole object, so send one
    /// built by [`merge_external_metadata`] from what
    /// [`SpotDraftClient::external_metadata`] read. Writing the same object
    /// twice leaves the same state, so it is retried like a read.
    pub async fn set_external_metadata(
        &self,
        id: &ContractId,
        value: &Value,
    ) -> Result<(), FetchError> {
        let url = self.external_metadata_url(id)?;
        let body = serde_json::json!({ "external_metadata": value });
        let parse = |b: &[u8]| serde_json::from_slice::<Value>(b).map(|_| ());
        let call = Call::new(Method::POST, url, &self.counters.external_metadata).json(&body);
        self.call_parsed(call, parse).await
    }

    fn external_metadata_url(&self, id: &ContractId) -> Result<url::Url, FetchError> {
        self.endpoint(&[
            "v2.1",
            "public",
            "contracts",
            id.composite(),
            "external_metadata",
        ])
    }
}

/// The `external_metadata` to write back: `current` (what SpotDraft holds;
/// `None`, `null` or not an object reads as `{}`) with `id` set to `erp_id`
/// (kept as it is when `None`) and every `owned` key set in `record_data`.
/// Everything else is kept: `integration_name`, `record_type`,
/// `object_configuration_id`, other `record_data` keys, unknown keys.
pub fn merge_external_metadata(
    current: Option<&Value>,
    erp_id: Option<&str>,
    owned: &BTreeMap<String, String>,
) -> Value {
    let mut merged: Map<String, Value> = match current {
        Some(Value::Object(o)) => o.clone(),
        _ => Map::new(),
    };
    if let Some(id) = erp_id {
        merged.insert("id".into(), Value::String(id.to_string()));
    }
    if !owned.is_empty() {
        let mut data = match merged.remove("record_data") {
            Some(Value::Object(o)) => o,
            _ => Map::new(),
        };
        for (k, v) in owned {
            data.insert(k.clone(), Value::String(v.clone()));
        }
        merged.insert("record_data".into(), Value::Object(data));
    }
    Value::Object(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owned(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn merge_sets_the_id_and_owned_keys_and_keeps_everything_else() {
        let current = json!({
            "id": "OLD-1", "integration_name": "NetSuite", "record_type": "Contract",
            "object_configuration_id": "2a23", "custom": [1],
            "record_data": {"po_number": "PO-1", "cost_center": "CC-9", "amount": 12}
        });
        let merged = merge_external_metadata(
            Some(&current),
            Some("E-7"),
            &owned(&[("po_number", "PO-2"), ("vendor_id", "V-3")]),
        );
        assert_eq!(
            merged,
            json!({
                "id": "E-7", "integration_name": "NetSuite", "record_type": "Contract",
                "object_configuration_id": "2a23", "custom": [1],
                "record_data": {"po_number": "PO-2", "cost_center": "CC-9", "amount": 12, "vendor_id": "V-3"}
            })
        );
    }

    #[test]
    fn merge_keeps_the_id_when_none_and_starts_from_nothing() {
        let current = json!({"id": "E-1", "record_data": {"a": "1"}});
        assert_eq!(
            merge_external_metadata(Some(&current), None, &owned(&[("b", "2")])),
            json!({"id": "E-1", "record_data": {"a": "1", "b": "2"}})
        );
        assert_eq!(
            merge_external_metadata(Some(&current), None, &BTreeMap::new()),
            current
        );
        for empty in [None, Some(json!(null)), Some(json!({})), Some(json!("x"))] {
            assert_eq!(
                merge_external_metadata(empty.as_ref(), Some("E-2"), &owned(&[("po", "P")])),
                json!({"id": "E-2", "record_data": {"po": "P"}})
            );
        }
        let bad_data = json!({"id": "E-1", "record_data": null});
        assert_eq!(
            merge_external_metadata(Some(&bad_data), None, &owned(&[("po", "P")])),
            json!({"id": "E-1", "record_data": {"po": "P"}})
        );
    }
}
