//! The shard's accounts in dense slots. Accounts are never removed, so an account
//! keeps its slot for the life of the shard: the tick path (holders, touched
//! accounts) names accounts by slot and never hashes an id.

use std::ops::Index;

use ahash::AHashMap as HashMap;

use super::Account;

/// The cache lines at the start of an [`Account`] that the tick path reads (its
/// layout puts them first).
pub(super) const TICK_LINES: usize = 5;

/// A hint to start loading the line at `p` into the cache; no effect on what the
/// program computes, and `p` is never dereferenced (any address is allowed).
#[inline(always)]
fn prefetch(p: *const u8) {
    // SAFETY: SSE is part of x86_64's baseline, and a prefetch does not access
    // memory (it cannot fault, whatever `p` is).
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// An account's dense index in its shard.
pub(crate) type Slot = u32;

#[derive(Debug, Default)]
pub struct Accounts {
    slots: Vec<Account>,
    index: HashMap<String, Slot>,
    /// Each slot's place in account id order, so touched accounts are put in id
    /// order by comparing integers, not ids. Accounts added since the last
    /// [`Accounts::rank_new`] wait in `unranked`.
    rank: Vec<u32>,
    /// The slots in id order (`rank`'s inverse).
    order: Vec<Slot>,
    unranked: Vec<Slot>,
}

impl Accounts {
    pub fn get(&self, id: &str) -> Option<&Account> {
        self.index.get(id).map(|&s| &self.slots[s as usize])
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Account> {
        self.index.get(id).map(|&s| &mut self.slots[s as usize])
    }

    pub fn contains_key(&self, id: &str) -> bool {
        self.index.contains_key(id)
    }

    pub(crate) fn slot(&self, id: &str) -> Option<Slot> {
        self.index.get(id).copied()
    }

    pub(crate) fn at(&self, slot: Slot) -> &Account {
        &self.slots[slot as usize]
    }

    pub(crate) fn at_mut(&mut self, slot: Slot) -> &mut Account {
        &mut self.slots[slot as usize]
    }

    /// Starts loading the lines of the account in `slot` that a tick reads (its
    /// running values, positions list, drift range and marks), so a walk over
    /// holders in no order overlaps the misses instead of waiting on each.
    #[inline]
    pub(crate) fn prefetch(&self, slot: Slot) {
        if let Some(a) = self.slots.get(slot as usize) {
            let base = (a as *const Account).cast::<u8>();
            for line in 0..TICK_LINES {
                prefetch(base.wrapping_add(line * 64));
            }
        }
    }

    /// Starts loading the position at place `at` of the account in `slot`; reads
    /// the account's positions list, so it pays once that line is in (see
    /// [`Accounts::prefetch`]).
    #[inline]
    pub(crate) fn prefetch_position(&self, slot: Slot, at: u32) {
        if let Some(p) = self.slots.get(slot as usize).and_then(|a| a.positions.entry_ptr(at as usize)) {
            let base = p.cast::<u8>();
            prefetch(base);
            prefetch(base.wrapping_add(64));
        }
    }

    /// Frees the room a load left in the slots and the id index.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.slots.shrink_to_fit();
        self.index.shrink_to_fit();
        self.rank.shrink_to_fit();
        self.order.shrink_to_fit();
    }

    /// Adds the account, or replaces the one with this id in its slot.
    pub(crate) fn insert(&mut self, id: String, account: Account) -> Slot {
        match self.index.get(&id) {
            Some(&s) => {
                self.slots[s as usize] = account;
                s
            }
            None => {
                let s = Slot::try_from(self.slots.len()).expect("fewer than 2^32 accounts per shard");
                self.slots.push(account);
                self.index.insert(id, s);
                self.unranked.push(s);
                s
            }
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// In slot order.
    pub fn values(&self) -> impl Iterator<Item = &Account> {
        self.slots.iter()
    }

    /// With their slots, in slot order.
    pub(crate) fn slots_mut(&mut self) -> impl Iterator<Item = (Slot, &mut Account)> {
        self.slots.iter_mut().enumerate().map(|(s, a)| (s as Slot, a))
    }

    /// The ids, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.index.keys()
    }

    /// (id, account), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Account)> {
        self.index.iter().map(|(id, &s)| (id, &self.slots[s as usize]))
    }

    /// Sorts distinct slots by account id: the order rules run and alerts leave in. By rank
    /// once every account is ranked (see [`Accounts::rank_new`]), else by id.
    pub(crate) fn sort_by_id(&self, slots: &mut [Slot]) {
        if self.unranked.is_empty() && slots.len() * 16 >= self.order.len() {
            // Most accounts (a dense price batch touches nearly all): a bit per rank,
            // read back in rank order, costs O(accounts / 64) instead of a sort.
            let mut ranks = Bits::default();
            for &s in slots.iter() {
                ranks.set(self.rank[s as usize]);
            }
            let mut placed = 0;
            for (slot, r) in slots.iter_mut().zip(ranks.ones()) {
                *slot = self.order[r as usize];
                placed += 1;
            }
            debug_assert_eq!(placed, slots.len(), "the slots to sort are distinct");
        } else if self.unranked.is_empty() {
            slots.sort_unstable_by_key(|&s| self.rank[s as usize]);
        } else {
            slots.sort_unstable_by(|x, y| self.at(*x).account_id.cmp(&self.at(*y).account_id));
        }
    }

    /// Ranks the accounts added since the last call: sorts them by id and merges
    /// them into the id order (O(accounts), once per batch that opened accounts).
    pub(crate) fn rank_new(&mut self) {
        if self.unranked.is_empty() {
            return;
        }
        let mut order = std::mem::take(&mut self.order);
        order.append(&mut self.unranked);
        // The ranked accounts are one sorted run: the stable sort merges the new ones
        // into it without comparing the run again.
        order.sort_by(|x, y| self.slots[*x as usize].account_id.cmp(&self.slots[*y as usize].account_id));
        self.rank = vec![0; self.slots.len()];
        for (r, &slot) in order.iter().enumerate() {
            self.rank[slot as usize] = r as u32;
        }
        self.order = order;
    }
}

impl Index<&str> for Accounts {
    type Output = Account;

    fn index(&self, id: &str) -> &Account {
        self.get(id).unwrap_or_else(|| panic!("no account `{id}` in this shard"))
    }
}

/// Dense indexes (account slots, symbol indexes), each once, in the order first
/// added: the rows a batch changed, recorded on the tick path without hashing or
/// copying an id. A bit per index dedupes; taking the set clears only the bits it
/// set, so the bits keep their room from batch to batch.
#[derive(Debug, Default)]
pub(crate) struct SlotSet {
    slots: Vec<Slot>,
    seen: Bits,
}

impl SlotSet {
    pub fn insert(&mut self, slot: Slot) {
        if self.seen.set(slot) {
            self.slots.push(slot);
        }
    }

    /// The slots added since the last take, in the order added; the set is empty after.
    pub fn take(&mut self) -> Vec<Slot> {
        for &s in &self.slots {
            self.seen.clear(s);
        }
        std::mem::take(&mut self.slots)
    }
}

/// A bit per dense index (account slot, rank, symbol index), growing as set, read
/// back in ascending order: the sets of the tick path, and their order, without a
/// sort or a hash.
#[derive(Debug, Default)]
pub(crate) struct Bits(Vec<u64>);

impl Bits {
    /// Sets bit `i`; returns whether it was clear.
    #[inline]
    pub fn set(&mut self, i: u32) -> bool {
        let (word, bit) = (i as usize / 64, 1u64 << (i % 64));
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        let was_clear = self.0[word] & bit == 0;
        self.0[word] |= bit;
        was_clear
    }

    #[inline]
    pub fn clear(&mut self, i: u32) {
        if let Some(word) = self.0.get_mut(i as usize / 64) {
            *word &= !(1u64 << (i % 64));
        }
    }

    /// The set bits, in ascending order.
    pub fn ones(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().enumerate().flat_map(|(word, &bits)| {
            let mut bits = bits;
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let i = word as u32 * 64 + bits.trailing_zeros();
                    bits &= bits - 1;
                    i
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::AccountLimits;
    use riskstream_schemas::{TaxStatus, Timestamp};

    fn account(id: &str) -> Account {
        Account {
            account_id: id.to_string(),
            user_id: "u".to_string(),
            tax_status: TaxStatus::Taxable,
            base_currency: "USD".to_string(),
            opened_at: Timestamp(0),
            limits: AccountLimits::default(),
            cash: Default::default(),
            positions: Default::default(),
            targets: None,
            market_value: Default::default(),
            mark: 0,
            raised: 0,
            harvest_near: 0,
            risk: Default::default(),
            drift: crate::rules::DriftRange::Unbuilt,
            largest: crate::rules::Largest::UNKNOWN,
        }
    }

    /// Accounts added in any order, ranked in several rounds, sort slots as their
    /// ids do.
    #[test]
    fn ranks_follow_the_ids_across_rounds() {
        let mut accounts = Accounts::default();
        let rounds: [&[&str]; 3] = [&["m", "c", "x"], &["a", "n"], &["z", "b", "o", "d"]];
        for ids in rounds {
            for id in ids {
                accounts.insert(id.to_string(), account(id));
            }
            let mut by_string: Vec<Slot> = (0..accounts.len() as Slot).rev().collect();
            accounts.sort_by_id(&mut by_string);
            accounts.rank_new();
            let mut by_rank: Vec<Slot> = (0..accounts.len() as Slot).rev().collect();
            accounts.sort_by_id(&mut by_rank);
            assert_eq!(by_rank, by_string);
            let ids: Vec<&str> = by_rank.iter().map(|&s| accounts.at(s).account_id.as_str()).collect();
            let mut sorted = ids.clone();
            sorted.sort_unstable();
            assert_eq!(ids, sorted);
        }
    }

    #[test]
    fn a_slot_set_holds_each_slot_once_and_is_empty_after_a_take() {
        let mut set = SlotSet::default();
        for s in [5, 130, 5, 0, 130, 64, 63] {
            set.insert(s);
        }
        assert_eq!(set.take(), [5, 130, 0, 64, 63]);
        assert!(set.take().is_empty());
        set.insert(130);
        set.insert(5);
        assert_eq!(set.take(), [130, 5], "a take clears the bits it set");
    }
}
