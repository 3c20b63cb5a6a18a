//! Golden wash-sale cases: `tests/golden_tax/<case>/events.jsonl` (contract events)
//! driven through one `TaxBook` per user the way the engine will drive it, must give
//! `expected.json`, whose `_source` says where every number comes from.

mod common;

use std::collections::BTreeMap;

use common::{assert_subset, manifest_dir};
use riskstream_projections::tax::{TaxBook, WashAdjustment};
use riskstream_schemas::{json, EventBody};
use serde_json::{json, Value};

fn run(case: &str) -> (BTreeMap<String, TaxBook>, Vec<WashAdjustment>) {
    let body = std::fs::read(manifest_dir().join("tests/golden_tax").join(case).join("events.jsonl")).unwrap();
    let (mut books, mut groups) = (BTreeMap::<String, TaxBook>::new(), BTreeMap::<String, String>::new());
    let mut washes = Vec::new();
    for (i, item) in json::decode_batch(&body).unwrap().into_iter().enumerate() {
        let event = item.result.unwrap_or_else(|r| panic!("{case}: {r}"));
        for book in books.values_mut() {
            washes.extend(book.settle(event.ts));
        }
        match &event.body {
            EventBody::SecurityListed(e) => drop(groups.insert(e.symbol.clone(), e.wash_group.clone())),
            EventBody::AccountOpened(e) => {
                let book = books.entry(e.user_id.clone()).or_insert_with(|| TaxBook::new(&e.user_id));
                assert!(book.open_account(&e.account_id, e.tax_status));
            }
            EventBody::TradeExecuted(e) => {
                let book = books.get_mut(&e.user_id).unwrap();
                let out =
                    book.trade(e, event.ts, &groups[&e.symbol]).unwrap_or_else(|r| panic!("{case} event {i}: {r}"));
                washes.extend(out.washes);
            }
            _ => {}
        }
    }
    for book in books.values_mut() {
        washes.extend(book.settle_all());
    }
    (books, washes)
}

fn view(book: &TaxBook) -> Value {
    let lots: serde_json::Map<String, Value> = book
        .accounts()
        .map(|(id, a)| {
            let lots = a.lots.open_lots().map(|l| {
                json!({"id": l.id(), "quantity": l.quantity, "basis": l.basis,
                       "wash_adjustment": l.wash_adjustment(), "holding_start": l.holding_start()})
            });
            (id.to_string(), Value::Array(lots.collect()))
        })
        .collect();
    let realized: serde_json::Map<String, Value> = book
        .realized()
        .years()
        .map(|(year, y)| {
            let term = |f: &riskstream_projections::tax::Figures| {
                json!({"proceeds": f.proceeds, "basis": f.basis, "disallowed": f.disallowed, "gain": f.gain()})
            };
            (year.to_string(), json!({"short": term(&y.short), "long": term(&y.long)}))
        })
        .collect();
    json!({"lots": lots, "realized": realized})
}

fn check(case: &str) {
    let (books, washes) = run(case);
    let path = manifest_dir().join("tests/golden_tax").join(case).join("expected.json");
    let want: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_subset(&format!("{case}.washes"), &want["washes"], &serde_json::to_value(&washes).unwrap());
    let got: serde_json::Map<String, Value> = books.iter().map(|(user, b)| (user.clone(), view(b))).collect();
    assert_subset(&format!("{case}.users"), &want["users"], &Value::Object(got));
}

#[test]
fn pub550_wash_sale() {
    check("pub550_wash_sale");
}

#[test]
fn cfr_1091_1_example_2() {
    check("cfr_1091_1_example_2");
}

#[test]
fn ira_and_retroactive() {
    check("ira_and_retroactive");
}
