//! Tax lots and realized gains: the pure core the engine calls for each trade.
//!
//! - [`LotBook`] (one per account): each buy opens a lot, each sell closes lots by
//!   the trade's `lot_method` and returns the closed pieces; realized figures are
//!   summed per tax year and term.
//! - [`Term`], [`tax_year`]: the calendar rules, on UTC dates of event time.
//!
//! Exact decimals throughout; no I/O, no clock, ordered maps only, so a replay
//! rebuilds the same lots. Corporate actions (splits, mergers, spin-offs, return of
//! capital) are out of scope: they would restate lots and are not in the contract.

mod error;
mod lots;
mod realized;
mod term;

pub use error::TaxError;
pub use lots::{allocate, Applied, Closed, Lot, LotBook, LossRef, Unrealized};
pub use realized::{Figures, Realized, YearFigures};
pub use term::{date_of, tax_year, term, Term};
