//! Properties of the risk numbers on random event sequences over many short bars:
//! the incrementally maintained book equals a recompute from facts; the Euler
//! components add up to the VaR; a replay reproduces every risk number and alert
//! exactly; a restart from the stored facts reproduces the facts exactly and the risk
//! views to rounding.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use riskstream_projections::risk::RiskBook;
use riskstream_projections::{Change, RiskConfig, RuleConfig, ShardState, Table};
use riskstream_schemas::*;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::Value;

/// Eight symbols: a one-symbol batch moves fewer than a quarter of the held symbols
/// once five are held, so both revaluation paths run (rank-1 updates per holder,
/// and a recompute per account for dense batches).
const SYMBOLS: [(&str, &str, &str); 8] = [
    ("AAA", "equity", "tech"),
    ("BBB", "equity", "health"),
    ("CCC", "bond", "govt"),
    ("DDD", "bond", "corp"),
    ("EEE", "equity", "tech"),
    ("FFF", "equity", "energy"),
    ("GGG", "commodity", "metals"),
    ("HHH", "equity", "health"),
];
const N: usize = SYMBOLS.len();
const ACCOUNTS: [&str; 3] = ["a1", "a2", "a3"];
/// 2026-03-02T09:00:00Z: a bar boundary of 60 s bars.
const START: Timestamp = Timestamp(1_772_442_000_000_000);

#[derive(Debug, Clone)]
enum Step {
    Deposit(usize, i64),
    Withdraw(usize, i64),
    Buy(usize, usize, i64),
    Sell(usize, usize, i64),
    /// (symbol, move in basis points) pairs, one price batch.
    Ticks(Vec<(usize, i64)>),
    Limits(usize, [u8; 7]),
    NextDay,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => (0..3usize, 1..2_000_000i64).prop_map(|(a, c)| Step::Deposit(a, c)),
        1 => (0..3usize, 1..500_000i64).prop_map(|(a, c)| Step::Withdraw(a, c)),
        3 => (0..3usize, 0..N, 1..200i64).prop_map(|(a, s, q)| Step::Buy(a, s, q)),
        1 => (0..3usize, 0..N, 1..200i64).prop_map(|(a, s, q)| Step::Sell(a, s, q)),
        4 => (0..N, -500..=500i64).prop_map(|m| Step::Ticks(vec![m])),
        2 => proptest::collection::vec((0..N, -500..=500i64), 2..6).prop_map(Step::Ticks),
        1 => (0..3usize, any::<[u8; 7]>()).prop_map(|(a, l)| Step::Limits(a, l)),
        1 => Just(Step::NextDay),
    ]
}

/// Seconds between events: 0 to 90, so a 60 s bar closes every one to a few events.
fn steps() -> impl Strategy<Value = Vec<(Step, i64)>> {
    proptest::collection::vec((step(), 0..=90i64), 1..80)
}

fn cents(v: i64) -> Decimal {
    Decimal::new(v, 2)
}

fn config() -> RuleConfig {
    let risk = RiskConfig { bar_secs: 60, window: 30, min_observations: 3, ..RiskConfig::default() };
    RuleConfig { cooldown_secs: 300, risk, ..RuleConfig::default() }
}

/// The last price, or 100 before the first one.
fn price_of(state: &ShardState, s: usize) -> Decimal {
    state.price(SYMBOLS[s].0).map_or(Decimal::ONE_HUNDRED, |p| p.price)
}

/// The event of a step; `n` numbers it (trade ids are unique, as the lots require).
fn body(step: &Step, state: &ShardState, n: usize) -> Option<EventBody> {
    let acc = |a: usize| (ACCOUNTS[a].to_string(), format!("u{a}"));
    Some(match step {
        Step::Deposit(a, c) | Step::Withdraw(a, c) => EventBody::CashMovement(CashMovement {
            account_id: acc(*a).0,
            user_id: acc(*a).1,
            kind: if matches!(step, Step::Deposit(..)) { CashKind::Deposit } else { CashKind::Withdrawal },
            amount: cents(*c),
        }),
        Step::Buy(a, s, q) | Step::Sell(a, s, q) => {
            let sell = matches!(step, Step::Sell(..));
            let held = state.account(ACCOUNTS[*a]).and_then(|x| x.positions.get(SYMBOLS[*s].0)).map(|p| p.quantity);
            let quantity = if sell { held?.min(Decimal::from(*q)) } else { Decimal::from(*q) };
            // Trades near the last price (a trade sets the price only of an unpriced symbol).
            let price = (price_of(state, *s) * Decimal::new(1000 + q % 7 - 3, 3)).round_dp(2);
            EventBody::TradeExecuted(TradeExecuted {
                trade_id: format!("t{n}"),
                account_id: acc(*a).0,
                user_id: acc(*a).1,
                symbol: SYMBOLS[*s].0.into(),
                side: if sell { Side::Sell } else { Side::Buy },
                quantity,
                price,
                fees: cents(*q % 5),
                lot_method: None,
                lot_ids: vec![],
            })
        }
        Step::Ticks(moves) => {
            let mut prices = BTreeMap::new();
            for &(s, bp) in moves {
                let p = (price_of(state, s) * Decimal::new(10_000 + bp, 4)).round_dp(2).max(Decimal::ONE);
                prices.insert(SYMBOLS[s].0.to_string(), p.into());
            }
            EventBody::PriceBatch(PriceBatch { prices, times: Default::default() })
        }
        Step::Limits(a, l) => {
            // Each limit set about half the time, at levels the paths reach.
            let pick = |i: usize, lo: i64, span: i64, scale: u32| {
                (l[i] % 2 == 0).then(|| Decimal::new(lo + i64::from(l[i] / 2) % span, scale))
            };
            EventBody::RiskLimitsSet(RiskLimitsSet {
                account_id: acc(*a).0,
                user_id: acc(*a).1,
                max_position_weight: Some(Decimal::ONE),
                max_var: pick(0, 5, 60, 3),
                max_cvar: pick(1, 5, 70, 3),
                max_drawdown: pick(2, 1, 20, 2),
                max_daily_loss: pick(3, 1, 10, 2),
                max_gross_leverage: pick(4, 100, 100, 2),
                max_sector_weight: pick(5, 30, 70, 2),
                max_asset_class_weight: pick(6, 40, 60, 2),
            })
        }
        Step::NextDay => return None,
    })
}

/// Lists the securities and opens the accounts; returns the records applied.
fn setup() -> Vec<Event> {
    let mut out = Vec::new();
    for (s, class, sector) in SYMBOLS {
        out.push(EventBody::SecurityListed(SecurityListed {
            symbol: s.into(),
            asset_class: class.into(),
            sector: sector.into(),
            wash_group: s.into(),
        }));
    }
    for (i, a) in ACCOUNTS.iter().enumerate() {
        out.push(EventBody::AccountOpened(AccountOpened {
            account_id: a.to_string(),
            user_id: format!("u{i}"),
            tax_status: TaxStatus::Taxable,
            base_currency: "USD".into(),
            holder_name: None,
            holder_email: None,
        }));
    }
    out.into_iter().map(|body| Event { event_id: None, ts: START, body }).collect()
}

/// |a - b| <= 1e-9 x max(|a|, |b|, floor).
fn near(a: f64, b: f64, floor: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(floor)
}

/// The largest variance the book's exposures could have (perfect correlation): the
/// scale below which a variance is "near zero" for the comparison.
fn variance_scale(state: &ShardState, account_id: &str) -> f64 {
    let a = state.account(account_id).unwrap();
    let model = state.model();
    let sum: f64 = a
        .positions
        .iter()
        .filter_map(|(s, p)| {
            let i = model.index_of(s)?;
            let e = (p.quantity * state.price(s).unwrap().price).to_f64().unwrap();
            Some(e.abs() * model.cov(i, i).max(0.0).sqrt())
        })
        .sum();
    sum * sum
}

/// The incremental book against the recompute from facts: same exposures on modelled
/// positions, same variance and the same (S e)_k (through the Euler components
/// e_k (S e)_k / sigma, exposures being positive).
fn check_book(state: &ShardState, account_id: &str) -> Result<(), TestCaseError> {
    let inc: &RiskBook = state.account_risk(account_id).unwrap().book();
    let full = state.full_book(account_id).unwrap();
    let scale = variance_scale(state, account_id);
    let floor = 1e-6 * scale;
    prop_assert!(
        near(inc.variance(), full.variance(), floor),
        "{account_id}: variance {} vs full {} (scale {scale})",
        inc.variance(),
        full.variance()
    );
    prop_assert!(near(inc.sigma(), full.sigma(), floor.sqrt()), "{account_id}: sigma");
    let a = state.account(account_id).unwrap();
    prop_assert_eq!(inc.exposures().len(), full.exposures().len());
    for ((symbol, (e_inc, e_full)), (c_inc, c_full)) in a
        .positions
        .keys()
        .zip(inc.exposures().iter().zip(full.exposures()))
        .zip(inc.components(1.0).into_iter().zip(full.components(1.0)))
    {
        if state.model().index_of(symbol).is_some() {
            prop_assert_eq!(e_inc, e_full, "{}: exposure of {}", account_id, symbol);
        }
        prop_assert!(
            near(c_inc, c_full, floor.sqrt()),
            "{account_id}: e (S e) / sigma of {symbol}: {c_inc} vs {c_full}"
        );
    }
    Ok(())
}

/// The Euler components of the view add up to its one-bar 99% parametric normal VaR.
fn check_euler(state: &ShardState, account_id: &str) -> Result<(), TestCaseError> {
    let view = state.risk_view(account_id).unwrap();
    let var = view
        .figures
        .iter()
        .find(|f| f.measure == "var" && f.method == "parametric_normal" && f.confidence == 0.99 && f.horizon_bars == 1)
        .expect("the one-bar 99% normal VaR is always shown")
        .value;
    let sum: f64 = view.components.iter().map(|c| c.component_var).sum();
    let floor = 1e-6 * 2.33 * variance_scale(state, account_id).sqrt();
    prop_assert!(near(sum, var, floor), "{account_id}: components sum {sum} vs VaR {var}");
    Ok(())
}

/// Equal JSON, numbers within 1e-9 relative (absolute floor 1e-9).
fn assert_json_near(path: &str, a: &Value, b: &Value) -> Result<(), TestCaseError> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            prop_assert!(near(x, y, 1.0), "{path}: {x} vs {y}");
        }
        (Value::Object(x), Value::Object(y)) => {
            prop_assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>(), "{}", path);
            for (k, v) in x {
                assert_json_near(&format!("{path}.{k}"), v, &y[k])?;
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            prop_assert_eq!(x.len(), y.len(), "{}", path);
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                assert_json_near(&format!("{path}[{i}]"), v, w)?;
            }
        }
        _ => prop_assert_eq!(a, b, "{}", path),
    }
    Ok(())
}

/// The state after a run, its records and the alerts of each record.
type Run = (ShardState, Vec<Event>, Vec<Vec<Alert>>);

/// Applies the setup, then the steps at their event times, calling `check` after
/// every step's record; returns the state, the records and the alerts of each.
fn records(
    steps: &[(Step, i64)],
    mut check: impl FnMut(&mut ShardState) -> Result<(), TestCaseError>,
) -> Result<Run, TestCaseError> {
    let mut state = ShardState::new(0, config());
    let mut events = setup();
    let mut alerts = Vec::new();
    for (i, e) in events.iter().enumerate() {
        alerts.push(state.apply(RecordRef { shard: 0, seq: i as u64 + 1 }, e).unwrap());
    }
    let mut ts = START;
    for (step, dt) in steps {
        ts = ts.plus_seconds(*dt);
        let Some(body) = body(step, &state, events.len()) else {
            if matches!(step, Step::NextDay) {
                ts = Timestamp((ts.day() + 1) * MICROS_PER_DAY + 30 * 1_000_000);
            }
            continue;
        };
        let event = Event { event_id: None, ts, body };
        let at = RecordRef { shard: 0, seq: events.len() as u64 + 1 };
        alerts.push(state.apply(at, &event).unwrap());
        events.push(event);
        check(&mut state)?;
    }
    Ok((state, events, alerts))
}

fn no_check(_: &mut ShardState) -> Result<(), TestCaseError> {
    Ok(())
}

fn runner(cases: u32) -> TestRunner {
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]))
}

#[test]
fn incremental_book_equals_full_recompute_after_every_event() {
    runner(200)
        .run(&steps(), |steps| {
            records(&steps, |state| {
                let state = &*state;
                for a in ACCOUNTS {
                    check_book(state, a)?;
                    check_euler(state, a)?;
                }
                Ok(())
            })
            .map(drop)
        })
        .unwrap();
}

#[test]
fn the_paths_reach_the_risk_model() {
    // Not a property: the generator above must produce sequences where the
    // properties have something to check (bars with returns, held modelled symbols).
    let mut runner = runner(1);
    let (mut rich, mut wide) = (0, 0);
    for _ in 0..50 {
        let steps = steps().new_tree(&mut runner).unwrap().current();
        let (state, _, _) = records(&steps, no_check).unwrap();
        let with_risk = ACCOUNTS.iter().filter(|a| state.account_risk(a).unwrap().book().sigma() > 0.0).count();
        if state.model().scalars().bars >= 3 && with_risk > 0 {
            rich += 1;
        }
        // Five or more symbols held: one-symbol batches take the rank-1 path.
        let held: std::collections::BTreeSet<&str> =
            ACCOUNTS.iter().flat_map(|a| state.account(a).unwrap().positions.keys().map(|s| s.as_str())).collect();
        if held.len() >= 5 {
            wide += 1;
        }
    }
    assert!(rich >= 20, "only {rich} of 50 sequences have risk to compare");
    assert!(wide >= 10, "only {wide} of 50 sequences hold five symbols or more");
}

#[test]
fn replay_reproduces_every_risk_number_and_alert() {
    runner(100)
        .run(&steps(), |steps| {
            // Every risk view after every record of the first run.
            let mut views = Vec::new();
            let (state, events, alerts) = records(&steps, |state| {
                views.push(ACCOUNTS.map(|a| state.risk_view(a)));
                Ok(())
            })?;
            // The same records into a fresh shard: the same alerts and, after every
            // step's record, exactly the same risk views.
            let mut replay = ShardState::new(0, config());
            let setup_len = events.len() - views.len();
            for (i, e) in events.iter().enumerate() {
                let got = replay.apply(RecordRef { shard: 0, seq: i as u64 + 1 }, e).unwrap();
                prop_assert_eq!(&got, &alerts[i], "alerts of record {}", i + 1);
                if i >= setup_len {
                    let now = ACCOUNTS.map(|a| replay.risk_view(a));
                    prop_assert_eq!(&now, &views[i - setup_len], "risk views after record {}", i + 1);
                }
            }
            for a in ACCOUNTS {
                prop_assert_eq!(replay.account_risk(a), state.account_risk(a));
            }
            for (s, ..) in SYMBOLS {
                prop_assert_eq!(replay.symbol_risk_view(s), state.symbol_risk_view(s));
            }
            prop_assert_eq!(replay.facts(), state.facts());
            Ok(())
        })
        .unwrap();
}

#[test]
fn restart_from_facts_reproduces_the_risk_state() {
    runner(60)
        .run(&steps(), |steps| {
            // A store fed by drain_changes after every record; after every step's
            // record it must hold facts(), and a shard loaded from it must have the
            // same facts and the same risk views (to rounding: its books are built
            // from scratch, the running ones by rank-1 updates).
            let mut store: BTreeMap<(Table, String), Vec<u8>> = BTreeMap::new();
            let mut drain = |state: &mut ShardState| {
                for c in state.drain_changes() {
                    match c.value {
                        Some(v) => store.insert((c.table, c.key), v),
                        None => store.remove(&(c.table, c.key)),
                    };
                }
                store.iter().map(|((t, k), v)| Change { table: *t, key: k.clone(), value: Some(v.clone()) }).collect()
            };
            records(&steps, |state| {
                let stored: Vec<Change> = drain(state);
                prop_assert_eq!(&stored, &state.facts(), "the store holds the facts");
                let mut reloaded = ShardState::new(0, config());
                for row in &stored {
                    reloaded.load_fact(row.table, &row.key, row.value.as_deref().unwrap()).unwrap();
                }
                reloaded.rebuild_derived();
                prop_assert_eq!(reloaded.facts(), state.facts());
                for a in ACCOUNTS {
                    let before = serde_json::to_value(state.risk_view(a).unwrap()).unwrap();
                    let after = serde_json::to_value(reloaded.risk_view(a).unwrap()).unwrap();
                    assert_json_near(a, &before, &after)?;
                }
                for (s, ..) in SYMBOLS {
                    prop_assert_eq!(reloaded.symbol_risk_view(s), state.symbol_risk_view(s));
                }
                Ok(())
            })
            .map(drop)
        })
        .unwrap();
}

#[test]
fn a_position_the_model_does_not_know_yet_shows_its_current_value() {
    // Bought before any bar close has priced it, then ticked in the same bar: the
    // view's exposure is quantity x last price (10 x 120), before and after a restart.
    let mut state = ShardState::new(0, config());
    let mut events = setup();
    let at = |secs: i64| START.plus_seconds(secs);
    events.push(Event {
        event_id: None,
        ts: at(1),
        body: EventBody::CashMovement(CashMovement {
            account_id: "a1".into(),
            user_id: "u0".into(),
            kind: CashKind::Deposit,
            amount: Decimal::from(10_000),
        }),
    });
    events.push(Event {
        event_id: None,
        ts: at(2),
        body: EventBody::TradeExecuted(TradeExecuted {
            trade_id: "t".into(),
            account_id: "a1".into(),
            user_id: "u0".into(),
            symbol: "AAA".into(),
            side: Side::Buy,
            quantity: Decimal::from(10),
            price: Decimal::from(100),
            fees: Decimal::ZERO,
            lot_method: None,
            lot_ids: vec![],
        }),
    });
    events.push(Event {
        event_id: None,
        ts: at(3),
        body: EventBody::MarketTick(MarketTick { symbol: "AAA".into(), price: Decimal::from(120), volume: None }),
    });
    for (i, e) in events.iter().enumerate() {
        state.apply(RecordRef { shard: 0, seq: i as u64 + 1 }, e).unwrap();
    }
    assert_eq!(state.model().index_of("AAA"), None, "no bar has closed yet");
    let view = state.risk_view("a1").unwrap();
    assert_eq!(view.components.len(), 1);
    assert_eq!((view.components[0].exposure, view.components[0].component_var), (1_200.0, 0.0));
    state.drain_changes();
    let mut reloaded = ShardState::new(0, config());
    for row in state.facts() {
        reloaded.load_fact(row.table, &row.key, row.value.as_deref().unwrap()).unwrap();
    }
    reloaded.rebuild_derived();
    assert_eq!(reloaded.risk_view("a1"), Some(view));
}
