//! The risk limits of `RiskLimitsSet`: VaR, CVaR, drawdown, daily loss (the circuit
//! breaker), gross leverage, sector and asset-class weight. A limit that is not set
//! is not checked. Each uses the shared lifecycle (hysteresis, cooldown).

use std::collections::BTreeMap;

use riskstream_schemas::{AlertKind, AlertState, Priority};
use rust_decimal::Decimal;

use super::{level_above, owner_of, pct, Cause, Finding, Rule};
use crate::risk::{decimal_of, f64_of};
use crate::state::{Account, ShardState};

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

impl ShardState {
    /// Gross exposure over equity; `None` without positive equity. Long-only, so
    /// gross exposure is the value of the positions.
    pub(crate) fn gross_leverage(&self, a: &Account) -> Option<Decimal> {
        let equity = a.market_value;
        (equity > Decimal::ZERO).then(|| ((equity - a.cash) / equity).round_dp(10))
    }

    /// The heaviest group (sector or asset class) and its weight.
    fn heaviest_group(&self, a: &Account, group_of: impl Fn(&str) -> String) -> Option<(String, Decimal)> {
        if a.market_value <= Decimal::ZERO {
            return None;
        }
        let mut groups: BTreeMap<String, Decimal> = BTreeMap::new();
        for (symbol, p) in &a.positions {
            *groups.entry(group_of(symbol)).or_default() += p.value;
        }
        let (name, value) = groups.into_iter().max_by(|x, y| x.1.cmp(&y.1).then_with(|| y.0.cmp(&x.0)))?;
        Some((name, (value / a.market_value).round_dp(10)))
    }

    fn group_of(&self, symbol: &str, sector: bool) -> String {
        match self.securities.get(symbol) {
            Some(s) if sector => s.sector.clone(),
            Some(s) => s.asset_class.clone(),
            None => "unknown".to_string(),
        }
    }

    pub(crate) fn evaluate_limits(&mut self, account_id: &str, cause: Cause, out: &mut Vec<riskstream_schemas::Alert>) {
        let a = &self.accounts[account_id];
        let limits = a.limits;
        let value = a.market_value;
        if value <= Decimal::ZERO {
            return;
        }
        let sigma = a.risk.book.sigma();
        let p = &self.model.params;
        let conf = pct(decimal_of(p.confidence));
        let v = f64_of(value);
        let mut checks: Vec<(Rule, Decimal, Decimal, String)> = Vec::new();
        if let Some(limit) = limits.max_var {
            let x = decimal_of(p.z_limit * sigma / v);
            let what = format!("one-bar {conf} parametric normal VaR (EWMA covariance)");
            checks.push((VAR, x, limit, what));
        }
        if let Some(limit) = limits.max_cvar {
            let x = decimal_of(p.es_limit * sigma / v);
            checks.push((CVAR, x, limit, format!("one-bar {conf} parametric normal CVaR (EWMA covariance)")));
        }
        if let Some(limit) = limits.max_drawdown {
            let x = a.risk.marks.drawdown(value).round_dp(10);
            checks.push((DRAWDOWN, x, limit, "drawdown of the unit value from its high-water mark".to_string()));
        }
        if let Some(limit) = limits.max_daily_loss {
            let x = a.risk.marks.day_loss(value).round_dp(10);
            checks.push((DAILY_LOSS, x, limit, "loss since the start of the day".to_string()));
        }
        if let (Some(limit), Some(x)) = (limits.max_gross_leverage, self.gross_leverage(a)) {
            checks.push((LEVERAGE, x, limit, "gross leverage (exposure over equity)".to_string()));
        }
        if let Some(limit) = limits.max_sector_weight {
            if let Some((name, x)) = self.heaviest_group(a, |s| self.group_of(s, true)) {
                checks.push((SECTOR, x, limit, format!("sector {name} weight")));
            }
        }
        if let Some(limit) = limits.max_asset_class_weight {
            if let Some((name, x)) = self.heaviest_group(a, |s| self.group_of(s, false)) {
                checks.push((ASSET_CLASS, x, limit, format!("asset class {name} weight")));
            }
        }
        let hysteresis = self.config.hysteresis;
        for (rule, x, limit, what) in checks {
            let level = level_above(x, limit, hysteresis);
            let shown = |d: Decimal| if rule.name == "leverage" { format!("{}x", d.round_dp(2)) } else { pct(d) };
            let describe = |_: &ShardState| Finding {
                value: x,
                threshold: limit,
                priority: priority(x, limit),
                message: format!("{what} is {} (limit {})", shown(x), shown(limit)),
            };
            let step = self.step_named(rule, account_id, level, cause, owner_of(account_id), describe, out);
            if rule.name == DAILY_LOSS.name && step == Some(AlertState::Raised) {
                self.accounts.get_mut(account_id).expect("evaluated").risk.marks.reducing = true;
                self.dirty.risk_marks.insert(account_id.to_string());
            }
        }
    }
}
