//! The tax API end to end on a real server (127.0.0.1:0, RocksDB in a temp dir),
//! fed over HTTP: lots, realized gains, wash sales across a taxable account and an
//! IRA, the harvest candidates, the `tax_loss_harvest` and `wash_sale_risk` alerts
//! and the pre-trade check.
//!
//! The story and its arithmetic (rules: IRS Publication 550, "Wash Sales"; 26 CFR
//! 1.1091-1 and -2; Rev. Rul. 2008-5 for the IRA purchase):
//! - day 0: buy 100 AAA at 100 + 1 fee in the taxable account: basis 10,001;
//! - day 10: AAA at 80: unrealized loss 2,001, selling cost 0.1% x 8,000 = 8, net
//!   1,993 >= 500 and 2,001 >= 5% of 10,001: a harvest candidate worth
//!   1,993 x 37% = 737.41 (short term); BBB (same asset class and sector, another
//!   wash group) is the replacement, AAB (AAA's wash group) is not;
//! - day 12: sell the 100 at 80 - 1 fee: proceeds 7,999, loss 2,002;
//! - day 20 (8 days after the sale): buy 50 AAB (substantially identical) in the
//!   IRA: 50 of the 100 sold shares are washed, 2,002 x 50/100 = 1,001 disallowed
//!   and lost (an IRA basis takes nothing);
//! - day 25: buy 30 AAA in the taxable account: 1,001 x 30/50 = 600.60 more
//!   disallowed, added to that lot's basis (30 x 81 + 1 + 600.60 = 3,031.60), whose
//!   holding period starts 12 days (the sold shares' holding) before day 25;
//! - realized 2026, short term: 7,999 - 10,001 + 1,601.60 = -400.40.

mod common;

use common::server::Server;
use common::*;
use reqwest::StatusCode;
use riskstream_engine::sequencer::shard_for;
use riskstream_projections::RuleConfig;
use riskstream_schemas::{AccountOpened, Event, EventBody, SecurityListed, Side, TaxStatus};
use serde_json::{json, Value};

const SHARDS: u32 = 2;
const TX: &str = "tx";
const IRA: &str = "ira";
const DAY: i64 = 1_440;

fn user() -> String {
    (1..).map(|i| format!("taxpayer-{i}")).find(|u| shard_for(u, SHARDS) == 1).unwrap()
}

fn security(symbol: &str, asset_class: &str, wash_group: &str) -> EventBody {
    EventBody::SecurityListed(SecurityListed {
        symbol: symbol.into(),
        asset_class: asset_class.into(),
        sector: "tech".into(),
        wash_group: wash_group.into(),
    })
}

fn ira(user: &str) -> EventBody {
    EventBody::AccountOpened(AccountOpened {
        account_id: IRA.into(),
        user_id: user.into(),
        tax_status: TaxStatus::TraditionalIra,
        base_currency: "USD".into(),
        holder_name: None,
        holder_email: None,
    })
}

fn setup(user: &str) -> Vec<Event> {
    vec![
        ev("list-AAA", 0, security("AAA", "equity", "AAA")),
        ev("list-AAB", 0, security("AAB", "equity", "AAA")),
        ev("list-BBB", 0, security("BBB", "equity", "BBB")),
        ev("list-CCC", 0, security("CCC", "bond", "CCC")),
        ev("open-tx", 0, opened(TX, user)),
        ev("open-ira", 0, ira(user)),
        ev("dep-tx", 0, deposit(TX, user, "100000")),
        ev("dep-ira", 0, deposit(IRA, user, "10000")),
        ev("b1", 1, trade("b1", TX, user, "AAA", Side::Buy, "100", "100")),
        ev("", 2, tick("AAA", "100")),
        ev("", 10 * DAY, tick("AAA", "80")),
    ]
}

fn dec(v: &Value) -> rust_decimal::Decimal {
    v.as_str().unwrap_or_else(|| panic!("not a decimal string: {v}")).parse().unwrap()
}

fn items_of(v: &Value) -> &[Value] {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}"))
}

/// The account's alerts of one kind: (state, value).
async fn alerts_of(server: &Server, account: &str, kind: &str) -> Vec<(String, rust_decimal::Decimal, Value)> {
    let body = server.get(&format!("/v1/accounts/{account}/alerts")).await;
    body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == kind)
        .map(|a| (a["state"].as_str().unwrap().to_string(), dec(&a["value"]), a.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lots_wash_sales_harvest_and_what_if_over_http() {
    let server = Server::start(SHARDS, RuleConfig::default());
    let user = user();
    server.post(&setup(&user)).await;

    // Day 10: a harvest candidate, also in the alert that announced it.
    let harvest = server.get(&format!("/v1/accounts/{TX}/harvest")).await;
    assert_eq!(harvest["shard"], 1, "{harvest}");
    let lots = harvest["candidates"].as_array().unwrap();
    assert_eq!(lots.len(), 1, "{harvest}");
    assert_eq!(lots[0]["lot_id"], "b1");
    assert_eq!(dec(&lots[0]["unrealized_loss"]), d("2001"));
    assert_eq!(dec(&lots[0]["trading_cost"]), d("8"));
    assert_eq!(dec(&lots[0]["net_loss"]), d("1993"));
    assert_eq!(lots[0]["term"], "short");
    assert_eq!(dec(&harvest["tax_benefit"]), d("737.41"));
    assert_eq!(harvest["replacements"], json!({ "AAA": ["BBB"] }));
    let raised = alerts_of(&server, TX, "tax_loss_harvest").await;
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!((raised[0].0.as_str(), raised[0].1), ("raised", d("1993")));
    assert_eq!(raised[0].2["details"]["candidates"][0]["lot_id"], "b1");
    assert_eq!(dec(&raised[0].2["details"]["tax_benefit"]), d("737.41"));
    let ira_harvest = server.get(&format!("/v1/accounts/{IRA}/harvest")).await;
    assert_eq!(
        (ira_harvest["tax_status"].clone(), ira_harvest["candidates"].clone()),
        (json!("traditional_ira"), json!([]))
    );

    // Day 12: the sale realizes the loss and ends the candidate.
    server.post(&[ev("s1", 12 * DAY, trade("s1", TX, &user, "AAA", Side::Sell, "100", "80"))]).await;
    let states: Vec<String> = alerts_of(&server, TX, "tax_loss_harvest").await.into_iter().map(|a| a.0).collect();
    assert_eq!(states, ["raised", "cleared"]);

    // The pre-trade check of the IRA purchase: it would wash half the loss, and it
    // changes nothing.
    let lots_before = server.get(&format!("/v1/accounts/{IRA}/lots")).await;
    let what_if = json!({
        "ts": ts(20 * DAY).to_string(), "trade_id": "b2", "account_id": IRA, "user_id": user,
        "symbol": "AAB", "side": "buy", "quantity": "50", "price": "79", "fees": "1"
    });
    let (status, answer) = server.post_json(&format!("/v1/accounts/{IRA}/what-if"), &what_if).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["washes_a_loss"], true, "{answer}");
    assert_eq!(answer["opened_lot"], "b2");
    let w = &answer["washes"][0];
    assert_eq!((dec(&w["quantity"]), dec(&w["disallowed"])), (d("50"), d("1001")), "{answer}");
    assert_eq!((w["added_to_basis"].clone(), w["retroactive"].clone()), (json!(false), json!(true)));
    assert_eq!(dec(&answer["after"]["quantity"]), d("50"));
    assert_eq!(dec(&answer["after"]["cash"]) - dec(&answer["before"]["cash"]), d("-3951"));
    assert_eq!(server.get(&format!("/v1/accounts/{IRA}/lots")).await["lots"], lots_before["lots"]);
    assert_eq!(server.get(&format!("/v1/users/{user}/wash-sales")).await["wash_sales"], json!([]));

    // Day 20 and 25: the purchases wash the loss after the fact (settled by the
    // next later event).
    server
        .post(&[
            ev("b2", 20 * DAY, trade("b2", IRA, &user, "AAB", Side::Buy, "50", "79")),
            ev("", 20 * DAY + 1, tick("BBB", "50")),
            ev("b3", 25 * DAY, trade("b3", TX, &user, "AAA", Side::Buy, "30", "81")),
            ev("", 25 * DAY + 1, tick("AAA", "81")),
        ])
        .await;
    let washes = server.get(&format!("/v1/users/{user}/wash-sales?year=2026")).await;
    let list = washes["wash_sales"].as_array().unwrap();
    let got: Vec<_> = list
        .iter()
        .map(|w| {
            (
                w["replacement_account_id"].clone(),
                dec(&w["disallowed"]),
                w["added_to_basis"].clone(),
                w["retroactive"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [(json!(IRA), d("1001"), json!(false), json!(true)), (json!(TX), d("600.6"), json!(true), json!(true))]
    );
    assert_eq!(list[1]["holding_days_carried"], 12);
    assert_eq!(dec(&washes["disallowed"]), d("1601.6"));
    assert_eq!(server.get(&format!("/v1/users/{user}/wash-sales?year=2025")).await["wash_sales"], json!([]));

    let realized = server.get(&format!("/v1/accounts/{TX}/realized?year=2026")).await;
    let short = &realized["account"][0]["short_term"];
    assert_eq!(
        [dec(&short["proceeds"]), dec(&short["basis"]), dec(&short["disallowed"]), dec(&short["gain"])],
        [d("7999"), d("10001"), d("1601.6"), d("-400.4")],
        "{realized}"
    );
    assert_eq!(realized["user_taxable"], realized["account"]);

    let lots = server.get(&format!("/v1/accounts/{TX}/lots")).await;
    let lot = &lots["lots"][0];
    assert_eq!(lots["lots"].as_array().unwrap().len(), 1, "{lots}");
    assert_eq!((lot["lot_id"].clone(), dec(&lot["quantity"])), (json!("b3"), d("30")));
    assert_eq!((dec(&lot["basis"]), dec(&lot["wash_adjustment"])), (d("3031.6"), d("600.6")));
    assert_eq!(lot["holding_start"], ts(13 * DAY).to_string());
    assert_eq!(lot["replaces"]["sale_trade_id"], "s1");
    let account = server.get(&format!("/v1/accounts/{TX}")).await;
    assert_eq!(dec(&account["positions"][0]["cost_basis"]), d("3031.6"), "the position's basis is its lots'");
    assert_eq!(dec(&server.get(&format!("/v1/accounts/{IRA}/lots")).await["lots"][0]["basis"]), d("3951"));

    // One wash_sale_risk alert per purchase that washed an earlier loss (here one
    // adjustment each), to the account that sold at a loss.
    let alerts = alerts_of(&server, TX, "wash_sale_risk").await;
    let values: Vec<_> = alerts.iter().map(|a| (a.0.clone(), a.1, a.2["priority"].clone())).collect();
    assert_eq!(values, [("raised".into(), d("1001"), json!("high")), ("raised".into(), d("600.6"), json!("high"))]);
    assert!(alerts[0].2["message"].as_str().unwrap().starts_with("correction:"), "{:?}", alerts[0].2);
    assert_eq!(alerts[1].2["details"]["purchase"], "b3");
    assert_eq!(alerts[1].2["details"]["wash_sales"][0]["replacement_lot_id"], "b3");

    // A sale at a loss after a purchase (not retroactive): washed from the start,
    // recorded, and no correction to announce. b4 comes after s1's window (day 12 +
    // 30); FIFO then sells 10 of b3 (basis 3,031.60 x 10/30 = 1,010.5333333333) for
    // 699, and b4 washes the whole 311.5333333333 loss (b3's own shares never do).
    server
        .post(&[
            ev("b4", 45 * DAY, trade("b4", TX, &user, "AAA", Side::Buy, "10", "81")),
            ev("s2", 46 * DAY, trade("s2", TX, &user, "AAA", Side::Sell, "10", "70")),
            ev("", 46 * DAY + 1, tick("AAA", "70")),
        ])
        .await;
    let washes = server.get(&format!("/v1/users/{user}/wash-sales")).await;
    let third = &washes["wash_sales"][2];
    assert_eq!((third["sale_trade_id"].clone(), third["replacement_trade_id"].clone()), (json!("s2"), json!("b4")));
    assert_eq!((dec(&third["disallowed"]), third["retroactive"].clone()), (d("311.5333333333"), json!(false)));
    assert_eq!(alerts_of(&server, TX, "wash_sale_risk").await.len(), 2, "no alert for a non-retroactive wash");

    assert_documented(&server, &user, &harvest, (&what_if, &answer)).await;
}

/// The OpenAPI document describes the tax routes and every body they served here:
/// each field is a property of its component and each required property is
/// served. `harvest` has a candidate; `what_if` is a buy checked before (the
/// request and the answer); a sell is checked now for the lots it closes.
async fn assert_documented(server: &Server, user: &str, harvest: &Value, (buy, bought): (&Value, &Value)) {
    let openapi = server.get("/v1/openapi.json").await;
    for (method, route, schema) in [
        ("get", "/v1/accounts/{id}/lots", "Lots"),
        ("get", "/v1/accounts/{id}/realized", "Realized"),
        ("get", "/v1/accounts/{id}/harvest", "Harvest"),
        ("post", "/v1/accounts/{id}/what-if", "WhatIf"),
        ("get", "/v1/users/{id}/wash-sales", "WashSales"),
    ] {
        assert_route_documented(&openapi, method, route, schema);
    }
    for route in ["/v1/accounts/{id}/realized", "/v1/users/{id}/wash-sales"] {
        let parameters = openapi["paths"][route]["get"]["parameters"].as_array().unwrap();
        assert!(parameters.iter().any(|p| p["name"] == "year" && p["in"] == "query"), "{route} documents no `year`");
    }

    // The what-if request: the trade without `type` and `ts` required.
    let request = &openapi["paths"]["/v1/accounts/{id}/what-if"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["$ref"];
    let trade = request.as_str().and_then(|r| r.strip_prefix("#/components/schemas/")).expect("a component");
    let sell = json!({ "trade_id": "s9", "account_id": TX, "user_id": user, "symbol": "AAA", "side": "sell",
                       "quantity": "5", "price": "70", "fees": "1" });
    for body in [buy, &sell] {
        assert_described(&openapi, trade, body);
    }
    let required = openapi["components"]["schemas"][trade]["required"].as_array().unwrap();
    assert!(!required.contains(&json!("type")) && !required.contains(&json!("ts")), "{required:?}");
    let (status, sold) = server.post_json(&format!("/v1/accounts/{TX}/what-if"), &sell).await;
    assert_eq!(status, StatusCode::OK, "{sold}");
    assert!(!sold["closed"].as_array().unwrap().is_empty(), "{sold}");

    let lots = server.get(&format!("/v1/accounts/{TX}/lots")).await;
    let realized = server.get(&format!("/v1/accounts/{TX}/realized")).await;
    let washes = server.get(&format!("/v1/users/{user}/wash-sales")).await;
    let now = server.get(&format!("/v1/accounts/{TX}/harvest")).await;
    let alerts = server.get("/v1/alerts?limit=10000").await;
    let mut served: Vec<(&str, &Value)> = vec![
        ("Lots", &lots),
        ("Realized", &realized),
        ("WashSales", &washes),
        ("Harvest", harvest),
        ("Harvest", &now),
        ("WhatIf", bought),
        ("WhatIf", &sold),
    ];
    served.extend(items_of(&lots["lots"]).iter().map(|l| ("Lot", l)));
    for year in items_of(&realized["account"]).iter().chain(items_of(&realized["user_taxable"])) {
        served.extend([
            ("RealizedYear", year),
            ("RealizedTerm", &year["short_term"]),
            ("RealizedTerm", &year["long_term"]),
        ]);
    }
    served.extend(items_of(&washes["wash_sales"]).iter().map(|w| ("WashSale", w)));
    served.extend(items_of(&harvest["candidates"]).iter().map(|c| ("HarvestLot", c)));
    // Blocked lots, if any now (b4's purchase blocks the rest of b3).
    served.extend(items_of(&now["blocked"]).iter().map(|b| ("BlockedLot", b)));
    for answer in [bought, &sold] {
        served.extend([("WhatIfSnapshot", &answer["before"]), ("WhatIfSnapshot", &answer["after"])]);
        served.extend(items_of(&answer["closed"]).iter().map(|c| ("ClosedLot", c)));
        served.extend(items_of(&answer["washes"]).iter().map(|w| ("WashSale", w)));
    }
    let alerts = items_of(&alerts["alerts"]);
    served.extend(alerts.iter().map(|a| ("Alert", a)));
    for (schema, body) in &served {
        assert_described(&openapi, schema, body);
    }
    for schema in [
        "Lots",
        "Lot",
        "Realized",
        "RealizedYear",
        "RealizedTerm",
        "WashSales",
        "WashSale",
        "Harvest",
        "HarvestLot",
        "WhatIf",
        "WhatIfSnapshot",
        "ClosedLot",
    ] {
        assert!(served.iter().any(|(s, _)| *s == schema), "no {schema} served to check");
    }

    // Nested objects without a component of their own, and the alerts' kinds.
    let schemas = &openapi["components"]["schemas"];
    for lot in items_of(&lots["lots"]).iter().filter(|l| l.get("replaces").is_some()) {
        assert_described_by("Lot.replaces", &schemas["Lot"]["properties"]["replaces"], &lot["replaces"]);
    }
    let kinds = schemas["Alert"]["properties"]["kind"]["enum"].as_array().unwrap();
    for kind in ["tax_loss_harvest", "wash_sale_risk"] {
        assert!(alerts.iter().any(|a| a["kind"] == kind), "no {kind} alert served");
    }
    for alert in alerts {
        assert!(kinds.contains(&alert["kind"]), "Alert.kind lacks {}", alert["kind"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_if_refuses_bad_trades_with_the_field_to_blame() {
    let server = Server::start(SHARDS, RuleConfig::default());
    let user = user();
    server.post(&setup(&user)).await;
    let sell = |lot_ids: Value| {
        json!({ "trade_id": "s9", "account_id": TX, "user_id": user, "symbol": "AAA", "side": "sell",
                "quantity": "10", "price": "80", "fees": "0", "lot_method": "specific", "lot_ids": lot_ids })
    };

    let (status, body) = server.post_json(&format!("/v1/accounts/{TX}/what-if"), &sell(json!(["nope"]))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("lot_ids"), "{body}");

    // A valid specific sell at the shard's latest time (no `ts`): a short-term loss.
    let (status, body) = server.post_json(&format!("/v1/accounts/{TX}/what-if"), &sell(json!(["b1"]))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ts"], ts(10 * DAY).to_string());
    assert_eq!(dec(&body["short_term_gain"]), d("-200.10"), "10 x 80 - 10,001 x 10/100: {body}");
    assert_eq!(body["washes_a_loss"], false);

    let (status, body) = server
        .post_json(
            "/v1/accounts/nobody/what-if",
            &json!({ "trade_id": "x", "account_id": "nobody",
        "user_id": user, "symbol": "AAA", "side": "buy", "quantity": "1", "price": "1", "fees": "0" }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) =
        server.post_json(&format!("/v1/accounts/{TX}/what-if"), &json!({ "type": "MarketTick" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("TradeExecuted"), "{body}");
}
