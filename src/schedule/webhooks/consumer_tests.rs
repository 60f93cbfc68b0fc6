//! The webhook consumer's queue semantics, with a recording run step: short
//! real durations through the HTTP endpoint, and the product's timings in
//! minutes on tokio's paused clock.

use super::consumer::{batch, Consumer, ConsumerTiming, TargetedRuns};
use super::queue::WebhookQueue;
use super::tests::{hook, signed, Hook, BODY};
use super::Delivery;
use crate::job::{load_job, Job};
use crate::runner::{TargetHint, TargetSet};
use crate::schedule::claims::RunClaims;
use futures::future::BoxFuture;
use object_store::memory::InMemory;
use object_store::path::Path;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Records each targeted run; fails them while `fail` is set; each takes `takes`.
#[derive(Default)]
struct Recording {
    calls: Mutex<Vec<TargetSet>>,
    fail: AtomicBool,
    takes: Duration,
}

impl TargetedRuns for Arc<Recording> {
    fn run(&self, _job: Job, targets: TargetSet) -> BoxFuture<'static, anyhow::Result<()>> {
        let this = self.clone();
        Box::pin(async move {
            this.calls.lock().unwrap().push(targets);
            tokio::time::sleep(this.takes).await;
            if this.fail.load(Ordering::SeqCst) {
                anyhow::bail!("the targeted run failed");
            }
            Ok(())
        })
    }
}

impl Recording {
    fn calls(&self) -> Vec<TargetSet> {
        self.calls.lock().unwrap().clone()
    }
}

fn demo_job() -> Job {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    load_job(&root.join("jobs/demo.toml")).unwrap()
}

fn timing() -> ConsumerTiming {
    ConsumerTiming {
        debounce: Duration::from_millis(300),
        max_wait: Duration::from_secs(3),
        max_contracts: 100,
        retry_initial: Duration::from_millis(100),
        retry_max: Duration::from_millis(400),
        claim_poll: Duration::from_millis(20),
    }
}

/// Starts a consumer of `h`'s queue; the sender stops it.
fn consume(h: &Hook, runs: &Arc<Recording>, claims: &RunClaims) -> watch::Sender<bool> {
    consume_joined(h, runs, claims).0
}

fn consume_joined(
    h: &Hook,
    runs: &Arc<Recording>,
    claims: &RunClaims,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (stop, stop_rx) = watch::channel(false);
    let consumer = Consumer {
        job: demo_job(),
        queue: h.queue.clone(),
        wake: h.wake.clone(),
        runs: Arc::new(runs.clone()),
        claims: claims.clone(),
        timing: timing(),
    };
    (stop, tokio::spawn(consumer.run(stop_rx)))
}

/// Waits (up to 10 s) until `done` holds.
async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition not met within 10 s");
}

#[tokio::test]
async fn deliveries_in_a_burst_make_one_targeted_run() {
    let h = hook(Arc::new(InMemory::new()), 1024).await;
    let runs = Arc::new(Recording::default());
    let _stop = consume(&h, &runs, &RunClaims::default());
    for body in [
        r#"{"activity":"CONTRACT_EXECUTED","contract_id":1}"#,
        r#"{"activity":"CONTRACT_KEY_POINTER_UPDATION","contract_id":2}"#,
        r#"{"activity":"CONTRACT_DELETED","contract_id":1}"#,
        r#"{"activity":"CONTRACT_SIGNED","contract_id":3}"#,
    ] {
        assert_eq!(signed(&h.url, body).await.status(), 202);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    until(|| !runs.calls().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let calls = runs.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        calls[0].contracts,
        BTreeMap::from([
            (1, TargetHint::Deleted),
            (2, TargetHint::MetadataStale),
            (3, TargetHint::Changed),
        ])
    );
    assert!(h.queue.pending().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_targeted_run_keeps_its_entries_for_the_next_try() {
    let h = hook(Arc::new(InMemory::new()), 1024).await;
    let runs = Arc::new(Recording::default());
    runs.fail.store(true, Ordering::SeqCst);
    let _stop = consume(&h, &runs, &RunClaims::default());
    assert_eq!(signed(&h.url, BODY).await.status(), 202);
    until(|| !runs.calls().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(h.queue.pending().await.unwrap().len(), 1);
    runs.fail.store(false, Ordering::SeqCst);
    until(|| runs.calls().len() >= 2).await;
    let queue = h.queue.clone();
    for _ in 0..100 {
        if queue.pending().await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(queue.pending().await.unwrap().is_empty());
    assert!(runs.calls().iter().all(|t| t.contracts.keys().eq([&1072])));
}

#[tokio::test]
async fn entries_queued_before_a_restart_are_run_and_runs_never_overlap_the_job() {
    let h = hook(Arc::new(InMemory::new()), 1024).await;
    let delivery: Delivery = serde_json::from_str(BODY).unwrap();
    h.queue.enqueue(&delivery, BODY.as_bytes()).await.unwrap();
    let claims = RunClaims::default();
    // A scheduled run of the job is going.
    let scheduled = claims.try_claim("demo").unwrap();
    let runs = Arc::new(Recording::default());
    let _stop = consume(&h, &runs, &claims);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(runs.calls().is_empty(), "ran over the job's scheduled run");
    drop(scheduled);
    until(|| runs.calls().len() == 1).await;
    assert_eq!(
        runs.calls()[0].contracts,
        BTreeMap::from([(1072, TargetHint::Changed)])
    );
}

#[tokio::test]
async fn a_batch_takes_at_most_max_contracts_and_the_rest_run_next() {
    let queue = WebhookQueue::new(Arc::new(InMemory::new()), &Path::from("out"), "acme");
    for id in 1..=5 {
        let body = format!(r#"{{"contract_id":{id}}}"#);
        let d: Delivery = serde_json::from_str(&body).unwrap();
        queue.enqueue(&d, body.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let pending = queue.pending().await.unwrap();
    let (targets, covered) = batch(&pending, 2);
    assert_eq!(
        targets.contracts.keys().copied().collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(covered.len(), 2);
    queue.remove(&covered).await.unwrap();
    let left: Vec<i64> = queue
        .pending()
        .await
        .unwrap()
        .iter()
        .map(|q| q.entry.contract_id)
        .collect();
    assert_eq!(left, [3, 4, 5]);
}

#[tokio::test]
async fn a_stop_lets_the_going_targeted_run_finish_and_starts_no_other() {
    let h = hook(Arc::new(InMemory::new()), 1024).await;
    let runs = Arc::new(Recording {
        takes: Duration::from_millis(500),
        ..Recording::default()
    });
    let (stop, consumer) = consume_joined(&h, &runs, &RunClaims::default());
    assert_eq!(signed(&h.url, BODY).await.status(), 202);
    until(|| runs.calls().len() == 1).await;
    stop.send(true).unwrap();
    // Queued after the stop: not run.
    let later = r#"{"activity":"CONTRACT_SIGNED","contract_id":7}"#;
    assert_eq!(signed(&h.url, later).await.status(), 202);
    tokio::time::timeout(Duration::from_secs(3), consumer)
        .await
        .expect("the consumer ends once its run finished")
        .unwrap();
    assert_eq!(runs.calls().len(), 1);
    let left: Vec<i64> = h
        .queue
        .pending()
        .await
        .unwrap()
        .iter()
        .map(|q| q.entry.contract_id)
        .collect();
    assert_eq!(
        left,
        [7],
        "the finished run's entries are removed, the new one stays"
    );
}

#[test]
fn an_erp_batch_takes_at_most_max_records_with_all_their_entries() {
    use super::consumer::erp_batch;
    use super::queue::{ErpQueueEntry, Queued};
    let entry = |id: &str, n: u32| Queued {
        path: Path::from(format!("q/{id}-{n}.json")),
        entry: ErpQueueEntry {
            record_id: id.to_string(),
            event: None,
            received_at: chrono::Utc::now(),
            body_sha256: String::new(),
        },
    };
    let pending = [
        entry("A", 1),
        entry("B", 1),
        entry("A", 2),
        entry("C", 1),
        entry("B", 2),
    ];
    let (records, covered) = erp_batch(&pending, 2);
    assert_eq!(records, ["A", "B"]);
    let covered: Vec<String> = covered.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        covered,
        ["q/A-1.json", "q/B-1.json", "q/A-2.json", "q/B-2.json"]
    );
}

/// Records when (on tokio's clock, from `t0`) each run starts and how many
/// contracts it covers; the first `fail_first` runs fail.
struct Timed {
    t0: tokio::time::Instant,
    runs: Mutex<Vec<(Duration, usize)>>,
    fail_first: usize,
}

impl TargetedRuns for Arc<Timed> {
    fn run(&self, _job: Job, targets: TargetSet) -> BoxFuture<'static, anyhow::Result<()>> {
        let this = self.clone();
        Box::pin(async move {
            let mut runs = this.runs.lock().unwrap();
            runs.push((this.t0.elapsed(), targets.contracts.len()));
            if runs.len() <= this.fail_first {
                anyhow::bail!("the targeted run failed");
            }
            Ok(())
        })
    }
}

#[tokio::test(start_paused = true)]
async fn with_the_product_timings_runs_wait_for_quiet_and_failures_back_off() {
    let queue = WebhookQueue::new(Arc::new(InMemory::new()), &Path::from("out"), "demo");
    let wake = Arc::new(tokio::sync::Notify::new());
    let job = demo_job();
    // The defaults: debounce 10 s, max wait 120 s, retries after 30 s doubling.
    let timing = ConsumerTiming::of_job(&job);
    assert_eq!(
        (timing.debounce, timing.max_wait, timing.retry_initial),
        (
            Duration::from_secs(10),
            Duration::from_secs(120),
            Duration::from_secs(30)
        )
    );
    let t0 = tokio::time::Instant::now();
    let timed = Arc::new(Timed {
        t0,
        runs: Mutex::new(vec![]),
        fail_first: 3,
    });
    let (stop, stop_rx) = watch::channel(false);
    let consumer = Consumer {
        job,
        queue: queue.clone(),
        wake: wake.clone(),
        runs: Arc::new(timed.clone()),
        claims: RunClaims::default(),
        timing,
    };
    let consuming = tokio::spawn(consumer.run(stop_rx));
    let deliver = |id: i64| {
        let (queue, wake) = (queue.clone(), wake.clone());
        async move {
            let delivery = Delivery {
                contract_id: id,
                activity: Some("CONTRACT_EXECUTED".into()),
            };
            let body = format!(r#"{{"activity":"CONTRACT_EXECUTED","contract_id":{id}}}"#);
            queue.enqueue(&delivery, body.as_bytes()).await.unwrap();
            wake.notify_one();
        }
    };
    let until = |at: u64| tokio::time::sleep_until(t0 + Duration::from_secs(at));

    // A burst every 5 s from 0 s to 30 s: one run, 10 s after the last
    // delivery; it fails three times and is retried after 30, 60, 120 s.
    for k in 0..7 {
        until(5 * k).await;
        deliver(1 + k as i64).await;
    }
    // Deliveries every 7 s from 302 s on, for longer than the max wait: a
    // run at 422 s (120 s after the first waiting), then one 10 s after the
    // last delivery (470 s).
    for k in 0..25 {
        until(302 + 7 * k).await;
        deliver(100 + k as i64).await;
    }
    until(600).await;
    let secs: Vec<(u64, usize)> = timed
        .runs
        .lock()
        .unwrap()
        .iter()
        .map(|(at, n)| (at.as_secs(), *n))
        .collect();
    assert_eq!(
        secs,
        [(40, 7), (70, 7), (130, 7), (250, 7), (422, 18), (480, 7)]
    );
    assert!(queue.pending().await.unwrap().is_empty());
    stop.send(true).unwrap();
    consuming.await.unwrap();
}
