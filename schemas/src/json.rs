//! JSON codec: a JSON array of events or JSON lines, one event per line.

use crate::types::{Event, EventBody};
use crate::Timestamp;
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
    let text = std::str::from_utf8(body).map_err(|e| Rejection::body(format!("body is not UTF-8: {e}")))?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let items: Vec<serde_json::Value> =
            serde_json::from_str(trimmed).map_err(|e| Rejection::body(format!("malformed JSON array: {e}")))?;
        Ok(items.into_iter().enumerate().map(|(i, v)| decode_value(i, v)).collect())
    } else {
        Ok(text.lines().filter(|l| !l.trim().is_empty()).enumerate().map(|(i, line)| decode_line(i, line)).collect())
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
/// The envelope is read by hand and the body deserialised on its own, because
/// serde reports no field path through a flattened, tagged enum.
pub fn event_from_value(value: serde_json::Value) -> Result<Event, Rejection> {
    let serde_json::Value::Object(mut obj) = value else {
        return Err(Rejection::body("an event must be a JSON object"));
    };
    let ty = match obj.remove("type") {
        None => return Err(Rejection::field("type", "is missing")),
        Some(serde_json::Value::String(s)) => s,
        Some(_) => return Err(Rejection::field("type", "must be a string")),
    };
    let event_id = match obj.remove("event_id") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(_) => return Err(Rejection::field("event_id", "must be a string")),
    };
    let ts = match obj.remove("ts") {
        None => return Err(Rejection::field("ts", "is missing")),
        Some(serde_json::Value::String(s)) => Timestamp::parse(&s).map_err(|e| Rejection::field("ts", e))?,
        Some(_) => return Err(Rejection::field("ts", "must be an RFC 3339 string")),
    };
    let body = body_from_object(&ty, obj)?;
    Ok(Event { event_id, ts, body })
}

fn body_from_object(ty: &str, obj: serde_json::Map<String, serde_json::Value>) -> Result<EventBody, Rejection> {
    Ok(match ty {
        "AccountOpened" => EventBody::AccountOpened(typed(obj)?),
        "SecurityListed" => EventBody::SecurityListed(typed(obj)?),
        "CashMovement" => EventBody::CashMovement(typed(obj)?),
        "TradeExecuted" => EventBody::TradeExecuted(typed(obj)?),
        "MarketTick" => EventBody::MarketTick(typed(obj)?),
        "TargetAllocationSet" => EventBody::TargetAllocationSet(typed(obj)?),
        "RiskLimitsSet" => EventBody::RiskLimitsSet(typed(obj)?),
        "AlertPreferencesSet" => EventBody::AlertPreferencesSet(typed(obj)?),
        "PriceBatch" => return Err(Rejection::field("type", "`PriceBatch` is internal; send `MarketTick` events")),
        other => return Err(Rejection::field("type", format!("unknown event type `{other}`"))),
    })
}

/// Deserialises one body, naming the field serde failed on.
fn typed<T: serde::de::DeserializeOwned>(obj: serde_json::Map<String, serde_json::Value>) -> Result<T, Rejection> {
    serde_path_to_error::deserialize(serde_json::Value::Object(obj)).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        let mut rejection = Rejection::from_serde(&message);
        if path != "." {
            // Type errors quote the value, not the field: the path is the field.
            rejection.field = Some(path);
            rejection.reason =
                rejection.reason.replace("a Decimal type representing a fixed-point number", "a decimal string");
        }
        rejection
    })
}

pub fn encode(event: &Event) -> String {
    serde_json::to_string(event).expect("events always serialise")
}
