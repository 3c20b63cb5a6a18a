//! A small map from ids to values as one sorted `Vec`: an account's targets and lots
//! by symbol, a user's wash-ledger groups. A `BTreeMap` node spends twice the entry on room and
//! links when each account holds a few dozen keys (docs/BENCHMARKS.md, "Memory per
//! position"); lookups are a binary search over one contiguous slice.

use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::tax::Id;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMap<V> {
    /// Sorted by id, one entry per id.
    items: Vec<(Id, V)>,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        IdMap { items: Vec::new() }
    }
}

impl<V> IdMap<V> {
    fn find(&self, id: &str) -> Result<usize, usize> {
        self.items.binary_search_by(|(k, _)| k.as_str().cmp(id))
    }

    pub fn get(&self, id: &str) -> Option<&V> {
        self.find(id).ok().map(|i| &self.items[i].1)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut V> {
        self.find(id).ok().map(|i| &mut self.items[i].1)
    }

    /// The id's value, made by `V::default()` when there is none.
    pub fn entry_or_default(&mut self, id: &str) -> &mut V
    where
        V: Default,
    {
        let i = match self.find(id) {
            Ok(i) => i,
            Err(i) => {
                self.make_room();
                self.items.insert(i, (Id::from(id), V::default()));
                i
            }
        };
        &mut self.items[i].1
    }

    pub fn insert(&mut self, id: &str, value: V) {
        match self.find(id) {
            Ok(i) => self.items[i].1 = value,
            Err(i) => {
                self.make_room();
                self.items.insert(i, (Id::from(id), value));
            }
        }
    }

    pub fn remove(&mut self, id: &str) -> Option<V> {
        self.find(id).ok().map(|i| self.items.remove(i).1)
    }

    /// (id, value) in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&Id, &V)> {
        self.items.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &Id> {
        self.items.iter().map(|(k, _)| k)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.items.iter().map(|(_, v)| v)
    }

    /// Grows by a quarter (at least 4), as `Positions` does.
    fn make_room(&mut self) {
        if self.items.len() == self.items.capacity() {
            self.items.reserve_exact((self.items.len() / 4).max(4));
        }
    }
}

/// Later values win, as in a `BTreeMap`.
impl<'a, V> FromIterator<(&'a str, V)> for IdMap<V> {
    fn from_iter<I: IntoIterator<Item = (&'a str, V)>>(items: I) -> Self {
        let mut map = IdMap::default();
        for (id, value) in items {
            map.insert(id, value);
        }
        map
    }
}

/// Written as a JSON object in id order, as the `BTreeMap` it replaced.
impl<V: Serialize> Serialize for IdMap<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.items.len()))?;
        for (k, v) in &self.items {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for IdMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<Id, V>::deserialize(d)?;
        Ok(IdMap { items: map.into_iter().collect() })
    }
}

#[cfg(test)]
mod tests {
    use super::IdMap;

    #[test]
    fn ids_are_kept_in_order_and_found() {
        let mut m = IdMap::default();
        m.insert("b", 2);
        m.insert("a", 1);
        *m.entry_or_default("c") += 3;
        *m.entry_or_default("a") += 10;
        assert_eq!(m.iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>(), [("a", 11), ("b", 2), ("c", 3)]);
        assert_eq!((m.get("b"), m.get("z")), (Some(&2), None));
        assert_eq!(m.remove("b"), Some(2));
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"a":11,"c":3}"#);
        let back: IdMap<i32> = serde_json::from_str(r#"{"c":3,"a":11}"#).unwrap();
        assert_eq!(back, m);
    }
}
