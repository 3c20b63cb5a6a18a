//! Simulated accounts: their opening (deposit, buys, targets) and the steady
//! trickle of deposits and trades. A view of every account's holdings and cash is
//! kept here so no trade sells more than is held or spends cash that is not there
//! (the engine would reject both).

use std::collections::BTreeMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use riskstream_schemas::{
    AccountOpened, CashKind, CashMovement, DecimalStr, EventBody, RiskLimitsSet, Side, TargetAllocationSet, TaxStatus,
    TradeExecuted,
};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

use super::market::Market;

const CASH: &str = "CASH";
const BASIS_POINTS: i64 = 10_000;
/// Fees are 2 bp of the notional, capped: "small", and never more than the notional.
const FEE_RATE: Decimal = Decimal::from_parts(2, 0, 0, false, 4);
const FEE_CAP: Decimal = Decimal::from_parts(495, 0, 0, false, 2);
/// Account sizes are log-uniform in this range; large next to prices, so whole
/// shares land close to the target weights and setup raises no drift alert.
const ACCOUNT_SIZE: (f64, f64) = (50_000.0, 2_000_000.0);
/// Steady-state mix: the rest of the events rebalance the most drifted position.
const DEPOSIT_SHARE: f64 = 0.2;
const TRIM_SHARE: f64 = 0.15;
/// Some accounts (with enough positions to spread the rest) keep one core holding
/// just under the default 25% concentration limit, so a rally in it breaches it.
const CORE_SHARE: f64 = 0.15;
const CORE_MIN_POSITIONS: usize = 5;
const CORE_BP: (i64, i64) = (2_000, 2_300);

struct SimAccount {
    account_id: String,
    user_id: String,
    /// Market indices of the target symbols, ascending; `weights` and
    /// `holdings` are aligned with it.
    symbols: Vec<usize>,
    weights: Vec<Decimal>,
    holdings: Vec<u64>,
    cash: Decimal,
}

impl SimAccount {
    fn value(&self, market: &Market) -> Decimal {
        let held = self.symbols.iter().zip(&self.holdings);
        self.cash + held.map(|(&s, &q)| Decimal::from(q) * market.price(s)).sum::<Decimal>()
    }
}

pub(super) struct Accounts {
    seed: u64,
    positions: usize,
    list: Vec<SimAccount>,
    trades: u64,
    limits: Option<Limits>,
    /// Name `CASH` in the targets (the stress profile): every deposit then pushes the
    /// cash weight out of its narrow band (25% of a 1-4% target).
    cash_target: bool,
    /// Cumulative Zipf popularity of the symbols (`set_zipf`); empty: uniform.
    popularity: Vec<f64>,
}

/// Which risk limits the simulated accounts get.
#[derive(Debug, Clone, Copy)]
pub(super) enum Limits {
    /// What an adviser might set: room for a normal market, breached by a shock.
    Adviser { bar_secs: i64 },
    /// At the typical VaR of five-minute bars: about half the accounts in breach.
    Tight,
}

impl Accounts {
    pub(super) fn new(seed: u64, positions: usize, limits: Option<Limits>, cash_target: bool) -> Self {
        Accounts { seed, positions, list: Vec::new(), trades: 0, limits, cash_target, popularity: Vec::new() }
    }

    /// Draws holdings with symbol `i` held in proportion to `1 / (i + 1)^exponent`.
    pub(super) fn set_zipf(&mut self, symbols: usize, exponent: f64) {
        let mut total = 0.0;
        self.popularity = (0..symbols)
            .map(|i| {
                total += 1.0 / ((i + 1) as f64).powf(exponent);
                total
            })
            .collect();
    }

    /// Opens the next account. Targets come last: set before the buys, they would
    /// make every freshly funded (all-cash) account drift and alert.
    pub(super) fn open(&mut self, market: &Market, rng: &mut ChaCha8Rng, out: &mut Vec<EventBody>) {
        let k = self.list.len() + 1;
        let symbols = match self.popularity.is_empty() {
            true => draw_symbols(market.len(), self.positions, rng),
            false => draw_popular(&self.popularity, self.positions, rng),
        };
        let (weights, cash_weight) = draw_weights(symbols.len(), rng);
        let account = SimAccount {
            account_id: format!("acc-{k:06}"),
            // Two accounts per taxpayer, so wash-sale rules see cross-account trades.
            user_id: format!("usr-{:06}", k.div_ceil(2)),
            holdings: vec![0; symbols.len()],
            symbols,
            weights,
            cash: Decimal::ZERO,
        };
        out.push(EventBody::AccountOpened(AccountOpened {
            account_id: account.account_id.clone(),
            user_id: account.user_id.clone(),
            tax_status: draw_tax_status(rng),
            base_currency: "USD".to_string(),
            holder_name: None,
            holder_email: None,
        }));
        self.list.push(account);
        let size = rng.gen_range(ACCOUNT_SIZE.0.ln()..=ACCOUNT_SIZE.1.ln()).exp();
        self.fund_and_buy(k - 1, size, cash_weight, market, out);
        out.push(self.targets(k - 1, cash_weight, market));
        match self.limits {
            Some(Limits::Tight) => out.push(self.tight_limits(k - 1)),
            Some(Limits::Adviser { bar_secs }) => out.push(self.adviser_limits(k - 1, bar_secs)),
            None => {}
        }
    }

    /// Limits an adviser might set, varying with the account number (no draw, so the
    /// rest of the stream is the same with or without them). The simulated market's
    /// diversified book has a one-bar 99% VaR near 0.12% of value on five-minute bars
    /// (market factor 1% a day, over sqrt(288) bars, times 2.33); the limit is 2.5-3x
    /// that, scaled by sqrt(bar length), so a shock breaches it and noise does not.
    /// One account in four also limits CVaR, a little looser than its VaR limit.
    fn adviser_limits(&self, a: usize, bar_secs: i64) -> EventBody {
        let acc = &self.list[a];
        let step = |k: usize, m: usize| Decimal::from((a % m) as u64) * Decimal::new(k as i64, 4);
        let scale = Decimal::from_f64_retain((bar_secs as f64 / 300.0).sqrt()).unwrap_or(Decimal::ONE).round_dp(4);
        let max_var = ((Decimal::new(30, 4) + step(2, 5)) * scale).round_dp(6);
        EventBody::RiskLimitsSet(RiskLimitsSet {
            account_id: acc.account_id.clone(),
            user_id: acc.user_id.clone(),
            max_position_weight: None,
            max_sector_weight: Some(Decimal::new(45, 2) + step(500, 3)),
            max_asset_class_weight: None,
            max_var: Some(max_var),
            max_cvar: a.is_multiple_of(4).then(|| (max_var * Decimal::new(125, 2)).round_dp(6)),
            max_drawdown: Some(Decimal::new(8, 2) + step(100, 3)),
            max_daily_loss: Some(Decimal::new(3, 2) + step(50, 3)),
            max_gross_leverage: Some(Decimal::ONE),
        })
    }

    /// The stress profile's limits (no draw, as above). VaR limits are fractions of
    /// value per bar: 0.10-0.18%, the typical VaR of five-minute bars.
    fn tight_limits(&self, a: usize) -> EventBody {
        let acc = &self.list[a];
        let step = |k: usize, m: usize| Decimal::from((a % m) as u64) * Decimal::new(k as i64, 4);
        let max_var = Decimal::new(10, 4) + step(2, 5);
        EventBody::RiskLimitsSet(RiskLimitsSet {
            account_id: acc.account_id.clone(),
            user_id: acc.user_id.clone(),
            max_position_weight: None,
            max_sector_weight: Some(Decimal::new(35, 2) + step(500, 4)),
            max_asset_class_weight: None,
            max_var: Some(max_var),
            max_cvar: Some(max_var * Decimal::new(115, 2)),
            max_drawdown: Some(Decimal::new(2, 2) + step(100, 3)),
            max_daily_loss: Some(Decimal::new(1, 2) + step(50, 3)),
            max_gross_leverage: Some(Decimal::ONE),
        })
    }

    /// Buys whole shares close to `weight x size`, then deposits exactly what the
    /// buys cost grossed up by the cash weight (deposit first in the stream).
    fn fund_and_buy(&mut self, a: usize, size: f64, cash_weight: Decimal, market: &Market, out: &mut Vec<EventBody>) {
        let mut buys = Vec::new();
        let mut cost = Decimal::ZERO;
        for j in 0..self.list[a].symbols.len() {
            let s = self.list[a].symbols[j];
            let price = market.price(s);
            let share = self.list[a].weights[j].to_f64().unwrap_or(0.0) * size;
            let qty = (share / price.to_f64().unwrap_or(f64::MAX)).round() as u64;
            if qty == 0 {
                continue;
            }
            let notional = Decimal::from(qty) * price;
            cost += notional + fee(notional);
            self.list[a].holdings[j] = qty;
            buys.push(self.trade(a, j, Side::Buy, qty, market));
        }
        let amount = if cost.is_zero() {
            Decimal::from(size.round() as i64)
        } else {
            (cost / (Decimal::ONE - cash_weight)).round_dp_with_strategy(2, RoundingStrategy::ToPositiveInfinity)
        };
        self.list[a].cash = amount - cost;
        out.push(self.deposit_event(a, amount));
        out.extend(buys);
    }

    /// The account's targets: its symbol weights and `CASH` (stress profile), or the
    /// symbol weights alone scaled to sum to 1, the small cash balance left out of the
    /// allocation as an adviser's model portfolio leaves it.
    fn targets(&self, a: usize, cash_weight: Decimal, market: &Market) -> EventBody {
        let acc = &self.list[a];
        let mut targets: BTreeMap<String, DecimalStr> = BTreeMap::new();
        let weights = match self.cash_target || cash_weight.is_zero() || acc.weights.is_empty() {
            true => acc.weights.clone(),
            false => without_cash(&acc.weights),
        };
        for (&s, w) in acc.symbols.iter().zip(weights) {
            targets.insert(market.symbol(s).to_string(), DecimalStr(w));
        }
        if self.cash_target && !cash_weight.is_zero() {
            targets.insert(CASH.to_string(), DecimalStr(cash_weight));
        }
        EventBody::TargetAllocationSet(TargetAllocationSet {
            account_id: acc.account_id.clone(),
            user_id: acc.user_id.clone(),
            targets,
            band_abs: None,
            band_rel: None,
        })
    }

    /// One steady-state event for a random account: a deposit, a partial sale of
    /// one holding, or a rebalancing trade; a deposit when no trade is possible.
    pub(super) fn steady_event(&mut self, market: &Market, rng: &mut ChaCha8Rng) -> Option<EventBody> {
        if self.list.is_empty() {
            return None;
        }
        let a = rng.gen_range(0..self.list.len());
        let roll: f64 = rng.gen();
        let trade = if roll < DEPOSIT_SHARE {
            None
        } else if roll < DEPOSIT_SHARE + TRIM_SHARE {
            self.trim(a, market, rng)
        } else {
            self.rebalance(a, market)
        };
        Some(trade.unwrap_or_else(|| self.deposit(a, market, rng)))
    }

    /// A deposit of 0.5-3% of the account's value (at least 100).
    fn deposit(&mut self, a: usize, market: &Market, rng: &mut ChaCha8Rng) -> EventBody {
        let value = self.list[a].value(market).to_f64().unwrap_or(0.0);
        let cents = (value * rng.gen_range(0.005..0.03) * 100.0).round() as i64;
        let amount = Decimal::new(cents, 2).max(Decimal::ONE_HUNDRED);
        self.list[a].cash += amount;
        self.deposit_event(a, amount)
    }

    /// Sells 10-40% (at least one share) of a random holding.
    fn trim(&mut self, a: usize, market: &Market, rng: &mut ChaCha8Rng) -> Option<EventBody> {
        let held: Vec<usize> = (0..self.list[a].holdings.len()).filter(|&j| self.list[a].holdings[j] > 0).collect();
        if held.is_empty() {
            return None;
        }
        let j = held[rng.gen_range(0..held.len())];
        let fraction: f64 = rng.gen_range(0.1..0.4);
        let qty = ((self.list[a].holdings[j] as f64 * fraction) as u64).max(1);
        Some(self.execute(a, j, Side::Sell, qty, market))
    }

    /// Trades the position furthest from its target back towards it, within what
    /// is held (sells) or what the cash pays for (buys).
    fn rebalance(&mut self, a: usize, market: &Market) -> Option<EventBody> {
        let acc = &self.list[a];
        let total = acc.value(market);
        let gap = |j: usize| Decimal::from(acc.holdings[j]) * market.price(acc.symbols[j]) - acc.weights[j] * total;
        let j = (0..acc.symbols.len()).max_by_key(|&j| gap(j).abs())?;
        let price = market.price(acc.symbols[j]);
        let wanted = (gap(j).abs() / price).floor().to_u64().unwrap_or(0);
        let (side, qty) = if gap(j).is_sign_positive() {
            (Side::Sell, wanted.min(acc.holdings[j]))
        } else {
            (Side::Buy, wanted.min(affordable(acc.cash, price)))
        };
        (qty > 0).then(|| self.execute(a, j, side, qty, market))
    }

    /// Books a trade in the simulated view and returns its event.
    fn execute(&mut self, a: usize, j: usize, side: Side, qty: u64, market: &Market) -> EventBody {
        let notional = Decimal::from(qty) * market.price(self.list[a].symbols[j]);
        let acc = &mut self.list[a];
        match side {
            Side::Buy => {
                acc.holdings[j] += qty;
                acc.cash -= notional + fee(notional);
            }
            Side::Sell => {
                acc.holdings[j] -= qty;
                acc.cash += notional - fee(notional);
            }
        }
        self.trade(a, j, side, qty, market)
    }

    fn trade(&mut self, a: usize, j: usize, side: Side, qty: u64, market: &Market) -> EventBody {
        self.trades += 1;
        let acc = &self.list[a];
        let symbol = acc.symbols[j];
        let quantity = Decimal::from(qty);
        let price = market.price(symbol);
        EventBody::TradeExecuted(TradeExecuted {
            trade_id: format!("sim-{}-trade-{}", self.seed, self.trades),
            account_id: acc.account_id.clone(),
            user_id: acc.user_id.clone(),
            symbol: market.symbol(symbol).to_string(),
            side,
            quantity,
            price,
            fees: fee(quantity * price),
            lot_method: None,
            lot_ids: Vec::new(),
        })
    }

    fn deposit_event(&self, a: usize, amount: Decimal) -> EventBody {
        let acc = &self.list[a];
        EventBody::CashMovement(CashMovement {
            account_id: acc.account_id.clone(),
            user_id: acc.user_id.clone(),
            kind: CashKind::Deposit,
            amount,
        })
    }
}

fn fee(notional: Decimal) -> Decimal {
    (notional * FEE_RATE).round_dp_with_strategy(2, RoundingStrategy::ToPositiveInfinity).min(FEE_CAP)
}

/// The most whole shares `cash` pays for, fees included.
fn affordable(cash: Decimal, price: Decimal) -> u64 {
    if cash <= Decimal::ZERO {
        return 0;
    }
    let mut qty = (cash / (price * (Decimal::ONE + FEE_RATE))).floor().to_u64().unwrap_or(0);
    // The fee rounds up to a cent, which the estimate above does not see.
    while qty > 0 && Decimal::from(qty) * price + fee(Decimal::from(qty) * price) > cash {
        qty -= 1;
    }
    qty
}

/// `count` distinct market indices, ascending.
fn draw_symbols(symbols: usize, count: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut picked = rand::seq::index::sample(rng, symbols, count).into_vec();
    picked.sort_unstable();
    picked
}

/// `count` distinct symbols, each draw by the cumulative popularity `cdf`, ascending.
fn draw_popular(cdf: &[f64], count: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let total = cdf.last().copied().unwrap_or(0.0);
    let count = count.min(cdf.len());
    let mut picked = std::collections::BTreeSet::new();
    while picked.len() < count {
        let u = rng.gen::<f64>() * total;
        picked.insert(cdf.partition_point(|&c| c <= u).min(cdf.len() - 1));
    }
    picked.into_iter().collect()
}

/// Mostly taxable (70%), some traditional (20%) and Roth (10%) IRAs.
fn draw_tax_status(rng: &mut ChaCha8Rng) -> TaxStatus {
    let u: f64 = rng.gen();
    if u < 0.7 {
        TaxStatus::Taxable
    } else if u < 0.9 {
        TaxStatus::TraditionalIra
    } else {
        TaxStatus::RothIra
    }
}

/// Target weights in basis points (4 places) summing to exactly 1: a 1-4% cash
/// weight and uneven symbol weights.
fn draw_weights(count: usize, rng: &mut ChaCha8Rng) -> (Vec<Decimal>, Decimal) {
    if count == 0 {
        return (Vec::new(), Decimal::ONE);
    }
    let cash_bp: i64 = rng.gen_range(100..=400);
    let budget = BASIS_POINTS - cash_bp;
    let core_bp =
        (count >= CORE_MIN_POSITIONS && rng.gen_bool(CORE_SHARE)).then(|| rng.gen_range(CORE_BP.0..=CORE_BP.1));
    let mut bp = spread(count - usize::from(core_bp.is_some()), budget - core_bp.unwrap_or(0), rng);
    if let Some(core) = core_bp {
        let at = rng.gen_range(0..=bp.len());
        bp.insert(at, core);
    }
    let weights = bp.into_iter().map(|b| Decimal::new(b, 4)).collect();
    (weights, Decimal::new(cash_bp, 4))
}

/// Weights in basis points scaled up to sum to exactly 1 (the first takes what
/// flooring leaves over).
fn without_cash(weights: &[Decimal]) -> Vec<Decimal> {
    let bp: Vec<i64> = weights.iter().map(|w| (w * Decimal::from(BASIS_POINTS)).to_i64().unwrap_or(0)).collect();
    let total: i64 = bp.iter().sum::<i64>().max(1);
    let mut scaled: Vec<i64> = bp.iter().map(|b| b * BASIS_POINTS / total).collect();
    scaled[0] += BASIS_POINTS - scaled.iter().sum::<i64>();
    scaled.into_iter().map(|b| Decimal::new(b, 4)).collect()
}

/// Splits `budget` basis points over `count` (at least 1) uneven weights.
/// Flooring leaves a few basis points over, which go to the first.
fn spread(count: usize, budget: i64, rng: &mut ChaCha8Rng) -> Vec<i64> {
    let raw: Vec<f64> = (0..count).map(|_| rng.gen_range(0.6..1.4)).collect();
    let total: f64 = raw.iter().sum();
    let mut bp: Vec<i64> = raw.iter().map(|r| (r / total * budget as f64).floor() as i64).collect();
    bp[0] += budget - bp.iter().sum::<i64>();
    bp
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn zipf_holdings_crowd_into_the_popular_symbols() {
        let mut accounts = Accounts::new(1, 20, None, false);
        accounts.set_zipf(100, 1.0);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut holders = [0u32; 100];
        for _ in 0..1_000 {
            let picked = draw_popular(&accounts.popularity, 20, &mut rng);
            assert_eq!(picked.len(), 20);
            assert!(picked.windows(2).all(|w| w[0] < w[1]), "distinct and ascending: {picked:?}");
            picked.iter().for_each(|&s| holders[s] += 1);
        }
        // Uniformly each symbol would be in 200 of 1,000 accounts; by 1/(i+1) the
        // first is in nearly all and the last in few.
        assert!(holders[0] > 900 && holders[99] < 150, "{} / {}", holders[0], holders[99]);
        assert!(holders[..10].iter().sum::<u32>() > holders[90..].iter().sum::<u32>() * 4);
    }

    #[test]
    fn targets_without_cash_sum_to_exactly_one() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for count in [1, 3, 10, 57] {
            let (w, _) = draw_weights(count, &mut rng);
            let scaled = without_cash(&w);
            assert_eq!(scaled.iter().sum::<Decimal>(), Decimal::ONE);
            assert!(scaled.iter().zip(&w).all(|(s, w)| s >= w && s.scale() == 4));
        }
    }

    #[test]
    fn weights_sum_to_exactly_one_with_four_places() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for count in [1, 3, 10, 57] {
            let (w, cash) = draw_weights(count, &mut rng);
            assert_eq!(w.iter().sum::<Decimal>() + cash, Decimal::ONE);
            assert!(w.iter().chain([&cash]).all(|d| d.scale() == 4 && *d > Decimal::ZERO));
        }
        assert_eq!(draw_weights(0, &mut rng), (Vec::new(), Decimal::ONE));
    }

    #[test]
    fn some_accounts_get_a_core_holding_under_the_concentration_limit() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let largest: Vec<Decimal> = (0..200).map(|_| draw_weights(10, &mut rng).0.into_iter().max().unwrap()).collect();
        let core = largest.iter().filter(|w| **w >= Decimal::new(2_000, 4)).count();
        assert!((10..=60).contains(&core), "{core} of 200 accounts have a core holding");
        assert!(largest.iter().all(|w| *w <= Decimal::new(2_300, 4)));
    }

    #[test]
    fn fees_are_two_basis_points_rounded_up_and_capped() {
        assert_eq!(fee(Decimal::new(100_000, 2)), Decimal::new(20, 2));
        assert_eq!(fee(Decimal::new(1_01, 2)), Decimal::new(1, 2));
        assert_eq!(fee(Decimal::from(1_000_000)), FEE_CAP);
    }

    #[test]
    fn affordable_leaves_cash_non_negative() {
        let price = Decimal::new(99_9999, 4);
        let cash = Decimal::new(100_000, 2);
        let qty = affordable(cash, price);
        assert_eq!(qty, 9);
        let notional = Decimal::from(qty) * price;
        assert!(notional + fee(notional) <= cash);
        assert_eq!(affordable(Decimal::ZERO, price), 0);
    }
}
