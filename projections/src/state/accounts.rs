//! The shard's accounts in dense slots. Accounts are never removed, so an account
//! keeps its slot for the life of the shard: the tick path (holders, touched
//! accounts) names accounts by slot and never hashes an id.

use std::ops::Index;

use ahash::AHashMap as HashMap;

use super::Account;

/// An account's dense index in its shard.
pub(crate) type Slot = u32;

#[derive(Debug, Default)]
pub struct Accounts {
    slots: Vec<Account>,
    index: HashMap<String, Slot>,
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

    /// Sorts slots by account id: the order rules run and alerts leave in.
    pub(crate) fn sort_by_id(&self, slots: &mut [Slot]) {
        slots.sort_unstable_by(|x, y| self.at(*x).account_id.cmp(&self.at(*y).account_id));
    }
}

impl Index<&str> for Accounts {
    type Output = Account;

    fn index(&self, id: &str) -> &Account {
        self.get(id).unwrap_or_else(|| panic!("no account `{id}` in this shard"))
    }
}
