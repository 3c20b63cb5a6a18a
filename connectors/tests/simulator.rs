//! The simulator's promises: deterministic from the seed, resumable by position,
//! valid events, no short sales, setup on target, shocks when asked for.

use std::collections::{BTreeMap, HashMap, HashSet};

use riskstream_connectors::simulator::events;
use riskstream_connectors::{EventSource, SimulatorConfig, SimulatorSource, SourceError};
use riskstream_schemas::json::{decode_line, encode};
use riskstream_schemas::{validate, CashKind, Event, EventBody, Side, TaxStatus, Timestamp};
use rust_decimal::Decimal;

fn small(seed: u64) -> SimulatorConfig {
    SimulatorConfig {
        seed,
        symbols: 40,
        accounts: 30,
        positions_per_account: 6,
        trade_every: 2,
        shock_every: 200,
        ..SimulatorConfig::default()
    }
}

fn take(config: SimulatorConfig, n: usize) -> Vec<Event> {
    events(config).take(n).collect()
}

/// Index of the first steady-state event: the first tick with a volume (opening
/// ticks have none).
fn setup_len(events: &[Event]) -> usize {
    events
        .iter()
        .position(|e| matches!(&e.body, EventBody::MarketTick(t) if t.volume.is_some()))
        .expect("the steady state was reached")
}

fn drain(source: &mut SimulatorSource, batch: usize) -> Vec<Event> {
    let mut out = Vec::new();
    loop {
        let b = source.next_batch(batch).unwrap();
        for (i, item) in b.items.iter().enumerate() {
            assert_eq!(item.index, source.position() as usize - b.items.len() + i);
            out.push(item.result.clone().unwrap());
        }
        assert_eq!(b.position, Some(source.position().to_string()));
        if b.end {
            return out;
        }
    }
}

#[test]
fn same_seed_gives_identical_events_and_other_seeds_differ() {
    let a = take(small(7), 3_000);
    let b = take(small(7), 3_000);
    assert_eq!(a, b);
    let c = take(small(8), 3_000);
    let bodies = |v: &[Event]| v.iter().map(|e| encode(&Event { event_id: None, ..e.clone() })).collect::<Vec<_>>();
    assert_ne!(bodies(&a), bodies(&c));
    assert_eq!(a[0].event_id.as_deref(), Some("sim-7-0"));
    assert_eq!(c[2_999].event_id.as_deref(), Some("sim-8-2999"));
}

#[test]
fn seek_continues_exactly_where_the_stream_was() {
    let config = SimulatorConfig { limit: Some(3_000), ..small(11) };
    let full = drain(&mut SimulatorSource::new(config.clone()), 700);
    assert_eq!(full.len(), 3_000);
    let setup = setup_len(&full);
    for n in [0, 1, 57, 150, setup - 1, setup, setup + 1, 2_500, 2_999, 3_000] {
        let mut source = SimulatorSource::new(config.clone());
        source.seek(&n.to_string()).unwrap();
        assert_eq!(drain(&mut source, 333), full[n..], "resumed at {n}");
    }
    // Going back on a used source starts over from the seed.
    let mut used = SimulatorSource::new(config.clone());
    used.next_batch(2_000).unwrap();
    used.seek("1200").unwrap();
    assert_eq!(drain(&mut used, 500), full[1_200..]);
}

#[test]
fn seek_refuses_positions_it_cannot_reach() {
    let mut source = SimulatorSource::new(SimulatorConfig { limit: Some(10), ..small(1) });
    for bad in ["11", "-1", "ten", ""] {
        let err = source.seek(bad).unwrap_err();
        assert!(matches!(err, SourceError::BadPosition { ref source_name, .. } if source_name == "simulator"));
    }
}

#[test]
fn limit_ends_the_stream_and_batches_report_end() {
    let mut source = SimulatorSource::new(SimulatorConfig { limit: Some(100), ..small(3) });
    let first = source.next_batch(60).unwrap();
    assert_eq!((first.items.len(), first.position.as_deref(), first.end), (60, Some("60"), false));
    let second = source.next_batch(60).unwrap();
    assert_eq!((second.items.len(), second.position.as_deref(), second.end), (40, Some("100"), true));
    assert_eq!(second.items[0].raw, encode(second.items[0].result.as_ref().unwrap()));
    let after = source.next_batch(60).unwrap();
    assert!(after.items.is_empty() && after.end);
    assert_eq!(source.next_event(), None);
}

#[test]
fn every_event_is_valid_unique_and_later_than_the_last() {
    let all = take(small(5), 6_000);
    let mut ids = HashSet::new();
    let mut last = Timestamp(i64::MIN);
    for (i, e) in all.iter().enumerate() {
        validate(e).unwrap_or_else(|r| panic!("event {i} invalid: {r}: {e:?}"));
        assert!(ids.insert(e.event_id.clone().unwrap()), "duplicate id at {i}");
        assert!(e.ts > last, "event {i} not after its predecessor");
        last = e.ts;
        let round_trip = decode_line(i, &encode(e)).result.unwrap();
        assert_eq!(&round_trip, e);
    }
    assert_eq!(all[0].ts, SimulatorConfig::default().start);
}

/// Replays trades and cash movements per account, as the engine would.
#[derive(Default)]
struct Book {
    cash: Decimal,
    held: HashMap<String, Decimal>,
}

#[test]
fn sells_never_exceed_holdings_and_cash_never_goes_negative() {
    let mut books: HashMap<String, Book> = HashMap::new();
    let (mut sells, mut buys) = (0, 0);
    for e in events(SimulatorConfig { trade_every: 1, ..small(21) }).take(20_000) {
        match &e.body {
            EventBody::CashMovement(c) => {
                assert_eq!(c.kind, CashKind::Deposit);
                books.entry(c.account_id.clone()).or_default().cash += c.amount;
            }
            EventBody::TradeExecuted(t) => {
                let book = books.get_mut(&t.account_id).expect("trades follow a deposit");
                let held = book.held.entry(t.symbol.clone()).or_default();
                let notional = t.quantity * t.price;
                assert_eq!(t.quantity.fract(), Decimal::ZERO, "whole shares");
                if t.side == Side::Sell {
                    assert!(t.quantity <= *held, "{} sells {} of {} held", t.trade_id, t.quantity, held);
                    *held -= t.quantity;
                    book.cash += notional - t.fees;
                    sells += 1;
                } else {
                    *held += t.quantity;
                    book.cash -= notional + t.fees;
                    buys += 1;
                }
                assert!(book.cash >= Decimal::ZERO, "{} overdraws {}", t.trade_id, t.account_id);
            }
            _ => {}
        }
    }
    assert!(sells > 500 && buys > 500, "{sells} sells, {buys} buys");
}

#[test]
fn setup_lists_everything_and_leaves_accounts_on_target() {
    let config = small(13);
    let all = take(config.clone(), 5_000);
    let setup = &all[..setup_len(&all)];
    let listed: Vec<_> = setup
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::SecurityListed(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(listed.len(), config.symbols);
    assert_eq!(listed[0].symbol, "S0001");
    assert!(listed.iter().any(|s| s.wash_group != s.symbol), "some symbols share a wash group");
    let classes: HashSet<&str> = listed.iter().map(|s| s.asset_class.as_str()).collect();
    assert!(classes.contains("equity") && classes.len() >= 2, "{classes:?}");

    let opened: Vec<_> = setup
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::AccountOpened(a) => Some(a.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(opened.len(), config.accounts);
    assert_eq!((opened[1].account_id.as_str(), opened[1].user_id.as_str()), ("acc-000002", "usr-000001"));
    assert_eq!(opened[2].user_id, "usr-000002");
    assert!(opened.iter().all(|a| a.base_currency == "USD"));
    let taxable = opened.iter().filter(|a| a.tax_status == TaxStatus::Taxable).count();
    assert!(taxable > config.accounts / 2 && taxable < config.accounts, "{taxable} taxable");
    assert_on_target(setup, config.positions_per_account, false);
    let stress = SimulatorConfig { stress: true, ..config };
    let all = take(stress.clone(), 5_000);
    assert_on_target(&all[..setup_len(&all)], stress.positions_per_account, true);
}

/// Every component of every account (cash included) sits inside the default
/// drift band min(5%, 25% of target) once setup ends.
fn assert_on_target(setup: &[Event], positions: usize, stress: bool) {
    let mut prices: HashMap<&str, Decimal> = HashMap::new();
    let mut books: HashMap<&str, Book> = HashMap::new();
    let mut targets: BTreeMap<&str, BTreeMap<String, Decimal>> = BTreeMap::new();
    for e in setup {
        match &e.body {
            EventBody::MarketTick(t) => {
                prices.insert(&t.symbol, t.price);
            }
            EventBody::CashMovement(c) => books.entry(&c.account_id).or_default().cash += c.amount,
            EventBody::TradeExecuted(t) => {
                let book = books.get_mut(t.account_id.as_str()).unwrap();
                *book.held.entry(t.symbol.clone()).or_default() += t.quantity;
                book.cash -= t.quantity * t.price + t.fees;
            }
            EventBody::TargetAllocationSet(t) => {
                assert_eq!(t.targets.values().map(|w| w.0).sum::<Decimal>(), Decimal::ONE);
                assert!(t.targets.values().all(|w| w.0.scale() == 4));
                // The calm profile leaves cash out of the allocation; the stress one names it.
                assert_eq!(t.targets.len(), positions + usize::from(stress));
                assert_eq!(t.targets.contains_key("CASH"), stress);
                targets.insert(&t.account_id, t.targets.iter().map(|(s, w)| (s.clone(), w.0)).collect());
            }
            _ => {}
        }
    }
    assert_eq!(targets.len(), books.len());
    for (account, wanted) in targets {
        let book = &books[account];
        let mut values: BTreeMap<String, Decimal> =
            book.held.iter().map(|(s, q)| (s.clone(), q * prices[s.as_str()])).collect();
        values.insert("CASH".into(), book.cash);
        let total: Decimal = values.values().sum();
        for (symbol, target) in wanted {
            let weight = values.get(&symbol).copied().unwrap_or_default() / total;
            let band = Decimal::new(5, 2).min(Decimal::new(25, 2) * target);
            assert!((weight - target).abs() <= band, "{account} {symbol}: weight {weight}, target {target}");
        }
    }
}

/// Largest move of any symbol over three of its consecutive ticks (a shock's ramp).
fn moves_over_ten_percent(config: SimulatorConfig) -> (usize, f64) {
    let mut history: HashMap<String, Vec<f64>> = HashMap::new();
    for e in events(config).take(30_000) {
        if let EventBody::MarketTick(t) = e.body {
            history.entry(t.symbol).or_default().push(t.price.try_into().unwrap());
        }
    }
    let mut moved = 0;
    let mut largest: f64 = 0.0;
    for prices in history.values() {
        let biggest = prices.windows(4).map(|w| (w[3] / w[0] - 1.0).abs()).fold(0.0, f64::max);
        moved += usize::from(biggest > 0.10);
        largest = largest.max(biggest);
    }
    (moved, largest)
}

#[test]
fn shocks_move_prices_beyond_ten_percent_only_when_enabled() {
    let quiet = SimulatorConfig { shock_every: 0, trade_every: 0, ..small(17) };
    let (moved, largest) = moves_over_ten_percent(quiet.clone());
    assert_eq!(moved, 0);
    assert!(largest < 0.03, "largest quiet move {largest}");
    let (moved, largest) = moves_over_ten_percent(SimulatorConfig { shock_every: 3_000, ..quiet });
    // Ten shocks, half of them whole sectors: several symbols move, none beyond 25%
    // plus noise.
    assert!(moved >= 3, "{moved} symbols moved");
    assert!(largest > 0.11 && largest < 0.30, "largest shocked move {largest}");
}

#[test]
fn default_config_and_partial_config_files() {
    let d = SimulatorConfig::default();
    assert_eq!((d.symbols, d.accounts, d.positions_per_account), (200, 1_000, 10));
    assert_eq!(d.start, Timestamp::parse("2026-01-05T14:30:00Z").unwrap());
    let c: SimulatorConfig = serde_json::from_str(r#"{"seed": 3, "limit": 10}"#).unwrap();
    assert_eq!((c.seed, c.limit, c.symbols), (3, Some(10), 200));
    assert!(serde_json::from_str::<SimulatorConfig>(r#"{"sede": 3}"#).is_err());
}

#[test]
fn out_of_range_config_is_clamped() {
    let config =
        SimulatorConfig { symbols: 0, positions_per_account: 9, accounts: 2, tick_interval_micros: 0, ..small(2) };
    let source = SimulatorSource::new(config);
    assert_eq!(source.config().symbols, 1);
    assert_eq!(source.config().positions_per_account, 1);
    assert_eq!(source.config().tick_interval_micros, 1);
    let all: Vec<Event> = events(source.config().clone()).take(500).collect();
    assert!(all.iter().all(|e| validate(e).is_ok()));
}
