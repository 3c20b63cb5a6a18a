//! JSON codec: a JSON array of events or JSON lines, one event per line.

use crate::types::Event;
use crate::{validate, Rejection};

/// One decoded item of a request body: the event, or why item `index` was rejected
/// together with its raw text (kept for the dead-letter store).
#[derive(Debug, Clone)]
pub struct Decoded {
    pub index: usize,
    pub raw: String,
    pub result: Result<Event, Rejection>,
}

/// Decodes and validates a body. A body that starts with `[` is a JSON array;
/// anything else is JSON lines (blank lines are skipped, they do not count as items).
pub fn decode_batch(body: &[u8]) -> Result<Vec<Decoded>, Rejection> {
    let text = std::str::from_utf8(body)
        .map_err(|e| Rejection::body(format!("body is not UTF-8: {e}")))?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let items: Vec<serde_json::Value> = serde_json::from_str(trimmed)
            .map_err(|e| Rejection::body(format!("malformed JSON array: {e}")))?;
        Ok(items.into_iter().enumerate().map(|(i, v)| decode_value(i, v)).collect())
    } else {
        Ok(text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, line)| decode_line(i, line))
            .collect())
    }
}

/// Decodes one JSON-lines line (item `index` of its batch).
pub fn decode_line(index: usize, line: &str) -> Decoded {
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(v) => decode_value(index, v),
        Err(e) => Decoded {
            index,
            raw: line.to_string(),
            result: Err(Rejection::body(format!("malformed JSON: {e}")).at(index)),
        },
    }
}

fn decode_value(index: usize, value: serde_json::Value) -> Decoded {
    let raw = value.to_string();
    let result = event_from_value(value).and_then(|e| validate(&e).map(|()| e)).map_err(|r| r.at(index));
    Decoded { index, raw, result }
}

/// Turns a JSON value into an event, naming the offending field on failure.
pub fn event_from_value(value: serde_json::Value) -> Result<Event, Rejection> {
    let obj = value
        .as_object()
        .ok_or_else(|| Rejection::body("an event must be a JSON object"))?;
    let ty = match obj.get("type") {
        None => return Err(Rejection::field("type", "is missing")),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(_) => return Err(Rejection::field("type", "must be a string")),
    };
    if !crate::EVENT_TYPES.contains(&ty.as_str()) {
        return Err(Rejection::field("type", format!("unknown event type `{ty}`")));
    }
    if ty == "PriceBatch" {
        return Err(Rejection::field("type", "`PriceBatch` is internal; send `MarketTick` events"));
    }
    serde_json::from_value::<Event>(value).map_err(|e| Rejection::from_serde(&e.to_string()))
}

pub fn encode(event: &Event) -> String {
    serde_json::to_string(event).expect("events always serialise")
}
