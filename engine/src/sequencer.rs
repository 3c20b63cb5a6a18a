//! The sequencer: routes each decoded event to its shard, drops duplicates and
//! stale ticks, and conflates ticks into one `PriceBatch` per event-time window: a
//! UTC day and a risk bar (`rules.risk.bar_secs`), whichever is shorter.
//!
//! Placement: shard = Kafka's default partitioner (murmur2 of `user_id`, positive,
//! modulo the shard count), so a producer keying by `user_id` and the engine agree.
//! Broadcast events (`SecurityListed`, conflated prices) go to every shard.
//! Ticks: a tick not newer than the symbol's last applied tick is stale and
//! ignored (market data is last-price-wins by event time; one price per symbol
//! per microsecond), which also makes re-sent ticks no-ops without an id index.
//! Conflated prices are appended after the batch's other events of the same window;
//! a tick or any other event from a later window first flushes the earlier window's
//! prices, so the previous close and every bar close are exact whatever the batch
//! boundaries (for input in event-time order).

use std::collections::HashSet;

use ahash::AHashMap;

use riskstream_schemas::json::Decoded;
pub use riskstream_schemas::placement::{murmur2, shard_for};
use riskstream_schemas::{Event, EventBody, PriceBatch, Rejection, Timestamp};
use rust_decimal::Decimal;

/// One event bound for a shard, with the item index it came from (`None` for
/// conflated prices, which come from several items).
#[derive(Debug, Clone)]
pub struct Routed {
    pub index: Option<usize>,
    pub event: Event,
    /// Where the record came from, when the source says it per event (a Kafka
    /// shard's position after it); otherwise `source#index`.
    pub origin: Option<String>,
}

/// A rejected item with its raw text, bound for the dead-letter store.
#[derive(Debug, Clone)]
pub struct Refused {
    pub rejection: Rejection,
    pub raw: String,
}

#[derive(Debug, Default)]
pub struct Sequenced {
    pub per_shard: Vec<Vec<Routed>>,
    pub refused: Vec<Refused>,
    pub duplicates: usize,
    pub stale_ticks: usize,
    /// Ticks taken into a conflated price batch.
    pub ticks: usize,
}

/// Remembers, across batches, the last tick time per symbol.
#[derive(Debug, Default)]
pub struct Sequencer {
    shards: u32,
    /// Length of a risk bar in microseconds.
    bar_micros: i64,
    last_tick: AHashMap<String, Timestamp>,
}

/// Ticks of the current batch and day: last price and tick time per symbol.
/// A hash map while filling (no allocation for a symbol seen before), sorted once
/// into the record at flush.
struct Pending {
    window: (i64, i64),
    ts: Timestamp,
    last: AHashMap<String, (Decimal, Timestamp)>,
}

impl Sequencer {
    pub fn new(shards: u32, bar_secs: i64) -> Self {
        Sequencer { shards, bar_micros: bar_secs.max(1) * 1_000_000, last_tick: AHashMap::new() }
    }

    /// The conflation window of an event time: (day, bar).
    fn window(&self, ts: Timestamp) -> (i64, i64) {
        (ts.day(), ts.micros().div_euclid(self.bar_micros))
    }

    /// Seeds the stale-tick check after a restart.
    pub fn remember_tick(&mut self, symbol: &str, ts: Timestamp) {
        let e = self.last_tick.entry(symbol.to_string()).or_insert(ts);
        *e = (*e).max(ts);
    }

    /// Routes a batch. `seen` answers whether an event id was applied before.
    pub fn route<E>(
        &mut self,
        items: Vec<Decoded>,
        mut seen: impl FnMut(&str) -> Result<bool, E>,
    ) -> Result<Sequenced, E> {
        let mut out = Sequenced { per_shard: vec![Vec::new(); self.shards as usize], ..Default::default() };
        let mut ids_in_batch = HashSet::new();
        let mut pending: Option<Pending> = None;
        for item in items {
            let mut event = match item.result {
                Ok(e) => e,
                Err(rejection) => {
                    out.refused.push(Refused { rejection, raw: item.raw });
                    continue;
                }
            };
            // Live must apply exactly what replay will read back from the log.
            event.body.normalize();
            if let EventBody::MarketTick(t) = &event.body {
                self.conflate(&mut out, &mut pending, event.ts, &t.symbol, t.price);
                continue;
            }
            // An event of a later window closes the prices of the earlier one first.
            if pending.as_ref().is_some_and(|p| p.window < self.window(event.ts)) {
                flush(&mut out, pending.take());
            }
            if let Some(id) = &event.event_id {
                if !ids_in_batch.insert(id.clone()) || seen(id)? {
                    out.duplicates += 1;
                    continue;
                }
            }
            let routed = Routed { index: Some(item.index), event, origin: None };
            match routed.event.body.user_id() {
                Some(user) => out.per_shard[shard_for(user, self.shards) as usize].push(routed),
                None => out.per_shard.iter_mut().for_each(|s| s.push(routed.clone())),
            }
        }
        flush(&mut out, pending.take());
        Ok(out)
    }

    fn conflate(
        &mut self,
        out: &mut Sequenced,
        pending: &mut Option<Pending>,
        ts: Timestamp,
        symbol: &str,
        price: Decimal,
    ) {
        match self.last_tick.get_mut(symbol) {
            Some(last) if ts <= *last => {
                out.stale_ticks += 1;
                return;
            }
            Some(last) => *last = ts,
            None => {
                self.last_tick.insert(symbol.to_string(), ts);
            }
        }
        out.ticks += 1;
        let window = self.window(ts);
        if pending.as_ref().is_some_and(|p| p.window != window) {
            flush(out, pending.take());
        }
        let p = pending.get_or_insert_with(|| Pending { window, ts, last: AHashMap::default() });
        p.ts = p.ts.max(ts);
        match p.last.get_mut(symbol) {
            Some(slot) => *slot = (price, ts),
            None => {
                p.last.insert(symbol.to_string(), (price, ts));
            }
        }
    }
}

fn flush(out: &mut Sequenced, pending: Option<Pending>) {
    let Some(p) = pending else { return };
    let event = Event { event_id: None, ts: p.ts, body: EventBody::PriceBatch(PriceBatch::from_last(p.last)) };
    for shard in &mut out.per_shard {
        shard.push(Routed { index: None, event: event.clone(), origin: None });
    }
}
