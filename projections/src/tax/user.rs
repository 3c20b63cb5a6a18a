//! One taxpayer's tax state: the lot book of each account (taxable or IRA), the
//! wash-sale ledger across all of them, and the realized figures that count for
//! tax. This is what the engine calls, one `TaxBook` per `user_id`.

use std::collections::BTreeMap;

use riskstream_schemas::{Side, TaxStatus, Timestamp, TradeExecuted};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::error::TaxError;
use super::lot::{LossRef, Lot};
use super::lots::{Applied, Closed, LotBook, Replacement};
use super::realized::Realized;
use super::term::tax_year;
use super::wash::{Fact, Loss, Match, Supply, WashAdjustment, WashLedger};
use super::IdMap;
use crate::Name;

/// An account's tax status and lots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxAccount {
    pub status: TaxStatus,
    pub lots: LotBook,
}

impl TaxAccount {
    pub fn is_taxable(&self) -> bool {
        self.status == TaxStatus::Taxable
    }
}

/// What one trade did: the lot it opened or the pieces it closed, and the wash
/// sales of earlier timestamps that it settled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TradeOutcome {
    pub opened: Option<String>,
    pub closed: Vec<Closed>,
    pub washes: Vec<WashAdjustment>,
}

/// `TaxBook` without the open lots and the wash ledger's groups (the stored
/// header row; those have rows of their own).
#[derive(Serialize, Deserialize)]
struct Header {
    user_id: String,
    accounts: BTreeMap<Name, AccountHeader>,
    /// Trades of a timestamp not settled yet.
    pending: Vec<Fact>,
    realized: Realized,
}

#[derive(Serialize, Deserialize)]
struct AccountHeader {
    status: TaxStatus,
    realized: Realized,
}

/// `Header` by reference, for writing (a trade writes its user's header).
#[derive(Serialize)]
struct HeaderRef<'a> {
    user_id: &'a str,
    accounts: BTreeMap<&'a str, AccountHeaderRef<'a>>,
    pending: &'a [Fact],
    realized: &'a Realized,
}

#[derive(Serialize)]
struct AccountHeaderRef<'a> {
    status: TaxStatus,
    realized: &'a Realized,
}

/// The tax state of one user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxBook {
    user_id: String,
    accounts: IdMap<TaxAccount>,
    ledger: WashLedger,
    /// Taxable accounts only: what the user reports, wash sales applied.
    realized: Realized,
}

impl TaxBook {
    pub fn new(user_id: impl Into<String>) -> Self {
        TaxBook { user_id: user_id.into(), ..TaxBook::default() }
    }

    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// Opens an account's lot book; false (and no change) when it is open already.
    pub fn open_account(&mut self, account_id: &str, status: TaxStatus) -> bool {
        if self.accounts.contains_key(account_id) {
            return false;
        }
        self.accounts.insert(account_id, TaxAccount { status, lots: LotBook::new(account_id) });
        true
    }

    pub fn account(&self, account_id: &str) -> Option<&TaxAccount> {
        self.accounts.get(account_id)
    }

    pub fn accounts(&self) -> impl Iterator<Item = (&str, &TaxAccount)> {
        self.accounts.iter().map(|(id, a)| (id.as_str(), a))
    }

    /// Realized figures of the taxable accounts, per tax year and term.
    pub fn realized(&self) -> &Realized {
        &self.realized
    }

    pub fn ledger(&self) -> &WashLedger {
        &self.ledger
    }

    /// The user's row of the projection store: everything but the open lots, which
    /// are stored per (account, symbol) so a trade rewrites one symbol's lots.
    pub fn header_row(&self) -> Vec<u8> {
        let accounts = self
            .accounts
            .iter()
            .map(|(id, a)| (id.as_str(), AccountHeaderRef { status: a.status, realized: a.lots.realized() }))
            .collect();
        let header =
            HeaderRef { user_id: &self.user_id, accounts, pending: self.ledger.pending(), realized: &self.realized };
        serde_json::to_vec(&header).expect("tax rows always serialise")
    }

    /// One wash group's row of the ledger (`None`: the group has nothing in the window).
    pub fn ledger_group_row(&self, group: &str) -> Option<Vec<u8>> {
        self.ledger.group(group).map(|g| serde_json::to_vec(g).expect("tax rows always serialise"))
    }

    /// Every wash group's row of the ledger, in group order.
    pub fn ledger_group_rows(&self) -> impl Iterator<Item = (&str, Vec<u8>)> {
        self.ledger.groups().map(|(name, g)| (name, serde_json::to_vec(g).expect("tax rows always serialise")))
    }

    /// Puts back one stored wash-group row of the ledger.
    pub fn load_ledger_group(&mut self, group: &str, row: &[u8]) -> Result<(), serde_json::Error> {
        self.ledger.load_group(group, serde_json::from_slice(row)?);
        Ok(())
    }

    /// The wash groups settling up to `now` changes (their rows are rewritten).
    pub fn groups_due(&self, now: Timestamp) -> Vec<String> {
        self.ledger.due_groups(now)
    }

    /// Frees the room a load left in the ledger's groups and the lot books.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.ledger.shrink_to_fit();
        self.accounts.values_mut().for_each(|a| a.lots.shrink_to_fit());
    }

    /// Restores a user's book from its header row; the lots come with `load_lots`,
    /// the ledger's groups with `load_ledger_group`.
    pub fn from_header_row(row: &[u8]) -> Result<TaxBook, serde_json::Error> {
        let h: Header = serde_json::from_slice(row)?;
        let accounts = h
            .accounts
            .into_iter()
            .map(|(id, a)| {
                let mut lots = LotBook::new(id);
                *lots.realized_mut() = a.realized;
                (id.as_str(), TaxAccount { status: a.status, lots })
            })
            .collect();
        Ok(TaxBook { user_id: h.user_id, accounts, ledger: WashLedger::from_pending(h.pending), realized: h.realized })
    }

    /// Puts back one stored (account, symbol) row of open lots; false when the
    /// account is not in the book.
    pub fn load_lots(&mut self, account_id: &str, symbol: &str, lots: Vec<Lot>) -> bool {
        match self.accounts.get_mut(account_id) {
            Some(a) => {
                a.lots.set_lots(symbol, lots);
                true
            }
            None => false,
        }
    }

    /// Whether `trade` would be accepted; nothing changes. Settling never changes
    /// the answer: it splits lots but keeps each buy's shares under its trade id.
    pub fn check(&self, trade: &TradeExecuted) -> Result<(), TaxError> {
        self.account_of(trade)?.lots.check(trade)
    }

    /// Applies a trade at event time `ts`. `wash_group` is the symbol's group of
    /// substantially identical securities. Timestamps before `ts` are settled first.
    pub fn trade(&mut self, trade: &TradeExecuted, ts: Timestamp, wash_group: &str) -> Result<TradeOutcome, TaxError> {
        self.check(trade)?;
        self.trade_checked(trade, ts, wash_group)
    }

    /// [`TaxBook::trade`] of a trade `check` accepted (the shard checks each event
    /// before it applies it), without checking it again.
    pub(crate) fn trade_checked(
        &mut self,
        trade: &TradeExecuted,
        ts: Timestamp,
        wash_group: &str,
    ) -> Result<TradeOutcome, TaxError> {
        let washes = self.settle(ts);
        let account = self.accounts.get_mut(&trade.account_id).expect("checked");
        let taxable = account.is_taxable();
        let mut outcome = TradeOutcome { washes, ..TradeOutcome::default() };
        match account.lots.apply_checked(trade, ts)? {
            Applied::Opened(lot_id) => {
                let supply = Supply {
                    acquired: ts,
                    trade_id: trade.trade_id.as_str().into(),
                    account_id: trade.account_id.as_str().into(),
                    symbol: trade.symbol.as_str().into(),
                };
                self.ledger.add(Fact::Supply { group: wash_group.to_string(), supply });
                outcome.opened = Some(lot_id);
            }
            Applied::Closed(closed) if taxable => {
                for (seq, piece) in closed.iter().enumerate() {
                    self.realized.book(piece);
                    if piece.gain < Decimal::ZERO {
                        self.ledger.add(Fact::Loss { group: wash_group.to_string(), loss: loss_of(piece, seq) });
                    }
                }
                outcome.closed = closed;
            }
            Applied::Closed(closed) => outcome.closed = closed,
        }
        debug_assert!(trade.side == Side::Buy || outcome.opened.is_none());
        Ok(outcome)
    }

    /// Decides the wash sales of every timestamp before `now` and applies them.
    /// Call it as event time advances (any later event of the shard will do), so a
    /// purchase that washes an earlier loss is reported promptly.
    pub fn settle(&mut self, now: Timestamp) -> Vec<WashAdjustment> {
        let mut out = Vec::new();
        while let Some((ts, facts)) = self.ledger.next_due(now) {
            let accounts = &self.accounts;
            let available = |s: &Supply| {
                accounts
                    .get(s.account_id.as_str())
                    .map_or(Decimal::ZERO, |a| a.lots.replaceable(&s.symbol, s.acquired, &s.trade_id))
            };
            let matches = self.ledger.decide(ts, facts, available);
            out.extend(matches.into_iter().map(|m| self.apply(m)));
        }
        out
    }

    /// Settles everything pending (end of a replay, or a test).
    pub fn settle_all(&mut self) -> Vec<WashAdjustment> {
        self.settle(Timestamp(i64::MAX))
    }

    fn account_of(&self, trade: &TradeExecuted) -> Result<&TaxAccount, TaxError> {
        self.accounts.get(&trade.account_id).ok_or_else(|| TaxError::UnknownAccount {
            trade_id: trade.trade_id.clone(),
            account_id: trade.account_id.clone(),
        })
    }

    /// Moves a decision into the lots and the realized figures.
    fn apply(&mut self, m: Match) -> WashAdjustment {
        let (loss, supply) = (&m.loss, &m.supply);
        let replacement = self.accounts.get_mut(supply.account_id.as_str()).expect("supply comes from an account");
        let added_to_basis = replacement.is_taxable();
        let carried = if added_to_basis { m.carried_days() } else { 0 };
        let replaces = LossRef {
            sale_trade_id: loss.sale_trade_id.clone(),
            account_id: loss.account_id.as_str().into(),
            lot_id: loss.lot_id.clone(),
        };
        let replacement_lot_id = replacement.lots.replace(Replacement {
            symbol: &supply.symbol,
            acquired: supply.acquired,
            trade_id: &supply.trade_id,
            quantity: m.quantity,
            replaces,
            adjust: added_to_basis.then_some((m.disallowed, carried)),
        });
        let year = tax_year(loss.sold);
        let seller = self.accounts.get_mut(loss.account_id.as_str()).expect("losses come from an account");
        seller.lots.realized_mut().disallow(year, loss.term, m.disallowed);
        self.realized.disallow(year, loss.term, m.disallowed);
        WashAdjustment {
            sale_trade_id: loss.sale_trade_id.to_string(),
            loss_account_id: loss.account_id.to_string(),
            symbol: loss.symbol.to_string(),
            loss_lot_id: loss.lot_id.to_string(),
            sold: loss.sold,
            tax_year: year,
            term: loss.term,
            replacement_account_id: supply.account_id.to_string(),
            replacement_symbol: supply.symbol.to_string(),
            replacement_lot_id,
            replacement_trade_id: supply.trade_id.to_string(),
            acquired: supply.acquired,
            quantity: m.quantity,
            disallowed: m.disallowed,
            added_to_basis,
            holding_days_carried: carried,
            retroactive: supply.acquired > loss.sold,
        }
    }
}

fn loss_of(piece: &Closed, seq: usize) -> Loss {
    Loss {
        sold: piece.sold,
        lot_acquired: piece.acquired,
        sale_trade_id: piece.sale_trade_id.as_str().into(),
        seq: u32::try_from(seq).unwrap_or(u32::MAX),
        account_id: piece.account_id.as_str().into(),
        symbol: piece.symbol.as_str().into(),
        lot_id: piece.lot_id.as_str().into(),
        lot_trade_id: piece.lot_trade_id.as_str().into(),
        holding_start: piece.holding_start,
        term: piece.term,
        quantity: piece.quantity,
        loss: -piece.gain,
    }
}
