//! What the API shows: every risk number with the method, confidence, horizon and
//! conventions that produced it, so it can be reproduced elsewhere.

use riskstream_schemas::Timestamp;
use rust_decimal::Decimal;
use serde::Serialize;

use super::stats::{self, Zone};
use super::{f64_of, AccountRisk};
use crate::state::{Limits, ShardState};

/// One VaR or CVaR figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    /// `var` or `cvar` (expected shortfall).
    pub measure: &'static str,
    /// `parametric_normal`, `parametric_student_t`, `cornish_fisher` or `historical`.
    pub method: &'static str,
    pub confidence: f64,
    pub horizon_bars: u32,
    /// Loss in the account's currency (positive).
    pub value: f64,
    /// `value` over the market value.
    pub fraction: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conventions {
    pub covariance: &'static str,
    pub lambda: Decimal,
    pub bar_secs: i64,
    pub returns: &'static str,
    pub scaling: &'static str,
    pub student_t_dof: Decimal,
    pub historical: &'static str,
    pub quantile: &'static str,
    /// Bar closes the model has seen.
    pub model_bars: u32,
    /// Fewest bars of history among the account's positions.
    pub min_position_observations: u32,
    pub shrinkage: f64,
    /// `None` when singular or before the first matrix.
    pub condition_number: Option<f64>,
    pub condition_exact: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentVar {
    pub symbol: String,
    pub exposure: f64,
    /// Euler contribution to the one-bar normal VaR at the limit confidence.
    pub component_var: f64,
    pub share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drawdown {
    pub unit_value: Option<Decimal>,
    pub high_water: Decimal,
    pub drawdown: Decimal,
    pub max_drawdown: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Daily {
    pub day: Option<String>,
    pub start_value: Decimal,
    pub flows: Decimal,
    pub pnl: Decimal,
    pub loss_fraction: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backtest {
    pub method: &'static str,
    pub confidence: f64,
    pub observations: u32,
    pub exceptions: u32,
    pub kupiec_lr: f64,
    pub kupiec_p_value: f64,
    pub zone: Zone,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskView {
    pub account_id: String,
    pub market_value: Decimal,
    pub conventions: Conventions,
    /// One-bar P&L standard deviation (money) and as a fraction of the value.
    pub volatility: f64,
    pub volatility_fraction: f64,
    pub figures: Vec<Figure>,
    pub components: Vec<ComponentVar>,
    pub drawdown: Drawdown,
    pub daily: Daily,
    /// Gross exposure over equity.
    pub gross_leverage: Option<Decimal>,
    /// `normal`, or `reducing` after a daily-loss breach until the next day or reset.
    pub state: &'static str,
    pub backtest: Backtest,
    pub limits: Limits,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SymbolRiskView {
    pub symbol: String,
    pub observations: u32,
    pub close: f64,
    /// EWMA (RiskMetrics) volatility of one-bar log returns, before repair.
    pub volatility: f64,
    /// Volatility in the repaired matrix risk is computed with.
    pub model_volatility: f64,
    pub short_volatility: f64,
    pub long_volatility: f64,
    pub spike_ratio: Option<f64>,
    pub lambda: Decimal,
    pub short_lambda: Decimal,
    pub long_lambda: Decimal,
    pub bar_secs: i64,
    pub returns: &'static str,
}

const RETURNS: &str = "log returns ln(close/previous close) per bar, zero mean";
const CONFIDENCES: [f64; 2] = [0.95, 0.99];

fn scaled(one_bar: f64, horizon: u32) -> f64 {
    one_bar * f64::from(horizon).sqrt()
}

impl ShardState {
    pub fn risk_view(&self, account_id: &str) -> Option<RiskView> {
        let a = self.book.accounts.get(account_id)?;
        let risk = &a.risk;
        let value = a.market_value;
        let v = f64_of(value);
        let frac = |x: f64| if v > 0.0 { x / v } else { 0.0 };
        let cfg = &self.config.risk;
        let sigma = risk.book.sigma();
        let mut figures = self.parametric_figures(sigma, &frac);
        figures.extend(self.history_figures(risk, &frac));
        let params = &self.risk.model.params;
        let components = self.components(a, params.z_limit);
        let min_obs = a
            .positions
            .keys()
            .map(|s| self.risk.model.index_of(s).map_or(0, |i| self.risk.model.row(i).observations))
            .min()
            .unwrap_or(0);
        let repair = self.risk.model.repair();
        let conventions = Conventions {
            covariance: "RiskMetrics EWMA, S = lambda S + (1 - lambda) r r', clipped to PSD, Ledoit-Wolf shrinkage to mean-variance x I when ill-conditioned",
            lambda: cfg.lambda,
            bar_secs: cfg.bar_secs,
            returns: RETURNS,
            scaling: "h-bar = one-bar x sqrt(h); no annualisation",
            student_t_dof: cfg.student_t_dof,
            historical: "hypothetical P&L per bar: positions at the previous close revalued at this close",
            quantile: "k = floor(n (1 - confidence)) + 1; VaR = k-th largest loss, CVaR = mean of the k largest",
            model_bars: self.risk.model.scalars().bars,
            min_position_observations: min_obs,
            shrinkage: repair.shrinkage,
            // A condition number is at least 1; below that there is no matrix yet.
            condition_number: (repair.condition.is_finite() && repair.condition >= 1.0).then_some(repair.condition),
            condition_exact: repair.exact,
        };
        Some(RiskView {
            account_id: a.account_id.clone(),
            market_value: value,
            conventions,
            volatility: sigma,
            volatility_fraction: frac(sigma),
            figures,
            components,
            drawdown: Drawdown {
                unit_value: risk.marks.unit_value(value).map(|u| u.round_dp(10)),
                high_water: risk.marks.high_water.round_dp(10),
                drawdown: risk.marks.drawdown(value).round_dp(10),
                max_drawdown: risk.marks.max_drawdown.round_dp(10),
            },
            daily: Daily {
                day: (risk.marks.day > 0)
                    .then(|| Timestamp::from_micros(risk.marks.day * riskstream_schemas::MICROS_PER_DAY).to_rfc3339()),
                start_value: risk.marks.day_start,
                flows: risk.marks.day_flows,
                pnl: risk.marks.day_pnl(value),
                loss_fraction: risk.marks.day_loss(value).round_dp(10),
            },
            gross_leverage: a.gross_leverage(),
            state: if risk.marks.reducing { "reducing" } else { "normal" },
            backtest: self.backtest(risk),
            limits: *a.limits,
        })
    }

    fn parametric_figures(&self, sigma: f64, frac: &dyn Fn(f64) -> f64) -> Vec<Figure> {
        let dof = f64_of(self.config.risk.student_t_dof);
        let mut out = Vec::new();
        let mut horizons = vec![1, self.config.risk.horizon_bars];
        horizons.dedup();
        for horizon in horizons {
            for c in CONFIDENCES {
                let s = scaled(sigma, horizon);
                let mut add = |measure, method, value: f64| {
                    out.push(Figure {
                        measure,
                        method,
                        confidence: c,
                        horizon_bars: horizon,
                        value,
                        fraction: frac(value),
                    })
                };
                add("var", "parametric_normal", stats::normal_var(s, c));
                add("cvar", "parametric_normal", stats::normal_es(s, c));
                add("var", "parametric_student_t", stats::student_t_var(s, c, dof));
                add("cvar", "parametric_student_t", stats::student_t_es(s, c, dof));
            }
        }
        out
    }

    /// Cornish-Fisher (moments of the P&L window) and historical figures, one bar.
    fn history_figures(&self, risk: &AccountRisk, frac: &dyn Fn(f64) -> f64) -> Vec<Figure> {
        let pnl: Vec<f64> = risk.history.pnl.iter().copied().collect();
        let sigma = risk.book.sigma();
        let mut out = Vec::new();
        for c in CONFIDENCES {
            let mut add = |measure, method, value: f64| {
                out.push(Figure { measure, method, confidence: c, horizon_bars: 1, value, fraction: frac(value) })
            };
            if let Some((skew, kurt)) = stats::moments(&pnl) {
                add("var", "cornish_fisher", sigma * stats::cornish_fisher_multiplier(c, skew, kurt));
            }
            if let Some((var, es)) = stats::historical_var_es(&pnl, c) {
                add("var", "historical", var);
                add("cvar", "historical", es);
            }
        }
        out
    }

    fn components(&self, a: &crate::state::Account, z: f64) -> Vec<ComponentVar> {
        let book = &a.risk.book;
        let total = z * book.sigma();
        // The exposure shown is the position's value: the book does not follow the
        // price of a symbol the model does not know yet (no variance to move).
        a.positions
            .iter()
            .zip(book.components(z))
            .map(|((symbol, p), c)| ComponentVar {
                symbol: symbol.to_string(),
                exposure: f64_of(p.value),
                component_var: c,
                share: if total > 0.0 { c / total } else { 0.0 },
            })
            .collect()
    }

    fn backtest(&self, risk: &AccountRisk) -> Backtest {
        let p = 1.0 - self.risk.model.params.confidence;
        let observations = risk.history.exceptions.len() as u32;
        let exceptions = risk.history.exception_count();
        let lr = stats::kupiec_lr(exceptions, observations, p);
        Backtest {
            method: "one-bar parametric normal VaR vs hypothetical P&L; Kupiec POF; Basel traffic light",
            confidence: self.risk.model.params.confidence,
            observations,
            exceptions,
            kupiec_lr: lr,
            kupiec_p_value: stats::kupiec_p_value(lr),
            zone: stats::basel_zone(exceptions, observations, p),
        }
    }

    pub fn symbol_risk_view(&self, symbol: &str) -> Option<SymbolRiskView> {
        let i = self.risk.model.index_of(symbol)?;
        let row = self.risk.model.row(i);
        let cfg = &self.config.risk;
        let spike = (row.long_var > 0.0).then(|| (row.short_var / row.long_var).sqrt());
        Some(SymbolRiskView {
            symbol: symbol.to_string(),
            observations: row.observations,
            close: row.close,
            volatility: self.risk.model.raw(i, i).max(0.0).sqrt(),
            model_volatility: self.risk.model.cov(i, i).max(0.0).sqrt(),
            short_volatility: row.short_var.sqrt(),
            long_volatility: row.long_var.sqrt(),
            spike_ratio: spike,
            lambda: cfg.lambda,
            short_lambda: cfg.short_lambda,
            long_lambda: cfg.long_lambda,
            bar_secs: cfg.bar_secs,
            returns: RETURNS,
        })
    }
}
