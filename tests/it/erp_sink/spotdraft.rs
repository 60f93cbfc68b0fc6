//! SpotDraft side of corrections: documents streamed from SpotDraft's
//! download into the ERP upload, and `external_metadata` write-backs.

use super::{quick_retry, sink, start_erp};
use crate::sandbox_api::document_bytes;
use contract_recon::erp::sink::{
    DocumentStream, DocumentUpload, ErpSink, OpenDocument, WriteOutcome,
};
use contract_recon::http::Throttle;
use contract_recon::sandbox::Sandbox;
use contract_recon::secret::Secret;
use contract_recon::spotdraft::model::ContractId;
use contract_recon::spotdraft::{
    merge_external_metadata, ClientConfig, ListQuery, SpotDraftClient,
};
use futures::TryStreamExt;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

fn spotdraft(sb: &Sandbox) -> SpotDraftClient {
    let c = sb.credentials();
    let config = ClientConfig {
        base_url: sb.spotdraft_base_url().parse().unwrap(),
        client_id: Secret::new(c.client_id.clone()),
        client_secret: Secret::new(c.client_secret.clone()),
        user_email: None,
        request_timeout: Duration::from_secs(10),
    };
    SpotDraftClient::with_seed(config, Arc::new(Throttle::new(500, 4)), quick_retry(), 1).unwrap()
}

#[tokio::test]
async fn a_document_streams_from_spotdraft_into_the_erp() {
    let sb = start_erp(3).await;
    let sd = spotdraft(&sb);
    sb.faults().update(|f| f.spotdraft.http.burst_429 = 2);
    let dl = sd.download_stream(&ContractId::new("T-1")).await.unwrap();
    let expected = document_bytes(1);
    assert_eq!(dl.length, Some(expected.len() as u64));
    let got: Vec<_> = dl.stream.try_collect().await.unwrap();
    assert_eq!(got.concat(), expected.to_vec());
    let missing = sd
        .download_stream(&ContractId::new("T-2"))
        .await
        .unwrap_err();
    assert!(missing.is_not_found(), "{missing}");

    // Each upload attempt downloads again; an ERP 503 costs one more download.
    sb.faults().update(|f| f.erp.http.burst_429 = 1);
    let (client, id) = (sd.clone(), ContractId::new("T-1"));
    let open: OpenDocument = Arc::new(move || {
        let (client, id) = (client.clone(), id.clone());
        Box::pin(async move {
            let dl = client
                .download_stream(&id)
                .await
                .map_err(std::io::Error::other)?;
            Ok(dl.stream as DocumentStream)
        })
    });
    let upload = DocumentUpload {
        erp_record_id: "E-1".into(),
        file_name: "T-1.pdf".into(),
        sha256: None,
        length: Some(expected.len() as u64),
        open,
        idempotency_key: "doc-T-1".into(),
    };
    let outcome = sink(&sb).attach_document(upload).await;
    assert!(
        matches!(outcome, WriteOutcome::Applied { .. }),
        "{outcome:?}"
    );
    let sha = hex::encode(Sha256::digest(&expected));
    assert_eq!(
        sb.state().erp_record("E-1").unwrap().document_sha256,
        Some(sha)
    );
    assert_eq!(sd.request_counts().documents, 2 + 2 + 2);
    sb.shutdown().await;
}

#[tokio::test]
async fn a_write_back_keeps_the_other_metadata_and_the_list_shows_it() {
    let sb = start_erp(3).await;
    let sd = spotdraft(&sb);
    let id = ContractId::new("T-3");
    let current = sd.external_metadata(&id).await.unwrap();
    assert_eq!(
        current,
        Some(json!({"id": "E-3", "integration_name": "ERP", "record_data": {"po_number": "PO-3"}}))
    );
    let owned: BTreeMap<String, String> = [("vendor_id".to_string(), "V-9".to_string())].into();
    let merged = merge_external_metadata(current.as_ref(), Some("E-33"), &owned);
    sd.set_external_metadata(&id, &merged).await.unwrap();
    let expected = json!({"id": "E-33", "integration_name": "ERP",
        "record_data": {"po_number": "PO-3", "vendor_id": "V-9"}});
    assert_eq!(
        sd.external_metadata(&id).await.unwrap(),
        Some(expected.clone())
    );
    let page = sd
        .list_contracts(&ListQuery {
            page: 1,
            limit: 10,
            contract_ids: vec!["T-3".into()],
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&page.results[0].external_metadata).unwrap(),
        expected
    );
    // A contract with no metadata yet, and one that does not exist.
    let none = sd.external_metadata(&ContractId::new("T-1")).await.unwrap();
    assert!(none.is_none() || none == Some(json!({})), "{none:?}");
    assert!(sd
        .external_metadata(&ContractId::new("T-99"))
        .await
        .unwrap_err()
        .is_not_found());
    assert_eq!(sd.request_counts().external_metadata, 5);
    sb.shutdown().await;
}
