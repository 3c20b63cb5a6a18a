//! `concentration`: one position weighs more than the account's limit.

use riskstream_schemas::Priority;
use rust_decimal::Decimal;

use super::{level_above, level_above_f64, pct, Finding, Level};
use crate::risk::f64_of;
use crate::state::ShardState;
use crate::valuation::weight;

impl ShardState {
    fn max_position_weight(&self, account_id: &str) -> Decimal {
        let a = &self.accounts[account_id];
        a.limits.max_position_weight.unwrap_or(self.config.max_position_weight)
    }

    /// `None` when the account has no positive value to weigh against.
    pub(crate) fn concentration_level(&self, account_id: &str) -> Option<Level> {
        let a = self.accounts.get(account_id)?;
        let total = a.market_value;
        if total <= Decimal::ZERO {
            return None;
        }
        let limit = self.max_position_weight(account_id);
        // In f64 first (rules/drift says why); exact near an edge.
        let largest_f = a.positions.values().map(|p| p.value_f).fold(f64::NEG_INFINITY, f64::max);
        let largest_f = if a.positions.is_empty() { 0.0 } else { largest_f };
        let approximate = level_above_f64(largest_f, f64_of(limit) * f64_of(total), f64_of(self.config.hysteresis));
        if approximate.is_some() {
            return approximate;
        }
        let largest = a.positions.values().map(|p| p.value).max().unwrap_or_default();
        Some(level_above(largest, limit * total, self.config.hysteresis))
    }

    pub(crate) fn concentration_finding(&self, account_id: &str) -> Finding {
        let a = &self.accounts[account_id];
        let limit = self.max_position_weight(account_id);
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
}
