//! `EmailChannel` against a real SMTP server on 127.0.0.1 (aiosmtpd from PyPI,
//! tests/smtp.py), which parses each message with Python's own e-mail package: the
//! recipient from the user's sealed preferences, the subject, both bodies with the
//! numbers, the account and the links, a Message-ID stable per alert and user.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use riskstream_notifier::{
    message_id, Channel, EmailChannel, EmailConfig, Ledger, Notifier, NotifierKey, PreferenceStore, Preferences,
};
use riskstream_schemas::{Alert, AlertKind, AlertState};
use serde_json::{json, Value};

/// tests/smtp.py: an SMTP server logging each message it receives.
struct Smtp(common::Logged);

impl Smtp {
    fn start(dir: &Path) -> Smtp {
        Smtp(common::Logged::start(dir, "smtp.py", "smtp", &[], &[]))
    }

    /// Offering STARTTLS with this certificate and key, and refusing mail without it.
    fn start_tls(dir: &Path, cert: &Path, key: &Path) -> Smtp {
        Smtp(common::Logged::start(dir, "smtp.py", "smtp", &[], &[cert.to_str().unwrap(), key.to_str().unwrap()]))
    }

    fn port(&self) -> u16 {
        self.0.port
    }

    fn messages(&self) -> Vec<Value> {
        self.0.lines()
    }
}

fn alert(id: &str, user: &str, state: AlertState) -> Alert {
    Alert {
        kind: AlertKind::Drift,
        state,
        account_id: "acc-<7>".into(),
        user_id: user.into(),
        rule: "drift".into(),
        value: "0.3125".parse().unwrap(),
        threshold: "0.25".parse().unwrap(),
        message: "VTI is 31.25% from its 20% target & outside its band".into(),
        ..common::alert(id)
    }
}

#[tokio::test]
async fn an_alert_is_mailed_to_the_users_address_with_both_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(dir.path());
    let ledger = Ledger::open(&dir.path().join("n.sqlite")).await.unwrap();
    let store = PreferenceStore::new(ledger.clone(), NotifierKey::load_or_create(&dir.path().join("k")).unwrap());
    let prefs: Preferences =
        serde_json::from_value(json!({ "email": "ann@example.com", "clears": ["email"] })).unwrap();
    prefs.validate().unwrap();
    store.put("u1", &prefs, 0).await.unwrap();
    let config = EmailConfig {
        smtp_url: format!("smtp://127.0.0.1:{}", smtp.port()),
        from: "riskstream <alerts@riskstream.example>".into(),
        link_base: "https://risk.example.com/".into(),
        ca_file: None,
    };
    let email = EmailChannel::new(&config, Duration::from_secs(5)).unwrap();
    let channels: Vec<Arc<dyn Channel>> = vec![Arc::new(email)];
    let notifier = Notifier::new(ledger.clone(), channels).with_preferences(store);

    let report =
        notifier.notify(&[alert("a1", "u1", AlertState::Raised), alert("b1", "u2", AlertState::Raised)]).await.unwrap();
    assert_eq!(report.delivered, 1, "u2 has no address: no mail ({report:?})");
    notifier.notify(&[alert("a2", "u1", AlertState::Cleared)]).await.unwrap();
    assert_eq!(notifier.notify(&[alert("a1", "u1", AlertState::Raised)]).await.unwrap().already, 1);

    let mail = smtp.messages();
    assert_eq!(mail.len(), 2, "{mail:?}");
    let m = &mail[0];
    assert_eq!(m["envelope_to"], json!(["ann@example.com"]));
    assert_eq!(m["to"], "ann@example.com");
    assert_eq!(m["from"], "riskstream <alerts@riskstream.example>");
    assert_eq!(m["subject"], "[riskstream] HIGH Portfolio drift: account acc-<7>");
    assert_eq!(m["content_type"], "multipart/alternative");
    assert_eq!(m["message_id"], format!("<{}@riskstream>", message_id("a1", "u/u1")));
    let text = m["text"].as_str().unwrap();
    for needle in [
        "Portfolio drift on account acc-<7> (raised, HIGH priority)",
        "VTI is 31.25% from its 20% target & outside its band",
        "Largest drift from target: 0.3125",
        "Band: 0.25",
        "At: 2026-01-05T14:30:00Z",
        "The account: https://risk.example.com/v1/accounts/acc-<7>",
        "Why it fired: https://risk.example.com/v1/alerts/a1/explain",
    ] {
        assert!(text.contains(needle), "plain body lacks {needle:?}:\n{text}");
    }
    let html = m["html"].as_str().unwrap();
    for needle in [
        "<h2>Portfolio drift on account acc-&lt;7&gt;</h2>",
        "31.25% from its 20% target &amp; outside its band",
        "<td>0.3125</td>",
        "<a href=\"https://risk.example.com/v1/alerts/a1/explain\">Why it fired</a>",
    ] {
        assert!(html.contains(needle), "HTML body lacks {needle:?}:\n{html}");
    }
    assert_eq!(mail[1]["subject"], "[riskstream] Cleared: HIGH Portfolio drift: account acc-<7>");
}

#[test]
fn the_config_is_checked_naming_the_field() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let with = |url: &str, from: &str| {
        let config = EmailConfig {
            smtp_url: url.into(),
            from: from.into(),
            link_base: "https://x.example".into(),
            ca_file: None,
        };
        let _guard = rt.enter();
        EmailChannel::new(&config, Duration::from_secs(1)).err()
    };
    assert!(with("http://mail.example", "a@b.example").unwrap().contains("expected smtp or smtps"));
    assert!(with("smtp://mail.example", "not an address").unwrap().contains("email.from"));
    assert!(with("smtps://mail.example:465", "riskstream <a@b.example>").is_none());
    let bad: Preferences = serde_json::from_value(json!({ "email": "ann-at-example.com" })).unwrap();
    assert!(bad.validate().unwrap_err().contains("email: `ann-at-example.com` is not an e-mail address"));
}

/// A daily digest by e-mail goes out at 08:00 on the user's clock (Paris: 07:00 UTC
/// in November, CET being UTC+1), one message listing the day's alerts in both bodies.
#[tokio::test]
async fn a_daily_digest_is_mailed_at_eight_on_the_users_clock() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(dir.path());
    let ledger = Ledger::open(&dir.path().join("n.sqlite")).await.unwrap();
    let store = PreferenceStore::new(ledger.clone(), NotifierKey::load_or_create(&dir.path().join("k")).unwrap());
    let prefs: Preferences = serde_json::from_value(json!({
        "email": "ann@example.com", "timezone": "Europe/Paris", "digest": { "email": { "every": "daily" } }
    }))
    .unwrap();
    prefs.validate().unwrap();
    store.put("u1", &prefs, 0).await.unwrap();
    let config = EmailConfig {
        smtp_url: format!("smtp://127.0.0.1:{}", smtp.port()),
        from: "riskstream <alerts@riskstream.example>".into(),
        link_base: "https://risk.example.com".into(),
        ca_file: None,
    };
    let email = EmailChannel::new(&config, Duration::from_secs(5)).unwrap();
    // 2023-11-14T22:13:20Z: 23:13 in Paris.
    let clock = Arc::new(common::TestClock::new());
    let notifier = Notifier::with_clock(ledger.clone(), vec![Arc::new(email)], clock.clone()).with_preferences(store);

    let other = Alert {
        account_id: "acc-9".into(),
        message: "VEA is 12% from target".into(),
        ..alert("a2", "u1", AlertState::Raised)
    };
    let report = notifier.notify(&[alert("a1", "u1", AlertState::Raised), other]).await.unwrap();
    assert_eq!(report.digested, 2, "{report:?}");
    clock.set_ms("2023-11-15T06:59:00Z".parse::<jiff::Timestamp>().unwrap().as_millisecond());
    assert_eq!(notifier.send_digests().await.unwrap().digested, 0, "07:59 in Paris");
    clock.set_ms("2023-11-15T07:00:00Z".parse::<jiff::Timestamp>().unwrap().as_millisecond());
    assert_eq!(notifier.send_digests().await.unwrap().digested, 1, "08:00 in Paris");

    let mail = smtp.messages();
    assert_eq!(mail.len(), 1, "{mail:?}");
    let m = &mail[0];
    assert_eq!(m["to"], "ann@example.com");
    assert_eq!(m["subject"], "[riskstream] 2 alerts");
    let id = riskstream_notifier::digest_id("email", "u/u1", ["a1", "a2"]);
    assert_eq!(m["message_id"], format!("<{}@riskstream>", message_id(&id, "u/u1")));
    let text = m["text"].as_str().unwrap();
    for needle in [
        "Portfolio drift on account acc-<7> (raised): VTI is 31.25% from its 20% target & outside its band",
        "Portfolio drift on account acc-9 (raised): VEA is 12% from target",
        "Why it fired: https://risk.example.com/v1/alerts/a2/explain",
    ] {
        assert!(text.contains(needle), "plain body lacks {needle:?}:\n{text}");
    }
    let html = m["html"].as_str().unwrap();
    assert!(html.contains("<b>Portfolio drift</b> on account acc-&lt;7&gt;"), "{html}");
    assert_eq!(html.matches("<li>").count(), 2, "{html}");
}

/// A private CA and a certificate it signed for 127.0.0.1, made with the openssl CLI:
/// (ca.pem, server.pem, server.key).
fn test_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=riskstream test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"))
}

/// A server offering STARTTLS gets the mail over TLS when its certificate is trusted
/// (here through `ca_file`, a private CA), and none when it is not: the delivery
/// waits for a retry, never falling back to plain text.
#[tokio::test]
async fn starttls_is_used_when_offered_and_an_untrusted_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_certificates(dir.path());
    let smtp = Smtp::start_tls(dir.path(), &cert, &key);
    let ledger = Ledger::open(&dir.path().join("n.sqlite")).await.unwrap();
    let store = PreferenceStore::new(ledger.clone(), NotifierKey::load_or_create(&dir.path().join("k")).unwrap());
    let prefs: Preferences = serde_json::from_value(json!({ "email": "ann@example.com" })).unwrap();
    store.put("u1", &prefs, 0).await.unwrap();
    let config = |ca_file: Option<PathBuf>| EmailConfig {
        smtp_url: format!("smtp://127.0.0.1:{}", smtp.port()),
        from: "riskstream <alerts@riskstream.example>".into(),
        link_base: "https://risk.example.com".into(),
        ca_file,
    };
    let mailer = |ca_file| {
        let email = EmailChannel::new(&config(ca_file), Duration::from_secs(5)).unwrap();
        Notifier::new(ledger.clone(), vec![Arc::new(email)]).with_preferences(store.clone())
    };

    let report = mailer(None).notify(&[alert("a1", "u1", AlertState::Raised)]).await.unwrap();
    assert_eq!(report.retrying, 1, "an untrusted certificate: not sent ({report:?})");
    let error = ledger.attempts("a1").await.unwrap()[0].error.clone().unwrap();
    assert!(error.starts_with("SMTP: "), "{error}");
    assert!(smtp.messages().is_empty());

    let report = mailer(Some(ca)).notify(&[alert("a2", "u1", AlertState::Raised)]).await.unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");
    let mail = smtp.messages();
    assert_eq!((mail.len(), &mail[0]["tls"]), (1, &json!(true)), "{mail:?}");
    let missing = EmailConfig { ca_file: Some(dir.path().join("nope.pem")), ..config(None) };
    assert!(EmailChannel::new(&missing, Duration::from_secs(1)).err().unwrap().starts_with("email.ca_file: "));
}
