//! `concentration`: one position weighs more than the account's limit.

use riskstream_schemas::Priority;
use rust_decimal::Decimal;

use super::{level_above, level_above_f64, pct, Finding, Level};
use crate::config::RuleConfig;
use crate::risk::f64_of;
use crate::state::Account;
use crate::valuation::weight;

impl Account {
    fn max_position_weight(&self, config: &RuleConfig) -> Decimal {
        self.limits.max_position_weight.unwrap_or(config.max_position_weight)
    }

    /// `None` when the account has no positive value to weigh against.
    pub(crate) fn concentration_level(&mut self, config: &RuleConfig) -> Option<Level> {
        let total = self.market_value;
        if total <= Decimal::ZERO {
            return None;
        }
        let limit = self.max_position_weight(config);
        // In f64 first (rules/drift says why); exact near an edge. A bound on the
        // largest value that is clear leaves the largest clear too; a bound that is
        // not is replaced by the largest, walked for.
        let (cap, hysteresis) = (f64_of(limit) * f64_of(total), f64_of(config.hysteresis));
        let mut approximate = level_above_f64(self.largest.bound, cap, hysteresis);
        if !self.largest.exact && approximate != Some(Level::Clear) {
            self.largest = Largest { bound: self.largest_value_f(), exact: true };
            approximate = level_above_f64(self.largest.bound, cap, hysteresis);
        }
        if approximate.is_some() {
            return approximate;
        }
        let a = &*self;
        let largest = a.positions.values().map(|p| p.value).max().unwrap_or_default();
        Some(level_above(largest, limit * total, config.hysteresis))
    }

    pub(crate) fn concentration_finding(&self, config: &RuleConfig) -> Finding {
        let a = self;
        let limit = a.max_position_weight(config);
        let (symbol, value) = a
            .positions
            .iter()
            .map(|(s, p)| (s.as_str(), p.value))
            .max_by(|x, y| x.1.cmp(&y.1).then_with(|| y.0.cmp(x.0)))
            .unwrap_or(("-", Decimal::ZERO));
        let w = weight(value, a.market_value);
        Finding {
            value: w,
            threshold: limit,
            priority: if w > limit * Decimal::TWO { Priority::Critical } else { Priority::High },
            message: format!("{symbol} is {} of the account (limit {})", pct(w), pct(limit)),
            details: None,
        }
    }

    /// The largest position value in f64 (0 without positions).
    fn largest_value_f(&self) -> f64 {
        self.positions.values().map(|p| p.value_f).reduce(f64::max).unwrap_or(0.0)
    }
}

/// The largest position value in f64, as the tick path keeps it for concentration:
/// `bound` is at least every position's value, and is one of them when `exact`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Largest {
    pub bound: f64,
    pub exact: bool,
}

impl Largest {
    /// Nothing known (after a change the ticks do not follow).
    pub(crate) const UNKNOWN: Largest = Largest { bound: f64::INFINITY, exact: false };
}

impl Default for Largest {
    fn default() -> Largest {
        Largest::UNKNOWN
    }
}

/// A position's value moved from `was` to `now` (f64): the account's largest
/// (`Account::largest`) follows in O(1). When the largest shrank, its old value
/// stays as a bound: an account well under its limit stays clear without a walk.
#[inline]
pub(crate) fn track_largest(largest: &mut Largest, was: f64, now: f64) {
    if now >= largest.bound {
        // Every other position is at most the old bound, so at most `now`.
        *largest = Largest { bound: now, exact: true };
    } else if largest.exact && was == largest.bound {
        largest.exact = false;
    }
}

#[cfg(test)]
mod tests {
    use super::{track_largest, Largest};

    #[test]
    fn the_largest_follows_ticks_and_is_a_bound_once_it_shrinks() {
        let exact = |bound| Largest { bound, exact: true };
        let mut largest = exact(10.0);
        track_largest(&mut largest, 4.0, 6.0);
        assert_eq!(largest, exact(10.0));
        track_largest(&mut largest, 6.0, 12.0);
        assert_eq!(largest, exact(12.0));
        track_largest(&mut largest, 12.0, 11.0);
        assert_eq!(largest, Largest { bound: 12.0, exact: false }, "another position may now be the largest");
        track_largest(&mut largest, 1.0, 2.0);
        assert_eq!(largest, Largest { bound: 12.0, exact: false });
        track_largest(&mut largest, 2.0, 13.0);
        assert_eq!(largest, exact(13.0), "above the bound, above every position");
        let mut unknown = Largest::UNKNOWN;
        track_largest(&mut unknown, 1.0, 1e300);
        assert_eq!(unknown, Largest::UNKNOWN);
    }

    proptest::proptest! {
        /// Through any moves, the bound is at least every value, and equals the
        /// largest when it says it is exact.
        #[test]
        fn the_bound_holds_through_any_moves(
            start in proptest::collection::vec(0u32..1000, 1..20),
            moves in proptest::collection::vec((0usize..20, 0u32..1000), 0..60),
        ) {
            let mut values: Vec<f64> = start.iter().map(|&v| f64::from(v)).collect();
            let mut largest = Largest { bound: values.iter().copied().fold(f64::MIN, f64::max), exact: true };
            for (i, v) in moves {
                let i = i % values.len();
                let v = f64::from(v);
                track_largest(&mut largest, values[i], v);
                values[i] = v;
                let max = values.iter().copied().fold(f64::MIN, f64::max);
                proptest::prop_assert!(largest.bound >= max);
                if largest.exact {
                    proptest::prop_assert_eq!(largest.bound, max);
                }
            }
        }
    }
}
