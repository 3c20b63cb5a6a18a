//! Invariants 2 and 6 under a real crash: `riskstream run` is killed with SIGKILL
//! while a loader posts batches; after a restart no acknowledged event is lost,
//! each batch is in the log whole or not at all, and nothing applies twice, even
//! when every batch is sent again. 3 iterations; 50 with RISKSTREAM_SOAK set.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use riskstream_engine::metrics::Metrics;
use riskstream_engine::store::{EventStore, RocksDbStore};
use riskstream_engine::Engine;
use riskstream_projections::RuleConfig;
use riskstream_schemas::avro::Codec;
use riskstream_schemas::{json, Event, Side};
use rust_decimal::Decimal;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_riskstream");
const SHARDS: u32 = 2;
const ACCOUNTS: usize = 8;
const DEPOSITS: usize = 3;
const SYMBOLS: [&str; 2] = ["AAA", "BBB"];
/// Enough that the loader is still busy when the child is killed (at most 600 ms).
const LOAD_BATCHES: usize = 3_000;

/// A `riskstream run` child; killed (SIGKILL) and reaped when dropped.
struct Child {
    process: std::process::Child,
    base: String,
}

impl Child {
    fn start(dir: &Path) -> Child {
        let mut process = Command::new(BIN)
            .args(["run", "--data-dir"])
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

/// One POST: its body, the ids it carries, its ticks and its cash effect per account.
struct Batch {
    body: String,
    ids: Vec<String>,
    ticks: usize,
    cash: BTreeMap<String, Decimal>,
}

fn account(i: usize) -> (String, String) {
    (format!("acc-{i}"), format!("u-{i}"))
}

fn batch(events: Vec<Event>, cash: BTreeMap<String, Decimal>) -> Batch {
    let ids = events.iter().filter_map(|e| e.event_id.clone()).collect();
    let ticks = events.iter().filter(|e| e.event_id.is_none()).count();
    let body = format!("[{}]", events.iter().map(json::encode).collect::<Vec<_>>().join(","));
    Batch { body, ids, ticks, cash }
}

/// Batch 0 lists the symbols and opens the accounts; batch b >= 1 (event minute b)
/// makes DEPOSITS deposits of distinct amounts into every account, buys 1 of each
/// symbol in one account each (price + 1 fee leave its cash) and ticks each symbol.
fn plan() -> Vec<Batch> {
    let mut setup: Vec<Event> = SYMBOLS.iter().map(|s| ev(&format!("list-{s}"), 0, listed(s))).collect();
    setup.extend((0..ACCOUNTS).map(|i| ev(&format!("open-{i}"), 0, opened(&account(i).0, &account(i).1))));
    let mut out = vec![batch(setup, BTreeMap::new())];
    out.extend((1..=LOAD_BATCHES).map(load_batch));
    out
}

fn load_batch(b: usize) -> Batch {
    let minute = b as i64;
    let mut events = Vec::new();
    let mut cash = BTreeMap::new();
    for i in 0..ACCOUNTS {
        let (acc, user) = account(i);
        for k in 0..DEPOSITS {
            let amount = Decimal::new((((b * ACCOUNTS + i) * DEPOSITS + k) + 10_000) as i64, 2);
            events.push(ev(&format!("dep-{b}-{i}-{k}"), minute, deposit(&acc, &user, &amount.to_string())));
            *cash.entry(acc.clone()).or_insert(Decimal::ZERO) += amount;
        }
    }
    for (n, symbol) in SYMBOLS.iter().enumerate() {
        let (acc, user) = account((b + 3 * n) % ACCOUNTS);
        let price = Decimal::from(10 + (b + n) % 7);
        events.push(ev(
            &format!("buy-{b}-{symbol}"),
            minute,
            trade(&format!("buy-{b}-{symbol}"), &acc, &user, symbol, Side::Buy, "1", &price.to_string()),
        ));
        *cash.get_mut(&acc).unwrap() -= price + Decimal::ONE;
        events.push(ev("", minute, tick(symbol, &format!("{price}.25"))));
    }
    batch(events, cash)
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

/// Posts `body`; the status and the report, or `None` once the server is gone.
fn post(http: &reqwest::blocking::Client, base: &str, body: &str) -> Option<(u16, Value)> {
    let response = http
        .post(format!("{base}/v1/events"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().ok()?))
}

/// Posts the load batches in order until the server goes away; returns the
/// indices of the acknowledged (200) batches.
fn load(base: String, plan: Arc<Vec<Batch>>) -> Vec<usize> {
    let http = client();
    let mut acked = Vec::new();
    for (i, b) in plan.iter().enumerate().skip(1) {
        match post(&http, &base, &b.body) {
            Some((200, _)) => acked.push(i),
            Some((status, report)) => panic!("batch {i}: unexpected {status}: {report}"),
            None => break,
        }
    }
    acked
}

/// 50..=600 ms, spread over the iterations, deterministic.
fn kill_delay(iteration: usize) -> Duration {
    Duration::from_millis(50 + ((iteration * 211 + 97) % 551) as u64)
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

/// Sum of the cash effects of `batches`, per account.
fn expected_cash<'a>(batches: impl Iterator<Item = &'a Batch>) -> BTreeMap<String, Decimal> {
    let mut total: BTreeMap<String, Decimal> = (0..ACCOUNTS).map(|i| (account(i).0, Decimal::ZERO)).collect();
    for b in batches {
        for (acc, delta) in &b.cash {
            *total.get_mut(acc).unwrap() += delta;
        }
    }
    total
}

/// After the crash, with the child dead: acknowledged batches are in the log, every
/// batch is in it whole or not at all, the id index agrees with the log, and cash
/// is the sum of what the log holds. Returns the indices of the logged batches.
fn check_after_crash(dir: &Path, plan: &[Batch], acked: &[usize]) -> Vec<usize> {
    let store = RocksDbStore::open(dir, false).unwrap();
    let logged = logged_ids(&store);
    let mut in_log = Vec::new();
    for (i, b) in plan.iter().enumerate() {
        let found: Vec<bool> = b.ids.iter().map(|id| logged.contains(id)).collect();
        for (id, f) in b.ids.iter().zip(&found) {
            assert_eq!(store.event_seen(id).unwrap().is_some(), *f, "id index and log disagree on `{id}`");
        }
        assert!(found.iter().all(|f| *f) || !found.iter().any(|f| *f), "batch {i} is partly in the log: {found:?}");
        if found[0] {
            in_log.push(i);
        }
    }
    for i in acked {
        assert!(in_log.contains(i), "acknowledged batch {i} was lost");
    }
    let engine = Engine::open(Arc::new(store), SHARDS, RuleConfig::default(), Arc::new(Metrics::new())).unwrap();
    for (acc, cash) in expected_cash(in_log.iter().map(|&i| &plan[i])) {
        assert_eq!(cash_of(&engine, &acc), cash, "{acc} after the crash");
    }
    in_log
}

/// Restarts on the same dir and sends every batch again: what was logged counts
/// as duplicates (ids) or stale ticks, the rest applies once.
fn resend_all(dir: &Path, plan: &[Batch], in_log: &[usize]) {
    let child = Child::start(dir);
    let http = client();
    let mut totals = [0u64; 3];
    for (i, b) in plan.iter().enumerate() {
        let (status, report) = post(&http, &child.base, &b.body).unwrap_or_else(|| panic!("batch {i}: no response"));
        assert_eq!(status, 200, "batch {i}: {report}");
        for (t, key) in totals.iter_mut().zip(["accepted", "duplicates", "stale_ticks"]) {
            *t += report[key].as_u64().unwrap();
        }
    }
    let logged = in_log.iter().map(|&i| &plan[i]);
    let (logged_ids, logged_ticks) = logged.fold((0, 0), |(n, t), b| (n + b.ids.len() as u64, t + b.ticks as u64));
    let all_items: u64 = plan.iter().map(|b| (b.ids.len() + b.ticks) as u64).sum();
    assert_eq!(totals, [all_items - logged_ids - logged_ticks, logged_ids, logged_ticks]);
    for (acc, cash) in expected_cash(plan.iter()) {
        let view: Value = http.get(format!("{}/v1/accounts/{acc}", child.base)).send().unwrap().json().unwrap();
        assert_eq!(
            view["cash"].as_str().unwrap().parse::<Decimal>().unwrap(),
            cash,
            "{acc} after re-sending everything"
        );
    }
    child.kill();
}

fn crash_once(iteration: usize, plan: &Arc<Vec<Batch>>) {
    let temp = tempfile::tempdir().unwrap();
    let dir: PathBuf = temp.path().join("data");
    let child = Child::start(&dir);
    let (status, report) = post(&client(), &child.base, &plan[0].body).expect("setup batch");
    assert_eq!(status, 200, "setup: {report}");
    let loader = {
        let (base, plan) = (child.base.clone(), Arc::clone(plan));
        std::thread::spawn(move || load(base, plan))
    };
    std::thread::sleep(kill_delay(iteration));
    child.kill();
    let mut acked = loader.join().unwrap();
    assert!(acked.len() < LOAD_BATCHES, "the loader finished before the kill; make LOAD_BATCHES larger");
    acked.insert(0, 0);

    run_ok(&["verify"], &dir);
    let in_log = check_after_crash(&dir, plan, &acked);
    eprintln!(
        "iteration {iteration}: killed after {:?}, {} batches acknowledged, {} logged",
        kill_delay(iteration),
        acked.len(),
        in_log.len()
    );
    resend_all(&dir, plan, &in_log);
    run_ok(&["verify"], &dir);
    run_ok(&["replay", "--check"], &dir);
}

#[test]
fn crash_kill_mid_load_loses_no_acknowledged_event() {
    let iterations = if std::env::var_os("RISKSTREAM_SOAK").is_some() { 50 } else { 3 };
    let plan = Arc::new(plan());
    for iteration in 0..iterations {
        crash_once(iteration, &plan);
    }
}
