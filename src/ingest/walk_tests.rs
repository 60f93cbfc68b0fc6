//! Walk tests against the in-process fake server: exact under shifting
//! pages, resumable after a stop or a failed page.

use super::*;
use crate::http::{RetryPolicy, Throttle};
use crate::ingest::checkpoint::{Checkpoint, CheckpointWalkStore, Progress, StateStore, WalkMode};
use crate::secret::Secret;
use crate::spotdraft::client::ClientConfig;
use crate::spotdraft::fake::{self, FakeState};
use chrono::{TimeZone, Utc};
use object_store::memory::InMemory;
use object_store::path::Path;
use std::time::Duration;

async fn setup(state: FakeState) -> (SpotDraftClient, fake::Shared, StateStore, Checkpoint) {
    let expected: HashSet<String> = state.contracts.iter().map(|c| c.id.clone()).collect();
    let (base, shared) = fake::start(state).await;
    let cfg = ClientConfig {
        base_url: base,
        client_id: Secret::new("a"),
        client_secret: Secret::new("b"),
        user_email: None,
        request_timeout: Duration::from_secs(5),
    };
    let policy = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        max_total: Duration::from_secs(5),
    };
    let client =
        SpotDraftClient::with_seed(cfg, Arc::new(Throttle::new(1000, 1)), policy, 1).unwrap();
    let states = StateStore::new(Arc::new(InMemory::new()), &Path::from("p"), "job");
    let run_start = Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap();
    let walk = WalkState::new(vec![Window::full(run_start)], "r1".into());
    let cp = Checkpoint {
        watermark: None,
        progress: Some(Progress {
            mode: WalkMode::Full,
            run_start,
            walk,
            changes: None,
            enrich: None,
        }),
    };
    assert!(!expected.is_empty());
    (client, shared, states, cp)
}

/// [`walk`] over the run state, as the ingest makes it.
async fn walk_checkpoint(
    client: &SpotDraftClient,
    states: &StateStore,
    cp: &mut Checkpoint,
    opts: &WalkOptions,
    control: &WalkControl,
    on_page: &mut (dyn FnMut(&PageEvent) + Send),
) -> Result<WalkOutcome, WalkError> {
    let progress = cp.progress.as_mut().expect("a walk under way");
    let store = CheckpointWalkStore::new(states, cp.watermark, progress);
    walk(client, &store, &mut progress.walk, opts, control, on_page).await
}

fn ids(o: &WalkOutcome) -> HashSet<String> {
    o.contracts
        .iter()
        .map(|c| c.id.composite().to_string())
        .collect()
}

fn all(n: usize) -> HashSet<String> {
    (1..=n).map(|i| format!("T-{i}")).collect()
}

#[tokio::test]
async fn a_quiet_walk_costs_one_request_per_page() {
    let (client, shared, states, mut cp) = setup(FakeState {
        contracts: fake::contracts(250),
        ..Default::default()
    })
    .await;
    let out = walk_checkpoint(
        &client,
        &states,
        &mut cp,
        &WalkOptions::new(100, vec![]),
        &WalkControl::default(),
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(ids(&out), all(250));
    assert_eq!(out.contracts.len(), 250);
    assert_eq!(
        (out.list_requests, shared.lock().unwrap().list_requests),
        (3, 3)
    );
}

#[tokio::test]
async fn a_walk_under_shifting_pages_is_exact() {
    // Every 3rd list request moves the oldest contract to the front.
    let state = FakeState {
        contracts: fake::contracts(950),
        update_every: Some(3),
        ..Default::default()
    };
    let (client, _shared, states, mut cp) = setup(state).await;
    let mut pages = 0;
    let out = walk_checkpoint(
        &client,
        &states,
        &mut cp,
        &WalkOptions::new(100, vec![]),
        &WalkControl::default(),
        &mut |_| pages += 1,
    )
    .await
    .unwrap();
    assert_eq!(ids(&out), all(950));
    assert_eq!(out.contracts.len(), 950);
    let st = &cp.progress.as_ref().unwrap().walk;
    assert!(st.windows_rewalked > 0 && st.windows_split > 0, "{st:?}");
}

#[tokio::test]
async fn a_stopped_walk_resumes_without_refetching() {
    let (client, shared, states, mut cp) = setup(FakeState {
        contracts: fake::contracts(450),
        ..Default::default()
    })
    .await;
    let opts = WalkOptions::new(100, vec![]);
    let stop = WalkControl {
        page_budget: Some(2),
        ..WalkControl::default()
    };
    let err = walk_checkpoint(&client, &states, &mut cp, &opts, &stop, &mut |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, WalkError::Stopped { pages: 2 }), "{err}");
    // Resume from what was saved, as a new process would.
    let mut saved = states.load().await.unwrap();
    assert_eq!(
        saved
            .progress
            .as_ref()
            .unwrap()
            .walk
            .current
            .as_ref()
            .unwrap()
            .next_page,
        3
    );
    let out = walk_checkpoint(
        &client,
        &states,
        &mut saved,
        &opts,
        &WalkControl::default(),
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(out.list_requests, 3, "only pages 3..=5 are fetched again");
    assert_eq!(shared.lock().unwrap().list_requests, 5);
    assert_eq!(ids(&out), all(450));
}

#[tokio::test]
async fn a_failed_page_keeps_the_pages_before_it() {
    let mut state = FakeState {
        contracts: fake::contracts(300),
        ..Default::default()
    };
    // Page 2 answers a body that does not parse, on all 3 attempts.
    let bad = "{\"page\":2,\"limit\":100,\"total_results\":300,\"results\":[{}]}";
    state.script.extend([
        (0, None, ""),
        (200, None, bad),
        (200, None, bad),
        (200, None, bad),
    ]);
    let (client, shared, states, mut cp) = setup(state).await;
    let opts = WalkOptions::new(100, vec![]);
    let err = walk_checkpoint(
        &client,
        &states,
        &mut cp,
        &opts,
        &WalkControl::default(),
        &mut |_| {},
    )
    .await
    .unwrap_err();
    let chain = format!("{:#}", anyhow::Error::from(err));
    assert!(
        chain.contains("page 2) failed: malformed JSON from http://")
            && chain.contains("after 3 attempt(s)"),
        "{chain}"
    );
    let mut saved = states.load().await.unwrap();
    let out = walk_checkpoint(
        &client,
        &states,
        &mut saved,
        &opts,
        &WalkControl::default(),
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(ids(&out), all(300));
    assert_eq!(out.list_requests, 2, "page 1 is not fetched again");
    assert_eq!(shared.lock().unwrap().list_requests, 1 + 3 + 2);
}

/// A walk store in memory that records the size of every state it saves.
#[derive(Default)]
struct SizedStore {
    pages: std::sync::Mutex<HashMap<String, Vec<Contract>>>,
    state_sizes: std::sync::Mutex<Vec<usize>>,
}

impl WalkStore for SizedStore {
    async fn put_page(&self, key: &str, contracts: &[Contract]) -> Result<(), StateError> {
        let mut pages = self.pages.lock().unwrap();
        pages.insert(key.to_string(), contracts.to_vec());
        Ok(())
    }

    async fn get_page(&self, key: &str) -> Result<Vec<Contract>, StateError> {
        let pages = self.pages.lock().unwrap();
        Ok(pages.get(key).cloned().unwrap_or_default())
    }

    async fn save_progress(&self, walk: &WalkState) -> Result<(), StateError> {
        let size = serde_json::to_vec(walk).unwrap().len();
        self.state_sizes.lock().unwrap().push(size);
        Ok(())
    }
}

#[tokio::test]
async fn the_saved_state_does_not_grow_with_the_pages_walked() {
    let (client, _shared, _states, cp) = setup(FakeState {
        contracts: fake::contracts(2_000),
        ..Default::default()
    })
    .await;
    let mut st = cp.progress.unwrap().walk;
    let store = SizedStore::default();
    let opts = WalkOptions::new(10, vec![]);
    let out = walk(
        &client,
        &store,
        &mut st,
        &opts,
        &WalkControl::default(),
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(ids(&out), all(2_000));
    assert_eq!(out.list_requests, 200);
    let sizes = store.state_sizes.lock().unwrap().clone();
    assert!(sizes.len() > 200, "{} saves", sizes.len());
    let (first, last) = (sizes[2], *sizes.last().unwrap());
    // Page numbers gain digits (page 9 -> 10 -> 100): a few bytes, not a key per page.
    assert!(
        last <= first + 16,
        "state grew from {first} to {last} bytes over 200 pages"
    );
    assert_eq!(st.accepted_keys().count(), 200);
}

#[test]
fn a_state_listing_every_page_key_reads_back_as_spans() {
    let json = r#"{"pending":[],"current":{"window":{"field":"CreatedAt","start":"1970-01-01T00:00:00Z","end":"2026-05-01T00:00:00Z"},
        "attempt":1,"page_totals":[250,250],"next_page":3,"pages":["r1-000005","r1-000006"]},
        "accepted_pages":["r1-000000","r1-000001","r1-000003"],"key_prefix":"r1","next_key":7,
        "windows_rewalked":1,"windows_split":0}"#;
    let mut st: WalkState = serde_json::from_str(json).unwrap();
    st.upgrade().unwrap();
    assert_eq!(
        st.accepted_keys().collect::<Vec<_>>(),
        ["r1-000000", "r1-000001", "r1-000003"]
    );
    let cur = st.current.as_ref().unwrap();
    assert_eq!(cur.total, Some(250));
    assert_eq!(
        cur.span.keys(&st.key_prefix).collect::<Vec<_>>(),
        ["r1-000005", "r1-000006"]
    );
    // Written back, the key lists are gone.
    let text = serde_json::to_string(&st).unwrap();
    assert!(
        !text.contains("accepted_pages") && !text.contains("page_totals"),
        "{text}"
    );
    let mut bad: WalkState =
        serde_json::from_str(&json.replace("\"r1-000003\"", "\"other-3\"")).unwrap();
    assert!(bad.upgrade().unwrap_err().to_string().contains("other-3"));
}
