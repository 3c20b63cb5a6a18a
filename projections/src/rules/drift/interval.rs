//! The interval form of the drift check (DESIGN.md, "the tick path").
//!
//! A component (value v, target t, band b) is inside its band iff
//! `(t - b) x V <= v <= (t + b) x V`, and so bounds the account's value V from
//! below, from above, or not at all. Every component inside its band means V lies
//! in the intersection of those ranges; the same holds for the clear level with the
//! band shrunk by the hysteresis. Each account keeps both intersections in f64. A
//! price move changes one position's range: the intersection follows in O(1),
//! unless the range that bound it loosens, when the account's positions are walked
//! again (`DriftRange::Stale`). So a tick costs each holder one comparison of V.
//!
//! The slopes `t - b`, `t + b`, `t - b x shrink`, `t + b x shrink` are exact
//! decimals rounded once to f32 (every position keeps four: 16 bytes rather than
//! 32), and each bound is one f64 division of a value within 2 ulp: a bound is
//! within 2^-24 (6e-8) of the exact one, relative. A comparison is decided only
//! when V is further than [`MARGIN`] (relative) from the bound, so the level
//! decided is the exact one; closer, the caller walks the components (f64 first,
//! exact decimals near an edge).

use rust_decimal::Decimal;

use super::super::Level;
use crate::risk::f64_of;

const INF: f64 = f64::INFINITY;

/// How far (relative) V must be from a bound for the range to decide: sixteen
/// times the f32 slope's rounding, so the level decided is the exact one.
const MARGIN: f64 = 1e-6;

/// Under this (relative to t + b), `t - b` is the difference of two close numbers:
/// its f64 bound would say little, so the account is left to the walk.
const CANCELLED: f64 = 1e-9;

/// A component's constraints `k x V <= v` and `v <= m x V`, as (k, m), for the
/// band (breach) and for the band shrunk by the hysteresis (clear).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Slopes {
    breach: (f32, f32),
    clear: (f32, f32),
}

impl Slopes {
    /// `None` when `t - b` (or `t - b x shrink`) nearly cancels.
    pub fn of(target: Decimal, band: Decimal, shrink: Decimal) -> Option<Slopes> {
        let inner = band * shrink;
        let slope = |low: Decimal| {
            let (k, scale) = (f64_of(low), f64_of(target) + f64_of(band));
            (k == 0.0 || k.abs() >= CANCELLED * scale).then_some(k as f32)
        };
        Some(Slopes {
            breach: (slope(target - band)?, f64_of(target + band) as f32),
            clear: (slope(target - inner)?, f64_of(target + inner) as f32),
        })
    }
}

/// A range of account values, `lo..=hi` (lo >= 0; `lo = INF` allows none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Range {
    lo: f64,
    hi: f64,
}

impl Range {
    const ALL: Range = Range { lo: 0.0, hi: INF };

    /// The values V for which `k x V <= v <= m x V`.
    fn of((k, m): (f32, f32), v: f64) -> Range {
        let (k, m) = (f64::from(k), f64::from(m));
        let mut r = Range::ALL;
        if k > 0.0 {
            r.hi = v / k;
        } else if k < 0.0 {
            r.lo = r.lo.max(v / k);
        } else if v < 0.0 {
            r.lo = INF;
        }
        if m > 0.0 {
            r.lo = r.lo.max(v / m);
        } else if m < 0.0 {
            r.hi = r.hi.min(v / m);
        } else if v > 0.0 {
            r.lo = INF;
        }
        r
    }

    fn meet(self, other: Range) -> Range {
        Range { lo: self.lo.max(other.lo), hi: self.hi.min(other.hi) }
    }

    /// Moves the intersection as one of its ranges goes from `old` to `new`; false
    /// when the range that bound it loosened (only a walk can tell the new bound).
    fn replace(&mut self, old: Range, new: Range) -> bool {
        if new.lo >= self.lo {
            self.lo = new.lo;
        } else if old.lo == self.lo {
            return false;
        }
        if new.hi <= self.hi {
            self.hi = new.hi;
        } else if old.hi == self.hi {
            return false;
        }
        true
    }

    fn surely_inside(self, v: f64) -> bool {
        v > self.lo + MARGIN * self.lo && (self.hi == INF || v < self.hi - MARGIN * self.hi.abs())
    }

    fn surely_outside(self, v: f64) -> bool {
        self.lo == INF || v < self.lo - MARGIN * self.lo || (self.hi != INF && v > self.hi + MARGIN * self.hi.abs())
    }
}

/// The account values one component (or several) allows at each level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Allowed {
    breach: Range,
    clear: Range,
}

impl Default for Allowed {
    fn default() -> Self {
        Allowed { breach: Range::ALL, clear: Range::ALL }
    }
}

impl Allowed {
    pub fn of(slopes: &Slopes, value: f64) -> Allowed {
        Allowed { breach: Range::of(slopes.breach, value), clear: Range::of(slopes.clear, value) }
    }

    pub fn meet(self, other: Allowed) -> Allowed {
        Allowed { breach: self.breach.meet(other.breach), clear: self.clear.meet(other.clear) }
    }

    /// Whether `total` lies surely inside both ranges: no component out of its
    /// band, none inside the hysteresis margin.
    fn surely_clear(&self, total: f64) -> bool {
        self.breach.surely_inside(total) && self.clear.surely_inside(total)
    }

    /// The level at account value `total` (> 0), when it is sure in f64.
    pub fn level(&self, total: f64) -> Option<Level> {
        if self.breach.surely_outside(total) {
            return Some(Level::Breach);
        }
        if !self.breach.surely_inside(total) {
            return None;
        }
        if self.clear.surely_inside(total) {
            Some(Level::Clear)
        } else if self.clear.surely_outside(total) {
            Some(Level::Hold)
        } else {
            None
        }
    }
}

/// One account's drift range, kept by the tick path.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum DriftRange {
    /// To build from the targets (new targets, a trade, cash, a reload).
    #[default]
    Unbuilt,
    /// The positions' slopes hold (they follow the targets alone); what the targets
    /// not held and cash allow, and the intersection, are to recompute (a trade, cash).
    Unfixed,
    /// A slope nearly cancels: the account is always walked.
    Unusable,
    /// `fixed`: what the components no tick moves allow (targets not held, cash).
    /// The intersection is to recompute from `fixed` and the positions; until then
    /// `inner`, a part of it (the last intersection met with every range moved to
    /// since), can still tell that a value lies inside: the usual case, where a
    /// binding component loosened and the account stayed well inside its bands.
    Stale {
        fixed: Allowed,
        inner: Allowed,
    },
    Fresh {
        fixed: Allowed,
        now: Allowed,
    },
}

impl DriftRange {
    /// A position's value moved from `was` to `now` (f64 values).
    #[inline]
    pub fn moved(&mut self, slopes: &Slopes, was: f64, value: f64) {
        match self {
            DriftRange::Fresh { fixed, now } => {
                let (before, old, new) = (*now, Allowed::of(slopes, was), Allowed::of(slopes, value));
                if !(now.breach.replace(old.breach, new.breach) && now.clear.replace(old.clear, new.clear)) {
                    // The other components' ranges contain `before`, so `before`
                    // met with the new range lies inside the new intersection.
                    *self = DriftRange::Stale { fixed: *fixed, inner: before.meet(new) };
                }
            }
            DriftRange::Stale { inner, .. } => *inner = inner.meet(Allowed::of(slopes, value)),
            DriftRange::Unbuilt | DriftRange::Unfixed | DriftRange::Unusable => {}
        }
    }

    /// The level at account value `total` (> 0), when the range is sure of it: any
    /// level from a current range, `Clear` from a stale range's inner part.
    pub fn level(&self, total: f64) -> Option<Level> {
        match self {
            DriftRange::Fresh { now, .. } => now.level(total),
            DriftRange::Stale { inner, .. } => inner.surely_clear(total).then_some(Level::Clear),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::rules::drift::level_exact;

    fn decimal(units: i64, scale: u32) -> Decimal {
        Decimal::new(units, scale)
    }

    /// (value, target, band) of a component, the value possibly negative (cash).
    fn component() -> impl Strategy<Value = (Decimal, Decimal, Decimal)> {
        (-1_000_000_000i64..50_000_000_000, 0u32..9, 0i64..=10_000, 0i64..2_000)
            .prop_map(|(v, scale, t, b)| (decimal(v, scale), decimal(t, 4), decimal(b, 4)))
    }

    fn allowed(components: &[(Decimal, Decimal, Decimal)], shrink: Decimal) -> Option<Allowed> {
        components.iter().try_fold(Allowed::default(), |acc, (v, t, b)| {
            Some(acc.meet(Allowed::of(&Slopes::of(*t, *b, shrink)?, f64_of(*v))))
        })
    }

    proptest! {
        /// Whenever the range decides, it decides the exact level, on generated books
        /// and on books with a component built to sit on an edge (the band or the
        /// shrunk band) or one unit of the last place either side of it.
        #[test]
        fn the_range_decides_only_the_exact_level(
            others in prop::collection::vec(component(), 0..12),
            total in (1i64..100_000_000_000, 0u32..4).prop_map(|(u, s)| decimal(u, s)),
            hysteresis in 0i64..5_000,
            edge in (1i64..10_000, 0i64..2_000, 0u8..3, -1i64..=1, any::<bool>()),
        ) {
            let shrink = Decimal::ONE - decimal(hysteresis, 4);
            let (target, band, on, nudge, above) = edge;
            let (target, band) = (decimal(target, 4), decimal(band, 4));
            let mut components = others.clone();
            if on > 0 {
                let off = if on == 1 { band * total } else { band * shrink * total } + decimal(nudge, 28);
                components.push((if above { target * total + off } else { target * total - off }, target, band));
            }
            let exact = level_exact(components.iter().copied(), total, shrink);
            if let Some(level) = allowed(&components, shrink).and_then(|a| a.level(f64_of(total))) {
                prop_assert_eq!(level, exact);
                if on > 0 {
                    // The component on an edge never decides: only the others may.
                    prop_assert_eq!(level_exact(others.iter().copied(), total, shrink), level);
                    prop_assert_ne!(level, Level::Clear);
                }
            }
        }

        /// Moving values one at a time keeps the intersection equal to one built
        /// from scratch, or marks it stale with an inner part inside the one built
        /// from scratch (never a wrong range), and a stale range decides only
        /// `Clear`, where the one built from scratch does.
        #[test]
        fn moved_values_keep_the_intersection_or_mark_it_stale(
            components in prop::collection::vec(component(), 1..12),
            moves in prop::collection::vec((0usize..12, 0i64..50_000_000_000, any::<bool>()), 1..40),
            totals in prop::collection::vec(1i64..100_000_000_000, 1..8),
        ) {
            let shrink = decimal(9, 1);
            let slopes: Vec<Slopes> = components.iter().filter_map(|(_, t, b)| Slopes::of(*t, *b, shrink)).collect();
            prop_assume!(slopes.len() == components.len());
            let mut values: Vec<f64> = components.iter().map(|c| f64_of(c.0)).collect();
            let build = |values: &[f64]| {
                slopes.iter().zip(values).fold(Allowed::default(), |acc, (s, v)| acc.meet(Allowed::of(s, *v)))
            };
            let mut range = DriftRange::Fresh { fixed: Allowed::default(), now: build(&values) };
            let inside = |part: Range, whole: Range| part.lo > part.hi || (part.lo >= whole.lo && part.hi <= whole.hi);
            for (i, v, rebuild) in moves {
                let i = i % values.len();
                let v = f64_of(decimal(v, 2));
                range.moved(&slopes[i], values[i], v);
                values[i] = v;
                let whole = build(&values);
                match &range {
                    DriftRange::Fresh { now, .. } => prop_assert_eq!(*now, whole),
                    DriftRange::Stale { inner, .. } => {
                        prop_assert!(inside(inner.breach, whole.breach) && inside(inner.clear, whole.clear));
                        for &t in &totals {
                            let t = t as f64 / 100.0;
                            if let Some(level) = range.level(t) {
                                prop_assert_eq!(level, Level::Clear);
                                prop_assert_eq!(whole.level(t), Some(Level::Clear));
                            }
                        }
                        if rebuild {
                            range = DriftRange::Fresh { fixed: Allowed::default(), now: whole };
                        }
                    }
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
        }
    }

    #[test]
    fn held_outside_the_targets_is_a_breach_whatever_the_value() {
        // Target 0 and band 0: any positive value is a breach, at any account value.
        let slopes = Slopes::of(Decimal::ZERO, Decimal::ZERO, decimal(9, 1)).unwrap();
        let a = Allowed::of(&slopes, 10.0);
        assert_eq!(a.level(1e6), Some(Level::Breach));
        assert_eq!(Allowed::of(&slopes, 0.0).level(1e6), Some(Level::Clear));
    }

    #[test]
    fn a_band_edge_is_left_to_the_walk() {
        // Target 50%, band 5% (45%-55%; clear within 45.5%-54.5% with shrink 0.9):
        // 550,000 of 1,000,000 is on the edge.
        let slopes = Slopes::of(decimal(5, 1), decimal(5, 2), decimal(9, 1)).unwrap();
        assert_eq!(Allowed::of(&slopes, 550_000.0).level(1e6), None);
        assert_eq!(Allowed::of(&slopes, 500_001.0).level(1e6), Some(Level::Clear));
        assert_eq!(Allowed::of(&slopes, 548_000.0).level(1e6), Some(Level::Hold));
        assert_eq!(Allowed::of(&slopes, 600_000.0).level(1e6), Some(Level::Breach));
        assert_eq!(Allowed::of(&slopes, 400_000.0).level(1e6), Some(Level::Breach));
    }

    #[test]
    fn what_the_f32_slopes_round_away_is_left_to_the_walk() {
        assert_eq!(std::mem::size_of::<Slopes>(), 16);
        // t + b = 0.3334 is not an f32: rounded, it is 1.1e-8 away (relative). A
        // component 1e-8 above the exact upper edge is a breach; 1e-8 below, not.
        let slopes = Slopes::of(decimal(3333, 4), decimal(1, 4), decimal(9, 1)).unwrap();
        assert_ne!(f64::from(slopes.breach.1), 0.3334);
        let edge = 0.3334 * 1e6;
        for v in [edge * (1.0 + 1e-8), edge * (1.0 - 1e-8)] {
            assert_eq!(Allowed::of(&slopes, v).level(1e6), None, "{v}");
        }
        assert_eq!(Allowed::of(&slopes, edge * (1.0 + 1e-5)).level(1e6), Some(Level::Breach));
    }

    #[test]
    fn nearly_cancelling_slopes_are_refused() {
        let t = decimal(5, 2);
        assert!(Slopes::of(t, t - Decimal::new(1, 20), Decimal::ONE).is_none());
        assert!(Slopes::of(t, t, Decimal::ONE).is_some());
    }
}
