//! S3 for real: an S3-compatible server (s3s-fs, an S3 API over a folder)
//! started inside the test process on a loopback port. The job reads its
//! extract from it and writes its reports, `latest.json` and its lease there,
//! through the same `s3://` URLs and `AWS_*` variables as in production; the
//! conditional puts the lease and `latest.json` rely on are checked directly.
//!
//! What this server lacks: s3s-fs 0.14 checks `If-None-Match: *` and
//! `If-Match` before it writes, not atomically with the write, so two writers
//! racing within one request's time could both pass; the lease's race tests
//! run on `InMemory` (`src/lease/tests.rs`). Servers that accept the headers
//! and ignore them are simulated with `FaultyStore` over this one, and the
//! lease's fallback (Generations, or a clear refusal) is checked on them.

use crate::common::{demo_job_in, drift_keys, expected_drift, repo};
use contract_recon::lease::{self, Holder, LeaseConfig, LeaseError, LeaseScheme};
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use polars::prelude::*;
use std::sync::Arc;

const BUCKET: &str = "recon";
const ACCESS_KEY: &str = "recon-test-access-key";
const SECRET_KEY: &str = "recon-test-secret-key";
const REGION: &str = "us-east-1";

/// An S3-compatible server over a temporary folder, serving until dropped.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    _root: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl S3Server {
    /// Serves one bucket, [`BUCKET`], with the test's access key.
    pub async fn start() -> S3Server {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        let fs = s3s_fs::FileSystem::new(root.path()).unwrap();
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let service = service.clone();
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        S3Server {
            endpoint,
            _root: root,
            task,
        }
    }

    /// A client of the bucket, configured as the job's `s3://` URLs are from
    /// the environment (endpoint, plain HTTP, keys, region).
    pub fn store(&self) -> AmazonS3 {
        AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_bucket_name(BUCKET)
            .with_region(REGION)
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .build()
            .unwrap()
    }

    /// The `AWS_*` variables a `contract-recon` process needs for this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", REGION.into()),
        ]
    }
}

fn put_mode(mode: PutMode) -> PutOptions {
    PutOptions::from(mode)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_puts_and_the_lease_hold_on_an_s3_compatible_server() {
    let server = S3Server::start().await;
    let store: Arc<dyn ObjectStore> = Arc::new(server.store());
    let path = Path::from("probe/object.json");
    let body = || PutPayload::from_static(b"{}");

    // Create (`If-None-Match: *`), then Update (`If-Match: <e-tag>`).
    let first = store
        .put_opts(&path, body(), put_mode(PutMode::Create))
        .await
        .unwrap();
    let again = store
        .put_opts(&path, body(), put_mode(PutMode::Create))
        .await;
    let creates = matches!(again, Err(object_store::Error::AlreadyExists { .. }));
    let stale = UpdateVersion::from(first.clone());
    let updated = store
        .put_opts(
            &path,
            PutPayload::from_static(b"{\"n\":1}"),
            put_mode(PutMode::Update(stale.clone())),
        )
        .await;
    let stale_update = store
        .put_opts(&path, body(), put_mode(PutMode::Update(stale)))
        .await;
    let updates =
        updated.is_ok() && matches!(stale_update, Err(object_store::Error::Precondition { .. }));
    eprintln!("s3s-fs: If-None-Match enforced: {creates} ({again:?}); If-Match enforced: {updates} ({updated:?}, then {stale_update:?})");

    // The lease: one holder at a time, a second run refused naming the first.
    let prefix = Path::from("out");
    let config = LeaseConfig::default();
    let a = lease::acquire(
        store.clone(),
        &prefix,
        "demo",
        Holder::current("run-a"),
        &config,
        false,
    )
    .await
    .unwrap();
    if updates {
        assert_eq!(a.scheme(), LeaseScheme::ConditionalUpdate);
    } else {
        // This server lacks conditional updates: the lease falls back to one
        // object per generation, taken with `Create` only.
        eprintln!("s3s-fs lacks If-Match: checking the Generations fallback");
        assert_eq!(a.scheme(), LeaseScheme::Generations);
        assert!(creates, "neither conditional put works: no lease can hold");
    }
    let refused = lease::acquire(
        store.clone(),
        &prefix,
        "demo",
        Holder::current("run-b"),
        &config,
        false,
    )
    .await;
    match refused {
        Err(LeaseError::Held { holder, .. }) => assert_eq!(holder.run_id, "run-a"),
        other => panic!("a second run was not refused: {other:?}"),
    }
    let mut a = a;
    a.renew().await.unwrap();
    a.release().await.unwrap();
    let mut b = lease::acquire(
        store.clone(),
        &prefix,
        "demo",
        Holder::current("run-b"),
        &config,
        false,
    )
    .await
    .unwrap();
    // Broken by an operator's --break-lease: b's next renewal fails.
    let c = lease::acquire(
        store.clone(),
        &prefix,
        "demo",
        Holder::current("run-c"),
        &config,
        true,
    )
    .await
    .unwrap();
    assert!(matches!(b.renew().await, Err(LeaseError::Lost { .. })));
    c.release().await.unwrap();
}

/// The objects of the bucket under `prefix`.
async fn listed(store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
    store
        .list(Some(&Path::from(prefix)))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_reads_its_extract_and_publishes_its_reports_on_s3() {
    let server = S3Server::start().await;
    let store = server.store();
    let extract = std::fs::read(repo().join("fixtures/demo/erp_extract.csv")).unwrap();
    store
        .put(
            &Path::from("erp/erp_extract.csv"),
            PutPayload::from(extract),
        )
        .await
        .unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let local_job = demo_job_in(tmp.path(), &out);
    let text = std::fs::read_to_string(&local_job).unwrap();
    let local_extract = format!(
        "\"{}\"",
        repo().join("fixtures/demo/erp_extract.csv").display()
    );
    assert!(text.contains(&local_extract), "{text}");
    let text = text
        .replace(
            &local_extract,
            &format!("\"s3://{BUCKET}/erp/erp_extract.csv\""),
        )
        .replace(
            &format!("\"{}\"", out.display()),
            &format!("\"s3://{BUCKET}/out\""),
        );
    let job = tmp.path().join("s3.toml");
    std::fs::write(&job, text).unwrap();

    let run = || {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_contract-recon"));
        command
            .args(["run", job.to_str().unwrap()])
            .env("CONTRACT_RECON_LOG", "warn")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .envs(server.env());
        command
    };
    let mut run_ids = Vec::new();
    for n in 1..=2 {
        let output = run().output().await.unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "run {n}: {stdout}\n{stderr}");
        // The printed locations are S3 URLs, never local paths.
        let reports = stdout
            .lines()
            .find_map(|l| l.strip_prefix("reports: "))
            .unwrap_or_else(|| panic!("no reports line: {stdout}"));
        assert!(
            reports.starts_with(&format!("s3://{BUCKET}/out/runs/job=demo/run_date=")),
            "{reports}"
        );
        let html = stdout
            .lines()
            .find_map(|l| l.strip_prefix("open:"))
            .map(str::trim)
            .unwrap();
        assert_eq!(html, format!("{reports}/report.html"));
        assert!(
            !stdout.contains(&tmp.path().display().to_string()),
            "{stdout}"
        );
        assert!(!out.exists(), "nothing is written locally");
        let run_id = reports.rsplit("run_id=").next().unwrap().to_string();

        // Published on S3: `_SUCCESS` last, `latest.json` naming this run.
        let key = reports.trim_start_matches(&format!("s3://{BUCKET}/"));
        for file in ["summary.json", "report.html", "_SUCCESS"] {
            store
                .head(&Path::from(format!("{key}/{file}")))
                .await
                .unwrap();
        }
        let latest = store
            .get(&Path::from("out/runs/job=demo/latest.json"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let latest: serde_json::Value = serde_json::from_slice(&latest).unwrap();
        assert_eq!(latest["run_id"], run_id.as_str(), "run {n}");
        let drift_dir = key.replace("/runs/", "/drift/");
        let parquet = store
            .get(&Path::from(format!("{drift_dir}/drift.parquet")))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let drift = ParquetReader::new(std::io::Cursor::new(parquet))
            .finish()
            .unwrap();
        assert_eq!(
            drift_keys(&drift),
            expected_drift(&repo().join("fixtures/demo"))
        );
        run_ids.push(run_id);
    }
    assert_ne!(run_ids[0], run_ids[1]);
    // The lease lives in the bucket, released; nothing is left in staging.
    let lease = store
        .get(&Path::from("out/_leases/demo.json"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let lease: serde_json::Value = serde_json::from_slice(&lease).unwrap();
    assert_eq!(lease["released"], true, "{lease}");
    assert!(listed(&store, "out/_staging").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_if_match_gets_lease_generations_and_one_ignoring_both_is_refused() {
    use contract_recon::sandbox::FaultyStore;
    let server = S3Server::start().await;
    // s3s-fs enforces both conditions; a wrapper drops them, as some
    // S3-compatible servers do (they accept the headers and ignore them).
    let store = FaultyStore::new(Arc::new(server.store()));
    store.ignore_if_match(true);
    let shared: Arc<dyn ObjectStore> = store.clone();
    let prefix = Path::from("ignoring");
    let config = LeaseConfig::default();
    let a = lease::acquire(
        shared.clone(),
        &prefix,
        "demo",
        Holder::current("run-a"),
        &config,
        false,
    )
    .await
    .unwrap();
    assert_eq!(a.scheme(), LeaseScheme::Generations, "the fallback");
    let refused = lease::acquire(
        shared.clone(),
        &prefix,
        "demo",
        Holder::current("run-b"),
        &config,
        false,
    )
    .await;
    assert!(
        matches!(refused, Err(LeaseError::Held { .. })),
        "{refused:?}"
    );
    a.release().await.unwrap();

    store.ignore_if_none_match(true);
    let err = lease::acquire(
        shared,
        &prefix,
        "demo",
        Holder::current("run-c"),
        &config,
        false,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, LeaseError::NoConditionalWrites { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("ignores conditional writes"),
        "{err}"
    );
}
