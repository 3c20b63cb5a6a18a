//! The sequencer: routes each decoded event to its shard, drops duplicates and
//! stale ticks, and conflates ticks into one `PriceBatch` per event-time day.
//!
//! Placement: shard = Kafka's default partitioner (murmur2 of `user_id`, positive,
//! modulo the shard count), so a producer keying by `user_id` and the engine agree.
//! Broadcast events (`SecurityListed`, conflated prices) go to every shard.
//! Ticks: a tick not newer than the symbol's last applied tick is stale and
//! ignored (market data is last-price-wins by event time; one price per symbol
//! per microsecond), which also makes re-sent ticks no-ops without an id index. Conflated prices are appended after the batch's
//! other events of the same day; a tick from a later day first flushes the earlier
//! day's prices, so the previous close is exact whatever the batch boundaries.

use std::collections::{BTreeMap, HashSet};

use ahash::AHashMap;

use riskstream_schemas::json::Decoded;
use riskstream_schemas::{DecimalStr, Event, EventBody, PriceBatch, Rejection, Timestamp};
use rust_decimal::Decimal;

/// Kafka's murmur2 (the Java client's `Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    let len = data.len();
    let mut h: u32 = SEED ^ len as u32;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The shard of a user, as Kafka's default partitioner places key `user_id`.
pub fn shard_for(user_id: &str, shards: u32) -> u32 {
    ((murmur2(user_id.as_bytes()) & 0x7fff_ffff) as u32) % shards
}

/// One event bound for a shard, with the item index it came from (`None` for
/// conflated prices, which come from several items).
#[derive(Debug, Clone)]
pub struct Routed {
    pub index: Option<usize>,
    pub event: Event,
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
    last_tick: AHashMap<String, Timestamp>,
}

/// Ticks of the current batch and day: last price and tick time per symbol.
/// A hash map while filling (no allocation for a symbol seen before), sorted once
/// into the record at flush.
struct Pending {
    day: i64,
    ts: Timestamp,
    last: AHashMap<String, (Decimal, Timestamp)>,
}

impl Sequencer {
    pub fn new(shards: u32) -> Self {
        Sequencer { shards, last_tick: AHashMap::new() }
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
            if let Some(id) = &event.event_id {
                if !ids_in_batch.insert(id.clone()) || seen(id)? {
                    out.duplicates += 1;
                    continue;
                }
            }
            let routed = Routed { index: Some(item.index), event };
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
        if pending.as_ref().is_some_and(|p| p.day != ts.day()) {
            flush(out, pending.take());
        }
        let p = pending.get_or_insert_with(|| Pending { day: ts.day(), ts, last: AHashMap::default() });
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
    let mut prices = BTreeMap::new();
    let mut times = BTreeMap::new();
    for (symbol, (price, ts)) in p.last {
        prices.insert(symbol.clone(), DecimalStr(price));
        times.insert(symbol, ts);
    }
    let event = Event { event_id: None, ts: p.ts, body: EventBody::PriceBatch(PriceBatch { prices, times }) };
    for shard in &mut out.per_shard {
        shard.push(Routed { index: None, event: event.clone() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's UtilsTest.testMurmur2 (clients/src/test/.../UtilsTest.java).
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971);
        assert_eq!(murmur2(b"abc"), 479470107);
    }

    #[test]
    fn shards_stay_in_range() {
        for i in 0..1000 {
            assert!(shard_for(&format!("user-{i}"), 7) < 7);
        }
    }
}
