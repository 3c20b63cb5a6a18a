//! Avro codec of the event contract.
//!
//! Every event type (and the output [`Alert`]) has one self-contained current record
//! schema in `schemas/avro/<TypeName>.avsc`, namespace `riskstream.v1`, embedded here with
//! `include_str!`. The namespace stays `riskstream.v1` as records evolve: a record's full
//! name is what pairs an old writer schema with the current reader schema. Contract v2
//! changed `RiskLimitsSet` (optional limits appended) and `Alert` (enum symbols
//! appended); v3 changed `Alert` again (enum symbols and the optional `details`
//! appended); v4 changed `AccountOpened` (the optional personal fields `holder_name` and
//! `holder_email` appended). A schema is identified by its [`Fingerprint`]: the CRC-64-AVRO (Rabin)
//! fingerprint of its Parsing Canonical Form, computed here to the letter of the spec
//! (apache-avro's own canonical form keeps decimal attributes, so its fingerprints differ
//! from other implementations'). Docs, defaults and logical-type attributes (decimal
//! precision and scale too) are not part of that form, so editing a `doc` keeps the
//! fingerprint; adding, removing, renaming, retyping or reordering a field changes it
//! (the pinned fingerprints in `tests/avro_schemas.rs` then fail on purpose: keep the old
//! schema verbatim in `schemas/avro/history/` and list it in [`HISTORICAL_SCHEMAS`], so
//! stored data stays readable).
//!
//! Encodings:
//! - [`Codec::encode`] gives the plain binary datum (no header) plus the fingerprint of
//!   the schema it was written with; the event store keeps both.
//! - [`Codec::encode_single_object`] gives the spec's single-object encoding:
//!   `0xC3 0x01`, the 8-byte little-endian fingerprint, the datum (Kafka values).
//! - [`Codec::decode_body`] reads HTTP `application/avro` bodies: an Object Container
//!   File or a concatenation of single-object encoded events.
//!
//! Reading resolves the writer schema (the current one or a historical one, found by
//! fingerprint) to the current schema of the same record name, so an added optional
//! field reads as null from old data and a field the reader does not know is dropped.
//! [`Codec::new`] registers every schema of [`HISTORICAL_SCHEMAS`] (the superseded
//! schemas of this repository, which the event store and Kafka messages may still name);
//! [`Codec::register_writer_schema`] adds others at run time (a schema registry's).
//!
//! Values: `ts` is `timestamp-micros`; enums carry the JSON snake_case symbols; optional
//! fields are `["null", T]` unions defaulting to null. An alert's `details` (a JSON
//! object whose shape depends on the kind) travels as its JSON text. Money, prices,
//! quantities and weights are `decimal(28, 10)` over `bytes`: the two's-complement
//! big-endian unscaled integer at scale 10. The conversion is explicit (no serde): a
//! value with more than 10 decimal places or more than 18 integer digits is an error,
//! never rounded, and a decoded value is normalised (`101.5000000000` reads back as
//! `101.5`). The writer always emits 12 bytes per decimal (the width that holds precision
//! 28), because apache-avro 0.21 refuses, during schema resolution, a decimal whose byte
//! length is too short for the declared precision; incoming data of any width is
//! accepted. Maps are written in key order, so encoding the same event twice gives the
//! same bytes (the payload is hashed into the audit chain).

mod binary;
mod body;
mod canonical;
mod value;

pub use body::OCF_MAGIC;

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use apache_avro::schema::UnionSchema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::types::Value;
use apache_avro::Schema;

use crate::json::Decoded;
use crate::types::{Alert, Event};
use crate::{Rejection, DECIMAL_SCALE};

/// CRC-64-AVRO (Rabin) fingerprint of a schema's Parsing Canonical Form (the value Java's
/// `SchemaNormalization.parsingFingerprint64` gives, as unsigned); single-object
/// encoding carries it as 8 little-endian bytes.
pub type Fingerprint = u64;

/// The namespace of every contract record.
pub const NAMESPACE: &str = "riskstream.v1";

/// Name of the output record; every other schema is an event type.
const ALERT: &str = "Alert";

/// The longest string or bytes value, and the largest array or map block, that a datum
/// may declare. apache-avro reserves memory from a declared length before reading the
/// data, so at its default (512 MiB) a 21-byte body declaring 500 million array items
/// makes it reserve 28 GB and aborts the process. [`Codec::new`] installs this as
/// apache-avro's process-wide limit (`apache_avro::util::max_allocation_bytes`; the first
/// call in a process wins, so create the codec before decoding anything else).
pub const MAX_ALLOCATION_BYTES: usize = 8 << 20;

/// The size all deflate blocks of one container body may inflate to, together.
pub const MAX_INFLATED_BYTES: usize = 64 << 20;

/// Marker that starts a single-object encoded datum.
pub const SINGLE_OBJECT_MARKER: [u8; 2] = [0xC3, 0x01];

/// The embedded current schemas, in contract order, the alert last.
const SCHEMA_FILES: [(&str, &str); 10] = [
    ("AccountOpened", include_str!("../avro/AccountOpened.avsc")),
    ("SecurityListed", include_str!("../avro/SecurityListed.avsc")),
    ("CashMovement", include_str!("../avro/CashMovement.avsc")),
    ("TradeExecuted", include_str!("../avro/TradeExecuted.avsc")),
    ("MarketTick", include_str!("../avro/MarketTick.avsc")),
    ("TargetAllocationSet", include_str!("../avro/TargetAllocationSet.avsc")),
    ("RiskLimitsSet", include_str!("../avro/RiskLimitsSet.avsc")),
    ("AlertPreferencesSet", include_str!("../avro/AlertPreferencesSet.avsc")),
    ("PriceBatch", include_str!("../avro/PriceBatch.avsc")),
    (ALERT, include_str!("../avro/Alert.avsc")),
];

/// Superseded schemas, verbatim as they were published, by record name: data written
/// with them (event store records, Kafka messages under their pinned ids) must stay
/// readable, so [`Codec::new`] registers each as a historical writer schema. Never edit
/// or remove one; a schema that changes again adds its previous version here.
pub const HISTORICAL_SCHEMAS: [(&str, &str); 4] = [
    ("RiskLimitsSet", include_str!("../avro/history/RiskLimitsSet.v1.avsc")),
    (ALERT, include_str!("../avro/history/Alert.v1.avsc")),
    (ALERT, include_str!("../avro/history/Alert.v2.avsc")),
    ("AccountOpened", include_str!("../avro/history/AccountOpened.v1.avsc")),
];

/// Why a value could not be encoded, a datum decoded or a schema accepted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AvroError {
    #[error("unknown schema fingerprint {0:#018x}")]
    UnknownFingerprint(Fingerprint),
    #[error("unknown record `{0}`: not one of the riskstream.v1 records")]
    UnknownType(String),
    #[error("`{0}` is not an event type")]
    NotAnEvent(String),
    #[error("`{0}` is not an alert")]
    NotAnAlert(String),
    #[error("invalid Avro schema: {0}")]
    InvalidSchema(String),
    #[error("the `{type_name}` writer schema cannot be read by the current schema: {reason}")]
    Incompatible { type_name: String, reason: String },
    #[error("bad datum for `{type_name}`: {reason}")]
    BadDatum { type_name: String, reason: String },
    #[error("bad datum for `{type_name}`: field `{field}` {reason}")]
    BadField { type_name: String, field: String, reason: String },
    #[error("field `{field}`: decimal {value} has more than {DECIMAL_SCALE} decimal places")]
    DecimalScale { field: String, value: rust_decimal::Decimal },
    #[error("field `{field}`: decimal {value} is out of range for decimal(28, 10)")]
    DecimalRange { field: String, value: String },
    #[error("datum for `{type_name}` has {extra} trailing bytes")]
    TrailingBytes { type_name: String, extra: usize },
    #[error("not a single-object encoded datum: {0}")]
    SingleObject(String),
}

impl AvroError {
    /// The rejection sent back to a producer, naming the field when one is to blame.
    pub fn to_rejection(&self) -> Rejection {
        match self {
            AvroError::BadField { field, reason, .. } => Rejection::field(field, reason),
            AvroError::DecimalScale { field, value } => {
                Rejection::field(field, format!("decimal {value} has more than {DECIMAL_SCALE} decimal places"))
            }
            AvroError::DecimalRange { field, value } => {
                Rejection::field(field, format!("decimal {value} is out of range for decimal(28, 10)"))
            }
            other => Rejection::body(other.to_string()),
        }
    }
}

/// One current schema: the reader schema of its record name.
#[derive(Debug)]
struct Current {
    type_name: &'static str,
    json: &'static str,
    schema: Schema,
    fingerprint: Fingerprint,
}

/// A schema data may have been written with, and the current schema it resolves to.
#[derive(Debug, Clone)]
struct Writer {
    /// Index into `Codec::current`.
    reader: usize,
    schema: Arc<Schema>,
    /// False for a current schema: the datum already has the reader's shape.
    resolve: bool,
    /// No named type is referenced by name (`Schema::Ref`): the datum decodes
    /// without resolving the schema's names again, which apache-avro's
    /// `from_avro_datum` does for every datum (a sixth of a replay's decoding).
    self_contained: bool,
}

/// Whether `schema` refers to no named type by name.
fn self_contained(schema: &Schema) -> bool {
    match schema {
        Schema::Ref { .. } => false,
        Schema::Record(r) => r.fields.iter().all(|f| self_contained(&f.schema)),
        Schema::Union(u) => u.variants().iter().all(self_contained),
        Schema::Array(a) => self_contained(&a.items),
        Schema::Map(m) => self_contained(&m.types),
        _ => true,
    }
}

impl Writer {
    fn new(reader: usize, schema: Schema, resolve: bool) -> Writer {
        Writer { reader, self_contained: self_contained(&schema), schema: Arc::new(schema), resolve }
    }
}

/// The Avro codec: the current schemas plus any registered historical writer schemas.
/// Cheap to clone (the schemas are shared).
#[derive(Debug, Clone)]
pub struct Codec {
    current: Arc<Vec<Current>>,
    writers: HashMap<Fingerprint, Writer>,
}

impl Default for Codec {
    fn default() -> Self {
        Codec::new()
    }
}

/// The Parsing Canonical Form (Avro spec) of any schema given as JSON.
pub fn canonical_form(schema_json: &str) -> Result<String, AvroError> {
    canonical::canonical_form(schema_json).map_err(AvroError::InvalidSchema)
}

/// The fingerprint of any schema given as JSON.
pub fn schema_fingerprint(schema_json: &str) -> Result<Fingerprint, AvroError> {
    canonical_form(schema_json).map(|form| canonical::crc64_avro(form.as_bytes()))
}

fn parse(schema_json: &str) -> Result<Schema, AvroError> {
    Schema::parse_str(schema_json).map_err(|e| AvroError::InvalidSchema(e.to_string()))
}

impl Codec {
    /// Parses the embedded schemas (part of the binary, so a failure is a bug caught by
    /// the tests, not a runtime condition), registers the [`HISTORICAL_SCHEMAS`] and caps
    /// apache-avro's allocations at [`MAX_ALLOCATION_BYTES`].
    pub fn new() -> Codec {
        apache_avro::util::max_allocation_bytes(MAX_ALLOCATION_BYTES);
        let current: Vec<Current> = SCHEMA_FILES
            .iter()
            .map(|&(type_name, json)| {
                let schema = parse(json).unwrap_or_else(|e| panic!("{type_name}.avsc: {e}"));
                let fingerprint = schema_fingerprint(json).unwrap_or_else(|e| panic!("{type_name}.avsc: {e}"));
                Current { type_name, json, schema, fingerprint }
            })
            .collect();
        let writers = current
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let writer = Writer::new(i, c.schema.clone(), false);
                (c.fingerprint, writer)
            })
            .collect();
        let mut codec = Codec { current: Arc::new(current), writers };
        for (type_name, json) in HISTORICAL_SCHEMAS {
            codec.register_writer_schema(json).unwrap_or_else(|e| panic!("historical {type_name} schema: {e}"));
        }
        codec
    }

    /// The fingerprint of the current schema of `type_name` (an event type or `Alert`).
    pub fn fingerprint(&self, type_name: &str) -> Option<Fingerprint> {
        self.current_named(type_name).map(|c| c.fingerprint)
    }

    /// The current schema of `type_name`, as written in its `.avsc` file.
    pub fn schema_json(&self, type_name: &str) -> Option<&str> {
        self.current_named(type_name).map(|c| c.json)
    }

    /// (type name, schema JSON) of every current schema, events in contract order, then
    /// `Alert`.
    pub fn schemas(&self) -> impl Iterator<Item = (&str, &str)> {
        self.current.iter().map(|c| (c.type_name, c.json))
    }

    /// The record that data written with schema `fingerprint` reads as (an event type or
    /// `Alert`), or `None` when the fingerprint is neither current nor registered.
    pub fn writer_type(&self, fingerprint: Fingerprint) -> Option<&'static str> {
        self.writers.get(&fingerprint).map(|w| self.type_name_of(w))
    }

    /// Makes data written with an older (or newer) schema of one of our records readable.
    /// The schema must be a `riskstream.v1` record that the current schema of the same
    /// name can read, with every decimal at scale 10. Registering a known schema again
    /// is a no-op.
    pub fn register_writer_schema(&mut self, schema_json: &str) -> Result<Fingerprint, AvroError> {
        let (fingerprint, writer) = self.writer_from_json(schema_json)?;
        self.writers.entry(fingerprint).or_insert(writer);
        Ok(fingerprint)
    }

    /// The binary datum of `event` with the current schema of its type.
    pub fn encode(&self, event: &Event) -> Result<(Fingerprint, Vec<u8>), AvroError> {
        let current = self.current_for(event.body.type_name())?;
        let datum = current.write(value::event_to_value(event)?)?;
        Ok((current.fingerprint, datum))
    }

    /// Reads a datum written with the schema `fingerprint` (current or registered) into
    /// the current event type of the same record name.
    pub fn decode(&self, fingerprint: Fingerprint, datum: &[u8]) -> Result<Event, AvroError> {
        let writer = self.writer(fingerprint)?;
        let current = self.event_reader(writer)?;
        let mut cursor = Cursor::new(datum);
        let value = self.read_value(writer, &mut cursor)?;
        ensure_consumed(current.type_name, datum.len(), cursor.position())?;
        value::event_from_value(current.type_name, &value)
    }

    /// The binary datum of `alert` with the current `Alert` schema (no header; consumers
    /// find the schema by `fingerprint("Alert")`).
    pub fn encode_alert(&self, alert: &Alert) -> Result<Vec<u8>, AvroError> {
        self.current_for(ALERT)?.write(value::alert_to_value(alert)?)
    }

    /// Reads an alert datum written with the current `Alert` schema.
    pub fn decode_alert(&self, datum: &[u8]) -> Result<Alert, AvroError> {
        self.decode_alert_with(self.current_for(ALERT)?.fingerprint, datum)
    }

    /// Reads an alert datum written with the `Alert` schema `fingerprint` (current or
    /// registered, a v1 or v2 alert for one: it reads with `details` unset).
    pub fn decode_alert_with(&self, fingerprint: Fingerprint, datum: &[u8]) -> Result<Alert, AvroError> {
        let writer = self.writer(fingerprint)?;
        let type_name = self.type_name_of(writer);
        if type_name != ALERT {
            return Err(AvroError::NotAnAlert(type_name.to_string()));
        }
        let mut cursor = Cursor::new(datum);
        let value = self.read_value(writer, &mut cursor)?;
        ensure_consumed(ALERT, datum.len(), cursor.position())?;
        value::alert_from_value(&value)
    }

    /// Avro single-object encoding: `0xC3 0x01`, the 8-byte little-endian fingerprint of
    /// the writer schema, then the datum.
    pub fn encode_single_object(&self, event: &Event) -> Result<Vec<u8>, AvroError> {
        let (fingerprint, datum) = self.encode(event)?;
        let mut out = Vec::with_capacity(10 + datum.len());
        out.extend_from_slice(&SINGLE_OBJECT_MARKER);
        out.extend_from_slice(&fingerprint.to_le_bytes());
        out.extend_from_slice(&datum);
        Ok(out)
    }

    /// Reads exactly one single-object encoded event.
    pub fn decode_single_object(&self, bytes: &[u8]) -> Result<Event, AvroError> {
        let (writer, value, used) = self.split_single_object(bytes)?;
        let current = self.event_reader(writer)?;
        ensure_consumed(current.type_name, bytes.len(), used as u64)?;
        value::event_from_value(current.type_name, &value)
    }

    /// Decodes and validates an HTTP `application/avro` body: an Object Container File
    /// (starting with `Obj\x01`) or concatenated single-object encoded events. Items are
    /// numbered from 0 like the JSON codec's; `PriceBatch` and `Alert` are refused per item.
    pub fn decode_body(&self, body: &[u8]) -> Result<Vec<Decoded>, Rejection> {
        body::decode_body(self, body)
    }

    fn current_named(&self, type_name: &str) -> Option<&Current> {
        self.current.iter().find(|c| c.type_name == type_name)
    }

    fn current_for(&self, type_name: &str) -> Result<&Current, AvroError> {
        self.current_named(type_name).ok_or_else(|| AvroError::UnknownType(type_name.to_string()))
    }

    fn writer(&self, fingerprint: Fingerprint) -> Result<&Writer, AvroError> {
        self.writers.get(&fingerprint).ok_or(AvroError::UnknownFingerprint(fingerprint))
    }

    fn type_name_of(&self, writer: &Writer) -> &'static str {
        self.current[writer.reader].type_name
    }

    /// The current schema a writer resolves to, which must be an event type.
    fn event_reader(&self, writer: &Writer) -> Result<&Current, AvroError> {
        let current = &self.current[writer.reader];
        if current.type_name == ALERT {
            return Err(AvroError::NotAnEvent(ALERT.to_string()));
        }
        Ok(current)
    }

    /// Checks a writer schema and pairs it with the current schema of its record name.
    /// The checks come first: a schema that differs only in decimal scale has the same
    /// fingerprint as ours (the canonical form drops the scale) and must still be refused.
    fn writer_from_json(&self, schema_json: &str) -> Result<(Fingerprint, Writer), AvroError> {
        let schema = parse(schema_json)?;
        let fingerprint = schema_fingerprint(schema_json)?;
        let reader = self.reader_index(&schema)?;
        let type_name = self.current[reader].type_name;
        let incompatible = |reason: String| AvroError::Incompatible { type_name: type_name.to_string(), reason };
        let writer_bytes = without_decimals(&schema).map_err(incompatible)?;
        let reader_bytes = without_decimals(&self.current[reader].schema).map_err(incompatible)?;
        SchemaCompatibility::can_read(&writer_bytes, &reader_bytes).map_err(|e| incompatible(e.to_string()))?;
        let writer = match self.writers.get(&fingerprint) {
            Some(known) => known.clone(),
            None => Writer::new(reader, schema, true),
        };
        Ok((fingerprint, writer))
    }

    /// The index of the current schema with the same full name as `schema`.
    fn reader_index(&self, schema: &Schema) -> Result<usize, AvroError> {
        let name = match schema {
            Schema::Record(record) => record.name.fullname(None),
            other => return Err(AvroError::InvalidSchema(format!("expected a record schema, got {other:?}"))),
        };
        let short = name.strip_prefix(NAMESPACE).and_then(|n| n.strip_prefix('.'));
        short
            .and_then(|short| self.current.iter().position(|c| c.type_name == short))
            .ok_or(AvroError::UnknownType(name))
    }

    /// Reads one datum from `cursor` and resolves it to the writer's current schema.
    fn read_value(&self, writer: &Writer, cursor: &mut Cursor<&[u8]>) -> Result<Value, AvroError> {
        let current = &self.current[writer.reader];
        let bad = |e: apache_avro::Error| AvroError::BadDatum {
            type_name: current.type_name.to_string(),
            reason: e.to_string(),
        };
        let value = if writer.self_contained {
            apache_avro::from_avro_datum_schemata(&writer.schema, Vec::new(), cursor, None)
        } else {
            apache_avro::from_avro_datum(&writer.schema, cursor, None)
        }
        .map_err(bad)?;
        if !writer.resolve {
            return Ok(value);
        }
        value::widen_decimals(value).resolve(&current.schema).map_err(bad)
    }

    /// Splits one single-object encoded datum off the front of `bytes`: its writer, the
    /// resolved value and the number of bytes it took.
    fn split_single_object(&self, bytes: &[u8]) -> Result<(&Writer, Value, usize), AvroError> {
        if bytes.len() < 10 {
            return Err(AvroError::SingleObject(format!("{} bytes, the header alone takes 10", bytes.len())));
        }
        if bytes[..2] != SINGLE_OBJECT_MARKER {
            return Err(AvroError::SingleObject(format!(
                "starts with {:02x} {:02x} instead of the marker c3 01",
                bytes[0], bytes[1]
            )));
        }
        let mut le = [0u8; 8];
        le.copy_from_slice(&bytes[2..10]);
        let writer = self.writer(u64::from_le_bytes(le))?;
        let mut cursor = Cursor::new(&bytes[10..]);
        let value = self.read_value(writer, &mut cursor)?;
        Ok((writer, value, 10 + cursor.position() as usize))
    }
}

impl Current {
    /// Resolves a loosely built value (enums as strings, unions as their inner value,
    /// fields in any order) against this schema and writes the binary datum.
    fn write(&self, loose: Value) -> Result<Vec<u8>, AvroError> {
        let bad = |reason: String| AvroError::BadDatum { type_name: self.type_name.to_string(), reason };
        let value = loose.resolve(&self.schema).map_err(|e| bad(e.to_string()))?;
        let mut out = Vec::new();
        binary::write(&value, &self.schema, &mut out).map_err(bad)?;
        Ok(out)
    }
}

fn ensure_consumed(type_name: &str, len: usize, used: u64) -> Result<(), AvroError> {
    let extra = len.saturating_sub(used as usize);
    if extra > 0 {
        return Err(AvroError::TrailingBytes { type_name: type_name.to_string(), extra });
    }
    Ok(())
}

/// `schema` with every decimal replaced by its underlying `bytes`, refusing a scale
/// other than ours (resolution does not rescale). apache-avro 0.21's compatibility check
/// answers "inconclusive" for any decimal; Avro resolves a logical type by its
/// underlying type anyway.
fn without_decimals(schema: &Schema) -> Result<Schema, String> {
    Ok(match schema {
        Schema::Decimal(d) if d.scale != DECIMAL_SCALE as usize => {
            return Err(format!("a decimal has scale {}, expected {DECIMAL_SCALE}", d.scale));
        }
        Schema::Decimal(d) => (*d.inner).clone(),
        Schema::Record(r) => {
            let mut record = r.clone();
            for field in &mut record.fields {
                field.schema = without_decimals(&field.schema)?;
            }
            Schema::Record(record)
        }
        Schema::Union(u) => {
            let variants = u.variants().iter().map(without_decimals).collect::<Result<_, _>>()?;
            Schema::Union(UnionSchema::new(variants).map_err(|e| e.to_string())?)
        }
        Schema::Array(a) => Schema::array(without_decimals(&a.items)?),
        Schema::Map(m) => Schema::map(without_decimals(&m.types)?),
        other => other.clone(),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_current_and_historical_schema_decodes_without_resolving_names() {
        let codec = Codec::new();
        assert!(codec.writers.len() >= codec.current.len());
        for (fingerprint, writer) in &codec.writers {
            assert!(writer.self_contained, "writer {fingerprint:x} refers to a named type by name");
        }
    }

    #[test]
    fn a_schema_that_names_a_type_twice_is_not_self_contained() {
        let schema = parse(
            r#"{"type": "record", "name": "R", "fields": [
                {"name": "a", "type": {"type": "enum", "name": "E", "symbols": ["X", "Y"]}},
                {"name": "b", "type": "E"}]}"#,
        )
        .unwrap();
        assert!(!self_contained(&schema));
        // Enum indexes 1 and 0, as zigzag varints.
        let datum = [2u8, 0];
        // The slow path still reads it, naming `E` by its definition.
        let value = apache_avro::from_avro_datum(&schema, &mut Cursor::new(&datum[..]), None).unwrap();
        assert_eq!(
            value,
            Value::Record(vec![("a".into(), Value::Enum(1, "Y".into())), ("b".into(), Value::Enum(0, "X".into()))])
        );
    }
}
