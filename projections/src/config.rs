//! Rule settings. Defaults follow the references in REFERENCES.md where one exists.

use crate::dec;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Settings of the alert rules, shared by every shard of an engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuleConfig {
    /// Default absolute drift band (weight units): 0.05 = 5 percentage points (the 5/25 rule).
    pub band_abs: Decimal,
    /// Default relative drift band: 0.25 = 25% of the target weight (the 5/25 rule).
    pub band_rel: Decimal,
    /// An alert clears only once its value is back within `threshold * (1 - hysteresis)`.
    pub hysteresis: Decimal,
    /// After raising, the same rule on the same subject is not raised again for this
    /// many seconds of event time.
    pub cooldown_secs: i64,
    /// Default largest weight of a single position before `concentration` fires.
    pub max_position_weight: Decimal,
    /// Move against the previous day's last price that raises `market_move` (0.10 = 10%).
    pub market_move: Decimal,
}

impl Default for RuleConfig {
    fn default() -> Self {
        RuleConfig {
            band_abs: dec(5, 2),
            band_rel: dec(25, 2),
            hysteresis: dec(1, 1),
            cooldown_secs: 3_600,
            max_position_weight: dec(25, 2),
            market_move: dec(10, 2),
        }
    }
}
