//! Property tests: every valid event survives both codecs unchanged.

mod common;

use std::sync::LazyLock;

use apache_avro::{Schema, Writer};
use common::*;
use proptest::collection::vec;
use proptest::prelude::*;
use riskstream_schemas::avro::Codec;
use riskstream_schemas::*;

static CODEC: LazyLock<Codec> = LazyLock::new(Codec::new);

fn schema_of(type_name: &str) -> Schema {
    Schema::parse_str(CODEC.schema_json(type_name).unwrap()).unwrap()
}

/// The events of decoded items, failing on the first rejection.
fn events(items: &[json::Decoded]) -> Vec<Event> {
    items.iter().map(|d| d.result.clone().unwrap_or_else(|r| panic!("item {}: {r}", d.index))).collect()
}

/// An Object Container File written by apache-avro's own writer.
fn container_by_apache_avro(events: &[Event], deflate: bool) -> Vec<u8> {
    let schema = schema_of(events[0].body.type_name());
    let codec = if deflate {
        apache_avro::Codec::Deflate(apache_avro::DeflateSettings::default())
    } else {
        apache_avro::Codec::Null
    };
    let mut writer = Writer::with_codec(&schema, Vec::new(), codec);
    for event in events {
        let (_, datum) = CODEC.encode(event).unwrap();
        let value = apache_avro::from_avro_datum(&schema, &mut datum.as_slice(), None).unwrap();
        writer.append(value).unwrap();
    }
    writer.into_inner().unwrap()
}

/// Stored rows, checkpoints and snapshot manifests write times with `Timestamp`'s
/// serde form; it must read back every value, not only RFC 3339's years.
#[test]
fn stored_times_round_trip_at_the_edges() {
    for micros in EDGE_MICROS {
        let text = serde_json::to_string(&Timestamp(micros)).unwrap();
        assert_eq!(serde_json::from_str::<Timestamp>(&text).unwrap(), Timestamp(micros), "{text}");
    }
}

proptest! {
    #[test]
    fn stored_times_round_trip(ts in stored_ts()) {
        let text = serde_json::to_string(&ts).unwrap();
        prop_assert_eq!(serde_json::from_str::<Timestamp>(&text).unwrap(), ts);
        // Inside RFC 3339's years the text is RFC 3339 (what views and events show).
        prop_assert_eq!(ts.is_rfc3339(), Timestamp::parse(text.trim_matches('"')).is_ok());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn json_round_trip(event in input_event()) {
        let line = json::encode(&event);
        let items = json::decode_batch(line.as_bytes()).unwrap();
        prop_assert_eq!(items.len(), 1);
        let raw: serde_json::Value = serde_json::from_str(&items[0].raw).unwrap();
        prop_assert_eq!(raw, serde_json::from_str::<serde_json::Value>(&line).unwrap());
        prop_assert_eq!(&items[0].result, &Ok(event));
    }

    #[test]
    fn json_array_round_trip(batch in vec(input_event(), 0..6)) {
        let text = format!("[{}]", batch.iter().map(json::encode).collect::<Vec<_>>().join(","));
        let items = json::decode_batch(text.as_bytes()).unwrap();
        prop_assert_eq!(events(&items), batch);
    }

    #[test]
    fn avro_datum_round_trip(event in any_event()) {
        let (fingerprint, datum) = CODEC.encode(&event).unwrap();
        prop_assert_eq!(Some(fingerprint), CODEC.fingerprint(event.body.type_name()));
        prop_assert_eq!(CODEC.decode(fingerprint, &datum).unwrap(), event.clone());
        // Deterministic: a second encoding (fresh HashMaps inside) gives the same bytes.
        prop_assert_eq!(CODEC.encode(&event).unwrap().1, datum.clone());
        // apache-avro reads the datum too, with resolution to the same schema.
        let schema = schema_of(event.body.type_name());
        let read = apache_avro::from_avro_datum(&schema, &mut datum.as_slice(), Some(&schema));
        prop_assert!(read.is_ok(), "{:?}", read);
    }

    #[test]
    fn avro_decimals_round_trip_over_the_whole_range(amount in full_range_decimal(), ts in ts()) {
        let body = EventBody::CashMovement(CashMovement {
            account_id: "a-1".into(),
            user_id: "u-1".into(),
            kind: CashKind::Fee,
            amount,
        });
        let event = Event { event_id: None, ts, body };
        let (fingerprint, datum) = CODEC.encode(&event).unwrap();
        let back = CODEC.decode(fingerprint, &datum).unwrap();
        let EventBody::CashMovement(cash) = &back.body else { panic!("{back:?}") };
        prop_assert_eq!(cash.amount, amount);
        prop_assert_eq!(cash.amount, amount.normalize());
        prop_assert_eq!(cash.amount.scale(), amount.normalize().scale());
    }

    #[test]
    fn single_object_round_trip(event in any_event()) {
        let bytes = CODEC.encode_single_object(&event).unwrap();
        let (fingerprint, datum) = CODEC.encode(&event).unwrap();
        prop_assert_eq!(&bytes[..2], &[0xC3, 0x01]);
        prop_assert_eq!(&bytes[2..10], &fingerprint.to_le_bytes());
        prop_assert_eq!(&bytes[10..], datum.as_slice());
        prop_assert_eq!(CODEC.decode_single_object(&bytes).unwrap(), event);
    }

    #[test]
    fn body_of_single_objects_round_trip(batch in vec(input_event(), 0..8)) {
        let body: Vec<u8> = batch.iter().flat_map(|e| CODEC.encode_single_object(e).unwrap()).collect();
        let items = CODEC.decode_body(&body).unwrap();
        prop_assert_eq!(items.iter().map(|d| d.index).collect::<Vec<_>>(), (0..batch.len()).collect::<Vec<_>>());
        // Each raw rendering is the event in the JSON contract form.
        let raws = items.iter().map(|d| d.raw.as_str()).collect::<Vec<_>>().join("\n");
        prop_assert_eq!(events(&json::decode_batch(raws.as_bytes()).unwrap()), batch.clone());
        prop_assert_eq!(events(&items), batch);
    }

    #[test]
    fn container_body_round_trip(
        batch in (0..PRICE_BATCH).prop_flat_map(|i| vec(event_with(body_of(i)), 1..6)),
        deflate in any::<bool>(),
    ) {
        let body = container_by_apache_avro(&batch, deflate);
        prop_assert_eq!(events(&CODEC.decode_body(&body).unwrap()), batch.clone());
        let datums: Vec<Vec<u8>> = batch.iter().map(|e| CODEC.encode(e).unwrap().1).collect();
        let by_hand = container(CODEC.schema_json(batch[0].body.type_name()).unwrap(), &datums);
        prop_assert_eq!(events(&CODEC.decode_body(&by_hand).unwrap()), batch);
    }

    #[test]
    fn alert_round_trip(alert in alert()) {
        let datum = CODEC.encode_alert(&alert).unwrap();
        prop_assert_eq!(CODEC.decode_alert(&datum).unwrap(), alert.clone());
        // The JSON form carries `details` as the object itself, and only when set.
        let json = serde_json::to_value(&alert).unwrap();
        prop_assert_eq!(json.get("details"), alert.details.as_ref());
        prop_assert_eq!(serde_json::from_value::<Alert>(json).unwrap(), alert);
    }
}

/// Avro carries an alert's `details` as the JSON text of the object: a `["null", "string"]`
/// union, branch 1.
#[test]
fn alert_details_travel_as_json_text() {
    let alert = harvest_alert();
    let datum = CODEC.encode_alert(&alert).unwrap();
    let schema = schema_of("Alert");
    let read = apache_avro::from_avro_datum(&schema, &mut datum.as_slice(), None).unwrap();
    let apache_avro::types::Value::Record(fields) = read else { panic!("{read:?}") };
    let (name, value) = fields.last().unwrap();
    assert_eq!(name, "details");
    let apache_avro::types::Value::Union(1, text) = value else { panic!("{value:?}") };
    let apache_avro::types::Value::String(text) = &**text else { panic!("{text:?}") };
    assert_eq!(
        text,
        r#"{"candidate_lots":[{"acquired":"2025-04-01","basis":"2513.70","lot_id":"lot-3","quantity":"10","unrealized":"-412.20"}],"symbol":"VTI"}"#
    );
    assert_eq!(CODEC.decode_alert(&datum).unwrap(), alert);
    // Without details the field is the null branch: one 0x00 byte, the datum's last.
    let none = CODEC.encode_alert(&sample_alert(AlertKind::TaxLossHarvest)).unwrap();
    assert_eq!(none.last(), Some(&0x00));
    assert_eq!(none.len(), datum.len() - text.len() - 2);
}

#[test]
fn decimals_read_back_normalised() {
    let price = "101.5000000000".parse().unwrap();
    let body = EventBody::MarketTick(MarketTick { symbol: "AAPL".into(), price, volume: None });
    let event = Event { event_id: Some("t-1".into()), ts: Timestamp::from_micros(0), body };
    let (fingerprint, datum) = CODEC.encode(&event).unwrap();
    let EventBody::MarketTick(tick) = CODEC.decode(fingerprint, &datum).unwrap().body else { panic!() };
    assert_eq!(tick.price.to_string(), "101.5");
    assert_eq!(tick.volume, None);
}

#[test]
fn an_event_has_the_exact_bytes_of_the_spec() {
    let body = EventBody::RiskLimitsSet(RiskLimitsSet {
        account_id: "a".into(),
        user_id: "u".into(),
        max_position_weight: Some("0.25".parse().unwrap()),
        max_gross_leverage: Some("1.5".parse().unwrap()),
        ..Default::default()
    });
    let event = Event { event_id: None, ts: Timestamp::from_micros(1_000_000), body };
    let (_, datum) = CODEC.encode(&event).unwrap();
    let mut expected = vec![
        0x00, // event_id: union branch 0 (null)
        0x80, 0x89, 0x7a, // ts: zig-zag varint of 1_000_000
        0x02, b'a', // account_id
        0x02, b'u', // user_id
        0x02, // max_position_weight: union branch 1 (decimal)
        0x18, // 12 bytes follow
    ];
    // 0.25 at scale 10 is 2_500_000_000 = 0x9502F900, sign-extended to 12 bytes.
    expected.extend([0, 0, 0, 0, 0, 0, 0, 0, 0x95, 0x02, 0xF9, 0x00]);
    // v2: max_sector_weight .. max_daily_loss are null (union branch 0, no value).
    expected.extend([0x00; 6]);
    // max_gross_leverage: branch 1, 12 bytes, 1.5 at scale 10 = 15_000_000_000 = 0x037E11D600.
    expected.extend([0x02, 0x18, 0, 0, 0, 0, 0, 0, 0, 0x03, 0x7E, 0x11, 0xD6, 0x00]);
    assert_eq!(datum, expected);
}

/// Every limit, not just the v1 one, drops its trailing zeros the same way live
/// (`EventBody::normalize`) and through the log (Avro keeps no scale).
#[test]
fn every_risk_limit_reads_back_normalised() {
    let limit = |text: &str| Some(text.parse::<rust_decimal::Decimal>().unwrap());
    let mut body = EventBody::RiskLimitsSet(RiskLimitsSet {
        account_id: "a".into(),
        user_id: "u".into(),
        max_position_weight: limit("0.2500"),
        max_sector_weight: limit("0.40"),
        max_asset_class_weight: limit("0.700"),
        max_var: limit("0.0300"),
        max_cvar: limit("0.0450"),
        max_drawdown: limit("0.150"),
        max_daily_loss: limit("0.050"),
        max_gross_leverage: limit("1.50"),
    });
    let event = Event { event_id: None, ts: Timestamp::from_micros(0), body: body.clone() };
    let (fingerprint, datum) = CODEC.encode(&event).unwrap();
    let read = CODEC.decode(fingerprint, &datum).unwrap().body;
    body.normalize();
    // Decimal's == ignores the scale, so compare the texts.
    assert_eq!(format!("{read:?}"), format!("{body:?}"));
}

#[test]
fn maps_are_written_in_key_order() {
    let prices = [("MSFT", "2"), ("AAPL", "1"), ("GOOG", "3")]
        .into_iter()
        .map(|(s, p)| (s.to_string(), DecimalStr(p.parse().unwrap())))
        .collect();
    let event = Event {
        event_id: None,
        ts: Timestamp::from_micros(0),
        body: EventBody::PriceBatch(PriceBatch { prices, times: Default::default() }),
    };
    let (_, datum) = CODEC.encode(&event).unwrap();
    let text = String::from_utf8_lossy(&datum);
    let positions: Vec<usize> = ["AAPL", "GOOG", "MSFT"].iter().map(|s| text.find(s).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    // Two codecs (two processes' worth of HashMap seeds) agree byte for byte.
    assert_eq!(Codec::new().encode(&event).unwrap().1, datum);
}
