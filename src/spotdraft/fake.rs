//! A tiny in-process SpotDraft list server for unit tests: ordering by last
//! update (newest first), created/updated filters, scripted failures and
//! mutations while paging. The full sandbox lives in `crate::sandbox`.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// One contract of the fake.
#[derive(Debug, Clone)]
pub struct FakeContract {
    pub id: String,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub status: String,
}

/// Shared state of the fake.
#[derive(Debug, Default)]
pub struct FakeState {
    pub contracts: Vec<FakeContract>,
    /// Scripted answers for the next requests: (status, retry-after or location, body); status 0 passes through.
    pub script: VecDeque<(u16, Option<&'static str>, &'static str)>,
    /// Every `n` list requests, update the oldest-updated contract (moves it to the front).
    pub update_every: Option<u64>,
    pub list_requests: u64,
    pub other_requests: u64,
    pub last_headers: Option<HeaderMap>,
    pub clock: i64,
}

pub type Shared = Arc<Mutex<FakeState>>;

/// `n` contracts created a minute apart from 2026-01-01.
pub fn contracts(n: usize) -> Vec<FakeContract> {
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    (0..n)
        .map(|i| {
            let t = t0 + Duration::minutes(i as i64);
            FakeContract {
                id: format!("T-{}", i + 1),
                created: t,
                updated: t,
                status: "EXECUTED".into(),
            }
        })
        .collect()
}

/// Starts the fake on a loopback port; returns its `/api/` base URL.
pub async fn start(state: FakeState) -> (url::Url, Shared) {
    let shared: Shared = Arc::new(Mutex::new(state));
    let app = Router::new()
        .route("/api/v2.1/public/contracts/", get(list))
        .route(
            "/api/v2.1/public/contracts/{id}/key_pointers",
            get(key_pointers),
        )
        .route("/api/v2.1/public/contracts/{id}/download", post(download))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/api/").parse().unwrap(), shared)
}

fn scripted(st: &mut FakeState) -> Option<Response> {
    let (status, retry_after, body) = st.script.pop_front()?;
    if status == 0 {
        return None; // pass through
    }
    let mut resp = (StatusCode::from_u16(status).unwrap(), body.to_string()).into_response();
    if let Some(ra) = retry_after {
        let name = if (300..400).contains(&status) {
            "location"
        } else {
            "retry-after"
        };
        resp.headers_mut().insert(name, ra.parse().unwrap());
    }
    Some(resp)
}

fn time(q: &HashMap<String, String>, k: &str) -> Option<DateTime<Utc>> {
    q.get(k)
        .map(|v| DateTime::parse_from_rfc3339(v).unwrap().with_timezone(&Utc))
}

async fn list(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut st = s.lock().unwrap();
    st.list_requests += 1;
    st.last_headers = Some(headers);
    if let Some(r) = scripted(&mut st) {
        return r;
    }
    if let Some(n) = st.update_every {
        if st.list_requests % n == 0 {
            st.clock += 1;
            let now =
                Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap() + Duration::seconds(st.clock);
            let oldest = st.contracts.iter_mut().min_by_key(|c| c.updated).unwrap();
            oldest.updated = now;
        }
    }
    let page: usize = q.get("page").map_or(1, |p| p.parse().unwrap());
    let limit: usize = q.get("limit").map_or(10, |p| p.parse().unwrap());
    let within = |t: DateTime<Utc>, lo: Option<DateTime<Utc>>, hi: Option<DateTime<Utc>>| {
        lo.is_none_or(|lo| t >= lo) && hi.is_none_or(|hi| t < hi)
    };
    let (cg, cl) = (
        time(&q, "filter__created_at[$gte]"),
        time(&q, "filter__created_at[$lt]"),
    );
    let (ug, ul) = (
        time(&q, "filter__last_updated_on[$gte]"),
        time(&q, "filter__last_updated_on[$lt]"),
    );
    let statuses: Option<Vec<&str>> = q
        .get("filter__display_status[$in]")
        .map(|s| s.split(',').collect());
    let mut hits: Vec<&FakeContract> = st
        .contracts
        .iter()
        .filter(|c| within(c.created, cg, cl) && within(c.updated, ug, ul))
        .filter(|c| {
            statuses
                .as_ref()
                .is_none_or(|s| s.contains(&c.status.as_str()))
        })
        .collect();
    hits.sort_by(|a, b| b.updated.cmp(&a.updated).then(a.id.cmp(&b.id)));
    let results: Vec<Value> = hits
        .iter()
        .skip((page - 1) * limit)
        .take(limit)
        .map(|c| {
            json!({"id": c.id, "created": c.created.to_rfc3339(), "contract_status": c.status,
                   "last_updated_on": c.updated.to_rfc3339(), "external_metadata": null})
        })
        .collect();
    Json(json!({"page": page, "limit": limit, "total_results": hits.len(), "results": results}))
        .into_response()
}

async fn key_pointers(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    let mut st = s.lock().unwrap();
    st.other_requests += 1;
    if let Some(r) = scripted(&mut st) {
        return r;
    }
    Json(json!([{"id": 1, "value": format!("value-of-{id}"), "field_name": "contract_value"}]))
        .into_response()
}

async fn download(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    s.lock().unwrap().other_requests += 1;
    format!("%PDF {id}").into_response()
}
