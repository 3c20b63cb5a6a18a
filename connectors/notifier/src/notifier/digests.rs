//! Digests and market-event groups: finding the alerts of one market event that
//! reach one endpoint several times, and sending the digests whose window closed.

use std::collections::HashMap;
use std::time::Instant;

use riskstream_schemas::{Alert, AlertKind, AlertState};

use super::{Counted, Delivery, Notifier, NotifyReport};
use crate::channel::ChannelError;
use crate::error::NotifierError;
use crate::preferences::Preferences;

impl Notifier {
    /// The deliveries (alert, channel, endpoint) of raised market-move alerts that
    /// share their endpoint and market event (the record that caused them) with
    /// another in `alerts`: a move fans out to every account holding the symbol, and
    /// a user with several of those accounts gets one message listing them.
    pub(super) fn market_groups<'a>(
        &'a self,
        alerts: &'a [Alert],
        prefs: &HashMap<String, Preferences>,
    ) -> std::collections::HashSet<(&'a str, &'a str, String)> {
        let mut groups: HashMap<(&str, String, u32, u64), Vec<&str>> = HashMap::new();
        for alert in alerts.iter().filter(|a| a.kind == AlertKind::MarketMove && a.state == AlertState::Raised) {
            for channel in self.channels.iter().filter(|c| c.sends_digests()) {
                for endpoint in channel.endpoints(alert, &prefs[&alert.user_id]) {
                    if !channel.follows_preferences(&endpoint) {
                        continue;
                    }
                    let key = (channel.name(), endpoint, alert.caused_by.shard, alert.caused_by.seq);
                    groups.entry(key).or_default().push(&alert.alert_id);
                }
            }
        }
        groups
            .into_iter()
            .filter(|(_, ids)| ids.len() > 1)
            .flat_map(|((name, endpoint, ..), ids)| ids.into_iter().map(move |id| (id, name, endpoint.clone())))
            .collect()
    }

    /// Closes the digest windows that fell due and sends the digests ready: one
    /// message each, retried on the same schedule as an alert, held by the user's
    /// quiet hours. In the report, `digested` counts digests sent and `delivered`
    /// their alerts.
    pub async fn send_digests(&self) -> Result<NotifyReport, NotifierError> {
        let now_ms = self.clock.now_ms();
        self.ledger.close_digests(now_ms).await?;
        let mut report = NotifyReport::default();
        let mut prefs = HashMap::new();
        for ready in self.ledger.ready_digests(now_ms, 100).await? {
            let (digest, name, endpoint) = (&ready.digest, ready.channel.as_str(), ready.endpoint.as_str());
            self.load_preferences(&digest.user_id, &mut prefs).await?;
            let prefs = &prefs[&digest.user_id];
            let channel = self.channels.iter().find(|c| c.name() == name);
            let first =
                digest.alerts.first().ok_or_else(|| NotifierError::Corrupt("a digest without alerts".into()))?;
            if let Some(until) = channel.and_then(|_| prefs.quiet_until(name, first, now_ms)) {
                self.ledger.postpone_digest(&digest.digest_id, until).await?;
                self.count(Counted::Deferred(name, "quiet_hours"), &mut report);
                continue;
            }
            let started = Instant::now();
            let outcome = match (channel, &ready.disabled) {
                (None, _) => {
                    Err(ChannelError::Permanent(format!("not sent: channel `{name}` is not configured any more")))
                }
                (Some(_), Some(reason)) => Err(ChannelError::Permanent(format!(
                    "not sent: the endpoint is disabled ({reason}); enable it, then re-drive"
                ))),
                (Some(channel), None) => channel.deliver_digest(digest, endpoint, prefs).await,
            };
            let sent = channel.is_some() && ready.disabled.is_none();
            let latency_us = i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX);
            let disables = sent && channel.is_some_and(|c| c.disables_failing_endpoints());
            let at_ms = self.clock.now_ms();
            let delivery = Delivery { id: &digest.digest_id, name, endpoint, round_base: 0, taken_at_ms: at_ms };
            let try_ = self.judge(delivery, disables, ready.attempts + 1, outcome, at_ms, latency_us);
            let owners = |c: &str, e: &str| self.owner(c, e);
            let (next, health) = (try_.next, try_.health.clone());
            for (channel, endpoint, reason) in
                self.ledger.record_digest(&ready, &try_.attempt, next, health, &owners).await?
            {
                self.disabled(&channel, &endpoint, &reason);
            }
            if try_.attempt.ok {
                report.digested += 1;
                for _ in &digest.alerts {
                    self.count(Counted::Delivered(name, latency_us as f64 / 1e6), &mut report);
                }
            } else {
                self.count(try_.counted(), &mut report);
            }
        }
        Ok(report)
    }
}
