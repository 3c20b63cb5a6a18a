//! Message values on the topics. Avro values use the Confluent wire format: byte 0,
//! the 4-byte big-endian schema id, then the Avro datum. Ids come from the schema
//! registry when one is configured; otherwise from the table embedded in the binary
//! ([`EMBEDDED_IDS`], listed in docs/EVENTS.md), so producers and the engine agree
//! without a registry. JSON values are one event object each.

use std::collections::HashMap;
use std::sync::RwLock;

use riskstream_schemas::avro::{Codec, Fingerprint};
use riskstream_schemas::json;
use riskstream_schemas::{validate, Alert, Event, Rejection};

use crate::kafka::registry::SchemaRegistry;

/// Schema ids used without a registry: the contract's record types, in contract order.
/// Pinned: a changed id would make existing messages unreadable.
pub const EMBEDDED_IDS: [(&str, u32); 10] = [
    ("AccountOpened", 1),
    ("SecurityListed", 2),
    ("CashMovement", 3),
    ("TradeExecuted", 4),
    ("MarketTick", 5),
    ("TargetAllocationSet", 6),
    ("RiskLimitsSet", 7),
    ("AlertPreferencesSet", 8),
    ("PriceBatch", 9),
    ("Alert", 10),
];

const MAGIC: u8 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueFormat {
    Avro,
    Json,
}

/// Reads and writes message values; shared by every client of an instance.
pub struct ValueCodec {
    codec: RwLock<Codec>,
    registry: Option<SchemaRegistry>,
    /// Schema id -> writer fingerprint (registered with the codec).
    by_id: RwLock<HashMap<u32, Fingerprint>>,
    /// Record name -> id we write with.
    out_ids: RwLock<HashMap<String, u32>>,
}

impl ValueCodec {
    /// Ids from the embedded table.
    pub fn embedded() -> Self {
        let codec = Codec::new();
        let by_id =
            EMBEDDED_IDS.iter().map(|(name, id)| (*id, codec.fingerprint(name).expect("embedded schema"))).collect();
        let out_ids = EMBEDDED_IDS.iter().map(|(name, id)| (name.to_string(), *id)).collect();
        ValueCodec {
            codec: RwLock::new(codec),
            registry: None,
            by_id: RwLock::new(by_id),
            out_ids: RwLock::new(out_ids),
        }
    }

    /// Ids from a schema registry (subject = the record's full name).
    pub fn with_registry(registry: SchemaRegistry) -> Self {
        ValueCodec {
            codec: RwLock::new(Codec::new()),
            registry: Some(registry),
            by_id: RwLock::new(HashMap::new()),
            out_ids: RwLock::new(HashMap::new()),
        }
    }

    /// Decodes and validates one input value.
    pub fn decode(&self, format: ValueFormat, bytes: &[u8]) -> Result<Event, Rejection> {
        let event = match format {
            ValueFormat::Json => {
                let text =
                    std::str::from_utf8(bytes).map_err(|e| Rejection::body(format!("value is not UTF-8: {e}")))?;
                return json::decode_line(0, text).result.map_err(|mut r| {
                    r.index = None;
                    r
                });
            }
            ValueFormat::Avro => {
                let (id, datum) = split(bytes)?;
                let fingerprint = self.fingerprint_of(id)?;
                let codec = self.codec.read().expect("codec lock");
                codec.decode(fingerprint, datum).map_err(|e| e.to_rejection())?
            }
        };
        validate(&event)?;
        Ok(event)
    }

    pub fn encode(&self, format: ValueFormat, event: &Event) -> Result<Vec<u8>, String> {
        match format {
            ValueFormat::Json => Ok(json::encode(event).into_bytes()),
            ValueFormat::Avro => {
                let (_, datum) = self.codec.read().expect("codec lock").encode(event).map_err(|e| e.to_string())?;
                Ok(frame(self.id_for(event.body.type_name())?, &datum))
            }
        }
    }

    pub fn encode_alert(&self, alert: &Alert) -> Result<Vec<u8>, String> {
        let datum = self.codec.read().expect("codec lock").encode_alert(alert).map_err(|e| e.to_string())?;
        Ok(frame(self.id_for("Alert")?, &datum))
    }

    pub fn decode_alert(&self, bytes: &[u8]) -> Result<Alert, String> {
        let (_, datum) = split(bytes).map_err(|r| r.reason)?;
        self.codec.read().expect("codec lock").decode_alert(datum).map_err(|e| e.to_string())
    }

    fn id_for(&self, type_name: &str) -> Result<u32, String> {
        if let Some(id) = self.out_ids.read().expect("ids lock").get(type_name) {
            return Ok(*id);
        }
        let registry = self.registry.as_ref().ok_or_else(|| format!("no schema id for {type_name}"))?;
        let schema = self.codec.read().expect("codec lock").schema_json(type_name).map(str::to_string);
        let schema = schema.ok_or_else(|| format!("no schema for {type_name}"))?;
        let subject = format!("{}.{type_name}", riskstream_schemas::avro::NAMESPACE);
        let id = registry.register(&subject, &schema).map_err(|e| e.to_string())?;
        self.out_ids.write().expect("ids lock").insert(type_name.to_string(), id);
        Ok(id)
    }

    fn fingerprint_of(&self, id: u32) -> Result<Fingerprint, Rejection> {
        if let Some(f) = self.by_id.read().expect("ids lock").get(&id) {
            return Ok(*f);
        }
        let unknown = || Rejection::body(format!("unknown schema id {id}"));
        let registry = self.registry.as_ref().ok_or_else(unknown)?;
        let schema = registry.schema(id).map_err(|e| Rejection::body(format!("schema id {id}: {e}")))?;
        let fingerprint = self
            .codec
            .write()
            .expect("codec lock")
            .register_writer_schema(&schema)
            .map_err(|e| Rejection::body(format!("schema id {id} cannot be read as a riskstream event: {e}")))?;
        self.by_id.write().expect("ids lock").insert(id, fingerprint);
        Ok(fingerprint)
    }
}

fn frame(id: u32, datum: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + datum.len());
    out.push(MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(datum);
    out
}

fn split(bytes: &[u8]) -> Result<(u32, &[u8]), Rejection> {
    match bytes {
        [MAGIC, a, b, c, d, datum @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        [first, ..] if *first != MAGIC => Err(Rejection::body(format!(
            "not Confluent wire format: first byte is {first:#04x}, expected 0x00 (is the topic JSON? list it in kafka.json_topics)"
        ))),
        _ => Err(Rejection::body(format!("value of {} bytes is too short for the Confluent wire format", bytes.len()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_ids_are_distinct_and_cover_every_schema() {
        let codec = Codec::new();
        let names: Vec<&str> = codec.schemas().map(|(n, _)| n).collect();
        let mut ids: Vec<u32> = EMBEDDED_IDS.iter().map(|(_, id)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), EMBEDDED_IDS.len());
        for name in names {
            assert!(EMBEDDED_IDS.iter().any(|(n, _)| *n == name), "{name} has no embedded id");
        }
    }

    #[test]
    fn frame_errors_name_the_problem() {
        assert!(split(b"{\"type\":1}").unwrap_err().reason.contains("first byte is 0x7b"));
        assert!(split(&[0, 0, 1]).unwrap_err().reason.contains("3 bytes is too short"));
        assert!(ValueCodec::embedded()
            .decode(ValueFormat::Avro, &[0, 0, 0, 0, 99, 1])
            .unwrap_err()
            .reason
            .contains("unknown schema id 99"));
    }
}
