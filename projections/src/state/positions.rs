//! An account's positions as one slice sorted by symbol. An account holds tens of
//! positions, and the tick path walks all of them for every touched account
//! (revaluation, drift, concentration, harvest): a contiguous walk costs a fraction
//! of a B-tree's, and a lookup by symbol is the same binary search.

use std::ops::Index;

use super::Position;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Positions {
    /// Sorted by symbol, one entry per symbol.
    items: Vec<(String, Position)>,
}

impl Positions {
    fn find(&self, symbol: &str) -> Result<usize, usize> {
        self.items.binary_search_by(|(s, _)| s.as_str().cmp(symbol))
    }

    pub fn get(&self, symbol: &str) -> Option<&Position> {
        self.find(symbol).ok().map(|i| &self.items[i].1)
    }

    pub fn get_mut(&mut self, symbol: &str) -> Option<&mut Position> {
        self.find(symbol).ok().map(|i| &mut self.items[i].1)
    }

    pub fn contains_key(&self, symbol: &str) -> bool {
        self.find(symbol).is_ok()
    }

    /// Sets the symbol's position; returns the one it replaced.
    pub fn insert(&mut self, symbol: String, position: Position) -> Option<Position> {
        match self.find(&symbol) {
            Ok(i) => Some(std::mem::replace(&mut self.items[i].1, position)),
            Err(i) => {
                self.make_room();
                self.items.insert(i, (symbol, position));
                None
            }
        }
    }

    /// Grows a full slice by a quarter (at least 4) rather than doubling it: a
    /// million positions are loaded one at a time, and doubling left up to half of
    /// each account's slice empty (docs/BENCHMARKS.md, "Memory per position").
    fn make_room(&mut self) {
        if self.items.len() == self.items.capacity() {
            self.items.reserve_exact((self.items.len() / 4).max(4));
        }
    }

    /// The symbol's position, made by `new` when there is none.
    pub fn get_or_insert_with(&mut self, symbol: &str, new: impl FnOnce() -> Position) -> &mut Position {
        let i = match self.find(symbol) {
            Ok(i) => i,
            Err(i) => {
                self.make_room();
                self.items.insert(i, (symbol.to_string(), new()));
                i
            }
        };
        &mut self.items[i].1
    }

    pub fn remove(&mut self, symbol: &str) -> Option<Position> {
        self.find(symbol).ok().map(|i| self.items.remove(i).1)
    }

    /// Gives back the room a load left (it inserts one position at a time).
    pub(crate) fn shrink_to_fit(&mut self) {
        self.items.shrink_to_fit();
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// (symbol, position) in symbol order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&String, &Position)> + ExactSizeIterator {
        self.items.iter().map(|(s, p)| (s, p))
    }

    pub fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = (&String, &mut Position)> + ExactSizeIterator {
        self.items.iter_mut().map(|(s, p)| (&*s, p))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator {
        self.items.iter().map(|(s, _)| s)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Position> + ExactSizeIterator {
        self.items.iter().map(|(_, p)| p)
    }

    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut Position> + ExactSizeIterator {
        self.items.iter_mut().map(|(_, p)| p)
    }
}

impl<'a> IntoIterator for &'a Positions {
    type Item = (&'a String, &'a Position);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (String, Position)>, fn(&'a (String, Position)) -> Self::Item>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter().map(|(s, p)| (s, p))
    }
}

impl Index<&str> for Positions {
    type Output = Position;

    fn index(&self, symbol: &str) -> &Position {
        self.get(symbol).unwrap_or_else(|| panic!("no position in `{symbol}`"))
    }
}
