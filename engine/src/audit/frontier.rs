//! The right edge of a shard's Merkle tree: the newest complete subtree root at
//! each level. Appending a leaf reads only these (its left siblings), so the store
//! extends the tree with each commit in O(log n) hashes and no reads.

use super::merkle::{leaf_hash, node_hash, Hash};

/// A node to store: (level, index, hash), the root of leaves
/// [index * 2^level, (index + 1) * 2^level).
pub type Node = (u8, u64, Hash);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// `newest[level]`: node (level, (size >> level) - 1), for the levels that have one.
    newest: Vec<Hash>,
}

impl Frontier {
    /// The frontier of a tree of `size` leaves, read with `node`; `Ok(None)` when
    /// a node is missing (a tree never built: rebuild it from the records).
    pub fn load<E>(size: u64, node: impl Fn(u8, u64) -> Result<Option<Hash>, E>) -> Result<Option<Frontier>, E> {
        let mut newest = Vec::new();
        for level in 0..levels(size) {
            match node(level, (size >> level) - 1)? {
                Some(hash) => newest.push(hash),
                None => return Ok(None),
            }
        }
        Ok(Some(Frontier { size, newest }))
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends the leaf of a record whose chain hash is `record_hash`; pushes the
    /// nodes it completes (the leaf first) to `out`.
    pub fn append(&mut self, record_hash: &Hash, out: &mut Vec<Node>) {
        let (mut level, mut index, mut hash) = (0u8, self.size, leaf_hash(record_hash));
        loop {
            out.push((level, index, hash));
            // An odd index is a right child, completing its parent with the left
            // sibling: the newest node of the level until now.
            let left = (index & 1 == 1).then(|| self.newest[usize::from(level)]);
            self.set(level, hash);
            let Some(left) = left else { break };
            hash = node_hash(&left, &hash);
            level += 1;
            index >>= 1;
        }
        self.size += 1;
    }

    fn set(&mut self, level: u8, hash: Hash) {
        let level = usize::from(level);
        if self.newest.len() <= level {
            self.newest.resize(level + 1, [0; 32]);
        }
        self.newest[level] = hash;
    }
}

/// Levels with at least one complete node in a tree of `size` leaves.
fn levels(size: u64) -> u8 {
    (u64::BITS - size.leading_zeros()) as u8
}

#[cfg(test)]
mod tests {
    use super::super::merkle::{MemoryNodes, MerkleTree, NodeStore};
    use super::*;

    fn record_hash(i: u64) -> Hash {
        let mut h = [0u8; 32];
        h[..8].copy_from_slice(&i.to_be_bytes());
        h
    }

    #[test]
    fn appends_write_the_nodes_the_tree_writes_and_reload_anywhere() {
        let mut tree = MerkleTree::open(MemoryNodes::default(), 0);
        let mut written = MemoryNodes::default();
        let mut frontier = Frontier::default();
        for i in 0..300u64 {
            tree.append(leaf_hash(&record_hash(i))).unwrap();
            let mut out = Vec::new();
            frontier.append(&record_hash(i), &mut out);
            for (level, index, hash) in out {
                written.put_node(level, index, hash).unwrap();
            }
            assert_eq!(frontier.size(), i + 1);
            // Every node the tree holds, the frontier wrote, with the same hash.
            let reloaded = Frontier::load(i + 1, |l, x| written.node(l, x)).unwrap().expect("all nodes written");
            assert_eq!(reloaded, frontier, "size {}", i + 1);
            assert_eq!(tree.root(i + 1).unwrap(), MerkleTree::open(written.clone(), i + 1).root(i + 1).unwrap());
        }
        assert_eq!(written.len(), tree.store().len());
    }

    #[test]
    fn a_missing_node_means_rebuild() {
        let empty = MemoryNodes::default();
        assert_eq!(Frontier::load(0, |l, x| empty.node(l, x)).unwrap(), Some(Frontier::default()));
        assert_eq!(Frontier::load(5, |l, x| empty.node(l, x)).unwrap(), None);
    }
}
