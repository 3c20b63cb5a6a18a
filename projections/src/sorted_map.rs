//! A small map keyed by strings, as one `Vec` sorted by key: an account's positions,
//! targets and lots by symbol, a user's wash-ledger groups. An account holds tens of
//! keys, and the tick path walks all of its positions for every touched account
//! (revaluation, drift, concentration, harvest): a contiguous walk costs a fraction of
//! a B-tree's, a lookup is the same binary search, and a `BTreeMap` node spends about
//! twice its entries on room and links (docs/BENCHMARKS.md, "Memory per position").

use std::borrow::Borrow;
use std::ops::Index;

use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, SerializeMap, Serializer};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortedMap<K, V> {
    /// Sorted by key, one entry per key.
    items: Vec<(K, V)>,
}

impl<K, V> Default for SortedMap<K, V> {
    fn default() -> Self {
        SortedMap { items: Vec::new() }
    }
}

impl<K: Borrow<str> + for<'a> From<&'a str>, V> SortedMap<K, V> {
    fn find(&self, key: &str) -> Result<usize, usize> {
        self.items.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.find(key).ok().map(|i| &self.items[i].1)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.find(key).ok().map(|i| &mut self.items[i].1)
    }

    /// The key's place in key order.
    pub fn position(&self, key: &str) -> Option<usize> {
        self.find(key).ok()
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Sets the key's value; returns the one it replaced.
    pub fn insert(&mut self, key: &str, value: V) -> Option<V> {
        match self.find(key) {
            Ok(i) => Some(std::mem::replace(&mut self.items[i].1, value)),
            Err(i) => {
                self.make_room();
                self.items.insert(i, (K::from(key), value));
                None
            }
        }
    }

    /// The key's value, made by `new` when there is none.
    pub fn get_or_insert_with(&mut self, key: &str, new: impl FnOnce() -> V) -> &mut V {
        let i = match self.find(key) {
            Ok(i) => i,
            Err(i) => {
                self.make_room();
                self.items.insert(i, (K::from(key), new()));
                i
            }
        };
        &mut self.items[i].1
    }

    pub fn remove(&mut self, key: &str) -> Option<V> {
        self.find(key).ok().map(|i| self.items.remove(i).1)
    }
}

impl<K, V> SortedMap<K, V> {
    /// Grows a full slice by a quarter (at least 4) rather than doubling it: a
    /// million positions are loaded one at a time, and doubling left up to half of
    /// each account's slice empty.
    fn make_room(&mut self) {
        if self.items.len() == self.items.capacity() {
            self.items.reserve_exact((self.items.len() / 4).max(4));
        }
    }

    /// The value at place `i` in key order.
    pub fn at(&self, i: usize) -> &V {
        &self.items[i].1
    }

    /// Where the entry at place `i` sits (for a prefetch), if there is one.
    #[inline]
    pub(crate) fn entry_ptr(&self, i: usize) -> Option<*const (K, V)> {
        self.items.get(i).map(|e| e as *const (K, V))
    }

    /// The value at place `i` in key order.
    pub fn at_mut(&mut self, i: usize) -> &mut V {
        &mut self.items[i].1
    }

    /// Gives back the room a load left (it inserts one entry at a time).
    pub(crate) fn shrink_to_fit(&mut self) {
        self.items.shrink_to_fit();
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// (key, value) in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + ExactSizeIterator {
        self.items.iter().map(|(k, v)| (k, v))
    }

    pub fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = (&K, &mut V)> + ExactSizeIterator {
        self.items.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + ExactSizeIterator {
        self.items.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator {
        self.items.iter().map(|(_, v)| v)
    }

    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut V> + ExactSizeIterator {
        self.items.iter_mut().map(|(_, v)| v)
    }
}

impl<'a, K, V> IntoIterator for &'a SortedMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> Self::Item>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter().map(|(k, v)| (k, v))
    }
}

impl<K: Borrow<str> + for<'a> From<&'a str>, V> Index<&str> for SortedMap<K, V> {
    type Output = V;

    fn index(&self, key: &str) -> &V {
        self.get(key).unwrap_or_else(|| panic!("no entry for `{key}`"))
    }
}

/// Later values win, as in a `BTreeMap`.
impl<'a, K: Borrow<str> + for<'b> From<&'b str>, V> FromIterator<(&'a str, V)> for SortedMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (&'a str, V)>>(items: I) -> Self {
        let mut map = SortedMap::default();
        for (key, value) in items {
            map.insert(key, value);
        }
        map
    }
}

/// Written as a JSON object in key order, as the `BTreeMap` it replaced.
impl<K: Serialize, V: Serialize> Serialize for SortedMap<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.items.len()))?;
        for (k, v) in &self.items {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, K: Deserialize<'de> + Ord, V: Deserialize<'de>> Deserialize<'de> for SortedMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<K, V>::deserialize(d)?;
        Ok(SortedMap { items: map.into_iter().collect() })
    }
}

#[cfg(test)]
mod tests {
    use crate::tax::Id;

    type IdMap<V> = super::SortedMap<Id, V>;

    #[test]
    fn keys_are_kept_in_order_and_found() {
        let mut m = IdMap::default();
        m.insert("b", 2);
        m.insert("a", 1);
        *m.get_or_insert_with("c", Default::default) += 3;
        *m.get_or_insert_with("a", Default::default) += 10;
        assert_eq!(m.iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>(), [("a", 11), ("b", 2), ("c", 3)]);
        assert_eq!((m.get("b"), m.get("z")), (Some(&2), None));
        assert_eq!(m.remove("b"), Some(2));
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"a":11,"c":3}"#);
        let back: IdMap<i32> = serde_json::from_str(r#"{"c":3,"a":11}"#).unwrap();
        assert_eq!(back, m);
    }
}
