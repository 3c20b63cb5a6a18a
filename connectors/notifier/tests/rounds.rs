//! A round of deliveries on a real ledger (SQLite and PostgreSQL): made concurrently up to the
//! notifier's limit, each signal's alerts in order, and written in one transaction
//! whose endpoint health follows the order the tries were made in.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{alert, Db, LedgerAt};
use riskstream_notifier::{
    Attempt, BoxFuture, Channel, ChannelError, Health, Next, Notifier, NotifyReport, Preferences, Write,
};
use riskstream_schemas::{Alert, AlertKind, AlertState};

/// A receiver that takes its time: logs when each delivery starts and ends, and
/// the most it had in flight at once.
#[derive(Default)]
struct Slow {
    log: Mutex<Vec<(&'static str, String)>>,
    in_flight: AtomicUsize,
    most: AtomicUsize,
}

impl Channel for Slow {
    fn name(&self) -> &str {
        "slow"
    }

    fn endpoints(&self, _: &Alert, _: &Preferences) -> Vec<String> {
        vec!["e1".into()]
    }

    fn deliver<'a>(
        &'a self,
        alert: &'a Alert,
        _: &'a str,
        _: &'a Preferences,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            self.log.lock().unwrap().push(("start", alert.alert_id.clone()));
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.log.lock().unwrap().push(("end", alert.alert_id.clone()));
            Ok(())
        })
    }
}

async fn a_round_is_sent_concurrently_up_to_the_limit_and_each_signal_in_order(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let at = LedgerAt::new(db, dir.path()).await;
    let ledger = at.open().await;
    let slow = Arc::new(Slow::default());
    let notifier = Notifier::new(ledger.clone(), vec![slow.clone()]).concurrency(8);
    // Twenty accounts, each raising then clearing in the same call.
    let raise = |k: usize| Alert {
        kind: AlertKind::Drift,
        rule: "drift".into(),
        account_id: format!("acc-{k}"),
        ..alert(&format!("raise-{k}"))
    };
    let clear = |k: usize| Alert { alert_id: format!("clear-{k}"), state: AlertState::Cleared, ..raise(k) };
    let alerts: Vec<Alert> = (0..20).flat_map(|k| [raise(k), clear(k)]).collect();

    let report = notifier.notify(&alerts).await.unwrap();
    assert_eq!(report, NotifyReport { delivered: 40, ..Default::default() });
    assert_eq!(ledger.delivery_count().await.unwrap(), 40);
    let most = slow.most.load(Ordering::SeqCst);
    assert!((2..=8).contains(&most), "deliveries overlap, at most 8 at once: {most}");
    let log = slow.log.lock().unwrap();
    let at = |event: &str, id: &str| log.iter().position(|(e, i)| *e == event && i == id).unwrap();
    for k in 0..20 {
        let (raise, clear) = (format!("raise-{k}"), format!("clear-{k}"));
        assert!(at("end", &raise) < at("start", &clear), "acc-{k}: the clear waits for its raise");
    }
}
on_each_db!(
    tokio::test(flavor = "multi_thread", worker_threads = 2),
    a_round_is_sent_concurrently_up_to_the_limit_and_each_signal_in_order
);

fn tried<'a>(alert: &'a Alert, number: i64, at_ms: i64, health: Health) -> Write<'a> {
    let attempt = Attempt {
        alert_id: alert.alert_id.clone(),
        channel: "webhook".into(),
        endpoint: "ops".into(),
        attempt: number,
        at_ms,
        ok: health == Health::Ok,
        latency_us: 1_000,
        error: (health != Health::Ok).then(|| "503".to_string()),
        given_up: false,
    };
    Write::Tried { attempt, alert, next: Next::Done, health }
}

async fn a_rounds_tries_set_the_endpoints_failing_streak_in_the_order_they_were_made(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let at = LedgerAt::new(db, dir.path()).await;
    let ledger = at.open().await;
    let streak = || async {
        let health = ledger.endpoints().await.unwrap();
        (health[0].failing_since_ms, health[0].disabled_at_ms)
    };
    let alerts: Vec<Alert> = (0..10).map(|n| alert(&format!("a{n}"))).collect();
    let failing = Health::Failing { disable_after_ms: 10_000 };

    ledger.write(&[tried(&alerts[0], 1, 1_000, failing.clone())]).await.unwrap();
    assert_eq!(streak().await, (Some(1_000), None));
    ledger.write(&[tried(&alerts[1], 1, 2_000, failing.clone())]).await.unwrap();
    assert_eq!(streak().await, (Some(1_000), None), "a streak goes on from its first failure");
    let round = [
        tried(&alerts[2], 1, 3_000, failing.clone()),
        tried(&alerts[3], 1, 4_000, Health::Ok),
        tried(&alerts[4], 1, 5_000, failing.clone()),
    ];
    ledger.write(&round).await.unwrap();
    assert_eq!(streak().await, (Some(5_000), None), "the success ended the old streak; a new one began after it");
    let round = [tried(&alerts[5], 1, 6_000, failing.clone()), tried(&alerts[6], 1, 7_000, Health::Ok)];
    ledger.write(&round).await.unwrap();
    assert_eq!(streak().await, (None, None), "the round ended on a success");

    let round = [tried(&alerts[7], 1, 8_000, failing.clone()), tried(&alerts[8], 1, 18_500, failing.clone())];
    let disabled = ledger.write(&round).await.unwrap();
    assert_eq!(disabled, [("webhook".into(), "ops".into(), "failing for over 0 hours".into())]);
    assert_eq!(streak().await, (Some(8_000), Some(18_500)));
    let gone = ledger.write(&[tried(&alerts[9], 1, 20_000, Health::Disable("410".into()))]).await.unwrap();
    assert!(gone.is_empty(), "disabled already: not disabled again");
    assert_eq!(ledger.attempts("a9").await.unwrap().len(), 1, "the try is still recorded");
}
on_each_db!(tokio::test, a_rounds_tries_set_the_endpoints_failing_streak_in_the_order_they_were_made);

/// Answers 410 Gone to everything, counting the calls.
struct Gone(AtomicUsize);

impl Channel for Gone {
    fn name(&self) -> &str {
        "gone"
    }

    fn endpoints(&self, _: &Alert, _: &Preferences) -> Vec<String> {
        vec!["e1".into()]
    }

    fn deliver<'a>(&'a self, _: &'a Alert, _: &'a str, _: &'a Preferences) -> BoxFuture<'a, Result<(), ChannelError>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Err(ChannelError::Gone("410 Gone".into())) })
    }

    fn disables_failing_endpoints(&self) -> bool {
        true
    }
}

async fn after_a_410_the_rest_of_the_round_is_not_sent(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let at = LedgerAt::new(db, dir.path()).await;
    let ledger = at.open().await;
    let gone = Arc::new(Gone(AtomicUsize::new(0)));
    let notifier = Notifier::new(ledger.clone(), vec![gone.clone()]).concurrency(1);
    let alerts: Vec<Alert> =
        (0..5).map(|k| Alert { account_id: format!("acc-{k}"), ..alert(&format!("a{k}")) }).collect();

    assert_eq!(notifier.notify(&alerts).await.unwrap().failed, 5);
    assert_eq!(gone.0.load(Ordering::SeqCst), 1, "one request; the endpoint was gone for the others");
    let dead = ledger.dead_letters(&Default::default()).await.unwrap();
    let unsent =
        dead.iter().filter(|d| d.reason == "not sent: the endpoint is disabled (410 Gone); enable it, then re-drive");
    assert_eq!((dead.len(), unsent.count()), (5, 4), "{dead:?}");
    assert!(ledger.endpoints().await.unwrap()[0].disabled_at_ms.is_some());
}
on_each_db!(tokio::test, after_a_410_the_rest_of_the_round_is_not_sent);
