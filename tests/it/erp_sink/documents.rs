//! Streamed document uploads: checksum up front or computed while streaming,
//! a wrong checksum, and a retried upload that opens its stream again.

use super::{sink, start_erp};
use bytes::Bytes;
use contract_recon::erp::sink::{
    DocumentStream, DocumentUpload, ErpSink, OpenDocument, WriteOutcome,
};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// A deterministic document of `len` bytes.
fn document(len: usize) -> Bytes {
    Bytes::from((0..len).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>())
}

/// Opens `doc` as a stream of 64 KiB chunks, counting the opens.
fn opener(doc: Bytes, opens: Arc<AtomicU32>) -> OpenDocument {
    Arc::new(move || {
        opens.fetch_add(1, Ordering::SeqCst);
        let doc = doc.clone();
        Box::pin(async move {
            let chunks: Vec<std::io::Result<Bytes>> = (0..doc.len())
                .step_by(64 * 1024)
                .map(|at| Ok(doc.slice(at..(at + 64 * 1024).min(doc.len()))))
                .collect();
            Ok(futures::stream::iter(chunks).boxed() as DocumentStream)
        })
    })
}

fn upload(id: &str, doc: &Bytes, sha256: Option<String>, opens: Arc<AtomicU32>) -> DocumentUpload {
    DocumentUpload {
        erp_record_id: id.into(),
        file_name: format!("{id}.pdf"),
        sha256,
        length: Some(doc.len() as u64),
        open: opener(doc.clone(), opens),
        idempotency_key: format!("doc-{id}"),
    }
}

#[tokio::test]
async fn documents_arrive_with_matching_checksums_with_and_without_one_up_front() {
    let sb = start_erp(3).await;
    let s = sink(&sb);
    let doc = document(1_500_000);
    let sha = hex::encode(Sha256::digest(&doc));
    let opens = Arc::new(AtomicU32::new(0));
    let up_front = upload("E-1", &doc, Some(sha.to_uppercase()), opens.clone());
    assert!(matches!(
        s.attach_document(up_front).await,
        WriteOutcome::Applied {
            replayed: false,
            ..
        }
    ));
    let mut computed = upload("ERP 12/3", &doc, None, opens.clone());
    computed.length = None;
    assert!(matches!(
        s.attach_document(computed).await,
        WriteOutcome::Applied {
            replayed: false,
            ..
        }
    ));
    for id in ["E-1", "ERP 12/3"] {
        let rec = sb.state().erp_record(id).unwrap();
        assert_eq!(rec.document_sha256.as_deref(), Some(sha.as_str()), "{id}");
        let att = sb.state().attachments(id);
        assert_eq!(att.len(), 1);
        assert_eq!(
            (att[0].size, att[0].file_name.clone()),
            (doc.len() as u64, format!("{id}.pdf"))
        );
    }
    assert_eq!(opens.load(Ordering::SeqCst), 2);
    sb.shutdown().await;
}

#[tokio::test]
async fn a_wrong_checksum_aborts_the_upload_and_nothing_is_stored() {
    let sb = start_erp(2).await;
    let s = sink(&sb);
    let doc = document(300_000);
    let actual = hex::encode(Sha256::digest(&doc));
    let wrong = hex::encode(Sha256::digest(b"another document"));
    let opens = Arc::new(AtomicU32::new(0));
    let outcome = s
        .attach_document(upload("E-1", &doc, Some(wrong.clone()), opens.clone()))
        .await;
    assert_eq!(
        outcome,
        WriteOutcome::ChecksumMismatch {
            expected: wrong,
            actual
        }
    );
    assert_eq!(opens.load(Ordering::SeqCst), 1, "never retried");
    assert!(sb.state().attachments("E-1").is_empty());
    assert_eq!(sb.state().erp_record("E-1").unwrap().document_sha256, None);
    assert!(sb.state().erp_writes().iter().all(|w| !w.applied));
    sb.shutdown().await;
}

#[tokio::test]
async fn a_failed_upload_opens_the_document_again_and_a_lost_answer_replays() {
    let sb = start_erp(2).await;
    let s = sink(&sb);
    let doc = document(200_000);
    let opens = Arc::new(AtomicU32::new(0));
    sb.faults().update(|f| {
        f.erp.http.burst_429 = 2;
        f.erp.applied_but_502_next = 1;
    });
    let outcome = s
        .attach_document(upload("E-2", &doc, None, opens.clone()))
        .await;
    assert!(
        matches!(outcome, WriteOutcome::Applied { replayed: true, .. }),
        "{outcome:?}"
    );
    assert_eq!(opens.load(Ordering::SeqCst), 4, "2 x 429, 502, replay");
    assert_eq!(sb.state().attachments("E-2").len(), 1, "stored once");

    // A stream that can be opened only once: the retry finds no bytes, pending.
    sb.faults().update(|f| f.erp.http.burst_429 = 1);
    let once = DocumentUpload {
        open: DocumentUpload::open_once(futures::stream::iter(vec![Ok(doc.clone())]).boxed()),
        ..upload("E-1", &doc, None, opens)
    };
    let outcome = s.attach_document(once).await;
    assert!(
        matches!(outcome, WriteOutcome::Pending { .. }),
        "{outcome:?}"
    );
    assert!(sb.state().attachments("E-1").is_empty());
    sb.shutdown().await;
}
