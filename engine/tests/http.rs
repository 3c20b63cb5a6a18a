//! The HTTP API end to end: a real server on 127.0.0.1:0 over RocksDB in a temp
//! dir, driven by reqwest. Ingest in every body format, the query routes, alert
//! delivery through the outbox, bad input dead-lettered while its neighbours
//! apply, and idempotent re-sends (invariant 6).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use riskstream_connectors::{AlertSink, MemoryAlertSink};
use riskstream_engine::api::AppState;
use riskstream_engine::metrics::Metrics;
use riskstream_engine::sequencer::shard_for;
use riskstream_engine::store::RocksDbStore;
use riskstream_engine::{runtime, Engine};
use riskstream_projections::RuleConfig;
use riskstream_schemas::avro::Codec;
use riskstream_schemas::{json, Event, EventBody, RiskLimitsSet, Side};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tokio::sync::oneshot;

const SHARDS: u32 = 2;
const ACC: &str = "acc-1";
const USER: &str = "u-1";
const JSON: &str = "application/json";
const NDJSON: &str = "application/x-ndjson";

/// An engine on RocksDB in a temp dir, served on 127.0.0.1:0 from its own thread
/// and runtime, alerts delivered to a `MemoryAlertSink`. Dropping it stops the
/// server and waits until RocksDB is closed.
struct Server {
    base: String,
    http: reqwest::Client,
    sink: MemoryAlertSink,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(max_body_bytes: usize) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let sink = MemoryAlertSink::new();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let (path, delivered) = (dir.path().to_path_buf(), sink.clone());
        let thread = std::thread::spawn(move || serve_until(&path, delivered, max_body_bytes, addr_tx, stopped));
        let addr: SocketAddr = addr_rx.recv_timeout(Duration::from_secs(30)).expect("the server starts");
        let base = format!("http://{addr}");
        Server { base, http: reqwest::Client::new(), sink, stop: Some(stop), thread: Some(thread), _dir: dir }
    }

    async fn post(&self, content_type: &str, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
        let url = format!("{}/v1/events", self.base);
        let response = self.http.post(url).header(CONTENT_TYPE, content_type).body(body).send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn get_text(&self, path: &str) -> String {
        let response = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.text().await.unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        serde_json::from_str(&self.get_text(path).await).unwrap()
    }

    /// Dead letters numbered above `since`.
    async fn dead_letters(&self, since: u64) -> Vec<Value> {
        let body = self.get(&format!("/v1/dead-letters?since={since}")).await;
        body["dead_letters"].as_array().unwrap().clone()
    }

    async fn cash(&self) -> Decimal {
        dec(&self.get(&format!("/v1/accounts/{ACC}")).await["cash"])
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closes the client's idle connections, so the graceful shutdown is immediate.
        self.http = reqwest::Client::new();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs the engine, its outbox and the API until `stopped`, then stops the outbox
/// and drops the store: RocksDB must not be in use when the test process exits.
fn serve_until(
    dir: &Path,
    sink: MemoryAlertSink,
    max_body_bytes: usize,
    addr: std::sync::mpsc::Sender<SocketAddr>,
    stopped: oneshot::Receiver<()>,
) {
    let store = Arc::new(RocksDbStore::open(dir, false).unwrap());
    let engine = Engine::open(store, SHARDS, RuleConfig::default(), Arc::new(Metrics::new())).unwrap();
    let sinks: Vec<Box<dyn AlertSink>> = vec![Box::new(sink)];
    let (wake, outbox) = runtime::start_outbox(Arc::clone(engine.store()), sinks, Arc::clone(engine.metrics()));
    let app = AppState::new(engine, Some(wake));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addr.send(listener.local_addr().unwrap()).unwrap();
        let shutdown = async {
            let _ = stopped.await;
        };
        runtime::serve(Arc::clone(&app), listener, max_body_bytes, shutdown).await.unwrap();
    });
    drop(rt);
    app.outbox_wake.lock().unwrap().take();
    outbox.join().unwrap();
}

fn dec(v: &Value) -> Decimal {
    v.as_str().unwrap_or_else(|| panic!("decimal must be a string: {v}")).parse().unwrap()
}

fn decs(v: &Value, fields: &[&str]) -> Vec<Decimal> {
    fields.iter().map(|f| dec(&v[f])).collect()
}

fn ds(xs: &[&str]) -> Vec<Decimal> {
    xs.iter().map(|x| d(x)).collect()
}

fn limits(account: &str, user: &str, max_weight: &str) -> EventBody {
    EventBody::RiskLimitsSet(RiskLimitsSet {
        account_id: account.into(),
        user_id: user.into(),
        max_position_weight: Some(d(max_weight)),
        ..Default::default()
    })
}

/// Two securities and one account holding them; the concentration limit is 100%
/// so that only the drift and market-move rules can fire.
fn book() -> Vec<Event> {
    vec![
        ev("list-AAA", 0, listed("AAA")),
        ev("list-BBB", 0, listed("BBB")),
        ev("open-1", 1, opened(ACC, USER)),
        ev("limits-1", 1, limits(ACC, USER, "1")),
        ev("dep-1", 1, deposit(ACC, USER, "10000.00")),
        ev("buy-AAA", 2, trade("buy-AAA", ACC, USER, "AAA", Side::Buy, "50", "100")),
        ev("buy-BBB", 2, trade("buy-BBB", ACC, USER, "BBB", Side::Buy, "30", "100")),
        ev("targets-1", 3, targets(ACC, USER, &[("AAA", "0.5"), ("BBB", "0.3"), ("CASH", "0.2")])),
    ]
}

/// AAA 100 -> 120 -> 125 on the trade day; conflated into one price batch.
fn ticks() -> Vec<Event> {
    vec![ev("tick-1", 10, tick("AAA", "120")), ev("tick-2", 11, tick("AAA", "125"))]
}

fn json_array(events: &[Event]) -> String {
    serde_json::to_string(&events.iter().map(|e| serde_json::to_value(e).unwrap()).collect::<Vec<_>>()).unwrap()
}

fn json_lines(events: &[Event]) -> String {
    events.iter().map(json::encode).collect::<Vec<_>>().join("\n")
}

fn account_shard() -> u32 {
    shard_for(USER, SHARDS)
}

/// The book's 8 events, all accepted: 2 broadcast listings stored in both shards
/// plus 6 account events = 10 records.
fn assert_book_accepted(status: StatusCode, report: &Value) {
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["accepted"], 8, "{report}");
    assert_eq!(report["records_appended"], 10, "{report}");
    assert_eq!(report["rejected"], json!([]));
    assert_eq!(report["alerts"], 0);
}

/// cash = 10000 - (50 x 100 + 1 fee) - (30 x 100 + 1 fee) = 1998
/// market value V = 50 x 100 + 30 x 100 + 1998 = 9998
/// weights: AAA 5000/9998 = 0.50010002, BBB 3000/9998 = 0.30006001,
/// CASH 1998/9998 = 0.19983997 (8 places); bands min(5%, 25% x target):
/// AAA 0.05, BBB 0.05, CASH min(0.05, 0.05) = 0.05; all in band.
fn assert_book_state(view: &Value) {
    assert_eq!(view["account_id"], ACC);
    assert_eq!(view["shard"], account_shard());
    assert_eq!(decs(view, &["cash", "market_value"]), ds(&["1998", "9998"]));
    let cols = ["quantity", "cost_basis", "price", "market_value", "weight"];
    let positions = view["positions"].as_array().unwrap();
    assert_eq!(positions.iter().map(|p| p["symbol"].as_str().unwrap()).collect::<Vec<_>>(), ["AAA", "BBB"]);
    assert_eq!(decs(&positions[0], &cols), ds(&["50", "5001", "100", "5000", "0.50010002"]));
    assert_eq!(decs(&positions[1], &cols), ds(&["30", "3001", "100", "3000", "0.30006001"]));
    assert_drift(view, &[("AAA", "0.5", "0.50010002"), ("BBB", "0.3", "0.30006001"), ("CASH", "0.2", "0.19983997")]);
    assert_eq!(view["in_band"], true);
}

/// Each drift line: (symbol, target, weight), drift = weight - target, band 0.05.
fn assert_drift(view: &Value, expected: &[(&str, &str, &str)]) {
    let lines = view["drift"].as_array().unwrap();
    assert_eq!(lines.len(), expected.len(), "{view}");
    for (line, (symbol, target, weight)) in lines.iter().zip(expected) {
        assert_eq!(line["symbol"], *symbol);
        let drift = d(weight) - d(target);
        assert_eq!(
            decs(line, &["target", "weight", "drift", "band"]),
            vec![d(target), d(weight), drift, d("0.05")],
            "{line}"
        );
        assert_eq!(line["in_band"], drift.abs() <= d("0.05"), "{line}");
    }
}

async fn wait_for_delivery(sink: &MemoryAlertSink, alert_id: &str) -> Vec<riskstream_schemas::Alert> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let delivered = sink.alerts();
        if delivered.iter().any(|a| a.alert_id == alert_id) || Instant::now() > deadline {
            return delivered;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_array_book_then_ticks_raise_a_delivered_drift_alert() {
    let server = Server::start(1 << 20);
    let (status, report) = server.post(JSON, json_array(&book())).await;
    assert_book_accepted(status, &report);
    assert_book_state(&server.get(&format!("/v1/accounts/{ACC}")).await);

    // Two ticks -> one PriceBatch per shard (2 records); both ticks count as accepted.
    let (status, report) = server.post(JSON, json_array(&ticks())).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        (report["accepted"].clone(), report["records_appended"].clone(), report["alerts"].clone()),
        (json!(2), json!(2), json!(2))
    );

    // AAA at 125: V = 50 x 125 + 3000 + 1998 = 11248; AAA 6250/11248 = 0.55565434 is
    // 0.05565434 above its 0.5 target, outside the 0.05 band (Medium: not beyond 2 x band).
    // BBB 3000/11248 = 0.26671408, CASH 1998/11248 = 0.17763158 stay inside theirs.
    let view = server.get(&format!("/v1/accounts/{ACC}")).await;
    assert_eq!(decs(&view, &["cash", "market_value"]), ds(&["1998", "11248"]));
    assert_eq!(decs(&view["positions"][0], &["price", "market_value"]), ds(&["125", "6250"]));
    assert_drift(&view, &[("AAA", "0.5", "0.55565434"), ("BBB", "0.3", "0.26671408"), ("CASH", "0.2", "0.17763158")]);
    assert_eq!(view["in_band"], false);

    let alerts = server.get("/v1/alerts?since=0").await;
    let list = alerts["alerts"].as_array().unwrap();
    // Symbol rules run before account rules: AAA moved 125/100 - 1 = 25% >= 10% (High: >= 2 x 10%).
    let kinds: Vec<_> = list
        .iter()
        .map(|a| (a["number"].clone(), a["kind"].clone(), a["state"].clone(), a["priority"].clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            (json!(1), json!("market_move"), json!("raised"), json!("high")),
            (json!(2), json!("drift"), json!("raised"), json!("medium"))
        ]
    );
    assert_eq!(alerts["next"], 2);
    let drift = &list[1];
    assert_eq!((drift["account_id"].clone(), drift["user_id"].clone()), (json!(ACC), json!(USER)));
    assert_eq!(decs(drift, &["value", "threshold"]), ds(&["0.05565434", "0.05"]));
    assert_eq!(decs(&list[0], &["value", "threshold"]), ds(&["0.25", "0.10"]));
    assert_eq!(drift["ts"], "2026-04-01T14:11:00Z");
    let message = drift["message"].as_str().unwrap();
    assert!(message.starts_with("AAA weight 55.5") && message.ends_with("% vs target 50.00% (band ±5.00%)"), "{drift}");
    let alert_id = drift["alert_id"].as_str().unwrap();
    assert_eq!(alert_id.len(), 32);

    let per_account = server.get(&format!("/v1/accounts/{ACC}/alerts")).await;
    assert_eq!(per_account["alerts"].as_array().unwrap(), list);

    let delivered = wait_for_delivery(&server.sink, alert_id).await;
    let delivered_ids: Vec<_> = delivered.iter().map(|a| a.alert_id.as_str()).collect();
    assert_eq!(delivered_ids, [list[0]["alert_id"].as_str().unwrap(), alert_id]);

    assert_cause_record(&server, drift).await;
    assert_health_metrics_and_docs(&server).await;
}

/// The alert's cause is the account shard's price batch: seq 9 after 8 book records.
async fn assert_cause_record(server: &Server, alert: &Value) {
    let (shard, seq) = (alert["caused_by"]["shard"].clone(), alert["caused_by"]["seq"].clone());
    assert_eq!((shard.clone(), seq.clone()), (json!(account_shard()), json!(9)));
    let record = server.get(&format!("/v1/events/{shard}/{seq}")).await;
    let previous = server.get(&format!("/v1/events/{shard}/8")).await;
    let is_hash = |v: &Value| v.as_str().is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(is_hash(&record["hash"]) && is_hash(&record["prev_hash"]), "{record}");
    assert_eq!(record["prev_hash"], previous["hash"]);
    assert_ne!(record["hash"], record["prev_hash"]);
    assert_eq!(
        (record["shard"].clone(), record["seq"].clone(), record["source"].clone()),
        (shard, seq, json!("http:1"))
    );
    assert_eq!(record["schema_fingerprint"].as_str().unwrap().len(), 16);
    let event = &record["event"];
    assert_eq!(event["type"], "PriceBatch");
    assert_eq!(event["ts"], "2026-04-01T14:11:00Z");
    assert_eq!(dec(&event["prices"]["AAA"]), d("125"));
    assert_eq!(previous["event"]["type"], "TargetAllocationSet");
    assert_eq!(previous["event"]["event_id"], "targets-1");
}

async fn assert_health_metrics_and_docs(server: &Server) {
    // Account shard: 2 listings + 6 account events + 1 price batch; the other: 2 + 1.
    let health = server.get("/healthz").await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["accounts"], 1);
    let seqs: Vec<_> =
        health["shards"].as_array().unwrap().iter().map(|s| (s["shard"].clone(), s["seq"].clone())).collect();
    let mine = account_shard();
    let expected: Vec<_> = (0..SHARDS).map(|s| (json!(s), json!(if s == mine { 9 } else { 3 }))).collect();
    assert_eq!(seqs, expected);

    let metrics = server.get_text("/metrics").await;
    for line in [
        "riskstream_events_total{result=\"accepted\"} 10",
        "riskstream_alerts_total{kind=\"drift\",state=\"raised\"} 1",
        "riskstream_alerts_total{kind=\"market_move\",state=\"raised\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "missing `{line}` in:\n{metrics}");
    }
    // Every batch times each of its stages once.
    let count = |name: &str| -> u64 {
        let line = metrics.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in:\n{metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let batches = count("riskstream_batch_seconds_count");
    assert!(batches > 0);
    for stage in ["sequence", "apply", "commit", "audit"] {
        assert_eq!(count(&format!("riskstream_stage_seconds_count{{stage=\"{stage}\"}}")), batches, "{stage}");
    }

    let openapi = server.get("/v1/openapi.json").await;
    assert_eq!(openapi["openapi"], "3.0.3");
    let routes = [
        "/v1/events",
        "/v1/events/{shard}/{seq}",
        "/v1/accounts/{id}",
        "/v1/accounts/{id}/alerts",
        "/v1/accounts/{id}/risk",
        "/v1/accounts/{id}/lots",
        "/v1/accounts/{id}/realized",
        "/v1/accounts/{id}/harvest",
        "/v1/accounts/{id}/what-if",
        "/v1/users/{id}/wash-sales",
        "/v1/securities/{symbol}/risk",
        "/v1/audit/{shard}/root",
        "/v1/audit/{shard}/inclusion",
        "/v1/audit/{shard}/consistency",
        "/v1/alerts",
        "/v1/dead-letters",
        "/v1/schemas",
        "/v1/openapi.json",
        "/healthz",
        "/readyz",
        "/metrics",
        // The notifier's, served beside the API when it runs.
        "/v1/users/{id}/inbox",
        "/v1/users/{id}/preferences",
        "/v1/notifier/dead-letters",
        "/v1/notifier/dead-letters/redrive",
        "/v1/notifier/endpoints",
        "/v1/notifier/health",
    ];
    for route in routes {
        assert!(openapi["paths"].get(route).is_some(), "openapi.json lacks {route}");
    }

    let schemas = server.get("/v1/schemas").await;
    let names: Vec<_> =
        schemas["schemas"].as_array().unwrap().iter().map(|s| s["type"].as_str().unwrap().to_string()).collect();
    let mut expected: Vec<String> = riskstream_schemas::EVENT_TYPES.iter().map(|s| s.to_string()).collect();
    expected.push("Alert".into());
    assert_eq!(names, expected);
    for s in schemas["schemas"].as_array().unwrap() {
        assert_eq!(s["fingerprint"].as_str().unwrap().len(), 16, "{s}");
        assert_eq!(s["schema"]["type"], "record", "{s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_body_is_ingested_like_an_array() {
    let server = Server::start(1 << 20);
    let body = format!("{}\n\n", json_lines(&book()));
    let (status, report) = server.post(NDJSON, body).await;
    assert_book_accepted(status, &report);
    assert_book_state(&server.get(&format!("/v1/accounts/{ACC}")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_single_object_body_is_ingested_like_an_array() {
    let server = Server::start(1 << 20);
    let codec = Codec::new();
    let body: Vec<u8> = book().iter().flat_map(|e| codec.encode_single_object(e).unwrap()).collect();
    let (status, report) = server.post("application/avro", body).await;
    assert_book_accepted(status, &report);
    assert_book_state(&server.get(&format!("/v1/accounts/{ACC}")).await);
}

/// One bad item between two good deposits.
struct BadCase {
    name: &'static str,
    content_type: &'static str,
    bad: String,
    field: Option<&'static str>,
    reason: &'static str,
}

fn case(name: &'static str, bad: Value, field: &'static str, reason: &'static str) -> BadCase {
    BadCase { name, content_type: JSON, bad: bad.to_string(), field: Some(field), reason }
}

/// An event's JSON with `edit` applied (a field changed, added or removed).
fn edited(event: Event, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut v = serde_json::to_value(event).unwrap();
    edit(v.as_object_mut().unwrap());
    v
}

fn sell_aaa(id: &str, qty: &str) -> Event {
    ev(id, 5, trade(id, ACC, USER, "AAA", Side::Sell, qty, "100"))
}

/// A user other than USER that lives on the same shard, so the shard that owns
/// the account is the one that sees the mismatch.
fn same_shard_user() -> String {
    (2..).map(|i| format!("u-{i}")).find(|u| shard_for(u, SHARDS) == account_shard()).unwrap()
}

fn bad_cases() -> Vec<BadCase> {
    let other = same_shard_user();
    vec![
        BadCase {
            name: "malformed JSON line",
            content_type: NDJSON,
            bad: r#"{"type":"CashMovement","event_id":"bad-line","#.to_string(),
            field: None,
            reason: "malformed JSON",
        },
        case(
            "unknown type",
            json!({"type": "Teleport", "event_id": "bad-type", "ts": "2026-04-01T14:05:00Z"}),
            "type",
            "unknown event type `Teleport`",
        ),
        case(
            "missing quantity",
            edited(sell_aaa("bad-missing", "1"), |m| drop(m.remove("quantity"))),
            "quantity",
            "missing field `quantity`",
        ),
        case(
            "negative quantity",
            edited(sell_aaa("bad-negative", "1"), |m| drop(m.insert("quantity".into(), json!("-5")))),
            "quantity",
            "must be positive, got -5",
        ),
        case(
            "short sale",
            serde_json::to_value(sell_aaa("bad-short", "51")).unwrap(),
            "quantity",
            "holds 50 (short sales are not supported)",
        ),
        case(
            "weights not summing to 1",
            serde_json::to_value(ev("bad-weights", 5, targets(ACC, USER, &[("AAA", "0.5"), ("BBB", "0.4")]))).unwrap(),
            "targets",
            "weights must sum to 1, they sum to 0.9",
        ),
        case(
            "unknown account",
            serde_json::to_value(ev("bad-account", 5, deposit("acc-404", USER, "7"))).unwrap(),
            "account_id",
            "unknown account `acc-404`",
        ),
        case(
            "user not owning the account",
            serde_json::to_value(ev("bad-user", 5, deposit(ACC, &other, "7"))).unwrap(),
            "user_id",
            "belongs to user `u-1`",
        ),
    ]
}

/// The body of a case: deposits of `a` and `b` around the bad item (index 1).
fn case_body(c: &BadCase, n: usize, a: &str, b: &str) -> String {
    let good = |tag: &str, amount: &str| json::encode(&ev(&format!("good-{n}-{tag}"), 5, deposit(ACC, USER, amount)));
    let items = [good("a", a), c.bad.clone(), good("b", b)];
    match c.content_type {
        NDJSON => items.join("\n"),
        _ => format!("[{}]", items.join(",")),
    }
}

async fn assert_bad_case(server: &Server, c: &BadCase, n: usize, since: u64) {
    let cash = server.cash().await;
    let (a, b) = (format!("{}.25", n + 1), format!("{}.50", 10 * (n + 1)));
    let (status, report) = server.post(c.content_type, case_body(c, n, &a, &b)).await;
    let ctx = format!("case `{}`: {report}", c.name);
    assert_eq!(status, StatusCode::MULTI_STATUS, "{ctx}");
    assert_eq!((report["accepted"].clone(), report["duplicates"].clone()), (json!(2), json!(0)), "{ctx}");
    let rejected = report["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{ctx}");
    assert_eq!(rejected[0]["index"], 1, "{ctx}");
    assert_eq!(rejected[0]["field"].as_str(), c.field, "{ctx}");
    assert!(rejected[0]["reason"].as_str().unwrap().contains(c.reason), "{ctx}");
    // Both neighbours applied.
    assert_eq!(server.cash().await, cash + d(&a) + d(&b), "{ctx}");

    let letters = server.dead_letters(since).await;
    assert_eq!(letters.len(), 1, "{ctx}: {letters:?}");
    let letter = &letters[0];
    assert_eq!((letter["number"].clone(), letter["index"].clone()), (json!(since + 1), json!(1)), "{ctx}");
    assert_eq!(letter["field"].as_str(), c.field, "{ctx}");
    assert_eq!(letter["reason"], rejected[0]["reason"], "{ctx}");
    assert_same_item(letter["raw"].as_str().unwrap(), &c.bad, &ctx);
}

/// A dead letter keeps the item as sent (as the same JSON value when it parsed).
fn assert_same_item(raw: &str, sent: &str, ctx: &str) {
    match (serde_json::from_str::<Value>(raw), serde_json::from_str::<Value>(sent)) {
        (Ok(r), Ok(s)) => assert_eq!(r, s, "{ctx}"),
        _ => assert_eq!(raw, sent, "{ctx}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_items_are_dead_lettered_and_their_neighbours_applied() {
    let server = Server::start(1 << 20);
    let (status, report) = server.post(JSON, json_array(&book())).await;
    assert_book_accepted(status, &report);
    for (n, c) in bad_cases().iter().enumerate() {
        assert_bad_case(&server, c, n, n as u64).await;
    }
    // Nothing bad reached the state: the short sale and the mismatched user left AAA and the targets alone.
    let view = server.get(&format!("/v1/accounts/{ACC}")).await;
    assert_eq!(dec(&view["positions"][0]["quantity"]), d("50"));
    assert_eq!(view["drift"].as_array().unwrap().len(), 3);
}

/// Contract: decimals are JSON strings. A number is refused, and the rejection
/// must name the field (`amount`), not the offending value; likewise a bad enum value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrongly_typed_field_is_refused_naming_the_field() {
    let server = Server::start(1 << 20);
    let (status, report) = server.post(JSON, json_array(&book())).await;
    assert_book_accepted(status, &report);
    let number = edited(ev("bad-number", 5, deposit(ACC, USER, "7")), |m| drop(m.insert("amount".into(), json!(7))));
    let side = edited(sell_aaa("bad-side", "1"), |m| drop(m.insert("side".into(), json!("short"))));
    let cases = [
        case("decimal as a JSON number", number, "amount", "invalid type: integer `7`"),
        case("unknown side", side, "side", "unknown variant `short`"),
    ];
    for (n, c) in cases.iter().enumerate() {
        assert_bad_case(&server, c, n, n as u64).await;
    }
}

/// Percentages in alert messages are rounded to 2 places: 6250/11248 = 55.5654% -> 55.57%.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_message_rounds_percentages() {
    let server = Server::start(1 << 20);
    server.post(JSON, json_array(&[book(), ticks()].concat())).await;
    let alerts = server.get("/v1/alerts?since=0").await;
    let drift = alerts["alerts"].as_array().unwrap().iter().find(|a| a["kind"] == "drift").cloned().unwrap();
    assert_eq!(drift["message"], "AAA weight 55.57% vs target 50.00% (band ±5.00%)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_array_is_refused_whole_and_kept_as_one_dead_letter() {
    let server = Server::start(1 << 20);
    let body = r#"[{"type":"CashMovement","event_id":"x","#;
    let (status, report) = server.post(JSON, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{report}");
    assert!(report["error"].as_str().unwrap().contains("malformed JSON array"), "{report}");
    let letters = server.dead_letters(0).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["raw"], body);
    assert!(letters[0]["reason"].as_str().unwrap().starts_with("malformed JSON array"), "{letters:?}");
    assert_eq!(server.get("/healthz").await["shards"][0]["seq"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_content_type_is_415() {
    let server = Server::start(1 << 20);
    let (status, report) = server.post("application/xml", json_array(&book())).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{report}");
    assert!(report["error"].as_str().unwrap().contains("`application/xml`"), "{report}");
    assert!(server.dead_letters(0).await.is_empty());
    assert_eq!(server.get("/healthz").await["accounts"], 0);
}

/// docs/API.md: every error is `{"error": ...}` saying what is wrong, the
/// router's own (unknown route, wrong method, unparsable query or path) included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_answer_is_json_naming_what_is_wrong() {
    let server = Server::start(1 << 20);
    let (status, report) = server.post(JSON, json_array(&book())).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let send = |method: reqwest::Method, path: &str| {
        let request = server.http.request(method, format!("{}{path}", server.base));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let kind = response.headers().get(CONTENT_TYPE).map(|v| v.to_str().unwrap().to_string());
            let body: Value = serde_json::from_str(&response.text().await.unwrap()).expect("a JSON body");
            assert_eq!(kind.as_deref(), Some("application/json"), "{body}");
            (status, body["error"].as_str().expect("an `error` string").to_string())
        }
    };
    let cases: [(reqwest::Method, &str, StatusCode, &str); 6] = [
        (reqwest::Method::GET, "/nope", StatusCode::NOT_FOUND, "no route GET /nope"),
        (reqwest::Method::GET, "/v1/events", StatusCode::METHOD_NOT_ALLOWED, "/v1/events does not take GET"),
        (reqwest::Method::GET, "/v1/alerts?limit=abc", StatusCode::BAD_REQUEST, "limit"),
        (reqwest::Method::GET, "/v1/events/x/1", StatusCode::BAD_REQUEST, "`x`"),
        (reqwest::Method::GET, "/v1/accounts/nobody", StatusCode::NOT_FOUND, "nobody"),
        (reqwest::Method::GET, "/v1/audit/0/inclusion?seq=42", StatusCode::BAD_REQUEST, "record 42 is not in"),
    ];
    for (method, path, expected, says) in cases {
        let (status, error) = send(method.clone(), path).await;
        assert_eq!(status, expected, "{method} {path}: {error}");
        assert!(error.contains(says), "{method} {path}: `{error}` should say `{says}`");
    }
    let (status, report) = server.post("text/plain", json_array(&book())).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "docs/EVENTS.md: another content type is 415: {report}");
    assert!(report["error"].as_str().unwrap().contains("`text/plain`"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_is_413() {
    let server = Server::start(4096);
    let events: Vec<Event> = (0..40).map(|i| ev(&format!("l-{i}"), 0, listed(&format!("SYM{i:03}")))).collect();
    let body = json_array(&events);
    assert!(body.len() > 4096, "{}", body.len());
    let (status, error) = server.post(JSON, body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(error["error"].as_str().is_some_and(|e| e.contains("limit")), "{error}");
    // A body under the limit still goes through.
    let (status, report) = server.post(JSON, json_array(&events[..5])).await;
    assert_eq!((status, report["accepted"].clone()), (StatusCode::OK, json!(5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resending_a_batch_changes_nothing() {
    let server = Server::start(1 << 20);
    let batch = json_array(&[book(), ticks()].concat());
    let (status, first) = server.post(JSON, batch.clone()).await;
    assert_eq!(
        (status, first["accepted"].clone(), first["duplicates"].clone()),
        (StatusCode::OK, json!(10), json!(0)),
        "{first}"
    );
    let view = server.get(&format!("/v1/accounts/{ACC}")).await;
    let health = server.get("/healthz").await;
    let alerts = server.get("/v1/alerts?since=0").await;

    let (status, second) = server.post(JSON, batch).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    // The 8 book events carry ids -> duplicates; the 2 ticks are older than the stored price -> stale.
    let counts = ["accepted", "duplicates", "stale_ticks", "records_appended", "alerts"].map(|k| second[k].clone());
    assert_eq!(counts, [json!(0), json!(8), json!(2), json!(0), json!(0)], "{second}");
    assert_eq!(second["rejected"], json!([]));
    assert_eq!(server.get(&format!("/v1/accounts/{ACC}")).await, view);
    assert_eq!(server.get("/healthz").await, health);
    assert_eq!(server.get("/v1/alerts?since=0").await, alerts);
    assert!(server.dead_letters(0).await.is_empty());
}
