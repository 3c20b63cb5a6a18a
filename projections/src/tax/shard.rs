//! The tax lots inside a shard. A user's accounts all live in the user's shard
//! (placement is by `user_id`), so one `TaxBook` per user sees every account the
//! wash-sale rules span. This file keeps the books in step with the trades, turns
//! decided wash sales into stored records and, for purchases that wash losses
//! already reported, `wash_sale_risk` alerts, and keeps
//! each position's basis equal to its lots'.

use std::collections::{BTreeMap, BTreeSet};

use ahash::AHashMap as HashMap;

use riskstream_schemas::{Alert, AlertKind, AlertState, Priority, Rejection, TaxStatus, Timestamp, TradeExecuted};
use rust_decimal::Decimal;

use super::{date_of, TaxBook, TaxError, WashAdjustment};
use crate::rules::{alert_id, Cause};
use crate::state::{ShardState, Slot};

/// The shard's tax part: the users' tax books (lots and wash-sale ledger) and the
/// wash sales decided.
#[derive(Debug, Default)]
pub(crate) struct Taxes {
    /// Tax lots and wash-sale ledger per user (a user's accounts share a shard).
    /// Hashed: every trade looks its user up several times, and a B-tree of
    /// thousands of ids compares a dozen strings per lookup. `facts` sorts what it
    /// writes.
    pub books: HashMap<String, TaxBook>,
    /// Wash sales decided so far, per user, in the order decided.
    pub wash_sales: BTreeMap<String, Vec<WashAdjustment>>,
    /// Users whose wash ledger holds trades of a timestamp not settled yet.
    pub pending: BTreeSet<String>,
    pub changed: TaxChanges,
}

/// Tax rows touched since the last `drain_changes`.
#[derive(Debug, Default)]
pub(crate) struct TaxChanges {
    /// Users whose tax book header (statuses, realized, wash ledger) changed.
    pub books: BTreeSet<String>,
    /// (user, wash group) whose wash-ledger row changed.
    pub wash_ledger: BTreeSet<(String, String)>,
    /// (account, symbol) whose open lots changed.
    pub lots: BTreeSet<(String, String)>,
    /// (user, number) of wash sales recorded.
    pub wash_sales: BTreeSet<(String, usize)>,
}

/// A tax error as the rejection of the trade that caused it.
pub(crate) fn rejection(e: TaxError) -> Rejection {
    Rejection::field(e.field(), e.to_string())
}

impl ShardState {
    pub(crate) fn open_tax_account(&mut self, user_id: &str, account_id: &str, status: TaxStatus) {
        let book = self.tax.books.entry(user_id.to_string()).or_insert_with(|| TaxBook::new(user_id));
        book.open_account(account_id, status);
        self.tax.changed.books.insert(user_id.to_string());
    }

    /// Whether the lots accept the trade (method, named lots, duplicate buys).
    pub(crate) fn check_tax(&self, e: &TradeExecuted) -> Result<(), Rejection> {
        let book = self.tax.books.get(&e.user_id).ok_or_else(|| {
            Rejection::field("user_id", format!("user `{}` has no tax lots in this shard", e.user_id))
        })?;
        book.check(e).map_err(rejection)
    }

    /// Books a trade in its user's lots (after `check_tax`); the position's basis
    /// follows in `sync_basis`. Returns the wash sales the trade settled.
    pub(crate) fn book_tax_trade(&mut self, e: &TradeExecuted, ts: Timestamp) -> Vec<WashAdjustment> {
        let group = self.market.wash_group_of(&e.symbol).to_string();
        let book = self.tax.books.get_mut(&e.user_id).expect("checked before apply");
        let mut touched = book.groups_due(ts);
        for due in &touched {
            self.tax.changed.wash_ledger.insert((e.user_id.clone(), due.clone()));
        }
        let outcome = book.trade_checked(e, ts, &group).expect("checked before apply");
        if book.ledger().has_pending() {
            self.tax.pending.insert(e.user_id.clone());
        }
        self.tax.changed.books.insert(e.user_id.clone());
        self.tax.changed.lots.insert((e.account_id.clone(), e.symbol.clone()));
        touched.push(group);
        self.forget_harvest_cuts(&e.user_id, &touched);
        outcome.washes
    }

    /// Decides the wash sales of every pending timestamp before `now`, for every
    /// user with trades waiting (a later event of any kind moves event time on).
    pub(crate) fn settle_taxes(&mut self, now: Timestamp, cause: Cause, out: &mut Vec<Alert>) {
        if self.tax.pending.is_empty() {
            return;
        }
        let users: Vec<String> = self.tax.pending.iter().cloned().collect();
        for user in users {
            let book = self.tax.books.get_mut(&user).expect("pending users have books");
            let due = book.groups_due(now);
            if due.is_empty() {
                continue;
            }
            self.tax.changed.wash_ledger.extend(due.iter().map(|g| (user.clone(), g.clone())));
            let washes = book.settle(now);
            self.tax.changed.books.insert(user.clone());
            if !book.ledger().has_pending() {
                self.tax.pending.remove(&user);
            }
            self.forget_harvest_cuts(&user, &due);
            if !washes.is_empty() {
                self.record_washes(&user, washes, cause, out);
            }
        }
    }

    /// Stores decided wash sales and moves the replacement positions' basis. A
    /// purchase that washes losses already reported (retroactive adjustments) raises
    /// one `wash_sale_risk` alert per seller account: the correction, with every
    /// adjustment in its details. A loss washed by an earlier purchase raises none:
    /// the sale's own figures carry it from the start.
    pub(crate) fn record_washes(
        &mut self,
        user_id: &str,
        washes: Vec<WashAdjustment>,
        cause: Cause,
        out: &mut Vec<Alert>,
    ) {
        self.tax.changed.books.insert(user_id.to_string());
        let mut corrections: Vec<Vec<&WashAdjustment>> = Vec::new();
        for w in &washes {
            self.tax.changed.lots.insert((w.replacement_account_id.clone(), w.replacement_symbol.clone()));
            self.sync_basis(&w.replacement_account_id, &w.replacement_symbol);
            if !w.retroactive {
                continue;
            }
            let same = |c: &&mut Vec<&WashAdjustment>| {
                let first = c[0];
                (&first.replacement_account_id, &first.replacement_trade_id, &first.loss_account_id)
                    == (&w.replacement_account_id, &w.replacement_trade_id, &w.loss_account_id)
            };
            match corrections.iter_mut().find(same) {
                Some(group) => group.push(w),
                None => corrections.push(vec![w]),
            }
        }
        out.extend(corrections.iter().map(|group| correction_alert(group, user_id, cause)));
        let list = self.tax.wash_sales.entry(user_id.to_string()).or_default();
        for w in washes {
            self.tax.changed.wash_sales.insert((user_id.to_string(), list.len()));
            list.push(w);
        }
    }

    /// Sets a position's basis to its lots' and refreshes its harvest trigger.
    pub(crate) fn sync_basis(&mut self, account_id: &str, symbol: &str) {
        let Some(slot) = self.book.accounts.slot(account_id) else { return };
        self.set_basis_from_lots(slot, symbol);
        self.book.accounts.at_mut(slot).count_near_harvest();
    }

    /// `sync_basis` without the account's recount (a load recounts once per account).
    fn set_basis_from_lots(&mut self, slot: Slot, symbol: &str) {
        let a = self.book.accounts.at(slot);
        let account_id = a.account_id.as_str();
        let Some(book) = self.tax.books.get(&a.user_id) else { return };
        let Some(lots) = book.account(account_id).map(|t| t.lots.lots(symbol)) else { return };
        let basis: Decimal = lots.iter().map(|l| l.basis).sum();
        let taxable = a.tax_status == TaxStatus::Taxable;
        let trigger = if taxable { self.harvest_trigger(lots) } else { None };
        if let Some(p) = self.book.accounts.at_mut(slot).positions.get_mut(symbol) {
            if p.cost_basis != basis {
                p.cost_basis = basis;
                self.book.changed.positions.push((slot, p.sym));
            }
            p.harvest_below = trigger.map_or(f64::NEG_INFINITY, |price| {
                let below = crate::risk::f64_of(price * p.quantity);
                below + crate::rules::EDGE * below.abs()
            });
        }
    }

    /// Recomputes what the tax state derives after a load: pending users, each
    /// position's harvest trigger, and a lower bound of the event time reached (the
    /// engine sets the exact one from the log's last record with `observe_time`).
    pub(crate) fn rebuild_tax_derived(&mut self, account_ids: &[String]) {
        self.tax.pending =
            self.tax.books.iter().filter(|(_, b)| b.ledger().has_pending()).map(|(u, _)| u.clone()).collect();
        for id in account_ids {
            let slot = self.book.accounts.slot(id).expect("listed");
            let symbols: Vec<crate::Name> = self.book.accounts.at(slot).positions.keys().copied().collect();
            for symbol in symbols {
                self.set_basis_from_lots(slot, &symbol);
            }
            self.book.accounts.at_mut(slot).count_near_harvest();
        }
        let latest_price = self.market.prices().map(|(_, p)| p.ts).max();
        let latest_open = self.book.accounts.values().map(|a| a.opened_at).max();
        let latest_lot = self
            .tax
            .books
            .values()
            .flat_map(|b| b.accounts())
            .flat_map(|(_, a)| a.lots.open_lots())
            .map(|l| l.acquired)
            .max();
        let latest_wash = self.tax.wash_sales.values().flatten().map(|w| w.sold.max(w.acquired)).max();
        self.now = [latest_price, latest_open, latest_lot, latest_wash]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(Timestamp(i64::MIN))
            .max(self.now);
    }
}

/// The alert of one purchase washing earlier losses of one account.
impl ShardState {
    /// Moves the shard's clock (the latest event time applied) to at least `ts`:
    /// the views of lots and harvest candidates are as of it.
    pub fn observe_time(&mut self, ts: Timestamp) {
        self.now = self.now.max(ts);
    }

    /// The latest event time applied.
    pub fn clock(&self) -> Timestamp {
        self.now
    }
}

fn correction_alert(washes: &[&WashAdjustment], user_id: &str, cause: Cause) -> Alert {
    let rule = AlertKind::WashSaleRisk.as_str();
    let first = washes[0];
    let subject = format!("{}/{}", first.replacement_account_id, first.replacement_trade_id);
    let disallowed: Decimal = washes.iter().map(|w| w.disallowed).sum();
    let lost = washes.iter().any(|w| !w.added_to_basis);
    let mut sales: Vec<String> =
        washes.iter().map(|w| format!("`{}` ({})", w.sale_trade_id, date_of(w.sold))).collect();
    sales.dedup();
    let into = if lost {
        format!("lost: the replacement shares are in retirement account `{}`", first.replacement_account_id)
    } else {
        format!("added to the basis of the replacement shares in `{}`", first.replacement_account_id)
    };
    let message = format!(
        "correction: buying {} {} on {} washes the loss of sale {}: {disallowed} disallowed, {into}",
        washes.iter().map(|w| w.quantity).sum::<Decimal>(),
        first.replacement_symbol,
        date_of(first.acquired),
        sales.join(", "),
    );
    Alert {
        alert_id: alert_id(cause.at, rule, &subject, &first.loss_account_id),
        kind: AlertKind::WashSaleRisk,
        state: AlertState::Raised,
        priority: Priority::High,
        account_id: first.loss_account_id.clone(),
        user_id: user_id.to_string(),
        ts: cause.ts,
        caused_by: cause.at,
        rule: rule.to_string(),
        value: disallowed,
        threshold: Decimal::ZERO,
        message,
        details: Some(serde_json::json!({ "purchase": first.replacement_trade_id, "wash_sales": washes })),
    }
}
