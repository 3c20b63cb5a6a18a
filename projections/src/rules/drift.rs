//! `drift`: a component of the target allocation is outside its band.

use riskstream_schemas::Priority;
use rust_decimal::Decimal;

use super::{pct, Finding, Level};
use crate::state::ShardState;
use crate::valuation::{components, weight};

impl ShardState {
    /// `None` when the account has no targets or no positive value to weigh against.
    pub(crate) fn drift_level(&self, account_id: &str) -> Option<Level> {
        let a = self.accounts.get(account_id)?;
        let targets = a.targets.as_ref()?;
        let total = a.market_value;
        if total <= Decimal::ZERO {
            return None;
        }
        let shrink = Decimal::ONE - self.config.hysteresis;
        let mut clear = true;
        for c in components(a, targets, &self.config, |_, p| p.value) {
            let off = (c.value - c.target * total).abs();
            let band = c.band * total;
            if off > band {
                return Some(Level::Breach);
            }
            clear &= off <= band * shrink;
        }
        Some(if clear { Level::Clear } else { Level::Hold })
    }

    /// The component furthest outside its band, relative to the band.
    pub(crate) fn drift_finding(&self, account_id: &str) -> Finding {
        let a = &self.accounts[account_id];
        let total = a.market_value;
        let targets = a.targets.as_ref().expect("drift is only evaluated with targets");
        let comps: Vec<_> = components(a, targets, &self.config, |_, p| p.value).collect();
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
