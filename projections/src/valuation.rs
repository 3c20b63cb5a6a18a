//! Valuation and drift. The same functions serve the incremental path (running
//! values kept in the state) and the full recompute (values derived from facts),
//! so the two can be compared exactly.
//!
//! Conventions: market value V = sum(quantity x last price) + cash. Weight
//! w = value / V. A component (a target symbol, a held symbol, or `CASH` when the
//! targets name it) is inside its band iff |value - target x V| <= band x V, which
//! is |w - target| <= band without a division. Held symbols absent from the targets
//! have target 0 and so band 0. Band = min(band_abs, band_rel x target), the 5/25
//! rule by default.

use riskstream_schemas::TaxStatus;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::config::RuleConfig;
use crate::state::{Account, Position, ShardState, Targets};

/// The pseudo-symbol of the cash component in target allocations.
pub const CASH: &str = "CASH";

/// Places kept in weights shown to people (checks never use the rounded value).
const WEIGHT_DP: u32 = 8;

pub fn band(target: Decimal, targets: &Targets, config: &RuleConfig) -> Decimal {
    let abs = targets.band_abs.unwrap_or(config.band_abs);
    let rel = targets.band_rel.unwrap_or(config.band_rel);
    abs.min(rel * target)
}

/// One line of the drift check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Component<'a> {
    pub symbol: &'a str,
    pub value: Decimal,
    pub target: Decimal,
    pub band: Decimal,
}

impl Component<'_> {
    pub fn in_band(&self, total: Decimal, shrink: Decimal) -> bool {
        (self.value - self.target * total).abs() <= self.band * shrink * total
    }
}

/// Drift components of an account, in symbol order (a merge of the held and the
/// target symbols, lazily: the tick path stops at the first breach and allocates
/// nothing); `value_of` gives a position's value.
pub(crate) fn components<'a>(
    account: &'a Account,
    targets: &'a Targets,
    config: &'a RuleConfig,
    value_of: impl Fn(&str, &Position) -> Decimal + 'a,
) -> impl Iterator<Item = Component<'a>> + 'a {
    merged(account, targets).map(move |(symbol, position, target)| {
        let value = match (symbol, position) {
            (_, Some(p)) => value_of(symbol, p),
            (CASH, None) => account.cash,
            (_, None) => Decimal::ZERO,
        };
        Component { symbol, value, target, band: band(target, targets, config) }
    })
}

/// The held and the target symbols of an account merged in symbol order: each with
/// its position (if held) and its target (zero if not in the targets).
pub(crate) fn merged<'a>(
    account: &'a Account,
    targets: &'a Targets,
) -> impl Iterator<Item = (&'a str, Option<&'a Position>, Decimal)> + 'a {
    let mut held = account.positions.iter().peekable();
    let mut wanted = targets.weights.iter().peekable();
    // Names, not strings: equal names are one pointer, so a symbol both held and
    // targeted (the usual case) costs no string comparison.
    std::iter::from_fn(move || {
        let next_held = held.peek().map(|(s, _)| **s);
        let next_wanted = wanted.peek().map(|(s, _)| **s);
        Some(match (next_held, next_wanted) {
            (None, None) => return None,
            (Some(h), Some(w)) if h == w => {
                let (s, p) = held.next().expect("peeked");
                (s.as_str(), Some(p), *wanted.next().expect("peeked").1)
            }
            (Some(h), w) if w.is_none_or(|w| h < w) => {
                let (s, p) = held.next().expect("peeked");
                (s.as_str(), Some(p), Decimal::ZERO)
            }
            _ => {
                let (s, t) = wanted.next().expect("peeked");
                (s.as_str(), None, *t)
            }
        })
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PositionView {
    pub symbol: String,
    pub quantity: Decimal,
    pub cost_basis: Decimal,
    pub price: Decimal,
    pub market_value: Decimal,
    pub weight: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftLine {
    pub symbol: String,
    pub target: Decimal,
    pub weight: Decimal,
    /// weight - target.
    pub drift: Decimal,
    pub band: Decimal,
    pub in_band: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountView {
    pub account_id: String,
    pub user_id: String,
    pub tax_status: TaxStatus,
    pub base_currency: String,
    pub cash: Decimal,
    pub market_value: Decimal,
    pub positions: Vec<PositionView>,
    /// Empty when the account has no target allocation.
    pub drift: Vec<DriftLine>,
    pub in_band: bool,
}

pub(crate) fn weight(value: Decimal, total: Decimal) -> Decimal {
    if total.is_zero() {
        Decimal::ZERO
    } else {
        (value / total).round_dp(WEIGHT_DP)
    }
}

impl ShardState {
    /// The account as maintained incrementally (running values).
    pub fn incremental_view(&self, account_id: &str) -> Option<AccountView> {
        let a = self.book.accounts.get(account_id)?;
        Some(self.view_with(a, a.market_value, |_, p| p.value))
    }

    /// The account recomputed from facts alone (quantity x last price).
    pub fn full_view(&self, account_id: &str) -> Option<AccountView> {
        let a = self.book.accounts.get(account_id)?;
        let value_of = |s: &str, p: &Position| p.quantity * self.last_price(s);
        let total = a.cash + a.positions.iter().map(|(s, p)| value_of(s, p)).sum::<Decimal>();
        Some(self.view_with(a, total, value_of))
    }

    pub(crate) fn view_with(
        &self,
        a: &Account,
        total: Decimal,
        value_of: impl Fn(&str, &Position) -> Decimal,
    ) -> AccountView {
        let positions = a
            .positions
            .iter()
            .map(|(s, p)| PositionView {
                symbol: s.to_string(),
                quantity: p.quantity,
                cost_basis: p.cost_basis,
                price: self.last_price(s),
                market_value: value_of(s, p),
                weight: weight(value_of(s, p), total),
            })
            .collect();
        let drift: Vec<DriftLine> = match &a.targets {
            None => Vec::new(),
            Some(t) => components(a, t, &self.config, &value_of)
                .map(|c| DriftLine {
                    symbol: c.symbol.to_string(),
                    target: c.target,
                    weight: weight(c.value, total),
                    drift: weight(c.value, total) - c.target,
                    band: c.band,
                    in_band: c.in_band(total, Decimal::ONE),
                })
                .collect(),
        };
        AccountView {
            account_id: a.account_id.clone(),
            user_id: a.user_id.clone(),
            tax_status: a.tax_status,
            base_currency: a.base_currency.clone(),
            cash: a.cash,
            market_value: total,
            positions,
            in_band: drift.iter().all(|d| d.in_band),
            drift,
        }
    }
}
