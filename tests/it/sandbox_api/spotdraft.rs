//! The sandbox SpotDraft API: auth, paging, filters, redirects, rate limit,
//! documents, external metadata and faults.

use super::{client, contracts, created_at, document_bytes, ids, iso, list, sd, start, updated_at};
use contract_recon::sandbox::{FaultsConfig, MutationKind, PageShift};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const LIST: &str = "v2.1/public/contracts/";

#[tokio::test]
async fn missing_or_wrong_credentials_get_401_with_error_body() {
    let sb = start(2, 1000).await;
    let url = format!("{}{LIST}", sb.spotdraft_base_url());
    let none = client().get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let body: Value = none.json().await.unwrap();
    assert_eq!(body["code"], "SD_AUTHENTICATION_FAILED");
    assert_eq!(body["status_code"], 401);
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()) && body["message"].is_string());
    let c = sb.credentials().clone();
    let wrong = client()
        .get(&url)
        .header("client-id", &c.client_id)
        .header("client-secret", "nope");
    assert_eq!(wrong.send().await.unwrap().status(), 401);
    let ok = sd(&sb, Method::GET, LIST)
        .header("user-email", "a@b.c")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(sb.state().counters().unauthorized, 2);
    sb.shutdown().await;
}

#[tokio::test]
async fn pages_walk_all_contracts_newest_update_first() {
    let sb = start(25, 1000).await;
    let mut seen = Vec::new();
    for (page, expected_len) in [(1, 10), (2, 10), (3, 5), (4, 0)] {
        let body = list(&sb, &format!("page={page}&limit=10")).await;
        assert_eq!(
            (body["page"].as_u64(), body["limit"].as_u64()),
            (Some(page), Some(10))
        );
        assert_eq!(body["total_results"], 25);
        assert_eq!(body["results"].as_array().unwrap().len(), expected_len);
        seen.extend(ids(&body));
    }
    let expected: Vec<String> = (1..=25).rev().map(|i| format!("T-{i}")).collect();
    assert_eq!(seen, expected, "ordered by last_updated_on descending");
    let first = &list(&sb, "").await["results"][0];
    assert!(
        first.get("last_updated_on").is_none(),
        "not part of the published schema"
    );
    assert_eq!(first["created_by_workspace"], 1);
    assert_eq!(first["external_metadata"], json!({}));
    let default = list(&sb, "").await;
    assert_eq!(
        (default["limit"].as_u64(), ids(&default).len()),
        (Some(10), 10)
    );
    assert_eq!(list(&sb, "limit=1000").await["limit"], 100);
    let bad = sd(&sb, Method::GET, &format!("{LIST}?page=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    sb.shutdown().await;
}

#[tokio::test]
async fn each_filter_selects_what_it_names() {
    let n = 30;
    let sb = start(n, 1000).await;
    let all = contracts(n);
    let pick = |f: &dyn Fn(usize) -> bool| -> BTreeSet<String> {
        (1..=n)
            .filter(|i| f(*i))
            .map(|i| format!("T-{i}"))
            .collect()
    };
    let status = |i: usize| all[i - 1].contract.contract_status.clone();
    let cases: Vec<(String, BTreeSet<String>)> = vec![
        (
            format!("filter__last_updated_on[$gte]={}", iso(updated_at(20))),
            pick(&|i| i >= 20),
        ),
        (
            format!("filter__last_updated_on[$gt]={}", iso(updated_at(20))),
            pick(&|i| i > 20),
        ),
        (
            format!("filter__last_updated_on[$lt]={}", iso(updated_at(4))),
            pick(&|i| i < 4),
        ),
        (
            format!("filter__last_updated_on[$lte]={}", iso(updated_at(4))),
            pick(&|i| i <= 4),
        ),
        (
            format!("filter__created_at[$gte]={}", iso(created_at(28))),
            pick(&|i| i >= 28),
        ),
        (
            format!("filter__created_at[$lt]={}", iso(created_at(3))),
            pick(&|i| i < 3),
        ),
        // Same instant written with an offset: compared as an instant, not as text.
        (
            "filter__created_at[$lte]=2026-01-01T03:00:00%2B01:00".into(),
            pick(&|i| i <= 2),
        ),
        (
            "filter__display_status=EXECUTED".into(),
            pick(&|i| status(i) == "EXECUTED"),
        ),
        (
            "filter__display_status[$in]=EXECUTED,SIGN".into(),
            pick(&|i| ["EXECUTED", "SIGN"].contains(&status(i).as_str())),
        ),
        (
            "filter__display_status[$ne]=DRAFT".into(),
            pick(&|i| status(i) != "DRAFT"),
        ),
        ("filter__contract_id[$eq]=T-7".into(), pick(&|i| i == 7)),
        ("filter__contract_id=12".into(), pick(&|i| i == 12)),
        (
            "filter__contract_id[$in]=3,T-4,T-99".into(),
            pick(&|i| i == 3 || i == 4),
        ),
    ];
    for (query, expected) in cases {
        let body = list(&sb, &format!("{query}&limit=100")).await;
        let got: BTreeSet<String> = ids(&body).into_iter().collect();
        assert_eq!(got, expected, "{query}");
        assert_eq!(
            body["total_results"].as_u64(),
            Some(expected.len() as u64),
            "{query}"
        );
    }
    let paged = list(&sb, "filter__display_status[$ne]=DRAFT&limit=4&page=2").await;
    assert_eq!(
        paged["total_results"].as_u64(),
        Some(pick(&|i| status(i) != "DRAFT").len() as u64)
    );
    assert_eq!(ids(&paged).len(), 4);
    for bad in [
        "filter__tags=x",
        "filter__banana[$eq]=1",
        "filter__created_at[$gte]=not-a-date",
    ] {
        let resp = sd(&sb, Method::GET, &format!("{LIST}?{bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["status_code"], 400, "{bad}");
        assert!(
            body["code"].as_str().is_some_and(|c| c.starts_with("SD_")),
            "{bad}"
        );
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn trailing_slash_mismatch_redirects_to_the_documented_path() {
    let sb = start(3, 1000).await;
    let cases = [
        (
            "v2.1/public/contracts?page=2",
            "/api/v2.1/public/contracts/?page=2",
        ),
        (
            "v2.1/public/contracts/T-1/key_pointers/",
            "/api/v2.1/public/contracts/T-1/key_pointers",
        ),
        (
            "v2.1/public/webhooks/hmac_key",
            "/api/v2.1/public/webhooks/hmac_key/",
        ),
    ];
    for (path, location) in cases {
        let resp = sd(&sb, Method::GET, path).send().await.unwrap();
        assert_eq!(resp.status(), 302, "{path}");
        assert_eq!(resp.headers()["location"], location, "{path}");
    }
    let post = sd(&sb, Method::POST, "v2.1/public/contracts/T-1/download/")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (post.status().as_u16(), &post.headers()["location"]),
        (
            302,
            &"/api/v2.1/public/contracts/T-1/download".parse().unwrap()
        )
    );
    let unknown = sd(&sb, Method::GET, "v2.1/public/nothing/")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    sb.shutdown().await;
}

#[tokio::test]
async fn rate_limit_counts_every_request_in_a_sliding_second() {
    let sb = start(2, 3).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            sd(&sb, Method::GET, LIST)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let limited = sd(&sb, Method::GET, LIST).send().await.unwrap();
    assert!(limited.headers().get("retry-after").is_none());
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["status_code"], 429);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        sd(&sb, Method::GET, LIST).send().await.unwrap().status(),
        200
    );
    assert_eq!(sb.state().counters().rate_limited, 3);
    sb.shutdown().await;
}

#[tokio::test]
async fn key_pointers_documents_and_download_links() {
    let sb = start(4, 1000).await;
    let kps: Value = sd(&sb, Method::GET, "v2.1/public/contracts/T-3/key_pointers")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        kps,
        serde_json::to_value(&contracts(4)[2].key_pointers).unwrap()
    );
    let missing = sd(&sb, Method::GET, "v2.1/public/contracts/T-9/key_pointers")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap()["status_code"], 404);

    let pdf = sd(&sb, Method::POST, "v2.1/public/contracts/T-3/download")
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.status(), 200);
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    assert_eq!(pdf.bytes().await.unwrap(), document_bytes(3));
    let no_doc = sd(&sb, Method::POST, "v2.1/public/contracts/T-2/download")
        .send()
        .await
        .unwrap();
    assert_eq!(no_doc.status(), 404);

    let link: Value = sd(&sb, Method::POST, "v2.1/public/contracts/T-1/download_link")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            link["file_name"].as_str(),
            link["current_version_id"].as_i64()
        ),
        (Some("T-1.pdf"), Some(1))
    );
    let fetched = client()
        .get(link["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.bytes().await.unwrap(), document_bytes(1));
    let forged = format!("http://{}/_sandbox/signed/0000", sb.local_addr());
    assert_eq!(client().get(forged).send().await.unwrap().status(), 404);

    let key: Value = sd(&sb, Method::GET, "v2.1/public/webhooks/hmac_key/")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(key["hmac_key"].as_str().unwrap())
        .unwrap();
    assert_eq!(decoded, sb.webhook_hmac_key());
    sb.shutdown().await;
}

#[tokio::test]
async fn external_metadata_round_trip_moves_the_contract_to_the_front() {
    let sb = start(5, 1000).await;
    let path = "v2.1/public/contracts/T-3/external_metadata";
    let before: Value = sd(&sb, Method::GET, path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(before["external_metadata"]["id"], "E-3");
    assert_eq!(ids(&list(&sb, "limit=1").await), ["T-5"]);
    let new = json!({"id": "ERP-9", "integration_name": "ERP", "record_type": "Contract", "record_data": {"vendor_id": "V-9"}});
    let resp = sd(&sb, Method::POST, path)
        .json(&json!({"external_metadata": new}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["external_metadata"],
        new
    );
    let after: Value = sd(&sb, Method::GET, path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after["external_metadata"], new);
    let front = list(&sb, "limit=1").await;
    assert_eq!(ids(&front), ["T-3"], "the update moved T-3 to the front");
    assert_eq!(front["results"][0]["external_metadata"], new);
    let stored = sb.state().contract("T-3").unwrap();
    assert!(stored.contract.last_updated_on.unwrap() > iso(updated_at(5)));
    let bad = sd(&sb, Method::POST, path)
        .json(&json!({"external_metadata": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    sb.shutdown().await;
}

#[tokio::test]
async fn injected_faults_429_burst_5xx_slow_and_malformed() {
    let sb = start(3, 1000).await;
    let admin = format!("http://{}/_sandbox/faults", sb.local_addr());
    let put = json!({"spotdraft": {"http": {"burst_429": 2, "retry_after_secs": 7}, "malformed_json_next": 1}});
    assert_eq!(
        client()
            .put(&admin)
            .json(&put)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    for _ in 0..2 {
        let r = sd(&sb, Method::GET, LIST).send().await.unwrap();
        assert_eq!(
            (
                r.status().as_u16(),
                r.headers()["retry-after"].to_str().unwrap()
            ),
            (429, "7")
        );
    }
    let truncated = sd(&sb, Method::GET, LIST).send().await.unwrap();
    assert_eq!(truncated.status(), 200);
    assert!(serde_json::from_slice::<Value>(&truncated.bytes().await.unwrap()).is_err());
    assert_eq!(
        list(&sb, "").await["total_results"],
        3,
        "only the next N responses are malformed"
    );
    let remaining: FaultsConfig = client()
        .get(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            remaining.spotdraft.http.burst_429,
            remaining.spotdraft.malformed_json_next
        ),
        (0, 0)
    );

    sb.faults().update(|f| f.spotdraft.http.error_rate = 1.0);
    for _ in 0..5 {
        let r = sd(&sb, Method::GET, LIST).send().await.unwrap();
        assert!(
            [500, 502, 503].contains(&r.status().as_u16()),
            "{}",
            r.status()
        );
        assert!(r.json::<Value>().await.unwrap()["code"].is_string());
    }
    sb.faults().update(|f| {
        f.spotdraft.http.error_rate = 0.0;
        f.spotdraft.http.slow_rate = 1.0;
        f.spotdraft.http.slow_ms = 300;
    });
    let t = Instant::now();
    assert_eq!(
        sd(&sb, Method::GET, LIST).send().await.unwrap().status(),
        200
    );
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        client()
            .put(&admin)
            .body("{\"nope\":1}")
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    let stats: Value = client()
        .get(format!("http://{}/_sandbox/stats", sb.local_addr()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["counters"]["faults_injected"], 2 + 1 + 5);
    sb.shutdown().await;
}

#[tokio::test]
async fn page_shift_mutations_are_recorded_and_explain_the_final_set() {
    let n = 30;
    let sb = start(n, 1000).await;
    sb.faults().update(|f| {
        f.spotdraft.page_shift = Some(PageShift {
            mutations: 3,
            every_n_list_requests: 1,
        })
    });
    let mut walked = BTreeSet::new();
    for page in 1.. {
        let body = list(&sb, &format!("page={page}&limit=10")).await;
        if ids(&body).is_empty() {
            break;
        }
        walked.extend(ids(&body));
    }
    let mutations = sb.state().mutations();
    let kinds: Vec<_> = mutations.iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        [
            MutationKind::Create,
            MutationKind::Update,
            MutationKind::Delete
        ]
    );
    assert_eq!(
        mutations[0].contract_id, "T-31",
        "new contracts take the next number"
    );
    let mut expected: BTreeSet<String> = (1..=n).map(|i| format!("T-{i}")).collect();
    for m in &mutations {
        match m.kind {
            MutationKind::Create => assert!(expected.insert(m.contract_id.clone())),
            MutationKind::Update => assert!(expected.contains(&m.contract_id)),
            MutationKind::Delete => assert!(expected.remove(&m.contract_id)),
        }
    }
    let full = list(&sb, "limit=100").await;
    assert_eq!(ids(&full).into_iter().collect::<BTreeSet<_>>(), expected);
    assert_eq!(full["total_results"].as_u64(), Some(expected.len() as u64));
    let updated = &mutations[1].contract_id;
    if expected.contains(updated) && mutations[0].contract_id != *updated {
        let front = ids(&full);
        assert!(
            front[..2].contains(updated),
            "updated contract moves to the front: {front:?}"
        );
    }
    assert!(walked.len() <= n + 1);
    sb.shutdown().await;
}
