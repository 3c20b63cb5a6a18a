//! The schema registry client against a real registry on 127.0.0.1: karapace 3.16.0
//! (Aiven's Confluent-compatible registry) storing its schemas in a noida-db Kafka
//! broker, both started here on free ports and killed on drop.
//!
//! Tools, installed by `bash deploy/dev/install-deps.sh`:
//! - noida-db 0.2.3, from PyPI; found through `RISKSTREAM_NOIDA_BIN` or the installed
//!   Python package (its binary is run directly: killing the Python launcher would leave
//!   the broker running).
//! - karapace 3.16.0, which is not on PyPI (and no Confluent registry can be fetched
//!   here): built from its source outside this repository into a venv, with PyPI
//!   `avro==1.11.3` for its patched avro; found through `RISKSTREAM_KARAPACE_BIN` or
//!   `${XDG_CACHE_HOME:-~/.cache}/riskstream/karapace-3.16.0/bin/karapace`. So the
//!   round-trip test is `#[ignore]`d in `make test`; run it where karapace is installed:
//!   `RISKSTREAM_KARAPACE_BIN=... cargo nextest run -p riskstream-connectors --test registry --run-ignored all`.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use riskstream_connectors::kafka::registry::{RegistryError, SchemaRegistry};
use riskstream_schemas::avro::canonical_form;
use serde_json::Value;

const INSTALL: &str = "see this file's header";
const BROKER_WAIT: Duration = Duration::from_secs(30);
/// karapace answers 503 until it has replayed its schemas topic and elected itself primary.
const REGISTRY_WAIT: Duration = Duration::from_secs(90);

/// The crate's directory as the test runner reports it at run time: a binary built
/// from another checkout sharing the target dir must not read that checkout's files.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}

fn avro_schema(name: &str) -> String {
    let path = manifest_dir().join("../schemas/avro").join(format!("{name}.avsc"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn noida_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("RISKSTREAM_NOIDA_BIN") {
        return PathBuf::from(p);
    }
    let script = "import importlib.util, os; s = importlib.util.find_spec('noida_db'); \
                  print(os.path.join(os.path.dirname(s.origin), 'noida-db') if s else '')";
    let out = Command::new("python3")
        .args(["-c", script])
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed to find noida-db ({e}); {INSTALL}"));
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(path.is_file(), "test broker noida-db 0.2.3 is not installed: {INSTALL} (pip install noida-db==0.2.3)");
    path
}

fn karapace_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("RISKSTREAM_KARAPACE_BIN") {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME is set");
    let path = cache.join("riskstream/karapace-3.16.0/bin/karapace");
    assert!(
        path.is_file(),
        "schema registry karapace 3.16.0 is not installed at {}: {INSTALL} (or set RISKSTREAM_KARAPACE_BIN)",
        path.display()
    );
    path
}

/// A child process killed (and reaped) on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(mut command: Command, dir: &Path, log: &str) -> Killed {
    let file = std::fs::File::create(dir.join(log)).unwrap();
    let child = command
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}; {INSTALL}"));
    Killed(child)
}

fn log_tail(dir: &Path, log: &str) -> String {
    let text = std::fs::read_to_string(dir.join(log)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// karapace on a noida-db broker. Fields drop in order: the registry goes before its broker.
struct Registry {
    registry: Killed,
    _broker: Killed,
    url: String,
    dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let (noida, karapace) = (noida_bin(), karapace_bin());
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let kafka_port = free_port();
        let mut command = Command::new(noida);
        command.args(["start", "--only", "kafka", "--kafka-port", &kafka_port.to_string(), "--data-dir"]);
        command.arg(dir.path().join("broker"));
        let mut broker = spawn(command, dir.path(), "broker.log");
        while TcpStream::connect(("127.0.0.1", kafka_port)).is_err() {
            let exited = broker.0.try_wait().unwrap();
            assert!(
                exited.is_none() && started.elapsed() < BROKER_WAIT,
                "noida-db did not listen on 127.0.0.1:{kafka_port} within {BROKER_WAIT:?} (exit: {exited:?}); its log:\n{}",
                log_tail(dir.path(), "broker.log")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let broker_ready = started.elapsed();

        let port = free_port();
        let config = serde_json::json!({
            "bootstrap_uri": format!("127.0.0.1:{kafka_port}"),
            "host": "127.0.0.1",
            "port": port,
            "advertised_hostname": "127.0.0.1",
            "advertised_port": port,
            "karapace_registry": true,
            "karapace_rest": false,
            "topic_name": "_schemas",
            "replication_factor": 1,
            "log_level": "INFO",
            // karapace subscribes to its schemas topic while creating it; a consumer that
            // saw the topic missing only looks again after this age (default 60 s).
            "metadata_max_age_ms": 2000,
        });
        std::fs::write(dir.path().join("karapace.json"), config.to_string()).unwrap();
        let mut command = Command::new(karapace);
        command.arg("karapace.json");
        let since = Instant::now();
        let registry = spawn(command, dir.path(), "karapace.log");
        let mut registry = Registry { registry, _broker: broker, url: format!("http://127.0.0.1:{port}"), dir };
        registry.wait_ready(since);
        eprintln!(
            "noida-db listening after {:.1} s, karapace ready {:.1} s after its start",
            broker_ready.as_secs_f64(),
            since.elapsed().as_secs_f64()
        );
        registry
    }

    /// `GET /subjects` answers 200 only once the schemas topic is replayed.
    fn wait_ready(&mut self, since: Instant) {
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
        let probe = format!("{}/subjects", self.url);
        loop {
            let last = match http.get(&probe).send() {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => format!("HTTP {}", r.status()),
                Err(e) => e.to_string(),
            };
            let exited = self.registry.0.try_wait().unwrap();
            assert!(
                exited.is_none() && since.elapsed() < REGISTRY_WAIT,
                "karapace at {} not ready within {REGISTRY_WAIT:?} (exit: {exited:?}, last probe: {last}); its log:\n{}",
                self.url,
                log_tail(self.dir.path(), "karapace.log")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn parsed(json: &str) -> Value {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"))
}

#[test]
#[ignore = "needs karapace 3.16.0, which is not on PyPI: see the file header"]
fn registers_and_fetches_schemas_on_a_real_registry() {
    let server = Registry::start();
    let trade = avro_schema("TradeExecuted");
    let tick = avro_schema("MarketTick");
    let registry = SchemaRegistry::new(&server.url).unwrap();

    let id = registry.register("riskstream.v1.TradeExecuted", &trade).unwrap();
    assert_eq!(registry.register("riskstream.v1.TradeExecuted", &trade).unwrap(), id, "same schema, same id (cached)");
    // A fresh client: the registry itself must find the schema it already has.
    let fresh = SchemaRegistry::new(&format!("{}/", server.url)).unwrap();
    assert_eq!(fresh.register("riskstream.v1.TradeExecuted", &trade).unwrap(), id, "same schema, same id (server)");

    let fetched = fresh.schema(id).unwrap();
    assert_eq!(parsed(&fetched), parsed(&trade), "schema {id} as the registry returns it");
    assert_eq!(canonical_form(&fetched).unwrap(), canonical_form(&trade).unwrap());
    assert_eq!(fresh.schema(id).unwrap(), fetched, "cached");

    let tick_id = registry.register("riskstream.v1.MarketTick", &tick).unwrap();
    assert_ne!(tick_id, id, "a second schema gets its own id");
    assert_eq!(parsed(&registry.schema(tick_id).unwrap()), parsed(&tick));

    let unknown = id.max(tick_id) + 1000;
    let err = registry.schema(unknown).unwrap_err();
    assert!(matches!(err, RegistryError::UnknownId { id, status: 404, .. } if id == unknown), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&format!("schema id {unknown}")) && text.contains(&server.url), "{text}");
    assert!(!err.is_transient());

    // Message values with registry ids: written by one codec, read by a fresh one that
    // knows the id only from the registry.
    use riskstream_connectors::kafka::{ValueCodec, ValueFormat};
    let event = riskstream_schemas::json::decode_line(
        0,
        r#"{"type":"TradeExecuted","ts":"2026-03-02T14:03:00Z","trade_id":"T-1","account_id":"a","user_id":"u","symbol":"AAA","side":"buy","quantity":"10","price":"100.5","fees":"1"}"#,
    )
    .result
    .unwrap();
    let writer = ValueCodec::with_registry(SchemaRegistry::new(&server.url).unwrap());
    let value = writer.encode(ValueFormat::Avro, &event).unwrap();
    assert_eq!(u32::from_be_bytes(value[1..5].try_into().unwrap()), id, "the registry's id in the wire format");
    let reader = ValueCodec::with_registry(SchemaRegistry::new(&server.url).unwrap());
    assert_eq!(reader.decode(ValueFormat::Avro, &value).unwrap(), event);
}

#[test]
fn a_closed_port_is_an_error_naming_the_url() {
    let port = free_port(); // bound then released: nothing listens on it
    let url = format!("http://127.0.0.1:{port}");
    let registry = SchemaRegistry::new(&url).unwrap();

    let err = registry.schema(1).unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
    assert!(err.is_transient());
    let text = err.to_string();
    assert!(text.contains(&format!("{url}/schemas/ids/1")) && text.contains("refused"), "{text}");

    let err = registry.register("riskstream.v1.TradeExecuted", &avro_schema("TradeExecuted")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&format!("{url}/subjects/riskstream.v1.TradeExecuted/versions")), "{text}");
}
