//! The simulated market: listed securities and their correlated price paths.
//!
//! log price = log p0 + beta x market + sector + idiosyncratic + shock. The three
//! noise terms are Brownian motions in event time, each sampled only when a
//! security ticks: the increment over `dt` is normal with variance `vol^2 dt`, so
//! lazy sampling is exact and a tick costs three draws however many symbols exist.
//! Prices are `exp` of that sum, so they stay positive.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use riskstream_schemas::{MarketTick, SecurityListed, MICROS_PER_DAY};
use rust_decimal::Decimal;

/// Six equity sectors, then one each for bonds and commodities: eight factors.
const EQUITY_SECTORS: [&str; 6] = ["technology", "healthcare", "financials", "energy", "industrials", "consumer"];
const BOND_SECTOR: usize = 6;
const COMMODITY_SECTOR: usize = 7;
const SECTOR_NAMES: [&str; 8] =
    ["technology", "healthcare", "financials", "energy", "industrials", "consumer", "fixed_income", "commodities"];

const MARKET_DAILY_VOL: f64 = 0.010;
/// Every this many symbols, the next symbol is a twin sharing the wash group
/// (think two S&P 500 funds), so wash-sale rules have something to find.
const WASH_PAIR_EVERY: usize = 25;
/// A shock reaches its full size over this many ticks of each hit symbol, so a
/// rule watching consecutive ticks sees a move, not a single outlier.
const SHOCK_RAMP_TICKS: u8 = 3;
/// Shocks fade (in event time) so prices do not drift away over endless runs and
/// raised alerts eventually clear.
const SHOCK_HALF_LIFE_MICROS: f64 = MICROS_PER_DAY as f64;
const PRICE_SCALE: u32 = 4;

struct Profile {
    class: &'static str,
    beta: (f64, f64),
    idio_daily_vol: f64,
    price: (f64, f64),
}

const EQUITY: Profile = Profile { class: "equity", beta: (0.7, 1.3), idio_daily_vol: 0.012, price: (10.0, 400.0) };
const BOND: Profile = Profile { class: "bond", beta: (0.05, 0.2), idio_daily_vol: 0.002, price: (80.0, 120.0) };
const COMMODITY: Profile =
    Profile { class: "commodity", beta: (0.2, 0.6), idio_daily_vol: 0.015, price: (15.0, 150.0) };

fn sector_daily_vol(sector: usize) -> f64 {
    match sector {
        BOND_SECTOR => 0.003,
        COMMODITY_SECTOR => 0.012,
        _ => 0.007,
    }
}

/// A Brownian motion read at increasing times.
struct Factor {
    level: f64,
    vol_per_sqrt_micro: f64,
    last: i64,
}

impl Factor {
    fn new(daily_vol: f64, start: i64) -> Self {
        let vol_per_sqrt_micro = daily_vol / (MICROS_PER_DAY as f64).sqrt();
        Factor { level: 0.0, vol_per_sqrt_micro, last: start }
    }

    fn advance(&mut self, now: i64, rng: &mut ChaCha8Rng) -> f64 {
        if now > self.last {
            let dt = (now - self.last) as f64;
            let z: f64 = rng.sample(StandardNormal);
            self.level += self.vol_per_sqrt_micro * dt.sqrt() * z;
            self.last = now;
        }
        self.level
    }
}

struct Security {
    listing: SecurityListed,
    sector: usize,
    beta: f64,
    log_p0: f64,
    idio: Factor,
    /// Current log shock and the part still to be phased in.
    shock: f64,
    ramp_step: f64,
    ramp_left: u8,
    last_tick: i64,
    price: Decimal,
}

impl Security {
    fn add_shock(&mut self, log_move: f64) {
        let pending = self.ramp_step * f64::from(self.ramp_left);
        self.ramp_step = (pending + log_move) / f64::from(SHOCK_RAMP_TICKS);
        self.ramp_left = SHOCK_RAMP_TICKS;
    }

    fn step_shock(&mut self, now: i64) {
        let dt = (now - self.last_tick).max(0) as f64;
        self.shock *= (-std::f64::consts::LN_2 * dt / SHOCK_HALF_LIFE_MICROS).exp();
        if self.ramp_left > 0 {
            self.shock += self.ramp_step;
            self.ramp_left -= 1;
        }
    }
}

pub(super) struct Market {
    securities: Vec<Security>,
    market: Factor,
    sectors: Vec<Factor>,
}

impl Market {
    pub(super) fn new(symbols: usize, start: i64, rng: &mut ChaCha8Rng) -> Self {
        let mut securities: Vec<Security> = Vec::with_capacity(symbols);
        for i in 0..symbols {
            let twin_of = (i % WASH_PAIR_EVERY == 1).then(|| &securities[i - 1]);
            let security = new_security(i, twin_of, start, rng);
            securities.push(security);
        }
        let sectors = (0..SECTOR_NAMES.len()).map(|s| Factor::new(sector_daily_vol(s), start)).collect();
        Market { securities, market: Factor::new(MARKET_DAILY_VOL, start), sectors }
    }

    pub(super) fn len(&self) -> usize {
        self.securities.len()
    }

    pub(super) fn listing(&self, i: usize) -> SecurityListed {
        self.securities[i].listing.clone()
    }

    pub(super) fn symbol(&self, i: usize) -> &str {
        &self.securities[i].listing.symbol
    }

    /// The last price published for symbol `i` (what the engine values it at).
    pub(super) fn price(&self, i: usize) -> Decimal {
        self.securities[i].price
    }

    /// The opening tick, published right after the listing so every position
    /// bought during setup has a price to be valued at.
    pub(super) fn opening_tick(&self, i: usize) -> MarketTick {
        MarketTick { symbol: self.symbol(i).to_string(), price: self.price(i), volume: None }
    }

    /// Moves a random symbol to time `now` and publishes its price.
    pub(super) fn tick(&mut self, now: i64, rng: &mut ChaCha8Rng) -> MarketTick {
        let i = rng.gen_range(0..self.securities.len());
        let market = self.market.advance(now, rng);
        let sector = self.sectors[self.securities[i].sector].advance(now, rng);
        let s = &mut self.securities[i];
        let idio = s.idio.advance(now, rng);
        s.step_shock(now);
        s.last_tick = now;
        s.price = to_price((s.log_p0 + s.beta * market + sector + idio + s.shock).exp());
        let volume = Decimal::from(rng.gen_range(1..=50u32) * 100);
        MarketTick { symbol: s.listing.symbol.clone(), price: s.price, volume: Some(volume) }
    }

    /// Starts a 12-25% drop or jump of one symbol or, with probability
    /// `sector_share`, of a whole sector (the sector of a random symbol, so a shock
    /// always hits something).
    pub(super) fn shock(&mut self, sector_share: f64, rng: &mut ChaCha8Rng) {
        let size: f64 = rng.gen_range(0.12..=0.25);
        let log_move = if rng.gen_bool(0.5) { (1.0 - size).ln() } else { (1.0 + size).ln() };
        let target = rng.gen_range(0..self.securities.len());
        if !rng.gen_bool(sector_share) {
            self.securities[target].add_shock(log_move);
            return;
        }
        let sector = self.securities[target].sector;
        for s in self.securities.iter_mut().filter(|s| s.sector == sector) {
            s.add_shock(log_move);
        }
    }
}

fn new_security(i: usize, twin_of: Option<&Security>, start: i64, rng: &mut ChaCha8Rng) -> Security {
    let symbol = format!("S{:04}", i + 1);
    let (profile, sector) = match twin_of {
        Some(t) => (profile_of(t.sector), t.sector),
        None => draw_class(rng),
    };
    let beta = match twin_of {
        Some(t) => t.beta,
        None => rng.gen_range(profile.beta.0..=profile.beta.1),
    };
    let log_p0 = rng.gen_range(profile.price.0.ln()..=profile.price.1.ln());
    let wash_group = twin_of.map_or_else(|| symbol.clone(), |t| t.listing.wash_group.clone());
    let listing = SecurityListed {
        symbol,
        asset_class: profile.class.to_string(),
        sector: SECTOR_NAMES[sector].to_string(),
        wash_group,
    };
    Security {
        listing,
        sector,
        beta,
        log_p0,
        idio: Factor::new(profile.idio_daily_vol, start),
        shock: 0.0,
        ramp_step: 0.0,
        ramp_left: 0,
        last_tick: start,
        price: to_price(log_p0.exp()),
    }
}

/// Mostly equities (70%), then bonds (20%) and commodities (10%).
fn draw_class(rng: &mut ChaCha8Rng) -> (&'static Profile, usize) {
    let u: f64 = rng.gen();
    if u < 0.7 {
        (&EQUITY, rng.gen_range(0..EQUITY_SECTORS.len()))
    } else if u < 0.9 {
        (&BOND, BOND_SECTOR)
    } else {
        (&COMMODITY, COMMODITY_SECTOR)
    }
}

fn profile_of(sector: usize) -> &'static Profile {
    match sector {
        BOND_SECTOR => &BOND,
        COMMODITY_SECTOR => &COMMODITY,
        _ => &EQUITY,
    }
}

/// Rounds to 4 places, never below one ten-thousandth (prices must be positive)
/// and far below the contract's 18 integer digits.
fn to_price(value: f64) -> Decimal {
    let units = (value * 10f64.powi(PRICE_SCALE as i32)).round().clamp(1.0, 1e15);
    Decimal::new(units as i64, PRICE_SCALE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn prices_round_to_four_places_and_stay_positive() {
        assert_eq!(to_price(12.345_678), Decimal::new(123_457, 4));
        assert_eq!(to_price(0.0), Decimal::new(1, 4));
        assert_eq!(to_price(f64::INFINITY), Decimal::new(1_000_000_000_000_000, 4));
    }

    #[test]
    fn twins_share_wash_group_sector_and_class() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let m = Market::new(30, 0, &mut rng);
        let (a, b) = (m.listing(25), m.listing(26));
        assert_eq!(b.wash_group, a.symbol);
        assert_eq!(a.wash_group, a.symbol);
        assert_eq!((a.sector, a.asset_class), (b.sector, b.asset_class));
        assert_eq!(m.listing(27).wash_group, "S0028");
    }

    #[test]
    fn a_shock_is_phased_in_over_the_ramp() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut m = Market::new(1, 0, &mut rng);
        m.securities[0].add_shock(0.8f64.ln());
        for step in 1..=u64::from(SHOCK_RAMP_TICKS) {
            m.securities[0].step_shock(step as i64);
        }
        assert!((m.securities[0].shock - 0.8f64.ln()).abs() < 1e-9);
        assert_eq!(m.securities[0].ramp_left, 0);
    }
}
