//! The wash-sale ledger of one taxpayer (IRC section 1091; 26 CFR 1.1091-1 and
//! 1.1091-2; IRS Publication 550, "Wash Sales"). It sees every buy and every loss
//! of the user's taxable accounts, and decides which losses are disallowed and
//! which replacement shares carry them.
//!
//! The rules, and where each comes from:
//! - A loss is washed by substantially identical shares (one `wash_group`) acquired
//!   in any of the user's accounts within 30 calendar days (UTC event time) before
//!   or after the sale: day 30 counts, day 31 does not (1.1091-1(a)). Gains never
//!   wash; losses inside an IRA are not deductible anyway and are not considered.
//! - Losses are taken in order of sale (1.1091-1(b)); sales with one timestamp in
//!   order of the sold shares' acquisition (the rule 1.1091-1(b) gives when the order
//!   of sale is unknown), then sale trade id, then the order the sell closed lots.
//! - Replacement shares are matched in order of acquisition (1.1091-1(c), (d)); equal
//!   acquisition times in trade id order. A share that replaced one loss cannot
//!   replace another (1.1091-1(e)).
//! - Shares of the purchase being sold never replace its own loss: the rest of that
//!   purchase, unsold, is not a new acquisition (a lot cannot replace itself).
//! - A replacement share must still be held when the match is decided (the later of
//!   the sale and its acquisition): the disallowed loss goes into its basis
//!   (section 1091(d)), which shares already sold can no longer take without
//!   reopening a closed sale. So selling the whole position in every account, with
//!   no purchase within 30 days after, washes nothing. The regulation does not
//!   spell this out; the module doc of `tax` lists it with the other such choices.
//! - The disallowed loss is `loss x matched / sold` (exact, the last match takes the
//!   rest), added to the replacement shares' basis (1.1091-2), and the sold shares'
//!   holding period (in days) moves the replacement's holding-period start earlier
//!   (Pub. 550; IRC section 1223). Replacement shares in an IRA still wash the
//!   loss, but nothing is added to any basis (Rev. Rul. 2008-5): the loss is lost.
//!
//! Decisions are made per event timestamp, after every trade with that timestamp has
//! been seen: facts wait in `pending` until event time passes them (`settle`). Within
//! one timestamp the order is the canonical one above, never delivery order, so
//! shuffling events with equal timestamps changes nothing. A buy that arrives after
//! a loss sale within 30 days washes it then (a retroactive adjustment).
//!
//! Work stays inside the 61-day window: a new loss scans the supply of its window;
//! an old loss still waiting looks only at the new supply; facts older than the
//! window are dropped as event time passes.

use std::collections::BTreeMap;

use riskstream_schemas::Timestamp;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::lots::pro_rata;
use super::term::Term;
use super::{Id, IdMap};
use crate::short_list::ShortList;
use crate::Name;

/// Days either side of a sale in which an acquisition washes it.
pub const WASH_WINDOW_DAYS: i64 = 30;

/// Shares a buy brought in: candidates to replace a loss.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Supply {
    pub acquired: Timestamp,
    pub trade_id: Id,
    pub account_id: Name,
    pub symbol: Name,
}

impl Supply {
    fn key(&self) -> (Timestamp, &str, &str) {
        (self.acquired, &self.trade_id, &self.account_id)
    }
}

/// A closed piece of a taxable lot sold at a loss, with what is left to wash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Loss {
    pub sold: Timestamp,
    /// When the sold shares were acquired (the same-timestamp tie-break).
    pub lot_acquired: Timestamp,
    pub sale_trade_id: Id,
    /// Position among the pieces the sell closed.
    pub seq: u32,
    pub account_id: Name,
    pub symbol: Name,
    pub lot_id: Id,
    /// The purchase the sold shares came from.
    pub lot_trade_id: Id,
    pub holding_start: Timestamp,
    pub term: Term,
    /// Shares not matched yet.
    pub quantity: Decimal,
    /// Loss not disallowed yet (positive).
    pub loss: Decimal,
}

impl Loss {
    fn key(&self) -> (Timestamp, Timestamp, &str, u32) {
        (self.sold, self.lot_acquired, &self.sale_trade_id, self.seq)
    }

    /// Whether `s` are shares of the very purchase this loss sold.
    fn same_purchase(&self, s: &Supply) -> bool {
        s.trade_id == self.lot_trade_id && s.account_id == self.account_id && s.symbol == self.symbol
    }

    fn in_window(&self, acquired: Timestamp) -> bool {
        (acquired.day() - self.sold.day()).abs() <= WASH_WINDOW_DAYS
    }
}

/// A fact waiting for its timestamp to be settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Fact {
    Supply { group: String, supply: Supply },
    Loss { group: String, loss: Loss },
}

impl Fact {
    fn ts(&self) -> Timestamp {
        match self {
            Fact::Supply { supply, .. } => supply.acquired,
            Fact::Loss { loss, .. } => loss.sold,
        }
    }
}

/// The window's supply and waiting losses of one wash group, each in canonical order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GroupLedger {
    supply: ShortList<Supply>,
    losses: ShortList<Loss>,
}

/// One decision: `quantity` shares of `supply` replace part of `loss`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Match {
    pub loss: Loss,
    pub supply: Supply,
    pub quantity: Decimal,
    pub disallowed: Decimal,
}

impl Match {
    /// The sold shares' holding period in calendar days.
    pub fn carried_days(&self) -> i64 {
        self.loss.sold.day() - self.loss.holding_start.day()
    }
}

/// A washed loss, as the engine logs it: which loss, which replacement shares, how
/// much was disallowed and where it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WashAdjustment {
    pub sale_trade_id: String,
    pub loss_account_id: String,
    /// The symbol sold at a loss.
    pub symbol: String,
    /// The lot the loss sale closed.
    pub loss_lot_id: String,
    pub sold: Timestamp,
    /// Tax year and term of the loss sale, whose recognized loss shrinks.
    pub tax_year: i32,
    pub term: Term,
    pub replacement_account_id: String,
    /// The replacement shares' symbol (another symbol of the same wash group, or the same).
    pub replacement_symbol: String,
    /// The lot (split off when only part of a buy replaced the loss) that now holds
    /// the replacement shares.
    pub replacement_lot_id: String,
    pub replacement_trade_id: String,
    pub acquired: Timestamp,
    /// Replacement shares used (equal to the washed sold shares).
    pub quantity: Decimal,
    /// Loss disallowed (positive).
    pub disallowed: Decimal,
    /// False when the replacement shares are in an IRA: the loss is lost, and the
    /// IRA lot's basis and holding period stay as they were.
    pub added_to_basis: bool,
    /// Days of holding period carried to the replacement lot (0 when not added).
    pub holding_days_carried: i64,
    /// The replacement was acquired after the sale: the sale's loss, already
    /// reported, shrinks after the fact.
    pub retroactive: bool,
}

/// The wash-sale ledger of one user: every account, every wash group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WashLedger {
    groups: IdMap<GroupLedger>,
    /// Facts whose timestamp is not settled yet.
    pending: Vec<Fact>,
}

impl WashLedger {
    pub(crate) fn add(&mut self, fact: Fact) {
        self.pending.push(fact);
    }

    /// A ledger with these unsettled facts; the groups come with `load_group`.
    pub(crate) fn from_pending(pending: Vec<Fact>) -> WashLedger {
        WashLedger { groups: IdMap::default(), pending }
    }

    pub(crate) fn pending(&self) -> &[Fact] {
        &self.pending
    }

    pub(crate) fn groups(&self) -> impl Iterator<Item = (&str, &GroupLedger)> {
        self.groups.iter().map(|(g, l)| (g.as_str(), l))
    }

    pub(crate) fn group(&self, group: &str) -> Option<&GroupLedger> {
        self.groups.get(group)
    }

    pub(crate) fn shrink_to_fit(&mut self) {
        self.groups.shrink_to_fit();
    }

    pub(crate) fn load_group(&mut self, group: &str, ledger: GroupLedger) {
        self.groups.insert(group, ledger);
    }

    /// The groups that settling up to `now` changes: those of the pending facts
    /// before it (only they are decided and pruned).
    pub(crate) fn due_groups(&self, now: Timestamp) -> Vec<String> {
        let mut groups: Vec<String> = self
            .pending
            .iter()
            .filter(|f| f.ts() < now)
            .map(|f| match f {
                Fact::Supply { group, .. } | Fact::Loss { group, .. } => group.clone(),
            })
            .collect();
        groups.sort_unstable();
        groups.dedup();
        groups
    }

    /// The latest acquisition of shares of `group` on UTC day `first_day` or later
    /// (settled or not), other than by the purchase `(account_id, trade_id)`: while
    /// there is one, selling at a loss would be washed by it.
    pub fn acquired_since(&self, group: &str, first_day: i64, except: (&str, &str)) -> Option<Timestamp> {
        let other =
            |s: &&Supply| s.acquired.day() >= first_day && (s.account_id.as_str(), s.trade_id.as_str()) != except;
        let settled = self.groups.get(group).and_then(|g| {
            g.supply[g.supply.partition_point(|s| s.acquired.day() < first_day)..].iter().rev().find(other)
        });
        let pending = self.pending.iter().filter_map(|f| match f {
            Fact::Supply { group: g, supply } if g == group => Some(supply),
            _ => None,
        });
        settled.into_iter().chain(pending.filter(other)).map(|s| s.acquired).max()
    }

    /// Whether facts wait for their timestamp to be settled.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The facts of the earliest pending timestamp before `now`, taken out.
    pub(crate) fn next_due(&mut self, now: Timestamp) -> Option<(Timestamp, Vec<Fact>)> {
        let ts = self.pending.iter().map(Fact::ts).filter(|&ts| ts < now).min()?;
        let (due, rest) = std::mem::take(&mut self.pending).into_iter().partition(|f| f.ts() == ts);
        self.pending = rest;
        Some((ts, due))
    }

    /// Decides the wash sales of the facts of timestamp `ts`. `available` says how
    /// many shares of a supply can still replace a loss (held, never used).
    pub(crate) fn decide(
        &mut self,
        ts: Timestamp,
        facts: Vec<Fact>,
        available: impl Fn(&Supply) -> Decimal,
    ) -> Vec<Match> {
        let mut touched: Vec<String> = Vec::new();
        for fact in facts {
            let group = self.insert(fact);
            if !touched.contains(&group) {
                touched.push(group);
            }
        }
        touched.sort_unstable();
        self.prune(ts, &touched);
        let mut used: BTreeMap<(Name, Name, Id), Decimal> = BTreeMap::new();
        let mut out = Vec::new();
        for group in &touched {
            let ledger = self.groups.get_mut(group.as_str()).expect("inserted above");
            ledger.decide(ts, &available, &mut used, &mut out);
        }
        out
    }

    fn insert(&mut self, fact: Fact) -> String {
        match fact {
            Fact::Supply { group, supply } => {
                let ledger = self.groups.get_or_insert_with(&group, GroupLedger::default);
                let at = ledger.supply.partition_point(|s| s.key() < supply.key());
                ledger.supply.insert(at, supply);
                group
            }
            Fact::Loss { group, loss } => {
                let ledger = self.groups.get_or_insert_with(&group, GroupLedger::default);
                let at = ledger.losses.partition_point(|l| l.key() < loss.key());
                ledger.losses.insert(at, loss);
                group
            }
        }
    }

    /// Drops from `groups` what no sale at or after `ts` can reach: supply acquired
    /// more than 30 days before, losses whose window has closed or that are fully
    /// washed. Only the groups being decided are pruned, so a decision rewrites
    /// only their rows; the others keep stale entries, which every lookup filters
    /// by date anyway, until their next decision.
    fn prune(&mut self, ts: Timestamp, groups: &[String]) {
        let today = ts.day();
        for group in groups {
            let Some(ledger) = self.groups.get_mut(group.as_str()) else { continue };
            ledger.supply.retain(|s| s.acquired.day() >= today - WASH_WINDOW_DAYS);
            ledger.losses.retain(|l| !l.quantity.is_zero() && l.sold.day() + WASH_WINDOW_DAYS >= today);
            if ledger.supply.is_empty() && ledger.losses.is_empty() {
                self.groups.remove(group.as_str());
            }
        }
    }
}

/// Replacement shares taken so far in one decision round, per (account, symbol,
/// trade id): the books change only after the round.
type Used = BTreeMap<(Name, Name, Id), Decimal>;

impl GroupLedger {
    /// Losses in order of sale; a loss of `ts` scans the supply of its window, an
    /// older one only the supply of `ts` (it has exhausted the rest already).
    fn decide(
        &mut self,
        ts: Timestamp,
        available: &impl Fn(&Supply) -> Decimal,
        used: &mut Used,
        out: &mut Vec<Match>,
    ) {
        let today = ts.day();
        for loss in self.losses.iter_mut().filter(|l| !l.quantity.is_zero()) {
            let fresh = loss.sold == ts;
            let candidates = if fresh {
                let sold = loss.sold.day();
                acquired_between(&self.supply, sold - WASH_WINDOW_DAYS, sold + WASH_WINDOW_DAYS)
            } else {
                acquired_between(&self.supply, today, today)
            };
            let candidates = candidates.iter().filter(|s| fresh || s.acquired == ts);
            wash(loss, candidates, available, used, out);
        }
    }
}

/// The supply acquired on days `first..=last` (supply is in acquisition order).
fn acquired_between(supply: &[Supply], first: i64, last: i64) -> &[Supply] {
    let start = supply.partition_point(|s| s.acquired.day() < first);
    let end = supply.partition_point(|s| s.acquired.day() <= last);
    &supply[start..end.max(start)]
}

/// Matches a loss with the candidates in order until its shares are all matched.
fn wash<'a>(
    loss: &mut Loss,
    candidates: impl Iterator<Item = &'a Supply>,
    available: &impl Fn(&Supply) -> Decimal,
    used: &mut Used,
    out: &mut Vec<Match>,
) {
    for s in candidates {
        if loss.quantity.is_zero() {
            break;
        }
        if loss.same_purchase(s) || !loss.in_window(s.acquired) {
            continue;
        }
        let key = (s.account_id, s.symbol, s.trade_id.clone());
        let taken = used.get(&key).copied().unwrap_or_default();
        let free = available(s) - taken;
        if free <= Decimal::ZERO {
            continue;
        }
        let quantity = free.min(loss.quantity);
        let disallowed = pro_rata(loss.loss, quantity, loss.quantity);
        out.push(Match { loss: loss.clone(), supply: s.clone(), quantity, disallowed });
        loss.quantity -= quantity;
        loss.loss -= disallowed;
        used.insert(key, taken + quantity);
    }
}
