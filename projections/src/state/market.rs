//! The market as the shard sees it: the securities listed and each symbol's last
//! price with its reference for the daily move.

use std::collections::{BTreeMap, BTreeSet};

use riskstream_schemas::Timestamp;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default)]
pub(crate) struct Market {
    pub securities: BTreeMap<String, Security>,
    pub prices: BTreeMap<String, PriceInfo>,
    pub changed: MarketChanges,
}

/// Market rows touched since the last `drain_changes`.
#[derive(Debug, Default)]
pub(crate) struct MarketChanges {
    pub securities: BTreeSet<String>,
    pub prices: BTreeSet<String>,
}

impl Market {
    /// The symbol's last price, zero before its first tick.
    pub fn last_price(&self, symbol: &str) -> Decimal {
        self.prices.get(symbol).map_or(Decimal::ZERO, |p| p.price)
    }

    /// The symbol's group of substantially identical securities (itself when unlisted).
    pub fn wash_group<'a>(&'a self, symbol: &'a str) -> &'a str {
        self.securities.get(symbol).map_or(symbol, |s| s.wash_group.as_str())
    }

    /// Returns whether this is the symbol's first price of a new day (an open).
    pub fn set_price(&mut self, symbol: &str, price: Decimal, ts: Timestamp) -> bool {
        let open = self.prices.get(symbol).is_some_and(|old| ts.day() > old.ts.day());
        let info = match self.prices.get(symbol) {
            Some(old) if ts.day() > old.ts.day() => PriceInfo { price, ts, prev_close: old.price },
            Some(old) => PriceInfo { price, ts: ts.max(old.ts), prev_close: old.prev_close },
            None => PriceInfo { price, ts, prev_close: price },
        };
        match self.prices.get_mut(symbol) {
            Some(slot) => *slot = info,
            None => {
                self.prices.insert(symbol.to_string(), info);
            }
        }
        if !self.changed.prices.contains(symbol) {
            self.changed.prices.insert(symbol.to_string());
        }
        open
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    pub symbol: String,
    pub asset_class: String,
    pub sector: String,
    pub wash_group: String,
}

/// Last price of a symbol in this shard and the reference for the daily move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceInfo {
    pub price: Decimal,
    pub ts: Timestamp,
    /// Last price of the previous event-time day (the move's reference).
    pub prev_close: Decimal,
}
