//! Explicit conversions between the contract types and `apache_avro` values.
//!
//! `*_to_value` builds a loose record (enums as symbol strings, optional values
//! unwrapped, decimals as 16-byte unscaled integers) that `Value::resolve` then shapes
//! to the schema. `*_from_value` reads a value that has the current schema's shape.

use std::collections::BTreeMap;

use apache_avro::types::Value;
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{hex, AvroError, ALERT};
use crate::types::*;
use crate::{Timestamp, DECIMAL_SCALE};

/// 10^28: the unscaled value of a decimal(28, 10) is below it in magnitude.
const UNSCALED_LIMIT: u128 = 10_000_000_000_000_000_000_000_000_000;

type Field = (String, Value);

fn field(name: &str, value: Value) -> Field {
    (name.to_string(), value)
}

fn string(name: &str, value: &str) -> Field {
    field(name, Value::String(value.to_string()))
}

fn optional(value: Option<Value>) -> Value {
    value.unwrap_or(Value::Null)
}

/// The Avro enum symbol of a Rust enum: its serde (snake_case) name.
fn symbol<T: Serialize>(value: &T) -> Value {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => Value::String(s),
        // Not a unit variant: resolution then names the field that does not fit.
        _ => Value::Null,
    }
}

/// The unscaled integer of `d` at scale 10, refusing extra decimal places and values
/// beyond decimal(28, 10).
pub(super) fn unscaled(field: &str, d: Decimal) -> Result<i128, AvroError> {
    let n = if d.scale() > DECIMAL_SCALE { d.normalize() } else { d };
    if n.scale() > DECIMAL_SCALE {
        return Err(AvroError::DecimalScale { field: field.to_string(), value: d });
    }
    10i128
        .pow(DECIMAL_SCALE - n.scale())
        .checked_mul(n.mantissa())
        .filter(|u| u.unsigned_abs() < UNSCALED_LIMIT)
        .ok_or_else(|| AvroError::DecimalRange { field: field.to_string(), value: d.to_string() })
}

fn decimal(name: &str, d: Decimal) -> Result<Field, AvroError> {
    let bytes = unscaled(name, d)?.to_be_bytes();
    Ok(field(name, Value::Decimal(apache_avro::Decimal::from(bytes))))
}

fn opt_decimal(name: &str, d: Option<Decimal>) -> Result<Field, AvroError> {
    match d {
        Some(d) => decimal(name, d),
        None => Ok(field(name, Value::Null)),
    }
}

fn decimal_map(name: &str, map: &BTreeMap<String, DecimalStr>) -> Result<Field, AvroError> {
    let entries = map
        .iter()
        .map(|(k, v)| Ok((k.clone(), decimal(&format!("{name}.{k}"), v.0)?.1)))
        .collect::<Result<_, AvroError>>()?;
    Ok(field(name, Value::Map(entries)))
}

fn time_map(name: &str, map: &BTreeMap<String, Timestamp>) -> Field {
    let entries = map.iter().map(|(k, t)| (k.clone(), Value::TimestampMicros(t.micros()))).collect();
    field(name, Value::Map(entries))
}

fn strings(name: &str, items: &[String]) -> Field {
    field(name, Value::Array(items.iter().cloned().map(Value::String).collect()))
}

pub(super) fn event_to_value(event: &Event) -> Result<Value, AvroError> {
    let mut fields = vec![
        field("event_id", optional(event.event_id.clone().map(Value::String))),
        field("ts", Value::TimestampMicros(event.ts.micros())),
    ];
    fields.extend(body_fields(&event.body)?);
    Ok(Value::Record(fields))
}

fn body_fields(body: &EventBody) -> Result<Vec<Field>, AvroError> {
    Ok(match body {
        EventBody::AccountOpened(e) => vec![
            string("account_id", &e.account_id),
            string("user_id", &e.user_id),
            field("tax_status", symbol(&e.tax_status)),
            string("base_currency", &e.base_currency),
            field("holder_name", optional(e.holder_name.clone().map(Value::String))),
            field("holder_email", optional(e.holder_email.clone().map(Value::String))),
        ],
        EventBody::SecurityListed(e) => vec![
            string("symbol", &e.symbol),
            string("asset_class", &e.asset_class),
            string("sector", &e.sector),
            string("wash_group", &e.wash_group),
        ],
        EventBody::CashMovement(e) => vec![
            string("account_id", &e.account_id),
            string("user_id", &e.user_id),
            field("kind", symbol(&e.kind)),
            decimal("amount", e.amount)?,
        ],
        EventBody::TradeExecuted(e) => trade_fields(e)?,
        EventBody::MarketTick(e) => {
            vec![string("symbol", &e.symbol), decimal("price", e.price)?, opt_decimal("volume", e.volume)?]
        }
        EventBody::TargetAllocationSet(e) => vec![
            string("account_id", &e.account_id),
            string("user_id", &e.user_id),
            decimal_map("targets", &e.targets)?,
            opt_decimal("band_abs", e.band_abs)?,
            opt_decimal("band_rel", e.band_rel)?,
        ],
        EventBody::RiskLimitsSet(e) => vec![
            string("account_id", &e.account_id),
            string("user_id", &e.user_id),
            opt_decimal("max_position_weight", e.max_position_weight)?,
            opt_decimal("max_sector_weight", e.max_sector_weight)?,
            opt_decimal("max_asset_class_weight", e.max_asset_class_weight)?,
            opt_decimal("max_var", e.max_var)?,
            opt_decimal("max_cvar", e.max_cvar)?,
            opt_decimal("max_drawdown", e.max_drawdown)?,
            opt_decimal("max_daily_loss", e.max_daily_loss)?,
            opt_decimal("max_gross_leverage", e.max_gross_leverage)?,
        ],
        EventBody::AlertPreferencesSet(e) => {
            vec![string("user_id", &e.user_id), strings("channels", &e.channels)]
        }
        EventBody::PriceBatch(e) => vec![decimal_map("prices", &e.prices)?, time_map("times", &e.times)],
    })
}

fn trade_fields(e: &TradeExecuted) -> Result<Vec<Field>, AvroError> {
    Ok(vec![
        string("trade_id", &e.trade_id),
        string("account_id", &e.account_id),
        string("user_id", &e.user_id),
        string("symbol", &e.symbol),
        field("side", symbol(&e.side)),
        decimal("quantity", e.quantity)?,
        decimal("price", e.price)?,
        decimal("fees", e.fees)?,
        field("lot_method", optional(e.lot_method.as_ref().map(symbol))),
        strings("lot_ids", &e.lot_ids),
    ])
}

fn bad_alert_field(field: &str, reason: String) -> AvroError {
    AvroError::BadField { type_name: ALERT.to_string(), field: field.to_string(), reason }
}

/// The JSON text of an alert's `details`, which must be an object (the contract's shape;
/// the reader refuses anything else, so the writer does too).
fn details_text(details: Option<&serde_json::Value>) -> Result<Value, AvroError> {
    match details {
        None => Ok(Value::Null),
        Some(object @ serde_json::Value::Object(_)) => Ok(Value::String(object.to_string())),
        Some(other) => Err(bad_alert_field("details", format!("must be a JSON object, got {other}"))),
    }
}

pub(super) fn alert_to_value(a: &Alert) -> Result<Value, AvroError> {
    let seq = i64::try_from(a.caused_by.seq)
        .map_err(|_| bad_alert_field("caused_by.seq", format!("{} does not fit an Avro long", a.caused_by.seq)))?;
    let caused_by =
        Value::Record(vec![field("shard", Value::Long(a.caused_by.shard.into())), field("seq", Value::Long(seq))]);
    Ok(Value::Record(vec![
        string("alert_id", &a.alert_id),
        field("kind", Value::String(a.kind.as_str().to_string())),
        field("state", symbol(&a.state)),
        field("priority", symbol(&a.priority)),
        string("account_id", &a.account_id),
        string("user_id", &a.user_id),
        field("ts", Value::TimestampMicros(a.ts.micros())),
        field("caused_by", caused_by),
        string("rule", &a.rule),
        decimal("value", a.value)?,
        decimal("threshold", a.threshold)?,
        string("message", &a.message),
        field("details", details_text(a.details.as_ref())?),
    ]))
}

/// Sign-extends every decimal to 16 bytes: apache-avro 0.21's resolution refuses a
/// decimal whose byte length is too short for the reader's precision, although Avro
/// writers (Java's among them) emit the shortest two's complement.
pub(super) fn widen_decimals(value: Value) -> Value {
    match value {
        Value::Decimal(d) => Value::Decimal(widen(d)),
        Value::Union(i, inner) => Value::Union(i, Box::new(widen_decimals(*inner))),
        Value::Record(fields) => Value::Record(fields.into_iter().map(|(k, v)| (k, widen_decimals(v))).collect()),
        Value::Array(items) => Value::Array(items.into_iter().map(widen_decimals).collect()),
        Value::Map(entries) => Value::Map(entries.into_iter().map(|(k, v)| (k, widen_decimals(v))).collect()),
        other => other,
    }
}

fn widen(d: apache_avro::Decimal) -> apache_avro::Decimal {
    match Vec::<u8>::try_from(&d) {
        Ok(bytes) if bytes.len() < 16 => {
            let fill = if bytes.first().is_some_and(|b| b & 0x80 != 0) { 0xFF } else { 0 };
            let mut wide = vec![fill; 16 - bytes.len()];
            wide.extend_from_slice(&bytes);
            apache_avro::Decimal::from(wide)
        }
        _ => d,
    }
}

/// A big-endian two's-complement integer as `i128`, or `None` when it does not fit.
fn i128_from_be(bytes: &[u8]) -> Option<i128> {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let fill = if negative { 0xFF } else { 0 };
    let (head, tail) = bytes.split_at(bytes.len().saturating_sub(16));
    if head.iter().any(|&b| b != fill) {
        return None;
    }
    let mut buf = [fill; 16];
    buf[16 - tail.len()..].copy_from_slice(tail);
    let n = i128::from_be_bytes(buf);
    ((n < 0) == negative).then_some(n)
}

/// A decimal(28, 10) as a normalised `Decimal`.
fn decimal_from_avro(d: &apache_avro::Decimal) -> Result<Decimal, String> {
    let bytes = Vec::<u8>::try_from(d).map_err(|e| e.to_string())?;
    i128_from_be(&bytes)
        .filter(|u| u.unsigned_abs() < UNSCALED_LIMIT)
        .and_then(|u| Decimal::try_from_i128_with_scale(u, DECIMAL_SCALE).ok())
        .map(|n| n.normalize())
        .ok_or_else(|| format!("unscaled 0x{}", hex(&bytes)))
}

/// Text of a decoded decimal for raw renderings: the number, or the hex of its bytes.
pub(super) fn decimal_text(d: &apache_avro::Decimal) -> String {
    decimal_from_avro(d).map_or_else(|hex| hex, |n| n.to_string())
}

/// Typed access to the fields of a record value, naming the field on failure.
struct Fields<'a> {
    type_name: &'a str,
    fields: &'a [(String, Value)],
}

impl<'a> Fields<'a> {
    fn new(type_name: &'a str, value: &'a Value) -> Result<Self, AvroError> {
        match value {
            Value::Record(fields) => Ok(Fields { type_name, fields }),
            other => Err(AvroError::BadDatum {
                type_name: type_name.to_string(),
                reason: format!("expected a record, got {other:?}"),
            }),
        }
    }

    fn bad(&self, field: &str, reason: impl Into<String>) -> AvroError {
        let (type_name, field, reason) = (self.type_name.to_string(), field.to_string(), reason.into());
        AvroError::BadField { type_name, field, reason }
    }

    fn get(&self, name: &str) -> Result<&'a Value, AvroError> {
        let found = self.fields.iter().find(|(k, _)| k == name);
        found.map(|(_, v)| v).ok_or_else(|| self.bad(name, "is missing"))
    }

    /// The value of a `["null", T]` field, `None` for null.
    fn optional(&self, name: &str) -> Result<Option<&'a Value>, AvroError> {
        Ok(match self.get(name)? {
            Value::Union(_, inner) if **inner == Value::Null => None,
            Value::Union(_, inner) => Some(inner),
            Value::Null => None,
            other => Some(other),
        })
    }

    fn string_of(&self, name: &str, value: &Value) -> Result<String, AvroError> {
        match value {
            Value::String(s) => Ok(s.clone()),
            other => Err(self.bad(name, format!("must be a string, got {other:?}"))),
        }
    }

    fn string(&self, name: &str) -> Result<String, AvroError> {
        self.string_of(name, self.get(name)?)
    }

    fn opt_string(&self, name: &str) -> Result<Option<String>, AvroError> {
        self.optional(name)?.map(|v| self.string_of(name, v)).transpose()
    }

    fn long(&self, name: &str) -> Result<i64, AvroError> {
        match self.get(name)? {
            Value::Long(n) | Value::TimestampMicros(n) => Ok(*n),
            other => Err(self.bad(name, format!("must be a long, got {other:?}"))),
        }
    }

    fn timestamp(&self, name: &str) -> Result<Timestamp, AvroError> {
        self.long(name).map(Timestamp::from_micros)
    }

    fn symbol_text<'v>(&self, name: &str, value: &'v Value) -> Result<&'v str, AvroError> {
        match value {
            Value::Enum(_, s) | Value::String(s) => Ok(s),
            other => Err(self.bad(name, format!("must be an enum symbol, got {other:?}"))),
        }
    }

    fn symbol_of<T: DeserializeOwned>(&self, name: &str, value: &Value) -> Result<T, AvroError> {
        let text = self.symbol_text(name, value)?;
        serde_json::from_value(serde_json::Value::String(text.to_string()))
            .map_err(|_| self.bad(name, format!("has unknown symbol `{text}`")))
    }

    /// An [`AlertKind`] by its contract symbol: [`AlertKind::as_str`] over
    /// [`AlertKind::ALL`], the list `tests/avro_schemas.rs` holds the schema's symbols to.
    fn alert_kind(&self, name: &str) -> Result<AlertKind, AvroError> {
        let text = self.symbol_text(name, self.get(name)?)?;
        AlertKind::ALL
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| self.bad(name, format!("has unknown symbol `{text}`")))
    }

    fn symbol<T: DeserializeOwned>(&self, name: &str) -> Result<T, AvroError> {
        self.symbol_of(name, self.get(name)?)
    }

    fn opt_symbol<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, AvroError> {
        self.optional(name)?.map(|v| self.symbol_of(name, v)).transpose()
    }

    fn decimal_of(&self, name: &str, value: &Value) -> Result<Decimal, AvroError> {
        match value {
            Value::Decimal(d) => {
                decimal_from_avro(d).map_err(|value| AvroError::DecimalRange { field: name.to_string(), value })
            }
            other => Err(self.bad(name, format!("must be a decimal, got {other:?}"))),
        }
    }

    fn decimal(&self, name: &str) -> Result<Decimal, AvroError> {
        self.decimal_of(name, self.get(name)?)
    }

    fn opt_decimal(&self, name: &str) -> Result<Option<Decimal>, AvroError> {
        self.optional(name)?.map(|v| self.decimal_of(name, v)).transpose()
    }

    /// A `["null", "string"]` field holding the text of a JSON object.
    fn opt_json_object(&self, name: &str) -> Result<Option<serde_json::Value>, AvroError> {
        let Some(text) = self.opt_string(name)? else { return Ok(None) };
        match serde_json::from_str(&text) {
            Ok(object @ serde_json::Value::Object(_)) => Ok(Some(object)),
            Ok(other) => Err(self.bad(name, format!("must be the text of a JSON object, got {other}"))),
            Err(e) => Err(self.bad(name, format!("is not JSON: {e}"))),
        }
    }

    fn strings(&self, name: &str) -> Result<Vec<String>, AvroError> {
        match self.get(name)? {
            Value::Array(items) => items.iter().map(|v| self.string_of(name, v)).collect(),
            other => Err(self.bad(name, format!("must be an array, got {other:?}"))),
        }
    }

    fn time_map(&self, name: &str) -> Result<BTreeMap<String, Timestamp>, AvroError> {
        let entries = match self.get(name)? {
            Value::Map(entries) => entries,
            other => return Err(self.bad(name, format!("must be a map, got {other:?}"))),
        };
        entries
            .iter()
            .map(|(k, v)| match v {
                Value::Long(n) | Value::TimestampMicros(n) => Ok((k.clone(), Timestamp::from_micros(*n))),
                other => Err(self.bad(name, format!("{k} must be a timestamp, got {other:?}"))),
            })
            .collect()
    }

    fn decimal_map(&self, name: &str) -> Result<BTreeMap<String, DecimalStr>, AvroError> {
        let entries = match self.get(name)? {
            Value::Map(entries) => entries,
            other => return Err(self.bad(name, format!("must be a map, got {other:?}"))),
        };
        entries.iter().map(|(k, v)| Ok((k.clone(), DecimalStr(self.decimal_of(&format!("{name}.{k}"), v)?)))).collect()
    }
}

/// The event of a value with the current shape of record `type_name`.
pub(super) fn event_from_value(type_name: &str, value: &Value) -> Result<Event, AvroError> {
    let f = Fields::new(type_name, value)?;
    let body = body_from(type_name, &f)?;
    Ok(Event { event_id: f.opt_string("event_id")?, ts: f.timestamp("ts")?, body })
}

fn body_from(type_name: &str, f: &Fields) -> Result<EventBody, AvroError> {
    Ok(match type_name {
        "AccountOpened" => EventBody::AccountOpened(AccountOpened {
            account_id: f.string("account_id")?,
            user_id: f.string("user_id")?,
            tax_status: f.symbol("tax_status")?,
            base_currency: f.string("base_currency")?,
            // v1 records resolve to v2 with the fields' null default.
            holder_name: f.opt_string("holder_name")?,
            holder_email: f.opt_string("holder_email")?,
        }),
        "SecurityListed" => EventBody::SecurityListed(SecurityListed {
            symbol: f.string("symbol")?,
            asset_class: f.string("asset_class")?,
            sector: f.string("sector")?,
            wash_group: f.string("wash_group")?,
        }),
        "CashMovement" => EventBody::CashMovement(CashMovement {
            account_id: f.string("account_id")?,
            user_id: f.string("user_id")?,
            kind: f.symbol("kind")?,
            amount: f.decimal("amount")?,
        }),
        "TradeExecuted" => EventBody::TradeExecuted(trade_from(f)?),
        "MarketTick" => EventBody::MarketTick(MarketTick {
            symbol: f.string("symbol")?,
            price: f.decimal("price")?,
            volume: f.opt_decimal("volume")?,
        }),
        "TargetAllocationSet" => EventBody::TargetAllocationSet(TargetAllocationSet {
            account_id: f.string("account_id")?,
            user_id: f.string("user_id")?,
            targets: f.decimal_map("targets")?,
            band_abs: f.opt_decimal("band_abs")?,
            band_rel: f.opt_decimal("band_rel")?,
        }),
        _ => return account_body_from(type_name, f),
    })
}

fn account_body_from(type_name: &str, f: &Fields) -> Result<EventBody, AvroError> {
    Ok(match type_name {
        "RiskLimitsSet" => EventBody::RiskLimitsSet(RiskLimitsSet {
            account_id: f.string("account_id")?,
            user_id: f.string("user_id")?,
            max_position_weight: f.opt_decimal("max_position_weight")?,
            max_sector_weight: f.opt_decimal("max_sector_weight")?,
            max_asset_class_weight: f.opt_decimal("max_asset_class_weight")?,
            max_var: f.opt_decimal("max_var")?,
            max_cvar: f.opt_decimal("max_cvar")?,
            max_drawdown: f.opt_decimal("max_drawdown")?,
            max_daily_loss: f.opt_decimal("max_daily_loss")?,
            max_gross_leverage: f.opt_decimal("max_gross_leverage")?,
        }),
        "AlertPreferencesSet" => EventBody::AlertPreferencesSet(AlertPreferencesSet {
            user_id: f.string("user_id")?,
            channels: f.strings("channels")?,
        }),
        "PriceBatch" => {
            EventBody::PriceBatch(PriceBatch { prices: f.decimal_map("prices")?, times: f.time_map("times")? })
        }
        ALERT => return Err(AvroError::NotAnEvent(ALERT.to_string())),
        other => return Err(AvroError::UnknownType(other.to_string())),
    })
}

fn trade_from(f: &Fields) -> Result<TradeExecuted, AvroError> {
    Ok(TradeExecuted {
        trade_id: f.string("trade_id")?,
        account_id: f.string("account_id")?,
        user_id: f.string("user_id")?,
        symbol: f.string("symbol")?,
        side: f.symbol("side")?,
        quantity: f.decimal("quantity")?,
        price: f.decimal("price")?,
        fees: f.decimal("fees")?,
        lot_method: f.opt_symbol("lot_method")?,
        lot_ids: f.strings("lot_ids")?,
    })
}

pub(super) fn alert_from_value(value: &Value) -> Result<Alert, AvroError> {
    let f = Fields::new(ALERT, value)?;
    let cause = Fields::new(ALERT, f.get("caused_by")?)?;
    let shard = cause.long("shard")?;
    let seq = cause.long("seq")?;
    let caused_by = RecordRef {
        shard: u32::try_from(shard).map_err(|_| f.bad("caused_by.shard", format!("{shard} is not a u32")))?,
        seq: u64::try_from(seq).map_err(|_| f.bad("caused_by.seq", format!("{seq} is negative")))?,
    };
    Ok(Alert {
        alert_id: f.string("alert_id")?,
        kind: f.alert_kind("kind")?,
        state: f.symbol("state")?,
        priority: f.symbol("priority")?,
        account_id: f.string("account_id")?,
        user_id: f.string("user_id")?,
        ts: f.timestamp("ts")?,
        caused_by,
        rule: f.string("rule")?,
        value: f.decimal("value")?,
        threshold: f.decimal("threshold")?,
        message: f.string("message")?,
        // v1 and v2 alerts resolve to v3 with the field's null default.
        details: f.opt_json_object("details")?,
    })
}
