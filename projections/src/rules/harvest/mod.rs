//! `tax_loss_harvest`: taxable lots whose unrealized loss, net of the estimated
//! cost of selling, reaches `harvest_min_loss` and `harvest_min_loss_fraction` of
//! their basis, leaving out lots a sale would wash (shares of the same wash group
//! bought in the last 30 days in any of the user's accounts, the lot's own purchase
//! aside). The alert carries the candidates, the estimated tax benefit (net loss x
//! the configured short- or long-term rate) and replacement securities of the same
//! asset class and sector in another wash group.
//!
//! Cost on the tick path: each position keeps the value below which one of its
//! lots comes within the hysteresis margin of the thresholds (`harvest_below`), and
//! once there, the values at which its unblocked lots put the rule's level
//! (`cut.rs`); the lots are walked only when those change or a value is at a cut.

mod cut;

use std::collections::BTreeMap;

use riskstream_schemas::{Alert, AlertKind, Priority, TaxStatus, Timestamp};
use rust_decimal::Decimal;
use serde::Serialize;

use super::{Cause, Finding, Level, Rule};
use crate::state::{Account, ShardState, Slot};
use crate::tax::{term, Lot, TaxBook, Term, WASH_WINDOW_DAYS};
use crate::Name;

pub(crate) use cut::HarvestCut;

pub(crate) const HARVEST: Rule = Rule { kind: AlertKind::TaxLossHarvest, name: "tax_loss_harvest" };

/// Stands for "no threshold on this side" in a lot's score.
const UNBOUNDED: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// A lot worth selling for its loss.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HarvestLot {
    pub symbol: String,
    pub lot_id: String,
    pub quantity: Decimal,
    pub basis: Decimal,
    pub price: Decimal,
    pub value: Decimal,
    /// basis - value.
    pub unrealized_loss: Decimal,
    /// value x trading_cost.
    pub trading_cost: Decimal,
    /// unrealized_loss - trading_cost.
    pub net_loss: Decimal,
    /// The term if sold now.
    pub term: Term,
    pub tax_rate: Decimal,
    /// net_loss x tax_rate, to the cent.
    pub tax_benefit: Decimal,
}

/// A lot over the thresholds that a sale now would wash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockedLot {
    pub symbol: String,
    pub lot_id: String,
    pub net_loss: Decimal,
    pub wash_group: String,
    /// Until this UTC date (inclusive) a sale would be washed by the recent purchases.
    pub blocked_through: String,
}

/// The harvest candidates of an account at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HarvestView {
    pub account_id: String,
    pub user_id: String,
    pub tax_status: TaxStatus,
    /// Event time the candidates were judged at (the shard's latest).
    pub as_of: Timestamp,
    pub min_loss: Decimal,
    pub min_loss_fraction: Decimal,
    pub trading_cost: Decimal,
    pub short_term_rate: Decimal,
    pub long_term_rate: Decimal,
    /// Largest loss in a lot relative to its thresholds, as harvest_min_loss and
    /// harvest_min_loss_fraction see it: candidates score at least 1.
    pub best_score: Decimal,
    pub candidates: Vec<HarvestLot>,
    pub blocked: Vec<BlockedLot>,
    pub net_loss: Decimal,
    pub tax_benefit: Decimal,
    /// Candidate symbol -> same asset class and sector, another wash group.
    pub replacements: BTreeMap<String, Vec<String>>,
}

impl ShardState {
    /// The highest price at which some lot of a position comes within the
    /// hysteresis margin of the thresholds (`None`: no lot can at any price).
    pub(crate) fn harvest_trigger(&self, lots: &[Lot]) -> Option<Decimal> {
        let s = Decimal::ONE - self.config.hysteresis;
        lots.iter()
            .filter(|l| !l.quantity.is_zero())
            .filter_map(|l| cut::lot_trigger(l, &self.config.tax, s))
            .filter(|p| *p > Decimal::ZERO)
            .max()
    }

    /// A lot's loss against the thresholds, shown in the view (`best_score`): at
    /// least 1 for a candidate.
    fn harvest_score(&self, unrealized_loss: Decimal, net_loss: Decimal, basis: Decimal) -> Decimal {
        let cfg = &self.config.tax;
        if unrealized_loss <= Decimal::ZERO || net_loss <= Decimal::ZERO {
            return Decimal::ZERO;
        }
        let by_amount = if cfg.harvest_min_loss.is_zero() { UNBOUNDED } else { net_loss / cfg.harvest_min_loss };
        let by_fraction = if cfg.harvest_min_loss_fraction.is_zero() || basis <= Decimal::ZERO {
            UNBOUNDED
        } else {
            unrealized_loss / (cfg.harvest_min_loss_fraction * basis)
        };
        by_amount.min(by_fraction).min(UNBOUNDED)
    }

    /// Whether a lot's loss reaches `s` times both thresholds (`strict`: beyond
    /// them): score >= 1 <=> net loss >= min_loss and loss >= fraction x basis.
    /// The rule and the view decide candidates with it, by multiplication.
    fn lot_past(&self, loss: Decimal, net: Decimal, basis: Decimal, s: Decimal, strict: bool) -> bool {
        let cfg = &self.config.tax;
        let (by_amount, by_fraction) = (s * cfg.harvest_min_loss, s * cfg.harvest_min_loss_fraction * basis);
        let over = if strict { net > by_amount && loss > by_fraction } else { net >= by_amount && loss >= by_fraction };
        loss > Decimal::ZERO && net > Decimal::ZERO && over
    }

    /// The rule's level from the positions' cuts (computed again where stale); the
    /// exact walk of the lots decides when a value is at a cut. A position above its
    /// trigger (`harvest_below`) is above its cuts too, so all are compared.
    fn harvest_level(&mut self, slot: Slot, now: Timestamp) -> Level {
        let day = now.day();
        let mut refreshed = false;
        loop {
            let a = self.book.accounts.at(slot);
            let (mut level, mut stale) = (Level::Clear, false);
            for p in a.positions.values() {
                match p.harvest_cut.level(p.value_f, day) {
                    Some(Level::Breach) => return Level::Breach,
                    Some(Level::Hold) => level = Level::Hold,
                    Some(Level::Clear) => {}
                    None if p.harvest_cut.stale(day) && !refreshed => stale = true,
                    None => return self.harvest_level_at(slot, now),
                }
            }
            if !stale {
                return level;
            }
            self.refresh_harvest_cuts(slot, day);
            refreshed = true;
        }
    }

    /// Computes the cuts of the account's positions that are stale on `day`.
    fn refresh_harvest_cuts(&mut self, slot: Slot, day: i64) {
        let a = self.book.accounts.at(slot);
        let book = self.tax.books.get(&a.user_id);
        let lots = book.and_then(|b| b.account(&a.account_id)).map(|t| &t.lots);
        let (cfg, since, account_id) = (&self.config, day - WASH_WINDOW_DAYS, a.account_id.as_str());
        let cuts: Vec<Option<HarvestCut>> = a
            .positions
            .iter()
            .map(|(symbol, p)| {
                let (book, lots) = (book?, lots?);
                p.harvest_cut.stale(day).then(|| {
                    let group = self.market.wash_group(p.sym);
                    let blocked = |l: &Lot| washed_by(book, group, since, account_id, l).is_some();
                    HarvestCut::of(lots.lots(symbol), p.quantity, blocked, &cfg.tax, cfg.hysteresis, day)
                })
            })
            .collect();
        for (p, cut) in self.book.accounts.at_mut(slot).positions.values_mut().zip(cuts) {
            if let Some(cut) = cut {
                p.harvest_cut = cut;
            }
        }
    }

    /// Forgets every position's cuts: a security changed wash group, so which
    /// purchases block which lots may have changed anywhere.
    pub(crate) fn forget_every_harvest_cut(&mut self) {
        for (_, a) in self.book.accounts.slots_mut() {
            a.forget_harvest_cuts();
        }
    }

    /// Forgets the cuts of the user's positions in these wash groups: their lots or
    /// the group's wash ledger changed. A cut reads only its position's lots and the
    /// user's ledger of the position's group (the purchases that would wash a sale),
    /// and a trade or settlement changes only the lots and ledger of the groups it
    /// names (wash sale replacements are in the loss's group), so the user's other
    /// positions keep theirs.
    pub(crate) fn forget_harvest_cuts(&mut self, user_id: &str, groups: &[String]) {
        let Some(book) = self.tax.books.get(user_id) else { return };
        let (market, accounts) = (&self.market, &mut self.book.accounts);
        let groups: Vec<Name> = groups.iter().map(|g| Name::new(g)).collect();
        for (account_id, _) in book.accounts() {
            let Some(slot) = accounts.slot(account_id) else { continue };
            for p in accounts.at_mut(slot).positions.values_mut() {
                if groups.contains(&market.wash_group_name(p.sym)) {
                    p.harvest_cut = HarvestCut::Stale;
                }
            }
        }
    }

    /// The rule's level, exactly: breach when an unblocked lot is a candidate, hold
    /// when one is within the hysteresis margin, else clear. Looks only at positions
    /// past their trigger, compares by multiplication and allocates nothing.
    fn harvest_level_at(&self, slot: Slot, now: Timestamp) -> Level {
        let a = self.book.accounts.at(slot);
        let account_id = a.account_id.as_str();
        let cfg = &self.config.tax;
        let lots = self.tax.books.get(&a.user_id).and_then(|b| Some((b, &b.account(account_id)?.lots)));
        let Some((book, lots)) = lots else { return Level::Clear };
        let since = now.day() - WASH_WINDOW_DAYS;
        let floor = Decimal::ONE - self.config.hysteresis;
        let mut level = Level::Clear;
        for (symbol, p) in &a.positions {
            if !p.near_harvest() {
                continue;
            }
            let price = self.market.last_price(p.sym);
            for lot in lots.lots(symbol) {
                let value = lot.quantity * price;
                let loss = lot.basis - value;
                let net = loss - value * cfg.trading_cost;
                if !self.lot_past(loss, net, lot.basis, floor, true) {
                    continue;
                }
                let breach = self.lot_past(loss, net, lot.basis, Decimal::ONE, false);
                if !breach && level == Level::Hold {
                    continue;
                }
                let group = self.market.wash_group(p.sym);
                if washed_by(book, group, since, account_id, lot).is_some() {
                    continue;
                }
                if breach {
                    return Level::Breach;
                }
                level = Level::Hold;
            }
        }
        level
    }

    /// The account's harvest candidates at event time `now`.
    pub fn harvest_view_at(&self, account_id: &str, now: Timestamp) -> Option<HarvestView> {
        let a = self.book.accounts.get(account_id)?;
        let cfg = &self.config.tax;
        let mut view = HarvestView {
            account_id: a.account_id.clone(),
            user_id: a.user_id.clone(),
            tax_status: a.tax_status,
            as_of: now,
            min_loss: cfg.harvest_min_loss,
            min_loss_fraction: cfg.harvest_min_loss_fraction,
            trading_cost: cfg.trading_cost,
            short_term_rate: cfg.short_term_rate,
            long_term_rate: cfg.long_term_rate,
            best_score: Decimal::ZERO,
            candidates: Vec::new(),
            blocked: Vec::new(),
            net_loss: Decimal::ZERO,
            tax_benefit: Decimal::ZERO,
            replacements: BTreeMap::new(),
        };
        if a.tax_status != TaxStatus::Taxable {
            return Some(view);
        }
        let Some(book) = self.tax.books.get(&a.user_id) else { return Some(view) };
        let Some(lots) = book.account(account_id).map(|t| &t.lots) else { return Some(view) };
        let since = now.day() - WASH_WINDOW_DAYS;
        for (symbol, lot) in lots.open_lots_by_symbol() {
            let price = self.last_price(symbol);
            let value = lot.quantity * price;
            let unrealized_loss = lot.basis - value;
            let trading_cost = (value * cfg.trading_cost).round_dp(2);
            let net_loss = unrealized_loss - trading_cost;
            // Judged on the exact cost, as the positions' triggers are (the cent
            // rounding is for display).
            let exact_net = unrealized_loss - value * cfg.trading_cost;
            if !self.lot_past(unrealized_loss, exact_net, lot.basis, Decimal::ONE - self.config.hysteresis, false) {
                continue;
            }
            let candidate = self.lot_past(unrealized_loss, exact_net, lot.basis, Decimal::ONE, false);
            let group = self.market.wash_group_of(symbol);
            if let Some(latest) = washed_by(book, group, since, account_id, lot) {
                if candidate {
                    let through = crate::tax::date_of(latest.plus_seconds(WASH_WINDOW_DAYS * 86_400));
                    view.blocked.push(BlockedLot {
                        symbol: symbol.to_string(),
                        lot_id: lot.id(),
                        net_loss,
                        wash_group: group.to_string(),
                        blocked_through: through.to_string(),
                    });
                }
                continue;
            }
            view.best_score = view.best_score.max(self.harvest_score(unrealized_loss, exact_net, lot.basis));
            if !candidate {
                continue;
            }
            let term = term(lot.holding_start(), now);
            let tax_rate = match term {
                Term::Short => cfg.short_term_rate,
                Term::Long => cfg.long_term_rate,
            };
            let tax_benefit = (net_loss * tax_rate).round_dp(2);
            view.net_loss += net_loss;
            view.tax_benefit += tax_benefit;
            if !view.replacements.contains_key(symbol) {
                view.replacements.insert(symbol.to_string(), self.replacements_for(symbol));
            }
            view.candidates.push(HarvestLot {
                symbol: symbol.to_string(),
                lot_id: lot.id(),
                quantity: lot.quantity,
                basis: lot.basis,
                price,
                value,
                unrealized_loss,
                trading_cost,
                net_loss,
                term,
                tax_rate,
                tax_benefit,
            });
        }
        view.best_score = view.best_score.round_dp(6);
        Some(view)
    }

    /// Listed securities of the same asset class and sector in another wash group,
    /// in symbol order.
    fn replacements_for(&self, symbol: &str) -> Vec<String> {
        let Some(sec) = self.market.security_of(symbol) else { return Vec::new() };
        let mut like: Vec<&str> = (self.market.securities())
            .filter(|s| s.asset_class == sec.asset_class && s.sector == sec.sector && s.wash_group != sec.wash_group)
            .map(|s| s.symbol.as_str())
            .collect();
        like.sort_unstable();
        like.into_iter().take(self.config.tax.replacements).map(str::to_string).collect()
    }

    pub(crate) fn evaluate_harvest(&mut self, slot: Slot, cause: Cause, out: &mut Vec<Alert>) {
        let a = self.book.accounts.at(slot);
        if a.tax_status != TaxStatus::Taxable {
            return;
        }
        let near = a.harvest_near > 0;
        if !near && a.raised & Account::HARVEST == 0 {
            return;
        }
        let level = if near { self.harvest_level(slot, cause.ts) } else { Level::Clear };
        let now = cause.ts;
        let describe = move |s: &ShardState, a: &Account| finding(s, &a.account_id, now);
        self.step_account(HARVEST, Account::HARVEST, slot, level, cause, describe, out);
    }
}

/// The latest purchase in the lot's wash group (`group`) from UTC day `since` on,
/// other than the lot's own, that would wash a sale of the lot now.
fn washed_by(book: &TaxBook, group: &str, since: i64, account_id: &str, lot: &Lot) -> Option<Timestamp> {
    book.ledger().acquired_since(group, since, (account_id, &lot.trade_id))
}

fn finding(s: &ShardState, account_id: &str, now: Timestamp) -> Finding {
    let view = s.harvest_view_at(account_id, now).expect("evaluated accounts exist");
    let lots = view.candidates.len();
    let message = if lots == 0 {
        "no lot is a tax-loss harvesting candidate any more".to_string()
    } else {
        let symbols: Vec<&str> = view.replacements.keys().map(String::as_str).collect();
        format!(
            "{lots} lot(s) of {} can be sold for a net loss of {} (estimated tax benefit {})",
            symbols.join(", "),
            view.net_loss,
            view.tax_benefit
        )
    };
    Finding {
        value: view.net_loss,
        threshold: view.min_loss,
        priority: if view.tax_benefit >= view.min_loss { Priority::Medium } else { Priority::Low },
        message,
        // The candidates, not the whole view: blocked lots are for the API.
        details: Some(serde_json::json!({
            "candidates": view.candidates,
            "net_loss": view.net_loss,
            "tax_benefit": view.tax_benefit,
            "replacements": view.replacements,
        })),
    }
}
