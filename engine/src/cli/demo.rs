//! `riskstream demo`: the engine on embedded defaults, fed by the seeded simulator,
//! printing alerts as they fire and a progress line, with the API up.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use riskstream_connectors::{AlertLogSink, AlertSink, SimulatorConfig, SimulatorSource, SinkError};
use riskstream_engine::handle::AppState;
use riskstream_engine::runtime;
use riskstream_engine::store::RocksDbStore;
use riskstream_schemas::{Alert, AlertKind, AlertState, MICROS_PER_DAY};

use super::{open_engine, shutdown_signal, EngineArgs};

#[derive(Args, Debug)]
pub struct DemoArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Address of the API.
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = super::parse_listen, value_name = "HOST:PORT")]
    pub listen: SocketAddr,
    /// Securities in the simulated market.
    #[arg(long, default_value_t = 200)]
    pub symbols: usize,
    /// Simulated accounts (two per user).
    #[arg(long, default_value_t = 1_000)]
    pub accounts: usize,
    /// Positions per account.
    #[arg(long, default_value_t = 10)]
    pub positions: usize,
    /// Seed of the simulation: the same seed gives the same events.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Events per second fed to the engine (wall clock).
    #[arg(long, default_value_t = 20_000.0)]
    pub rate: f64,
    /// Event time between two simulated ticks, in milliseconds: with the default
    /// rate, an event-time hour (the alert cooldown) passes in about 11 s and a
    /// simulated day in about 4 minutes.
    #[arg(long, default_value_t = 20)]
    pub tick_interval_ms: i64,
    /// One account event (a deposit, a sale or a rebalancing trade) every this many
    /// ticks: about nine per account per simulated day with the defaults [default:
    /// 500, 5 with --stress].
    #[arg(long)]
    pub trade_every: Option<u64>,
    /// A market shock (one symbol, or one time in five a whole sector, moving
    /// 12-25%) every this many ticks: about four per simulated day [default:
    /// 1000000, 10000 with --stress].
    #[arg(long)]
    pub shock_every: Option<u64>,
    /// The load tester's stress profile: a shock every 10,000 ticks, an account event
    /// every 5, VaR limits at the typical VaR (dozens of alerts per account).
    #[arg(long)]
    pub stress: bool,
    /// Stop after this many seconds (0 = until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub duration: u64,
    /// Delete the data dir first instead of resuming the previous demo.
    #[arg(long)]
    pub fresh: bool,
    /// Bar length of the risk model in event-time seconds. Five-minute bars let a
    /// short demo build the 20 bars of history risk alerts wait for (about 20 s);
    /// the simulated accounts' VaR limits are scaled to the bar length.
    #[arg(long, default_value_t = 300)]
    pub bar_secs: i64,
    /// Do not start the notifier (it delivers alerts to the simulated users' in-app
    /// inboxes, GET /v1/users/{id}/inbox, and posts every alert, signed, to a local
    /// webhook receiver, GET /v1/demo/webhook).
    #[arg(long)]
    pub no_notifier: bool,
    /// Alert lines printed per second at most (the rest are counted). Alerts raised
    /// by one event for many accounts (a market move) print as one line.
    #[arg(long, default_value_t = 5)]
    pub print_per_second: u32,
}

/// Prints raised alerts to stdout, at most `per_second` lines each second; the
/// alerts one record raised for many accounts (a market move fanned out to its
/// holders) make one line. Cleared alerts are counted in the progress line.
struct PrinterSink {
    per_second: u32,
    window: Instant,
    printed: u32,
    skipped: u64,
}

impl PrinterSink {
    fn print(&mut self, group: &[&Alert]) {
        if self.window.elapsed() >= Duration::from_secs(1) {
            if self.skipped > 0 {
                println!("  ... and {} more", self.skipped);
            }
            self.window = Instant::now();
            self.printed = 0;
            self.skipped = 0;
        }
        if self.printed >= self.per_second {
            self.skipped += 1;
            return;
        }
        self.printed += 1;
        let a = group[0];
        let who = match group.len() {
            1 => a.account_id.clone(),
            n => format!("{n} accounts"),
        };
        let priority = format!("{:?}", a.priority).to_lowercase();
        println!("ALERT {:<13} {priority:<8} {who:<14} {}  [{}]", a.kind.as_str(), a.message, &a.alert_id[..12]);
    }
}

impl AlertSink for PrinterSink {
    fn name(&self) -> &str {
        "stdout"
    }

    fn deliver(&mut self, alerts: &[Alert]) -> Result<(), SinkError> {
        let raised: Vec<&Alert> = alerts.iter().filter(|a| a.state == AlertState::Raised).collect();
        // A fan-out is consecutive: one rule, one causing record, one message.
        for group in raised.chunk_by(|x, y| x.rule == y.rule && x.caused_by == y.caused_by && x.message == y.message) {
            self.print(group);
        }
        Ok(())
    }
}

pub fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = args.engine.resolve(Some("riskstream-demo"))?;
    cfg.rules.risk.bar_secs = args.bar_secs;
    cfg.validate()?;
    if args.fresh && cfg.data_dir.exists() {
        std::fs::remove_dir_all(&cfg.data_dir)?;
    }
    super::announce_data_dir(&cfg.data_dir);
    let engine = open_engine(&cfg, args.engine.shards.is_some())?;
    let printer = PrinterSink { per_second: args.print_per_second, window: Instant::now(), printed: 0, skipped: 0 };
    let mut sinks: Vec<Box<dyn AlertSink>> = vec![Box::new(printer)];
    if cfg.alert_log {
        sinks.push(Box::new(AlertLogSink::open(cfg.data_dir.join("alerts.jsonl"))?));
    }
    cfg.notifier.enabled &= !args.no_notifier;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    // A receiver of the demo's own, so a new user sees signed webhooks delivered.
    let receiver = match cfg.notifier.enabled {
        true => {
            std::fs::create_dir_all(&cfg.data_dir)?;
            let (endpoint, route) = super::demo_receiver::start(&rt, &cfg.data_dir)?;
            cfg.notifier.webhooks.push(endpoint);
            route
        }
        false => axum::Router::new(),
    };
    let routes = super::notifier::start(&cfg, &rt, &mut sinks, engine.metrics().registry())?;
    let (wake, outbox) = runtime::start_outbox(Arc::clone(engine.store()), sinks, Arc::clone(engine.metrics()));
    let app = AppState::new(engine, Some(wake));
    app.set_admin_token(cfg.api.admin_token.clone());
    let extra = routes.mount(Arc::clone(&app)).merge(receiver);
    let listener = rt.block_on(runtime::bind(args.listen))?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let shutdown = wait_for_stop(Arc::clone(&stop));
    let server = rt.spawn(runtime::serve_with(Arc::clone(&app), listener, cfg.max_body_bytes, extra, shutdown));
    banner(&args, addr, &cfg.data_dir, cfg.notifier.enabled);
    let pump = spawn_pump(Arc::clone(&app), &args, cfg.batch_max, Arc::clone(&stop));
    let progress = spawn_progress(Arc::clone(&app), Arc::clone(&stop));
    rt.block_on(async {
        let deadline = async {
            match args.duration {
                0 => std::future::pending::<()>().await,
                s => tokio::time::sleep(Duration::from_secs(s)).await,
            }
        };
        tokio::select! { () = shutdown_signal() => {}, () = deadline => {} }
    });
    stop.store(true, Ordering::Relaxed);
    let fed = pump.join().map_err(|_| anyhow::anyhow!("the simulator pump panicked"))??;
    let _ = progress.join();
    rt.block_on(server)??;
    app.outbox_wake.lock().unwrap_or_else(|p| p.into_inner()).take();
    let _ = outbox.join();
    summary(&app, &fed, &cfg.data_dir);
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_stop(stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the simulator fed this run: the pump's stats and the event time it covered.
struct Fed {
    stats: runtime::PumpStats,
    /// Event time of the steady state simulated this run, in days.
    simulated_days: f64,
}

fn spawn_pump(
    app: Arc<AppState<RocksDbStore>>,
    args: &DemoArgs,
    batch_max: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<anyhow::Result<Fed>> {
    let config = SimulatorConfig {
        seed: args.seed,
        symbols: args.symbols,
        accounts: args.accounts,
        positions_per_account: args.positions,
        tick_interval_micros: args.tick_interval_ms.max(1) * 1_000,
        trade_every: args.trade_every.unwrap_or(if args.stress { 5 } else { 500 }),
        shock_every: args.shock_every.unwrap_or(if args.stress { 10_000 } else { 1_000_000 }),
        risk_limits: true,
        stress: args.stress,
        bar_secs: args.bar_secs,
        ..SimulatorConfig::default()
    };
    let rate = (args.rate > 0.0).then_some(args.rate);
    std::thread::spawn(move || {
        let mut source = SimulatorSource::new(config);
        let stats = runtime::resume(&app, &mut source)
            .and_then(|_| Ok((source.last_ts(), runtime::pump(&app, &mut source, batch_max, rate, &stop)?)));
        if stats.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        let (from, stats) = stats?;
        // Setup events are 1 ms apart: only the steady state is market time.
        let simulated_days = source
            .steady_since()
            .map_or(0.0, |since| (source.last_ts() - from.max(since)).max(0) as f64 / MICROS_PER_DAY as f64);
        Ok(Fed { stats, simulated_days })
    })
}

fn spawn_progress(app: Arc<AppState<RocksDbStore>>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut last = (Instant::now(), 0u64);
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(250));
            if last.0.elapsed() < Duration::from_secs(2) {
                continue;
            }
            let (events, raised, cleared, accounts) = totals(&app);
            let rate = (events - last.1) as f64 / last.0.elapsed().as_secs_f64();
            eprintln!(
                "[{:>4}s] {events} events ({rate:.0}/s), {accounts} accounts, {raised} alerts raised, {cleared} cleared",
                started.elapsed().as_secs()
            );
            last = (Instant::now(), events);
        }
    })
}

/// Events accepted, alerts raised and cleared this run, accounts.
fn totals(app: &AppState<RocksDbStore>) -> (u64, u64, u64, usize) {
    let engine = app.read();
    let m = engine.metrics();
    let events = m.events.with_label_values(&["accepted"]).get();
    let count = |state: &str| -> u64 {
        AlertKind::ALL.iter().map(|k| m.alerts.with_label_values(&[k.as_str(), state]).get()).sum()
    };
    (events, count("raised"), count("cleared"), engine.account_count())
}

fn banner(args: &DemoArgs, addr: SocketAddr, dir: &Path, notifier: bool) {
    eprintln!(
        "riskstream demo: {} symbols, {} accounts x {} positions, seed {}, {} events/s",
        args.symbols, args.accounts, args.positions, args.seed, args.rate
    );
    eprintln!("  data dir   {}", dir.display());
    eprintln!("  API        http://{addr}  (try: curl http://{addr}/v1/accounts/acc-000001)");
    eprintln!("  risk       curl http://{addr}/v1/accounts/acc-000001/risk");
    eprintln!("  alerts     curl 'http://{addr}/v1/alerts?since=0&limit=20'");
    eprintln!("  tax        curl http://{addr}/v1/accounts/acc-000001/lots   (also /realized?year=, /harvest)");
    eprintln!("             curl http://{addr}/v1/users/usr-000001/wash-sales");
    if notifier {
        eprintln!("  inbox      curl http://{addr}/v1/users/usr-000001/inbox   (alerts delivered in-app, read them:");
        eprintln!("             curl -X POST http://{addr}/v1/users/usr-000001/inbox/<alert_id>/read)");
        eprintln!(
            "  webhooks   curl http://{addr}/v1/demo/webhook   (every alert POSTed, signed, to a local receiver)"
        );
    }
    eprintln!(
        "  stop with Ctrl-C{}",
        if args.duration > 0 { format!(" (or after {} s)", args.duration) } else { String::new() }
    );
}

fn summary(app: &AppState<RocksDbStore>, fed: &Fed, dir: &Path) {
    let (events, raised, cleared, accounts) = totals(app);
    eprintln!(
        "demo stopped: {} items fed this run, {events} events accepted, {accounts} accounts, \
         {raised} alerts raised, {cleared} cleared, over {:.2} simulated days",
        fed.stats.items, fed.simulated_days
    );
    let by_kind = app.read().metrics().raised_by_kind();
    if !by_kind.is_empty() && accounts > 0 && fed.simulated_days > 0.0 {
        let per = |n: u64| n as f64 / accounts as f64 / fed.simulated_days;
        let shown: Vec<String> = by_kind.iter().map(|(kind, n)| format!("{kind} {:.2}", per(*n))).collect();
        eprintln!("raised per account per simulated day: {}", shown.join(", "));
    }
    // After `make demo` the binary is not on PATH: name the one that ran.
    let exe = std::env::current_exe().map_or_else(|_| "riskstream".to_string(), |p| p.display().to_string());
    eprintln!("check it:  {exe} verify --data-dir {0}", dir.display());
    eprintln!("           {exe} replay --data-dir {0} --check", dir.display());
}
