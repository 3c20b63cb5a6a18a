//! `riskstream verify`: walks every shard's chain and names the first record that
//! does not hold (invariant 5): a changed record fails its hash, a removed one
//! leaves a gap, an inserted or reordered one breaks the seq or the link, and a
//! removed tail disagrees with the stored head.

use serde::Serialize;

use crate::store::{hex, ChainHead, EventStore, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Broken {
    pub shard: u32,
    pub seq: u64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub shards: u32,
    pub records: u64,
    pub heads: Vec<(u32, u64, String)>,
    pub first_bad: Option<Broken>,
}

/// Checks every shard; `progress` is called with each shard's record count.
pub fn verify<S: EventStore + ?Sized>(
    store: &S,
    mut progress: impl FnMut(u32, u64),
) -> Result<VerifyReport, StoreError> {
    let shards = store.shard_count()?.unwrap_or(0);
    let mut report = VerifyReport { shards, records: 0, heads: Vec::new(), first_bad: None };
    for shard in 0..shards {
        let (count, tip, broken) = verify_shard(store, shard)?;
        report.records += count;
        report.heads.push((shard, tip.seq, hex(&tip.hash)));
        progress(shard, count);
        if report.first_bad.is_none() {
            report.first_bad = broken;
        }
    }
    Ok(report)
}

fn verify_shard<S: EventStore + ?Sized>(store: &S, shard: u32) -> Result<(u64, ChainHead, Option<Broken>), StoreError> {
    let mut tip = ChainHead::default();
    let mut count = 0;
    let bad = |seq, reason: String| Some(Broken { shard, seq, reason });
    for record in store.records(shard, 0) {
        let record = match record {
            Ok(r) => r,
            Err(e) => return Ok((count, tip, bad(tip.seq + 1, format!("unreadable record: {e}")))),
        };
        let expected = tip.seq + 1;
        if record.seq != expected {
            let reason = if record.seq > expected {
                format!("record {expected} is missing (next stored is {})", record.seq)
            } else {
                format!("unexpected record {} before {expected}", record.seq)
            };
            return Ok((count, tip, bad(expected, reason)));
        }
        if record.prev_hash != tip.hash {
            return Ok((count, tip, bad(record.seq, "prev_hash does not match the previous record's hash".into())));
        }
        if !record.hash_is_valid() {
            return Ok((count, tip, bad(record.seq, "hash does not match the record's content".into())));
        }
        tip = record.head();
        count += 1;
    }
    let head = store.head(shard)?;
    if head != tip {
        let reason = format!("stored head is seq {} but the chain ends at seq {}", head.seq, tip.seq);
        return Ok((count, tip, bad(tip.seq.min(head.seq) + 1, reason)));
    }
    Ok((count, tip, None))
}
