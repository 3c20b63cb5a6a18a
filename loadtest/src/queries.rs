//! `--query-rate`: the engine's API served on 127.0.0.1:0 while the workload runs,
//! and a reader that sends `GET /v1/accounts/{id}` for random accounts at a fixed
//! rate over real HTTP (keep-alive), timing each answer. A query that waits for a
//! batch shows up in its tail: that is what this measures.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use riskstream_engine::handle::AppState;
use riskstream_engine::runtime;
use riskstream_engine::store::RocksDbStore;

/// Latency of the queries answered while the workload ran.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueryResult {
    pub rate: f64,
    /// Queries answered per second of the run (below `rate` when answers stalled).
    pub achieved_rate: f64,
    pub answered: u64,
    pub failed: u64,
    pub us_p50: u64,
    pub us_p99: u64,
    pub us_p999: u64,
    pub us_max: u64,
}

/// The API server and the reader, running until `finish`.
pub struct QueryLoad {
    stop: Arc<AtomicBool>,
    server_stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<std::thread::JoinHandle<()>>,
    reader: Option<std::thread::JoinHandle<anyhow::Result<QueryResult>>>,
}

impl QueryLoad {
    /// Serves `app` and starts querying `accounts` accounts (`acc-000001` ...) at `rate`/s.
    pub fn start(app: Arc<AppState<RocksDbStore>>, rate: f64, accounts: usize) -> anyhow::Result<QueryLoad> {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (server_stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = std::thread::spawn(move || {
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
            rt.block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
                addr_tx.send(listener.local_addr().expect("address")).expect("the loadtest waits");
                let shutdown = async {
                    let _ = stopped.await;
                };
                runtime::serve(app, listener, 1 << 20, shutdown).await.expect("the API serves");
            });
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(10))?;
        let stop = Arc::new(AtomicBool::new(false));
        let reader_stop = Arc::clone(&stop);
        let reader = std::thread::spawn(move || read(format!("http://{addr}"), rate, accounts, &reader_stop));
        Ok(QueryLoad { stop, server_stop: Some(server_stop), server: Some(server), reader: Some(reader) })
    }

    /// Stops the reader and the server; the latency of what was answered.
    pub fn finish(mut self) -> anyhow::Result<QueryResult> {
        self.stop.store(true, Ordering::Relaxed);
        let result = self.reader.take().expect("started").join().expect("the reader does not panic");
        if let Some(tx) = self.server_stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = h.join();
        }
        result
    }
}

/// One connection paced by schedule: a stalled answer delays the sends behind it
/// (the achieved rate shows it), and each latency runs from its own send.
fn read(base: String, rate: f64, accounts: usize, stop: &AtomicBool) -> anyhow::Result<QueryResult> {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut answered, mut failed, mut n) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    // A fixed multiplicative walk over the accounts: deterministic, spread out.
    let mut k = 1usize;
    while !stop.load(Ordering::Relaxed) {
        let due = Duration::from_secs_f64(n as f64 / rate);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        n += 1;
        k = (k * 7919 + 13) % accounts.max(1);
        let sent = Instant::now();
        let ok = client
            .get(format!("{base}/v1/accounts/acc-{:06}", k + 1))
            .send()
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.bytes())
            .is_ok();
        if ok {
            answered += 1;
            latency.record((sent.elapsed().as_micros() as u64).max(1))?;
        } else {
            failed += 1;
        }
    }
    Ok(QueryResult {
        rate,
        achieved_rate: answered as f64 / started.elapsed().as_secs_f64(),
        answered,
        failed,
        us_p50: latency.value_at_quantile(0.5),
        us_p99: latency.value_at_quantile(0.99),
        us_p999: latency.value_at_quantile(0.999),
        us_max: latency.max(),
    })
}
