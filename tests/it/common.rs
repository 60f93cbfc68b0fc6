//! Helpers shared by the integration tests.

use polars::prelude::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// One drift row as the truth file and the reports both identify it.
pub type DriftKey = (String, String, String, String);

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of `jobs/demo.toml` with absolute fixture paths and the output under `out`.
pub fn demo_job_in(dir: &Path, out: &Path) -> PathBuf {
    let root = repo();
    let text = std::fs::read_to_string(root.join("jobs/demo.toml"))
        .unwrap()
        .replace("\"../fixtures/", &format!("\"{}/fixtures/", root.display()))
        .replace("\"../out/demo\"", &format!("\"{}\"", out.display()));
    let path = dir.join("demo.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A column of `df` as text, nulls as "".
pub fn text(df: &DataFrame, col: &str) -> Vec<String> {
    let c = df
        .column(col)
        .unwrap_or_else(|e| panic!("column {col}: {e}"));
    let s = c.cast(&DataType::String).unwrap();
    s.str()
        .unwrap()
        .iter()
        .map(|v| v.unwrap_or("").to_string())
        .collect()
}

/// The (kind, contract_id, erp_record_id, field) of every row of a drift frame.
pub fn drift_keys(df: &DataFrame) -> BTreeSet<DriftKey> {
    let (k, c, e, f) = (
        text(df, "drift_kind"),
        text(df, "contract_id"),
        text(df, "erp_record_id"),
        text(df, "field"),
    );
    (0..df.height())
        .map(|i| (k[i].clone(), c[i].clone(), e[i].clone(), f[i].clone()))
        .collect()
}

/// Asserts that every drift row has a `drift_id` and no two rows share one.
pub fn assert_drift_ids_unique(df: &DataFrame) {
    let ids = text(df, "drift_id");
    assert!(ids.iter().all(|id| id.len() == 16), "{ids:?}");
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "drift_id repeats within a run");
    assert!(!ids.is_empty());
}

/// Reads a CSV with every column as text.
pub fn read_csv_text(path: &Path) -> DataFrame {
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .finish()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The truth of a generated dataset: `expected_drift.csv`.
pub fn expected_drift(dataset: &Path) -> BTreeSet<DriftKey> {
    drift_keys(&read_csv_text(&dataset.join("expected_drift.csv")))
}

/// The drift rows of a report folder's `drift.parquet`.
pub fn reported_drift(report_dir: &Path) -> BTreeSet<DriftKey> {
    let file = std::fs::File::open(report_dir.join("drift.parquet")).unwrap();
    drift_keys(&ParquetReader::new(file).finish().unwrap())
}

/// The `contract-recon` binary: Cargo's build of it, or the file
/// `CONTRACT_RECON_BIN` names (a target folder shared by several checkouts
/// holds one `debug/contract-recon`, the last one built).
pub fn binary() -> PathBuf {
    std::env::var_os("CONTRACT_RECON_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_contract-recon")))
}

/// Runs the built `contract-recon` binary.
pub fn cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_contract-recon"))
        .args(args)
        .env("CONTRACT_RECON_LOG", "warn")
        .output()
        .unwrap()
}

/// The demo job (output under `tmp/out`) pointed at a sandbox the test starts
/// and owns (1,000 requests/s), so it can count requests and edit state.
pub async fn demo_job_against_own_sandbox(
    tmp: &Path,
) -> (contract_recon::job::Job, contract_recon::sandbox::Sandbox) {
    use contract_recon::job::{load_job, SpotDraftTarget};
    use contract_recon::sandbox::{Dataset, Sandbox, SandboxConfig};
    use contract_recon::secret::Secret;
    let mut job = load_job(&demo_job_in(tmp, &tmp.join("out"))).unwrap();
    let dataset = Dataset::load(&repo().join("fixtures/demo")).unwrap();
    let config = SandboxConfig {
        rate_limit_per_sec: 1000,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(config, dataset).await.unwrap();
    let creds = sandbox.credentials().clone();
    job.spotdraft = SpotDraftTarget::Live {
        base_url: url::Url::parse(&sandbox.spotdraft_base_url()).unwrap(),
        client_id: Secret::new(creds.client_id),
        client_secret: Secret::new(creds.client_secret),
        user_email: None,
    };
    job.fetch.requests_per_second = 1000;
    (job, sandbox)
}

/// A REST sink writing into `sandbox`'s ERP, one write per request, with up to
/// `max_attempts` attempts and short backoffs.
pub fn rest_sink_to(
    sandbox: &contract_recon::sandbox::Sandbox,
    max_attempts: u32,
) -> contract_recon::job::SinkSettings {
    use contract_recon::http::RetryPolicy;
    use contract_recon::job::{ErpAuth, RestSinkSettings, SinkSettings};
    use contract_recon::secret::Secret;
    use std::time::Duration;
    SinkSettings::Rest(Box::new(RestSinkSettings {
        base_url: Some(url::Url::parse(&sandbox.erp_base_url()).unwrap()),
        auth: ErpAuth::Bearer(Secret::new(sandbox.credentials().erp_token.clone())),
        update_path: "contracts/{erp_record_id}".into(),
        attach_path: "contracts/{erp_record_id}/attachments".into(),
        batch_path: "batch".into(),
        use_batch: false,
        requests_per_second: 500,
        max_in_flight: 4,
        request_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(50),
            max_total: Duration::from_secs(30),
        },
    }))
}

/// Asks `sandbox` to sign and deliver SpotDraft's webhook for `contract_id`
/// (`activity`, e.g. `CONTRACT_EXECUTED`) to `url`; the sandbox's answer,
/// whose `status` is the receiver's.
pub async fn sandbox_sends_webhook(
    sandbox: &contract_recon::sandbox::Sandbox,
    url: &str,
    contract_id: i64,
    activity: &str,
) -> serde_json::Value {
    reqwest::Client::new()
        .post(format!(
            "http://{}/_sandbox/webhooks/send",
            sandbox.local_addr()
        ))
        .json(&serde_json::json!({
            "url": url,
            "contract_id": contract_id,
            "activity": activity,
        }))
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
