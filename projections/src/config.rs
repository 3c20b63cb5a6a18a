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
    /// The risk model and the risk rules.
    pub risk: RiskConfig,
    /// Tax-loss harvesting.
    pub tax: TaxConfig,
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
            risk: RiskConfig::default(),
            tax: TaxConfig::default(),
        }
    }
}

/// Settings of the risk model. Numbers are decimals so the configuration stored
/// with a log compares exactly; the model converts them to `f64` once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskConfig {
    /// RiskMetrics decay of the covariance (0.94 for daily data, RiskMetrics 1996).
    pub lambda: Decimal,
    /// Bar length in seconds of event time; returns are taken at bar closes
    /// (86400 = daily close, UTC days). Shorter bars give intraday risk.
    pub bar_secs: i64,
    /// Horizon of the h-bar figures, in bars (scaled by sqrt(h)).
    pub horizon_bars: u32,
    /// Degrees of freedom of the Student-t VaR (> 2).
    pub student_t_dof: Decimal,
    /// Bars of portfolio P&L kept for historical VaR, Cornish-Fisher and backtesting.
    pub window: usize,
    /// Confidence of the VaR and CVaR limits and of the backtest (one bar, normal).
    pub limit_confidence: Decimal,
    /// Above this condition number the covariance is shrunk (Ledoit-Wolf).
    pub max_condition: Decimal,
    /// Up to this many symbols the model is checked by a full eigendecomposition at
    /// each bar close (clipping negative eigenvalues); above it the condition number
    /// is bounded by power iteration and shrinkage is always applied.
    pub spectral_max_symbols: usize,
    /// Bars a symbol needs before its volatility or correlations raise market alerts.
    pub min_observations: u32,
    /// Decay of the short-window volatility of `volatility_spike`.
    pub short_lambda: Decimal,
    /// Decay of the long-window volatility of `volatility_spike`.
    pub long_lambda: Decimal,
    /// Short over long volatility that raises `volatility_spike`.
    pub vol_spike_factor: Decimal,
    /// Change of the average pairwise correlation (short vs long window) that raises
    /// `correlation_breakdown`.
    pub correlation_shift: Decimal,
    /// Opening move against the previous close that raises `gap_move` (0.05 = 5%).
    pub gap_move: Decimal,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            lambda: dec(94, 2),
            bar_secs: 86_400,
            horizon_bars: 10,
            student_t_dof: dec(5, 0),
            window: 250,
            limit_confidence: dec(99, 2),
            max_condition: dec(1_000_000, 0),
            spectral_max_symbols: 400,
            min_observations: 20,
            short_lambda: dec(5, 1),
            long_lambda: dec(97, 2),
            vol_spike_factor: dec(3, 0),
            correlation_shift: dec(3, 1),
            gap_move: dec(5, 2),
        }
    }
}

impl RiskConfig {
    /// Problems with the settings, each naming its field.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let unit = |name: &str, v: Decimal, out: &mut Vec<String>| {
            if v <= Decimal::ZERO || v >= Decimal::ONE {
                out.push(format!("risk.{name} must be in (0, 1), got {v}"));
            }
        };
        unit("lambda", self.lambda, &mut out);
        unit("short_lambda", self.short_lambda, &mut out);
        unit("long_lambda", self.long_lambda, &mut out);
        unit("limit_confidence", self.limit_confidence, &mut out);
        if self.bar_secs <= 0 {
            out.push(format!("risk.bar_secs must be positive, got {}", self.bar_secs));
        }
        if self.student_t_dof <= Decimal::TWO {
            out.push(format!("risk.student_t_dof must be above 2, got {}", self.student_t_dof));
        }
        if self.window < 2 {
            out.push(format!("risk.window must be at least 2 bars, got {}", self.window));
        }
        if self.horizon_bars == 0 {
            out.push("risk.horizon_bars must be at least 1".to_string());
        }
        out
    }
}

/// Settings of the tax-loss harvesting signal. The rates are assumptions of the
/// estimate, not advice: set them to the users' brackets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaxConfig {
    /// A lot is a candidate when its unrealized loss net of trading cost is at least
    /// this much (base currency) ...
    pub harvest_min_loss: Decimal,
    /// ... and its unrealized loss is at least this fraction of its basis.
    pub harvest_min_loss_fraction: Decimal,
    /// Estimated cost of selling, as a fraction of the value sold (commission,
    /// spread, impact): 0.001 = 10 basis points.
    pub trading_cost: Decimal,
    /// Rate applied to short-term losses for the estimated benefit (0.37: the top
    /// US federal ordinary-income rate, 26 U.S.C. 1(j), tax years 2018-2025).
    pub short_term_rate: Decimal,
    /// Rate applied to long-term losses (0.20: the top US federal long-term
    /// capital-gains rate, 26 U.S.C. 1(h)).
    pub long_term_rate: Decimal,
    /// Replacement securities suggested per candidate symbol (same asset class and
    /// sector, another wash group).
    pub replacements: usize,
}

impl Default for TaxConfig {
    fn default() -> Self {
        TaxConfig {
            harvest_min_loss: dec(500, 0),
            harvest_min_loss_fraction: dec(5, 2),
            trading_cost: dec(1, 3),
            short_term_rate: dec(37, 2),
            long_term_rate: dec(20, 2),
            replacements: 3,
        }
    }
}

impl TaxConfig {
    /// Problems with the settings, each naming its field.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.harvest_min_loss < Decimal::ZERO {
            out.push(format!("tax.harvest_min_loss must not be negative, got {}", self.harvest_min_loss));
        }
        for (name, v) in [
            ("harvest_min_loss_fraction", self.harvest_min_loss_fraction),
            ("trading_cost", self.trading_cost),
            ("short_term_rate", self.short_term_rate),
            ("long_term_rate", self.long_term_rate),
        ] {
            if v < Decimal::ZERO || v >= Decimal::ONE {
                out.push(format!("tax.{name} must be in [0, 1), got {v}"));
            }
        }
        if self.harvest_min_loss.is_zero() && self.harvest_min_loss_fraction.is_zero() {
            out.push("tax.harvest_min_loss and tax.harvest_min_loss_fraction cannot both be 0 (every loss would be a candidate)".into());
        }
        out
    }
}
