//! Where the per-user keys live: outside the hash chain, the projections and the
//! snapshots, so that destroying one makes that user's sealed fields unreadable
//! while every record, Merkle node and checkpoint stays as it was.
//!
//! [`RocksDbKeyStore`] is a small RocksDB of its own (default `<data_dir>/keys`; the
//! main RocksDB ignores the subdirectory and a snapshot, a checkpoint of the main
//! RocksDB, does not copy it). Every write waits for fsync: a key is durable before
//! the batch whose records it sealed commits (a crash in between leaves an unused key,
//! which is harmless), and an erasure is durable before it is acknowledged.
//! [`MemoryKeyStore`] is for tests and for engines opened without a key store.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rocksdb::{BottommostLevelCompaction, CompactOptions, FlushOptions, Options, WriteBatch, WriteOptions, DB};
use serde::{Deserialize, Serialize};

use super::seal::UserKey;

/// The file of a [`RocksDbKeyStore`] directory where every erasure is appended as one
/// JSON line, for operators (RocksDB leaves files it did not create alone).
pub const ERASURE_LOG: &str = "erasures.jsonl";

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// The key store failed; the engine stops rather than seal with a key it may lose.
    #[error("key store failed: {0}")]
    Io(String),
    #[error("key store is corrupt: {0}")]
    Corrupt(String),
}

/// What an erasure request did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    pub user_id: String,
    /// This request destroyed the user's key (false: there was none, because the user
    /// never sent personal data or an earlier request destroyed it).
    pub key_existed: bool,
    /// Wall-clock time (RFC 3339) of the erasure in force: the one that destroyed the
    /// last key, or the first request when there was never a key.
    pub erased_at: String,
}

/// The per-user keys and the record of erasures. Implementations are shared by the
/// ingest path and the API, so they take `&self`.
pub trait KeyStore: Send + Sync {
    /// The user's key, if one exists.
    fn key(&self, user_id: &str) -> Result<Option<UserKey>, KeyStoreError>;
    /// Stores new keys, durably, in one write.
    fn insert(&self, keys: &[(String, UserKey)]) -> Result<(), KeyStoreError>;
    /// The erasure in force for the user, if the user was ever erased.
    fn erasure(&self, user_id: &str) -> Result<Option<Erasure>, KeyStoreError>;
    /// Destroys the user's key (so its bytes are gone from the store) and records the
    /// erasure at wall-clock time `now` (RFC 3339). Idempotent: erasing again destroys
    /// nothing and answers the erasure in force with `key_existed` false.
    fn erase(&self, user_id: &str, now: &str) -> Result<Erasure, KeyStoreError>;
}

/// The erasure a request gives, from whether it destroyed a key and the one in force.
fn erasure_for(user_id: &str, destroyed: bool, prior: Option<Erasure>, now: &str) -> (Erasure, bool) {
    match prior {
        Some(prior) if !destroyed => (Erasure { key_existed: false, ..prior }, false),
        _ => (Erasure { user_id: user_id.to_string(), key_existed: destroyed, erased_at: now.to_string() }, true),
    }
}

/// Keys in memory: lost with the process, so personal data sealed with them is
/// unreadable after a restart.
#[derive(Debug, Default)]
pub struct MemoryKeyStore {
    inner: Mutex<MemoryKeys>,
}

#[derive(Debug, Default)]
struct MemoryKeys {
    keys: HashMap<String, UserKey>,
    erased: HashMap<String, Erasure>,
}

impl MemoryKeyStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryKeys> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl KeyStore for MemoryKeyStore {
    fn key(&self, user_id: &str) -> Result<Option<UserKey>, KeyStoreError> {
        Ok(self.lock().keys.get(user_id).cloned())
    }

    fn insert(&self, keys: &[(String, UserKey)]) -> Result<(), KeyStoreError> {
        self.lock().keys.extend(keys.iter().cloned());
        Ok(())
    }

    fn erasure(&self, user_id: &str) -> Result<Option<Erasure>, KeyStoreError> {
        Ok(self.lock().erased.get(user_id).cloned())
    }

    fn erase(&self, user_id: &str, now: &str) -> Result<Erasure, KeyStoreError> {
        let mut inner = self.lock();
        let destroyed = inner.keys.remove(user_id).is_some();
        let (erasure, changed) = erasure_for(user_id, destroyed, inner.erased.get(user_id).cloned(), now);
        if changed {
            inner.erased.insert(user_id.to_string(), erasure.clone());
        }
        Ok(erasure)
    }
}

/// Keys in a RocksDB of their own: `key/<user id>` -> the 32 key bytes,
/// `erased/<user id>` -> the [`Erasure`] in force (JSON).
pub struct RocksDbKeyStore {
    db: DB,
    dir: PathBuf,
    /// Every write waits for fsync.
    write: WriteOptions,
    /// One erasure at a time, so two requests for one user cannot both destroy "its" key.
    erasing: Mutex<()>,
}

fn io(e: rocksdb::Error) -> KeyStoreError {
    KeyStoreError::Io(e.to_string())
}

fn key_key(user_id: &str) -> Vec<u8> {
    [b"key/".as_slice(), user_id.as_bytes()].concat()
}

fn erased_key(user_id: &str) -> Vec<u8> {
    [b"erased/".as_slice(), user_id.as_bytes()].concat()
}

impl RocksDbKeyStore {
    /// Opens (or creates) the key store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, KeyStoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| KeyStoreError::Io(format!("cannot create the key store {}: {e}", dir.display())))?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        // An old write-ahead log must not outlive the flush that made it obsolete:
        // no recycling, no archive (the defaults, stated because erasure relies on them).
        opts.set_recycle_log_file_num(0);
        opts.set_wal_ttl_seconds(0);
        opts.set_wal_size_limit_mb(0);
        opts.set_keep_log_file_num(4);
        let db = DB::open(&opts, dir).map_err(|e| {
            KeyStoreError::Io(format!(
                "cannot open the key store {} (is another riskstream using it?): {e}",
                dir.display()
            ))
        })?;
        let mut write = WriteOptions::default();
        write.set_sync(true);
        Ok(RocksDbKeyStore { db, dir: dir.to_path_buf(), write, erasing: Mutex::new(()) })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Rewrites the store's files without the deleted key: the memtable is flushed (its
    /// write-ahead log, which held the key, becomes obsolete and is deleted) and every
    /// level is compacted down to the bottom, dropping the key's older versions.
    fn purge(&self) -> Result<(), KeyStoreError> {
        let mut flush = FlushOptions::default();
        flush.set_wait(true);
        self.db.flush_opt(&flush).map_err(io)?;
        let mut compact = CompactOptions::default();
        compact.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
        compact.set_exclusive_manual_compaction(true);
        self.db.compact_range_opt(None::<&[u8]>, None::<&[u8]>, &compact);
        self.db.flush_wal(true).map_err(io)
    }

    fn append_log(&self, erasure: &Erasure) -> Result<(), KeyStoreError> {
        let path = self.dir.join(ERASURE_LOG);
        let line = serde_json::to_string(erasure).expect("an erasure serialises");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
            writeln!(file, "{line}")?;
            file.sync_data()
        };
        write().map_err(|e| KeyStoreError::Io(format!("cannot append to {}: {e}", path.display())))
    }
}

impl KeyStore for RocksDbKeyStore {
    fn key(&self, user_id: &str) -> Result<Option<UserKey>, KeyStoreError> {
        let Some(bytes) = self.db.get(key_key(user_id)).map_err(io)? else { return Ok(None) };
        let key = UserKey::from_slice(&bytes);
        key.map(Some).ok_or_else(|| KeyStoreError::Corrupt(format!("the key of a user has {} bytes", bytes.len())))
    }

    fn insert(&self, keys: &[(String, UserKey)]) -> Result<(), KeyStoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        for (user_id, key) in keys {
            batch.put(key_key(user_id), key.as_bytes());
        }
        self.db.write_opt(batch, &self.write).map_err(io)
    }

    fn erasure(&self, user_id: &str) -> Result<Option<Erasure>, KeyStoreError> {
        let Some(bytes) = self.db.get(erased_key(user_id)).map_err(io)? else { return Ok(None) };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| KeyStoreError::Corrupt(format!("an erasure record: {e}")))
    }

    fn erase(&self, user_id: &str, now: &str) -> Result<Erasure, KeyStoreError> {
        let _one_at_a_time = self.erasing.lock().unwrap_or_else(|p| p.into_inner());
        let destroyed = self.db.get(key_key(user_id)).map_err(io)?.is_some();
        let (erasure, changed) = erasure_for(user_id, destroyed, self.erasure(user_id)?, now);
        if !changed {
            return Ok(erasure);
        }
        let mut batch = WriteBatch::default();
        batch.delete(key_key(user_id));
        batch.put(erased_key(user_id), serde_json::to_vec(&erasure).expect("an erasure serialises"));
        self.db.write_opt(batch, &self.write).map_err(io)?;
        if destroyed {
            self.purge()?;
        }
        self.append_log(&erasure)?;
        Ok(erasure)
    }
}
