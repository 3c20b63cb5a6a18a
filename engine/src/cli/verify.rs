//! `riskstream verify`: the whole log of a data dir (chains, Merkle tree, signed
//! checkpoints) re-derived from its records, or its tail from a checkpoint. A
//! progress bar on stderr when it is a terminal; the summary on stdout.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use ed25519_dalek::VerifyingKey;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use riskstream_engine::audit::{checkpoint::unhex, Checkpoint, CheckpointSigner};
use riskstream_engine::store::RocksDbStore;
use riskstream_engine::verify::{verify_with, Progress, Start, VerifyOptions, VerifyReport};
use serde::Deserialize;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Data directory to verify (opened read-only; an engine may be running on it).
    #[arg(long, env = "RISKSTREAM_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The Ed25519 public key the checkpoints must be signed with: 64 hex digits, or a
    /// file holding them or the JSON of GET /v1/audit/public-key.
    /// Default: the key of the signing key file <DATA_DIR>/checkpoint.key, which only
    /// shows they were signed by whoever holds that directory; pass the published
    /// key to check against it. Without either, checkpoint roots are still compared
    /// with the records but signatures are not checked.
    #[arg(long, value_name = "KEY")]
    pub public_key: Option<String>,
    /// Verify incrementally from a signed checkpoint: `latest` (each shard's newest
    /// stored checkpoint) or a checkpoint's JSON file (as GET
    /// /v1/audit/{shard}/checkpoints serves it; a whole list means its newest). The
    /// checkpoint's signature is checked, its last record is proven under its root,
    /// and only the records after it are walked; the stored tree must extend it.
    /// The records it covers are not re-read: the signed root pins their hashes, but
    /// a record whose content changed while its stored hash did not shows only in a
    /// full walk. Repeat for several shards; shards without one are walked whole.
    /// Needs the public key.
    #[arg(long, value_name = "CHECKPOINT")]
    pub from: Vec<String>,
    /// Also compare every stored Merkle node with the one the records give, not only
    /// those the checkpoint and head roots are made of (about two point reads per record).
    #[arg(long)]
    pub all_nodes: bool,
    /// Print the report as JSON (before the summary line).
    #[arg(long)]
    pub json: bool,
}

pub fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let store = RocksDbStore::open_read_only(&args.data_dir)?;
    let opts = VerifyOptions { public_key: key(&args)?, start: start(&args.from)?, all_nodes: args.all_nodes };
    let bar = Bar::new()?;
    let report = verify_with(&store, &opts, &bar)?;
    bar.0.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    print_summary(&report, &args.data_dir);
    Ok(if report.first_bad.is_none() { ExitCode::SUCCESS } else { super::EXIT_CHECK_FAILED })
}

fn print_summary(report: &VerifyReport, dir: &Path) {
    if let Some(first) = &report.first_bad {
        println!("BROKEN: {first}");
        for other in &report.broken[1..] {
            println!("also BROKEN: {other}");
        }
        return;
    }
    println!(
        "ok: {} records in {} shards verified in {:.2} s ({:.0} records/s, {:.1} MB/s)",
        report.records, report.shards, report.secs, report.records_per_sec, report.mb_per_sec
    );
    match &report.public_key {
        Some(key) => println!("checkpoints: {} checked (roots and signatures, key {key})", report.checkpoints),
        None => println!(
            "checkpoints: {} roots checked; signatures NOT checked (no --public-key and no {})",
            report.checkpoints,
            dir.join("checkpoint.key").display()
        ),
    }
    if !report.started_from.is_empty() {
        let starts: Vec<String> = report.started_from.iter().map(|(s, n)| format!("shard {s} at {n}")).collect();
        println!("from checkpoints ({}): {} records covered, not walked", starts.join(", "), report.skipped);
    }
}

/// The trusted key: given, else that of the data dir's signing key file (read,
/// never generated: verify writes nothing).
fn key(args: &VerifyArgs) -> anyhow::Result<Option<VerifyingKey>> {
    if let Some(given) = &args.public_key {
        return Ok(Some(super::audit::load_public_key(given)?));
    }
    let path = args.data_dir.join("checkpoint.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(CheckpointSigner::from_seed(unhex::<32>("signing key", text.trim())?).public_key())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read the signing key {}", path.display())),
    }
}

/// A list of checkpoints as the API serves it.
#[derive(Deserialize)]
struct CheckpointList {
    checkpoints: Vec<Checkpoint>,
}

fn start(from: &[String]) -> anyhow::Result<Start> {
    if from.iter().any(|f| f == "latest") {
        anyhow::ensure!(from.len() == 1, "--from latest already starts every shard; give it alone");
        return Ok(Start::Latest);
    }
    let mut list = Vec::new();
    for path in from {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the checkpoint {path}"))?;
        let checkpoint = match serde_json::from_str::<Checkpoint>(&text) {
            Ok(c) => c,
            Err(e) => match serde_json::from_str::<CheckpointList>(&text) {
                Ok(l) => l.checkpoints.into_iter().last().with_context(|| format!("{path} lists no checkpoints"))?,
                Err(_) => anyhow::bail!("{path} is not a checkpoint (JSON as the API serves it): {e}"),
            },
        };
        list.push(checkpoint);
    }
    Ok(if list.is_empty() { Start::Genesis } else { Start::Checkpoints(list) })
}

/// One bar over all shards; drawn only when stderr is a terminal.
struct Bar(ProgressBar);

impl Bar {
    fn new() -> anyhow::Result<Bar> {
        let style = ProgressStyle::with_template(
            "verifying [{bar:40}] {human_pos}/{human_len} records, {rate} records/s, {elapsed} (eta {eta})",
        )?
        .with_key("rate", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0}", state.per_sec());
        })
        .progress_chars("=> ");
        Ok(Bar(ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr()).with_style(style)))
    }
}

impl Progress for Bar {
    fn planned(&self, _shard: u32, records: u64) {
        self.0.inc_length(records);
    }

    fn checked(&self, _shard: u32, records: u64) {
        self.0.inc(records);
    }
}
