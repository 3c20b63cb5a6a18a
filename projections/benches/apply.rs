//! Hot path of the domain: one conflated price batch applied to a shard.
//! Measures `ShardState::apply` of a PriceBatch moving every symbol, on 2,500
//! accounts x 20 positions over 1,000 symbols (50 holders per symbol), with the
//! running-sum path and the full-recompute baseline.
//! Run: `cargo bench -p riskstream-projections --bench apply`.

use std::collections::BTreeMap;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use riskstream_projections::{RuleConfig, ShardState};
use riskstream_schemas::*;
use rust_decimal::Decimal;

const ACCOUNTS: usize = 2_500;
const POSITIONS: usize = 20;
const SYMBOLS: usize = 1_000;

fn book() -> (ShardState, u64) {
    let mut state = ShardState::new(0, RuleConfig::default());
    let mut seq = 0;
    let mut apply = |state: &mut ShardState, body| {
        seq += 1;
        state.apply_quiet(RecordRef { shard: 0, seq }, &Event { event_id: None, ts: Timestamp(0), body }).unwrap();
    };
    for s in 0..SYMBOLS {
        let symbol = format!("S{s:04}");
        apply(
            &mut state,
            EventBody::SecurityListed(SecurityListed {
                symbol: symbol.clone(),
                asset_class: "equity".into(),
                sector: "x".into(),
                wash_group: symbol,
            }),
        );
    }
    for a in 0..ACCOUNTS {
        let (account_id, user_id) = (format!("acc-{a:06}"), format!("u-{a}"));
        apply(
            &mut state,
            EventBody::AccountOpened(AccountOpened {
                account_id: account_id.clone(),
                user_id: user_id.clone(),
                tax_status: TaxStatus::Taxable,
                base_currency: "USD".into(),
                holder_name: None,
                holder_email: None,
            }),
        );
        let mut targets = BTreeMap::new();
        for p in 0..POSITIONS {
            let symbol = format!("S{:04}", (a * 7 + p * 50) % SYMBOLS);
            targets.insert(symbol.clone(), Decimal::new(5, 2).into());
            apply(
                &mut state,
                EventBody::TradeExecuted(TradeExecuted {
                    trade_id: format!("{a}-{p}"),
                    account_id: account_id.clone(),
                    user_id: user_id.clone(),
                    symbol,
                    side: Side::Buy,
                    quantity: Decimal::from(10),
                    price: Decimal::from(100),
                    fees: Decimal::ZERO,
                    lot_method: None,
                    lot_ids: vec![],
                }),
            );
        }
        apply(
            &mut state,
            EventBody::TargetAllocationSet(TargetAllocationSet {
                account_id,
                user_id,
                targets,
                band_abs: None,
                band_rel: None,
            }),
        );
    }
    state.drain_changes();
    (state, seq)
}

fn batch(step: i64) -> Event {
    let prices = (0..SYMBOLS)
        .map(|s| (format!("S{s:04}"), Decimal::new(10_000 + step * 3 + (s as i64 % 11), 2).into()))
        .collect();
    Event {
        event_id: None,
        ts: Timestamp(step * 1_000_000),
        body: EventBody::PriceBatch(PriceBatch { prices, times: BTreeMap::new() }),
    }
}

fn bench(c: &mut Criterion) {
    let (base, seq) = book();
    for (name, full) in [("price_batch/incremental", false), ("price_batch/full_recompute", true)] {
        c.bench_function(name, |b| {
            let mut step = 0;
            b.iter_batched_ref(
                || {
                    let (mut s, _) = book_clone(&base);
                    s.set_full_recompute(full);
                    s
                },
                |state| {
                    step += 1;
                    state.apply(RecordRef { shard: 0, seq: seq + 1 }, &batch(step)).unwrap()
                },
                BatchSize::LargeInput,
            )
        });
    }
}

/// A fresh copy of the book through its persisted facts (ShardState is not Clone).
fn book_clone(base: &ShardState) -> (ShardState, ()) {
    let mut s = ShardState::new(0, RuleConfig::default());
    for row in base.facts() {
        s.load_fact(row.table, &row.key, row.value.as_deref().unwrap()).unwrap();
    }
    s.rebuild_derived();
    (s, ())
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
