//! Document uploads: multipart `file`, `file_name`, `sha256`, the file
//! streamed and hashed as it passes, never whole in memory.
//!
//! - Checksum known up front: parts `sha256`, `file_name`, `file`. The stream
//!   is verified as it passes; on a mismatch its last item is an error, so the
//!   body is cut before the multipart ends and the ERP stores nothing, and the
//!   outcome is [`WriteOutcome::ChecksumMismatch`] (never retried).
//! - Checksum unknown: parts `file`, `file_name`, then `sha256`, whose value
//!   the file part's stream hands over once it has passed completely.
//!
//! Each attempt opens the document again ([`DocumentUpload::open`]) and sends
//! it with the same `Idempotency-Key`, within [`attempt_timeout`]: an ERP that
//! never answers is given up on about as soon as for a field update, not
//! after the whole `upload_timeout`.

use super::{applied, failed, RestSink};
use crate::crashpoint;
use crate::erp::sink::{DocumentStream, DocumentUpload, WriteOutcome};
use crate::http::HttpError;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::multipart::{Form, Part};
use reqwest::{Body, Method};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// What the hashing stream saw on its last complete pass.
#[derive(Debug, Default)]
struct Seen {
    actual: Option<String>,
    mismatch: bool,
}

type SeenSlot = Arc<Mutex<Seen>>;

fn lock(seen: &SeenSlot) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(|p| p.into_inner())
}

pub(super) async fn attach(sink: &RestSink, upload: DocumentUpload) -> WriteOutcome {
    let url = sink.url_for(&sink.config.paths.attachments, &upload.erp_record_id);
    let expected = upload
        .sha256
        .as_deref()
        .map(|s| s.trim().to_ascii_lowercase());
    let seen: SeenSlot = Arc::default();
    let build = |attempt: u32| {
        let (url, seen, expected) = (url.clone(), seen.clone(), expected.clone());
        let (open, upload) = (upload.open.clone(), &upload);
        async move {
            let abort = |reason: String| HttpError::Aborted {
                url: url.to_string(),
                attempts: attempt - 1,
                reason,
            };
            if lock(&seen).mismatch {
                return Err(abort("the document does not match its sha256".into()));
            }
            let stream = open()
                .await
                .map_err(|e| abort(format!("the document could not be opened: {e}")))?;
            let form = multipart(stream, upload, expected, seen);
            sink.request(Method::POST, url.clone(), &upload.idempotency_key)
                .multipart(form)
                .timeout(attempt_timeout(&sink.config, upload.length))
                .build()
                .map_err(|e| abort(format!("request could not be built: {e}")))
        }
    };
    let parse = |b: &[u8]| serde_json::from_slice::<Value>(b);
    let result = sink.http.send_built(url.as_str(), build, true, parse).await;
    let seen = lock(&seen);
    if seen.mismatch {
        return WriteOutcome::ChecksumMismatch {
            expected: expected.unwrap_or_default(),
            actual: seen.actual.clone().unwrap_or_default(),
        };
    }
    match result {
        Ok((resp, body)) => applied(&resp, &body),
        Err(e) => failed(e),
    }
}

/// The multipart body of one attempt, parts in the order the checksum allows.
fn multipart(
    stream: DocumentStream,
    upload: &DocumentUpload,
    expected: Option<String>,
    seen: SeenSlot,
) -> Form {
    let (tx, rx) = match expected {
        Some(_) => (None, None),
        None => {
            let (tx, rx) = oneshot::channel::<String>();
            (Some(tx), Some(rx))
        }
    };
    let body = Body::wrap_stream(hashing(stream, expected.clone(), seen, tx));
    let file = match upload.length {
        Some(n) => Part::stream_with_length(body, n),
        None => Part::stream(body),
    }
    .file_name(upload.file_name.clone());
    let file_name = upload.file_name.clone();
    match (expected, rx) {
        (Some(sha), _) => Form::new()
            .text("sha256", sha)
            .text("file_name", file_name)
            .part("file", file),
        (None, rx) => {
            let digest = futures::stream::once(async move {
                match rx {
                    Some(rx) => rx
                        .await
                        .map(Bytes::from)
                        .map_err(|_| io::Error::other("the file part ended without its checksum")),
                    None => Err(io::Error::other("no checksum channel")),
                }
            });
            Form::new()
                .part("file", file)
                .text("file_name", file_name)
                .part("sha256", Part::stream(Body::wrap_stream(digest)))
        }
    }
}

struct Hashing {
    inner: DocumentStream,
    /// Chunks handed to the body (the crash point follows the first).
    chunks: u64,
    hasher: Option<Sha256>,
    expected: Option<String>,
    seen: SeenSlot,
    tx: Option<oneshot::Sender<String>>,
}

/// Passes `inner` through, hashing it. At its end: records the SHA-256 in
/// `seen`, hands it to `tx`, and, when it differs from `expected`, ends with
/// an error instead (the body is cut, the request fails).
fn hashing(
    inner: DocumentStream,
    expected: Option<String>,
    seen: SeenSlot,
    tx: Option<oneshot::Sender<String>>,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let state = Hashing {
        inner,
        chunks: 0,
        hasher: Some(Sha256::new()),
        expected,
        seen,
        tx,
    };
    futures::stream::unfold(state, |mut st| async move {
        if st.chunks == 1 && crashpoint::is_armed(crashpoint::DOCUMENT_MID_UPLOAD) {
            // Let the HTTP connection send what it holds, then die mid-body.
            tokio::task::yield_now().await;
            crashpoint::hit(crashpoint::DOCUMENT_MID_UPLOAD);
        }
        let hasher = st.hasher.as_mut()?;
        match st.inner.next().await {
            Some(Ok(chunk)) => {
                st.chunks += 1;
                hasher.update(&chunk);
                Some((Ok(chunk), st))
            }
            Some(Err(e)) => {
                st.hasher = None;
                Some((Err(e), st))
            }
            None => {
                let actual = hex::encode(st.hasher.take()?.finalize());
                let mismatch = st.expected.as_ref().is_some_and(|e| *e != actual);
                {
                    let mut seen = lock(&st.seen);
                    seen.actual = Some(actual.clone());
                    seen.mismatch = mismatch;
                }
                if mismatch {
                    let msg = format!("sha256 mismatch: the document streamed is {actual}");
                    return Some((Err(io::Error::other(msg)), st));
                }
                if let Some(tx) = st.tx.take() {
                    let _ = tx.send(actual);
                }
                None
            }
        }
    })
}

/// The slowest upload an attempt allows for, bytes per second (64 KiB/s).
pub(crate) const MIN_UPLOAD_BYTES_PER_SEC: u64 = 64 * 1024;

/// One upload attempt's timeout: the request timeout plus the document's
/// length at [`MIN_UPLOAD_BYTES_PER_SEC`], at most `upload_timeout` (which
/// alone applies when the length is unknown).
pub(crate) fn attempt_timeout(config: &super::RestSinkConfig, length: Option<u64>) -> Duration {
    match length {
        Some(bytes) => {
            let sending = Duration::from_secs_f64(bytes as f64 / MIN_UPLOAD_BYTES_PER_SEC as f64);
            (config.request_timeout + sending).min(config.upload_timeout)
        }
        None => config.upload_timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_gets_the_request_timeout_plus_its_bytes_at_the_slowest_rate() {
        let url = url::Url::parse("http://127.0.0.1:1/erp/").unwrap();
        let auth = super::super::ErpAuth::Bearer(crate::secret::Secret::new("t".to_string()));
        let mut config = super::super::RestSinkConfig::new(url, auth);
        config.request_timeout = Duration::from_secs(30);
        config.upload_timeout = Duration::from_secs(600);
        let secs = |len| attempt_timeout(&config, len).as_secs_f64();
        assert_eq!(secs(Some(0)), 30.0);
        assert_eq!(secs(Some(64 * 1024 * 10)), 40.0);
        assert_eq!(secs(Some(1 << 40)), 600.0, "capped by upload_timeout");
        assert_eq!(secs(None), 600.0, "unknown length: upload_timeout");
    }

    fn chunks(parts: &[&'static [u8]]) -> DocumentStream {
        let items: Vec<io::Result<Bytes>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        futures::stream::iter(items).boxed()
    }

    #[tokio::test]
    async fn hashing_passes_bytes_and_hands_over_the_digest() {
        let seen: SeenSlot = Arc::default();
        let (tx, rx) = oneshot::channel();
        let out: Vec<_> = hashing(chunks(&[b"ab", b"c"]), None, seen.clone(), Some(tx))
            .collect()
            .await;
        assert_eq!(out.len(), 2);
        let abc = hex::encode(Sha256::digest(b"abc"));
        assert_eq!(rx.await.unwrap(), abc);
        assert_eq!(lock(&seen).actual.as_deref(), Some(abc.as_str()));
        assert!(!lock(&seen).mismatch);
    }

    #[tokio::test]
    async fn a_wrong_expected_digest_ends_the_stream_with_an_error() {
        let seen: SeenSlot = Arc::default();
        let out: Vec<_> = hashing(chunks(&[b"abc"]), Some("00".into()), seen.clone(), None)
            .collect()
            .await;
        assert_eq!(out.len(), 2);
        assert!(out[1].is_err());
        assert!(lock(&seen).mismatch);
    }
}
