//! The risk limits of `RiskLimitsSet`: VaR, CVaR, drawdown, daily loss (the circuit
//! breaker), gross leverage, sector and asset-class weight. A limit that is not set
//! is not checked. Each uses the shared lifecycle (hysteresis, cooldown).

use riskstream_schemas::{Alert, AlertKind, AlertState, Priority};
use rust_decimal::Decimal;

use super::{level_above, level_above_f64, owner_at, pct, Cause, Finding, Level, Rule};
use crate::risk::{decimal_of, f64_of};
use crate::state::{Account, Market, Position, ShardState, Slot};
use crate::Name;

const VAR: Rule = Rule { kind: AlertKind::VarBreach, name: "var_breach" };
const CVAR: Rule = Rule { kind: AlertKind::CvarBreach, name: "cvar_breach" };
const DRAWDOWN: Rule = Rule { kind: AlertKind::Drawdown, name: "drawdown" };
const DAILY_LOSS: Rule = Rule { kind: AlertKind::DailyLoss, name: "daily_loss" };
const LEVERAGE: Rule = Rule { kind: AlertKind::Leverage, name: "leverage" };
const SECTOR: Rule = Rule { kind: AlertKind::SectorConcentration, name: "sector_concentration" };
const ASSET_CLASS: Rule = Rule { kind: AlertKind::AssetClassConcentration, name: "asset_class_concentration" };

fn priority(value: Decimal, limit: Decimal) -> Priority {
    if value > limit * Decimal::TWO {
        Priority::Critical
    } else {
        Priority::High
    }
}

impl Account {
    /// Gross exposure over equity; `None` without positive equity. Long-only, so
    /// gross exposure is the value of the positions.
    pub(crate) fn gross_leverage(&self) -> Option<Decimal> {
        let equity = self.market_value;
        (equity > Decimal::ZERO).then(|| ((equity - self.cash) / equity).round_dp(10))
    }
}

/// The heaviest group (sector or asset class): its name and value.
fn heaviest_group(market: &Market, a: &Account, sector: bool) -> Option<(&'static str, Decimal)> {
    let groups = group_values(market, a, sector, |p| p.value);
    groups.into_iter().max_by(|x, y| x.1.cmp(&y.1).then_with(|| y.0.cmp(x.0)))
}

/// The heaviest group's value in f64 (from the positions' `value_f`), for the
/// first pass of the group limits.
fn heaviest_group_f64(market: &Market, a: &Account, sector: bool) -> Option<f64> {
    group_values(market, a, sector, |p| p.value_f).into_iter().map(|g| g.1).reduce(f64::max)
}

/// Each group's value (sector or asset class). A handful of groups, so a linear
/// scan over borrowed names (no allocation per name).
fn group_values<T: Copy + std::ops::AddAssign>(
    market: &Market,
    a: &Account,
    sector: bool,
    value_of: impl Fn(&Position) -> T,
) -> Vec<(&'static str, T)> {
    // Names compare as one pointer; `None` is an unlisted symbol's group.
    let mut groups: Vec<(Option<Name>, T)> = Vec::with_capacity(8);
    for p in a.positions.values() {
        let name = market.security(p.sym).map(|s| if sector { s.sector } else { s.asset_class });
        match groups.iter_mut().find(|(g, _)| *g == name) {
            Some((_, v)) => *v += value_of(p),
            None => groups.push((name, value_of(p))),
        }
    }
    groups.into_iter().map(|(g, v)| (g.map_or("unknown", |g| g.as_str()), v)).collect()
}

impl ShardState {
    /// Checks every limit the account has. Levels are decided with multiplications
    /// (decimals) or in `f64` (model numbers); values and messages are made only
    /// when an alert is raised or cleared.
    pub(crate) fn evaluate_limits(&mut self, slot: Slot, cause: Cause, out: &mut Vec<Alert>) {
        let a = self.book.accounts.at(slot);
        let (limits, value) = (*a.limits, a.market_value);
        if !a.limits.any_checked() || value <= Decimal::ZERO {
            return;
        }
        // The signals' subject is the account id: rows and alert ids name it.
        let account_id = a.account_id.clone();
        let id = account_id.as_str();
        let h = self.config.hysteresis;
        // The first returns make a noisy covariance (one bar is the whole EWMA): model
        // limits wait for `min_observations` bar closes, as the market-risk rules do.
        let warm = self.risk.model.scalars().bars >= self.risk.model.params.min_observations;
        if let (Some(limit), true) = (limits.max_var, warm) {
            self.check_model_limit((slot, id), VAR, limit, cause, out);
        }
        if let (Some(limit), true) = (limits.max_cvar, warm) {
            self.check_model_limit((slot, id), CVAR, limit, cause, out);
        }
        let marks = &self.book.accounts.at(slot).risk.marks;
        if let Some(limit) = limits.max_drawdown {
            // drawdown = 1 - V / (units x high water), compared without dividing.
            let top = marks.units * marks.high_water;
            let level = below(value, top * (Decimal::ONE - limit), top * (Decimal::ONE - limit * (Decimal::ONE - h)));
            let x = move |s: &ShardState| s.book.accounts.at(slot).risk.marks.drawdown(value).round_dp(10);
            self.step_limit(
                (slot, id),
                DRAWDOWN,
                level,
                limit,
                x,
                |_| "drawdown of the unit value from its high-water mark".into(),
                cause,
                out,
            );
        }
        let marks = &self.book.accounts.at(slot).risk.marks;
        if let (Some(limit), true) = (limits.max_daily_loss, marks.day_start > Decimal::ZERO) {
            let pnl = marks.day_pnl(value);
            let start = marks.day_start;
            let level = below(pnl, -limit * start, -limit * (Decimal::ONE - h) * start);
            let x = move |s: &ShardState| s.book.accounts.at(slot).risk.marks.day_loss(value).round_dp(10);
            let step = self.step_limit(
                (slot, id),
                DAILY_LOSS,
                level,
                limit,
                x,
                |_| "loss since the start of the day".into(),
                cause,
                out,
            );
            if step == Some(AlertState::Raised) {
                self.book.accounts.at_mut(slot).risk.marks.reducing = true;
                self.risk.changed.marks.insert(slot);
            }
        }
        let a = self.book.accounts.at(slot);
        if let Some(limit) = limits.max_gross_leverage {
            let gross = value - a.cash;
            let level = level_above(gross, limit * value, h);
            let x = move |s: &ShardState| s.book.accounts.at(slot).gross_leverage().unwrap_or_default();
            self.step_limit(
                (slot, id),
                LEVERAGE,
                level,
                limit,
                x,
                |_| "gross leverage (exposure over equity)".into(),
                cause,
                out,
            );
        }
        for (rule, limit, sector) in
            [(SECTOR, limits.max_sector_weight, true), (ASSET_CLASS, limits.max_asset_class_weight, false)]
        {
            let Some(limit) = limit else { continue };
            let a = self.book.accounts.at(slot);
            let Some(heaviest_f) = heaviest_group_f64(&self.market, a, sector) else { continue };
            // In f64 first (rules/drift says why); exact near an edge.
            let level = match level_above_f64(heaviest_f, f64_of(limit) * f64_of(value), f64_of(h)) {
                Some(level) => level,
                None => {
                    let heaviest = heaviest_group(&self.market, a, sector).map_or(Decimal::ZERO, |g| g.1);
                    level_above(heaviest, limit * value, h)
                }
            };
            let what = move |s: &ShardState| {
                let name = heaviest_group(&s.market, s.book.accounts.at(slot), sector).map_or("-", |g| g.0);
                format!("{} {name} weight", if sector { "sector" } else { "asset class" })
            };
            let x = move |s: &ShardState| {
                let heaviest =
                    heaviest_group(&s.market, s.book.accounts.at(slot), sector).map_or(Decimal::ZERO, |g| g.1);
                (heaviest / value).round_dp(10)
            };
            self.step_limit((slot, id), rule, level, limit, x, what, cause, out);
        }
    }

    /// VaR or CVaR (one bar, parametric normal, at the limit confidence) as a
    /// fraction of the value, decided in `f64`.
    fn check_model_limit(
        &mut self,
        (slot, id): (Slot, &str),
        rule: Rule,
        limit: Decimal,
        cause: Cause,
        out: &mut Vec<Alert>,
    ) {
        let a = self.book.accounts.at(slot);
        let p = &self.risk.model.params;
        let multiple = if rule.name == VAR.name { p.z_limit } else { p.es_limit };
        let x = multiple * a.risk.book.sigma() / f64_of(a.market_value);
        let (l, h) = (f64_of(limit), f64_of(self.config.hysteresis));
        let level = if x > l {
            Level::Breach
        } else if x <= l * (1.0 - h) {
            Level::Clear
        } else {
            Level::Hold
        };
        let measure = if rule.name == VAR.name { "VaR" } else { "CVaR" };
        let conf = p.confidence;
        let what = move |_: &ShardState| {
            format!("one-bar {} parametric normal {measure} (EWMA covariance)", pct(decimal_of(conf)))
        };
        self.step_limit((slot, id), rule, level, limit, move |_| decimal_of(x), what, cause, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn step_limit(
        &mut self,
        (slot, id): (Slot, &str),
        rule: Rule,
        level: Level,
        limit: Decimal,
        value: impl FnOnce(&ShardState) -> Decimal,
        what: impl FnOnce(&ShardState) -> String,
        cause: Cause,
        out: &mut Vec<Alert>,
    ) -> Option<AlertState> {
        let describe = |s: &ShardState| {
            let x = value(s);
            // Three decimals of a percent: VaR limits are often a fraction of one.
            let shown = |d: Decimal| match rule.name == LEVERAGE.name {
                true => format!("{:.2}x", d.round_dp(2)),
                false => format!("{:.3}%", (d * Decimal::ONE_HUNDRED).round_dp(3)),
            };
            Finding {
                value: x,
                threshold: limit,
                priority: priority(x, limit),
                message: format!("{} is {} (limit {})", what(s), shown(x), shown(limit)),
                details: None,
            }
        };
        self.step_named(rule, id, level, cause, owner_at(slot), describe, out)
    }
}

/// Breach when `x` is below `breach_below`, clear at or above `clear_from`.
fn below(x: Decimal, breach_below: Decimal, clear_from: Decimal) -> Level {
    if x < breach_below {
        Level::Breach
    } else if x >= clear_from {
        Level::Clear
    } else {
        Level::Hold
    }
}
