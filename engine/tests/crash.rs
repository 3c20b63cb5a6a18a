//! Invariants 2, 3, 5, 6 and 7 under real crashes (issue 6): `riskstream run`, signing
//! a checkpoint every 20 records of a shard and writing the alert log, is killed
//! with SIGKILL while a loader posts batches that raise market-move alerts. A series
//! kills it `ROUNDS` times in a row on one data dir (restart, resume loading, kill
//! again); after each kill, with the child dead:
//! - `riskstream verify` passes (the hash chain holds);
//! - every acknowledged batch is in the log, each batch whole or not at all, no
//!   event id twice, the id index agrees with the log, cash is the sum of the log;
//! - every checkpoint is signed by the data dir's key, its root is the shard's tree
//!   root at its size, its state digest is that of a replay to its size, each one
//!   extends the previous (consistency proof) and the log extends the last, and
//!   the checkpoints of earlier rounds are still there unchanged;
//! - a replay of the whole log into a fresh dir gives the live state and alert
//!   sequence;
//! - no alert id is in the history twice; every alert in the alert log
//!   (`alerts.jsonl`) is one of the history as it is there, and one child never
//!   writes an alert twice.
//!
//! The restarted loader resends 0-3 batches before the first unacknowledged one
//! (they must count as duplicates) and checks every report. A series ends by
//! resending every batch (what was logged applies nothing, the rest once) and by
//! a restart that waits for the outbox to empty, after which the alert log must
//! hold every alert of the history. The alert log's problems (an id on two lines,
//! the outbox redelivering across a kill; a line that is no alert; an alert never
//! written) are collected and asserted last, so they do not hide the others.
//!
//! 50 kills (10 series of 5, spread over 5 tests so nextest runs them in
//! parallel); `RISKSTREAM_SOAK=N` makes it N (any value that is not a number above
//! 1 makes it 500): `deploy/dev/soak-crash.sh`. Kill delays (0-300 ms) and resend
//! depths derive from the iteration number, which each round prints first.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ed25519_dalek::VerifyingKey;
use riskstream_engine::audit::checkpoint::unhex;
use riskstream_engine::audit::{shard_digest, verify_consistency, Checkpoint, CheckpointSigner, ProofReader};
use riskstream_engine::metrics::Metrics;
use riskstream_engine::replay::compare;
use riskstream_engine::store::{hex, EventStore, ProjectionStore, RocksDbStore};
use riskstream_engine::{stored_rules, Engine};
use riskstream_schemas::avro::Codec;
use riskstream_schemas::{json, Alert, Event, EventBody, Side};
use rust_decimal::Decimal;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_riskstream");
const SHARDS: u32 = 2;
const ACCOUNTS: usize = 8;
const DEPOSITS: usize = 3;
const SYMBOLS: [&str; 2] = ["AAA", "BBB"];
/// Records per shard between two signed checkpoints.
const CHECKPOINT_EVERY: u64 = 20;
/// Kills in a row on one data dir.
const ROUNDS: usize = 5;
/// The `#[test]` functions sharing the series (series `s` runs in test `s % TESTS`).
const TESTS: usize = 5;
const ITERATIONS: usize = 50;
const SOAK_ITERATIONS: usize = 500;
/// Far more batches than a round posts before its kill.
const MAX_BATCHES: usize = 1_000_000;
/// Batches past the end of the log that a series' final resend adds.
const FRESH_AT_END: usize = 20;

/// A `riskstream run` child; killed (SIGKILL) and reaped when dropped.
struct Child {
    process: std::process::Child,
    base: String,
}

impl Child {
    fn start(dir: &Path, config: &Path) -> Child {
        let mut process = Command::new(BIN)
            .arg("run")
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0", "--shards", &SHARDS.to_string()])
            .env_remove("RISKSTREAM_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("can start riskstream");
        let lines = stderr_lines(process.stderr.take().unwrap());
        let mut child = Child { process, base: String::new() };
        child.base = format!("http://{}", wait_for_address(&lines));
        child
    }

    fn kill(mut self) {
        self.process.kill().unwrap();
        self.process.wait().unwrap();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Forwards the child's stderr lines, draining the pipe until the child exits.
fn stderr_lines(stderr: std::process::ChildStderr) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// The address in "riskstream listening on http://ADDR (data dir ...)", within 30 s.
fn wait_for_address(lines: &mpsc::Receiver<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(line) = lines.recv_timeout(left) else { break };
        if let Some(rest) = line.split("listening on http://").nth(1) {
            return rest.split_whitespace().next().unwrap().to_string();
        }
        seen.push(line);
    }
    panic!("riskstream did not say where it listens within 30 s; stderr: {seen:?}");
}

/// What one POST carries: its event ids, its ticks and its cash effect per account.
struct Facts {
    ids: Vec<String>,
    ticks: usize,
    cash: BTreeMap<String, Decimal>,
}

impl Facts {
    fn items(&self) -> u64 {
        (self.ids.len() + self.ticks) as u64
    }
}

fn account(i: usize) -> (String, String) {
    (format!("acc-{i}"), format!("u-{i}"))
}

/// Batch 0 lists the symbols and opens the accounts; batch b >= 1 (event day b)
/// makes DEPOSITS deposits of distinct amounts into every account, buys 1 of each
/// symbol in one account each and ticks each symbol at `price(symbol, b)`.
fn events(b: usize) -> Vec<Event> {
    if b == 0 {
        let mut setup: Vec<Event> = SYMBOLS.iter().map(|s| ev(&format!("list-{s}"), 0, listed(s))).collect();
        setup.extend((0..ACCOUNTS).map(|i| ev(&format!("open-{i}"), 0, opened(&account(i).0, &account(i).1))));
        return setup;
    }
    let minute = b as i64 * 1_440;
    let mut out = Vec::new();
    for i in 0..ACCOUNTS {
        let (acc, user) = account(i);
        for k in 0..DEPOSITS {
            let amount = Decimal::new((((b * ACCOUNTS + i) * DEPOSITS + k) + 10_000) as i64, 2);
            out.push(ev(&format!("dep-{b}-{i}-{k}"), minute, deposit(&acc, &user, &amount.to_string())));
        }
    }
    for (n, symbol) in SYMBOLS.iter().enumerate() {
        let (acc, user) = account((b + 3 * n) % ACCOUNTS);
        let price = price(n, b).to_string();
        let id = format!("buy-{b}-{symbol}");
        out.push(ev(&id, minute, trade(&id, &acc, &user, symbol, Side::Buy, "1", &price)));
        out.push(ev("", minute, tick(symbol, &format!("{price}.25"))));
    }
    out
}

/// AAA steps between 10 and 12 every 3 days, BBB between 20 and 23 every 5: each
/// step moves the close by more than 10%, so every holder gets a `market_move`
/// alert, cleared the next day (no move).
fn price(symbol: usize, b: usize) -> Decimal {
    let (low, high, days) = [(10, 12, 3), (20, 23, 5)][symbol];
    Decimal::from(if (b / days).is_multiple_of(2) { low } else { high })
}

fn facts(b: usize) -> Facts {
    let mut f = Facts { ids: Vec::new(), ticks: 0, cash: BTreeMap::new() };
    for e in events(b) {
        match e.event_id {
            Some(id) => f.ids.push(id),
            None => f.ticks += 1,
        }
        match e.body {
            EventBody::CashMovement(c) => *f.cash.entry(c.account_id).or_default() += c.amount,
            EventBody::TradeExecuted(t) => *f.cash.entry(t.account_id).or_default() -= t.quantity * t.price + t.fees,
            _ => {}
        }
    }
    f
}

fn body(b: usize) -> String {
    format!("[{}]", events(b).iter().map(json::encode).collect::<Vec<_>>().join(","))
}

/// The facts of batches 0, 1, ..., generated once per series.
#[derive(Default)]
struct Plan(Vec<Facts>);

impl Plan {
    fn get(&mut self, b: usize) -> &Facts {
        while self.0.len() <= b {
            self.0.push(facts(self.0.len()));
        }
        &self.0[b]
    }

    /// Cash per account after batches `0..end`.
    fn cash(&mut self, end: usize) -> BTreeMap<String, Decimal> {
        let mut total: BTreeMap<String, Decimal> = (0..ACCOUNTS).map(|i| (account(i).0, Decimal::ZERO)).collect();
        for b in 0..end {
            for (acc, delta) in &self.get(b).cash {
                *total.get_mut(acc).unwrap() += delta;
            }
        }
        total
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

/// Posts `body`; the status and the report, or `None` once the server is gone.
fn post(http: &reqwest::blocking::Client, base: &str, body: String) -> Option<(u16, Value)> {
    let response =
        http.post(format!("{base}/v1/events")).header("content-type", "application/json").body(body).send().ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().ok()?))
}

/// The report of a batch the log already holds (`logged`) counts all of it as
/// duplicates and stale ticks; that of any other applies it whole.
fn check_report(b: usize, f: &Facts, logged: bool, status: u16, report: &Value) -> Result<(), String> {
    let got = ["accepted", "duplicates", "stale_ticks"].map(|k| report[k].as_u64());
    let n = f.ids.len() as u64;
    let want = (if logged { [0, n, f.ticks as u64] } else { [f.items(), 0, 0] }).map(Some);
    if status != 200 || got != want {
        return Err(format!(
            "batch {b} (logged: {logged}): {status}, wanted [accepted, duplicates, stale] {want:?}: {report}"
        ));
    }
    Ok(())
}

/// How far loading went.
struct Loaded {
    /// Batches `..acked_end` were acknowledged.
    acked_end: usize,
    /// No batch from `sent_end` on was sent.
    sent_end: usize,
}

/// Posts batches `from..` in order until the server goes away, checking each report
/// (batches below `logged_end` are in the log already).
fn load(base: String, from: usize, logged_end: usize) -> Result<Loaded, String> {
    let http = client();
    for b in from..MAX_BATCHES {
        let Some((status, report)) = post(&http, &base, body(b)) else {
            return Ok(Loaded { acked_end: b, sent_end: b + 1 });
        };
        check_report(b, &facts(b), b < logged_end, status, &report)?;
    }
    Err(format!("the loader sent all {MAX_BATCHES} batches before the kill"))
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 0..300 ms after the loader starts, deterministic per iteration: one in five
/// under 15 ms (right after a restart).
fn kill_delay(iteration: usize) -> Duration {
    let h = mix(iteration as u64);
    let ms = if h.is_multiple_of(5) { (h >> 8) % 15 } else { 15 + (h >> 8) % 286 };
    Duration::from_millis(ms)
}

/// How many acknowledged batches the loader sends again after a restart (0..=3).
fn resend_depth(iteration: usize) -> usize {
    (mix(iteration as u64) >> 40) as usize % 4
}

fn run_ok(args: &[&str], dir: &Path) {
    let out = Command::new(BIN).args(args).arg("--data-dir").arg(dir).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "riskstream {args:?} failed: {text}");
}

/// Every event id stored in the log, checking no id is stored twice (a broadcast
/// listing is stored once per shard).
fn logged_ids(store: &RocksDbStore) -> HashSet<String> {
    let codec = Codec::new();
    let mut account_ids = HashSet::new();
    let mut broadcast_ids = HashSet::new();
    for shard in 0..SHARDS {
        for record in store.records(shard, 0) {
            let record = record.unwrap();
            let event = codec.decode(record.fingerprint, &record.payload).unwrap();
            let Some(id) = event.event_id.clone() else { continue };
            let fresh = match event.body.user_id() {
                Some(_) => account_ids.insert(id.clone()),
                None => broadcast_ids.insert((shard, id.clone())),
            };
            assert!(fresh, "event id `{id}` stored twice (shard {shard}, seq {})", record.seq);
        }
    }
    account_ids.extend(broadcast_ids.into_iter().map(|(_, id)| id));
    account_ids
}

fn cash_of(engine: &Engine<RocksDbStore>, account: &str) -> Decimal {
    engine.account_view(account).map(|(_, _, v)| v.cash).unwrap_or_else(|| panic!("{account} is not open"))
}

/// The log holds batches `0..end` whole and nothing else, the id index agrees, every
/// acknowledged batch is among them and cash is their sum. Returns `end`.
fn check_batches(store: &RocksDbStore, engine: &Engine<RocksDbStore>, plan: &mut Plan, loaded: &Loaded) -> usize {
    let logged = logged_ids(store);
    let mut end = None;
    for b in 0..=loaded.sent_end {
        let f = plan.get(b);
        let found: Vec<bool> = f.ids.iter().map(|id| logged.contains(id)).collect();
        for (id, f) in f.ids.iter().zip(&found) {
            assert_eq!(store.event_seen(id).unwrap().is_some(), *f, "id index and log disagree on `{id}`");
        }
        assert!(found.iter().all(|f| *f) || !found.iter().any(|f| *f), "batch {b} is partly in the log: {found:?}");
        match (found[0], end) {
            (false, None) => end = Some(b),
            (true, Some(e)) => panic!("batch {b} is in the log but batch {e} is not"),
            _ => {}
        }
    }
    let end = end.unwrap_or_else(|| panic!("batch {} was never sent but is in the log", loaded.sent_end));
    let expected: usize = (0..end).map(|b| plan.get(b).ids.len()).sum();
    assert_eq!(logged.len(), expected, "the log holds event ids of no batch sent");
    assert!(end >= loaded.acked_end, "acknowledged batch {} was lost (log ends before it)", end);
    for (acc, cash) in plan.cash(end) {
        assert_eq!(cash_of(engine, &acc), cash, "{acc} after the crash");
    }
    end
}

/// The data dir's checkpoint key, which the child generated.
fn checkpoint_key(dir: &Path) -> VerifyingKey {
    let path = dir.join("checkpoint.key");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("no signing key {}: {e}", path.display()));
    CheckpointSigner::from_seed(unhex::<32>("signing key", text.trim()).unwrap()).public_key()
}

/// Each shard's checkpoints: signed by `key`, bound to the shard's tree, each
/// extending the previous and extended by the log, `before` still there unchanged.
fn check_checkpoints(store: &RocksDbStore, key: &VerifyingKey, before: &[Vec<Checkpoint>]) -> Vec<Vec<Checkpoint>> {
    let mut out = Vec::new();
    for shard in 0..SHARDS {
        let list = store.checkpoints(shard, 0, usize::MAX).unwrap();
        let old = before.get(shard as usize).map_or(&[][..], Vec::as_slice);
        assert!(list.starts_with(old), "shard {shard}: checkpoints of earlier rounds changed or went: {old:?}");
        let reader = ProofReader::new(store, shard).unwrap();
        for c in &list {
            assert_eq!(c.shard, shard);
            c.verify(key).unwrap_or_else(|e| panic!("shard {shard}, checkpoint at {}: {e}", c.tree_size));
            assert!(c.tree_size <= reader.size(), "checkpoint at {} beyond the log ({})", c.tree_size, reader.size());
            let root = reader.root_hash(c.tree_size).unwrap();
            assert_eq!(c.root_hash().unwrap(), root, "shard {shard}: root of the checkpoint at {}", c.tree_size);
        }
        for pair in list.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            assert!(b.tree_size > a.tree_size, "shard {shard}: checkpoints out of order: {pair:?}");
            check_consistent(&reader, a.tree_size, b.tree_size, a.root_hash().unwrap(), b.root_hash().unwrap());
        }
        if let Some(last) = list.last() {
            let head = reader.root_hash(reader.size()).unwrap();
            check_consistent(&reader, last.tree_size, reader.size(), last.root_hash().unwrap(), head);
        }
        out.push(list);
    }
    out
}

/// The stored tree proves the tree of size `to` (root `to_root`) extends that of
/// size `from` (root `from_root`).
fn check_consistent(reader: &ProofReader<RocksDbStore>, from: u64, to: u64, from_root: [u8; 32], to_root: [u8; 32]) {
    let view = reader.consistency(from, Some(to)).unwrap();
    let proof: Vec<[u8; 32]> = view.proof.iter().map(|h| unhex::<32>("proof", h).unwrap()).collect();
    verify_consistency(from, to, &from_root, &to_root, &proof)
        .unwrap_or_else(|e| panic!("shard {}: {from} -> {to} is not consistent: {e}", view.shard));
}

/// Replays the log into a fresh dir, stopping at each checkpoint to compare its
/// state digest, then compares state and alerts with the live ones.
fn check_replay(live: &RocksDbStore, checkpoints: &[Vec<Checkpoint>]) {
    let temp = tempfile::tempdir().unwrap();
    let store = Arc::new(RocksDbStore::open(&temp.path().join("replay"), false).unwrap());
    let rules = stored_rules(live).unwrap().unwrap_or_default();
    let mut target = Engine::open(Arc::clone(&store), SHARDS, rules, Arc::new(Metrics::new())).unwrap();
    let mut records = 0;
    for (shard, list) in (0..SHARDS).zip(checkpoints) {
        for c in list {
            records += replay_shard(live, &mut target, shard, c.tree_size);
            let digest = hex(&shard_digest(shard, target.shard(shard).unwrap().facts()));
            assert_eq!(digest, c.state_digest, "shard {shard}: state digest of the checkpoint at {}", c.tree_size);
        }
        records += replay_shard(live, &mut target, shard, u64::MAX);
        assert_eq!(target.head(shard), live.head(shard).unwrap(), "shard {shard}: head after the replay");
    }
    let report = compare(live, store.as_ref(), SHARDS, records).unwrap();
    assert!(report.ok(), "replay differs from the live state: {report:?}");
}

/// Applies `shard`'s records after `target`'s head up to seq `until` (as
/// `replay::rebuild` does); returns how many.
fn replay_shard(live: &RocksDbStore, target: &mut Engine<RocksDbStore>, shard: u32, until: u64) -> u64 {
    let mut chunk = Vec::new();
    for record in live.records(shard, target.head(shard).seq + 1) {
        let record = record.unwrap();
        if record.seq > until {
            break;
        }
        let event = target.codec().decode(record.fingerprint, &record.payload).unwrap();
        chunk.push((record, event));
    }
    let n = chunk.len() as u64;
    target.replay(chunk).unwrap();
    n
}

/// The alert history by id, checking no id is in it twice.
fn alert_history(store: &RocksDbStore) -> HashMap<String, Alert> {
    let mut history = HashMap::new();
    let mut after = 0;
    loop {
        let page = store.alerts_after(after, 1_000).unwrap();
        let Some(last) = page.last() else { break };
        after = last.number;
        for a in page {
            let id = a.alert.alert_id.clone();
            assert!(history.insert(id.clone(), a.alert).is_none(), "alert id {id} is in the history twice");
        }
    }
    history
}

/// `<dir>/alerts.jsonl` as a consumer reads it: the alerts of its whole lines (with
/// their line numbers, from 1) and the whole lines that are no alert. A last line
/// without its newline (a write the kill cut) is left out, as a reader would wait
/// for the rest.
struct AlertLog {
    alerts: Vec<(usize, Alert)>,
    corrupt: Vec<(usize, String)>,
    lines: usize,
}

fn read_alert_log(dir: &Path) -> AlertLog {
    let path = dir.join("alerts.jsonl");
    let bytes = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        read => read.unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display())),
    };
    let text = String::from_utf8_lossy(&bytes);
    let whole = text.rfind('\n').map_or("", |end| &text[..=end]);
    let mut log = AlertLog { alerts: Vec::new(), corrupt: Vec::new(), lines: 0 };
    for (n, line) in (1..).zip(whole.lines()) {
        match serde_json::from_str(line) {
            Ok(alert) => log.alerts.push((n, alert)),
            Err(_) => log.corrupt.push((n, line.chars().take(300).collect())),
        }
        log.lines = n;
    }
    log
}

/// What a series saw, to show the checks were not vacuous.
#[derive(Debug, Default)]
struct Seen {
    kills: usize,
    checkpoints: usize,
    alerts: usize,
    logged_alerts: usize,
    /// Batches committed whose acknowledgement the kill cut off.
    unacknowledged_commits: usize,
    /// What is wrong with the alert log, as of the last check: lines repeating an
    /// alert id, lines that are no alert, alerts of the history it never got.
    log_repeats: usize,
    log_corrupt: usize,
    log_missing: usize,
    first_log_problem: Option<String>,
}

impl Seen {
    fn add(&mut self, other: Seen) {
        self.kills += other.kills;
        self.checkpoints += other.checkpoints;
        self.alerts += other.alerts;
        self.logged_alerts += other.logged_alerts;
        self.unacknowledged_commits += other.unacknowledged_commits;
        self.log_repeats += other.log_repeats;
        self.log_corrupt += other.log_corrupt;
        self.log_missing += other.log_missing;
        self.first_log_problem = self.first_log_problem.take().or(other.first_log_problem);
    }

    fn log_problem(&mut self, problem: String) {
        if self.first_log_problem.is_none() {
            eprintln!("{problem}");
            self.first_log_problem = Some(problem);
        }
    }
}

/// One data dir killed `ROUNDS` times in a row.
struct Series {
    number: usize,
    _temp: tempfile::TempDir,
    dir: PathBuf,
    config: PathBuf,
    plan: Plan,
    /// Batches `0..logged_end` are in the log; `0..acked_end` were acknowledged.
    logged_end: usize,
    acked_end: usize,
    checkpoints: Vec<Vec<Checkpoint>>,
    /// Lines of the alert log at each kill so far.
    log_lines_at_kills: Vec<usize>,
    seen: Seen,
}

impl Series {
    fn new(number: usize) -> Series {
        let temp = tempfile::tempdir().unwrap();
        let config = temp.path().join("riskstream.toml");
        let toml = format!("alert_log = true\n\n[audit]\ncheckpoint_every = {CHECKPOINT_EVERY}\n");
        std::fs::write(&config, toml).unwrap();
        let dir = temp.path().join("data");
        Series {
            number,
            _temp: temp,
            dir,
            config,
            plan: Plan::default(),
            logged_end: 0,
            acked_end: 0,
            checkpoints: Vec::new(),
            log_lines_at_kills: Vec::new(),
            seen: Seen::default(),
        }
    }

    fn start(&self) -> Child {
        Child::start(&self.dir, &self.config)
    }

    /// Starts the child, loads, kills it after the iteration's delay, checks.
    fn kill_round(&mut self, iteration: usize) {
        let (delay, depth) = (kill_delay(iteration), resend_depth(iteration));
        eprintln!(
            "iteration {iteration} (series {}, {}): kill {delay:?} into the load, resending {depth} batches",
            self.number,
            self.dir.display()
        );
        let child = self.start();
        if self.acked_end == 0 {
            let (status, report) = post(&client(), &child.base, body(0)).expect("setup batch");
            assert_eq!(status, 200, "setup: {report}");
            (self.acked_end, self.logged_end) = (1, 1);
        }
        let from = self.acked_end.saturating_sub(depth).max(1);
        let loader = {
            let (base, logged_end) = (child.base.clone(), self.logged_end);
            std::thread::spawn(move || load(base, from, logged_end))
        };
        std::thread::sleep(delay);
        child.kill();
        let round = loader.join().unwrap().unwrap_or_else(|e| panic!("iteration {iteration}: {e}"));
        self.acked_end = self.acked_end.max(round.acked_end);
        let before = self.logged_end;
        let loaded = Loaded { acked_end: self.acked_end, sent_end: round.sent_end.max(before) };
        self.reopen(&loaded, &format!("iteration {iteration}"));
        self.seen.kills += 1;
        self.seen.unacknowledged_commits += self.logged_end - self.acked_end;
        eprintln!(
            "iteration {iteration}: batches {from}..{} sent, log grew from {before} to {} batches, {} acknowledged",
            round.sent_end, self.logged_end, self.acked_end
        );
    }

    /// Every check on the data dir, with the child dead (`after` names the kill).
    fn reopen(&mut self, loaded: &Loaded, after: &str) -> HashMap<String, Alert> {
        run_ok(&["verify"], &self.dir);
        let store = Arc::new(RocksDbStore::open_read_only(&self.dir).unwrap());
        assert_eq!(store.shard_count().unwrap(), Some(SHARDS));
        let rules = stored_rules(store.as_ref()).unwrap().unwrap_or_default();
        let engine = Engine::open(Arc::clone(&store), SHARDS, rules, Arc::new(Metrics::new())).unwrap();
        self.logged_end = check_batches(&store, &engine, &mut self.plan, loaded);
        self.checkpoints = check_checkpoints(&store, &checkpoint_key(&self.dir), &self.checkpoints);
        self.seen.checkpoints = self.checkpoints.iter().map(Vec::len).sum();
        check_replay(&store, &self.checkpoints);
        let history = alert_history(&store);
        self.seen.alerts = history.len();
        self.check_alert_log(&history, after);
        history
    }

    /// Every alert of the alert log is one of the history, as it is there; an
    /// alert is there once, unless the next child redelivered what the outbox
    /// still held at a kill (its copies then lie on both sides of the kill), which
    /// is counted as a problem of the log, as are lines that are no alert.
    fn check_alert_log(&mut self, history: &HashMap<String, Alert>, after: &str) {
        let log = read_alert_log(&self.dir);
        let mut first = HashMap::new();
        self.seen.log_repeats = 0;
        for (line, alert) in &log.alerts {
            let id = &alert.alert_id;
            assert_eq!(history.get(id), Some(alert), "alert log line {line}: not an alert of the history");
            let Some(&earlier) = first.get(id) else {
                first.insert(id, *line);
                continue;
            };
            let across_a_kill = self.log_lines_at_kills.iter().any(|k| earlier <= *k && k < line);
            assert!(across_a_kill, "alert log lines {earlier} and {line}: one child delivered alert id {id} twice");
            self.seen.log_repeats += 1;
            self.seen.log_problem(format!(
                "series {}, after {after}: alert log line {line} repeats line {earlier}, id {id}",
                self.number
            ));
        }
        self.seen.log_corrupt = log.corrupt.len();
        if let Some((line, text)) = log.corrupt.first() {
            self.seen.log_problem(format!(
                "series {}, after {after}: alert log line {line} is no alert: {text}",
                self.number
            ));
        }
        self.seen.logged_alerts = log.alerts.len();
        self.log_lines_at_kills.push(log.lines);
    }

    /// Restarts and sends every logged batch again and a few new ones: the logged
    /// ones apply nothing, the new ones apply once.
    fn resend_all(&mut self) {
        let child = self.start();
        let http = client();
        let end = self.logged_end + FRESH_AT_END;
        for b in 0..end {
            let (status, report) =
                post(&http, &child.base, body(b)).unwrap_or_else(|| panic!("batch {b}: no response"));
            check_report(b, self.plan.get(b), b < self.logged_end, status, &report).unwrap();
        }
        for (acc, cash) in self.plan.cash(end) {
            let view: Value = http.get(format!("{}/v1/accounts/{acc}", child.base)).send().unwrap().json().unwrap();
            let got: Decimal = view["cash"].as_str().unwrap().parse().unwrap();
            assert_eq!(got, cash, "{acc} after re-sending everything");
        }
        child.kill();
        self.acked_end = end;
        self.reopen(&Loaded { acked_end: end, sent_end: end }, "the resend of every batch");
        assert_eq!(self.logged_end, end);
    }

    /// Restarts without load until the outbox is empty, then checks once more, and
    /// that the alert log got every alert of the history.
    fn drain_outbox(&mut self) {
        let child = self.start();
        let http = client();
        let deadline = Instant::now() + Duration::from_secs(60);
        while outbox_depth(&http, &child.base) > 0 {
            assert!(Instant::now() < deadline, "the outbox still holds alerts after 60 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill();
        let loaded = Loaded { acked_end: self.acked_end, sent_end: self.logged_end };
        let history = self.reopen(&loaded, "the restart that drains the outbox");
        let logged: HashSet<String> = read_alert_log(&self.dir).alerts.into_iter().map(|(_, a)| a.alert_id).collect();
        let missing: Vec<&String> = history.keys().filter(|id| !logged.contains(*id)).collect();
        self.seen.log_missing = missing.len();
        if let Some(id) = missing.first() {
            let n = missing.len();
            self.seen.log_problem(format!("series {}: {n} alerts never reached the alert log, e.g. {id}", self.number));
        }
    }
}

/// The `outbox_depth` gauge of the child's metrics.
fn outbox_depth(http: &reqwest::blocking::Client, base: &str) -> i64 {
    let text = http.get(format!("{base}/metrics")).send().unwrap().text().unwrap();
    let line = text.lines().find(|l| l.split_whitespace().next().is_some_and(|name| name.ends_with("outbox_depth")));
    let line = line.unwrap_or_else(|| panic!("no outbox_depth in the metrics: {text}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The number of kill iterations: `RISKSTREAM_SOAK=N` (N > 1), else 500 when it is
/// set, else 50.
fn iterations() -> usize {
    match std::env::var("RISKSTREAM_SOAK") {
        Err(_) => ITERATIONS,
        Ok(v) => v.trim().parse().ok().filter(|n| *n > 1).unwrap_or(SOAK_ITERATIONS),
    }
}

/// Runs the series of test `test` (of `TESTS`); iteration numbers are global.
fn run_share(test: usize) {
    let total = iterations();
    let mut seen = Seen::default();
    for series in (test..total.div_ceil(ROUNDS)).step_by(TESTS) {
        let mut s = Series::new(series);
        for iteration in series * ROUNDS..((series + 1) * ROUNDS).min(total) {
            s.kill_round(iteration);
        }
        s.resend_all();
        s.drain_outbox();
        eprintln!("series {series}: {:?}", s.seen);
        seen.add(s.seen);
    }
    eprintln!("test {test} of {TESTS}: {seen:?}");
    if seen.kills > 0 {
        assert!(seen.checkpoints > 0, "no checkpoint was signed, so none was checked");
        assert!(seen.alerts > 0, "no alert was raised, so no alert id was checked");
        assert!(seen.logged_alerts > 0, "the alert log stayed empty, so it was not checked");
    }
    // Checked last, so a problem of the alert log does not hide what the other
    // checks would find.
    let problems = [seen.log_repeats, seen.log_corrupt, seen.log_missing];
    assert_eq!(
        problems,
        [0; 3],
        "the alert log has lines repeating an alert id, lines that are no alert, alerts it never got; first: {}",
        seen.first_log_problem.unwrap_or_default()
    );
}

#[test]
fn crash_kills_mid_load_part_0() {
    run_share(0);
}

#[test]
fn crash_kills_mid_load_part_1() {
    run_share(1);
}

#[test]
fn crash_kills_mid_load_part_2() {
    run_share(2);
}

#[test]
fn crash_kills_mid_load_part_3() {
    run_share(3);
}

#[test]
fn crash_kills_mid_load_part_4() {
    run_share(4);
}
