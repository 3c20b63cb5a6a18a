//! The notifier: the last box of the flow (`alert sinks ──▶ notifier`). It takes
//! the engine's alerts, delivers each on the channels behind the [`Channel`]
//! trait, and records every attempt and the one success per (alert, channel,
//! endpoint) in its [`Ledger`], so an alert re-sent after a crash or a restart
//! reaches nobody twice. In embedded mode it is one of the engine's alert sinks
//! ([`NotifierSink`]): the engine's outbox acknowledges an alert only once the
//! ledger holds its deliveries.

mod api;
mod channel;
mod digest;
mod email;
mod error;
mod inbox;
mod ledger;
mod metrics;
mod notifier;
mod preferences;
mod sink;
mod slack;
mod sms;
mod webhook;

pub use api::{admin_router, router, DeadLetterQuery};
pub use channel::{BoxFuture, Channel, ChannelError};
pub use digest::{digest_id, Digest};
pub use email::{EmailChannel, EmailConfig};
pub use error::NotifierError;
pub use inbox::{InAppChannel, Inbox, InboxEntry, InboxItem, InboxPage, Notice};
pub use ledger::{
    Attempt, Backend, DeadLetter, DeadLetterFilter, DeliveryKey, DeliveryState, Disabled, Due, EndpointHealth, Health,
    Ledger, LedgerHealth, Next, Owners, ReadyDigest, Write,
};
pub use metrics::NotifierMetrics;
pub use notifier::{
    Clock, Notifier, NotifyReport, SystemClock, CONCURRENCY, DISABLE_AFTER_MS, MAX_RETRY_AFTER_MS, RETRY_AFTER_SECS,
};
pub use preferences::{
    DigestEvery, DigestPreference, NotifierKey, PreferenceStore, Preferences, QuietHours, UserWebhook, CHANNELS,
    MAX_USER_WEBHOOKS,
};
pub use sink::NotifierSink;
pub use slack::SlackChannel;
pub use sms::{SmsChannel, SmsConfig};
pub use webhook::{message_id, sign, user_endpoint, WebhookChannel, WebhookConfig, WebhookSecret};

/// Wall-clock milliseconds: provenance of deliveries and reads (no rule reads them).
pub(crate) fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}
