//! The Merkle tree `verify` recomputes from the records, beside the stored one.

use std::convert::Infallible;

use crate::audit::{node_hash, Frontier, Hash, Node, EMPTY_ROOT};
use crate::store::{EventStore, StoreError};

/// The tree recomputed from the records: a `Frontier`, extended as the store
/// extends its tree, and a copy of its right edge to fold the root from.
#[derive(Default)]
pub(super) struct Recomputed {
    frontier: Frontier,
    /// The newest node of each level (what the frontier keeps).
    newest: Vec<Hash>,
    /// The nodes the last append completed.
    completed: Vec<Node>,
}

impl Recomputed {
    /// The tree of `size` leaves from the stored nodes of its right edge; the
    /// missing node's (level, index) when one is.
    pub(super) fn load<S: EventStore + ?Sized>(
        store: &S,
        shard: u32,
        size: u64,
    ) -> Result<Result<Recomputed, (u8, u64)>, StoreError> {
        let mut newest = Vec::new();
        for level in 0..(u64::BITS - size.leading_zeros()) as u8 {
            let index = (size >> level) - 1;
            match store.merkle_node(shard, level, index)? {
                Some(hash) => newest.push(hash),
                None => return Ok(Err((level, index))),
            }
        }
        let frontier = Frontier::load(size, |level, _| Ok::<_, Infallible>(newest.get(usize::from(level)).copied()));
        let frontier = frontier.unwrap_or_else(|never| match never {}).expect("every level was read");
        Ok(Ok(Recomputed { frontier, newest, completed: Vec::new() }))
    }

    pub(super) fn size(&self) -> u64 {
        self.frontier.size()
    }

    pub(super) fn append(&mut self, record_hash: &Hash) {
        self.completed.clear();
        self.frontier.append(record_hash, &mut self.completed);
        for &(level, _, hash) in &self.completed {
            let level = usize::from(level);
            if self.newest.len() <= level {
                self.newest.resize(level + 1, [0; 32]);
            }
            self.newest[level] = hash;
        }
    }

    pub(super) fn completed(&self) -> &[Node] {
        &self.completed
    }

    /// The tree hash: the complete subtrees the size's bits name, folded right to
    /// left (RFC 6962's split puts the largest on the left).
    pub(super) fn root(&self) -> Hash {
        let size = self.size();
        let mut root: Option<Hash> = None;
        for (level, node) in self.newest.iter().enumerate() {
            if size >> level & 1 == 1 {
                root = Some(root.map_or(*node, |right| node_hash(node, &right)));
            }
        }
        root.unwrap_or(EMPTY_ROOT)
    }
}
