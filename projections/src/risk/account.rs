//! An account's risk facts: the performance marks (high-water mark, drawdown, the
//! day's start value, the circuit breaker) and the bar history (P&L window and VaR
//! backtest).
//!
//! Drawdown is measured on a unit value (time-weighted, like a fund's NAV per unit):
//! deposits and withdrawals buy and sell units at the current unit value, so moving
//! money in or out is not a gain or a loss; dividends, interest, fees and price moves
//! are. Daily P&L = value - start-of-day value - net deposits of the day; the day is
//! the event-time UTC day.

use std::collections::VecDeque;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Stored in `risk_marks`; changes on cash flows, new highs and day rolls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskMarks {
    pub units: Decimal,
    /// Highest unit value seen.
    pub high_water: Decimal,
    /// Largest fall from the high-water mark seen, as a fraction of it.
    pub max_drawdown: Decimal,
    /// Event-time day number of `day_start`.
    pub day: i64,
    pub day_start: Decimal,
    /// Deposits minus withdrawals since the day started.
    pub day_flows: Decimal,
    /// Set by a `daily_loss` breach; cleared by the next day or a `RiskLimitsSet`.
    pub reducing: bool,
    /// Where `mark` can change nothing (derived; not stored, not compared).
    #[serde(skip)]
    quiet: Quiet,
}

/// Account values strictly between the drawdown threshold and the high-water mark,
/// in f64 and narrowed by [`EDGE`](crate::rules::EDGE) (relative) on each side: a
/// tick inside decides `mark` with two comparisons; outside, or near either bound,
/// the exact arithmetic decides. `None` until `mark` has run since the last change
/// of the units (a load, a cash flow).
#[derive(Debug, Clone, Copy, Default)]
struct Quiet(Option<(f64, f64)>);

/// Derived from the marks it sits in, so two marks are equal whatever it holds.
impl PartialEq for Quiet {
    fn eq(&self, _: &Quiet) -> bool {
        true
    }
}

impl Eq for Quiet {}

impl Quiet {
    fn holds(&self, value: Decimal) -> bool {
        self.0.is_some_and(|(low, high)| {
            let v = crate::risk::f64_of(value);
            low < v && v < high
        })
    }
}

impl RiskMarks {
    pub fn unit_value(&self, value: Decimal) -> Option<Decimal> {
        (self.units > Decimal::ZERO).then(|| value / self.units)
    }

    /// Fall of the unit value from the high-water mark, as a fraction.
    pub fn drawdown(&self, value: Decimal) -> Decimal {
        match self.unit_value(value) {
            Some(u) if self.high_water > Decimal::ZERO && u < self.high_water => Decimal::ONE - u / self.high_water,
            _ => Decimal::ZERO,
        }
    }

    pub fn day_pnl(&self, value: Decimal) -> Decimal {
        value - self.day_start - self.day_flows
    }

    /// Loss of the day as a fraction of the start value (0 on a gain).
    pub fn day_loss(&self, value: Decimal) -> Decimal {
        let pnl = self.day_pnl(value);
        if pnl >= Decimal::ZERO || self.day_start <= Decimal::ZERO {
            Decimal::ZERO
        } else {
            -pnl / self.day_start
        }
    }

    /// Starts day `day` at `value` (the value before the day's first event).
    /// Returns whether anything changed.
    pub fn roll_day(&mut self, day: i64, value: Decimal) -> bool {
        if day <= self.day {
            return false;
        }
        self.day = day;
        // Normalised: the running value's scale depends on the path that summed it
        // (incremental or rebuilt on load), and stored rows must not.
        self.day_start = value.normalize();
        self.day_flows = Decimal::ZERO;
        self.reducing = false;
        true
    }

    /// A deposit (positive) or withdrawal (negative) of `amount` when the account was
    /// worth `before`: units change at the unit value, so performance is untouched.
    pub fn flow(&mut self, amount: Decimal, before: Decimal) {
        self.quiet = Quiet::default();
        self.day_flows += amount;
        match self.unit_value(before) {
            Some(u) if u > Decimal::ZERO => {
                self.units = (self.units + amount / u).normalize();
                if self.units <= Decimal::ZERO {
                    *self = RiskMarks {
                        day: self.day,
                        day_start: self.day_start,
                        day_flows: self.day_flows,
                        ..Default::default()
                    };
                }
            }
            _ => {
                // First money in (or back from zero): unit value 1.
                let after = before + amount;
                if after > Decimal::ZERO {
                    self.units = after.normalize();
                    self.high_water = Decimal::ONE;
                }
            }
        }
    }

    /// Moves the high-water mark and the max drawdown to `value`; true on a change.
    /// Multiplications only on the tick path.
    pub fn mark(&mut self, value: Decimal) -> bool {
        if self.quiet.holds(value) {
            return false;
        }
        let changed = self.mark_exactly(value);
        self.quiet = self.quiet_band();
        changed
    }

    fn mark_exactly(&mut self, value: Decimal) -> bool {
        if self.units <= Decimal::ZERO {
            return false;
        }
        let scaled_high = self.high_water * self.units;
        if value > scaled_high {
            self.high_water = (value / self.units).normalize();
            return true;
        }
        if value < (Decimal::ONE - self.max_drawdown) * scaled_high {
            self.max_drawdown = self.drawdown(value).normalize();
            return true;
        }
        false
    }

    /// The values `mark_exactly` leaves the marks unchanged at: every value with no
    /// units; else from `(1 - max drawdown) x high` to `high` (the unit high-water
    /// mark times the units), both included, of which the band keeps the inside. In
    /// f64 (a few ulps off, `1 - max drawdown` up to an ulp of 1 absolute), so both
    /// bounds move inward by `EDGE` times the larger of them, far more than that.
    fn quiet_band(&self) -> Quiet {
        use crate::risk::f64_of;
        if self.units <= Decimal::ZERO {
            return Quiet(Some((f64::NEG_INFINITY, f64::INFINITY)));
        }
        let high = f64_of(self.high_water) * f64_of(self.units);
        let low = (1.0 - f64_of(self.max_drawdown)) * high;
        let margin = crate::rules::EDGE * high.abs().max(low.abs());
        Quiet(Some((low + margin, high - margin)))
    }
}

/// Stored in `risk_history`; changes at bar closes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RiskHistory {
    /// Hypothetical P&L of each closed bar: the positions held at the previous close
    /// revalued at this close (trades and cash flows excluded). Newest last.
    pub pnl: VecDeque<f64>,
    /// (model index, exposure) at the last close.
    pub exposures: Vec<(u32, f64)>,
    /// One-bar VaR forecast at the last close (the backtest's limit confidence).
    pub forecast: Option<f64>,
    /// Whether each backtested bar's loss exceeded its forecast. Newest last.
    pub exceptions: VecDeque<bool>,
}

impl RiskHistory {
    /// Books a closed bar given each model symbol's simple return; keeps `window` bars.
    /// Returns whether the bar was an exception, when it was backtested.
    pub fn close_bar(&mut self, simple: &[f64], window: usize) -> Option<bool> {
        if self.exposures.is_empty() {
            return None;
        }
        let pnl: f64 = self.exposures.iter().map(|&(i, e)| e * simple.get(i as usize).copied().unwrap_or(0.0)).sum();
        push_bounded(&mut self.pnl, pnl, window);
        let exception = self.forecast.map(|var| -pnl > var);
        if let Some(e) = exception {
            push_bounded(&mut self.exceptions, e, window);
        }
        exception
    }

    pub fn exception_count(&self) -> u32 {
        self.exceptions.iter().filter(|&&e| e).count() as u32
    }
}

fn push_bounded<T>(q: &mut VecDeque<T>, value: T, window: usize) {
    q.push_back(value);
    while q.len() > window {
        q.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rust_decimal::Decimal;

    use super::{Quiet, RiskMarks};

    #[derive(Debug, Clone)]
    enum Step {
        /// The account moves to this many cents.
        To(i64),
        /// On the high-water mark, or a 1e-10 either side (-1, 0, 1).
        OnHigh(i64),
        /// On the drawdown threshold, or a 1e-10 either side.
        OnLow(i64),
        /// A deposit (or withdrawal) of this many cents.
        Flow(i64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (1i64..200_000_000).prop_map(Step::To),
            2 => (-1i64..=1).prop_map(Step::OnHigh),
            2 => (-1i64..=1).prop_map(Step::OnLow),
            1 => (-5_000_000i64..10_000_000).prop_map(Step::Flow),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// The f64 band never changes what `mark` decides: marks that keep their band
        /// and marks that forget it before every call stay equal, call by call.
        #[test]
        fn the_quiet_band_decides_what_the_exact_marks_decide(steps in prop::collection::vec(step(), 1..80)) {
            let (mut banded, mut exact) = (RiskMarks::default(), RiskMarks::default());
            let mut value = Decimal::new(100_000_000, 2);
            banded.flow(value, Decimal::ZERO);
            exact.flow(value, Decimal::ZERO);
            let tiny = Decimal::new(1, 10);
            for step in steps {
                let high = exact.high_water * exact.units;
                let low = (Decimal::ONE - exact.max_drawdown) * high;
                match step {
                    Step::To(cents) => value = Decimal::new(cents, 2),
                    Step::OnHigh(k) => value = high + tiny * Decimal::from(k),
                    Step::OnLow(k) => value = low + tiny * Decimal::from(k),
                    Step::Flow(cents) => {
                        let amount = Decimal::new(cents, 2);
                        banded.flow(amount, value);
                        exact.flow(amount, value);
                        value += amount;
                        continue;
                    }
                }
                exact.quiet = Quiet::default();
                prop_assert_eq!(banded.mark(value), exact.mark(value), "at {}", value);
                prop_assert_eq!(&banded, &exact);
                prop_assert_eq!(
                    (banded.high_water, banded.max_drawdown, banded.units),
                    (exact.high_water, exact.max_drawdown, exact.units)
                );
            }
        }
    }
}
