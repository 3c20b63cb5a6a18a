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
    pub(crate) fn concentration_level(&self, config: &RuleConfig) -> Option<Level> {
        let a = self;
        let total = a.market_value;
        if total <= Decimal::ZERO {
            return None;
        }
        let limit = a.max_position_weight(config);
        // In f64 first (rules/drift says why); exact near an edge.
        let largest_f = a.largest.unwrap_or_else(|| a.largest_value_f());
        let approximate = level_above_f64(largest_f, f64_of(limit) * f64_of(total), f64_of(config.hysteresis));
        if approximate.is_some() {
            return approximate;
        }
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

    /// Walks the positions for the largest value if a tick left it unknown.
    pub(crate) fn refresh_largest(&mut self) {
        if self.largest.is_none() {
            self.largest = Some(self.largest_value_f());
        }
    }
}

/// A position's value moved from `was` to `now` (f64): the account's largest
/// (`Account::largest`) follows in O(1), or is unknown when the largest one shrank.
#[inline]
pub(crate) fn track_largest(largest: &mut Option<f64>, was: f64, now: f64) {
    *largest = match *largest {
        Some(m) if now >= m => Some(now),
        Some(m) if was == m => None,
        kept => kept,
    };
}

#[cfg(test)]
mod tests {
    use super::track_largest;

    #[test]
    fn the_largest_follows_ticks_and_is_walked_again_when_it_shrinks() {
        let mut largest = Some(10.0);
        track_largest(&mut largest, 4.0, 6.0);
        assert_eq!(largest, Some(10.0));
        track_largest(&mut largest, 6.0, 12.0);
        assert_eq!(largest, Some(12.0));
        track_largest(&mut largest, 12.0, 11.0);
        assert_eq!(largest, None, "another position may now be the largest");
        track_largest(&mut largest, 1.0, 2.0);
        assert_eq!(largest, None);
    }
}
