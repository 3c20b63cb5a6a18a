//! One lot: shares bought in one trade (or a piece split off them), what wash sales
//! changed on it, and its stored row.

use riskstream_schemas::Timestamp;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::Id;

/// The loss a lot's shares replaced in a wash sale: the sale and the lot it closed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LossRef {
    pub sale_trade_id: Id,
    pub account_id: Id,
    pub lot_id: Id,
}

/// Shares bought in one trade (or a piece of them split off as wash-sale
/// replacement shares), with their basis and holding period.
///
/// The account and the symbol are the lot book's and its key's, not the lot's: a
/// million lots would carry them twice. The stored row still names both
/// ([`lots_row`]), and reading a row ignores them. What a wash sale changes is kept
/// apart and boxed ([`LotWash`]): few lots have it, and every lot would carry its
/// room (80 bytes a lot rather than 104).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "LotRow<Id, LossRef>")]
pub struct Lot {
    /// The buy that opened the lot.
    pub trade_id: Id,
    /// 0 for the shares as bought; n for the n-th piece split off as replacement shares.
    pub piece: u32,
    /// Pieces split off so far, so piece numbers are never reused.
    pub(crate) pieces: u32,
    pub quantity: Decimal,
    /// Total basis: cost including fees plus any wash-sale adjustment.
    pub basis: Decimal,
    pub acquired: Timestamp,
    /// `None` while the holding period starts at `acquired`, nothing is disallowed
    /// and the shares replace no loss; never `Some` of those defaults, so equal lots
    /// compare equal however they were reached.
    pub(super) wash: Option<Box<LotWash>>,
}

/// What wash sales changed on a lot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LotWash {
    /// Where the holding period starts: `acquired`, moved earlier by the holding
    /// period of shares sold at a washed loss.
    pub holding_start: Timestamp,
    /// Disallowed loss added to `basis` (wash sale).
    pub wash_adjustment: Decimal,
    /// The loss these shares replaced; such shares cannot replace another loss.
    pub replaces: Option<LossRef>,
}

/// A lot's row fields in their stored order: written borrowed
/// (`LotRow<&str, &LossRef>`), read owned (`LotRow<Id, LossRef>`).
#[derive(Serialize, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>, R: Deserialize<'de>"))]
struct LotRow<T, R> {
    trade_id: T,
    piece: u32,
    quantity: Decimal,
    basis: Decimal,
    acquired: Timestamp,
    holding_start: Timestamp,
    wash_adjustment: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replaces: Option<R>,
    #[serde(default)]
    pieces: u32,
}

impl From<LotRow<Id, LossRef>> for Lot {
    fn from(f: LotRow<Id, LossRef>) -> Self {
        let mut lot = Lot::bought(f.trade_id, f.quantity, f.basis, f.acquired);
        (lot.piece, lot.pieces) = (f.piece, f.pieces);
        lot.set_wash(LotWash {
            holding_start: f.holding_start,
            wash_adjustment: f.wash_adjustment,
            replaces: f.replaces,
        });
        lot
    }
}

impl Serialize for Lot {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        LotRow::<&str, &LossRef> {
            trade_id: &self.trade_id,
            piece: self.piece,
            quantity: self.quantity,
            basis: self.basis,
            acquired: self.acquired,
            holding_start: self.holding_start(),
            wash_adjustment: self.wash_adjustment(),
            replaces: self.replaces(),
            pieces: self.pieces,
        }
        .serialize(serializer)
    }
}

/// A lot as stored: the account and the symbol first, then the lot's own fields.
#[derive(Serialize)]
struct StoredLot<'a> {
    account_id: &'a str,
    symbol: &'a str,
    #[serde(flatten)]
    lot: &'a Lot,
}

/// The stored row of an (account, symbol)'s open lots: a JSON list of the lots,
/// each naming its account and symbol.
pub(crate) fn lots_row(account_id: &str, symbol: &str, lots: &[Lot]) -> Vec<u8> {
    let rows: Vec<StoredLot> = lots.iter().map(|lot| StoredLot { account_id, symbol, lot }).collect();
    serde_json::to_vec(&rows).expect("lots always serialise")
}

impl Lot {
    /// Shares as bought: piece 0, no wash sale.
    pub fn bought(trade_id: Id, quantity: Decimal, basis: Decimal, acquired: Timestamp) -> Lot {
        Lot { trade_id, piece: 0, pieces: 0, quantity, basis, acquired, wash: None }
    }

    /// Where the holding period starts: `acquired`, moved earlier by the holding
    /// period of shares sold at a washed loss.
    pub fn holding_start(&self) -> Timestamp {
        self.wash.as_ref().map_or(self.acquired, |w| w.holding_start)
    }

    /// Disallowed loss added to `basis` (wash sale).
    pub fn wash_adjustment(&self) -> Decimal {
        self.wash.as_ref().map_or(Decimal::ZERO, |w| w.wash_adjustment)
    }

    /// The loss these shares replaced; such shares cannot replace another loss.
    pub fn replaces(&self) -> Option<&LossRef> {
        self.wash.as_ref().and_then(|w| w.replaces.as_ref())
    }

    pub(super) fn wash(&self) -> LotWash {
        self.wash.as_deref().cloned().unwrap_or(LotWash {
            holding_start: self.acquired,
            wash_adjustment: Decimal::ZERO,
            replaces: None,
        })
    }

    /// Keeps `w`, boxed only when it differs from a lot untouched by wash sales.
    pub(super) fn set_wash(&mut self, w: LotWash) {
        let untouched = w.holding_start == self.acquired && w.wash_adjustment.is_zero() && w.replaces.is_none();
        self.wash = (!untouched).then(|| Box::new(w));
    }

    /// `trade_id` for the shares as bought, `trade_id#n` for a split-off piece.
    pub fn id(&self) -> String {
        lot_id(&self.trade_id, self.piece)
    }

    /// Gain (negative: loss) if the lot were sold at `price` without fees.
    pub fn unrealized(&self, price: Decimal) -> Decimal {
        self.quantity * price - self.basis
    }

    pub(super) fn key(&self) -> (Timestamp, &str, u32) {
        (self.acquired, &self.trade_id, self.piece)
    }

    pub(super) fn per_share(&self) -> Decimal {
        self.basis / self.quantity
    }
}

pub(crate) fn lot_id(trade_id: &str, piece: u32) -> String {
    if piece == 0 {
        trade_id.to_string()
    } else {
        format!("{trade_id}#{piece}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tax::d;

    #[test]
    fn a_lot_row_keeps_its_fields_and_order_and_reads_back_equal() {
        assert_eq!(std::mem::size_of::<Lot>(), 80);
        let plain = Lot::bought("b1".into(), d("10"), d("1000.5"), Timestamp(5));
        let row = serde_json::to_string(&plain).unwrap();
        assert_eq!(
            row,
            concat!(
                r#"{"trade_id":"b1","piece":0,"quantity":"10","basis":"1000.5","acquired":"1970-01-01T00:00:00.000005Z","#,
                r#""holding_start":"1970-01-01T00:00:00.000005Z","wash_adjustment":"0","pieces":0}"#
            )
        );
        let read: Lot = serde_json::from_str(&row).unwrap();
        assert_eq!((read.wash.is_none(), &read), (true, &plain));

        let mut washed = plain.clone();
        let replaces = LossRef { sale_trade_id: "s1".into(), account_id: "a".into(), lot_id: "b0".into() };
        washed.set_wash(LotWash { holding_start: Timestamp(2), wash_adjustment: d("80"), replaces: Some(replaces) });
        let row = serde_json::to_string(&washed).unwrap();
        assert!(row.contains(r#""holding_start":"1970-01-01T00:00:00.000002Z","wash_adjustment":"80","replaces":{"sale_trade_id":"s1""#), "{row}");
        let read: Lot = serde_json::from_str(&row).unwrap();
        assert_eq!((read.holding_start(), read.wash_adjustment(), read), (Timestamp(2), d("80"), washed));

        // Back to the defaults: no box, so it equals a lot never washed.
        let mut undone = plain.clone();
        undone.set_wash(LotWash { holding_start: Timestamp(5), wash_adjustment: Decimal::ZERO, replaces: None });
        assert_eq!((undone.wash.is_none(), undone), (true, plain));
    }
}
