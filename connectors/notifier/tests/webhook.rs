//! `WebhookChannel` against real receivers on 127.0.0.1: a Python one that checks
//! every signature with the Standard Webhooks reference library (`standardwebhooks`
//! from PyPI, installed by deploy/dev/install-test-brokers.sh) and answers from a
//! script (500 then 200, 410, 429), with the delivery ledger on SQLite.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{alert, Receiver, TestClock, SECRET};

use riskstream_notifier::{
    message_id, Clock, DeadLetterFilter, Ledger, Notifier, NotifyReport, WebhookChannel, WebhookConfig,
};
use riskstream_schemas::{Alert, AlertState};
use serde_json::Value;

async fn webhook_notifier(dir: &Path, endpoints: Vec<WebhookConfig>) -> (Ledger, Notifier, Arc<TestClock>) {
    let ledger = Ledger::open(&dir.join("n.sqlite")).await.unwrap();
    let channel = WebhookChannel::new(endpoints, Duration::from_secs(5)).unwrap();
    let clock = Arc::new(TestClock::new());
    (ledger.clone(), Notifier::with_clock(ledger, vec![Arc::new(channel)], clock.clone()), clock)
}

/// Moves the clock past any first backoff and makes the due retries.
async fn retry(notifier: &Notifier, clock: &TestClock) -> NotifyReport {
    clock.advance_ms(60_000);
    notifier.retry_due().await.unwrap()
}

#[tokio::test]
async fn signed_deliveries_verify_with_the_reference_library_and_a_500_is_retried_later_under_one_id() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path(), "500,200");
    let (ledger, notifier, clock) = webhook_notifier(dir.path(), vec![receiver.endpoint("ops", true)]).await;

    assert_eq!(notifier.notify(&[alert("a1")]).await.unwrap().retrying, 1);
    let error = ledger.attempts("a1").await.unwrap()[0].error.clone().unwrap();
    assert!(error.contains("500"), "{error}");
    assert_eq!(retry(&notifier, &clock).await.delivered, 1);
    let report = notifier.notify(&[alert("a1"), alert("a2")]).await.unwrap();
    // Delivered: sent again, it is not.
    assert_eq!(report, NotifyReport { delivered: 1, already: 1, ..Default::default() });

    let requests = receiver.requests();
    let seen: Vec<(&str, i64, &Value)> = requests
        .iter()
        .map(|r| (r["alert_id"].as_str().unwrap(), r["status"].as_i64().unwrap(), &r["verified"]))
        .collect();
    assert_eq!(
        seen,
        [("a1", 500, &Value::Bool(true)), ("a1", 200, &Value::Bool(true)), ("a2", 200, &Value::Bool(true))]
    );
    assert_eq!(requests[0]["id"], requests[1]["id"], "a retry keeps its webhook-id");
    assert_eq!(requests[0]["id"], message_id("a1", "ops"));
    let attempts = ledger.attempts("a1").await.unwrap();
    assert_eq!(attempts.iter().map(|a| (a.attempt, a.ok)).collect::<Vec<_>>(), [(1, false), (2, true)]);
}

#[tokio::test]
async fn gone_disables_the_endpoint_until_enabled_and_its_dead_letters_are_re_driven() {
    let dir = tempfile::tempdir().unwrap();
    let gone = Receiver::start(dir.path(), "410,200");
    let (ledger, notifier, clock) = webhook_notifier(dir.path(), vec![gone.endpoint("gone", true)]).await;
    assert_eq!(notifier.notify(&[alert("a1")]).await.unwrap().failed, 1);
    assert_eq!(notifier.notify(&[alert("a1")]).await.unwrap().already, 1, "410 settles the delivery");
    let attempts = ledger.attempts("a1").await.unwrap();
    assert!(attempts[0].given_up && attempts[0].error.as_deref().unwrap().contains("410"), "{attempts:?}");
    let health = ledger.endpoints().await.unwrap();
    assert_eq!(health.len(), 1);
    assert!(health[0].endpoint == "gone" && health[0].disabled_at_ms.is_some(), "{health:?}");
    assert!(health[0].reason.as_deref().unwrap().contains("410"), "{health:?}");

    // Disabled: the next alert is not sent, it waits as a dead letter.
    assert_eq!(notifier.notify(&[alert("a2")]).await.unwrap().failed, 1);
    assert_eq!(gone.requests().len(), 1, "nothing reaches a disabled endpoint");
    let dead = ledger.dead_letters(&DeadLetterFilter::default()).await.unwrap();
    assert_eq!(dead.iter().map(|d| d.alert_id.as_str()).collect::<Vec<_>>(), ["a1", "a2"]);
    assert!(dead[1].reason.contains("disabled"), "{:?}", dead[1]);

    // Enabled and re-driven, both arrive under their first webhook-id.
    assert!(ledger.enable("webhook", "gone").await.unwrap());
    assert!(!ledger.enable("webhook", "gone").await.unwrap(), "enabling twice changes nothing");
    assert_eq!(ledger.redrive(&DeadLetterFilter::default(), clock.now_ms()).await.unwrap(), 2);
    assert_eq!(notifier.retry_due().await.unwrap().delivered, 2);
    let ids: Vec<Value> = gone.requests().iter().map(|r| r["id"].clone()).collect();
    assert_eq!(ids, [message_id("a1", "gone"), message_id("a1", "gone"), message_id("a2", "gone")]);
    assert!(ledger.dead_letters(&DeadLetterFilter::default()).await.unwrap().is_empty());
    assert_eq!(ledger.delivery_count().await.unwrap(), 2);
}

#[tokio::test]
async fn too_many_requests_waits_as_long_as_retry_after_asks_and_private_targets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let busy = Receiver::start(dir.path(), "429/120,429,200");
    let (ledger, notifier, clock) = webhook_notifier(dir.path(), vec![busy.endpoint("busy", true)]).await;
    let sent_at = clock.now_ms();
    assert_eq!(notifier.notify(&[alert("b1")]).await.unwrap().retrying, 1);
    let error = ledger.attempts("b1").await.unwrap()[0].error.clone().unwrap();
    assert!(error.contains("429") && error.contains("Retry-After: 120"), "{error}");
    // The first step of the schedule is 5 s (+-20%); the receiver asked for 120 s.
    let next = ledger.next_retry_at("b1", "webhook", "busy").await.unwrap().unwrap();
    assert_eq!(next - sent_at, 120_000);
    clock.advance_ms(60_000);
    assert_eq!(notifier.retry_due().await.unwrap(), NotifyReport::default(), "not before Retry-After");
    // Retry-After: 1 is under the second step (30 s +-20%): the schedule wins.
    clock.advance_ms(60_001);
    assert_eq!(notifier.retry_due().await.unwrap().retrying, 1);
    let wait = ledger.next_retry_at("b1", "webhook", "busy").await.unwrap().unwrap() - clock.now_ms();
    assert!((24_000..=36_000).contains(&wait), "{wait}");
    assert_eq!(retry(&notifier, &clock).await.delivered, 1);
    assert_eq!(busy.requests().len(), 3);

    // Loopback without allow_private: refused before any request is made.
    let guarded = Receiver::start(dir.path(), "200");
    let third = tempfile::tempdir().unwrap();
    let (ledger, notifier, _) = webhook_notifier(third.path(), vec![guarded.endpoint("guarded", false)]).await;
    assert_eq!(notifier.notify(&[alert("c1")]).await.unwrap().failed, 1);
    assert!(guarded.requests().is_empty(), "no request reached the private address");
    let error = ledger.attempts("c1").await.unwrap()[0].error.clone().unwrap();
    assert!(error.contains("refused") && error.contains("127.0.0.1"), "{error}");
}

#[test]
fn endpoints_are_checked_when_the_channel_is_made() {
    let with = |url: &str, secrets: Vec<String>| {
        WebhookChannel::new(
            vec![WebhookConfig { id: "x".into(), url: url.into(), secrets, allow_private: false, rate_limit: None }],
            Duration::from_secs(1),
        )
        .err()
    };
    assert!(with("ftp://example.com", vec![SECRET.into()]).unwrap().contains("http or https"));
    assert!(with("not a url", vec![SECRET.into()]).unwrap().contains("webhook `x`: url"));
    assert!(with("https://example.com", vec![]).unwrap().contains("needs a secret"));
    assert!(with("https://example.com", vec!["nope".into()]).unwrap().contains("whsec_"));
    assert!(with("https://example.com", vec![SECRET.into()]).is_none());
    let unlimited = WebhookConfig {
        rate_limit: Some(0),
        ..serde_json::from_value(serde_json::json!({
        "id": "x", "url": "https://example.com", "secrets": [SECRET]}))
        .unwrap()
    };
    let error = WebhookChannel::new(vec![unlimited], Duration::from_secs(1)).err().unwrap();
    assert!(error.contains("rate_limit must be at least 1"), "{error}");
}

/// An operator's endpoint gets every alert: a clear does not cancel the raise it
/// ends while that raise waits for a retry (a person's channel would cancel both).
#[tokio::test]
async fn a_clear_does_not_cancel_a_retry_to_an_operators_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path(), "503,200");
    let (ledger, notifier, clock) = webhook_notifier(dir.path(), vec![receiver.endpoint("ops", true)]).await;
    assert_eq!(notifier.notify(&[alert("raise")]).await.unwrap().retrying, 1);
    let clear = Alert { state: AlertState::Cleared, ..alert("clear") };
    let report = notifier.notify(&[clear]).await.unwrap();
    assert_eq!((report.delivered, report.suppressed), (1, 0), "{report:?}");
    assert_eq!(retry(&notifier, &clock).await.delivered, 1, "the raise is still retried");
    assert_eq!(ledger.delivery_count().await.unwrap(), 2);
}

/// https endpoints are reachable: the client speaks TLS (a closed port answers
/// "connection refused", where a client without TLS refuses the scheme).
#[tokio::test]
async fn https_endpoints_are_tried() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = WebhookConfig {
        id: "tls".into(),
        url: format!("https://127.0.0.1:{closed}/hooks"),
        secrets: vec![SECRET.into()],
        allow_private: true,
        rate_limit: None,
    };
    let (ledger, notifier, _) = webhook_notifier(dir.path(), vec![endpoint]).await;
    assert_eq!(notifier.notify(&[alert("a1")]).await.unwrap().retrying, 1);
    let error = ledger.attempts("a1").await.unwrap()[0].error.clone().unwrap();
    assert!(error.to_lowercase().contains("connection refused"), "{error}");
}
