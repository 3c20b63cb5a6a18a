//! What the API serves from the tax state: open lots valued at the last price,
//! realized figures per tax year and term, the wash sales decided, and the
//! pre-trade check (`what_if`), which works on copies and changes nothing.

use riskstream_schemas::{Event, EventBody, Rejection, TaxStatus, Timestamp, TradeExecuted};
use rust_decimal::Decimal;
use serde::Serialize;

use super::{term, Closed, LossRef, Realized, Term, WashAdjustment, YearFigures};
use crate::risk::build_book;
use crate::rules::HarvestView;
use crate::state::{Position, ShardState};
use crate::valuation::DriftLine;

/// One open lot at the last price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LotView {
    pub symbol: String,
    pub lot_id: String,
    pub trade_id: String,
    pub quantity: Decimal,
    /// Cost including fees plus any wash-sale adjustment.
    pub basis: Decimal,
    pub acquired: Timestamp,
    /// Moved earlier than `acquired` by a washed sale's holding period.
    pub holding_start: Timestamp,
    pub wash_adjustment: Decimal,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<LossRef>,
    pub price: Decimal,
    pub value: Decimal,
    /// value - basis (negative: a loss).
    pub unrealized: Decimal,
    /// The term if sold at `as_of`.
    pub term: Term,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LotsView {
    pub account_id: String,
    pub user_id: String,
    pub tax_status: TaxStatus,
    pub as_of: Timestamp,
    pub lots: Vec<LotView>,
    pub basis: Decimal,
    pub value: Decimal,
    pub unrealized: Decimal,
}

/// Realized figures of one term: Form 8949's columns (proceeds, basis, the wash
/// sale adjustment) and the gain that counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TermView {
    pub proceeds: Decimal,
    pub basis: Decimal,
    /// Losses disallowed by wash sales (positive).
    pub disallowed: Decimal,
    /// proceeds - basis + disallowed.
    pub gain: Decimal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct YearView {
    pub year: i32,
    pub short_term: TermView,
    pub long_term: TermView,
    pub gain: Decimal,
}

impl YearView {
    fn of(year: i32, f: &YearFigures) -> YearView {
        let t = |x: &super::Figures| TermView {
            proceeds: x.proceeds,
            basis: x.basis,
            disallowed: x.disallowed,
            gain: x.gain(),
        };
        let (short_term, long_term) = (t(&f.short), t(&f.long));
        YearView { year, short_term, long_term, gain: short_term.gain + long_term.gain }
    }
}

fn years(r: &Realized, year: Option<i32>) -> Vec<YearView> {
    r.years().filter(|(y, _)| year.is_none_or(|want| *y == want)).map(|(y, f)| YearView::of(y, f)).collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RealizedView {
    pub account_id: String,
    pub user_id: String,
    pub tax_status: TaxStatus,
    /// This account's sales; for an IRA these are not taxable events.
    pub account: Vec<YearView>,
    /// The user's taxable accounts together: what the user reports.
    pub user_taxable: Vec<YearView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WashSalesView {
    pub user_id: String,
    pub year: Option<i32>,
    pub wash_sales: Vec<WashAdjustment>,
    pub disallowed: Decimal,
}

/// The account's position in `WhatIf`: before or after the trade.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub market_value: Decimal,
    pub cash: Decimal,
    pub quantity: Decimal,
    pub in_band: bool,
    pub drift: Vec<DriftLine>,
    /// Parametric normal VaR over one bar at `confidence`, from the shard's
    /// covariance model (as in the risk view), in the base currency.
    pub var: f64,
    pub confidence: Decimal,
}

/// The pre-trade check: what a trade would do, computed on copies.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WhatIf {
    pub account_id: String,
    pub trade_id: String,
    pub ts: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opened_lot: Option<String>,
    pub closed: Vec<Closed>,
    /// Proceeds - basis of the closed lots, per term, before wash sales.
    pub short_term_gain: Decimal,
    pub long_term_gain: Decimal,
    /// The wash sales this trade would take part in (as the loss sale or as the
    /// replacement purchase), judged on the trades known so far.
    pub washes: Vec<WashAdjustment>,
    pub disallowed: Decimal,
    pub washes_a_loss: bool,
    pub before: Snapshot,
    pub after: Snapshot,
}

impl ShardState {
    pub fn lots_view(&self, account_id: &str) -> Option<LotsView> {
        let a = self.book.accounts.get(account_id)?;
        let book = self.tax.books.get(&a.user_id)?.account(account_id)?;
        let now = self.now;
        let lots: Vec<LotView> = book
            .lots
            .open_lots_by_symbol()
            .map(|(symbol, l)| {
                let price = self.last_price(symbol);
                let value = l.quantity * price;
                LotView {
                    symbol: symbol.to_string(),
                    lot_id: l.id(),
                    trade_id: l.trade_id.to_string(),
                    quantity: l.quantity,
                    basis: l.basis,
                    acquired: l.acquired,
                    holding_start: l.holding_start(),
                    wash_adjustment: l.wash_adjustment(),
                    replaces: l.replaces().cloned(),
                    price,
                    value,
                    unrealized: value - l.basis,
                    term: term(l.holding_start(), now),
                }
            })
            .collect();
        Some(LotsView {
            account_id: a.account_id.clone(),
            user_id: a.user_id.clone(),
            tax_status: a.tax_status,
            as_of: now,
            basis: lots.iter().map(|l| l.basis).sum(),
            value: lots.iter().map(|l| l.value).sum(),
            unrealized: lots.iter().map(|l| l.unrealized).sum(),
            lots,
        })
    }

    pub fn realized_view(&self, account_id: &str, year: Option<i32>) -> Option<RealizedView> {
        let a = self.book.accounts.get(account_id)?;
        let book = self.tax.books.get(&a.user_id)?;
        Some(RealizedView {
            account_id: a.account_id.clone(),
            user_id: a.user_id.clone(),
            tax_status: a.tax_status,
            account: years(book.account(account_id)?.lots.realized(), year),
            user_taxable: years(book.realized(), year),
        })
    }

    /// The user's wash sales, of the loss sale's tax year when one is given.
    pub fn wash_sales_view(&self, user_id: &str, year: Option<i32>) -> Option<WashSalesView> {
        self.tax.books.get(user_id)?;
        let all = self.tax.wash_sales.get(user_id).map_or(&[][..], Vec::as_slice);
        let wash_sales: Vec<WashAdjustment> =
            all.iter().filter(|w| year.is_none_or(|y| w.tax_year == y)).cloned().collect();
        Some(WashSalesView {
            user_id: user_id.to_string(),
            year,
            disallowed: wash_sales.iter().map(|w| w.disallowed).sum(),
            wash_sales,
        })
    }

    /// Harvest candidates at the shard's latest event time.
    pub fn harvest_view(&self, account_id: &str) -> Option<HarvestView> {
        self.harvest_view_at(account_id, self.now)
    }

    /// The user's tax book (lots of every account, the wash ledger, realized).
    pub fn tax_book(&self, user_id: &str) -> Option<&super::TaxBook> {
        self.tax.books.get(user_id)
    }

    /// The wash sales recorded for a user, in the order decided.
    pub fn wash_sales(&self, user_id: &str) -> &[WashAdjustment] {
        self.tax.wash_sales.get(user_id).map_or(&[], Vec::as_slice)
    }

    /// What `trade` would do at event time `ts` (the shard's latest when `None`),
    /// without changing anything. `Ok(None)` when the account is not in this shard.
    pub fn what_if(&self, trade: &TradeExecuted, ts: Option<Timestamp>) -> Result<Option<WhatIf>, Rejection> {
        let Some(account) = self.book.accounts.get(&trade.account_id) else { return Ok(None) };
        let ts = ts.unwrap_or(self.now);
        let event = Event { event_id: None, ts, body: EventBody::TradeExecuted(trade.clone()) };
        riskstream_schemas::validate(&event)?;
        self.check(&event)?;
        let mut book = self.tax.books.get(&account.user_id).expect("checked").clone();
        let group = self.market.wash_group_of(&trade.symbol).to_string();
        let outcome = book.trade(trade, ts, &group).map_err(super::shard::rejection)?;
        // Decide this timestamp with what is known now.
        let washes: Vec<WashAdjustment> = book
            .settle(Timestamp(ts.0.saturating_add(1)))
            .into_iter()
            .filter(|w| {
                (w.sale_trade_id == trade.trade_id && w.loss_account_id == trade.account_id)
                    || (w.replacement_trade_id == trade.trade_id && w.replacement_account_id == trade.account_id)
            })
            .collect();
        let gain = |t: Term| outcome.closed.iter().filter(|c| c.term == t).map(|c| c.gain).sum::<Decimal>();
        let before = self.snapshot(account, &trade.symbol, None);
        let mut after_account = account.clone();
        let price = self.market.price_of(&trade.symbol).map_or(trade.price, |p| p.price);
        let (quantity_delta, cash_delta) = crate::apply::trade_effect(trade);
        let p =
            after_account.positions.get_or_insert_with(&trade.symbol, || Position::new(Decimal::ZERO, Decimal::ZERO));
        p.quantity += quantity_delta;
        after_account.cash += cash_delta;
        if p.quantity.is_zero() {
            after_account.positions.remove(&trade.symbol);
        }
        let after = self.snapshot(&after_account, &trade.symbol, Some((trade.symbol.as_str(), price)));
        Ok(Some(WhatIf {
            account_id: trade.account_id.clone(),
            trade_id: trade.trade_id.clone(),
            ts,
            opened_lot: outcome.opened,
            short_term_gain: gain(Term::Short),
            long_term_gain: gain(Term::Long),
            closed: outcome.closed,
            disallowed: washes.iter().filter(|w| w.sale_trade_id == trade.trade_id).map(|w| w.disallowed).sum(),
            washes_a_loss: !washes.is_empty(),
            washes,
            before,
            after,
        }))
    }

    /// Value, drift and one-bar VaR of an account (a copy, in `what_if`); `priced`
    /// prices a symbol the shard has no price for yet.
    fn snapshot(&self, a: &crate::state::Account, symbol: &str, priced: Option<(&str, Decimal)>) -> Snapshot {
        let price_of = |s: &str| match (self.market.price_of(s), priced) {
            (Some(p), _) => p.price,
            (None, Some((t, p))) if t == s => p,
            _ => Decimal::ZERO,
        };
        let value_of = |s: &str, p: &Position| p.quantity * price_of(s);
        let total = a.cash + a.positions.iter().map(|(s, p)| value_of(s, p)).sum::<Decimal>();
        let view = self.view_with(a, total, value_of);
        let sigma = build_book(a, self).sigma();
        Snapshot {
            market_value: total,
            cash: a.cash,
            quantity: a.positions.get(symbol).map_or(Decimal::ZERO, |p| p.quantity),
            in_band: view.in_band,
            drift: view.drift,
            var: self.risk.model.params.z_limit * sigma,
            confidence: self.config.risk.limit_confidence,
        }
    }
}
