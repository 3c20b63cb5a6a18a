//! The event-time merge's promises that distributed mode relies on: the events (and
//! the positions stored with them) depend only on the inputs' contents, not on how
//! messages arrive or how much is pulled at a time; a new owner resuming from a stored
//! position continues with the same events; order is event time with input-order
//! ties; ticks are conflated per event-time window; stale ticks never reach a
//! `PriceBatch`. Where a refusal falls between events may depend on delivery (the
//! `Merged` doc says so), so refusals are compared as a set.
//!
//! The random properties use seeded ChaCha workloads (no proptest), so a failing case
//! is reproduced by its case number alone.

use std::collections::{BTreeMap, HashMap, HashSet};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use riskstream_connectors::kafka::merge::{Message, CONFLATION_WINDOW_MICROS, MAX_TICKS_PER_BATCH};
use riskstream_connectors::kafka::{InputId, Merge, Merged, Position};
use riskstream_schemas::json::{decode_line, encode};
use riskstream_schemas::{DecimalStr, Event, EventBody, PriceBatch, Timestamp, MICROS_PER_DAY};
use rust_decimal::Decimal;

/// Random workloads per property.
const CASES: u64 = 300;
/// Random deliveries of each workload in the chunking properties.
const DELIVERIES: u64 = 4;

const SYMBOLS: [&str; 3] = ["AAA", "BBB", "CCC"];
/// Valid JSON, but a `CashMovement` without its fields: refused by the decoder.
const BAD_LINE: &str = r#"{"type":"CashMovement","ts":"2026-03-02T10:00:00Z","account_id":"a"}"#;

fn input(topic: &str, partition: i32) -> InputId {
    InputId { topic: topic.to_string(), partition }
}

/// Shard 3 of three account topics, then both partitions of the ticks topic: the
/// tie-break order `ShardInput` builds.
fn shard_inputs() -> Vec<InputId> {
    vec![input("accounts", 3), input("cash", 3), input("trades", 3), input("ticks", 0), input("ticks", 1)]
}

fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

fn message(offset: i64, line: &str) -> Message {
    Message { offset, event: decode_line(0, line).result, raw: line.as_bytes().to_vec() }
}

fn tick_line(ts: Timestamp, symbol: &str, price: &str) -> String {
    format!(r#"{{"type":"MarketTick","ts":"{ts}","symbol":"{symbol}","price":"{price}"}}"#)
}

fn cash_line(ts: Timestamp, event_id: &str) -> String {
    format!(
        r#"{{"type":"CashMovement","event_id":"{event_id}","ts":"{ts}","account_id":"a","user_id":"u","kind":"deposit","amount":"10"}}"#
    )
}

fn tick(offset: i64, ts: &str, symbol: &str, price: &str) -> Message {
    message(offset, &tick_line(at(ts), symbol, price))
}

fn cash(offset: i64, ts: &str, event_id: &str) -> Message {
    message(offset, &cash_line(at(ts), event_id))
}

fn bad(offset: i64) -> Message {
    let m = message(offset, BAD_LINE);
    assert!(m.event.is_err(), "the bad line must be refused by the decoder");
    m
}

/// A model's open price window: (window, latest tick time, first input, last prices).
type OpenWindow = (i64, Timestamp, usize, BTreeMap<String, (Decimal, Timestamp)>);

/// One emitted item, as compared between runs.
// Test data, compared whole; boxing the event would only complicate the patterns.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Event { event: Event, position: String, source: Option<(InputId, i64)> },
    Refused { input: InputId, offset: i64, reason: String },
}

fn item(merged: &Merged) -> Item {
    match merged {
        Merged::Event { event, position, source } => Item::Event {
            event: event.clone(),
            position: position.clone(),
            source: source.as_ref().map(|(id, offset, _)| (id.clone(), *offset)),
        },
        Merged::Refused { input, offset, rejection, .. } => {
            Item::Refused { input: input.clone(), offset: *offset, reason: rejection.to_string() }
        }
    }
}

/// Short form for expectations: event JSON, or `refused topic/partition@offset`.
fn describe(item: &Item) -> String {
    match item {
        Item::Event { event, .. } => encode(event),
        Item::Refused { input, offset, .. } => format!("refused {input}@{offset}"),
    }
}

fn position_of(item: &Item) -> &str {
    match item {
        Item::Event { position, .. } => position,
        Item::Refused { .. } => panic!("a refusal carries no position: {item:?}"),
    }
}

fn batch_of(item: &Item) -> &PriceBatch {
    match item {
        Item::Event { event: Event { body: EventBody::PriceBatch(b), .. }, .. } => b,
        other => panic!("expected a PriceBatch, got {other:?}"),
    }
}

/// The events in order, with their positions: what the shard appends.
fn events(items: &[Item]) -> Vec<&Item> {
    items.iter().filter(|i| matches!(i, Item::Event { .. })).collect()
}

/// The refusals as a sorted multiset: what reaches the dead-letter topic, order aside.
fn refusals(items: &[Item]) -> Vec<(InputId, i64, String)> {
    let mut out: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            Item::Refused { input, offset, reason } => Some((input.clone(), *offset, reason.clone())),
            Item::Event { .. } => None,
        })
        .collect();
    out.sort();
    out
}

/// The refusals a merge resumed at `start` emits: every one at or after its input's
/// start offset, including some emitted before the cut. A refusal behind pending
/// ticks of its input resumes before them (they are not applied yet), so a new owner
/// sends that dead letter again: at least once, never lost.
fn refusals_from(items: &[Item], start: &Position) -> Vec<(InputId, i64, String)> {
    refusals(items).into_iter().filter(|(id, offset, _)| *offset >= start.offset(id)).collect()
}

/// The last tick time per symbol over the batches in `items`: what the engine stores
/// and seeds a new owner's merge with.
fn last_tick_times(items: &[Item]) -> BTreeMap<String, Timestamp> {
    let mut out = BTreeMap::new();
    for i in items {
        if let Item::Event { event: Event { body: EventBody::PriceBatch(b), .. }, .. } = i {
            for (symbol, ts) in &b.times {
                let e = out.entry(symbol.clone()).or_insert(*ts);
                *e = (*e).max(*ts);
            }
        }
    }
    out
}

fn first_difference(a: &[Item], b: &[Item]) -> String {
    let i = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    let show = |s: &[Item]| s.get(i..(i + 3).min(s.len())).unwrap_or(&[]).iter().map(describe).collect::<Vec<_>>();
    format!("first difference at item {i}:\n  expected {:?}\n  got      {:?}", show(a), show(b))
}

fn pull_all(merge: &mut Merge, max: usize) -> Vec<Item> {
    let mut items = Vec::new();
    loop {
        let got = merge.pull(max);
        if got.is_empty() {
            return items;
        }
        items.extend(got.iter().map(item));
    }
}

/// Everything left once every input is idle: the pulls, then the open window, which
/// only `flush_idle` closes.
fn finish(merge: &mut Merge, max: usize) -> Vec<Item> {
    let mut items = pull_all(merge, max);
    assert!(merge.idle(), "every input is at its end with nothing buffered");
    items.extend(merge.flush_idle().iter().map(item));
    items
}

/// Every input partition's messages, each in offset order with non-decreasing `ts`.
struct Workload {
    inputs: Vec<InputId>,
    messages: Vec<Vec<Message>>,
}

fn workload(seed: u64) -> Workload {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let inputs = shard_inputs();
    let messages = inputs.iter().map(|id| input_messages(&mut rng, id)).collect();
    Workload { inputs, messages }
}

fn input_messages(rng: &mut ChaCha8Rng, id: &InputId) -> Vec<Message> {
    // A quarter of a conflation window: a window holds several distinct times, equal
    // times across inputs are common, and starting 3 s before midnight most workloads
    // cross a UTC day.
    const STEP: i64 = CONFLATION_WINDOW_MICROS / 4;
    let is_ticks = id.topic == "ticks";
    let mut ts = at("2026-03-02T23:59:57Z").micros() + STEP * rng.gen_range(0..=4);
    let mut offset = rng.gen_range(-1..2);
    let mut out = Vec::new();
    for _ in 0..rng.gen_range(0..=20) {
        ts += STEP * rng.gen_range(0..=3) + if rng.gen_bool(0.03) { MICROS_PER_DAY } else { 0 };
        // Transaction markers take offsets too, so offsets can skip.
        offset += if rng.gen_bool(0.1) { 2 } else { 1 };
        let t = Timestamp(ts);
        let line = if rng.gen_bool(0.06) {
            BAD_LINE.to_string()
        } else if is_ticks {
            tick_line(t, SYMBOLS[rng.gen_range(0..SYMBOLS.len())], &rng.gen_range(90..110).to_string())
        } else {
            cash_line(t, &format!("{id}-{offset}"))
        };
        out.push(message(offset, &line));
    }
    out
}

/// What one run of a merge produced.
#[derive(Default)]
struct Run {
    items: Vec<Item>,
    stale_ticks: u64,
    applied: Position,
    /// After each `pull`: how many items were out, and `applied()` (what the engine
    /// stores with the batch).
    boundaries: Vec<(usize, Position)>,
}

/// A merge resuming at `start` with the stored last tick times `seen`, given every
/// message from its start offsets at once, every input at its end.
fn resume(w: &Workload, start: &Position, seen: &BTreeMap<String, Timestamp>) -> Run {
    let mut merge = Merge::new(w.inputs.clone(), start.clone());
    for (symbol, ts) in seen {
        merge.seen_tick(symbol, *ts);
    }
    for (id, messages) in w.inputs.iter().zip(&w.messages) {
        for m in messages.iter().filter(|m| m.offset >= start.offset(id)) {
            merge.push(id, m.clone());
        }
        merge.at_end(id);
    }
    let items = finish(&mut merge, usize::MAX);
    Run { items, stale_ticks: merge.stale_ticks(), applied: merge.applied().clone(), boundaries: Vec::new() }
}

fn all_at_once(w: &Workload) -> Run {
    resume(w, &Position::default(), &BTreeMap::new())
}

/// The same workload delivered in random chunks (with re-deliveries), with random
/// pulls in between; an input is marked at its end only once fully delivered.
fn chunked(w: &Workload, rng: &mut ChaCha8Rng) -> Run {
    let mut merge = Merge::new(w.inputs.clone(), Position::default());
    let n = w.inputs.len();
    let mut pushed = vec![0usize; n];
    let mut ended = vec![false; n];
    let mut run = Run::default();
    while ended.iter().any(|e| !e) {
        let i = rng.gen_range(0..n);
        let (id, messages) = (&w.inputs[i], &w.messages[i]);
        match rng.gen_range(0..10) {
            0..=4 if pushed[i] < messages.len() => {
                // A consumer that re-seeks delivers again what the merge already has.
                if pushed[i] > 0 && rng.gen_bool(0.2) {
                    merge.push(id, messages[pushed[i] - 1].clone());
                }
                let k = rng.gen_range(1..=4).min(messages.len() - pushed[i]);
                for m in &messages[pushed[i]..pushed[i] + k] {
                    merge.push(id, m.clone());
                }
                pushed[i] += k;
            }
            5 | 6 if pushed[i] == messages.len() => {
                merge.at_end(id);
                ended[i] = true;
            }
            _ => {
                let got = merge.pull(rng.gen_range(1..=4));
                run.items.extend(got.iter().map(item));
                run.boundaries.push((run.items.len(), merge.applied().clone()));
            }
        }
    }
    run.items.extend(finish(&mut merge, 3));
    run.stale_ticks = merge.stale_ticks();
    run.applied = merge.applied().clone();
    run
}

/// The next offset after each input's last message: where a fully drained shard stands.
fn end_position(w: &Workload) -> Position {
    Position(
        w.inputs.iter().zip(&w.messages).map(|(id, ms)| (id.clone(), ms.last().map_or(0, |m| m.offset + 1))).collect(),
    )
}

#[test]
fn any_delivery_gives_the_same_events_positions_refusals_and_resume_points() {
    let (mut runs, mut restarts, mut refused) = (0, 0, 0);
    for case in 0..CASES {
        let w = workload(case);
        let reference = all_at_once(&w);
        refused += refusals(&reference.items).len();
        assert_eq!(reference.applied, end_position(&w), "case {case}: a drained merge has applied everything");
        for delivery in 0..DELIVERIES {
            let mut rng = ChaCha8Rng::seed_from_u64(case * 1000 + delivery);
            let run = chunked(&w, &mut rng);
            runs += 1;
            let ctx = format!("case {case}, delivery {delivery}");
            assert_eq!(events(&run.items), events(&reference.items), "{ctx}: events and positions");
            assert_eq!(refusals(&run.items), refusals(&reference.items), "{ctx}: refusals");
            assert_eq!(run.stale_ticks, reference.stale_ticks, "{ctx}: stale ticks");
            assert_eq!(run.applied, reference.applied, "{ctx}: final position");
            // A new owner taking over after any pull (pending ticks included) goes on
            // with the same events.
            for (n, position) in &run.boundaries {
                let rest = resume(&w, position, &last_tick_times(&run.items[..*n]));
                restarts += 1;
                let ctx = format!("{ctx}: resumed after item {n} from {}", position.encode());
                assert_eq!(events(&rest.items), events(&run.items[*n..]), "{ctx}");
                assert_eq!(refusals(&rest.items), refusals_from(&run.items, position), "{ctx}");
            }
        }
    }
    // Guards the generator: the properties above must have had something to bite on.
    assert!(refused > CASES as usize / 2, "only {refused} refusals in {CASES} workloads");
    assert!(restarts > runs * 5, "only {restarts} restarts in {runs} runs");
}

/// Pulls one item at a time, keeping where a new owner would resume after each: the
/// position an event carries, or `applied()` right after a refusal (which carries none).
fn one_by_one(w: &Workload) -> (Vec<Item>, Vec<Position>) {
    let mut merge = Merge::new(w.inputs.clone(), Position::default());
    for (id, messages) in w.inputs.iter().zip(&w.messages) {
        for m in messages {
            merge.push(id, m.clone());
        }
        merge.at_end(id);
    }
    let (mut items, mut resume_at) = (Vec::new(), Vec::new());
    loop {
        let mut got: Vec<Item> = merge.pull(1).iter().map(item).collect();
        if got.is_empty() {
            got = merge.flush_idle().iter().map(item).collect();
        }
        let Some(last) = got.last() else { return (items, resume_at) };
        if let Item::Event { position, .. } = last {
            assert_eq!(position, &merge.applied().encode(), "the last event's position is applied()");
        }
        for (k, it) in got.iter().enumerate() {
            resume_at.push(match it {
                Item::Event { position, .. } => Position::parse(position).unwrap(),
                Item::Refused { .. } => {
                    assert_eq!(k, got.len() - 1, "a refusal ends its pull: {got:?}");
                    merge.applied().clone()
                }
            });
        }
        items.extend(got);
    }
}

#[test]
fn resuming_after_any_item_continues_with_exactly_the_rest() {
    let (mut restarts, mut resent) = (0, 0);
    for case in 0..CASES {
        let w = workload(case);
        let reference = all_at_once(&w);
        let (items, resume_at) = one_by_one(&w);
        assert!(items == reference.items, "case {case}: pull(1): {}", first_difference(&reference.items, &items));
        for (k, start) in resume_at.iter().enumerate() {
            let rest = resume(&w, start, &last_tick_times(&items[..=k])).items;
            restarts += 1;
            let ctx = format!("case {case}: resumed after item {k} ({}) from {}", describe(&items[k]), start.encode());
            // Refusals already sent that the new owner sends again (see `refusals_from`);
            // apart from them, the rest is the very same sequence.
            let again: HashSet<(InputId, i64)> = refusals(&items[..=k])
                .into_iter()
                .filter(|(id, offset, _)| *offset >= start.offset(id))
                .map(|(id, offset, _)| (id, offset))
                .collect();
            resent += again.len();
            let is_again = |i: &Item| matches!(i, Item::Refused { input, offset, .. } if again.contains(&(input.clone(), *offset)));
            assert_eq!(rest.iter().filter(|i| is_again(i)).count(), again.len(), "{ctx}: resent refusals");
            let fresh: Vec<Item> = rest.into_iter().filter(|i| !is_again(i)).collect();
            assert!(fresh == items[k + 1..], "{ctx}: {}", first_difference(&items[k + 1..], &fresh));
        }
    }
    assert!(restarts > CASES * 20, "only {restarts} restarts");
    assert!(resent > 0, "no restart had a refusal behind pending ticks");
}

/// In random workloads every tick after a cut is in a later window, so the stored
/// tick times never matter there; they do after an idle flush, when a late tick of
/// the same time arrives from another partition.
#[test]
fn resuming_after_an_idle_flush_drops_the_same_stale_ticks_as_the_old_owner() {
    let (t0, t1) = (input("ticks", 0), input("ticks", 1));
    let late = || tick(0, "2026-03-02T10:00:00Z", "AAA", "101");
    let mut old = Merge::new(vec![t0.clone(), t1.clone()], Position::default());
    old.push(&t0, tick(0, "2026-03-02T10:00:00Z", "AAA", "100"));
    old.at_end(&t0);
    old.at_end(&t1);
    let first = finish(&mut old, 10);
    assert_eq!(first.len(), 1);
    let stored = Position::parse(position_of(&first[0])).unwrap();
    assert_eq!(stored.encode(), "kafka:ticks/0=1;ticks/1=0");
    old.push(&t1, late());
    old.at_end(&t1);
    assert!(finish(&mut old, 10).is_empty(), "the old owner drops the late tick");
    assert_eq!((old.stale_ticks(), old.applied().encode()), (1, "kafka:ticks/0=1;ticks/1=1".to_string()));

    let takeover = |seed: bool| {
        let mut new = Merge::new(vec![t0.clone(), t1.clone()], stored.clone());
        if seed {
            for (symbol, ts) in last_tick_times(&first) {
                new.seen_tick(&symbol, ts);
            }
        }
        new.push(&t1, late());
        new.at_end(&t0);
        new.at_end(&t1);
        let items = finish(&mut new, 10);
        (items.iter().map(describe).collect::<Vec<_>>(), new.stale_ticks(), new.applied().encode())
    };
    assert_eq!(takeover(true), (vec![], 1, "kafka:ticks/0=1;ticks/1=1".to_string()));
    // Why the seed is needed: without it the new owner would apply the late price.
    let (unseeded, _, _) = takeover(false);
    assert_eq!(unseeded.len(), 1);
    assert!(unseeded[0].contains(r#""AAA":"101""#), "{unseeded:?}");
}

/// The merge rebuilt from its contract: accepted messages sorted by (ts, input, offset)
/// (what a merge of sorted inputs with input-order ties yields), a refused message
/// leaving as soon as it heads its input, ticks conflated per event-time window and
/// emitted once a later window's tick or event comes (or at the end, when idle),
/// account events inside the open window going before its prices.
struct Model<'a> {
    w: &'a Workload,
    next: Vec<usize>,
    out: Vec<String>,
    batch: Option<OpenWindow>,
    last_tick: HashMap<String, Timestamp>,
    stale: u64,
}

impl Model<'_> {
    fn run(w: &Workload) -> (Vec<String>, u64) {
        let mut order: Vec<(Timestamp, usize, usize)> = Vec::new();
        for (i, messages) in w.messages.iter().enumerate() {
            for (j, m) in messages.iter().enumerate() {
                if let Ok(e) = &m.event {
                    order.push((e.ts, i, j));
                }
            }
        }
        order.sort();
        let mut model = Model {
            w,
            next: vec![0; w.inputs.len()],
            out: Vec::new(),
            batch: None,
            last_tick: HashMap::new(),
            stale: 0,
        };
        model.refuse_heads();
        for (_, i, j) in order {
            assert_eq!(model.next[i], j, "model: refusals ahead of message {j} of input {i} were not taken");
            model.next[i] += 1;
            model.take(w.messages[i][j].event.as_ref().unwrap());
            model.refuse_heads();
        }
        // Every input idle: `flush_idle` closes the last window.
        model.flush();
        (model.out, model.stale)
    }

    fn refuse_heads(&mut self) {
        let w = self.w;
        for (i, messages) in w.messages.iter().enumerate() {
            while let Some(m) = messages.get(self.next[i]).filter(|m| m.event.is_err()) {
                self.out.push(format!("refused {}@{}", w.inputs[i], m.offset));
                self.next[i] += 1;
            }
        }
    }

    fn take(&mut self, event: &Event) {
        let window = event.ts.micros().div_euclid(CONFLATION_WINDOW_MICROS);
        let EventBody::MarketTick(t) = &event.body else {
            // Inside the open window the event goes before its prices.
            if self.batch.as_ref().is_some_and(|b| b.0 != window) {
                self.flush();
            }
            self.out.push(encode(event));
            return;
        };
        if self.last_tick.get(&t.symbol).is_some_and(|last| event.ts <= *last) {
            self.stale += 1;
            return;
        }
        if self.batch.as_ref().is_some_and(|b| b.0 != window || b.2 == MAX_TICKS_PER_BATCH) {
            self.flush();
        }
        self.last_tick.insert(t.symbol.clone(), event.ts);
        let b = self.batch.get_or_insert_with(|| (window, event.ts, 0, BTreeMap::new()));
        b.1 = event.ts;
        b.2 += 1;
        b.3.insert(t.symbol.clone(), (t.price, event.ts));
    }

    fn flush(&mut self) {
        let Some((_, ts, _, last)) = self.batch.take() else { return };
        let prices = last.iter().map(|(s, (p, _))| (s.clone(), DecimalStr(*p))).collect();
        let times = last.iter().map(|(s, (_, t))| (s.clone(), *t)).collect();
        let body = EventBody::PriceBatch(PriceBatch { prices, times });
        self.out.push(encode(&Event { event_id: None, ts, body }));
    }
}

#[test]
fn merged_sequence_matches_the_event_time_model_with_consistent_positions() {
    let (mut batches, mut stale) = (0, 0);
    for case in 0..CASES {
        let w = workload(case);
        let run = all_at_once(&w);
        let got: Vec<String> = run.items.iter().map(describe).collect();
        let (expected, expected_stale) = Model::run(&w);
        assert_eq!(got, expected, "case {case}");
        assert_eq!(run.stale_ticks, expected_stale, "case {case}: stale ticks");
        stale += run.stale_ticks;

        let mut floor = Position::default();
        let mut newest: HashMap<String, Timestamp> = HashMap::new();
        for it in &run.items {
            let Item::Event { event, position, source } = it else { continue };
            let p = Position::parse(position).unwrap();
            for id in &w.inputs {
                assert!(p.offset(id) >= floor.offset(id), "case {case}: {id} went back at {position}");
            }
            if let Some((id, offset)) = source {
                assert_eq!(p.offset(id), offset + 1, "case {case}: the position covers the event's own message");
            }
            floor = p;
            if let EventBody::PriceBatch(b) = &event.body {
                batches += 1;
                // One window, so one UTC day too.
                let window = |t: &Timestamp| t.micros().div_euclid(CONFLATION_WINDOW_MICROS);
                assert!(b.times.values().all(|t| window(t) == window(&event.ts)), "case {case}: spans windows: {b:?}");
                assert_eq!(b.times.values().max(), Some(&event.ts), "case {case}: batch ts is its last tick");
                for (symbol, ts) in &b.times {
                    let before = newest.insert(symbol.clone(), *ts);
                    assert!(before.is_none_or(|t| t < *ts), "case {case}: {symbol} at {ts} after {before:?}");
                }
            }
        }
    }
    assert!(batches > CASES && stale > CASES / 4, "generator too tame: {batches} batches, {stale} stale ticks");
}

#[test]
fn equal_times_go_in_input_order() {
    let (acc, cashq, ticks) = (input("accounts", 3), input("cash", 3), input("ticks", 0));
    let mut merge = Merge::new(vec![acc.clone(), cashq.clone(), ticks.clone()], Position::default());
    // Pushed in reverse, all at 10:00: the push order must not matter.
    merge.push(&ticks, tick(0, "2026-03-02T10:00:00Z", "AAA", "100"));
    merge.push(&cashq, cash(0, "2026-03-02T10:00:00Z", "c1"));
    merge.push(&acc, cash(0, "2026-03-02T10:00:00Z", "a1"));
    merge.push(&acc, cash(1, "2026-03-02T10:00:00Z", "a2"));
    for id in [&acc, &cashq, &ticks] {
        merge.at_end(id);
    }
    let items = pull_all(&mut merge, 10);
    let ids: Vec<Option<String>> = items
        .iter()
        .map(|i| match i {
            Item::Event { event, .. } => event.event_id.clone(),
            Item::Refused { .. } => None,
        })
        .collect();
    assert_eq!(ids, [Some("a1".into()), Some("a2".into()), Some("c1".into())]);
    let positions: Vec<&str> = items.iter().map(position_of).collect();
    assert_eq!(
        positions,
        [
            "kafka:accounts/3=1;cash/3=0;ticks/0=0",
            "kafka:accounts/3=2;cash/3=0;ticks/0=0",
            "kafka:accounts/3=2;cash/3=1;ticks/0=0",
        ]
    );
    // The tick's window is still open: only an idle shard closes it.
    let last: Vec<Item> = merge.flush_idle().iter().map(item).collect();
    assert_eq!(last.len(), 1, "{last:?}");
    assert_eq!(batch_of(&last[0]).prices["AAA"], DecimalStr(Decimal::from(100)));
    assert_eq!(position_of(&last[0]), "kafka:accounts/3=2;cash/3=1;ticks/0=1");
}

#[test]
fn an_input_with_nothing_buffered_blocks_until_it_has_a_message_or_is_at_end() {
    let (acc, cashq) = (input("accounts", 3), input("cash", 3));
    let mut merge = Merge::new(vec![acc.clone(), cashq.clone()], Position::default());
    merge.push(&acc, cash(0, "2026-03-02T10:00:00Z", "a1"));
    assert!(merge.pull(10).is_empty(), "cash may still bring something older than 10:00");
    assert_eq!(merge.applied().encode(), "kafka:accounts/3=0;cash/3=0");

    merge.push(&cashq, cash(0, "2026-03-02T09:00:00Z", "c1"));
    let items: Vec<String> = merge.pull(10).iter().map(item).map(|i| describe(&i)).collect();
    assert_eq!(items.len(), 1, "only the 09:00 event goes, then cash is empty again: {items:?}");
    assert!(items[0].contains(r#""event_id":"c1""#), "{items:?}");

    merge.at_end(&cashq);
    let items = pull_all(&mut merge, 10);
    assert_eq!(items.len(), 1);
    assert_eq!(position_of(&items[0]), "kafka:accounts/3=1;cash/3=1");
}

#[test]
fn pending_ticks_go_after_the_events_of_their_window() {
    let (acc, ticks) = (input("accounts", 3), input("ticks", 0));
    let mut merge = Merge::new(vec![acc.clone(), ticks.clone()], Position::default());
    merge.push(&acc, cash(0, "2026-03-02T10:00:00.5Z", "a1"));
    merge.push(&acc, cash(1, "2026-03-02T10:00:01Z", "a2"));
    merge.push(&ticks, tick(0, "2026-03-02T10:00:00Z", "AAA", "100"));
    merge.push(&ticks, tick(1, "2026-03-02T10:00:00.4Z", "BBB", "50"));
    merge.push(&ticks, tick(2, "2026-03-02T10:00:00.9Z", "AAA", "101"));
    // a1 is inside the open window, so it goes before the window's prices; a2 waits,
    // since ticks may still bring something older.
    let items: Vec<Item> = merge.pull(10).iter().map(item).collect();
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(describe(&items[0]).contains(r#""event_id":"a1""#), "{items:?}");
    assert_eq!(position_of(&items[0]), "kafka:accounts/3=1;ticks/0=0", "held ticks are not applied");

    merge.at_end(&ticks);
    let items: Vec<Item> = merge.pull(10).iter().map(item).collect();
    assert_eq!(items.len(), 2, "{items:?}");
    // Last price per symbol, each with its own tick's time; the batch at the latest.
    assert_eq!(
        describe(&items[0]),
        r#"{"ts":"2026-03-02T10:00:00.9Z","type":"PriceBatch","prices":{"AAA":"101","BBB":"50"},"times":{"AAA":"2026-03-02T10:00:00.9Z","BBB":"2026-03-02T10:00:00.4Z"}}"#
    );
    assert_eq!(position_of(&items[0]), "kafka:accounts/3=1;ticks/0=3");
    assert!(describe(&items[1]).contains(r#""event_id":"a2""#), "{items:?}");
    assert_eq!(position_of(&items[1]), "kafka:accounts/3=2;ticks/0=3");
}

#[test]
fn pending_ticks_go_once_a_tick_of_a_later_window_comes_without_waiting() {
    let (acc, ticks) = (input("accounts", 3), input("ticks", 0));
    let mut merge = Merge::new(vec![acc.clone(), ticks.clone()], Position::default());
    merge.push(&acc, cash(0, "2026-03-03T00:10:00Z", "a1"));
    // The last second of a UTC day, then the first of the next.
    merge.push(&ticks, tick(0, "2026-03-02T23:59:59.1Z", "AAA", "100"));
    merge.push(&ticks, tick(1, "2026-03-02T23:59:59.5Z", "BBB", "50"));
    merge.push(&ticks, tick(2, "2026-03-03T00:00:00Z", "AAA", "102"));
    let items: Vec<Item> = merge.pull(10).iter().map(item).collect();
    assert_eq!(items.len(), 1, "{items:?}");
    let b = batch_of(&items[0]);
    assert_eq!(b.times["AAA"], at("2026-03-02T23:59:59.1Z"));
    assert_eq!(b.times["BBB"], at("2026-03-02T23:59:59.5Z"));
    assert_eq!(position_of(&items[0]), "kafka:accounts/3=0;ticks/0=2");

    merge.at_end(&ticks);
    let items = pull_all(&mut merge, 10);
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(batch_of(&items[0]).prices, BTreeMap::from([("AAA".to_string(), DecimalStr(Decimal::from(102)))]));
    assert_eq!(position_of(&items[0]), "kafka:accounts/3=0;ticks/0=3");
    assert_eq!(position_of(&items[1]), "kafka:accounts/3=1;ticks/0=3");
}

#[test]
fn pending_ticks_go_at_max_ticks_per_batch() {
    let (acc, ticks) = (input("accounts", 3), input("ticks", 0));
    let mut merge = Merge::new(vec![acc.clone(), ticks.clone()], Position::default());
    merge.at_end(&acc);
    // One microsecond apart: all in one window.
    let start = at("2026-03-02T00:00:00Z").micros();
    for i in 0..=MAX_TICKS_PER_BATCH as i64 {
        let line = tick_line(Timestamp(start + i), SYMBOLS[i as usize % 3], &(i + 1).to_string());
        merge.push(&ticks, message(i, &line));
    }
    let items: Vec<Item> = merge.pull(10).iter().map(item).collect();
    assert_eq!(items.len(), 1, "a full batch goes without waiting for the window's end: {items:?}");
    assert_eq!(MAX_TICKS_PER_BATCH, 10_000, "the expectations below are worked out for 10 000");
    // Ticks 0..=9999: the last of each symbol are 9999 (AAA), 9997 (BBB), 9998 (CCC).
    let b = batch_of(&items[0]);
    let price = |s: &str| b.prices[s].0;
    assert_eq!((price("AAA"), price("BBB"), price("CCC")), (10_000.into(), 9_998.into(), 9_999.into()));
    assert_eq!(b.times["AAA"], Timestamp(start + 9_999));
    assert_eq!(position_of(&items[0]), "kafka:accounts/3=0;ticks/0=10000");

    merge.at_end(&ticks);
    assert!(merge.pull(10).is_empty(), "the second batch's window is still open");
    let items: Vec<Item> = merge.flush_idle().iter().map(item).collect();
    assert_eq!(items.len(), 1);
    let b = batch_of(&items[0]);
    assert_eq!(b.prices, BTreeMap::from([("BBB".to_string(), DecimalStr(Decimal::from(10_001)))]));
    assert_eq!(b.times["BBB"], Timestamp(start + 10_000));
    assert_eq!(position_of(&items[0]), "kafka:accounts/3=0;ticks/0=10001");
}

#[test]
fn the_last_window_closes_only_through_flush_idle_once_every_input_is_idle() {
    let (acc, ticks) = (input("accounts", 3), input("ticks", 0));
    let mut merge = Merge::new(vec![acc.clone(), ticks.clone()], Position::default());
    merge.at_end(&acc);
    merge.push(&ticks, tick(0, "2026-03-02T10:00:00Z", "AAA", "100"));
    assert!(merge.pull(10).is_empty(), "ticks may have more of the window");
    assert!(!merge.idle());
    assert!(merge.flush_idle().is_empty(), "not idle: no flush");
    merge.at_end(&ticks);
    assert!(merge.pull(10).is_empty(), "a momentary catch-up does not close the window");
    assert!(merge.idle());
    let items: Vec<Item> = merge.flush_idle().iter().map(item).collect();
    assert_eq!(items.len(), 1);
    assert_eq!(position_of(&items[0]), "kafka:accounts/3=0;ticks/0=1");
    assert!(merge.flush_idle().is_empty(), "nothing left to close");

    // A new message un-ends its input; while it sits unpulled the shard is not idle.
    merge.push(&ticks, tick(1, "2026-03-02T10:00:01Z", "AAA", "101"));
    assert!(!merge.idle());
    merge.at_end(&ticks);
    assert!(!merge.idle(), "a buffered message is not idle");
    assert!(merge.flush_idle().is_empty());
    assert!(merge.pull(10).is_empty());
    assert_eq!(merge.applied().encode(), "kafka:accounts/3=0;ticks/0=1");
    let items: Vec<Item> = merge.flush_idle().iter().map(item).collect();
    assert_eq!(items.len(), 1);
    assert_eq!(position_of(&items[0]), "kafka:accounts/3=0;ticks/0=2");
}

#[test]
fn a_refused_head_leaves_at_once_without_closing_the_window() {
    let (acc, ticks) = (input("accounts", 3), input("ticks", 0));
    let mut merge = Merge::new(vec![acc.clone(), ticks.clone()], Position::default());
    merge.push(&acc, bad(0));
    merge.push(&acc, cash(1, "2026-03-02T10:05:00Z", "a1"));
    merge.push(&ticks, tick(0, "2026-03-02T10:00:00Z", "AAA", "100"));
    merge.push(&ticks, bad(1));
    // ticks is not at its end, yet both refusals leave now.
    let items: Vec<Item> = merge.pull(10).iter().map(item).collect();
    let shown: Vec<String> = items.iter().map(describe).collect();
    assert_eq!(shown, ["refused accounts/3@0", "refused ticks/0@1"]);
    assert!(matches!(&items[1], Item::Refused { reason, .. } if reason.contains("user_id")), "{items:?}");
    // The one behind a pending tick resumes before that tick (a restart reads both
    // again); the other is applied.
    assert_eq!(merge.applied().encode(), "kafka:accounts/3=1;ticks/0=0");

    merge.at_end(&ticks);
    let items = pull_all(&mut merge, 10);
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(batch_of(&items[0]).prices["AAA"], DecimalStr(Decimal::from(100)));
    assert_eq!(position_of(&items[0]), "kafka:accounts/3=1;ticks/0=2");
    assert_eq!(position_of(&items[1]), "kafka:accounts/3=2;ticks/0=2");
}

#[test]
fn stale_ticks_are_dropped_counted_and_left_out_of_batches() {
    let (t0, t1) = (input("ticks", 0), input("ticks", 1));
    let mut merge = Merge::new(vec![t0.clone(), t1.clone()], Position::default());
    // As a new owner would, from the batches already applied.
    merge.seen_tick("CCC", at("2026-03-02T10:05:00Z"));
    merge.push(&t0, tick(0, "2026-03-02T10:00:00Z", "AAA", "100"));
    merge.push(&t0, tick(1, "2026-03-02T10:00:00Z", "AAA", "102")); // same time, same input
    merge.push(&t0, tick(2, "2026-03-02T10:00:00.5Z", "BBB", "50"));
    merge.push(&t1, tick(0, "2026-03-02T10:00:00Z", "AAA", "101")); // same time, later input
                                                                    // Older than the seed, and as old: in later windows, yet they close nothing.
    merge.push(&t1, tick(1, "2026-03-02T10:02:00Z", "CCC", "7"));
    merge.push(&t1, tick(2, "2026-03-02T10:05:00Z", "CCC", "8"));
    merge.at_end(&t0);
    merge.at_end(&t1);
    let items = finish(&mut merge, 10);
    assert_eq!(items.len(), 1, "{items:?}");
    let b = batch_of(&items[0]);
    assert_eq!(
        b.prices,
        BTreeMap::from([("AAA".into(), DecimalStr(100.into())), ("BBB".into(), DecimalStr(50.into()))])
    );
    assert_eq!(
        b.times,
        BTreeMap::from([("AAA".into(), at("2026-03-02T10:00:00Z")), ("BBB".into(), at("2026-03-02T10:00:00.5Z"))])
    );
    assert_eq!(merge.stale_ticks(), 4);
    assert_eq!(position_of(&items[0]), "kafka:ticks/0=3;ticks/1=3", "stale ticks are consumed with the batch");
}

#[test]
fn a_stale_tick_with_nothing_pending_is_consumed_without_output() {
    let (acc, ticks) = (input("accounts", 3), input("ticks", 0));
    let mut merge = Merge::new(vec![acc.clone(), ticks.clone()], Position::default());
    merge.seen_tick("AAA", at("2026-03-02T10:00:00Z"));
    merge.seen_tick("AAA", at("2026-03-02T09:00:00Z")); // an older seed does not lower it
    merge.push(&ticks, tick(0, "2026-03-02T09:30:00Z", "AAA", "100"));
    merge.at_end(&acc);
    merge.at_end(&ticks);
    assert!(merge.pull(10).is_empty());
    assert_eq!(merge.stale_ticks(), 1);
    assert_eq!(merge.applied().encode(), "kafka:accounts/3=0;ticks/0=1", "so a restart does not read it again");
}

#[test]
fn offsets_before_the_start_or_already_pushed_are_ignored() {
    let (acc, ticks) = (input("accounts", 3), input("ticks", 0));
    let start = Position::parse("kafka:accounts/3=5;other/0=9").unwrap();
    let mut merge = Merge::new(vec![acc.clone(), ticks.clone()], start);
    assert_eq!(merge.start_offsets(), [(acc.clone(), 5), (ticks.clone(), 0)]);
    assert_eq!(merge.applied().encode(), "kafka:accounts/3=5;ticks/0=0", "only the shard's inputs are kept");
    merge.push(&acc, cash(4, "2026-03-02T10:00:00Z", "old"));
    assert_eq!(merge.buffered(), 0);
    merge.push(&acc, cash(5, "2026-03-02T10:00:00Z", "a5"));
    merge.push(&acc, cash(5, "2026-03-02T10:00:00Z", "a5"));
    merge.push(&input("unknown", 3), cash(0, "2026-03-02T10:00:00Z", "x"));
    assert_eq!((merge.buffered(), merge.buffered_of(&acc), merge.buffered_of(&ticks)), (1, 1, 0));
}

#[test]
fn position_encodes_in_input_order_and_parses_back() {
    let p = Position(BTreeMap::from([(input("ticks", 1), 7), (input("accounts", 3), 17), (input("ticks", 0), 5)]));
    assert_eq!(p.encode(), "kafka:accounts/3=17;ticks/0=5;ticks/1=7");
    assert_eq!(Position::parse(&p.encode()), Ok(p.clone()));
    assert_eq!(p.offset(&input("cash", 3)), 0, "an input not in the position starts at 0");
    assert_eq!(Position::parse("kafka:"), Ok(Position::default()));
    assert_eq!(Position::default().encode(), "kafka:");
}

#[test]
fn random_positions_round_trip() {
    // Kafka topic names are made of these; `/`, `=` and `;` cannot occur.
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for case in 0..1000 {
        let mut p = Position::default();
        for _ in 0..rng.gen_range(0..6) {
            let name: String =
                (0..rng.gen_range(1..=20)).map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char).collect();
            let id = InputId { topic: name, partition: rng.gen_range(0..=i32::MAX) };
            p.0.insert(id, rng.gen_range(0..=i64::MAX));
        }
        assert_eq!(Position::parse(&p.encode()), Ok(p.clone()), "case {case}: {}", p.encode());
    }
}

#[test]
fn position_parse_errors_name_the_bad_part() {
    let cases = [
        ("file:events.jsonl@12", "`file:events.jsonl@12` is not a Kafka position"),
        ("kafka:ticks/0", "`ticks/0` in Kafka position `kafka:ticks/0` is not topic/partition=offset"),
        ("kafka:a/1=2;ticks=5", "`ticks=5` in Kafka position `kafka:a/1=2;ticks=5` is not topic/partition=offset"),
        ("kafka:ticks/x=5", "`ticks/x=5` in Kafka position `kafka:ticks/x=5` is not topic/partition=offset"),
        ("kafka:ticks/0=five", "`ticks/0=five` in Kafka position `kafka:ticks/0=five` is not topic/partition=offset"),
        ("kafka:ticks/0=1.5", "`ticks/0=1.5` in Kafka position `kafka:ticks/0=1.5` is not topic/partition=offset"),
    ];
    for (text, expected) in cases {
        assert_eq!(Position::parse(text), Err(expected.to_string()), "{text}");
    }
}
