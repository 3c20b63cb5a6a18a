//! What becomes of each delivery: decided before sending (settled already, held by
//! a digest, quiet hours, a throttle or a rate limit, given up unsent), and what a
//! try's outcome means after (the attempt, the next retry on the backoff schedule,
//! the endpoint's health).

use sha2::{Digest, Sha256};

use super::{Counted, Delivery, Job, Notifier, Round, Try, MAX_RETRY_AFTER_MS, RETRY_AFTER_SECS};
use crate::channel::{Channel, ChannelError};
use crate::ledger::{Attempt, DeliveryState, Health, Next, Write};
use crate::preferences::Preferences;

impl Notifier {
    /// What becomes of a job without sending it (its entry goes in the round), or
    /// the channel to send it on.
    pub(super) fn decide<'a>(
        &self,
        job: &Job<'a>,
        state: &DeliveryState,
        prefs: &Preferences,
        round: &mut Round<'a>,
    ) -> Option<&'a dyn Channel> {
        let Job { alert, name, round_base, taken_at_ms, .. } = *job;
        let endpoint = job.endpoint.as_str();
        let now_ms = self.clock.now_ms();
        if state.settled_or_waiting && !job.queued {
            round.counted.push(Counted::Already);
            return None;
        }
        if job.cancelled {
            let reason = "suppressed: the raise it ends was never sent".to_string();
            round.suppress(alert, name, endpoint, now_ms, reason, "cancelled");
            return None;
        }
        let Some(channel) = job.channel else {
            let reason = format!("not sent: channel `{name}` is not configured any more");
            round.settle_unsent(alert, name, endpoint, state.attempts + 1, now_ms, reason);
            return None;
        };
        if let Some(reason) = &state.disabled {
            let reason = format!("not sent: the endpoint is disabled ({reason}); enable it, then re-drive");
            round.settle_unsent(alert, name, endpoint, state.attempts + 1, now_ms, reason);
            return None;
        }
        if channel.follows_preferences(endpoint) {
            // A queued job was decided on before (held for quiet hours or a rate limit,
            // a retry): it does not join a digest now.
            if let Some((end_ms, first_at_once)) = prefs.digest_window(name, alert, now_ms).filter(|_| !job.queued) {
                let key = (name, endpoint.to_string());
                let open = round.windows.get(&key).copied().or(state.digest_window_ms.filter(|due| *due > now_ms));
                if let Some(due_at_ms) = open {
                    round.digest(alert, name, endpoint, due_at_ms, false);
                    return None;
                }
                round.windows.insert(key, end_ms);
                round.digest(alert, name, endpoint, end_ms, first_at_once);
                if !first_at_once {
                    return None;
                }
            } else if job.grouped && !job.queued {
                // Its window is the call's: it ends as the call does.
                round.digest(alert, name, endpoint, taken_at_ms, false);
                round.grouped = true;
                return None;
            }
            if let Some(until) = prefs.quiet_until(name, alert, now_ms) {
                round.defer(alert, name, endpoint, until, round_base, taken_at_ms, "quiet_hours");
                return None;
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
                    round.suppress(alert, name, endpoint, now_ms, reason, "throttle");
                    return None;
                }
            }
        }
        if let Some(wait_ms) = self.throttle(name, endpoint, channel.rate_limit(endpoint)) {
            round.defer(alert, name, endpoint, now_ms + wait_ms, round_base, taken_at_ms, "rate_limit");
            return None;
        }
        Some(channel)
    }

    /// Puts a try and what follows from it in the round.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn tried<'a>(
        &self,
        job: &Job<'a>,
        channel: &dyn Channel,
        number: i64,
        outcome: Result<(), ChannelError>,
        at_ms: i64,
        latency_us: i64,
        round: &mut Round<'a>,
    ) {
        let (alert, endpoint) = (job.alert, job.endpoint.as_str());
        let (round_base, taken_at_ms) = (job.round_base, job.taken_at_ms);
        let delivery = Delivery { id: &alert.alert_id, name: job.name, endpoint, round_base, taken_at_ms };
        let try_ = self.judge(delivery, channel.disables_failing_endpoints(), number, outcome, at_ms, latency_us);
        round.counted.push(try_.counted());
        let Try { attempt, next, health, .. } = try_;
        round.writes.push(Write::Tried { attempt, alert, next, health });
    }

    /// What a try's outcome means: its attempt (a failure given up on the last
    /// retry), the next step (a retry on the schedule, never sooner than the
    /// receiver asked), and what it says of the endpoint.
    pub(super) fn judge<'a>(
        &self,
        delivery: Delivery<'a, '_>,
        disables: bool,
        number: i64,
        outcome: Result<(), ChannelError>,
        at_ms: i64,
        latency_us: i64,
    ) -> Try<'a> {
        let Delivery { id, name, endpoint, round_base, taken_at_ms } = delivery;
        let tries = number - round_base;
        let last_try = tries > RETRY_AFTER_SECS.len() as i64;
        let error = match &outcome {
            Ok(()) => None,
            Err(ChannelError::Retry { reason, .. }) if last_try => {
                Some(format!("gave up after {tries} attempts: {reason}"))
            }
            Err(e) => Some(e.to_string()),
        };
        let next = match &outcome {
            Err(ChannelError::Retry { after_ms, .. }) if !last_try => {
                let wait = backoff_ms(id, endpoint, tries).max(after_ms.unwrap_or(0).min(MAX_RETRY_AFTER_MS));
                Next::Retry { at_ms: at_ms + wait, round_base, taken_at_ms }
            }
            _ => Next::Done,
        };
        let health = match &outcome {
            _ if !disables => Health::Unchanged,
            Ok(()) => Health::Ok,
            Err(ChannelError::Gone(reason)) => Health::Disable(reason.clone()),
            Err(_) => Health::Failing { disable_after_ms: self.disable_after_ms },
        };
        match (&outcome, next) {
            (Ok(()), _) => {}
            (Err(reason), Next::Retry { at_ms, .. }) => {
                tracing::info!(id, channel = name, endpoint, attempt = number, retry_at_ms = at_ms, %reason, "delivery failed, will retry");
            }
            (Err(reason), Next::Done) => {
                tracing::warn!(id, channel = name, endpoint, attempt = number, %reason, "delivery given up");
            }
        }
        let attempt = Attempt {
            alert_id: id.to_string(),
            channel: name.to_string(),
            endpoint: endpoint.to_string(),
            attempt: number,
            at_ms,
            ok: outcome.is_ok(),
            latency_us,
            error,
            given_up: outcome.is_err() && next == Next::Done,
        };
        Try { name, attempt, next, health, taken_at_ms }
    }

    /// How long a delivery to an endpoint over its rate limit must wait; None: send now.
    pub(super) fn throttle(&self, channel: &str, endpoint: &str, rate: Option<u32>) -> Option<i64> {
        let rate = rate?;
        let now_ms = self.clock.now_ms();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets
            .entry((channel.to_string(), endpoint.to_string()))
            .or_insert(Bucket { tokens: f64::from(rate), at_ms: now_ms });
        bucket.take(rate, now_ms).err()
    }
}

/// Up to `rate` tokens, refilled at `rate` a second.
pub(super) struct Bucket {
    pub(super) tokens: f64,
    pub(super) at_ms: i64,
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
