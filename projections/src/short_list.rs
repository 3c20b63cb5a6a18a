//! Lists that usually hold one or two items (a position's lots, a wash group's
//! supply and losses), a million of them at a million positions: a boxed slice holds
//! exactly its items with no capacity word, where a `Vec` carries one more word and
//! reserves four on its first push. A change reallocates, which is cheap at these
//! lengths, and lists change on trades, not on ticks.

use std::ops::{Deref, DerefMut};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShortList<T>(Box<[T]>);

impl<T> Default for ShortList<T> {
    fn default() -> Self {
        ShortList(Box::default())
    }
}

impl<T> ShortList<T> {
    fn edit<R>(&mut self, change: impl FnOnce(&mut Vec<T>) -> R) -> R {
        let mut items = std::mem::take(&mut self.0).into_vec();
        let out = change(&mut items);
        self.0 = items.into_boxed_slice();
        out
    }

    pub fn insert(&mut self, at: usize, item: T) {
        self.edit(|items| items.insert(at, item));
    }

    pub fn remove(&mut self, at: usize) -> T {
        self.edit(|items| items.remove(at))
    }

    pub fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        self.edit(|items| items.retain(keep));
    }
}

impl<T> From<Vec<T>> for ShortList<T> {
    fn from(items: Vec<T>) -> Self {
        ShortList(items.into_boxed_slice())
    }
}

impl<T> Deref for ShortList<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T> DerefMut for ShortList<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.0
    }
}

impl<T: Serialize> Serialize for ShortList<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ShortList<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::deserialize(deserializer).map(ShortList::from)
    }
}

#[cfg(test)]
mod tests {
    use super::ShortList;

    #[test]
    fn a_short_list_holds_exactly_its_items() {
        let mut list = ShortList::default();
        list.insert(0, 2u8);
        list.insert(0, 1);
        list.insert(2, 3);
        list.insert(3, 4);
        assert_eq!(&list[..], &[1, 2, 3, 4]);
        assert_eq!(list.remove(1), 2);
        list.retain(|&x| x != 3);
        assert_eq!(&list[..], &[1, 4]);
        assert_eq!(std::mem::size_of::<ShortList<u64>>(), 2 * std::mem::size_of::<usize>());
        assert_eq!(serde_json::to_string(&list).unwrap(), "[1,4]");
        let back: ShortList<u8> = serde_json::from_str("[1,4]").unwrap();
        assert_eq!(back, list);
    }
}
