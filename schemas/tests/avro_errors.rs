//! Bad Avro input: each failure says what is wrong, and a body keeps its good items.

mod common;

use riskstream_schemas::avro::{AvroError, Codec, MAX_ALLOCATION_BYTES, MAX_INFLATED_BYTES};
use riskstream_schemas::*;
use rust_decimal::Decimal;

fn cash(amount: Decimal) -> Event {
    Event {
        event_id: Some("c-1".into()),
        ts: Timestamp::from_micros(1_767_225_600_000_000),
        body: EventBody::CashMovement(CashMovement {
            account_id: "a-1".into(),
            user_id: "u-1".into(),
            kind: CashKind::Deposit,
            amount,
        }),
    }
}

fn trade() -> Event {
    Event {
        event_id: None,
        ts: Timestamp::from_micros(1_767_225_600_000_000),
        body: EventBody::TradeExecuted(TradeExecuted {
            trade_id: "t-1".into(),
            account_id: "a-1".into(),
            user_id: "u-1".into(),
            symbol: "AAPL".into(),
            side: Side::Sell,
            quantity: Decimal::new(10, 0),
            price: Decimal::new(18_525, 2),
            fees: Decimal::ZERO,
            lot_method: Some(LotMethod::Specific),
            lot_ids: vec!["lot-1".into(), "lot-2".into()],
        }),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn an_unknown_fingerprint_is_named() {
    let codec = Codec::new();
    let (_, datum) = codec.encode(&trade()).unwrap();
    let err = codec.decode(0x0123_4567_89ab_cdef, &datum).unwrap_err();
    assert!(matches!(err, AvroError::UnknownFingerprint(0x0123_4567_89ab_cdef)));
    assert_eq!(err.to_string(), "unknown schema fingerprint 0x0123456789abcdef");
}

#[test]
fn a_truncated_or_padded_datum_is_refused() {
    let codec = Codec::new();
    let (fingerprint, datum) = codec.encode(&trade()).unwrap();
    let err = codec.decode(fingerprint, &datum[..datum.len() - 3]).unwrap_err();
    assert!(err.to_string().starts_with("bad datum for `TradeExecuted`: "), "{err}");
    let mut padded = datum.clone();
    padded.push(0);
    let err = codec.decode(fingerprint, &padded).unwrap_err();
    assert_eq!(err.to_string(), "datum for `TradeExecuted` has 1 trailing bytes");
}

#[test]
fn a_decimal_with_eleven_places_is_refused_not_rounded() {
    let codec = Codec::new();
    let err = codec.encode(&cash("0.00000000001".parse().unwrap())).unwrap_err();
    assert!(matches!(&err, AvroError::DecimalScale { field, .. } if field == "amount"));
    assert_eq!(err.to_string(), "field `amount`: decimal 0.00000000001 has more than 10 decimal places");
    let rejection = err.to_rejection();
    assert_eq!(rejection.field.as_deref(), Some("amount"));
    assert_eq!(rejection.reason, "decimal 0.00000000001 has more than 10 decimal places");
    // Eleven places of which the last is a trailing zero are ten places.
    let (fingerprint, datum) = codec.encode(&cash("1.50000000000".parse().unwrap())).unwrap();
    assert_eq!(codec.decode(fingerprint, &datum).unwrap(), cash(Decimal::new(15, 1)));
}

#[test]
fn decimals_beyond_precision_28_are_refused_both_ways() {
    let codec = Codec::new();
    let err = codec.encode(&cash(Decimal::from(1_000_000_000_000_000_000u64))).unwrap_err();
    assert_eq!(err.to_string(), "field `amount`: decimal 1000000000000000000 is out of range for decimal(28, 10)");

    // A foreign writer may send 10^28 (unscaled) in 13 bytes: read, but refused.
    let (fingerprint, datum) = codec.encode(&cash(Decimal::ONE)).unwrap();
    let amount_at = datum.len() - 13; // length byte + 12 bytes
    let mut big = datum[..amount_at].to_vec();
    let unscaled = 10i128.pow(28).to_be_bytes();
    big.push(13 * 2); // zig-zag length 13
    big.extend_from_slice(&unscaled[3..]);
    let err = codec.decode(fingerprint, &big).unwrap_err();
    assert!(matches!(&err, AvroError::DecimalRange { field, .. } if field == "amount"), "{err}");
    assert!(err.to_string().contains("is out of range for decimal(28, 10)"), "{err}");
}

#[test]
fn alerts_are_not_events() {
    let codec = Codec::new();
    let alert_fingerprint = codec.fingerprint("Alert").unwrap();
    let err = codec.decode(alert_fingerprint, &[]).unwrap_err();
    assert_eq!(err.to_string(), "`Alert` is not an event type");
}

#[test]
fn a_container_of_price_batches_is_refused_item_by_item() {
    let codec = Codec::new();
    let prices = [("AAPL".to_string(), DecimalStr(Decimal::new(1905, 1)))].into_iter().collect();
    let batch = Event {
        event_id: None,
        ts: Timestamp::from_micros(0),
        body: EventBody::PriceBatch(PriceBatch { prices, times: Default::default() }),
    };
    let (_, datum) = codec.encode(&batch).unwrap();
    let body = common::container(codec.schema_json("PriceBatch").unwrap(), &[datum.clone(), datum]);
    let items = codec.decode_body(&body).unwrap();
    assert_eq!(items.len(), 2);
    for (i, item) in items.iter().enumerate() {
        let rejection = item.result.clone().unwrap_err();
        assert_eq!(rejection.index, Some(i));
        assert_eq!(rejection.field.as_deref(), Some("type"));
        assert_eq!(rejection.reason, "`PriceBatch` is internal; send `MarketTick` events");
        assert_eq!(item.raw, json::encode(&batch));
    }
}

#[test]
fn a_container_of_foreign_records_is_refused_as_a_whole() {
    let schema = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"}]}"#;
    let body = common::container(schema, &[vec![0x02]]);
    let rejection = Codec::new().decode_body(&body).unwrap_err();
    assert_eq!(rejection.index, None);
    assert_eq!(
        rejection.reason,
        "Avro container schema refused: unknown record `shop.Order`: not one of the riskstream.v1 records"
    );
    let rejection = Codec::new().decode_body(b"Obj\x01\x02").unwrap_err();
    assert!(rejection.reason.starts_with("malformed Avro container header: "), "{}", rejection.reason);
}

#[test]
fn a_truncated_container_ends_with_a_rejection_at_the_cut() {
    let codec = Codec::new();
    let (_, datum) = codec.encode(&trade()).unwrap();
    let schema = codec.schema_json("TradeExecuted").unwrap();
    let full = common::container(schema, &[datum.clone(), datum.clone()]);
    let block_start = common::container(schema, &[]).len();
    let cut = &full[..full.len() - 20];
    let items = codec.decode_body(cut).unwrap();
    assert_eq!(items.len(), 1);
    let rejection = items[0].result.clone().unwrap_err();
    assert_eq!(rejection.index, Some(0));
    assert!(
        rejection.reason.starts_with(&format!("cannot read the body from byte {block_start} on: a block of")),
        "{}",
        rejection.reason
    );
    assert_eq!(items[0].raw, hex(&cut[block_start..]));
}

#[test]
fn a_single_object_stream_keeps_the_items_before_the_garbage() {
    let codec = Codec::new();
    let good = codec.encode_single_object(&trade()).unwrap();
    let invalid = codec.encode_single_object(&cash(Decimal::new(-5, 0))).unwrap();
    let garbage = [0xC3, 0x02, 0xFF];
    let body = [good.clone(), invalid.clone(), good.clone(), garbage.to_vec()].concat();
    let items = codec.decode_body(&body).unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(items[0].result, Ok(trade()));
    // Decodable but invalid: refused by validation, the stream goes on.
    let rejection = items[1].result.clone().unwrap_err();
    assert_eq!((rejection.index, rejection.field.as_deref()), (Some(1), Some("amount")));
    assert_eq!(rejection.reason, "must be positive, got -5");
    assert_eq!(items[1].raw, json::encode(&cash(Decimal::new(-5, 0))));
    assert_eq!(items[2].result, Ok(trade()));
    let offset = 2 * good.len() + invalid.len();
    let rejection = items[3].result.clone().unwrap_err();
    assert_eq!(rejection.index, Some(3));
    assert_eq!(
        rejection.reason,
        format!("cannot read the body from byte {offset} on: not a single-object encoded datum: 3 bytes, the header alone takes 10")
    );
    assert_eq!(items[3].raw, "c302ff");
}

#[test]
fn a_single_object_stream_stops_at_an_unknown_fingerprint_or_bad_marker() {
    let codec = Codec::new();
    let good = codec.encode_single_object(&trade()).unwrap();
    let mut unknown = good.clone();
    unknown[2..10].copy_from_slice(&42u64.to_le_bytes());
    let items = codec.decode_body(&[good.clone(), unknown.clone(), good.clone()].concat()).unwrap();
    assert_eq!(items.len(), 2);
    let reason = items[1].result.clone().unwrap_err().reason;
    assert_eq!(
        reason,
        format!("cannot read the body from byte {} on: unknown schema fingerprint 0x000000000000002a", good.len())
    );
    assert_eq!(items[1].raw, hex(&[unknown, good.clone()].concat()));

    let items = codec.decode_body(&[b"{\"type\":1}".to_vec(), good].concat()).unwrap();
    assert_eq!(items.len(), 1);
    let reason = items[0].result.clone().unwrap_err().reason;
    assert!(reason.ends_with("starts with 7b 22 instead of the marker c3 01"), "{reason}");
}

#[test]
fn a_truncated_single_object_is_refused() {
    let codec = Codec::new();
    let bytes = codec.encode_single_object(&trade()).unwrap();
    let err = codec.decode_single_object(&bytes[..bytes.len() - 1]).unwrap_err();
    assert!(err.to_string().starts_with("bad datum for `TradeExecuted`: "), "{err}");
    assert_eq!(codec.decode_body(&[]).unwrap().len(), 0);
}

#[test]
fn an_alert_in_a_body_is_refused_but_does_not_stop_the_stream() {
    let codec = Codec::new();
    let alert = common::sample_alert(AlertKind::Drift);
    let mut body = vec![0xC3, 0x01];
    body.extend(codec.fingerprint("Alert").unwrap().to_le_bytes());
    body.extend(codec.encode_alert(&alert).unwrap());
    body.extend(codec.encode_single_object(&trade()).unwrap());
    let items = codec.decode_body(&body).unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].result.clone().unwrap_err().reason, "`Alert` is not an event type");
    let raw: serde_json::Value = serde_json::from_str(&items[0].raw).unwrap();
    assert_eq!(raw["type"], "Alert");
    assert_eq!(raw["value"], "0.31");
    assert_eq!(raw["caused_by"]["seq"], 17);
    assert_eq!(items[1].result, Ok(trade()));
}

#[test]
fn an_alert_seq_beyond_a_long_is_refused() {
    let codec = Codec::new();
    let alert = Alert {
        alert_id: "al-1".into(),
        kind: AlertKind::MarketMove,
        state: AlertState::Cleared,
        priority: Priority::Low,
        account_id: "a-1".into(),
        user_id: "u-1".into(),
        ts: Timestamp::from_micros(5),
        caused_by: RecordRef { shard: u32::MAX, seq: u64::MAX },
        rule: "market_move".into(),
        value: Decimal::ONE,
        threshold: Decimal::ONE,
        message: String::new(),
        details: None,
    };
    let err = codec.encode_alert(&alert).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bad datum for `Alert`: field `caused_by.seq` 18446744073709551615 does not fit an Avro long"
    );
    let ok = Alert { caused_by: RecordRef { shard: u32::MAX, seq: i64::MAX as u64 }, ..alert };
    assert_eq!(codec.decode_alert(&codec.encode_alert(&ok).unwrap()).unwrap(), ok);
}

/// `details` must be a JSON object: the writer refuses anything else, and the reader
/// names the field when the text is not JSON or not an object.
#[test]
fn alert_details_that_are_not_a_json_object_are_refused() {
    let codec = Codec::new();
    let listed = Alert { details: Some(serde_json::json!(["lot-3"])), ..common::harvest_alert() };
    let err = codec.encode_alert(&listed).unwrap_err();
    assert_eq!(err.to_string(), r#"bad datum for `Alert`: field `details` must be a JSON object, got ["lot-3"]"#);

    // The datum without details ends with the null branch; put text in its place.
    let datum = codec.encode_alert(&common::sample_alert(AlertKind::WashSaleRisk)).unwrap();
    let with_text = |text: &str| {
        let mut bytes = datum[..datum.len() - 1].to_vec();
        bytes.push(0x02);
        bytes.extend(varint(text.len() as i64));
        bytes.extend(text.as_bytes());
        bytes
    };
    let err = codec.decode_alert(&with_text("{lot-3")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bad datum for `Alert`: field `details` is not JSON: key must be a string at line 1 column 2"
    );
    assert_eq!(err.to_rejection().field.as_deref(), Some("details"));
    let err = codec.decode_alert(&with_text("[1]")).unwrap_err();
    assert_eq!(err.to_string(), "bad datum for `Alert`: field `details` must be the text of a JSON object, got [1]");
    let read = codec.decode_alert(&with_text(r#"{"sale":{"lot_id":"lot-3"}}"#)).unwrap();
    assert_eq!(read.details, Some(serde_json::json!({"sale": {"lot_id": "lot-3"}})));
    assert_eq!(read.kind, AlertKind::WashSaleRisk);
}

/// Zig-zag varint of `n`.
fn varint(n: i64) -> Vec<u8> {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    let mut out = Vec::new();
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
    out
}

#[test]
fn a_tiny_body_declaring_a_huge_array_is_refused_not_allocated() {
    let codec = Codec::new();
    assert_eq!(apache_avro::util::max_allocation_bytes(usize::MAX), MAX_ALLOCATION_BYTES);
    // AlertPreferencesSet: no event_id, ts 0, user_id "u", then 500 million channels.
    let mut body = vec![0xC3, 0x01];
    body.extend(codec.fingerprint("AlertPreferencesSet").unwrap().to_le_bytes());
    body.extend([0x00, 0x00, 0x02, b'u']);
    body.extend(varint(500_000_000));
    body.extend([0x02, b'x']);
    assert_eq!(body.len(), 21);
    let items = codec.decode_body(&body).unwrap();
    assert_eq!(items.len(), 1);
    let reason = items[0].result.clone().unwrap_err().reason;
    assert!(
        reason.starts_with("cannot read the body from byte 0 on: bad datum for `AlertPreferencesSet`: "),
        "{reason}"
    );
    assert!(reason.contains(&MAX_ALLOCATION_BYTES.to_string()), "{reason}");
}

#[test]
fn a_deflate_bomb_is_refused_at_the_inflate_limit() {
    let codec = Codec::new();
    let (_, datum) = codec.encode(&trade()).unwrap();
    let schema = codec.schema_json("TradeExecuted").unwrap();
    let good = miniz_oxide::deflate::compress_to_vec(&[datum.clone(), datum].concat(), 6);
    let bomb = miniz_oxide::deflate::compress_to_vec(&vec![0u8; MAX_INFLATED_BYTES + 1], 9);
    assert!(bomb.len() * 100 < MAX_INFLATED_BYTES, "{} bytes", bomb.len());
    let header_len = common::container_blocks(schema, "deflate", &[]).len();
    let bomb_start = header_len + varint(2).len() + varint(good.len() as i64).len() + good.len() + 16;
    let body = common::container_blocks(schema, "deflate", &[(2, good), (1, bomb)]);
    let items = codec.decode_body(&body).unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0].result, Ok(trade()));
    assert_eq!(items[1].result, Ok(trade()));
    let reason = items[2].result.clone().unwrap_err().reason;
    assert_eq!(
        reason,
        format!("cannot read the body from byte {bomb_start} on: the container inflates to more than {MAX_INFLATED_BYTES} bytes")
    );
    assert_eq!(items[2].raw, hex(&body[bomb_start..]));
}

#[test]
fn an_unsupported_container_codec_is_refused_as_a_whole() {
    let codec = Codec::new();
    let body = common::container_blocks(codec.schema_json("TradeExecuted").unwrap(), "snappy", &[]);
    let rejection = codec.decode_body(&body).unwrap_err();
    assert_eq!(rejection.reason, "malformed Avro container header: unsupported codec `snappy` (null and deflate are)");
}

/// A body's items are numbered 0.., and only the last one may say the body cannot be
/// split further.
fn assert_well_formed(result: &Result<Vec<json::Decoded>, Rejection>) {
    let Ok(items) = result else { return };
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item.index, i);
        let stuck = matches!(&item.result, Err(r) if r.reason.starts_with("cannot read the body"));
        assert!(!stuck || i + 1 == items.len(), "item {i} of {} is a dead end", items.len());
    }
}

mod fuzz {
    use super::*;
    use common::{body_of, event_with, input_event, PRICE_BATCH};
    use proptest::collection::vec;
    use proptest::prelude::*;
    use proptest::sample::Index;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..300), ocf in any::<bool>()) {
            let codec = Codec::new();
            let body = if ocf { [b"Obj\x01".as_slice(), &bytes].concat() } else { bytes };
            assert_well_formed(&codec.decode_body(&body));
        }

        #[test]
        fn corrupted_single_object_streams_never_panic(
            events in vec(input_event(), 1..4),
            flips in vec((any::<Index>(), 1..=255u8), 1..4),
        ) {
            let codec = Codec::new();
            let mut body: Vec<u8> = events.iter().flat_map(|e| codec.encode_single_object(e).unwrap()).collect();
            for (at, mask) in flips {
                let at = at.index(body.len());
                body[at] ^= mask;
            }
            assert_well_formed(&codec.decode_body(&body));
        }

        #[test]
        fn corrupted_containers_never_panic(
            events in (0..PRICE_BATCH).prop_flat_map(|i| vec(event_with(body_of(i)), 1..4)),
            flips in vec((any::<Index>(), 1..=255u8), 1..4),
        ) {
            let codec = Codec::new();
            let datums: Vec<Vec<u8>> = events.iter().map(|e| codec.encode(e).unwrap().1).collect();
            let schema = codec.schema_json(events[0].body.type_name()).unwrap();
            let mut body = common::container(schema, &datums);
            let header_len = common::container(schema, &[]).len();
            // Corrupt the blocks, not the header (whose schema text would just be refused).
            for (at, mask) in flips {
                let at = header_len + at.index(body.len() - header_len);
                body[at] ^= mask;
            }
            let result = codec.decode_body(&body);
            prop_assert!(result.is_ok(), "{:?}", result.err());
            assert_well_formed(&result);
        }
    }
}
