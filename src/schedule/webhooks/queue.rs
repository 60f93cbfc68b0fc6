//! The webhook queue: one small object per distinct delivery in
//! `{output}/_webhooks/<job>/queue/`, written before the delivery is
//! answered and removed only after a targeted run covered it.
//!
//! An object's name comes from the contract id, the event and the body's
//! hash, and is written with `PutMode::Create`: a replayed delivery (same
//! body) finds its object there and is a duplicate, not a second entry.

use super::Delivery;
use crate::runner::TargetHint;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;

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

impl QueueEntry {
    /// What the event says of the contract.
    pub fn hint(&self) -> TargetHint {
        super::hint_of(self.activity.as_deref().unwrap_or(""))
    }
}

/// An entry and where it is stored.
#[derive(Debug, Clone)]
pub struct Queued {
    /// The object.
    pub path: Path,
    /// Its content.
    pub entry: QueueEntry,
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
#[error("webhook queue {path}: {source}")]
pub struct QueueError {
    /// The object or folder.
    pub path: String,
    /// The store's error.
    #[source]
    pub source: object_store::Error,
}

/// One job's webhook queue.
#[derive(Debug, Clone)]
pub struct WebhookQueue {
    store: Arc<dyn ObjectStore>,
    dir: Path,
}

impl WebhookQueue {
    /// The queue of `job` under the output prefix `prefix` of `store`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &Path, job: &str) -> WebhookQueue {
        let dir = prefix.clone().join("_webhooks").join(job).join("queue");
        WebhookQueue { store, dir }
    }

    /// The queue's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
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
        let path = self.dir.clone().join(name.as_str());
        let entry = QueueEntry {
            contract_id: delivery.contract_id,
            activity: delivery.activity.clone(),
            received_at: Utc::now(),
            body_sha256,
        };
        let bytes = serde_json::to_vec(&entry).unwrap_or_default();
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
    pub async fn pending(&self) -> Result<Vec<Queued>, QueueError> {
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
            match serde_json::from_slice::<QueueEntry>(&bytes) {
                Ok(entry) => queued.push(Queued { path, entry }),
                Err(e) => tracing::warn!(%path, error = %e, "unreadable webhook queue entry left"),
            }
        }
        queued.sort_by(|a, b| (a.entry.received_at, &a.path).cmp(&(b.entry.received_at, &b.path)));
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
