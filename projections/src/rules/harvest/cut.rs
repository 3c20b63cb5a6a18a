//! The harvest rule's level from a position's value alone. Whether a lot is a
//! candidate (or within the hysteresis margin of one) is monotone in the price:
//! each condition is "loss or net loss above a bound", and both fall as the price
//! rises. So the lots that no recent purchase blocks put the position's level at
//! two values: breach at or below `breach`, hold below `hold`. Those depend on the
//! lots, the wash ledger and the day only, so they are computed once per change of
//! one of them (a trade or settlement of the user, a new day) and a tick compares.
//! A value within [`EDGE`] of either cut is left to the exact walk of the lots.

use rust_decimal::Decimal;

use crate::config::TaxConfig;
use crate::risk::f64_of;
use crate::rules::{Level, EDGE};
use crate::tax::Lot;

/// A position's harvest level as cuts on its value (f64, for the first pass only).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) enum HarvestCut {
    /// Not computed since the lots, the wash ledger or a security's group changed.
    #[default]
    Stale,
    /// For UTC day `day`: the position breaches at or below `breach` and holds below
    /// `hold` (`NEG_INFINITY`: at no value). Days as `i32` (event days are within
    /// ±10^8 of 1970), so the cut packs in 24 bytes: every position carries one.
    Fresh { day: i32, breach: f64, hold: f64 },
    /// For `day`, lots or settings the cuts cannot describe (a lot of no shares, a
    /// negative cost or threshold): the rule walks the lots.
    Walk { day: i32 },
}

impl HarvestCut {
    /// Whether it must be computed again for `day`.
    pub fn stale(&self, day: i64) -> bool {
        match *self {
            HarvestCut::Stale => true,
            HarvestCut::Fresh { day: d, .. } | HarvestCut::Walk { day: d } => i64::from(d) != day,
        }
    }

    /// The position's level at `value` on `day`; `None` when only the exact walk
    /// can tell (near a cut, or a cut that does not apply).
    pub fn level(&self, value: f64, day: i64) -> Option<Level> {
        let HarvestCut::Fresh { day: d, breach, hold } = *self else { return None };
        if i64::from(d) != day {
            return None;
        }
        if below(value, breach)? {
            return Some(Level::Breach);
        }
        Some(if below(value, hold)? { Level::Hold } else { Level::Clear })
    }

    /// The cuts of a position of `quantity` shares holding `lots`, of which those
    /// `blocked` says a sale now would wash are left out.
    pub fn of(
        lots: &[Lot],
        quantity: Decimal,
        blocked: impl Fn(&Lot) -> bool,
        cfg: &TaxConfig,
        hysteresis: Decimal,
        day: i64,
    ) -> HarvestCut {
        let day = day as i32;
        let floor = Decimal::ONE - hysteresis;
        let signs_ok = [cfg.trading_cost, cfg.harvest_min_loss, cfg.harvest_min_loss_fraction, floor]
            .iter()
            .all(|x| !x.is_sign_negative());
        if !signs_ok || quantity <= Decimal::ZERO || lots.iter().any(|l| l.quantity <= Decimal::ZERO) {
            return HarvestCut::Walk { day };
        }
        let (mut breach, mut hold) = (None::<Decimal>, None::<Decimal>);
        for lot in lots.iter().filter(|l| !blocked(l)) {
            let (Some(b), Some(h)) = (lot_trigger(lot, cfg, Decimal::ONE), lot_trigger(lot, cfg, floor)) else {
                return HarvestCut::Walk { day };
            };
            breach = Some(breach.map_or(b, |x| x.max(b)));
            hold = Some(hold.map_or(h, |x| x.max(h)));
        }
        // The price cut as a value of the whole position (all its shares are in lots).
        let value = |price: Option<Decimal>| price.map_or(f64::NEG_INFINITY, |p| f64_of(p) * f64_of(quantity));
        HarvestCut::Fresh { day, breach: value(breach), hold: value(hold) }
    }
}

/// The highest price at which the lot's net loss reaches `s` x `harvest_min_loss`
/// and its loss `s` x `harvest_min_loss_fraction` of its basis: the lower of the
/// prices where each condition turns. With the settings and `s` not negative, below
/// it both losses are also positive. `None` if the decimal overflows.
pub(crate) fn lot_trigger(lot: &Lot, cfg: &TaxConfig, s: Decimal) -> Option<Decimal> {
    // net = basis - q p (1 + cost) >= s x min_loss.
    let by_net =
        lot.basis.checked_sub(s.checked_mul(cfg.harvest_min_loss)?)?.checked_div(Decimal::ONE + cfg.trading_cost)?;
    // loss = basis - q p >= s x fraction x basis.
    let by_loss = lot.basis.checked_mul(Decimal::ONE.checked_sub(s.checked_mul(cfg.harvest_min_loss_fraction)?)?)?;
    by_net.min(by_loss).checked_div(lot.quantity)
}

/// Whether `value` is surely below `cut` (`Some(true)`), surely not (`Some(false)`),
/// or too close to tell.
fn below(value: f64, cut: f64) -> Option<bool> {
    if cut == f64::NEG_INFINITY {
        return Some(false);
    }
    let margin = EDGE * (value.abs() + cut.abs());
    if value < cut - margin {
        Some(true)
    } else if value > cut + margin {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use riskstream_schemas::*;

    use super::*;
    use crate::config::RuleConfig;
    use crate::state::ShardState;

    const SYMBOLS: [&str; 3] = ["AAA", "AAB", "BBB"];
    /// (account, tax status): one user, so purchases in any of them block sales in the others.
    const ACCOUNTS: [(&str, TaxStatus); 3] =
        [("a", TaxStatus::Taxable), ("b", TaxStatus::Taxable), ("i", TaxStatus::TraditionalIra)];

    #[derive(Debug, Clone)]
    enum Step {
        Buy(usize, usize, i64, i64),
        Sell(usize, usize, i64, i64),
        Tick(usize, i64),
        /// A price on the cut of an open lot (breach or hold), moved by `nudge` units
        /// of the last decimal place.
        OnCut(usize, usize, usize, bool, i64),
        Days(i64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => (0..3usize, 0..3usize, 1..200i64, 1_000..20_000i64).prop_map(|(a, s, q, p)| Step::Buy(a, s, q, p)),
            1 => (0..3usize, 0..3usize, 1..200i64, 1_000..20_000i64).prop_map(|(a, s, q, p)| Step::Sell(a, s, q, p)),
            4 => (0..3usize, 100..20_000i64).prop_map(|(s, p)| Step::Tick(s, p)),
            3 => (0..2usize, 0..3usize, 0..4usize, any::<bool>(), -1..=1i64)
                .prop_map(|(a, s, l, b, n)| Step::OnCut(a, s, l, b, n)),
            1 => (1..40i64).prop_map(Step::Days),
        ]
    }

    fn config() -> impl Strategy<Value = RuleConfig> {
        let d = Decimal::new;
        (prop::sample::select(vec![(d(0, 0), d(5, 2)), (d(5, 0), d(0, 0)), (d(50, 0), d(20, 2))]), 0..2i64, 0..2i64)
            .prop_map(move |((min_loss, fraction), cost, h)| {
                let mut c = RuleConfig::default();
                c.tax.harvest_min_loss = min_loss;
                c.tax.harvest_min_loss_fraction = fraction;
                c.tax.trading_cost = d(cost, 3);
                c.hysteresis = d(h, 1);
                c
            })
    }

    struct Book {
        state: ShardState,
        seq: u64,
        ts: Timestamp,
    }

    impl Book {
        fn apply(&mut self, body: EventBody) {
            self.seq += 1;
            self.ts = self.ts.plus_seconds(60);
            let event = Event { event_id: None, ts: self.ts, body };
            // Sells beyond the holding are rejected, as they would be live.
            let _ = self.state.apply(RecordRef { shard: 0, seq: self.seq }, &event);
        }

        fn tick(&mut self, symbol: &str, price: Decimal) {
            let prices = BTreeMap::from([(symbol.to_string(), price.into())]);
            self.apply(EventBody::PriceBatch(PriceBatch { prices, times: Default::default() }));
        }

        fn new(config: RuleConfig) -> Book {
            let mut book = Book { state: ShardState::new(0, config), seq: 0, ts: Timestamp(0) };
            for s in SYMBOLS {
                book.apply(EventBody::SecurityListed(SecurityListed {
                    symbol: s.into(),
                    asset_class: "equity".into(),
                    sector: "x".into(),
                    wash_group: s[..2].into(),
                }));
            }
            for (id, status) in ACCOUNTS {
                book.apply(EventBody::AccountOpened(AccountOpened {
                    account_id: id.into(),
                    user_id: "u".into(),
                    tax_status: status,
                    base_currency: "USD".into(),
                    holder_name: None,
                    holder_email: None,
                }));
            }
            book
        }

        fn step(&mut self, step: &Step) {
            let cents = |v: i64| Decimal::new(v, 2);
            match *step {
                Step::Buy(a, s, q, p) | Step::Sell(a, s, q, p) => {
                    let sell = matches!(step, Step::Sell(..));
                    self.apply(EventBody::TradeExecuted(TradeExecuted {
                        trade_id: format!("t{}", self.seq),
                        account_id: ACCOUNTS[a].0.into(),
                        user_id: "u".into(),
                        symbol: SYMBOLS[s].into(),
                        side: if sell { Side::Sell } else { Side::Buy },
                        quantity: Decimal::from(q),
                        price: cents(p),
                        fees: cents(q % 7),
                        lot_method: None,
                        lot_ids: vec![],
                    }))
                }
                Step::Tick(s, p) => self.tick(SYMBOLS[s], cents(p)),
                Step::OnCut(a, s, l, breach, nudge) => {
                    let cfg = &self.state.config;
                    let s_ = if breach { Decimal::ONE } else { Decimal::ONE - cfg.hysteresis };
                    let book = &self.state.tax.books["u"];
                    let lots = book.account(ACCOUNTS[a].0).map(|t| t.lots.lots(SYMBOLS[s])).unwrap_or(&[]);
                    let Some(cut) = lots.get(l).and_then(|lot| lot_trigger(lot, &cfg.tax, s_)) else { return };
                    let price = cut + Decimal::new(nudge, cut.scale());
                    if price > Decimal::ZERO {
                        self.tick(SYMBOLS[s], price);
                    }
                }
                Step::Days(n) => self.ts = Timestamp((self.ts.day() + n) * MICROS_PER_DAY),
            }
        }

        /// The levels the cuts give and the walk gives, per taxable account.
        fn levels(&mut self) -> Vec<(Level, Level)> {
            let now = self.state.now;
            ACCOUNTS[..2]
                .iter()
                .map(|(id, _)| {
                    let slot = self.state.book.accounts.slot(id).unwrap();
                    (self.state.harvest_level(slot, now), self.state.harvest_level_at(slot, now))
                })
                .collect()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// The level from the cuts is the walk's, after every step: trades in the
        /// user's other accounts (purchases block sales of the wash group for 30
        /// days), settlements, days passing, and prices on a lot's cut or one unit
        /// of the last place either side.
        #[test]
        fn the_cuts_decide_what_the_walk_decides(config in config(), steps in prop::collection::vec(step(), 1..60)) {
            let mut book = Book::new(config);
            for step in &steps {
                book.step(step);
                for (cut, walk) in book.levels() {
                    prop_assert_eq!(cut, walk, "after {:?}", step);
                }
            }
        }
    }

    /// The cuts decide away from them and leave a price on them to the walk.
    #[test]
    fn a_value_on_a_cut_is_left_to_the_walk() {
        let mut config = RuleConfig::default();
        config.tax.harvest_min_loss = Decimal::ZERO;
        let mut book = Book::new(config);
        book.step(&Step::Buy(0, 0, 10, 10_000));
        let lot = book.state.tax.books["u"].account("a").unwrap().lots.lots("AAA")[0].clone();
        let cfg = book.state.config.tax.clone();
        let breach_at = lot_trigger(&lot, &cfg, Decimal::ONE).unwrap();
        // A loss of 5% of the basis, 1,000.03 (10 x 100.00 and a 0.03 fee), binds:
        // at or below 95.00285 a share.
        assert_eq!(breach_at, Decimal::new(9_500_285, 5));
        let day = book.state.now.day();
        let cut_at = |book: &mut Book, price: Decimal| {
            book.tick("AAA", price);
            let slot = book.state.book.accounts.slot("a").unwrap();
            book.state.refresh_harvest_cuts(slot, day);
            let p = &book.state.book.accounts.at(slot).positions["AAA"];
            p.harvest_cut.level(p.value_f, day)
        };
        assert_eq!(cut_at(&mut book, Decimal::new(90, 0)), Some(Level::Breach));
        assert_eq!(cut_at(&mut book, breach_at), None);
        assert_eq!(cut_at(&mut book, breach_at + Decimal::new(1, 20)), None);
        // Hold below 95.502865 (a loss of 0.9 x 5%).
        assert_eq!(cut_at(&mut book, Decimal::new(9_520, 2)), Some(Level::Hold));
        assert_eq!(cut_at(&mut book, Decimal::new(99, 0)), Some(Level::Clear));
    }
}
