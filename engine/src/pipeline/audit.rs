//! The audit side of the engine: signed checkpoints after the commits that reach
//! them (by record count or event time) and snapshots of the data dir, each tied to
//! a signed checkpoint per shard. The batch path only calls
//! `sign_due_checkpoints_after_commit` and `take_due_snapshot` after each commit;
//! neither can fail the batch, which is committed by then.

use std::path::{Path, PathBuf};
use std::time::Instant;

use riskstream_schemas::Timestamp;

use super::{wall_clock_micros, Engine, EngineError};
use crate::audit::checkpoint::stored_shard_digest;
use crate::audit::snapshot::{self, Manifest, Snapshot, SnapshotHead};
use crate::audit::{Checkpoint, CheckpointSigner};
use crate::store::{hex, EventStore, ProjectionStore};

/// Signed checkpoints: every `every` records of a shard, or once its event time is
/// `every_secs` past its last checkpoint, after the commit that reaches them.
pub(super) struct Checkpointing {
    signer: CheckpointSigner,
    every: u64,
    every_secs: i64,
    /// Tree size and event time of each shard's newest checkpoint.
    last: Vec<(u64, Timestamp)>,
}

/// Snapshots every `every` records over all shards.
pub(super) struct Snapshotting {
    dir: PathBuf,
    every: u64,
    keep: usize,
    /// Records over all shards at the newest snapshot.
    last_total: u64,
}

impl<S: EventStore + ProjectionStore> Engine<S> {
    /// Signs a checkpoint of a shard every `every` records (at the first commit that
    /// reaches that distance from its last one; 0: not by count). Without a signing
    /// key the engine makes none.
    pub fn enable_checkpoints(&mut self, signer: CheckpointSigner, every: u64) -> Result<(), EngineError> {
        let mut last = Vec::with_capacity(self.shards.len());
        for shard in 0..self.shards.len() as u32 {
            last.push(self.store.latest_checkpoint(shard)?.map_or((0, Timestamp(i64::MIN)), |c| (c.tree_size, c.ts)));
        }
        self.checkpoints = Some(Checkpointing { signer, every, every_secs: 0, last });
        Ok(())
    }

    /// Also signs a checkpoint of a shard once its event time is `secs` past its
    /// last checkpoint's (0: not by time).
    pub fn checkpoint_by_event_time(&mut self, secs: i64) {
        if let Some(cp) = self.checkpoints.as_mut() {
            cp.every_secs = secs.max(0);
        }
    }

    /// The public key checkpoints are signed with, when they are.
    pub fn checkpoint_key(&self) -> Option<ed25519_dalek::VerifyingKey> {
        self.checkpoints.as_ref().map(|c| c.signer.public_key())
    }

    fn sign_due_checkpoints(&mut self) -> Result<(), EngineError> {
        let Some(cp) = self.checkpoints.as_ref() else { return Ok(()) };
        let due: Vec<u32> = (0..self.shards.len())
            .filter(|&shard| {
                let (size, ts) = cp.last[shard];
                let head = self.heads[shard].seq;
                let by_count = cp.every > 0 && head >= size.saturating_add(cp.every);
                let by_time = cp.every_secs > 0
                    && head > size
                    && self.shards[shard].clock().0 >= ts.0.saturating_add(cp.every_secs.saturating_mul(1_000_000));
                by_count || by_time
            })
            .map(|s| s as u32)
            .collect();
        for shard in due {
            self.sign_checkpoint(shard)?;
        }
        Ok(())
    }

    /// Signs and stores a checkpoint of the shard at its head.
    fn sign_checkpoint(&mut self, shard: u32) -> Result<Checkpoint, EngineError> {
        let cp = self.checkpoints.as_mut().ok_or_else(|| EngineError::Internal("checkpoints are off".into()))?;
        let state = &self.shards[shard as usize];
        let size = self.heads[shard as usize].seq;
        let root = crate::audit::ProofReader::new(self.store.as_ref(), shard)?
            .root_hash(size)
            .map_err(|e| EngineError::Internal(format!("cannot read shard {shard}'s Merkle root: {e}")))?;
        // The rows just committed are the shard's facts (invariant 2); hashing them
        // from the store costs a scan, not a re-encoding of the whole state.
        let digest = stored_shard_digest(self.store.as_ref(), shard)?;
        let checkpoint = cp.signer.sign(shard, size, &root, &digest, state.clock());
        self.store.put_checkpoint(&checkpoint)?;
        cp.last[shard as usize] = (size, checkpoint.ts);
        tracing::debug!(shard, tree_size = size, "signed a checkpoint");
        Ok(checkpoint)
    }

    /// Takes a snapshot into `dir` every `every` records over all shards, keeping the
    /// newest `keep`.
    /// Snapshots are an optimisation: one that cannot be read is logged, counted
    /// and set aside, and the engine runs as it would without it.
    pub fn enable_snapshots(&mut self, dir: PathBuf, every: u64, keep: usize) -> Result<(), EngineError> {
        let listing = snapshot::scan(&dir).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot list snapshots; the next one is taken at the first interval");
            snapshot::Listing::default()
        });
        listing.warn_set_aside();
        self.metrics.snapshots_set_aside.set(listing.set_aside.len() as i64);
        let last_total =
            listing.snapshots.last().map_or(0, |s| snapshot::progress(s.manifest.heads.iter().map(|h| h.seq)));
        self.snapshots = Some(Snapshotting { dir, every, keep, last_total });
        Ok(())
    }

    /// Where snapshots are kept, when they are.
    pub fn snapshot_dir(&self) -> Option<&Path> {
        self.snapshots.as_ref().map(|s| s.dir.as_path())
    }

    /// After a commit: a snapshot when one is due. A failure never fails the batch
    /// (it is committed): it is logged, counted, and tried again an interval later.
    pub(super) fn take_due_snapshot(&mut self) {
        let Some(snap) = self.snapshots.as_ref() else { return };
        let total = snapshot::progress(self.heads.iter().map(|h| h.seq));
        if snap.every == 0 || total < snap.last_total.saturating_add(snap.every) {
            return;
        }
        let started = Instant::now();
        match self.take_snapshot() {
            Ok(taken) => {
                // Housekeeping has removed the set-aside ones it could.
                let dir = self.snapshot_dir().map(Path::to_path_buf).unwrap_or_default();
                let left = snapshot::scan(&dir).map_or(0, |l| l.set_aside.len());
                self.metrics.snapshots_set_aside.set(left as i64);
                tracing::info!(snapshot = %taken.dir.display(), records = total, secs = started.elapsed().as_secs_f64(), "took a snapshot");
            }
            Err(e) => {
                self.metrics.audit_failures.with_label_values(&["snapshot"]).inc();
                if let Some(s) = self.snapshots.as_mut() {
                    s.last_total = total;
                }
                tracing::error!(records = total, error = %e, "cannot take a snapshot; ingest goes on, the next interval tries again");
            }
        }
    }

    /// After a commit: the checkpoints due. A failure leaves the batch committed
    /// and acknowledged; the checkpoint stays due, so the next commit tries again.
    pub(super) fn sign_due_checkpoints_after_commit(&mut self) {
        if let Err(e) = self.sign_due_checkpoints() {
            self.metrics.audit_failures.with_label_values(&["checkpoint"]).inc();
            tracing::error!(error = %e, "cannot sign a checkpoint; the next commit tries again");
        }
    }

    /// Copies the data dir as of the last commit into the snapshot dir, with a signed
    /// checkpoint of every non-empty shard at its head (when checkpoints are on).
    pub fn take_snapshot(&mut self) -> Result<Snapshot, EngineError> {
        let (dir, keep) = match &self.snapshots {
            Some(s) => (s.dir.clone(), s.keep),
            None => return Err(EngineError::Internal("snapshots are off ([audit] snapshot_every = 0)".into())),
        };
        let mut checkpoints = Vec::new();
        if self.checkpoints.is_some() {
            for shard in 0..self.shard_count() {
                let size = self.heads[shard as usize].seq;
                let latest = self.store.latest_checkpoint(shard)?.filter(|c| c.tree_size == size);
                match latest {
                    Some(c) => checkpoints.push(c),
                    None if size > 0 => checkpoints.push(self.sign_checkpoint(shard)?),
                    None => {}
                }
            }
        }
        let heads: Vec<SnapshotHead> = self
            .shards
            .iter()
            .zip(&self.heads)
            .map(|(s, h)| SnapshotHead { shard: s.shard(), seq: h.seq, hash: hex(&h.hash), clock: s.clock() })
            .collect();
        let manifest = Manifest {
            name: snapshot::name_for(&heads),
            created_at: Timestamp(wall_clock_micros()).to_rfc3339(),
            heads,
            checkpoints,
        };
        let total = snapshot::progress(manifest.heads.iter().map(|h| h.seq));
        let taken = snapshot::take(self.store.as_ref(), &dir, manifest, keep)?;
        if let Some(s) = self.snapshots.as_mut() {
            s.last_total = total;
        }
        Ok(taken)
    }
}
