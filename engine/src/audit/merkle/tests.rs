//! The tree against a from-scratch reference, the published test vectors and
//! strict rejection of forged, truncated and resized proofs.

use std::cell::Cell;
use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::test_runner::RngSeed;

use super::*;
use ProofError as E;

mod vectors;

type Tree = MerkleTree<MemoryNodes>;

fn leaves(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

fn tree_of(leaves: &[Hash]) -> Tree {
    let mut tree = MerkleTree::open(MemoryNodes::default(), 0);
    for leaf in leaves {
        tree.append(*leaf).unwrap();
    }
    tree
}

fn roots_of(leaves: &[Hash]) -> Vec<Hash> {
    (0..=leaves.len()).map(|n| root_of(&leaves[..n])).collect()
}

/// PATH(m, D[a:b]) of RFC 6962 section 2.1.1, written as the recursion reads,
/// as the leaf ranges whose roots make the proof, leaf to root.
fn ref_path(m: u64, a: u64, b: u64) -> Vec<(u64, u64)> {
    if b - a == 1 {
        return Vec::new();
    }
    let k = split_point(b - a);
    let (mut path, sibling) =
        if m < k { (ref_path(m, a, a + k), (a + k, b)) } else { (ref_path(m - k, a + k, b), (a, a + k)) };
    path.push(sibling);
    path
}

/// SUBPROOF(m, D[a:b], whole) of RFC 6962 section 2.1.2, as leaf ranges.
fn ref_subproof(m: u64, a: u64, b: u64, whole: bool) -> Vec<(u64, u64)> {
    if m == b - a {
        return if whole { Vec::new() } else { vec![(a, b)] };
    }
    let k = split_point(b - a);
    let (mut proof, sibling) = if m <= k {
        (ref_subproof(m, a, a + k, whole), (a + k, b))
    } else {
        (ref_subproof(m - k, a + k, b, false), (a, a + k))
    };
    proof.push(sibling);
    proof
}

fn hashes(leaves: &[Hash], ranges: &[(u64, u64)]) -> Vec<Hash> {
    ranges.iter().map(|&(a, b)| root_of(&leaves[a as usize..b as usize])).collect()
}

fn flipped(proof: &[Hash], at: usize) -> Vec<Hash> {
    let mut forged = proof.to_vec();
    forged[at][at % 32] ^= 0x08;
    forged
}

/// The verdict a proof of `len` hashes must get where `expected` are needed:
/// a length error naming both, or else (sizes that fit, hashes that do not) a
/// root mismatch of one of `roots`.
fn assert_rejected(err: ProofError, len: usize, expected: usize, roots: fn(&ProofError) -> bool) {
    match len.cmp(&expected) {
        std::cmp::Ordering::Less => assert_eq!(err, E::ProofTooShort { len, expected }),
        std::cmp::Ordering::Greater => assert_eq!(err, E::ProofTooLong { len, expected }),
        std::cmp::Ordering::Equal => assert!(roots(&err), "unexpected {err:?}"),
    }
}

fn is_root_mismatch(err: &ProofError) -> bool {
    matches!(err, E::RootMismatch { .. })
}

fn is_old_or_new_root_mismatch(err: &ProofError) -> bool {
    matches!(err, E::OldRootMismatch { .. } | E::NewRootMismatch { .. })
}

/// Every index for sizes up to 64 and for sizes around powers of two.
fn inclusion_cases() -> Vec<(u64, u64)> {
    let sizes = (1..=64).chain([100, 255, 256, 257, 300]);
    sizes.flat_map(|size| (0..size).map(move |index| (index, size))).collect()
}

/// Every pair up to 64, every old size for sizes around powers of two, and a
/// stride through the rest up to 300.
fn consistency_cases() -> BTreeSet<(u64, u64)> {
    let mut cases: BTreeSet<_> = (0..=64).flat_map(|new| (0..=new).map(move |old| (old, new))).collect();
    for new in [100, 127, 128, 129, 255, 256, 257, 300] {
        cases.extend((0..=new).map(|old| (old, new)));
    }
    for new in 65..=300 {
        cases.extend((0..=new).step_by(7).chain([new - 1, new]).map(|old| (old, new)));
    }
    cases
}

#[test]
fn split_point_is_the_largest_power_of_two_below_n() {
    assert_eq!([2, 3, 4, 5, 8, 9].map(split_point), [1, 2, 2, 4, 4, 8]);
    for n in 2..=4096u64 {
        let k = split_point(n);
        assert!(k.is_power_of_two() && k < n && 2 * k >= n, "n {n} k {k}");
    }
}

#[test]
fn incremental_roots_match_the_reference_at_every_size() {
    let leaves = leaves(300);
    let roots = roots_of(&leaves);
    let mut tree = MerkleTree::open(MemoryNodes::default(), 0);
    assert_eq!(tree.root(0).unwrap(), EMPTY_ROOT);
    for (i, leaf) in leaves.iter().enumerate() {
        let n = i as u64 + 1;
        assert_eq!(tree.append(*leaf).unwrap(), n);
        assert_eq!(tree.root(n).unwrap(), roots[i + 1], "size {n}");
        // One node per complete subtree: n leaves, n/2 pairs, ... = 2n - popcount(n).
        assert_eq!(tree.store().len() as u64, 2 * n - u64::from(n.count_ones()), "size {n}");
    }
    // Past roots stay provable from the grown tree.
    for (n, root) in roots.iter().enumerate() {
        assert_eq!(tree.root(n as u64).unwrap(), *root, "past size {n}");
    }
    // A reopened tree answers the same.
    let reopened = MerkleTree::open(tree.store().clone(), 300);
    assert_eq!(reopened.root(300).unwrap(), roots[300]);
}

#[test]
fn inclusion_proofs_match_the_rfc_path_and_verify() {
    let leaves = leaves(300);
    let (tree, roots) = (tree_of(&leaves), roots_of(&leaves));
    for (index, size) in inclusion_cases() {
        let proof = tree.inclusion_proof(index, size).unwrap();
        assert_eq!(proof, hashes(&leaves, &ref_path(index, 0, size)), "index {index} size {size}");
        assert_eq!(proof.len(), inclusion_path_len(index, size));
        let leaf = &leaves[index as usize];
        assert_eq!(verify_inclusion(leaf, index, size, &proof, &roots[size as usize]), Ok(()));
    }
}

#[test]
fn consistency_proofs_match_the_rfc_proof_and_verify() {
    let leaves = leaves(300);
    let (tree, roots) = (tree_of(&leaves), roots_of(&leaves));
    for (old, new) in consistency_cases() {
        let proof = tree.consistency_proof(old, new).unwrap();
        if 0 < old && old < new {
            assert_eq!(proof, hashes(&leaves, &ref_subproof(old, 0, new, true)), "{old} -> {new}");
            assert_eq!(proof.len(), consistency_path_len(old, new));
        } else {
            assert!(proof.is_empty());
        }
        let verdict = verify_consistency(old, new, &roots[old as usize], &roots[new as usize], &proof);
        assert_eq!(verdict, Ok(()), "{old} -> {new}");
    }
}

#[test]
fn inclusion_rejects_a_forged_hash_anywhere_in_the_proof() {
    let leaves = leaves(64);
    let (tree, roots) = (tree_of(&leaves), roots_of(&leaves));
    for (index, size) in inclusion_cases().into_iter().filter(|&(_, size)| size <= 64) {
        let proof = tree.inclusion_proof(index, size).unwrap();
        let (leaf, root) = (&leaves[index as usize], &roots[size as usize]);
        for at in 0..proof.len() {
            let err = verify_inclusion(leaf, index, size, &flipped(&proof, at), root).unwrap_err();
            assert!(matches!(err, E::RootMismatch { expected, .. } if expected == *root), "{err:?}");
        }
        // A forged leaf too.
        let err = verify_inclusion(&flipped(&[*leaf], 0)[0], index, size, &proof, root).unwrap_err();
        assert!(is_root_mismatch(&err), "{err:?}");
    }
}

#[test]
fn inclusion_rejects_truncated_and_padded_proofs() {
    let leaves = leaves(64);
    let (tree, roots) = (tree_of(&leaves), roots_of(&leaves));
    for (index, size) in inclusion_cases().into_iter().filter(|&(_, size)| size <= 64) {
        let proof = tree.inclusion_proof(index, size).unwrap();
        let (leaf, root, len) = (&leaves[index as usize], &roots[size as usize], proof.len());
        if len > 0 {
            let err = verify_inclusion(leaf, index, size, &proof[..len - 1], root).unwrap_err();
            assert_eq!(err, E::ProofTooShort { len: len - 1, expected: len });
        }
        for padded in [[proof.clone(), vec![*root]].concat(), [vec![[0; 32]], proof.clone()].concat()] {
            let err = verify_inclusion(leaf, index, size, &padded, root).unwrap_err();
            assert_eq!(err, E::ProofTooLong { len: len + 1, expected: len });
        }
    }
}

#[test]
fn inclusion_rejects_a_neighbouring_tree_size_and_its_root() {
    let leaves = leaves(65);
    let (tree, roots) = (tree_of(&leaves), roots_of(&leaves));
    for (index, size) in inclusion_cases().into_iter().filter(|&(_, size)| size <= 64) {
        let proof = tree.inclusion_proof(index, size).unwrap();
        let leaf = &leaves[index as usize];
        for other in [size - 1, size + 1] {
            let err = verify_inclusion(leaf, index, other, &proof, &roots[other as usize]).unwrap_err();
            if index >= other {
                assert_eq!(err, E::IndexOutOfRange { index, size: other });
            } else {
                assert_rejected(err, proof.len(), inclusion_path_len(index, other), is_root_mismatch);
            }
        }
    }
}

#[test]
fn inclusion_rejects_any_other_index() {
    let leaves = leaves(33);
    let (tree, roots) = (tree_of(&leaves), roots_of(&leaves));
    for (index, size) in inclusion_cases().into_iter().filter(|&(_, size)| size <= 32) {
        let proof = tree.inclusion_proof(index, size).unwrap();
        let (leaf, root) = (&leaves[index as usize], &roots[size as usize]);
        for other in (0..=size).filter(|&other| other != index) {
            let err = verify_inclusion(leaf, other, size, &proof, root).unwrap_err();
            if other == size {
                assert_eq!(err, E::IndexOutOfRange { index: size, size });
            } else {
                assert_rejected(err, proof.len(), inclusion_path_len(other, size), is_root_mismatch);
            }
        }
    }
}

#[test]
fn inclusion_in_the_empty_tree_is_out_of_range() {
    let err = verify_inclusion(&EMPTY_ROOT, 0, 0, &[], &EMPTY_ROOT).unwrap_err();
    assert_eq!(err, E::IndexOutOfRange { index: 0, size: 0 });
    assert_eq!(err.to_string(), "index 0 is not below tree size 0");
    let err = verify_inclusion(&EMPTY_ROOT, 7, 5, &[], &EMPTY_ROOT).unwrap_err();
    assert_eq!(err.to_string(), "index 7 is not below tree size 5");
}

#[test]
fn consistency_rejects_a_forged_hash_and_names_the_root_it_breaks() {
    let leaves = leaves(64);
    let (tree, roots) = (tree_of(&leaves), roots_of(&leaves));
    for (old, new) in consistency_cases().into_iter().filter(|&(old, new)| 0 < old && old < new && new <= 64) {
        let proof = tree.consistency_proof(old, new).unwrap();
        let (old_root, new_root) = (&roots[old as usize], &roots[new as usize]);
        // A hash inside the old tree is folded into both roots and fails the
        // old one first; a hash of the appended leaves only fails the new one.
        for (at, (_, end)) in ref_subproof(old, 0, new, true).into_iter().enumerate() {
            let err = verify_consistency(old, new, old_root, new_root, &flipped(&proof, at)).unwrap_err();
            if end <= old {
                assert!(matches!(err, E::OldRootMismatch { expected, .. } if expected == *old_root), "{err:?}");
            } else {
                assert!(matches!(err, E::NewRootMismatch { expected, .. } if expected == *new_root), "{err:?}");
            }
        }
    }
}

#[test]
fn consistency_rejects_truncated_padded_and_empty_proofs() {
    let leaves = leaves(64);
    let (tree, roots) = (tree_of(&leaves), roots_of(&leaves));
    for (old, new) in consistency_cases().into_iter().filter(|&(old, new)| 0 < old && old < new && new <= 64) {
        let proof = tree.consistency_proof(old, new).unwrap();
        let (old_root, new_root, len) = (&roots[old as usize], &roots[new as usize], proof.len());
        let verify = |proof: &[Hash]| verify_consistency(old, new, old_root, new_root, proof).unwrap_err();
        assert_eq!(verify(&proof[..len - 1]), E::ProofTooShort { len: len - 1, expected: len });
        assert_eq!(verify(&[]), E::ProofTooShort { len: 0, expected: len });
        for padded in [[proof.clone(), vec![*new_root]].concat(), [vec![*old_root], proof.clone()].concat()] {
            assert_eq!(verify(&padded), E::ProofTooLong { len: len + 1, expected: len });
        }
    }
}

#[test]
fn consistency_rejects_neighbouring_sizes_with_their_roots() {
    let leaves = leaves(65);
    let (tree, roots) = (tree_of(&leaves), roots_of(&leaves));
    for (old, new) in consistency_cases().into_iter().filter(|&(old, new)| 0 < old && old < new && new <= 64) {
        let proof = tree.consistency_proof(old, new).unwrap();
        let others = [(old - 1, new), (old + 1, new), (old, new - 1), (old, new + 1)];
        for (o, n) in others.into_iter().filter(|&(o, n)| 0 < o && o < n) {
            let err = verify_consistency(o, n, &roots[o as usize], &roots[n as usize], &proof).unwrap_err();
            assert_rejected(err, proof.len(), consistency_path_len(o, n), is_old_or_new_root_mismatch);
        }
    }
}

#[test]
fn consistency_rejects_swapped_sizes_and_swapped_roots() {
    let leaves = leaves(8);
    let (tree, roots) = (tree_of(&leaves), roots_of(&leaves));
    let proof = tree.consistency_proof(6, 8).unwrap();
    let err = verify_consistency(8, 6, &roots[8], &roots[6], &proof).unwrap_err();
    assert_eq!(err, E::OldSizeAboveNew { old_size: 8, new_size: 6 });
    assert_eq!(err.to_string(), "old tree size 8 is above new tree size 6");
    // 6 is not a power of two: the proof rebuilds the old root and fails there.
    let err = verify_consistency(6, 8, &roots[8], &roots[6], &proof).unwrap_err();
    assert_eq!(err, E::OldRootMismatch { computed: roots[6], expected: roots[8] });
    // 4 is: the old root seeds the walk, so a wrong one surfaces as the new root.
    let proof = tree.consistency_proof(4, 8).unwrap();
    let err = verify_consistency(4, 8, &roots[3], &roots[8], &proof).unwrap_err();
    assert!(matches!(err, E::NewRootMismatch { expected, .. } if expected == roots[8]), "{err:?}");
}

#[test]
fn consistency_between_equal_sizes_needs_an_empty_proof_and_one_root() {
    let roots = roots_of(&leaves(5));
    assert_eq!(verify_consistency(5, 5, &roots[5], &roots[5], &[]), Ok(()));
    let err = verify_consistency(5, 5, &roots[5], &roots[5], &[roots[5]]).unwrap_err();
    assert_eq!(err, E::NonEmptyProofForEqualSizes { size: 5, len: 1 });
    let err = verify_consistency(5, 5, &roots[4], &roots[5], &[]).unwrap_err();
    assert_eq!(err, E::RootsDiffer { size: 5, old_root: roots[4], new_root: roots[5] });
    assert!(err.to_string().starts_with("two trees of size 5 have different roots: "), "{err}");
}

#[test]
fn consistency_from_the_empty_tree_needs_an_empty_proof_and_the_empty_root() {
    let roots = roots_of(&leaves(5));
    assert_eq!(verify_consistency(0, 5, &EMPTY_ROOT, &roots[5], &[]), Ok(()));
    assert_eq!(verify_consistency(0, 0, &EMPTY_ROOT, &EMPTY_ROOT, &[]), Ok(()));
    let err = verify_consistency(0, 5, &EMPTY_ROOT, &roots[5], &[roots[5]]).unwrap_err();
    assert_eq!(err, E::NonEmptyProofFromEmptyTree { len: 1 });
    let err = verify_consistency(0, 5, &roots[1], &roots[5], &[]).unwrap_err();
    assert_eq!(err, E::OldRootMismatch { computed: EMPTY_ROOT, expected: roots[1] });
    let err = verify_consistency(0, 0, &EMPTY_ROOT, &roots[1], &[]).unwrap_err();
    assert_eq!(err, E::NewRootMismatch { computed: EMPTY_ROOT, expected: roots[1] });
}

#[test]
fn tree_rejects_sizes_and_indices_it_does_not_have() {
    let tree = tree_of(&leaves(5));
    assert!(matches!(tree.root(6), Err(TreeError::SizeBeyondTree { size: 6, tree_size: 5 })));
    let err = tree.inclusion_proof(7, 5).unwrap_err();
    assert!(matches!(err, TreeError::IndexOutOfRange { index: 7, size: 5 }));
    assert_eq!(err.to_string(), "index 7 is not below tree size 5");
    assert!(matches!(tree.inclusion_proof(0, 6), Err(TreeError::SizeBeyondTree { size: 6, tree_size: 5 })));
    assert!(matches!(tree.consistency_proof(4, 3), Err(TreeError::OldSizeAboveNew { old_size: 4, new_size: 3 })));
    assert!(matches!(tree.consistency_proof(3, 6), Err(TreeError::SizeBeyondTree { size: 6, tree_size: 5 })));
}

#[test]
fn a_tree_opened_with_more_leaves_than_stored_names_the_missing_node() {
    let tree = MerkleTree::open(MemoryNodes::default(), 3);
    assert!(matches!(tree.root(3), Err(TreeError::MissingNode { level: 0, index: 2 })));
    let mut tree = MerkleTree::open(MemoryNodes::default(), 1);
    assert!(matches!(tree.append([7; 32]), Err(TreeError::MissingNode { level: 0, index: 0 })));
    assert_eq!(tree.size(), 1, "a failed append leaves the size alone");
}

/// A store that counts reads and writes, and can refuse writes.
#[derive(Default)]
struct Counting {
    nodes: MemoryNodes,
    reads: Cell<u64>,
    writes: u64,
    full: bool,
}

impl NodeStore for Counting {
    type Error = String;

    fn node(&self, level: u8, index: u64) -> Result<Option<Hash>, String> {
        self.reads.set(self.reads.get() + 1);
        Ok(self.nodes.node(level, index).unwrap())
    }

    fn put_node(&mut self, level: u8, index: u64, hash: Hash) -> Result<(), String> {
        if self.full {
            return Err("disk full".to_owned());
        }
        self.writes += 1;
        self.nodes.put_node(level, index, hash).map_err(|e| match e {})
    }
}

#[test]
fn a_failed_store_write_is_reported_and_leaves_the_size_alone() {
    let mut tree = MerkleTree::open(Counting { full: true, ..Counting::default() }, 0);
    let err = tree.append([1; 32]).unwrap_err();
    assert!(matches!(&err, TreeError::Store(message) if message == "disk full"));
    assert_eq!(err.to_string(), "node store failed: disk full");
    assert_eq!(tree.size(), 0);
}

#[test]
fn appends_write_log_n_nodes_and_proofs_read_log_squared() {
    let mut tree = MerkleTree::open(Counting::default(), 0);
    let n = 1025u64;
    for (i, leaf) in leaves(n).into_iter().enumerate() {
        let before = tree.store().writes;
        tree.append(leaf).unwrap();
        // The leaf, plus one parent per trailing one bit of its index.
        assert_eq!(tree.store().writes - before, 1 + u64::from((i as u64).trailing_ones()));
    }
    let height = u64::from(u64::BITS - (n - 1).leading_zeros()); // 11 levels above the leaves
    let reads = |tree: &MerkleTree<Counting>, f: &dyn Fn(&MerkleTree<Counting>)| {
        tree.store().reads.set(0);
        f(tree);
        tree.store().reads.get()
    };
    for size in [1, 2, 3, 511, 512, 513, 1000, 1024, 1025] {
        let root_reads = reads(&tree, &|t| assert!(t.root(size).is_ok()));
        assert_eq!(root_reads, u64::from(size.count_ones()), "root({size})");
        for i in 0..size {
            let proof_reads = reads(&tree, &|t| assert!(t.inclusion_proof(i, size).is_ok()));
            assert!(proof_reads <= height * height, "inclusion({i}, {size}) read {proof_reads}");
            let proof_reads = reads(&tree, &|t| assert!(t.consistency_proof(i, size).is_ok()));
            assert!(proof_reads <= height * height, "consistency({i}, {size}) read {proof_reads}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 200,
        rng_seed: RngSeed::Fixed(6962),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Any tree up to 2,000 leaves: the appended tree's roots and proofs for
    /// any past sizes agree with the recursive definition and verify.
    #[test]
    fn appended_trees_prove_what_the_definition_says(
        salt in any::<u64>(),
        total in 1u64..=2000,
        picks in (any::<u64>(), any::<u64>(), any::<u64>()),
    ) {
        let leaves: Vec<Hash> =
            (0..total).map(|i| leaf_hash(&[salt.to_be_bytes(), i.to_be_bytes()].concat())).collect();
        let tree = tree_of(&leaves);
        let new = 1 + picks.0 % total;
        let (old, index) = (picks.1 % (new + 1), picks.2 % new);
        let (old_root, new_root) = (root_of(&leaves[..old as usize]), root_of(&leaves[..new as usize]));
        prop_assert_eq!(tree.root(new).unwrap(), new_root);
        prop_assert_eq!(tree.root(old).unwrap(), old_root);
        let path = tree.inclusion_proof(index, new).unwrap();
        prop_assert_eq!(verify_inclusion(&leaves[index as usize], index, new, &path, &new_root), Ok(()));
        let proof = tree.consistency_proof(old, new).unwrap();
        prop_assert_eq!(verify_consistency(old, new, &old_root, &new_root, &proof), Ok(()));
        if 0 < old && old < new {
            prop_assert_eq!(proof.len(), consistency_path_len(old, new));
            let err = verify_consistency(old, new, &old_root, &new_root, &proof[1..]).unwrap_err();
            prop_assert_eq!(err, E::ProofTooShort { len: proof.len() - 1, expected: proof.len() });
        }
    }
}
