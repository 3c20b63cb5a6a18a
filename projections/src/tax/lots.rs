//! One account's tax lots. Each buy opens a lot; each sell closes lots by the
//! trade's method (FIFO by default, HIFO, or specific identification) and returns
//! the closed pieces with their proceeds, basis, gain and term.
//!
//! Money stays exact: a buy's basis is `quantity x price + fees`; when part of a lot
//! is closed or split off, its share of the basis (and of a sell's fees) is
//! `total x part / whole` rounded to the contract's 10 decimal places, and the
//! remainder stays with the rest (the last piece of a sell takes the rest of the
//! fees), so the pieces always add up to the whole.
//!
//! Lots acquired at or after the sell's own event time are taken last by FIFO and
//! HIFO. A sell cannot have closed a buy that is delivered after it, so this makes
//! a sell close the same lots whatever the delivery order of a buy and a sell with
//! equal timestamps (two sells of one symbol in one account at one timestamp still
//! close lots in delivery order: the event log fixes it).

use riskstream_schemas::{LotMethod, Side, Timestamp, TradeExecuted, DECIMAL_SCALE};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::error::TaxError;
use super::lot::{LossRef, Lot};
use super::realized::Realized;
use super::term::{days_before, tax_year, term, Term};
use super::IdMap;
use crate::short_list::ShortList;
use crate::Name;

/// `total x part / whole`, exact when `part == whole`, else rounded to the contract's
/// scale; callers keep the remainder so the pieces add up.
pub(crate) fn pro_rata(total: Decimal, part: Decimal, whole: Decimal) -> Decimal {
    if part == whole || whole.is_zero() {
        total
    } else {
        (total * part / whole).round_dp(DECIMAL_SCALE)
    }
}

/// Shares `amount` over `parts` pro rata; the pieces sum exactly to `amount`.
pub fn allocate(amount: Decimal, parts: &[Decimal]) -> Vec<Decimal> {
    let whole: Decimal = parts.iter().sum();
    let mut left = amount;
    let mut out = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let piece = if i + 1 == parts.len() { left } else { pro_rata(amount, *part, whole) };
        left -= piece;
        out.push(piece);
    }
    out
}

/// A piece of a lot closed by a sell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closed {
    pub sale_trade_id: String,
    pub account_id: String,
    pub symbol: String,
    pub lot_id: String,
    /// The buy that opened the lot.
    pub lot_trade_id: String,
    pub quantity: Decimal,
    /// The closed shares' part of the lot's basis (wash adjustment included).
    pub basis: Decimal,
    /// `quantity x price - fees`.
    pub proceeds: Decimal,
    /// The sell's fees allocated to this piece.
    pub fees: Decimal,
    /// `proceeds - basis`, before any wash sale.
    pub gain: Decimal,
    /// The closed shares' part of the lot's wash adjustment.
    pub wash_adjustment: Decimal,
    pub term: Term,
    pub acquired: Timestamp,
    pub holding_start: Timestamp,
    pub sold: Timestamp,
}

impl Closed {
    pub fn tax_year(&self) -> i32 {
        tax_year(self.sold)
    }
}

/// An open lot valued at a price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unrealized {
    pub lot_id: String,
    pub quantity: Decimal,
    pub basis: Decimal,
    pub value: Decimal,
    pub gain: Decimal,
    /// The term if the lot were sold at the valuation time.
    pub term: Term,
}

/// Replacement shares taken from a lot for a washed loss; `adjust` is `None` when
/// the shares are in an IRA (the loss is lost, the lot is not changed).
pub(crate) struct Replacement<'a> {
    pub symbol: &'a str,
    pub acquired: Timestamp,
    pub trade_id: &'a str,
    pub quantity: Decimal,
    pub replaces: LossRef,
    /// (disallowed loss added to basis, holding period carried in days).
    pub adjust: Option<(Decimal, i64)>,
}

/// The open lots and realized figures of one account. Lots of a symbol are kept in
/// acquisition order (then trade id, then piece).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotBook {
    account_id: Name,
    lots: IdMap<ShortList<Lot>>,
    realized: Realized,
}

impl LotBook {
    pub fn new(account_id: impl Into<Name>) -> Self {
        LotBook { account_id: account_id.into(), ..LotBook::default() }
    }

    pub fn account_id(&self) -> &str {
        self.account_id.as_str()
    }

    pub(crate) fn shrink_to_fit(&mut self) {
        self.lots.shrink_to_fit();
    }

    /// Open lots of a symbol in acquisition order.
    pub fn lots(&self, symbol: &str) -> &[Lot] {
        self.lots.get(symbol).map_or(&[], |lots| lots)
    }

    /// Every open lot, by symbol then acquisition.
    pub fn open_lots(&self) -> impl Iterator<Item = &Lot> {
        self.lots.values().flat_map(|lots| lots.iter())
    }

    /// Every open lot with its symbol, by symbol then acquisition.
    pub fn open_lots_by_symbol(&self) -> impl Iterator<Item = (&str, &Lot)> {
        self.lots.iter().flat_map(|(s, lots)| lots.iter().map(move |l| (s.as_str(), l)))
    }

    /// The symbols with open lots, in order.
    pub fn symbols(&self) -> impl Iterator<Item = &str> {
        self.lots.keys().map(|s| s.as_str())
    }

    /// Replaces a symbol's open lots (loading stored rows); they are kept sorted.
    pub(crate) fn set_lots(&mut self, symbol: &str, mut lots: Vec<Lot>) {
        lots.sort_by(|a, b| a.key().cmp(&b.key()));
        if lots.is_empty() {
            self.lots.remove(symbol);
        } else {
            self.lots.insert(symbol, ShortList::from(lots));
        }
    }

    /// Shares held in open lots.
    pub fn quantity(&self, symbol: &str) -> Decimal {
        self.lots(symbol).iter().map(|l| l.quantity).sum()
    }

    pub fn realized(&self) -> &Realized {
        &self.realized
    }

    pub(crate) fn realized_mut(&mut self) -> &mut Realized {
        &mut self.realized
    }

    /// The open lots of a symbol valued at `price`, with their term if sold at `at`.
    pub fn unrealized(&self, symbol: &str, price: Decimal, at: Timestamp) -> Vec<Unrealized> {
        let value = |l: &Lot| Unrealized {
            lot_id: l.id(),
            quantity: l.quantity,
            basis: l.basis,
            value: l.quantity * price,
            gain: l.unrealized(price),
            term: term(l.holding_start(), at),
        };
        self.lots(symbol).iter().map(value).collect()
    }

    /// Whether `apply` would accept the trade; nothing changes.
    pub fn check(&self, trade: &TradeExecuted) -> Result<(), TaxError> {
        check_fields(trade)?;
        match trade.side {
            Side::Buy if self.lots(&trade.symbol).iter().any(|l| l.trade_id == trade.trade_id) => {
                Err(TaxError::DuplicateLot {
                    trade_id: trade.trade_id.clone(),
                    account_id: self.account_id.to_string(),
                })
            }
            Side::Buy => Ok(()),
            Side::Sell => self.plan(trade, Timestamp(i64::MAX)).map(drop),
        }
    }

    /// Opens a lot for a buy at event time `ts`; returns its id.
    pub fn buy(&mut self, trade: &TradeExecuted, ts: Timestamp) -> Result<String, TaxError> {
        debug_assert_eq!(trade.side, Side::Buy);
        self.check(trade)?;
        Ok(self.open(trade, ts))
    }

    /// [`LotBook::buy`] of a buy `check` accepted.
    fn open(&mut self, trade: &TradeExecuted, ts: Timestamp) -> String {
        let lot =
            Lot::bought(trade.trade_id.as_str().into(), trade.quantity, trade.quantity * trade.price + trade.fees, ts);
        let id = lot.id();
        self.insert(&trade.symbol, lot);
        id
    }

    /// Closes lots for a sell at event time `ts` and books the realized figures.
    pub fn sell(&mut self, trade: &TradeExecuted, ts: Timestamp) -> Result<Vec<Closed>, TaxError> {
        debug_assert_eq!(trade.side, Side::Sell);
        check_fields(trade)?;
        let plan = self.plan(trade, ts)?;
        let quantities: Vec<Decimal> = plan.iter().map(|(_, q)| *q).collect();
        let fees = allocate(trade.fees, &quantities);
        let lots = self.lots.get_mut(trade.symbol.as_str()).expect("a plan needs lots");
        let account_id = &self.account_id;
        let closed: Vec<Closed> =
            plan.iter().zip(fees).map(|(&(i, q), fee)| close(account_id, &mut lots[i], q, fee, trade, ts)).collect();
        lots.retain(|l| !l.quantity.is_zero());
        if lots.is_empty() {
            self.lots.remove(trade.symbol.as_str());
        }
        closed.iter().for_each(|c| self.realized.book(c));
        Ok(closed)
    }

    /// Buys open a lot, sells close lots: the lot id opened or the pieces closed.
    pub fn apply(&mut self, trade: &TradeExecuted, ts: Timestamp) -> Result<Applied, TaxError> {
        match trade.side {
            Side::Buy => self.buy(trade, ts).map(Applied::Opened),
            Side::Sell => self.sell(trade, ts).map(Applied::Closed),
        }
    }

    /// [`LotBook::apply`] of a trade `check` accepted: a buy is not checked again
    /// (a sell plans its lots, which it needs anyway).
    pub(crate) fn apply_checked(&mut self, trade: &TradeExecuted, ts: Timestamp) -> Result<Applied, TaxError> {
        match trade.side {
            Side::Buy => Ok(Applied::Opened(self.open(trade, ts))),
            Side::Sell => self.sell(trade, ts).map(Applied::Closed),
        }
    }

    /// Which lots a sell closes and how much of each: (index, quantity).
    fn plan(&self, trade: &TradeExecuted, ts: Timestamp) -> Result<Vec<(usize, Decimal)>, TaxError> {
        let lots = self.lots(&trade.symbol);
        match trade.lot_method.unwrap_or(LotMethod::Fifo) {
            LotMethod::Fifo => self.take(trade, lots, fifo_order(lots, ts)),
            LotMethod::Hifo => self.take(trade, lots, hifo_order(lots, ts)),
            LotMethod::Specific => {
                let order = self.named_order(trade, lots)?;
                take_in_order(lots, &order, trade.quantity).ok_or_else(|| TaxError::NamedLotsTooSmall {
                    trade_id: trade.trade_id.clone(),
                    symbol: trade.symbol.clone(),
                    quantity: trade.quantity,
                    held: order.iter().map(|&i| lots[i].quantity).sum(),
                    lot_ids: trade.lot_ids.iter().map(|id| format!("`{id}`")).collect::<Vec<_>>().join(", "),
                })
            }
        }
    }

    fn take(&self, trade: &TradeExecuted, lots: &[Lot], order: Vec<usize>) -> Result<Vec<(usize, Decimal)>, TaxError> {
        take_in_order(lots, &order, trade.quantity).ok_or_else(|| TaxError::InsufficientLots {
            trade_id: trade.trade_id.clone(),
            account_id: self.account_id.to_string(),
            symbol: trade.symbol.clone(),
            quantity: trade.quantity,
            held: lots.iter().map(|l| l.quantity).sum(),
        })
    }

    /// The lots named by `lot_ids`, in the order named. A name is a buy's trade id
    /// (all of that buy's open shares, split-off pieces included, in lot order) or
    /// one piece's id `trade_id#n`.
    fn named_order(&self, trade: &TradeExecuted, lots: &[Lot]) -> Result<Vec<usize>, TaxError> {
        let mut order = Vec::new();
        for name in &trade.lot_ids {
            let named = resolve(lots, name);
            if named.is_empty() {
                return Err(TaxError::UnknownLot {
                    trade_id: trade.trade_id.clone(),
                    account_id: self.account_id.to_string(),
                    symbol: trade.symbol.clone(),
                    lot_id: name.clone(),
                });
            }
            if named.iter().any(|i| order.contains(i)) {
                return Err(TaxError::LotNamedTwice { trade_id: trade.trade_id.clone(), lot_id: name.clone() });
            }
            order.extend(named);
        }
        Ok(order)
    }

    fn insert(&mut self, symbol: &str, lot: Lot) {
        let lots = self.lots.get_or_insert_with(symbol, ShortList::default);
        let at = lots.partition_point(|l| l.key() < lot.key());
        lots.insert(at, lot);
    }

    fn position(&self, symbol: &str, acquired: Timestamp, trade_id: &str) -> Option<usize> {
        self.lots(symbol).binary_search_by(|l| l.key().cmp(&(acquired, trade_id, 0))).ok()
    }

    /// Shares of a buy (its unsplit piece 0) that can still replace a loss.
    pub(crate) fn replaceable(&self, symbol: &str, acquired: Timestamp, trade_id: &str) -> Decimal {
        let lot = self.position(symbol, acquired, trade_id).map(|i| &self.lots(symbol)[i]);
        lot.filter(|l| l.replaces().is_none()).map_or(Decimal::ZERO, |l| l.quantity)
    }

    /// Marks replacement shares (splitting them off the buy's lot when only part of
    /// it replaces the loss) and applies the wash adjustment; returns their lot id.
    pub(crate) fn replace(&mut self, r: Replacement<'_>) -> String {
        let i = self.position(r.symbol, r.acquired, r.trade_id).expect("replaceable lots exist");
        let lots = self.lots.get_mut(r.symbol).expect("replaceable lots exist");
        let base = &mut lots[i];
        debug_assert!(base.replaces().is_none() && r.quantity <= base.quantity);
        let mut lot = if r.quantity == base.quantity {
            lots.remove(i)
        } else {
            base.pieces += 1;
            let basis = pro_rata(base.basis, r.quantity, base.quantity);
            base.quantity -= r.quantity;
            base.basis -= basis;
            Lot { piece: base.pieces, quantity: r.quantity, basis, pieces: 0, ..base.clone() }
        };
        let mut wash = lot.wash();
        if let Some((disallowed, days)) = r.adjust {
            lot.basis += disallowed;
            wash.wash_adjustment += disallowed;
            wash.holding_start = days_before(wash.holding_start, days);
        }
        wash.replaces = Some(r.replaces);
        lot.set_wash(wash);
        let id = lot.id();
        self.insert(r.symbol, lot);
        id
    }
}

/// What a trade did to the lots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Opened(String),
    Closed(Vec<Closed>),
}

fn check_fields(trade: &TradeExecuted) -> Result<(), TaxError> {
    let trade_id = || trade.trade_id.clone();
    for (field, value) in [("quantity", trade.quantity), ("price", trade.price)] {
        if value <= Decimal::ZERO {
            return Err(TaxError::NotPositive { trade_id: trade_id(), field, value });
        }
    }
    if trade.fees.is_sign_negative() && !trade.fees.is_zero() {
        return Err(TaxError::NegativeFees { trade_id: trade_id(), value: trade.fees });
    }
    match (trade.side, trade.lot_method, trade.lot_ids.is_empty()) {
        (Side::Sell, Some(LotMethod::Specific), true) => Err(TaxError::MissingLotIds { trade_id: trade_id() }),
        (_, Some(LotMethod::Specific), false) | (_, _, true) => Ok(()),
        (_, _, false) => Err(TaxError::UnexpectedLotIds { trade_id: trade_id() }),
    }
}

/// Lots acquired at or after the sell's time go last (see the module doc).
fn late(lot: &Lot, ts: Timestamp) -> bool {
    lot.acquired >= ts
}

fn fifo_order(lots: &[Lot], ts: Timestamp) -> Vec<usize> {
    let mut order: Vec<usize> = (0..lots.len()).collect();
    order.sort_by_key(|&i| late(&lots[i], ts));
    order
}

/// Highest cost per share first; equal costs in acquisition order.
fn hifo_order(lots: &[Lot], ts: Timestamp) -> Vec<usize> {
    let mut order: Vec<usize> = (0..lots.len()).collect();
    order.sort_by(|&a, &b| {
        let (la, lb) = (&lots[a], &lots[b]);
        late(la, ts).cmp(&late(lb, ts)).then_with(|| lb.per_share().cmp(&la.per_share())).then(a.cmp(&b))
    });
    order
}

fn resolve(lots: &[Lot], name: &str) -> Vec<usize> {
    let family: Vec<usize> = (0..lots.len()).filter(|&i| lots[i].trade_id == name).collect();
    if !family.is_empty() {
        return family;
    }
    let piece = name.rsplit_once('#').and_then(|(t, n)| Some((t, n.parse::<u32>().ok()?)));
    let found = piece.and_then(|(t, n)| lots.iter().position(|l| l.trade_id == t && l.piece == n && n > 0));
    found.into_iter().collect()
}

/// Takes `quantity` from the lots in `order`; `None` when they hold too little.
fn take_in_order(lots: &[Lot], order: &[usize], quantity: Decimal) -> Option<Vec<(usize, Decimal)>> {
    let mut left = quantity;
    let mut plan = Vec::new();
    for &i in order {
        if left.is_zero() {
            break;
        }
        let q = left.min(lots[i].quantity);
        plan.push((i, q));
        left -= q;
    }
    left.is_zero().then_some(plan)
}

fn close(
    account_id: &str,
    lot: &mut Lot,
    quantity: Decimal,
    fees: Decimal,
    trade: &TradeExecuted,
    ts: Timestamp,
) -> Closed {
    let basis = pro_rata(lot.basis, quantity, lot.quantity);
    let mut left = lot.wash();
    let wash = pro_rata(left.wash_adjustment, quantity, lot.quantity);
    lot.quantity -= quantity;
    lot.basis -= basis;
    left.wash_adjustment -= wash;
    lot.set_wash(left);
    let proceeds = quantity * trade.price - fees;
    Closed {
        sale_trade_id: trade.trade_id.clone(),
        account_id: account_id.to_string(),
        symbol: trade.symbol.clone(),
        lot_id: lot.id(),
        lot_trade_id: lot.trade_id.to_string(),
        quantity,
        basis,
        proceeds,
        fees,
        gain: proceeds - basis,
        wash_adjustment: wash,
        term: term(lot.holding_start(), ts),
        acquired: lot.acquired,
        holding_start: lot.holding_start(),
        sold: ts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tax::d;

    #[test]
    fn allocation_sums_exactly() {
        let parts = allocate(d("10"), &[d("1"), d("1"), d("1")]);
        assert_eq!(parts, vec![d("3.3333333333"), d("3.3333333333"), d("3.3333333334")]);
        assert_eq!(parts.iter().sum::<Decimal>(), d("10"));
    }

    #[test]
    fn piece_names_resolve_only_to_split_pieces() {
        let lot = |trade_id: &str, piece| Lot {
            piece,
            ..Lot::bought(trade_id.into(), Decimal::ONE, Decimal::ONE, Timestamp(0))
        };
        let lots = [lot("t", 0), lot("t", 1), lot("u#1", 0)];
        assert_eq!(resolve(&lots, "t"), vec![0, 1]);
        assert_eq!(resolve(&lots, "t#1"), vec![1]);
        assert_eq!(resolve(&lots, "t#0"), Vec::<usize>::new());
        assert_eq!(resolve(&lots, "u#1"), vec![2]);
    }
}
