//! An output store that fails part-way: a run whose writes start failing at
//! any point fails naming the injected failure, leaves no partial report a
//! reader could take for a complete one, and its rerun publishes the same
//! drift as a fault-free run. Reads, heads and lists that fail do the same;
//! a multipart upload that fails after some parts leaves nothing.

use super::chain;
use crate::common::{drift_keys, DriftKey};
use contract_recon::erp::files::FilesSink;
use contract_recon::erp::sink::{DocumentUpload, ErpSink, WriteOutcome};
use contract_recon::job::Job;
use contract_recon::lease::LeaseError;
use contract_recon::report::publish::RunManifest;
use contract_recon::runner::{run_job, RunOptions, RunOutcome};
use contract_recon::sandbox::faulty_store::INJECTED;
use contract_recon::sandbox::FaultyStore;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use polars::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

async fn run_on(job: &Job, store: &Arc<FaultyStore>) -> anyhow::Result<RunOutcome> {
    run_with(job, store, false).await
}

async fn run_with(
    job: &Job,
    store: &Arc<FaultyStore>,
    break_lease: bool,
) -> anyhow::Result<RunOutcome> {
    let output: Arc<dyn ObjectStore> = store.clone();
    let opts = RunOptions {
        output_store: Some(output),
        break_lease,
        ..RunOptions::default()
    };
    run_job(job, opts).await
}

/// A rerun once the store works again. A failed run whose lease could not be
/// released (its writes failing) leaves it held until it expires; the rerun
/// is then refused naming that lease, and takes it over with `--break-lease`
/// as the refusal says.
async fn rerun(job: &Job, store: &Arc<FaultyStore>) -> anyhow::Result<RunOutcome> {
    match run_on(job, store).await {
        Err(e) if matches!(e.downcast_ref(), Some(LeaseError::Held { .. })) => {
            assert!(chain(&e).contains("--break-lease"), "{e:#}");
            run_with(job, store, true).await
        }
        other => other,
    }
}

/// An object path of the store from an outcome's `memory://…` folder.
fn object_path(shown: &str) -> Path {
    Path::from(shown.trim_start_matches("memory:").trim_start_matches('/'))
}

pub async fn drift_of(store: &dyn ObjectStore, outcome: &RunOutcome) -> BTreeSet<DriftKey> {
    let file = object_path(&outcome.tables["drift"]).join("drift.parquet");
    let bytes = store.get(&file).await.unwrap().bytes().await.unwrap();
    drift_keys(
        &ParquetReader::new(std::io::Cursor::new(bytes))
            .finish()
            .unwrap(),
    )
}

/// The objects under the job's output, as text paths.
async fn objects(store: &dyn ObjectStore, job: &str) -> Vec<String> {
    store
        .list(Some(&Path::from(job)))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap()
}

/// The run id of a dataset object `…/job=<job>/run_date=…/run_id=<id>/<file>`.
fn run_of(object: &str) -> Option<&str> {
    object
        .split('/')
        .find_map(|part| part.strip_prefix("run_id="))
}

/// What a reader can see is only ever whole: every object of a dataset belongs
/// to a run that is published (its `_SUCCESS` in `runs`) or committed (its
/// staged manifest, rolled forward by the next run); a published run has every
/// file its `_SUCCESS` lists; `latest.json` names a published run. With
/// `settled`, nothing is left in staging and every run is published.
async fn assert_nothing_partial(store: &dyn ObjectStore, job: &str, settled: bool) {
    let all = objects(store, job).await;
    let present: BTreeSet<&str> = all.iter().map(String::as_str).collect();
    let mut published = BTreeMap::new();
    for success in all
        .iter()
        .filter(|o| o.starts_with(&format!("{job}/runs/")) && o.ends_with("/_SUCCESS"))
    {
        let bytes = store.get(&Path::from(success.as_str())).await.unwrap();
        let manifest: RunManifest = serde_json::from_slice(&bytes.bytes().await.unwrap()).unwrap();
        for file in &manifest.files {
            let (table, name) = file.split_once('/').unwrap();
            let dir = manifest.table_dir(&Path::from(job), table);
            let object = dir.join(name).to_string();
            assert!(
                present.contains(object.as_str()),
                "{object} of a published run is missing"
            );
        }
        published.insert(manifest.run_id.clone(), manifest);
    }
    let committed: BTreeSet<String> = all
        .iter()
        .filter(|o| o.starts_with(&format!("{job}/_staging/")) && o.ends_with("/manifest.json"))
        .map(|o| o.split('/').nth(3).unwrap().to_string())
        .collect();
    for object in &all {
        let Some(run) = run_of(object) else { continue };
        assert!(
            published.contains_key(run) || committed.contains(run),
            "{object} is visible in a dataset, but its run is neither published nor committed"
        );
    }
    let latest = Path::from(format!("{job}/runs/job={job}/latest.json"));
    if let Ok(got) = store.get(&latest).await {
        let pointer: serde_json::Value =
            serde_json::from_slice(&got.bytes().await.unwrap()).unwrap();
        let run = pointer["run_id"].as_str().unwrap();
        assert!(
            published.contains_key(run),
            "latest.json names {run}, which is not published"
        );
    }
    if settled {
        let staged: Vec<_> = all.iter().filter(|o| o.contains("/_staging/")).collect();
        assert!(staged.is_empty(), "left in staging: {staged:?}");
        assert!(committed.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_failing_at_any_point_fail_the_run_clearly_and_a_rerun_publishes_it_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let (job, _sandbox) = super::job_against_faulty_sandbox(tmp.path(), 0).await;
    let clean_store = FaultyStore::in_memory();
    let clean = run_on(&job, &clean_store).await.unwrap();
    let clean_drift = drift_of(clean_store.as_ref(), &clean).await;
    let names = clean_store.writes();
    assert!(names.len() > 10, "{names:?}");
    // The run record is written after the run, best effort: its failure is
    // logged, never the run's.
    assert!(names.last().unwrap().contains("/_history/"), "{names:?}");
    let writes = names.len() as u64;

    // The first write (the lease), then points spread over the run, the last
    // ones among the publishing copies, `_SUCCESS`, `latest.json`, the
    // watermark, the lease's release and the run record.
    let mut points: Vec<u64> = (0..6).map(|i| i * writes / 6).collect();
    points.extend(writes - 5..writes);

    for after in points {
        let store = FaultyStore::in_memory();
        store.fail_writes_after(after);
        match run_on(&job, &store).await {
            Err(err) => {
                let text = chain(&err);
                assert!(text.contains(INJECTED), "after {after} writes: {text}");
            }
            Ok(outcome) => {
                // Only writes after the outcome may fail without failing the run.
                assert!(
                    after + 2 >= writes,
                    "a run whose writes fail after {after} of {writes} succeeded"
                );
                assert_eq!(
                    drift_of(store.inner().as_ref(), &outcome).await,
                    clean_drift
                );
            }
        }
        assert_nothing_partial(store.inner().as_ref(), "demo", false).await;

        store.heal();
        let rerun = rerun(&job, &store)
            .await
            .unwrap_or_else(|e| panic!("rerun after {after} writes: {e:#}"));
        assert_eq!(
            drift_of(store.as_ref(), &rerun).await,
            clean_drift,
            "after {after}"
        );
        assert_nothing_partial(store.inner().as_ref(), "demo", true).await;
        let latest = store
            .get(&Path::from("demo/runs/job=demo/latest.json"))
            .await
            .unwrap();
        let pointer: serde_json::Value =
            serde_json::from_slice(&latest.bytes().await.unwrap()).unwrap();
        assert_eq!(pointer["run_id"], rerun.summary.run_id.as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_reads_lists_and_random_writes_fail_runs_clearly_until_the_store_heals() {
    let tmp = tempfile::tempdir().unwrap();
    let (job, _sandbox) = super::job_against_faulty_sandbox(tmp.path(), 0).await;
    let store = FaultyStore::in_memory();
    let first = run_on(&job, &store).await.unwrap();
    let drift = drift_of(store.as_ref(), &first).await;

    // A second run reads the lease, the watermark and the previous run.
    for (what, switch) in [
        ("gets", FaultyStore::fail_gets as fn(&FaultyStore, bool)),
        ("lists", FaultyStore::fail_lists),
    ] {
        switch(&store, true);
        let err = run_on(&job, &store).await.expect_err(what);
        assert!(chain(&err).contains(INJECTED), "{what}: {err:#}");
        assert_nothing_partial(store.inner().as_ref(), "demo", false).await;
        switch(&store, false);
        rerun(&job, &store).await.unwrap();
    }
    // Heads: the run either never needs one or fails naming the failure.
    store.fail_heads(true);
    if let Err(e) = run_on(&job, &store).await {
        assert!(chain(&e).contains(INJECTED), "heads: {e:#}");
    }
    store.fail_heads(false);
    rerun(&job, &store).await.unwrap();
    assert_nothing_partial(store.inner().as_ref(), "demo", false).await;

    // One write in 20 failing, drawn from a seed: runs fail, and every
    // one that completes publishes the same drift; nothing partial between.
    let seed = super::fault_seed("failing_reads_lists_and_random_writes");
    store.fail_write_rate(0.05, seed);
    let (mut failed, mut completed) = (0, 0);
    for _ in 0..8 {
        match rerun(&job, &store).await {
            Ok(outcome) => {
                completed += 1;
                assert_eq!(drift_of(store.as_ref(), &outcome).await, drift);
            }
            Err(e) => {
                failed += 1;
                assert!(chain(&e).contains(INJECTED), "{e:#}");
            }
        }
        assert_nothing_partial(store.inner().as_ref(), "demo", false).await;
    }
    eprintln!(
        "5% of writes failing: {failed} runs failed, {completed} completed, {} failures injected",
        store.injected()
    );
    assert!(failed > 0, "no run failed with 5% of writes failing");
    store.heal();
    let last = rerun(&job, &store).await.unwrap();
    assert_eq!(drift_of(store.as_ref(), &last).await, drift);
    assert_nothing_partial(store.inner().as_ref(), "demo", true).await;
}

#[tokio::test]
async fn a_multipart_upload_failing_after_some_parts_leaves_nothing_and_is_sent_again() {
    let store = FaultyStore::in_memory();
    let output: Arc<dyn ObjectStore> = store.clone();
    let sink = FilesSink::new(output, &Path::from("imports"), "demo", "run-1");
    // 12 MiB: three parts of object_store's 5 MiB chunks.
    let document: bytes::Bytes = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&document))
    };
    let upload = || {
        let bytes = document.clone();
        DocumentUpload {
            erp_record_id: "ERP-1".into(),
            file_name: "executed.pdf".into(),
            sha256: Some(sha256.clone()),
            length: Some(bytes.len() as u64),
            open: Arc::new(move || {
                let bytes = bytes.clone();
                Box::pin(async move {
                    let chunks = bytes
                        .chunks(1 << 20)
                        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
                        .collect::<Vec<_>>();
                    let stream: contract_recon::erp::sink::DocumentStream =
                        Box::pin(futures::stream::iter(chunks));
                    Ok(stream)
                })
            }),
            idempotency_key: "key-1".into(),
        }
    };
    let path = Path::from("imports/demo/run-1/documents/ERP-1/executed.pdf");
    store.fail_multipart_after(Some(1));
    match sink.attach_document(upload()).await {
        WriteOutcome::Pending { error } => {
            assert!(error.contains(path.as_ref()), "{error}");
            assert!(error.contains(INJECTED), "{error}");
        }
        other => panic!("a failed multipart upload gave {other:?}"),
    }
    assert!(store.injected() >= 1);
    assert!(
        store.head(&path).await.is_err(),
        "a multipart upload that failed part-way is visible"
    );

    store.fail_multipart_after(None);
    let applied = sink.attach_document(upload()).await;
    assert!(
        matches!(applied, WriteOutcome::Applied { .. }),
        "{applied:?}"
    );
    let stored = store.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(stored, document);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_of_the_apply_results_names_the_store_failure() {
    // Published after the corrections are sent: a failure there once lost its
    // cause from the message, which named only the file.
    let tmp = tempfile::tempdir().unwrap();
    let (job, _sandbox) = super::job_against_faulty_sandbox(tmp.path(), 0).await;
    let store = FaultyStore::in_memory();
    store.fail_on(Some("apply_summary.json"));
    let output: Arc<dyn ObjectStore> = store.clone();
    let opts = RunOptions {
        output_store: Some(output),
        apply_mode: Some(contract_recon::job::ApplyMode::Apply),
        ..RunOptions::default()
    };
    let err = run_job(&job, opts)
        .await
        .expect_err("the apply results cannot be written");
    let text = chain(&err);
    assert!(
        text.contains("apply_summary.json") && text.contains(INJECTED),
        "{text}"
    );
}
