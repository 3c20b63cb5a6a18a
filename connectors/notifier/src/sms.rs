//! Text messages through a provider's HTTP API, in Twilio's shape (the most common
//! one; others offer a compatible endpoint): `POST {api_base}/2010-04-01/Accounts/
//! {account_sid}/Messages.json`, form fields `To`, `From`, `Body`, HTTP basic auth.
//! Critical alerts only unless the user sets `min_priority.sms`: a text wakes people.

use std::time::Duration;

use riskstream_schemas::{Alert, Priority};
use serde::{Deserialize, Serialize};

use crate::channel::{personal_endpoint, BoxFuture, Channel, ChannelError};
use crate::email::template;
use crate::preferences::Preferences;
use crate::webhook::Http;

/// `[notifier.sms]`: the provider's API and the account the texts are sent from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    /// The provider's API; default `https://api.twilio.com`.
    #[serde(default = "default_api_base")]
    pub api_base: String,
    pub account_sid: String,
    /// A secret: keep the config file readable by the service only.
    pub auth_token: String,
    /// The sending number (E.164) or sender id.
    pub from: String,
    /// Let `api_base` be a private or loopback address (a local relay, tests).
    #[serde(default)]
    pub allow_private: bool,
}

fn default_api_base() -> String {
    "https://api.twilio.com".into()
}

/// A text is at most this long: two SMS segments.
const MAX_CHARS: usize = 300;

pub struct SmsChannel {
    http: Http,
    config: SmsConfig,
    url: String,
}

impl SmsChannel {
    /// Checks the config; the error names the field.
    pub fn new(config: &SmsConfig, timeout: Duration) -> Result<Self, String> {
        let base = reqwest::Url::parse(&config.api_base).map_err(|e| format!("sms.api_base: {e}"))?;
        if config.account_sid.is_empty() || !config.account_sid.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err("sms.account_sid: letters and digits, as the provider gave it".into());
        }
        if config.auth_token.is_empty() || config.from.is_empty() {
            return Err("sms: auth_token and from are needed".into());
        }
        let url =
            format!("{}/2010-04-01/Accounts/{}/Messages.json", base.as_str().trim_end_matches('/'), config.account_sid);
        Ok(SmsChannel { http: Http::new(timeout)?, config: config.clone(), url })
    }
}

/// The text: priority, title, account and message, cut to [`MAX_CHARS`].
fn text(alert: &Alert) -> String {
    let (title, ..) = template(alert.kind);
    let text = format!(
        "riskstream {priority:?}: {title} on {account}. {message}",
        priority = alert.priority,
        account = alert.account_id,
        message = alert.message
    );
    match text.char_indices().nth(MAX_CHARS - 1) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

impl Channel for SmsChannel {
    fn name(&self) -> &str {
        "sms"
    }

    fn endpoints(&self, alert: &Alert, prefs: &Preferences) -> Vec<String> {
        let loud_enough = alert.priority == Priority::Critical || prefs.min_priority.contains_key("sms");
        personal_endpoint("sms", alert, prefs, prefs.phone.is_some() && loud_enough)
    }

    fn deliver<'a>(
        &'a self,
        alert: &'a Alert,
        _endpoint: &'a str,
        prefs: &'a Preferences,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            let Some(phone) = &prefs.phone else {
                return Err(ChannelError::Permanent(format!("user `{}` has no phone number any more", alert.user_id)));
            };
            let form = [("To", phone.as_str()), ("From", self.config.from.as_str()), ("Body", &text(alert))];
            let auth = (&self.config.account_sid, &self.config.auth_token);
            self.http
                .send(&self.url, self.config.allow_private, |client, url| {
                    client.post(url).basic_auth(auth.0, Some(auth.1)).form(&form)
                })
                .await
        })
    }

    fn disables_failing_endpoints(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_message_is_cut_to_two_segments() {
        use riskstream_schemas::{AlertKind, AlertState, RecordRef, Timestamp};
        let alert = Alert {
            alert_id: "a1".into(),
            kind: AlertKind::Drift,
            state: AlertState::Raised,
            priority: Priority::High,
            account_id: "acc-1".into(),
            user_id: "u1".into(),
            ts: Timestamp::parse("2026-01-05T14:30:00Z").unwrap(),
            caused_by: RecordRef { shard: 0, seq: 1 },
            rule: "drift".into(),
            value: "0.3".parse().unwrap(),
            threshold: "0.25".parse().unwrap(),
            message: "x".repeat(500),
            details: None,
        };
        let t = text(&alert);
        assert_eq!(t.chars().count(), MAX_CHARS);
        assert!(t.ends_with('…') && t.starts_with("riskstream High: Portfolio drift on acc-1. "), "{t}");
    }
}
