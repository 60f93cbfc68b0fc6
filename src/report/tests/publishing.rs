//! Staging, commit, publishing, recovery, `latest.json` and the move from the
//! old layout, against an in-memory store and a real folder.

use super::*;
use crate::report::migrate::{migrate_legacy_reports, LEGACY_INCOMPLETE_DIR};
use crate::report::publish::{stage, MANIFEST_FILE};

const DRIFT_R2: &str = "out/drift/job=acme-vendors/run_date=2025-03-02/run_id=r2";
const RUNS_R2: &str = "out/runs/job=acme-vendors/run_date=2025-03-02/run_id=r2";
const LATEST: &str = "out/runs/job=acme-vendors/latest.json";

fn local_store(dir: &std::path::Path) -> Arc<dyn ObjectStore> {
    Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir).unwrap())
}

/// The README's Polars recipe: every `drift.parquet` under `out/drift`, Hive partitioned.
async fn scan_drift(root: &std::path::Path) -> DataFrame {
    let glob = format!("{}/out/drift/**/*.parquet", root.display());
    tokio::task::spawn_blocking(move || {
        let args = ScanArgsParquet {
            hive_options: HiveOptions::new_enabled(),
            allow_missing_columns: true,
            ..Default::default()
        };
        LazyFrame::scan_parquet(PlRefPath::new(glob), args)
            .unwrap()
            .sort(["run_id", "contract_id"], Default::default())
            .collect()
            .unwrap()
    })
    .await
    .unwrap()
}

fn run_ids(df: &DataFrame) -> Vec<String> {
    let mut ids: Vec<String> = df
        .column("run_id")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.unwrap().to_string())
        .collect();
    ids.dedup();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_then_committed_then_copied_then_markers_then_latest() {
    let store = FaultyStore::in_memory();
    let info = run("r2", "2025-03-02", "2025-03-02T06:05:00Z");
    let loc = write(store.clone(), &info, &drift_frame("r2"))
        .await
        .unwrap();
    assert_eq!(loc.dir.as_ref(), RUNS_R2);
    assert_eq!(loc.tables["drift"].as_ref(), DRIFT_R2);

    let writes = store.writes();
    let pos = |needle: &str| {
        writes
            .iter()
            .position(|w| w == needle)
            .unwrap_or_else(|| panic!("{needle} not written: {writes:#?}"))
    };
    let manifest = pos(&format!("out/_staging/acme-vendors/r2/{MANIFEST_FILE}"));
    assert_eq!(manifest, 6, "six staged files come first: {writes:#?}");
    assert!(writes[..manifest]
        .iter()
        .all(|w| w.starts_with("out/_staging/acme-vendors/r2/")));
    let first_copy = pos(&format!("copy {DRIFT_R2}/drift.parquet"));
    assert_eq!(first_copy, manifest + 1);
    let drift_success = pos(&format!("{DRIFT_R2}/_SUCCESS"));
    let run_success = pos(&format!("{RUNS_R2}/_SUCCESS"));
    let latest = pos(LATEST);
    assert!(writes[first_copy..drift_success]
        .iter()
        .all(|w| w.starts_with("copy ")));
    assert!(drift_success < run_success && run_success < latest);
    assert_eq!(latest, writes.len() - 1, "latest.json is the last write");

    assert_eq!(
        list(store.as_ref(), RUNS_R2).await,
        [
            format!("{RUNS_R2}/_SUCCESS"),
            format!("{RUNS_R2}/report.html"),
            format!("{RUNS_R2}/summary.json"),
        ]
    );
    assert!(list(store.as_ref(), "out/_staging").await.is_empty());
    let store: Arc<dyn ObjectStore> = store;
    let latest = read_latest(store.clone(), &Path::from("out"), JOB)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (latest.run_id.as_str(), latest.dir.as_str()),
        ("r2", RUNS_R2)
    );
    assert_eq!(latest.tables["drift"], DRIFT_R2);
    assert_eq!(latest.drift_total, 5);
    let summary: Summary =
        serde_json::from_slice(&get_bytes(store.as_ref(), &latest.summary).await).unwrap();
    assert_eq!(summary.by_severity.get("high"), Some(&2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_before_the_commit_leaves_nothing_in_any_dataset() {
    let store = FaultyStore::in_memory();
    let dyn_store: Arc<dyn ObjectStore> = store.clone();
    write(
        store.clone(),
        &run("r1", "2025-03-01", "2025-03-01T06:05:00Z"),
        &drift_frame("r1"),
    )
    .await
    .unwrap();

    store.fail_on(Some("report.html"));
    let second = run("r2", "2025-03-02", "2025-03-02T06:05:00Z");
    let err = write(store.clone(), &second, &drift_frame("r2"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("report.html"), "{err}");
    for table in ["drift", "rejects", "runs"] {
        let dir = format!("out/{table}/job=acme-vendors/run_date=2025-03-02");
        assert!(list(store.as_ref(), &dir).await.is_empty(), "{dir}");
    }
    assert_eq!(latest_run_id(&dyn_store).await.as_deref(), Some("r1"));

    // The next run of the job deletes what was staged.
    store.fail_on(None);
    let recovery = recover_staged(&dyn_store, &Path::from("out"), JOB)
        .await
        .unwrap();
    assert_eq!(recovery.discarded, ["r2"]);
    assert!(recovery.rolled_forward.is_empty());
    assert!(list(store.as_ref(), "out/_staging").await.is_empty());
    assert!(list(store.as_ref(), DRIFT_R2).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_while_publishing_is_rolled_forward_by_the_next_run() {
    let store = FaultyStore::in_memory();
    let dyn_store: Arc<dyn ObjectStore> = store.clone();
    write(
        store.clone(),
        &run("r1", "2025-03-01", "2025-03-01T06:05:00Z"),
        &drift_frame("r1"),
    )
    .await
    .unwrap();

    store.fail_on(Some("_SUCCESS"));
    let second = run("r2", "2025-03-02", "2025-03-02T06:05:00Z");
    write(store.clone(), &second, &drift_frame("r2"))
        .await
        .unwrap_err();
    // Committed: its data files are in place and final, the markers are not.
    assert!(list(store.as_ref(), DRIFT_R2)
        .await
        .contains(&format!("{DRIFT_R2}/drift.parquet")));
    assert!(!list(store.as_ref(), RUNS_R2)
        .await
        .contains(&format!("{RUNS_R2}/_SUCCESS")));
    assert_eq!(latest_run_id(&dyn_store).await.as_deref(), Some("r1"));

    store.fail_on(None);
    let recovery = recover_staged(&dyn_store, &Path::from("out"), JOB)
        .await
        .unwrap();
    assert_eq!(recovery.rolled_forward, ["r2"]);
    assert!(list(store.as_ref(), RUNS_R2)
        .await
        .contains(&format!("{RUNS_R2}/_SUCCESS")));
    assert!(list(store.as_ref(), DRIFT_R2)
        .await
        .contains(&format!("{DRIFT_R2}/_SUCCESS")));
    assert_eq!(latest_run_id(&dyn_store).await.as_deref(), Some("r2"));
    assert!(list(store.as_ref(), "out/_staging").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polars_reads_only_committed_runs_and_recovery_completes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let store = local_store(tmp.path());
    let prefix = Path::from("out");
    write(
        store.clone(),
        &run("r-a", "2025-03-01", "2025-03-01T06:05:00Z"),
        &drift_frame("r-a"),
    )
    .await
    .unwrap();

    // r-b committed in staging but not published; r-c killed while staging.
    let manifest = RunManifest {
        job: JOB.into(),
        run_id: "r-b".into(),
        run_date: "2025-03-02".parse().unwrap(),
        finished_at: "2025-03-02T06:05:00Z".into(),
        drift_total: 5,
        kind: Default::default(),
        lifecycle: None,
        files: vec!["drift/drift.parquet".into()],
    };
    let mut frame = drift_frame("r-b").drop_many(PARQUET_DROPPED_COLUMNS);
    let mut parquet = Vec::new();
    ParquetWriter::new(&mut parquet).finish(&mut frame).unwrap();
    stage(
        &store,
        &prefix,
        &manifest,
        vec![("drift/drift.parquet".into(), parquet.clone())],
    )
    .await
    .unwrap();
    store
        .put(
            &Path::from("out/_staging/acme-vendors/r-c/drift/drift.parquet"),
            PutPayload::from(parquet),
        )
        .await
        .unwrap();

    assert_eq!(run_ids(&scan_drift(tmp.path()).await), ["r-a"]);

    let recovery = recover_staged(&store, &prefix, JOB).await.unwrap();
    assert_eq!(recovery.rolled_forward, ["r-b"]);
    assert_eq!(recovery.discarded, ["r-c"]);
    let all = scan_drift(tmp.path()).await;
    assert_eq!(run_ids(&all), ["r-a", "r-b"]);
    assert_eq!(all.height(), 10);
    assert!(list(store.as_ref(), "out/_staging").await.is_empty());
    assert_eq!(latest_run_id(&store).await.as_deref(), Some("r-b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_run_is_not_written_twice_and_a_backfill_keeps_latest() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let newer = run("r2", "2025-03-02", "2025-03-02T06:05:00Z");
    write(store.clone(), &newer, &drift_frame("r2"))
        .await
        .unwrap();
    let err = write(store.clone(), &newer, &drift_frame("r2"))
        .await
        .unwrap_err();
    assert!(matches!(err, ReportError::AlreadyComplete { .. }), "{err}");

    let backfill = run("r0", "2025-02-27", "2025-03-03T09:00:00Z");
    write(store.clone(), &backfill, &drift_frame("r0"))
        .await
        .unwrap();
    assert_eq!(latest_run_id(&store).await.as_deref(), Some("r2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_and_targeted_runs_never_move_latest_even_when_newer() {
    use crate::report::lifecycle::RunKind;
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let prefix = Path::from("out");
    let write_kind = |info: RunInfo, kind: RunKind| {
        let store = store.clone();
        let prefix = prefix.clone();
        async move {
            let drift = drift_frame(&info.run_id);
            let mut summary = Summary::from_drift(&info, &drift, inputs()).unwrap();
            summary.run_kind = kind;
            write_reports(
                store,
                &prefix,
                &info,
                &drift,
                &rejects_frame(),
                &summary,
                &ReportFormats::default(),
            )
            .await
            .unwrap()
        }
    };
    // Before any nightly run, a targeted run leaves latest.json absent.
    write_kind(
        run("targeted-1", "2025-03-01", "2025-03-01T07:00:00Z"),
        RunKind::Targeted,
    )
    .await;
    assert_eq!(latest_run_id(&store).await, None);
    assert!(store.head(&Path::from(LATEST)).await.is_err());

    write_kind(
        run("r1", "2025-03-01", "2025-03-01T08:00:00Z"),
        RunKind::Nightly,
    )
    .await;
    // Later (by date and by finish time) than the nightly run: still not latest.
    write_kind(
        run("backfill-1", "2025-03-05", "2025-03-05T09:00:00Z"),
        RunKind::Backfill,
    )
    .await;
    write_kind(
        run("targeted-2", "2025-03-05", "2025-03-05T10:00:00Z"),
        RunKind::Targeted,
    )
    .await;
    assert_eq!(latest_run_id(&store).await.as_deref(), Some("r1"));
    // Rebuilt from the run records, latest.json names the nightly run too.
    store.delete(&Path::from(LATEST)).await.unwrap();
    let rebuilt = rebuild_latest(&store, &prefix, JOB).await.unwrap().unwrap();
    assert_eq!(rebuilt.run_id, "r1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_pointing_at_an_incomplete_run_is_an_error() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    assert_eq!(latest_run_id(&store).await, None);
    let pointer = LatestPointer {
        job: JOB.into(),
        run_id: "x".into(),
        run_date: "2025-03-01".parse().unwrap(),
        dir: "out/runs/job=acme-vendors/run_date=2025-03-01/run_id=x".into(),
        summary: "out/runs/job=acme-vendors/run_date=2025-03-01/run_id=x/summary.json".into(),
        tables: Default::default(),
        finished_at: "t".into(),
        drift_total: 0,
        kind: Default::default(),
    };
    store
        .put(
            &Path::from(LATEST),
            PutPayload::from(serde_json::to_vec(&pointer).unwrap()),
        )
        .await
        .unwrap();
    let err = read_latest(store.clone(), &Path::from("out"), JOB)
        .await
        .unwrap_err();
    assert!(matches!(err, ReportError::IncompleteRun { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_or_missing_latest_is_rebuilt_from_the_run_records() {
    for local in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = if local {
            local_store(tmp.path())
        } else {
            Arc::new(InMemory::new())
        };
        write(
            store.clone(),
            &run("r1", "2025-03-01", "2025-03-01T06:05:00Z"),
            &drift_frame("r1"),
        )
        .await
        .unwrap();
        write(
            store.clone(),
            &run("r2", "2025-03-02", "2025-03-02T06:05:00Z"),
            &drift_frame("r2"),
        )
        .await
        .unwrap();

        store
            .put(&Path::from(LATEST), PutPayload::from_static(b"{not json"))
            .await
            .unwrap();
        assert_eq!(
            latest_run_id(&store).await.as_deref(),
            Some("r2"),
            "local={local}"
        );
        // A backfill repairs the object, and still points at the newest run.
        write(
            store.clone(),
            &run("r0", "2025-02-01", "2025-03-03T06:05:00Z"),
            &drift_frame("r0"),
        )
        .await
        .unwrap();
        let raw = get_bytes(store.as_ref(), LATEST).await;
        let repaired: LatestPointer = serde_json::from_slice(&raw).unwrap();
        assert_eq!(repaired.run_id, "r2", "local={local}");

        store.delete(&Path::from(LATEST)).await.unwrap();
        assert_eq!(
            latest_run_id(&store).await,
            None,
            "missing means none yet to readers"
        );
        write(
            store.clone(),
            &run("r-1", "2025-01-01", "2025-03-04T06:05:00Z"),
            &drift_frame("r-1"),
        )
        .await
        .unwrap();
        assert_eq!(
            latest_run_id(&store).await.as_deref(),
            Some("r2"),
            "local={local}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_jobs_sharing_one_output_keep_their_own_runs_and_latest() {
    let tmp = tempfile::tempdir().unwrap();
    let store = local_store(tmp.path());
    let mut us = run("r-us", "2025-03-01", "2025-03-01T06:05:00Z");
    us.job = "us".into();
    let mut eu = run("r-eu", "2025-03-02", "2025-03-02T06:05:00Z");
    eu.job = "eu".into();
    let mut eu_frame = drift_frame("r-eu").head(Some(2));
    eu_frame
        .with_column(Column::new("job".into(), ["eu", "eu"]))
        .unwrap();
    let mut us_frame = drift_frame("r-us");
    us_frame
        .with_column(Column::new("job".into(), vec!["us"; 5]))
        .unwrap();
    write(store.clone(), &us, &us_frame).await.unwrap();
    write(store.clone(), &eu, &eu_frame).await.unwrap();

    let prefix = Path::from("out");
    let latest_us = read_latest(store.clone(), &prefix, "us")
        .await
        .unwrap()
        .unwrap();
    let latest_eu = read_latest(store.clone(), &prefix, "eu")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (latest_us.run_id.as_str(), latest_eu.run_id.as_str()),
        ("r-us", "r-eu")
    );
    let all = scan_drift(tmp.path()).await;
    let jobs = all.column("job").unwrap().str().unwrap().clone();
    let us_rows = jobs.iter().filter(|j| *j == Some("us")).count();
    let eu_rows = jobs.iter().filter(|j| *j == Some("eu")).count();
    assert_eq!((us_rows, eu_rows), (5, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_of_the_old_layout_move_into_the_per_job_datasets() {
    let tmp = tempfile::tempdir().unwrap();
    let store = local_store(tmp.path());
    let old = |run_id: &str| format!("out/drift/run_date=2025-02-01/run_id={run_id}");
    let put = |path: String, bytes: Vec<u8>| {
        let store = store.clone();
        async move {
            store
                .put(&Path::from(path), PutPayload::from(bytes))
                .await
                .unwrap();
        }
    };
    // A complete run of this job, written the old way (`job` inside the file).
    let info = run("r-old", "2025-02-01", "2025-02-01T06:05:00Z");
    let drift = drift_frame("r-old");
    let summary = Summary::from_drift(&info, &drift, inputs()).unwrap();
    let mut in_file = drift.drop("run_id").unwrap();
    let mut parquet = Vec::new();
    ParquetWriter::new(&mut parquet)
        .finish(&mut in_file)
        .unwrap();
    put(format!("{}/drift.parquet", old("r-old")), parquet).await;
    put(
        format!("{}/rejects.csv", old("r-old")),
        b"row,reason,erp_record_id\n".to_vec(),
    )
    .await;
    put(
        format!("{}/summary.json", old("r-old")),
        serde_json::to_vec(&summary).unwrap(),
    )
    .await;
    put(format!("{}/_SUCCESS", old("r-old")), b"{}".to_vec()).await;
    // An old run that never completed, and the old shared pointer.
    put(format!("{}/drift.csv", old("r-dead")), b"x\n".to_vec()).await;
    put("out/drift/latest.json".into(), b"{}".to_vec()).await;

    let moved = migrate_legacy_reports(&store, &Path::from("out"), JOB)
        .await
        .unwrap();
    assert_eq!(moved.moved, ["r-old"]);
    assert_eq!(moved.set_aside, ["r-dead"]);
    assert!(list(store.as_ref(), "out/drift/run_date=2025-02-01")
        .await
        .is_empty());
    assert!(!tmp.path().join("out/drift/latest.json").exists());
    let set_aside =
        format!("out/{LEGACY_INCOMPLETE_DIR}/run_date=2025-02-01/run_id=r-dead/drift.csv");
    assert!(tmp.path().join(set_aside).is_file());

    let all = scan_drift(tmp.path()).await;
    assert_eq!(run_ids(&all), ["r-old"]);
    assert_eq!(all.height(), 5);
    let jobs: Vec<Option<&str>> = all.column("job").unwrap().str().unwrap().iter().collect();
    assert!(jobs.iter().all(|j| *j == Some(JOB)), "{jobs:?}");
    assert_eq!(latest_run_id(&store).await.as_deref(), Some("r-old"));
}
