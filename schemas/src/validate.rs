//! Stateless checks of one event against the contract. Checks that need state
//! (unknown account, selling more than held) live in the projections.

use rust_decimal::Decimal;

use crate::types::*;
use crate::Rejection;

/// Decimal places kept by the Avro `decimal` logical type (scale 10).
pub const DECIMAL_SCALE: u32 = 10;
/// Target weights must sum to 1 within this tolerance (so 1/3 + 1/3 + 1/3 written
/// with six places is accepted).
pub const WEIGHT_SUM_TOLERANCE: Decimal = Decimal::from_parts(1, 0, 0, false, 6);
/// Upper bound on identifiers, so one event cannot bloat every key it touches.
pub const MAX_ID_LEN: usize = 128;

pub fn validate(event: &Event) -> Result<(), Rejection> {
    if let Some(id) = &event.event_id {
        id_field("event_id", id)?;
    }
    match &event.body {
        EventBody::AccountOpened(e) => {
            id_field("account_id", &e.account_id)?;
            id_field("user_id", &e.user_id)?;
            if e.base_currency.len() != 3 || !e.base_currency.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(Rejection::field("base_currency", "must be an ISO 4217 code such as USD"));
            }
            Ok(())
        }
        EventBody::SecurityListed(e) => {
            id_field("symbol", &e.symbol)?;
            id_field("asset_class", &e.asset_class)?;
            id_field("sector", &e.sector)?;
            id_field("wash_group", &e.wash_group)
        }
        EventBody::CashMovement(e) => {
            id_field("account_id", &e.account_id)?;
            id_field("user_id", &e.user_id)?;
            positive("amount", e.amount)
        }
        EventBody::TradeExecuted(e) => validate_trade(e),
        EventBody::MarketTick(e) => {
            id_field("symbol", &e.symbol)?;
            positive("price", e.price)?;
            if let Some(v) = e.volume {
                non_negative("volume", v)?;
            }
            Ok(())
        }
        EventBody::TargetAllocationSet(e) => validate_targets(e),
        EventBody::RiskLimitsSet(e) => {
            id_field("account_id", &e.account_id)?;
            id_field("user_id", &e.user_id)?;
            if let Some(w) = e.max_position_weight {
                fraction("max_position_weight", w, false)?;
            }
            Ok(())
        }
        EventBody::AlertPreferencesSet(e) => {
            id_field("user_id", &e.user_id)?;
            for (i, c) in e.channels.iter().enumerate() {
                if !matches!(c.as_str(), "webhook" | "email" | "in_app") {
                    return Err(Rejection::field(
                        format!("channels[{i}]"),
                        format!("unknown channel `{c}` (expected webhook, email or in_app)"),
                    ));
                }
            }
            Ok(())
        }
        EventBody::PriceBatch(e) => {
            for (symbol, price) in &e.prices {
                id_field("prices", symbol)?;
                positive(&format!("prices.{symbol}"), price.0)?;
            }
            Ok(())
        }
    }
}

fn validate_trade(e: &TradeExecuted) -> Result<(), Rejection> {
    id_field("trade_id", &e.trade_id)?;
    id_field("account_id", &e.account_id)?;
    id_field("user_id", &e.user_id)?;
    id_field("symbol", &e.symbol)?;
    positive("quantity", e.quantity)?;
    positive("price", e.price)?;
    non_negative("fees", e.fees)?;
    match (e.lot_method, e.lot_ids.is_empty()) {
        (Some(LotMethod::Specific), true) => Err(Rejection::field("lot_ids", "required when lot_method is `specific`")),
        (Some(LotMethod::Specific), false) | (_, true) => Ok(()),
        (_, false) => Err(Rejection::field("lot_ids", "only allowed with lot_method `specific`")),
    }
}

fn validate_targets(e: &TargetAllocationSet) -> Result<(), Rejection> {
    id_field("account_id", &e.account_id)?;
    id_field("user_id", &e.user_id)?;
    if e.targets.is_empty() {
        return Err(Rejection::field("targets", "must name at least one symbol"));
    }
    let mut sum = Decimal::ZERO;
    for (symbol, weight) in &e.targets {
        id_field("targets", symbol)?;
        fraction(&format!("targets.{symbol}"), weight.0, true)?;
        sum += weight.0;
    }
    if (sum - Decimal::ONE).abs() > WEIGHT_SUM_TOLERANCE {
        return Err(Rejection::field("targets", format!("weights must sum to 1, they sum to {sum}")));
    }
    if let Some(b) = e.band_abs {
        fraction("band_abs", b, false)?;
    }
    if let Some(b) = e.band_rel {
        fraction("band_rel", b, false)?;
    }
    Ok(())
}

fn id_field(field: &str, value: &str) -> Result<(), Rejection> {
    if value.trim().is_empty() {
        return Err(Rejection::field(field, "must not be empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(Rejection::field(field, format!("longer than {MAX_ID_LEN} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(Rejection::field(field, "contains a control character"));
    }
    Ok(())
}

fn scale(field: &str, value: Decimal) -> Result<(), Rejection> {
    if value.normalize().scale() > DECIMAL_SCALE {
        return Err(Rejection::field(field, format!("has more than {DECIMAL_SCALE} decimal places")));
    }
    // Avro decimal(28, 10) leaves 18 integer digits.
    if value.abs() >= Decimal::from(1_000_000_000_000_000_000u64) {
        return Err(Rejection::field(field, "is too large (at most 18 integer digits)"));
    }
    Ok(())
}

fn positive(field: &str, value: Decimal) -> Result<(), Rejection> {
    scale(field, value)?;
    if value <= Decimal::ZERO {
        return Err(Rejection::field(field, format!("must be positive, got {value}")));
    }
    Ok(())
}

fn non_negative(field: &str, value: Decimal) -> Result<(), Rejection> {
    scale(field, value)?;
    if value < Decimal::ZERO {
        return Err(Rejection::field(field, format!("must not be negative, got {value}")));
    }
    Ok(())
}

fn fraction(field: &str, value: Decimal, zero_ok: bool) -> Result<(), Rejection> {
    scale(field, value)?;
    let low_ok = if zero_ok { value >= Decimal::ZERO } else { value > Decimal::ZERO };
    if !low_ok || value > Decimal::ONE {
        let range = if zero_ok { "[0, 1]" } else { "(0, 1]" };
        return Err(Rejection::field(field, format!("must be in {range}, got {value}")));
    }
    Ok(())
}
