//! Signed checkpoints. A checkpoint binds a shard's Merkle tree at one size (these
//! events) to a digest of the shard's projection state after them (this state),
//! signed with the engine's Ed25519 key. An auditor holding only the public key
//! checks the signature, then inclusion and consistency proofs against the root.
//!
//! The signed bytes are a short text, one field per line, so anyone can rebuild
//! them from the checkpoint's JSON without riskstream:
//!
//! ```text
//! riskstream checkpoint v1
//! shard 0
//! tree_size 1234
//! root <64 hex>
//! state_digest <64 hex>
//! ts <event time of the last record, RFC 3339>
//! ```

use std::path::Path;

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use riskstream_projections::{Change, Table};
use riskstream_schemas::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{hex, ProjectionStore, StoreError};

/// Everything a checkpoint says, and its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub shard: u32,
    pub tree_size: u64,
    /// The Merkle tree hash of the first `tree_size` records, hex.
    pub root: String,
    /// SHA-256 over the shard's projection rows after record `tree_size`, hex
    /// (`state_digest`).
    pub state_digest: String,
    /// Event time of record `tree_size`.
    pub ts: Timestamp,
    /// The signer's public key, hex (32 bytes).
    pub public_key: String,
    /// Ed25519 signature of `message()`, hex (64 bytes).
    pub signature: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error("{what} is not valid hex of {bytes} bytes: `{value}`")]
    BadHex { what: &'static str, bytes: usize, value: String },
    #[error("`{0}` is not an Ed25519 public key (32 bytes that encode a curve point)")]
    NotAKey(String),
    #[error("the checkpoint is signed by key {signed_by}, not by the expected key {expected}")]
    WrongKey { signed_by: String, expected: String },
    #[error("the signature does not verify: the checkpoint was altered or signed by another key")]
    BadSignature,
    #[error("cannot read or write the signing key {path}: {reason}")]
    KeyFile { path: String, reason: String },
}

impl Checkpoint {
    /// The bytes the signature covers (see the module doc).
    pub fn message(&self) -> Vec<u8> {
        format!(
            "riskstream checkpoint v1\nshard {}\ntree_size {}\nroot {}\nstate_digest {}\nts {}\n",
            self.shard,
            self.tree_size,
            self.root,
            self.state_digest,
            self.ts.to_rfc3339()
        )
        .into_bytes()
    }

    /// Checks the signature with `expected`, the public key the auditor trusts.
    pub fn verify(&self, expected: &VerifyingKey) -> Result<(), CheckpointError> {
        let expected_hex = hex(expected.as_bytes());
        if self.public_key != expected_hex {
            return Err(CheckpointError::WrongKey { signed_by: self.public_key.clone(), expected: expected_hex });
        }
        let signature = Signature::from_bytes(&unhex::<64>("signature", &self.signature)?);
        expected.verify(&self.message(), &signature).map_err(|_| CheckpointError::BadSignature)
    }

    /// The root as bytes.
    pub fn root_hash(&self) -> Result<[u8; 32], CheckpointError> {
        unhex::<32>("root", &self.root)
    }
}

/// Parses `N` bytes of hex, naming `what` when it is not that.
pub fn unhex<const N: usize>(what: &'static str, value: &str) -> Result<[u8; N], CheckpointError> {
    let bad = || CheckpointError::BadHex { what, bytes: N, value: value.chars().take(140).collect() };
    if value.len() != 2 * N || !value.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&value[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// A public key from its hex form.
pub fn public_key(hex_key: &str) -> Result<VerifyingKey, CheckpointError> {
    let bytes = unhex::<32>("public key", hex_key.trim())?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| CheckpointError::NotAKey(hex_key.trim().to_string()))
}

/// The engine's signing key.
pub struct CheckpointSigner {
    key: SigningKey,
}

impl CheckpointSigner {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        CheckpointSigner { key: SigningKey::from_bytes(&seed) }
    }

    /// Reads the key (hex of its 32-byte seed) from `path`, or generates one there
    /// (readable by its owner only) when the file does not exist.
    pub fn load_or_generate(path: &Path) -> Result<Self, CheckpointError> {
        let fail = |reason: String| CheckpointError::KeyFile { path: path.display().to_string(), reason };
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Self::from_seed(unhex::<32>("signing key", text.trim())?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                use rand::RngCore;
                let mut seed = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut seed);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
                }
                write_private(path, &hex(&seed)).map_err(|e| fail(e.to_string()))?;
                tracing::info!(path = %path.display(), "generated a checkpoint signing key");
                Ok(Self::from_seed(seed))
            }
            Err(e) => Err(fail(e.to_string())),
        }
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    pub fn sign(
        &self,
        shard: u32,
        tree_size: u64,
        root: &[u8; 32],
        state_digest: &[u8; 32],
        ts: Timestamp,
    ) -> Checkpoint {
        let mut c = Checkpoint {
            shard,
            tree_size,
            root: hex(root),
            state_digest: hex(state_digest),
            ts,
            public_key: hex(self.public_key().as_bytes()),
            signature: String::new(),
        };
        c.signature = self.key.sign(&c.message()).to_bytes().iter().map(|b| format!("{b:02x}")).collect();
        c
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// Feeds one projection row of `shard` to a digest: shard, then table name, key and
/// value, each length-prefixed, so no two row sequences hash alike.
pub fn digest_row(h: &mut Sha256, shard: u32, row: &Change) {
    digest_row_parts(h, shard, row.table, &row.key, row.value.as_deref().unwrap_or_default());
}

/// `digest_row` of a row lent by a store scan.
pub fn digest_row_parts(h: &mut Sha256, shard: u32, table: Table, key: &str, value: &[u8]) {
    h.update(shard.to_be_bytes());
    for part in [table.name().as_bytes(), key.as_bytes(), value] {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part);
    }
}

/// The state digest of a shard from its stored rows (those committed with its
/// head), streamed: no copy of the state and no re-encoding of it.
pub fn stored_shard_digest<S: ProjectionStore + ?Sized>(store: &S, shard: u32) -> Result<[u8; 32], StoreError> {
    let mut h = Sha256::new();
    store.for_each_row(shard, &mut |table, key, value| {
        digest_row_parts(&mut h, shard, table, key, value);
        Ok(())
    })?;
    Ok(h.finalize().into())
}

/// SHA-256 over a shard's projection rows (in table then key order, as `facts()`
/// and the stores give them).
pub fn shard_digest<R: std::borrow::Borrow<Change>>(shard: u32, rows: impl IntoIterator<Item = R>) -> [u8; 32] {
    let mut h = Sha256::new();
    for row in rows {
        digest_row(&mut h, shard, row.borrow());
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed() -> (CheckpointSigner, Checkpoint) {
        let signer = CheckpointSigner::from_seed([7; 32]);
        let c = signer.sign(1, 42, &[3; 32], &[4; 32], Timestamp(1_700_000_000_000_000));
        (signer, c)
    }

    #[test]
    fn a_signed_checkpoint_verifies_with_its_key_only() {
        let (signer, c) = signed();
        assert_eq!(c.verify(&signer.public_key()), Ok(()));
        let other = CheckpointSigner::from_seed([8; 32]).public_key();
        assert!(matches!(c.verify(&other), Err(CheckpointError::WrongKey { .. })));
        // The same message under another key's name fails too.
        let relabelled = Checkpoint { public_key: hex(other.as_bytes()), ..c.clone() };
        assert_eq!(relabelled.verify(&other), Err(CheckpointError::BadSignature));
    }

    #[test]
    fn changing_any_signed_field_breaks_the_signature() {
        let (signer, c) = signed();
        let key = signer.public_key();
        let altered = [
            Checkpoint { shard: 2, ..c.clone() },
            Checkpoint { tree_size: 43, ..c.clone() },
            Checkpoint { root: hex(&[5; 32]), ..c.clone() },
            Checkpoint { state_digest: hex(&[5; 32]), ..c.clone() },
            Checkpoint { ts: Timestamp(c.ts.0 + 1), ..c.clone() },
        ];
        for a in altered {
            assert_eq!(a.verify(&key), Err(CheckpointError::BadSignature), "{a:?}");
        }
        let mut bad = c.clone();
        bad.signature.replace_range(0..2, if &c.signature[0..2] == "00" { "01" } else { "00" });
        assert_eq!(bad.verify(&key), Err(CheckpointError::BadSignature));
        bad.signature.truncate(10);
        assert!(matches!(bad.verify(&key), Err(CheckpointError::BadHex { what: "signature", .. })));
    }

    #[test]
    fn the_signed_message_is_the_documented_text() {
        let (_, c) = signed();
        let text = String::from_utf8(c.message()).unwrap();
        assert_eq!(
            text,
            format!(
                "riskstream checkpoint v1\nshard 1\ntree_size 42\nroot {}\nstate_digest {}\nts 2023-11-14T22:13:20Z\n",
                "03".repeat(32),
                "04".repeat(32)
            )
        );
    }

    #[test]
    fn keys_are_generated_once_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("checkpoint.key");
        let first = CheckpointSigner::load_or_generate(&path).unwrap().public_key();
        let again = CheckpointSigner::load_or_generate(&path).unwrap().public_key();
        assert_eq!(first, again);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(&path, "not hex").unwrap();
        assert!(matches!(CheckpointSigner::load_or_generate(&path), Err(CheckpointError::BadHex { .. })));
    }
}
