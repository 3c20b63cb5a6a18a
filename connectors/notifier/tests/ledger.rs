//! The notifier on a real ledger, each test on SQLite (a file in a temp dir) and on
//! PostgreSQL (a server on 127.0.0.1): an alert reaches an inbox
//! once across restarts and a crash between the inbox write and the ledger's,
//! failures are recorded and retried (or settled when final), and the inbox routes
//! over real HTTP on 127.0.0.1:0.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use common::{Db, LedgerAt, TestClock};
use riskstream_notifier::{
    router, BoxFuture, Channel, ChannelError, Clock, DeadLetterFilter, InAppChannel, Inbox, Ledger, Notifier,
    NotifyReport, Preferences, RETRY_AFTER_SECS,
};
use riskstream_schemas::{Alert, AlertKind, AlertState, Priority, RecordRef, Timestamp};
use serde_json::Value;

fn alert(id: &str, user: &str, state: AlertState, minute: i64) -> Alert {
    Alert {
        alert_id: id.to_string(),
        kind: AlertKind::Drift,
        state,
        priority: Priority::High,
        account_id: format!("acc-of-{user}"),
        user_id: user.to_string(),
        ts: Timestamp::parse("2026-01-05T14:30:00Z").unwrap().plus_seconds(minute * 60),
        caused_by: RecordRef { shard: 0, seq: minute as u64 + 1 },
        rule: "drift".to_string(),
        value: "0.31".parse().unwrap(),
        threshold: "0.25".parse().unwrap(),
        message: format!("alert {id}"),
        details: None,
    }
}

async fn in_app(at: &LedgerAt) -> (Ledger, Notifier) {
    let ledger = at.open().await;
    let notifier = Notifier::new(ledger.clone(), vec![Arc::new(InAppChannel::new(ledger.clone()))]);
    (ledger, notifier)
}

fn ids(page: &riskstream_notifier::InboxPage) -> Vec<&str> {
    page.items.iter().map(|i| i.entry.id()).collect()
}

async fn an_alert_lands_in_its_inbox_once_across_restarts(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let at = LedgerAt::new(db, dir.path()).await;
    let alerts = [
        alert("a1", "u1", AlertState::Raised, 1),
        alert("a2", "u2", AlertState::Raised, 2),
        alert("a3", "u1", AlertState::Raised, 3),
        alert("c1", "u1", AlertState::Cleared, 4),
    ];
    {
        let (_, notifier) = in_app(&at).await;
        let report = notifier.notify(&alerts).await.unwrap();
        assert_eq!(report, NotifyReport { delivered: 3, ..Default::default() }, "a clear is no new message");
    }
    // A restart re-sends what the engine's outbox had not acknowledged: nothing twice.
    let (ledger, notifier) = in_app(&at).await;
    let again = notifier.notify(&alerts).await.unwrap();
    assert_eq!(again, NotifyReport { already: 3, ..Default::default() });
    assert_eq!(ledger.delivery_count().await.unwrap(), 3);
    let inbox = Inbox::new(ledger.clone());
    let page = inbox.page("u1", 50, false).await.unwrap();
    assert_eq!(ids(&page), ["a3", "a1"], "newest first, each once");
    assert_eq!(page.unread, 2);
    let attempts = ledger.attempts("a1").await.unwrap();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert!(attempts[0].ok && attempts[0].channel == "in_app" && attempts[0].endpoint == "inbox");
}
on_each_db!(tokio::test, an_alert_lands_in_its_inbox_once_across_restarts);

async fn a_crash_between_the_inbox_and_the_ledger_writes_still_gives_one_message(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let at = LedgerAt::new(db, dir.path()).await;
    let (ledger, notifier) = in_app(&at).await;
    let a = alert("a1", "u1", AlertState::Raised, 1);
    // The message was written, then the process died before the ledger recorded it.
    InAppChannel::new(ledger.clone()).deliver(&a, "inbox", &Preferences::default()).await.unwrap();
    let report = notifier.notify(std::slice::from_ref(&a)).await.unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(Inbox::new(ledger.clone()).page("u1", 50, false).await.unwrap().items.len(), 1);
    assert_eq!(ledger.delivery_count().await.unwrap(), 1);
}
on_each_db!(tokio::test, a_crash_between_the_inbox_and_the_ledger_writes_still_gives_one_message);

/// Fails with `first` on its first call, then delivers.
struct Flaky {
    calls: AtomicUsize,
    first: ChannelError,
}

impl Channel for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }

    fn endpoints(&self, _: &Alert, _: &Preferences) -> Vec<String> {
        vec!["e1".into()]
    }

    fn deliver<'a>(&'a self, _: &'a Alert, _: &'a str, _: &'a Preferences) -> BoxFuture<'a, Result<(), ChannelError>> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let first = self.first.clone();
        Box::pin(async move {
            if n == 0 {
                Err(first)
            } else {
                Ok(())
            }
        })
    }
}

async fn a_retryable_failure_is_scheduled_and_retried_a_final_one_is_settled(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let at = LedgerAt::new(db, dir.path()).await;
    let ledger = at.open().await;
    let clock = Arc::new(TestClock::new());
    let a = alert("a1", "u1", AlertState::Raised, 1);

    let flaky = Arc::new(Flaky { calls: AtomicUsize::new(0), first: ChannelError::retry("503 from the receiver") });
    let inbox = Arc::new(InAppChannel::new(ledger.clone()));
    let notifier = Notifier::with_clock(ledger.clone(), vec![flaky.clone(), inbox], clock.clone());
    let report = notifier.notify(std::slice::from_ref(&a)).await.unwrap();
    // The failing channel does not hold up the other: the inbox has it already.
    assert_eq!(report, NotifyReport { delivered: 1, retrying: 1, ..Default::default() });
    assert_eq!(ledger.pending_count().await.unwrap(), 1);
    // A re-send of the alert leaves the retry to the queue.
    assert_eq!(notifier.notify(std::slice::from_ref(&a)).await.unwrap().already, 2);
    // Not due before the first backoff (5 s, +-20%), due after it.
    clock.advance_secs(3);
    assert_eq!(notifier.retry_due().await.unwrap(), NotifyReport::default());
    clock.advance_secs(4);
    assert_eq!(notifier.retry_due().await.unwrap().delivered, 1);
    assert_eq!(ledger.pending_count().await.unwrap(), 0);
    let attempts: Vec<_> = ledger.attempts("a1").await.unwrap().into_iter().filter(|t| t.channel == "flaky").collect();
    assert_eq!(attempts.iter().map(|t| (t.attempt, t.ok)).collect::<Vec<_>>(), [(1, false), (2, true)]);
    assert_eq!(attempts[0].error.as_deref(), Some("503 from the receiver"));
    assert_eq!(attempts[1].at_ms - attempts[0].at_ms, 7_000, "the injected clock stamps the attempts");

    let b = alert("b1", "u1", AlertState::Raised, 2);
    let gone = Arc::new(Flaky { calls: AtomicUsize::new(0), first: ChannelError::Permanent("410 Gone".into()) });
    let notifier = Notifier::with_clock(ledger.clone(), vec![gone.clone()], clock.clone());
    assert_eq!(notifier.notify(std::slice::from_ref(&b)).await.unwrap().failed, 1);
    // Settled: not tried again, not delivered.
    assert_eq!(notifier.notify(std::slice::from_ref(&b)).await.unwrap().already, 1);
    assert_eq!(gone.calls.load(Ordering::SeqCst), 1);
    let attempts = ledger.attempts("b1").await.unwrap();
    assert!(attempts.len() == 1 && attempts[0].given_up && !attempts[0].ok, "{attempts:?}");
}
on_each_db!(tokio::test, a_retryable_failure_is_scheduled_and_retried_a_final_one_is_settled);

/// Always fails in a way that may pass.
struct Down(AtomicUsize);

impl Channel for Down {
    fn name(&self) -> &str {
        "down"
    }

    fn endpoints(&self, _: &Alert, _: &Preferences) -> Vec<String> {
        vec!["e1".into()]
    }

    fn deliver<'a>(&'a self, _: &'a Alert, _: &'a str, _: &'a Preferences) -> BoxFuture<'a, Result<(), ChannelError>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Err(ChannelError::retry("connection refused")) })
    }
}

async fn a_delivery_that_keeps_failing_is_given_up_after_the_last_retry(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let at = LedgerAt::new(db, dir.path()).await;
    let ledger = at.open().await;
    let clock = Arc::new(TestClock::new());
    let down = Arc::new(Down(AtomicUsize::new(0)));
    let notifier = Notifier::with_clock(ledger.clone(), vec![down.clone()], clock.clone());
    notifier.notify(&[alert("a1", "u1", AlertState::Raised, 1)]).await.unwrap();
    let mut given_up = 0;
    // Each wait is at most 1.2x its step; jump past every one of them.
    for secs in RETRY_AFTER_SECS {
        clock.advance_secs(secs * 2);
        given_up += notifier.retry_due().await.unwrap().failed;
    }
    assert_eq!(given_up, 1);
    assert_eq!(down.0.load(Ordering::SeqCst), RETRY_AFTER_SECS.len() + 1, "one try and a retry per step");
    clock.advance_secs(86_400);
    assert_eq!(notifier.retry_due().await.unwrap(), NotifyReport::default());
    let attempts = ledger.attempts("a1").await.unwrap();
    let last = attempts.last().unwrap();
    assert!(last.given_up && last.error.as_deref().unwrap().starts_with("gave up after 8 attempts"), "{last:?}");
    assert_eq!(ledger.pending_count().await.unwrap(), 0);

    // Re-driven, it has the whole schedule again: its next failure is retried.
    let dead = ledger.dead_letters(&DeadLetterFilter::default()).await.unwrap();
    assert_eq!((dead.len(), dead[0].attempts), (1, 8), "{dead:?}");
    assert!(dead[0].reason.starts_with("gave up after 8 attempts"), "{dead:?}");
    assert_eq!(ledger.redrive(&DeadLetterFilter::default(), clock.now_ms()).await.unwrap(), 1);
    assert_eq!(notifier.retry_due().await.unwrap().retrying, 1);
    assert_eq!(ledger.attempts("a1").await.unwrap().last().unwrap().attempt, 9);
}
on_each_db!(tokio::test, a_delivery_that_keeps_failing_is_given_up_after_the_last_retry);

/// A receiver someone else runs: refuses connections while `down`; takes at most
/// `rate` a second when set.
struct Remote {
    calls: AtomicUsize,
    down: AtomicBool,
    rate: Option<u32>,
}

impl Channel for Remote {
    fn name(&self) -> &str {
        "remote"
    }

    fn endpoints(&self, _: &Alert, _: &Preferences) -> Vec<String> {
        vec!["e1".into()]
    }

    fn deliver<'a>(&'a self, _: &'a Alert, _: &'a str, _: &'a Preferences) -> BoxFuture<'a, Result<(), ChannelError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let down = self.down.load(Ordering::SeqCst);
        Box::pin(async move {
            if down {
                Err(ChannelError::retry("connection refused"))
            } else {
                Ok(())
            }
        })
    }

    fn disables_failing_endpoints(&self) -> bool {
        true
    }

    fn rate_limit(&self, _: &str) -> Option<u32> {
        self.rate
    }
}

async fn an_endpoint_over_its_rate_limit_gets_the_rest_later_without_attempts_counted(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let at = LedgerAt::new(db, dir.path()).await;
    let ledger = at.open().await;
    let clock = Arc::new(TestClock::new());
    let remote = Arc::new(Remote { calls: AtomicUsize::new(0), down: AtomicBool::new(false), rate: Some(2) });
    let notifier = Notifier::with_clock(ledger.clone(), vec![remote.clone()], clock.clone());
    let alerts: Vec<Alert> = (0..5).map(|i| alert(&format!("a{i}"), "u1", AlertState::Raised, i)).collect();
    let report = notifier.notify(&alerts).await.unwrap();
    assert_eq!((report.delivered, report.deferred), (2, 3), "{report:?}");
    assert!(ledger.attempts("a2").await.unwrap().is_empty(), "a deferred delivery is not an attempt");
    assert_eq!(notifier.notify(&alerts).await.unwrap().already, 5, "deferred ones wait in the queue");
    assert_eq!(notifier.retry_due().await.unwrap(), NotifyReport::default(), "not due before the bucket refills");
    clock.advance_secs(1);
    let report = notifier.retry_due().await.unwrap();
    assert_eq!((report.delivered, report.deferred), (2, 1), "{report:?}");
    clock.advance_secs(1);
    assert_eq!(notifier.retry_due().await.unwrap().delivered, 1);
    assert_eq!(remote.calls.load(Ordering::SeqCst), 5);
    assert_eq!(ledger.delivery_count().await.unwrap(), 5);
    let attempts = ledger.attempts("a4").await.unwrap();
    assert_eq!(attempts.iter().map(|a| (a.attempt, a.ok)).collect::<Vec<_>>(), [(1, true)]);
}
on_each_db!(tokio::test, an_endpoint_over_its_rate_limit_gets_the_rest_later_without_attempts_counted);

async fn an_endpoint_failing_too_long_is_disabled_and_its_dead_letters_are_re_driven_by_time(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let at = LedgerAt::new(db, dir.path()).await;
    let ledger = at.open().await;
    let clock = Arc::new(TestClock::new());
    let remote = Arc::new(Remote { calls: AtomicUsize::new(0), down: AtomicBool::new(true), rate: None });
    let notifier =
        Notifier::with_clock(ledger.clone(), vec![remote.clone()], clock.clone()).disable_after_ms(3_600_000);
    let a = |id: &str, minute| alert(id, "u1", AlertState::Raised, minute);
    let t0 = clock.now_ms();
    assert_eq!(notifier.notify(&[a("a1", 1)]).await.unwrap().retrying, 1);
    clock.advance_secs(1_800);
    assert_eq!(notifier.notify(&[a("a2", 2)]).await.unwrap().retrying, 1);
    let health = ledger.endpoints().await.unwrap();
    assert_eq!((health[0].failing_since_ms, health[0].disabled_at_ms), (Some(t0), None), "{health:?}");

    // An hour of failures: disabled. What waits is not sent, and becomes a dead letter.
    clock.advance_secs(1_860);
    notifier.notify(&[a("a3", 3)]).await.unwrap();
    let health = ledger.endpoints().await.unwrap();
    assert_eq!(health[0].disabled_at_ms, Some(clock.now_ms()), "{health:?}");
    assert!(health[0].reason.as_deref().unwrap().contains("failing for over 1 hours"), "{health:?}");
    let calls = remote.calls.load(Ordering::SeqCst);
    clock.advance_secs(3 * 3_600);
    let first_batch_dead_at = clock.now_ms();
    assert_eq!(notifier.retry_due().await.unwrap().failed, 3);
    clock.advance_secs(600);
    assert_eq!(notifier.notify(&[a("a4", 4)]).await.unwrap().failed, 1);
    assert_eq!(remote.calls.load(Ordering::SeqCst), calls, "nothing was sent to the disabled endpoint");
    let dead = ledger.dead_letters(&DeadLetterFilter::default()).await.unwrap();
    assert_eq!(dead.len(), 4);
    assert!(dead.iter().all(|d| d.reason.contains("the endpoint is disabled")), "{dead:?}");

    // Back up and enabled: re-drive what died in the first batch, then the rest by id.
    remote.down.store(false, Ordering::SeqCst);
    assert!(ledger.enable("remote", "e1").await.unwrap());
    let first = DeadLetterFilter { to_ms: Some(first_batch_dead_at + 1), ..Default::default() };
    assert_eq!(ledger.dead_letters(&first).await.unwrap().len(), 3);
    assert_eq!(ledger.redrive(&first, clock.now_ms()).await.unwrap(), 3);
    assert_eq!(notifier.retry_due().await.unwrap().delivered, 3);
    let left = ledger.dead_letters(&DeadLetterFilter::default()).await.unwrap();
    assert_eq!(left.iter().map(|d| d.alert_id.as_str()).collect::<Vec<_>>(), ["a4"]);
    let by_id = DeadLetterFilter { alert_id: Some("a4".into()), ..Default::default() };
    assert_eq!(ledger.redrive(&by_id, clock.now_ms()).await.unwrap(), 1);
    assert_eq!(notifier.retry_due().await.unwrap().delivered, 1);
    assert_eq!(ledger.delivery_count().await.unwrap(), 4);
    let health = ledger.endpoints().await.unwrap();
    assert_eq!((health[0].failing_since_ms, health[0].disabled_at_ms), (None, None), "{health:?}");
}
on_each_db!(tokio::test, an_endpoint_failing_too_long_is_disabled_and_its_dead_letters_are_re_driven_by_time);

async fn the_inbox_routes_list_mark_read_and_archive(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let at = LedgerAt::new(db, dir.path()).await;
    let (ledger, notifier) = in_app(&at).await;
    let alerts: Vec<Alert> = (1..=3).map(|m| alert(&format!("a{m}"), "u1", AlertState::Raised, m)).collect();
    notifier.notify(&alerts).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(Inbox::new(ledger))).await.unwrap() });
    let http = reqwest::Client::new();
    let get = |path: String| {
        let request = http.get(format!("{base}{path}"));
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let post = |path: String| {
        let request = http.post(format!("{base}{path}"));
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };

    let (status, page) = get("/v1/users/u1/inbox".into()).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["unread"], 3);
    let listed: Vec<&str> = page["items"].as_array().unwrap().iter().map(|i| i["alert_id"].as_str().unwrap()).collect();
    assert_eq!(listed, ["a3", "a2", "a1"]);
    assert_eq!((page["items"][0]["kind"].clone(), page["items"][0]["read"].clone()), ("drift".into(), false.into()));

    let (status, read) = post("/v1/users/u1/inbox/a2/read".into()).await;
    assert_eq!((status, read["unread"].clone()), (200, 2.into()), "{read}");
    let (_, archived) = post("/v1/users/u1/inbox/a3/archive".into()).await;
    assert_eq!(archived["unread"], 1, "an archived message is not unread");
    let (_, page) = get("/v1/users/u1/inbox?limit=10".into()).await;
    let listed: Vec<&str> = page["items"].as_array().unwrap().iter().map(|i| i["alert_id"].as_str().unwrap()).collect();
    assert_eq!(listed, ["a2", "a1"]);
    assert_eq!(page["items"][0]["read"], true);
    let (_, all) = get("/v1/users/u1/inbox?archived=true".into()).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 3);
    assert_eq!(all["items"][0]["archived"], true);

    let (status, missing) = post("/v1/users/u2/inbox/a1/read".into()).await;
    assert_eq!(status, 404);
    assert!(missing["error"].as_str().unwrap().contains("`u2`"), "{missing}");
    let (_, other) = get("/v1/users/nobody/inbox".into()).await;
    assert_eq!((other["unread"].clone(), other["items"].as_array().unwrap().len()), (0.into(), 0));
    let (status, health) = get("/v1/notifier/health".into()).await;
    assert_eq!(status, 200);
    assert_eq!(health, serde_json::json!({"status": "ok", "pending": 0, "dead_letters": 0, "disabled_endpoints": 0}));
}
on_each_db!(tokio::test(flavor = "multi_thread", worker_threads = 2), the_inbox_routes_list_mark_read_and_archive);
