//! The pure portfolio domain: the per-shard state (accounts, positions, cash,
//! targets, prices), how each event changes it, valuation and drift, and the alert
//! rules. This crate owns the "projections -> signals -> alert rules" steps of the
//! flow. It does no I/O, reads no clock and draws no random numbers, so replaying
//! the same records always yields the same state and the same alerts.
//!
//! Money (values, cash, P&L, drawdown) is exact decimal; risk numbers from the
//! covariance model (volatility, VaR, CVaR) are `f64` and say how they were computed.

mod apply;
mod committed;
mod config;
mod facts;
mod name;
pub mod risk;
mod rules;
mod short_list;
mod sorted_map;
mod state;
pub mod tax;
mod valuation;

pub use crate::committed::FactSource;
pub use crate::config::{RiskConfig, RuleConfig, TaxConfig};
pub use crate::facts::{Change, Table};
pub use crate::name::Name;
pub use crate::rules::{alert_id, BlockedLot, HarvestLot, HarvestView, UNIVERSE};
pub use crate::sorted_map::SortedMap;
pub use crate::state::{
    Account, AccountLimits, Limits, Position, Positions, PriceInfo, Security, ShardState, SignalState, Targets,
};
pub use crate::tax::IdMap;
pub use crate::valuation::{AccountView, DriftLine, PositionView, CASH};

use rust_decimal::Decimal;

/// `mantissa * 10^-scale`, for constants.
pub const fn dec(mantissa: i64, scale: u32) -> Decimal {
    let neg = mantissa < 0;
    let m = mantissa.unsigned_abs();
    Decimal::from_parts(m as u32, (m >> 32) as u32, 0, neg, scale)
}
