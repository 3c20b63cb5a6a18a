//! Shard ownership through the consumer group: every instance subscribes to the
//! trades topic with cooperative-sticky assignment, and owning partition `n` of it
//! means owning shard `n`. The membership consumer reads nothing (its partitions are
//! paused); each owned shard has its own [`ShardInput`](crate::kafka::ShardInput).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, TopicPartitionList};

use crate::kafka::KafkaConfig;
use crate::SourceError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnershipChange {
    Assigned(Vec<u32>),
    Revoked(Vec<u32>),
}

#[derive(Default)]
pub struct MemberContext {
    changes: Mutex<Vec<OwnershipChange>>,
    rebalances: AtomicU64,
}

fn shards_of(tpl: &TopicPartitionList) -> Vec<u32> {
    let mut v: Vec<u32> = tpl.elements().iter().map(|e| e.partition() as u32).collect();
    v.sort_unstable();
    v
}

impl ClientContext for MemberContext {}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.changes.lock().expect("changes lock").push(OwnershipChange::Revoked(shards_of(tpl)));
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.rebalances.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = consumer.pause(tpl) {
                    tracing::warn!(error = %e, "cannot pause the membership consumer's partitions");
                }
                self.changes.lock().expect("changes lock").push(OwnershipChange::Assigned(shards_of(tpl)));
            }
            Rebalance::Revoke(_) => {
                self.rebalances.fetch_add(1, Ordering::Relaxed);
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance failed"),
        }
    }
}

pub struct Membership {
    consumer: BaseConsumer<MemberContext>,
    topic: String,
}

impl Membership {
    /// Joins the group; `client_id` names this instance in the group (its HTTP address).
    pub fn join(config: &KafkaConfig, client_id: &str) -> Result<Membership, SourceError> {
        let unavailable = |e: rdkafka::error::KafkaError| SourceError::Unavailable {
            source_name: format!("kafka group {}", config.group_id),
            reason: e.to_string(),
        };
        let mut settings = vec![
            ("group.id", config.group_id.as_str()),
            ("client.id", client_id),
            ("partition.assignment.strategy", "cooperative-sticky"),
            ("enable.auto.commit", "false"),
        ];
        if let Some(id) = &config.instance_id {
            settings.push(("group.instance.id", id));
        }
        let consumer: BaseConsumer<MemberContext> =
            config.group_config(&settings).create_with_context(MemberContext::default()).map_err(unavailable)?;
        consumer.subscribe(&[&config.topics.trades]).map_err(unavailable)?;
        Ok(Membership { consumer, topic: config.topics.trades.clone() })
    }

    /// Serves the group protocol; returns the ownership changes since the last call.
    pub fn poll(&self, timeout: Duration) -> Vec<OwnershipChange> {
        // A message fetched before the pause took effect is dropped: shard inputs read it.
        if let Some(Err(e)) = self.consumer.poll(timeout) {
            tracing::warn!(error = %e, "consumer group");
        }
        std::mem::take(&mut *self.consumer.context().changes.lock().expect("changes lock"))
    }

    pub fn rebalances(&self) -> u64 {
        self.consumer.context().rebalances.load(Ordering::Relaxed)
    }

    /// Partitions of the trades topic (the shard count the group works with).
    pub fn partition_count(&self) -> Result<u32, SourceError> {
        let parts = crate::kafka::input::partitions_of_any(&self.consumer, &self.topic)
            .map_err(|e| SourceError::Unavailable { source_name: self.topic.clone(), reason: e.to_string() })?;
        Ok(parts.len() as u32)
    }
}
