//! Correction sinks: where planned ERP corrections are written. The apply
//! stage speaks only this interface; `rest` (the documented ERP REST contract)
//! and `files` (import files in an object store) implement it.
//!
//! Every write carries an idempotency key derived from its content, so a
//! retried or replayed write is applied at most once by the ERP. A sink
//! retries 408, 429, 5xx and timeouts itself, through the shared retry policy
//! and with the same key, and reports what finally happened as a
//! [`WriteOutcome`]. It never fails the whole batch for one record.

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// A document's bytes, streamed (never whole in memory).
pub type DocumentStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// Opens a document's byte stream, once per upload attempt: a retried upload
/// (429, 5xx, a connection cut mid-body) needs the bytes again, so the sink
/// calls this again (the apply stage re-downloads from SpotDraft). An error
/// ends the retries: the upload is [`WriteOutcome::Pending`] for the next run.
pub type OpenDocument =
    Arc<dyn Fn() -> BoxFuture<'static, std::io::Result<DocumentStream>> + Send + Sync>;

/// One ERP record's field update: every owned field that differs, in one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldUpdate {
    /// The record id exactly as the extract holds it (trimmed); the sink
    /// percent-encodes it in paths.
    pub erp_record_id: String,
    /// Canonical field name -> value as text (never empty or null: the planner
    /// sends those to review).
    pub fields: BTreeMap<String, String>,
    /// The record version read from the extract, sent as `If-Match`.
    pub if_match: Option<String>,
    /// Derived from the content and its generation (see the apply stage).
    pub idempotency_key: String,
}

/// An executed document to attach to an ERP record.
pub struct DocumentUpload {
    /// The record id exactly as the extract holds it (trimmed).
    pub erp_record_id: String,
    /// The file name sent with the upload.
    pub file_name: String,
    /// SHA-256 (hex) when known up front (the snapshot holds it); the sink then
    /// verifies it while streaming and aborts the upload on a mismatch. When
    /// `None`, the sink computes it while streaming.
    pub sha256: Option<String>,
    /// Length in bytes, when known (every opened stream must have it).
    pub length: Option<u64>,
    /// Opens the document's bytes, once per attempt (see [`OpenDocument`]).
    pub open: OpenDocument,
    /// Derived from the record and the document's checksum.
    pub idempotency_key: String,
}

impl DocumentUpload {
    /// An [`OpenDocument`] that hands out `stream` once: a retry needing the
    /// bytes again finds none, so an upload that fails after its first attempt
    /// started is [`WriteOutcome::Pending`] (the next run sends it again).
    pub fn open_once(stream: DocumentStream) -> OpenDocument {
        let slot = Arc::new(Mutex::new(Some(stream)));
        Arc::new(move || {
            let taken = slot.lock().map(|mut s| s.take()).unwrap_or(None);
            Box::pin(async move {
                taken.ok_or_else(|| {
                    std::io::Error::other(
                        "the document stream was already used by an earlier attempt",
                    )
                })
            })
        })
    }
}

impl std::fmt::Debug for DocumentUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentUpload")
            .field("erp_record_id", &self.erp_record_id)
            .field("file_name", &self.file_name)
            .field("sha256", &self.sha256)
            .field("length", &self.length)
            .field("idempotency_key", &self.idempotency_key)
            .finish_non_exhaustive()
    }
}

/// What finally happened to one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// 2xx: the ERP holds the change (`replayed`: it answered a repeated key
    /// with the first result, `Idempotent-Replayed: true`).
    Applied {
        /// The record's version after the write, when the ERP says.
        version: Option<String>,
        /// The ERP replayed an earlier result for this key.
        replayed: bool,
    },
    /// 404, 409, 412 or 422 (or another 4xx): never re-sent with the same
    /// content. `code` and `message` are the ERP's own (`precondition_failed`...).
    Rejected {
        /// HTTP status.
        status: u16,
        /// The ERP's error code, when it sent one.
        code: Option<String>,
        /// The ERP's message, kept for the review list.
        message: String,
    },
    /// Retries ran out (408/429/5xx/timeouts/lost responses): the action stays
    /// pending and the next run retries it with the same key.
    Pending {
        /// The last error, for the journal.
        error: String,
    },
    /// The document's bytes did not match the expected checksum: nothing stored.
    ChecksumMismatch {
        /// Expected SHA-256.
        expected: String,
        /// SHA-256 of what was streamed.
        actual: String,
    },
}

/// A destination for corrections. Implementations bound their own request
/// rate and concurrency (the `[apply]` bounds).
pub trait ErpSink: Send + Sync {
    /// One record's field update.
    fn update_fields(&self, update: &FieldUpdate) -> impl Future<Output = WriteOutcome> + Send;

    /// Several records' updates in one request when the sink has a bulk
    /// endpoint (else one by one). One outcome per update, in order; the
    /// request's own key is `batch_key` (derived from the updates' keys).
    fn update_fields_batch(
        &self,
        updates: &[FieldUpdate],
        batch_key: &str,
    ) -> impl Future<Output = Vec<WriteOutcome>> + Send;

    /// Attaches an executed document, streamed: each attempt opens the stream
    /// again through [`DocumentUpload::open`] and sends it with the same key.
    fn attach_document(&self, upload: DocumentUpload) -> impl Future<Output = WriteOutcome> + Send;
}
