//! `market_move`: a security moved more than the threshold against the previous
//! event-time day's last price. Raised once per symbol and fanned out to the
//! shard's accounts holding it.

use riskstream_schemas::{AlertKind, Priority};
use rust_decimal::Decimal;

use super::{pct, Cause, Finding, Level, Rule};
use crate::state::{ShardState, Sym};

impl ShardState {
    fn daily_move(&self, sym: Sym) -> Option<Decimal> {
        let p = self.market.price(sym)?;
        if p.prev_close.is_zero() {
            return None;
        }
        Some(p.price / p.prev_close - Decimal::ONE)
    }

    pub(crate) fn evaluate_market_move(&mut self, sym: Sym, cause: Cause, out: &mut Vec<riskstream_schemas::Alert>) {
        let Some(change) = self.daily_move(sym) else { return };
        let symbol = self.market.name(sym);
        let threshold = self.config.market_move;
        let size = change.abs();
        let level = if size >= threshold {
            Level::Breach
        } else if size <= threshold * (Decimal::ONE - self.config.hysteresis) {
            Level::Clear
        } else {
            Level::Hold
        };
        let describe = |_: &ShardState| Finding {
            value: change.round_dp(6),
            threshold,
            priority: if size >= threshold * Decimal::TWO { Priority::High } else { Priority::Medium },
            message: format!("{symbol} moved {} against the previous close", pct(change)),
            details: None,
        };
        self.step_named(Rule::of(AlertKind::MarketMove), symbol, level, cause, |s| s.holders_of(sym), describe, out);
    }
}
