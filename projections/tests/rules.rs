//! Band arithmetic against the published 5/25 rule, and the alert lifecycle
//! (raise once, hysteresis, cooldown in event time) on hand-built sequences.

use std::collections::BTreeMap;

use riskstream_projections::{RuleConfig, ShardState};
use riskstream_schemas::*;
use rust_decimal::Decimal;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

struct Script {
    state: ShardState,
    seq: u64,
    ts: Timestamp,
}

impl Script {
    fn new() -> Self {
        let mut s = Script {
            state: ShardState::new(0, RuleConfig::default()),
            seq: 0,
            ts: Timestamp::parse("2026-03-02T09:00:00Z").unwrap(),
        };
        s.run(EventBody::SecurityListed(SecurityListed {
            symbol: "AAA".into(),
            asset_class: "equity".into(),
            sector: "tech".into(),
            wash_group: "AAA".into(),
        }));
        s.run(EventBody::SecurityListed(SecurityListed {
            symbol: "BBB".into(),
            asset_class: "bond".into(),
            sector: "govt".into(),
            wash_group: "BBB".into(),
        }));
        s.run(EventBody::AccountOpened(AccountOpened {
            account_id: "a".into(),
            user_id: "u".into(),
            tax_status: TaxStatus::Taxable,
            base_currency: "USD".into(),
            holder_name: None,
            holder_email: None,
        }));
        s.run(EventBody::RiskLimitsSet(RiskLimitsSet {
            account_id: "a".into(),
            user_id: "u".into(),
            max_position_weight: Some(d("0.9")),
            ..Default::default()
        }));
        s.run(EventBody::CashMovement(CashMovement {
            account_id: "a".into(),
            user_id: "u".into(),
            kind: CashKind::Deposit,
            amount: d("10000"),
        }));
        s.trade("AAA", "50", "100");
        s.trade("BBB", "50", "100");
        let targets = BTreeMap::from([("AAA".to_string(), d("0.5").into()), ("BBB".to_string(), d("0.5").into())]);
        s.run(EventBody::TargetAllocationSet(TargetAllocationSet {
            account_id: "a".into(),
            user_id: "u".into(),
            targets,
            band_abs: None,
            band_rel: None,
        }));
        s
    }

    fn run(&mut self, body: EventBody) -> Vec<Alert> {
        self.seq += 1;
        let event = Event { event_id: None, ts: self.ts, body };
        self.state.apply(RecordRef { shard: 0, seq: self.seq }, &event).unwrap()
    }

    fn trade(&mut self, symbol: &str, qty: &str, price: &str) -> Vec<Alert> {
        let event = self.trade_event(symbol, Side::Buy, qty, price);
        self.seq += 1;
        self.state.apply(RecordRef { shard: 0, seq: self.seq }, &event).unwrap()
    }

    /// A trade of account `a` now, not applied.
    fn trade_event(&self, symbol: &str, side: Side, qty: &str, price: &str) -> Event {
        let body = EventBody::TradeExecuted(TradeExecuted {
            trade_id: format!("t{}", self.seq),
            account_id: "a".into(),
            user_id: "u".into(),
            symbol: symbol.into(),
            side,
            quantity: d(qty),
            price: d(price),
            fees: Decimal::ZERO,
            lot_method: None,
            lot_ids: vec![],
        });
        Event { event_id: None, ts: self.ts, body }
    }

    /// A tick `minutes` after the previous event.
    fn tick(&mut self, minutes: i64, price: &str) -> Vec<(AlertKind, AlertState)> {
        self.ts = self.ts.plus_seconds(minutes * 60);
        let alerts =
            self.run(EventBody::MarketTick(MarketTick { symbol: "AAA".into(), price: d(price), volume: None }));
        alerts.iter().filter(|a| a.kind == AlertKind::Drift).map(|a| (a.kind, a.state)).collect()
    }
}

#[test]
fn bands_follow_the_5_25_rule() {
    // Swedroe's 5/25 rule as quoted by Bogleheads ("Rebalancing"): 60% -> 55-65%,
    // 10% -> 7.5-12.5%, 5% -> 3.75-6.25% (shared/REFERENCES.md, "Drift bands").
    let mut state = ShardState::new(0, RuleConfig::default());
    let mut seq = 0;
    let mut apply = |body| {
        seq += 1;
        state.apply(RecordRef { shard: 0, seq }, &Event { event_id: None, ts: Timestamp(0), body }).unwrap();
    };
    apply(EventBody::AccountOpened(AccountOpened {
        account_id: "a".into(),
        user_id: "u".into(),
        tax_status: TaxStatus::Taxable,
        base_currency: "USD".into(),
        holder_name: None,
        holder_email: None,
    }));
    let targets = BTreeMap::from([
        ("A".to_string(), d("0.60").into()),
        ("B".to_string(), d("0.10").into()),
        ("C".to_string(), d("0.05").into()),
        ("D".to_string(), d("0.25").into()),
    ]);
    apply(EventBody::TargetAllocationSet(TargetAllocationSet {
        account_id: "a".into(),
        user_id: "u".into(),
        targets,
        band_abs: None,
        band_rel: None,
    }));
    apply(EventBody::CashMovement(CashMovement {
        account_id: "a".into(),
        user_id: "u".into(),
        kind: CashKind::Deposit,
        amount: d("1"),
    }));
    let view = state.full_view("a").unwrap();
    let bands: Vec<(String, Decimal)> = view.drift.iter().map(|l| (l.symbol.clone(), l.band)).collect();
    assert_eq!(
        bands,
        vec![("A".into(), d("0.05")), ("B".into(), d("0.025")), ("C".into(), d("0.0125")), ("D".into(), d("0.05"))]
    );
}

#[test]
fn raises_once_then_clears_only_past_the_hysteresis_margin() {
    let mut s = Script::new();
    // 50/50 at 100. AAA at 125: w = 6250/11250 = 0.5556, drift 5.56pp > 5pp band.
    assert_eq!(s.tick(1, "125"), vec![(AlertKind::Drift, AlertState::Raised)]);
    // Still out of band: no second alert.
    assert_eq!(s.tick(1, "130"), vec![]);
    // AAA at 120: w = 6000/11000 = 0.5455, drift 4.55pp: inside the band but above
    // 5pp x (1 - 0.1) = 4.5pp, so it holds.
    assert_eq!(s.tick(1, "120"), vec![]);
    // AAA at 119: w = 5950/10950 = 0.5434, drift 4.34pp <= 4.5pp: cleared.
    assert_eq!(s.tick(1, "119"), vec![(AlertKind::Drift, AlertState::Cleared)]);
}

#[test]
fn cooldown_holds_back_a_second_raise_in_event_time() {
    let mut s = Script::new();
    assert_eq!(s.tick(1, "125"), vec![(AlertKind::Drift, AlertState::Raised)]);
    assert_eq!(s.tick(1, "100"), vec![(AlertKind::Drift, AlertState::Cleared)]);
    // Out of band again 2 minutes after the raise: inside the 1 h cooldown.
    assert_eq!(s.tick(1, "125"), vec![]);
    assert_eq!(s.tick(30, "126"), vec![]);
    // 61 minutes after the first raise: raised again.
    assert_eq!(s.tick(29, "126"), vec![(AlertKind::Drift, AlertState::Raised)]);
}

#[test]
fn alert_ids_are_deterministic_and_distinct() {
    use riskstream_projections::alert_id;
    let at = RecordRef { shard: 3, seq: 42 };
    let id = alert_id(at, "drift", "acc-1", "acc-1");
    assert_eq!(id, alert_id(at, "drift", "acc-1", "acc-1"));
    assert_eq!(id.len(), 32);
    assert_ne!(id, alert_id(at, "drift", "acc-2", "acc-2"));
    assert_ne!(id, alert_id(RecordRef { shard: 3, seq: 43 }, "drift", "acc-1", "acc-1"));
    assert_ne!(id, alert_id(at, "concentration", "acc-1", "acc-1"));
    // One price batch can move two symbols an account holds: two alerts, two ids.
    assert_ne!(alert_id(at, "market_move", "AAA", "acc-1"), alert_id(at, "market_move", "BBB", "acc-1"));
    // Length prefixes: moving a byte between fields changes the id.
    assert_ne!(alert_id(at, "market_move", "AB", "C"), alert_id(at, "market_move", "A", "BC"));
}

/// Quantity and price are each below 10^18, their product need not be: such a
/// trade is refused with its reason instead of overflowing the decimal.
#[test]
fn a_trade_whose_money_overflows_is_refused() {
    let mut s = Script::new();
    let before = s.state.facts();
    let huge = s.trade_event("AAA", Side::Buy, "100000000000000000", "100000000000000000");
    let err = s.state.apply(RecordRef { shard: 0, seq: 99 }, &huge).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("quantity"));
    assert!(err.reason.contains("beyond the money a position can hold"), "{err}");
    assert_eq!(s.state.facts(), before);
    // A large trade that fits still books.
    s.run(EventBody::CashMovement(CashMovement {
        account_id: "a".into(),
        user_id: "u".into(),
        kind: CashKind::Deposit,
        amount: d("100000000000000000"),
    }));
    s.trade("AAA", "1000000000", "1000000");
    assert_eq!(s.state.account("a").unwrap().positions["AAA"].quantity, d("1000000050"));
}

#[test]
fn rejected_events_change_nothing() {
    let mut s = Script::new();
    let before = s.state.facts();
    let sell_too_much = s.trade_event("AAA", Side::Sell, "51", "100");
    let err = s.state.apply(RecordRef { shard: 0, seq: 99 }, &sell_too_much).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("quantity"));
    assert!(err.reason.contains("holds 50"), "{err}");
    let wrong_user = Event {
        event_id: None,
        ts: s.ts,
        body: EventBody::CashMovement(CashMovement {
            account_id: "a".into(),
            user_id: "someone-else".into(),
            kind: CashKind::Deposit,
            amount: d("1"),
        }),
    };
    assert_eq!(
        s.state.apply(RecordRef { shard: 0, seq: 100 }, &wrong_user).unwrap_err().field.as_deref(),
        Some("user_id")
    );
    let unknown = Event {
        event_id: None,
        ts: s.ts,
        body: EventBody::CashMovement(CashMovement {
            account_id: "nope".into(),
            user_id: "u".into(),
            kind: CashKind::Deposit,
            amount: d("1"),
        }),
    };
    assert!(s
        .state
        .apply(RecordRef { shard: 0, seq: 101 }, &unknown)
        .unwrap_err()
        .reason
        .contains("unknown account `nope`"));
    assert_eq!(s.state.facts(), before);
}
