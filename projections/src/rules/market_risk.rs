//! Market events from the risk model, evaluated at bar closes (gap moves at a
//! day's first price): `volatility_spike` (short over long EWMA volatility above a
//! factor), `correlation_breakdown` (the universe's average correlation moved away
//! from its long-run level) and `gap_move` (the open against the previous close).
//! Symbol alerts fan out to the shard's holders of the symbol.

use riskstream_schemas::{Alert, AlertKind, Priority};
use rust_decimal::Decimal;

use super::{level_above, pct, Cause, Finding, Level, Rule};
use crate::risk::decimal_of;
use crate::state::{ShardState, Sym};

const SPIKE: Rule = Rule { kind: AlertKind::VolatilitySpike, name: "volatility_spike" };
const CORRELATION: Rule = Rule { kind: AlertKind::MarketMove, name: "correlation_breakdown" };
const GAP: Rule = Rule { kind: AlertKind::MarketMove, name: "gap_move" };

/// The subject of universe-wide rules.
pub const UNIVERSE: &str = "*universe";

impl ShardState {
    /// The shard's accounts holding the symbol: the recipients of a symbol alert.
    pub(crate) fn holders_of(&self, sym: Sym) -> Vec<(String, String)> {
        let mut slots: Vec<_> = self.book.holders_of(sym).iter().map(|h| h.slot).collect();
        self.book.accounts.sort_by_id(&mut slots);
        slots.into_iter().map(|s| self.book.accounts.at(s)).map(|a| (a.account_id.clone(), a.user_id.clone())).collect()
    }

    pub(crate) fn evaluate_volatility_spike(&mut self, symbol: &str, cause: Cause, out: &mut Vec<Alert>) {
        let (Some(i), Some(sym)) = (self.risk.model.index_of(symbol), self.market.sym(symbol)) else { return };
        let row = self.risk.model.row(i);
        let p = &self.risk.model.params;
        if row.observations < p.min_observations || row.long_var <= 0.0 {
            return;
        }
        let ratio = decimal_of((row.short_var / row.long_var).sqrt());
        let factor = decimal_of(p.vol_spike_factor);
        let level = level_above(ratio, factor, self.config.hysteresis);
        let cfg = &self.config.risk;
        let message = format!(
            "{symbol} short-window volatility is {}x its long-window level (EWMA lambda {} vs {}, factor {})",
            ratio.round_dp(2),
            cfg.short_lambda,
            cfg.long_lambda,
            factor
        );
        let describe = move |_: &ShardState| Finding {
            value: ratio,
            threshold: factor,
            priority: if ratio > factor * Decimal::TWO { Priority::Critical } else { Priority::High },
            message,
            details: None,
        };
        self.step_named(SPIKE, symbol, level, cause, |s| s.holders_of(sym), describe, out);
    }

    /// Recipients: accounts with at least two positions (a change of correlation
    /// changes their diversification).
    pub(crate) fn evaluate_correlation(&mut self, cause: Cause, out: &mut Vec<Alert>) {
        let s = self.risk.model.scalars();
        let p = &self.risk.model.params;
        if s.corr_bars < p.min_observations {
            return;
        }
        let shift = decimal_of((s.corr_short - s.corr_long).abs());
        let threshold = decimal_of(p.correlation_shift);
        let (short, long) = (s.corr_short, s.corr_long);
        let level = level_above(shift, threshold, self.config.hysteresis);
        let describe = move |_: &ShardState| Finding {
            value: shift,
            threshold,
            priority: Priority::Medium,
            message: format!(
                "average correlation across the universe is {:.2} in the short window vs {:.2} in the long window",
                short, long
            ),
            details: None,
        };
        let recipients = |s: &ShardState| {
            let mut ids: Vec<(String, String)> = s
                .book
                .accounts
                .values()
                .filter(|a| a.positions.len() >= 2)
                .map(|a| (a.account_id.clone(), a.user_id.clone()))
                .collect();
            ids.sort_unstable();
            ids
        };
        self.step_named(CORRELATION, UNIVERSE, level, cause, recipients, describe, out);
    }

    /// At a symbol's first price of a day: breach when the open is `gap_move` or more
    /// away from the previous close, clear at the next quiet open.
    pub(crate) fn evaluate_gap(&mut self, sym: Sym, cause: Cause, out: &mut Vec<Alert>) {
        let Some(info) = self.market.price(sym) else { return };
        let symbol = self.market.name(sym);
        if info.prev_close.is_zero() {
            return;
        }
        let gap = info.price / info.prev_close - Decimal::ONE;
        let threshold = self.config.risk.gap_move;
        let level = if gap.abs() >= threshold { Level::Breach } else { Level::Clear };
        let describe = move |_: &ShardState| Finding {
            value: gap.round_dp(6),
            threshold,
            priority: if gap.abs() >= threshold * Decimal::TWO { Priority::High } else { Priority::Medium },
            message: format!("{symbol} opened {} against the previous close", pct(gap)),
            details: None,
        };
        self.step_named(GAP, symbol, level, cause, |s| s.holders_of(sym), describe, out);
    }
}
