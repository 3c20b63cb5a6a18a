//! Snapshots: a consistent copy of the whole data dir (a RocksDB checkpoint, hard
//! links on the same disk, so cheap) taken right after a commit, with a manifest
//! naming each shard's head, its event-time clock and the signed checkpoint at that
//! head. Point-in-time queries start from the newest snapshot at or before the
//! asked point and replay only the tail; a new replica starts from one and catches
//! up from the log (`riskstream snapshot restore`).
//!
//! The live data dir needs no snapshot to restart: its projections are committed
//! with the records they reflect (invariant 2), so it always opens at its head.

use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use riskstream_schemas::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Checkpoint, ProofReader};
use crate::store::{hex, EventStore, RocksDbStore, StoreError};

/// The manifest file of a snapshot; written last, so a snapshot without one is
/// incomplete (a crash while taking it) and ignored.
pub const MANIFEST: &str = "manifest.json";
/// The RocksDB copy inside a snapshot directory.
pub const DB_DIR: &str = "db";

/// One shard as the snapshot holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHead {
    pub shard: u32,
    pub seq: u64,
    /// The chain hash of record `seq` (hex; zeros for an empty shard).
    pub hash: String,
    /// The latest event time applied (the shard clock).
    pub clock: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    /// Wall-clock time the snapshot was taken (provenance only).
    pub created_at: String,
    pub heads: Vec<SnapshotHead>,
    /// The signed checkpoint at each non-empty shard's head (none when the engine
    /// signs no checkpoints). Its state digest is the digest of the snapshot's rows.
    pub checkpoints: Vec<Checkpoint>,
}

impl Manifest {
    /// The manifest file's bytes (pretty JSON, for the operator who opens it).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("manifests serialise")
    }

    /// Reads what `to_json` writes; `path` names the file in the error.
    pub fn from_json(bytes: &[u8], path: &Path) -> Result<Manifest, StoreError> {
        serde_json::from_slice(bytes)
            .map_err(|e| StoreError::Corrupt(format!("snapshot manifest {}: {e}", path.display())))
    }
}

/// A complete snapshot on disk.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Snapshot {
    pub fn db_dir(&self) -> PathBuf {
        self.dir.join(DB_DIR)
    }

    pub fn head(&self, shard: u32) -> Option<&SnapshotHead> {
        self.manifest.heads.iter().find(|h| h.shard == shard)
    }

    pub fn checkpoint(&self, shard: u32) -> Option<&Checkpoint> {
        self.manifest.checkpoints.iter().find(|c| c.shard == shard)
    }

    /// The snapshot's store, read-only.
    pub fn open(&self) -> Result<RocksDbStore, StoreError> {
        RocksDbStore::open_read_only(&self.db_dir())
    }

    /// Reads a snapshot directory (one holding `manifest.json` and `db/`).
    pub fn load(dir: &Path) -> Result<Snapshot, StoreError> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read(&path).map_err(|e| {
            StoreError::Io(format!("{} is not a complete snapshot (cannot read {MANIFEST}: {e})", dir.display()))
        })?;
        let manifest = Manifest::from_json(&text, &path)?;
        Ok(Snapshot { dir: dir.to_path_buf(), manifest })
    }
}

/// A snapshot directory that cannot be used (its manifest does not parse, or its
/// store is missing): it is set aside, never read, and removed by the next
/// snapshot's housekeeping, so its hard-linked files do not hold disk for ever.
#[derive(Debug, Clone)]
pub struct SetAside {
    pub dir: PathBuf,
    pub reason: String,
}

/// What a snapshot directory holds: the usable snapshots, oldest first (by log
/// progress), and the ones set aside. Incomplete ones (no manifest yet: a crash
/// while taking one) are in neither.
#[derive(Debug, Default)]
pub struct Listing {
    pub snapshots: Vec<Snapshot>,
    pub set_aside: Vec<SetAside>,
}

impl Listing {
    /// Logs each set-aside snapshot (once per scan; the engine scans at open).
    pub fn warn_set_aside(&self) {
        for s in &self.set_aside {
            tracing::warn!(snapshot = %s.dir.display(), reason = %s.reason, "snapshot set aside: it cannot be read");
        }
    }
}

/// Scans `dir` for snapshots. A missing `dir` holds none; only failing to list
/// `dir` itself is an error.
pub fn scan(dir: &Path) -> Result<Listing, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Listing::default()),
        Err(e) => return Err(StoreError::Io(format!("cannot list snapshots in {}: {e}", dir.display()))),
    };
    let mut listing = Listing::default();
    for entry in entries {
        let path =
            entry.map_err(|e| StoreError::Io(format!("cannot list snapshots in {}: {e}", dir.display())))?.path();
        if !path.join(MANIFEST).is_file() {
            continue;
        }
        match Snapshot::load(&path) {
            Ok(s) if s.db_dir().is_dir() => listing.snapshots.push(s),
            Ok(s) => {
                listing.set_aside.push(SetAside { reason: format!("{} is missing", s.db_dir().display()), dir: path })
            }
            Err(e) => listing.set_aside.push(SetAside { dir: path, reason: e.to_string() }),
        }
    }
    listing.snapshots.sort_by(|a, b| a.manifest.name.cmp(&b.manifest.name));
    listing.set_aside.sort_by(|a, b| a.dir.cmp(&b.dir));
    Ok(listing)
}

/// Every usable snapshot under `dir`, oldest first (see `scan`).
pub fn list(dir: &Path) -> Result<Vec<Snapshot>, StoreError> {
    Ok(scan(dir)?.snapshots)
}

/// Log progress: records over all shards (saturating, so no head can overflow it).
pub fn progress(seqs: impl IntoIterator<Item = u64>) -> u64 {
    seqs.into_iter().fold(0, u64::saturating_add)
}

/// A snapshot's name: the log progress it holds, so names sort in log order.
pub fn name_for(heads: &[SnapshotHead]) -> String {
    format!("snap-{:020}", progress(heads.iter().map(|h| h.seq)))
}

/// Copies `store` as of its last commit into `dir/<name>`, writes the manifest,
/// then removes incomplete snapshots and all but the newest `keep`.
pub fn take<S: EventStore + ?Sized>(
    store: &S,
    dir: &Path,
    manifest: Manifest,
    keep: usize,
) -> Result<Snapshot, StoreError> {
    let target = dir.join(&manifest.name);
    if let Ok(existing) = Snapshot::load(&target) {
        if existing.manifest.heads == manifest.heads && existing.db_dir().is_dir() {
            return Ok(existing);
        }
    }
    if target.exists() {
        // Left by a crash mid-snapshot, or set aside: RocksDB wants a fresh directory.
        std::fs::remove_dir_all(&target)
            .map_err(|e| StoreError::Io(format!("cannot clear {}: {e}", target.display())))?;
    }
    std::fs::create_dir_all(&target)
        .map_err(|e| StoreError::Io(format!("cannot create the snapshot dir {}: {e}", target.display())))?;
    let db = target.join(DB_DIR);
    store.snapshot(&db)?;
    let tmp = target.join(format!("{MANIFEST}.tmp"));
    std::fs::write(&tmp, manifest.to_json())
        .and_then(|()| std::fs::rename(&tmp, target.join(MANIFEST)))
        .map_err(|e| StoreError::Io(format!("cannot write the snapshot manifest in {}: {e}", target.display())))?;
    prune(dir, keep.max(1), &manifest.name)?;
    Ok(Snapshot { dir: target, manifest })
}

/// Housekeeping: removes set-aside and incomplete snapshots (other than `current`)
/// and all but the newest `keep` usable ones.
fn prune(dir: &Path, keep: usize, current: &str) -> Result<(), StoreError> {
    let listing = scan(dir)?;
    let complete = &listing.snapshots;
    let drop_complete = complete.len().saturating_sub(keep);
    let mut doomed: Vec<PathBuf> = complete[..drop_complete].iter().map(|s| s.dir.clone()).collect();
    doomed.extend(listing.set_aside.iter().map(|s| s.dir.clone()));
    for entry in std::fs::read_dir(dir).map_err(|e| StoreError::Io(e.to_string()))? {
        let path = entry.map_err(|e| StoreError::Io(e.to_string()))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if path.is_dir() && name.starts_with("snap-") && name != current && !path.join(MANIFEST).is_file() {
            doomed.push(path);
        }
    }
    for path in doomed {
        if let Err(e) = std::fs::remove_dir_all(&path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove an old snapshot");
        }
    }
    Ok(())
}

/// What checking a snapshot against its manifest found, shard by shard.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotCheck {
    pub shard: u32,
    pub seq: u64,
    /// The checkpoint's signature verified with the key (`None`: no checkpoint).
    pub signed: Option<bool>,
}

/// Checks that a snapshot holds what its manifest says: each shard's head, and for
/// each signed checkpoint the Merkle root of the snapshot's log at that size, the
/// digest of its projection rows and the signature (with `key`, else the key the
/// checkpoint names). The first mismatch is an error naming it.
pub fn check(snapshot: &Snapshot, key: Option<&VerifyingKey>) -> Result<Vec<SnapshotCheck>, StoreError> {
    let store = snapshot.open()?;
    let mismatch = |m: String| StoreError::Corrupt(format!("snapshot {}: {m}", snapshot.manifest.name));
    let mut out = Vec::new();
    for h in &snapshot.manifest.heads {
        let head = store.head(h.shard)?;
        if head.seq != h.seq || hex(&head.hash) != h.hash {
            return Err(mismatch(format!("shard {} holds seq {} but the manifest says {}", h.shard, head.seq, h.seq)));
        }
        let mut signed = None;
        if let Some(c) = snapshot.checkpoint(h.shard) {
            if c.tree_size != h.seq {
                return Err(mismatch(format!("shard {}'s checkpoint is at {}, not {}", h.shard, c.tree_size, h.seq)));
            }
            let root = ProofReader::new(&store, h.shard)?
                .root_hash(h.seq)
                .map_err(|e| mismatch(format!("shard {}'s Merkle root: {e}", h.shard)))?;
            if hex(&root) != c.root {
                return Err(mismatch(format!("shard {}'s log does not have the checkpoint's root", h.shard)));
            }
            if hex(&super::checkpoint::stored_shard_digest(&store, h.shard)?) != c.state_digest {
                return Err(mismatch(format!(
                    "shard {}'s projection rows do not have the checkpoint's state digest",
                    h.shard
                )));
            }
            let key = match key {
                Some(k) => *k,
                None => super::public_key(&c.public_key).map_err(|e| mismatch(e.to_string()))?,
            };
            c.verify(&key).map_err(|e| mismatch(format!("shard {}'s checkpoint: {e}", h.shard)))?;
            signed = Some(true);
        }
        out.push(SnapshotCheck { shard: h.shard, seq: h.seq, signed });
    }
    Ok(out)
}
