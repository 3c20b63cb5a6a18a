//! `--notifier ALERTS`: webhook deliveries through the notifier (signing, the ledger
//! on SQLite or, with `--notifier-ledger-url`, PostgreSQL, real HTTP) to a Rust receiver on 127.0.0.1 that only counts, so the
//! receiver is not what is measured. Reports deliveries/s unpaced, then the
//! alert-to-delivery latency at `--notifier-rate` alerts/s offered in 10 ms ticks
//! (an alert's latency: from when it was offered to the end of the `notify` call
//! that delivered it, as the engine's outbox calls it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use riskstream_notifier::{Ledger, Notifier, WebhookChannel, WebhookConfig};
use riskstream_schemas::{Alert, AlertKind, AlertState, Priority, RecordRef, Timestamp};

/// The `n`th alert of run `run` (ids differ between runs sharing one ledger).
fn alert(run: u64, n: u64) -> Alert {
    Alert {
        alert_id: format!("{run:016x}{n:016x}"),
        kind: AlertKind::Drift,
        state: AlertState::Raised,
        priority: Priority::High,
        account_id: format!("acc-{:06}", n % 10_000),
        user_id: format!("usr-{:06}", n % 5_000),
        ts: Timestamp::parse("2026-01-05T14:30:00Z").expect("a valid time"),
        caused_by: RecordRef { shard: 0, seq: n },
        rule: "drift".into(),
        value: "0.3125".parse().expect("a decimal"),
        threshold: "0.25".parse().expect("a decimal"),
        message: format!("S{:04} weight 31.25% vs target 25.00% (band ±5.00%)", n % 200),
        details: None,
    }
}

pub fn run(alerts: u64, rate: f64, batch: usize, ledger_url: Option<&str>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let received = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move || {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let url = format!("http://{}/hooks", listener.local_addr()?);
    rt.spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir()?;
    let endpoint = WebhookConfig {
        id: "bench".into(),
        url,
        secrets: vec!["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()],
        allow_private: true,
        rate_limit: None,
    };
    let backend = if ledger_url.is_some() { "PostgreSQL" } else { "SQLite" };
    let run = match ledger_url {
        Some(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64,
        None => 0,
    };
    let make = |name: &str| -> anyhow::Result<Notifier> {
        let ledger = match ledger_url {
            Some(url) => rt.block_on(Ledger::connect(url))?,
            None => rt.block_on(Ledger::open(&dir.path().join(name)))?,
        };
        let channel =
            WebhookChannel::new(vec![endpoint.clone()], Duration::from_secs(10)).map_err(anyhow::Error::msg)?;
        Ok(Notifier::new(ledger, vec![Arc::new(channel)]))
    };

    // Unpaced: as fast as the notifier goes, in the outbox's round size.
    let notifier = make("unpaced.sqlite")?;
    let all: Vec<Alert> = (0..alerts).map(|n| alert(run, n)).collect();
    let started = Instant::now();
    for chunk in all.chunks(batch) {
        rt.block_on(notifier.notify(chunk))?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "notifier, webhook, ledger on {backend}: {alerts} deliveries in {secs:.2} s = {:.0} deliveries/s unpaced (receiver counted {})",
        alerts as f64 / secs,
        received.load(Ordering::Relaxed)
    );

    // Paced: `rate` alerts/s offered every 10 ms; whatever is due goes in one call.
    let notifier = make("paced.sqlite")?;
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    // Ten seconds' worth at `rate`.
    let total = ((rate * 10.0).round() as u64).max(1);
    let start = Instant::now();
    let mut next = 0u64;
    while next < total {
        let due = ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(total);
        if due <= next {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let chunk: Vec<Alert> = (next..due).map(|n| alert(run, alerts + n)).collect();
        rt.block_on(notifier.notify(&chunk))?;
        let done = start.elapsed();
        for n in next..due {
            let offered_at = Duration::from_secs_f64(n as f64 / rate);
            latency.record(done.saturating_sub(offered_at).as_micros().max(1) as u64)?;
        }
        next = due;
    }
    println!(
        "notifier, webhook, ledger on {backend}, {rate:.0} alerts/s offered for {:.1} s: alert-to-delivery p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        start.elapsed().as_secs_f64(),
        latency.value_at_quantile(0.5) as f64 / 1_000.0,
        latency.value_at_quantile(0.99) as f64 / 1_000.0,
        latency.max() as f64 / 1_000.0
    );
    Ok(())
}
