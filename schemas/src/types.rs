//! The Rust form of event contract v1 (DESIGN.md). JSON field names equal the Avro field names.

use std::collections::BTreeMap;
use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// One input event: the envelope (`event_id`, `ts`) plus its typed body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Idempotency key: an event whose id was already applied is a no-op.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Event time (RFC 3339 UTC); every rule runs on it, never on the wall clock.
    pub ts: Timestamp,
    #[serde(flatten)]
    pub body: EventBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventBody {
    AccountOpened(AccountOpened),
    SecurityListed(SecurityListed),
    CashMovement(CashMovement),
    TradeExecuted(TradeExecuted),
    MarketTick(MarketTick),
    TargetAllocationSet(TargetAllocationSet),
    RiskLimitsSet(RiskLimitsSet),
    AlertPreferencesSet(AlertPreferencesSet),
    /// Internal: ticks conflated per shard (last price per symbol since the previous batch).
    PriceBatch(PriceBatch),
}

/// The names of every event type, in contract order.
pub const EVENT_TYPES: [&str; 9] = [
    "AccountOpened",
    "SecurityListed",
    "CashMovement",
    "TradeExecuted",
    "MarketTick",
    "TargetAllocationSet",
    "RiskLimitsSet",
    "AlertPreferencesSet",
    "PriceBatch",
];

impl EventBody {
    pub fn type_name(&self) -> &'static str {
        match self {
            EventBody::AccountOpened(_) => "AccountOpened",
            EventBody::SecurityListed(_) => "SecurityListed",
            EventBody::CashMovement(_) => "CashMovement",
            EventBody::TradeExecuted(_) => "TradeExecuted",
            EventBody::MarketTick(_) => "MarketTick",
            EventBody::TargetAllocationSet(_) => "TargetAllocationSet",
            EventBody::RiskLimitsSet(_) => "RiskLimitsSet",
            EventBody::AlertPreferencesSet(_) => "AlertPreferencesSet",
            EventBody::PriceBatch(_) => "PriceBatch",
        }
    }

    /// Strips trailing zeros from every decimal, so an event applied live and the
    /// same event read back from the log (Avro keeps no scale) are byte-identical.
    pub fn normalize(&mut self) {
        fn n(d: &mut Decimal) {
            *d = d.normalize();
        }
        fn on(d: &mut Option<Decimal>) {
            if let Some(d) = d {
                n(d);
            }
        }
        match self {
            EventBody::CashMovement(e) => n(&mut e.amount),
            EventBody::TradeExecuted(e) => {
                n(&mut e.quantity);
                n(&mut e.price);
                n(&mut e.fees);
            }
            EventBody::MarketTick(e) => {
                n(&mut e.price);
                on(&mut e.volume);
            }
            EventBody::TargetAllocationSet(e) => {
                e.targets.values_mut().for_each(|w| n(&mut w.0));
                on(&mut e.band_abs);
                on(&mut e.band_rel);
            }
            EventBody::RiskLimitsSet(e) => {
                on(&mut e.max_position_weight);
                on(&mut e.max_sector_weight);
                on(&mut e.max_asset_class_weight);
                on(&mut e.max_var);
                on(&mut e.max_cvar);
                on(&mut e.max_drawdown);
                on(&mut e.max_daily_loss);
                on(&mut e.max_gross_leverage);
            }
            EventBody::PriceBatch(e) => e.prices.values_mut().for_each(|p| n(&mut p.0)),
            EventBody::AccountOpened(_) | EventBody::SecurityListed(_) | EventBody::AlertPreferencesSet(_) => {}
        }
    }

    /// The personal fields this event carries (set or not), by name: what the engine
    /// seals before the record is made and opens for `GET /v1/events/{shard}/{seq}`.
    /// Every field of [`PERSONAL_FIELDS`], and only those.
    pub fn personal_fields_mut(&mut self) -> Vec<(&'static str, &mut Option<String>)> {
        match self {
            EventBody::AccountOpened(e) => {
                vec![("holder_name", &mut e.holder_name), ("holder_email", &mut e.holder_email)]
            }
            _ => Vec::new(),
        }
    }

    /// The partition key of account-scoped events; `None` for broadcast events
    /// (securities, ticks), which every shard receives.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            EventBody::AccountOpened(e) => Some(&e.user_id),
            EventBody::CashMovement(e) => Some(&e.user_id),
            EventBody::TradeExecuted(e) => Some(&e.user_id),
            EventBody::TargetAllocationSet(e) => Some(&e.user_id),
            EventBody::RiskLimitsSet(e) => Some(&e.user_id),
            EventBody::AlertPreferencesSet(e) => Some(&e.user_id),
            EventBody::SecurityListed(_) | EventBody::MarketTick(_) | EventBody::PriceBatch(_) => None,
        }
    }

    pub fn account_id(&self) -> Option<&str> {
        match self {
            EventBody::AccountOpened(e) => Some(&e.account_id),
            EventBody::CashMovement(e) => Some(&e.account_id),
            EventBody::TradeExecuted(e) => Some(&e.account_id),
            EventBody::TargetAllocationSet(e) => Some(&e.account_id),
            EventBody::RiskLimitsSet(e) => Some(&e.account_id),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaxStatus {
    Taxable,
    TraditionalIra,
    RothIra,
}

/// An account was opened. v2 of the record (contract v4) appended the optional
/// personal fields; v1 data reads with them unset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountOpened {
    pub account_id: String,
    pub user_id: String,
    pub tax_status: TaxStatus,
    pub base_currency: String,
    /// Personal data: the account holder's name. Producers send it in clear; the
    /// engine seals it (`enc:v1:...`) under the user's key before the record is made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_name: Option<String>,
    /// Personal data: the account holder's e-mail address, sealed like `holder_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_email: Option<String>,
}

/// The fields of the contract that carry personal data (docs/EVENTS.md, "Personal
/// data"): `(event type, field)`. Identifiers (`user_id`, `account_id`) are
/// pseudonymous and not listed: they key the log and the state.
pub const PERSONAL_FIELDS: [(&str, &str); 2] = [("AccountOpened", "holder_name"), ("AccountOpened", "holder_email")];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityListed {
    pub symbol: String,
    pub asset_class: String,
    pub sector: String,
    /// Symbols of one group are substantially identical (wash-sale rules).
    pub wash_group: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CashKind {
    Deposit,
    Withdrawal,
    Dividend,
    Interest,
    Fee,
}

impl CashKind {
    /// Whether the movement adds to (true) or takes from (false) the cash balance.
    pub fn is_inflow(self) -> bool {
        matches!(self, CashKind::Deposit | CashKind::Dividend | CashKind::Interest)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CashMovement {
    pub account_id: String,
    pub user_id: String,
    pub kind: CashKind,
    /// Always positive; `kind` gives the direction.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Buy,
    Sell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LotMethod {
    Fifo,
    Hifo,
    Specific,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TradeExecuted {
    pub trade_id: String,
    pub account_id: String,
    pub user_id: String,
    pub symbol: String,
    pub side: Side,
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub price: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub fees: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot_method: Option<LotMethod>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lot_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketTick {
    pub symbol: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub price: Decimal,
    #[serde(default, with = "rust_decimal::serde::str_option", skip_serializing_if = "Option::is_none")]
    pub volume: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetAllocationSet {
    pub account_id: String,
    pub user_id: String,
    /// Symbol (or `CASH`) -> target weight; weights sum to 1.
    pub targets: BTreeMap<String, DecimalStr>,
    /// Absolute band in weight units (0.05 = 5 percentage points); default 0.05.
    #[serde(default, with = "rust_decimal::serde::str_option", skip_serializing_if = "Option::is_none")]
    pub band_abs: Option<Decimal>,
    /// Band relative to the target weight (0.25 = 25%); default 0.25.
    #[serde(default, with = "rust_decimal::serde::str_option", skip_serializing_if = "Option::is_none")]
    pub band_rel: Option<Decimal>,
}

/// Risk limits of an account. v2 of the contract: every limit after
/// `max_position_weight` was added as an optional field (schema evolution), so v1
/// data reads with them unset. Unset limits take the engine's defaults (none for
/// the risk limits). Fractions are of the account's market value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskLimitsSet {
    pub account_id: String,
    pub user_id: String,
    /// Largest allowed weight of one position (concentration rule); default 0.25.
    #[serde(default, with = "rust_decimal::serde::str_option", skip_serializing_if = "Option::is_none")]
    pub max_position_weight: Option<Decimal>,
    /// Largest allowed weight of one sector (`sector_concentration`).
    #[serde(default, with = "rust_decimal::serde::str_option", skip_serializing_if = "Option::is_none")]
    pub max_sector_weight: Option<Decimal>,
    /// Largest allowed weight of one asset class (`asset_class_concentration`).
    #[serde(default, with = "rust_decimal::serde::str_option", skip_serializing_if = "Option::is_none")]
    pub max_asset_class_weight: Option<Decimal>,
    /// Largest one-bar parametric normal VaR (at the engine's limit confidence), as a
    /// fraction of market value (`var_breach`).
    #[serde(default, with = "rust_decimal::serde::str_option", skip_serializing_if = "Option::is_none")]
    pub max_var: Option<Decimal>,
    /// Largest parametric expected shortfall, as a fraction of market value (`cvar_breach`).
    #[serde(default, with = "rust_decimal::serde::str_option", skip_serializing_if = "Option::is_none")]
    pub max_cvar: Option<Decimal>,
    /// Largest fall from the high-water mark, as a fraction of it (`drawdown`).
    #[serde(default, with = "rust_decimal::serde::str_option", skip_serializing_if = "Option::is_none")]
    pub max_drawdown: Option<Decimal>,
    /// Largest loss since the start of the event-time day, as a fraction of the
    /// start-of-day value (`daily_loss`, the circuit breaker).
    #[serde(default, with = "rust_decimal::serde::str_option", skip_serializing_if = "Option::is_none")]
    pub max_daily_loss: Option<Decimal>,
    /// Largest gross exposure over equity (`leverage`); 1 is fully invested, no margin.
    #[serde(default, with = "rust_decimal::serde::str_option", skip_serializing_if = "Option::is_none")]
    pub max_gross_leverage: Option<Decimal>,
}

/// v1 body; the notifier issue grows it by schema evolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertPreferencesSet {
    pub user_id: String,
    /// Channels to deliver on: `webhook`, `email`, `in_app`.
    #[serde(default)]
    pub channels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceBatch {
    pub prices: BTreeMap<String, DecimalStr>,
    /// Event time of each symbol's last tick (the batch `ts` is the latest of them),
    /// so a symbol's price time does not depend on how ticks were batched.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub times: BTreeMap<String, Timestamp>,
}

impl PriceBatch {
    /// The conflated prices of a run of ticks: each symbol's last (price, tick time).
    pub fn from_last(last: impl IntoIterator<Item = (String, (Decimal, Timestamp))>) -> PriceBatch {
        let mut batch = PriceBatch { prices: BTreeMap::new(), times: BTreeMap::new() };
        for (symbol, (price, ts)) in last {
            batch.prices.insert(symbol.clone(), DecimalStr(price));
            batch.times.insert(symbol, ts);
        }
        batch
    }
}

/// A decimal that travels as a string in JSON (used inside maps, where a
/// field-level `with` cannot reach).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DecimalStr(#[serde(with = "rust_decimal::serde::str")] pub Decimal);

impl From<Decimal> for DecimalStr {
    fn from(d: Decimal) -> Self {
        DecimalStr(d)
    }
}

impl fmt::Display for DecimalStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    Drift,
    Concentration,
    MarketMove,
    VarBreach,
    CvarBreach,
    Drawdown,
    DailyLoss,
    Leverage,
    SectorConcentration,
    AssetClassConcentration,
    VolatilitySpike,
    VarBacktest,
    TaxLossHarvest,
    WashSaleRisk,
}

impl AlertKind {
    /// Every kind, in contract order (the Avro enum's symbols).
    pub const ALL: [AlertKind; 14] = [
        AlertKind::Drift,
        AlertKind::Concentration,
        AlertKind::MarketMove,
        AlertKind::VarBreach,
        AlertKind::CvarBreach,
        AlertKind::Drawdown,
        AlertKind::DailyLoss,
        AlertKind::Leverage,
        AlertKind::SectorConcentration,
        AlertKind::AssetClassConcentration,
        AlertKind::VolatilitySpike,
        AlertKind::VarBacktest,
        AlertKind::TaxLossHarvest,
        AlertKind::WashSaleRisk,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Drift => "drift",
            AlertKind::Concentration => "concentration",
            AlertKind::MarketMove => "market_move",
            AlertKind::VarBreach => "var_breach",
            AlertKind::CvarBreach => "cvar_breach",
            AlertKind::Drawdown => "drawdown",
            AlertKind::DailyLoss => "daily_loss",
            AlertKind::Leverage => "leverage",
            AlertKind::SectorConcentration => "sector_concentration",
            AlertKind::AssetClassConcentration => "asset_class_concentration",
            AlertKind::VolatilitySpike => "volatility_spike",
            AlertKind::VarBacktest => "var_backtest",
            AlertKind::TaxLossHarvest => "tax_loss_harvest",
            AlertKind::WashSaleRisk => "wash_sale_risk",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Raised,
    Cleared,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    Medium,
    High,
    Critical,
}

/// Where a record sits in the event store: the alert's cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordRef {
    pub shard: u32,
    pub seq: u64,
}

/// The output event (topic `riskstream.alerts`, the API, the local alert log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    pub alert_id: String,
    pub kind: AlertKind,
    pub state: AlertState,
    pub priority: Priority,
    pub account_id: String,
    pub user_id: String,
    pub ts: Timestamp,
    pub caused_by: RecordRef,
    pub rule: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub value: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub threshold: Decimal,
    pub message: String,
    /// What the rule saw, as a JSON object (v3): the candidate lots of a harvest, the
    /// sale and replacement of a wash sale. Absent for the kinds that say it all in
    /// `value`, `threshold` and `message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}
