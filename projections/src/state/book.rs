//! The book: the shard's accounts with their positions, cash and targets, and the
//! derived indexes the tick path walks (who holds each symbol, symbols as dense
//! indexes, the price-batch mark).

use std::collections::BTreeSet;

use ahash::AHashMap as HashMap;
use rust_decimal::Decimal;

use super::{Accounts, Market, Slot};
use crate::risk::{CovarianceModel, UNMODELLED};
use crate::rules::track_largest;

#[derive(Debug, Default)]
pub(crate) struct Book {
    pub accounts: Accounts,
    /// symbol -> the accounts holding it and where the position sits in each, in
    /// no order (derived index).
    pub holders: HashMap<String, Vec<Holder>>,
    /// Dense indexes of the held symbols (`Position::sym`).
    pub symbols: Symbols,
    /// Counts price batches; see `Account::mark`.
    pub epoch: u64,
    pub changed: BookChanges,
}

/// An account holding a symbol: its slot, and the position's place among the
/// account's positions (kept by `Book::positions_moved`), so a tick reaches the
/// position without a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Holder {
    pub slot: Slot,
    pub at: u32,
}

/// Book rows touched since the last `drain_changes`.
#[derive(Debug, Default)]
pub(crate) struct BookChanges {
    pub accounts: BTreeSet<String>,
    pub cash: BTreeSet<String>,
    /// (account, symbol)
    pub positions: BTreeSet<(String, String)>,
    pub targets: BTreeSet<String>,
}

impl Book {
    /// Keeps `holders` in step after the account in `slot` opened (`held`) or
    /// closed its position in `symbol`: the positions after it moved by one place.
    pub(crate) fn positions_moved(&mut self, slot: Slot, symbol: &str, held: bool) {
        if held {
            self.holders.entry(symbol.to_string()).or_default().push(Holder { slot, at: 0 });
        } else if let Some(h) = self.holders.get_mut(symbol) {
            h.retain(|h| h.slot != slot);
        }
        for (at, key) in self.accounts.at(slot).positions.keys().enumerate() {
            let held = self.holders.get_mut(key.as_str()).and_then(|h| h.iter_mut().find(|h| h.slot == slot));
            held.expect("every position has its holder").at = at as u32;
        }
    }

    /// Moves the running values of every account holding a moved symbol to the new
    /// prices; returns the slots of the accounts touched, in account id order.
    pub(crate) fn revalue_holders(
        &mut self,
        symbols: &[&str],
        market: &Market,
        model: &CovarianceModel,
        marks: &mut BTreeSet<String>,
        today: i64,
    ) -> Vec<Slot> {
        self.epoch += 1;
        // A conflated batch usually moves most symbols: then walking each account's
        // positions once beats one account lookup per (symbol, holder).
        let mut touched = if symbols.len() * 4 >= self.holders.len() {
            self.revalue_account_major(symbols, market, model, marks, today)
        } else {
            self.revalue_symbol_major(symbols, market, model, marks, today)
        };
        self.accounts.rank_new();
        self.accounts.sort_by_id(&mut touched);
        touched
    }

    fn revalue_symbol_major(
        &mut self,
        symbols: &[&str],
        market: &Market,
        model: &CovarianceModel,
        marks: &mut BTreeSet<String>,
        today: i64,
    ) -> Vec<Slot> {
        let epoch = self.epoch;
        let (holders, accounts, prices, interned) = (&self.holders, &mut self.accounts, &market.prices, &self.symbols);
        let mut touched = Vec::new();
        for symbol in symbols {
            let (Some(ids), Some(info)) = (holders.get(*symbol), prices.get(*symbol)) else { continue };
            let index = model.index_of(symbol).unwrap_or(UNMODELLED);
            for &Holder { slot, at } in ids {
                let a = accounts.at_mut(slot);
                if a.risk.marks.roll_day(today, a.market_value) {
                    marks.insert(a.account_id.clone());
                }
                let p = a.positions.at_mut(at as usize);
                debug_assert_eq!(Some(p.sym), interned.get(symbol), "holders index matches positions");
                let (new_value, was) = (p.quantity * info.price, p.value_f);
                a.market_value += new_value - p.value;
                a.harvest_near = a.harvest_near.saturating_add_signed(p.revalue(new_value));
                a.drift.moved(&p.slopes, was, p.value_f);
                track_largest(&mut a.largest, was, p.value_f);
                a.risk.book.set_exposure(index, p.value_f, model);
                if a.mark != epoch {
                    a.mark = epoch;
                    touched.push(slot);
                }
            }
        }
        touched
    }

    fn revalue_account_major(
        &mut self,
        symbols: &[&str],
        market: &Market,
        model: &CovarianceModel,
        marks: &mut BTreeSet<String>,
        today: i64,
    ) -> Vec<Slot> {
        // (price, model index) by the symbol's dense index.
        let mut moved: Vec<Option<(Decimal, u32)>> = vec![None; self.symbols.len()];
        for s in symbols {
            if let (Some(i), Some(p)) = (self.symbols.get(s), market.prices.get(*s)) {
                moved[i as usize] = Some((p.price, model.index_of(s).unwrap_or(UNMODELLED)));
            }
        }
        let mut touched = Vec::new();
        for (slot, a) in self.accounts.slots_mut() {
            let mut hit = false;
            for p in a.positions.values_mut() {
                debug_assert_ne!(p.sym, Symbols::NONE, "every position is interned");
                if let Some(&Some((price, index))) = moved.get(p.sym as usize) {
                    if !hit && a.risk.marks.roll_day(today, a.market_value) {
                        marks.insert(a.account_id.clone());
                    }
                    let (new_value, was) = (p.quantity * price, p.value_f);
                    a.market_value += new_value - p.value;
                    a.harvest_near = a.harvest_near.saturating_add_signed(p.revalue(new_value));
                    a.drift.moved(&p.slopes, was, p.value_f);
                    track_largest(&mut a.largest, was, p.value_f);
                    a.risk.book.put_exposure(index, p.value_f);
                    hit = true;
                }
            }
            if hit {
                a.risk.book.recompute(model);
                touched.push(slot);
            }
        }
        touched
    }
}

/// The symbols the shard's positions name, as dense indexes that never change.
#[derive(Debug, Default)]
pub(crate) struct Symbols {
    index: HashMap<String, u32>,
}

impl Symbols {
    /// A position not interned yet.
    pub const NONE: u32 = u32::MAX;

    pub fn intern(&mut self, symbol: &str) -> u32 {
        if let Some(&i) = self.index.get(symbol) {
            return i;
        }
        let i = self.index.len() as u32;
        self.index.insert(symbol.to_string(), i);
        i
    }

    pub fn get(&self, symbol: &str) -> Option<u32> {
        self.index.get(symbol).copied()
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }
}
