//! One shard's part of the pipeline: apply its routed events of a batch (check,
//! encode, chain, apply with the rules, drain the changed rows), and load it from
//! the store at open.

use std::time::Instant;

use riskstream_projections::{Change, RuleConfig, ShardState};
use riskstream_schemas::avro::Codec;
use riskstream_schemas::json;
use riskstream_schemas::{Alert, RecordRef};

use super::EngineError;
use crate::sequencer::{Refused, Routed};
use crate::store::{ChainHead, EventStore, ProjectionStore, Record, StoreError};

/// What one shard produced for a batch.
#[derive(Default)]
pub(super) struct ShardOutput {
    pub(super) records: Vec<Record>,
    pub(super) event_ids: Vec<(String, RecordRef)>,
    pub(super) alerts: Vec<Alert>,
    pub(super) refused: Vec<Refused>,
    pub(super) changes: Vec<(u32, Change)>,
    pub(super) accepted: usize,
}

/// A shard's projection as stored, with the chain head it reflects: rows loaded,
/// derived sums rebuilt, the clock set to the last record's event time (no replay).
pub fn load_shard_state<S: EventStore + ProjectionStore + ?Sized>(
    store: &S,
    shard: u32,
    rules: &RuleConfig,
    codec: &Codec,
) -> Result<(ShardState, ChainHead), StoreError> {
    let started = Instant::now();
    let mut state = ShardState::new(shard, rules.clone());
    let mut rows = 0u64;
    store.for_each_row(shard, &mut |table, key, value| {
        rows += 1;
        state.load_fact(table, key, value).map_err(|r| StoreError::Corrupt(r.reason))
    })?;
    let loaded = started.elapsed().as_secs_f64();
    state.rebuild_derived();
    tracing::info!(
        shard,
        rows,
        load_secs = loaded,
        derive_secs = started.elapsed().as_secs_f64() - loaded,
        "loaded a shard"
    );
    let head = store.head(shard)?;
    // The clock the tax views read is the last applied record's event time.
    if let Some(last) = store.record(shard, head.seq)? {
        let event = codec
            .decode(last.fingerprint, &last.payload)
            .map_err(|e| StoreError::Corrupt(format!("record ({shard}, {}): {e}", head.seq)))?;
        state.observe_time(event.ts);
    }
    Ok((state, head))
}

pub(super) fn process_shard(
    state: &mut ShardState,
    head: &mut ChainHead,
    list: Vec<Routed>,
    codec: &Codec,
    source: &str,
) -> Result<ShardOutput, EngineError> {
    let shard = state.shard();
    let mut out = ShardOutput::default();
    for Routed { index, event, origin } in list {
        if let Err(rejection) = state.check(&event) {
            let rejection = match index {
                Some(i) => rejection.at(i),
                None => rejection,
            };
            out.refused.push(Refused { rejection, raw: json::encode(&event) });
            continue;
        }
        let (fingerprint, payload) =
            codec.encode(&event).map_err(|e| EngineError::Internal(format!("cannot encode a valid event: {e}")))?;
        let origin = match (origin, index) {
            (Some(o), _) => o,
            (None, Some(i)) => format!("{source}#{i}"),
            (None, None) => source.to_string(),
        };
        let record = Record::next(*head, shard, origin, fingerprint, payload);
        let at = RecordRef { shard, seq: record.seq };
        let alerts = state
            .apply(at, &event)
            .map_err(|r| EngineError::Internal(format!("checked event failed to apply: {r}")))?;
        *head = record.head();
        out.alerts.extend(alerts);
        if let Some(id) = &event.event_id {
            // A broadcast event is stored in every shard; its id points at shard 0's copy.
            if event.body.user_id().is_some() || shard == 0 {
                out.event_ids.push((id.clone(), at));
            }
        }
        if index.is_some() && (event.body.user_id().is_some() || shard == 0) {
            out.accepted += 1;
        }
        out.records.push(record);
    }
    out.changes = state.drain_changes().into_iter().map(|c| (shard, c)).collect();
    Ok(out)
}
