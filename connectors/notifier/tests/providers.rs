//! The Slack-compatible and SMS channels against a provider's API on 127.0.0.1
//! (tests/provider.py, which logs each request's path, authorization and parsed
//! body), with users' preferences sealed in a real SQLite ledger.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::TestClock;
use riskstream_notifier::{
    Channel, Ledger, Notifier, NotifierKey, PreferenceStore, Preferences, SlackChannel, SmsChannel, SmsConfig,
};
use riskstream_schemas::{Alert, AlertKind, Priority};
use serde_json::{json, Value};

/// tests/provider.py, answering from a script of statuses.
fn provider(dir: &Path, statuses: &str) -> common::Logged {
    common::Logged::start(dir, "provider.py", "provider", &[statuses], &[])
}

fn drift(id: &str, priority: Priority) -> Alert {
    Alert { kind: AlertKind::Drift, rule: "drift".into(), priority, ..common::alert(id) }
}

async fn notifier(dir: &Path, prefs: Value, channel: Arc<dyn Channel>) -> (Notifier, PreferenceStore, Arc<TestClock>) {
    let ledger = Ledger::open(&dir.join("n.sqlite")).await.unwrap();
    let store = PreferenceStore::new(ledger.clone(), NotifierKey::load_or_create(&dir.join("n.key")).unwrap());
    let prefs: Preferences = serde_json::from_value(prefs).unwrap();
    prefs.validate().unwrap();
    store.put("u1", &prefs, 0).await.unwrap();
    let clock = Arc::new(TestClock::new());
    let notifier = Notifier::with_clock(ledger, vec![channel], clock.clone()).with_preferences(store.clone());
    (notifier, store, clock)
}

#[tokio::test]
async fn slack_gets_a_rendered_message_retried_after_429_and_its_url_is_masked() {
    let dir = tempfile::tempdir().unwrap();
    let provider = provider(dir.path(), "429,200");
    let url = format!("http://127.0.0.1:{}/services/T000/B000/XXXXsecret", provider.port);
    let slack = SlackChannel::new("https://risk.example.com", true, Duration::from_secs(5)).unwrap();
    let (notifier, store, clock) = notifier(dir.path(), json!({ "slack": url }), Arc::new(slack)).await;

    assert_eq!(notifier.notify(&[drift("a1", Priority::High)]).await.unwrap().retrying, 1);
    clock.advance_secs(60);
    assert_eq!(notifier.retry_due().await.unwrap().delivered, 1);
    let requests = provider.lines();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let posted = &requests[1];
    assert_eq!(posted["path"], "/services/T000/B000/XXXXsecret");
    assert_eq!(posted["content_type"], "application/json");
    assert_eq!(
        posted["body"]["text"],
        "Portfolio drift on account acc-1: VTI moved -12.00% against the previous close"
    );
    let block = posted["body"]["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(block.starts_with("*Portfolio drift* on account `acc-1` (raised, High): VTI moved -12.00%"), "{block}");
    assert!(block.ends_with("<https://risk.example.com/v1/alerts/a1/explain|why it fired>"), "{block}");

    let masked = serde_json::to_value(store.get("u1").await.unwrap().unwrap().masked()).unwrap();
    assert_eq!(masked["slack"], "https://127.0.0.1/...cret", "the URL is a secret");
}

#[tokio::test]
async fn sms_texts_critical_alerts_only_unless_asked_in_the_providers_shape() {
    let dir = tempfile::tempdir().unwrap();
    let provider = provider(dir.path(), "201");
    let config = SmsConfig {
        api_base: format!("http://127.0.0.1:{}", provider.port),
        account_sid: "AC123".into(),
        auth_token: "token".into(),
        from: "+15550000000".into(),
        allow_private: true,
    };
    let sms = Arc::new(SmsChannel::new(&config, Duration::from_secs(5)).unwrap());
    let (notifier, store, _) = notifier(dir.path(), json!({ "phone": "+15551234567" }), sms).await;

    let report = notifier.notify(&[drift("high", Priority::High), drift("crit", Priority::Critical)]).await.unwrap();
    assert_eq!(report.delivered, 1, "critical only by default: {report:?}");
    let requests = provider.lines();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let r = &requests[0];
    assert_eq!(r["path"], "/2010-04-01/Accounts/AC123/Messages.json");
    // Basic auth of AC123:token.
    assert_eq!(r["authorization"], "Basic QUMxMjM6dG9rZW4=");
    assert_eq!(r["content_type"], "application/x-www-form-urlencoded");
    assert_eq!(r["body"]["To"], "+15551234567");
    assert_eq!(r["body"]["From"], "+15550000000");
    assert_eq!(
        r["body"]["Body"],
        "riskstream Critical: Portfolio drift on acc-1. VTI moved -12.00% against the previous close"
    );

    let loud: Preferences =
        serde_json::from_value(json!({ "phone": "+15551234567", "min_priority": { "sms": "high" } })).unwrap();
    store.put("u1", &loud, 1).await.unwrap();
    assert_eq!(notifier.notify(&[drift("high-2", Priority::High)]).await.unwrap().delivered, 1, "asked for high");
    let bad: Preferences = serde_json::from_value(json!({ "phone": "555-1234" })).unwrap();
    assert!(bad.validate().unwrap_err().contains("phone: `555-1234` is not an E.164 number"));
}
