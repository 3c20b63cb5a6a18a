//! Helpers of the golden tests (`golden.rs`, `tax_golden.rs`).
#![allow(dead_code)]

use std::path::PathBuf;

use rust_decimal::Decimal;
use serde_json::Value;

/// The crate's directory as the test runner reports it at run time: a binary built
/// from another checkout sharing the target dir must not read that checkout's files.
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}

/// Compares every field named in `want` with `got` (decimals numerically; arrays
/// element by element and of equal length).
pub fn assert_subset(what: &str, want: &Value, got: &Value) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w.iter().filter(|(k, _)| !k.starts_with('_')) {
                let gv = g.get(k).unwrap_or_else(|| panic!("{what}: missing `{k}` in {got}"));
                assert_subset(&format!("{what}.{k}"), wv, gv);
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            assert_eq!(w.len(), g.len(), "{what}: {got}");
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                assert_subset(&format!("{what}[{i}]"), wv, gv);
            }
        }
        (Value::String(w), Value::String(g)) => match (w.parse::<Decimal>(), g.parse::<Decimal>()) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{what}"),
            _ => assert_eq!(w, g, "{what}"),
        },
        _ => assert_eq!(want, got, "{what}"),
    }
}
