//! Account ids, symbols and wash groups as 8-byte handles. Each name is stored once
//! per process (interned by `ustr`, never freed: a process meets a bounded set of
//! accounts and symbols), so the keys of every position, target, lot book and
//! wash-ledger entry are a pointer rather than a 24-byte string. Ordered, printed
//! and serialized as the string it names, so maps keyed by names iterate and store
//! exactly as string-keyed ones did; equal names are one pointer, so equality is one
//! comparison.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use ustr::Ustr;

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Name(Ustr);

impl Name {
    pub fn new(s: &str) -> Name {
        Name(Ustr::from(s))
    }

    pub fn as_str(&self) -> &'static str {
        self.0.as_str()
    }
}

impl Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        Name::new(s)
    }
}

impl From<String> for Name {
    fn from(s: String) -> Name {
        Name::new(&s)
    }
}

impl Default for Name {
    fn default() -> Name {
        Name::new("")
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Name) -> Ordering {
        if self == other {
            return Ordering::Equal;
        }
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Name) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// As the string hashes, as `Borrow<str>` requires.
impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Name, D::Error> {
        Ustr::deserialize(deserializer).map(Name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_one_pointer_and_an_absent_one_takes_no_more() {
        assert_eq!(std::mem::size_of::<Name>(), 8);
        assert_eq!(std::mem::size_of::<Option<Name>>(), 8);
    }

    #[test]
    fn names_order_as_their_strings_whatever_order_they_were_made_in() {
        let later = Name::new("zz-made-first");
        let earlier = Name::new("aa-made-second");
        assert!(earlier < later);
        let mut names = [Name::new("b"), Name::new("B"), Name::new("a1"), Name::new("a"), Name::new("")];
        names.sort();
        let strings: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
        assert_eq!(strings, ["", "B", "a", "a1", "b"]);
    }

    #[test]
    fn one_string_is_one_name() {
        let a = Name::new("ACC-1");
        let b = Name::from(String::from("ACC-1"));
        assert_eq!(a, b);
        assert_eq!(a.as_str().as_ptr(), b.as_str().as_ptr());
        assert_ne!(a, Name::new("ACC-2"));
        assert_eq!(a, "ACC-1");
        assert_eq!(format!("{a} {a:?}"), "ACC-1 \"ACC-1\"");
    }

    #[test]
    fn a_name_is_stored_as_its_string() {
        let n = Name::new("VTI");
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(json, "\"VTI\"");
        assert_eq!(serde_json::from_str::<Name>(&json).unwrap(), n);
        let owned: Name = serde_json::from_reader(json.as_bytes()).unwrap();
        assert_eq!(owned, n);
    }
}
