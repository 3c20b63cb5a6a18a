//! Decode and encode costs of the event contract: a trade in JSON and Avro, and a
//! 2,000-symbol PriceBatch in Avro (the record a shard stores per conflated batch).
//! Run: `cargo bench -p riskstream-schemas --bench codec`.

use std::collections::BTreeMap;

use criterion::{criterion_group, criterion_main, Criterion};
use riskstream_schemas::avro::Codec;
use riskstream_schemas::*;
use rust_decimal::Decimal;

fn trade() -> Event {
    Event {
        event_id: Some("oms-1".into()),
        ts: Timestamp::parse("2026-03-02T14:31:07.125Z").unwrap(),
        body: EventBody::TradeExecuted(TradeExecuted {
            trade_id: "T-1".into(),
            account_id: "acc-000001".into(),
            user_id: "usr-000001".into(),
            symbol: "VTI".into(),
            side: Side::Buy,
            quantity: Decimal::from(12),
            price: Decimal::new(25137, 2),
            fees: Decimal::new(99, 2),
            lot_method: None,
            lot_ids: vec![],
        }),
    }
}

fn price_batch() -> Event {
    let prices: BTreeMap<String, DecimalStr> =
        (0..2_000).map(|s| (format!("S{s:04}"), Decimal::new(10_000 + s, 2).into())).collect();
    let times = prices.keys().map(|s| (s.clone(), Timestamp(1_000))).collect();
    Event { event_id: None, ts: Timestamp(1_000), body: EventBody::PriceBatch(PriceBatch { prices, times }) }
}

fn bench(c: &mut Criterion) {
    let codec = Codec::new();
    let line = json::encode(&trade());
    c.bench_function("json/decode_trade", |b| b.iter(|| json::decode_line(0, &line)));
    let (fp, datum) = codec.encode(&trade()).unwrap();
    c.bench_function("avro/encode_trade", |b| b.iter(|| codec.encode(&trade()).unwrap()));
    c.bench_function("avro/decode_trade", |b| b.iter(|| codec.decode(fp, &datum).unwrap()));
    let batch = price_batch();
    c.bench_function("avro/encode_price_batch_2000", |b| b.iter(|| codec.encode(&batch).unwrap()));
}

criterion_group!(benches, bench);
criterion_main!(benches);
