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
        holder_name: None,
        holder_email: None,
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

/// The OpenAPI document says `method route` answers 200 with component `schema`
/// (which exists) and documents a 404.
#[track_caller]
pub fn assert_route_documented(openapi: &serde_json::Value, method: &str, route: &str, schema: &str) {
    let responses = &openapi["paths"][route][method]["responses"];
    assert_eq!(
        responses["200"]["content"]["application/json"]["schema"]["$ref"],
        format!("#/components/schemas/{schema}"),
        "{method} {route}"
    );
    assert!(responses.get("404").is_some(), "{method} {route} documents no 404");
    assert!(openapi["components"]["schemas"].get(schema).is_some(), "no component {schema}");
}

/// Component `schema` of the OpenAPI document describes a served `body`.
#[track_caller]
pub fn assert_described(openapi: &serde_json::Value, schema: &str, body: &serde_json::Value) {
    assert_described_by(schema, &openapi["components"]["schemas"][schema], body);
}

/// `schema` (an object schema, `what` names it) describes `body`: every field
/// served is one of its `properties`, and every `required` property is served.
#[track_caller]
pub fn assert_described_by(what: &str, schema: &serde_json::Value, body: &serde_json::Value) {
    let properties = schema["properties"].as_object().unwrap_or_else(|| panic!("{what} has no properties: {schema}"));
    let fields = body.as_object().unwrap_or_else(|| panic!("{what}: the body is not an object: {body}"));
    for field in fields.keys() {
        assert!(properties.contains_key(field), "{what} lacks `{field}` (served: {body})");
    }
    for name in schema["required"].as_array().into_iter().flatten() {
        let name = name.as_str().unwrap_or_else(|| panic!("{what}: `required` holds {name}"));
        assert!(properties.contains_key(name), "{what}: required `{name}` is not one of its properties");
        assert!(fields.contains_key(name), "{what}: required `{name}` is not served: {body}");
    }
}
