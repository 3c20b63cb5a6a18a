//! Digests to a user's own webhook on a real receiver (tests/receiver.py checks each
//! signature with the Standard Webhooks reference library), with the ledger on
//! SQLite and on PostgreSQL and the clock injected: what comes in a window goes out as one message
//! when it ends, once, under an id derived from its members; a clear drops its
//! raise from the digest; critical alerts go at once; the first of a burst goes at
//! once where the user asks for it; a market event reaching several of a user's
//! accounts is one message.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{Db, LedgerAt, Receiver, TestClock, SECRET};
use riskstream_notifier::{
    digest_id, message_id, user_endpoint, Ledger, Notifier, NotifierKey, NotifyReport, PreferenceStore, Preferences,
    WebhookChannel,
};
use riskstream_schemas::{Alert, AlertKind, AlertState, Priority, RecordRef};
use serde_json::{json, Value};

fn raise(id: &str, account: &str) -> Alert {
    Alert { kind: AlertKind::Drift, rule: "drift".into(), account_id: account.into(), ..common::alert(id) }
}

fn clear(id: &str, account: &str) -> Alert {
    Alert { state: AlertState::Cleared, ..raise(id, account) }
}

/// A notifier with only the webhook channel, for user u1 whose `crm` webhook is
/// the receiver, with `digest` as the webhook's digest preference.
async fn notifier(at: &LedgerAt, dir: &Path, receiver: &Receiver, digest: Value) -> (Ledger, Notifier, Arc<TestClock>) {
    let ledger = at.open().await;
    let store = PreferenceStore::new(ledger.clone(), NotifierKey::load_or_create(&dir.join("n.key")).unwrap());
    let url = format!("http://127.0.0.1:{}/hooks", receiver.port);
    let prefs: Preferences = serde_json::from_value(json!({
        "webhooks": [{ "id": "crm", "url": url, "secrets": [SECRET] }],
        "clears": ["webhook"],
        "digest": { "webhook": digest },
    }))
    .unwrap();
    prefs.validate().unwrap();
    store.put("u1", &prefs, 0).await.unwrap();
    let webhooks = WebhookChannel::new(vec![], Duration::from_secs(5)).unwrap().with_user_endpoints(true);
    let clock = Arc::new(TestClock::new());
    let notifier =
        Notifier::with_clock(ledger.clone(), vec![Arc::new(webhooks)], clock.clone()).with_preferences(store);
    (ledger, notifier, clock)
}

async fn an_hourly_digest_lists_its_window_once_and_a_clear_drops_its_raise(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let at = LedgerAt::new(db, dir.path()).await;
    let receiver = Receiver::start(dir.path(), "200,500,200");
    let (ledger, notifier, clock) = notifier(&at, dir.path(), &receiver, json!({ "every": "hourly" })).await;
    let crm = user_endpoint("u1", "crm");

    let report = notifier.notify(&[raise("a1", "acc-1"), raise("a2", "acc-2")]).await.unwrap();
    assert_eq!(report, NotifyReport { digested: 2, ..Default::default() });
    clock.advance_secs(600);
    let critical = Alert { priority: Priority::Critical, ..raise("a4", "acc-4") };
    let report = notifier.notify(&[raise("a3", "acc-3"), clear("a2-clear", "acc-2"), critical]).await.unwrap();
    assert_eq!((report.digested, report.suppressed, report.delivered), (1, 2, 1), "{report:?}");
    assert_eq!(notifier.send_digests().await.unwrap(), NotifyReport::default(), "the window is still open");
    assert_eq!(receiver.requests().len(), 1, "only the critical alert went at once");

    // The window (opened by a1) ends an hour after it: one digest of a1 and a3.
    clock.advance_secs(3_000);
    assert_eq!(notifier.send_digests().await.unwrap().retrying, 1, "the receiver's 500");
    clock.advance_secs(60);
    let report = notifier.send_digests().await.unwrap();
    assert_eq!((report.digested, report.delivered), (1, 2), "{report:?}");
    assert_eq!(notifier.send_digests().await.unwrap(), NotifyReport::default(), "sent once");

    let requests = receiver.requests();
    let expected_id = digest_id("webhook", &crm, ["a1", "a3"]);
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert_eq!(requests[0]["alert_id"], "a4");
    for digest in &requests[1..] {
        assert_eq!(digest["digest_id"], expected_id.as_str());
        assert_eq!(digest["alerts"], json!(["a1", "a3"]), "the raise its clear ended is dropped");
        assert_eq!(digest["id"], message_id(&expected_id, &crm), "one webhook-id for the digest's tries");
    }
    assert!(requests.iter().all(|r| r["verified"] == true), "{requests:?}");
    assert_eq!((requests[1]["status"].as_i64(), requests[2]["status"].as_i64()), (Some(500), Some(200)));
    // Delivered: the critical alert, the digest, and each of its alerts once.
    assert_eq!(ledger.delivery_count().await.unwrap(), 4);
    let a2 = ledger.suppressed("a2", "webhook", &crm).await.unwrap().unwrap();
    assert!(a2.starts_with("cancelled: the alert cleared (a2-clear)"), "{a2}");
    // A digest's alerts are settled: sent again, they are not held again.
    assert_eq!(notifier.notify(&[raise("a1", "acc-1")]).await.unwrap().already, 1);
    // After the window, a new one opens.
    assert_eq!(notifier.notify(&[raise("a5", "acc-5")]).await.unwrap().digested, 1);
}
on_each_db!(tokio::test, an_hourly_digest_lists_its_window_once_and_a_clear_drops_its_raise);

async fn the_first_of_a_burst_goes_at_once_and_the_rest_wait_for_the_digest(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let at = LedgerAt::new(db, dir.path()).await;
    let receiver = Receiver::start(dir.path(), "200");
    let digest = json!({ "every": "hourly", "first_at_once": true });
    let (_ledger, notifier, clock) = notifier(&at, dir.path(), &receiver, digest).await;

    let report = notifier.notify(&[raise("a1", "acc-1"), raise("a2", "acc-2")]).await.unwrap();
    assert_eq!((report.delivered, report.digested), (1, 1), "{report:?}");
    assert_eq!(notifier.notify(&[raise("a3", "acc-3")]).await.unwrap().digested, 1);
    clock.advance_secs(3_600);
    assert_eq!(notifier.send_digests().await.unwrap().digested, 1);
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0]["alert_id"], "a1", "the first went at once");
    assert_eq!(requests[1]["alerts"], json!(["a2", "a3"]), "and is not listed again");

    // A burst of one: it goes at once, and its window ends with nothing to send.
    clock.advance_secs(60);
    assert_eq!(notifier.notify(&[raise("a4", "acc-4")]).await.unwrap().delivered, 1);
    clock.advance_secs(3_600);
    assert_eq!(notifier.send_digests().await.unwrap(), NotifyReport::default());
    assert_eq!(receiver.requests().len(), 3);
}
on_each_db!(tokio::test, the_first_of_a_burst_goes_at_once_and_the_rest_wait_for_the_digest);

/// A market move fans out to every account holding the symbol: a user with three
/// of them gets one message listing the three, at once; a user with one gets it
/// alone; another event's move is another message.
async fn a_market_event_reaches_each_user_once_grouped(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let at = LedgerAt::new(db, dir.path()).await;
    let receiver = Receiver::start(dir.path(), "200");
    let ledger = at.open().await;
    let store = PreferenceStore::new(ledger.clone(), NotifierKey::load_or_create(&dir.path().join("n.key")).unwrap());
    let url = format!("http://127.0.0.1:{}/hooks", receiver.port);
    for user in ["u1", "u2"] {
        let prefs: Preferences =
            serde_json::from_value(json!({ "webhooks": [{ "id": "crm", "url": url, "secrets": [SECRET] }] })).unwrap();
        store.put(user, &prefs, 0).await.unwrap();
    }
    let webhooks = WebhookChannel::new(vec![], Duration::from_secs(5)).unwrap().with_user_endpoints(true);
    let notifier = Notifier::new(ledger.clone(), vec![Arc::new(webhooks)]).with_preferences(store);
    // common::alert is a market move caused by record (0, 7).
    let moved = |id: &str, user: &str, account: &str| Alert {
        user_id: user.into(),
        account_id: account.into(),
        ..common::alert(id)
    };
    let other_event = Alert { caused_by: RecordRef { shard: 0, seq: 8 }, ..moved("m5", "u1", "acc-1") };
    let alerts = [
        moved("m1", "u1", "acc-1"),
        moved("m2", "u1", "acc-2"),
        moved("m3", "u1", "acc-3"),
        moved("m4", "u2", "acc-9"),
        other_event,
    ];

    let report = notifier.notify(&alerts).await.unwrap();
    assert_eq!((report.digested, report.delivered), (3, 5), "{report:?}");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    let u1 = user_endpoint("u1", "crm");
    let group = requests.iter().find(|r| r["digest_id"].is_string()).unwrap();
    assert_eq!(group["alerts"], json!(["m1", "m2", "m3"]));
    assert_eq!(group["digest_id"], digest_id("webhook", &u1, ["m1", "m2", "m3"]).as_str());
    let mut alone: Vec<&str> = requests.iter().filter_map(|r| r["alert_id"].as_str()).collect();
    alone.sort();
    assert_eq!(alone, ["m4", "m5"], "one holder, or another event: on its own");
    assert!(requests.iter().all(|r| r["verified"] == true), "{requests:?}");
    assert_eq!(notifier.notify(&alerts).await.unwrap().already, 5, "settled: not sent again");
    assert_eq!(receiver.requests().len(), 3);
}
on_each_db!(tokio::test, a_market_event_reaches_each_user_once_grouped);
