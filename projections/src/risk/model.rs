//! The shard's covariance model: RiskMetrics EWMA over bar returns of every priced
//! symbol, with its repair (eigenvalue clipping, Ledoit-Wolf shrinkage) redone once
//! per bar close.
//!
//! Conventions: log returns r = ln(close / previous close) per bar, zero mean, no
//! annualisation (one-bar figures; h bars scale by sqrt(h)). A bar's close is the
//! last price the shard holds when an event of a later bar arrives; a symbol without
//! a tick in the bar has a zero return. S_t = lambda S_t-1 + (1 - lambda) r r'. A
//! symbol's first return also seeds its variance with r^2 (its row starts at zero),
//! which adds a non-negative diagonal term, so S stays positive semi-definite by
//! construction; the spectral check only removes rounding noise.

use ahash::AHashMap as HashMap;
use nalgebra::{DMatrix, SymmetricEigen};
use serde::{Deserialize, Serialize};

use crate::config::RiskConfig;

/// A symbol's part of the model (one stored row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymbolModel {
    /// Position in the model (order of first close, then symbol order).
    pub index: u32,
    /// Close of the last completed bar.
    pub close: f64,
    /// Bars with a return.
    pub observations: u32,
    /// Covariances with the symbols of index 0..=index (lower triangle row).
    pub cov: Vec<f64>,
    /// Short- and long-window EWMA variances of `volatility_spike`.
    pub short_var: f64,
    pub long_var: f64,
}

/// Version byte of the stored row format.
const ROW_FORMAT: u8 = 1;

impl SymbolModel {
    /// The stored row: a version byte, then little-endian `index` (u32), `close`,
    /// `observations` (u32), `short_var`, `long_var` and the covariances (f64 each).
    /// Binary rather than JSON: the rows hold n^2/2 numbers and are all rewritten at
    /// every bar close (2,000 symbols: 16 MB instead of ~40 MB of JSON text), and
    /// the bytes round-trip exactly.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 4 + 8 + 4 + 16 + 8 * self.cov.len());
        out.push(ROW_FORMAT);
        out.extend_from_slice(&self.index.to_le_bytes());
        out.extend_from_slice(&self.close.to_le_bytes());
        out.extend_from_slice(&self.observations.to_le_bytes());
        out.extend_from_slice(&self.short_var.to_le_bytes());
        out.extend_from_slice(&self.long_var.to_le_bytes());
        for c in &self.cov {
            out.extend_from_slice(&c.to_le_bytes());
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<SymbolModel, String> {
        const HEAD: usize = 1 + 4 + 8 + 4 + 16;
        if bytes.first() != Some(&ROW_FORMAT) {
            return Err(format!("unknown model row format {:?}", bytes.first()));
        }
        // `chunks_exact` rather than `% 8` (clippy: manual_is_multiple_of, which needs Rust 1.87).
        if bytes.len() < HEAD || !bytes[HEAD..].chunks_exact(8).remainder().is_empty() {
            return Err(format!("model row of {} bytes is truncated", bytes.len()));
        }
        let f = |at: usize| f64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let u = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let row = SymbolModel {
            index: u(1),
            close: f(5),
            observations: u(13),
            short_var: f(17),
            long_var: f(25),
            cov: (HEAD..bytes.len()).step_by(8).map(f).collect(),
        };
        if row.cov.len() != row.index as usize + 1 {
            return Err(format!(
                "model row {} has {} covariances, expected {}",
                row.index,
                row.cov.len(),
                row.index + 1
            ));
        }
        Ok(row)
    }
}

/// The model's running scalars (one stored row).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelScalars {
    /// Bar number (event-time micros / bar length) of the open bar.
    pub bar: Option<i64>,
    /// Bar closes that produced at least one return.
    pub bars: u32,
    /// Sum of the squared EWMA weights (1 / effective sample size).
    pub sum_w2: f64,
    /// EWMA of (r'r)^2, for the Ledoit-Wolf intensity.
    pub fourth: f64,
    /// Short- and long-window EWMA of the cross-sectional average correlation.
    pub corr_short: f64,
    pub corr_long: f64,
    pub corr_bars: u32,
}

/// What the last repair found (derived from the stored rows, never stored).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Repair {
    /// Mean variance (the shrinkage target is `target x I`).
    pub target: f64,
    /// Ledoit-Wolf intensity actually applied (0 when the matrix is well conditioned).
    pub shrinkage: f64,
    /// Ledoit-Wolf optimal intensity, whether applied or not.
    pub lw_intensity: f64,
    pub eigen_max: f64,
    /// Smallest eigenvalue after clipping; `None` when not computed.
    pub eigen_min: Option<f64>,
    /// Condition number of the EWMA matrix (infinite when singular or unknown).
    pub condition_raw: f64,
    /// Condition number of the matrix risk is computed with (an upper bound when
    /// `exact` is false).
    pub condition: f64,
    pub exact: bool,
    /// Negative eigenvalues clipped to zero at the last close.
    pub clipped: usize,
}

/// What one bar close changed.
#[derive(Debug, Default)]
pub struct Closed {
    /// Simple return of each model symbol over the bar (by index; 0 without one).
    pub simple: Vec<f64>,
    /// Symbols that got a return, by index.
    pub moved: Vec<u32>,
}

#[derive(Debug, Clone)]
pub struct Params {
    pub lambda: f64,
    pub short_lambda: f64,
    pub long_lambda: f64,
    pub max_condition: f64,
    pub spectral_max: usize,
    pub bar_micros: i64,
    /// Normal quantile and ES multiple at the limit confidence.
    pub z_limit: f64,
    pub es_limit: f64,
    pub confidence: f64,
    pub window: usize,
    pub min_observations: u32,
    pub vol_spike_factor: f64,
    pub correlation_shift: f64,
}

impl Params {
    pub fn new(c: &RiskConfig) -> Params {
        let f = |d: rust_decimal::Decimal| rust_decimal::prelude::ToPrimitive::to_f64(&d).expect("config decimal");
        Params {
            lambda: f(c.lambda),
            short_lambda: f(c.short_lambda),
            long_lambda: f(c.long_lambda),
            max_condition: f(c.max_condition),
            spectral_max: c.spectral_max_symbols,
            bar_micros: c.bar_secs * 1_000_000,
            z_limit: super::stats::normal_quantile(f(c.limit_confidence)),
            es_limit: super::stats::normal_es(1.0, f(c.limit_confidence)),
            confidence: f(c.limit_confidence),
            window: c.window,
            min_observations: c.min_observations,
            vol_spike_factor: f(c.vol_spike_factor),
            correlation_shift: f(c.correlation_shift),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CovarianceModel {
    pub(crate) params: Params,
    pub(crate) names: Vec<String>,
    pub(crate) index: HashMap<String, u32>,
    pub(crate) rows: Vec<SymbolModel>,
    pub(crate) scalars: ModelScalars,
    pub(crate) repair: Repair,
    /// The clipped matrix (lower triangle rows) when clipping changed anything.
    clipped: Option<Vec<Vec<f64>>>,
}

fn ewma(previous: f64, value: f64, lambda: f64, first: bool) -> f64 {
    if first {
        value
    } else {
        lambda * previous + (1.0 - lambda) * value
    }
}

impl CovarianceModel {
    pub fn new(config: &RiskConfig) -> Self {
        CovarianceModel {
            params: Params::new(config),
            names: Vec::new(),
            index: HashMap::default(),
            rows: Vec::new(),
            scalars: ModelScalars::default(),
            repair: Repair::default(),
            clipped: None,
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn index_of(&self, symbol: &str) -> Option<u32> {
        self.index.get(symbol).copied()
    }

    pub fn symbol(&self, index: u32) -> &str {
        &self.names[index as usize]
    }

    pub fn row(&self, index: u32) -> &SymbolModel {
        &self.rows[index as usize]
    }

    pub fn scalars(&self) -> &ModelScalars {
        &self.scalars
    }

    pub fn repair(&self) -> &Repair {
        &self.repair
    }

    /// The bar an event time falls in.
    pub fn bar_of(&self, micros: i64) -> i64 {
        micros.div_euclid(self.params.bar_micros)
    }

    /// The EWMA covariance as updated (before repair).
    pub fn raw(&self, i: u32, j: u32) -> f64 {
        let (a, b) = if i >= j { (i, j) } else { (j, i) };
        self.rows[a as usize].cov[b as usize]
    }

    /// The covariance risk is computed with: clipped, then shrunk towards `target x I`.
    #[inline]
    pub fn cov(&self, i: u32, j: u32) -> f64 {
        let (a, b) = if i >= j { (i as usize, j as usize) } else { (j as usize, i as usize) };
        let s = match &self.clipped {
            Some(m) => m[a][b],
            None => self.rows[a].cov[b],
        };
        let d = self.repair.shrinkage;
        let shrunk = (1.0 - d) * s;
        if a == b {
            shrunk + d * self.repair.target
        } else {
            shrunk
        }
    }

    /// Closes the open bar at `closes` (every priced symbol's last price, in symbol
    /// order) when `micros` lies in a later bar. Returns what changed, or `None`.
    pub fn advance<'a>(&mut self, micros: i64, closes: impl Iterator<Item = (&'a str, f64)>) -> Option<Closed> {
        let bar = self.bar_of(micros);
        match self.scalars.bar {
            None => {
                self.scalars.bar = Some(bar);
                None
            }
            Some(open) if bar > open => {
                self.scalars.bar = Some(bar);
                Some(self.close(closes))
            }
            Some(_) => None,
        }
    }

    fn close<'a>(&mut self, closes: impl Iterator<Item = (&'a str, f64)>) -> Closed {
        let mut ret = vec![0.0; self.rows.len()];
        let mut simple = vec![0.0; self.rows.len()];
        let mut first = Vec::new();
        let mut moved = Vec::new();
        for (symbol, price) in closes {
            if price.is_nan() || price <= 0.0 {
                continue;
            }
            let Some(i) = self.index_of(symbol) else {
                self.add_symbol(symbol, price);
                ret.push(0.0);
                simple.push(0.0);
                continue;
            };
            let row = &mut self.rows[i as usize];
            ret[i as usize] = (price / row.close).ln();
            simple[i as usize] = price / row.close - 1.0;
            if row.observations == 0 {
                first.push(i);
            }
            row.close = price;
            row.observations += 1;
            moved.push(i);
        }
        if !moved.is_empty() {
            self.update_correlation(&ret, &moved, &first);
            self.update_covariance(&ret, &first);
            self.update_volatility(&ret, &moved, &first);
        }
        self.refresh();
        Closed { simple, moved }
    }

    fn add_symbol(&mut self, symbol: &str, price: f64) {
        let index = self.rows.len() as u32;
        self.names.push(symbol.to_string());
        self.index.insert(symbol.to_string(), index);
        let row = SymbolModel {
            index,
            close: price,
            observations: 0,
            cov: vec![0.0; index as usize + 1],
            short_var: 0.0,
            long_var: 0.0,
        };
        self.rows.push(row);
    }

    fn update_covariance(&mut self, ret: &[f64], first: &[u32]) {
        let lambda = self.params.lambda;
        let w = 1.0 - lambda;
        for (i, row) in self.rows.iter_mut().enumerate() {
            let wr = w * ret[i];
            for (j, c) in row.cov.iter_mut().enumerate() {
                *c = lambda * *c + wr * ret[j];
            }
        }
        for &i in first {
            let r = ret[i as usize];
            self.rows[i as usize].cov[i as usize] += lambda * r * r;
        }
        let s = &mut self.scalars;
        let norm2: f64 = ret.iter().map(|r| r * r).sum();
        let starting = s.bars == 0;
        s.sum_w2 = if starting { 1.0 } else { lambda * lambda * s.sum_w2 + w * w };
        s.fourth = ewma(s.fourth, norm2 * norm2, lambda, starting);
        s.bars += 1;
    }

    fn update_volatility(&mut self, ret: &[f64], moved: &[u32], first: &[u32]) {
        let (short, long) = (self.params.short_lambda, self.params.long_lambda);
        for &i in moved {
            let seed = first.contains(&i);
            let r2 = ret[i as usize] * ret[i as usize];
            let row = &mut self.rows[i as usize];
            row.short_var = ewma(row.short_var, r2, short, seed);
            row.long_var = ewma(row.long_var, r2, long, seed);
        }
    }

    /// Cross-sectional average pairwise correlation of this bar's standardised
    /// returns z = r / sigma_long (sigma before this bar):
    /// ((sum z)^2 - sum z^2) / ((m - 1) sum z^2), then EWMA in two windows.
    fn update_correlation(&mut self, ret: &[f64], moved: &[u32], first: &[u32]) {
        let (mut sum, mut sum2, mut m) = (0.0, 0.0, 0u32);
        for &i in moved {
            let row = &self.rows[i as usize];
            if first.contains(&i) || row.long_var <= 0.0 {
                continue;
            }
            let z = ret[i as usize] / row.long_var.sqrt();
            sum += z;
            sum2 += z * z;
            m += 1;
        }
        if m < 2 || sum2 <= 0.0 {
            return;
        }
        let rho = (sum * sum - sum2) / (f64::from(m - 1) * sum2);
        let s = &mut self.scalars;
        let starting = s.corr_bars == 0;
        s.corr_short = ewma(s.corr_short, rho, self.params.short_lambda, starting);
        s.corr_long = ewma(s.corr_long, rho, self.params.long_lambda, starting);
        s.corr_bars += 1;
    }

    /// Recomputes the repair from the stored state: clipping, condition number and
    /// Ledoit-Wolf shrinkage (a pure function of the rows and scalars, so a restart
    /// gets the same matrix).
    pub fn refresh(&mut self) {
        let n = self.rows.len();
        self.clipped = None;
        if n == 0 || self.scalars.bars == 0 {
            self.repair = Repair::default();
            return;
        }
        let nf = n as f64;
        let target = (0..n).map(|i| self.rows[i].cov[i]).sum::<f64>() / nf;
        let lw = self.ledoit_wolf(target);
        let (eigen_max, eigen_min, exact, clipped) = if n <= self.params.spectral_max {
            self.spectrum()
        } else {
            let rank_deficient = (self.scalars.bars as usize) < n;
            (self.power_iteration(), rank_deficient.then_some(0.0), false, 0)
        };
        let floor = eigen_min.unwrap_or(0.0);
        let condition_raw = if floor > 0.0 { eigen_max / floor } else { f64::INFINITY };
        // An infinite (singular) or unknown condition number shrinks too.
        let shrink = condition_raw.is_nan() || condition_raw > self.params.max_condition;
        let d = if shrink { lw } else { 0.0 };
        let top = (1.0 - d) * eigen_max + d * target;
        let bottom = (1.0 - d) * floor + d * target;
        let condition = if bottom > 0.0 { top / bottom } else { f64::INFINITY };
        self.repair = Repair {
            target,
            shrinkage: d,
            lw_intensity: lw,
            eigen_max,
            eigen_min,
            condition_raw,
            condition,
            exact: exact && eigen_min.is_some(),
            clipped,
        };
    }

    /// Ledoit and Wolf (2004), "A well-conditioned estimator for large-dimensional
    /// covariance matrices", with the EWMA weights in place of 1/T: with the norm
    /// |A|^2 = tr(A A') / n, d^2 = |S - m I|^2, b^2 = min(d^2, sum w_k^2 (E_w |x x'|^2
    /// - |S|^2)) and the intensity is b^2 / d^2.
    fn ledoit_wolf(&self, target: f64) -> f64 {
        let n = self.rows.len() as f64;
        let mut frob = 0.0;
        for (i, row) in self.rows.iter().enumerate() {
            for (j, c) in row.cov.iter().enumerate() {
                frob += if i == j { c * c } else { 2.0 * c * c };
            }
        }
        let frob = frob / n;
        let d2 = frob - target * target;
        if d2 <= 0.0 {
            return 0.0;
        }
        let b2 = (self.scalars.sum_w2 * (self.scalars.fourth / n - frob)).clamp(0.0, d2);
        b2 / d2
    }

    fn dense(&self) -> DMatrix<f64> {
        let n = self.rows.len();
        DMatrix::from_fn(n, n, |i, j| self.raw(i as u32, j as u32))
    }

    /// Full eigendecomposition: (max, min after clipping, exact, clipped count);
    /// keeps the clipped matrix when an eigenvalue was below -1e-12 x max.
    fn spectrum(&mut self) -> (f64, Option<f64>, bool, usize) {
        let eig = SymmetricEigen::new(self.dense());
        let max = eig.eigenvalues.iter().copied().fold(0.0_f64, f64::max);
        let tolerance = 1e-12 * max.max(f64::MIN_POSITIVE);
        let negative = eig.eigenvalues.iter().filter(|&&l| l < -tolerance).count();
        if negative > 0 {
            let clipped = eig.eigenvalues.map(|l| l.max(0.0));
            let m = &eig.eigenvectors * DMatrix::from_diagonal(&clipped) * eig.eigenvectors.transpose();
            self.clipped = Some((0..m.nrows()).map(|i| (0..=i).map(|j| m[(i, j)]).collect()).collect());
        }
        let min = eig.eigenvalues.iter().copied().fold(f64::INFINITY, f64::min).max(0.0);
        (max, Some(min), true, negative)
    }

    /// Largest eigenvalue by power iteration from the all-ones vector (deterministic),
    /// to a relative change of 1e-7 or 30 iterations. It only feeds the reported
    /// condition-number bound (above `spectral_max` symbols shrinkage is always on),
    /// and each iteration is a pass over the n^2/2 matrix: at 2,000 symbols 100
    /// iterations were most of a bar close.
    fn power_iteration(&self) -> f64 {
        let n = self.rows.len();
        let mut v = vec![1.0 / (n as f64).sqrt(); n];
        let mut value: f64 = 0.0;
        for _ in 0..30 {
            let mut next = vec![0.0; n];
            for (i, row) in self.rows.iter().enumerate() {
                for (j, c) in row.cov.iter().enumerate() {
                    next[i] += c * v[j];
                    if i != j {
                        next[j] += c * v[i];
                    }
                }
            }
            let norm = next.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm == 0.0 {
                return 0.0;
            }
            let converged = (norm - value).abs() <= 1e-7 * norm;
            value = norm;
            v = next.into_iter().map(|x| x / norm).collect();
            if converged {
                break;
            }
        }
        value
    }

    /// Loads a stored symbol row; call `finish_load` after the last one.
    pub(crate) fn load_row(&mut self, symbol: &str, row: SymbolModel) {
        let i = row.index as usize;
        if self.rows.len() <= i {
            self.rows.resize(i + 1, row.clone());
            self.names.resize(i + 1, String::new());
        }
        self.rows[i] = row;
        self.names[i] = symbol.to_string();
        self.index.insert(symbol.to_string(), i as u32);
    }

    pub(crate) fn load_scalars(&mut self, scalars: ModelScalars) {
        self.scalars = scalars;
    }

    pub(crate) fn finish_load(&mut self) {
        self.refresh();
    }

    /// Sets a covariance entry directly (tests of the repair).
    #[doc(hidden)]
    pub fn set_raw_for_test(&mut self, i: u32, j: u32, value: f64) {
        let (a, b) = if i >= j { (i, j) } else { (j, i) };
        self.rows[a as usize].cov[b as usize] = value;
    }
}
