//! Delivery: every alert on every channel that takes it, skipping what the ledger
//! says is settled, recording every attempt. A failure that may pass is scheduled
//! for another try (exponential backoff with jitter, [`RETRY_AFTER_SECS`]) instead
//! of holding up the alerts behind it; [`Notifier::retry_due`] makes the tries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use riskstream_schemas::{Alert, AlertState};
use sha2::{Digest, Sha256};

use crate::channel::{Channel, ChannelError};
use crate::error::NotifierError;
use crate::ledger::{Attempt, DeliveryState, Health, Ledger, Next};
use crate::metrics::NotifierMetrics;
use crate::preferences::{PreferenceStore, Preferences};

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
}

/// One delivery to make: an alert to an endpoint, in a round of retries.
struct Job<'a> {
    alert: &'a Alert,
    endpoint: &'a str,
    /// Attempts made before this round.
    round_base: i64,
    /// When the notifier took the alert.
    taken_at_ms: i64,
}

/// Up to `rate` tokens, refilled at `rate` a second.
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

impl Bucket {
    /// Takes a token, or says how long until one is there.
    fn take(&mut self, rate: u32, now_ms: i64) -> Result<(), i64> {
        let rate = f64::from(rate);
        let elapsed = (now_ms - self.at_ms).max(0) as f64 / 1_000.0;
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.at_ms = now_ms;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - self.tokens) / rate) * 1_000.0).ceil() as i64)
        }
    }
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

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Delivers `alerts`. Only a ledger that cannot be written fails the call (the
    /// caller keeps the alerts and sends them again; what is settled is skipped).
    pub async fn notify(&self, alerts: &[Alert]) -> Result<NotifyReport, NotifierError> {
        let mut report = NotifyReport::default();
        let mut preferences: HashMap<String, Preferences> = HashMap::new();
        let taken_at_ms = self.clock.now_ms();
        for alert in alerts {
            let prefs = self.preferences_of(&alert.user_id, &mut preferences).await?;
            let cancelled = match alert.state {
                AlertState::Cleared => self.cancel_waiting(alert).await?,
                AlertState::Raised => Vec::new(),
            };
            report.suppressed += cancelled.len();
            for (channel, _) in &cancelled {
                self.metrics.suppressed.with_label_values(&[channel.as_str(), "cancelled"]).inc();
            }
            for channel in &self.channels {
                for endpoint in channel.endpoints(alert, prefs) {
                    let name = channel.name();
                    let state = self.ledger.delivery_state(alert, name, &endpoint).await?;
                    if state.settled_or_waiting {
                        report.already += 1;
                        continue;
                    }
                    if cancelled.iter().any(|(c, e)| c == name && *e == endpoint) {
                        let reason = "suppressed: the raise it ends was never sent";
                        self.ledger.suppress(&alert.alert_id, name, &endpoint, self.clock.now_ms(), reason).await?;
                        self.metrics.suppressed.with_label_values(&[name, "cancelled"]).inc();
                        report.suppressed += 1;
                        continue;
                    }
                    let job = Job { alert, endpoint: &endpoint, round_base: 0, taken_at_ms };
                    self.deliver_one(channel.as_ref(), job, state, prefs, &mut report).await?;
                }
            }
        }
        Ok(report)
    }

    /// A clear cancels what of its signal still waits for a person (quiet hours, a
    /// retry): the user is not told of a breach that has ended, nor of its end. An
    /// operator's system still gets every alert. Returns the (channel, endpoint)s.
    async fn cancel_waiting(&self, clear: &Alert) -> Result<Vec<(String, String)>, NotifierError> {
        let reason = format!("cancelled: the alert cleared ({}) before it was sent", clear.alert_id);
        let mut cancelled = Vec::new();
        for (alert_id, channel, endpoint) in self.ledger.waiting_of_signal(clear).await? {
            let personal = self.channels.iter().any(|c| c.name() == channel && c.follows_preferences(&endpoint));
            if personal {
                self.ledger.suppress(&alert_id, &channel, &endpoint, self.clock.now_ms(), &reason).await?;
                cancelled.push((channel, endpoint));
            }
        }
        Ok(cancelled)
    }

    /// The user's preferences, read once per call.
    async fn preferences_of<'p>(
        &self,
        user: &str,
        cache: &'p mut HashMap<String, Preferences>,
    ) -> Result<&'p Preferences, NotifierError> {
        if !cache.contains_key(user) {
            let prefs = match &self.preferences {
                Some(store) => store.get(user).await?.unwrap_or_default(),
                None => Preferences::default(),
            };
            cache.insert(user.to_string(), prefs);
        }
        Ok(&cache[user])
    }

    /// Makes the retries that are due.
    pub async fn retry_due(&self) -> Result<NotifyReport, NotifierError> {
        let mut report = NotifyReport::default();
        let mut preferences: HashMap<String, Preferences> = HashMap::new();
        for due in self.ledger.due(self.clock.now_ms(), 500).await? {
            let Some(channel) = self.channels.iter().find(|c| c.name() == due.channel) else {
                // The channel is no longer configured: nothing can deliver it.
                let reason = format!("not sent: channel `{}` is not configured any more", due.channel);
                self.settle_unsent(&due.channel, &due.endpoint, &due.alert, reason).await?;
                report.failed += 1;
                continue;
            };
            let prefs = self.preferences_of(&due.alert.user_id, &mut preferences).await?;
            let taken_at_ms = due.taken_at_ms.unwrap_or_else(|| self.clock.now_ms());
            let job = Job { alert: &due.alert, endpoint: &due.endpoint, round_base: due.round_base, taken_at_ms };
            let state = self.ledger.delivery_state(&due.alert, &due.channel, &due.endpoint).await?;
            self.deliver_one(channel.as_ref(), job, state, prefs, &mut report).await?;
        }
        Ok(report)
    }

    async fn deliver_one(
        &self,
        channel: &dyn Channel,
        job: Job<'_>,
        state: DeliveryState,
        prefs: &Preferences,
        report: &mut NotifyReport,
    ) -> Result<(), NotifierError> {
        let Job { alert, endpoint, round_base, taken_at_ms } = job;
        let name = channel.name();
        if let Some(reason) = &state.disabled {
            let reason = format!("not sent: the endpoint is disabled ({reason}); enable it, then re-drive");
            self.settle_unsent(name, endpoint, alert, reason).await?;
            self.metrics.failures.with_label_values(&[name, "dead_letter"]).inc();
            report.failed += 1;
            return Ok(());
        }
        let now_ms = self.clock.now_ms();
        if channel.follows_preferences(endpoint) {
            if let Some(until) = prefs.quiet_until(name, alert, now_ms) {
                self.ledger.defer(alert, name, endpoint, until, round_base, taken_at_ms).await?;
                self.metrics.deferred.with_label_values(&[name, "quiet_hours"]).inc();
                report.deferred += 1;
                return Ok(());
            }
            if let Some(window) = prefs.throttle_ms(name) {
                if let Some(last) = state.last_sent_ms.filter(|l| now_ms - l < window) {
                    let reason = format!(
                        "throttled: a message of rule `{}` for account `{}` went {} s before (one per {} s)",
                        alert.rule,
                        alert.account_id,
                        (now_ms - last) / 1_000,
                        window / 1_000
                    );
                    self.ledger.suppress(&alert.alert_id, name, endpoint, now_ms, &reason).await?;
                    self.metrics.suppressed.with_label_values(&[name, "throttle"]).inc();
                    report.suppressed += 1;
                    return Ok(());
                }
            }
        }
        if let Some(wait_ms) = self.throttle(name, endpoint, channel.rate_limit(endpoint)) {
            let at_ms = self.clock.now_ms() + wait_ms;
            self.ledger.defer(alert, name, endpoint, at_ms, round_base, taken_at_ms).await?;
            self.metrics.deferred.with_label_values(&[name, "rate_limit"]).inc();
            report.deferred += 1;
            return Ok(());
        }
        let number = state.attempts + 1;
        let started = Instant::now();
        let outcome = channel.deliver(alert, endpoint, prefs).await;
        let last_try = number - round_base > RETRY_AFTER_SECS.len() as i64;
        let tries = number - round_base;
        let error = match &outcome {
            Ok(()) => None,
            Err(ChannelError::Retry { reason, .. }) if last_try => {
                Some(format!("gave up after {tries} attempts: {reason}"))
            }
            Err(e) => Some(e.to_string()),
        };
        let attempt = Attempt {
            ok: outcome.is_ok(),
            latency_us: i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX),
            error,
            ..self.attempt(alert, name, endpoint, number)
        };
        let next = match &outcome {
            Err(ChannelError::Retry { after_ms, .. }) if !last_try => {
                // Never sooner than the schedule nor than the receiver asked.
                let wait =
                    backoff_ms(&alert.alert_id, endpoint, tries).max(after_ms.unwrap_or(0).min(MAX_RETRY_AFTER_MS));
                Next::Retry { at_ms: attempt.at_ms + wait, round_base, taken_at_ms }
            }
            _ => Next::Done,
        };
        let attempt = Attempt { given_up: outcome.is_err() && next == Next::Done, ..attempt };
        let health = match &outcome {
            _ if !channel.disables_failing_endpoints() => Health::Unchanged,
            Ok(()) => Health::Ok,
            Err(ChannelError::Gone(reason)) => Health::Disable(reason.clone()),
            Err(_) => Health::Failing { disable_after_ms: self.disable_after_ms },
        };
        if self.ledger.record(&attempt, alert, next, health).await? {
            self.metrics.disabled.with_label_values(&[name]).inc();
            tracing::error!(
                channel = name,
                endpoint,
                reason = attempt.error.as_deref().unwrap_or(""),
                "endpoint disabled: its deliveries are dead letters until it is enabled"
            );
        }
        match (outcome, next) {
            (Ok(()), _) => {
                let latency_ms = (attempt.at_ms - taken_at_ms).max(0) as f64 + attempt.latency_us as f64 / 1_000.0;
                self.metrics.latency.with_label_values(&[name]).observe(latency_ms / 1_000.0);
                self.metrics.delivered.with_label_values(&[name]).inc();
                report.delivered += 1;
            }
            (Err(reason), Next::Retry { at_ms, .. }) => {
                self.metrics.failures.with_label_values(&[name, "retry"]).inc();
                tracing::info!(alert_id = %alert.alert_id, channel = name, endpoint, attempt = number, retry_at_ms = at_ms, %reason, "delivery failed, will retry");
                report.retrying += 1;
            }
            (Err(reason), Next::Done) => {
                self.metrics.failures.with_label_values(&[name, "dead_letter"]).inc();
                tracing::warn!(alert_id = %alert.alert_id, channel = name, endpoint, attempt = number, %reason, "delivery given up");
                report.failed += 1;
            }
        }
        Ok(())
    }

    /// How long a delivery to an endpoint over its rate limit must wait; None: send now.
    fn throttle(&self, channel: &str, endpoint: &str, rate: Option<u32>) -> Option<i64> {
        let rate = rate?;
        let now_ms = self.clock.now_ms();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets
            .entry((channel.to_string(), endpoint.to_string()))
            .or_insert(Bucket { tokens: f64::from(rate), at_ms: now_ms });
        bucket.take(rate, now_ms).err()
    }

    /// Gives a delivery up without sending it (its endpoint disabled, its channel gone).
    async fn settle_unsent(
        &self,
        channel: &str,
        endpoint: &str,
        alert: &Alert,
        reason: String,
    ) -> Result<(), NotifierError> {
        let number = self.ledger.attempt_count(&alert.alert_id, channel, endpoint).await? + 1;
        let attempt = Attempt { error: Some(reason), given_up: true, ..self.attempt(alert, channel, endpoint, number) };
        self.ledger.record(&attempt, alert, Next::Done, Health::Unchanged).await.map(drop)
    }

    /// Attempt `number` of a delivery, stamped now; a failure until said otherwise.
    fn attempt(&self, alert: &Alert, channel: &str, endpoint: &str, number: i64) -> Attempt {
        Attempt {
            alert_id: alert.alert_id.clone(),
            channel: channel.to_string(),
            endpoint: endpoint.to_string(),
            attempt: number,
            at_ms: self.clock.now_ms(),
            ok: false,
            latency_us: 0,
            error: None,
            given_up: false,
        }
    }
}

/// The wait after try `number` of a round, from [`RETRY_AFTER_SECS`], spread by +-20% so
/// retries to one endpoint after an outage do not all come at once. The jitter is
/// derived from the delivery's key, so a replayed test sees the same schedule.
fn backoff_ms(alert_id: &str, endpoint: &str, number: i64) -> i64 {
    let index = usize::try_from(number - 1).unwrap_or(0).min(RETRY_AFTER_SECS.len() - 1);
    let base = RETRY_AFTER_SECS[index] * 1_000;
    let digest =
        Sha256::new().chain_update(alert_id).chain_update(endpoint).chain_update(number.to_be_bytes()).finalize();
    let unit = f64::from(u16::from_be_bytes([digest[0], digest[1]])) / f64::from(u16::MAX);
    base + (base as f64 * 0.4 * (unit - 0.5)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_a_seconds_worth_then_one_per_interval() {
        let mut bucket = Bucket { tokens: 4.0, at_ms: 0 };
        assert!((0..4).all(|_| bucket.take(4, 0).is_ok()), "a burst of one second's worth");
        assert_eq!(bucket.take(4, 0), Err(250));
        assert_eq!(bucket.take(4, 100), Err(150));
        assert_eq!(bucket.take(4, 250), Ok(()));
        assert_eq!(bucket.take(4, 10_000).map(|()| bucket.tokens), Ok(3.0), "refills up to the rate, no more");
    }

    #[test]
    fn backoff_grows_with_jitter_within_twenty_percent() {
        for (n, secs) in RETRY_AFTER_SECS.iter().enumerate() {
            let waits: Vec<i64> = (0..50).map(|k| backoff_ms(&format!("a{k}"), "e", n as i64 + 1)).collect();
            let (lo, hi) = (secs * 800, secs * 1_200);
            assert!(waits.iter().all(|w| (lo..=hi).contains(w)), "attempt {}: {waits:?}", n + 1);
            assert!(waits.iter().any(|w| *w != waits[0]), "jitter spreads the retries");
        }
        assert_eq!(backoff_ms("a", "e", 3), backoff_ms("a", "e", 3), "the same key, the same wait");
    }
}
