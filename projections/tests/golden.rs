//! Golden tests: `tests/golden/<case>/events.jsonl` applied to one shard must give
//! `expected.json`, whose `_source` says how each number was computed by hand.

mod common;

use common::{assert_subset, manifest_dir};
use riskstream_projections::{RuleConfig, ShardState};
use riskstream_schemas::{json, Alert, RecordRef};
use rust_decimal::Decimal;
use serde_json::Value;

fn run(case: &str) -> (ShardState, Vec<Alert>) {
    let dir = manifest_dir().join("tests/golden").join(case);
    let body = std::fs::read(dir.join("events.jsonl")).unwrap();
    let mut state = ShardState::new(0, RuleConfig::default());
    let mut alerts = Vec::new();
    for (i, item) in json::decode_batch(&body).unwrap().into_iter().enumerate() {
        let event = item.result.unwrap_or_else(|r| panic!("{case}: {r}"));
        let at = RecordRef { shard: 0, seq: i as u64 + 1 };
        alerts.extend(state.apply(at, &event).unwrap_or_else(|r| panic!("{case} event {i}: {r}")));
    }
    (state, alerts)
}

fn expected(case: &str) -> Value {
    let path = manifest_dir().join("tests/golden").join(case).join("expected.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn dec(v: &Value) -> Decimal {
    v.as_str().unwrap().parse().unwrap()
}

fn check(case: &str) {
    let (state, alerts) = run(case);
    let exp = expected(case);
    for (id, want) in exp["accounts"].as_object().unwrap() {
        let view = state.full_view(id).unwrap();
        assert_eq!(Some(&view), state.incremental_view(id).as_ref(), "{case}: incremental == full");
        let mut got = serde_json::to_value(&view).unwrap();
        let positions: serde_json::Map<String, Value> =
            view.positions.iter().map(|p| (p.symbol.clone(), serde_json::to_value(p).unwrap())).collect();
        got["positions"] = Value::Object(positions);
        assert_subset(&format!("{case}/{id}"), want, &got);
    }
    let want_alerts = exp["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), want_alerts.len(), "{case}: alerts {alerts:#?}");
    for (i, (w, a)) in want_alerts.iter().zip(&alerts).enumerate() {
        let got = serde_json::to_value(a).unwrap();
        assert_subset(&format!("{case}/alert[{i}]"), w, &got);
        assert_eq!(dec(&got["value"]), a.value);
    }
}

#[test]
fn drift_raise_and_clear() {
    check("drift_raise_and_clear");
}

#[test]
fn cash_and_sells() {
    check("cash_and_sells");
}
