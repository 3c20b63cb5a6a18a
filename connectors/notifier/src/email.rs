//! E-mail over SMTP (lettre): one message per alert to the address in the user's
//! preferences, with a plain-text and an HTML body from a template per alert kind
//! (its title and the names of its numbers), the account, and links to the account
//! and to why the alert fired. `smtp://` upgrades with STARTTLS when the server
//! offers it; `smtps://` speaks TLS from the start. The `Message-ID` is stable per
//! alert and user, so a re-send after a crash threads as the same message.

use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use riskstream_schemas::{Alert, AlertKind, AlertState};
use serde::{Deserialize, Serialize};

use crate::channel::{personal_endpoint, BoxFuture, Channel, ChannelError};
use crate::digest::Digest;
use crate::preferences::Preferences;
use crate::webhook::message_id;

/// `[notifier.email]`: the SMTP server and what the messages say they come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// `smtp://[user:password@]host[:port]` (STARTTLS when offered; port 587 by
    /// default) or `smtps://...` (TLS from the start; port 465).
    pub smtp_url: String,
    /// The sender, e.g. `riskstream <alerts@example.com>`.
    pub from: String,
    /// Where the links in the messages point: the API's public address.
    pub link_base: String,
    /// A PEM file of certificate authorities to trust besides the public ones (an
    /// internal relay's private CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
}

pub struct EmailChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    link_base: String,
}

impl EmailChannel {
    /// Checks the config; the error names the field.
    pub fn new(config: &EmailConfig, timeout: Duration) -> Result<Self, String> {
        let url = reqwest::Url::parse(&config.smtp_url).map_err(|e| format!("email.smtp_url: {e}"))?;
        let host = url.host_str().ok_or("email.smtp_url: no host")?.to_string();
        let extra_ca = match &config.ca_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| format!("email.ca_file: {}: {e}", path.display()))?;
                Some(Certificate::from_pem(&pem).map_err(|e| format!("email.ca_file: {}: {e}", path.display()))?)
            }
            None => None,
        };
        let tls = |host: &str| {
            let builder = TlsParameters::builder(host.to_string());
            let builder = match &extra_ca {
                Some(ca) => builder.add_root_certificate(ca.clone()),
                None => builder,
            };
            builder.build_rustls().map_err(|e| format!("email.smtp_url: TLS: {e}"))
        };
        let (tls, default_port) = match url.scheme() {
            "smtp" => (Tls::Opportunistic(tls(&host)?), 587),
            "smtps" => (Tls::Wrapper(tls(&host)?), 465),
            other => return Err(format!("email.smtp_url: scheme `{other}`, expected smtp or smtps")),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(url.port().unwrap_or(default_port))
            .tls(tls)
            .timeout(Some(timeout));
        if !url.username().is_empty() {
            let password = url.password().unwrap_or_default();
            builder = builder.credentials(Credentials::new(url.username().to_string(), password.to_string()));
        }
        let from: Mailbox = config.from.parse().map_err(|e| format!("email.from: `{}`: {e}", config.from))?;
        reqwest::Url::parse(&config.link_base).map_err(|e| format!("email.link_base: {e}"))?;
        Ok(EmailChannel {
            transport: builder.build(),
            from,
            link_base: config.link_base.trim_end_matches('/').to_string(),
        })
    }

    fn message(&self, body: Rendered, to: Mailbox, id: &str) -> Result<Message, ChannelError> {
        let id = format!("<{id}@riskstream>");
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(body.subject)
            .message_id(Some(id))
            .multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(body.text))
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(body.html)),
            )
            .map_err(|e| ChannelError::Permanent(format!("cannot build the message: {e}")))
    }
}

impl Channel for EmailChannel {
    fn name(&self) -> &str {
        "email"
    }

    fn endpoints(&self, alert: &Alert, prefs: &Preferences) -> Vec<String> {
        personal_endpoint("email", alert, prefs, prefs.email.is_some())
    }

    fn deliver<'a>(
        &'a self,
        alert: &'a Alert,
        endpoint: &'a str,
        prefs: &'a Preferences,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            let body = render(alert, &self.link_base);
            self.send(&alert.user_id, prefs, body, &message_id(&alert.alert_id, endpoint)).await
        })
    }

    fn sends_digests(&self) -> bool {
        true
    }

    fn deliver_digest<'a>(
        &'a self,
        digest: &'a Digest,
        endpoint: &'a str,
        prefs: &'a Preferences,
    ) -> BoxFuture<'a, Result<(), ChannelError>> {
        Box::pin(async move {
            let body = render_digest(digest, &self.link_base);
            self.send(&digest.user_id, prefs, body, &message_id(&digest.digest_id, endpoint)).await
        })
    }
}

impl EmailChannel {
    /// Mails `body` to the user's address under the Message-ID `id`.
    async fn send(&self, user: &str, prefs: &Preferences, body: Rendered, id: &str) -> Result<(), ChannelError> {
        let Some(address) = &prefs.email else {
            return Err(ChannelError::Permanent(format!("user `{user}` has no e-mail address any more")));
        };
        let to: Mailbox =
            address.parse().map_err(|e| ChannelError::Permanent(format!("the user's e-mail address: {e}")))?;
        let message = self.message(body, to, id)?;
        self.transport.send(message).await.map(drop).map_err(|e| {
            // A 5xx answer will not pass by retrying (no such mailbox); the rest may.
            let reason = format!("SMTP: {e}");
            if e.is_permanent() {
                ChannelError::Permanent(reason)
            } else {
                ChannelError::retry(reason)
            }
        })
    }
}

/// An alert kind as a reader sees it: a title and the names of its two numbers.
pub(crate) fn template(kind: AlertKind) -> (&'static str, &'static str, &'static str) {
    match kind {
        AlertKind::Drift => ("Portfolio drift", "Largest drift from target", "Band"),
        AlertKind::Concentration => ("Position concentration", "Weight", "Limit"),
        AlertKind::MarketMove => ("Market move", "Move", "Threshold"),
        AlertKind::VarBreach => ("Value at Risk over its limit", "VaR", "Limit"),
        AlertKind::CvarBreach => ("Expected shortfall over its limit", "CVaR", "Limit"),
        AlertKind::Drawdown => ("Drawdown", "Drawdown", "Limit"),
        AlertKind::DailyLoss => ("Daily loss", "Loss", "Limit"),
        AlertKind::Leverage => ("Leverage", "Leverage", "Limit"),
        AlertKind::SectorConcentration => ("Sector concentration", "Weight", "Limit"),
        AlertKind::AssetClassConcentration => ("Asset-class concentration", "Weight", "Limit"),
        AlertKind::VolatilitySpike => ("Volatility spike", "Volatility", "Threshold"),
        AlertKind::VarBacktest => ("VaR model backtest", "Exceptions", "Threshold"),
        AlertKind::TaxLossHarvest => ("Tax-loss harvesting opportunity", "Harvestable loss", "Minimum"),
        AlertKind::WashSaleRisk => ("Wash-sale risk", "Amount", "Threshold"),
    }
}

struct Rendered {
    subject: String,
    text: String,
    html: String,
}

fn render(alert: &Alert, link_base: &str) -> Rendered {
    let (title, value_name, threshold_name) = template(alert.kind);
    let priority = format!("{:?}", alert.priority).to_uppercase();
    let cleared = alert.state == AlertState::Cleared;
    let subject = format!(
        "[riskstream] {}{priority} {title}: account {}",
        if cleared { "Cleared: " } else { "" },
        alert.account_id
    );
    let account_link = format!("{link_base}/v1/accounts/{}", alert.account_id);
    let explain_link = format!("{link_base}/v1/alerts/{}/explain", alert.alert_id);
    let state = if cleared { "cleared" } else { "raised" };
    let text = format!(
        "{title} on account {account} ({state}, {priority} priority)\n\n{message}\n\n\
         {value_name}: {value}\n{threshold_name}: {threshold}\nAt: {ts}\n\n\
         The account: {account_link}\nWhy it fired: {explain_link}\n\nAlert {id}\n",
        account = alert.account_id,
        message = alert.message,
        value = alert.value,
        threshold = alert.threshold,
        ts = alert.ts,
        id = alert.alert_id,
    );
    let e = escape;
    let html = format!(
        "<!doctype html>\n<html><body>\n<h2>{title} on account {account}</h2>\n\
         <p>{state}, {priority} priority</p>\n<p>{message}</p>\n<table>\n\
         <tr><th align=\"left\">{value_name}</th><td>{value}</td></tr>\n\
         <tr><th align=\"left\">{threshold_name}</th><td>{threshold}</td></tr>\n\
         <tr><th align=\"left\">At</th><td>{ts}</td></tr>\n</table>\n\
         <p><a href=\"{account_link}\">The account</a> &middot; <a href=\"{explain_link}\">Why it fired</a></p>\n\
         <p style=\"color:#777\">Alert {id}</p>\n</body></html>\n",
        account = e(&alert.account_id),
        message = e(&alert.message),
        value = e(&alert.value.to_string()),
        threshold = e(&alert.threshold.to_string()),
        ts = e(&alert.ts.to_string()),
        account_link = e(&account_link),
        explain_link = e(&explain_link),
        id = e(&alert.alert_id),
    );
    Rendered { subject, text, html }
}

/// A digest: one line per alert (title, account, message, its numbers), oldest
/// first, each with the link to why it fired.
fn render_digest(digest: &Digest, link_base: &str) -> Rendered {
    let n = digest.alerts.len();
    let subject = format!("[riskstream] {n} alert{}", if n == 1 { "" } else { "s" });
    let mut text = format!("{n} alert{} since the last digest:\n\n", if n == 1 { "" } else { "s" });
    let mut items = String::new();
    for alert in &digest.alerts {
        let (title, value_name, threshold_name) = template(alert.kind);
        let state = if alert.state == AlertState::Cleared { "cleared" } else { "raised" };
        let explain_link = format!("{link_base}/v1/alerts/{}/explain", alert.alert_id);
        text.push_str(&format!(
            "- {ts} {title} on account {account} ({state}): {message}\n  {value_name} {value}, {threshold_name} {threshold}\n  Why it fired: {explain_link}\n",
            ts = alert.ts,
            account = alert.account_id,
            message = alert.message,
            value = alert.value,
            threshold = alert.threshold,
        ));
        let e = escape;
        items.push_str(&format!(
            "<li><b>{title}</b> on account {account} ({state}): {message}<br>{value_name} {value}, \
             {threshold_name} {threshold} &middot; <a href=\"{link}\">Why it fired</a></li>\n",
            account = e(&alert.account_id),
            message = e(&alert.message),
            value = e(&alert.value.to_string()),
            threshold = e(&alert.threshold.to_string()),
            link = e(&explain_link),
        ));
    }
    text.push_str(&format!("\nDigest {}\n", digest.digest_id));
    let html = format!(
        "<!doctype html>\n<html><body>\n<h2>{n} alert{s}</h2>\n<ul>\n{items}</ul>\n\
         <p style=\"color:#777\">Digest {id}</p>\n</body></html>\n",
        s = if n == 1 { "" } else { "s" },
        id = escape(&digest.digest_id),
    );
    Rendered { subject, text, html }
}

/// Text for HTML: the five characters that could change its meaning, escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_title_and_html_is_escaped() {
        let titles: std::collections::BTreeSet<&str> = AlertKind::ALL.iter().map(|k| template(*k).0).collect();
        assert_eq!(titles.len(), AlertKind::ALL.len(), "one title per kind");
        assert_eq!(
            escape(r#"<a href="x">O'Neil & Co</a>"#),
            "&lt;a href=&quot;x&quot;&gt;O&#39;Neil &amp; Co&lt;/a&gt;"
        );
    }
}
