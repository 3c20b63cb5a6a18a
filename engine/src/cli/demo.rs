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
use riskstream_schemas::Alert;

use super::{open_engine, shutdown_signal, EngineArgs};

#[derive(Args, Debug)]
pub struct DemoArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Address of the API.
    #[arg(long, default_value = "127.0.0.1:8080")]
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
    /// rate, an event-time hour (the alert cooldown) passes in about 11 s.
    #[arg(long, default_value_t = 20)]
    pub tick_interval_ms: i64,
    /// Stop after this many seconds (0 = until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub duration: u64,
    /// Delete the data dir first instead of resuming the previous demo.
    #[arg(long)]
    pub fresh: bool,
    /// Bar length of the risk model in event-time seconds. Five-minute bars let a
    /// short demo build the 20 bars of history risk alerts wait for; the simulated
    /// accounts get limits scaled for them.
    #[arg(long, default_value_t = 300)]
    pub bar_secs: i64,
    /// Alert lines printed per second at most (the rest are counted).
    #[arg(long, default_value_t = 5)]
    pub print_per_second: u32,
}

/// Prints alerts to stdout, at most `per_second` lines each second.
struct PrinterSink {
    per_second: u32,
    window: Instant,
    printed: u32,
    skipped: u64,
}

impl AlertSink for PrinterSink {
    fn name(&self) -> &str {
        "stdout"
    }

    fn deliver(&mut self, alerts: &[Alert]) -> Result<(), SinkError> {
        for a in alerts {
            if self.window.elapsed() >= Duration::from_secs(1) {
                if self.skipped > 0 {
                    println!("  ... and {} more alerts", self.skipped);
                }
                self.window = Instant::now();
                self.printed = 0;
                self.skipped = 0;
            }
            if self.printed < self.per_second {
                self.printed += 1;
                let state = format!("{:?}", a.state).to_lowercase();
                let kind = a.kind.as_str();
                println!("ALERT {kind:<13} {state:<7} {:<14} {}  [{}]", a.account_id, a.message, &a.alert_id[..12]);
            } else {
                self.skipped += 1;
            }
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
    let engine = open_engine(&cfg, args.engine.shards.is_some())?;
    let printer = PrinterSink { per_second: args.print_per_second, window: Instant::now(), printed: 0, skipped: 0 };
    let mut sinks: Vec<Box<dyn AlertSink>> = vec![Box::new(printer)];
    if cfg.alert_log {
        sinks.push(Box::new(AlertLogSink::open(cfg.data_dir.join("alerts.jsonl"))?));
    }
    let (wake, outbox) = runtime::start_outbox(Arc::clone(engine.store()), sinks, Arc::clone(engine.metrics()));
    let app = AppState::new(engine, Some(wake));
    app.set_admin_token(cfg.api.admin_token.clone());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let listener = rt.block_on(runtime::bind(args.listen))?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let server =
        rt.spawn(runtime::serve(Arc::clone(&app), listener, cfg.max_body_bytes, wait_for_stop(Arc::clone(&stop))));
    banner(&args, addr, &cfg.data_dir);
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
    let stats = pump.join().map_err(|_| anyhow::anyhow!("the simulator pump panicked"))??;
    let _ = progress.join();
    rt.block_on(server)??;
    app.outbox_wake.lock().unwrap_or_else(|p| p.into_inner()).take();
    let _ = outbox.join();
    summary(&app, stats, &cfg.data_dir);
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_stop(stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn spawn_pump(
    app: Arc<AppState<RocksDbStore>>,
    args: &DemoArgs,
    batch_max: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<anyhow::Result<runtime::PumpStats>> {
    let config = SimulatorConfig {
        seed: args.seed,
        symbols: args.symbols,
        accounts: args.accounts,
        positions_per_account: args.positions,
        tick_interval_micros: args.tick_interval_ms.max(1) * 1_000,
        risk_limits: true,
        ..SimulatorConfig::default()
    };
    let rate = (args.rate > 0.0).then_some(args.rate);
    std::thread::spawn(move || {
        let mut source = SimulatorSource::new(config);
        let stats = runtime::pump(&app, &mut source, batch_max, rate, &stop);
        if stats.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        Ok(stats?)
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
            let (events, alerts, accounts) = totals(&app);
            let rate = (events - last.1) as f64 / last.0.elapsed().as_secs_f64();
            eprintln!(
                "[{:>4}s] {events} events ({rate:.0}/s), {accounts} accounts, {alerts} alerts",
                started.elapsed().as_secs()
            );
            last = (Instant::now(), events);
        }
    })
}

fn totals(app: &AppState<RocksDbStore>) -> (u64, u64, usize) {
    let engine = app.read();
    let m = engine.metrics();
    let events = m.events.with_label_values(&["accepted"]).get();
    let alerts = m.raised_by_kind().iter().map(|(_, n)| n).sum();
    (events, alerts, engine.account_count())
}

fn banner(args: &DemoArgs, addr: SocketAddr, dir: &Path) {
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
    eprintln!(
        "  stop with Ctrl-C{}",
        if args.duration > 0 { format!(" (or after {} s)", args.duration) } else { String::new() }
    );
}

fn summary(app: &AppState<RocksDbStore>, stats: runtime::PumpStats, dir: &Path) {
    let (events, alerts, accounts) = totals(app);
    eprintln!(
        "demo stopped: {} items fed this run, {events} events accepted, {accounts} accounts, {alerts} alerts raised",
        stats.items
    );
    let by_kind: Vec<String> =
        app.read().metrics().raised_by_kind().into_iter().map(|(kind, n)| format!("{kind} {n}")).collect();
    if !by_kind.is_empty() {
        eprintln!("raised by kind: {}", by_kind.join(", "));
    }
    // After `make demo` the binary is not on PATH: name the one that ran.
    let exe = std::env::current_exe().map_or_else(|_| "riskstream".to_string(), |p| p.display().to_string());
    eprintln!("check it:  {exe} verify --data-dir {0}", dir.display());
    eprintln!("           {exe} replay --data-dir {0} --check", dir.display());
}
