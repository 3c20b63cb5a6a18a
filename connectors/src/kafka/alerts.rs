//! The alerts topic as the notifiers read it: one consumer group shares its
//! partitions (keyed by `user_id`, so a user's alerts stay in order on one
//! notifier), and a batch's offsets are committed only once the caller says its
//! alerts are safe (in the notifier's ledger). A notifier that dies before that
//! leaves the batch to whoever takes its partitions; the ledger's one success per
//! delivery makes the second reading harmless.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use riskstream_schemas::Alert;

use crate::kafka::{KafkaConfig, ValueCodec};

/// A message of the alerts topic that is not an alert, kept in the batch so the
/// caller says where it was and why (its offset is committed with the rest: it
/// stays on the topic, and reading it again would not mend it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedAlert {
    pub partition: i32,
    pub offset: i64,
    pub reason: String,
}

/// What one poll read.
#[derive(Debug, Default)]
pub struct AlertBatch {
    pub alerts: Vec<Alert>,
    pub rejected: Vec<RejectedAlert>,
    /// Per partition, the offset after the batch's last message.
    next: BTreeMap<i32, i64>,
}

impl AlertBatch {
    pub fn is_empty(&self) -> bool {
        self.next.is_empty()
    }
}

pub struct AlertConsumer {
    consumer: BaseConsumer,
    codec: Arc<ValueCodec>,
    topic: String,
}

impl AlertConsumer {
    /// Joins consumer group `group` on the alerts topic of `config`. Alerts are
    /// published in the shards' transactions: only committed ones are read.
    pub fn subscribe(config: &KafkaConfig, group: &str, codec: Arc<ValueCodec>) -> Result<Self, KafkaError> {
        let consumer: BaseConsumer = config
            .group_config(&[
                ("group.id", group),
                ("client.id", "riskstream-notifier"),
                ("enable.auto.commit", "false"),
                ("isolation.level", "read_committed"),
                ("auto.offset.reset", "earliest"),
            ])
            .create()?;
        consumer.subscribe(&[&config.topics.alerts])?;
        Ok(AlertConsumer { consumer, codec, topic: config.topics.alerts.clone() })
    }

    /// Up to `max` messages: waits up to `wait` for the first, then takes what has
    /// arrived. A broker error before the first message is returned; after it, the
    /// messages read so far are, and the error comes with the next poll.
    pub fn poll(&self, max: usize, wait: Duration) -> Result<AlertBatch, KafkaError> {
        let mut batch = AlertBatch::default();
        let mut timeout = wait;
        while batch.alerts.len() + batch.rejected.len() < max {
            let Some(message) = self.consumer.poll(timeout) else { break };
            timeout = Duration::ZERO;
            let message = match message {
                Ok(m) => m,
                Err(e) if batch.is_empty() => return Err(e),
                Err(_) => break,
            };
            let (partition, offset) = (message.partition(), message.offset());
            match message.payload().map(|bytes| self.codec.decode_alert(bytes)) {
                Some(Ok(alert)) => batch.alerts.push(alert),
                Some(Err(reason)) => batch.rejected.push(RejectedAlert { partition, offset, reason }),
                None => batch.rejected.push(RejectedAlert { partition, offset, reason: "empty value".into() }),
            }
            batch.next.insert(partition, offset + 1);
        }
        Ok(batch)
    }

    /// Commits the batch's offsets: its alerts are handled.
    pub fn commit(&self, batch: &AlertBatch) -> Result<(), KafkaError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut offsets = TopicPartitionList::new();
        for (&partition, &next) in &batch.next {
            offsets.add_partition_offset(&self.topic, partition, Offset::Offset(next))?;
        }
        self.consumer.commit(&offsets, CommitMode::Sync)
    }

    /// The partitions this notifier reads now.
    pub fn assigned(&self) -> Vec<i32> {
        self.consumer.assignment().map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect()).unwrap_or_default()
    }
}
