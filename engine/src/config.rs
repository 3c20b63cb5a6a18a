//! Engine configuration, layered: built-in defaults, then a TOML file
//! (`--config`), then `RISKSTREAM_*` environment variables and CLI flags (clap).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use riskstream_projections::RuleConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Where the event store and projections live.
    pub data_dir: PathBuf,
    /// In-process shards (fixed for the life of a data dir).
    pub shards: u32,
    /// Address of the query and ingest API.
    pub listen: SocketAddr,
    /// Wait for fsync on every commit (survives power loss, not just a crash).
    pub sync_writes: bool,
    /// Largest number of items a source hands over per batch.
    pub batch_max: usize,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Append every delivered alert to `<data_dir>/alerts.jsonl`.
    pub alert_log: bool,
    pub rules: RuleConfig,
    /// Distributed mode: run as one of N instances over Kafka (section `[kafka]`).
    pub kafka: Option<riskstream_connectors::kafka::KafkaConfig>,
    /// The API address other instances and clients reach this one at (default: `listen`).
    pub advertised_url: Option<String>,
    /// Signed checkpoints of the audit log (section `[audit]`).
    pub audit: AuditConfig,
    /// The API's admin routes (section `[api]`).
    pub api: ApiConfig,
    /// Where the per-user keys of personal data live (section `[privacy]`).
    pub privacy: PrivacyConfig,
    /// The notifier beside the engine in embedded mode (section `[notifier]`).
    pub notifier: NotifierConfig,
}

/// The notifier of embedded mode (`riskstream run` and `demo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifierConfig {
    /// Deliver alerts to the users' in-app inboxes (`GET /v1/users/{id}/inbox`).
    pub enabled: bool,
    /// The delivery ledger and inbox, a SQLite file. Default: `<data_dir>/notifier.sqlite`.
    pub ledger: Option<PathBuf>,
    /// The ledger on PostgreSQL instead, `postgres://user:password@host:port/database`,
    /// shared by every notifier that names it; over `ledger`. Prefer the environment
    /// variable `RISKSTREAM_NOTIFIER_LEDGER_URL` to the file (it carries a password).
    pub ledger_url: Option<LedgerUrl>,
    /// Receivers of every alert (`[[notifier.webhooks]]`: `id`, `url`, `secrets`,
    /// `allow_private`), signed per Standard Webhooks.
    pub webhooks: Vec<riskstream_notifier::WebhookConfig>,
    /// A webhook failing this many hours without a success is disabled until an
    /// operator enables it (`riskstream notifier endpoints`); default 120 (5 days).
    pub disable_endpoint_after_hours: u32,
    /// Deliveries in flight at once, across endpoints and to one endpoint (a
    /// delivery mostly waits on the network); default 32.
    pub concurrency: usize,
    /// The key sealing users' preferences (32 bytes, created on first use; keep it
    /// with the ledger's backups, apart from them). Default: the ledger's path with
    /// the extension `.key`.
    pub key: Option<PathBuf>,
    /// Let users' own webhooks and Slack URLs reach private, loopback and
    /// link-local addresses (a private deployment); off, they are refused.
    pub user_webhooks_allow_private: bool,
    /// The SMTP server of the `email` channel (`[notifier.email]`: `smtp_url`,
    /// `from`, `link_base`); none: no e-mail is sent.
    pub email: Option<riskstream_notifier::EmailConfig>,
    /// The SMS provider of the `sms` channel (`[notifier.sms]`: `api_base`, default
    /// Twilio's, `account_sid`, `auth_token`, `from`); none: no text is sent.
    pub sms: Option<riskstream_notifier::SmsConfig>,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        NotifierConfig {
            enabled: true,
            ledger: None,
            ledger_url: None,
            webhooks: Vec::new(),
            disable_endpoint_after_hours: 120,
            concurrency: riskstream_notifier::CONCURRENCY,
            key: None,
            user_webhooks_allow_private: false,
            email: None,
            sms: None,
        }
    }
}

/// The admin routes of the API (`POST /v1/users/{id}/erase`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// The bearer token of the admin routes; none: they answer 403. Prefer the
    /// environment variable `RISKSTREAM_ADMIN_TOKEN` to the file.
    pub admin_token: Option<AdminToken>,
}

/// A secret: compared in constant time by the API, never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AdminToken(pub String);

impl AdminToken {
    /// The shortest token accepted: 128 bits of hex.
    pub const MIN_LEN: usize = 32;
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl std::str::FromStr for AdminToken {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(AdminToken(s.to_string()))
    }
}

/// A PostgreSQL URL: printed with its password masked.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LedgerUrl(pub String);

impl LedgerUrl {
    /// The URL with the password, if any, replaced by `***`.
    pub fn masked(&self) -> String {
        let url = &self.0;
        let Some(start) = url.find("://").map(|i| i + 3) else { return url.clone() };
        let host_at = url[start..].find(['/', '?']).map_or(url.len(), |i| start + i);
        match url[start..host_at].rfind('@').map(|i| start + i) {
            Some(at) => match url[start..at].find(':').map(|i| start + i) {
                Some(colon) => format!("{}:***{}", &url[..colon], &url[at..]),
                None => url.clone(),
            },
            None => url.clone(),
        }
    }
}

impl std::fmt::Debug for LedgerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LedgerUrl({})", self.masked())
    }
}

impl std::str::FromStr for LedgerUrl {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(LedgerUrl(s.to_string()))
    }
}

/// Where the notifier's ledger is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifierLedger {
    /// A SQLite file (embedded).
    File(PathBuf),
    /// A PostgreSQL database, which several notifiers can share.
    Postgres(LedgerUrl),
}

impl std::fmt::Display for NotifierLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotifierLedger::File(path) => write!(f, "{}", path.display()),
            NotifierLedger::Postgres(url) => f.write_str(&url.masked()),
        }
    }
}

/// Personal data (docs/EVENTS.md, "Personal data").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// The key store: a RocksDB of the per-user keys that seal personal fields, outside
    /// the event store and its snapshots. Default: `<data_dir>/keys`.
    pub key_dir: Option<PathBuf>,
}

/// Signed checkpoints and snapshots (docs/AUDIT.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Sign a checkpoint of a shard every this many records (0: not by count).
    pub checkpoint_every: u64,
    /// Also sign one when a shard's event time has moved this many seconds past its
    /// last checkpoint (0: not by time), so a quiet shard is still checkpointed.
    pub checkpoint_every_secs: i64,
    /// The Ed25519 signing key (hex of its 32-byte seed); generated there, readable
    /// by its owner only, when absent. Default: `<data_dir>/checkpoint.key`.
    pub signing_key: Option<PathBuf>,
    /// Take a snapshot (a copy of the data dir plus a signed checkpoint per shard)
    /// every this many records over all shards (0: never).
    pub snapshot_every: u64,
    /// Snapshots kept; older ones are removed.
    pub snapshots_keep: usize,
    /// Where snapshots go. Default: `<data_dir>/snapshots` (same disk: hard links).
    pub snapshot_dir: Option<PathBuf>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            checkpoint_every: 100_000,
            checkpoint_every_secs: 3_600,
            signing_key: None,
            snapshot_every: 1_000_000,
            snapshots_keep: 3,
            snapshot_dir: None,
        }
    }
}

impl EngineConfig {
    /// Where the checkpoint signing key lives.
    pub fn signing_key_path(&self) -> PathBuf {
        self.audit.signing_key.clone().unwrap_or_else(|| self.data_dir.join("checkpoint.key"))
    }

    /// Where snapshots live.
    pub fn snapshot_dir(&self) -> PathBuf {
        self.audit.snapshot_dir.clone().unwrap_or_else(|| self.data_dir.join("snapshots"))
    }

    /// Where the notifier's ledger and inboxes live.
    pub fn notifier_ledger(&self) -> NotifierLedger {
        match &self.notifier.ledger_url {
            Some(url) => NotifierLedger::Postgres(url.clone()),
            None => NotifierLedger::File(self.notifier_ledger_file()),
        }
    }

    fn notifier_ledger_file(&self) -> PathBuf {
        self.notifier.ledger.clone().unwrap_or_else(|| self.data_dir.join("notifier.sqlite"))
    }

    /// The key sealing the notifier's preferences: beside the ledger file, or in
    /// the data dir when the ledger is on PostgreSQL (every notifier sharing that
    /// ledger needs the same key).
    pub fn notifier_key(&self) -> PathBuf {
        self.notifier.key.clone().unwrap_or_else(|| match self.notifier.ledger_url {
            Some(_) => self.data_dir.join("notifier.key"),
            None => self.notifier_ledger_file().with_extension("key"),
        })
    }

    /// Where the per-user keys of personal data live.
    pub fn key_dir(&self) -> PathBuf {
        self.privacy.key_dir.clone().unwrap_or_else(|| self.data_dir.join("keys"))
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            data_dir: PathBuf::from("riskstream-data"),
            shards: 4,
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            sync_writes: false,
            batch_max: 20_000,
            max_body_bytes: 16 * 1024 * 1024,
            alert_log: true,
            rules: RuleConfig::default(),
            kafka: None,
            advertised_url: None,
            audit: AuditConfig::default(),
            api: ApiConfig::default(),
            privacy: PrivacyConfig::default(),
            notifier: NotifierConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("config file {path} is invalid: {reason}")]
    Parse { path: String, reason: String },
    #[error("invalid setting `{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl EngineConfig {
    /// Defaults overlaid with the TOML file at `path`, if given.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else { return Ok(Self::default()) };
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Read { path: path.display().to_string(), reason: e.to_string() })?;
        toml::from_str(&text)
            .map_err(|e| ConfigError::Parse { path: path.display().to_string(), reason: e.to_string() })
    }

    /// Checks the final configuration once, after every layer was applied.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| Err(ConfigError::Invalid { field, reason: reason.to_string() });
        if self.shards == 0 || self.shards > 1024 {
            return invalid("shards", "must be between 1 and 1024");
        }
        if self.batch_max == 0 {
            return invalid("batch_max", "must be positive");
        }
        let r = &self.rules;
        let unit = |d: rust_decimal::Decimal| d > rust_decimal::Decimal::ZERO && d <= rust_decimal::Decimal::ONE;
        if !unit(r.band_abs) || !unit(r.band_rel) || !unit(r.max_position_weight) || !unit(r.market_move) {
            return invalid("rules", "band_abs, band_rel, max_position_weight and market_move must be in (0, 1]");
        }
        if r.hysteresis < rust_decimal::Decimal::ZERO || r.hysteresis >= rust_decimal::Decimal::ONE {
            return invalid("rules.hysteresis", "must be in [0, 1)");
        }
        if r.cooldown_secs < 0 {
            return invalid("rules.cooldown_secs", "must not be negative");
        }
        if let Some(problem) = r.risk.problems().into_iter().next() {
            return invalid("rules.risk", &problem);
        }
        if let Some(problem) = r.tax.problems().into_iter().next() {
            return invalid("rules.tax", &problem);
        }
        if let Some(url) = &self.notifier.ledger_url {
            if !(url.0.starts_with("postgres://") || url.0.starts_with("postgresql://")) {
                return invalid(
                    "notifier.ledger_url",
                    "must be a PostgreSQL URL, postgres://user:password@host/database",
                );
            }
        }
        if self.notifier.disable_endpoint_after_hours == 0 {
            return invalid("notifier.disable_endpoint_after_hours", "must be at least 1");
        }
        if self.audit.checkpoint_every_secs < 0 {
            return invalid("audit.checkpoint_every_secs", "must not be negative (0 turns it off)");
        }
        if self.audit.snapshots_keep == 0 {
            return invalid("audit.snapshots_keep", "must be at least 1 (set snapshot_every = 0 for no snapshots)");
        }
        if self.api.admin_token.as_ref().is_some_and(|t| t.0.trim().len() < AdminToken::MIN_LEN) {
            return invalid(
                "api.admin_token",
                "must have at least 32 characters (a random secret, e.g. `openssl rand -hex 32`)",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ledger_url_is_shown_without_its_password_and_must_be_postgres() {
        let url = LedgerUrl("postgres://notifier:s3cret@db.internal:5432/riskstream?sslmode=require".into());
        assert_eq!(url.masked(), "postgres://notifier:***@db.internal:5432/riskstream?sslmode=require");
        assert!(!format!("{url:?}").contains("s3cret"));
        let plain = LedgerUrl("postgres://notifier@127.0.0.1/riskstream".into());
        assert_eq!(plain.masked(), plain.0, "nothing to mask");
        let mut cfg = EngineConfig::default();
        cfg.notifier.ledger_url = Some(LedgerUrl("mysql://x@h/db".into()));
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("notifier.ledger_url") && err.contains("PostgreSQL"), "{err}");
        cfg.notifier.ledger_url = Some(url);
        assert_eq!(cfg.notifier_key(), cfg.data_dir.join("notifier.key"), "one key per data dir, not per URL");
    }

    #[test]
    fn file_overrides_defaults_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rs.toml");
        std::fs::write(&path, "shards = 2\n[rules]\ncooldown_secs = 60\n").unwrap();
        let cfg = EngineConfig::load(Some(&path)).unwrap();
        assert_eq!(cfg.shards, 2);
        assert_eq!(cfg.rules.cooldown_secs, 60);
        assert_eq!(cfg.rules.band_abs, RuleConfig::default().band_abs);
        std::fs::write(&path, "shard = 2\n").unwrap();
        let err = EngineConfig::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("unknown field `shard`"), "{err}");
    }

    #[test]
    fn the_example_config_parses_to_the_defaults() {
        // The directory the test runner sets at run time, not the one this binary was built in.
        let dir = std::env::var_os("CARGO_MANIFEST_DIR").map(std::path::PathBuf::from);
        let path = dir.unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()).join("../deploy/riskstream.toml");
        let cfg = EngineConfig::load(Some(&path)).unwrap();
        assert_eq!(cfg.rules, RuleConfig::default(), "deploy/riskstream.toml shows the defaults");
        assert_eq!(cfg.audit, AuditConfig::default(), "deploy/riskstream.toml shows the [audit] defaults");
        assert_eq!(cfg.api, ApiConfig::default(), "deploy/riskstream.toml leaves the admin token unset");
        assert_eq!(cfg.privacy, PrivacyConfig::default(), "deploy/riskstream.toml shows the [privacy] defaults");
        cfg.validate().unwrap();
    }

    #[test]
    fn risk_settings_are_validated_by_name() {
        let mut cfg = EngineConfig::default();
        cfg.rules.risk.lambda = rust_decimal::Decimal::ONE;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("risk.lambda must be in (0, 1)"), "{err}");
        let mut cfg = EngineConfig::default();
        cfg.rules.risk.bar_secs = 0;
        assert!(cfg.validate().unwrap_err().to_string().contains("risk.bar_secs"));
    }

    #[test]
    fn the_admin_token_is_long_enough_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rs.toml");
        let token = "0123456789abcdef0123456789abcdef";
        std::fs::write(&path, format!("[api]\nadmin_token = \"{token}\"\n[privacy]\nkey_dir = \"/k\"\n")).unwrap();
        let cfg = EngineConfig::load(Some(&path)).unwrap();
        assert_eq!(cfg.api.admin_token, Some(AdminToken(token.into())));
        assert_eq!(cfg.key_dir(), PathBuf::from("/k"));
        cfg.validate().unwrap();
        assert!(!format!("{cfg:?}").contains(token));
        let short = EngineConfig { api: ApiConfig { admin_token: Some(AdminToken("secret".into())) }, ..cfg };
        assert!(short.validate().unwrap_err().to_string().contains("`api.admin_token`"));
        assert_eq!(EngineConfig::default().key_dir(), PathBuf::from("riskstream-data/keys"));
    }

    #[test]
    fn validation_names_the_setting() {
        let cfg = EngineConfig { shards: 0, ..Default::default() };
        assert!(cfg.validate().unwrap_err().to_string().contains("`shards`"));
    }
}
