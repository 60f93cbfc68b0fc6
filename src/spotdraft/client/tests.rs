//! Client tests against the in-process fake server.

use super::*;
use crate::spotdraft::fake::{self, FakeState};

fn client(base: Url, rps: u32) -> SpotDraftClient {
    let cfg = ClientConfig {
        base_url: base,
        client_id: Secret::new("id-1"),
        client_secret: Secret::new("s3cret"),
        user_email: Some("ops@example.com".into()),
        request_timeout: Duration::from_secs(5),
    };
    let policy = RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(10),
        max_total: Duration::from_secs(5),
    };
    SpotDraftClient::with_seed(cfg, Arc::new(Throttle::new(rps, 2)), policy, 42).unwrap()
}

fn q(page: u32) -> ListQuery {
    ListQuery {
        page,
        limit: 2,
        ..ListQuery::default()
    }
}

#[tokio::test]
async fn sends_auth_headers_and_reads_a_page() {
    let (base, st) = fake::start(FakeState {
        contracts: fake::contracts(3),
        ..FakeState::default()
    })
    .await;
    let c = client(base, 100);
    let page = c.list_contracts(&q(2)).await.unwrap();
    assert_eq!(
        (page.page, page.total_results, page.results.len()),
        (2, 3, 1)
    );
    let h = st.lock().unwrap().last_headers.clone().unwrap();
    assert_eq!(h["client-id"], "id-1");
    assert_eq!(h["client-secret"], "s3cret");
    assert_eq!(h["user-email"], "ops@example.com");
    assert_eq!(c.request_counts().list, 1);
    assert!(
        !format!("{c:?}").contains("s3cret"),
        "Debug leaks the secret"
    );
}

#[tokio::test]
async fn retries_429_with_and_without_retry_after_and_5xx() {
    let mut state = FakeState {
        contracts: fake::contracts(1),
        ..FakeState::default()
    };
    state
        .script
        .extend([(429, Some("0"), ""), (429, None, ""), (503, None, "down")]);
    let (base, st) = fake::start(state).await;
    let c = client(base, 100);
    assert_eq!(c.list_contracts(&q(1)).await.unwrap().results.len(), 1);
    assert_eq!(st.lock().unwrap().list_requests, 4);
    let stats = c.throttle().stats().snapshot();
    assert_eq!(
        (
            stats.retries,
            stats.status_429,
            stats.responses_5xx,
            stats.requests
        ),
        (3, 2, 1, 4)
    );
    assert_eq!(c.request_counts().list, 4);
}

#[tokio::test]
async fn gives_up_after_max_attempts() {
    let mut state = FakeState::default();
    state.script.extend([
        (500, None, ""),
        (500, None, ""),
        (500, None, ""),
        (500, None, ""),
        (500, None, ""),
    ]);
    let (base, st) = fake::start(state).await;
    let err = client(base, 100).list_contracts(&q(1)).await.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::Http(HttpError::RetriesExhausted {
                attempts: 4,
                status: 500,
                ..
            })
        ),
        "{err}"
    );
    assert_eq!(st.lock().unwrap().list_requests, 4);
}

#[tokio::test]
async fn unauthorized_fails_at_once_with_a_hint() {
    let mut state = FakeState::default();
    state.script.push_back((
        401,
        None,
        r#"{"detail":"Invalid credentials","code":"SD_AUTH"}"#,
    ));
    let (base, st) = fake::start(state).await;
    let err = client(base.clone(), 100)
        .list_contracts(&q(1))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("401 from http://") && msg.contains("check client-id/client-secret"),
        "{msg}"
    );
    assert!(
        msg.contains(base.as_str()) && msg.contains("Invalid credentials"),
        "{msg}"
    );
    assert!(!msg.contains("s3cret"));
    assert_eq!(st.lock().unwrap().list_requests, 1);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let mut state = FakeState::default();
    state
        .script
        .push_back((302, Some("https://elsewhere.example/api/"), ""));
    let (base, _st) = fake::start(state).await;
    let err = client(base, 100).list_contracts(&q(1)).await.unwrap_err();
    assert!(
        matches!(&err, FetchError::Redirect { status: 302, location, .. } if location == "https://elsewhere.example/api/")
    );
    assert!(
        err.to_string().contains("v2.1/public/contracts/?page=1"),
        "{err}"
    );
}

#[tokio::test]
async fn a_cut_short_body_is_retried_like_a_5xx() {
    let mut state = FakeState {
        contracts: fake::contracts(3),
        ..FakeState::default()
    };
    let cut = "{\"page\": 1, \"results\": [oops";
    state
        .script
        .extend([(200, None, cut), (200, None, "{\"page\": 1, \"tot")]);
    let (base, st) = fake::start(state).await;
    let c = client(base, 100);
    let page = c.list_contracts(&q(1)).await.unwrap();
    assert_eq!(page.total_results, 3);
    assert_eq!(st.lock().unwrap().list_requests, 3);
    let stats = c.throttle().stats().snapshot();
    assert_eq!((stats.malformed_bodies, stats.retries), (2, 2));
    assert_eq!(c.request_counts().list, 3);
}

#[tokio::test]
async fn a_body_that_stays_malformed_fails_naming_the_url_once() {
    let mut state = FakeState::default();
    let cut = "{\"page\": 7, \"results\": [oops";
    state.script.extend([(200, None, cut); 5]);
    let (base, st) = fake::start(state).await;
    let err = client(base, 100).list_contracts(&q(7)).await.unwrap_err();
    let FetchError::MalformedJson {
        url,
        page,
        attempts,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!((*page, *attempts), (Some(7), 4));
    assert!(url.contains("page=7"), "{url}");
    let chain = format!("{:#}", anyhow::Error::from(err));
    assert_eq!(chain.matches("http://").count(), 1, "{chain}");
    assert!(chain.contains("after 4 attempt(s): "), "{chain}");
    assert_eq!(
        st.lock().unwrap().list_requests,
        4,
        "the policy's 4 attempts"
    );
}

#[test]
fn contract_id_filters_use_eq_for_one_and_in_for_several() {
    let one = ListQuery {
        contract_ids: vec!["T-1".into()],
        ..q(1)
    };
    assert!(one
        .pairs()
        .contains(&("filter__contract_id[$eq]", "T-1".to_string())));
    let many = ListQuery {
        contract_ids: vec!["T-1".into(), "2".into(), "a,b".into()],
        ..q(1)
    };
    assert!(many
        .pairs()
        .contains(&("filter__contract_id[$in]", "T-1,2,a\\,b".to_string())));
}

#[tokio::test]
async fn key_pointers_and_download() {
    let (base, st) = fake::start(FakeState::default()).await;
    let c = client(base, 100);
    let kp = c.key_pointers(&ContractId::new("T-9")).await.unwrap();
    assert_eq!(kp[0].field_name, "contract_value");
    assert_eq!(kp[0].value, "value-of-T-9");
    assert_eq!(
        &c.download(&ContractId::new("T-9")).await.unwrap()[..],
        b"%PDF T-9"
    );
    assert_eq!(st.lock().unwrap().other_requests, 2);
    assert_eq!(
        c.request_counts(),
        RequestCounts {
            list: 0,
            key_pointers: 1,
            documents: 1,
            external_metadata: 0,
            creates: 0
        }
    );
}
