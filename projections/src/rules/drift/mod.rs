//! `drift`: a component of the target allocation is outside its band.
//!
//! The level is decided in two passes. The first is in f64, from each position's
//! f64 value (`Position::value_f`): a comparison that lands further than [`EDGE`]
//! (relative) from a band edge is decided there, since f64 rounding moves each
//! side by a few ulps (~1e-16) at most. When any comparison is closer than that,
//! the exact decimal pass decides, as it always did. Either way the level is the
//! exact one (`tests` below check it on generated books and on books built to sit
//! on an edge); the figures reported in an alert are always exact decimals.

mod interval;

use riskstream_schemas::Priority;
use rust_decimal::Decimal;

use interval::Allowed;
pub(crate) use interval::{DriftRange, Slopes};

use super::{pct, Finding, Level, EDGE};
use crate::config::RuleConfig;
use crate::risk::f64_of;
use crate::state::{Account, Targets};
use crate::valuation::{band, components, merged, weight, CASH};

impl Account {
    /// Brings the drift range (`interval.rs`) up to date: from the targets after a
    /// trade, cash or new targets, from the positions after a tick that loosened its
    /// bound.
    fn refresh_drift(&mut self, config: &RuleConfig) {
        let a = self;
        let fixed = match &a.drift {
            DriftRange::Fresh { .. } | DriftRange::Unusable => return,
            DriftRange::Stale { fixed, .. } => *fixed,
            DriftRange::Unbuilt | DriftRange::Unfixed => {
                let Some(targets) = a.targets.as_ref() else { return };
                let held_too = a.drift == DriftRange::Unbuilt;
                let shrink = Decimal::ONE - config.hysteresis;
                let cash = f64_of(a.cash);
                let slopes_of = |target: Decimal| slopes(target, targets, config, shrink);
                let mut fixed = Allowed::default();
                let mut usable = true;
                // A targeted symbol not held: fixed at zero (cash at its balance).
                let mut unheld = |symbol: &str, target: Decimal, usable: &mut bool| match slopes_of(target) {
                    Some(slopes) => fixed = fixed.meet(Allowed::of(&slopes, if symbol == CASH { cash } else { 0.0 })),
                    None => *usable = false,
                };
                // One merge of the two lists in symbol order: names compare as one
                // pointer when equal, the usual case (a held symbol is targeted).
                let mut wanted = targets.weights.iter().peekable();
                for (symbol, p) in a.positions.iter_mut() {
                    let mut target = Decimal::ZERO;
                    while let Some(&(w, &t)) = wanted.peek() {
                        if w >= symbol {
                            if w == symbol {
                                target = t;
                                wanted.next();
                            }
                            break;
                        }
                        unheld(w, t, &mut usable);
                        wanted.next();
                    }
                    if held_too {
                        match slopes_of(target) {
                            Some(slopes) => p.slopes = slopes,
                            None => usable = false,
                        }
                    }
                }
                for (w, &t) in wanted {
                    unheld(w, t, &mut usable);
                }
                if !usable {
                    a.drift = DriftRange::Unusable;
                    return;
                }
                fixed
            }
        };
        let now = a.positions.values().fold(fixed, |acc, p| acc.meet(Allowed::of(&p.slopes, p.value_f)));
        a.drift = DriftRange::Fresh { fixed, now };
    }

    /// The slopes of a position opening in `symbol`; `None` when the account has
    /// no targets or they are unusable.
    pub(crate) fn slopes_for(&self, symbol: &str, config: &RuleConfig) -> Option<Slopes> {
        let targets = self.targets.as_ref()?;
        let target = targets.weights.get(symbol).copied().unwrap_or_default();
        slopes(target, targets, config, Decimal::ONE - config.hysteresis)
    }

    /// `None` when the account has no targets or no positive value to weigh against.
    /// Decided by the account's range when it can (`interval.rs`): as it stands (a
    /// fresh range, or a stale one's inner part), else rebuilt; else by walking the
    /// components.
    pub(crate) fn drift_level(&mut self, config: &RuleConfig) -> Option<Level> {
        let total = self.market_value;
        if total <= Decimal::ZERO {
            return None;
        }
        // The range first: a range is built only from targets, and targets once set
        // stay set, so a range that decides needs neither them (they sit in a line a
        // tick does not otherwise load) nor a rebuild.
        let total_f = f64_of(total);
        if let Some(level) = self.drift.level(total_f) {
            return Some(level);
        }
        self.refresh_drift(config);
        if let Some(level) = self.drift.level(total_f) {
            return Some(level);
        }
        let a = &*self;
        let targets = a.targets.as_ref()?;
        let shrink = Decimal::ONE - config.hysteresis;
        let (band_abs, band_rel) =
            (targets.band_abs.unwrap_or(config.band_abs), targets.band_rel.unwrap_or(config.band_rel));
        let (abs_f, rel_f, cash_f) = (f64_of(band_abs), f64_of(band_rel), f64_of(a.cash));
        let approximate = merged(a, targets).map(|(symbol, position, target)| {
            let value = match (symbol, position) {
                (_, Some(p)) => p.value_f,
                (CASH, None) => cash_f,
                (_, None) => 0.0,
            };
            let target = f64_of(target);
            (value, target, abs_f.min(rel_f * target))
        });
        if let Some(level) = level_f64(approximate, f64_of(total), f64_of(shrink)) {
            return Some(level);
        }
        let exact = components(a, targets, config, |_, p| p.value).map(|c| (c.value, c.target, c.band));
        Some(level_exact(exact, total, shrink))
    }

    /// The component furthest outside its band, relative to the band.
    pub(crate) fn drift_finding(&self, config: &RuleConfig) -> Finding {
        let a = self;
        let total = a.market_value;
        let targets = a.targets.as_ref().expect("drift is only evaluated with targets");
        let comps: Vec<_> = components(a, targets, config, |_, p| p.value).collect();
        let score = |drift: Decimal, band: Decimal| {
            if band.is_zero() {
                if drift.is_zero() {
                    Decimal::ZERO
                } else {
                    Decimal::MAX
                }
            } else {
                drift / band
            }
        };
        let worst = comps
            .iter()
            .map(|c| (c, (weight(c.value, total) - c.target).abs()))
            .max_by(|(c1, d1), (c2, d2)| {
                // Ties go to the first symbol, so the message is stable.
                score(*d1, c1.band).cmp(&score(*d2, c2.band)).then_with(|| c2.symbol.cmp(c1.symbol))
            })
            .expect("targets are never empty");
        let (c, drift) = worst;
        let w = weight(c.value, total);
        let priority = if drift > c.band * Decimal::TWO { Priority::High } else { Priority::Medium };
        Finding {
            value: drift,
            threshold: c.band,
            priority,
            message: format!("{} weight {} vs target {} (band ±{})", c.symbol, pct(w), pct(c.target), pct(c.band)),
            details: None,
        }
    }
}

/// The slopes of a component at target weight `target`, with the targets' band.
fn slopes(target: Decimal, targets: &Targets, config: &RuleConfig, shrink: Decimal) -> Option<Slopes> {
    Slopes::of(target, band(target, targets, config), shrink)
}

/// The drift level of components (value, target weight, band) of an account worth
/// `total`: a breach when some |value - target x total| > band x total, clear when
/// every one is within band x shrink x total, else hold.
pub(crate) fn level_exact(
    components: impl Iterator<Item = (Decimal, Decimal, Decimal)>,
    total: Decimal,
    shrink: Decimal,
) -> Level {
    let mut clear = true;
    for (value, target, band) in components {
        let off = (value - target * total).abs();
        let band = band * total;
        if off > band {
            return Level::Breach;
        }
        clear &= off <= band * shrink;
    }
    if clear {
        Level::Clear
    } else {
        Level::Hold
    }
}

/// [`level_exact`] in f64; `None` when a comparison it needs is within [`EDGE`] of
/// its edge (then only the exact pass can tell).
pub(crate) fn level_f64(components: impl Iterator<Item = (f64, f64, f64)>, total: f64, shrink: f64) -> Option<Level> {
    let mut clear = true;
    let mut unsure = false;
    for (value, target, band) in components {
        let expected = target * total;
        let off = (value - expected).abs();
        let band = band * total;
        let margin = EDGE * (value.abs() + expected.abs() + band.abs());
        if off > band + margin {
            return Some(Level::Breach);
        }
        if off >= band - margin {
            // Maybe a breach: a later component may still be a sure one.
            unsure = true;
            continue;
        }
        let inner = band * shrink;
        if off > inner + margin {
            clear = false;
        } else if off >= inner - margin {
            unsure = true;
        }
    }
    if unsure {
        // A sure breach would have returned: the rest hangs on the exact pass.
        return None;
    }
    Some(if clear { Level::Clear } else { Level::Hold })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Components as the f64 pass sees them.
    fn approximate(components: &[(Decimal, Decimal, Decimal)]) -> Vec<(f64, f64, f64)> {
        components.iter().map(|(v, t, b)| (f64_of(*v), f64_of(*t), f64_of(*b))).collect()
    }

    fn decimal(units: i64, scale: u32) -> Decimal {
        Decimal::new(units, scale)
    }

    /// A component of a book worth `total`: a value, a target weight and a band.
    fn component() -> impl Strategy<Value = (Decimal, Decimal, Decimal)> {
        (0i64..50_000_000_000, 0u32..9, 0i64..10_000, 1i64..2_000)
            .prop_map(|(v, scale, t, b)| (decimal(v, scale), decimal(t, 4), decimal(b, 4)))
    }

    proptest! {
        /// Whenever the f64 pass decides, it decides the exact level.
        #[test]
        fn the_f64_pass_decides_only_what_the_exact_pass_decides(
            components in prop::collection::vec(component(), 1..25),
            total in (1i64..100_000_000_000, 0u32..6).prop_map(|(u, s)| decimal(u, s)),
            hysteresis in 0i64..5_000,
        ) {
            let shrink = Decimal::ONE - decimal(hysteresis, 4);
            let exact = level_exact(components.iter().copied(), total, shrink);
            if let Some(level) = level_f64(approximate(&components).into_iter(), f64_of(total), f64_of(shrink)) {
                prop_assert_eq!(level, exact);
            }
        }

        /// A component placed exactly on an edge (the band, or the band shrunk by the
        /// hysteresis), or one unit of its last place either side: the f64 pass
        /// cannot tell these apart, so it must leave them to the exact pass.
        #[test]
        fn a_component_on_a_band_edge_is_left_to_the_exact_pass(
            others in prop::collection::vec(component(), 0..10),
            total in (1i64..100_000_000_000, 0u32..4).prop_map(|(u, s)| decimal(u, s)),
            target in 1i64..10_000,
            band in 1i64..2_000,
            on_inner in any::<bool>(),
            nudge in -1i64..=1,
            above in any::<bool>(),
        ) {
            let (target, band) = (decimal(target, 4), decimal(band, 4));
            let shrink = Decimal::ONE - decimal(1, 1);
            let edge = if on_inner { band * shrink * total } else { band * total };
            let off = edge + Decimal::new(nudge, 28).max(-edge);
            let value = if above { target * total + off } else { target * total - off };
            let mut components = others.clone();
            components.push((value, target, band));
            let exact = level_exact(components.iter().copied(), total, shrink);
            if let Some(level) = level_f64(approximate(&components).into_iter(), f64_of(total), f64_of(shrink)) {
                // Only a sure breach of another component may decide the book.
                prop_assert_eq!(level, Level::Breach);
                prop_assert_eq!(exact, Level::Breach);
                prop_assert_eq!(level_exact(others.iter().copied(), total, shrink), Level::Breach);
            }
        }
    }

    #[test]
    fn an_exact_edge_is_deferred_and_a_clear_book_is_decided() {
        let (total, shrink) = (decimal(1_000_000, 0), Decimal::ONE - decimal(1, 1));
        // Target 50%, band 5%: a value of exactly 550,000 is on the band edge (in band).
        let on_edge = [(decimal(550_000, 0), decimal(5, 1), decimal(5, 2))];
        assert_eq!(level_exact(on_edge.iter().copied(), total, shrink), Level::Hold);
        assert_eq!(level_f64(approximate(&on_edge).into_iter(), 1e6, 0.9), None);
        let clear = [(decimal(500_001, 0), decimal(5, 1), decimal(5, 2))];
        assert_eq!(level_f64(approximate(&clear).into_iter(), 1e6, 0.9), Some(Level::Clear));
        let breach = [(decimal(600_000, 0), decimal(5, 1), decimal(5, 2))];
        assert_eq!(level_f64(approximate(&breach).into_iter(), 1e6, 0.9), Some(Level::Breach));
    }
}
