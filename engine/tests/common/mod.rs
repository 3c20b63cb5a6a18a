//! Event builders shared by the engine's integration tests.
#![allow(dead_code)]

pub mod server;

use std::collections::BTreeMap;

use riskstream_schemas::json::Decoded;
use riskstream_schemas::*;
use rust_decimal::Decimal;

pub fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

pub fn ts(minute: i64) -> Timestamp {
    Timestamp::parse("2026-04-01T14:00:00Z").unwrap().plus_seconds(minute * 60)
}

pub fn ev(id: &str, minute: i64, body: EventBody) -> Event {
    Event { event_id: (!id.is_empty()).then(|| id.to_string()), ts: ts(minute), body }
}

pub fn items(events: &[Event]) -> Vec<Decoded> {
    events.iter().enumerate().map(|(i, e)| Decoded { index: i, raw: json::encode(e), result: Ok(e.clone()) }).collect()
}

pub fn listed(symbol: &str) -> EventBody {
    EventBody::SecurityListed(SecurityListed {
        symbol: symbol.into(),
        asset_class: "equity".into(),
        sector: "tech".into(),
        wash_group: symbol.into(),
    })
}

pub fn opened(account: &str, user: &str) -> EventBody {
    EventBody::AccountOpened(AccountOpened {
        account_id: account.into(),
        user_id: user.into(),
        tax_status: TaxStatus::Taxable,
        base_currency: "USD".into(),
    })
}

pub fn deposit(account: &str, user: &str, amount: &str) -> EventBody {
    EventBody::CashMovement(CashMovement {
        account_id: account.into(),
        user_id: user.into(),
        kind: CashKind::Deposit,
        amount: d(amount),
    })
}

/// A trade with id `trade_id` (unique per account: each buy opens the lot of that id).
pub fn trade(trade_id: &str, account: &str, user: &str, symbol: &str, side: Side, qty: &str, price: &str) -> EventBody {
    EventBody::TradeExecuted(TradeExecuted {
        trade_id: trade_id.into(),
        account_id: account.into(),
        user_id: user.into(),
        symbol: symbol.into(),
        side,
        quantity: d(qty),
        price: d(price),
        fees: d("1"),
        lot_method: None,
        lot_ids: vec![],
    })
}

pub fn tick(symbol: &str, price: &str) -> EventBody {
    EventBody::MarketTick(MarketTick { symbol: symbol.into(), price: d(price), volume: None })
}

pub fn targets(account: &str, user: &str, weights: &[(&str, &str)]) -> EventBody {
    let targets: BTreeMap<String, DecimalStr> = weights.iter().map(|(s, w)| (s.to_string(), d(w).into())).collect();
    EventBody::TargetAllocationSet(TargetAllocationSet {
        account_id: account.into(),
        user_id: user.into(),
        targets,
        band_abs: None,
        band_rel: None,
    })
}

/// A small book: 3 symbols, `accounts` accounts (two per user) with targets and
/// positions, then `ticks` ticks with one shock, all deterministic.
pub fn workload(accounts: usize, ticks: usize) -> Vec<Event> {
    let syms = ["AAA", "BBB", "CCC"];
    let mut out: Vec<Event> = syms.iter().map(|s| ev(&format!("list-{s}"), 0, listed(s))).collect();
    for a in 0..accounts {
        let (acc, user) = (format!("acc-{a}"), format!("user-{}", a / 2));
        out.push(ev(&format!("open-{a}"), 1, opened(&acc, &user)));
        out.push(ev(&format!("dep-{a}"), 1, deposit(&acc, &user, "10000.00")));
        out.push(ev(&format!("tgt-{a}"), 1, targets(&acc, &user, &[("AAA", "0.5"), ("BBB", "0.3"), ("CCC", "0.2")])));
        for (s, q) in [("AAA", 50 + a % 5), ("BBB", 30), ("CCC", 20)] {
            out.push(ev(
                &format!("buy-{a}-{s}"),
                2,
                trade(&format!("buy-{a}-{s}"), &acc, &user, s, Side::Buy, &q.to_string(), "100.50"),
            ));
        }
    }
    let mut price = [100i64, 100, 100];
    for t in 0..ticks {
        let s = t % 3;
        price[s] += if t == ticks / 2 {
            40
        } else if t % 7 < 3 {
            1
        } else {
            -1
        };
        let minute = 3 + (t as i64) * 37;
        out.push(ev(&format!("tick-{t}"), minute, tick(syms[s], &format!("{}.250", price[s].max(1)))));
    }
    out
}
