//! Schema evolution. v1 -> v2: `RiskLimitsSet` gained seven optional limits and `Alert`'s
//! `AlertKind` gained symbols. v2 -> v3: `Alert` gained two more kinds and the optional
//! `details`. v3 -> v4: `AccountOpened` gained the optional personal fields
//! `holder_name` and `holder_email`. The superseded schemas live on in `schemas/avro/history/` as historical
//! writer schemas, so records stored (and messages sent) before a change still read.

mod common;

use apache_avro::types::Value;
use apache_avro::Schema;
use riskstream_schemas::avro::{schema_fingerprint, AvroError, Codec, Fingerprint, HISTORICAL_SCHEMAS};
use riskstream_schemas::*;
use rust_decimal::Decimal;

/// The fingerprints of the superseded schemas, as stored records carry them.
const RISK_LIMITS_V1: Fingerprint = 0x6950_e468_391d_1720;
const ALERT_V1: Fingerprint = 0x61a9_92fb_f86f_3f33;
const ALERT_V2: Fingerprint = 0x290e_ab3b_48a7_063a;
const ACCOUNT_OPENED_V1: Fingerprint = 0x1578_d5e9_9f6d_be6f;

/// The historical schema with this fingerprint.
fn historical(fingerprint: Fingerprint) -> &'static str {
    HISTORICAL_SCHEMAS.iter().find(|(_, json)| schema_fingerprint(json).unwrap() == fingerprint).unwrap().1
}

fn v1() -> Schema {
    Schema::parse_str(historical(RISK_LIMITS_V1)).unwrap()
}

fn v2() -> Schema {
    Schema::parse_str(Codec::new().schema_json("RiskLimitsSet").unwrap()).unwrap()
}

fn alert_v1() -> Schema {
    Schema::parse_str(historical(ALERT_V1)).unwrap()
}

fn alert_v2() -> Schema {
    Schema::parse_str(historical(ALERT_V2)).unwrap()
}

fn alert_v3() -> Schema {
    Schema::parse_str(Codec::new().schema_json("Alert").unwrap()).unwrap()
}

fn d(text: &str) -> Decimal {
    text.parse().unwrap()
}

fn limits(body: RiskLimitsSet) -> Event {
    Event {
        event_id: Some("e-1".into()),
        ts: Timestamp::from_micros(1_767_225_600_000_000),
        body: EventBody::RiskLimitsSet(RiskLimitsSet { account_id: "acct-1".into(), user_id: "user-1".into(), ..body }),
    }
}

/// What a v1 record reads as: only `max_position_weight` can be set.
fn v1_limits(max_position_weight: Option<&str>) -> Event {
    limits(RiskLimitsSet { max_position_weight: max_position_weight.map(d), ..Default::default() })
}

/// Every v2 limit set.
fn v2_limits() -> Event {
    limits(RiskLimitsSet {
        max_position_weight: Some(d("0.2")),
        max_sector_weight: Some(d("0.4")),
        max_asset_class_weight: Some(d("0.7")),
        max_var: Some(d("0.03")),
        max_cvar: Some(d("0.045")),
        max_drawdown: Some(d("0.15")),
        max_daily_loss: Some(d("0.05")),
        max_gross_leverage: Some(d("1.5")),
        ..Default::default()
    })
}

/// An Avro decimal of a non-negative `unscaled` in the shortest two's complement, as
/// Java writes it (a leading zero byte stays when the next byte's top bit is set).
fn short_decimal(unscaled: i64) -> Value {
    assert!(unscaled >= 0);
    let bytes = unscaled.to_be_bytes();
    let skip = (0..7).take_while(|&i| bytes[i] == 0 && bytes[i + 1] & 0x80 == 0).count();
    Value::Decimal(apache_avro::Decimal::from(&bytes[skip..]))
}

/// An Avro decimal sign-extended to 16 bytes.
fn wide_decimal(unscaled: i64) -> Value {
    Value::Decimal(apache_avro::Decimal::from(i128::from(unscaled).to_be_bytes()))
}

/// A RiskLimitsSet v1 datum (max_position_weight 0.2), written by apache-avro with the
/// v1 schema: what another v1 producer sends.
fn v1_datum(decimal: fn(i64) -> Value) -> Vec<u8> {
    let record = Value::Record(vec![
        ("event_id".into(), Value::Union(1, Box::new(Value::String("e-1".into())))),
        ("ts".into(), Value::TimestampMicros(1_767_225_600_000_000)),
        ("account_id".into(), Value::String("acct-1".into())),
        ("user_id".into(), Value::String("user-1".into())),
        ("max_position_weight".into(), Value::Union(1, Box::new(decimal(2_000_000_000)))),
    ]);
    apache_avro::to_avro_datum(&v1(), record).unwrap()
}

fn field<'a>(record: &'a Value, name: &str) -> &'a Value {
    let Value::Record(fields) = record else { panic!("not a record: {record:?}") };
    &fields.iter().find(|(k, _)| k == name).unwrap_or_else(|| panic!("no field {name}")).1
}

fn names(record: &Value) -> Vec<&str> {
    let Value::Record(fields) = record else { panic!("not a record: {record:?}") };
    fields.iter().map(|(k, _)| k.as_str()).collect()
}

fn field_names(schema: &Schema) -> Vec<&str> {
    let Schema::Record(record) = schema else { panic!("not a record: {schema:?}") };
    record.fields.iter().map(|f| f.name.as_str()).collect()
}

fn unscaled(value: &Value) -> i128 {
    let Value::Union(1, inner) = value else { panic!("not a set optional: {value:?}") };
    let Value::Decimal(d) = &**inner else { panic!("not a decimal: {inner:?}") };
    let bytes = Vec::<u8>::try_from(d).unwrap();
    let mut buf = [if bytes[0] & 0x80 != 0 { 0xFF } else { 0 }; 16];
    buf[16 - bytes.len()..].copy_from_slice(&bytes);
    i128::from_be_bytes(buf)
}

#[test]
fn the_superseded_schemas_are_registered_as_historical_writers() {
    let mut codec = Codec::new();
    assert_eq!(codec.writer_type(RISK_LIMITS_V1), Some("RiskLimitsSet"));
    assert_eq!(codec.writer_type(ALERT_V1), Some("Alert"));
    assert_eq!(codec.writer_type(ALERT_V2), Some("Alert"));
    assert_eq!(codec.writer_type(ACCOUNT_OPENED_V1), Some("AccountOpened"));
    assert_ne!(codec.fingerprint("RiskLimitsSet"), Some(RISK_LIMITS_V1));
    assert_ne!(codec.fingerprint("AccountOpened"), Some(ACCOUNT_OPENED_V1));
    for old in [ALERT_V1, ALERT_V2] {
        assert_ne!(codec.fingerprint("Alert"), Some(old));
    }
    // Registering one again is a no-op, and historical schemas are not published.
    assert_eq!(codec.register_writer_schema(historical(RISK_LIMITS_V1)).unwrap(), RISK_LIMITS_V1);
    assert_eq!(codec.register_writer_schema(historical(ALERT_V2)).unwrap(), ALERT_V2);
    assert_eq!(codec.register_writer_schema(historical(ACCOUNT_OPENED_V1)).unwrap(), ACCOUNT_OPENED_V1);
    assert_eq!(codec.schemas().count(), 10);
    assert!(codec.schemas().all(|(_, json)| !HISTORICAL_SCHEMAS.iter().any(|(_, old)| *old == json)));
    assert_eq!(codec.writer_type(0x0123_4567_89ab_cdef), None);
}

/// The bytes the v1 codec wrote for a RiskLimitsSet (this test's v1 version pinned
/// them), stored with the v1 fingerprint: such a record must still replay.
#[test]
fn a_record_stored_before_v2_still_replays() {
    let mut datum = vec![
        0x00, // event_id: null
        0x80, 0x89, 0x7a, // ts: 1_000_000
        0x02, b'a', // account_id
        0x02, b'u', // user_id
        0x02, 0x18, // max_position_weight: branch 1, 12 bytes
    ];
    datum.extend([0, 0, 0, 0, 0, 0, 0, 0, 0x95, 0x02, 0xF9, 0x00]);
    let event = Codec::new().decode(RISK_LIMITS_V1, &datum).unwrap();
    let expected = RiskLimitsSet {
        account_id: "a".into(),
        user_id: "u".into(),
        max_position_weight: Some(d("0.25")),
        ..Default::default()
    };
    assert_eq!(
        event,
        Event { event_id: None, ts: Timestamp::from_micros(1_000_000), body: EventBody::RiskLimitsSet(expected) }
    );
}

#[test]
fn v1_data_reads_with_the_new_limits_unset() {
    let codec = Codec::new();
    assert_eq!(codec.decode(RISK_LIMITS_V1, &v1_datum(wide_decimal)).unwrap(), v1_limits(Some("0.2")));
    let mut single = vec![0xC3, 0x01];
    single.extend(RISK_LIMITS_V1.to_le_bytes());
    single.extend(v1_datum(wide_decimal));
    assert_eq!(codec.decode_single_object(&single).unwrap(), v1_limits(Some("0.2")));
    // apache-avro's own resolution agrees: the new fields take their null default.
    let read = apache_avro::from_avro_datum(&v1(), &mut v1_datum(wide_decimal).as_slice(), Some(&v2())).unwrap();
    assert_eq!(field(&read, "max_gross_leverage"), &Value::Union(0, Box::new(Value::Null)));
    assert_eq!(unscaled(field(&read, "max_position_weight")), 2_000_000_000);
}

#[test]
fn current_data_read_with_the_v1_reader_drops_the_new_limits() {
    let (fingerprint, datum) = Codec::new().encode(&v2_limits()).unwrap();
    assert_ne!(fingerprint, RISK_LIMITS_V1);
    let read = apache_avro::from_avro_datum(&v2(), &mut datum.as_slice(), Some(&v1())).unwrap();
    assert_eq!(names(&read), ["event_id", "ts", "account_id", "user_id", "max_position_weight"]);
    assert_eq!(unscaled(field(&read, "max_position_weight")), 2_000_000_000);
    assert_eq!(field(&read, "user_id"), &Value::String("user-1".into()));
    // And the current codec reads its own data back whole.
    assert_eq!(Codec::new().decode(fingerprint, &datum).unwrap(), v2_limits());
}

#[test]
fn shortest_form_decimals_from_other_v1_writers_resolve_too() {
    let datum = v1_datum(short_decimal);
    // apache-avro 0.21 alone refuses them during resolution (byte length below the
    // precision); the codec widens decimals first. If this starts to pass, the
    // widening in avro/value.rs can go.
    let direct = apache_avro::from_avro_datum(&v1(), &mut datum.as_slice(), Some(&v2()));
    assert!(direct.is_err(), "{direct:?}");
    assert_eq!(Codec::new().decode(RISK_LIMITS_V1, &datum).unwrap(), v1_limits(Some("0.2")));
}

#[test]
fn a_container_written_with_v1_is_read_as_the_current_type() {
    let datum = v1_datum(short_decimal);
    let body = common::container(historical(RISK_LIMITS_V1), &[datum.clone(), datum]);
    let items = Codec::new().decode_body(&body).unwrap();
    assert_eq!(items.len(), 2);
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item.index, i);
        assert_eq!(item.result, Ok(v1_limits(Some("0.2"))));
    }
}

/// The older Alert schemas with the kinds each knows: a prefix of `AlertKind::ALL`.
fn older_alert_schemas() -> [(Schema, &'static [AlertKind]); 2] {
    [(alert_v1(), &AlertKind::ALL[..3]), (alert_v2(), &AlertKind::ALL[..12])]
}

/// v3 appended a field after the v2 ones, so a v1 or v2 reader skips `details` (set or
/// not) and reads alerts of its own kinds written with v3.
#[test]
fn older_readers_read_alerts_of_their_kinds_written_with_v3() {
    let codec = Codec::new();
    let details = common::harvest_alert().details;
    for (reader, kinds) in older_alert_schemas() {
        for &kind in kinds {
            for details in [None, details.clone()] {
                let datum = codec.encode_alert(&Alert { details, ..common::sample_alert(kind) }).unwrap();
                let read = apache_avro::from_avro_datum(&alert_v3(), &mut datum.as_slice(), Some(&reader)).unwrap();
                assert_eq!(names(&read), field_names(&reader));
                let Value::Enum(index, symbol) = field(&read, "kind") else { panic!("{read:?}") };
                assert_eq!(symbol, kind.as_str());
                // The older symbols kept their positions, so even a reader that skips
                // resolution gets them right.
                assert_eq!(*index as usize, AlertKind::ALL.iter().position(|k| *k == kind).unwrap());
                assert_eq!(field(&read, "rule"), &Value::String(kind.as_str().into()));
                assert_eq!(field(&read, "message"), &Value::String("over the limit".into()));
            }
        }
    }
}

/// The decision against an enum default: an older reader meeting a later kind fails
/// instead of reading some other kind, and says which symbol it did not know.
#[test]
fn older_readers_refuse_alerts_of_later_kinds() {
    let codec = Codec::new();
    for (reader, kinds) in older_alert_schemas() {
        for kind in &AlertKind::ALL[kinds.len()..] {
            let datum = codec.encode_alert(&common::sample_alert(*kind)).unwrap();
            let read = apache_avro::from_avro_datum(&alert_v3(), &mut datum.as_slice(), Some(&reader));
            let err = read.unwrap_err().to_string();
            assert!(err.contains(kind.as_str()), "{kind:?}: {err}");
        }
    }
    // A v3 kind in particular, with the details it comes with (apache-avro calls the
    // writer's symbol a default here, but names it and the symbols the reader knows).
    let datum = codec.encode_alert(&common::harvest_alert()).unwrap();
    let err = apache_avro::from_avro_datum(&alert_v3(), &mut datum.as_slice(), Some(&alert_v2())).unwrap_err();
    let err = err.to_string();
    assert!(err.contains(r#""tax_loss_harvest" is not among allowed symbols ["drift", "concentration""#), "{err}");
    assert!(err.ends_with(r#""volatility_spike", "var_backtest"]"#), "{err}");
}

/// An alert record as a v1 or v2 producer wrote it (no `details`), its decimals in the
/// shortest form, as Java writes them.
fn old_alert_record(a: &Alert) -> Value {
    let index = AlertKind::ALL.iter().position(|k| *k == a.kind).unwrap() as u32;
    Value::Record(vec![
        ("alert_id".into(), Value::String(a.alert_id.clone())),
        ("kind".into(), Value::Enum(index, a.kind.as_str().into())),
        ("state".into(), Value::Enum(0, "raised".into())),
        ("priority".into(), Value::Enum(2, "high".into())),
        ("account_id".into(), Value::String(a.account_id.clone())),
        ("user_id".into(), Value::String(a.user_id.clone())),
        ("ts".into(), Value::TimestampMicros(5)),
        ("caused_by".into(), Value::Record(vec![("shard".into(), Value::Long(3)), ("seq".into(), Value::Long(17))])),
        ("rule".into(), Value::String(a.rule.clone())),
        ("value".into(), short_decimal(3_100_000_000)),
        ("threshold".into(), short_decimal(2_500_000_000)),
        ("message".into(), Value::String(a.message.clone())),
    ])
}

#[test]
fn v1_and_v2_alerts_read_into_the_current_type_without_details() {
    let codec = Codec::new();
    for (fingerprint, kinds) in [(ALERT_V1, &AlertKind::ALL[..3]), (ALERT_V2, &AlertKind::ALL[..12])] {
        let schema = Schema::parse_str(historical(fingerprint)).unwrap();
        for &kind in kinds {
            let expected = common::sample_alert(kind);
            let datum = apache_avro::to_avro_datum(&schema, old_alert_record(&expected)).unwrap();
            let read = codec.decode_alert_with(fingerprint, &datum).unwrap();
            assert_eq!(read.details, None);
            assert_eq!(read, expected, "{fingerprint:#018x} {kind:?}");
        }
    }
    // An alert fingerprint is not an event, nor an event fingerprint an alert.
    let datum = apache_avro::to_avro_datum(&alert_v2(), old_alert_record(&common::sample_alert(AlertKind::Drift)));
    assert!(matches!(codec.decode(ALERT_V2, &datum.unwrap()), Err(AvroError::NotAnEvent(n)) if n == "Alert"));
    let err = codec.decode_alert_with(RISK_LIMITS_V1, &v1_datum(wide_decimal)).unwrap_err();
    assert_eq!(err.to_string(), "`RiskLimitsSet` is not an alert");
}

/// What the v2 codec wrote for an alert (a Kafka message under id 12, say) is the v3
/// datum without `details` (a null union branch, one 0x00 byte at the end): it must still
/// read under the v2 fingerprint. The fingerprint is honoured: a v3 datum with details is
/// no v2 datum.
#[test]
fn an_alert_stored_before_v3_still_reads() {
    let codec = Codec::new();
    let alert = common::sample_alert(AlertKind::VarBacktest);
    let v3 = codec.encode_alert(&alert).unwrap();
    assert_eq!(v3.last(), Some(&0x00));
    let v2 = &v3[..v3.len() - 1];
    let as_v2 = apache_avro::from_avro_datum(&alert_v2(), &mut &v2[..], None).unwrap();
    assert_eq!(names(&as_v2), field_names(&alert_v2()));
    assert_eq!(codec.decode_alert_with(ALERT_V2, v2).unwrap(), alert);

    let with_details = codec.encode_alert(&Alert { details: common::harvest_alert().details, ..alert }).unwrap();
    let extra = with_details.len() - v2.len();
    let err = codec.decode_alert_with(ALERT_V2, &with_details).unwrap_err();
    assert_eq!(err.to_string(), format!("datum for `Alert` has {extra} trailing bytes"));
}

/// With no enum default in v3 either, a schema with a kind v3 does not know is refused
/// when it is registered, rather than its alerts being read as another kind.
#[test]
fn an_alert_schema_with_an_unknown_kind_is_refused() {
    let mut schema: serde_json::Value = serde_json::from_str(Codec::new().schema_json("Alert").unwrap()).unwrap();
    schema["fields"][1]["type"]["symbols"].as_array_mut().unwrap().push("liquidity".into());
    let err = Codec::new().register_writer_schema(&schema.to_string()).unwrap_err();
    assert!(matches!(&err, AvroError::Incompatible { type_name, .. } if type_name == "Alert"), "{err}");
}

/// The current RiskLimitsSet schema with its fields edited by `edit`.
fn edited(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut schema: serde_json::Value =
        serde_json::from_str(Codec::new().schema_json("RiskLimitsSet").unwrap()).unwrap();
    edit(&mut schema);
    schema.to_string()
}

#[test]
fn incompatible_writer_schemas_are_refused() {
    let mut codec = Codec::new();
    let known = codec.writer_type(RISK_LIMITS_V1);
    // A writer without `user_id` (which has no default) cannot be read.
    let no_user = edited(|s| s["fields"].as_array_mut().unwrap().retain(|f| f["name"] != "user_id"));
    let err = codec.register_writer_schema(&no_user).unwrap_err();
    assert!(matches!(&err, AvroError::Incompatible { type_name, .. } if type_name == "RiskLimitsSet"), "{err}");
    assert!(err.to_string().starts_with("the `RiskLimitsSet` writer schema cannot be read"), "{err}");

    // Resolution does not rescale decimals, so another scale is refused.
    let scale_4 = edited(|s| s["fields"][4]["type"][1]["scale"] = 4.into());
    let err = codec.register_writer_schema(&scale_4).unwrap_err();
    assert!(err.to_string().contains("a decimal has scale 4, expected 10"), "{err}");

    let renamed = edited(|s| s["name"] = "RiskLimitsChanged".into());
    let err = codec.register_writer_schema(&renamed).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown record `riskstream.v1.RiskLimitsChanged`: not one of the riskstream.v1 records"
    );

    let other_namespace = edited(|s| s["namespace"] = "other".into());
    assert!(
        matches!(codec.register_writer_schema(&other_namespace), Err(AvroError::UnknownType(n)) if n == "other.RiskLimitsSet")
    );

    assert!(matches!(codec.register_writer_schema("{not json"), Err(AvroError::InvalidSchema(_))));
    // Nothing was registered or published; the historical writer is still there.
    assert_eq!(codec.schemas().count(), 10);
    assert_eq!(codec.writer_type(RISK_LIMITS_V1), known);
}

fn opened_v1() -> Schema {
    Schema::parse_str(historical(ACCOUNT_OPENED_V1)).unwrap()
}

fn opened_v2() -> Schema {
    Schema::parse_str(Codec::new().schema_json("AccountOpened").unwrap()).unwrap()
}

fn opened(holder_name: Option<&str>, holder_email: Option<&str>) -> Event {
    Event {
        event_id: None,
        ts: Timestamp::from_micros(1_000_000),
        body: EventBody::AccountOpened(AccountOpened {
            account_id: "a".into(),
            user_id: "u".into(),
            tax_status: TaxStatus::RothIra,
            base_currency: "USD".into(),
            holder_name: holder_name.map(str::to_string),
            holder_email: holder_email.map(str::to_string),
        }),
    }
}

/// The v1 datum of `opened(None, None)`, byte by byte: what the codec wrote before v4
/// (and what any v1 producer writes).
fn opened_v1_datum() -> Vec<u8> {
    vec![
        0x00, // event_id: null
        0x80, 0x89, 0x7a, // ts: 1_000_000
        0x02, b'a', // account_id
        0x02, b'u', // user_id
        0x04, // tax_status: roth_ira (index 2)
        0x06, b'U', b'S', b'D', // base_currency
    ]
}

/// A record stored before v4 carries the v1 fingerprint: it must still replay, with no
/// personal fields.
#[test]
fn an_account_opened_stored_before_v4_still_replays() {
    let codec = Codec::new();
    assert_eq!(codec.decode(ACCOUNT_OPENED_V1, &opened_v1_datum()).unwrap(), opened(None, None));
    // apache-avro's own resolution agrees: the new fields take their null default.
    let read = apache_avro::from_avro_datum(&opened_v1(), &mut opened_v1_datum().as_slice(), Some(&opened_v2()));
    let read = read.unwrap();
    assert_eq!(field(&read, "holder_name"), &Value::Union(0, Box::new(Value::Null)));
    assert_eq!(field(&read, "holder_email"), &Value::Union(0, Box::new(Value::Null)));
    // Today's datum of the same event is the v1 datum plus two null branches; the
    // fingerprint is honoured, so it is no v1 datum.
    let (fingerprint, v2) = codec.encode(&opened(None, None)).unwrap();
    assert_eq!(Some(fingerprint), codec.fingerprint("AccountOpened"));
    assert_eq!(v2, [opened_v1_datum(), vec![0x00, 0x00]].concat());
    let err = codec.decode(ACCOUNT_OPENED_V1, &v2).unwrap_err();
    assert_eq!(err.to_string(), "datum for `AccountOpened` has 2 trailing bytes");
}

/// A v1 producer's data (written by apache-avro with the v1 schema) reads as the current
/// type, whether single-object encoded or in a container.
#[test]
fn v1_account_opened_from_other_writers_reads_without_personal_fields() {
    let record = Value::Record(vec![
        ("event_id".into(), Value::Union(0, Box::new(Value::Null))),
        ("ts".into(), Value::TimestampMicros(1_000_000)),
        ("account_id".into(), Value::String("a".into())),
        ("user_id".into(), Value::String("u".into())),
        ("tax_status".into(), Value::Enum(2, "roth_ira".into())),
        ("base_currency".into(), Value::String("USD".into())),
    ]);
    let datum = apache_avro::to_avro_datum(&opened_v1(), record).unwrap();
    assert_eq!(datum, opened_v1_datum());
    let codec = Codec::new();
    let mut single = vec![0xC3, 0x01];
    single.extend(ACCOUNT_OPENED_V1.to_le_bytes());
    single.extend(&datum);
    assert_eq!(codec.decode_single_object(&single).unwrap(), opened(None, None));
    let body = common::container(historical(ACCOUNT_OPENED_V1), &[datum.clone(), datum]);
    let items = codec.decode_body(&body).unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|item| item.result == Ok(opened(None, None))), "{items:?}");
}

/// Forward compatibility: a consumer still on the v1 schema reads today's data and
/// skips the personal fields (set or not); the current codec reads its data back whole.
#[test]
fn current_account_opened_read_with_the_v1_reader_drops_the_personal_fields() {
    let codec = Codec::new();
    for event in [opened(None, None), opened(Some("Ann Lee"), None), opened(Some("Ann Lee"), Some("ann@example.com"))] {
        let (fingerprint, datum) = codec.encode(&event).unwrap();
        assert_ne!(fingerprint, ACCOUNT_OPENED_V1);
        let read = apache_avro::from_avro_datum(&opened_v2(), &mut datum.as_slice(), Some(&opened_v1())).unwrap();
        assert_eq!(names(&read), field_names(&opened_v1()));
        assert_eq!(field(&read, "base_currency"), &Value::String("USD".into()));
        assert_eq!(codec.decode(fingerprint, &datum).unwrap(), event);
    }
    // The schemas are compatible both ways, as a registry's BACKWARD and FORWARD checks see them.
    apache_avro::schema_compatibility::SchemaCompatibility::can_read(&opened_v1(), &opened_v2()).unwrap();
    apache_avro::schema_compatibility::SchemaCompatibility::can_read(&opened_v2(), &opened_v1()).unwrap();
}
