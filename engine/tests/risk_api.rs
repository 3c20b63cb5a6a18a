//! The risk API end to end: `GET /v1/accounts/{id}/risk` and
//! `GET /v1/securities/{symbol}/risk` on a real server (127.0.0.1:0, RocksDB in a
//! temp dir), fed over HTTP with a deterministic price path on one-minute bars.
//!
//! Every number the API shows is checked three ways: against the conventions it
//! states (sqrt-of-time scaling, CVaR >= VaR, Euler components summing to the VaR),
//! against the engine's own view read in-process, and against an independent
//! recomputation in this file of the RiskMetrics EWMA model over the same closes:
//! zero-mean log returns, S_t = lambda S_t-1 + (1 - lambda) r r', lambda = 0.94,
//! a variance seeded with the first squared return (J.P. Morgan/Reuters,
//! RiskMetrics Technical Document, 4th ed., 1996, section 5.2; the seeding is the
//! engine's convention, projections/src/risk/model.rs).

mod common;

use common::server::Server;
use common::*;
use reqwest::StatusCode;
use riskstream_engine::sequencer::shard_for;
use riskstream_projections::{RiskConfig, RuleConfig};
use riskstream_schemas::{Event, EventBody, RiskLimitsSet, Side};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::{json, Value};

const SHARDS: u32 = 2;
const ACC: &str = "acc-risk";
const BAR_SECS: i64 = 60;
const LAMBDA: f64 = 0.94;
const HORIZON: u32 = 10;
/// Standard normal quantiles at 95% and 99% (Abramowitz and Stegun, table 26.5).
const Z95: f64 = 1.644_853_626_951_472_7;
const Z99: f64 = 2.326_347_874_040_841;
/// Position sizes and trade prices.
const QTY_A: f64 = 100.0;
const QTY_B: f64 = 200.0;
const TRADE_A: &str = "100";
const TRADE_B: &str = "50";

/// Per-bar moves in basis points, one bar per minute from minute 3 on; BBB partly
/// co-moves with AAA. Thirty bars, all within one UTC day and under 2.5% a bar.
const MOVES_A: [i64; 30] = [
    120, -80, 45, -150, 60, 30, -210, 95, 10, -40, 170, -60, -120, 80, 25, -35, 140, -90, 55, -15, -180, 110, 20, -70,
    90, -45, 130, -100, 35, 5,
];
const MOVES_B: [i64; 30] = [
    60, -110, 90, -40, 20, 70, -160, 30, -50, 15, 120, -95, -30, 45, 80, -20, 65, -130, 10, -60, -90, 140, -25, -10,
    55, -85, 75, -40, 100, -15,
];
/// The minute of the first tick; the bars before it hold the listings, the account
/// and the trades.
const FIRST_TICK: i64 = 3;

/// One-minute risk bars.
fn rules() -> RuleConfig {
    RuleConfig {
        risk: RiskConfig { bar_secs: BAR_SECS, horizon_bars: HORIZON, min_observations: 5, ..RiskConfig::default() },
        ..RuleConfig::default()
    }
}

/// A user whose accounts live on shard 0. `/v1/securities/{symbol}/risk` answers
/// from the lowest-numbered shard that models the symbol; with the account there
/// too, the symbol and the account are read from the same model.
fn user() -> String {
    (1..).map(|i| format!("u-{i}")).find(|u| shard_for(u, SHARDS) == 0).unwrap()
}

fn limits(user: &str) -> RiskLimitsSet {
    RiskLimitsSet {
        account_id: ACC.into(),
        user_id: user.into(),
        max_position_weight: Some(d("1")),
        max_var: Some(d("0.05")),
        max_cvar: Some(d("0.07")),
        max_drawdown: Some(d("0.2")),
        max_daily_loss: Some(d("0.5")),
        max_gross_leverage: Some(d("2")),
        ..Default::default()
    }
}

/// Listings at minute 0, the account and its limits at 1, the trades at 2.
fn book(user: &str) -> Vec<Event> {
    vec![
        ev("list-AAA", 0, listed("AAA")),
        ev("list-BBB", 0, listed("BBB")),
        ev("open", 1, opened(ACC, user)),
        ev("deposit", 1, deposit(ACC, user, "30000")),
        ev("limits", 1, EventBody::RiskLimitsSet(limits(user))),
        ev("buy-AAA", 2, trade("buy-AAA", ACC, user, "AAA", Side::Buy, &QTY_A.to_string(), TRADE_A)),
        ev("buy-BBB", 2, trade("buy-BBB", ACC, user, "BBB", Side::Buy, &QTY_B.to_string(), TRADE_B)),
    ]
}

/// Prices after each move: p' = p (1 + bp / 10^4), 4 decimal places.
fn path(start: &str, moves: &[i64]) -> Vec<Decimal> {
    let mut p = d(start);
    moves
        .iter()
        .map(|&bp| {
            p = (p * (Decimal::from(10_000 + bp)) / Decimal::from(10_000)).round_dp(4);
            p
        })
        .collect()
}

fn f(x: Decimal) -> f64 {
    x.to_f64().unwrap()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn dec(v: &Value) -> Decimal {
    v.as_str().unwrap_or_else(|| panic!("decimal must be a string: {v}")).parse().unwrap()
}

#[track_caller]
fn close(actual: f64, expected: f64, what: &str) {
    let scale = expected.abs().max(1e-300);
    assert!(
        ((actual - expected) / scale).abs() <= 1e-9,
        "{what}: {actual} vs expected {expected} (relative {:e})",
        (actual - expected) / scale
    );
}

/// The model recomputed from the closes, as the account's shard sees them: the
/// trade prices are each symbol's first close (the bar of the trades closes with
/// them), then one close per bar of ticks.
struct Expected {
    /// 2x2 EWMA covariance of log returns after each bar with returns.
    cov: Vec<[[f64; 2]; 2]>,
    /// Closes (AAA, BBB), the trade prices first.
    closes: Vec<[f64; 2]>,
}

impl Expected {
    fn new(a: &[Decimal], b: &[Decimal]) -> Expected {
        let mut closes = vec![[f(d(TRADE_A)), f(d(TRADE_B))]];
        closes.extend(a.iter().zip(b).map(|(&x, &y)| [f(x), f(y)]));
        let mut cov = Vec::new();
        let mut s = [[0.0; 2]; 2];
        for k in 1..closes.len() {
            let r = [(closes[k][0] / closes[k - 1][0]).ln(), (closes[k][1] / closes[k - 1][1]).ln()];
            for i in 0..2 {
                for j in 0..2 {
                    s[i][j] = if k == 1 && i == j {
                        // RiskMetrics seeding: the first variance is the first squared return.
                        r[i] * r[i]
                    } else {
                        LAMBDA * s[i][j] + (1.0 - LAMBDA) * r[i] * r[j]
                    };
                }
            }
            cov.push(s);
        }
        Expected { cov, closes }
    }

    /// Money exposures at close `k` (0 = the trade prices).
    fn exposure(&self, k: usize) -> [f64; 2] {
        [QTY_A * self.closes[k][0], QTY_B * self.closes[k][1]]
    }

    /// One-bar P&L standard deviation of the book after close `k` (k >= 1).
    fn sigma(&self, k: usize) -> f64 {
        let (e, s) = (self.exposure(k), self.cov[k - 1]);
        let var: f64 = (0..2).flat_map(|i| (0..2).map(move |j| e[i] * s[i][j] * e[j])).sum();
        var.sqrt()
    }

    /// Hypothetical P&L of each bar: the exposures at the previous close times the
    /// simple return.
    fn pnl(&self) -> Vec<f64> {
        (1..self.closes.len())
            .map(|k| {
                let e = self.exposure(k - 1);
                (0..2).map(|i| e[i] * (self.closes[k][i] / self.closes[k - 1][i] - 1.0)).sum()
            })
            .collect()
    }

    /// Backtest: the loss of bar k against the 99% one-bar normal VaR forecast at
    /// close k - 1 (none until the model has a variance).
    fn exceptions(&self) -> (u32, u32) {
        let pnl = self.pnl();
        let (mut observations, mut exceptions) = (0, 0);
        for k in 2..self.closes.len() {
            let forecast = Z99 * self.sigma(k - 1);
            observations += 1;
            exceptions += u32::from(-pnl[k - 1] > forecast);
        }
        (observations, exceptions)
    }
}

/// The normal density.
fn phi(z: f64) -> f64 {
    (-z * z / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Historical VaR and ES: k = floor(n (1 - c)) + 1; the k-th largest loss and the
/// mean of the k largest.
fn historical(pnl: &[f64], c: f64) -> (f64, f64) {
    let mut losses: Vec<f64> = pnl.iter().map(|p| -p).collect();
    losses.sort_by(|a, b| b.total_cmp(a));
    let k = ((losses.len() as f64 * (1.0 - c) + 1e-9).floor() as usize + 1).min(losses.len());
    (losses[k - 1], losses[..k].iter().sum::<f64>() / k as f64)
}

/// Cornish-Fisher multiple of sigma from the population skewness and excess
/// kurtosis of the P&L (z the lower-tail normal quantile).
fn cornish_fisher(pnl: &[f64], z: f64) -> f64 {
    let n = pnl.len() as f64;
    let mean = pnl.iter().sum::<f64>() / n;
    let m = |k: i32| pnl.iter().map(|x| (x - mean).powi(k)).sum::<f64>() / n;
    let (skew, kurt) = (m(3) / m(2).powf(1.5), m(4) / (m(2) * m(2)) - 3.0);
    let q = -z;
    -(q + (q * q - 1.0) * skew / 6.0 + (q.powi(3) - 3.0 * q) * kurt / 24.0
        - (2.0 * q.powi(3) - 5.0 * q) * skew * skew / 36.0)
}

fn figure<'a>(view: &'a Value, measure: &str, method: &str, confidence: f64, horizon: u32) -> &'a Value {
    view["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| {
            x["measure"] == measure
                && x["method"] == method
                && num(&x["confidence"]) == confidence
                && x["horizon_bars"] == horizon
        })
        .unwrap_or_else(|| panic!("no {measure} {method} at {confidence}, {horizon} bars in {}", view["figures"]))
}

fn value(view: &Value, measure: &str, method: &str, confidence: f64, horizon: u32) -> f64 {
    num(&figure(view, measure, method, confidence, horizon)["value"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn risk_endpoints_show_the_ewma_model_with_its_conventions() {
    let server = Server::start(SHARDS, rules());
    let user = user();
    let report = server.post(&book(&user)).await;
    assert_eq!(report["accepted"], 7, "{report}");

    // No bar has closed with a price yet: the symbols are not modelled, the
    // account has a risk view with nothing in it.
    let (status, body) = server.get_any("/v1/securities/AAA/risk").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["error"].as_str().unwrap().contains("first bar close"), "{body}");
    let early = server.get(&format!("/v1/accounts/{ACC}/risk")).await;
    assert_eq!(num(&early["volatility"]), 0.0, "{early}");
    assert_eq!(early["backtest"]["observations"], 0, "{early}");
    // docs/API.md: no matrix yet, so no condition number (null, not 0).
    assert_eq!(early["conventions"]["condition_number"], serde_json::Value::Null, "{early}");

    // All bars in one request, closed by the listing of CCC in the next minute: the
    // sequencer conflates ticks per bar, so every bar close survives the batching.
    let (a, b) = (path(TRADE_A, &MOVES_A), path(TRADE_B, &MOVES_B));
    let mut events = Vec::new();
    for (k, (pa, pb)) in a.iter().zip(&b).enumerate() {
        let minute = FIRST_TICK + k as i64;
        events.push(ev("", minute, tick("AAA", &pa.to_string())));
        events.push(ev("", minute, tick("BBB", &pb.to_string())));
    }
    let last_minute = FIRST_TICK + MOVES_A.len() as i64;
    events.push(ev("list-CCC", last_minute, listed("CCC")));
    let report = server.post(&events).await;
    assert_eq!(report["accepted"], events.len(), "{report}");

    let expected = Expected::new(&a, &b);
    let bars = MOVES_A.len();
    assert_account_risk(&server, &expected, bars).await;
    assert_symbol_risk(&server, &expected, bars).await;
    assert_not_found(&server).await;
    assert_documented(&server).await;
}

async fn assert_account_risk(server: &Server, expected: &Expected, bars: usize) {
    let view = server.get(&format!("/v1/accounts/{ACC}/risk")).await;

    // The engine's own answer, read in-process, is what the API served.
    let (shard, seq, direct) = server.app().read().risk_view(ACC).expect("the account has a risk view");
    let mut served = serde_json::to_value(&direct).unwrap();
    served["shard"] = json!(shard);
    served["as_of_seq"] = json!(seq);
    assert_eq!(view, served);
    assert_eq!(view["shard"], 0);
    assert!(view.get("restoring").is_none() && view.get("served_by").is_none(), "embedded mode: {view}");
    assert_eq!(view["account_id"], ACC);

    // Conventions.
    let c = &view["conventions"];
    assert_eq!(c["lambda"], "0.94", "{c}");
    assert_eq!(dec(&c["lambda"]), d("0.94"));
    assert!(c["returns"].as_str().unwrap().contains("log returns"), "{c}");
    assert_eq!(c["bar_secs"], BAR_SECS, "{c}");
    assert!(!c["quantile"].as_str().unwrap().is_empty(), "{c}");
    assert!(c["covariance"].as_str().unwrap().contains("RiskMetrics EWMA"), "{c}");
    assert!(c["scaling"].as_str().unwrap().contains("sqrt(h)"), "{c}");
    assert_eq!(dec(&c["student_t_dof"]), d("5"));
    assert_eq!((c["model_bars"].clone(), c["min_position_observations"].clone()), (json!(bars), json!(bars)));
    // Two symbols, 30 bars: well conditioned, so the matrix is the EWMA itself.
    assert_eq!(num(&c["shrinkage"]), 0.0, "{c}");
    assert_eq!(c["condition_exact"], true, "{c}");
    assert!(num(&c["condition_number"]) >= 1.0, "{c}");

    // Volatility: sqrt(e' S e), S the EWMA after the last close, e the exposures at it.
    let sigma = num(&view["volatility"]);
    assert!(sigma > 0.0);
    close(sigma, expected.sigma(bars), "one-bar P&L volatility");
    let market_value = dec(&view["market_value"]);
    close(num(&view["volatility_fraction"]), sigma / f(market_value), "volatility fraction");
    // 30000 deposited - (100 x 100 + 1) - (200 x 50 + 1) in cash, plus the positions at the last closes.
    let e = expected.exposure(bars);
    close(f(market_value), 30_000.0 - 10_001.0 - 10_001.0 + e[0] + e[1], "market value");

    // Parametric normal: z sigma sqrt(h); ES = sigma sqrt(h) phi(z) / (1 - c) >= VaR.
    for (conf, z) in [(0.95, Z95), (0.99, Z99)] {
        let one = value(&view, "var", "parametric_normal", conf, 1);
        close(one, z * sigma, &format!("normal VaR {conf}"));
        close(value(&view, "var", "parametric_normal", conf, HORIZON), one * f64::from(HORIZON).sqrt(), "sqrt(h)");
        for h in [1, HORIZON] {
            let es = value(&view, "cvar", "parametric_normal", conf, h);
            close(es, sigma * f64::from(h).sqrt() * phi(z) / (1.0 - conf), &format!("normal ES {conf} {h}"));
            assert!(es >= value(&view, "var", "parametric_normal", conf, h));
            let (t_var, t_es) = (
                value(&view, "var", "parametric_student_t", conf, h),
                value(&view, "cvar", "parametric_student_t", conf, h),
            );
            assert!(t_var > 0.0 && t_es >= t_var, "Student-t {conf} {h}: {t_var} {t_es}");
            close(
                figure(&view, "var", "parametric_normal", conf, h)["fraction"].as_f64().unwrap(),
                value(&view, "var", "parametric_normal", conf, h) / f(market_value),
                "fraction",
            );
        }
        close(
            value(&view, "var", "parametric_student_t", conf, HORIZON),
            value(&view, "var", "parametric_student_t", conf, 1) * f64::from(HORIZON).sqrt(),
            "Student-t sqrt(h)",
        );
        // Historical and Cornish-Fisher: one bar, over the 30 bars of hypothetical P&L.
        let pnl = expected.pnl();
        assert_eq!(pnl.len(), bars);
        let (h_var, h_es) = historical(&pnl, conf);
        close(value(&view, "var", "historical", conf, 1), h_var, &format!("historical VaR {conf}"));
        close(value(&view, "cvar", "historical", conf, 1), h_es, &format!("historical ES {conf}"));
        assert!(h_es >= h_var);
        close(
            value(&view, "var", "cornish_fisher", conf, 1),
            sigma * cornish_fisher(&pnl, z),
            &format!("Cornish-Fisher {conf}"),
        );
    }

    // Euler components: e_k (S e)_k / sigma x z(99%), summing to the one-bar 99% normal VaR.
    let components = view["components"].as_array().unwrap();
    let symbols: Vec<_> = components.iter().map(|x| x["symbol"].as_str().unwrap()).collect();
    assert_eq!(symbols, ["AAA", "BBB"]);
    let total: f64 = components.iter().map(|x| num(&x["component_var"])).sum();
    close(total, value(&view, "var", "parametric_normal", 0.99, 1), "components sum to the 99% one-bar VaR");
    close(components.iter().map(|x| num(&x["share"])).sum(), 1.0, "shares sum to 1");
    let s = expected.cov[bars - 1];
    for (i, x) in components.iter().enumerate() {
        close(num(&x["exposure"]), e[i], "exposure");
        let se = s[i][0] * e[0] + s[i][1] * e[1];
        close(num(&x["component_var"]), e[i] * se / sigma * Z99, "component VaR");
    }

    // Backtest: 29 forecasts (the first close with returns is the first forecast).
    let bt = &view["backtest"];
    assert!(["green", "yellow", "red"].contains(&bt["zone"].as_str().unwrap()), "{bt}");
    assert_eq!(bt["confidence"], 0.99, "{bt}");
    let (observations, exceptions) = expected.exceptions();
    assert!(observations > 0);
    assert_eq!(
        (bt["observations"].clone(), bt["exceptions"].clone()),
        (json!(observations), json!(exceptions)),
        "{bt}"
    );
    assert!(num(&bt["kupiec_lr"]) >= 0.0 && (0.0..=1.0).contains(&num(&bt["kupiec_p_value"])), "{bt}");

    assert_eq!(view["state"], "normal", "{view}");
    let l = &view["limits"];
    let posted = limits(&user());
    for (field, posted_value) in [
        ("max_var", posted.max_var),
        ("max_cvar", posted.max_cvar),
        ("max_drawdown", posted.max_drawdown),
        ("max_daily_loss", posted.max_daily_loss),
        ("max_gross_leverage", posted.max_gross_leverage),
        ("max_position_weight", posted.max_position_weight),
    ] {
        assert_eq!(dec(&l[field]), posted_value.unwrap(), "{field}: {l}");
    }
    assert_eq!(dec(&l["max_var"]), d("0.05"));
}

async fn assert_symbol_risk(server: &Server, expected: &Expected, bars: usize) {
    for (i, symbol) in ["AAA", "BBB"].into_iter().enumerate() {
        let view = server.get(&format!("/v1/securities/{symbol}/risk")).await;
        let (shard, seq, direct) = server.app().read().symbol_risk_view(symbol).unwrap();
        let mut served = serde_json::to_value(&direct).unwrap();
        served["shard"] = json!(shard);
        served["as_of_seq"] = json!(seq);
        assert_eq!(view, served);
        assert_eq!(view["shard"], 0, "{view}");

        assert_eq!(view["symbol"], symbol);
        assert_eq!(view["observations"], bars, "one return per bar of ticks: {view}");
        assert_eq!(view["lambda"], "0.94", "{view}");
        assert_eq!(view["bar_secs"], BAR_SECS, "{view}");
        assert!(view["returns"].as_str().unwrap().contains("log returns"), "{view}");
        close(num(&view["close"]), expected.closes[bars][i], "last close");

        // RiskMetrics Technical Document (1996), eq. 5.4 with zero mean, lambda 0.94:
        // sigma^2_t = lambda sigma^2_t-1 + (1 - lambda) r_t^2, seeded with r_1^2,
        // r_t = ln(close_t / close_t-1); recomputed here from the closes alone.
        let closes: Vec<f64> = expected.closes.iter().map(|c| c[i]).collect();
        let mut variance = 0.0;
        for (t, w) in closes.windows(2).enumerate() {
            let r = (w[1] / w[0]).ln();
            variance = if t == 0 { r * r } else { LAMBDA * variance + (1.0 - LAMBDA) * r * r };
        }
        let vol = num(&view["volatility"]);
        assert!(vol > 0.0, "{view}");
        close(vol, variance.sqrt(), &format!("{symbol} EWMA volatility"));
        close(vol, expected.cov[bars - 1][i][i].sqrt(), "the diagonal of the account's model");
        // No shrinkage: the model volatility is the EWMA one.
        close(num(&view["model_volatility"]), vol, "model volatility");
        assert!(num(&view["short_volatility"]) > 0.0 && num(&view["long_volatility"]) > 0.0, "{view}");
    }
}

async fn assert_not_found(server: &Server) {
    let (status, body) = server.get_any("/v1/accounts/acc-nobody/risk").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["error"].as_str().unwrap().contains("acc-nobody"), "{body}");

    let (status, body) = server.get_any("/v1/securities/ZZZ/risk").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["error"].as_str().unwrap().contains("ZZZ"), "{body}");

    // Listed but never priced at a bar close: not in the model yet.
    let (status, body) = server.get_any("/v1/securities/CCC/risk").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["error"].as_str().unwrap().contains("first bar close"), "{body}");
}

/// The OpenAPI document describes both routes and what they answer: every field
/// the engine serves is a property of its component, every required one is served.
async fn assert_documented(server: &Server) {
    let openapi = server.get("/v1/openapi.json").await;
    assert_route_documented(&openapi, "get", "/v1/accounts/{id}/risk", "AccountRisk");
    assert_route_documented(&openapi, "get", "/v1/securities/{symbol}/risk", "SymbolRisk");
    let account = server.get(&format!("/v1/accounts/{ACC}/risk")).await;
    let symbol = server.get("/v1/securities/AAA/risk").await;
    for (body, schema) in [
        (&account, "AccountRisk"),
        (&account["conventions"], "RiskConventions"),
        (&account["figures"][0], "RiskFigure"),
        (&account["components"][0], "ComponentVar"),
        (&account["drawdown"], "RiskDrawdown"),
        (&account["daily"], "RiskDaily"),
        (&account["backtest"], "RiskBacktest"),
        (&account["limits"], "RiskLimits"),
        (&symbol, "SymbolRisk"),
    ] {
        assert_described(&openapi, schema, body);
    }
}
