//! `riskstream verify`: re-derives from the records everything the log claims and
//! names the first thing that does not hold (invariant 5).
//!
//! - The hash chain: a changed record fails its hash, a removed one leaves a gap,
//!   an inserted or reordered one breaks the seq or the link, and a removed tail
//!   disagrees with the stored head.
//! - The Merkle tree: the walk extends a `Frontier` with each record, as the store
//!   does when it commits, and compares the root with every stored checkpoint's and
//!   with the stored tree's at those sizes and at the head.
//! - The checkpoints: each signature, when the key is known. A chain rewritten and
//!   rehashed from some record on passes the chain checks; only a checkpoint signed
//!   before the rewrite catches it.
//!
//! A walk can start from a signed checkpoint instead of the genesis: the record it
//! ends on is proven under its root, the stored tree's right edge at its size is
//! loaded and checked against that root, and only the records after it are walked.
//! Shards are verified in parallel, one thread per core.

mod recomputed;

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use ed25519_dalek::VerifyingKey;
use serde::Serialize;

use crate::audit::checkpoint::unhex;
use crate::audit::{leaf_hash, verify_consistency, verify_inclusion, Checkpoint, Hash, ProofReader, ProofRequestError};
use crate::store::{hex, ChainHead, EventStore, Record, StoreError};
use recomputed::Recomputed;

/// What a broken thing is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Defect {
    /// A record: changed, missing, inserted, reordered or not linked to the one before.
    Record,
    /// The stored chain head disagrees with the chain's last record.
    Head,
    /// A stored Merkle node disagrees with the tree recomputed from the records.
    Tree,
    /// A checkpoint: a bad signature, another key, or a root the records do not give.
    Checkpoint,
}

/// The first thing of a shard that does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Broken {
    pub shard: u32,
    /// The record where it shows (for a tree or a checkpoint: the last record of
    /// the tree size).
    pub seq: u64,
    pub kind: Defect,
    /// For a tree or a checkpoint: the tree size it was found at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tree_size: Option<u64>,
    pub reason: String,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, self.tree_size) {
            (Defect::Checkpoint, Some(n)) => write!(f, "shard {} checkpoint at tree size {n}", self.shard)?,
            (Defect::Tree, Some(n)) => write!(f, "shard {} Merkle tree at size {n}", self.shard)?,
            _ => write!(f, "shard {} seq {}", self.shard, self.seq)?,
        }
        write!(f, ": {}", self.reason)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VerifyReport {
    pub shards: u32,
    /// Records walked: hash, link and Merkle leaf recomputed.
    pub records: u64,
    pub heads: Vec<(u32, u64, String)>,
    pub first_bad: Option<Broken>,
    /// Each broken shard's first bad thing, in shard order (`first_bad` is the first).
    pub broken: Vec<Broken>,
    /// Records not walked because the checkpoint a shard started from covers them.
    pub skipped: u64,
    /// The checkpoint each shard started from: (shard, tree size).
    pub started_from: Vec<(u32, u64)>,
    /// Checkpoints whose root was compared with the one the records give.
    pub checkpoints: u64,
    /// The key checkpoint signatures were checked with, hex (`None`: not checked).
    pub public_key: Option<String>,
    /// Every stored Merkle node was compared, not only those the roots are made of.
    pub all_nodes: bool,
    /// Bytes of records read (keys and values).
    pub bytes: u64,
    pub secs: f64,
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
}

/// Where each shard's walk starts.
#[derive(Debug, Clone, Default)]
pub enum Start {
    /// The first record.
    #[default]
    Genesis,
    /// Each shard's newest stored checkpoint (the genesis for a shard without one).
    Latest,
    /// These checkpoints, at most one per shard (other shards: the genesis).
    Checkpoints(Vec<Checkpoint>),
}

#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The key checkpoints must be signed with. Without it their roots are still
    /// compared but their signatures are not checked, and no walk can start from one.
    pub public_key: Option<VerifyingKey>,
    pub start: Start,
    /// Also compare every stored Merkle node with the recomputed one, not only the
    /// nodes the roots are made of (about two point reads per record).
    pub all_nodes: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Bad input: fix the options.
    #[error("{0}")]
    BadStart(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Told how far the walk is; called from the shards' threads.
pub trait Progress: Sync {
    /// `records` of `shard` are to be walked (once per shard, before any walk).
    fn planned(&self, _shard: u32, _records: u64) {}
    /// `records` more of `shard` were checked.
    fn checked(&self, shard: u32, records: u64);
}

impl<F: Fn(u32, u64) + Sync> Progress for F {
    fn checked(&self, shard: u32, records: u64) {
        self(shard, records)
    }
}

/// Checks every shard from the genesis, without a key; `progress` is called with
/// (shard, records checked since its last call).
pub fn verify<S: EventStore + ?Sized>(store: &S, progress: impl Progress) -> Result<VerifyReport, VerifyError> {
    verify_with(store, &VerifyOptions::default(), &progress)
}

/// Checks every shard as `opts` say, shards in parallel.
pub fn verify_with<S: EventStore + ?Sized>(
    store: &S,
    opts: &VerifyOptions,
    progress: &impl Progress,
) -> Result<VerifyReport, VerifyError> {
    let started = Instant::now();
    let shards = store.shard_count()?.unwrap_or(0);
    let starts = plan(store, shards, opts)?;
    for (shard, start) in (0..).zip(&starts) {
        let from = start.as_ref().map_or(0, |c| c.tree_size);
        progress.planned(shard, store.head(shard)?.seq.saturating_sub(from));
    }
    let outcomes = in_parallel(shards, |shard| {
        let start = starts[shard as usize].as_ref();
        ShardWalk::new(store, shard, opts)?.run(start, progress)
    });
    let mut report = VerifyReport {
        shards,
        started_from: (0..).zip(&starts).filter_map(|(s, c)| Some((s, c.as_ref()?.tree_size))).collect(),
        public_key: opts.public_key.map(|k| hex(k.as_bytes())),
        all_nodes: opts.all_nodes,
        ..VerifyReport::default()
    };
    for (shard, outcome) in (0..).zip(outcomes) {
        report.add(shard, outcome?);
    }
    report.first_bad = report.broken.first().cloned();
    report.secs = started.elapsed().as_secs_f64();
    report.records_per_sec = report.records as f64 / report.secs.max(1e-9);
    report.mb_per_sec = report.bytes as f64 / 1e6 / report.secs.max(1e-9);
    Ok(report)
}

impl VerifyReport {
    fn add(&mut self, shard: u32, o: Outcome) {
        self.records += o.records;
        self.skipped += o.skipped;
        self.bytes += o.bytes;
        self.checkpoints += o.checkpoints;
        self.heads.push((shard, o.tip.seq, hex(&o.tip.hash)));
        self.broken.extend(o.broken);
    }
}

/// The checkpoint each shard starts from, checked to fit the data dir.
fn plan<S: EventStore + ?Sized>(
    store: &S,
    shards: u32,
    opts: &VerifyOptions,
) -> Result<Vec<Option<Checkpoint>>, VerifyError> {
    let mut starts = vec![None; shards as usize];
    let given: Vec<Checkpoint> = match &opts.start {
        Start::Genesis => return Ok(starts),
        Start::Latest => {
            (0..shards).map(|s| store.latest_checkpoint(s)).filter_map(Result::transpose).collect::<Result<_, _>>()
        }
        Start::Checkpoints(list) => Ok(list.clone()),
    }?;
    if opts.public_key.is_none() && !given.is_empty() {
        return Err(VerifyError::BadStart(
            "starting from a checkpoint needs the public key it is signed with: an unchecked \
             checkpoint proves nothing about the records it covers"
                .into(),
        ));
    }
    for c in given {
        let slot = starts.get_mut(c.shard as usize).ok_or_else(|| {
            VerifyError::BadStart(format!("the checkpoint is of shard {}, the data dir has {shards} shards", c.shard))
        })?;
        if slot.is_some() {
            return Err(VerifyError::BadStart(format!("two checkpoints to start shard {} from", c.shard)));
        }
        *slot = Some(c);
    }
    Ok(starts)
}

/// Runs `work` for shards 0..n on up to one thread per core; results in shard order.
fn in_parallel<T: Send>(n: u32, work: impl Fn(u32) -> T + Sync) -> Vec<T> {
    let next = AtomicU32::new(0);
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let threads = cores.min(n as usize).max(1);
    let mut done: Vec<(u32, T)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let shard = next.fetch_add(1, Ordering::Relaxed);
                        if shard >= n {
                            return mine;
                        }
                        mine.push((shard, work(shard)));
                    }
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    });
    done.sort_by_key(|(shard, _)| *shard);
    done.into_iter().map(|(_, t)| t).collect()
}

/// What one shard's walk found.
#[derive(Debug, Default)]
struct Outcome {
    records: u64,
    skipped: u64,
    bytes: u64,
    checkpoints: u64,
    tip: ChainHead,
    broken: Option<Broken>,
}

/// Why a walk stops early.
enum Halt {
    Bad(Broken),
    Store(StoreError),
}

impl From<StoreError> for Halt {
    fn from(e: StoreError) -> Self {
        Halt::Store(e)
    }
}

/// Records between two progress reports.
const PROGRESS_EVERY: u64 = 8192;
/// Stored checkpoints read at a time.
const CHECKPOINT_PAGE: usize = 256;

/// One shard's walk: the chain so far and the tree recomputed from it.
struct ShardWalk<'a, S: EventStore + ?Sized> {
    store: &'a S,
    shard: u32,
    key: Option<&'a VerifyingKey>,
    all_nodes: bool,
    /// The stored tree, as of the stored head.
    stored: ProofReader<'a, S>,
    tree: Recomputed,
    pending: StoredCheckpoints<'a, S>,
    out: Outcome,
}

impl<'a, S: EventStore + ?Sized> ShardWalk<'a, S> {
    fn new(store: &'a S, shard: u32, opts: &'a VerifyOptions) -> Result<Self, StoreError> {
        Ok(ShardWalk {
            store,
            shard,
            key: opts.public_key.as_ref(),
            all_nodes: opts.all_nodes,
            stored: ProofReader::new(store, shard)?,
            tree: Recomputed::default(),
            pending: StoredCheckpoints::new(store, shard, 0),
            out: Outcome::default(),
        })
    }

    fn run(mut self, start: Option<&Checkpoint>, progress: &impl Progress) -> Result<Outcome, StoreError> {
        let walked = match start {
            Some(c) => self.anchor(c).and_then(|()| self.walk(progress)),
            None => self.walk(progress),
        };
        match walked.and_then(|()| self.finish(start)) {
            Ok(()) => {}
            Err(Halt::Bad(b)) => self.out.broken = Some(b),
            Err(Halt::Store(e)) => return Err(e),
        }
        Ok(self.out)
    }

    fn bad(&self, seq: u64, kind: Defect, tree_size: Option<u64>, reason: String) -> Halt {
        Halt::Bad(Broken { shard: self.shard, seq, kind, tree_size, reason })
    }

    /// Starts from checkpoint `c`: its signature holds, the stored tree's edge at
    /// its size gives its root, and its last record is proven under that root.
    fn anchor(&mut self, c: &Checkpoint) -> Result<(), Halt> {
        let size = c.tree_size;
        let root = self.signed_root(c)?;
        if size == 0 {
            return Ok(());
        }
        let head = self.stored.size();
        if size > head {
            let why = format!(
                "it signs {size} records but the stored head is seq {head}: records were removed, \
                 or the checkpoint is of another log"
            );
            return Err(self.bad(size, Defect::Checkpoint, Some(size), why));
        }
        self.tree = Recomputed::load(self.store, self.shard, size)?.map_err(|(l, i)| {
            self.bad(size, Defect::Tree, Some(size), format!("stored node (level {l}, index {i}) is missing"))
        })?;
        if self.tree.root() != root {
            let why =
                format!("the stored nodes give root {}, the checkpoint signs {}", hex(&self.tree.root()), hex(&root));
            return Err(self.bad(size, Defect::Tree, Some(size), why));
        }
        let last = self.anchor_record(size, &root)?;
        self.out.tip = last.head();
        self.out.skipped = size;
        self.pending = StoredCheckpoints::new(self.store, self.shard, size);
        Ok(())
    }

    /// Record `size`, checked against its own hash and proven the last leaf of the
    /// tree whose root is `root`.
    fn anchor_record(&self, size: u64, root: &Hash) -> Result<Record, Halt> {
        let bad = |why: String| self.bad(size, Defect::Record, None, why);
        let record = self.store.record(self.shard, size)?.ok_or_else(|| bad("the record is missing".into()))?;
        if !record.hash_is_valid() {
            return Err(bad("hash does not match the record's content".into()));
        }
        let proof = self.stored.inclusion(size, Some(size)).map_err(|e| self.tree_error(size, e))?;
        let path = self.proof_hashes(size, &proof.proof)?;
        verify_inclusion(&leaf_hash(&record.hash), size - 1, size, &path, root)
            .map_err(|e| bad(format!("the record is not the last leaf of the signed tree: {e}")))?;
        Ok(record)
    }

    /// Walks the records after the tip to the end of the stored chain.
    fn walk(&mut self, progress: &impl Progress) -> Result<(), Halt> {
        let mut unreported = 0;
        let (store, mut result) = (self.store, Ok(()));
        // From seq 0 at the genesis, so that a record stored at seq 0 shows.
        let from = if self.out.tip.seq == 0 { 0 } else { self.out.tip.seq + 1 };
        for record in store.records(self.shard, from) {
            result = match record {
                Ok(r) => self.step(&r),
                Err(e) => Err(self.bad(self.out.tip.seq + 1, Defect::Record, None, format!("unreadable record: {e}"))),
            };
            if result.is_err() {
                break;
            }
            unreported += 1;
            if unreported == PROGRESS_EVERY {
                progress.checked(self.shard, unreported);
                unreported = 0;
            }
        }
        progress.checked(self.shard, unreported);
        result
    }

    /// The record after the tip: its seq, link and hash, then its leaf and the
    /// checkpoints at the tree size it makes.
    fn step(&mut self, record: &Record) -> Result<(), Halt> {
        let tip = self.out.tip;
        let expected = tip.seq + 1;
        if record.seq != expected {
            let why = if record.seq > expected {
                format!("record {expected} is missing (next stored is {})", record.seq)
            } else {
                format!("unexpected record {} before {expected}", record.seq)
            };
            return Err(self.bad(expected, Defect::Record, None, why));
        }
        if record.prev_hash != tip.hash {
            let why = "prev_hash does not match the previous record's hash".into();
            return Err(self.bad(record.seq, Defect::Record, None, why));
        }
        if !record.hash_is_valid() {
            return Err(self.bad(record.seq, Defect::Record, None, "hash does not match the record's content".into()));
        }
        self.tree.append(&record.hash);
        if self.all_nodes {
            self.compare_nodes(record.seq)?;
        }
        self.out.tip = record.head();
        self.out.records += 1;
        self.out.bytes += (12 + 75 + record.source.len() + record.payload.len()) as u64;
        while let Some(c) = self.pending.next_at(record.seq)? {
            self.check_checkpoint(&c)?;
        }
        Ok(())
    }

    /// The nodes the last record completed, as the records give them, against the
    /// stored ones.
    fn compare_nodes(&self, seq: u64) -> Result<(), Halt> {
        for &(level, index, hash) in self.tree.completed() {
            let stored = self.store.merkle_node(self.shard, level, index)?;
            if stored != Some(hash) {
                let found = stored.map_or_else(|| "missing".to_string(), |h| hex(&h));
                let why =
                    format!("stored node (level {level}, index {index}) is {found}, the records give {}", hex(&hash));
                return Err(self.bad(seq, Defect::Tree, Some(seq), why));
            }
        }
        Ok(())
    }

    /// A stored checkpoint met at its tree size: its signature, its root against
    /// the records', and the stored tree's root at that size.
    fn check_checkpoint(&mut self, c: &Checkpoint) -> Result<(), Halt> {
        let size = self.tree.size();
        let bad = |why: String| self.bad(size, Defect::Checkpoint, Some(size), why);
        if c.tree_size != size {
            return Err(bad(format!("stored out of order (it says tree size {})", c.tree_size)));
        }
        let signed = self.signed_root(c)?;
        let computed = self.tree.root();
        if signed != computed {
            let how = if self.key.is_some() {
                "its signature holds, so the records were rewritten after it was signed"
            } else {
                "the records were rewritten after it was signed, or it was altered"
            };
            return Err(bad(format!(
                "records 1..={size} give root {}, the checkpoint says {}: {how}",
                hex(&computed),
                hex(&signed)
            )));
        }
        self.compare_stored_root(size, &computed)?;
        self.out.checkpoints += 1;
        Ok(())
    }

    /// The root checkpoint `c` states, after its shard and (with a key) signature.
    fn signed_root(&self, c: &Checkpoint) -> Result<Hash, Halt> {
        let bad = |why: String| self.bad(c.tree_size, Defect::Checkpoint, Some(c.tree_size), why);
        if c.shard != self.shard {
            return Err(bad(format!("stored under shard {} but signed for shard {}", self.shard, c.shard)));
        }
        if let Some(key) = self.key {
            c.verify(key).map_err(|e| bad(e.to_string()))?;
        }
        c.root_hash().map_err(|e| bad(e.to_string()))
    }

    fn compare_stored_root(&self, size: u64, computed: &Hash) -> Result<(), Halt> {
        let stored = self.stored.root_hash(size).map_err(|e| self.tree_error(size, e))?;
        if stored != *computed {
            let why = format!("the stored nodes give root {}, the records give {}", hex(&stored), hex(computed));
            return Err(self.bad(size, Defect::Tree, Some(size), why));
        }
        Ok(())
    }

    /// After the walk: the stored head, checkpoints past the chain's end, the
    /// stored tree's root at the head, and that the tree extends the start.
    fn finish(&mut self, start: Option<&Checkpoint>) -> Result<(), Halt> {
        let (tip, head) = (self.out.tip, self.store.head(self.shard)?);
        if head != tip {
            let why = format!("stored head is seq {} but the chain ends at seq {}", head.seq, tip.seq);
            return Err(self.bad(tip.seq.min(head.seq) + 1, Defect::Head, None, why));
        }
        if let Some(c) = self.pending.next_at(u64::MAX)? {
            let why = format!("it is beyond the chain's last record, seq {}", tip.seq);
            return Err(self.bad(c.tree_size, Defect::Checkpoint, Some(c.tree_size), why));
        }
        let root = self.tree.root();
        self.compare_stored_root(tip.seq, &root)?;
        let Some(c) = start.filter(|c| c.tree_size > 0) else { return Ok(()) };
        let proof = self.stored.consistency(c.tree_size, Some(tip.seq)).map_err(|e| self.tree_error(tip.seq, e))?;
        let path = self.proof_hashes(tip.seq, &proof.proof)?;
        let signed = self.signed_root(c)?;
        verify_consistency(c.tree_size, tip.seq, &signed, &root, &path).map_err(|e| {
            let why = format!("the stored tree does not extend the checkpoint at tree size {}: {e}", c.tree_size);
            self.bad(tip.seq, Defect::Tree, Some(tip.seq), why)
        })
    }

    /// A proof served as hex, as hashes.
    fn proof_hashes(&self, size: u64, proof: &[String]) -> Result<Vec<Hash>, Halt> {
        let hashes = proof.iter().map(|h| unhex::<32>("proof element", h)).collect::<Result<Vec<_>, _>>();
        hashes.map_err(|e| self.bad(size, Defect::Tree, Some(size), e.to_string()))
    }

    /// A proof or root the stored tree cannot give: a node is missing or corrupt.
    fn tree_error(&self, size: u64, e: ProofRequestError) -> Halt {
        match e {
            ProofRequestError::Store(StoreError::Io(m)) => Halt::Store(StoreError::Io(m)),
            other => self.bad(size, Defect::Tree, Some(size), other.to_string()),
        }
    }
}

/// A shard's stored checkpoints above a tree size, read a page at a time.
struct StoredCheckpoints<'a, S: ?Sized> {
    store: &'a S,
    shard: u32,
    after: u64,
    page: VecDeque<Checkpoint>,
    exhausted: bool,
}

impl<'a, S: EventStore + ?Sized> StoredCheckpoints<'a, S> {
    fn new(store: &'a S, shard: u32, after: u64) -> Self {
        StoredCheckpoints { store, shard, after, page: VecDeque::new(), exhausted: false }
    }

    /// The next checkpoint if its tree size is at most `size`.
    fn next_at(&mut self, size: u64) -> Result<Option<Checkpoint>, StoreError> {
        if self.page.is_empty() && !self.exhausted {
            let page = self.store.checkpoints(self.shard, self.after, CHECKPOINT_PAGE)?;
            self.exhausted = page.len() < CHECKPOINT_PAGE;
            self.after = page.last().map_or(self.after, |c| c.tree_size.max(self.after + 1));
            self.page = page.into();
        }
        Ok(self.page.front().is_some_and(|c| c.tree_size <= size).then(|| self.page.pop_front()).flatten())
    }
}
