//! `concentration`: one position weighs more than the account's limit.

use riskstream_schemas::Priority;
use rust_decimal::Decimal;

use super::{level_above, pct, Finding, Level};
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
        let largest = a.positions.values().map(|p| p.value).max().unwrap_or_default();
        let limit = self.max_position_weight(account_id);
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
