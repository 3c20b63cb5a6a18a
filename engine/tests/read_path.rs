//! The read path: `GET /v1/accounts/{id}` answers from the committed store, not
//! from the engine's state, so it answers while a batch holds the engine (the
//! writer) and equals the engine's own view after every commit; health, metrics
//! and the stored histories answer without the engine too. Ingest pushes back: past
//! `MAX_PENDING_POSTS` waiting posts, a post is answered 503 with `Retry-After`.

mod common;

use std::time::Duration;

use common::server::Server;
use riskstream_engine::api::MAX_PENDING_POSTS;
use riskstream_projections::RuleConfig;
use serde_json::Value;

/// The view as the API shows it, without the stamp of its shard and seq.
fn unstamped(mut body: Value) -> Value {
    let map = body.as_object_mut().unwrap();
    map.remove("shard");
    map.remove("as_of_seq");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::await_holding_lock)] // holding the writer's lock is the point
async fn account_queries_answer_while_a_batch_holds_the_engine() {
    let server = Server::start(2, RuleConfig::default());
    server.post(&common::workload(4, 20)).await;
    let expected = serde_json::to_value(server.app().read().account_view("acc-1").unwrap().2).unwrap();
    // What a batch does for its whole length: hold the engine for writing.
    let writer = server.app().write();
    let within = |path: &'static str| tokio::time::timeout(Duration::from_secs(20), server.get_any(path));
    let answer = within("/v1/accounts/acc-1").await.expect("the account is answered while a writer holds the engine");
    // Health, metrics and the stored histories do not wait either.
    let mut others = Vec::new();
    for path in ["/healthz", "/metrics", "/v1/alerts", "/v1/accounts/acc-1/alerts", "/v1/dead-letters"] {
        others.push((path, within(path).await.unwrap_or_else(|_| panic!("{path} waited for the writer"))));
    }
    drop(writer);
    assert_eq!(answer.0, reqwest::StatusCode::OK);
    assert_eq!(unstamped(answer.1), expected);
    for (path, (status, _)) in &others {
        assert_eq!(*status, reqwest::StatusCode::OK, "{path}");
    }
    let health = &others[0].1 .1;
    assert_eq!(health["accounts"], 4);
    assert_eq!(health["shards"].as_array().unwrap().len(), 2);
    assert!(others[1].1 .1.as_str().unwrap().contains("riskstream_accounts 4"));
    assert!(!others[2].1 .1["alerts"].as_array().unwrap().is_empty(), "the workload raises alerts");
}

#[tokio::test]
async fn committed_views_equal_the_engine_s_own_after_every_batch() {
    let server = Server::start(3, RuleConfig::default());
    let events = common::workload(6, 90);
    for chunk in events.chunks(37) {
        server.post(chunk).await;
        for k in 0..6 {
            let id = format!("acc-{k}");
            let (status, body) = server.get_any(&format!("/v1/accounts/{id}")).await;
            let live = server.app().read().account_view(&id);
            let Some((shard, seq, view)) = live else {
                assert_eq!(status, reqwest::StatusCode::NOT_FOUND, "{id}: {body}");
                continue;
            };
            assert_eq!(body["shard"], shard, "{id}");
            assert_eq!(body["as_of_seq"], seq, "{id}");
            assert_eq!(unstamped(body), serde_json::to_value(view).unwrap(), "{id}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::await_holding_lock)] // holding the writer's lock is the point
async fn a_full_ingest_answers_503_with_retry_after_and_applies_nothing_of_it() {
    let server = Server::start(2, RuleConfig::default());
    server.post(&common::workload(2, 0)).await;
    let cash = |server: &Server| server.app().read().account_view("acc-0").unwrap().2.cash;
    let before = cash(&server);
    let deposit = |n: usize| {
        let e = common::ev(&format!("more-{n}"), 5, common::deposit("acc-0", "user-0", "1.00"));
        serde_json::to_value(vec![e]).unwrap()
    };
    let http = reqwest::Client::new();
    let url = format!("{}/v1/events", server.base);
    let writer = server.app().write();
    let mut waiting = Vec::new();
    for n in 0..MAX_PENDING_POSTS {
        let (http, url, body) = (http.clone(), url.clone(), deposit(n));
        waiting.push(tokio::spawn(async move { http.post(url).json(&body).send().await.unwrap().status() }));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while server.app().pending_posts() < MAX_PENDING_POSTS {
        assert!(std::time::Instant::now() < deadline, "the posts were not admitted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = http.post(&url).json(&deposit(99)).send().await.unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["retry-after"], "1");
    let text = refused.text().await.unwrap();
    assert!(text.contains("send this one again"), "{text}");
    drop(writer);
    for w in waiting {
        assert_eq!(w.await.unwrap(), reqwest::StatusCode::OK);
    }
    // The admitted posts were applied once each; the refused one not at all.
    assert_eq!(cash(&server) - before, rust_decimal::Decimal::from(MAX_PENDING_POSTS as u64));
    assert_eq!(server.app().pending_posts(), 0);
}
