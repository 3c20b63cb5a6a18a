//! The pipeline's invariants on real stores: replay == live (3), any split of the
//! input into batches gives the same state, restart continues without replaying
//! the log, an event id applies once (6), bad events are dead-lettered while their
//! neighbours apply (6), and the engine's views equal a full recompute (4).

mod common;

use std::sync::Arc;

use proptest::prelude::*;
use riskstream_engine::audit::history::AsOf;
use riskstream_engine::metrics::Metrics;
use riskstream_engine::replay::{compare, rebuild, state_digest};
use riskstream_engine::store::*;
use riskstream_engine::Engine;
use riskstream_projections::{RuleConfig, Table};
use riskstream_schemas::json::Decoded;
use riskstream_schemas::{EventBody, Rejection, Side};

fn memory_engine(shards: u32) -> Engine<MemoryStore> {
    Engine::open(Arc::new(MemoryStore::new()), shards, RuleConfig::default(), Arc::new(Metrics::new())).unwrap()
}

fn rocks_engine(dir: &std::path::Path, shards: u32) -> Engine<RocksDbStore> {
    let store = Arc::new(RocksDbStore::open(dir, false).unwrap());
    Engine::open(store, shards, RuleConfig::default(), Arc::new(Metrics::new())).unwrap()
}

fn feed<S: EventStore + ProjectionStore>(
    engine: &mut Engine<S>,
    events: &[riskstream_schemas::Event],
    batch: usize,
) -> usize {
    let mut alerts = 0;
    for chunk in events.chunks(batch.max(1)) {
        alerts += engine.ingest("test", None, common::items(chunk)).unwrap().alerts.len();
    }
    alerts
}

/// Projection rows other than rule state and the performance marks (high-water
/// mark, max drawdown), which legitimately depend on which intermediate prices
/// conflation kept. The risk model and the bar history stay in: bar closes are
/// exact whatever the batch boundaries.
fn facts<S: ProjectionStore>(store: &S, shards: u32) -> Vec<(u32, Table, String, Vec<u8>)> {
    (0..shards)
        .flat_map(|s| store.load_shard(s).unwrap().into_iter().map(move |c| (s, c.table, c.key, c.value.unwrap())))
        .filter(|(_, t, _, _)| !matches!(*t, Table::Signals | Table::RiskMarks))
        .collect()
}

#[test]
fn replay_reproduces_state_and_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let mut live = rocks_engine(dir.path(), 3);
    let alerts = feed(&mut live, &common::workload(12, 400), 37);
    assert!(alerts > 0, "the workload must raise alerts for this test to mean anything");
    let mut replayed = memory_engine(3);
    let records = rebuild(live.store().as_ref(), &mut replayed, None, |_| {}).unwrap();
    let report = compare(live.store().as_ref(), replayed.store().as_ref(), 3, records).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.live_alerts, alerts);
    // And into RocksDB, as `riskstream replay --check` does.
    let out = tempfile::tempdir().unwrap();
    let mut on_disk = rocks_engine(&out.path().join("r"), 3);
    rebuild(live.store().as_ref(), &mut on_disk, None, |_| {}).unwrap();
    assert!(compare(live.store().as_ref(), on_disk.store().as_ref(), 3, records).unwrap().ok());
}

#[test]
fn replay_detects_a_different_state() {
    let mut live = memory_engine(2);
    feed(&mut live, &common::workload(6, 100), 50);
    let mut replayed = memory_engine(2);
    let records = rebuild(live.store().as_ref(), &mut replayed, None, |_| {}).unwrap();
    // One more event in the live store only.
    feed(&mut live, &[common::ev("late", 9_000, common::deposit("acc-0", "user-0", "1"))], 1);
    let report = compare(live.store().as_ref(), replayed.store().as_ref(), 2, records).unwrap();
    assert!(report.difference.unwrap().contains("state digest differs"));
}

#[test]
fn replay_until_builds_an_earlier_state() {
    let mut live = memory_engine(1);
    let events = common::workload(2, 20);
    feed(&mut live, &events[..10], 10);
    let early = state_digest(live.store().as_ref(), 1).unwrap();
    let seq = live.head(0).seq;
    feed(&mut live, &events[10..], 10);
    let mut replayed = memory_engine(1);
    rebuild(live.store().as_ref(), &mut replayed, Some(AsOf::Seq(seq)), |_| {}).unwrap();
    assert_eq!(replayed.head(0).seq, seq);
    assert_eq!(state_digest(replayed.store().as_ref(), 1).unwrap(), early);
}

/// The events of a shard's log, in log order.
fn logged(engine: &Engine<MemoryStore>, shard: u32) -> Vec<riskstream_schemas::Event> {
    let store = engine.store();
    store
        .records(shard, 1)
        .map(|r| r.unwrap())
        .map(|r| engine.codec().decode(r.fingerprint, &r.payload).unwrap())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn any_split_into_batches_gives_the_same_state(sizes in proptest::collection::vec(1usize..60, 1..12)) {
        let events = common::workload(8, 150);
        let mut whole = memory_engine(2);
        feed(&mut whole, &events, usize::MAX);
        let mut split = memory_engine(2);
        let mut rest = &events[..];
        for size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (now, later) = rest.split_at((*size).min(rest.len()));
            split.ingest("test", None, common::items(now)).unwrap();
            rest = later;
        }
        prop_assert_eq!(facts(split.store().as_ref(), 2), facts(whole.store().as_ref(), 2));
        // docs/EVENTS.md, "Order of ticks and account events": whatever the batching,
        // the account events are logged in the same order and no record of an earlier
        // window (a UTC day here) follows one of a later window.
        for shard in 0..2 {
            let (split_log, whole_log) = (logged(&split, shard), logged(&whole, shard));
            let accounts = |log: &[riskstream_schemas::Event]| -> Vec<riskstream_schemas::Event> {
                log.iter().filter(|e| !matches!(e.body, EventBody::PriceBatch(_))).cloned().collect()
            };
            prop_assert_eq!(accounts(&split_log), accounts(&whole_log));
            let days: Vec<i64> = split_log.iter().map(|e| e.ts.day()).collect();
            prop_assert!(days.windows(2).all(|d| d[0] <= d[1]), "windows out of order: {:?}", days);
        }
        for a in 0..8 {
            let id = format!("acc-{a}");
            let (s, _, view) = split.account_view(&id).unwrap();
            let shard = split.shard(s).unwrap();
            prop_assert_eq!(Some(view), shard.full_view(&id), "incremental == full");
        }
    }
}

#[test]
fn restart_continues_from_the_last_seq_without_replay() {
    let dir = tempfile::tempdir().unwrap();
    let events = common::workload(10, 200);
    let (first, second) = events.split_at(events.len() / 2);
    let (heads, view) = {
        let mut engine = rocks_engine(dir.path(), 2);
        feed(&mut engine, first, 25);
        ((0..2).map(|s| engine.head(s)).collect::<Vec<_>>(), engine.account_view("acc-3"))
    };
    let mut reopened = rocks_engine(dir.path(), 2);
    assert_eq!((0..2).map(|s| reopened.head(s)).collect::<Vec<_>>(), heads);
    assert_eq!(reopened.account_view("acc-3"), view);
    feed(&mut reopened, second, 25);
    let mut uninterrupted = memory_engine(2);
    feed(&mut uninterrupted, first, 25);
    feed(&mut uninterrupted, second, 25);
    let a = state_digest(reopened.store().as_ref(), 2).unwrap();
    let b = state_digest(uninterrupted.store().as_ref(), 2).unwrap();
    assert_eq!(a, b, "restart changes nothing, rule state included");
}

#[test]
fn a_different_shard_count_is_refused_for_an_existing_dir() {
    let dir = tempfile::tempdir().unwrap();
    drop(rocks_engine(dir.path(), 2));
    let store = Arc::new(RocksDbStore::open(dir.path(), false).unwrap());
    let err = Engine::open(store, 3, RuleConfig::default(), Arc::new(Metrics::new())).err().unwrap().to_string();
    assert!(err.contains("created with 2 shards"), "{err}");
}

#[test]
fn an_event_id_applies_once() {
    let mut engine = memory_engine(2);
    let events = common::workload(4, 30);
    feed(&mut engine, &events, 10);
    let digest = state_digest(engine.store().as_ref(), 2).unwrap();
    let heads: Vec<_> = (0..2).map(|s| engine.head(s)).collect();
    let report = engine.ingest("test", None, common::items(&events)).unwrap();
    assert_eq!(report.accepted, 0);
    assert_eq!(report.duplicates + report.stale_ticks, events.len());
    assert_eq!(report.records_appended, 0);
    assert_eq!((0..2).map(|s| engine.head(s)).collect::<Vec<_>>(), heads);
    assert_eq!(state_digest(engine.store().as_ref(), 2).unwrap(), digest);
    // Twice inside one batch: once.
    let dep = common::ev("dep-twice", 99, common::deposit("acc-1", "user-0", "5"));
    let report = engine.ingest("test", None, common::items(&[dep.clone(), dep])).unwrap();
    assert_eq!((report.accepted, report.duplicates), (1, 1));
}

#[test]
fn bad_events_are_dead_lettered_and_their_neighbours_apply() {
    let mut engine = memory_engine(2);
    feed(&mut engine, &common::workload(2, 0), 100);
    let good1 = common::ev("g1", 10, common::deposit("acc-0", "user-0", "100"));
    let oversell = common::ev("bad", 11, common::trade("bad", "acc-0", "user-0", "AAA", Side::Sell, "100000", "1"));
    let good2 = common::ev("g2", 12, common::deposit("acc-1", "user-0", "100"));
    let mut items = common::items(&[good1, oversell, good2]);
    items.insert(
        1,
        Decoded { index: 99, raw: "{not json".into(), result: Err(Rejection::body("malformed JSON").at(99)) },
    );
    let cash_before = engine.account_view("acc-0").unwrap().2.cash;
    let report = engine.ingest("test", None, items).unwrap();
    assert_eq!(report.accepted, 2);
    let rejected: Vec<(Option<usize>, Option<String>)> =
        report.rejected.iter().map(|r| (r.index, r.field.clone())).collect();
    assert_eq!(rejected, vec![(Some(1), Some("quantity".into())), (Some(99), None)]);
    assert_eq!(engine.account_view("acc-0").unwrap().2.cash, cash_before + common::d("100"));
    let letters = engine.store().dead_letters_after(0, 10).unwrap();
    assert_eq!(letters.len(), 2);
    assert!(letters.iter().any(|l| l.raw == "{not json"));
    assert!(letters.iter().any(|l| l.raw.contains("100000") && l.reason.contains("holds")));
    assert_eq!(
        engine.store().event_seen("bad").unwrap(),
        None,
        "a rejected event's id stays free for a corrected resend"
    );
}

fn simulated(seed: u64, events: usize) -> Vec<riskstream_schemas::Event> {
    let config = riskstream_connectors::SimulatorConfig {
        seed,
        symbols: 12,
        accounts: 10,
        positions_per_account: 4,
        trade_every: 3,
        shock_every: 40,
        tick_interval_micros: 30 * 60 * 1_000_000,
        ..Default::default()
    };
    let mut source = riskstream_connectors::SimulatorSource::new(config);
    std::iter::from_fn(|| source.next_event()).take(events).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Invariant 3 over random simulated books (half-hour ticks, so days roll and
    /// cooldowns expire) and random batch sizes.
    #[test]
    fn replay_equals_live_for_any_workload(seed in 0u64..1_000, batch in 1usize..200, shards in 1u32..4) {
        let events = simulated(seed, 600);
        let mut live = memory_engine(shards);
        feed(&mut live, &events, batch);
        let mut replayed = memory_engine(shards);
        let records = rebuild(live.store().as_ref(), &mut replayed, None, |_| {}).unwrap();
        let report = compare(live.store().as_ref(), replayed.store().as_ref(), shards, records).unwrap();
        prop_assert!(report.ok(), "{:?}", report.difference);
    }
}

#[test]
fn every_alert_has_its_own_id() {
    // Shocks move several symbols in one price batch, so one record raises market
    // moves on several subjects for the same account.
    let mut engine = memory_engine(2);
    let mut ids = std::collections::HashSet::new();
    let mut total = 0;
    for chunk in simulated(7, 3_000).chunks(500) {
        for a in engine.ingest("test", None, common::items(chunk)).unwrap().alerts {
            total += 1;
            assert!(ids.insert(a.alert_id.clone()), "alert id {} given twice: {a:?}", a.alert_id);
        }
    }
    assert!(total > 50, "the workload must raise many alerts ({total})");
}
