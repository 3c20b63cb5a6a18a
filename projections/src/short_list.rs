//! Lists that usually hold one or two items (a position's lots, a wash group's
//! supply): a `Vec` reserves four on its first push, which at a million positions
//! is most of their memory, so these grow one at a time up to four.

/// Inserts `item` at `at`, growing a list shorter than four by one slot only.
pub(crate) fn insert<T>(list: &mut Vec<T>, at: usize, item: T) {
    if list.len() == list.capacity() && list.len() < 4 {
        list.reserve_exact(1);
    }
    list.insert(at, item);
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_short_list_holds_what_it_has() {
        let mut list = Vec::new();
        super::insert(&mut list, 0, 2u8);
        assert_eq!(list.capacity(), 1);
        super::insert(&mut list, 0, 1);
        super::insert(&mut list, 2, 3);
        assert_eq!((list.as_slice(), list.capacity()), (&[1, 2, 3][..], 3));
    }
}
