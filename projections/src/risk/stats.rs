//! Closed forms and estimators of the risk numbers, as plain functions of numbers
//! so each can be checked against its published reference value.
//!
//! Sign conventions: `confidence` is the VaR level (0.99 = 99%); VaR and expected
//! shortfall are positive numbers, losses; `sigma` is the standard deviation of the
//! P&L (or return) over one bar. h-bar figures scale by sqrt(h) (square-root-of-time,
//! i.i.d. zero-mean returns).

use statrs::distribution::{Binomial, ChiSquared, Continuous, ContinuousCDF, DiscreteCDF, Normal, StudentsT};

fn std_normal() -> Normal {
    Normal::new(0.0, 1.0).expect("unit normal")
}

/// z such that P(Z <= z) = confidence.
pub fn normal_quantile(confidence: f64) -> f64 {
    std_normal().inverse_cdf(confidence)
}

/// Parametric normal VaR of a zero-mean P&L with standard deviation `sigma`.
pub fn normal_var(sigma: f64, confidence: f64) -> f64 {
    normal_quantile(confidence) * sigma
}

/// Expected shortfall of a zero-mean normal: sigma phi(z) / (1 - confidence).
pub fn normal_es(sigma: f64, confidence: f64) -> f64 {
    let z = normal_quantile(confidence);
    sigma * std_normal().pdf(z) / (1.0 - confidence)
}

/// The unit-variance Student-t with `dof` degrees of freedom is t_dof scaled by
/// sqrt((dof - 2) / dof); VaR is its quantile times `sigma`.
pub fn student_t_var(sigma: f64, confidence: f64, dof: f64) -> f64 {
    let t = StudentsT::new(0.0, 1.0, dof).expect("dof > 2 is validated in the config");
    sigma * ((dof - 2.0) / dof).sqrt() * t.inverse_cdf(confidence)
}

/// Expected shortfall of the unit-variance Student-t (McNeil, Frey and Embrechts,
/// Quantitative Risk Management, example 2.15): f(q) (dof + q^2) / ((dof - 1)(1 - a)).
pub fn student_t_es(sigma: f64, confidence: f64, dof: f64) -> f64 {
    let t = StudentsT::new(0.0, 1.0, dof).expect("dof > 2 is validated in the config");
    let q = t.inverse_cdf(confidence);
    let es_standard = t.pdf(q) * (dof + q * q) / ((dof - 1.0) * (1.0 - confidence));
    sigma * ((dof - 2.0) / dof).sqrt() * es_standard
}

/// Cornish-Fisher adjusted quantile of the loss: the normal quantile of the lower
/// P&L tail corrected for `skew` and `excess_kurtosis` of the P&L, returned as a
/// positive multiple of sigma.
pub fn cornish_fisher_multiplier(confidence: f64, skew: f64, excess_kurtosis: f64) -> f64 {
    let q = -normal_quantile(confidence);
    let adjusted = q + (q * q - 1.0) * skew / 6.0 + (q.powi(3) - 3.0 * q) * excess_kurtosis / 24.0
        - (2.0 * q.powi(3) - 5.0 * q) * skew * skew / 36.0;
    -adjusted
}

/// RiskMetrics EWMA variance update, zero mean: lambda var + (1 - lambda) r^2.
pub fn ewma_variance(previous: f64, ret: f64, lambda: f64) -> f64 {
    lambda * previous + (1.0 - lambda) * ret * ret
}

/// Historical VaR and expected shortfall of a P&L sample (gains positive).
///
/// Quantile convention: with n observations and k = floor(n (1 - confidence)) + 1,
/// VaR is the k-th largest loss and ES the mean of the k largest losses (so ES >= VaR
/// always, and at n = 250, 99% it is the 3rd worst loss). `None` on an empty sample.
pub fn historical_var_es(pnl: &[f64], confidence: f64) -> Option<(f64, f64)> {
    if pnl.is_empty() {
        return None;
    }
    let mut losses: Vec<f64> = pnl.iter().map(|p| -p).collect();
    losses.sort_by(|a, b| b.total_cmp(a));
    let k = tail_count(losses.len(), confidence);
    let var = losses[k - 1];
    let es = losses[..k].iter().sum::<f64>() / k as f64;
    Some((var, es))
}

/// k = floor(n (1 - confidence)) + 1, capped at n. The epsilon keeps 250 x 0.01
/// (2.4999999999999996 in binary) at 2.
fn tail_count(n: usize, confidence: f64) -> usize {
    (((n as f64) * (1.0 - confidence) + 1e-9).floor() as usize + 1).min(n)
}

/// Sample skewness and excess kurtosis (population moments, zero-mean not assumed);
/// `None` below 3 observations or with zero dispersion.
pub fn moments(sample: &[f64]) -> Option<(f64, f64)> {
    let n = sample.len() as f64;
    if sample.len() < 3 {
        return None;
    }
    let mean = sample.iter().sum::<f64>() / n;
    let m = |k: i32| sample.iter().map(|x| (x - mean).powi(k)).sum::<f64>() / n;
    let m2 = m(2);
    if m2 <= 0.0 {
        return None;
    }
    Some((m(3) / m2.powf(1.5), m(4) / (m2 * m2) - 3.0))
}

/// Kupiec (1995) proportion-of-failures likelihood ratio for `exceptions` out of
/// `observations` at exception probability `p`:
/// LR = -2 ln[(1-p)^(T-x) p^x] + 2 ln[(1-x/T)^(T-x) (x/T)^x], chi-squared(1).
pub fn kupiec_lr(exceptions: u32, observations: u32, p: f64) -> f64 {
    let (x, t) = (f64::from(exceptions), f64::from(observations));
    if observations == 0 {
        return 0.0;
    }
    // 0 ln 0 = 0.
    let xlny = |x: f64, y: f64| if x == 0.0 { 0.0 } else { x * y.ln() };
    let null = xlny(t - x, 1.0 - p) + xlny(x, p);
    let observed = xlny(t - x, 1.0 - x / t) + xlny(x, x / t);
    (-2.0 * null + 2.0 * observed).max(0.0)
}

/// P-value of a Kupiec LR (chi-squared with one degree of freedom).
pub fn kupiec_p_value(lr: f64) -> f64 {
    1.0 - ChiSquared::new(1.0).expect("one degree of freedom").cdf(lr)
}

/// The Basel traffic light of a VaR model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Zone {
    Green,
    Yellow,
    Red,
}

/// Basel Committee (1996), "Supervisory framework for the use of backtesting":
/// green while the cumulative binomial probability of at most `exceptions` is below
/// 95%, red from 99.99%, yellow between. At 250 observations and p = 1% this is
/// green 0-4, yellow 5-9, red 10 or more. No exception is always green: on a short
/// window P(X <= 0) = (1 - p)^T alone reaches 95% (T <= 5 at p = 1%), and a record
/// without exceptions never suggests a VaR that is too low.
pub fn basel_zone(exceptions: u32, observations: u32, p: f64) -> Zone {
    if observations == 0 || exceptions == 0 {
        return Zone::Green;
    }
    let cumulative = Binomial::new(p, u64::from(observations)).expect("p in (0, 1)").cdf(u64::from(exceptions));
    if cumulative < 0.95 {
        Zone::Green
    } else if cumulative < 0.9999 {
        Zone::Yellow
    } else {
        Zone::Red
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_count_follows_the_documented_convention() {
        assert_eq!(tail_count(250, 0.99), 3);
        assert_eq!(tail_count(100, 0.95), 6);
        assert_eq!(tail_count(10, 0.99), 1);
        assert_eq!(tail_count(1, 0.5), 1);
    }
}
