//! One account's exposures and their variance under the model, kept current by
//! rank-1 updates: when exposure k moves by d, var' = var + 2 d (S e)_k + d^2 S_kk
//! and (S e)_j += S_jk d. A tick costs O(positions) per holder, not O(positions^2).

use super::model::CovarianceModel;

/// A symbol the model does not know yet (never priced at a bar close): no variance.
pub(crate) const UNMODELLED: u32 = u32::MAX;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RiskBook {
    /// Model index of each position, in the account's symbol order.
    pub(crate) index: Vec<u32>,
    /// Money exposure (quantity x last price) of each position; not moved by ticks
    /// while the symbol is `UNMODELLED` (it carries no variance until it is).
    pub(crate) exposure: Vec<f64>,
    /// (S e)_k.
    pub(crate) sigma_e: Vec<f64>,
    /// e' S e: the one-bar P&L variance.
    pub(crate) variance: f64,
}

impl RiskBook {
    /// The book of `positions` ((model index, exposure) in symbol order), from scratch.
    pub fn build(positions: impl Iterator<Item = (u32, f64)>, model: &CovarianceModel) -> RiskBook {
        let (index, exposure): (Vec<u32>, Vec<f64>) = positions.unzip();
        let mut book = RiskBook { sigma_e: vec![0.0; index.len()], index, exposure, variance: 0.0 };
        book.recompute(model);
        book
    }

    /// Moves the exposure of the position at model index `symbol` to `value`.
    #[inline]
    pub fn set_exposure(&mut self, symbol: u32, value: f64, model: &CovarianceModel) {
        if symbol == UNMODELLED {
            return;
        }
        let Some(k) = self.index.iter().position(|&i| i == symbol) else { return };
        let d = value - self.exposure[k];
        if d == 0.0 {
            return;
        }
        self.exposure[k] = value;
        self.variance += 2.0 * d * self.sigma_e[k] + d * d * model.cov(symbol, symbol);
        for (j, &i) in self.index.iter().enumerate() {
            if i != UNMODELLED {
                self.sigma_e[j] += model.cov(i, symbol) * d;
            }
        }
    }

    /// Sets an exposure without updating the variance; call `recompute` after the
    /// last one. For dense price batches, where most positions move: one O(k^2)
    /// pass beats k rank-1 updates of O(k) each with their bookkeeping.
    #[inline]
    pub fn put_exposure(&mut self, symbol: u32, value: f64) {
        if symbol == UNMODELLED {
            return;
        }
        if let Some(k) = self.index.iter().position(|&i| i == symbol) {
            self.exposure[k] = value;
        }
    }

    /// Recomputes (S e) and the variance from the exposures.
    pub fn recompute(&mut self, model: &CovarianceModel) {
        let (index, exposure) = (&self.index, &self.exposure);
        for (k, &i) in index.iter().enumerate() {
            self.sigma_e[k] = if i == UNMODELLED {
                0.0
            } else {
                let modelled = index.iter().zip(exposure).filter(|(&j, _)| j != UNMODELLED);
                modelled.map(|(&j, e)| model.cov(i, j) * e).sum()
            };
        }
        self.variance = exposure.iter().zip(&self.sigma_e).map(|(e, s)| e * s).sum();
    }

    /// One-bar P&L standard deviation (money).
    pub fn sigma(&self) -> f64 {
        self.variance.max(0.0).sqrt()
    }

    pub fn variance(&self) -> f64 {
        self.variance
    }

    /// Euler allocation of `multiplier x sigma`: e_k (S e)_k / sigma x multiplier per
    /// position; the components sum to the total because e' S e = sigma^2.
    pub fn components(&self, multiplier: f64) -> Vec<f64> {
        let sigma = self.sigma();
        if sigma == 0.0 {
            return vec![0.0; self.exposure.len()];
        }
        self.exposure.iter().zip(&self.sigma_e).map(|(e, s)| e * s / sigma * multiplier).collect()
    }

    pub fn exposures(&self) -> &[f64] {
        &self.exposure
    }
}
