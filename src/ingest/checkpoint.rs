//! Run state: the watermark and, while a run is under way, its progress: the
//! walks' pages (`{prefix}/state/<job>.json`, pages under
//! `{prefix}/state/<job>/pages/`) and the enrichment results fetched so far
//! (batches under `{prefix}/state/<job>/enrich/`).
//!
//! The state file is replaced with one `put` (atomic on every object store).
//! A page or a batch is spilled before the state that names it, so a state
//! never points at a missing object. Enrichment batches are append-only and
//! the state only counts them, so each batch costs one new object and one
//! state write of bounded size. The watermark only moves once the snapshot is
//! written and the run's reports are published.

use super::enrich::EnrichResult;
use super::state_error::StateError;
use super::walk::{WalkState, WalkStore};
use crate::spotdraft::model::Contract;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Which walk a run makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WalkMode {
    /// Every contract created before the run's start.
    Full,
    /// Contracts updated since the watermark (minus the overlap).
    Incremental,
}

/// A walk under way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Full or incremental.
    pub mode: WalkMode,
    /// The run's fixed start: the end of every window, the next watermark.
    pub run_start: DateTime<Utc>,
    /// Windows, pages and spilled page keys.
    pub walk: WalkState,
    /// Full walks with a watermark: the walk of contracts updated since the
    /// watermark minus the overlap (their metadata values are fetched again).
    #[serde(default)]
    pub changes: Option<WalkState>,
    /// Enrichment under way: its batches of results.
    #[serde(default)]
    pub enrich: Option<EnrichProgress>,
}

/// Enrichment results spilled so far: batch objects `<key_prefix>-<n>` for
/// `n` in `0..batches`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrichProgress {
    /// Prefix of this run's batch keys.
    pub key_prefix: String,
    /// Batches written.
    pub batches: u64,
}

impl EnrichProgress {
    /// The key of batch `n`.
    pub fn key(&self, n: u64) -> String {
        format!("{}-{n:06}", self.key_prefix)
    }
}

/// The whole state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Start of the last run whose snapshot was written (ISO 8601 UTC).
    pub watermark: Option<DateTime<Utc>>,
    /// The unfinished walk, if any.
    pub progress: Option<Progress>,
}

/// Reads and writes one job's run state.
#[derive(Debug, Clone)]
pub struct StateStore {
    store: Arc<dyn ObjectStore>,
    state: Path,
    pages: Path,
    enrich: Path,
}

impl StateStore {
    /// The state of `job` under `prefix`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &Path, job: &str) -> Self {
        let dir = prefix.clone().join("state");
        StateStore {
            store,
            state: dir.clone().join(format!("{job}.json")),
            pages: dir.clone().join(job).join("pages"),
            enrich: dir.join(job).join("enrich"),
        }
    }

    /// A state kept in its own folder `dir` (`dir/state.json`, `dir/pages/`,
    /// `dir/enrich/`): what a backfill or a targeted run spills, apart from the
    /// nightly state and its watermark.
    pub fn in_dir(store: Arc<dyn ObjectStore>, dir: &Path) -> Self {
        StateStore {
            store,
            state: dir.clone().join("state.json"),
            pages: dir.clone().join("pages"),
            enrich: dir.clone().join("enrich"),
        }
    }

    /// The state file's path.
    pub fn state_path(&self) -> &Path {
        &self.state
    }

    /// The state, or the empty state when there is none yet.
    pub async fn load(&self) -> Result<Checkpoint, StateError> {
        match self.get(&self.state).await? {
            None => Ok(Checkpoint::default()),
            Some(bytes) => {
                let mut checkpoint: Checkpoint =
                    serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
                        path: self.state.to_string(),
                        source,
                    })?;
                if let Some(p) = &mut checkpoint.progress {
                    p.walk.upgrade()?;
                    if let Some(changes) = &mut p.changes {
                        changes.upgrade()?;
                    }
                }
                Ok(checkpoint)
            }
        }
    }

    /// Replaces the state (one put).
    pub async fn save(&self, checkpoint: &Checkpoint) -> Result<(), StateError> {
        let json = serde_json::to_vec_pretty(checkpoint).expect("state serializes");
        self.put(&self.state, json).await
    }

    /// Spills one fetched page under `key`.
    pub async fn put_page(&self, key: &str, contracts: &[Contract]) -> Result<(), StateError> {
        let json = serde_json::to_vec(contracts).expect("contracts serialize");
        self.put(&self.pages.clone().join(format!("{key}.json")), json)
            .await
    }

    /// Reads a spilled page back.
    pub async fn get_page(&self, key: &str) -> Result<Vec<Contract>, StateError> {
        let path = self.pages.clone().join(format!("{key}.json"));
        self.get_json(&path, "spilled page missing").await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &Path,
        missing: &'static str,
    ) -> Result<T, StateError> {
        let bytes = self.get(path).await?.ok_or_else(|| StateError::Store {
            path: path.to_string(),
            source: object_store::Error::NotFound {
                path: path.to_string(),
                source: missing.into(),
            },
        })?;
        serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
            path: path.to_string(),
            source,
        })
    }

    /// Spills one batch of enrichment results under `key`.
    pub async fn put_enrich_batch(
        &self,
        key: &str,
        results: &[EnrichResult],
    ) -> Result<(), StateError> {
        let json = serde_json::to_vec(results).expect("results serialize");
        self.put(&self.enrich.clone().join(format!("{key}.json")), json)
            .await
    }

    /// Reads a batch of enrichment results back.
    pub async fn get_enrich_batch(&self, key: &str) -> Result<Vec<EnrichResult>, StateError> {
        let path = self.enrich.clone().join(format!("{key}.json"));
        self.get_json(&path, "spilled enrichment batch missing")
            .await
    }

    /// Deletes every spilled page and enrichment batch (after a run completed).
    pub async fn clear_pages(&self) -> Result<(), StateError> {
        self.clear(&self.pages).await?;
        self.clear(&self.enrich).await
    }

    /// Deletes the spilled objects and the state file (a partial run's own
    /// state folder, once its snapshot is written).
    pub async fn clear_all(&self) -> Result<(), StateError> {
        self.clear_pages().await?;
        match self.store.delete(&self.state).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(StateError::Store {
                path: self.state.to_string(),
                source,
            }),
        }
    }

    async fn clear(&self, dir: &Path) -> Result<(), StateError> {
        let err = |source| StateError::Store {
            path: dir.to_string(),
            source,
        };
        let metas: Vec<_> = self
            .store
            .list(Some(dir))
            .try_collect()
            .await
            .map_err(err)?;
        for meta in metas {
            match self.store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(source) => {
                    return Err(StateError::Store {
                        path: meta.location.to_string(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    async fn put(&self, path: &Path, bytes: Vec<u8>) -> Result<(), StateError> {
        self.store
            .put(path, PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|source| StateError::Store {
                path: path.to_string(),
                source,
            })
    }

    async fn get(&self, path: &Path) -> Result<Option<Bytes>, StateError> {
        let err = |source| StateError::Store {
            path: path.to_string(),
            source,
        };
        match self.store.get(path).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(err)?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }
}

/// Which walk of a run a [`CheckpointWalkStore`] saves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkSlot {
    /// The run's main walk ([`Progress::walk`]).
    Main,
    /// The walk of contracts updated since the watermark ([`Progress::changes`]).
    Changes,
}

/// The run state as a walk's [`WalkStore`]: pages are spilled through the
/// [`StateStore`], and progress is saved as the whole [`Checkpoint`] (this
/// watermark, with the run's progress and the walk's latest state in its
/// slot) in one put.
#[derive(Debug, Clone)]
pub struct CheckpointWalkStore<'a> {
    states: &'a StateStore,
    watermark: Option<DateTime<Utc>>,
    progress: Progress,
    slot: WalkSlot,
}

impl<'a> CheckpointWalkStore<'a> {
    /// Saves the main walk of `progress` through `states`, keeping `watermark`.
    pub fn new(
        states: &'a StateStore,
        watermark: Option<DateTime<Utc>>,
        progress: &Progress,
    ) -> Self {
        Self::for_slot(states, watermark, progress, WalkSlot::Main)
    }

    /// Saves the walk in `slot` of `progress`, keeping the rest of it.
    pub fn for_slot(
        states: &'a StateStore,
        watermark: Option<DateTime<Utc>>,
        progress: &Progress,
        slot: WalkSlot,
    ) -> Self {
        CheckpointWalkStore {
            states,
            watermark,
            progress: progress.clone(),
            slot,
        }
    }
}

impl WalkStore for CheckpointWalkStore<'_> {
    async fn put_page(&self, key: &str, contracts: &[Contract]) -> Result<(), StateError> {
        self.states.put_page(key, contracts).await
    }

    async fn get_page(&self, key: &str) -> Result<Vec<Contract>, StateError> {
        self.states.get_page(key).await
    }

    async fn save_progress(&self, walk: &WalkState) -> Result<(), StateError> {
        let mut progress = self.progress.clone();
        match self.slot {
            WalkSlot::Main => progress.walk = walk.clone(),
            WalkSlot::Changes => progress.changes = Some(walk.clone()),
        }
        let checkpoint = Checkpoint {
            watermark: self.watermark,
            progress: Some(progress),
        };
        self.states.save(&checkpoint).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn state_and_pages_round_trip_and_pages_clear() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let s = StateStore::new(store.clone(), &Path::from("runs"), "nightly");
        assert_eq!(s.load().await.unwrap(), Checkpoint::default());
        let cp = Checkpoint {
            watermark: Some(Utc::now()),
            progress: None,
        };
        s.save(&cp).await.unwrap();
        assert_eq!(s.load().await.unwrap(), cp);
        assert!(store
            .get(&Path::from("runs/state/nightly.json"))
            .await
            .is_ok());
        let c: Contract =
            serde_json::from_str(r#"{"id":"T-1","created":"2026-01-01T00:00:00Z"}"#).unwrap();
        s.put_page("a-1", std::slice::from_ref(&c)).await.unwrap();
        assert_eq!(s.get_page("a-1").await.unwrap(), vec![c]);
        s.clear_pages().await.unwrap();
        assert!(s.get_page("a-1").await.is_err());
        assert_eq!(
            s.load().await.unwrap(),
            cp,
            "clearing pages keeps the state"
        );
    }

    #[tokio::test]
    async fn a_corrupt_state_names_its_path() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        store
            .put(&Path::from("p/state/j.json"), PutPayload::from("{nope"))
            .await
            .unwrap();
        let err = StateStore::new(store, &Path::from("p"), "j")
            .load()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("p/state/j.json"), "{err}");
    }

    #[tokio::test]
    async fn enrichment_batches_round_trip_and_clear_with_the_pages() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let s = StateStore::new(store.clone(), &Path::from("p"), "j");
        let progress = EnrichProgress {
            key_prefix: "r1e".into(),
            batches: 1,
        };
        let results = vec![EnrichResult {
            id: "T-1".into(),
            vanished_at: Some("2026-11-01T00:00:00Z".into()),
            ..EnrichResult::default()
        }];
        s.put_enrich_batch(&progress.key(0), &results)
            .await
            .unwrap();
        assert!(store
            .head(&Path::from("p/state/j/enrich/r1e-000000.json"))
            .await
            .is_ok());
        assert_eq!(s.get_enrich_batch(&progress.key(0)).await.unwrap(), results);
        s.clear_pages().await.unwrap();
        let err = s.get_enrich_batch(&progress.key(0)).await.unwrap_err();
        assert!(err.to_string().contains("r1e-000000.json"), "{err}");
    }

    #[tokio::test]
    async fn a_state_file_of_the_previous_version_still_loads() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let old = r#"{"watermark":null,"progress":{"mode":"full","run_start":"2026-11-01T00:00:00Z",
            "walk":{"pending":[],"current":null,"accepted_pages":["a-000000"],"key_prefix":"a",
            "next_key":1,"windows_rewalked":0,"windows_split":0}}}"#;
        store
            .put(&Path::from("p/state/j.json"), PutPayload::from(old))
            .await
            .unwrap();
        let cp = StateStore::new(store, &Path::from("p"), "j")
            .load()
            .await
            .unwrap();
        let p = cp.progress.unwrap();
        assert_eq!((p.changes, p.enrich), (None, None));
        assert_eq!(p.walk.accepted_keys().collect::<Vec<_>>(), ["a-000000"]);
    }
}
