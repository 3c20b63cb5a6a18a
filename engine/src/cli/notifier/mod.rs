//! `riskstream notifier ...`: the notifier as a service of its own on the Kafka
//! alerts topic (`run`, service.rs), the operators' commands on the notifier's
//! ledger (dead letters listed and re-driven, endpoints listed and enabled), and
//! the notifier beside the engine in embedded mode ([`start`]). The commands open
//! the ledger itself, so they work with the notifier running or stopped.

mod embedded;
mod service;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use riskstream_engine::config::{LedgerUrl, NotifierLedger};
use riskstream_engine::EngineConfig;
use riskstream_notifier::{Clock, DeadLetterQuery, Ledger, NotifierError, SystemClock};
use riskstream_schemas::Timestamp;

pub use embedded::start;

#[derive(Args, Debug)]
pub struct NotifierArgs {
    /// TOML config file: its `data_dir`, `[notifier] ledger` and `ledger_url` name the ledger.
    #[arg(long, env = "RISKSTREAM_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Data directory whose ledger to use (`<data_dir>/notifier.sqlite`). Default:
    /// `data_dir` of --config, else ./riskstream-data.
    #[arg(long, env = "RISKSTREAM_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// The ledger file itself, over --data-dir and the config.
    #[arg(long, global = true, conflicts_with = "ledger_url")]
    pub ledger: Option<PathBuf>,
    /// The ledger on PostgreSQL (`postgres://user:password@host/database`), over
    /// the config; prefer the environment variable, a flag shows in the process list.
    #[arg(long, env = "RISKSTREAM_NOTIFIER_LEDGER_URL", hide_env_values = true, global = true)]
    pub ledger_url: Option<LedgerUrl>,
    #[command(subcommand)]
    pub command: NotifierCommand,
}

#[derive(Subcommand, Debug)]
pub enum NotifierCommand {
    /// Run the notifier as a service of its own (distributed mode): it reads the
    /// Kafka alerts topic in a consumer group of its own, so any number of notifiers
    /// share the work; with the ledger on PostgreSQL (`--ledger-url`) they share one
    /// ledger. Offsets are committed once the ledger holds the alerts. Serves the
    /// inboxes, preferences and dead letters (admin token), /metrics and /readyz.
    Run(service::ServeArgs),
    /// List the deliveries given up (after the last retry, a 4xx, a disabled
    /// endpoint), oldest first: when, channel/endpoint, alert, attempts, why.
    DeadLetters(DeadLetterArgs),
    /// Send dead letters again: they go back to the retry queue, due now, each with
    /// the whole backoff schedule (a running notifier picks them up within a second).
    /// Say which: filters, or --all.
    Redrive(RedriveArgs),
    /// List the endpoints that failed or were disabled (a 410, or failing longer
    /// than `[notifier] disable_endpoint_after_hours`).
    Endpoints,
    /// Enable a disabled endpoint; what it missed stays in the dead letters until re-driven.
    Enable {
        /// The channel, e.g. `webhook`.
        channel: String,
        /// The endpoint's id, e.g. the `id` of a `[[notifier.webhooks]]` entry.
        endpoint: String,
    },
}

/// Which dead letters.
#[derive(Args, Debug, Clone, Default)]
pub struct DeadLetterFilterArgs {
    /// Only this alert.
    #[arg(long)]
    pub alert_id: Option<String>,
    /// Only this channel (`webhook`, `in_app`).
    #[arg(long)]
    pub channel: Option<String>,
    /// Only this endpoint id.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Given up at or after this time (RFC 3339, e.g. 2026-12-05T10:00:00Z).
    #[arg(long)]
    pub from: Option<String>,
    /// Given up before this time (RFC 3339).
    #[arg(long)]
    pub to: Option<String>,
}

impl DeadLetterFilterArgs {
    fn is_empty(&self) -> bool {
        self.alert_id.is_none()
            && self.channel.is_none()
            && self.endpoint.is_none()
            && self.from.is_none()
            && self.to.is_none()
    }

    fn query(&self, limit: Option<i64>) -> DeadLetterQuery {
        DeadLetterQuery {
            alert_id: self.alert_id.clone(),
            channel: self.channel.clone(),
            endpoint: self.endpoint.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            limit,
        }
    }
}

#[derive(Args, Debug)]
pub struct DeadLetterArgs {
    #[command(flatten)]
    pub filter: DeadLetterFilterArgs,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
    /// One JSON object per line (with the whole alert) instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RedriveArgs {
    #[command(flatten)]
    pub filter: DeadLetterFilterArgs,
    /// Every dead letter (without a filter, --all is required).
    #[arg(long, conflicts_with_all = ["alert_id", "channel", "endpoint", "from", "to"])]
    pub all: bool,
}

/// Opens the notifier's ledger, bringing its schema up to date.
pub(crate) async fn open_ledger(at: &NotifierLedger) -> Result<Ledger, NotifierError> {
    match at {
        NotifierLedger::File(path) => Ledger::open(path).await,
        NotifierLedger::Postgres(url) => Ledger::connect(&url.0).await,
    }
}

pub fn notifier(args: NotifierArgs) -> anyhow::Result<ExitCode> {
    if matches!(args.command, NotifierCommand::Run(_)) {
        let cfg = layered(&args)?;
        let NotifierCommand::Run(serve) = args.command else { unreachable!("matched above") };
        return service::serve(cfg, serve);
    }
    let at = ledger_at(&args)?;
    if let NotifierLedger::File(path) = &at {
        if !path.exists() {
            anyhow::bail!(
                "no notifier ledger at {} (check --data-dir or --ledger; `riskstream run` and `demo` create it)",
                path.display()
            );
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let ledger = rt.block_on(open_ledger(&at)).with_context(|| format!("cannot open the notifier ledger {at}"))?;
    match args.command {
        NotifierCommand::DeadLetters(a) => {
            let filter = a.filter.query(Some(a.limit)).filter().map_err(anyhow::Error::msg)?;
            let letters = rt.block_on(ledger.dead_letters(&filter))?;
            for d in &letters {
                if a.json {
                    println!("{}", serde_json::to_string(d)?);
                } else {
                    println!(
                        "{}  {}/{}  alert {} ({}, user {})  {} attempts  {}",
                        time(d.failed_at_ms),
                        d.channel,
                        d.endpoint,
                        d.alert_id,
                        d.alert.kind.as_str(),
                        d.user_id,
                        d.attempts,
                        d.reason
                    );
                }
            }
            if !a.json {
                eprintln!("{} dead letters ({at})", letters.len());
            }
        }
        NotifierCommand::Redrive(a) => {
            if !a.all && a.filter.is_empty() {
                anyhow::bail!(
                    "say which dead letters to re-drive: --alert-id, --channel, --endpoint, --from, --to, or --all"
                );
            }
            let filter = a.filter.query(None).filter().map_err(anyhow::Error::msg)?;
            let n = rt.block_on(ledger.redrive(&filter, SystemClock.now_ms()))?;
            println!("re-driven: {n} (back in the retry queue, due now)");
        }
        NotifierCommand::Endpoints => {
            let endpoints = rt.block_on(ledger.endpoints())?;
            for e in &endpoints {
                let state = match (e.disabled_at_ms, e.failing_since_ms) {
                    (Some(at), _) => format!("disabled since {}", time(at)),
                    (None, Some(since)) => format!("failing since {}", time(since)),
                    (None, None) => "ok".to_string(),
                };
                let reason = e.reason.as_deref().map(|r| format!("  {r}")).unwrap_or_default();
                println!("{}/{}  {state}{reason}", e.channel, e.endpoint);
            }
            if endpoints.is_empty() {
                eprintln!("no endpoint has failed");
            }
        }
        NotifierCommand::Run(_) => unreachable!("served above"),
        NotifierCommand::Enable { channel, endpoint } => {
            if !rt.block_on(ledger.enable(&channel, &endpoint))? {
                anyhow::bail!("endpoint `{endpoint}` of channel `{channel}` is not disabled (see `riskstream notifier endpoints`)");
            }
            println!(
                "enabled {channel}/{endpoint}; re-drive what it missed: riskstream notifier redrive --channel {channel} --endpoint {endpoint}"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn ledger_at(args: &NotifierArgs) -> anyhow::Result<NotifierLedger> {
    if let Some(path) = &args.ledger {
        return Ok(NotifierLedger::File(path.clone()));
    }
    let cfg = layered(args)?;
    cfg.validate()?;
    Ok(cfg.notifier_ledger())
}

/// The config file, then the data dir and the ledger given by flags or environment.
fn layered(args: &NotifierArgs) -> anyhow::Result<EngineConfig> {
    let mut cfg = EngineConfig::load(args.config.as_deref())?;
    if let Some(dir) = &args.data_dir {
        cfg.data_dir = dir.clone();
    }
    if let Some(path) = &args.ledger {
        cfg.notifier.ledger = Some(path.clone());
        cfg.notifier.ledger_url = None;
    }
    if let Some(url) = &args.ledger_url {
        cfg.notifier.ledger_url = Some(url.clone());
    }
    Ok(cfg)
}

fn time(ms: i64) -> Timestamp {
    Timestamp::from_micros(ms.saturating_mul(1_000))
}
