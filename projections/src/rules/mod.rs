//! Alert rules and their shared lifecycle: raised when the condition becomes true,
//! cleared once it is false beyond the hysteresis margin, re-raised only after the
//! cooldown (event time). Ids derive from (shard, seq, rule, account) so a replay
//! or a crash recovery reproduces them.

mod backtest;
mod concentration;
mod drift;
mod harvest;
mod limits;
mod market_move;
mod market_risk;
mod signals;

pub(crate) use concentration::{track_largest, Largest};
pub(crate) use drift::{DriftRange, Slopes};
pub use harvest::{BlockedLot, HarvestLot, HarvestView};
pub(crate) use harvest::{HarvestCut, HARVEST};
pub use market_risk::UNIVERSE;
pub use signals::SignalState;
pub(crate) use signals::Signals;

use riskstream_schemas::{Alert, AlertKind, AlertState, Priority, RecordRef, Timestamp};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use crate::state::{Account, ShardState, Slot};

const DRIFT: Rule = Rule { kind: AlertKind::Drift, name: "drift" };
const CONCENTRATION: Rule = Rule { kind: AlertKind::Concentration, name: "concentration" };

/// What a rule sees now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// Beyond the threshold.
    Breach,
    /// Inside the threshold but not past the hysteresis margin.
    Hold,
    /// Back within `threshold x (1 - hysteresis)`.
    Clear,
}

/// The numbers behind an alert, computed only when its state changes.
#[derive(Debug, Clone)]
pub(crate) struct Finding {
    pub value: Decimal,
    pub threshold: Decimal,
    pub priority: Priority,
    pub message: String,
    /// Structured inputs for the alert (`Alert::details`).
    pub details: Option<serde_json::Value>,
}

/// The deterministic alert id: hex of the first 16 bytes of
/// SHA-256(shard || seq || rule || subject || account), strings length-prefixed. The
/// subject (the symbol of a market move, the account of a drift) is part of it because
/// one record can raise one rule on several subjects for the same account.
pub fn alert_id(at: RecordRef, rule: &str, subject: &str, account_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(at.shard.to_be_bytes());
    h.update(at.seq.to_be_bytes());
    for part in [rule, subject] {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.update(account_id.as_bytes());
    let digest = h.finalize();
    hex::encode(&digest[..16])
}

/// A rule: its alert kind and its name (the signal key and the alert's `rule`).
/// Most rules are named after their kind; `gap_move` and `correlation_breakdown`
/// are rules of kind `market_move`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rule {
    pub kind: AlertKind,
    pub name: &'static str,
}

impl Rule {
    pub fn of(kind: AlertKind) -> Rule {
        Rule { kind, name: kind.as_str() }
    }
}

/// Breach above `limit`, clear at or below `limit x (1 - hysteresis)`.
pub(crate) fn level_above(value: Decimal, limit: Decimal, hysteresis: Decimal) -> Level {
    if value > limit {
        Level::Breach
    } else if value <= limit * (Decimal::ONE - hysteresis) {
        Level::Clear
    } else {
        Level::Hold
    }
}

/// Relative distance from an edge under which a decision made in f64 defers to the
/// exact decimal one: thousands of times the worst rounding of those passes (a few
/// ulps of each value, ~1e-16, and of a sum of up to thousands of them).
pub(crate) const EDGE: f64 = 1e-12;

/// [`level_above`] in f64, from values within a few ulps of the exact ones; `None`
/// when `value` is within [`EDGE`] of the limit or of its hysteresis margin (then
/// only the exact comparison can tell).
pub(crate) fn level_above_f64(value: f64, limit: f64, hysteresis: f64) -> Option<Level> {
    let margin = EDGE * (value.abs() + limit.abs());
    let inner = limit * (1.0 - hysteresis);
    if value > limit + margin {
        Some(Level::Breach)
    } else if value >= limit - margin {
        None
    } else if value < inner - margin {
        Some(Level::Clear)
    } else if value > inner + margin {
        Some(Level::Hold)
    } else {
        None
    }
}

/// The account in `slot` as the only recipient.
pub(crate) fn owner_at(slot: Slot) -> impl FnOnce(&ShardState) -> Vec<(String, String)> {
    move |s: &ShardState| {
        let a = s.book.accounts.at(slot);
        vec![(a.account_id.clone(), a.user_id.clone())]
    }
}

/// Where and when the evaluated record sits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cause {
    pub at: RecordRef,
    pub ts: Timestamp,
}

impl ShardState {
    /// Steps the lifecycle of `rule` on `subject`; on a state change, emits one
    /// alert per recipient account (`(account_id, user_id)`) and returns the change.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn step_named(
        &mut self,
        rule: Rule,
        subject: &str,
        level: Level,
        cause: Cause,
        recipients: impl FnOnce(&ShardState) -> Vec<(String, String)>,
        describe: impl FnOnce(&ShardState) -> Finding,
        out: &mut Vec<Alert>,
    ) -> Option<AlertState> {
        let state = self.signals.transition(rule.name, subject, level, cause.ts, self.config.cooldown_secs)?;
        let finding = describe(self);
        let recipients = recipients(self);
        self.signals.record(rule, subject, state, cause, recipients, finding, out);
        Some(state)
    }

    /// [`ShardState::step_named`] of an account rule the account mirrors under `bit`
    /// of [`Account::raised`]: a level that cannot change the state (not a breach
    /// while clear, not a clear while raised) costs no lookup.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn step_account(
        &mut self,
        rule: Rule,
        bit: u8,
        slot: Slot,
        level: Level,
        cause: Cause,
        describe: impl FnOnce(&ShardState, &Account) -> Finding,
        out: &mut Vec<Alert>,
    ) -> Option<AlertState> {
        let a = self.book.accounts.at(slot);
        let raised = a.raised & bit != 0;
        if !matches!((raised, level), (false, Level::Breach) | (true, Level::Clear)) {
            return None;
        }
        let id = a.account_id.clone();
        let describe = |s: &ShardState| describe(s, s.book.accounts.at(slot));
        let state = self.step_named(rule, &id, level, cause, owner_at(slot), describe, out)?;
        let a = self.book.accounts.at_mut(slot);
        match state {
            AlertState::Raised => a.raised |= bit,
            AlertState::Cleared => a.raised &= !bit,
        }
        Some(state)
    }

    /// Sets each account's [`Account::raised`] from the signals (after a load).
    pub(crate) fn mirror_raised(&mut self) {
        let signals = &self.signals;
        for (_, a) in self.book.accounts.slots_mut() {
            a.raised = [(DRIFT, Account::DRIFT), (CONCENTRATION, Account::CONCENTRATION), (HARVEST, Account::HARVEST)]
                .into_iter()
                .filter(|(rule, _)| signals.get(rule.name, &a.account_id).is_some_and(|s| s.raised))
                .fold(0, |bits, (_, bit)| bits | bit);
        }
    }

    /// Runs the account rules (drift, concentration, the risk limits, harvest) on
    /// the account in `slot`.
    pub(crate) fn evaluate_account(&mut self, slot: Slot, cause: Cause, out: &mut Vec<Alert>) {
        if let Some(level) = self.book.accounts.at_mut(slot).drift_level(&self.config) {
            let describe = |s: &ShardState, a: &Account| a.drift_finding(&s.config);
            self.step_account(DRIFT, Account::DRIFT, slot, level, cause, describe, out);
        }
        if let Some(level) = self.book.accounts.at_mut(slot).concentration_level(&self.config) {
            let describe = |s: &ShardState, a: &Account| a.concentration_finding(&s.config);
            self.step_account(CONCENTRATION, Account::CONCENTRATION, slot, level, cause, describe, out);
        }
        self.mark_value(slot);
        self.evaluate_limits(slot, cause, out);
        self.evaluate_harvest(slot, cause, out);
    }
}

pub(crate) fn pct(weight: Decimal) -> String {
    // `{:.2}` alone truncates a Decimal; round first.
    format!("{:.2}%", (weight * Decimal::ONE_HUNDRED).round_dp(2))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::risk::f64_of;

    proptest! {
        /// Whenever the f64 comparison decides, it decides what the exact one does,
        /// including for values built to sit on the limit or on its hysteresis
        /// margin, or one unit of the last place either side of them.
        #[test]
        fn the_f64_limit_check_decides_only_what_the_exact_one_decides(
            units in 0i64..1_000_000_000_000,
            scale in 0u32..8,
            limit in 1i64..10_000,
            total in (1i64..100_000_000_000, 0u32..4).prop_map(|(u, s)| Decimal::new(u, s)),
            hysteresis in 0i64..5_000,
            edge in 0u8..3,
            nudge in -1i64..=1,
        ) {
            let (limit, h) = (Decimal::new(limit, 4), Decimal::new(hysteresis, 4));
            let cap = limit * total;
            let value = match edge {
                0 => Decimal::new(units, scale),
                1 => cap + Decimal::new(nudge, 28),
                _ => cap * (Decimal::ONE - h) + Decimal::new(nudge, 28),
            };
            let exact = level_above(value, cap, h);
            if let Some(level) = level_above_f64(f64_of(value), f64_of(limit) * f64_of(total), f64_of(h)) {
                prop_assert_eq!(level, exact);
                prop_assert!(edge == 0, "a value on an edge must be left to the exact check");
            }
        }
    }
}
