//! The tax lots as wired into the per-shard projection (`ShardState`), on seeded
//! random event sequences: two users, a taxable account and a traditional IRA for
//! `u` and a taxable account for `v`; `AAA` and `AAB` substantially identical (wash
//! group `G`), `BBB` not (group `B`); buys, sells (no method, FIFO, HIFO, or naming
//! one open lot taken from `lots_view`), ticks and price batches drifting down so
//! losses happen, and jumps of 0 to 40 days of event time (inside and outside the
//! 30-day wash window; many records share a timestamp). Records are normalized as
//! the sequencer does before applying them.
//!
//! `tax_lots.rs` and `tax_wash.rs` test the `TaxBook` alone. This file tests what
//! the shard adds around it, where the tax state can drift from the rest of the
//! projection or from what is stored:
//! 1. Replay: the same records into a fresh shard give the same alerts, record by
//!    record, and the same facts.
//! 2. Restart: a shard loaded from the facts at a random cut (`load_fact` row by row,
//!    then `rebuild_derived`) has the same facts, and applying the remaining records
//!    to it and to a shard that never stopped gives the same alerts and the same
//!    facts after every record. The `tax_books`, `tax_lots` and `wash_sales` rows
//!    must carry everything: pending wash decisions, harvest triggers and the
//!    positions' basis are rebuilt from them.
//! 3. After every record, each position's `cost_basis` and quantity are the sums
//!    over its open lots in `lots_view`, and a symbol without a position has no lots.
//! 4. After every record, its `wash_sale_risk` alerts are exactly the corrections
//!    its new `wash_sales` entries call for: one per purchase and seller account
//!    washing losses already reported (the retroactive entries), in the order
//!    decided, with the value the sum of their `disallowed` and those entries in the
//!    details; entries washed by an earlier purchase raise none. The entries'
//!    `disallowed` total is what the realized figures of the
//!    user's taxable accounts, and the user's taxable total, show.
//! 5. After every record, a store fed by `drain_changes` (a `None` deletes) holds
//!    exactly `facts()`: no row is forgotten or left behind (emptied lots included).
//!
//! A last test checks that the generator reaches the cases these properties are
//! about (wash sales of each kind, IRA replacements, split lots, specific
//! identification, corrections, decisions pending), so the properties cannot pass
//! by having nothing to check.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use riskstream_projections::tax::WashAdjustment;
use riskstream_projections::{Change, RuleConfig, ShardState, Table};
use riskstream_schemas::*;
use rust_decimal::Decimal;

/// (symbol, asset class, sector, wash group). `BBB` shares the class and sector, so
/// it is the harvest rule's suggested replacement for the `G` symbols.
const SYMBOLS: [(&str, &str, &str, &str); 3] =
    [("AAA", "equity", "tech", "G"), ("AAB", "equity", "tech", "G"), ("BBB", "equity", "tech", "B")];
/// (account, user, tax status).
const ACCOUNTS: [(&str, &str, TaxStatus); 3] =
    [("u-tax", "u", TaxStatus::Taxable), ("u-ira", "u", TaxStatus::TraditionalIra), ("v-tax", "v", TaxStatus::Taxable)];
const USERS: [&str; 2] = ["u", "v"];
const CASES: u32 = 64;

fn start() -> Timestamp {
    Timestamp::parse("2025-01-02T14:30:00Z").unwrap()
}

#[derive(Debug, Clone)]
enum Step {
    /// Account, symbol, shares, price offset from the last price in basis points.
    Buy { account: usize, symbol: usize, shares: i64, bp: i64 },
    /// A percentage of one held position of the account (the symbol picked among
    /// those held); `method` 0: none (FIFO), 1: FIFO, 2: HIFO, 3: name one open lot
    /// (picked by `lot`) and sell a percentage of it.
    Sell { account: usize, symbol: Index, percent: i64, method: u8, lot: Index, bp: i64 },
    /// One `MarketTick`: symbol and move in basis points.
    Tick(usize, i64),
    /// One `PriceBatch` of (symbol, move in basis points).
    Batch(Vec<(usize, i64)>),
    /// Event time moves on by days and seconds; no record.
    Advance(i64, i64),
}

fn step() -> impl Strategy<Value = Step> {
    // Moves lean down (-8% .. +5%) so lots go under water and sales make losses.
    let moves = -800..=500i64;
    prop_oneof![
        5 => (0..3usize, 0..3usize, 1..=50i64, -200..=200i64)
            .prop_map(|(account, symbol, shares, bp)| Step::Buy { account, symbol, shares, bp }),
        4 => (0..3usize, any::<Index>(), 1..=100i64, 0..4u8, any::<Index>(), -200..=200i64).prop_map(
            |(account, symbol, percent, method, lot, bp)| Step::Sell { account, symbol, percent, method, lot, bp }
        ),
        2 => (0..3usize, moves.clone()).prop_map(|(s, bp)| Step::Tick(s, bp)),
        1 => proptest::collection::vec((0..3usize, moves), 1..4).prop_map(Step::Batch),
        2 => (0..=40i64, 0..86_400i64).prop_map(|(days, secs)| Step::Advance(days, secs)),
        1 => (0..7_200i64).prop_map(|secs| Step::Advance(0, secs)),
    ]
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(step(), 1..120)
}

/// The last price, or 100 before the first one.
fn price_of(state: &ShardState, symbol: &str) -> Decimal {
    state.price(symbol).map_or(Decimal::ONE_HUNDRED, |p| p.price)
}

/// `price x (1 + bp / 10000)` to the cent, at least `floor`.
fn moved(price: Decimal, bp: i64, floor: Decimal) -> Decimal {
    (price * Decimal::new(10_000 + bp, 4)).round_dp(2).max(floor)
}

/// `percent` of `of` in whole shares, at least 1 and at most `of`.
fn part(of: Decimal, percent: i64) -> Decimal {
    (of * Decimal::new(percent, 2)).round_dp(0).max(Decimal::ONE).min(of)
}

/// The record of a step at the current state; `None` for time steps and for sells
/// of an account that holds nothing. `n` numbers the record (unique trade ids).
fn body(step: &Step, state: &ShardState, n: usize) -> Option<EventBody> {
    let trade = |account: usize, symbol: &str, side, quantity, price, method, lot_ids| {
        let (account_id, user_id, _) = ACCOUNTS[account];
        EventBody::TradeExecuted(TradeExecuted {
            trade_id: format!("t{n}"),
            account_id: account_id.into(),
            user_id: user_id.into(),
            symbol: symbol.into(),
            side,
            quantity,
            price,
            fees: Decimal::new(n as i64 % 5, 2),
            lot_method: method,
            lot_ids,
        })
    };
    Some(match step {
        Step::Buy { account, symbol, shares, bp } => {
            let symbol = SYMBOLS[*symbol].0;
            let price = moved(price_of(state, symbol), *bp, Decimal::new(1, 2));
            trade(*account, symbol, Side::Buy, Decimal::from(*shares), price, None, vec![])
        }
        Step::Sell { account, symbol, percent, method, lot, bp } => {
            let held: Vec<(&str, Decimal)> =
                state.account(ACCOUNTS[*account].0)?.positions.iter().map(|(s, p)| (s.as_str(), p.quantity)).collect();
            if held.is_empty() {
                return None;
            }
            let (symbol, quantity) = *symbol.get(&held);
            let price = moved(price_of(state, symbol), *bp, Decimal::new(1, 2));
            let (method, lot_ids, quantity) = match method {
                0 => (None, vec![], part(quantity, *percent)),
                1 => (Some(LotMethod::Fifo), vec![], part(quantity, *percent)),
                2 => (Some(LotMethod::Hifo), vec![], part(quantity, *percent)),
                _ => {
                    let view = state.lots_view(ACCOUNTS[*account].0).expect("open account");
                    let lots: Vec<_> = view.lots.iter().filter(|l| l.symbol == symbol).collect();
                    let named = lot.get(&lots);
                    (Some(LotMethod::Specific), vec![named.lot_id.clone()], part(named.quantity, *percent))
                }
            };
            trade(*account, symbol, Side::Sell, quantity, price, method, lot_ids)
        }
        Step::Tick(s, bp) => {
            let symbol = SYMBOLS[*s].0;
            let price = moved(price_of(state, symbol), *bp, Decimal::ONE);
            EventBody::MarketTick(MarketTick { symbol: symbol.into(), price, volume: None })
        }
        Step::Batch(moves) => {
            let mut prices = BTreeMap::new();
            for &(s, bp) in moves {
                let symbol = SYMBOLS[s].0;
                prices.insert(symbol.to_string(), moved(price_of(state, symbol), bp, Decimal::ONE).into());
            }
            EventBody::PriceBatch(PriceBatch { prices, times: Default::default() })
        }
        Step::Advance(..) => return None,
    })
}

/// Lists the securities, opens the accounts and funds them.
fn setup() -> Vec<Event> {
    let mut out = Vec::new();
    for (symbol, class, sector, group) in SYMBOLS {
        out.push(EventBody::SecurityListed(SecurityListed {
            symbol: symbol.into(),
            asset_class: class.into(),
            sector: sector.into(),
            wash_group: group.into(),
        }));
    }
    for (account_id, user_id, tax_status) in ACCOUNTS {
        out.push(EventBody::AccountOpened(AccountOpened {
            account_id: account_id.into(),
            user_id: user_id.into(),
            tax_status,
            base_currency: "USD".into(),
            holder_name: None,
            holder_email: None,
        }));
    }
    for (account_id, user_id, _) in ACCOUNTS {
        out.push(EventBody::CashMovement(CashMovement {
            account_id: account_id.into(),
            user_id: user_id.into(),
            kind: CashKind::Deposit,
            amount: Decimal::from(200_000),
        }));
    }
    out.into_iter().map(|body| Event { event_id: None, ts: start(), body }).collect()
}

fn at(i: usize) -> RecordRef {
    RecordRef { shard: 0, seq: i as u64 + 1 }
}

/// A store fed by `drain_changes`: (table, key) -> row.
#[derive(Default)]
struct Store(BTreeMap<(Table, String), Vec<u8>>);

impl Store {
    fn drain(&mut self, state: &mut ShardState) {
        for c in state.drain_changes() {
            match c.value {
                Some(v) => self.0.insert((c.table, c.key), v),
                None => self.0.remove(&(c.table, c.key)),
            };
        }
    }

    fn rows(&self) -> Vec<Change> {
        self.0.iter().map(|((t, k), v)| Change { table: *t, key: k.clone(), value: Some(v.clone()) }).collect()
    }
}

/// One row, readable (`risk_model` rows are binary: shown lossily).
fn show(c: &Change) -> String {
    let value = c.value.as_deref().map_or("<deleted>".into(), String::from_utf8_lossy);
    format!("{}[{:?}] = {value}", c.table.name(), c.key)
}

/// Fails with the rows only one side has when two sets of rows differ.
fn same_rows(left: &[Change], right: &[Change], what: &str) -> Result<(), TestCaseError> {
    if left != right {
        let only_left: Vec<String> = left.iter().filter(|c| !right.contains(c)).map(show).collect();
        let only_right: Vec<String> = right.iter().filter(|c| !left.contains(c)).map(show).collect();
        prop_assert!(false, "{what}:\n  only left:  {only_left:#?}\n  only right: {only_right:#?}");
    }
    Ok(())
}

/// Property 5: the drained store holds exactly the facts.
fn check_store(store: &mut Store, state: &mut ShardState, what: &str) -> Result<(), TestCaseError> {
    store.drain(state);
    let (stored, facts) = (store.rows(), state.facts());
    same_rows(&stored, &facts, &format!("{what}: the store fed by drain_changes (left) vs facts() (right)"))
}

/// Property 3: positions are their lots.
fn check_basis(state: &ShardState, what: &str) -> Result<(), TestCaseError> {
    for (account_id, ..) in ACCOUNTS {
        let Some(account) = state.account(account_id) else { continue };
        let view = state.lots_view(account_id).expect("an open account has a lots view");
        for lot in &view.lots {
            prop_assert!(
                lot.quantity > Decimal::ZERO && SYMBOLS.iter().any(|s| s.0 == lot.symbol),
                "{what}: {account_id} shows lot {lot:?}"
            );
        }
        for (symbol, ..) in SYMBOLS {
            let lots: Vec<_> = view.lots.iter().filter(|l| l.symbol == symbol).collect();
            match account.positions.get(symbol) {
                Some(p) => {
                    let basis: Decimal = lots.iter().map(|l| l.basis).sum();
                    let quantity: Decimal = lots.iter().map(|l| l.quantity).sum();
                    prop_assert_eq!(
                        p.cost_basis,
                        basis,
                        "{}: cost basis of {} in {} vs its lots {:?}",
                        what,
                        symbol,
                        account_id,
                        lots
                    );
                    prop_assert_eq!(p.quantity, quantity, "{}: quantity of {} in {}", what, symbol, account_id);
                }
                None => prop_assert!(lots.is_empty(), "{what}: {account_id} has no {symbol} but lots {lots:?}"),
            }
        }
    }
    Ok(())
}

/// Who a correction alert is for: (replacement account, purchase, seller account).
fn purchase_of(w: &WashAdjustment) -> (&str, &str, &str) {
    (&w.replacement_account_id, &w.replacement_trade_id, &w.loss_account_id)
}

/// Property 4, for one record: `raised` are its `wash_sale_risk` alerts; `before`
/// counts each user's `wash_sales` entries before it and is moved on.
fn check_washes(
    state: &ShardState,
    raised: &[&Alert],
    before: &mut [usize; USERS.len()],
    what: &str,
) -> Result<(), TestCaseError> {
    // The record's new entries that wash a loss already reported (retroactive), one
    // group per purchase and seller account in the order decided: one alert each.
    let mut expected: Vec<(&str, Vec<&WashAdjustment>)> = Vec::new();
    for (n, user) in USERS.into_iter().enumerate() {
        let entries = state.wash_sales(user);
        prop_assert!(entries.len() >= before[n], "{what}: {user}'s wash_sales shrank");
        let mut groups: Vec<Vec<&WashAdjustment>> = Vec::new();
        for w in entries[before[n]..].iter().filter(|w| w.retroactive) {
            match groups.iter_mut().find(|g| purchase_of(g[0]) == purchase_of(w)) {
                Some(g) => g.push(w),
                None => groups.push(vec![w]),
            }
        }
        expected.extend(groups.into_iter().map(|g| (user, g)));
        before[n] = entries.len();

        // What the entries disallow is what the user's taxable realized figures show.
        let listed: Decimal = entries.iter().map(|w| w.disallowed).sum();
        let disallowed = |years: &[riskstream_projections::tax::YearView]| {
            years.iter().map(|y| y.short_term.disallowed + y.long_term.disallowed).sum::<Decimal>()
        };
        let taxable = ACCOUNTS.iter().filter(|(_, u, s)| *u == user && *s == TaxStatus::Taxable);
        let mut by_accounts = Decimal::ZERO;
        for (account_id, ..) in taxable {
            // None before the account is opened (setup).
            let Some(view) = state.realized_view(account_id, None) else { continue };
            by_accounts += disallowed(&view.account);
            prop_assert_eq!(
                disallowed(&view.user_taxable),
                listed,
                "{}: {}'s user_taxable disallowed vs its wash_sales",
                what,
                user
            );
        }
        prop_assert_eq!(by_accounts, listed, "{}: {}'s taxable accounts' disallowed vs its wash_sales", what, user);
    }
    prop_assert_eq!(
        raised.len(),
        expected.len(),
        "{}: wash_sale_risk alerts {:?} vs new retroactive wash_sales entries {:?}",
        what,
        raised,
        expected
    );
    for (a, (user, group)) in raised.iter().zip(&expected) {
        let first = group[0];
        let details = a.details.as_ref().expect("wash_sale_risk alerts carry their adjustments");
        prop_assert_eq!(&a.user_id, user, "{}: user of the correction for {:?}", what, purchase_of(first));
        prop_assert_eq!(&a.account_id, &first.loss_account_id, "{}: account of the correction", what);
        prop_assert_eq!(
            a.value,
            group.iter().map(|w| w.disallowed).sum::<Decimal>(),
            "{}: value of the correction for {:?}",
            what,
            purchase_of(first)
        );
        prop_assert_eq!(&details["purchase"], &serde_json::json!(first.replacement_trade_id), "{}", what);
        prop_assert_eq!(
            &details["wash_sales"],
            &serde_json::to_value(group).unwrap(),
            "{}: the correction's adjustments are the entries stored",
            what
        );
    }
    Ok(())
}

/// A generated run: its records and the alerts of each.
struct Run {
    events: Vec<Event>,
    alerts: Vec<Vec<Alert>>,
    facts: Vec<Change>,
    /// Every user's `wash_sales` entries at the end.
    washes: Vec<WashAdjustment>,
}

/// What `live` checks after every record.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Checks {
    /// Nothing: the run only makes the records (the replay and restart tests).
    None,
    /// Properties 3 and 4.
    Lots,
    /// Property 5.
    Store,
}

/// Generates the records from the steps against the live shard, applying each and
/// checking `checks` after every one.
fn live(steps: &[Step], checks: Checks) -> Result<Run, TestCaseError> {
    let mut state = ShardState::new(0, RuleConfig::default());
    let mut store = Store::default();
    let mut events = Vec::new();
    let mut alerts = Vec::new();
    let mut before = [0; USERS.len()];
    let mut ts = start();
    let todo = setup().into_iter().map(Some).chain(steps.iter().map(|_| None));
    let mut steps = steps.iter();
    for next in todo {
        let event = match next {
            Some(e) => e,
            None => {
                let step = steps.next().expect("one step per slot");
                if let Step::Advance(days, secs) = step {
                    ts = ts.plus_seconds(days * 86_400 + secs);
                }
                match body(step, &state, events.len()) {
                    Some(mut body) => {
                        // As the sequencer does: the log keeps no decimal scale.
                        body.normalize();
                        Event { event_id: None, ts, body }
                    }
                    None => continue,
                }
            }
        };
        let what = format!("record {} ({:?})", events.len() + 1, event.body);
        let raised = state.apply(at(events.len()), &event).unwrap_or_else(|e| panic!("{what} is rejected: {e:?}"));
        match checks {
            Checks::None => {}
            Checks::Lots => {
                check_basis(&state, &what)?;
                let washing: Vec<&Alert> = raised.iter().filter(|a| a.kind == AlertKind::WashSaleRisk).collect();
                check_washes(&state, &washing, &mut before, &what)?;
            }
            Checks::Store => check_store(&mut store, &mut state, &what)?,
        }
        alerts.push(raised);
        events.push(event);
    }
    let washes = USERS.iter().flat_map(|u| state.wash_sales(u).iter().cloned()).collect();
    Ok(Run { events, alerts, facts: state.facts(), washes })
}

fn runner(cases: u32) -> TestRunner {
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[11; 32]))
}

/// Loads a shard from stored rows as an engine does at start.
fn load(facts: &[Change]) -> ShardState {
    let mut state = ShardState::new(0, RuleConfig::default());
    for row in facts {
        let value = row.value.as_deref().expect("facts are rows");
        state.load_fact(row.table, &row.key, value).unwrap_or_else(|e| panic!("loading {row:?}: {e:?}"));
    }
    state.rebuild_derived();
    state
}

#[test]
fn positions_are_their_lots_and_wash_alerts_their_wash_sales_after_every_record() {
    runner(CASES).run(&steps(), |steps| live(&steps, Checks::Lots).map(drop)).unwrap();
}

#[test]
fn drained_changes_keep_a_store_equal_to_the_facts_after_every_record() {
    runner(CASES).run(&steps(), |steps| live(&steps, Checks::Store).map(drop)).unwrap();
}

#[test]
fn replay_gives_the_same_facts_and_alerts() {
    runner(CASES)
        .run(&steps(), |steps| {
            let run = live(&steps, Checks::None)?;
            let mut replay = ShardState::new(0, RuleConfig::default());
            for (i, e) in run.events.iter().enumerate() {
                let got = replay.apply(at(i), e).unwrap();
                prop_assert_eq!(&got, &run.alerts[i], "alerts of record {} ({:?})", i + 1, e.body);
            }
            same_rows(&replay.facts(), &run.facts, "facts after the replay (left) vs live (right)")?;
            Ok(())
        })
        .unwrap();
}

#[test]
fn restart_from_facts_at_any_cut_continues_identically() {
    runner(CASES)
        .run(&(steps(), any::<Index>()), |(steps, cut)| {
            let run = live(&steps, Checks::None)?;
            let cut = cut.index(run.events.len() + 1);
            let mut state = ShardState::new(0, RuleConfig::default());
            for (i, e) in run.events[..cut].iter().enumerate() {
                state.apply(at(i), e).unwrap();
            }
            let facts = state.facts();
            let mut reloaded = load(&facts);
            same_rows(&reloaded.facts(), &facts, &format!("facts loaded at cut {cut} (left) vs stored (right)"))?;
            for (i, e) in run.events.iter().enumerate().skip(cut) {
                let what = format!("record {} after a restart at {} ({:?})", i + 1, cut, e.body);
                let want = state.apply(at(i), e).unwrap();
                let got = reloaded.apply(at(i), e).unwrap_or_else(|err| panic!("{what} is rejected: {err:?}"));
                prop_assert_eq!(&want, &run.alerts[i], "{}: the live shard's alerts", &what);
                prop_assert_eq!(&got, &want, "{}: alerts", &what);
                same_rows(
                    &reloaded.facts(),
                    &state.facts(),
                    &format!("{what}: facts reloaded (left) vs live (right)"),
                )?;
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn the_scenarios_reach_the_wash_rules() {
    // Not a property: the generator must produce what the properties are about.
    let mut runner = runner(1);
    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    for _ in 0..CASES {
        let steps = steps().new_tree(&mut runner).unwrap().current();
        let run = live(&steps, Checks::None).unwrap();
        let mut seen = |what, yes: bool| *counts.entry(what).or_default() += u32::from(yes);
        let w = &run.washes;
        seen("wash sale", !w.is_empty());
        seen("retroactive wash sale", w.iter().any(|w| w.retroactive));
        seen("wash sale not retroactive", w.iter().any(|w| !w.retroactive));
        seen("IRA replacement", w.iter().any(|w| !w.added_to_basis));
        seen("replacement of the other G symbol", w.iter().any(|w| w.symbol != w.replacement_symbol));
        seen("wash sale of user v", w.iter().any(|w| w.loss_account_id == "v-tax"));
        seen("split lot", w.iter().any(|w| w.replacement_lot_id.contains('#')));
        let corrections = || run.alerts.iter().flatten().filter(|a| a.kind == AlertKind::WashSaleRisk);
        seen("wash_sale_risk alert", corrections().next().is_some());
        seen(
            "correction of several adjustments",
            corrections().any(|a| a.details.as_ref().unwrap()["wash_sales"].as_array().unwrap().len() > 1),
        );
        let trades = || {
            run.events.iter().filter_map(|e| match &e.body {
                EventBody::TradeExecuted(t) => Some(t),
                _ => None,
            })
        };
        seen("specific sell", trades().any(|t| t.lot_method == Some(LotMethod::Specific)));
        seen("hifo sell", trades().any(|t| t.lot_method == Some(LotMethod::Hifo)));
        seen("sell of a wash piece", trades().any(|t| t.lot_ids.iter().any(|id| id.contains('#'))));
        seen("tax_loss_harvest alert", run.alerts.iter().flatten().any(|a| a.kind == AlertKind::TaxLossHarvest));
        let pending = run.facts.iter().any(|c| {
            c.table == Table::TaxBooks
                && !String::from_utf8_lossy(c.value.as_deref().unwrap()).contains("\"pending\":[]")
        });
        seen("wash decisions pending at the end", pending);
    }
    println!("{counts:#?}");
    for (what, min) in [
        ("wash sale", 32),
        ("retroactive wash sale", 12),
        ("wash sale not retroactive", 12),
        ("wash_sale_risk alert", 12),
        ("correction of several adjustments", 3),
        ("IRA replacement", 6),
        ("replacement of the other G symbol", 12),
        ("wash sale of user v", 6),
        ("split lot", 6),
        ("specific sell", 32),
        ("hifo sell", 32),
        ("sell of a wash piece", 2),
        ("tax_loss_harvest alert", 6),
        ("wash decisions pending at the end", 12),
    ] {
        let n = counts.get(what).copied().unwrap_or(0);
        assert!(n >= min, "only {n} of {CASES} sequences have a {what} (want {min})");
    }
}
