//! The seam between the notifier and the ways people are told: one trait, one
//! implementation per technology (`InAppChannel`, `WebhookChannel`; email and others to come).

use std::future::Future;
use std::pin::Pin;

use riskstream_schemas::Alert;

use crate::digest::Digest;
use crate::preferences::Preferences;

/// A boxed future, so channels can be held as `dyn Channel`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a delivery failed, and whether to try again.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChannelError {
    /// May pass later (a timeout, a 5xx, a busy store): the alert is tried again,
    /// not before `after_ms` when the receiver said when (`Retry-After`).
    #[error("{reason}")]
    Retry { reason: String, after_ms: Option<i64> },
    /// Will not pass by retrying (a 4xx, a refused address): recorded and given up.
    #[error("{0}")]
    Permanent(String),
    /// The endpoint is gone (a webhook's 410): given up, and the endpoint disabled
    /// until an operator enables it again.
    #[error("{0}")]
    Gone(String),
}

impl ChannelError {
    /// A failure that may pass, with no word on when.
    pub fn retry(reason: impl Into<String>) -> Self {
        ChannelError::Retry { reason: reason.into(), after_ms: None }
    }
}

pub trait Channel: Send + Sync {
    /// The channel's name in the ledger (`in_app`, `webhook`, ...).
    fn name(&self) -> &str;

    /// Where this channel delivers `alert`, given its user's preferences (the
    /// defaults when they set none): endpoint ids, each the ledger's key with the
    /// alert and the channel; empty when it does not take the alert.
    fn endpoints(&self, alert: &Alert, prefs: &Preferences) -> Vec<String>;

    /// Delivers one alert to one endpoint, given its user's preferences (read once
    /// by the notifier; a user's own endpoints and addresses are in them).
    /// Delivering the same alert to the same endpoint twice must be harmless to the
    /// receiver (an idempotency key).
    fn deliver<'a>(
        &'a self,
        alert: &'a Alert,
        endpoint: &'a str,
        prefs: &'a Preferences,
    ) -> BoxFuture<'a, Result<(), ChannelError>>;

    /// The user who owns `endpoint` and its name for them (a user's own webhook),
    /// told when it is disabled; none for an operator's endpoint.
    fn owner(&self, _endpoint: &str) -> Option<(String, String)> {
        None
    }

    /// Whether the channel sends digests ([`Channel::deliver_digest`]); market
    /// events are grouped only on those.
    fn sends_digests(&self) -> bool {
        false
    }

    /// Delivers a digest to one endpoint: one message listing its alerts, under the
    /// digest's id (an idempotency key as for an alert). A channel that does not
    /// send digests refuses.
    fn deliver_digest<'a>(
        &'a self,
        _digest: &'a Digest,
        _endpoint: &'a str,
        _prefs: &'a Preferences,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        let reason = format!("channel `{}` sends no digests", self.name());
        Box::pin(async move { Err(ChannelError::Permanent(reason)) })
    }

    /// Whether an endpoint that keeps failing is disabled (a receiver someone else
    /// runs); a channel writing to the notifier's own store never is.
    fn disables_failing_endpoints(&self) -> bool {
        false
    }

    /// Whether deliveries to `endpoint` follow its user's quiet hours and throttles
    /// (a person's channel), or not (an operator's system receiving every alert).
    fn follows_preferences(&self, _endpoint: &str) -> bool {
        true
    }

    /// At most this many deliveries a second to `endpoint` (a receiver's stated
    /// capacity); the rest wait in the retry queue without counting as attempts.
    fn rate_limit(&self, _endpoint: &str) -> Option<u32> {
        None
    }
}

/// The one endpoint of a channel that writes to an address in the user's
/// preferences (e-mail, Slack, SMS) when `has_address` and the user wants `alert`
/// there: `u/{user}` in the ledger, the user and never the address (the ledger is
/// not sealed; the preferences are).
pub(crate) fn personal_endpoint(channel: &str, alert: &Alert, prefs: &Preferences, has_address: bool) -> Vec<String> {
    (has_address && prefs.wants(channel, alert)).then(|| format!("u/{}", alert.user_id)).into_iter().collect()
}

/// The user a [`personal_endpoint`] belongs to.
pub(crate) fn personal_endpoint_user(endpoint: &str) -> Option<&str> {
    endpoint.strip_prefix("u/")
}
