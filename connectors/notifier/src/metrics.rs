//! The notifier's Prometheus metrics, registered in the registry of the process it
//! runs in (the engine's `/metrics` in embedded mode), under `riskstream_notifier_`.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

#[derive(Clone)]
pub struct NotifierMetrics {
    /// Deliveries that succeeded, by channel.
    pub delivered: IntCounterVec,
    /// Failed tries by channel and outcome: `retry` (scheduled again) or
    /// `dead_letter` (given up).
    pub failures: IntCounterVec,
    /// Deliveries held back without a try, by channel and reason: `rate_limit`, `quiet_hours`.
    pub deferred: IntCounterVec,
    /// Deliveries decided against, by channel and reason: `throttle`, `cancelled`.
    pub suppressed: IntCounterVec,
    /// Endpoints disabled (a 410, or failing too long), by channel.
    pub disabled: IntCounterVec,
    /// From the notifier taking an alert to its delivery, by channel: immediate
    /// deliveries are its own work and the receiver's answer; retries and quiet
    /// hours add their waits.
    pub latency: HistogramVec,
}

impl NotifierMetrics {
    /// Registers the metrics in `registry`; an error when they already are.
    pub fn register(registry: &Registry) -> prometheus::Result<NotifierMetrics> {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help).namespace("notifier"), labels)
        };
        let metrics = NotifierMetrics {
            delivered: counter("delivered_total", "Deliveries that succeeded", &["channel"])?,
            failures: counter("failures_total", "Failed tries: retry or dead_letter", &["channel", "outcome"])?,
            deferred: counter("deferred_total", "Deliveries held back without a try", &["channel", "reason"])?,
            suppressed: counter("suppressed_total", "Deliveries decided against", &["channel", "reason"])?,
            disabled: counter("endpoints_disabled_total", "Endpoints disabled", &["channel"])?,
            latency: HistogramVec::new(
                HistogramOpts::new("delivery_latency_seconds", "From taking an alert to delivering it")
                    .namespace("notifier")
                    .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 10.0, 60.0, 600.0, 3600.0]),
                &["channel"],
            )?,
        };
        registry.register(Box::new(metrics.delivered.clone()))?;
        registry.register(Box::new(metrics.failures.clone()))?;
        registry.register(Box::new(metrics.deferred.clone()))?;
        registry.register(Box::new(metrics.suppressed.clone()))?;
        registry.register(Box::new(metrics.disabled.clone()))?;
        registry.register(Box::new(metrics.latency.clone()))?;
        Ok(metrics)
    }

    /// Metrics nobody reads (a notifier built without a registry).
    pub fn unregistered() -> NotifierMetrics {
        Self::register(&Registry::new()).expect("a fresh registry takes every metric")
    }
}
