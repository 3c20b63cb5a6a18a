//! The book: the shard's accounts with their positions, cash and targets, and the
//! derived indexes the tick path walks (who holds each symbol, the price-batch
//! mark).

use rust_decimal::Decimal;

use super::{Accounts, Bits, Market, Position, Slot, SlotSet, Sym};
use crate::risk::{CovarianceModel, UNMODELLED};

/// How many holders ahead the symbol-major walk prefetches an account.
const AHEAD: usize = 8;

#[derive(Debug, Default)]
pub(crate) struct Book {
    pub accounts: Accounts,
    /// By symbol index (`Market::intern`, `Position::sym`): the accounts holding it
    /// and where the position sits in each, in no order (derived index). A
    /// position knows its entry (`Position::holder`), so opening and closing one
    /// costs O(the account's positions), however many hold the symbol.
    pub holders: Vec<Vec<Holder>>,
    /// Counts price batches; see `Account::mark`.
    pub epoch: u64,
    pub changed: BookChanges,
}

/// An account holding a symbol: its slot, and the position's place among the
/// account's positions (kept by `Book::opened` and `Book::closed`), so a tick
/// reaches the position without a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Holder {
    pub slot: Slot,
    pub at: u32,
}

/// What a price batch revalues the book against: the market with the new prices,
/// the covariance model, the risk marks to write back and the batch's UTC day.
pub(crate) struct Repricing<'a> {
    pub market: &'a Market,
    pub model: &'a CovarianceModel,
    pub marks: &'a mut SlotSet,
    pub today: i64,
}

/// Book rows touched since the last `drain_changes`, by account slot and symbol
/// index: a trade records its rows without copying an id; the ids are read when
/// the rows are written.
#[derive(Debug, Default)]
pub(crate) struct BookChanges {
    pub accounts: SlotSet,
    pub cash: SlotSet,
    /// (account, symbol), possibly repeated: deduplicated when drained.
    pub positions: Vec<(Slot, Sym)>,
    pub targets: SlotSet,
}

impl Book {
    /// The accounts holding the symbol of index `sym`.
    pub(crate) fn holders_of(&self, sym: Sym) -> &[Holder] {
        self.holders.get(sym as usize).map_or(&[], Vec::as_slice)
    }

    /// Adds the position at place `at` of the account in `slot` to its symbol's
    /// holders, and points the position at its entry.
    fn hold(&mut self, slot: Slot, at: usize) {
        let p = self.accounts.at_mut(slot).positions.at_mut(at);
        let sym = p.sym as usize;
        if self.holders.len() <= sym {
            self.holders.resize_with(sym + 1, Vec::new);
        }
        p.holder = self.holders[sym].len() as u32;
        self.holders[sym].push(Holder { slot, at: at as u32 });
    }

    /// Points the holder entries of the account's positions from place `from` on at
    /// their places (positions after an opened or closed one moved by one).
    fn replace_from(&mut self, slot: Slot, from: usize) {
        for (at, p) in self.accounts.at(slot).positions.values().enumerate().skip(from) {
            self.holders[p.sym as usize][p.holder as usize].at = at as u32;
        }
    }

    /// The account in `slot` opened the position at place `at`.
    pub(crate) fn opened(&mut self, slot: Slot, at: usize) {
        self.hold(slot, at);
        self.replace_from(slot, at + 1);
    }

    /// The account in `slot` closed `gone`, which sat at place `at`.
    pub(crate) fn closed(&mut self, slot: Slot, at: usize, gone: &Position) {
        let list = &mut self.holders[gone.sym as usize];
        list.swap_remove(gone.holder as usize);
        if let Some(&Holder { slot: s, at: place }) = list.get(gone.holder as usize) {
            self.accounts.at_mut(s).positions.at_mut(place as usize).holder = gone.holder;
        }
        self.replace_from(slot, at);
    }

    /// Rebuilds `holders` from the positions (after a load).
    pub(crate) fn rebuild_holders(&mut self) {
        self.holders.clear();
        for slot in 0..self.accounts.len() as Slot {
            for at in 0..self.accounts.at(slot).positions.len() {
                self.hold(slot, at);
            }
        }
        self.holders.iter_mut().for_each(Vec::shrink_to_fit);
    }

    /// Moves the running values of every account holding a moved symbol to the new
    /// prices; returns the slots of the accounts touched, in account id order.
    pub(crate) fn revalue_holders(&mut self, symbols: &[Sym], with: Repricing<'_>) -> Vec<Slot> {
        self.epoch += 1;
        // Once the moved symbols have about as many holders as the shard has accounts,
        // walking each touched account's positions once (in slot order, contiguous)
        // beats reaching a random account and position per (symbol, holder): there
        // each visit is two cache misses, and most accounts are visited several times.
        let visits: usize = symbols.iter().map(|&s| self.holders_of(s).len()).sum();
        let mut touched = if visits >= self.accounts.len() {
            self.revalue_account_major(symbols, with)
        } else {
            self.revalue_symbol_major(symbols, with)
        };
        self.accounts.rank_new();
        self.accounts.sort_by_id(&mut touched);
        touched
    }

    fn revalue_symbol_major(&mut self, symbols: &[Sym], with: Repricing<'_>) -> Vec<Slot> {
        let Repricing { market, model, marks, today } = with;
        let epoch = self.epoch;
        let (holders, accounts) = (&self.holders, &mut self.accounts);
        let mut touched = Vec::new();
        for &sym in symbols {
            let Some(info) = market.price(sym) else { continue };
            let ids = holders.get(sym as usize).map_or(&[][..], Vec::as_slice);
            let index = model.index_of(market.name(sym)).unwrap_or(UNMODELLED);
            for (i, &Holder { slot, at }) in ids.iter().enumerate() {
                // Each holder is two misses (account, position) in no order: start
                // the account's lines a few holders ahead and its position once the
                // account's list pointer has arrived.
                if let Some(h) = ids.get(i + AHEAD) {
                    accounts.prefetch(h.slot);
                }
                if let Some(h) = ids.get(i + AHEAD / 2) {
                    accounts.prefetch_position(h.slot, h.at);
                }
                let a = accounts.at_mut(slot);
                if a.risk.marks.roll_day(today, a.market_value) {
                    marks.insert(slot);
                }
                debug_assert_eq!(a.positions.at(at as usize).sym, sym, "holders index matches positions");
                let value = a.revalue_at(at as usize, info.price);
                a.risk.book.set_exposure(index, value, model);
                if a.mark != epoch {
                    a.mark = epoch;
                    touched.push(slot);
                }
            }
        }
        touched
    }

    /// Walks the positions of each holder of a moved symbol once, in slot order: the
    /// holders lists name the accounts (no walk of the accounts that hold none).
    fn revalue_account_major(&mut self, symbols: &[Sym], with: Repricing<'_>) -> Vec<Slot> {
        let Repricing { market, model, marks, today } = with;
        // (price, model index) by symbol index.
        let mut moved: Vec<Option<(Decimal, u32)>> = vec![None; market.len()];
        // The holders of the moved symbols, each once, read back in slot order.
        let mut held = Bits::default();
        for &sym in symbols {
            if let Some(p) = market.price(sym) {
                moved[sym as usize] = Some((p.price, model.index_of(market.name(sym)).unwrap_or(UNMODELLED)));
                for h in self.holders_of(sym) {
                    held.set(h.slot);
                }
            }
        }
        let mut touched = Vec::new();
        let mut exposures: Vec<(u32, f64)> = Vec::new();
        for slot in held.ones() {
            let a = self.accounts.at_mut(slot);
            if a.risk.marks.roll_day(today, a.market_value) {
                marks.insert(slot);
            }
            exposures.clear();
            for at in 0..a.positions.len() {
                let sym = a.positions.at(at).sym;
                debug_assert_ne!(sym, Market::NONE, "every position is interned");
                if let Some(&Some((price, index))) = moved.get(sym as usize) {
                    let value = a.revalue_at(at, price);
                    if index != UNMODELLED {
                        exposures.push((index, value));
                    }
                }
            }
            // k rank-1 updates cost O(k) each, a recompute O(positions^2) once:
            // update by the moved exposures while fewer than half moved.
            if exposures.len() * 2 < a.positions.len() {
                for &(index, value) in &exposures {
                    a.risk.book.set_exposure(index, value, model);
                }
            } else {
                for &(index, value) in &exposures {
                    a.risk.book.put_exposure(index, value);
                }
                a.risk.book.recompute(model);
            }
            touched.push(slot);
        }
        touched
    }
}
