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
/// Upper bound on `holder_name`, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// Upper bound on `holder_email`, in bytes: the longest address SMTP carries (RFC 5321).
pub const MAX_EMAIL_LEN: usize = 254;

pub fn validate(event: &Event) -> Result<(), Rejection> {
    if let Some(id) = &event.event_id {
        id_field("event_id", id)?;
    }
    event_time("ts", event.ts)?;
    match &event.body {
        EventBody::AccountOpened(e) => {
            id_field("account_id", &e.account_id)?;
            id_field("user_id", &e.user_id)?;
            if e.base_currency.len() != 3 || !e.base_currency.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(Rejection::field("base_currency", "must be an ISO 4217 code such as USD"));
            }
            validate_holder(e)
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
            validate_limits(e)
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
            for (symbol, ts) in &e.times {
                event_time(&format!("times.{symbol}"), *ts)?;
            }
            Ok(())
        }
    }
}

/// Times travel as RFC 3339 in JSON and in every view, so an Avro `timestamp-micros`
/// outside its years (0000 to 9999) would be an event no view could show.
fn event_time(field: &str, ts: crate::Timestamp) -> Result<(), Rejection> {
    if ts.is_rfc3339() {
        return Ok(());
    }
    Err(Rejection::field(
        field,
        format!(
            "{} microseconds since the epoch is outside years 0000 to 9999, the times RFC 3339 can write",
            ts.micros()
        ),
    ))
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

fn validate_limits(e: &RiskLimitsSet) -> Result<(), Rejection> {
    // Shares of a value, in (0, 1] like max_position_weight: a limit of 0 would fire on
    // any exposure or loss at all, one above 1 could never fire.
    let fractions = [
        ("max_position_weight", e.max_position_weight),
        ("max_sector_weight", e.max_sector_weight),
        ("max_asset_class_weight", e.max_asset_class_weight),
        ("max_var", e.max_var),
        ("max_cvar", e.max_cvar),
        ("max_drawdown", e.max_drawdown),
        ("max_daily_loss", e.max_daily_loss),
    ];
    for (field, limit) in fractions {
        if let Some(limit) = limit {
            fraction(field, limit, false)?;
        }
    }
    // Gross exposure over equity: a long-only, unlevered account is at 1 when fully
    // invested, so a limit below 1 would alert on the account's normal state.
    if let Some(limit) = e.max_gross_leverage {
        scale("max_gross_leverage", limit)?;
        if limit < Decimal::ONE {
            return Err(Rejection::field("max_gross_leverage", format!("must be at least 1, got {limit}")));
        }
    }
    Ok(())
}

/// The personal fields. A rejection never quotes the value: it is kept with the
/// dead letter, outside the engine's sealing.
fn validate_holder(e: &AccountOpened) -> Result<(), Rejection> {
    if let Some(name) = &e.holder_name {
        if name.trim().is_empty() {
            return Err(Rejection::field("holder_name", "must not be empty (leave the field out when unknown)"));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(Rejection::field("holder_name", format!("longer than {MAX_NAME_LEN} bytes")));
        }
        if name.chars().any(char::is_control) {
            return Err(Rejection::field("holder_name", "contains a control character"));
        }
    }
    if let Some(email) = &e.holder_email {
        if email.len() > MAX_EMAIL_LEN {
            return Err(Rejection::field("holder_email", format!("longer than {MAX_EMAIL_LEN} bytes")));
        }
        if let Err(reason) = email_shape(email) {
            return Err(Rejection::field(
                "holder_email",
                format!("must be an e-mail address such as ann@example.com: {reason}"),
            ));
        }
    }
    Ok(())
}

/// The shape of an address as account services store it: `local@domain`, one `@`,
/// a local part of at most 64 bytes, a domain of dot-separated labels (at least two,
/// none empty, none over 63 bytes), no spaces, control characters or the specials
/// that need quoting. Deliverability is the notifier's business, not the contract's.
fn email_shape(email: &str) -> Result<(), &'static str> {
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains a space or a control character");
    }
    if email.chars().any(|c| matches!(c, '(' | ')' | '<' | '>' | ',' | ';' | ':' | '\\' | '"' | '[' | ']')) {
        return Err("it contains a character that needs quoting");
    }
    let (local, domain) = match email.split_once('@') {
        Some((l, d)) if !d.contains('@') => (l, d),
        _ => return Err("it needs exactly one `@`"),
    };
    if local.is_empty() || local.len() > 64 {
        return Err("the part before `@` must have 1 to 64 bytes");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 || labels.iter().any(|l| l.is_empty() || l.len() > 63) {
        return Err("the domain must be dot-separated labels of 1 to 63 bytes, such as example.com");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(edit: impl FnOnce(&mut RiskLimitsSet)) -> Result<(), Rejection> {
        let mut body = RiskLimitsSet { account_id: "a-1".into(), user_id: "u-1".into(), ..Default::default() };
        edit(&mut body);
        validate(&Event { event_id: None, ts: crate::Timestamp::from_micros(0), body: EventBody::RiskLimitsSet(body) })
    }

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    #[test]
    fn fraction_limits_are_in_zero_exclusive_to_one() {
        type Setter = fn(&mut RiskLimitsSet, Option<Decimal>);
        let fields: [(&str, Setter); 7] = [
            ("max_position_weight", |e, v| e.max_position_weight = v),
            ("max_sector_weight", |e, v| e.max_sector_weight = v),
            ("max_asset_class_weight", |e, v| e.max_asset_class_weight = v),
            ("max_var", |e, v| e.max_var = v),
            ("max_cvar", |e, v| e.max_cvar = v),
            ("max_drawdown", |e, v| e.max_drawdown = v),
            ("max_daily_loss", |e, v| e.max_daily_loss = v),
        ];
        assert_eq!(limits(|_| {}), Ok(()));
        for (field, set) in fields {
            for ok in ["1", "0.5", "0.0000000001"] {
                assert_eq!(limits(|e| set(e, Some(d(ok)))), Ok(()), "{field} = {ok}");
            }
            for bad in ["0", "-0.1", "1.0000000001", "2"] {
                let err = limits(|e| set(e, Some(d(bad)))).unwrap_err();
                assert_eq!(err, Rejection::field(field, format!("must be in (0, 1], got {bad}")), "{field} = {bad}");
            }
            let err = limits(|e| set(e, Some(d("0.00000000001")))).unwrap_err();
            assert_eq!(err, Rejection::field(field, "has more than 10 decimal places"));
        }
    }

    #[test]
    fn event_times_must_have_an_rfc3339_form() {
        let tick = |micros: i64| Event {
            event_id: None,
            ts: crate::Timestamp(micros),
            body: EventBody::MarketTick(MarketTick { symbol: "AAA".into(), price: d("1"), volume: None }),
        };
        for ok in [crate::Timestamp::RFC3339_MIN.0, 0, crate::Timestamp::RFC3339_MAX.0] {
            assert_eq!(validate(&tick(ok)), Ok(()), "{ok}");
        }
        for bad in [i64::MIN, crate::Timestamp::RFC3339_MIN.0 - 1, crate::Timestamp::RFC3339_MAX.0 + 1, i64::MAX] {
            let reason = format!(
                "{bad} microseconds since the epoch is outside years 0000 to 9999, the times RFC 3339 can write"
            );
            assert_eq!(validate(&tick(bad)), Err(Rejection::field("ts", reason)), "{bad}");
        }
        let batch = PriceBatch {
            prices: [("AAA".to_string(), DecimalStr(d("1")))].into(),
            times: [("AAA".to_string(), crate::Timestamp(i64::MAX))].into(),
        };
        let err = validate(&Event { event_id: None, ts: crate::Timestamp(0), body: EventBody::PriceBatch(batch) });
        assert_eq!(err.unwrap_err().field.as_deref(), Some("times.AAA"));
    }

    fn opened(name: Option<&str>, email: Option<&str>) -> Result<(), Rejection> {
        let body = AccountOpened {
            account_id: "a-1".into(),
            user_id: "u-1".into(),
            tax_status: TaxStatus::Taxable,
            base_currency: "USD".into(),
            holder_name: name.map(str::to_string),
            holder_email: email.map(str::to_string),
        };
        validate(&Event { event_id: None, ts: crate::Timestamp::from_micros(0), body: EventBody::AccountOpened(body) })
    }

    #[test]
    fn holder_fields_are_optional_and_checked_by_name() {
        assert_eq!(opened(None, None), Ok(()));
        assert_eq!(opened(Some("Ann O'Neil-Smith"), Some("ann.oneil+tax@mail.example.co.uk")), Ok(()));
        assert_eq!(opened(Some("Zoë Ångström 王"), Some("zoë@exämple.de")), Ok(()));
        assert_eq!(opened(Some(&"n".repeat(MAX_NAME_LEN)), None), Ok(()));
        let local = "l".repeat(64);
        let email = format!("{local}@{}.{}.{}.com", "d".repeat(61), "d".repeat(61), "d".repeat(61));
        assert_eq!(email.len(), MAX_EMAIL_LEN);
        assert_eq!(opened(None, Some(&email)), Ok(()));

        for (name, reason) in [
            ("", "must not be empty (leave the field out when unknown)"),
            ("   ", "must not be empty (leave the field out when unknown)"),
            ("Ann\nSmith", "contains a control character"),
            (&"n".repeat(MAX_NAME_LEN + 1), "longer than 256 bytes"),
        ] {
            assert_eq!(opened(Some(name), None), Err(Rejection::field("holder_name", reason)), "{name:?}");
        }
        let bad_emails = [
            ("ann", "it needs exactly one `@`"),
            ("ann@b@example.com", "it needs exactly one `@`"),
            ("@example.com", "the part before `@` must have 1 to 64 bytes"),
            (&format!("{}@example.com", "l".repeat(65)), "the part before `@` must have 1 to 64 bytes"),
            ("ann@localhost", "the domain must be dot-separated labels of 1 to 63 bytes, such as example.com"),
            ("ann@example..com", "the domain must be dot-separated labels of 1 to 63 bytes, such as example.com"),
            ("ann@example.com.", "the domain must be dot-separated labels of 1 to 63 bytes, such as example.com"),
            ("ann smith@example.com", "it contains a space or a control character"),
            ("Ann <ann@example.com>", "it contains a space or a control character"),
            ("ann<x>@example.com", "it contains a character that needs quoting"),
        ];
        for (email, reason) in bad_emails {
            let expected = format!("must be an e-mail address such as ann@example.com: {reason}");
            assert_eq!(opened(None, Some(email)), Err(Rejection::field("holder_email", expected)), "{email}");
        }
        let long = format!("{}@{}.com", "l".repeat(64), "d".repeat(200));
        assert_eq!(opened(None, Some(&long)), Err(Rejection::field("holder_email", "longer than 254 bytes")));
        // The rejection names the field and never quotes the personal value.
        let err = opened(Some("Secret\u{7}Name"), None).unwrap_err();
        assert!(!err.to_string().contains("Secret"), "{err}");
    }

    #[test]
    fn gross_leverage_is_at_least_one() {
        for ok in ["1", "1.5", "10", "100000000000000000"] {
            assert_eq!(limits(|e| e.max_gross_leverage = Some(d(ok))), Ok(()), "{ok}");
        }
        for bad in ["0.99", "0", "-2"] {
            let err = limits(|e| e.max_gross_leverage = Some(d(bad))).unwrap_err();
            assert_eq!(err, Rejection::field("max_gross_leverage", format!("must be at least 1, got {bad}")));
        }
        let err = limits(|e| e.max_gross_leverage = Some(d("1000000000000000000"))).unwrap_err();
        assert_eq!(err, Rejection::field("max_gross_leverage", "is too large (at most 18 integer digits)"));
    }
}
