//! The RFC 6962 Merkle tree (RFC 9162 section 2.1) over the records' chain hashes:
//! the hashes, an append-only tree whose nodes live in a `NodeStore`, the proofs it
//! serves, and the verifiers an auditor runs with nothing but a checkpoint.
//!
//! The store holds only the roots of complete subtrees: node (level L, index i) is
//! the root of leaves [i * 2^L, (i + 1) * 2^L). Each is written once, when its last
//! leaf is appended, and never changes, so an append is O(log n) writes and any
//! past tree size can still be proven: a root or a proof for size n folds the
//! complete subtrees that tile a range, never a node that depends on n.
//!
//! Verification follows RFC 9162 sections 2.1.3.2 and 2.1.4.2 step by step and
//! rejects any proof that is not exactly the one the tree would serve (a padded, a
//! truncated or a reordered proof, or sizes that do not fit), because a lax
//! verifier is how forged consistency proofs got accepted elsewhere.

use std::collections::BTreeMap;
use std::convert::Infallible;

use sha2::{Digest, Sha256};

/// A SHA-256 digest: a leaf, a node or a root.
pub type Hash = [u8; 32];

/// The root of the empty tree, SHA-256 of no bytes (RFC 6962 section 2.1).
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41,
    0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// SHA-256(0x00 || data). The prefix keeps a leaf from passing for an inner node
/// (second-preimage resistance). In riskstream `data` is a record's chain hash.
pub fn leaf_hash(data: &[u8]) -> Hash {
    Sha256::new().chain_update([0x00]).chain_update(data).finalize().into()
}

/// SHA-256(0x01 || left || right), an inner node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new().chain_update([0x01]).chain_update(left).chain_update(right).finalize().into()
}

/// MTH(D[n]) straight from the definition (RFC 6962 section 2.1): recursive and
/// O(n). The reference the incremental tree is tested against.
pub fn root_of(leaf_hashes: &[Hash]) -> Hash {
    match leaf_hashes.len() {
        0 => EMPTY_ROOT,
        1 => leaf_hashes[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(&root_of(&leaf_hashes[..k]), &root_of(&leaf_hashes[k..]))
        }
    }
}

/// The largest power of two below `n` (n >= 2): where RFC 6962 splits a list.
fn split_point(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// Where the tree keeps the roots of its complete subtrees, keyed plainly by
/// (level, index) so a key-value store can hold them as they are.
pub trait NodeStore {
    type Error;
    /// The root of leaves [index * 2^level, (index + 1) * 2^level), if written.
    fn node(&self, level: u8, index: u64) -> Result<Option<Hash>, Self::Error>;
    fn put_node(&mut self, level: u8, index: u64, hash: Hash) -> Result<(), Self::Error>;
}

/// Nodes in memory, for tests and tools.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryNodes {
    nodes: BTreeMap<(u8, u64), Hash>,
}

impl MemoryNodes {
    /// How many nodes are stored: 2n - popcount(n) for a tree of n leaves.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

impl NodeStore for MemoryNodes {
    type Error = Infallible;

    fn node(&self, level: u8, index: u64) -> Result<Option<Hash>, Infallible> {
        Ok(self.nodes.get(&(level, index)).copied())
    }

    fn put_node(&mut self, level: u8, index: u64, hash: Hash) -> Result<(), Infallible> {
        self.nodes.insert((level, index), hash);
        Ok(())
    }
}

/// Why the tree could not answer.
#[derive(Debug, thiserror::Error)]
pub enum TreeError<E> {
    /// Bad input: the caller asked for a leaf outside the tree size it named.
    #[error("index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    /// Bad input: the caller named a size the tree has not reached.
    #[error("tree size {size} is beyond the {tree_size} leaves appended")]
    SizeBeyondTree { size: u64, tree_size: u64 },
    /// Bad input: a consistency proof goes from a smaller tree to a larger one.
    #[error("old tree size {old_size} is above new tree size {new_size}")]
    OldSizeAboveNew { old_size: u64, new_size: u64 },
    /// Internal: a node the size says exists was never written; stop and rebuild.
    #[error("node (level {level}, index {index}) is missing from the node store: the tree is corrupt or was opened with the wrong size")]
    MissingNode { level: u8, index: u64 },
    /// The node store failed; its error says whether to retry.
    #[error("node store failed: {0}")]
    Store(#[source] E),
}

/// An append-only RFC 6962 tree over a `NodeStore`.
#[derive(Debug)]
pub struct MerkleTree<S: NodeStore> {
    size: u64,
    store: S,
}

impl<S: NodeStore> MerkleTree<S> {
    /// A tree of `size` leaves whose nodes are in `store`. The size is not read
    /// from the store: the caller keeps it with the data it covers (the chain
    /// head), so one atomic write commits both.
    pub fn open(store: S, size: u64) -> Self {
        Self { size, store }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Appends a leaf hash and returns the new size. Writes the leaf and every
    /// subtree it completes; the size moves only once all writes succeeded, so a
    /// failed append can be retried (it rewrites the same values).
    pub fn append(&mut self, leaf_hash: Hash) -> Result<u64, TreeError<S::Error>> {
        let (mut level, mut index, mut hash) = (0u8, self.size, leaf_hash);
        self.put(level, index, hash)?;
        // An odd index is a right child: its parent is now complete.
        while index & 1 == 1 {
            hash = node_hash(&self.get(level, index - 1)?, &hash);
            level += 1;
            index >>= 1;
            self.put(level, index, hash)?;
        }
        self.size += 1;
        Ok(self.size)
    }

    /// MTH of the first `size` leaves, for any size up to the current one.
    pub fn root(&self, size: u64) -> Result<Hash, TreeError<S::Error>> {
        self.check_size(size)?;
        self.range_root(0, size)
    }

    /// PATH(index, D[size]) (RFC 6962 section 2.1.1), leaf to root.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, TreeError<S::Error>> {
        self.check_size(size)?;
        if index >= size {
            return Err(TreeError::IndexOutOfRange { index, size });
        }
        // Walk down from the root, keeping the sibling of the half holding `index`.
        let (mut start, mut end, mut path) = (0, size, Vec::new());
        while end - start > 1 {
            let mid = start + split_point(end - start);
            if index < mid {
                path.push(self.range_root(mid, end)?);
                end = mid;
            } else {
                path.push(self.range_root(start, mid)?);
                start = mid;
            }
        }
        path.reverse();
        Ok(path)
    }

    /// PROOF(old_size, D[new_size]) (RFC 6962 section 2.1.2). Empty when the sizes
    /// are equal or the old tree is empty: there is nothing to prove (RFC 9162
    /// section 2.1.4).
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, TreeError<S::Error>> {
        self.check_size(new_size)?;
        if old_size > new_size {
            return Err(TreeError::OldSizeAboveNew { old_size, new_size });
        }
        if old_size == 0 || old_size == new_size {
            return Ok(Vec::new());
        }
        // SUBPROOF unrolled: descend until the range is the old tree's last
        // subtree; `whole` says whether that range is the entire old tree, whose
        // root the verifier already has.
        let (mut start, mut end, mut whole, mut proof) = (0, new_size, true, Vec::new());
        while end != old_size {
            let mid = start + split_point(end - start);
            if old_size <= mid {
                proof.push(self.range_root(mid, end)?);
                end = mid;
            } else {
                proof.push(self.range_root(start, mid)?);
                start = mid;
                whole = false;
            }
        }
        if !whole {
            proof.push(self.range_root(start, end)?);
        }
        proof.reverse();
        Ok(proof)
    }

    /// MTH of leaves [start, end) for a range of the RFC recursion, where `start`
    /// is a multiple of the power of two at or above `end - start`. Such a range is
    /// tiled by the complete subtrees of the binary decomposition of its length,
    /// largest first; the root folds them right to left (O(log n) reads). The
    /// empty range, the tree of size 0, has the empty root.
    fn range_root(&self, start: u64, end: u64) -> Result<Hash, TreeError<S::Error>> {
        let mut rest = end - start;
        let mut right = end;
        let mut hash = None;
        while rest != 0 {
            let level = rest.trailing_zeros();
            let begin = right - (1 << level);
            let node = self.get(level as u8, begin >> level)?;
            hash = Some(match hash {
                None => node,
                Some(acc) => node_hash(&node, &acc),
            });
            right = begin;
            rest &= rest - 1;
        }
        Ok(hash.unwrap_or(EMPTY_ROOT))
    }

    fn check_size(&self, size: u64) -> Result<(), TreeError<S::Error>> {
        if size > self.size {
            return Err(TreeError::SizeBeyondTree { size, tree_size: self.size });
        }
        Ok(())
    }

    fn get(&self, level: u8, index: u64) -> Result<Hash, TreeError<S::Error>> {
        self.store.node(level, index).map_err(TreeError::Store)?.ok_or(TreeError::MissingNode { level, index })
    }

    fn put(&mut self, level: u8, index: u64, hash: Hash) -> Result<(), TreeError<S::Error>> {
        self.store.put_node(level, index, hash).map_err(TreeError::Store)
    }
}

/// Why a proof was rejected. All of them are bad input: the proof or the
/// checkpoint it was checked against is wrong, and the log's operator has to
/// explain which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("old tree size {old_size} is above new tree size {new_size}")]
    OldSizeAboveNew { old_size: u64, new_size: u64 },
    #[error("proof too short for these sizes: {len} hashes where {expected} are needed")]
    ProofTooShort { len: usize, expected: usize },
    #[error("proof too long for these sizes: {len} hashes where {expected} are needed")]
    ProofTooLong { len: usize, expected: usize },
    #[error("a consistency proof from the empty tree must be empty, got {len} hashes")]
    NonEmptyProofFromEmptyTree { len: usize },
    #[error("a consistency proof between two trees of size {size} must be empty, got {len} hashes")]
    NonEmptyProofForEqualSizes { size: u64, len: usize },
    #[error("two trees of size {size} have different roots: {} and {}", hex::encode(.old_root), hex::encode(.new_root))]
    RootsDiffer { size: u64, old_root: Hash, new_root: Hash },
    #[error("proof leads to root {}, not the expected {}", hex::encode(.computed), hex::encode(.expected))]
    RootMismatch { computed: Hash, expected: Hash },
    #[error("proof leads to old root {}, not the expected {}", hex::encode(.computed), hex::encode(.expected))]
    OldRootMismatch { computed: Hash, expected: Hash },
    #[error("proof leads to new root {}, not the expected {}", hex::encode(.computed), hex::encode(.expected))]
    NewRootMismatch { computed: Hash, expected: Hash },
}

/// Checks that `leaf_hash` is leaf `index` of the tree of `tree_size` leaves
/// whose root is `root` (RFC 9162 section 2.1.3.2). `tree_size` only sets the
/// shape of the path; it is the checkpoint that binds it to `root`.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= tree_size {
        return Err(ProofError::IndexOutOfRange { index, size: tree_size });
    }
    let wrong_length = || length_error(proof.len(), inclusion_path_len(index, tree_size));
    let (mut fn_, mut sn, mut r) = (index, tree_size - 1, *leaf_hash);
    for p in proof {
        if sn == 0 {
            return Err(wrong_length());
        }
        r = if climb(&mut fn_, &mut sn) { node_hash(p, &r) } else { node_hash(&r, p) };
    }
    if sn != 0 {
        return Err(wrong_length());
    }
    if r != *root {
        return Err(ProofError::RootMismatch { computed: r, expected: *root });
    }
    Ok(())
}

/// Checks that the tree of `new_size` leaves with root `new_root` extends the
/// tree of `old_size` leaves with root `old_root` (RFC 9162 section 2.1.4.2).
/// Any tree extends the empty one, but only with an empty proof and the empty
/// tree's root.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::OldSizeAboveNew { old_size, new_size });
    }
    if old_size == 0 {
        return verify_from_empty(new_size, old_root, new_root, proof);
    }
    if old_size == new_size {
        return verify_same_size(old_size, old_root, new_root, proof);
    }
    let expected = consistency_path_len(old_size, new_size);
    if proof.is_empty() {
        return Err(ProofError::ProofTooShort { len: 0, expected });
    }
    let (fr, sr) =
        consistency_roots(old_size, new_size, old_root, proof).ok_or_else(|| length_error(proof.len(), expected))?;
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch { computed: fr, expected: *old_root });
    }
    if sr != *new_root {
        return Err(ProofError::NewRootMismatch { computed: sr, expected: *new_root });
    }
    Ok(())
}

fn verify_from_empty(new_size: u64, old_root: &Hash, new_root: &Hash, proof: &[Hash]) -> Result<(), ProofError> {
    if !proof.is_empty() {
        return Err(ProofError::NonEmptyProofFromEmptyTree { len: proof.len() });
    }
    if *old_root != EMPTY_ROOT {
        return Err(ProofError::OldRootMismatch { computed: EMPTY_ROOT, expected: *old_root });
    }
    if new_size == 0 && *new_root != EMPTY_ROOT {
        return Err(ProofError::NewRootMismatch { computed: EMPTY_ROOT, expected: *new_root });
    }
    Ok(())
}

fn verify_same_size(size: u64, old_root: &Hash, new_root: &Hash, proof: &[Hash]) -> Result<(), ProofError> {
    if !proof.is_empty() {
        return Err(ProofError::NonEmptyProofForEqualSizes { size, len: proof.len() });
    }
    if old_root != new_root {
        return Err(ProofError::RootsDiffer { size, old_root: *old_root, new_root: *new_root });
    }
    Ok(())
}

/// Steps 2-7 of RFC 9162 section 2.1.4.2 for 0 < old < new and a non-empty
/// proof: the old and the new root the proof leads to (`fr`, `sr`), or `None`
/// when its length does not fit the sizes.
fn consistency_roots(old_size: u64, new_size: u64, old_root: &Hash, proof: &[Hash]) -> Option<(Hash, Hash)> {
    // A power-of-two old tree is one complete subtree: its root, which the
    // verifier holds, starts the path instead of a proof hash.
    let (seed, rest) = if old_size.is_power_of_two() { (old_root, proof) } else { (&proof[0], &proof[1..]) };
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*seed, *seed);
    for c in rest {
        if sn == 0 {
            return None;
        }
        if climb(&mut fn_, &mut sn) {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
        } else {
            sr = node_hash(&sr, c);
        }
    }
    (sn == 0).then_some((fr, sr))
}

/// One level of the RFC 9162 walk (steps b-d of both algorithms): returns
/// whether the next proof hash is the left sibling, then moves `fn_` (the node)
/// and `sn` (the last node of its level) up, past the levels where the node is
/// the last one and has no sibling.
fn climb(fn_: &mut u64, sn: &mut u64) -> bool {
    let left = *fn_ & 1 == 1 || *fn_ == *sn;
    if left {
        while *fn_ & 1 == 0 && *fn_ != 0 {
            *fn_ >>= 1;
            *sn >>= 1;
        }
    }
    *fn_ >>= 1;
    *sn >>= 1;
    left
}

/// The length of PATH(index, D[size]): one hash per level below the point where
/// the paths to `index` and to the last leaf part, plus one per left subtree
/// above it. Only for error messages: the walk itself decides.
fn inclusion_path_len(index: u64, size: u64) -> usize {
    let inner = u64::BITS - (index ^ (size - 1)).leading_zeros();
    inner as usize + index.checked_shr(inner).unwrap_or(0).count_ones() as usize
}

/// The length of PROOF(old, D[new]) for 0 < old < new: the path from the old
/// tree's last complete subtree up to the new root, plus that subtree's root
/// unless it is the whole old tree.
fn consistency_path_len(old_size: u64, new_size: u64) -> usize {
    let above = inclusion_path_len(old_size - 1, new_size) - old_size.trailing_zeros() as usize;
    above + usize::from(!old_size.is_power_of_two())
}

fn length_error(len: usize, expected: usize) -> ProofError {
    if len < expected {
        ProofError::ProofTooShort { len, expected }
    } else {
        ProofError::ProofTooLong { len, expected }
    }
}

#[cfg(test)]
mod tests;
