//! The persisted form of a shard's state: one table per kind of fact, keyed by
//! strings, valued by canonical JSON (the covariance rows of `risk_model` excepted:
//! see `SymbolModel::to_bytes`). Stores put these rows in their own column
//! families; loading them back and calling `rebuild_derived` restores the shard.

use riskstream_schemas::Rejection;
use rust_decimal::Decimal;

use crate::risk::SymbolModel;
use crate::state::{Account, Position, PriceInfo, Security, ShardState, SignalState, Slot, Targets};
use crate::tax::{lots_row, Lot, TaxBook, WashAdjustment};

/// The projection tables (RocksDB column families of the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    Accounts,
    Securities,
    Positions,
    Cash,
    Prices,
    Targets,
    Signals,
    RiskModel,
    RiskMarks,
    RiskHistory,
    TaxBooks,
    WashLedger,
    TaxLots,
    WashSales,
}

impl Table {
    /// In load order: a row comes after the rows it hangs off.
    pub const ALL: [Table; 14] = [
        Table::Accounts,
        Table::Securities,
        Table::Positions,
        Table::Cash,
        Table::Prices,
        Table::Targets,
        Table::Signals,
        Table::RiskModel,
        Table::RiskMarks,
        Table::RiskHistory,
        Table::TaxBooks,
        Table::WashLedger,
        Table::TaxLots,
        Table::WashSales,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Accounts => "accounts",
            Table::Securities => "securities",
            Table::Positions => "positions",
            Table::Cash => "cash",
            Table::Prices => "prices",
            Table::Targets => "targets",
            Table::Signals => "signals",
            Table::RiskModel => "risk_model",
            Table::RiskMarks => "risk_marks",
            Table::RiskHistory => "risk_history",
            Table::TaxBooks => "tax_books",
            Table::WashLedger => "wash_ledger",
            Table::TaxLots => "tax_lots",
            Table::WashSales => "wash_sales",
        }
    }
}

/// One row to write (`Some`) or delete (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub table: Table,
    pub key: String,
    pub value: Option<Vec<u8>>,
}

/// Separates the two parts of composite keys; ids cannot contain control characters.
pub(crate) const SEP: char = '\u{1f}';

/// Key of the model's scalars row in `risk_model` (no symbol starts with a control
/// character).
const MODEL_SCALARS: &str = "\u{1f}scalars";

/// Wash sales of a user, numbered in the order decided (zero-padded so keys sort).
fn wash_key(user: &str, n: usize) -> String {
    format!("{user}{SEP}{n:010}")
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("facts always serialise")
}

impl ShardState {
    /// Returns the rows changed since the last call, in table then key order.
    pub fn drain_changes(&mut self) -> Vec<Change> {
        let (mut book, mut market) = (std::mem::take(&mut self.book.changed), std::mem::take(&mut self.market.changed));
        let signals = std::mem::take(&mut self.signals.changed);
        let model = std::mem::take(&mut self.risk.changed.model);
        let (marks, history) = (self.risk.changed.marks.take(), self.risk.changed.history.take());
        let tax = std::mem::take(&mut self.tax.changed);
        let mut out = Vec::new();
        let mut put = |table, key: String, value: Option<Vec<u8>>| out.push(Change { table, key, value });
        let accounts = &self.book.accounts;
        let in_order = |mut slots: Vec<Slot>| {
            accounts.sort_by_id(&mut slots);
            slots.into_iter().map(|s| accounts.at(s))
        };
        for a in in_order(book.accounts.take()) {
            put(Table::Accounts, a.account_id.clone(), Some(json(a)));
        }
        for sym in self.market.by_symbol(market.securities.take()) {
            put(Table::Securities, self.market.name(sym).to_string(), self.market.security(sym).map(json));
        }
        let mut positions: Vec<(&Account, &str)> =
            book.positions.iter().map(|&(slot, sym)| (accounts.at(slot), self.market.name(sym))).collect();
        positions.sort_unstable_by(|(a, x), (b, y)| (a.account_id.as_str(), x).cmp(&(b.account_id.as_str(), y)));
        positions.dedup_by(|(a, x), (b, y)| std::ptr::eq(*a, *b) && x == y);
        for (a, symbol) in positions {
            let row = a.positions.get(symbol).map(json);
            put(Table::Positions, format!("{}{SEP}{symbol}", a.account_id), row);
        }
        for a in in_order(book.cash.take()) {
            put(Table::Cash, a.account_id.clone(), Some(json(&a.cash)));
        }
        for sym in self.market.by_symbol(market.prices.take()) {
            put(Table::Prices, self.market.name(sym).to_string(), self.market.price(sym).map(json));
        }
        for a in in_order(book.targets.take()) {
            put(Table::Targets, a.account_id.clone(), a.targets.as_ref().map(json));
        }
        for (rule, subject) in signals {
            let row = self.signal(&rule, &subject).map(json);
            put(Table::Signals, format!("{rule}{SEP}{subject}"), row);
        }
        if model {
            self.model_rows(&mut |table, key, value| put(table, key, Some(value)));
        }
        for a in in_order(marks) {
            put(Table::RiskMarks, a.account_id.clone(), Some(json(&a.risk.marks)));
        }
        for a in in_order(history) {
            put(Table::RiskHistory, a.account_id.clone(), Some(json(&a.risk.history)));
        }
        for user in tax.books {
            put(Table::TaxBooks, user.clone(), self.tax.books.get(&user).map(TaxBook::header_row));
        }
        for (user, group) in tax.wash_ledger {
            let row = self.tax.books.get(&user).and_then(|b| b.ledger_group_row(&group));
            put(Table::WashLedger, format!("{user}{SEP}{group}"), row);
        }
        for (id, symbol) in tax.lots {
            let row = self.lots_of(&id, &symbol).map(|lots| lots_row(&id, &symbol, lots));
            put(Table::TaxLots, format!("{id}{SEP}{symbol}"), row);
        }
        for (user, n) in tax.wash_sales {
            let row = self.tax.wash_sales.get(&user).and_then(|w| w.get(n)).map(json);
            put(Table::WashSales, wash_key(&user, n), row);
        }
        out
    }

    /// Forgets the rows changed since the last drain without encoding them: a
    /// replay that keeps its state in memory (a point-in-time query) stores nothing.
    pub fn discard_changes(&mut self) {
        self.book.changed = Default::default();
        self.market.changed = Default::default();
        self.signals.changed = Default::default();
        self.risk.changed = Default::default();
        self.tax.changed = Default::default();
    }

    /// An (account, symbol)'s open lots; `None` when there are none.
    fn lots_of(&self, account_id: &str, symbol: &str) -> Option<&[Lot]> {
        let user = &self.book.accounts.get(account_id)?.user_id;
        let lots = self.tax.books.get(user)?.account(account_id)?.lots.lots(symbol);
        (!lots.is_empty()).then_some(lots)
    }

    fn model_rows(&self, put: &mut dyn FnMut(Table, String, Vec<u8>)) {
        put(Table::RiskModel, MODEL_SCALARS.to_string(), json(self.risk.model.scalars()));
        for i in 0..self.risk.model.len() as u32 {
            put(Table::RiskModel, self.risk.model.symbol(i).to_string(), self.risk.model.row(i).to_bytes());
        }
    }

    /// Every fact row of the shard, in table then key order: what a store holds
    /// after all changes were drained. The state digest is taken over these.
    pub fn facts(&self) -> Vec<Change> {
        self.facts_where(|_| true)
    }

    /// The fact rows of one table, in key order: a whole shard's rows table by
    /// table, for a digest of a state too large to hold twice.
    pub fn facts_of(&self, table: Table) -> Vec<Change> {
        self.facts_where(|t| t == table)
    }

    fn facts_where(&self, want: impl Fn(Table) -> bool) -> Vec<Change> {
        let mut out = Vec::new();
        let mut put = |table, key: String, value: Vec<u8>| out.push(Change { table, key, value: Some(value) });
        if want(Table::Accounts) {
            for (id, a) in self.book.accounts.iter() {
                put(Table::Accounts, id.clone(), json(a));
            }
        }
        if want(Table::Securities) {
            for sec in self.market.securities() {
                put(Table::Securities, sec.symbol.clone(), json(sec));
            }
        }
        if want(Table::Positions) {
            for (id, a) in self.book.accounts.iter() {
                for (s, p) in &a.positions {
                    put(Table::Positions, format!("{id}{SEP}{s}"), json(p));
                }
            }
        }
        if want(Table::Cash) {
            for (id, a) in self.book.accounts.iter() {
                put(Table::Cash, id.clone(), json(&a.cash));
            }
        }
        if want(Table::Prices) {
            for (s, p) in self.market.prices() {
                put(Table::Prices, s.to_string(), json(p));
            }
        }
        if want(Table::Targets) {
            for (id, a) in self.book.accounts.iter() {
                if let Some(t) = &a.targets {
                    put(Table::Targets, id.clone(), json(t));
                }
            }
        }
        if want(Table::Signals) {
            for (rule, subject, s) in self.signals() {
                put(Table::Signals, format!("{rule}{SEP}{subject}"), json(s));
            }
        }
        if want(Table::RiskModel) && self.risk.model.scalars().bar.is_some() {
            self.model_rows(&mut |table, key, value| put(table, key, value));
        }
        if want(Table::RiskMarks) || want(Table::RiskHistory) {
            for (id, a) in self.book.accounts.iter() {
                if want(Table::RiskMarks) {
                    put(Table::RiskMarks, id.clone(), json(&a.risk.marks));
                }
                if want(Table::RiskHistory) && a.risk.history != Default::default() {
                    put(Table::RiskHistory, id.clone(), json(&a.risk.history));
                }
            }
        }
        if want(Table::TaxBooks) || want(Table::WashLedger) || want(Table::TaxLots) {
            let mut users: Vec<(&String, &TaxBook)> = self.tax.books.iter().collect();
            users.sort_unstable_by(|x, y| x.0.cmp(y.0));
            for (user, book) in users {
                if want(Table::TaxBooks) {
                    put(Table::TaxBooks, user.clone(), book.header_row());
                }
                if want(Table::WashLedger) {
                    for (group, row) in book.ledger_group_rows() {
                        put(Table::WashLedger, format!("{user}{SEP}{group}"), row);
                    }
                }
                if want(Table::TaxLots) {
                    for (id, account) in book.accounts() {
                        for symbol in account.lots.symbols() {
                            let lots = account.lots.lots(symbol);
                            if !lots.is_empty() {
                                put(Table::TaxLots, format!("{id}{SEP}{symbol}"), lots_row(id, symbol, lots));
                            }
                        }
                    }
                }
            }
        }
        if want(Table::WashSales) {
            for (user, list) in &self.tax.wash_sales {
                for (n, w) in list.iter().enumerate() {
                    put(Table::WashSales, wash_key(user, n), json(w));
                }
            }
        }
        out.sort_by(|a, b| (a.table, &a.key).cmp(&(b.table, &b.key)));
        out
    }

    /// Loads one stored row. Accounts must be loaded before the rows that hang off
    /// them, which table order guarantees.
    pub fn load_fact(&mut self, table: Table, key: &str, value: &[u8]) -> Result<(), Rejection> {
        let bad =
            |e: serde_json::Error| Rejection::body(format!("stored {} row `{key}` is corrupt: {e}", table.name()));
        match table {
            Table::Accounts => {
                let a: Account = serde_json::from_slice(value).map_err(bad)?;
                self.book.accounts.insert(key.to_string(), a);
            }
            Table::Securities => {
                let s: Security = serde_json::from_slice(value).map_err(bad)?;
                self.market.load_security(key, s);
            }
            Table::Positions => {
                let p: Position = serde_json::from_slice(value).map_err(bad)?;
                let (id, symbol) =
                    key.split_once(SEP).ok_or_else(|| Rejection::body(format!("bad position key `{key}`")))?;
                self.account_for_load(id)?.positions.insert(symbol, p);
            }
            Table::Cash => {
                let c: Decimal = serde_json::from_slice(value).map_err(bad)?;
                self.account_for_load(key)?.cash = c;
            }
            Table::Prices => {
                let p: PriceInfo = serde_json::from_slice(value).map_err(bad)?;
                self.market.load_price(key, p);
            }
            Table::Targets => {
                let t: Targets = serde_json::from_slice(value).map_err(bad)?;
                self.account_for_load(key)?.targets = Some(t);
            }
            Table::Signals => {
                let s: SignalState = serde_json::from_slice(value).map_err(bad)?;
                let (rule, subject) =
                    key.split_once(SEP).ok_or_else(|| Rejection::body(format!("bad signal key `{key}`")))?;
                self.signals.load(rule, subject, s);
            }
            Table::RiskModel if key == MODEL_SCALARS => {
                self.risk.model.load_scalars(serde_json::from_slice(value).map_err(bad)?)
            }
            Table::RiskModel => {
                let row = SymbolModel::from_bytes(value)
                    .map_err(|e| Rejection::body(format!("stored risk_model row `{key}` is corrupt: {e}")))?;
                self.risk.model.load_row(key, row)
            }
            Table::RiskMarks => self.account_for_load(key)?.risk.marks = serde_json::from_slice(value).map_err(bad)?,
            Table::RiskHistory => {
                self.account_for_load(key)?.risk.history = serde_json::from_slice(value).map_err(bad)?
            }
            Table::TaxBooks => {
                let book = TaxBook::from_header_row(value).map_err(bad)?;
                self.tax.books.insert(key.to_string(), book);
            }
            Table::WashLedger => {
                let (user, group) =
                    key.split_once(SEP).ok_or_else(|| Rejection::body(format!("bad wash_ledger key `{key}`")))?;
                let book = self
                    .tax
                    .books
                    .get_mut(user)
                    .ok_or_else(|| Rejection::body(format!("stored wash ledger of `{user}` but no tax book")))?;
                book.load_ledger_group(group, value).map_err(bad)?;
            }
            Table::TaxLots => {
                let lots: Vec<Lot> = serde_json::from_slice(value).map_err(bad)?;
                let (id, symbol) =
                    key.split_once(SEP).ok_or_else(|| Rejection::body(format!("bad tax_lots key `{key}`")))?;
                let user = self.account_for_load(id)?.user_id.clone();
                let book = self.tax.books.get_mut(&user).ok_or_else(|| {
                    Rejection::body(format!("stored lots of `{id}` but no tax book for user `{user}`"))
                })?;
                if !book.load_lots(id, symbol, lots) {
                    return Err(Rejection::body(format!(
                        "stored lots of `{id}`, an account user `{user}`'s book lacks"
                    )));
                }
            }
            Table::WashSales => {
                let w: WashAdjustment = serde_json::from_slice(value).map_err(bad)?;
                let (user, n) =
                    key.split_once(SEP).ok_or_else(|| Rejection::body(format!("bad wash_sales key `{key}`")))?;
                let list = self.tax.wash_sales.entry(user.to_string()).or_default();
                // Keys sort by number (zero-padded), so rows arrive in order.
                if n.parse::<usize>().ok() != Some(list.len()) {
                    return Err(Rejection::body(format!("wash_sales row `{key}` is out of sequence")));
                }
                list.push(w);
            }
        }
        Ok(())
    }

    fn account_for_load(&mut self, id: &str) -> Result<&mut Account, Rejection> {
        self.book
            .accounts
            .get_mut(id)
            .ok_or_else(|| Rejection::body(format!("stored row refers to unknown account `{id}`")))
    }
}
