//! A deterministic market and account simulator, for the demo and the load
//! tester. Phase 1 (setup) lists the securities with an opening tick each, then
//! opens every account: deposit, buys close to its targets, the targets. Phase 2
//! (steady state) is an endless stream of market ticks with correlated prices,
//! an account event every `trade_every` ticks and a market shock every
//! `shock_every` ticks. Everything derives from the seed, so a position (the
//! number of events emitted) is resumed by regenerating and skipping.

mod accounts;
mod market;

use std::collections::VecDeque;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use riskstream_schemas::json::{self, Decoded};
use riskstream_schemas::{Event, EventBody, Timestamp};
use serde::{Deserialize, Serialize};

use self::accounts::Accounts;
use self::market::Market;
use crate::position::{bad_position, parse_count};
use crate::{EventSource, SourceBatch, SourceError};

const SOURCE_NAME: &str = "simulator";
/// Setup events are spaced 1 ms apart in event time.
const SETUP_STEP_MICROS: i64 = 1_000;
/// Keeps every target weight at least a few basis points.
const MAX_POSITIONS: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatorConfig {
    pub seed: u64,
    /// At least 1.
    pub symbols: usize,
    pub accounts: usize,
    /// Target symbols per account; capped at `symbols` (and 1,000).
    pub positions_per_account: usize,
    /// Event time of the first event.
    pub start: Timestamp,
    /// Event time between two ticks of the steady state; at least 1.
    pub tick_interval_micros: i64,
    /// One account event every this many ticks (0 = none).
    pub trade_every: u64,
    /// One market shock every this many ticks (0 = none).
    pub shock_every: u64,
    /// Total events, setup included (`None` = endless).
    pub limit: Option<u64>,
    /// Give every account risk limits (a `RiskLimitsSet` after its targets): limits an
    /// adviser would set, VaR scaled to `bar_secs` bars, or tight ones with `stress`.
    pub risk_limits: bool,
    /// The load tester's stress profile: VaR limits at the typical VaR of five-minute
    /// bars (about half the accounts in breach), tight drawdown and daily-loss limits,
    /// `CASH` in the targets (every deposit drifts), and half the shocks hitting a
    /// whole sector. Off, limits leave room for normal markets, targets name the
    /// securities only, and a shock hits a whole sector one time in five.
    pub stress: bool,
    /// Bar length of the engine's risk model in seconds of event time, which the
    /// calm profile's VaR limits (fractions of value per bar) are scaled to.
    pub bar_secs: i64,
    /// Holdings drawn by Zipf popularity with this exponent (symbol 0 the most held),
    /// as real books crowd into a few names; `None`: every symbol equally likely.
    pub zipf: Option<f64>,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        let start = time::macros::datetime!(2026-01-05 14:30 UTC);
        SimulatorConfig {
            seed: 1,
            symbols: 200,
            accounts: 1_000,
            positions_per_account: 10,
            start: Timestamp(start.unix_timestamp() * riskstream_schemas::MICROS_PER_SECOND),
            // One tick per second of event time: a run of a million ticks spans
            // eleven days, so day-based rules (market moves) see day boundaries.
            tick_interval_micros: 1_000_000,
            trade_every: 5,
            shock_every: 10_000,
            limit: None,
            risk_limits: false,
            stress: false,
            bar_secs: 300,
            zipf: None,
        }
    }
}

impl SimulatorConfig {
    /// The config actually simulated: out-of-range values clamped as documented.
    fn normalized(mut self) -> Self {
        self.symbols = self.symbols.max(1);
        self.positions_per_account = self.positions_per_account.min(self.symbols).min(MAX_POSITIONS);
        self.tick_interval_micros = self.tick_interval_micros.max(1);
        self.bar_secs = self.bar_secs.max(1);
        self
    }
}

/// The simulated event stream, without JSON (what the load tester iterates).
pub fn events(config: SimulatorConfig) -> Simulation {
    Simulation::new(config)
}

enum Stage {
    Securities(usize),
    Accounts(usize),
    Steady { start: i64, step: u64 },
}

/// Events are generated a unit at a time (a security, an account, a tick) into a
/// queue; ids and timestamps are given as they leave it, so they follow the
/// emission order whatever the unit.
pub struct Simulation {
    config: SimulatorConfig,
    rng: ChaCha8Rng,
    market: Market,
    accounts: Accounts,
    stage: Stage,
    /// Bodies with their scheduled event time (`None`: setup, one step later).
    queue: VecDeque<(Option<i64>, EventBody)>,
    emitted: u64,
    last_ts: i64,
}

impl Simulation {
    pub fn new(config: SimulatorConfig) -> Self {
        let config = config.normalized();
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let start = config.start.micros();
        let market = Market::new(config.symbols, start, &mut rng);
        let limits = match (config.risk_limits, config.stress) {
            (false, _) => None,
            (true, true) => Some(accounts::Limits::Tight),
            (true, false) => Some(accounts::Limits::Adviser { bar_secs: config.bar_secs }),
        };
        let mut accounts = Accounts::new(config.seed, config.positions_per_account, limits, config.stress);
        if let Some(exponent) = config.zipf {
            accounts.set_zipf(config.symbols, exponent);
        }
        Simulation {
            rng,
            market,
            accounts,
            stage: Stage::Securities(0),
            queue: VecDeque::new(),
            emitted: 0,
            last_ts: start - SETUP_STEP_MICROS,
            config,
        }
    }

    pub fn config(&self) -> &SimulatorConfig {
        &self.config
    }

    /// Event time of the last event emitted (microseconds).
    pub fn last_ts(&self) -> i64 {
        self.last_ts
    }

    /// Event time the steady state (the market) started at, once it has.
    pub fn steady_since(&self) -> Option<i64> {
        match self.stage {
            Stage::Steady { start, .. } => Some(start),
            _ => None,
        }
    }

    /// Events emitted so far: the source position.
    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    /// Whether `limit` events have been emitted.
    pub fn is_finished(&self) -> bool {
        self.config.limit.is_some_and(|limit| self.emitted >= limit)
    }

    /// Generates and drops up to `n` events; returns how many were skipped.
    pub fn skip_events(&mut self, n: u64) -> u64 {
        let mut skipped = 0;
        while skipped < n && self.next().is_some() {
            skipped += 1;
        }
        skipped
    }

    fn refill(&mut self) {
        match self.stage {
            Stage::Securities(i) if i < self.market.len() => {
                self.queue.push_back((None, EventBody::SecurityListed(self.market.listing(i))));
                self.queue.push_back((None, EventBody::MarketTick(self.market.opening_tick(i))));
                self.stage = Stage::Securities(i + 1);
            }
            Stage::Securities(_) => self.stage = Stage::Accounts(0),
            Stage::Accounts(k) if k < self.config.accounts => {
                let mut bodies = Vec::new();
                self.accounts.open(&self.market, &mut self.rng, &mut bodies);
                self.queue.extend(bodies.into_iter().map(|b| (None, b)));
                self.stage = Stage::Accounts(k + 1);
            }
            // The queue is empty here, so `last_ts` is the last emitted event's.
            Stage::Accounts(_) => self.stage = Stage::Steady { start: self.last_ts, step: 0 },
            Stage::Steady { start, step } => self.steady_step(start, step + 1),
        }
    }

    fn steady_step(&mut self, start: i64, step: u64) {
        self.stage = Stage::Steady { start, step };
        let offset = i64::try_from(step).unwrap_or(i64::MAX).saturating_mul(self.config.tick_interval_micros);
        let now = start.saturating_add(offset);
        if every(step, self.config.shock_every) {
            let sector_share = if self.config.stress { 0.5 } else { 0.2 };
            self.market.shock(sector_share, &mut self.rng);
        }
        let tick = self.market.tick(now, &mut self.rng);
        self.queue.push_back((Some(now), EventBody::MarketTick(tick)));
        if every(step, self.config.trade_every) {
            if let Some(body) = self.accounts.steady_event(&self.market, &mut self.rng) {
                self.queue.push_back((Some(now), body));
            }
        }
    }
}

/// Period 0 means never.
fn every(step: u64, period: u64) -> bool {
    step.checked_rem(period) == Some(0)
}

impl Iterator for Simulation {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        if self.is_finished() {
            return None;
        }
        while self.queue.is_empty() {
            self.refill();
        }
        let (scheduled, body) = self.queue.pop_front()?;
        // Strictly increasing: an account event shares its tick's scheduled time.
        let ts = scheduled.unwrap_or(self.last_ts + SETUP_STEP_MICROS).max(self.last_ts + 1);
        self.last_ts = ts;
        let n = self.emitted;
        self.emitted += 1;
        Some(Event { event_id: Some(format!("sim-{}-{n}", self.config.seed)), ts: Timestamp(ts), body })
    }
}

/// The simulator as an `EventSource`; position = events emitted so far.
pub struct SimulatorSource {
    sim: Simulation,
}

impl SimulatorSource {
    pub fn new(config: SimulatorConfig) -> Self {
        SimulatorSource { sim: Simulation::new(config) }
    }

    /// The next event without the JSON form `next_batch` adds.
    pub fn next_event(&mut self) -> Option<Event> {
        self.sim.next()
    }

    pub fn position(&self) -> u64 {
        self.sim.emitted()
    }

    /// Event time of the last event emitted (microseconds).
    pub fn last_ts(&self) -> i64 {
        self.sim.last_ts()
    }

    /// Event time the steady state (the market) started at, once it has.
    pub fn steady_since(&self) -> Option<i64> {
        self.sim.steady_since()
    }

    pub fn config(&self) -> &SimulatorConfig {
        self.sim.config()
    }
}

impl EventSource for SimulatorSource {
    fn name(&self) -> &str {
        SOURCE_NAME
    }

    fn seek(&mut self, position: &str) -> Result<(), SourceError> {
        let n = parse_count(SOURCE_NAME, position)?;
        if let Some(limit) = self.sim.config.limit.filter(|&limit| n > limit) {
            return Err(bad_position(SOURCE_NAME, position, format!("the simulation ends after {limit} events")));
        }
        // Only the seed's stream exists: going back means starting over.
        if n < self.sim.emitted() {
            self.sim = Simulation::new(self.sim.config.clone());
        }
        let wanted = n - self.sim.emitted();
        self.sim.skip_events(wanted);
        Ok(())
    }

    fn next_batch(&mut self, max: usize) -> Result<SourceBatch, SourceError> {
        let mut items = Vec::with_capacity(max.min(4_096));
        while items.len() < max {
            let index = self.sim.emitted() as usize;
            let Some(event) = self.sim.next() else { break };
            items.push(Decoded { index, raw: json::encode(&event), result: Ok(event) });
        }
        Ok(SourceBatch { items, position: Some(self.sim.emitted().to_string()), end: self.sim.is_finished() })
    }
}
