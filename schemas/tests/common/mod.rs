//! Strategies for valid contract events, shared by the codec tests.
#![allow(dead_code)]

mod edges;
pub use edges::EDGE_MICROS;

use std::collections::BTreeMap;

use proptest::collection::{btree_map, btree_set, vec};
use proptest::prelude::*;
use riskstream_schemas::*;
use rust_decimal::Decimal;

/// Identifiers: non-empty printable ASCII.
pub fn id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9_.:-]{0,23}"
}

pub fn symbol() -> impl Strategy<Value = String> {
    "[A-Z]{1,5}"
}

/// Event times: the first and last microsecond RFC 3339 can write, or any time
/// from 1900-01-01 to 2100-01-01.
pub fn ts() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        1 => proptest::sample::select(vec![Timestamp::RFC3339_MIN, Timestamp::RFC3339_MAX]),
        9 => (-2_208_988_800_000_000i64..4_102_444_800_000_000).prop_map(Timestamp::from_micros),
    ]
}

/// Any microsecond, a third of the time an edge value.
pub fn stored_ts() -> impl Strategy<Value = Timestamp> {
    prop_oneof![1 => proptest::sample::select(EDGE_MICROS.to_vec()), 2 => any::<i64>()].prop_map(Timestamp)
}

/// At most 10 decimal places, below 10^17, trailing zeros kept (`1.50` stays `1.50`).
pub fn non_negative() -> impl Strategy<Value = Decimal> {
    (0i64..100_000_000_000_000_000, 0u32..=10).prop_map(|(m, s)| Decimal::new(m, s))
}

pub fn positive() -> impl Strategy<Value = Decimal> {
    (1i64..100_000_000_000_000_000, 0u32..=10).prop_map(|(m, s)| Decimal::new(m, s))
}

/// A weight in (0, 1].
pub fn fraction() -> impl Strategy<Value = Decimal> {
    (0u32..=10).prop_flat_map(|s| (1i64..=10i64.pow(s)).prop_map(move |m| Decimal::new(m, s)))
}

/// Any decimal(28, 10) value: up to 18 integer digits and 10 places, either sign.
pub fn full_range_decimal() -> impl Strategy<Value = Decimal> {
    const LIMIT: i128 = 10i128.pow(28);
    (-LIMIT + 1..LIMIT).prop_map(|u| Decimal::from_i128_with_scale(u, 10))
}

/// Symbol -> weight, the weights (multiples of 0.0001) summing to exactly 1.
pub fn targets() -> impl Strategy<Value = BTreeMap<String, DecimalStr>> {
    btree_set(symbol(), 1..6).prop_flat_map(|symbols| {
        let n = symbols.len();
        vec(0i64..=10_000, n - 1).prop_map(move |mut cuts| {
            cuts.push(0);
            cuts.push(10_000);
            cuts.sort_unstable();
            let weights = cuts.windows(2).map(|w| DecimalStr(Decimal::new(w[1] - w[0], 4)));
            symbols.iter().cloned().zip(weights).collect()
        })
    })
}

fn lots() -> impl Strategy<Value = (Option<LotMethod>, Vec<String>)> {
    prop_oneof![
        Just((None, vec![])),
        prop_oneof![Just(LotMethod::Fifo), Just(LotMethod::Hifo)].prop_map(|m| (Some(m), vec![])),
        vec(id(), 1..4).prop_map(|ids| (Some(LotMethod::Specific), ids)),
    ]
}

fn account_opened() -> impl Strategy<Value = EventBody> {
    let tax = prop_oneof![Just(TaxStatus::Taxable), Just(TaxStatus::TraditionalIra), Just(TaxStatus::RothIra)];
    // v2 personal fields: any printable name (non-ASCII too), a plain address.
    let name = proptest::option::of("[A-Za-zÀ-ÿ][A-Za-zÀ-ÿ' .-]{0,40}");
    let email = proptest::option::of("[a-z0-9._+-]{1,20}@[a-z0-9-]{1,20}\\.[a-z]{2,6}");
    (id(), id(), tax, "[A-Z]{3}", name, email).prop_map(
        |(account_id, user_id, tax_status, base_currency, holder_name, holder_email)| {
            EventBody::AccountOpened(AccountOpened {
                account_id,
                user_id,
                tax_status,
                base_currency,
                holder_name,
                holder_email,
            })
        },
    )
}

fn security_listed() -> impl Strategy<Value = EventBody> {
    (symbol(), id(), id(), id()).prop_map(|(symbol, asset_class, sector, wash_group)| {
        EventBody::SecurityListed(SecurityListed { symbol, asset_class, sector, wash_group })
    })
}

fn cash_movement() -> impl Strategy<Value = EventBody> {
    let kind = prop_oneof![
        Just(CashKind::Deposit),
        Just(CashKind::Withdrawal),
        Just(CashKind::Dividend),
        Just(CashKind::Interest),
        Just(CashKind::Fee),
    ];
    (id(), id(), kind, positive()).prop_map(|(account_id, user_id, kind, amount)| {
        EventBody::CashMovement(CashMovement { account_id, user_id, kind, amount })
    })
}

fn trade_executed() -> impl Strategy<Value = EventBody> {
    let side = prop_oneof![Just(Side::Buy), Just(Side::Sell)];
    let ids = (id(), id(), id(), symbol());
    let numbers = (side, positive(), positive(), non_negative(), lots());
    (ids, numbers).prop_map(|((trade_id, account_id, user_id, symbol), (side, quantity, price, fees, lots))| {
        EventBody::TradeExecuted(TradeExecuted {
            trade_id,
            account_id,
            user_id,
            symbol,
            side,
            quantity,
            price,
            fees,
            lot_method: lots.0,
            lot_ids: lots.1,
        })
    })
}

fn market_tick() -> impl Strategy<Value = EventBody> {
    (symbol(), positive(), proptest::option::of(non_negative()))
        .prop_map(|(symbol, price, volume)| EventBody::MarketTick(MarketTick { symbol, price, volume }))
}

fn target_allocation_set() -> impl Strategy<Value = EventBody> {
    let bands = (proptest::option::of(fraction()), proptest::option::of(fraction()));
    (id(), id(), targets(), bands).prop_map(|(account_id, user_id, targets, (band_abs, band_rel))| {
        EventBody::TargetAllocationSet(TargetAllocationSet { account_id, user_id, targets, band_abs, band_rel })
    })
}

/// A leverage limit: at least 1.
pub fn leverage() -> impl Strategy<Value = Decimal> {
    non_negative().prop_map(|d| d + Decimal::ONE)
}

fn risk_limits_set() -> impl Strategy<Value = EventBody> {
    let limit = || proptest::option::of(fraction());
    let weights = (limit(), limit(), limit());
    let risk = (limit(), limit(), limit(), limit(), proptest::option::of(leverage()));
    (id(), id(), weights, risk).prop_map(|(account_id, user_id, weights, risk)| {
        let (max_position_weight, max_sector_weight, max_asset_class_weight) = weights;
        let (max_var, max_cvar, max_drawdown, max_daily_loss, max_gross_leverage) = risk;
        EventBody::RiskLimitsSet(RiskLimitsSet {
            account_id,
            user_id,
            max_position_weight,
            max_sector_weight,
            max_asset_class_weight,
            max_var,
            max_cvar,
            max_drawdown,
            max_daily_loss,
            max_gross_leverage,
        })
    })
}

fn alert_preferences_set() -> impl Strategy<Value = EventBody> {
    let channel = prop_oneof![Just("webhook"), Just("email"), Just("in_app")].prop_map(String::from);
    (id(), vec(channel, 0..4))
        .prop_map(|(user_id, channels)| EventBody::AlertPreferencesSet(AlertPreferencesSet { user_id, channels }))
}

fn price_batch() -> impl Strategy<Value = EventBody> {
    proptest::collection::btree_map(symbol(), (positive().prop_map(DecimalStr), 0i64..4_000_000_000_000_000), 0..8)
        .prop_map(|entries| {
            let prices = entries.iter().map(|(s, (p, _))| (s.clone(), *p)).collect();
            let times = entries.iter().map(|(s, (_, t))| (s.clone(), riskstream_schemas::Timestamp(*t))).collect();
            EventBody::PriceBatch(PriceBatch { prices, times })
        })
}

/// The body strategy of event type `EVENT_TYPES[i]`.
pub fn body_of(i: usize) -> BoxedStrategy<EventBody> {
    match EVENT_TYPES[i] {
        "AccountOpened" => account_opened().boxed(),
        "SecurityListed" => security_listed().boxed(),
        "CashMovement" => cash_movement().boxed(),
        "TradeExecuted" => trade_executed().boxed(),
        "MarketTick" => market_tick().boxed(),
        "TargetAllocationSet" => target_allocation_set().boxed(),
        "RiskLimitsSet" => risk_limits_set().boxed(),
        "AlertPreferencesSet" => alert_preferences_set().boxed(),
        "PriceBatch" => price_batch().boxed(),
        other => panic!("no strategy for {other}"),
    }
}

pub fn event_with(body: impl Strategy<Value = EventBody>) -> impl Strategy<Value = Event> {
    (proptest::option::of(id()), ts(), body).prop_map(|(event_id, ts, body)| Event { event_id, ts, body })
}

/// Index of `PriceBatch` in `EVENT_TYPES`: internal, refused from producers.
pub const PRICE_BATCH: usize = 8;

/// A valid event a producer may send (every type but `PriceBatch`).
pub fn input_event() -> impl Strategy<Value = Event> {
    (0..PRICE_BATCH).prop_flat_map(|i| event_with(body_of(i)))
}

/// A valid event of any type, `PriceBatch` included.
pub fn any_event() -> impl Strategy<Value = Event> {
    (0..EVENT_TYPES.len()).prop_flat_map(|i| event_with(body_of(i)))
}

/// A JSON leaf as a rule writes one: text, a decimal as a string, a number, a flag, null.
fn json_leaf() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        ".{0,12}".prop_map(serde_json::Value::from),
        full_range_decimal().prop_map(|d| serde_json::Value::from(d.to_string())),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_filter("JSON has no NaN or infinity", |x| x.is_finite()).prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
    ]
}

fn json_object(
    values: impl Strategy<Value = serde_json::Value>,
    size: std::ops::Range<usize>,
) -> impl Strategy<Value = serde_json::Value> {
    btree_map(id(), values, size).prop_map(|fields| serde_json::Value::Object(fields.into_iter().collect()))
}

/// An alert's `details`: none, or a JSON object of leaves and lists of flat objects (the
/// candidate lots of a harvest, say).
pub fn details() -> impl Strategy<Value = Option<serde_json::Value>> {
    let lots = vec(json_object(json_leaf(), 0..4), 0..3).prop_map(serde_json::Value::Array);
    proptest::option::of(json_object(prop_oneof![json_leaf(), lots], 0..5))
}

pub fn alert() -> impl Strategy<Value = Alert> {
    let kind = proptest::sample::select(AlertKind::ALL.to_vec());
    let state = prop_oneof![Just(AlertState::Raised), Just(AlertState::Cleared)];
    let priority =
        prop_oneof![Just(Priority::Low), Just(Priority::Medium), Just(Priority::High), Just(Priority::Critical)];
    let cause = (any::<u32>(), 0..=i64::MAX as u64).prop_map(|(shard, seq)| RecordRef { shard, seq });
    let enums = (kind, state, priority, cause, ts());
    let texts = (id(), id(), id(), id(), ".{0,40}");
    (enums, texts, full_range_decimal(), full_range_decimal(), details()).prop_map(
        |(
            (kind, state, priority, caused_by, ts),
            (alert_id, account_id, user_id, rule, message),
            value,
            threshold,
            details,
        )| {
            Alert {
                alert_id,
                kind,
                state,
                priority,
                account_id,
                user_id,
                ts,
                caused_by,
                rule,
                value,
                threshold,
                message,
                details,
            }
        },
    )
}

/// A fixed alert of `kind` (value 0.31 over threshold 0.25).
pub fn sample_alert(kind: AlertKind) -> Alert {
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

/// A fixed `tax_loss_harvest` alert whose `details` list its candidate lot.
pub fn harvest_alert() -> Alert {
    let details = serde_json::json!({
        "symbol": "VTI",
        "candidate_lots": [
            {"lot_id": "lot-3", "quantity": "10", "basis": "2513.70", "unrealized": "-412.20", "acquired": "2025-04-01"}
        ],
    });
    Alert { details: Some(details), ..sample_alert(AlertKind::TaxLossHarvest) }
}

/// Wraps datums of one schema in an Object Container File (null codec), built by hand
/// so the reader is not tested against itself.
pub fn container(schema_json: &str, datums: &[Vec<u8>]) -> Vec<u8> {
    let blocks: &[(usize, Vec<u8>)] = if datums.is_empty() { &[] } else { &[(datums.len(), datums.concat())] };
    container_blocks(schema_json, "null", blocks)
}

/// An Object Container File with the given codec and (item count, block data) blocks.
pub fn container_blocks(schema_json: &str, codec: &str, blocks: &[(usize, Vec<u8>)]) -> Vec<u8> {
    use apache_avro::types::Value;
    use apache_avro::Schema;
    let sync = [0x5Au8; 16];
    let meta = Value::Map(
        [
            ("avro.schema".to_string(), Value::Bytes(schema_json.as_bytes().to_vec())),
            ("avro.codec".to_string(), Value::Bytes(codec.as_bytes().to_vec())),
        ]
        .into_iter()
        .collect(),
    );
    let mut out = b"Obj\x01".to_vec();
    out.extend(apache_avro::to_avro_datum(&Schema::map(Schema::Bytes), meta).unwrap());
    out.extend(sync);
    for (count, data) in blocks {
        out.extend(apache_avro::to_avro_datum(&Schema::Long, *count as i64).unwrap());
        out.extend(apache_avro::to_avro_datum(&Schema::Long, data.len() as i64).unwrap());
        out.extend(data);
        out.extend(sync);
    }
    out
}
