//! Latency of the measured run. An alert's tick-to-alert is the age of the oldest
//! chunk in its batch at the batch's commit; an event's tick-to-commit is the age of
//! its own chunk.

use std::time::Instant;

use hdrhistogram::Histogram;

/// Tick-to-alert (one count per alert) and tick-to-commit (one per event), in
/// microseconds.
pub(crate) struct Latencies {
    pub alerts: Histogram<u64>,
    pub events: Histogram<u64>,
}

impl Latencies {
    pub(crate) fn new() -> anyhow::Result<Latencies> {
        let histogram = || Histogram::<u64>::new_with_bounds(1, 600_000_000, 3);
        Ok(Latencies { alerts: histogram()?, events: histogram()? })
    }

    /// A committed batch: `made` holds when each of its chunks was made and its
    /// events, oldest first; it raised `alerts`.
    pub(crate) fn record(&mut self, made: &[(Instant, u64)], alerts: u64) -> anyhow::Result<()> {
        let now = Instant::now();
        let age = |at: Instant| (now.duration_since(at).as_micros() as u64).max(1);
        for &(at, events) in made {
            self.events.record_n(age(at), events)?;
        }
        if let Some(&(oldest, _)) = made.first() {
            self.alerts.record_n(age(oldest), alerts)?;
        }
        Ok(())
    }

    pub(crate) fn summary(&self, after_secs: f64) -> Settled {
        let q = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q);
        Settled {
            after_secs,
            alerts: self.alerts.len(),
            alert_us: (q(&self.alerts, 0.5), q(&self.alerts, 0.99), q(&self.alerts, 0.999)),
            event_us: (q(&self.events, 0.5), q(&self.events, 0.99)),
        }
    }
}

/// Latencies of the batches that started `after_secs` into the run: past the first
/// evaluation of every account after the setup, a backlog steady running does not
/// have.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Settled {
    pub after_secs: f64,
    pub alerts: u64,
    /// Tick-to-alert p50, p99, p99.9 (microseconds).
    pub alert_us: (u64, u64, u64),
    /// Tick-to-commit of every event, p50 and p99 (microseconds).
    pub event_us: (u64, u64),
}

impl std::fmt::Display for Settled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |us: u64| us as f64 / 1e3;
        let (p50, p99, p999) = self.alert_us;
        let (e50, e99) = self.event_us;
        write!(
            f,
            "after the first {} s: tick-to-alert p50 {:.1} ms p99 {:.1} ms p99.9 {:.1} ms ({} alerts); tick-to-commit p50 {:.1} ms, p99 {:.1} ms",
            self.after_secs,
            ms(p50),
            ms(p99),
            ms(p999),
            self.alerts,
            ms(e50),
            ms(e99)
        )
    }
}
