//! Risk signals: the shard's EWMA covariance model, each account's exposures and
//! variance (rank-1 updates on the tick path), its performance marks and bar
//! history, and the views that stamp every number with how it was computed.
//!
//! When things happen (event time only):
//! - an event of a later bar closes the open bar first: the model takes the bar's
//!   returns, then every account books its bar P&L, backtests its last forecast and
//!   rebuilds its book under the new matrix;
//! - a price change moves the exposures of the holders (O(positions) each);
//! - a trade rebuilds the trading account's book (O(positions^2));
//! - the first event of a new UTC day that touches an account starts its day.

mod account;
mod book;
mod model;
pub mod stats;
mod view;

pub use account::{RiskHistory, RiskMarks};
pub use book::RiskBook;
pub use model::{CovarianceModel, ModelScalars, Repair, SymbolModel};
pub use view::{Figure, RiskView, SymbolRiskView};

use riskstream_schemas::{Alert, Timestamp};
use rust_decimal::Decimal;

use crate::rules::Cause;
use crate::state::{Account, Market, ShardState, Slot, SlotSet};

pub(crate) use book::UNMODELLED;

/// The shard's risk part: the covariance model (an account's own risk state sits
/// with the account, in [`AccountRisk`]).
#[derive(Debug)]
pub(crate) struct Risk {
    pub model: CovarianceModel,
    pub changed: RiskChanges,
}

impl Risk {
    pub fn new(config: &crate::RiskConfig) -> Self {
        Risk { model: CovarianceModel::new(config), changed: RiskChanges::default() }
    }
}

/// Risk rows touched since the last `drain_changes`.
#[derive(Debug, Default)]
pub(crate) struct RiskChanges {
    /// The model changed (a bar closed): every model row is written.
    pub model: bool,
    /// Accounts whose performance marks changed.
    pub marks: SlotSet,
    /// Accounts whose bar history changed.
    pub history: SlotSet,
}

/// An account's risk state beside its positions. The marks first (`repr(C)`): every
/// tick reads their day, and they follow the account's tick fields (`Account`).
#[derive(Debug, Clone, Default, PartialEq)]
#[repr(C)]
pub struct AccountRisk {
    pub(crate) marks: RiskMarks,
    pub(crate) book: RiskBook,
    pub(crate) history: RiskHistory,
}

impl AccountRisk {
    pub fn book(&self) -> &RiskBook {
        &self.book
    }

    pub fn marks(&self) -> &RiskMarks {
        &self.marks
    }

    pub fn history(&self) -> &RiskHistory {
        &self.history
    }
}

/// Powers of ten up to a decimal's largest scale.
const POW10: [f64; 29] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22, 1e23, 1e24, 1e25, 1e26, 1e27, 1e28,
];

/// A decimal as `f64`: mantissa over a power of ten (two roundings, deterministic).
/// `Decimal::to_f64` costs several times more and this runs per holder per tick.
#[inline]
pub(crate) fn f64_of(d: Decimal) -> f64 {
    // A mantissa within 64 bits converts inline; a wider one through i128 -> f64, a
    // library call, kept out of line: written as one expression, the compiler made
    // the call on every decimal and chose the result after. The rounding is the
    // same either way (round to nearest is symmetric in the sign).
    let u = d.unpack();
    let magnitude = if u.hi == 0 { ((u64::from(u.mid) << 32) | u64::from(u.lo)) as f64 } else { wide(d).abs() };
    let v = magnitude / POW10[u.scale as usize];
    // -0 stays 0.0, as the signed mantissa gave it.
    if u.negative && v != 0.0 {
        -v
    } else {
        v
    }
}

#[cold]
#[inline(never)]
fn wide(d: Decimal) -> f64 {
    d.mantissa() as f64
}

/// A risk number as an alert value: 10 decimal places at most, like the contract.
pub(crate) fn decimal_of(x: f64) -> Decimal {
    Decimal::from_f64_retain(x).map_or(Decimal::ZERO, |d| d.round_dp(10))
}

/// The book of an account from facts (quantity x last price), from scratch.
pub(crate) fn build_book(account: &Account, state: &ShardState) -> RiskBook {
    let positions = account.positions.iter().map(|(symbol, p)| {
        let index = state.risk.model.index_of(symbol).unwrap_or(UNMODELLED);
        let price = match p.sym {
            Market::NONE => state.last_price(symbol),
            sym => state.market.last_price(sym),
        };
        (index, f64_of(p.quantity * price))
    });
    RiskBook::build(positions, &state.risk.model)
}

impl ShardState {
    pub fn model(&self) -> &CovarianceModel {
        &self.risk.model
    }

    /// The account's risk as maintained incrementally.
    pub fn account_risk(&self, account_id: &str) -> Option<&AccountRisk> {
        self.book.accounts.get(account_id).map(|a| &a.risk)
    }

    /// The account's book recomputed from facts alone (the incremental check).
    pub fn full_book(&self, account_id: &str) -> Option<RiskBook> {
        self.book.accounts.get(account_id).map(|a| build_book(a, self))
    }

    pub(crate) fn rebuild_book(&mut self, account_id: &str) {
        if let Some(a) = self.book.accounts.get(account_id) {
            let book = build_book(a, self);
            self.book.accounts.get_mut(account_id).expect("just read").risk.book = book;
        }
    }

    /// Starts the event-time day of `ts` for an account about to change.
    pub(crate) fn roll_day(&mut self, account_id: &str, ts: Timestamp) {
        let slot = self.book.accounts.slot(account_id).expect("checked before apply");
        let a = self.book.accounts.at_mut(slot);
        if a.risk.marks.roll_day(ts.day(), a.market_value) {
            self.risk.changed.marks.insert(slot);
        }
    }

    /// Books a deposit (positive) or withdrawal (negative) before it is applied.
    pub(crate) fn book_flow(&mut self, account_id: &str, amount: Decimal) {
        let slot = self.book.accounts.slot(account_id).expect("checked before apply");
        let a = self.book.accounts.at_mut(slot);
        a.risk.marks.flow(amount, a.market_value);
        self.risk.changed.marks.insert(slot);
    }

    /// Moves the high-water mark and max drawdown to the account's current value.
    pub(crate) fn mark_value(&mut self, slot: Slot) {
        let a = self.book.accounts.at_mut(slot);
        if a.risk.marks.mark(a.market_value) {
            self.risk.changed.marks.insert(slot);
        }
    }

    /// Closes the open bar when `ts` lies in a later one (see the module doc).
    pub(crate) fn roll_bar(&mut self, ts: Timestamp, cause: Cause, out: &mut Vec<Alert>) {
        let open = self.risk.model.scalars().bar;
        // Most events stay in the open bar: decide that before touching the prices.
        if open.is_some_and(|bar| self.risk.model.bar_of(ts.micros()) <= bar) {
            return;
        }
        let closes = self.market.prices_by_symbol().into_iter().map(|(s, p)| (s, f64_of(p.price)));
        let closed = self.risk.model.advance(ts.micros(), closes);
        if self.risk.model.scalars().bar != open {
            self.risk.changed.model = true;
        }
        let Some(closed) = closed else { return };
        let mut slots: Vec<Slot> = (0..self.book.accounts.len() as Slot).collect();
        self.book.accounts.sort_by_id(&mut slots);
        let (window, z) = (self.risk.model.params.window, self.risk.model.params.z_limit);
        for &slot in &slots {
            let a = self.book.accounts.at(slot);
            // Positions the model knew keep their indexes: recompute in place; a
            // symbol that entered the model at this close needs the lookups.
            let book = if a.risk.book.index.contains(&UNMODELLED) || a.risk.book.index.len() != a.positions.len() {
                build_book(a, self)
            } else {
                let mut book = std::mem::take(&mut self.book.accounts.at_mut(slot).risk.book);
                book.recompute(&self.risk.model);
                book
            };
            let a = self.book.accounts.at_mut(slot);
            let h = &mut a.risk.history;
            // Exposures at the previous close book this bar's P&L even when the
            // positions are gone now.
            let had_exposures = !h.exposures.is_empty();
            let exception = h.close_bar(&closed.simple, window);
            let sigma = book.sigma();
            h.forecast = (sigma > 0.0).then_some(z * sigma);
            h.exposures = book
                .index
                .iter()
                .zip(&book.exposure)
                .filter(|(&i, _)| i != UNMODELLED)
                .map(|(&i, &e)| (i, e))
                .collect();
            let changed = exception.is_some() || had_exposures || !h.exposures.is_empty() || !a.positions.is_empty();
            a.risk.book = book;
            if changed {
                self.risk.changed.history.insert(slot);
            }
            if exception.is_some() {
                self.evaluate_backtest(slot, cause, out);
            }
        }
        let mut moved: Vec<String> = closed.moved.iter().map(|&i| self.risk.model.symbol(i).to_string()).collect();
        moved.sort_unstable();
        for symbol in &moved {
            self.evaluate_volatility_spike(symbol, cause, out);
        }
        self.evaluate_correlation(cause, out);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rust_decimal::Decimal;

    use super::f64_of;

    /// The signed mantissa over the power of ten, as one conversion and one division.
    fn reference(d: Decimal) -> f64 {
        d.mantissa() as f64 / super::POW10[d.scale() as usize]
    }

    proptest! {
        /// Bit for bit the reference, for mantissas within 64 bits and beyond, either sign.
        #[test]
        fn f64_of_is_the_mantissa_over_the_power_of_ten(
            lo in any::<u32>(), mid in any::<u32>(), hi in prop_oneof![Just(0u32), any::<u32>()],
            negative in any::<bool>(), scale in 0u32..=28,
        ) {
            let d = Decimal::from_parts(lo, mid, hi, negative, scale);
            prop_assert_eq!(f64_of(d).to_bits(), reference(d).to_bits(), "{}", d);
        }
    }

    #[test]
    fn negative_zero_is_zero() {
        assert_eq!(f64_of(Decimal::from_parts(0, 0, 0, true, 3)).to_bits(), 0.0f64.to_bits());
    }
}
