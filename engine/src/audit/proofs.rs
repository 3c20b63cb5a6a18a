//! Proofs served from a store: a shard's tree root at a size, the inclusion proof
//! of one record, the consistency proof between two sizes. Hashes are lowercase
//! hex, as everywhere in the API.

use serde::Serialize;

use super::merkle::{leaf_hash, Hash, MerkleTree, NodeStore, TreeError};
use crate::store::{hex, EventStore, StoreError};

/// A shard's stored tree, read only.
struct StoredNodes<'a, S: ?Sized> {
    store: &'a S,
    shard: u32,
}

impl<S: EventStore + ?Sized> NodeStore for StoredNodes<'_, S> {
    type Error = StoreError;

    fn node(&self, level: u8, index: u64) -> Result<Option<Hash>, StoreError> {
        self.store.merkle_node(self.shard, level, index)
    }

    fn put_node(&mut self, level: u8, index: u64, _: Hash) -> Result<(), StoreError> {
        Err(StoreError::Io(format!("the proof reader writes no nodes (level {level}, index {index})")))
    }
}

/// Why a proof cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ProofRequestError {
    /// The request names sizes or records the log does not have.
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<TreeError<StoreError>> for ProofRequestError {
    fn from(e: TreeError<StoreError>) -> Self {
        match e {
            TreeError::Store(e) => ProofRequestError::Store(e),
            TreeError::MissingNode { .. } => ProofRequestError::Store(StoreError::Corrupt(e.to_string())),
            other => ProofRequestError::BadRequest(other.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootView {
    pub shard: u32,
    pub tree_size: u64,
    pub root: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InclusionView {
    pub shard: u32,
    pub seq: u64,
    /// `seq - 1`: leaves are numbered from 0.
    pub leaf_index: u64,
    pub tree_size: u64,
    /// The record's chain hash (the leaf data).
    pub record_hash: String,
    /// SHA-256(0x00 || record_hash).
    pub leaf_hash: String,
    /// RFC 6962 audit path, leaf to root.
    pub proof: Vec<String>,
    pub root: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsistencyView {
    pub shard: u32,
    pub from: u64,
    pub to: u64,
    pub from_root: String,
    pub to_root: String,
    /// RFC 6962 consistency proof.
    pub proof: Vec<String>,
}

/// Reads proofs of one shard's tree as of its current head.
pub struct ProofReader<'a, S: EventStore + ?Sized> {
    tree: MerkleTree<StoredNodes<'a, S>>,
    shard: u32,
    store: &'a S,
}

impl<'a, S: EventStore + ?Sized> ProofReader<'a, S> {
    pub fn new(store: &'a S, shard: u32) -> Result<Self, StoreError> {
        let size = store.head(shard)?.seq;
        Ok(ProofReader { tree: MerkleTree::open(StoredNodes { store, shard }, size), shard, store })
    }

    /// The current tree size (the shard's head seq).
    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// The tree hash at `size`.
    pub fn root_hash(&self, size: u64) -> Result<Hash, ProofRequestError> {
        Ok(self.tree.root(size)?)
    }

    pub fn root(&self, size: Option<u64>) -> Result<RootView, ProofRequestError> {
        let tree_size = size.unwrap_or(self.size());
        Ok(RootView { shard: self.shard, tree_size, root: hex(&self.tree.root(tree_size)?) })
    }

    pub fn inclusion(&self, seq: u64, size: Option<u64>) -> Result<InclusionView, ProofRequestError> {
        let tree_size = size.unwrap_or(self.size());
        if seq == 0 {
            return Err(ProofRequestError::BadRequest("`seq` starts at 1".into()));
        }
        if seq > tree_size {
            // Said in seqs, as asked: the tree's 0-based leaf index would read one off.
            return Err(ProofRequestError::BadRequest(format!(
                "record {seq} is not in a tree of size {tree_size} (records 1 to {tree_size})"
            )));
        }
        let proof = self.tree.inclusion_proof(seq - 1, tree_size)?;
        let record = self.store.record(self.shard, seq)?.ok_or_else(|| {
            ProofRequestError::Store(StoreError::Corrupt(format!("record ({}, {seq}) is missing", self.shard)))
        })?;
        Ok(InclusionView {
            shard: self.shard,
            seq,
            leaf_index: seq - 1,
            tree_size,
            record_hash: hex(&record.hash),
            leaf_hash: hex(&leaf_hash(&record.hash)),
            proof: proof.iter().map(hex).collect(),
            root: hex(&self.tree.root(tree_size)?),
        })
    }

    pub fn consistency(&self, from: u64, to: Option<u64>) -> Result<ConsistencyView, ProofRequestError> {
        let to = to.unwrap_or(self.size());
        let proof = self.tree.consistency_proof(from, to)?;
        Ok(ConsistencyView {
            shard: self.shard,
            from,
            to,
            from_root: hex(&self.tree.root(from)?),
            to_root: hex(&self.tree.root(to)?),
            proof: proof.iter().map(hex).collect(),
        })
    }
}
