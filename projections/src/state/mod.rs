//! The per-shard projection: facts (persisted) plus in-memory indexes and running
//! sums that make a price change cost O(holders of the symbol).

mod accounts;
mod book;
mod market;

use riskstream_schemas::{TaxStatus, Timestamp};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::config::RuleConfig;
use crate::risk::{AccountRisk, Risk};
use crate::rules::Signals;
use crate::rules::{DriftRange, HarvestCut, Slopes};
use crate::tax::IdMap;
use crate::tax::{TaxBook, Taxes};

pub use crate::rules::SignalState;
pub use accounts::Accounts;
pub(crate) use accounts::{Bits, Slot, SlotSet};
pub(crate) use book::{Book, Repricing};
pub(crate) use market::{Market, Sym};
pub use market::{PriceInfo, Security};
/// An account's positions by symbol.
pub type Positions = crate::sorted_map::SortedMap<crate::Name, Position>;

/// Laid out in declaration order (`repr(C)`): what a tick reads and moves (the
/// symbol and holder entry, quantity, value, the harvest trigger, the drift slopes)
/// is one run of 72 bytes; the stored row is `quantity` then `cost_basis`, as before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[repr(C)]
pub struct Position {
    /// The symbol's index in the shard's [`Market`] (set when the position is
    /// opened or loaded), so the tick path and the rules reach its price, listing
    /// and holders without hashing the symbol.
    #[serde(skip)]
    pub(crate) sym: Sym,
    /// Its entry in the symbol's holders list (`Book::holders`).
    #[serde(skip)]
    pub(crate) holder: u32,
    pub quantity: Decimal,
    /// Running value at the last price (derived, not persisted). Set through
    /// [`Position::set_value`], which keeps `value_f` with it.
    #[serde(skip)]
    pub(crate) value: Decimal,
    /// `value` in f64 (within 2 ulp), for the rules' first, approximate pass
    /// (`rules/drift`); never a reported figure.
    #[serde(skip)]
    pub(crate) value_f: f64,
    /// At or below this value (f64) some lot may be close to a tax-loss harvesting
    /// candidate (taxable accounts; derived from the lots, not persisted): the tick
    /// path compares, the rule looks at the lots only then. The exact trigger raised
    /// by [`EDGE`](crate::rules::EDGE), so no position the exact one holds is missed
    /// (the rule then decides exactly); `NEG_INFINITY` when no lot can be.
    #[serde(skip)]
    pub(crate) harvest_below: f64,
    /// The position's drift component as bounds on the account's value (derived from
    /// the targets by `refresh_drift`; `rules/drift/interval.rs`).
    #[serde(skip)]
    pub(crate) slopes: Slopes,
    /// Tax basis: the sum of the open lots' basis (fees and wash-sale adjustments
    /// included).
    pub cost_basis: Decimal,
    /// Below `harvest_below`, the values at which the unblocked lots put the
    /// harvest rule's level (`rules/harvest/cut.rs`).
    #[serde(skip)]
    pub(crate) harvest_cut: HarvestCut,
}

impl Position {
    pub fn new(quantity: Decimal, cost_basis: Decimal) -> Self {
        Position {
            quantity,
            cost_basis,
            value: Decimal::ZERO,
            value_f: 0.0,
            harvest_below: f64::NEG_INFINITY,
            harvest_cut: HarvestCut::Stale,
            slopes: Slopes::default(),
            sym: Market::NONE,
            holder: u32::MAX,
        }
    }

    /// Sets the running value (and its f64 copy).
    #[inline]
    pub(crate) fn set_value(&mut self, value: Decimal) {
        self.value = value;
        self.value_f = crate::risk::f64_of(value);
    }

    /// Whether the position is at or below its harvest trigger.
    pub(crate) fn near_harvest(&self) -> bool {
        self.value_f <= self.harvest_below
    }

    /// Sets the running value; returns how `near_harvest` moved (+1, -1 or 0), for
    /// the account's count.
    #[inline]
    pub(crate) fn revalue(&mut self, value: Decimal) -> i32 {
        let was = self.near_harvest();
        self.set_value(value);
        i32::from(self.near_harvest()) - i32::from(was)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    /// Symbol (or `CASH`) -> target weight.
    pub weights: IdMap<Decimal>,
    pub band_abs: Option<Decimal>,
    pub band_rel: Option<Decimal>,
}

/// The account's limits (`RiskLimitsSet`); unset ones are not checked, except the
/// position weight, which falls back to the engine's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    pub max_position_weight: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_sector_weight: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_asset_class_weight: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_var: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cvar: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_drawdown: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_daily_loss: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_gross_leverage: Option<Decimal>,
}

impl Limits {
    /// Whether any limit the limit rules check is set (the position weight is
    /// concentration's, with a default).
    pub(crate) fn any_checked(&self) -> bool {
        [self.max_var, self.max_cvar, self.max_drawdown, self.max_daily_loss, self.max_gross_leverage]
            .iter()
            .chain([&self.max_sector_weight, &self.max_asset_class_weight])
            .any(Option::is_some)
    }
}

impl From<&riskstream_schemas::RiskLimitsSet> for Limits {
    fn from(e: &riskstream_schemas::RiskLimitsSet) -> Self {
        Limits {
            max_position_weight: e.max_position_weight,
            max_sector_weight: e.max_sector_weight,
            max_asset_class_weight: e.max_asset_class_weight,
            max_var: e.max_var,
            max_cvar: e.max_cvar,
            max_drawdown: e.max_drawdown,
            max_daily_loss: e.max_daily_loss,
            max_gross_leverage: e.max_gross_leverage,
        }
    }
}

/// An account's limits, boxed only when any is set: most accounts set none, and
/// every account would carry 160 bytes of unset limits. Reads as [`Limits`]; stored
/// as the same object either way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountLimits(Option<Box<Limits>>);

impl AccountLimits {
    pub fn new(limits: Limits) -> AccountLimits {
        AccountLimits((limits != Limits::default()).then(|| Box::new(limits)))
    }
}

impl std::ops::Deref for AccountLimits {
    type Target = Limits;

    fn deref(&self) -> &Limits {
        const NONE: Limits = Limits {
            max_position_weight: None,
            max_sector_weight: None,
            max_asset_class_weight: None,
            max_var: None,
            max_cvar: None,
            max_drawdown: None,
            max_daily_loss: None,
            max_gross_leverage: None,
        };
        self.0.as_deref().unwrap_or(&NONE)
    }
}

impl Serialize for AccountLimits {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for AccountLimits {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Limits::deserialize(deserializer).map(AccountLimits::new)
    }
}

/// Laid out in declaration order (`repr(C)`): what a tick reads and writes for each
/// holder (the running total, the batch mark, the harvest count, the tax status,
/// the largest value, the positions, the limits, the drift range, the performance
/// marks) sits together in the first five cache lines, not spread over the ten the
/// compiler's order used. The stored row is [`AccountRow`], whose field order is the
/// row's and not this one.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[repr(C)]
pub struct Account {
    /// Running total: positions at last price plus cash (derived, not persisted).
    #[serde(skip)]
    pub(crate) market_value: Decimal,
    /// The last price batch that touched the account (dedupes holders cheaply).
    #[serde(skip)]
    pub(crate) mark: u64,
    /// Positions at or below their harvest trigger (kept by `Position::revalue`),
    /// so the harvest rule skips an account in O(1).
    #[serde(skip)]
    pub(crate) harvest_near: u32,
    /// Which of drift, concentration and harvest are raised on the account: their
    /// signals, mirrored so an evaluation that cannot change one looks nothing up
    /// (`ShardState::step_account`).
    #[serde(skip)]
    pub(crate) raised: u8,
    pub tax_status: TaxStatus,
    /// The largest position value in f64 or a bound on it, kept by the tick path
    /// for concentration.
    #[serde(skip)]
    pub(crate) largest: crate::rules::Largest,
    #[serde(skip)]
    pub positions: Positions,
    pub limits: AccountLimits,
    /// The account values inside which no drift component leaves its band, so a
    /// tick decides drift with one comparison (`rules/drift/interval.rs`).
    #[serde(skip)]
    pub(crate) drift: DriftRange,
    /// Performance marks, exposures, variance and bar history (stored in the
    /// risk tables, not in the account row).
    #[serde(skip)]
    pub(crate) risk: AccountRisk,
    pub account_id: String,
    pub user_id: String,
    pub base_currency: String,
    pub opened_at: Timestamp,
    #[serde(skip)]
    pub cash: Decimal,
    #[serde(skip)]
    pub targets: Option<Targets>,
}

/// An account's stored row: its fields in the row's order (the account's own order
/// is its memory layout's).
#[derive(Serialize)]
struct AccountRow<'a> {
    account_id: &'a str,
    user_id: &'a str,
    tax_status: TaxStatus,
    base_currency: &'a str,
    opened_at: Timestamp,
    limits: &'a AccountLimits,
}

impl Serialize for Account {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        AccountRow {
            account_id: &self.account_id,
            user_id: &self.user_id,
            tax_status: self.tax_status,
            base_currency: &self.base_currency,
            opened_at: self.opened_at,
            limits: &self.limits,
        }
        .serialize(serializer)
    }
}

impl Account {
    /// Bits of [`Account::raised`].
    pub(crate) const DRIFT: u8 = 1;
    pub(crate) const CONCENTRATION: u8 = 2;
    pub(crate) const HARVEST: u8 = 4;

    /// Recounts the positions at or below their harvest trigger.
    pub(crate) fn count_near_harvest(&mut self) {
        self.harvest_near = self.positions.values().filter(|p| p.near_harvest()).count() as u32;
    }

    /// Moves the position at place `at` to `price` and what the account keeps with
    /// it (its total, the positions near harvest, the drift range, the largest
    /// value); returns the new value in f64.
    #[inline]
    pub(crate) fn revalue_at(&mut self, at: usize, price: Decimal) -> f64 {
        let p = self.positions.at_mut(at);
        let (new_value, was) = (p.quantity * price, p.value_f);
        self.market_value += new_value - p.value;
        self.harvest_near = self.harvest_near.saturating_add_signed(p.revalue(new_value));
        self.drift.moved(&p.slopes, was, p.value_f);
        crate::rules::track_largest(&mut self.largest, was, p.value_f);
        p.value_f
    }

    /// Forgets every position's harvest cuts (its lots or the wash ledger changed).
    pub(crate) fn forget_harvest_cuts(&mut self) {
        self.positions.values_mut().for_each(|p| p.harvest_cut = HarvestCut::Stale);
    }

    /// Forgets what the ticks keep (the drift range with the positions' slopes, the
    /// largest value) after a change they do not follow: new targets, a
    /// revaluation, a load.
    pub(crate) fn forget_ranges(&mut self) {
        self.drift = DriftRange::Unbuilt;
        self.largest = crate::rules::Largest::UNKNOWN;
    }

    /// [`Account::forget_ranges`] after a trade or cash: the targets did not change,
    /// so the positions keep their slopes (a position the trade opens gets its own).
    pub(crate) fn forget_fixed(&mut self) {
        if matches!(self.drift, DriftRange::Fresh { .. } | DriftRange::Stale { .. }) {
            self.drift = DriftRange::Unfixed;
        }
        self.largest = crate::rules::Largest::UNKNOWN;
    }

    /// Market value as maintained incrementally.
    pub fn market_value(&self) -> Decimal {
        self.market_value
    }
}

/// Everything one shard knows, in the parts rules read: the book (accounts and their
/// positions, cash and targets; who holds what), the market (securities and last
/// prices), the rules' signals, the covariance model and the users' tax books. Each
/// part records its own changed rows for `drain_changes`. Accounts sit in dense slots
/// (`Accounts`), found by id in O(1) and named by slot on the tick path; everything
/// that leaves the shard (facts, alerts) is put in key order.
#[derive(Debug)]
pub struct ShardState {
    pub(crate) shard: u32,
    pub(crate) config: RuleConfig,
    pub(crate) book: Book,
    pub(crate) market: Market,
    pub(crate) signals: Signals,
    pub(crate) risk: Risk,
    pub(crate) tax: Taxes,
    /// Baseline for the load tester: revalue every position of each touched
    /// account from scratch instead of by running sums.
    pub(crate) full_recompute: bool,
    /// The latest event time applied (derived; rebuilt from the facts on load).
    pub(crate) now: Timestamp,
}

impl ShardState {
    pub fn new(shard: u32, config: RuleConfig) -> Self {
        ShardState {
            shard,
            config: config.clone(),
            book: Book::default(),
            market: Market::default(),
            signals: Signals::default(),
            risk: Risk::new(&config.risk),
            tax: Taxes::default(),
            full_recompute: false,
            now: Timestamp(i64::MIN),
        }
    }

    /// Switches to the naive baseline (same results, more work per tick).
    pub fn set_full_recompute(&mut self, on: bool) {
        self.full_recompute = on;
    }

    /// Recomputes one account's position values and total from facts.
    pub(crate) fn revalue_account(&mut self, account_id: &str) {
        let market = &self.market;
        if let Some(a) = self.book.accounts.get_mut(account_id) {
            let mut total = a.cash;
            for p in a.positions.values_mut() {
                p.set_value(p.quantity * market.last_price(p.sym));
                total += p.value;
            }
            a.market_value = total;
            a.count_near_harvest();
            a.forget_ranges();
        }
        self.rebuild_book(account_id);
    }

    pub fn shard(&self) -> u32 {
        self.shard
    }

    pub fn config(&self) -> &RuleConfig {
        &self.config
    }

    pub fn account(&self, account_id: &str) -> Option<&Account> {
        self.book.accounts.get(account_id)
    }

    /// All accounts, in no particular order.
    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.book.accounts.values()
    }

    pub fn security(&self, symbol: &str) -> Option<&Security> {
        self.market.security_of(symbol)
    }

    pub fn price(&self, symbol: &str) -> Option<&PriceInfo> {
        self.market.price_of(symbol)
    }

    /// Every priced symbol, in no particular order.
    pub fn prices(&self) -> impl Iterator<Item = (&'static str, &PriceInfo)> + '_ {
        self.market.prices()
    }

    /// Every (rule, subject, state), in no particular order.
    pub fn signals(&self) -> impl Iterator<Item = (&str, &str, &SignalState)> {
        self.signals.iter()
    }

    pub(crate) fn signal(&self, rule: &str, subject: &str) -> Option<&SignalState> {
        self.signals.get(rule, subject)
    }

    pub fn account_count(&self) -> usize {
        self.book.accounts.len()
    }

    pub fn position_count(&self) -> usize {
        self.book.accounts.values().map(|a| a.positions.len()).sum()
    }

    pub(crate) fn last_price(&self, symbol: &str) -> Decimal {
        self.market.last_price_of(symbol)
    }

    /// Recomputes every derived value from the facts: the holders index and the
    /// running sums. Used after loading facts from a store.
    pub fn rebuild_derived(&mut self) {
        let market = &mut self.market;
        for (_, account) in self.book.accounts.slots_mut() {
            let mut total = account.cash;
            for (symbol, position) in account.positions.iter_mut() {
                position.sym = market.intern(symbol);
                position.set_value(position.quantity * market.last_price(position.sym));
                total += position.value;
            }
            account.market_value = total;
            account.forget_ranges();
            account.positions.shrink_to_fit();
        }
        // A load grows its lists by pushing; what it leaves as room would stay
        // unused until the book grows that much again.
        self.book.accounts.shrink_to_fit();
        self.tax.books.values_mut().for_each(TaxBook::shrink_to_fit);
        self.book.rebuild_holders();
        self.risk.model.finish_load();
        let ids: Vec<String> = self.book.accounts.keys().cloned().collect();
        for id in &ids {
            self.rebuild_book(id);
        }
        self.rebuild_tax_derived(&ids);
        self.mirror_raised();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_limits_box_only_what_is_set_and_store_the_same_object() {
        let unset = AccountLimits::new(Limits::default());
        assert!(unset.0.is_none());
        assert_eq!(serde_json::to_string(&unset).unwrap(), serde_json::to_string(&Limits::default()).unwrap());

        let set = Limits { max_var: Some(crate::dec(25, 3)), ..Limits::default() };
        let boxed = AccountLimits::new(set);
        assert_eq!((boxed.0.is_some(), boxed.max_var), (true, Some(crate::dec(25, 3))));
        let row = serde_json::to_string(&boxed).unwrap();
        assert_eq!(row, serde_json::to_string(&set).unwrap());
        assert_eq!(serde_json::from_str::<AccountLimits>(&row).unwrap(), boxed);
        assert_eq!(serde_json::from_str::<AccountLimits>(&serde_json::to_string(&unset).unwrap()).unwrap().0, None);
    }
}

#[cfg(test)]
mod layout {
    use std::mem::offset_of;

    use super::Account;

    /// What `Book::revalue_holders` and `evaluate_account` read for every touched
    /// account lies in the lines `Accounts::prefetch` loads.
    #[test]
    fn the_fields_a_tick_reads_sit_in_the_prefetched_lines() {
        let lines = super::accounts::TICK_LINES * 64;
        let hot = [
            ("market_value", offset_of!(Account, market_value) + 16),
            ("mark", offset_of!(Account, mark) + 8),
            ("tax_status", offset_of!(Account, tax_status) + 1),
            ("largest", offset_of!(Account, largest) + 16),
            ("positions", offset_of!(Account, positions) + 24),
            ("limits", offset_of!(Account, limits) + 8),
            ("drift", offset_of!(Account, drift) + std::mem::size_of::<crate::rules::DriftRange>()),
            ("risk marks", offset_of!(Account, risk) + std::mem::size_of::<crate::risk::RiskMarks>()),
        ];
        for (field, end) in hot {
            assert!(end <= lines, "{field} ends at byte {end}, past the {lines} bytes a tick prefetches");
        }
    }
}
