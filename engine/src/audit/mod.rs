//! The audit layer: makes the event store's history checkable by someone who does
//! not run riskstream and does not trust its operator. The hash chain already lets
//! `verify` catch a changed record, but only by replaying the whole chain. An
//! RFC 6962 Merkle tree over the records' chain hashes lets an auditor who holds
//! one checkpoint (tree size, root) check in O(log n) hashes that one event is in
//! the log (inclusion proof) and that a later checkpoint extends an earlier one
//! without rewriting it (consistency proof).
//!
//! - `merkle`: the tree, pure, no I/O; its nodes go through the `NodeStore` trait
//!   (`MemoryNodes` for tests, the store's `merkle` column family in the engine),
//!   proofs and the strict verifiers an auditor runs.
//! - `frontier`: the tree's right edge, with which the event store extends the tree
//!   in the same atomic commit as the records.
//!
//! - `proofs`: roots, inclusion and consistency proofs read from a store, as the
//!   API serves them.
//!
//! - `checkpoint`: signed checkpoints binding a tree size and root to a digest of
//!   the projection state after those records (Ed25519).
//!
//! - `snapshot`: copies of the data dir tied to each shard's head and a signed
//!   checkpoint there; the start of point-in-time replays and of new replicas.
//! - `history`: a shard's state as of a seq or an event time (nearest snapshot plus
//!   the log tail, live state untouched) and the explanation of an alert.

pub mod checkpoint;
pub mod frontier;
pub mod history;
pub mod merkle;
pub mod proofs;
pub mod snapshot;

pub use checkpoint::{public_key, shard_digest, Checkpoint, CheckpointError, CheckpointSigner};
pub use frontier::{Frontier, Node};
pub use merkle::{
    leaf_hash, node_hash, root_of, verify_consistency, verify_inclusion, Hash, MemoryNodes, MerkleTree, NodeStore,
    ProofError, TreeError, EMPTY_ROOT,
};
pub use proofs::{ConsistencyView, InclusionView, ProofReader, ProofRequestError, RootView};
