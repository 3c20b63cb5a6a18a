//! The risk numbers against published reference values (shared/REFERENCES.md) and
//! against independent computations written out here. Every reference value names
//! its source beside it.

use riskstream_projections::risk::stats::{self, Zone};
use riskstream_projections::risk::{CovarianceModel, RiskBook};
use riskstream_projections::RiskConfig;

/// |a - b| <= tol x max(|a|, |b|, 1).
fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1.0)
}

macro_rules! assert_close {
    ($a:expr, $b:expr, $tol:expr) => {{
        let (a, b): (f64, f64) = ($a, $b);
        assert!(close(a, b, $tol), "{} = {a} vs {} = {b} (tol {})", stringify!($a), stringify!($b), $tol);
    }};
}

const SQRT_10: f64 = 3.1622776601683795;

// ---------------------------------------------------------------------------------
// Hull, Risk Management and Financial Institutions, "Model-building approach"
// (shared/REFERENCES.md, "Parametric VaR").
// ---------------------------------------------------------------------------------

/// Hull's z for 99%, used directly where Hull does.
const HULL_Z: f64 = 2.33;

#[test]
fn hull_single_and_two_stock_var_from_the_closed_forms() {
    // $10M, daily vol 2%: sigma = $200,000 a day.
    let sigma_a: f64 = 0.02 * 10_000_000.0;
    // $5M, daily vol 1%: sigma = $50,000 a day.
    let sigma_b = 0.01 * 5_000_000.0;
    // Correlation 0.3: sigma_p^2 = 200,000^2 + 50,000^2 + 2 x 0.3 x 200,000 x 50,000.
    let sigma_p = (sigma_a * sigma_a + sigma_b * sigma_b + 2.0 * 0.3 * sigma_a * sigma_b).sqrt();

    // Hull: 10-day 99% VaR of the $10M position = $1,473,621 (z = 2.33).
    let var_a = HULL_Z * sigma_a * SQRT_10;
    assert_eq!(var_a.round(), 1_473_621.0);
    // Hull: the $5M position = $368,405.
    let var_b = HULL_Z * sigma_b * SQRT_10;
    assert_eq!(var_b.round(), 368_405.0);
    // Hull: both, correlation 0.3 = $1,622,657.
    let var_p = HULL_Z * sigma_p * SQRT_10;
    assert_eq!(var_p.round(), 1_622_657.0);
    // Hull: diversification benefit = 1,473,621 + 368,405 - 1,622,657 = $219,369.
    assert_eq!(var_a.round() + var_b.round() - var_p.round(), 219_369.0);
    // REFERENCES.md: with the exact z = 2.326348 the combined figure is $1,620,114;
    // `normal_var` takes the exact quantile itself, scaled by sqrt(10) (square root of time).
    assert_eq!((stats::normal_var(sigma_p, 0.99) * SQRT_10).round(), 1_620_114.0);
    assert_eq!((stats::normal_var(sigma_p * SQRT_10, 0.99)).round(), 1_620_114.0);
}

/// A model with two symbols (AAA index 0, BBB index 1) whose covariance entries are
/// then set by hand: rows exist only after a bar close, and the repair is real only
/// after a close that produced returns.
fn two_symbol_model(var_a: f64, var_b: f64, cov_ab: f64) -> CovarianceModel {
    let config = RiskConfig { bar_secs: 60, ..RiskConfig::default() };
    let mut model = CovarianceModel::new(&config);
    let bar = 60_000_000;
    assert!(model.advance(0, std::iter::empty()).is_none(), "the first event only opens a bar");
    // Bar 0 closes: both symbols enter the model, no return yet.
    model.advance(bar, [("AAA", 100.0), ("BBB", 50.0)].into_iter()).unwrap();
    // Bar 1 closes: the first returns, so the model has one bar and a spectral repair.
    model.advance(2 * bar, [("AAA", 101.0), ("BBB", 50.5)].into_iter()).unwrap();
    assert_eq!(model.scalars().bars, 1);
    assert_eq!((model.index_of("AAA"), model.index_of("BBB")), (Some(0), Some(1)));
    model.set_raw_for_test(0, 0, var_a);
    model.set_raw_for_test(1, 1, var_b);
    model.set_raw_for_test(1, 0, cov_ab);
    model.refresh();
    model
}

#[test]
fn hull_two_stock_var_end_to_end_through_the_book() {
    // Daily return covariance of Hull's example: vols 2% and 1%, correlation 0.3.
    let model = two_symbol_model(0.02 * 0.02, 0.01 * 0.01, 0.3 * 0.02 * 0.01);
    // A 2x2 with eigenvalues about 4.1e-4 and 0.9e-4 is well conditioned: the risk
    // matrix is the EWMA matrix itself, no shrinkage, no clipping.
    let repair = model.repair();
    assert_eq!(repair.shrinkage, 0.0, "{repair:?}");
    assert_eq!(repair.clipped, 0);
    assert!(repair.exact && repair.condition < 10.0, "{repair:?}");
    assert_eq!(model.cov(0, 1), 0.3 * 0.02 * 0.01);
    assert_eq!(model.cov(0, 0), 0.02 * 0.02);

    let horizon = HULL_Z * SQRT_10;
    let book_a = RiskBook::build([(0, 10_000_000.0)].into_iter(), &model);
    // Hull: $1,473,621.
    assert_eq!((book_a.sigma() * horizon).round(), 1_473_621.0);
    let book_b = RiskBook::build([(1, 5_000_000.0)].into_iter(), &model);
    // Hull: $368,405.
    assert_eq!((book_b.sigma() * horizon).round(), 368_405.0);
    let book = RiskBook::build([(0, 10_000_000.0), (1, 5_000_000.0)].into_iter(), &model);
    // e' S e = 4e10 + 2.5e9 + 2 x 3e9 = 4.85e10 (hand).
    assert_close!(book.variance(), 4.85e10, 1e-12);
    let total = book.sigma() * horizon;
    // Hull: $1,622,657; diversification benefit $219,369.
    assert_eq!(total.round(), 1_622_657.0);
    assert_eq!((book_a.sigma() * horizon).round() + (book_b.sigma() * horizon).round() - total.round(), 219_369.0);
    // REFERENCES.md: exact z = 2.326348 gives $1,620,114.
    assert_eq!((stats::normal_var(book.sigma(), 0.99) * SQRT_10).round(), 1_620_114.0);

    // Euler allocation: e_k (S e)_k / sigma x multiplier, summing to the total.
    let components = book.components(horizon);
    assert_eq!(components.len(), 2);
    assert_close!(components.iter().sum::<f64>(), total, 1e-12);
    // By hand: (S e)_AAA = 4e-4 x 1e7 + 6e-5 x 5e6 = 4,300; (S e)_BBB = 6e-5 x 1e7 + 1e-4 x 5e6 = 1,100.
    let sigma = 4.85e10_f64.sqrt();
    assert_close!(components[0], 1e7 * 4_300.0 / sigma * horizon, 1e-12);
    assert_close!(components[1], 5e6 * 1_100.0 / sigma * horizon, 1e-12);
}

// ---------------------------------------------------------------------------------
// Normal closed forms (QuantLib risk statistics tests; REFERENCES.md).
// ---------------------------------------------------------------------------------

#[test]
fn normal_quantiles_and_expected_shortfall() {
    // QuantLib: z(95%) = 1.644854, z(99%) = 2.326348.
    assert!((stats::normal_quantile(0.95) - 1.644854).abs() < 1e-6);
    assert!((stats::normal_quantile(0.99) - 2.326348).abs() < 1e-6);
    assert!((stats::normal_var(1.0, 0.99) - 2.326348).abs() < 1e-6);
    // QuantLib: ES / sigma of a zero-mean normal = 2.062713 (95%), 2.337803 (97.5%), 2.665214 (99%).
    assert!((stats::normal_es(1.0, 0.95) - 2.062713).abs() < 1e-6);
    assert!((stats::normal_es(1.0, 0.975) - 2.337803).abs() < 1e-6);
    assert!((stats::normal_es(1.0, 0.99) - 2.665214).abs() < 1e-6);
    // Both scale with sigma.
    assert_close!(stats::normal_es(250.0, 0.99), 250.0 * stats::normal_es(1.0, 0.99), 1e-15);
}

// ---------------------------------------------------------------------------------
// RiskMetrics EWMA (RiskMetrics Technical Document, 1996; Hull's worked example).
// ---------------------------------------------------------------------------------

#[test]
fn ewma_update_matches_hulls_worked_example() {
    // Hull: lambda 0.90, previous sigma 1%, latest return 2% -> new sigma 1.1402%:
    // 0.9 x 0.0001 + 0.1 x 0.0004 = 0.00013, sqrt = 0.0114018.
    let var = stats::ewma_variance(0.01 * 0.01, 0.02, 0.90);
    assert!((var.sqrt() * 100.0 - 1.1402).abs() < 5e-5, "{}", var.sqrt());
    // RiskMetrics: effective window at 1% tolerance, ln(0.01)/ln(0.94) = 74.4 observations.
    let window = 0.01_f64.ln() / 0.94_f64.ln();
    assert!((window - 74.4).abs() < 0.05, "{window}");
}

/// A one-symbol model fed `closes`, one bar each; returns it after every close.
fn feed(config: &RiskConfig, closes: &[&[(&str, f64)]]) -> CovarianceModel {
    let bar = config.bar_secs * 1_000_000;
    let mut model = CovarianceModel::new(config);
    model.advance(0, std::iter::empty());
    for (k, c) in closes.iter().enumerate() {
        model.advance((k as i64 + 1) * bar, c.iter().copied()).unwrap();
    }
    model
}

#[test]
fn model_variance_follows_the_riskmetrics_recursion_end_to_end() {
    let config = RiskConfig { bar_secs: 60, ..RiskConfig::default() };
    let prices: [f64; 12] = [100.0, 101.5, 99.8, 102.3, 102.3, 97.1, 98.0, 103.9, 101.2, 100.6, 104.4, 99.9];
    // The recursion by hand (RiskMetrics 1996, zero mean, lambda 0.94), seeded with
    // the first squared log return (model.rs conventions); short and long windows of
    // volatility_spike with lambda 0.5 and 0.97, seeded the same way.
    let (mut var, mut short, mut long) = (f64::NAN, f64::NAN, f64::NAN);
    for n in 1..prices.len() {
        let r = (prices[n] / prices[n - 1]).ln();
        if n == 1 {
            (var, short, long) = (r * r, r * r, r * r);
        } else {
            var = 0.94 * var + 0.06 * r * r;
            short = 0.5 * short + 0.5 * r * r;
            long = 0.97 * long + 0.03 * r * r;
        }
        let closes: Vec<[(&str, f64); 1]> = prices[..=n].iter().map(|&p| [("AAA", p)]).collect();
        let refs: Vec<&[(&str, f64)]> = closes.iter().map(|c| c.as_slice()).collect();
        let model = feed(&config, &refs);
        let row = model.row(0);
        assert_eq!(row.observations, n as u32);
        assert_close!(model.raw(0, 0), var, 1e-12);
        assert_close!(row.short_var, short, 1e-12);
        assert_close!(row.long_var, long, 1e-12);
        // One symbol: always well conditioned, so the risk matrix is the EWMA.
        assert_eq!(model.cov(0, 0), model.raw(0, 0));
    }
}

#[test]
fn model_covariance_of_two_symbols_follows_the_recursion() {
    let config = RiskConfig { bar_secs: 60, ..RiskConfig::default() };
    let a = [50.0, 51.0, 50.2, 49.0, 50.5, 52.0];
    let b = [20.0, 19.8, 20.3, 20.1, 19.5, 19.9];
    let closes: Vec<[(&str, f64); 2]> = a.iter().zip(&b).map(|(&x, &y)| [("AAA", x), ("BBB", y)]).collect();
    let refs: Vec<&[(&str, f64)]> = closes.iter().map(|c| c.as_slice()).collect();
    let model = feed(&config, &refs);
    // By hand: S = 0.94 S + 0.06 r r'; each variance seeded with its first squared
    // return, the covariance starting from zero (model.rs conventions).
    let (mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0);
    for n in 1..a.len() {
        let (ra, rb) = ((a[n] / a[n - 1]).ln(), (b[n] / b[n - 1]).ln());
        if n == 1 {
            (saa, sbb, sab) = (ra * ra, rb * rb, 0.06 * ra * rb);
        } else {
            saa = 0.94 * saa + 0.06 * ra * ra;
            sbb = 0.94 * sbb + 0.06 * rb * rb;
            sab = 0.94 * sab + 0.06 * ra * rb;
        }
    }
    assert_close!(model.raw(0, 0), saa, 1e-12);
    assert_close!(model.raw(1, 1), sbb, 1e-12);
    assert_close!(model.raw(0, 1), sab, 1e-12);
    assert_eq!(model.raw(1, 0), model.raw(0, 1));
}

#[test]
fn one_return_decays_below_one_percent_after_the_effective_window() {
    // RiskMetrics: the weight left after n bars is 0.94^n, below 1% from
    // n = ln(0.01)/ln(0.94) = 74.4, i.e. after 75 bars, not after 74.
    let config = RiskConfig { bar_secs: 60, ..RiskConfig::default() };
    let mut closes: Vec<[(&str, f64); 1]> = vec![[("AAA", 100.0)], [("AAA", 110.0)]];
    let seed = (1.1_f64).ln().powi(2);
    for bars in [74, 75] {
        closes.truncate(2);
        closes.extend(std::iter::repeat_n([("AAA", 110.0)], bars));
        let refs: Vec<&[(&str, f64)]> = closes.iter().map(|c| c.as_slice()).collect();
        let ratio = feed(&config, &refs).raw(0, 0) / seed;
        assert_close!(ratio, 0.94_f64.powi(bars as i32), 1e-12);
        assert_eq!(ratio < 0.01, bars == 75, "{bars} bars: {ratio}");
    }
}

// ---------------------------------------------------------------------------------
// Student-t.
// ---------------------------------------------------------------------------------

/// Density of Student's t with 5 degrees of freedom, by hand:
/// Gamma(3) / (sqrt(5 pi) Gamma(5/2)) (1 + t^2/5)^-3, Gamma(3) = 2,
/// Gamma(5/2) = (3/4) sqrt(pi), so the constant is 8 / (3 pi sqrt 5).
fn t5_pdf(t: f64) -> f64 {
    8.0 / (3.0 * std::f64::consts::PI * 5.0_f64.sqrt()) * (1.0 + t * t / 5.0).powi(-3)
}

/// Simpson's rule on [a, b] with n (even) intervals.
fn simpson(f: impl Fn(f64) -> f64, a: f64, b: f64, n: usize) -> f64 {
    let h = (b - a) / n as f64;
    let inner: f64 = (1..n).map(|i| f(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 }).sum();
    (f(a) + f(b) + inner) * h / 3.0
}

#[test]
fn student_t_var_and_es_match_tables_and_an_independent_integral() {
    // Standard t tables, 5 degrees of freedom: t(0.99) = 3.364930, t(0.95) = 2.015048.
    // The unit-variance t is t_5 x sqrt(3/5).
    for (confidence, t_table) in [(0.99, 3.364930), (0.95, 2.015048)] {
        let scale = (3.0_f64 / 5.0).sqrt();
        assert!((stats::student_t_var(1.0, confidence, 5.0) - t_table * scale).abs() < 1e-6);
        assert_close!(stats::student_t_var(1_000.0, confidence, 5.0), 1_000.0 * t_table * scale, 1e-6);

        // ES of the standard t_5 from the density by hand: (1 / (1 - a)) Integral_q^inf t f(t) dt,
        // integrated numerically (t = q / u, u in (0, 1]).
        let q = t_table;
        let tail = simpson(|u| if u == 0.0 { 0.0 } else { (q / u) * t5_pdf(q / u) * q / (u * u) }, 0.0, 1.0, 20_000);
        let es_integral = tail / (1.0 - confidence);
        // The same in closed form (McNeil, Frey and Embrechts, example 2.15), with the density above.
        let es_closed = t5_pdf(q) * (5.0 + q * q) / (4.0 * (1.0 - confidence));
        assert_close!(es_integral, es_closed, 1e-7);
        assert!((stats::student_t_es(1.0, confidence, 5.0) - es_closed * scale).abs() < 1e-5);
        // ES beyond VaR.
        assert!(stats::student_t_es(1.0, confidence, 5.0) > stats::student_t_var(1.0, confidence, 5.0));
    }
    // Many degrees of freedom: the t tends to the normal (QuantLib z(99%) = 2.326348).
    assert!((stats::student_t_var(1.0, 0.99, 1e6) - 2.326348).abs() < 1e-4);
}

// ---------------------------------------------------------------------------------
// Cornish-Fisher.
// ---------------------------------------------------------------------------------

/// The Cornish-Fisher quantile written out independently with the probabilists'
/// Hermite polynomials He1 = z, He2 = z^2 - 1, He3 = z^3 - 3z (Cornish and Fisher
/// 1937, to the third cumulant order): z + He2 S/6 + He3 K/24 - (2 He3 + He1) S^2/36,
/// at the lower-tail z; the loss multiple is its negative.
fn cornish_fisher_by_hand(z_lower: f64, s: f64, k: f64) -> f64 {
    let he1 = z_lower;
    let he2 = z_lower * z_lower - 1.0;
    let he3 = z_lower.powi(3) - 3.0 * z_lower;
    -(z_lower + he2 * s / 6.0 + he3 * k / 24.0 - (2.0 * he3 + he1) * s * s / 36.0)
}

#[test]
fn cornish_fisher_matches_the_hermite_form() {
    // S = K = 0 is the normal quantile (QuantLib z(95%) = 1.644854, z(99%) = 2.326348).
    assert!((stats::cornish_fisher_multiplier(0.99, 0.0, 0.0) - 2.326348).abs() < 1e-6);
    assert!((stats::cornish_fisher_multiplier(0.95, 0.0, 0.0) - 1.644854).abs() < 1e-6);
    for confidence in [0.95, 0.99] {
        let z_lower = -stats::normal_quantile(confidence);
        for (s, k) in [(-0.5, 1.0), (0.3, 3.0), (-1.0, 5.0), (0.8, 0.0), (0.0, 2.0)] {
            let got = stats::cornish_fisher_multiplier(confidence, s, k);
            assert_close!(got, cornish_fisher_by_hand(z_lower, s, k), 1e-12);
        }
    }
    // Negative skew and fat tails both raise the 99% loss quantile above the normal one.
    assert!(stats::cornish_fisher_multiplier(0.99, -0.5, 0.0) > 2.326348);
    assert!(stats::cornish_fisher_multiplier(0.99, 0.0, 3.0) > 2.326348);
    // One value by hand: z = -2.326348, S = -0.5, K = 1: He1 = z, He2 = 4.411894,
    // He3 = -5.610905; He2 S/6 = -0.367658, He3 K/24 = -0.233788,
    // -(2 He3 + He1) S^2/36 = +0.094084; z_cf = -2.833709.
    assert!((stats::cornish_fisher_multiplier(0.99, -0.5, 1.0) - 2.833709).abs() < 1e-5);
}

// ---------------------------------------------------------------------------------
// Historical VaR / ES quantile convention (stats.rs): k = floor(n (1 - c)) + 1,
// VaR the k-th largest loss, ES the mean of the k largest.
// ---------------------------------------------------------------------------------

#[test]
fn historical_var_es_follow_the_documented_order_statistics() {
    // Losses 1..=250 (P&L -1..=-250) in a scrambled order: i -> 97 i mod 251 is a
    // permutation of 1..=250 (251 is prime).
    let pnl: Vec<f64> = (1..=250u32).map(|i| -f64::from(97 * i % 251)).collect();
    // 99%: k = floor(2.5) + 1 = 3: VaR = 3rd largest loss = 248, ES = (250 + 249 + 248)/3 = 249.
    assert_eq!(stats::historical_var_es(&pnl, 0.99), Some((248.0, 249.0)));
    // 97.5%: k = floor(6.25) + 1 = 7: VaR = 244, ES = (250 + ... + 244)/7 = 247.
    assert_eq!(stats::historical_var_es(&pnl, 0.975), Some((244.0, 247.0)));
    // 95%: k = floor(12.5) + 1 = 13: VaR = 238, ES = (250 + ... + 238)/13 = 244.
    assert_eq!(stats::historical_var_es(&pnl, 0.95), Some((238.0, 244.0)));
    // Gains never count as losses: with every bar a gain the "loss" is negative.
    let gains: Vec<f64> = (1..=10).map(f64::from).collect();
    // n = 10, 99%: k = 1: the smallest gain, 1, is a loss of -1.
    assert_eq!(stats::historical_var_es(&gains, 0.99), Some((-1.0, -1.0)));
    assert_eq!(stats::historical_var_es(&[], 0.99), None);
}

// ---------------------------------------------------------------------------------
// Backtesting: Kupiec (1995) POF and the Basel traffic light (REFERENCES.md).
// ---------------------------------------------------------------------------------

/// chi-squared, 1 degree of freedom, 95% quantile.
const CHI2_1_95: f64 = 3.841459;

#[test]
fn kupiec_pof_matches_hand_computed_values() {
    // T = 250, p = 0.01, x = 10:
    // -2 [240 ln 0.99 + 10 ln 0.01] = -2 [-2.412081 - 46.051702] = 96.927566
    // +2 [240 ln 0.96 + 10 ln 0.04] = +2 [-9.797280 - 32.188758] = -83.972076
    // LR = 12.955491.
    assert!((stats::kupiec_lr(10, 250, 0.01) - 12.955491).abs() < 1e-5);
    // x = 2: -2 [248 ln 0.99 + 2 ln 0.01] + 2 [248 ln 0.992 + 2 ln 0.008] = 0.108435.
    assert!((stats::kupiec_lr(2, 250, 0.01) - 0.108435).abs() < 1e-5);
    // x = 0: LR = -2 x 250 ln 0.99 = 5.025168 (no exceptions at all is itself unlikely).
    assert!((stats::kupiec_lr(0, 250, 0.01) - 5.025168).abs() < 1e-5);
    // T = 252: 6 exceptions are accepted at 95%, 7 rejected (chi-squared(1) 95% = 3.841).
    let (lr6, lr7) = (stats::kupiec_lr(6, 252, 0.01), stats::kupiec_lr(7, 252, 0.01));
    assert!(lr6 < CHI2_1_95 && CHI2_1_95 < lr7, "{lr6} {lr7}");
    // By hand: LR(6, 252) = 3.498777, LR(7, 252) = 5.424052.
    assert!((lr6 - 3.498777).abs() < 1e-5 && (lr7 - 5.424052).abs() < 1e-5);
    // The exact expected count x = pT gives LR 0.
    assert!(stats::kupiec_lr(5, 500, 0.01).abs() < 1e-12);
    assert_eq!(stats::kupiec_lr(0, 0, 0.01), 0.0);

    // p-values: 1 - F_chi2(1)(LR); 5% exactly at 3.841459, consistent with the LRs.
    assert!((stats::kupiec_p_value(CHI2_1_95) - 0.05).abs() < 1e-6);
    assert!(stats::kupiec_p_value(lr6) > 0.05 && stats::kupiec_p_value(lr7) < 0.05);
    // chi-squared(1) at 12.955: p = 0.000319 (= erfc(sqrt(12.955/2))).
    assert!((stats::kupiec_p_value(stats::kupiec_lr(10, 250, 0.01)) - 0.000319).abs() < 5e-6);
    assert_eq!(stats::kupiec_p_value(0.0), 1.0);
}

#[test]
fn basel_traffic_light_at_250_observations() {
    // BCBS (1996), "Supervisory framework for the use of backtesting", Table 1:
    // 250 observations at 99%: green 0-4, yellow 5-9, red 10 or more.
    for x in 0..=4 {
        assert_eq!(stats::basel_zone(x, 250, 0.01), Zone::Green, "{x}");
    }
    for x in 5..=9 {
        assert_eq!(stats::basel_zone(x, 250, 0.01), Zone::Yellow, "{x}");
    }
    for x in 10..=20 {
        assert_eq!(stats::basel_zone(x, 250, 0.01), Zone::Red, "{x}");
    }
    assert_eq!(stats::basel_zone(0, 0, 0.01), Zone::Green);
}

#[test]
fn basel_zone_is_green_without_exceptions_on_short_windows() {
    // The green zone holds "results that do not themselves suggest a problem" (BCBS
    // 1996): no exception never suggests a VaR that is too low. (Taken literally,
    // P(X <= 0) = 0.99^T is at least 95% for T <= 5, which would make a clean
    // 1..5-bar record yellow.)
    for t in 1..=10 {
        assert_eq!(stats::basel_zone(0, t, 0.01), Zone::Green, "{t} observations");
    }
    // 1 exception in 20 bars: P(X <= 1) = 0.99^20 + 20 x 0.01 x 0.99^19 = 0.983 -> yellow.
    assert_eq!(stats::basel_zone(1, 20, 0.01), Zone::Yellow);
    // 1 in 40: 0.99^40 + 40 x 0.01 x 0.99^39 = 0.939 -> green.
    assert_eq!(stats::basel_zone(1, 40, 0.01), Zone::Green);
    // 3 in 20: P(X <= 3) = 0.999957 -> red.
    assert_eq!(stats::basel_zone(3, 20, 0.01), Zone::Red);
}
