//! Tax lots, realized gains and wash sales: the pure core the engine calls for each
//! trade (the "projections" step of the flow, for the tax signals).
//!
//! - [`LotBook`] (one per account): each buy opens a lot (quantity, basis with fees,
//!   acquisition time, holding-period start); each sell closes lots by the trade's
//!   `lot_method` (FIFO by default, HIFO, specific identification by `lot_ids`) and
//!   returns the closed pieces with proceeds (after the sell's fees, shared pro rata),
//!   basis, gain and term; realized figures are summed per tax year and term.
//! - [`TaxBook`] (one per user, the taxpayer): the lot books of all the user's
//!   accounts, taxable and IRA, the [`WashLedger`] across them, and the realized
//!   figures of the taxable accounts with wash sales applied. See `wash.rs` for the
//!   wash-sale rules and their sources.
//! - [`Term`], [`tax_year`]: calendar rules on UTC dates of event time.
//!
//! How the shard drives it (`shard.rs`): `check` before accepting a trade, `trade`
//! when applying it, and `settle(ts)` for users with trades waiting whenever a
//! later event arrives. Wash decisions for a timestamp are taken once event time
//! has moved past it, so every trade with that timestamp is in, whatever order
//! they came in; `trade` and `settle` return the [`WashAdjustment`]s they decided,
//! each naming the loss, the replacement lot and the disallowed amount, flagged
//! `retroactive` when the replacement was bought after the sale. The shard stores
//! each one as a `wash_sales` row; a purchase that washes losses already reported
//! raises a `wash_sale_risk` alert, the correction, per seller account. `view.rs` has what
//! the API serves: lots, realized figures, wash sales and the pre-trade check.
//!
//! Choices the rules leave open, made here and tested:
//! - Ties: losses with one timestamp go in the order their shares were acquired
//!   (26 CFR 1.1091-1(b)), then by sale trade id; replacement shares with one
//!   acquisition time by trade id. Lots acquired at a sell's own timestamp are
//!   closed last, so a buy and a sell with one timestamp close the same lots in
//!   either order; two sells of one symbol in one account at one timestamp close
//!   lots in the order of the event log.
//! - Replacement shares must still be held when the match is decided; shares of the
//!   purchase being sold never replace its own loss.
//! - The holding period carried to replacement shares is counted in calendar days
//!   (`sale date - holding start date`), the unit of the long-term test.
//! - A lot whose holding period starts on February 29 turns long term on March 1
//!   of the next year (anniversary taken as February 28).
//! - Specific identification names a buy's trade id (all its open shares, wash
//!   pieces included, in lot order) or one wash piece `trade_id#n`, so settling
//!   (which splits lots) never turns an accepted trade into a rejected one.
//!
//! Exact decimals throughout (pro-rata pieces are rounded to 10 places and the last
//! piece takes the remainder); no I/O, no clock, ordered maps only, so a replay
//! rebuilds the same lots and adjustments. Corporate actions (splits, mergers,
//! spin-offs, return of capital) are out of scope: they would restate lots and are
//! not in the event contract yet. Options and contracts to acquire (which also wash
//! under 1.1091-1(a)) are not modelled: the contract only has share trades.

mod error;
mod lot;
mod lots;
mod realized;
mod shard;
mod term;
mod user;
mod view;
mod wash;

pub use error::TaxError;
pub(crate) use lot::lots_row;
pub use lot::{LossRef, Lot};
pub use lots::{allocate, Applied, Closed, LotBook, Unrealized};
pub use realized::{Figures, Realized, YearFigures};
pub(crate) use shard::Taxes;
pub use term::{date_of, tax_year, term, Term};
pub use user::{TaxAccount, TaxBook, TradeOutcome};
pub use view::{LotView, LotsView, RealizedView, Snapshot, TermView, WashSalesView, WhatIf, YearView};
pub use wash::{WashAdjustment, WashLedger, WASH_WINDOW_DAYS};

/// Trade and lot ids held in every lot and wash-ledger entry (each one its own, so not
/// interned as a [`Name`](crate::Name) is). Up to 24 bytes sit inline (most ids are that
/// short), so a million lots carry no allocation per id; longer ids are allocated as a
/// `String` would be. Serialized as a string.
pub type Id = compact_str::CompactString;

/// A sorted map keyed by [`Name`](crate::Name)s: symbols, account ids, wash groups.
pub type IdMap<V> = crate::sorted_map::SortedMap<crate::Name, V>;

/// A decimal from its text, for the unit tests of the lots.
#[cfg(test)]
fn d(s: &str) -> rust_decimal::Decimal {
    s.parse().unwrap()
}
