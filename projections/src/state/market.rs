//! The market as the shard sees it: the securities listed and each symbol's last
//! price with its reference for the daily move, by dense symbol index. A symbol is
//! interned once, when it is first listed, priced or held; from there the tick
//! path, the holders index and the rules name it by index (`Position::sym`), and
//! its string is read only where a row is written or a message made.

use ahash::AHashMap as HashMap;
use riskstream_schemas::Timestamp;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::SlotSet;
use crate::Name;

/// A symbol's dense index in its shard's [`Market`].
pub(crate) type Sym = u32;

#[derive(Debug, Default)]
pub(crate) struct Market {
    index: HashMap<Name, Sym>,
    names: Vec<Name>,
    securities: Vec<Option<Security>>,
    prices: Vec<Option<PriceInfo>>,
    pub changed: MarketChanges,
}

/// Market rows touched since the last `drain_changes`, by symbol index.
#[derive(Debug, Default)]
pub(crate) struct MarketChanges {
    pub securities: SlotSet,
    pub prices: SlotSet,
}

impl Market {
    /// A symbol never interned (a position not yet placed in the market).
    pub const NONE: Sym = u32::MAX;

    /// The symbol's index, interning it when new.
    pub fn intern(&mut self, symbol: &str) -> Sym {
        if let Some(&sym) = self.index.get(symbol) {
            return sym;
        }
        let sym = Sym::try_from(self.names.len()).expect("fewer than 2^32 symbols per shard");
        let name = Name::new(symbol);
        self.index.insert(name, sym);
        self.names.push(name);
        self.securities.push(None);
        self.prices.push(None);
        sym
    }

    pub fn sym(&self, symbol: &str) -> Option<Sym> {
        self.index.get(symbol).copied()
    }

    pub fn name(&self, sym: Sym) -> &'static str {
        self.names[sym as usize].as_str()
    }

    /// How many symbols are interned (indexes run below it).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn price(&self, sym: Sym) -> Option<&PriceInfo> {
        self.prices.get(sym as usize)?.as_ref()
    }

    pub fn price_of(&self, symbol: &str) -> Option<&PriceInfo> {
        self.price(self.sym(symbol)?)
    }

    pub fn security(&self, sym: Sym) -> Option<&Security> {
        self.securities.get(sym as usize)?.as_ref()
    }

    pub fn security_of(&self, symbol: &str) -> Option<&Security> {
        self.security(self.sym(symbol)?)
    }

    /// The symbol's last price, zero before its first tick.
    pub fn last_price(&self, sym: Sym) -> Decimal {
        self.price(sym).map_or(Decimal::ZERO, |p| p.price)
    }

    pub fn last_price_of(&self, symbol: &str) -> Decimal {
        self.price_of(symbol).map_or(Decimal::ZERO, |p| p.price)
    }

    /// The symbol's group of substantially identical securities (itself when unlisted).
    pub fn wash_group(&self, sym: Sym) -> &str {
        self.wash_group_name(sym).as_str()
    }

    /// [`Market::wash_group`] as a name (compared as one pointer).
    pub fn wash_group_name(&self, sym: Sym) -> Name {
        self.security(sym).map_or(self.names[sym as usize], |s| s.wash_group)
    }

    pub fn wash_group_of<'a>(&'a self, symbol: &'a str) -> &'a str {
        self.security_of(symbol).map_or(symbol, |s| s.wash_group.as_str())
    }

    /// Moves the symbol's last price; returns whether this is its first price of a
    /// new day (an open).
    pub fn set_price(&mut self, sym: Sym, price: Decimal, ts: Timestamp) -> bool {
        let slot = &mut self.prices[sym as usize];
        let (info, open) = match slot {
            Some(old) if ts.day() > old.ts.day() => (PriceInfo { price, ts, prev_close: old.price }, true),
            Some(old) => (PriceInfo { price, ts: ts.max(old.ts), prev_close: old.prev_close }, false),
            None => (PriceInfo { price, ts, prev_close: price }, false),
        };
        *slot = Some(info);
        self.changed.prices.insert(sym);
        open
    }

    /// Lists (or relists) a security; returns the listing it replaced.
    pub fn list(&mut self, security: Security) -> Option<Security> {
        let sym = self.intern(&security.symbol);
        self.changed.securities.insert(sym);
        self.securities[sym as usize].replace(security)
    }

    /// Puts a stored row back (no change recorded).
    pub fn load_security(&mut self, symbol: &str, security: Security) {
        let sym = self.intern(symbol);
        self.securities[sym as usize] = Some(security);
    }

    /// Puts a stored row back (no change recorded).
    pub fn load_price(&mut self, symbol: &str, price: PriceInfo) {
        let sym = self.intern(symbol);
        self.prices[sym as usize] = Some(price);
    }

    /// The symbols in symbol order.
    pub fn by_symbol(&self, mut syms: Vec<Sym>) -> Vec<Sym> {
        syms.sort_unstable_by_key(|&s| self.name(s));
        syms
    }

    /// The priced symbols, in no particular order.
    pub fn prices(&self) -> impl Iterator<Item = (&'static str, &PriceInfo)> + '_ {
        self.names.iter().zip(&self.prices).filter_map(|(n, p)| Some((n.as_str(), p.as_ref()?)))
    }

    /// The priced symbols in symbol order (the order a bar close enters new symbols
    /// into the covariance model).
    pub fn prices_by_symbol(&self) -> Vec<(&'static str, &PriceInfo)> {
        let mut prices: Vec<_> = self.prices().collect();
        prices.sort_unstable_by_key(|(s, _)| *s);
        prices
    }

    /// The listed securities, in no particular order.
    pub fn securities(&self) -> impl Iterator<Item = &Security> + '_ {
        self.securities.iter().flatten()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    pub symbol: String,
    /// Names, so grouping positions by class, sector or wash group compares one
    /// pointer rather than two strings.
    pub asset_class: Name,
    pub sector: Name,
    pub wash_group: Name,
}

/// Last price of a symbol in this shard and the reference for the daily move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceInfo {
    pub price: Decimal,
    pub ts: Timestamp,
    /// Last price of the previous event-time day (the move's reference).
    pub prev_close: Decimal,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(symbol: &str, group: &str) -> Security {
        let (asset_class, sector) = (Name::new("equity"), Name::new("tech"));
        Security { symbol: symbol.to_string(), asset_class, sector, wash_group: Name::new(group) }
    }

    #[test]
    fn a_symbol_keeps_its_index_and_reads_the_same_by_index_and_by_name() {
        let mut m = Market::default();
        let (b, a) = (m.intern("BBB"), m.intern("AAA"));
        assert_eq!((b, a, m.intern("BBB"), m.len()), (0, 1, 0, 2));
        assert_eq!((m.sym("AAA"), m.sym("CCC"), m.name(b)), (Some(a), None, "BBB"));
        assert_eq!(m.list(listing("AAA", "grp")), None);
        assert_eq!(m.list(listing("AAA", "other")).map(|s| s.wash_group), Some(Name::new("grp")));
        assert_eq!((m.wash_group(a), m.wash_group(b), m.wash_group_of("ZZZ")), ("other", "BBB", "ZZZ"));
        assert_eq!(m.security_of("BBB"), None);
        assert_eq!((m.last_price(a), m.last_price_of("ZZZ")), (Decimal::ZERO, Decimal::ZERO));
    }

    #[test]
    fn a_price_moves_its_reference_at_a_new_day_only() {
        const DAY: i64 = 86_400_000_000;
        let mut m = Market::default();
        let s = m.intern("AAA");
        let d = |n: i64| Decimal::new(n, 0);
        assert!(!m.set_price(s, d(10), Timestamp(DAY)), "a first price is no open");
        assert!(!m.set_price(s, d(11), Timestamp(DAY + 5)));
        assert_eq!(m.price(s).map(|p| (p.price, p.prev_close)), Some((d(11), d(10))));
        assert!(!m.set_price(s, d(12), Timestamp(DAY + 1)), "a late tick keeps the latest time");
        assert_eq!(m.price(s).map(|p| p.ts), Some(Timestamp(DAY + 5)));
        assert!(m.set_price(s, d(9), Timestamp(2 * DAY)));
        assert_eq!(m.price_of("AAA").map(|p| (p.price, p.prev_close)), Some((d(9), d(12))));
    }

    #[test]
    fn changes_and_listings_leave_in_symbol_order() {
        let mut m = Market::default();
        for s in ["MSFT", "AAPL", "IBM"] {
            let sym = m.intern(s);
            m.set_price(sym, Decimal::ONE, Timestamp(0));
        }
        let changed = m.changed.prices.take();
        assert_eq!(changed, [0, 1, 2], "the set holds indexes in the order changed");
        let names: Vec<&str> = m.by_symbol(changed).into_iter().map(|s| m.name(s)).collect();
        assert_eq!(names, ["AAPL", "IBM", "MSFT"]);
        let priced: Vec<&str> = m.prices_by_symbol().into_iter().map(|(s, _)| s).collect();
        assert_eq!(priced, ["AAPL", "IBM", "MSFT"]);
    }
}
