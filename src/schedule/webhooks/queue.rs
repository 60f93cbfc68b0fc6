//! The webhook queues: one small object per distinct delivery in
//! `{output}/_webhooks/<job>/queue/` (SpotDraft's deliveries) or
//! `{output}/_webhooks/<job>/erp_queue/` (ERP events), written before the
//! delivery is answered and removed only after a targeted run covered it.
//!
//! An object's name comes from the contract id (or ERP record id), the event
//! and the body's hash, and is written with `PutMode::Create`: a replayed
//! delivery (same body) finds its object there and is a duplicate, not a
//! second entry.

use super::{Delivery, ErpEvent};
use crate::runner::TargetHint;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::marker::PhantomData;
use std::sync::Arc;

/// What a queue holds: an entry serialized as JSON, ordered by receipt.
pub trait QueueItem: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// When it was first received.
    fn received_at(&self) -> DateTime<Utc>;
}

/// One queued delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// SpotDraft's integer contract id.
    pub contract_id: i64,
    /// The event (`activity`), when the body named one.
    pub activity: Option<String>,
    /// When it was first received.
    pub received_at: DateTime<Utc>,
    /// SHA-256 of the body, hex.
    pub body_sha256: String,
}

impl QueueItem for QueueEntry {
    fn received_at(&self) -> DateTime<Utc> {
        self.received_at
    }
}

/// One queued ERP event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpQueueEntry {
    /// The ERP record id, as sent (trimmed).
    pub record_id: String,
    /// The event's name, when the body gave one.
    pub event: Option<String>,
    /// When it was first received.
    pub received_at: DateTime<Utc>,
    /// SHA-256 of the body, hex.
    pub body_sha256: String,
}

impl QueueItem for ErpQueueEntry {
    fn received_at(&self) -> DateTime<Utc> {
        self.received_at
    }
}

impl QueueEntry {
    /// What the event says of the contract.
    pub fn hint(&self) -> TargetHint {
        super::hint_of(self.activity.as_deref().unwrap_or(""))
    }
}

/// An entry and where it is stored.
#[derive(Debug, Clone)]
pub struct Queued<E = QueueEntry> {
    /// The object.
    pub path: Path,
    /// Its content.
    pub entry: E,
}

/// What [`WebhookQueue::enqueue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// A new entry.
    New,
    /// The same delivery was already queued (a replay).
    Duplicate,
}

/// A queue that cannot be written or read.
#[derive(Debug, thiserror::Error)]
#[error("webhook queue {path}")]
pub struct QueueError {
    /// The object or folder.
    pub path: String,
    /// The store's error.
    #[source]
    pub source: object_store::Error,
}

/// One job's webhook queue of `E` entries (SpotDraft's deliveries by
/// default; [`ErpQueueEntry`] for ERP events).
#[derive(Debug)]
pub struct WebhookQueue<E = QueueEntry> {
    store: Arc<dyn ObjectStore>,
    dir: Path,
    entries: PhantomData<fn() -> E>,
}

impl<E> Clone for WebhookQueue<E> {
    fn clone(&self) -> Self {
        WebhookQueue {
            store: self.store.clone(),
            dir: self.dir.clone(),
            entries: PhantomData,
        }
    }
}

/// `text` as part of an object name: ASCII letters, digits, `_` and `-`, at
/// most 64 of them (`NONE` when nothing is left).
fn name_part(text: Option<&str>) -> String {
    let part: String = text
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(64)
        .collect();
    if part.is_empty() {
        "NONE".to_string()
    } else {
        part
    }
}

impl WebhookQueue<QueueEntry> {
    /// The SpotDraft queue of `job` under the output prefix `prefix` of `store`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &Path, job: &str) -> WebhookQueue {
        WebhookQueue::in_dir(store, prefix, job, "queue")
    }

    /// Queues `delivery` (whose raw body is `body`), durably: returns once the
    /// object is written, or found already there.
    pub async fn enqueue(&self, delivery: &Delivery, body: &[u8]) -> Result<Enqueued, QueueError> {
        let body_sha256 = hex::encode(Sha256::digest(body));
        let activity: String = delivery
            .activity
            .as_deref()
            .unwrap_or("NONE")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        let name = format!(
            "{}-{}-{}.json",
            delivery.contract_id,
            activity,
            &body_sha256[..16]
        );
        let entry = QueueEntry {
            contract_id: delivery.contract_id,
            activity: delivery.activity.clone(),
            received_at: Utc::now(),
            body_sha256,
        };
        self.put_new(&name, &entry).await
    }
}

impl WebhookQueue<ErpQueueEntry> {
    /// The ERP event queue of `job` (`_webhooks/<job>/erp_queue/`).
    pub fn erp(
        store: Arc<dyn ObjectStore>,
        prefix: &Path,
        job: &str,
    ) -> WebhookQueue<ErpQueueEntry> {
        WebhookQueue::in_dir(store, prefix, job, "erp_queue")
    }

    /// Queues `event` (whose raw body is `body`), durably, as
    /// `<record id>-<event>-<body hash>.json`; the name keeps only the id's
    /// safe characters, the entry holds it whole.
    pub async fn enqueue(&self, event: &ErpEvent, body: &[u8]) -> Result<Enqueued, QueueError> {
        let body_sha256 = hex::encode(Sha256::digest(body));
        let name = format!(
            "{}-{}-{}.json",
            name_part(Some(event.record_id.trim())),
            name_part(event.event.as_deref()),
            &body_sha256[..16]
        );
        let entry = ErpQueueEntry {
            record_id: event.record_id.trim().to_string(),
            event: event.event.clone(),
            received_at: Utc::now(),
            body_sha256,
        };
        self.put_new(&name, &entry).await
    }
}

impl<E: QueueItem> WebhookQueue<E> {
    fn in_dir(store: Arc<dyn ObjectStore>, prefix: &Path, job: &str, folder: &str) -> Self {
        let dir = prefix.clone().join("_webhooks").join(job).join(folder);
        WebhookQueue {
            store,
            dir,
            entries: PhantomData,
        }
    }

    /// The queue's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `entry` as `name` unless that object exists (a replay).
    async fn put_new(&self, name: &str, entry: &E) -> Result<Enqueued, QueueError> {
        let path = self.dir.clone().join(name);
        let bytes = serde_json::to_vec(entry).unwrap_or_default();
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&path, PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(Enqueued::New),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Enqueued::Duplicate),
            Err(source) => Err(QueueError {
                path: path.to_string(),
                source,
            }),
        }
    }

    /// The queued entries, oldest first; an unreadable one is logged and left.
    pub async fn pending(&self) -> Result<Vec<Queued<E>>, QueueError> {
        let err = |source| QueueError {
            path: self.dir.to_string(),
            source,
        };
        let paths: Vec<Path> = self
            .store
            .list(Some(&self.dir))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(err)?;
        let mut queued = Vec::new();
        for path in paths {
            let read = async { self.store.get(&path).await?.bytes().await };
            let bytes = match read.await {
                Ok(bytes) => bytes,
                // Removed since the listing: covered by a run.
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(source) => {
                    return Err(QueueError {
                        path: path.to_string(),
                        source,
                    })
                }
            };
            match serde_json::from_slice::<E>(&bytes) {
                Ok(entry) => queued.push(Queued { path, entry }),
                Err(e) => {
                    tracing::warn!(%path, error = %crate::error_chain::error_chain(&e), "unreadable webhook queue entry left")
                }
            }
        }
        queued.sort_by(|a, b| {
            (a.entry.received_at(), &a.path).cmp(&(b.entry.received_at(), &b.path))
        });
        Ok(queued)
    }

    /// Removes entries a run covered (one already gone is fine).
    pub async fn remove(&self, paths: &[Path]) -> Result<(), QueueError> {
        for path in paths {
            match self.store.delete(path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(source) => {
                    return Err(QueueError {
                        path: path.to_string(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }
}
