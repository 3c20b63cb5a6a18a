//! Wiring shared by `riskstream run` and `riskstream demo`: the outbox delivery
//! thread, the source pump and the HTTP server. Built sink-first: sinks, then
//! the outbox, then the engine, then the sources that feed it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use riskstream_connectors::{AlertSink, EventSource, SourceError};
use riskstream_schemas::Rejection;

use crate::api;
use crate::handle::AppState;
use crate::metrics::Metrics;
use crate::outbox::OutboxDelivery;
use crate::pipeline::EngineError;
use crate::store::{EventStore, ProjectionStore};

/// Starts alert delivery; dropping the returned sender stops it after a last drain.
pub fn start_outbox<S>(
    store: Arc<S>,
    sinks: Vec<Box<dyn AlertSink>>,
    metrics: Arc<Metrics>,
) -> (Sender<()>, JoinHandle<()>)
where
    S: ProjectionStore + 'static,
{
    if let Ok(pending) = store.outbox(usize::MAX) {
        metrics.outbox_depth.set(pending.len() as i64);
    }
    let (tx, rx) = mpsc::channel();
    let delivery = OutboxDelivery::new(store, sinks, metrics);
    let handle = std::thread::Builder::new()
        .name("outbox".into())
        .spawn(move || delivery.run(rx))
        .expect("can spawn the outbox thread");
    (tx, handle)
}

#[derive(Debug, thiserror::Error)]
pub enum PumpError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// How a pump run ended.
#[derive(Debug, Clone, Default)]
pub struct PumpStats {
    pub items: u64,
    pub batches: u64,
    pub alerts: u64,
    /// Items rejected (and dead-lettered), and the first [`FIRST_REJECTIONS`] of them.
    pub rejected: u64,
    pub first_rejections: Vec<Rejection>,
}

/// How many rejections a pump keeps to show; all of them are dead letters.
pub const FIRST_REJECTIONS: usize = 10;

/// Moves `source` to the position stored for it, if any, and returns that position.
pub fn resume<S>(app: &AppState<S>, source: &mut dyn EventSource) -> Result<Option<String>, PumpError>
where
    S: EventStore + ProjectionStore,
{
    let stored = app.read().store().source_position(source.name()).map_err(EngineError::from)?;
    if let Some(position) = &stored {
        tracing::info!(source = source.name(), position = %position, "resuming source");
        source.seek(position)?;
    }
    Ok(stored)
}

/// How long a paced batch gathers items: its first item waits at most this long for
/// the batch to be sent. Short enough to stay well under the latency budget of a tick
/// (DESIGN.md), long enough that a batch's fixed cost (its commit) is paid once per
/// tens of ticks at the rates the demo offers.
pub const LINGER: Duration = Duration::from_millis(5);

/// The size of the next paced batch: every item due by now that is not sent yet (a
/// backlog goes in one batch, so the engine catches up), at least one linger's worth,
/// at most `batch_max`.
fn paced_batch(rate: f64, elapsed: Duration, sent: u64, batch_max: usize) -> usize {
    let due = (rate * elapsed.as_secs_f64()) as u64;
    let behind = usize::try_from(due.saturating_sub(sent)).unwrap_or(usize::MAX);
    let linger = (rate * LINGER.as_secs_f64()).ceil() as usize;
    behind.max(linger).clamp(1, batch_max.max(1))
}

/// Feeds `source` into the engine from where it stands until it ends or `stop` is
/// set (call [`resume`] first to continue a stored position). With `rate`
/// (items/s), batches are paced: bounded in time by [`LINGER`] and in size by
/// `batch_max`.
pub fn pump<S>(
    app: &AppState<S>,
    source: &mut dyn EventSource,
    batch_max: usize,
    rate: Option<f64>,
    stop: &AtomicBool,
) -> Result<PumpStats, PumpError>
where
    S: EventStore + ProjectionStore,
{
    let started = Instant::now();
    let mut stats = PumpStats::default();
    while !stop.load(Ordering::Relaxed) {
        let max = match rate {
            Some(r) => paced_batch(r, started.elapsed(), stats.items, batch_max),
            None => batch_max,
        };
        let batch = source.next_batch(max)?;
        let n = batch.items.len() as u64;
        if n > 0 || batch.position.is_some() {
            let report = app.write().ingest(source.name(), batch.position, batch.items)?;
            stats.alerts += report.alerts.len() as u64;
            stats.rejected += report.rejected.len() as u64;
            let room = FIRST_REJECTIONS.saturating_sub(stats.first_rejections.len());
            stats.first_rejections.extend(report.rejected.into_iter().take(room));
            app.wake_outbox();
        }
        stats.items += n;
        stats.batches += 1;
        if batch.end {
            break;
        }
        if n == 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(r) = rate {
            let due = Duration::from_secs_f64(stats.items as f64 / r);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    Ok(stats)
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve<S>(
    app: Arc<AppState<S>>,
    listener: tokio::net::TcpListener,
    max_body_bytes: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    S: EventStore + ProjectionStore + 'static,
{
    serve_with(app, listener, max_body_bytes, axum::Router::new(), shutdown).await
}

/// Serves the API and `extra` routes (the notifier's) on `listener` until `shutdown`.
pub async fn serve_with<S>(
    app: Arc<AppState<S>>,
    listener: tokio::net::TcpListener,
    max_body_bytes: usize,
    extra: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    S: EventStore + ProjectionStore + 'static,
{
    let router = api::router_with(app, max_body_bytes, extra);
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}

/// Binds `addr`, saying clearly when the port is taken.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e} (pass --listen with another address)"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paced_batch_is_one_linger_on_schedule_and_the_backlog_when_behind() {
        // 20,000 items/s: 5 ms is 100 items.
        assert_eq!(paced_batch(20_000.0, Duration::ZERO, 0, 20_000), 100);
        // On schedule after 1 s (20,000 sent): one linger's worth.
        assert_eq!(paced_batch(20_000.0, Duration::from_secs(1), 20_000, 20_000), 100);
        // 300 ms behind: the 6,000 items due go at once.
        assert_eq!(paced_batch(20_000.0, Duration::from_secs(1), 14_000, 20_000), 6_000);
        // Never above the size bound, never empty at a low rate.
        assert_eq!(paced_batch(20_000.0, Duration::from_secs(10), 0, 20_000), 20_000);
        assert_eq!(paced_batch(10.0, Duration::ZERO, 0, 20_000), 1);
    }
}
