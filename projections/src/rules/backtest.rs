//! `var_backtest`: the account's VaR model left the Basel green zone over its last
//! full window of backtested bars (none before the window is full) (`var_backtest`, yellow or red) or reached red
//! (`var_backtest_red`). Each zone change is an alert: entering raises, leaving
//! clears; there is no hysteresis on a count.

use riskstream_schemas::{Alert, AlertKind, Priority};
use rust_decimal::Decimal;

use super::{owner_at, Cause, Finding, Level, Rule};
use crate::risk::stats::{basel_zone, kupiec_lr, Zone};
use crate::state::{ShardState, Slot};

const NOT_GREEN: Rule = Rule { kind: AlertKind::VarBacktest, name: "var_backtest" };
const RED: Rule = Rule { kind: AlertKind::VarBacktest, name: "var_backtest_red" };

impl ShardState {
    pub(crate) fn evaluate_backtest(&mut self, slot: Slot, cause: Cause, out: &mut Vec<Alert>) {
        let a = self.book.accounts.at(slot);
        let (h, id) = (&a.risk.history, a.account_id.clone());
        let (x, t) = (h.exception_count(), h.exceptions.len() as u32);
        // The traffic light is defined over a full window (250 bars by default):
        // on a short one a single exception already reads yellow.
        if (t as usize) < self.risk.model.params.window {
            return;
        }
        let p = 1.0 - self.risk.model.params.confidence;
        let zone = basel_zone(x, t, p);
        let lr = kupiec_lr(x, t, p);
        for (rule, breach, priority) in
            [(NOT_GREEN, zone >= Zone::Yellow, Priority::Medium), (RED, zone == Zone::Red, Priority::High)]
        {
            let level = if breach { Level::Breach } else { Level::Clear };
            let describe = move |_: &ShardState| Finding {
                value: Decimal::from(x),
                threshold: Decimal::from(t),
                priority,
                message: format!(
                    "VaR backtest: {x} exceptions in {t} bars at {:.0}% (Basel zone {zone:?}, Kupiec LR {lr:.3})",
                    (1.0 - p) * 100.0
                ),
                details: None,
            };
            self.step_named(rule, &id, level, cause, owner_at(slot), describe, out);
        }
    }
}
