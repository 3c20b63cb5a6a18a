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

/// Schema ids used without a registry: (record name, id, fingerprint of the one schema
/// the id names). Pinned like a registry's ids: an id never changes meaning, or messages
/// already on the topics would be misread. A schema that evolves gets a new id; its old
/// id keeps naming the old schema, which the codec still reads (a historical writer
/// schema). Writers use the id of each record's current schema; every id is read.
pub const EMBEDDED_IDS: [(&str, u32, Fingerprint); 14] = [
    ("AccountOpened", 1, 0x1578_d5e9_9f6d_be6f), // v1: read only
    ("SecurityListed", 2, 0x57e9_e63d_2657_62e6),
    ("CashMovement", 3, 0x5017_3b94_5aa1_5a08),
    ("TradeExecuted", 4, 0x7073_8e1f_60f3_5de1),
    ("MarketTick", 5, 0x7a1e_610a_0843_198c),
    ("TargetAllocationSet", 6, 0x9cf7_7160_a488_71f3),
    ("RiskLimitsSet", 7, 0x6950_e468_391d_1720), // v1: read only
    ("AlertPreferencesSet", 8, 0x784e_cc9d_b3b9_2cd7),
    ("PriceBatch", 9, 0xeaa5_4ced_11d3_ce9c),
    ("Alert", 10, 0x61a9_92fb_f86f_3f33),         // v1: read only
    ("RiskLimitsSet", 11, 0xaa0c_2848_a1c0_3d44), // v2
    ("Alert", 12, 0x290e_ab3b_48a7_063a),         // v2: read only
    ("Alert", 13, 0x7022_19d9_45fe_b15e),         // v3
    ("AccountOpened", 14, 0x49ed_5534_8d10_cf38), // v2: holder_name, holder_email
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
        let by_id = EMBEDDED_IDS.iter().map(|&(_, id, fingerprint)| (id, fingerprint)).collect();
        // Only the current schema's id is written; a record without one fails to encode
        // ("no schema id"), which the tests below rule out.
        let out_ids = EMBEDDED_IDS
            .iter()
            .filter(|&&(name, _, fingerprint)| codec.fingerprint(name) == Some(fingerprint))
            .map(|&(name, id, _)| (name.to_string(), id))
            .collect();
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

    /// Reads an alert with the schema its id names (an alert written before v2 carries
    /// the v1 schema's id, one written before v3 the v2 schema's).
    pub fn decode_alert(&self, bytes: &[u8]) -> Result<Alert, String> {
        let (id, datum) = split(bytes).map_err(|r| r.reason)?;
        let fingerprint = self.fingerprint_of(id).map_err(|r| r.reason)?;
        self.codec.read().expect("codec lock").decode_alert_with(fingerprint, datum).map_err(|e| e.to_string())
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

    use riskstream_schemas::avro::{schema_fingerprint, HISTORICAL_SCHEMAS};
    use riskstream_schemas::{AlertKind, AlertState, EventBody, Priority, RecordRef, RiskLimitsSet, Timestamp};
    use rust_decimal::Decimal;

    #[test]
    fn embedded_ids_are_distinct_and_cover_every_schema() {
        let codec = Codec::new();
        let mut ids: Vec<u32> = EMBEDDED_IDS.iter().map(|(_, id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), EMBEDDED_IDS.len());
        let mut fingerprints: Vec<Fingerprint> = EMBEDDED_IDS.iter().map(|(_, _, f)| *f).collect();
        fingerprints.sort_unstable();
        fingerprints.dedup();
        assert_eq!(fingerprints.len(), EMBEDDED_IDS.len(), "two ids name one schema");
        // Every current schema has an id to be written with.
        for (name, _) in codec.schemas() {
            let current = codec.fingerprint(name);
            assert!(EMBEDDED_IDS.iter().any(|(n, _, f)| *n == name && Some(*f) == current), "{name} has no id");
        }
        // Every id reads, as the record it says.
        for (name, id, fingerprint) in EMBEDDED_IDS {
            assert_eq!(codec.writer_type(fingerprint), Some(name), "id {id}");
        }
    }

    #[test]
    fn superseded_ids_keep_naming_their_schemas_and_the_current_ones_are_written() {
        // The historical schemas in order: RiskLimitsSet v1, Alert v1, Alert v2, AccountOpened v1.
        let historical: Vec<Fingerprint> =
            HISTORICAL_SCHEMAS.iter().map(|(_, json)| schema_fingerprint(json).unwrap()).collect();
        let id_of = |fingerprint: Fingerprint| EMBEDDED_IDS.iter().find(|(_, _, f)| *f == fingerprint).unwrap().1;
        assert_eq!(historical.iter().map(|&f| id_of(f)).collect::<Vec<_>>(), [7, 10, 12, 1]);
        let codec = ValueCodec::embedded();
        assert_eq!(codec.id_for("RiskLimitsSet"), Ok(11));
        assert_eq!(codec.id_for("Alert"), Ok(13));
        assert_eq!(codec.id_for("AccountOpened"), Ok(14));
        assert_eq!(codec.id_for("TradeExecuted"), Ok(4));
        // Only the current schemas are written: one id per record.
        assert_eq!(codec.out_ids.read().unwrap().len(), 10);
    }

    fn limits() -> Event {
        let body = RiskLimitsSet {
            account_id: "a".into(),
            user_id: "u".into(),
            max_position_weight: Some(Decimal::new(25, 2)),
            max_var: Some(Decimal::new(3, 2)),
            ..Default::default()
        };
        Event { event_id: None, ts: Timestamp::from_micros(1_000_000), body: EventBody::RiskLimitsSet(body) }
    }

    #[test]
    fn risk_limits_are_written_with_id_11_and_id_7_still_reads() {
        let codec = ValueCodec::embedded();
        let value = codec.encode(ValueFormat::Avro, &limits()).unwrap();
        assert_eq!(value[..5], [0, 0, 0, 0, 11]);
        assert_eq!(codec.decode(ValueFormat::Avro, &value), Ok(limits()));

        // A message a v1 producer sent: the v1 datum of {a, u, 0.25} at ts 1s.
        let mut v1 = vec![0, 0, 0, 0, 7];
        v1.extend([0x00, 0x80, 0x89, 0x7a, 0x02, b'a', 0x02, b'u', 0x02, 0x18]);
        v1.extend([0, 0, 0, 0, 0, 0, 0, 0, 0x95, 0x02, 0xF9, 0x00]);
        let EventBody::RiskLimitsSet(read) = codec.decode(ValueFormat::Avro, &v1).unwrap().body else { panic!() };
        let expected = RiskLimitsSet {
            account_id: "a".into(),
            user_id: "u".into(),
            max_position_weight: Some(Decimal::new(25, 2)),
            ..Default::default()
        };
        assert_eq!(read, expected);
    }

    fn opened(holder_name: Option<&str>) -> Event {
        let body = riskstream_schemas::AccountOpened {
            account_id: "a".into(),
            user_id: "u".into(),
            tax_status: riskstream_schemas::TaxStatus::Taxable,
            base_currency: "USD".into(),
            holder_name: holder_name.map(str::to_string),
            holder_email: None,
        };
        Event { event_id: None, ts: Timestamp::from_micros(1_000_000), body: EventBody::AccountOpened(body) }
    }

    #[test]
    fn accounts_are_opened_with_id_14_and_id_1_still_reads() {
        let codec = ValueCodec::embedded();
        let value = codec.encode(ValueFormat::Avro, &opened(Some("Ann Lee"))).unwrap();
        assert_eq!(value[..5], [0, 0, 0, 0, 14]);
        assert_eq!(codec.decode(ValueFormat::Avro, &value), Ok(opened(Some("Ann Lee"))));

        // A message a producer from before v4 sent: the v1 datum of {a, u, taxable, USD}.
        let mut v1 = vec![0, 0, 0, 0, 1];
        v1.extend([0x00, 0x80, 0x89, 0x7a, 0x02, b'a', 0x02, b'u', 0x00, 0x06, b'U', b'S', b'D']);
        assert_eq!(codec.decode(ValueFormat::Avro, &v1), Ok(opened(None)));
        // Without the personal fields the v2 datum is the v1 datum and two null branches.
        let plain = codec.encode(ValueFormat::Avro, &opened(None)).unwrap();
        assert_eq!(plain[5..], [&v1[5..], &[0x00, 0x00][..]].concat());
    }

    fn alert(kind: AlertKind) -> Alert {
        Alert {
            alert_id: "al-1".into(),
            kind,
            state: AlertState::Raised,
            priority: Priority::High,
            account_id: "a-1".into(),
            user_id: "u-1".into(),
            ts: Timestamp::from_micros(5),
            caused_by: RecordRef { shard: 3, seq: 17 },
            rule: kind.as_str().into(),
            value: Decimal::new(31, 2),
            threshold: Decimal::new(25, 2),
            message: "over the limit".into(),
            details: None,
        }
    }

    fn harvest() -> Alert {
        let details =
            serde_json::json!({"symbol": "VTI", "candidate_lots": [{"lot_id": "lot-3", "unrealized": "-412.20"}]});
        Alert { details: Some(details), ..alert(AlertKind::TaxLossHarvest) }
    }

    /// A v3 datum without details, as the v2 codec wrote it: v3 appended `details` last,
    /// and its null branch is the datum's last byte.
    fn as_v2(v3_value: &[u8]) -> Vec<u8> {
        assert_eq!(v3_value.last(), Some(&0x00), "details are set");
        [&[0, 0, 0, 0, 12][..], &v3_value[5..v3_value.len() - 1]].concat()
    }

    #[test]
    fn alerts_are_written_with_id_13_and_read_by_the_id_they_carry() {
        let codec = ValueCodec::embedded();
        let value = codec.encode_alert(&harvest()).unwrap();
        assert_eq!(value[..5], [0, 0, 0, 0, 13]);
        assert_eq!(codec.decode_alert(&value), Ok(harvest()));

        // An alert a v2 engine published under id 12 reads, without details.
        let var = codec.encode_alert(&alert(AlertKind::VarBreach)).unwrap();
        assert_eq!(var[..5], [0, 0, 0, 0, 13]);
        assert_eq!(codec.decode_alert(&as_v2(&var)), Ok(alert(AlertKind::VarBreach)));
        // A v3 datum is no v2 datum: id 12 is honoured, not ignored.
        let under_12 = |value: &[u8]| [&[0, 0, 0, 0, 12][..], &value[5..]].concat();
        let var_with_details =
            codec.encode_alert(&Alert { details: harvest().details, ..alert(AlertKind::VarBreach) }).unwrap();
        let extra = var_with_details.len() - as_v2(&var).len();
        let err = codec.decode_alert(&under_12(&var_with_details)).unwrap_err();
        assert_eq!(err, format!("datum for `Alert` has {extra} trailing bytes"));
        let err = codec.decode_alert(&under_12(&value)).unwrap_err();
        assert_eq!(err, "bad datum for `Alert`: Enum value index 12 is out of bounds 12");

        // v2 only appended symbols, so the v2 datum of a v1 kind is also its v1 datum:
        // under id 10 it reads through the v1 schema.
        let drift = as_v2(&codec.encode_alert(&alert(AlertKind::Drift)).unwrap());
        let as_v1 = [&[0, 0, 0, 0, 10][..], &drift[5..]].concat();
        assert_eq!(codec.decode_alert(&as_v1), Ok(alert(AlertKind::Drift)));
        // A later kind is no v1 datum: the id is honoured, not ignored.
        let as_v1 = [&[0, 0, 0, 0, 10][..], &as_v2(&var)[5..]].concat();
        let err = codec.decode_alert(&as_v1).unwrap_err();
        assert_eq!(err, "bad datum for `Alert`: Enum value index 3 is out of bounds 3");

        let err = codec.decode_alert(&[0, 0, 0, 0, 11, 0]).unwrap_err();
        assert_eq!(err, "`RiskLimitsSet` is not an alert");
        assert!(codec.decode_alert(&[0, 0, 0, 0, 99, 0]).unwrap_err().contains("unknown schema id 99"));
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
