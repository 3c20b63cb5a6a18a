//! Delivery: every alert on every channel that takes it, skipping what the ledger
//! says is settled, recording every attempt. A failure that may pass is scheduled
//! for another try (exponential backoff with jitter, [`RETRY_AFTER_SECS`]) instead
//! of holding up the alerts behind it; [`Notifier::retry_due`] makes the tries.
//!
//! Here: rounds (a call's alerts in waves, each one ledger transaction) and what
//! they count; `decide.rs`: what becomes of each delivery before and after its try;
//! `digests.rs`: market-event groups and sending the digests that fell due.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::StreamExt;
use riskstream_schemas::{Alert, AlertState};

use crate::channel::{Channel, ChannelError};
use crate::error::NotifierError;
use crate::ledger::{signal_key, Attempt, DeliveryKey, Health, Ledger, Next, Write};
use crate::metrics::NotifierMetrics;
use crate::preferences::{PreferenceStore, Preferences};

mod decide;
mod digests;

use decide::Bucket;

/// Seconds before each retry, after attempts 1, 2, ...: about four hours in all,
/// then the delivery is given up (a dead letter). Svix spaces its eight tries over
/// 28 hours (REFERENCES.md); an alert is stale sooner than that.
pub const RETRY_AFTER_SECS: [i64; 7] = [5, 30, 120, 600, 1_800, 3_600, 7_200];

/// Wall-clock milliseconds, injectable so tests drive retries without sleeping.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::now_ms()
    }
}

/// What one `notify` or `retry_due` call did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NotifyReport {
    pub delivered: usize,
    /// Already settled in the ledger (a re-sent alert after a restart), or waiting
    /// for a retry (the retries own it).
    pub already: usize,
    /// Given up: a permanent failure, or the last retry failed.
    pub failed: usize,
    /// Failed in a way that may pass: scheduled for another try.
    pub retrying: usize,
    /// Not tried yet: the endpoint is over its rate limit, or the user's quiet
    /// hours hold it; waiting in the retry queue.
    pub deferred: usize,
    /// Decided against: a throttle, or a raise cancelled by its clear (and that clear).
    pub suppressed: usize,
    /// Held for a digest (`notify`); digests sent (`send_digests`: in `delivered`
    /// count alerts, this counts messages).
    pub digested: usize,
}

/// The longest wait a receiver's `Retry-After` can ask for: the longest step of
/// the backoff schedule, so a receiver cannot park an alert for days.
pub const MAX_RETRY_AFTER_MS: i64 = RETRY_AFTER_SECS[RETRY_AFTER_SECS.len() - 1] * 1_000;

/// An endpoint failing this long without a success is disabled (Svix's figure:
/// five days, REFERENCES.md).
pub const DISABLE_AFTER_MS: i64 = 5 * 24 * 3_600 * 1_000;

pub struct Notifier {
    ledger: Ledger,
    channels: Vec<Arc<dyn Channel>>,
    clock: Arc<dyn Clock>,
    disable_after_ms: i64,
    /// Token buckets of the rate-limited endpoints, by (channel, endpoint). Per
    /// process: each notifier process keeps its own endpoints' limits.
    buckets: Mutex<HashMap<(String, String), Bucket>>,
    /// Users' preferences; without them every user has the defaults.
    preferences: Option<PreferenceStore>,
    metrics: NotifierMetrics,
    /// Deliveries in flight at once ([`CONCURRENCY`]).
    concurrency: usize,
}

/// Deliveries in flight at once, by default: enough to hide a receiver's latency
/// (a delivery mostly waits on the network), few enough not to swamp one receiver.
pub const CONCURRENCY: usize = 32;

/// Alerts per round: each round is one ledger transaction, so this bounds what a
/// crash can make the notifier send again (with the same ids) and its memory.
const WAVE_ALERTS: usize = 256;

/// One delivery to decide on: an alert to an endpoint, in a round of retries.
struct Job<'a> {
    alert: &'a Alert,
    /// None: the channel is no longer configured (a retry queued before).
    channel: Option<&'a dyn Channel>,
    name: &'a str,
    endpoint: String,
    /// Attempts made before this round of retries.
    round_base: i64,
    /// When the notifier took the alert.
    taken_at_ms: i64,
    /// From the retry queue: its row there is its own, not a sign it is settled.
    queued: bool,
    /// A clear whose raise to this endpoint was cancelled: not sent either.
    cancelled: bool,
    /// One of several alerts of one market event for its user in this call: sent
    /// together, as one message, on a person's channels.
    grouped: bool,
}

/// What a round writes to the ledger, and what it counts once written.
#[derive(Default)]
struct Round<'a> {
    writes: Vec<Write<'a>>,
    counted: Vec<Counted<'a>>,
    /// Digest windows opened in this round, by (channel, endpoint): when they end.
    windows: HashMap<(&'a str, String), i64>,
    /// Alerts of a market event's group were held.
    grouped: bool,
}

impl<'a> Round<'a> {
    /// Holds an alert for the digest window ending at `due_at_ms`; `sent`: it opened
    /// the window and is sent on its own as well (counted when tried).
    fn digest(&mut self, alert: &'a Alert, channel: &'a str, endpoint: &str, due_at_ms: i64, sent: bool) {
        let (channel_name, endpoint) = (channel.to_string(), endpoint.to_string());
        self.writes.push(Write::Digested { alert, channel: channel_name, endpoint, due_at_ms, sent });
        if !sent {
            self.counted.push(Counted::Digested(channel));
        }
    }

    fn suppress(
        &mut self,
        alert: &Alert,
        channel: &'a str,
        endpoint: &str,
        at_ms: i64,
        reason: String,
        why: &'static str,
    ) {
        let (alert_id, channel_name, endpoint) = (alert.alert_id.clone(), channel.to_string(), endpoint.to_string());
        self.writes.push(Write::Suppressed { alert_id, channel: channel_name, endpoint, at_ms, reason });
        self.counted.push(Counted::Suppressed(channel, why));
    }

    #[allow(clippy::too_many_arguments)]
    fn defer(
        &mut self,
        alert: &'a Alert,
        channel: &'a str,
        endpoint: &str,
        at_ms: i64,
        round_base: i64,
        taken_at_ms: i64,
        why: &'static str,
    ) {
        let (channel_name, endpoint) = (channel.to_string(), endpoint.to_string());
        self.writes.push(Write::Deferred { alert, channel: channel_name, endpoint, at_ms, round_base, taken_at_ms });
        self.counted.push(Counted::Deferred(channel, why));
    }

    /// Gives a delivery up without sending it (its endpoint disabled, its channel gone).
    fn settle_unsent(
        &mut self,
        alert: &'a Alert,
        channel: &'a str,
        endpoint: &str,
        number: i64,
        at_ms: i64,
        reason: String,
    ) {
        let attempt = Attempt {
            alert_id: alert.alert_id.clone(),
            channel: channel.to_string(),
            endpoint: endpoint.to_string(),
            attempt: number,
            at_ms,
            ok: false,
            latency_us: 0,
            error: Some(reason),
            given_up: true,
        };
        self.writes.push(Write::Tried { attempt, alert, next: Next::Done, health: Health::Unchanged });
        self.counted.push(Counted::Failed(channel));
    }
}

/// The delivery a try was for: an alert's or a digest's id, its channel and
/// endpoint, and the attempts before this round of retries.
#[derive(Clone, Copy)]
struct Delivery<'a, 'b> {
    id: &'b str,
    name: &'a str,
    endpoint: &'b str,
    round_base: i64,
    /// When the notifier took it (a delivery's latency runs from then).
    taken_at_ms: i64,
}

/// A try judged: what the ledger records and what follows.
struct Try<'a> {
    name: &'a str,
    attempt: Attempt,
    next: Next,
    health: Health,
    taken_at_ms: i64,
}

impl<'a> Try<'a> {
    /// How the try counts.
    fn counted(&self) -> Counted<'a> {
        match (self.attempt.ok, self.next) {
            (true, _) => {
                let a = &self.attempt;
                let latency_ms = (a.at_ms - self.taken_at_ms).max(0) as f64 + a.latency_us as f64 / 1_000.0;
                Counted::Delivered(self.name, latency_ms / 1_000.0)
            }
            (false, Next::Retry { .. }) => Counted::Retrying(self.name),
            (false, Next::Done) => Counted::Failed(self.name),
        }
    }
}

/// What a round did to one delivery, counted in the report and the metrics.
enum Counted<'a> {
    Already,
    /// On a channel, with its alert-to-delivery latency in seconds.
    Delivered(&'a str, f64),
    Retrying(&'a str),
    Failed(&'a str),
    Deferred(&'a str, &'static str),
    Suppressed(&'a str, &'static str),
    /// Held for a digest.
    Digested(&'a str),
}

/// Splits items into rounds in which no two alerts share a signal (account and
/// rule), keeping each signal's order: a raise and its clear reach an endpoint in
/// order, a clear finds its raise settled or waiting, and a throttle sees the
/// message before it. Alerts of different signals do not depend on each other.
fn waves<T>(items: &[T], alert: impl Fn(&T) -> &Alert) -> Vec<Vec<&T>> {
    let mut depth: HashMap<String, usize> = HashMap::new();
    let mut waves: Vec<Vec<&T>> = Vec::new();
    for item in items {
        let wave = depth.entry(signal_key(alert(item))).or_insert(0);
        if waves.len() <= *wave {
            waves.push(Vec::new());
        }
        waves[*wave].push(item);
        *wave += 1;
    }
    waves
}

impl Notifier {
    pub fn new(ledger: Ledger, channels: Vec<Arc<dyn Channel>>) -> Self {
        Self::with_clock(ledger, channels, Arc::new(SystemClock))
    }

    pub fn with_clock(ledger: Ledger, channels: Vec<Arc<dyn Channel>>, clock: Arc<dyn Clock>) -> Self {
        Notifier {
            ledger,
            channels,
            clock,
            disable_after_ms: DISABLE_AFTER_MS,
            buckets: Mutex::default(),
            preferences: None,
            metrics: NotifierMetrics::unregistered(),
            concurrency: CONCURRENCY,
        }
    }

    /// Counts into `metrics` (registered in the process's registry).
    pub fn with_metrics(mut self, metrics: NotifierMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Routes each alert by its user's preferences.
    pub fn with_preferences(mut self, store: PreferenceStore) -> Self {
        self.preferences = Some(store);
        self
    }

    /// Disables an endpoint once it has failed for `ms` without a success.
    pub fn disable_after_ms(mut self, ms: i64) -> Self {
        self.disable_after_ms = ms;
        self
    }

    /// Makes up to `n` deliveries at once (at least one).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Delivers `alerts`. Only a ledger that cannot be written fails the call (the
    /// caller keeps the alerts and sends them again; what is settled is skipped).
    pub async fn notify(&self, alerts: &[Alert]) -> Result<NotifyReport, NotifierError> {
        let mut report = NotifyReport::default();
        let mut prefs = HashMap::new();
        for alert in alerts {
            self.load_preferences(&alert.user_id, &mut prefs).await?;
        }
        let taken_at_ms = self.clock.now_ms();
        let grouped = self.market_groups(alerts, &prefs);
        for wave in waves(alerts, |a| a) {
            for chunk in wave.chunks(WAVE_ALERTS) {
                let mut round = Round::default();
                let mut jobs = Vec::new();
                for &alert in chunk {
                    let cancelled = match alert.state {
                        AlertState::Cleared => self.cancel_waiting(alert, &mut round).await?,
                        AlertState::Raised => Vec::new(),
                    };
                    for channel in &self.channels {
                        for endpoint in channel.endpoints(alert, &prefs[&alert.user_id]) {
                            let name = channel.name();
                            let cancelled = cancelled.iter().any(|(c, e)| c == name && *e == endpoint);
                            let channel = Some(channel.as_ref());
                            let (round_base, queued) = (0, false);
                            let grouped = !grouped.is_empty()
                                && grouped.contains(&(alert.alert_id.as_str(), name, endpoint.clone()));
                            jobs.push(Job {
                                alert,
                                channel,
                                name,
                                endpoint,
                                round_base,
                                taken_at_ms,
                                queued,
                                cancelled,
                                grouped,
                            });
                        }
                    }
                }
                if self.run(jobs, round, &prefs, &mut report).await? {
                    // A market event's group is a window that ends now: sent before the
                    // next wave, where a clear of one of its alerts may come.
                    let sent = self.send_digests().await?;
                    report.delivered += sent.delivered;
                    report.retrying += sent.retrying;
                    report.failed += sent.failed;
                }
            }
        }
        Ok(report)
    }

    /// A clear cancels what of its signal still waits for a person (quiet hours, a
    /// retry): the user is not told of a breach that has ended, nor of its end. An
    /// operator's system still gets every alert. Returns the (channel, endpoint)s.
    async fn cancel_waiting<'a>(
        &'a self,
        clear: &Alert,
        round: &mut Round<'a>,
    ) -> Result<Vec<(String, String)>, NotifierError> {
        let reason = format!("cancelled: the alert cleared ({}) before it was sent", clear.alert_id);
        let mut cancelled = Vec::new();
        for (alert_id, channel, endpoint) in self.ledger.waiting_of_signal(clear).await? {
            let personal = self.channels.iter().find(|c| c.name() == channel && c.follows_preferences(&endpoint));
            if let Some(personal) = personal {
                let (at_ms, reason) = (self.clock.now_ms(), reason.clone());
                round.writes.push(Write::Suppressed { alert_id, channel, endpoint: endpoint.clone(), at_ms, reason });
                round.counted.push(Counted::Suppressed(personal.name(), "cancelled"));
                cancelled.push((personal.name().to_string(), endpoint));
            }
        }
        Ok(cancelled)
    }

    /// Reads the user's preferences into `cache`, once per call.
    async fn load_preferences(
        &self,
        user: &str,
        cache: &mut HashMap<String, Preferences>,
    ) -> Result<(), NotifierError> {
        if !cache.contains_key(user) {
            let prefs = match &self.preferences {
                Some(store) => store.get(user).await?.unwrap_or_default(),
                None => Preferences::default(),
            };
            cache.insert(user.to_string(), prefs);
        }
        Ok(())
    }

    /// Makes the retries that are due.
    pub async fn retry_due(&self) -> Result<NotifyReport, NotifierError> {
        let mut report = NotifyReport::default();
        let now_ms = self.clock.now_ms();
        let due = self.ledger.due(now_ms, 500).await?;
        let mut prefs = HashMap::new();
        for due in &due {
            self.load_preferences(&due.alert.user_id, &mut prefs).await?;
        }
        for wave in waves(&due, |d| &d.alert) {
            for chunk in wave.chunks(WAVE_ALERTS) {
                let jobs = chunk
                    .iter()
                    .map(|due| Job {
                        alert: &due.alert,
                        channel: self.channels.iter().find(|c| c.name() == due.channel).map(|c| c.as_ref()),
                        name: &due.channel,
                        endpoint: due.endpoint.clone(),
                        round_base: due.round_base,
                        taken_at_ms: due.taken_at_ms.unwrap_or(now_ms),
                        queued: true,
                        cancelled: false,
                        grouped: false,
                    })
                    .collect();
                self.run(jobs, Round::default(), &prefs, &mut report).await?;
            }
        }
        Ok(report)
    }

    /// Decides each job, makes the deliveries decided on (up to `concurrency` at
    /// once), and writes the round to the ledger in one transaction; then counts.
    /// Returns whether it held alerts of a market event's group.
    async fn run<'a>(
        &'a self,
        jobs: Vec<Job<'a>>,
        mut round: Round<'a>,
        prefs: &'a HashMap<String, Preferences>,
        report: &mut NotifyReport,
    ) -> Result<bool, NotifierError> {
        let keys: Vec<_> =
            jobs.iter().map(|j| DeliveryKey { alert: j.alert, channel: j.name, endpoint: &j.endpoint }).collect();
        let states = self.ledger.delivery_states(&keys).await?;
        let mut sends = Vec::new();
        for (job, state) in jobs.iter().zip(states) {
            let prefs = &prefs[&job.alert.user_id];
            if let Some(channel) = self.decide(job, &state, prefs, &mut round) {
                sends.push((job, channel, state.attempts + 1, prefs));
            }
        }
        // Endpoints that answered 410 in this round: what has not started yet is not sent.
        let gone: Mutex<HashMap<(&str, &str), String>> = Mutex::default();
        let gone = &gone;
        let tried: Vec<_> = futures_util::stream::iter(sends)
            .map(|(job, channel, number, prefs)| async move {
                let key = (job.name, job.endpoint.as_str());
                if let Some(reason) = gone.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
                    return (job, channel, number, Err(reason.clone()), self.clock.now_ms(), 0);
                }
                let started = Instant::now();
                let outcome = channel.deliver(job.alert, &job.endpoint, prefs).await;
                let latency_us = i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX);
                if let Err(ChannelError::Gone(reason)) = &outcome {
                    gone.lock().unwrap_or_else(|p| p.into_inner()).insert(key, reason.clone());
                }
                (job, channel, number, Ok(outcome), self.clock.now_ms(), latency_us)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for (job, channel, number, outcome, at_ms, latency_us) in tried {
            match outcome {
                Ok(outcome) => self.tried(job, channel, number, outcome, at_ms, latency_us, &mut round),
                Err(reason) => {
                    let reason = format!("not sent: the endpoint is disabled ({reason}); enable it, then re-drive");
                    round.settle_unsent(job.alert, job.name, &job.endpoint, number, at_ms, reason);
                }
            }
        }
        let owners = |c: &str, e: &str| self.owner(c, e);
        for (channel, endpoint, reason) in self.ledger.write_telling(&round.writes, &owners).await? {
            self.disabled(&channel, &endpoint, &reason);
        }
        for counted in round.counted {
            self.count(counted, report);
        }
        Ok(round.grouped)
    }

    /// Who owns an endpoint of a channel (see [`Channel::owner`]).
    fn owner(&self, channel: &str, endpoint: &str) -> Option<(String, String)> {
        self.channels.iter().find(|c| c.name() == channel)?.owner(endpoint)
    }

    fn disabled(&self, channel: &str, endpoint: &str, reason: &str) {
        self.metrics.disabled.with_label_values(&[channel]).inc();
        tracing::error!(
            channel,
            endpoint,
            reason,
            "endpoint disabled: its deliveries are dead letters until it is enabled"
        );
    }

    /// Counts what the round did, once the ledger holds it.
    fn count(&self, counted: Counted<'_>, report: &mut NotifyReport) {
        let m = &self.metrics;
        match counted {
            Counted::Already => report.already += 1,
            Counted::Delivered(channel, latency_s) => {
                m.latency.with_label_values(&[channel]).observe(latency_s);
                m.delivered.with_label_values(&[channel]).inc();
                report.delivered += 1;
            }
            Counted::Retrying(channel) => {
                m.failures.with_label_values(&[channel, "retry"]).inc();
                report.retrying += 1;
            }
            Counted::Failed(channel) => {
                m.failures.with_label_values(&[channel, "dead_letter"]).inc();
                report.failed += 1;
            }
            Counted::Deferred(channel, reason) => {
                m.deferred.with_label_values(&[channel, reason]).inc();
                report.deferred += 1;
            }
            Counted::Suppressed(channel, reason) => {
                m.suppressed.with_label_values(&[channel, reason]).inc();
                report.suppressed += 1;
            }
            Counted::Digested(channel) => {
                m.deferred.with_label_values(&[channel, "digest"]).inc();
                report.digested += 1;
            }
        }
    }
}
