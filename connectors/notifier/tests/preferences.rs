//! Users' preferences route their alerts: channels per kind, a minimum priority per
//! channel, clears where asked, their own webhooks (signed, checked by the reference
//! library); critical alerts cannot be opted out of. The documents are sealed in the
//! ledger file, and an erased user's are gone from it and its WAL.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Receiver, SECRET};
use riskstream_notifier::{
    message_id, user_endpoint, Channel, InAppChannel, Inbox, Ledger, Notifier, NotifierKey, PreferenceStore,
    Preferences, WebhookChannel,
};
use riskstream_schemas::{Alert, AlertKind, AlertState, Priority, RecordRef, Timestamp};
use serde_json::json;

fn alert(id: &str, kind: AlertKind, priority: Priority, state: AlertState) -> Alert {
    Alert {
        alert_id: id.to_string(),
        kind,
        state,
        priority,
        account_id: "acc-1".into(),
        user_id: "u1".into(),
        ts: Timestamp::parse("2026-01-05T14:30:00Z").unwrap(),
        caused_by: RecordRef { shard: 0, seq: 3 },
        rule: kind.as_str().into(),
        value: "0.31".parse().unwrap(),
        threshold: "0.25".parse().unwrap(),
        message: format!("alert {id}"),
        details: None,
    }
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

    let webhooks =
        WebhookChannel::new(vec![], Duration::from_secs(5)).unwrap().with_user_endpoints(store.clone(), true);
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
    let mut in_app: Vec<&str> = inbox.items.iter().map(|i| i.alert.alert_id.as_str()).collect();
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
