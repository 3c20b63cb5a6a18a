//! Users' preferences route their alerts: channels per kind, a minimum priority per
//! channel, clears where asked, their own webhooks (signed, checked by the reference
//! library); critical alerts cannot be opted out of. The documents are sealed in the
//! ledger file, and an erased user's are gone from it and its WAL. Quiet hours,
//! throttles and an owner's notice run on SQLite and on PostgreSQL.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Db, LedgerAt, Receiver, TestClock, SECRET};
use riskstream_notifier::{
    message_id, user_endpoint, Channel, InAppChannel, Inbox, InboxEntry, Ledger, Notifier, NotifierKey,
    NotifierMetrics, PreferenceStore, Preferences, WebhookChannel,
};
use riskstream_schemas::{Alert, AlertKind, AlertState, Priority, Timestamp};
use serde_json::json;

fn alert(id: &str, kind: AlertKind, priority: Priority, state: AlertState) -> Alert {
    Alert { kind, priority, state, rule: kind.as_str().into(), ..common::alert(id) }
}

#[tokio::test]
async fn preferences_route_each_alert_and_an_erased_user_is_gone_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path(), "200");
    let path = dir.path().join("n.sqlite");
    let ledger = Ledger::open(&path).await.unwrap();
    let key = NotifierKey::load_or_create(&dir.path().join("n.key")).unwrap();
    let store = PreferenceStore::new(ledger.clone(), key);
    let url = format!("http://127.0.0.1:{}/hooks", receiver.port);
    let prefs: Preferences = serde_json::from_value(json!({
        "channels": { "market_move": [] },
        "min_priority": { "in_app": "high" },
        "clears": ["webhook"],
        "webhooks": [{ "id": "crm", "url": url, "secrets": [SECRET] }],
    }))
    .unwrap();
    prefs.validate().unwrap();
    store.put("u1", &prefs, 1).await.unwrap();
    assert_eq!(store.get("u1").await.unwrap().as_ref(), Some(&prefs));
    let masked = serde_json::to_string(&prefs.masked()).unwrap();
    assert!(!masked.contains(SECRET) && masked.contains("whsec_...LaSw"), "{masked}");

    let webhooks = WebhookChannel::new(vec![], Duration::from_secs(5)).unwrap().with_user_endpoints(true);
    let channels: Vec<Arc<dyn Channel>> = vec![Arc::new(InAppChannel::new(ledger.clone())), Arc::new(webhooks)];
    let notifier = Notifier::new(ledger.clone(), channels).with_preferences(store.clone());
    use {AlertKind as K, AlertState as S, Priority as P};
    notifier
        .notify(&[
            alert("drift-high", K::Drift, P::High, S::Raised), // inbox and webhook
            alert("move-high", K::MarketMove, P::High, S::Raised), // silenced kind
            alert("move-crit", K::MarketMove, P::Critical, S::Raised), // critical: both
            alert("var-medium", K::VarBreach, P::Medium, S::Raised), // under the inbox's minimum
            alert("drift-clear", K::Drift, P::High, S::Cleared), // clears: webhook only
        ])
        .await
        .unwrap();
    let inbox = Inbox::new(ledger.clone()).page("u1", 50, false).await.unwrap();
    let mut in_app: Vec<&str> = inbox.items.iter().map(|i| i.entry.id()).collect();
    in_app.sort();
    assert_eq!(in_app, ["drift-high", "move-crit"]);
    let requests = receiver.requests();
    let mut hooked: Vec<&str> = requests.iter().map(|r| r["alert_id"].as_str().unwrap()).collect();
    hooked.sort();
    assert_eq!(hooked, ["drift-clear", "drift-high", "move-crit", "var-medium"]);
    assert!(requests.iter().all(|r| r["verified"] == true), "{requests:?}");
    let crm = user_endpoint("u1", "crm");
    assert!(requests.iter().any(|r| r["id"] == message_id("drift-high", &crm)));

    // Sealed at rest: neither the URL nor the secret is in the file.
    let sealed: String = sqlx::query_scalar("SELECT sealed FROM preferences WHERE user_id = 'u1'")
        .fetch_one(&sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap())
        .await
        .unwrap();
    let file_bytes = || {
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend(std::fs::read(path.with_extension("sqlite-wal")).unwrap_or_default());
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let before = file_bytes();
    assert!(!before.contains(SECRET) && !before.contains(&format!("127.0.0.1:{}", receiver.port)));
    assert!(before.contains(&sealed), "the sealed document is what the file holds");

    // Erased: the document is overwritten in the file and its WAL, the defaults apply.
    assert!(store.erase("u1").await.unwrap());
    assert!(!store.erase("u1").await.unwrap(), "erasing twice finds nothing");
    assert_eq!(store.get("u1").await.unwrap(), None);
    assert!(!file_bytes().contains(&sealed), "no copy of the sealed document is left");
    notifier.notify(&[alert("drift-after", K::Drift, P::Low, S::Raised)]).await.unwrap();
    assert_eq!(receiver.requests().len(), 4, "the user's webhook went with the user");
    assert_eq!(Inbox::new(ledger).page("u1", 50, false).await.unwrap().items.len(), 3, "the defaults: inbox");
}

fn on(account: &str, id: &str, kind: AlertKind, priority: Priority, state: AlertState) -> Alert {
    Alert { account_id: account.into(), ..alert(id, kind, priority, state) }
}

fn ms(utc: &str) -> i64 {
    Timestamp::parse(utc).unwrap().micros() / 1_000
}

/// Quiet hours from 22:00 to 07:00 in Paris, the night DST starts (29 March 2026,
/// 02:00 CET becomes 03:00 CEST: EU Directive 2000/84/EC), on an injected clock: the
/// webhook waits until 07:00 CEST (05:00 UTC) while the inbox does not; a critical
/// alert does not wait; a clear cancels the raise still waiting and is not sent
/// itself; after the window, one message per rule and account per hour.
async fn quiet_hours_throttles_and_clears_on_the_users_clock(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let at = LedgerAt::new(db, dir.path()).await;
    let receiver = Receiver::start(dir.path(), "200");
    let ledger = at.open().await;
    let store = PreferenceStore::new(ledger.clone(), NotifierKey::load_or_create(&dir.path().join("k")).unwrap());
    let url = format!("http://127.0.0.1:{}/hooks", receiver.port);
    let prefs: Preferences = serde_json::from_value(json!({
        "timezone": "Europe/Paris",
        "quiet_hours": { "start": "22:00", "end": "07:00" },
        "throttle_secs": { "webhook": 3600 },
        "clears": ["webhook"],
        "webhooks": [{ "id": "crm", "url": url, "secrets": [SECRET] }],
    }))
    .unwrap();
    prefs.validate().unwrap();
    store.put("u1", &prefs, 0).await.unwrap();
    let clock = Arc::new(TestClock::at_ms(ms("2026-03-28T22:00:00Z"))); // 23:00 in Paris
    let webhooks = WebhookChannel::new(vec![], Duration::from_secs(5)).unwrap().with_user_endpoints(true);
    let channels: Vec<Arc<dyn Channel>> = vec![Arc::new(InAppChannel::new(ledger.clone())), Arc::new(webhooks)];
    let registry = prometheus::Registry::new();
    let metrics = NotifierMetrics::register(&registry).unwrap();
    let notifier = Notifier::with_clock(ledger.clone(), channels, clock.clone())
        .with_preferences(store)
        .with_metrics(metrics.clone());
    use {AlertKind as K, AlertState as S, Priority as P};
    let crm = user_endpoint("u1", "crm");

    let r = notifier.notify(&[on("acc-1", "drift-1", K::Drift, P::High, S::Raised)]).await.unwrap();
    assert_eq!((r.delivered, r.deferred), (1, 1), "the inbox now, the webhook after the quiet hours: {r:?}");
    assert_eq!(ledger.next_retry_at("drift-1", "webhook", &crm).await.unwrap(), Some(ms("2026-03-29T05:00:00Z")));
    notifier.notify(&[on("acc-1", "var-1", K::VarBreach, P::High, S::Raised)]).await.unwrap();
    clock.set_ms(ms("2026-03-29T01:30:00Z")); // 03:30 CEST
    let r = notifier.notify(&[on("acc-1", "drift-2", K::Drift, P::High, S::Cleared)]).await.unwrap();
    assert_eq!(r.suppressed, 2, "the waiting raise and its clear: {r:?}");
    let why = ledger.suppressed("drift-1", "webhook", &crm).await.unwrap().unwrap();
    assert!(why.contains("cancelled: the alert cleared (drift-2)"), "{why}");
    let r = notifier.notify(&[on("acc-1", "dd-1", K::Drawdown, P::Critical, S::Raised)]).await.unwrap();
    assert_eq!(r.delivered, 2, "critical alerts do not wait: {r:?}");
    assert_eq!(receiver.requests().len(), 1);

    clock.set_ms(ms("2026-03-29T04:59:59Z"));
    assert_eq!(notifier.retry_due().await.unwrap().delivered, 0, "still quiet at 06:59:59 CEST");
    clock.set_ms(ms("2026-03-29T05:00:00Z"));
    assert_eq!(notifier.retry_due().await.unwrap().delivered, 1, "var-1 at 07:00 CEST");

    clock.set_ms(ms("2026-03-29T05:10:00Z"));
    let r = notifier.notify(&[on("acc-1", "var-2", K::VarBreach, P::High, S::Raised)]).await.unwrap();
    assert_eq!((r.delivered, r.suppressed), (1, 1), "the inbox has it, the webhook is throttled: {r:?}");
    let why = ledger.suppressed("var-2", "webhook", &crm).await.unwrap().unwrap();
    assert!(why.contains("throttled") && why.contains("600 s before (one per 3600 s)"), "{why}");
    let r = notifier.notify(&[on("acc-2", "var-3", K::VarBreach, P::High, S::Raised)]).await.unwrap();
    assert_eq!(r.delivered, 2, "another account is another signal: {r:?}");
    clock.set_ms(ms("2026-03-29T06:00:01Z"));
    notifier.notify(&[on("acc-1", "var-4", K::VarBreach, P::High, S::Raised)]).await.unwrap();
    let sent: Vec<String> = receiver.requests().iter().map(|r| r["alert_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(sent, ["dd-1", "var-1", "var-3", "var-4"]);
    assert!(receiver.requests().iter().all(|r| r["verified"] == true));
    let count = |c: &prometheus::IntCounterVec, labels: &[&str]| c.with_label_values(labels).get();
    assert_eq!(count(&metrics.deferred, &["webhook", "quiet_hours"]), 2);
    assert_eq!(count(&metrics.suppressed, &["webhook", "cancelled"]), 2, "the waiting raise and its clear");
    assert_eq!(count(&metrics.suppressed, &["webhook", "throttle"]), 1);
    assert_eq!(count(&metrics.delivered, &["webhook"]), 4);
    // var-1 waited in the quiet hours from 22:00 UTC to 05:00 UTC: seven hours.
    let webhook = metrics.latency.with_label_values(&["webhook"]);
    assert_eq!(webhook.get_sample_count(), 4);
    assert!(webhook.get_sample_sum() >= 7.0 * 3_600.0, "{}", webhook.get_sample_sum());
}
on_each_db!(tokio::test, quiet_hours_throttles_and_clears_on_the_users_clock);

/// A user's webhook answering 410 is disabled, and its owner is told once, in
/// their inbox (another channel), what happened and what follows.
async fn a_users_disabled_webhook_is_told_to_them_in_their_inbox(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let at = LedgerAt::new(db, dir.path()).await;
    let receiver = Receiver::start(dir.path(), "410");
    let ledger = at.open().await;
    let store = PreferenceStore::new(ledger.clone(), NotifierKey::load_or_create(&dir.path().join("n.key")).unwrap());
    let url = format!("http://127.0.0.1:{}/hooks", receiver.port);
    let prefs: Preferences =
        serde_json::from_value(json!({ "webhooks": [{ "id": "crm", "url": url, "secrets": [SECRET] }] })).unwrap();
    store.put("u1", &prefs, 0).await.unwrap();
    let webhooks = WebhookChannel::new(vec![], Duration::from_secs(5)).unwrap().with_user_endpoints(true);
    let channels: Vec<Arc<dyn Channel>> = vec![Arc::new(webhooks)];
    let notifier = Notifier::new(ledger.clone(), channels).with_preferences(store);
    let drift = |id: &str| alert(id, AlertKind::Drift, Priority::High, AlertState::Raised);

    assert_eq!(notifier.notify(&[drift("d1")]).await.unwrap().failed, 1);
    assert_eq!(notifier.notify(&[drift("d2")]).await.unwrap().failed, 1, "disabled: not sent, a dead letter");
    assert_eq!(receiver.requests().len(), 1);
    let inbox = Inbox::new(ledger.clone()).page("u1", 50, false).await.unwrap();
    assert_eq!(inbox.items.len(), 1, "told once: {inbox:?}");
    let InboxEntry::Notice(notice) = &inbox.items[0].entry else { panic!("a notice: {inbox:?}") };
    assert_eq!((notice.notice.as_str(), notice.user_id.as_str()), ("webhook_disabled", "u1"));
    assert!(notice.alert_id.starts_with("ntc_"), "{notice:?}");
    assert!(notice.message.starts_with("Your webhook `crm` was disabled: "), "{}", notice.message);
    assert!(notice.message.contains("410"), "{}", notice.message);
    let json = serde_json::to_value(&inbox.items[0]).unwrap();
    assert_eq!((json["notice"].as_str(), json["read"].as_bool()), (Some("webhook_disabled"), Some(false)), "{json}");
    assert!(Inbox::new(ledger.clone()).mark("u1", &notice.alert_id, false).await.unwrap(), "read like an alert");
    assert_eq!(Inbox::new(ledger).unread("u1").await.unwrap(), 0);
}
on_each_db!(tokio::test, a_users_disabled_webhook_is_told_to_them_in_their_inbox);
