//! What each user asked to be told, and where: channels per alert kind, a minimum
//! priority per channel, which channels also get clears, and the user's own webhook
//! endpoints with their secrets. Kept in the notifier's store, never in the event
//! log: a preference document is sealed whole (XChaCha20-Poly1305 under the
//! notifier's key, a file beside the ledger, with the user id as associated data),
//! so the ledger alone discloses no secret, address or URL. The sealing and the rows
//! are in `store.rs`.

use std::collections::BTreeMap;

use riskstream_schemas::{Alert, AlertKind, AlertState, Priority};
use serde::{Deserialize, Serialize};

use crate::webhook::WebhookSecret;

mod store;

pub use store::{NotifierKey, PreferenceStore};

/// Channels a user can name (a channel the operator has not configured takes nothing).
pub const CHANNELS: [&str; 5] = ["in_app", "webhook", "email", "slack", "sms"];
/// Most webhook endpoints one user may have.
pub const MAX_USER_WEBHOOKS: usize = 10;

/// A user's preferences, as `PUT /v1/users/{id}/preferences` takes them. Every
/// field is optional: an empty document means every alert on every channel the user
/// has (the in-app inbox, and their webhooks if any), raised alerts only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    /// Per alert kind, the channels it goes to (`[]` silences the kind); kinds not
    /// named go to every channel.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub channels: BTreeMap<AlertKind, Vec<String>>,
    /// Per channel, the lowest priority it takes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub min_priority: BTreeMap<String, Priority>,
    /// Channels that are also told when an alert clears (none by default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clears: Vec<String>,
    /// The user's own webhook endpoints, signed per Standard Webhooks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<UserWebhook>,
    /// Where the `email` channel writes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// A Slack (or compatible) incoming-webhook URL the `slack` channel posts to;
    /// a secret, answered masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<String>,
    /// The phone number (E.164, `+15551234567`) the `sms` channel texts: critical
    /// alerts only, unless `min_priority.sms` says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// The user's IANA time zone (`America/New_York`), for quiet hours; default UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// A daily window on the user's wall clock in which every channel but the
    /// in-app inbox waits; what comes then is sent when it ends. Critical alerts
    /// do not wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
    /// Per channel: at most one message per rule and account in this many seconds;
    /// the others are recorded as suppressed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub throttle_secs: BTreeMap<String, u32>,
    /// Per channel (not the inbox): alerts gathered into one message an hour or a
    /// day instead of one message each. Critical alerts are sent at once.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: BTreeMap<String, DigestPreference>,
}

/// How often a channel's digest goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DigestEvery {
    /// An hour after the alert that opens the window.
    Hourly,
    /// At `at` on the user's wall clock, once a day.
    Daily,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestPreference {
    pub every: DigestEvery,
    /// Daily: when (`HH:MM`, the user's time zone); default 08:00.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// The alert that opens a window goes out at once, on its own; those after it
    /// in the window wait for the digest (the first of a burst is news, the rest
    /// detail). Default: every alert waits.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub first_at_once: bool,
}

/// When a daily digest goes out unless the user says.
const DAILY_AT: &str = "08:00";

/// From `start` to `end` (`HH:MM`, 24-hour), across midnight when `end` is earlier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    pub start: String,
    pub end: String,
}

fn parse_hhmm(field: &str, text: &str) -> Result<jiff::civil::Time, String> {
    let bad = || format!("{field}: `{text}` is not HH:MM (00:00 to 23:59)");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    jiff::civil::Time::new(h, m, 0, 0).map_err(|_| bad())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserWebhook {
    /// The endpoint's name, unique among the user's (letters, digits, `-`, `_`).
    pub id: String,
    pub url: String,
    /// `whsec_...`; several during a rotation. Answered masked by GET.
    pub secrets: Vec<String>,
}

impl Preferences {
    /// Checks the document; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let known = |field: &str, channel: &str| {
            if CHANNELS.contains(&channel) {
                Ok(())
            } else {
                Err(format!("{field}: unknown channel `{channel}` (channels: {})", CHANNELS.join(", ")))
            }
        };
        for (kind, channels) in &self.channels {
            for c in channels {
                known(&format!("channels.{}", kind.as_str()), c)?;
            }
        }
        for c in self.min_priority.keys() {
            known("min_priority", c)?;
        }
        for c in &self.clears {
            known("clears", c)?;
        }
        for (c, secs) in &self.throttle_secs {
            known("throttle_secs", c)?;
            if *secs == 0 {
                return Err(format!("throttle_secs.{c}: must be at least 1 (leave the channel out for no throttle)"));
            }
        }
        for (c, digest) in &self.digest {
            known("digest", c)?;
            if c == "in_app" {
                return Err("digest.in_app: the inbox lists each alert; digests are for email and webhook".into());
            }
            match (&digest.at, digest.every) {
                (Some(_), DigestEvery::Hourly) => {
                    return Err(format!("digest.{c}.at: only a daily digest has a time of day"));
                }
                (Some(at), DigestEvery::Daily) => drop(parse_hhmm(&format!("digest.{c}.at"), at)?),
                (None, _) => {}
            }
        }
        self.zone()?;
        if let Some(address) = &self.email {
            address
                .parse::<lettre::Address>()
                .map_err(|e| format!("email: `{address}` is not an e-mail address: {e}"))?;
        }
        if let Some(url) = &self.slack {
            let parsed = reqwest::Url::parse(url).map_err(|e| format!("slack: not a URL: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err("slack: must be an http or https URL (an incoming webhook)".into());
            }
        }
        if let Some(phone) = &self.phone {
            let digits = phone.strip_prefix('+').unwrap_or("");
            if !(8..=15).contains(&digits.len())
                || !digits.chars().all(|c| c.is_ascii_digit())
                || digits.starts_with('0')
            {
                return Err(format!(
                    "phone: `{phone}` is not an E.164 number (+ and 8 to 15 digits, e.g. +15551234567)"
                ));
            }
        }
        if let Some(q) = &self.quiet_hours {
            if parse_hhmm("quiet_hours.start", &q.start)? == parse_hhmm("quiet_hours.end", &q.end)? {
                return Err("quiet_hours: start and end are the same time".into());
            }
        }
        if self.webhooks.len() > MAX_USER_WEBHOOKS {
            return Err(format!("webhooks: at most {MAX_USER_WEBHOOKS} endpoints"));
        }
        for (i, hook) in self.webhooks.iter().enumerate() {
            let field = format!("webhooks[{i}]");
            let id_ok = !hook.id.is_empty()
                && hook.id.len() <= 64
                && hook.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !id_ok {
                return Err(format!("{field}.id: 1 to 64 letters, digits, `-` or `_`"));
            }
            if self.webhooks[..i].iter().any(|h| h.id == hook.id) {
                return Err(format!("{field}.id: `{}` is used twice", hook.id));
            }
            let url = reqwest::Url::parse(&hook.url).map_err(|e| format!("{field}.url: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(format!("{field}.url: must be http or https"));
            }
            if hook.secrets.is_empty() {
                return Err(format!("{field}.secrets: needs a secret (whsec_...)"));
            }
            for s in &hook.secrets {
                s.parse::<WebhookSecret>().map_err(|e| format!("{field}.secrets: {e}"))?;
            }
        }
        Ok(())
    }

    /// Whether `channel` takes `alert` for this user. Critical alerts cannot be opted
    /// out of: they reach every channel the user has, whatever the kind's channels
    /// or the channel's minimum priority say.
    pub fn wants(&self, channel: &str, alert: &Alert) -> bool {
        if alert.state == AlertState::Cleared && !self.clears.iter().any(|c| c == channel) {
            return false;
        }
        if alert.priority == Priority::Critical {
            return true;
        }
        if let Some(channels) = self.channels.get(&alert.kind) {
            if !channels.iter().any(|c| c == channel) {
                return false;
            }
        }
        self.min_priority.get(channel).is_none_or(|min| alert.priority >= *min)
    }

    fn zone(&self) -> Result<Option<jiff::tz::TimeZone>, String> {
        self.timezone
            .as_deref()
            .map(|name| {
                jiff::tz::TimeZone::get(name)
                    .map_err(|_| format!("timezone: `{name}` is not an IANA time zone (e.g. Europe/Paris)"))
            })
            .transpose()
    }

    /// Until when `channel` must hold `alert` back for the user's quiet hours (Unix
    /// milliseconds), or None to send it now. The window's end is found on the
    /// user's wall clock, so a change of daylight saving time moves it with the clock
    /// (a wall time that does not exist that day is taken after the gap).
    pub fn quiet_until(&self, channel: &str, alert: &Alert, now_ms: i64) -> Option<i64> {
        let quiet = self.quiet_hours.as_ref()?;
        if channel == "in_app" || alert.priority == Priority::Critical {
            return None;
        }
        let (start, end) = (parse_hhmm("", &quiet.start).ok()?, parse_hhmm("", &quiet.end).ok()?);
        let zone = self.zone().ok()?.unwrap_or(jiff::tz::TimeZone::UTC);
        let now = jiff::Timestamp::from_millisecond(now_ms).ok()?.to_zoned(zone.clone());
        let time = now.time();
        let inside = if start < end { start <= time && time < end } else { time >= start || time < end };
        if !inside {
            return None;
        }
        let day = if time < end { now.date() } else { now.date().tomorrow().ok()? };
        let until = day.to_datetime(end).to_zoned(zone).ok()?;
        Some(until.timestamp().as_millisecond())
    }

    /// Whether `channel` gathers `alert` into a digest: the end of a window opened
    /// at `now_ms` (Unix milliseconds), and whether the alert opening it goes out at
    /// once. None: sent on its own (no digest, or a critical alert).
    pub fn digest_window(&self, channel: &str, alert: &Alert, now_ms: i64) -> Option<(i64, bool)> {
        let digest = self.digest.get(channel)?;
        if alert.priority == Priority::Critical {
            return None;
        }
        let end = match digest.every {
            DigestEvery::Hourly => now_ms + 3_600_000,
            DigestEvery::Daily => {
                let at = parse_hhmm("", digest.at.as_deref().unwrap_or(DAILY_AT)).ok()?;
                let zone = self.zone().ok()?.unwrap_or(jiff::tz::TimeZone::UTC);
                let now = jiff::Timestamp::from_millisecond(now_ms).ok()?.to_zoned(zone.clone());
                let day = if now.time() < at { now.date() } else { now.date().tomorrow().ok()? };
                day.to_datetime(at).to_zoned(zone).ok()?.timestamp().as_millisecond()
            }
        };
        Some((end, digest.first_at_once))
    }

    /// How long `channel` stays quiet on a rule and account after a message.
    pub fn throttle_ms(&self, channel: &str) -> Option<i64> {
        self.throttle_secs.get(channel).map(|s| i64::from(*s) * 1_000)
    }

    /// The document as GET answers it: every secret masked but its last 4 characters.
    pub fn masked(&self) -> Preferences {
        let mut copy = self.clone();
        if let Some(url) = &mut copy.slack {
            let tail: String = url.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
            let host = reqwest::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
            *url = format!("https://{host}/...{tail}");
        }
        for hook in &mut copy.webhooks {
            for s in &mut hook.secrets {
                let tail: String = s.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
                *s = format!("whsec_...{tail}");
            }
        }
        copy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use riskstream_schemas::{RecordRef, Timestamp};
    use std::str::FromStr;

    fn alert(kind: AlertKind, priority: Priority, state: AlertState) -> Alert {
        Alert {
            alert_id: "a1".into(),
            kind,
            state,
            priority,
            account_id: "acc-1".into(),
            user_id: "u1".into(),
            ts: Timestamp::parse("2026-01-05T14:30:00Z").unwrap(),
            caused_by: RecordRef { shard: 0, seq: 1 },
            rule: "r".into(),
            value: "1".parse().unwrap(),
            threshold: "1".parse().unwrap(),
            message: "m".into(),
            details: None,
        }
    }

    #[test]
    fn kinds_priorities_and_clears_route_but_critical_always_passes() {
        let prefs: Preferences = serde_json::from_value(serde_json::json!({
            "channels": { "market_move": [], "drift": ["webhook"] },
            "min_priority": { "in_app": "high" },
            "clears": ["webhook"],
        }))
        .unwrap();
        prefs.validate().unwrap();
        let raised = AlertState::Raised;
        assert!(!prefs.wants("in_app", &alert(AlertKind::MarketMove, Priority::High, raised)), "silenced kind");
        assert!(prefs.wants("in_app", &alert(AlertKind::MarketMove, Priority::Critical, raised)), "critical");
        assert!(prefs.wants("webhook", &alert(AlertKind::Drift, Priority::Low, raised)));
        assert!(!prefs.wants("in_app", &alert(AlertKind::Drift, Priority::High, raised)), "drift: webhook only");
        assert!(!prefs.wants("in_app", &alert(AlertKind::VarBreach, Priority::Medium, raised)), "under in_app's min");
        assert!(prefs.wants("in_app", &alert(AlertKind::VarBreach, Priority::High, raised)));
        let cleared = AlertState::Cleared;
        assert!(prefs.wants("webhook", &alert(AlertKind::VarBreach, Priority::Low, cleared)));
        assert!(!prefs.wants("in_app", &alert(AlertKind::VarBreach, Priority::Critical, cleared)), "no clears");
        let none = Preferences::default();
        assert!(none.wants("in_app", &alert(AlertKind::Drift, Priority::Low, raised)));
        assert!(!none.wants("in_app", &alert(AlertKind::Drift, Priority::Low, cleared)));
    }

    /// Europe/Paris leaves CET (UTC+1) for CEST (UTC+2) at 02:00 on 29 March 2026
    /// (EU Directive 2000/84/EC: the last Sunday of March, 01:00 UTC).
    #[test]
    fn quiet_hours_end_on_the_users_wall_clock_across_daylight_saving() {
        let prefs: Preferences = serde_json::from_value(serde_json::json!({
            "timezone": "Europe/Paris", "quiet_hours": { "start": "22:00", "end": "07:00" },
        }))
        .unwrap();
        prefs.validate().unwrap();
        let ms = |utc: &str| jiff::Timestamp::from_str(utc).unwrap().as_millisecond();
        let high = alert(AlertKind::Drift, Priority::High, AlertState::Raised);
        // 23:00 in Paris on the 28th (CET): quiet until 07:00 CEST on the 29th, 05:00 UTC.
        assert_eq!(prefs.quiet_until("webhook", &high, ms("2026-03-28T22:00:00Z")), Some(ms("2026-03-29T05:00:00Z")));
        // 06:30 CEST: quiet until 07:00 the same morning.
        assert_eq!(prefs.quiet_until("webhook", &high, ms("2026-03-29T04:30:00Z")), Some(ms("2026-03-29T05:00:00Z")));
        // 07:00 CEST and noon: not quiet; the inbox and critical alerts never wait.
        assert_eq!(prefs.quiet_until("webhook", &high, ms("2026-03-29T05:00:00Z")), None);
        assert_eq!(prefs.quiet_until("webhook", &high, ms("2026-03-29T10:00:00Z")), None);
        assert_eq!(prefs.quiet_until("in_app", &high, ms("2026-03-28T22:00:00Z")), None);
        let critical = alert(AlertKind::Drift, Priority::Critical, AlertState::Raised);
        assert_eq!(prefs.quiet_until("webhook", &critical, ms("2026-03-28T22:00:00Z")), None);
        // A window within one day, in UTC by default.
        let lunch: Preferences =
            serde_json::from_value(serde_json::json!({ "quiet_hours": { "start": "12:00", "end": "13:30" } })).unwrap();
        assert_eq!(lunch.quiet_until("webhook", &high, ms("2026-03-29T12:10:00Z")), Some(ms("2026-03-29T13:30:00Z")));
        assert_eq!(lunch.quiet_until("webhook", &high, ms("2026-03-29T13:30:00Z")), None);
    }

    #[test]
    fn a_bad_document_is_refused_naming_the_field() {
        let bad = |doc: serde_json::Value| match serde_json::from_value::<Preferences>(doc) {
            Ok(p) => p.validate().unwrap_err(),
            Err(e) => e.to_string(),
        };
        assert!(
            bad(serde_json::json!({"channels": {"drift": ["fax"]}})).contains("channels.drift: unknown channel `fax`")
        );
        assert!(bad(serde_json::json!({"channels": {"nope": []}})).contains("unknown variant `nope`"));
        assert!(bad(serde_json::json!({"quiet": true})).contains("unknown field `quiet`"));
        assert!(
            bad(serde_json::json!({"timezone": "Mars/Olympus"})).contains("timezone: `Mars/Olympus` is not an IANA")
        );
        let q = |start: &str, end: &str| serde_json::json!({"quiet_hours": {"start": start, "end": end}});
        assert!(bad(q("22:00", "7:00")).contains("quiet_hours.end: `7:00` is not HH:MM"));
        assert!(bad(q("24:00", "07:00")).contains("quiet_hours.start"));
        assert!(bad(q("07:00", "07:00")).contains("start and end are the same"));
        assert!(bad(serde_json::json!({"throttle_secs": {"webhook": 0}}))
            .contains("throttle_secs.webhook: must be at least 1"));
        let hook = |id: &str, url: &str, secret: &str| serde_json::json!({"id": id, "url": url, "secrets": [secret]});
        let ok = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let two =
            serde_json::json!({"webhooks": [hook("a", "https://x.example", ok), hook("a", "https://y.example", ok)]});
        assert!(bad(two).contains("webhooks[1].id: `a` is used twice"));
        assert!(bad(serde_json::json!({"webhooks": [hook("a b", "https://x.example", ok)]})).contains("webhooks[0].id"));
        assert!(bad(serde_json::json!({"webhooks": [hook("a", "ftp://x.example", ok)]})).contains("http or https"));
        assert!(bad(serde_json::json!({"webhooks": [hook("a", "https://x.example", "nope")]})).contains("whsec_"));
        let digest = |d: serde_json::Value| bad(serde_json::json!({ "digest": d }));
        assert!(digest(serde_json::json!({"in_app": {"every": "hourly"}})).contains("digest.in_app: the inbox"));
        assert!(digest(serde_json::json!({"email": {"every": "weekly"}})).contains("unknown variant `weekly`"));
        assert!(digest(serde_json::json!({"email": {"every": "hourly", "at": "08:00"}}))
            .contains("digest.email.at: only a daily digest"));
        assert!(digest(serde_json::json!({"email": {"every": "daily", "at": "8am"}}))
            .contains("digest.email.at: `8am` is not HH:MM"));
    }

    /// A daily digest goes out at its wall-clock time in the user's zone: 08:00 in
    /// New York is 13:00 UTC in winter (EST, UTC-5) and 12:00 UTC in summer (EDT, UTC-4).
    #[test]
    fn a_daily_digest_is_due_at_its_time_on_the_users_clock_and_an_hourly_one_an_hour_on() {
        let ms = |t: &str| t.parse::<jiff::Timestamp>().unwrap().as_millisecond();
        let prefs: Preferences = serde_json::from_value(serde_json::json!({
            "timezone": "America/New_York",
            "digest": {"email": {"every": "daily"}, "webhook": {"every": "hourly", "first_at_once": true}}
        }))
        .unwrap();
        prefs.validate().unwrap();
        let drift = alert(AlertKind::Drift, Priority::High, AlertState::Raised);
        assert_eq!(
            prefs.digest_window("email", &drift, ms("2026-01-05T14:30:00Z")),
            Some((ms("2026-01-06T13:00:00Z"), false))
        );
        assert_eq!(
            prefs.digest_window("email", &drift, ms("2026-01-05T12:59:00Z")),
            Some((ms("2026-01-05T13:00:00Z"), false))
        );
        assert_eq!(
            prefs.digest_window("email", &drift, ms("2026-07-06T11:00:00Z")),
            Some((ms("2026-07-06T12:00:00Z"), false))
        );
        let now = ms("2026-01-05T14:30:00Z");
        assert_eq!(prefs.digest_window("webhook", &drift, now), Some((now + 3_600_000, true)));
        assert_eq!(prefs.digest_window("in_app", &drift, now), None, "no digest asked for");
        let critical = alert(AlertKind::Drift, Priority::Critical, AlertState::Raised);
        assert_eq!(prefs.digest_window("email", &critical, now), None, "critical alerts are sent at once");
    }
}
