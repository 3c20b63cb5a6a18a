//! The audit layer: makes the event store's history checkable by someone who does
//! not run riskstream and does not trust its operator. The hash chain already lets
//! `verify` catch a changed record, but only by replaying the whole chain. An
//! RFC 6962 Merkle tree over the records' chain hashes lets an auditor who holds
//! one checkpoint (tree size, root) check in O(log n) hashes that one event is in
//! the log (inclusion proof) and that a later checkpoint extends an earlier one
//! without rewriting it (consistency proof).
//!
//! For now this is only the tree, in `merkle`: pure, no I/O. Its nodes go through
//! the `NodeStore` trait (`MemoryNodes` for tests; a RocksDB column family later).
//! Signed checkpoints and the wiring into the store come next.

pub mod merkle;

pub use merkle::{
    leaf_hash, node_hash, root_of, verify_consistency, verify_inclusion, Hash, MemoryNodes, MerkleTree, NodeStore,
    ProofError, TreeError, EMPTY_ROOT,
};
