//! The event-time merge of one shard's inputs: its partition of each account topic
//! and every partition of the ticks topic, merged the way Kafka Streams synchronises
//! a task's partitions. The head with the smallest event time goes next (ties: the
//! input order, account topics before ticks); while an input has nothing buffered
//! and has not reached its end, the merge waits for it. Ticks are conflated per
//! [`CONFLATION_WINDOW_MICROS`] of event time into one `PriceBatch` (last price per
//! symbol, [`MAX_TICKS_PER_BATCH`] at most), emitted once the merge passes the end of
//! its window (or, through [`Merge::flush_idle`], when the inputs stay idle): account events inside a window are
//! applied before that window's prices, as the embedded sequencer applies a batch's
//! events before its conflated prices. Flushing before every account event instead
//! revalued the book once per trade and ran 20 times slower on the load test.
//!
//! So the merged sequence, conflation included, depends only on the topics' contents
//! (and on idle gaps in them), not on fetch sizes, batch boundaries, restarts or which
//! instance owns the shard: a new owner resuming from the position stored with a
//! record builds the same log.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;

use riskstream_schemas::{Event, EventBody, PriceBatch, Rejection, Timestamp};
use rust_decimal::Decimal;

/// The most ticks conflated into one `PriceBatch`.
pub const MAX_TICKS_PER_BATCH: usize = 10_000;

/// Event time covered by one conflated `PriceBatch` (windows align to UTC seconds,
/// so none spans two days).
pub const CONFLATION_WINDOW_MICROS: i64 = 1_000_000;

fn window(ts: Timestamp) -> i64 {
    ts.0.div_euclid(CONFLATION_WINDOW_MICROS)
}

/// One input partition of a shard.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InputId {
    pub topic: String,
    pub partition: i32,
}

impl fmt::Display for InputId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// Next offset to read, per input: where a shard resumes. Encoded
/// `kafka:topic/partition=offset;...` (Kafka topic names cannot hold `/`, `=`, `;`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position(pub BTreeMap<InputId, i64>);

const PREFIX: &str = "kafka:";

impl Position {
    pub fn encode(&self) -> String {
        let parts: Vec<String> = self.0.iter().map(|(id, off)| format!("{id}={off}")).collect();
        format!("{PREFIX}{}", parts.join(";"))
    }

    pub fn parse(text: &str) -> Result<Position, String> {
        let body = text.strip_prefix(PREFIX).ok_or_else(|| format!("`{text}` is not a Kafka position"))?;
        let mut map = BTreeMap::new();
        for part in body.split(';').filter(|p| !p.is_empty()) {
            let bad = || format!("`{part}` in Kafka position `{text}` is not topic/partition=offset");
            let (tp, off) = part.split_once('=').ok_or_else(bad)?;
            let (topic, partition) = tp.rsplit_once('/').ok_or_else(bad)?;
            let id = InputId { topic: topic.to_string(), partition: partition.parse().map_err(|_| bad())? };
            map.insert(id, off.parse().map_err(|_| bad())?);
        }
        Ok(Position(map))
    }

    pub fn offset(&self, id: &InputId) -> i64 {
        self.0.get(id).copied().unwrap_or(0)
    }
}

/// A message handed to the merge: its offset, the decoded (or refused) event, and
/// the raw value (kept for the dead-letter topic).
#[derive(Debug, Clone)]
pub struct Message {
    pub offset: i64,
    pub event: Result<Event, Rejection>,
    pub raw: Vec<u8>,
}

/// What the merge emits, in order. Events and their order depend only on the inputs'
/// contents; a refused message is emitted as soon as it reaches the head of its input,
/// so where it falls between events (and so the positions stored with them) may depend
/// on delivery; every such position is a valid resume point.
#[derive(Debug, Clone)]
pub enum Merged {
    /// An event to append; `position` is where the shard resumes after it.
    /// `source` is the message it came from (`None` for a conflated `PriceBatch`).
    Event { event: Event, position: String, source: Option<(InputId, i64, Vec<u8>)> },
    /// A message that cannot be applied.
    Refused { input: InputId, offset: i64, raw: Vec<u8>, rejection: Rejection },
}

struct Queue {
    id: InputId,
    buf: VecDeque<Message>,
    /// Next offset expected from the consumer; older ones are re-deliveries.
    next: i64,
    /// Reached the end of the partition with nothing newer since.
    at_end: bool,
}

struct Pending {
    window: i64,
    ts: Timestamp,
    last: HashMap<String, (Decimal, Timestamp)>,
    /// Input positions once the pending ticks are applied.
    through: Vec<(usize, i64)>,
    ticks: usize,
}

pub struct Merge {
    inputs: Vec<Queue>,
    applied: Position,
    pending: Option<Pending>,
    last_tick: HashMap<String, Timestamp>,
    stale_ticks: u64,
}

impl Merge {
    /// `inputs` in tie-break order; each starts at its offset in `start` (0 if absent).
    pub fn new(inputs: Vec<InputId>, start: Position) -> Merge {
        let mut applied = Position::default();
        let inputs = inputs
            .into_iter()
            .map(|id| {
                let next = start.offset(&id);
                applied.0.insert(id.clone(), next);
                Queue { id, buf: VecDeque::new(), next, at_end: false }
            })
            .collect();
        Merge { inputs, applied, pending: None, last_tick: HashMap::new(), stale_ticks: 0 }
    }

    /// Seeds the stale-tick check with the shard's last applied tick times.
    pub fn seen_tick(&mut self, symbol: &str, ts: Timestamp) {
        let e = self.last_tick.entry(symbol.to_string()).or_insert(ts);
        *e = (*e).max(ts);
    }

    /// Where each input starts (for the consumer's assignment).
    pub fn start_offsets(&self) -> Vec<(InputId, i64)> {
        self.inputs.iter().map(|q| (q.id.clone(), q.next)).collect()
    }

    /// Position after everything emitted (pending ticks excluded).
    pub fn applied(&self) -> &Position {
        &self.applied
    }

    pub fn stale_ticks(&self) -> u64 {
        self.stale_ticks
    }

    pub fn buffered(&self) -> usize {
        self.inputs.iter().map(|q| q.buf.len()).sum()
    }

    pub fn buffered_of(&self, id: &InputId) -> usize {
        self.inputs.iter().find(|q| &q.id == id).map_or(0, |q| q.buf.len())
    }

    /// Adds a message of `input`; a re-delivered offset is ignored.
    pub fn push(&mut self, input: &InputId, message: Message) {
        let Some(q) = self.inputs.iter_mut().find(|q| &q.id == input) else { return };
        if message.offset < q.next {
            return;
        }
        q.next = message.offset + 1;
        q.at_end = false;
        q.buf.push_back(message);
    }

    /// `input` has nothing after what was pushed.
    pub fn at_end(&mut self, input: &InputId) {
        if let Some(q) = self.inputs.iter_mut().find(|q| &q.id == input) {
            q.at_end = true;
        }
    }

    /// Emits up to about `max` items, as far as the inputs allow.
    pub fn pull(&mut self, max: usize) -> Vec<Merged> {
        let mut out = Vec::new();
        while out.len() < max {
            if let Some(i) = self.inputs.iter().position(|q| q.buf.front().is_some_and(|m| m.event.is_err())) {
                // A refused message leaves at once but changes nothing applied: it must
                // not close the price window (when it arrives is a matter of delivery).
                let m = self.inputs[i].buf.pop_front().expect("head exists");
                let input = self.inputs[i].id.clone();
                match &mut self.pending {
                    // Pending ticks of this input come before it: resume before them.
                    Some(p) if p.through.iter().any(|(j, _)| *j == i) => p.through.push((i, m.offset + 1)),
                    _ => {
                        self.applied.0.insert(input.clone(), m.offset + 1);
                    }
                }
                let rejection = m.event.expect_err("refused head");
                out.push(Merged::Refused { input, offset: m.offset, raw: m.raw, rejection });
                continue;
            }
            if self.inputs.iter().any(|q| q.buf.is_empty() && !q.at_end) {
                break;
            }
            let next = self
                .inputs
                .iter()
                .enumerate()
                .filter_map(|(i, q)| q.buf.front().map(|m| (m.event.as_ref().expect("ok head").ts, i)))
                .min();
            let Some((_, i)) = next else {
                // Every input is at its end. The open window stays open: more of its
                // ticks may still come, and closing it on a momentary catch-up would
                // make the log depend on timing. The caller closes it when the inputs
                // stay idle (`flush_idle`).
                break;
            };
            let m = self.inputs[i].buf.pop_front().expect("head exists");
            let event = m.event.expect("ok head");
            if let EventBody::MarketTick(t) = &event.body {
                let (symbol, price) = (t.symbol.clone(), t.price);
                self.take_tick(&mut out, i, m.offset, event.ts, symbol, price);
                continue;
            }
            // Nothing earlier is left, so the windows before this event are complete.
            if self.pending.as_ref().is_some_and(|p| p.window < window(event.ts)) {
                self.flush(&mut out);
            }
            let input = self.inputs[i].id.clone();
            self.applied.0.insert(input.clone(), m.offset + 1);
            out.push(Merged::Event { event, position: self.applied.encode(), source: Some((input, m.offset, m.raw)) });
        }
        out
    }

    /// Every input has reached its end with nothing buffered.
    pub fn idle(&self) -> bool {
        self.inputs.iter().all(|q| q.at_end && q.buf.is_empty())
    }

    /// Emits the pending prices when the inputs are idle: the caller's decision,
    /// after they stayed idle for a while (the only timing-dependent boundary).
    pub fn flush_idle(&mut self) -> Vec<Merged> {
        let mut out = Vec::new();
        if self.idle() {
            self.flush(&mut out);
        }
        out
    }

    fn take_tick(
        &mut self,
        out: &mut Vec<Merged>,
        input: usize,
        offset: i64,
        ts: Timestamp,
        symbol: String,
        price: Decimal,
    ) {
        let stale = self.last_tick.get(&symbol).is_some_and(|last| ts <= *last);
        if stale {
            self.stale_ticks += 1;
            match &mut self.pending {
                Some(p) => p.through.push((input, offset + 1)),
                None => {
                    self.applied.0.insert(self.inputs[input].id.clone(), offset + 1);
                }
            }
            return;
        }
        if self.pending.as_ref().is_some_and(|p| p.window != window(ts) || p.ticks >= MAX_TICKS_PER_BATCH) {
            self.flush(out);
        }
        self.last_tick.insert(symbol.clone(), ts);
        let p = self.pending.get_or_insert_with(|| Pending {
            window: window(ts),
            ts,
            last: HashMap::new(),
            through: Vec::new(),
            ticks: 0,
        });
        p.ts = p.ts.max(ts);
        p.ticks += 1;
        p.last.insert(symbol, (price, ts));
        p.through.push((input, offset + 1));
    }

    fn flush(&mut self, out: &mut Vec<Merged>) {
        let Some(p) = self.pending.take() else { return };
        for (input, next) in p.through {
            self.applied.0.insert(self.inputs[input].id.clone(), next);
        }
        let event = Event { event_id: None, ts: p.ts, body: EventBody::PriceBatch(PriceBatch::from_last(p.last)) };
        out.push(Merged::Event { event, position: self.applied.encode(), source: None });
    }
}
