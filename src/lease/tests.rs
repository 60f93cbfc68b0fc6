//! Lease tests. Each scenario runs on three set-ups: `InMemory` and `LocalFileSystem`
//! with [`LeaseScheme::Auto`] (whose probe must pick ConditionalUpdate and Generations
//! respectively), and `InMemory` with Generations forced. Expiry is driven by a
//! [`ManualClock`]; only the keep-alive tests use real time.

use super::*;
use crate::error_chain::error_chain;
use crate::test_store::FaultyStore;
use chrono::TimeZone;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use std::io::Write;
use std::sync::Mutex;

const JOB: &str = "demo";
const TTL: Duration = Duration::from_secs(60);
const SEC: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
enum Backend {
    /// `InMemory`, Auto (→ ConditionalUpdate).
    Memory,
    /// `LocalFileSystem` in a temp folder, Auto (→ Generations).
    Local,
    /// `InMemory`, Generations forced.
    MemoryGenerations,
}

/// A store, a prefix in it and a test clock.
struct Env {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    clock: ManualClock,
    config: LeaseConfig,
    /// The scheme the lease must end up using.
    expected: LeaseScheme,
    _dir: Option<tempfile::TempDir>,
}

/// 2026-11-30T01:59:00Z: leases taken then with the default TTL expire at 02:00:00Z.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 1, 59, 0).unwrap()
}

fn holder(n: u32) -> Holder {
    Holder {
        host: format!("host-{n}"),
        pid: 1000 + n,
        run_id: format!("run-{n}"),
    }
}

fn local_store() -> (Arc<dyn ObjectStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap()),
        dir,
    )
}

impl Env {
    fn new(backend: Backend) -> Env {
        let (store, dir, scheme, expected): (Arc<dyn ObjectStore>, _, _, _) = match backend {
            Backend::Memory => (
                Arc::new(InMemory::new()),
                None,
                LeaseScheme::Auto,
                LeaseScheme::ConditionalUpdate,
            ),
            Backend::Local => {
                let (store, dir) = local_store();
                (
                    store,
                    Some(dir),
                    LeaseScheme::Auto,
                    LeaseScheme::Generations,
                )
            }
            Backend::MemoryGenerations => (
                Arc::new(InMemory::new()),
                None,
                LeaseScheme::Generations,
                LeaseScheme::Generations,
            ),
        };
        let clock = ManualClock::new(t0());
        let config = LeaseConfig {
            ttl: TTL,
            scheme,
            clock: clock.clock(),
        };
        Env {
            store,
            prefix: Path::from("out/demo"),
            clock,
            config,
            expected,
            _dir: dir,
        }
    }

    async fn acquire(&self, holder: &Holder) -> Result<Lease, LeaseError> {
        acquire(
            self.store.clone(),
            &self.prefix,
            JOB,
            holder.clone(),
            &self.config,
            false,
        )
        .await
    }

    async fn break_lease(&self, holder: &Holder) -> Result<Lease, LeaseError> {
        acquire(
            self.store.clone(),
            &self.prefix,
            JOB,
            holder.clone(),
            &self.config,
            true,
        )
        .await
    }

    /// The same store and scheme, on the system clock with a short TTL.
    fn real_time(&self, ttl: Duration) -> LeaseConfig {
        LeaseConfig {
            ttl,
            scheme: self.config.scheme,
            clock: Clock::system(),
        }
    }

    /// Where the first lease object of the expected scheme lives.
    fn first_object(&self) -> Path {
        match self.expected {
            LeaseScheme::Generations => {
                Path::from("out/demo/_leases/demo/00000000000000000001.json")
            }
            _ => Path::from("out/demo/_leases/demo.json"),
        }
    }

    async fn json(&self, path: &Path) -> serde_json::Value {
        let bytes = self.store.get(path).await.unwrap().bytes().await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// Generation object names under the Generations folder, sorted.
    async fn generation_names(&self) -> Vec<String> {
        let dir = Path::from("out/demo/_leases/demo");
        let listing = self.store.list_with_delimiter(Some(&dir)).await.unwrap();
        let mut names: Vec<String> = listing
            .objects
            .iter()
            .map(|m| m.location.filename().unwrap().to_string())
            .collect();
        names.sort();
        names
    }
}

/// Asserts `err` is Held by `by`.
#[track_caller]
fn assert_held(err: &LeaseError, by: &Holder) {
    match err {
        LeaseError::Held { holder, job, .. } => {
            assert_eq!(holder, by, "{err}");
            assert_eq!(job, JOB);
        }
        other => panic!("expected Held by {by}, got {other:?}"),
    }
}

/// Asserts `err` is Lost, taken by `by` when known.
#[track_caller]
fn assert_lost(err: &LeaseError, by: Option<&Holder>) {
    match err {
        LeaseError::Lost { by: found, job, .. } => {
            assert_eq!(found.as_ref(), by, "{err}");
            assert_eq!(job, JOB);
        }
        other => panic!("expected Lost, got {other:?}"),
    }
}

/// Log lines written on this thread while the guard lives.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn warnings(&self) -> Vec<String> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .filter(|l| l.contains(" WARN "))
            .map(str::to_string)
            .collect()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs each named scenario `async fn name(Backend)` on every back end.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::Backend;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory_conditional_update() {
                super::$name(Backend::Memory).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local_generations() {
                super::$name(Backend::Local).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory_generations() {
                super::$name(Backend::MemoryGenerations).await
            }
        }
    )*};
}

on_every_backend!(
    held_names_the_holder,
    expired_lease_is_taken_over,
    released_lease_is_free_at_once,
    break_lease_takes_a_live_lease,
    one_of_eight_racers_wins,
    one_of_eight_racers_takes_over_an_expired_lease,
    renew_extends_the_expiry,
    lease_object_content_and_paths,
    corrupt_lease_object,
    keep_alive_keeps_the_lease_until_dropped,
    guard_release_frees_the_lease,
    guard_check_reports_a_broken_lease,
    guard_check_reports_expiry_when_renewals_fail,
);

async fn held_names_the_holder(backend: Backend) {
    let env = Env::new(backend);
    let first = env.acquire(&holder(1)).await.unwrap();
    assert_eq!(first.scheme(), env.expected);
    assert_eq!(first.holder(), &holder(1));
    assert_eq!(first.previous_holder(), None);
    assert_eq!(first.path(), &env.first_object());

    let err = env.acquire(&holder(2)).await.unwrap_err();
    assert_held(&err, &holder(1));
    let LeaseError::Held {
        path, expires_at, ..
    } = &err
    else {
        unreachable!()
    };
    assert_eq!(path, &env.first_object());
    assert_eq!(*expires_at, t0() + TTL);
    let message = err.to_string();
    for part in [
        "job \"demo\" is already running",
        &format!("lease {} is held by", env.first_object()),
        "run-1 (pid 1001 on host-1)",
        "until 2026-11-30T02:00:00Z",
        "take it over with --break-lease",
    ] {
        assert!(message.contains(part), "{part:?} not in {message:?}");
    }
    // Still held a second before expiry.
    env.clock.advance(TTL - SEC);
    assert_held(&env.acquire(&holder(2)).await.unwrap_err(), &holder(1));
}

async fn expired_lease_is_taken_over(backend: Backend) {
    let env = Env::new(backend);
    let (logs, _logging) = Logs::capture();
    let mut first = env.acquire(&holder(1)).await.unwrap();
    assert!(logs.warnings().is_empty(), "{:?}", logs.warnings());
    env.clock.advance(TTL + SEC);

    let second = env.acquire(&holder(2)).await.unwrap();
    assert_eq!(second.previous_holder(), Some(&holder(1)));
    let warnings = logs.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    for part in ["run-1", "1001", "host-1", "expired at 2026-11-30T02:00:00Z"] {
        assert!(
            warnings[0].contains(part),
            "{part:?} not in {:?}",
            warnings[0]
        );
    }

    let err = first.renew().await.unwrap_err();
    assert_lost(&err, Some(&holder(2)));
    assert!(
        err.to_string()
            .contains("it is now held by run-2 (pid 1002 on host-2)"),
        "{err}"
    );
    // The failed renewal left the new holder's lease alone.
    assert_held(&env.acquire(&holder(3)).await.unwrap_err(), &holder(2));
}

async fn released_lease_is_free_at_once(backend: Backend) {
    let env = Env::new(backend);
    let (logs, _logging) = Logs::capture();
    let first = env.acquire(&holder(1)).await.unwrap();
    first.release().await.unwrap();

    let second = env.acquire(&holder(2)).await.unwrap();
    assert_eq!(second.previous_holder(), None);
    assert!(logs.warnings().is_empty(), "{:?}", logs.warnings());
    assert_held(&env.acquire(&holder(3)).await.unwrap_err(), &holder(2));
}

async fn break_lease_takes_a_live_lease(backend: Backend) {
    let env = Env::new(backend);
    let (logs, _logging) = Logs::capture();
    let mut first = env.acquire(&holder(1)).await.unwrap();

    let second = env.break_lease(&holder(2)).await.unwrap();
    assert_eq!(second.previous_holder(), Some(&holder(1)));
    let warnings = logs.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("broke the live lease of run-1 (pid 1001 on host-1)"),
        "{warnings:?}"
    );

    assert_lost(&first.renew().await.unwrap_err(), Some(&holder(2)));
    assert_lost(&first.release().await.unwrap_err(), Some(&holder(2)));
    assert_held(&env.acquire(&holder(3)).await.unwrap_err(), &holder(2));
}

async fn one_of_eight_racers_wins(backend: Backend) {
    let env = Env::new(backend);
    race_of_eight(&env, None).await;
}

/// The same race over an expired lease: the takeover is a conditional write too.
async fn one_of_eight_racers_takes_over_an_expired_lease(backend: Backend) {
    let env = Env::new(backend);
    env.acquire(&holder(100)).await.unwrap();
    env.clock.advance(TTL + SEC);
    race_of_eight(&env, Some(&holder(100))).await;
}

/// Eight runs acquire at once: one wins (displacing `previous`), the others are told
/// it holds the lease.
async fn race_of_eight(env: &Env, previous: Option<&Holder>) {
    let start = Arc::new(tokio::sync::Barrier::new(8));
    let racers: Vec<_> = (1..=8)
        .map(|n| {
            let (store, prefix, config) =
                (env.store.clone(), env.prefix.clone(), env.config.clone());
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                acquire(store, &prefix, JOB, holder(n), &config, false).await
            })
        })
        .collect();
    let mut results = Vec::new();
    for racer in racers {
        results.push(racer.await.unwrap());
    }
    let winners: Vec<&Lease> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert_eq!(winners[0].previous_holder(), previous);
    let winner = winners[0].holder();
    for err in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_held(err, winner);
    }
    assert_held(&env.acquire(&holder(9)).await.unwrap_err(), winner);
}

async fn renew_extends_the_expiry(backend: Backend) {
    let env = Env::new(backend);
    let mut first = env.acquire(&holder(1)).await.unwrap();
    env.clock.advance(50 * SEC);
    first.renew().await.unwrap();
    assert_eq!(first.expires_at(), t0() + 110 * SEC);

    env.clock.advance(20 * SEC);
    let err = env.acquire(&holder(2)).await.unwrap_err();
    assert_held(&err, &holder(1));
    let LeaseError::Held { expires_at, .. } = err else {
        unreachable!()
    };
    assert_eq!(expires_at, t0() + 110 * SEC);

    env.clock.set(t0() + 110 * SEC);
    let second = env.acquire(&holder(2)).await.unwrap();
    assert_eq!(second.previous_holder(), Some(&holder(1)));
}

async fn lease_object_content_and_paths(backend: Backend) {
    let env = Env::new(backend);
    let mut lease = env.acquire(&holder(1)).await.unwrap();
    let first = env.first_object();
    let json = env.json(&first).await;
    assert_eq!(
        json,
        serde_json::json!({
            "holder": {"host": "host-1", "pid": 1001, "run_id": "run-1"},
            "acquired_at": "2026-11-30T01:59:00Z",
            "renewed_at": "2026-11-30T01:59:00Z",
            "expires_at": "2026-11-30T02:00:00Z",
            "generation": 1,
            "released": false,
        })
    );

    env.clock.advance(10 * SEC);
    lease.renew().await.unwrap();
    env.clock.advance(10 * SEC);
    lease.renew().await.unwrap();
    let generation = |n: u64| format!("{n:020}.json");
    match env.expected {
        LeaseScheme::Generations => {
            // The current generation and the one before it are kept.
            assert_eq!(env.generation_names().await, [generation(2), generation(3)]);
            assert_eq!(
                lease.path().to_string(),
                format!("out/demo/_leases/demo/{}", generation(3))
            );
        }
        _ => {
            assert_eq!(lease.path(), &first);
            assert!(env.generation_names().await.is_empty());
        }
    }
    let json = env.json(lease.path()).await;
    assert_eq!(json["acquired_at"], "2026-11-30T01:59:00Z");
    assert_eq!(json["renewed_at"], "2026-11-30T01:59:20Z");
    assert_eq!(json["expires_at"], "2026-11-30T02:00:20Z");
    assert_eq!(json["generation"], 3);

    let path = lease.path().clone();
    lease.release().await.unwrap();
    let released_at = match env.expected {
        LeaseScheme::Generations => Path::from(format!("out/demo/_leases/demo/{}", generation(4))),
        _ => path,
    };
    let json = env.json(&released_at).await;
    assert_eq!(json["released"], true);
    assert_eq!(json["generation"], 4);
}

async fn corrupt_lease_object(backend: Backend) {
    let env = Env::new(backend);
    let path = env.first_object();
    env.store
        .put(&path, PutPayload::from_static(b"{\"holder\": trunc"))
        .await
        .unwrap();

    let err = env.acquire(&holder(1)).await.unwrap_err();
    let LeaseError::Corrupt {
        path: reported,
        source,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(reported, &path);
    let message = err.to_string();
    assert!(
        message.contains(&path.to_string()) && message.contains("--break-lease"),
        "{message}"
    );
    assert!(
        !message.contains(&source.to_string()),
        "the message repeats its source: {message}"
    );
    assert!(std::error::Error::source(&err).is_some());

    let lease = env.break_lease(&holder(1)).await.unwrap();
    assert_eq!(lease.previous_holder(), None);
    assert_held(&env.acquire(&holder(2)).await.unwrap_err(), &holder(1));
}

async fn keep_alive_keeps_the_lease_until_dropped(backend: Backend) {
    let env = Env::new(backend);
    let ttl = Duration::from_millis(500);
    let config = env.real_time(ttl);
    let take = |n: u32| {
        acquire(
            env.store.clone(),
            &env.prefix,
            JOB,
            holder(n),
            &config,
            false,
        )
    };

    let guard = take(1).await.unwrap().keep_alive();
    assert_eq!(guard.holder(), &holder(1));
    let start = std::time::Instant::now();
    while start.elapsed() < 3 * ttl {
        assert_held(&take(2).await.unwrap_err(), &holder(1));
        guard.check().unwrap();
        tokio::time::sleep(ttl / 5).await;
    }

    drop(guard);
    tokio::time::sleep(ttl + ttl / 2).await;
    let second = take(2).await.unwrap();
    assert_eq!(second.previous_holder(), Some(&holder(1)));
}

async fn guard_release_frees_the_lease(backend: Backend) {
    let env = Env::new(backend);
    let first = env.acquire(&holder(1)).await.unwrap().keep_alive();
    assert_eq!(first.previous_holder(), None);
    first.release().await.unwrap();
    let second = env.acquire(&holder(2)).await.unwrap();
    assert_eq!(second.previous_holder(), None);
}

async fn guard_check_reports_a_broken_lease(backend: Backend) {
    let env = Env::new(backend);
    let config = env.real_time(Duration::from_millis(300));
    let take = |n: u32, break_lease: bool| {
        acquire(
            env.store.clone(),
            &env.prefix,
            JOB,
            holder(n),
            &config,
            break_lease,
        )
    };
    let guard = take(1, false).await.unwrap().keep_alive();
    guard.check().unwrap();
    let _second = take(2, true).await.unwrap();

    let start = std::time::Instant::now();
    let err = loop {
        match guard.check() {
            Err(e) => break e,
            Ok(()) if start.elapsed() > Duration::from_secs(5) => {
                panic!("the break went unnoticed")
            }
            Ok(()) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    assert_lost(&err, Some(&holder(2)));
    assert!(
        guard.lost_flag().load(std::sync::atomic::Ordering::SeqCst),
        "the flag that stops the page walk is up"
    );
    assert_lost(&guard.release().await.unwrap_err(), Some(&holder(2)));
}

async fn guard_check_reports_expiry_when_renewals_fail(backend: Backend) {
    let env = Env::new(backend);
    let flaky = FaultyStore::new(env.store.clone());
    let ttl = Duration::from_millis(600);
    let config = env.real_time(ttl);
    let store: Arc<dyn ObjectStore> = flaky.clone();
    // Taken before the lease's expiry is computed, so never later than it.
    let acquired = std::time::Instant::now();
    let lease = acquire(store, &env.prefix, JOB, holder(1), &config, false)
        .await
        .unwrap();
    let guard = lease.keep_alive();

    flaky.fail_writes(true);
    // Failed renewals are retried: the lease counts as held until it expires.
    tokio::time::sleep(ttl / 2).await;
    if acquired.elapsed() < ttl - ttl / 6 {
        guard.check().unwrap();
    }
    let err = loop {
        match guard.check() {
            Err(e) => break e,
            Ok(()) if acquired.elapsed() > 5 * ttl => panic!("the expiry went unnoticed"),
            Ok(()) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    assert!(
        acquired.elapsed() >= ttl,
        "lost after {:?}",
        acquired.elapsed()
    );
    assert_lost(&err, None);

    // Once lost, always lost, even when the store recovers.
    flaky.fail_writes(false);
    tokio::time::sleep(ttl).await;
    assert_lost(&guard.check().unwrap_err(), None);
}

/// A holder that stalled past its expiry must not win back the lease by creating a
/// generation that a cleanup had deleted.
async fn stale_holder_cannot_refill_a_deleted_generation(backend: Backend) {
    let env = Env::new(backend);
    let mut stale = env.acquire(&holder(1)).await.unwrap();
    env.clock.advance(TTL + SEC);
    let mut current = env.acquire(&holder(2)).await.unwrap();
    current.renew().await.unwrap();
    current.renew().await.unwrap();
    assert_eq!(
        env.generation_names().await,
        [format!("{:020}.json", 3), format!("{:020}.json", 4)]
    );

    // Generation 2 (the name `stale` renews to) was deleted: the create succeeds.
    assert_lost(&stale.renew().await.unwrap_err(), Some(&holder(2)));
    assert_eq!(
        env.generation_names().await,
        [format!("{:020}.json", 3), format!("{:020}.json", 4)]
    );
    assert_held(&env.acquire(&holder(3)).await.unwrap_err(), &holder(2));
}

mod stale_holder_cannot_refill_a_deleted_generation {
    use super::Backend;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local_generations() {
        super::stale_holder_cannot_refill_a_deleted_generation(Backend::Local).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_generations() {
        super::stale_holder_cannot_refill_a_deleted_generation(Backend::MemoryGenerations).await
    }
}

#[tokio::test]
async fn auto_probe_picks_the_scheme_the_store_supports() {
    let prefix = Path::from("out/demo");
    let memory: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    assert_eq!(
        probe(memory.as_ref(), &prefix).await.unwrap(),
        LeaseScheme::ConditionalUpdate
    );
    memory
        .head(&Path::from("out/demo/_leases/.probe"))
        .await
        .unwrap();

    let (local, _dir) = local_store();
    assert_eq!(
        probe(local.as_ref(), &prefix).await.unwrap(),
        LeaseScheme::Generations
    );
    local
        .head(&Path::from("out/demo/_leases/.probe"))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_probe_sees_through_a_store_that_ignores_conditions() {
    let prefix = Path::from("out/demo");
    let store = FaultyStore::in_memory();
    store.ignore_if_match(true);
    assert_eq!(
        probe(store.as_ref(), &prefix).await.unwrap(),
        LeaseScheme::Generations,
        "a stale If-Match update succeeded: Generations, which need only If-None-Match"
    );
    store.ignore_if_none_match(true);
    let err = probe(store.as_ref(), &prefix).await.unwrap_err();
    assert!(
        matches!(err, LeaseError::NoConditionalWrites { .. }),
        "{err:?}"
    );
    store.heal();
    assert_eq!(
        probe(store.as_ref(), &prefix).await.unwrap(),
        LeaseScheme::ConditionalUpdate
    );
}

/// Whether the newest lease object at `path` (or under the folder `path`) is released.
async fn released(store: &dyn ObjectStore, path: &str) -> bool {
    let path = Path::from(path);
    let path = match store
        .list_with_delimiter(Some(&path))
        .await
        .unwrap()
        .objects
        .iter()
        .max_by_key(|m| m.location.clone())
    {
        Some(newest) => newest.location.clone(),
        None => path,
    };
    let bytes = store.get(&path).await.unwrap().bytes().await.unwrap();
    serde_json::from_slice::<LeaseRecord>(&bytes)
        .unwrap()
        .released
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generations_refuses_a_live_conditional_update_lease() {
    let clock = ManualClock::new(t0());
    let prefix = Path::from("out/demo");
    let config = |scheme| LeaseConfig {
        ttl: TTL,
        scheme,
        clock: clock.clock(),
    };
    let take = |store: &Arc<dyn ObjectStore>, n: u32, scheme, break_lease| {
        let (store, config, prefix) = (store.clone(), config(scheme), &prefix);
        async move { acquire(store, prefix, JOB, holder(n), &config, break_lease).await }
    };
    // PutMode::Create works on LocalFileSystem: a run configured for ConditionalUpdate
    // gets a first lease there (it could not renew it: no PutMode::Update).
    let (store, _dir) = local_store();
    let first = take(&store, 1, LeaseScheme::ConditionalUpdate, false)
        .await
        .unwrap();
    assert_eq!(first.path().as_ref(), "out/demo/_leases/demo.json");

    let err = take(&store, 2, LeaseScheme::Auto, false).await.unwrap_err();
    assert_held(&err, &holder(1));
    let LeaseError::Held { path, .. } = &err else {
        unreachable!()
    };
    assert_eq!(path.as_ref(), "out/demo/_leases/demo.json");
    // The refused run took its own lease first, and released it.
    assert!(released(store.as_ref(), "out/demo/_leases/demo").await);

    // Once the other scheme's lease expired, it no longer stands in the way.
    clock.advance(TTL);
    let second = take(&store, 2, LeaseScheme::Auto, false).await.unwrap();
    assert_eq!(second.scheme(), LeaseScheme::Generations);

    // With --break-lease the other scheme's live lease is broken (marked released).
    let (store, _dir) = local_store();
    take(&store, 1, LeaseScheme::ConditionalUpdate, false)
        .await
        .unwrap();
    let second = take(&store, 2, LeaseScheme::Auto, true).await.unwrap();
    assert_eq!(second.scheme(), LeaseScheme::Generations);
    assert_eq!(second.previous_holder(), Some(&holder(1)));
    assert!(released(store.as_ref(), "out/demo/_leases/demo.json").await);
    assert_held(
        &take(&store, 3, LeaseScheme::Auto, false).await.unwrap_err(),
        &holder(2),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_update_refuses_a_live_generations_lease() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let clock = ManualClock::new(t0());
    let prefix = Path::from("out/demo");
    let config = |scheme| LeaseConfig {
        ttl: TTL,
        scheme,
        clock: clock.clock(),
    };
    let take = |n: u32, scheme, break_lease| {
        let (store, config, prefix) = (store.clone(), config(scheme), &prefix);
        async move { acquire(store, prefix, JOB, holder(n), &config, break_lease).await }
    };
    let mut first = take(1, LeaseScheme::Generations, false).await.unwrap();

    let err = take(2, LeaseScheme::Auto, false).await.unwrap_err();
    assert_held(&err, &holder(1));
    let LeaseError::Held { path, .. } = &err else {
        unreachable!()
    };
    assert_eq!(
        path.as_ref(),
        "out/demo/_leases/demo/00000000000000000001.json"
    );
    assert!(released(store.as_ref(), "out/demo/_leases/demo.json").await);

    let second = take(2, LeaseScheme::Auto, true).await.unwrap();
    assert_eq!(second.scheme(), LeaseScheme::ConditionalUpdate);
    assert_eq!(second.previous_holder(), Some(&holder(1)));
    assert_lost(&first.renew().await.unwrap_err(), Some(&holder(2)));
    assert_held(
        &take(3, LeaseScheme::Generations, false).await.unwrap_err(),
        &holder(2),
    );

    second.release().await.unwrap();
    take(3, LeaseScheme::Generations, false).await.unwrap();
}

#[tokio::test]
async fn store_errors_name_the_operation_and_keep_their_source() {
    let flaky = FaultyStore::new(Arc::new(InMemory::new()));
    flaky.fail_writes(true);
    let config = LeaseConfig {
        scheme: LeaseScheme::ConditionalUpdate,
        ..LeaseConfig::default()
    };
    let store: Arc<dyn ObjectStore> = flaky;
    let err = acquire(store, &Path::from("out"), JOB, holder(1), &config, false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, LeaseError::Store { op: "create", .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "lease out/_leases/demo.json: create failed"
    );
    assert!(
        error_chain(&err).contains(crate::test_store::INJECTED),
        "{}",
        error_chain(&err)
    );
}

#[test]
fn holder_of_this_process() {
    let me = Holder::current("run-x");
    assert_eq!(me.pid, std::process::id());
    assert_eq!(me.run_id, "run-x");
    assert!(
        !me.host.is_empty() && me.host.trim() == me.host,
        "{:?}",
        me.host
    );
    assert_eq!(holder(1).to_string(), "run-1 (pid 1001 on host-1)");
}

#[test]
fn default_config() {
    let config = LeaseConfig::default();
    assert_eq!(config.ttl, Duration::from_secs(60));
    assert_eq!(config.scheme, LeaseScheme::Auto);
    let before = Utc::now();
    let now = config.clock.now();
    assert!(before <= now && now <= Utc::now());
}
