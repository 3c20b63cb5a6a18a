//! `riskstream-loadtest`: a seeded workload (the simulator) through the embedded
//! pipeline on a real RocksDB store. Reports sustained events/s of the steady
//! state (ticks dominating) and tick-to-alert latency percentiles, then runs the
//! same workload with the full-recompute baseline and reports the ratio.
//!
//! Latency of an alert = commit of its batch - creation of the oldest event in
//! that batch (the generator stamps chunks as it makes them), so it includes
//! queueing and batching. Unpaced runs saturate the engine and the latency is a
//! saturation figure; pass `--rate` to measure latency at a given load. Alerts come
//! in bursts (the first ticks after the setup, each shock), so the run also reports
//! every event's tick-to-commit, each batch's wall time, and both latencies again
//! for the batches past `--settle-secs` (see `latency.rs`). The restart and the
//! replay check that follow the run are in `restart.rs`.
//!
//! With `--query-rate Q` the API is served over HTTP during the measured run and a
//! reader times `GET /v1/accounts/{id}` at Q queries/s (see `queries.rs`).
//!
//! With `--kafka BROKERS` the same workload goes through a broker to `riskstream run`
//! instances instead (see `kafka.rs`).

mod kafka;
mod latency;
mod notifier;
mod queries;
mod restart;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use crossbeam_channel::{bounded, Receiver};
use hdrhistogram::Histogram;
use latency::{Latencies, Settled};
use restart::{release_freed_memory, reopen_in_fresh_process, reopen_only, replay_log, StoredDigests};
use riskstream_connectors::{SimulatorConfig, SimulatorSource};
use riskstream_engine::handle::AppState;
use riskstream_engine::metrics::Metrics;
use riskstream_engine::store::RocksDbStore;
use riskstream_engine::Engine;
use riskstream_projections::RuleConfig;
use riskstream_schemas::json::Decoded;
use riskstream_schemas::{Event, EventBody};

/// The same allocator as the `riskstream` binary, so the figures match it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug, Clone)]
#[command(name = "riskstream-loadtest", about = "Throughput and tick-to-alert latency of the embedded pipeline")]
struct Args {
    #[arg(long, default_value_t = 10_000)]
    accounts: usize,
    #[arg(long, default_value_t = 20)]
    positions: usize,
    #[arg(long, default_value_t = 2_000)]
    symbols: usize,
    /// Hold symbols by Zipf popularity with this exponent (symbol 0 the most held;
    /// 1.0 is the usual choice) instead of uniformly.
    #[arg(long)]
    zipf: Option<f64>,
    /// In-process shards.
    #[arg(long, default_value_t = 2)]
    shards: u32,
    /// Most events per commit.
    #[arg(long, default_value_t = 50_000)]
    batch: usize,
    /// Steady-state events to measure (after the setup phase).
    #[arg(long, default_value_t = 2_000_000)]
    events: u64,
    /// One account event (trade or deposit) per this many ticks.
    #[arg(long, default_value_t = 20)]
    trade_every: u64,
    /// A market shock every this many ticks (moves a symbol or a sector 12-25%).
    #[arg(long, default_value_t = 100_000)]
    shock_every: u64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Offered load in events/s (default: as fast as the engine takes them).
    #[arg(long)]
    rate: Option<f64>,
    /// The risk profile: the EWMA covariance closes a bar every `--bar-secs` of event
    /// time (ticks are 1 ms of event time apart, so the default 2M events span ~33
    /// one-minute bars) and every account gets VaR, CVaR, drawdown, daily-loss,
    /// sector and leverage limits. Without it bars are daily and never close here.
    #[arg(long)]
    risk: bool,
    /// Bar length of the risk profile, in event-time seconds.
    #[arg(long, default_value_t = 60)]
    bar_secs: i64,
    /// Skip the full-recompute baseline run.
    #[arg(long)]
    no_baseline: bool,
    /// Keep the data dir of the incremental run here (must not exist yet), e.g. to
    /// time `riskstream query --data-dir DIR /healthz` (a reopen) afterwards.
    #[arg(long)]
    keep_data_dir: Option<std::path::PathBuf>,
    /// Sign a checkpoint of each shard every this many of its records, as `riskstream
    /// run` does by default every 100,000 (default here: none, to measure the pipeline
    /// alone).
    #[arg(long)]
    checkpoint_every: Option<u64>,
    /// Also report the latencies of the batches that start this many seconds into the
    /// measured run: the first second holds every account's first evaluation after
    /// the setup (drift raised, marks and day rolled), a backlog steady running does
    /// not have.
    #[arg(long, default_value_t = 1.0)]
    settle_secs: f64,
    /// Only open this data dir and print how long that took (a restart: a fresh
    /// process, as the measured run spawns it).
    #[arg(long, hide = true)]
    reopen_only: Option<std::path::PathBuf>,
    /// Print the results as one JSON object as well.
    #[arg(long)]
    json: bool,
    /// Produce the workload to these Kafka brokers and measure `riskstream run`
    /// instances consuming it (distributed mode) instead of the embedded pipeline.
    /// `--events` then counts every event, setup included.
    #[arg(long)]
    kafka: Option<String>,
    /// Serve the API on 127.0.0.1 during the measured (incremental) run and time
    /// `GET /v1/accounts/{id}` at this many queries/s over HTTP.
    #[arg(long)]
    query_rate: Option<f64>,
    /// Measure the notifier instead: this many webhook deliveries unpaced, then
    /// latency at --notifier-rate (see notifier.rs).
    #[arg(long)]
    notifier: Option<u64>,
    /// Alerts/s offered in the notifier's latency run (for 10 s).
    #[arg(long, default_value_t = 1_000.0)]
    notifier_rate: f64,
    /// The notifier's ledger on this PostgreSQL database (`postgres://user@host/db`)
    /// instead of a SQLite file in a temp dir; alert ids are new each run.
    #[arg(long)]
    notifier_ledger_url: Option<String>,
    /// Distributed mode: the instance counts to measure, one run each.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    instances: Vec<usize>,
}

/// Events made together, stamped when made.
struct Chunk {
    made: Instant,
    events: Vec<Event>,
}

#[derive(Debug, Clone, serde::Serialize)]
struct RunResult {
    mode: &'static str,
    setup_events: u64,
    setup_secs: f64,
    events: u64,
    secs: f64,
    events_per_sec: f64,
    alerts: u64,
    records: u64,
    latency_us_p50: u64,
    latency_us_p99: u64,
    latency_us_p999: u64,
    latency_us_max: u64,
    /// Tick-to-commit of every event (p50, p99, max, microseconds): the wait for its
    /// batch plus the batch, whether or not it raised an alert.
    event_us: (u64, u64, u64),
    /// The same for the batches after `--settle-secs`.
    settled: Settled,
    /// Time to reopen the data dir afterwards in a fresh process (projection load,
    /// no log replay): a restart.
    reopen_secs: f64,
    /// Records of the whole local log replayed in memory from the first (every
    /// shard in parallel, no snapshot), and how long that took.
    replay_records: u64,
    replay_secs: f64,
    positions: usize,
    /// Bar closes of the risk model (shard 0).
    bars: u32,
    by_kind: Vec<(&'static str, u64)>,
    /// Account queries over HTTP during the run (`--query-rate`).
    queries: Option<queries::QueryResult>,
    /// Batches of the run, setup included, and the mean milliseconds per batch of each
    /// stage (`riskstream_stage_seconds`).
    batches: u64,
    stage_ms: Vec<(&'static str, f64)>,
    /// Wall time of each batch of the measured run (ingest call to commit): p50, p99,
    /// max in microseconds, and the events in the slowest batch.
    batch_us: (u64, u64, u64),
    slowest_batch_events: usize,
    /// The measured run's batches end to end, summed (microseconds): over the run's
    /// length, how busy the ingest loop was; over its events, what one costs.
    busy_us: u64,
}

fn simulator(args: &Args) -> SimulatorConfig {
    SimulatorConfig {
        seed: args.seed,
        symbols: args.symbols,
        accounts: args.accounts,
        positions_per_account: args.positions,
        zipf: args.zipf,
        trade_every: args.trade_every,
        shock_every: args.shock_every,
        tick_interval_micros: 1_000,
        risk_limits: args.risk,
        // The workload every figure in docs/BENCHMARKS.md was measured with.
        stress: true,
        ..SimulatorConfig::default()
    }
}

fn rules(args: &Args) -> RuleConfig {
    let mut rules = RuleConfig::default();
    if args.risk {
        rules.risk.bar_secs = args.bar_secs;
    }
    rules
}

/// Makes the steady-state events in chunks of ~1 ms of offered load.
fn spawn_generator(mut source: SimulatorSource, args: &Args) -> Receiver<Chunk> {
    let (total, rate) = (args.events, args.rate);
    let chunk = rate.map_or(1_000, |r| ((r / 1_000.0).ceil() as usize).max(1));
    // Room for two full batches, so a backlog can form and batches can grow.
    let (tx, rx) = bounded::<Chunk>((2 * args.batch / chunk).max(64));
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut sent = 0u64;
        while sent < total {
            if let Some(r) = rate {
                let due = Duration::from_secs_f64(sent as f64 / r);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            let n = chunk.min((total - sent) as usize);
            let made = Instant::now();
            let events: Vec<Event> = (0..n).filter_map(|_| source.next_event()).collect();
            sent += n as u64;
            if tx.send(Chunk { made, events }).is_err() {
                return;
            }
        }
    });
    rx
}

fn items(events: Vec<Event>) -> Vec<Decoded> {
    // Decoded events need no raw text here: nothing in this workload is rejected.
    events.into_iter().enumerate().map(|(index, e)| Decoded { index, raw: String::new(), result: Ok(e) }).collect()
}

/// Feeds the setup phase (listings, accounts, deposits, buys, targets).
fn setup(engine: &mut Engine<RocksDbStore>, source: &mut SimulatorSource, args: &Args) -> anyhow::Result<(u64, f64)> {
    let started = Instant::now();
    let (mut targets_seen, mut n) = (0usize, 0u64);
    let mut batch = Vec::with_capacity(args.batch);
    while targets_seen < args.accounts {
        let event = source.next_event().context("the simulator ended during setup")?;
        targets_seen += usize::from(matches!(event.body, EventBody::TargetAllocationSet(_)));
        batch.push(event);
        n += 1;
        if batch.len() == args.batch {
            engine.ingest("loadtest", None, items(std::mem::take(&mut batch)))?;
        }
    }
    engine.ingest("loadtest", None, items(batch))?;
    Ok((n, started.elapsed().as_secs_f64()))
}

fn run(args: &Args, full_recompute: bool) -> anyhow::Result<RunResult> {
    let temp = tempfile::tempdir()?;
    let dir = match (&args.keep_data_dir, full_recompute) {
        (Some(keep), false) => {
            anyhow::ensure!(!keep.exists(), "{} already exists", keep.display());
            keep.clone()
        }
        _ => temp.path().to_path_buf(),
    };
    let store = Arc::new(RocksDbStore::open(&dir, false)?);
    let mut engine = Engine::open(store, args.shards, rules(args), Arc::new(Metrics::new()))?;
    if let Some(every) = args.checkpoint_every {
        engine.enable_checkpoints(riskstream_engine::audit::CheckpointSigner::from_seed([7; 32]), every)?;
    }
    let mut source = SimulatorSource::new(simulator(args));
    let (setup_events, setup_secs) = setup(&mut engine, &mut source, args)?;
    engine.set_full_recompute(full_recompute);
    // Batches go through the shared state the API reads, as in `riskstream run`.
    let app = AppState::new(engine, None);
    let query_load = match args.query_rate.filter(|_| !full_recompute) {
        Some(rate) => Some(queries::QueryLoad::start(Arc::clone(&app), rate, args.accounts)?),
        None => None,
    };
    let chunks = spawn_generator(source, args);
    let (mut latency, mut settled) = (Latencies::new()?, Latencies::new()?);
    let mut batch_time = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut slowest = (0u64, 0usize);
    let mut busy_us = 0u64;
    let (mut events, mut alerts, mut records) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    let settled_from = started + std::time::Duration::from_secs_f64(args.settle_secs.max(0.0));
    while let Ok(first) = chunks.recv() {
        let oldest = first.made;
        let mut made = vec![(first.made, first.events.len() as u64)];
        let mut batch = first.events;
        while batch.len() < args.batch {
            match chunks.try_recv() {
                Ok(c) => {
                    made.push((c.made, c.events.len() as u64));
                    batch.extend(c.events);
                }
                Err(_) => break,
            }
        }
        events += batch.len() as u64;
        let (size, began) = (batch.len(), Instant::now());
        let report = app.write().ingest("loadtest", None, items(batch))?;
        let took = began.elapsed().as_micros() as u64;
        batch_time.record(took.max(1))?;
        busy_us += took;
        if took > slowest.0 {
            slowest = (took, size);
        }
        latency.record(&made, report.alerts.len() as u64)?;
        if oldest >= settled_from {
            settled.record(&made, report.alerts.len() as u64)?;
        }
        alerts += report.alerts.len() as u64;
        records += report.records_appended as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    let queries = query_load.map(queries::QueryLoad::finish).transpose()?;
    let engine = app.read();
    let positions = (0..args.shards).filter_map(|s| engine.shard(s)).map(|s| s.position_count()).sum();
    let bars = engine.shard(0).map_or(0, |s| s.model().scalars().bars);
    let by_kind = engine.metrics().raised_by_kind();
    let stage = |name| engine.metrics().stage_seconds.with_label_values(&[name]);
    let batches = stage("apply").get_sample_count();
    let stage_ms = ["sequence", "apply", "commit", "audit"]
        .map(|name| (name, stage(name).get_sample_sum() * 1e3 / batches.max(1) as f64))
        .to_vec();
    drop(engine);
    anyhow::ensure!(Arc::strong_count(&app) == 1, "the API still holds the engine");
    drop(app);
    release_freed_memory();
    let reopen_secs = reopen_in_fresh_process(&dir, args.shards)?;
    let store = Arc::new(RocksDbStore::open(&dir, false)?);
    let reopened = Engine::open(Arc::clone(&store), args.shards, rules(args), Arc::new(Metrics::new()))?;
    anyhow::ensure!(reopened.account_count() == args.accounts, "reopened engine lost accounts");
    let stored = StoredDigests::of(&reopened)?;
    drop(reopened);
    release_freed_memory();
    let (replay_records, replay_secs) = replay_log(store.as_ref(), &stored)?;
    Ok(RunResult {
        mode: if full_recompute { "full-recompute" } else { "incremental" },
        setup_events,
        setup_secs,
        events,
        secs,
        events_per_sec: events as f64 / secs,
        alerts,
        records,
        latency_us_p50: latency.alerts.value_at_quantile(0.5),
        latency_us_p99: latency.alerts.value_at_quantile(0.99),
        latency_us_p999: latency.alerts.value_at_quantile(0.999),
        latency_us_max: latency.alerts.max(),
        event_us: (latency.events.value_at_quantile(0.5), latency.events.value_at_quantile(0.99), latency.events.max()),
        settled: settled.summary(args.settle_secs),
        reopen_secs,
        replay_records,
        replay_secs,
        positions,
        bars,
        by_kind,
        queries,
        batches,
        stage_ms,
        batch_us: (batch_time.value_at_quantile(0.5), batch_time.value_at_quantile(0.99), batch_time.max()),
        slowest_batch_events: slowest.1,
        busy_us,
    })
}

fn print(r: &RunResult) {
    println!(
        "{:<15} {:>9} events in {:>6.2} s = {:>9.0} events/s | {:>7} alerts, {:>6} records | tick-to-alert p50 {:.1} ms p99 {:.1} ms p99.9 {:.1} ms (setup: {} events in {:.1} s; restart with {} positions: {:.2} s)",
        r.mode,
        r.events,
        r.secs,
        r.events_per_sec,
        r.alerts,
        r.records,
        r.latency_us_p50 as f64 / 1e3,
        r.latency_us_p99 as f64 / 1e3,
        r.latency_us_p999 as f64 / 1e3,
        r.setup_events,
        r.setup_secs,
        r.positions,
        r.reopen_secs
    );
    println!(
        "{:<15} replay of the local log in memory: {} records ({} events) in {:.2} s = {:.0} records/s, {:.0} events/s; equals the stored state",
        "",
        r.replay_records,
        r.setup_events + r.events,
        r.replay_secs,
        r.replay_records as f64 / r.replay_secs,
        (r.setup_events + r.events) as f64 / r.replay_secs
    );
    let kinds: Vec<String> = r.by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!("{:<15} {} bar closes; raised: {}", "", r.bars, kinds.join(", "));
    let stages: Vec<String> = r.stage_ms.iter().map(|(s, ms)| format!("{s} {ms:.1}")).collect();
    println!("{:<15} {} batches; mean ms per batch: {}", "", r.batches, stages.join(", "));
    let (p50, p99, max) = r.event_us;
    println!(
        "{:<15} tick-to-commit of every event: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        "",
        p50 as f64 / 1e3,
        p99 as f64 / 1e3,
        max as f64 / 1e3
    );
    println!("{:<15} {}", "", r.settled);
    let (p50, p99, max) = r.batch_us;
    println!(
        "{:<15} batch wall time of the run: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (the slowest held {} events)",
        "",
        p50 as f64 / 1e3,
        p99 as f64 / 1e3,
        max as f64 / 1e3,
        r.slowest_batch_events
    );
    println!(
        "{:<15} ingest busy {:.0}% of the run: {:.1} us per event, batches included",
        "",
        100.0 * r.busy_us as f64 / 1e6 / r.secs.max(1e-9),
        r.busy_us as f64 / r.events.max(1) as f64
    );
    if let Some(q) = &r.queries {
        println!(
            "{:<15} GET /v1/accounts/{{id}} offered {:.0}/s during the run ({:.0}/s achieved): {} answered, {} failed, p50 {:.2} ms p99 {:.2} ms p99.9 {:.2} ms max {:.2} ms",
            "",
            q.rate,
            q.achieved_rate,
            q.answered,
            q.failed,
            q.us_p50 as f64 / 1e3,
            q.us_p99 as f64 / 1e3,
            q.us_p999 as f64 / 1e3,
            q.us_max as f64 / 1e3
        );
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(dir) = &args.reopen_only {
        return reopen_only(dir, args.shards);
    }
    if let Some(alerts) = args.notifier {
        return notifier::run(alerts, args.notifier_rate, 100, args.notifier_ledger_url.as_deref());
    }
    println!(
        "workload: {} accounts x {} positions over {} symbols{}, {} shards, batch {}, one account event per {} ticks, seed {}, offered rate {}, {}",
        args.accounts,
        args.positions,
        args.symbols,
        args.zipf.map_or(String::new(), |s| format!(" (Zipf holdings, exponent {s})")),
        args.shards,
        args.batch,
        args.trade_every,
        args.seed,
        args.rate.map_or("unpaced".to_string(), |r| format!("{r:.0}/s")),
        if args.risk { format!("risk profile ({} s bars, limits on)", args.bar_secs) } else { "daily bars".to_string() }
    );
    if let Some(brokers) = &args.kafka {
        let mut results = Vec::new();
        for &n in &args.instances {
            let r = kafka::run(&args, brokers, n)?;
            println!(
                "kafka, {} instance(s), {} shards: {} events in {:.1} s ({:.1} s to produce) = {:.0} events/s end to end; {} alerts, produce-to-alert latency p50 {} ms, p99 {} ms, p99.9 {} ms",
                r.instances, r.shards, r.events, r.secs, r.produce_secs, r.events_per_sec, r.alerts, r.latency_ms_p50, r.latency_ms_p99, r.latency_ms_p999
            );
            results.push(r);
        }
        if args.json {
            println!("{}", serde_json::to_string(&results)?);
        }
        return Ok(());
    }
    let incremental = run(&args, false)?;
    print(&incremental);
    let mut results = vec![incremental.clone()];
    if !args.no_baseline {
        let full = run(&args, true)?;
        print(&full);
        println!("incremental / full-recompute throughput: {:.2}x", incremental.events_per_sec / full.events_per_sec);
        results.push(full);
    }
    if args.json {
        println!("{}", serde_json::to_string(&results)?);
    }
    Ok(())
}
