//! How each record changes a shard: `check` decides (without changing anything)
//! whether the event can apply; `apply` then changes the state and runs the rules
//! on exactly what the event touched.
//!
//! Decisions: selling more than is held is rejected (accounts are long-only;
//! shorts are out of scope). Cash may go negative: trades and withdrawals are
//! facts reported by upstream systems, and a debit balance is reported, not refused.

use riskstream_schemas::{
    AccountOpened, Alert, CashKind, CashMovement, Event, EventBody, RecordRef, Rejection, Side, Timestamp,
    TradeExecuted,
};
use rust_decimal::Decimal;

use crate::rules::{Cause, DriftRange};
use crate::state::{Account, AccountLimits, Limits, Position, Repricing, Security, ShardState, Slot, Targets};

impl ShardState {
    /// Stateful checks; stateless ones are `riskstream_schemas::validate`.
    pub fn check(&self, event: &Event) -> Result<(), Rejection> {
        match &event.body {
            EventBody::AccountOpened(e) => match self.book.accounts.get(&e.account_id) {
                Some(_) => Err(Rejection::field("account_id", format!("account `{}` is already open", e.account_id))),
                None => Ok(()),
            },
            EventBody::TradeExecuted(e) => self.check_trade(e),
            EventBody::CashMovement(CashMovement { account_id, user_id, .. }) => {
                self.owned(account_id, user_id).map(drop)
            }
            EventBody::TargetAllocationSet(e) => self.owned(&e.account_id, &e.user_id).map(drop),
            EventBody::RiskLimitsSet(e) => self.owned(&e.account_id, &e.user_id).map(drop),
            EventBody::SecurityListed(_)
            | EventBody::MarketTick(_)
            | EventBody::AlertPreferencesSet(_)
            | EventBody::PriceBatch(_) => Ok(()),
        }
    }

    fn owned(&self, account_id: &str, user_id: &str) -> Result<&Account, Rejection> {
        let a = self.book.accounts.get(account_id).ok_or_else(|| {
            Rejection::field("account_id", format!("unknown account `{account_id}` (send AccountOpened first)"))
        })?;
        if a.user_id != user_id {
            return Err(Rejection::field(
                "user_id",
                format!("account `{account_id}` belongs to user `{}`, not `{user_id}`", a.user_id),
            ));
        }
        Ok(a)
    }

    fn check_trade(&self, e: &TradeExecuted) -> Result<(), Rejection> {
        let a = self.owned(&e.account_id, &e.user_id)?;
        if self.market.security_of(&e.symbol).is_none() {
            return Err(Rejection::field(
                "symbol",
                format!("unknown symbol `{}` (send SecurityListed first)", e.symbol),
            ));
        }
        let held = a.positions.get(&e.symbol).map_or(Decimal::ZERO, |p| p.quantity);
        // Each bound is below 10^18, but their products are not: refuse a trade
        // whose money would overflow the decimal rather than stop the shard on it.
        let fits = || -> Option<()> {
            let notional = e.quantity.checked_mul(e.price)?.checked_add(e.fees)?;
            let value = held.checked_add(e.quantity)?.checked_mul(e.price)?;
            a.cash.checked_sub(notional)?.checked_add(notional)?.checked_add(notional)?;
            a.market_value.checked_add(value)?.checked_add(notional)?;
            Some(())
        };
        if fits().is_none() {
            return Err(Rejection::field(
                "quantity",
                format!(
                    "{} {} at {} is beyond the money a position can hold (28 significant digits)",
                    e.quantity, e.symbol, e.price
                ),
            ));
        }
        if e.side == Side::Sell && e.quantity > held {
            return Err(Rejection::field(
                "quantity",
                format!(
                    "selling {} {} but account `{}` holds {held} (short sales are not supported)",
                    e.quantity, e.symbol, e.account_id
                ),
            ));
        }
        self.check_tax(e)
    }

    /// Applies one record stored at `at`; returns the alerts it raised or cleared.
    /// Nothing changes when it is rejected.
    pub fn apply(&mut self, at: RecordRef, event: &Event) -> Result<Vec<Alert>, Rejection> {
        self.check(event)?;
        let cause = Cause { at, ts: event.ts };
        let mut alerts = Vec::new();
        self.now = self.now.max(event.ts);
        self.roll_bar(event.ts, cause, &mut alerts);
        self.settle_taxes(event.ts, cause, &mut alerts);
        if let Some(account_id) = event.body.account_id() {
            if self.book.accounts.contains_key(account_id) {
                self.roll_day(account_id, event.ts);
            }
        }
        match &event.body {
            EventBody::AccountOpened(e) => self.open_account(e, event),
            EventBody::SecurityListed(e) => {
                let sec = Security {
                    symbol: e.symbol.clone(),
                    asset_class: e.asset_class.as_str().into(),
                    sector: e.sector.as_str().into(),
                    wash_group: e.wash_group.as_str().into(),
                };
                if let Some(old) = self.market.list(sec) {
                    if old.wash_group.as_str() != e.wash_group {
                        self.forget_every_harvest_cut();
                    }
                }
            }
            EventBody::CashMovement(e) => {
                let signed = if e.kind.is_inflow() { e.amount } else { -e.amount };
                if matches!(e.kind, CashKind::Deposit | CashKind::Withdrawal) {
                    self.book_flow(&e.account_id, signed);
                }
                self.move_cash(&e.account_id, signed);
                self.evaluate_account(self.slot_of(&e.account_id), cause, &mut alerts);
            }
            EventBody::TradeExecuted(e) => {
                let washes = self.book_tax_trade(e, event.ts);
                self.trade(e, event);
                self.sync_basis(&e.account_id, &e.symbol);
                if !washes.is_empty() {
                    self.record_washes(&e.user_id, washes, cause, &mut alerts);
                }
                self.rebuild_book(&e.account_id);
                self.evaluate_account(self.slot_of(&e.account_id), cause, &mut alerts);
            }
            EventBody::MarketTick(t) => {
                self.reprice(std::iter::once((t.symbol.as_str(), t.price, event.ts)), cause, &mut alerts)
            }
            EventBody::PriceBatch(b) => {
                let at = |s: &str| b.times.get(s).copied().unwrap_or(event.ts);
                self.reprice(b.prices.iter().map(|(s, p)| (s.as_str(), p.0, at(s))), cause, &mut alerts)
            }
            EventBody::TargetAllocationSet(e) => {
                let weights = e.targets.iter().map(|(s, w)| (s.as_str(), w.0)).collect();
                let t = Targets { weights, band_abs: e.band_abs, band_rel: e.band_rel };
                let slot = self.slot_of(&e.account_id);
                let a = self.book.accounts.at_mut(slot);
                a.targets = Some(t);
                a.forget_ranges();
                self.book.changed.targets.insert(slot);
                self.evaluate_account(slot, cause, &mut alerts);
            }
            EventBody::RiskLimitsSet(e) => {
                let slot = self.slot_of(&e.account_id);
                let a = self.book.accounts.at_mut(slot);
                a.limits = AccountLimits::new(Limits::from(e));
                // New limits are the reset of the circuit breaker.
                a.risk.marks.reducing = false;
                self.book.changed.accounts.insert(slot);
                self.risk.changed.marks.insert(slot);
                self.evaluate_account(slot, cause, &mut alerts);
            }
            // Channel preferences belong to the notifier; the record is kept in the log.
            EventBody::AlertPreferencesSet(_) => {}
        }
        Ok(alerts)
    }

    fn slot_of(&self, account_id: &str) -> Slot {
        self.book.accounts.slot(account_id).expect("checked before apply")
    }

    fn open_account(&mut self, e: &AccountOpened, event: &Event) {
        let account = Account {
            account_id: e.account_id.clone(),
            user_id: e.user_id.clone(),
            tax_status: e.tax_status,
            base_currency: e.base_currency.clone(),
            opened_at: event.ts,
            limits: AccountLimits::default(),
            cash: Decimal::ZERO,
            positions: Default::default(),
            targets: None,
            market_value: Decimal::ZERO,
            mark: 0,
            raised: 0,
            harvest_near: 0,
            risk: Default::default(),
            drift: DriftRange::Unbuilt,
            largest: crate::rules::Largest::UNKNOWN,
        };
        let slot = self.book.accounts.insert(e.account_id.clone(), account);
        self.open_tax_account(&e.user_id, &e.account_id, e.tax_status);
        self.roll_day(&e.account_id, event.ts);
        // Stored from the start, whatever the day: `facts()` lists every account's marks.
        self.risk.changed.marks.insert(slot);
        self.book.changed.accounts.insert(slot);
        self.book.changed.cash.insert(slot);
    }

    fn move_cash(&mut self, account_id: &str, signed: Decimal) {
        let slot = self.slot_of(account_id);
        let a = self.book.accounts.at_mut(slot);
        a.cash += signed;
        a.market_value += signed;
        a.forget_fixed();
        self.book.changed.cash.insert(slot);
    }

    fn trade(&mut self, e: &TradeExecuted, event: &Event) {
        let sym = self.market.intern(&e.symbol);
        if self.market.price(sym).is_none() {
            // Until the first tick, the trade price is the best price known.
            self.market.set_price(sym, e.price, event.ts);
        }
        let price = self.market.last_price(sym);
        let (quantity_delta, cash_delta) = trade_effect(e);
        let slot = self.book.accounts.slot(&e.account_id).expect("checked before apply");
        let a = self.book.accounts.at_mut(slot);
        let new = !a.positions.contains_key(&e.symbol);
        // Slopes only matter while the range is kept (not `Unbuilt`, which builds them).
        let slopes = match (new, &a.drift) {
            (false, _) | (true, DriftRange::Unbuilt) => None,
            (true, _) => a.slopes_for(&e.symbol, &self.config),
        };
        let p = a.positions.get_or_insert_with(&e.symbol, || {
            let mut p = Position::new(Decimal::ZERO, Decimal::ZERO);
            p.sym = sym;
            p.slopes = slopes.unwrap_or_default();
            p
        });
        let old_value = p.value;
        // The basis comes from the lots (`sync_basis`).
        p.quantity += quantity_delta;
        p.set_value(p.quantity * price);
        a.market_value += p.value - old_value + cash_delta;
        a.cash += cash_delta;
        let emptied = p.quantity.is_zero();
        match (new, slopes) {
            // No targets (nothing kept) or unusable ones: build from the targets.
            (true, None) => a.forget_ranges(),
            _ => a.forget_fixed(),
        }
        match (new, emptied) {
            (true, true) => drop(a.positions.remove(&e.symbol)),
            (true, false) => {
                let at = a.positions.position(&e.symbol).expect("just inserted");
                self.book.opened(slot, at);
            }
            (false, true) => {
                let at = a.positions.position(&e.symbol).expect("held");
                let gone = a.positions.remove(&e.symbol).expect("held");
                self.book.closed(slot, at, &gone);
            }
            (false, false) => {}
        }
        self.book.changed.positions.push((slot, sym));
        self.book.changed.cash.insert(slot);
    }

    /// New last prices: O(holders) per symbol, then the rules once per touched
    /// account (account order) after the symbol rules (symbol order).
    fn reprice<'a>(
        &mut self,
        prices: impl Iterator<Item = (&'a str, Decimal, Timestamp)>,
        cause: Cause,
        out: &mut Vec<Alert>,
    ) {
        let mut moved = Vec::new();
        let mut opens = Vec::new();
        for (symbol, price, ts) in prices {
            let sym = self.market.intern(symbol);
            if self.market.set_price(sym, price, ts) {
                opens.push(sym);
            }
            moved.push(sym);
        }
        let with = Repricing {
            market: &self.market,
            model: &self.risk.model,
            marks: &mut self.risk.changed.marks,
            today: cause.ts.day(),
        };
        let touched = self.book.revalue_holders(&moved, with);
        if self.full_recompute {
            for &slot in &touched {
                let id = self.book.accounts.at(slot).account_id.clone();
                self.revalue_account(&id);
            }
        }
        for sym in moved {
            self.evaluate_market_move(sym, cause, out);
        }
        for sym in opens {
            self.evaluate_gap(sym, cause, out);
        }
        for slot in touched {
            self.evaluate_account(slot, cause, out);
        }
    }
}

/// What a trade changes in its account: (quantity of the symbol, cash). The
/// projection and the pre-trade check both book trades with it.
pub(crate) fn trade_effect(e: &TradeExecuted) -> (Decimal, Decimal) {
    let notional = e.quantity * e.price;
    match e.side {
        Side::Buy => (e.quantity, -(notional + e.fees)),
        Side::Sell => (-e.quantity, notional - e.fees),
    }
}

impl ShardState {
    /// Applies a record and discards its alerts (handy in tests and tools).
    pub fn apply_quiet(&mut self, at: RecordRef, event: &Event) -> Result<(), Rejection> {
        self.apply(at, event).map(drop)
    }
}
