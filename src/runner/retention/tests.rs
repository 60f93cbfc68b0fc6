//! Retention over a laid-out output store (InMemory and LocalFileSystem):
//! the object listing before and after one pass.

use super::*;
use crate::apply::journal::BatchRecord;
use crate::apply::{plan_frame, Action, ActionKind, JournalEntry};
use crate::ingest::Checkpoint;
use crate::report::lifecycle::RunKind;
use crate::report::{LatestPointer, RunManifest};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::PutPayload;
use polars::prelude::ParquetWriter;
use std::collections::BTreeMap;

const JOB: &str = "demo";

/// A run id of `days` ago, and its date.
fn run_of(now: DateTime<Utc>, days: i64, tag: &str) -> (String, NaiveDate) {
    let at = now - chrono::Duration::days(days);
    (
        format!("run-{}-{tag}", at.format("%Y%m%d-%H%M%S")),
        at.date_naive(),
    )
}

async fn put(store: &Arc<dyn ObjectStore>, path: &str, bytes: Vec<u8>) {
    store
        .put(&Path::from(path), PutPayload::from(bytes))
        .await
        .unwrap();
}

/// Writes a published run: its folder in each of `tables` (a file and
/// `_SUCCESS`; the `runs` one holds the manifest) and its run record.
async fn published(
    store: &Arc<dyn ObjectStore>,
    (run_id, date): &(String, NaiveDate),
    kind: RunKind,
    tables: &[&str],
) -> RunManifest {
    let manifest = RunManifest {
        job: JOB.into(),
        run_id: run_id.clone(),
        run_date: *date,
        finished_at: format!("{date}T02:40:00.000Z"),
        drift_total: 3,
        kind,
        lifecycle: None,
        files: tables.iter().map(|t| format!("{t}/{t}.parquet")).collect(),
    };
    for t in tables {
        let dir = format!("out/{t}/job={JOB}/run_date={date}/run_id={run_id}");
        put(store, &format!("{dir}/{t}.parquet"), b"PAR1".to_vec()).await;
        let success = if *t == "runs" {
            serde_json::to_vec(&manifest).unwrap()
        } else {
            b"{}".to_vec()
        };
        put(store, &format!("{dir}/_SUCCESS"), success).await;
    }
    put(
        store,
        &format!("out/_history/{JOB}/{run_id}.json"),
        b"{}".to_vec(),
    )
    .await;
    manifest
}

/// A plan of one field update (key `key`) and one review, as Parquet.
fn plan_parquet(key: &str) -> Vec<u8> {
    let action = |kind, key: &str| Action {
        kind,
        erp_record_id: Some("ERP-1".into()),
        contract_id: Some("T-1".into()),
        fields: BTreeMap::from([("status".into(), "ACTIVE".into())]),
        document_sha256: None,
        if_match: None,
        reason: None,
        drift_kinds: BTreeSet::from(["field_mismatch".to_string()]),
        drift_ids: BTreeSet::new(),
        key: key.into(),
        generation: 0,
    };
    let actions = [
        action(ActionKind::UpdateErpFields, key),
        action(ActionKind::Review, &format!("{key}-review")),
    ];
    let mut frame = plan_frame(&actions).unwrap();
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes).finish(&mut frame).unwrap();
    bytes
}

/// A journal object recording `outcome` for `key`, applied by run `run_id`.
fn journal_batch(run_id: &str, key: &str, outcome: &str) -> Vec<u8> {
    let record = BatchRecord {
        job: JOB.into(),
        apply_id: run_id.into(),
        lane: "erp".into(),
        batch: 1,
        batch_key: "0123456789abcdef".into(),
        entries: vec![JournalEntry {
            key: key.into(),
            generation: 0,
            content_hash: "h".into(),
            action: "update_erp_fields".into(),
            erp_record_id: Some("ERP-1".into()),
            contract_id: None,
            attempt: 1,
            outcome: outcome.into(),
            message: None,
            at: "2026-10-16T02:40:00Z".into(),
            run_id: run_id.into(),
            approved_by: None,
        }],
    };
    serde_json::to_vec(&record).unwrap()
}

async fn listing(store: &Arc<dyn ObjectStore>) -> BTreeSet<String> {
    store
        .list(None)
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.location.to_string())
        .collect()
}

/// Lays out runs of 200, 150, 120, 45, 45 and 10 days ago, staging, journals,
/// spilled pages and run state; `age_file(path, days)` backdates a file where
/// the store can. Returns the objects a pass with `keep_days = 30`,
/// `history_keep_days = 100`, `journal_keep_days = 90` and plans applicable
/// for 60 days must remove.
async fn lay_out(
    store: &Arc<dyn ObjectStore>,
    now: DateTime<Utc>,
    current: &str,
    age_file: &dyn Fn(&str, i64) -> bool,
) -> BTreeSet<String> {
    let all = ["runs", "drift", "rejects", "resolved"];
    let a = run_of(now, 200, "aaaaaaaa");
    let b = run_of(now, 150, "bbbbbbbb");
    let c = run_of(now, 120, "cccccccc");
    let d = run_of(now, 45, "dddddddd");
    let e = run_of(now, 45, "eeeeeeee");
    let f = run_of(now, 10, "ffffffff");
    published(
        store,
        &a,
        RunKind::Nightly,
        &["runs", "drift", "rejects", "resolved", "plan"],
    )
    .await;
    published(store, &b, RunKind::Nightly, &all).await;
    let c_manifest = published(store, &c, RunKind::Nightly, &all).await;
    published(store, &d, RunKind::Backfill, &["runs", "drift", "plan"]).await;
    published(store, &e, RunKind::Backfill, &["runs", "drift"]).await;
    published(store, &f, RunKind::Targeted, &["runs", "drift"]).await;
    // Plans of 45 days ago, still applicable: P's action was applied, Q's and R's were not.
    let p = run_of(now, 45, "pppppppp");
    let q = run_of(now, 45, "qqqqqqqq");
    let r = run_of(now, 45, "rrrrrrrr");
    for (run, key) in [(&p, "key-p"), (&q, "key-q"), (&r, "key-r")] {
        published(store, run, RunKind::Nightly, &["runs", "plan"]).await;
        let dir = format!("out/plan/job={JOB}/run_date={}/run_id={}", run.1, run.0);
        put(store, &format!("{dir}/plan.parquet"), plan_parquet(key)).await;
    }
    let batch = |run: &(String, NaiveDate)| {
        format!("out/_journal/{JOB}/{}/erp-0001-0123456789ab.json", run.0)
    };
    put(store, &batch(&p), journal_batch(&p.0, "key-p", "applied")).await;
    put(store, &batch(&r), journal_batch(&r.0, "key-r", "pending")).await;
    let latest = LatestPointer::to_run(&Path::from("out"), &c_manifest);
    put(
        store,
        &format!("out/runs/job={JOB}/latest.json"),
        serde_json::to_vec(&latest).unwrap(),
    )
    .await;
    // Another job's old run is not this job's to remove.
    put(
        store,
        &format!(
            "out/drift/job=other/run_date={}/run_id={}/drift.parquet",
            a.1, a.0
        ),
        b"PAR1".to_vec(),
    )
    .await;

    let g = run_of(now, 40, "gggggggg");
    let h = run_of(now, 40, "hhhhhhhh");
    put(
        store,
        &format!("out/_staging/{JOB}/{}/drift/drift.parquet", g.0),
        b"PAR1".to_vec(),
    )
    .await;
    put(
        store,
        &format!("out/_staging/{JOB}/{}/drift/drift.parquet", h.0),
        b"PAR1".to_vec(),
    )
    .await;
    put(
        store,
        &format!("out/_staging/{JOB}/{}/manifest.json", h.0),
        b"{}".to_vec(),
    )
    .await;
    put(
        store,
        &format!("out/_staging/{JOB}/{current}/drift/drift.parquet"),
        b"PAR1".to_vec(),
    )
    .await;

    put(
        store,
        &format!("out/_journal/{JOB}/{}/erp-0001-abc.json", a.0),
        journal_batch(&a.0, "key-a", "applied"),
    )
    .await;
    put(
        store,
        &format!("out/_journal/{JOB}/{}/erp-0001-def.json", d.0),
        journal_batch(&d.0, "key-d", "applied"),
    )
    .await;
    put(
        store,
        &format!("out/_journal/{JOB}/manual-apply/erp-0001-ghi.json"),
        journal_batch("manual-apply", "key-m", "rejected"),
    )
    .await;

    StateStore::new(store.clone(), &Path::from("out"), JOB)
        .save(&Checkpoint {
            watermark: Some(now - chrono::Duration::days(1)),
            progress: None,
        })
        .await
        .unwrap();
    put(
        store,
        &format!("out/snapshots/{JOB}/snapshot.parquet"),
        b"PAR1".to_vec(),
    )
    .await;
    let old_page = format!("out/state/{JOB}/pages/walk-000001.json");
    put(store, &old_page, b"[]".to_vec()).await;
    put(
        store,
        &format!("out/state/{JOB}/pages/walk-000002.json"),
        b"[]".to_vec(),
    )
    .await;
    let page_aged = age_file(&old_page, 40);

    let mut expired = BTreeSet::new();
    let mut run_files = |(run_id, date): &(String, NaiveDate), tables: &[&str]| {
        for t in tables {
            let dir = format!("out/{t}/job={JOB}/run_date={date}/run_id={run_id}");
            expired.insert(format!("{dir}/{t}.parquet"));
            expired.insert(format!("{dir}/_SUCCESS"));
        }
    };
    run_files(&a, &["runs", "drift", "rejects", "resolved", "plan"]); // 200 days, plan too old
    run_files(&b, &all); // 150 days
    run_files(&e, &["runs", "drift"]); // 45 days, no plan
    run_files(&p, &["runs", "plan"]); // 45 days, its plan applied
    for r in [&a, &b, &c] {
        expired.insert(format!("out/_history/{JOB}/{}.json", r.0)); // over 100 days
    }
    expired.insert(format!("out/_journal/{JOB}/{}/erp-0001-abc.json", a.0));
    expired.insert(format!("out/_staging/{JOB}/{}/drift/drift.parquet", g.0));
    if page_aged {
        expired.insert(old_page);
    }
    expired
}

async fn check_pass(
    store: Arc<dyn ObjectStore>,
    local_root: Option<std::path::PathBuf>,
    age_file: &dyn Fn(&str, i64) -> bool,
) {
    let now = Utc::now();
    let current = run_of(now, 0, "00000000").0;
    let expired = lay_out(&store, now, &current, age_file).await;
    let before = listing(&store).await;
    assert!(
        expired.is_subset(&before),
        "{:?}",
        expired.difference(&before).collect::<Vec<_>>()
    );
    let settings = RetentionSettings {
        keep_days: 30,
        history_keep_days: 100,
        journal_keep_days: Some(90),
    };
    let pass = Retention {
        store: &store,
        prefix: &Path::from("out"),
        job: JOB,
        settings: &settings,
        max_plan_age: Duration::from_secs(60 * 86_400),
        current_run: &current,
        now,
        local_root,
    };
    let removed = pass.run().await.unwrap();
    let after = listing(&store).await;
    let expected: BTreeSet<String> = before.difference(&expired).cloned().collect();
    assert_eq!(
        after.difference(&expected).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "left behind"
    );
    assert_eq!(
        expected.difference(&after).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "removed but to be kept"
    );
    assert_eq!(removed.runs.len(), 4, "{:?}", removed.runs);
    assert_eq!(removed.history_records, 3);
    assert_eq!(removed.journal_objects, 1);
    assert_eq!(removed.staging_objects, 1);

    // A second pass finds nothing more.
    let again = pass.run().await.unwrap();
    assert_eq!(again, Removed::default());
}

#[tokio::test]
async fn retention_removes_only_expired_runs_in_memory() {
    // InMemory objects are all new: spilled pages (aged by modification time) stay.
    check_pass(Arc::new(InMemory::new()), None, &|_, _| false).await;
}

#[tokio::test]
async fn retention_removes_only_expired_runs_on_a_local_file_system() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let store = Arc::new(LocalFileSystem::new_with_prefix(&root).unwrap());
    let disk = root.clone();
    let age_file = move |path: &str, days: i64| {
        let file = std::fs::File::options()
            .write(true)
            .open(root.join(path))
            .unwrap();
        let at = std::time::SystemTime::now() - Duration::from_secs(days as u64 * 86_400);
        file.set_modified(at).unwrap();
        true
    };
    check_pass(store, Some(disk.clone()), &age_file).await;
    // No folder is left empty by the removals.
    let mut stack = vec![disk.join("out")];
    while let Some(d) = stack.pop() {
        let entries: Vec<_> = std::fs::read_dir(&d).unwrap().flatten().collect();
        assert!(!entries.is_empty(), "{} is left empty", d.display());
        stack.extend(entries.iter().map(|e| e.path()).filter(|p| p.is_dir()));
    }
}

#[tokio::test]
async fn spilled_pages_of_an_unfinished_walk_stay() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let page = format!("out/state/{JOB}/pages/walk-000001.json");
    put(&store, &page, b"[]".to_vec()).await;
    let old = std::time::SystemTime::now() - Duration::from_secs(40 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(dir.path().join(&page))
        .unwrap()
        .set_modified(old)
        .unwrap();
    // A state file with an unfinished walk, as a stopped run leaves it.
    let state = format!("out/state/{JOB}.json");
    let mut walk = crate::ingest::WalkState::new(Vec::new(), "walk".into());
    walk.accepted = vec![crate::ingest::walk::PageSpan { first: 1, count: 1 }];
    let unfinished = Checkpoint {
        watermark: None,
        progress: Some(crate::ingest::Progress {
            mode: crate::ingest::WalkMode::Full,
            run_start: Utc::now() - chrono::Duration::days(40),
            walk,
            changes: None,
            enrich: None,
        }),
    };
    put(&store, &state, serde_json::to_vec(&unfinished).unwrap()).await;
    let checkpoint = StateStore::new(store.clone(), &Path::from("out"), JOB)
        .load()
        .await;
    assert!(
        checkpoint.unwrap().progress.is_some(),
        "the state file reads as an unfinished walk"
    );
    let settings = RetentionSettings {
        keep_days: 30,
        history_keep_days: 30,
        journal_keep_days: None,
    };
    let removed = Retention {
        store: &store,
        prefix: &Path::from("out"),
        job: JOB,
        settings: &settings,
        max_plan_age: Duration::from_secs(7 * 86_400),
        current_run: "run-x",
        now: Utc::now(),
        local_root: Some(dir.path().to_path_buf()),
    }
    .run()
    .await
    .unwrap();
    assert_eq!(removed.spilled_objects, 0);
    assert!(listing(&store).await.contains(&page));
}

#[test]
fn run_ids_name_their_time() {
    let t = time_of_name("run-20260812-023000-abcd1234").unwrap();
    assert_eq!(t.to_rfc3339(), "2026-08-12T02:30:00+00:00");
    assert_eq!(time_of_name("manual-apply"), None);
    assert_eq!(time_of_name("run-2026"), None);
}
