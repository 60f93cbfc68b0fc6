//! The ERP REST sink against the sandbox ERP over loopback HTTP: outcomes,
//! retries with one key, batches, percent-encoded ids, streamed documents and
//! auth headers.

mod auth;
mod documents;
mod spotdraft;
mod writes;

use crate::sandbox_api::dataset;
use contract_recon::erp::rest::{ErpAuth, RestSink, RestSinkConfig};
use contract_recon::erp::sink::FieldUpdate;
use contract_recon::http::RetryPolicy;
use contract_recon::sandbox::dataset::ErpRecord;
use contract_recon::sandbox::{Sandbox, SandboxConfig};
use contract_recon::secret::Secret;
use std::collections::BTreeMap;
use std::time::Duration;

/// A sandbox with `n` contracts and records `E-1..=E-n`, plus `ERP 12/3`.
pub async fn start_erp(n: usize) -> Sandbox {
    let mut data = dataset(n);
    data.erp_records.push(ErpRecord {
        erp_record_id: "ERP 12/3".into(),
        version: 1,
        ..ErpRecord::default()
    });
    let config = SandboxConfig {
        rate_limit_per_sec: 1000,
        seed: 7,
        ..SandboxConfig::default()
    };
    Sandbox::start(config, data).await.unwrap()
}

/// Fast retries: 6 attempts, 5 ms doubling to 50 ms.
pub fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 6,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        max_total: Duration::from_secs(10),
    }
}

/// A sink on the sandbox's ERP with its bearer token, 500 requests/s.
pub fn sink_config(sb: &Sandbox) -> RestSinkConfig {
    let auth = ErpAuth::Bearer(Secret::new(sb.credentials().erp_token.clone()));
    let mut config = RestSinkConfig::new(sb.erp_base_url().parse().unwrap(), auth);
    config.requests_per_second = 500;
    config.retry = quick_retry();
    config
}

pub fn sink(sb: &Sandbox) -> RestSink {
    RestSink::with_seed(sink_config(sb), 3).unwrap()
}

/// An update of `fields` on `id` with `key`.
pub fn update(id: &str, key: &str, fields: &[(&str, &str)]) -> FieldUpdate {
    FieldUpdate {
        erp_record_id: id.into(),
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        if_match: None,
        idempotency_key: key.into(),
    }
}

/// (key, applied, status) of every write-log entry.
pub fn log(sb: &Sandbox) -> Vec<(Option<String>, bool, u16)> {
    sb.state()
        .erp_writes()
        .into_iter()
        .map(|w| (w.idempotency_key, w.applied, w.status))
        .collect()
}
