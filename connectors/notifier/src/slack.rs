//! Slack-compatible incoming webhooks: the URL in the user's preferences (a secret:
//! sealed, answered masked) gets `{"text": ..., "blocks": [...]}`, which Slack,
//! Mattermost and Rocket.Chat all render. Such a URL takes no idempotency key, so a
//! crash between its answer and the ledger's write can show a message twice.

use std::time::Duration;

use riskstream_schemas::{Alert, AlertState};
use serde_json::{json, Value};

use crate::channel::{personal_endpoint, personal_endpoint_user, BoxFuture, Channel, ChannelError};
use crate::digest::Digest;
use crate::email::template;
use crate::preferences::Preferences;
use crate::webhook::Http;

pub struct SlackChannel {
    http: Http,
    /// Users' URLs may reach private addresses (a self-hosted chat, tests).
    allow_private: bool,
    /// Where the messages' links point: the API's public address.
    link_base: String,
}

impl SlackChannel {
    pub fn new(link_base: &str, allow_private: bool, timeout: Duration) -> Result<Self, String> {
        reqwest::Url::parse(link_base).map_err(|e| format!("slack link base: {e}"))?;
        Ok(SlackChannel { http: Http::new(timeout)?, allow_private, link_base: link_base.trim_end_matches('/').into() })
    }

    /// One line of mrkdwn for an alert: title, account, state, message, numbers, link.
    fn line(&self, alert: &Alert) -> String {
        let (title, value_name, threshold_name) = template(alert.kind);
        let state = if alert.state == AlertState::Cleared { "cleared" } else { "raised" };
        format!(
            "*{title}* on account `{account}` ({state}, {priority:?}): {message}\n{value_name} {value}, {threshold_name} {threshold} · <{base}/v1/alerts/{id}/explain|why it fired>",
            account = alert.account_id,
            priority = alert.priority,
            message = escape(&alert.message),
            value = alert.value,
            threshold = alert.threshold,
            base = self.link_base,
            id = alert.alert_id,
        )
    }

    async fn post(&self, user: &str, prefs: &Preferences, body: Value) -> Result<(), ChannelError> {
        let Some(url) = &prefs.slack else {
            return Err(ChannelError::Permanent(format!("user `{user}` has no Slack URL any more")));
        };
        self.http.send(url, self.allow_private, |client, url| client.post(url).json(&body)).await
    }
}

/// Slack's three control characters, escaped as its docs ask.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn section(text: &str) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } })
}

impl Channel for SlackChannel {
    fn name(&self) -> &str {
        "slack"
    }

    fn endpoints(&self, alert: &Alert, prefs: &Preferences) -> Vec<String> {
        personal_endpoint("slack", alert, prefs, prefs.slack.is_some())
    }

    fn deliver<'a>(
        &'a self,
        alert: &'a Alert,
        _endpoint: &'a str,
        prefs: &'a Preferences,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            let line = self.line(alert);
            let text = format!("{} on account {}: {}", template(alert.kind).0, alert.account_id, alert.message);
            self.post(&alert.user_id, prefs, json!({ "text": text, "blocks": [section(&line)] })).await
        })
    }

    fn sends_digests(&self) -> bool {
        true
    }

    fn deliver_digest<'a>(
        &'a self,
        digest: &'a Digest,
        _endpoint: &'a str,
        prefs: &'a Preferences,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            let n = digest.alerts.len();
            let text = format!("{n} riskstream alert{}", if n == 1 { "" } else { "s" });
            let mut blocks = vec![section(&format!("*{text}*"))];
            blocks.extend(digest.alerts.iter().map(|a| section(&self.line(a))));
            self.post(&digest.user_id, prefs, json!({ "text": text, "blocks": blocks })).await
        })
    }

    fn disables_failing_endpoints(&self) -> bool {
        true
    }

    fn owner(&self, endpoint: &str) -> Option<(String, String)> {
        personal_endpoint_user(endpoint).map(|user| (user.to_string(), "Slack webhook".to_string()))
    }
}
