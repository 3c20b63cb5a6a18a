//! `riskstream audit`: what an auditor runs, holding only the engine's public key,
//! checkpoints and proofs (JSON as the API serves them), with no data dir: check a
//! checkpoint's signature, that a record is in a checkpointed log, that a later
//! checkpoint extends an earlier one. Exit status 0 when the check holds, 1 with
//! the reason when it does not, 2 when an input cannot be read.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

use super::CheckFailed;
use clap::{Args, Subcommand};
use ed25519_dalek::VerifyingKey;
use riskstream_engine::audit::{
    checkpoint::unhex, leaf_hash, public_key, verify_consistency, verify_inclusion, Checkpoint, CheckpointSigner, Hash,
};
use riskstream_engine::store::hex;
use serde::de::DeserializeOwned;
use serde::Deserialize;

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check a checkpoint's signature (GET /v1/audit/{shard}/checkpoints gives them).
    Checkpoint {
        #[command(flatten)]
        key: KeyArg,
        /// A checkpoint (JSON).
        checkpoint: PathBuf,
    },
    /// Check that a record is in the log a checkpoint signs: the inclusion proof
    /// (GET /v1/audit/{shard}/inclusion?seq=&tree_size=<the checkpoint's>) leads
    /// from the record's hash to the checkpoint's root.
    Inclusion {
        #[command(flatten)]
        key: KeyArg,
        /// The checkpoint (JSON) the proof must lead to.
        #[arg(long)]
        checkpoint: PathBuf,
        /// The inclusion proof (JSON).
        proof: PathBuf,
    },
    /// Check that a later checkpoint extends an earlier one without rewriting it
    /// (GET /v1/audit/{shard}/consistency?from=<old size>&to=<new size>).
    Consistency {
        #[command(flatten)]
        key: KeyArg,
        /// The earlier checkpoint (JSON).
        #[arg(long)]
        old: PathBuf,
        /// The later checkpoint (JSON).
        #[arg(long)]
        new: PathBuf,
        /// The consistency proof (JSON).
        proof: PathBuf,
    },
    /// Print the public key of a data dir's signing key (for the operator to
    /// publish; the key file never leaves the machine).
    PublicKey {
        /// The signing key file (default: <data dir>/checkpoint.key).
        #[arg(long)]
        signing_key: Option<PathBuf>,
        /// The data dir whose default key file to read.
        #[arg(long, env = "RISKSTREAM_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct KeyArg {
    /// The trusted Ed25519 public key: 64 hex digits, or a file holding them (or
    /// the JSON of GET /v1/audit/public-key).
    #[arg(long)]
    public_key: String,
}

impl KeyArg {
    fn load(&self) -> anyhow::Result<VerifyingKey> {
        load_public_key(&self.public_key)
    }
}

/// A public key given as 64 hex digits, or a file holding them or the JSON of
/// GET /v1/audit/public-key (what `audit` and `verify` both take).
pub(super) fn load_public_key(given: &str) -> anyhow::Result<VerifyingKey> {
    let text = match std::fs::read_to_string(given) {
        Ok(text) => text,
        Err(_) => given.to_string(),
    };
    let text = text.trim();
    let hex_key = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(v)) => {
            v.get("public_key").and_then(|k| k.as_str()).map(str::to_string).unwrap_or_default()
        }
        _ => text.to_string(),
    };
    Ok(public_key(&hex_key)?)
}

#[derive(Deserialize)]
struct InclusionProof {
    shard: u32,
    leaf_index: u64,
    tree_size: u64,
    record_hash: Option<String>,
    leaf_hash: String,
    proof: Vec<String>,
}

#[derive(Deserialize)]
struct ConsistencyProof {
    shard: u32,
    from: u64,
    to: u64,
    proof: Vec<String>,
}

fn read<T: DeserializeOwned>(path: &Path, what: &str) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the {what} {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a {what}", path.display()))
}

fn hashes(list: &[String]) -> anyhow::Result<Vec<Hash>> {
    Ok(list.iter().map(|h| unhex::<32>("proof element", h)).collect::<Result<_, _>>()?)
}

fn signed(path: &Path, key: &VerifyingKey) -> anyhow::Result<Checkpoint> {
    let c: Checkpoint = read(path, "checkpoint")?;
    c.verify(key).map_err(|e| CheckFailed(format!("checkpoint {}: {e}", path.display())))?;
    Ok(c)
}

fn failed(reason: String) -> anyhow::Result<ExitCode> {
    Err(CheckFailed(reason).into())
}

pub fn audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AuditCommand::Checkpoint { key, checkpoint } => {
            let c = signed(&checkpoint, &key.load()?)?;
            println!(
                "ok: checkpoint of shard {} at {} records (root {}) is signed by the key",
                c.shard, c.tree_size, c.root
            );
        }
        AuditCommand::Inclusion { key, checkpoint, proof } => {
            let c = signed(&checkpoint, &key.load()?)?;
            let p: InclusionProof = read(&proof, "inclusion proof")?;
            if (p.shard, p.tree_size) != (c.shard, c.tree_size) {
                return failed(format!(
                    "the proof is for shard {} at {} records, the checkpoint for shard {} at {}",
                    p.shard, p.tree_size, c.shard, c.tree_size
                ));
            }
            let leaf = unhex::<32>("leaf_hash", &p.leaf_hash)?;
            if let Some(record) = &p.record_hash {
                if leaf_hash(&unhex::<32>("record_hash", record)?) != leaf {
                    return failed("leaf_hash is not SHA-256(0x00 || record_hash)".into());
                }
            }
            verify_inclusion(&leaf, p.leaf_index, p.tree_size, &hashes(&p.proof)?, &c.root_hash()?)
                .map_err(|e| CheckFailed(format!("the inclusion proof does not lead to the checkpoint's root: {e}")))?;
            println!(
                "ok: record {} (leaf {}) is in shard {}'s log of {} records signed by the key",
                p.leaf_index + 1,
                hex(&leaf),
                c.shard,
                c.tree_size
            );
        }
        AuditCommand::Consistency { key, old, new, proof } => {
            let key = key.load()?;
            let (a, b) = (signed(&old, &key)?, signed(&new, &key)?);
            let p: ConsistencyProof = read(&proof, "consistency proof")?;
            if a.shard != b.shard || p.shard != a.shard {
                return failed(format!(
                    "the checkpoints and the proof are of different shards ({}, {}, {})",
                    a.shard, b.shard, p.shard
                ));
            }
            if (p.from, p.to) != (a.tree_size, b.tree_size) {
                return failed(format!(
                    "the proof goes from {} to {} records, the checkpoints are at {} and {}",
                    p.from, p.to, a.tree_size, b.tree_size
                ));
            }
            verify_consistency(a.tree_size, b.tree_size, &a.root_hash()?, &b.root_hash()?, &hashes(&p.proof)?)
                .map_err(|e| CheckFailed(format!("the later checkpoint does not extend the earlier one: {e}")))?;
            println!(
                "ok: shard {}'s log at {} records extends its log at {} records without rewriting it",
                a.shard, b.tree_size, a.tree_size
            );
        }
        AuditCommand::PublicKey { signing_key, data_dir } => {
            let path = match (signing_key, data_dir) {
                (Some(p), _) => p,
                (None, Some(d)) => d.join("checkpoint.key"),
                (None, None) => bail!("name the key with --signing-key or its data dir with --data-dir"),
            };
            if !path.exists() {
                bail!("no signing key at {} (the engine generates it when it first runs)", path.display());
            }
            let signer = CheckpointSigner::load_or_generate(&path)?;
            println!("{}", hex(signer.public_key().as_bytes()));
        }
    }
    Ok(ExitCode::SUCCESS)
}
