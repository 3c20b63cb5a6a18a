//! Every metric the engine exports, in one place. Labels take bounded values only
//! (result, shard, alert kind), never an account id.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Input items by result: accepted, rejected, duplicate, stale_tick.
    pub events: IntCounterVec,
    /// Records appended per shard.
    pub records: IntCounterVec,
    /// Alerts by kind and state.
    pub alerts: IntCounterVec,
    pub batch_seconds: Histogram,
    /// Time of each stage of a batch: sequence (dedupe, route, conflate), apply
    /// (records, projections, rules), commit (the one atomic write), audit
    /// (checkpoints and snapshots after the commit).
    pub stage_seconds: HistogramVec,
    pub outbox_depth: IntGauge,
    /// Open accounts as of the last commit (what `/healthz` reports).
    pub accounts: IntGauge,
    /// Last applied seq per shard.
    pub head_seq: IntGaugeVec,
    /// Distributed mode: messages not yet applied, per input partition.
    pub consumer_lag: IntGaugeVec,
    /// Distributed mode: audit records read back per shard while restoring, and
    /// whether the shard is restoring (1) or live (0).
    pub restored_records: IntCounterVec,
    pub restoring: IntGaugeVec,
    /// Distributed mode: partition assignments and revocations seen.
    pub rebalances: IntGauge,
    /// Distributed mode: last seq per shard on the audit topic.
    pub published_seq: IntGaugeVec,
    /// Snapshots and checkpoints that failed after their batch committed (the batch
    /// stands; each is tried again), by task: snapshot, checkpoint.
    pub audit_failures: IntCounterVec,
    /// Snapshot directories found unreadable and set aside (never read; removed by
    /// the next snapshot's housekeeping).
    pub snapshots_set_aside: IntGauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("riskstream".into()), None).expect("static prefix is valid");
        let events =
            IntCounterVec::new(Opts::new("events_total", "Input events by result"), &["result"]).expect("valid");
        let records =
            IntCounterVec::new(Opts::new("records_appended_total", "Records appended to the event store"), &["shard"])
                .expect("valid");
        let alerts = IntCounterVec::new(Opts::new("alerts_total", "Alerts raised and cleared"), &["kind", "state"])
            .expect("valid");
        let batch_seconds = Histogram::with_opts(
            HistogramOpts::new("batch_seconds", "Time to sequence, apply and commit one batch")
                .buckets(prometheus::exponential_buckets(0.0001, 2.0, 18).expect("valid")),
        )
        .expect("valid");
        let stage_seconds = HistogramVec::new(
            HistogramOpts::new("stage_seconds", "Time of each stage of a batch")
                .buckets(prometheus::exponential_buckets(0.00001, 2.0, 22).expect("valid")),
            &["stage"],
        )
        .expect("valid");
        let outbox_depth =
            IntGauge::new("outbox_depth", "Alerts committed but not yet delivered to every sink").expect("valid");
        let accounts = IntGauge::new("accounts", "Open accounts as of the last commit").expect("valid");
        let head_seq =
            IntGaugeVec::new(Opts::new("head_seq", "Last applied sequence number"), &["shard"]).expect("valid");
        let consumer_lag = IntGaugeVec::new(
            Opts::new("consumer_lag", "Messages not yet applied, per input partition"),
            &["topic", "partition"],
        )
        .expect("valid");
        let restored_records = IntCounterVec::new(
            Opts::new("restored_records_total", "Audit records applied while restoring a shard"),
            &["shard"],
        )
        .expect("valid");
        let restoring =
            IntGaugeVec::new(Opts::new("shard_restoring", "1 while a shard restores from the audit topic"), &["shard"])
                .expect("valid");
        let rebalances = IntGauge::new("rebalances", "Partition assignments and revocations seen").expect("valid");
        let published_seq =
            IntGaugeVec::new(Opts::new("published_seq", "Last seq per shard published to the audit topic"), &["shard"])
                .expect("valid");
        let audit_failures = IntCounterVec::new(
            Opts::new("audit_failures_total", "Snapshots and checkpoints that failed after their batch committed"),
            &["task"],
        )
        .expect("valid");
        let snapshots_set_aside =
            IntGauge::new("snapshots_set_aside", "Unreadable snapshot directories set aside").expect("valid");
        for c in [
            Box::new(events.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(records.clone()),
            Box::new(alerts.clone()),
            Box::new(batch_seconds.clone()),
            Box::new(stage_seconds.clone()),
            Box::new(outbox_depth.clone()),
            Box::new(accounts.clone()),
            Box::new(head_seq.clone()),
            Box::new(consumer_lag.clone()),
            Box::new(restored_records.clone()),
            Box::new(restoring.clone()),
            Box::new(rebalances.clone()),
            Box::new(published_seq.clone()),
            Box::new(audit_failures.clone()),
            Box::new(snapshots_set_aside.clone()),
        ] {
            registry.register(c).expect("each metric is registered once");
        }
        Metrics {
            registry,
            events,
            records,
            alerts,
            batch_seconds,
            stage_seconds,
            outbox_depth,
            accounts,
            head_seq,
            consumer_lag,
            restored_records,
            restoring,
            rebalances,
            published_seq,
            audit_failures,
            snapshots_set_aside,
        }
    }

    /// Alerts raised so far per kind, in contract order (kinds with none left out).
    pub fn raised_by_kind(&self) -> Vec<(&'static str, u64)> {
        riskstream_schemas::AlertKind::ALL
            .iter()
            .map(|k| (k.as_str(), self.alerts.with_label_values(&[k.as_str(), "raised"]).get()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// The registry, for components that count into the same `/metrics` (the notifier).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding cannot fail");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
