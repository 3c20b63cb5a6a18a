//! Risk hot paths, without the engine around them:
//! - `book/rank1`: one position's exposure moves (the sparse tick path), 20 positions;
//! - `book/full`: the same account's S e and variance from scratch (the baseline);
//! - `model/close`: one bar close of the EWMA covariance at 2,000 symbols (update,
//!   Ledoit-Wolf, power iteration), the cost a bar adds per shard.
//!
//! Run: `cargo bench -p riskstream-projections --bench risk`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use riskstream_projections::risk::{CovarianceModel, RiskBook};
use riskstream_projections::RiskConfig;

const POSITIONS: usize = 20;

/// A model of `n` symbols after `bars` closes of a deterministic price path.
fn model(n: usize, bars: usize) -> CovarianceModel {
    let mut model = CovarianceModel::new(&RiskConfig::default());
    let names: Vec<String> = (0..n).map(|i| format!("S{i:04}")).collect();
    let bar = 86_400_000_000_i64;
    for t in 0..=bars as i64 {
        let closes: Vec<(&str, f64)> = names
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let wiggle = ((i as f64 * 0.37 + t as f64 * 1.3).sin() * 0.01).exp();
                (s.as_str(), 100.0 * wiggle)
            })
            .collect();
        model.advance(t * bar, closes.into_iter());
    }
    model
}

fn bench(c: &mut Criterion) {
    let m = model(200, 30);
    let positions = || (0..POSITIONS as u32).map(|i| (i * 7, 10_000.0 + f64::from(i)));
    let book = RiskBook::build(positions(), &m);
    c.bench_function("book/rank1", |b| {
        b.iter_batched_ref(|| book.clone(), |bk| bk.set_exposure(7 * 3, 12_345.0, &m), BatchSize::SmallInput)
    });
    c.bench_function("book/full", |b| b.iter(|| RiskBook::build(positions(), &m)));
    let big = model(2_000, 2);
    let names: Vec<String> = (0..2_000).map(|i| format!("S{i:04}")).collect();
    let mut group = c.benchmark_group("model");
    group.sample_size(10);
    group.bench_function("close/2000", |b| {
        b.iter_batched_ref(
            || big.clone(),
            |m| {
                let closes = names.iter().map(|s| (s.as_str(), 101.0));
                m.advance(9 * 86_400_000_000, closes)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
