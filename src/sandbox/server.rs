//! The sandbox server: one axum router serving SpotDraft under `/api/`, the ERP
//! under `/erp/` and the admin endpoints under `/_sandbox/`.

use crate::sandbox::faults::{FaultsConfig, FaultsHandle};
use crate::sandbox::store::{parse_instant, SignedLink, StateHandle};
use crate::sandbox::{erp, spotdraft, Dataset};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sha2::{Digest, Sha512};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How to run the sandbox.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// SpotDraft requests allowed per workspace (client-id) in any 1-second window.
    pub rate_limit_per_sec: u32,
    /// Credentials both APIs accept.
    pub credentials: SandboxCredentials,
    /// Seed of the fault RNG (and of the webhook HMAC key).
    pub seed: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            rate_limit_per_sec: 10,
            credentials: SandboxCredentials::default(),
            seed: 0,
        }
    }
}

/// Credentials the sandbox accepts. `Debug` hides the secret and the token.
#[derive(Clone, PartialEq, Eq)]
pub struct SandboxCredentials {
    /// SpotDraft `client-id` header value.
    pub client_id: String,
    /// SpotDraft `client-secret` header value.
    pub client_secret: String,
    /// ERP bearer token.
    pub erp_token: String,
}

impl Default for SandboxCredentials {
    /// Fixed, well-known sandbox values (not secrets: the sandbox is local).
    fn default() -> Self {
        SandboxCredentials {
            client_id: "sandbox-client-id".into(),
            client_secret: "sandbox-client-secret".into(),
            erp_token: "sandbox-erp-token".into(),
        }
    }
}

impl fmt::Debug for SandboxCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("erp_token", &"[redacted]")
            .finish()
    }
}

/// Why the sandbox could not load its dataset or start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A dataset file or folder could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A JSON line of a dataset file does not parse.
    #[error("{} line {line}", path.display())]
    BadLine {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
    /// Two contracts share one id.
    #[error("duplicate contract id {id} in the dataset")]
    DuplicateContract { id: String },
    /// Two ERP records share one id.
    #[error("duplicate ERP record id {id} in the dataset")]
    DuplicateErpRecord { id: String },
    /// A contract timestamp is not ISO 8601.
    #[error("contract {id}: {field} {value:?} is not an ISO 8601 date-time")]
    BadTimestamp {
        id: String,
        field: &'static str,
        value: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Shared by every handler.
#[derive(Clone)]
pub(crate) struct AppState {
    pub store: StateHandle,
    pub faults: FaultsHandle,
    pub credentials: Arc<SandboxCredentials>,
    pub rate_limit_per_sec: u32,
    /// `http://host:port`, for signed links.
    pub origin: Arc<str>,
    pub hmac_key: Arc<[u8]>,
    /// Per client-id request instants of the last second.
    pub windows: Arc<Mutex<HashMap<String, VecDeque<Instant>>>>,
    /// ERP request instants of the last second (`erp.rate_limit_per_sec`).
    pub erp_window: Arc<Mutex<VecDeque<Instant>>>,
}

/// A running sandbox. Dropping it stops the server too.
pub struct Sandbox {
    addr: SocketAddr,
    credentials: SandboxCredentials,
    store: StateHandle,
    faults: FaultsHandle,
    hmac_key: Arc<[u8]>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Sandbox {
    /// Loads the dataset into a fresh state, binds `config.listen` and serves in a tokio task.
    pub async fn start(config: SandboxConfig, dataset: Dataset) -> Result<Sandbox, SandboxError> {
        let store = StateHandle::default();
        fill_store(&store, dataset)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| SandboxError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SandboxError::Bind {
            addr: config.listen,
            source,
        })?;
        let faults = FaultsHandle::new(config.seed);
        let hmac_key: Arc<[u8]> = Sha512::digest(format!("sandbox-webhook-key:{}", config.seed))
            .to_vec()
            .into();
        let state = AppState {
            store: store.clone(),
            faults: faults.clone(),
            credentials: Arc::new(config.credentials.clone()),
            rate_limit_per_sec: config.rate_limit_per_sec,
            origin: format!("http://{addr}").into(),
            hmac_key: hmac_key.clone(),
            windows: Arc::default(),
            erp_window: Arc::default(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(state);
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "sandbox server stopped");
            }
        });
        tracing::info!(%addr, "sandbox listening");
        Ok(Sandbox {
            addr,
            credentials: config.credentials,
            store,
            faults,
            hmac_key,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Base URL of the SpotDraft API, e.g. `http://127.0.0.1:PORT/api/`.
    pub fn spotdraft_base_url(&self) -> String {
        format!("http://{}/api/", self.addr)
    }

    /// Base URL of the ERP API, e.g. `http://127.0.0.1:PORT/erp/`.
    pub fn erp_base_url(&self) -> String {
        format!("http://{}/erp/", self.addr)
    }

    /// Address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Credentials both APIs accept.
    pub fn credentials(&self) -> &SandboxCredentials {
        &self.credentials
    }

    /// Runtime switch for faults.
    pub fn faults(&self) -> FaultsHandle {
        self.faults.clone()
    }

    /// Handle on contracts, ERP records, counters and the ERP write log.
    pub fn state(&self) -> StateHandle {
        self.store.clone()
    }

    /// The webhook HMAC key (raw bytes; the API serves it base64-encoded).
    pub fn webhook_hmac_key(&self) -> Vec<u8> {
        self.hmac_key.to_vec()
    }

    /// Stops accepting connections and waits (up to 5 s) for open ones to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(std::time::Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn fill_store(store: &StateHandle, dataset: Dataset) -> Result<(), SandboxError> {
    let mut state = store.lock();
    for c in dataset.contracts {
        let id = c.contract.id.composite().to_string();
        let stamps = [
            ("created", Some(&c.contract.created)),
            ("last_updated_on", c.contract.last_updated_on.as_ref()),
        ];
        for (field, value) in stamps {
            if let Some(value) = value.filter(|v| parse_instant(v).is_none()) {
                return Err(SandboxError::BadTimestamp {
                    id,
                    field,
                    value: value.clone(),
                });
            }
        }
        if state.contract(&id).is_some() {
            return Err(SandboxError::DuplicateContract { id });
        }
        state.put_contract(c);
    }
    for r in dataset.erp_records {
        if state.erp.contains_key(&r.erp_record_id) {
            return Err(SandboxError::DuplicateErpRecord {
                id: r.erp_record_id,
            });
        }
        state.erp.insert(r.erp_record_id.clone(), r);
    }
    state.documents = dataset.documents;
    state.templates = crate::sandbox::store::default_templates()
        .into_iter()
        .map(|t| (t.id, t))
        .collect();
    Ok(())
}

fn router(state: AppState) -> Router {
    let admin = Router::new()
        .route("/_sandbox/faults", get(get_faults).put(put_faults))
        .route("/_sandbox/stats", get(get_stats))
        .route("/_sandbox/signed/{token}", get(get_signed))
        .route(
            "/_sandbox/webhooks/send",
            axum::routing::post(super::webhooks::send_webhook),
        );
    Router::new()
        .merge(spotdraft::router(state.clone()))
        .merge(erp::router(state.clone()))
        .merge(admin)
        .fallback(spotdraft::fallback)
        .with_state(state)
}

async fn get_faults(State(s): State<AppState>) -> Json<FaultsConfig> {
    Json(s.faults.get())
}

async fn put_faults(State(s): State<AppState>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<FaultsConfig>(&body) {
        Ok(config) => {
            s.faults.set(config.clone());
            Json(config).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": format!("bad faults JSON: {e}")})),
        )
            .into_response(),
    }
}

async fn get_stats(State(s): State<AppState>) -> Response {
    let state = s.store.lock();
    let body = serde_json::json!({
        "counters": state.counters,
        "contracts": state.contract_count(),
        "erp_records": state.erp.len(),
        "erp_writes": state.writes.len(),
        "mutations": state.mutations,
        "page_shift_done": s.faults.page_shift_done(),
        "faults": s.faults.counts(),
    });
    Json(body).into_response()
}

async fn get_signed(State(s): State<AppState>, Path(token): Path<String>) -> Response {
    let bytes = {
        let mut state = s.store.lock();
        state
            .links
            .retain(|_, l: &mut SignedLink| l.expires > Instant::now());
        let doc = state.links.get(&token).map(|l| l.document.clone());
        doc.and_then(|d| state.documents.get(&d).cloned())
    };
    match bytes {
        Some(b) => ([(header::CONTENT_TYPE, "application/pdf")], b).into_response(),
        None => (StatusCode::NOT_FOUND, "link expired or unknown").into_response(),
    }
}
