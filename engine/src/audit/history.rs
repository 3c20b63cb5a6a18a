//! A shard's past: its state as of a seq or an event time, rebuilt in memory from
//! the newest snapshot at or before that point plus the log records after it (the
//! live state is never touched), and the explanation of an alert: the record that
//! caused it with its inclusion proof, what the rule saw, and a replay that raises
//! it again.

use std::path::Path;

use riskstream_projections::risk::RiskView;
use riskstream_projections::{AccountView, RuleConfig, ShardState};
use riskstream_schemas::avro::Codec;
use riskstream_schemas::{Alert, RecordRef, Timestamp};
use serde::Serialize;
use serde_json::{json, Value};

use super::{snapshot, Checkpoint, InclusionView, ProofReader, ProofRequestError};
use crate::pipeline::load_shard_state;
use crate::privacy::Disclosure;
use crate::store::{hex, EventStore, ProjectionStore, Record, StoreError, StoredAlert};

/// Records applied between two discards of the replayed state's changed-row list.
const DRAIN_EVERY: u64 = 4_096;

/// A point in a shard's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// After record `seq` (0: before the first).
    Seq(u64),
    /// After the longest prefix of the log whose event times are all at or before
    /// this time: the shard clock (the latest event time applied) is then at most
    /// it, and the next record is the first one later than it.
    Time(Timestamp),
}

impl AsOf {
    /// A seq (digits) or an RFC 3339 event time.
    pub fn parse(text: &str) -> Result<AsOf, String> {
        if let Ok(seq) = text.parse::<u64>() {
            return Ok(AsOf::Seq(seq));
        }
        Timestamp::parse(text)
            .map(AsOf::Time)
            .map_err(|e| format!("`{text}` is neither a seq nor an RFC 3339 event time: {e}"))
    }

    fn covers(&self, seq: u64, ts: Timestamp) -> bool {
        match *self {
            AsOf::Seq(s) => seq <= s,
            AsOf::Time(t) => ts <= t,
        }
    }
}

impl std::fmt::Display for AsOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AsOf::Seq(s) => write!(f, "seq {s}"),
            AsOf::Time(t) => write!(f, "{}", t.to_rfc3339()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The request names a point or an alert the log does not have.
    #[error("{0}")]
    OutOfRange(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ProofRequestError> for HistoryError {
    fn from(e: ProofRequestError) -> Self {
        match e {
            ProofRequestError::BadRequest(m) => HistoryError::OutOfRange(m),
            ProofRequestError::Store(e) => HistoryError::Store(e),
        }
    }
}

/// Where a past state came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PastInfo {
    pub shard: u32,
    /// The last record applied.
    pub seq: u64,
    /// The shard clock there (the latest event time applied).
    pub time: Option<String>,
    /// The snapshot the replay started from (`None`: the start of the log).
    pub from_snapshot: Option<String>,
    /// Records replayed from the log on top of it.
    pub records_replayed: u64,
}

/// A shard's state at a past point of its log, in memory.
pub struct PastShard {
    pub state: ShardState,
    pub info: PastInfo,
}

/// What a past state is rebuilt with: the live log, the snapshots, the rules and
/// the codec of the engine that asks.
pub struct History<'a, S: ?Sized> {
    pub store: &'a S,
    pub snapshots: Option<&'a Path>,
    pub rules: &'a RuleConfig,
    pub codec: &'a Codec,
}

impl<S: EventStore + ProjectionStore + ?Sized> History<'_, S> {
    /// The shard's state at `at`.
    pub fn state_at(&self, shard: u32, at: AsOf) -> Result<PastShard, HistoryError> {
        let mut past = self.start(shard, at)?;
        self.advance(&mut past, at, |_, _| {})?;
        Ok(past)
    }

    /// The newest snapshot's state at or before `at` (the empty state when none
    /// fits), with nothing replayed yet.
    pub fn start(&self, shard: u32, at: AsOf) -> Result<PastShard, HistoryError> {
        let head = self.store.head(shard)?.seq;
        if let AsOf::Seq(s) = at {
            if s > head {
                return Err(HistoryError::OutOfRange(format!(
                    "shard {shard} has {head} records; seq {s} is beyond its head"
                )));
            }
        }
        // Snapshots only save replay: one that cannot be read is passed over.
        let candidates = match self.snapshots.map(snapshot::scan).transpose() {
            Ok(listing) => listing.map(|l| l.snapshots).unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list snapshots; replaying from the start");
                Vec::new()
            }
        };
        for snap in candidates.iter().rev() {
            let Some(h) = snap.head(shard) else { continue };
            if h.seq == 0 || !at.covers(h.seq, h.clock) {
                continue;
            }
            // A snapshot of another log (a copied dir) must not seed this one.
            if self.store.record(shard, h.seq)?.map(|r| hex(&r.hash)) != Some(h.hash.clone()) {
                tracing::warn!(snapshot = %snap.dir.display(), shard, "snapshot does not match this log; skipped");
                continue;
            }
            let mut state = match self.load_snapshot(snap, shard, h.seq) {
                Ok(state) => state,
                Err(e) => {
                    tracing::warn!(snapshot = %snap.dir.display(), shard, error = %e, "snapshot cannot be read; skipped");
                    continue;
                }
            };
            state.observe_time(h.clock);
            let info = PastInfo {
                shard,
                seq: h.seq,
                time: Some(h.clock.to_rfc3339()),
                from_snapshot: Some(snap.manifest.name.clone()),
                records_replayed: 0,
            };
            return Ok(PastShard { state, info });
        }
        let state = ShardState::new(shard, self.rules.clone());
        Ok(PastShard { state, info: PastInfo { shard, seq: 0, time: None, from_snapshot: None, records_replayed: 0 } })
    }

    fn load_snapshot(&self, snap: &snapshot::Snapshot, shard: u32, seq: u64) -> Result<ShardState, StoreError> {
        let (state, loaded) = load_shard_state(&snap.open()?, shard, self.rules, self.codec)?;
        if loaded.seq != seq {
            return Err(StoreError::Corrupt(format!(
                "snapshot {} holds seq {} of shard {shard}, its manifest says {seq}",
                snap.manifest.name, loaded.seq
            )));
        }
        Ok(state)
    }

    /// Applies the log's records after the past state's seq up to `at`, handing each
    /// record's alerts to `on_alerts`.
    pub fn advance(
        &self,
        past: &mut PastShard,
        at: AsOf,
        mut on_alerts: impl FnMut(u64, Vec<Alert>),
    ) -> Result<(), HistoryError> {
        let shard = past.info.shard;
        for record in self.store.records(shard, past.info.seq + 1) {
            let record = record?;
            if let AsOf::Seq(s) = at {
                if record.seq > s {
                    break;
                }
            }
            let event = self
                .codec
                .decode(record.fingerprint, &record.payload)
                .map_err(|e| StoreError::Corrupt(format!("record ({shard}, {}) does not decode: {e}", record.seq)))?;
            if !at.covers(record.seq, event.ts) {
                break;
            }
            let alerts = past
                .state
                .apply(RecordRef { shard, seq: record.seq }, &event)
                .map_err(|r| StoreError::Corrupt(format!("record ({shard}, {}) does not apply: {r}", record.seq)))?;
            on_alerts(record.seq, alerts);
            past.info.seq = record.seq;
            past.info.records_replayed += 1;
            if past.info.records_replayed.is_multiple_of(DRAIN_EVERY) {
                past.state.discard_changes();
            }
        }
        past.state.discard_changes();
        past.info.time = (past.info.seq > 0).then(|| past.state.clock().to_rfc3339());
        Ok(())
    }

    /// Why an alert fired: the record that caused it (with its inclusion proof
    /// against the first signed checkpoint covering it, else the current tree), the
    /// account as the rule saw it before and after that record, and whether
    /// replaying the log to that record raises the same alert again.
    pub fn explain(&self, alert_id: &str) -> Result<Explanation, HistoryError> {
        let stored = self
            .store
            .alert_by_id(alert_id)?
            .ok_or_else(|| HistoryError::NotFound(format!("no alert `{alert_id}`")))?;
        let RecordRef { shard, seq } = stored.alert.caused_by;
        let record = self.store.record(shard, seq)?.ok_or_else(|| {
            StoreError::Corrupt(format!("alert `{alert_id}` names record ({shard}, {seq}), which is missing"))
        })?;
        let checkpoint = self.store.checkpoints(shard, seq - 1, 1)?.into_iter().next();
        let tree_size = checkpoint.as_ref().map(|c| c.tree_size);
        let inclusion = ProofReader::new(self.store, shard)?.inclusion(seq, tree_size)?;

        let account = stored.alert.account_id.clone();
        let mut past = self.start(shard, AsOf::Seq(seq - 1))?;
        self.advance(&mut past, AsOf::Seq(seq - 1), |_, _| {})?;
        let account_before = past.state.incremental_view(&account);
        let mut raised = Vec::new();
        self.advance(&mut past, AsOf::Seq(seq), |_, alerts| raised = alerts)?;
        let again = raised.iter().find(|a| a.alert_id == alert_id);
        let replay = ReplayCheck {
            from_snapshot: past.info.from_snapshot.clone(),
            records_replayed: past.info.records_replayed,
            reproduced: again.is_some(),
            identical: again == Some(&stored.alert),
            alerts_at_cause: raised.iter().map(|a| a.alert_id.clone()).collect(),
        };
        Ok(Explanation {
            rule: stored.alert.rule.clone(),
            value: stored.alert.value.to_string(),
            threshold: stored.alert.threshold.to_string(),
            cause: CauseView { record: record_view(&record, self.codec, Disclosure::Withheld), inclusion, checkpoint },
            inputs: Inputs {
                account_before,
                account: past.state.incremental_view(&account),
                risk: past.state.risk_view(&account),
            },
            replay,
            alert: stored,
        })
    }
}

/// A stored record as the API shows it, its event decoded and its personal fields as
/// `personal` says (the stored, sealed values are never shown as data).
pub fn record_view(record: &Record, codec: &Codec, personal: Disclosure<'_>) -> Value {
    let event = codec
        .decode(record.fingerprint, &record.payload)
        .map(|mut e| {
            crate::privacy::show(&mut e, personal);
            serde_json::to_value(e).expect("events serialise")
        })
        .unwrap_or_else(|e| json!({ "undecodable": e.to_string() }));
    json!({
        "shard": record.shard,
        "seq": record.seq,
        "prev_hash": hex(&record.prev_hash),
        "hash": hex(&record.hash),
        "source": record.source,
        "schema_fingerprint": format!("{:016x}", record.fingerprint),
        "event": event,
    })
}

#[derive(Debug, Serialize)]
pub struct Explanation {
    pub alert: StoredAlert,
    pub rule: String,
    pub value: String,
    pub threshold: String,
    pub cause: CauseView,
    pub inputs: Inputs,
    pub replay: ReplayCheck,
}

#[derive(Debug, Serialize)]
pub struct CauseView {
    pub record: Value,
    /// Proof that the record is in the shard's log, against `checkpoint`'s signed
    /// root when one covers it.
    pub inclusion: InclusionView,
    pub checkpoint: Option<Checkpoint>,
}

/// The account the rule evaluated, before and after the causing record, and its
/// risk numbers after it.
#[derive(Debug, Serialize)]
pub struct Inputs {
    pub account_before: Option<AccountView>,
    pub account: Option<AccountView>,
    pub risk: Option<RiskView>,
}

#[derive(Debug, Serialize)]
pub struct ReplayCheck {
    pub from_snapshot: Option<String>,
    pub records_replayed: u64,
    /// Replaying the log to the causing record raised an alert with this id.
    pub reproduced: bool,
    /// ... equal to the stored alert in every field.
    pub identical: bool,
    /// Every alert the causing record raised in the replay.
    pub alerts_at_cause: Vec<String>,
}
