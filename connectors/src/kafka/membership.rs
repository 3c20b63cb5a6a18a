//! Shard ownership through the consumer group: every instance subscribes to the
//! trades topic with cooperative-sticky assignment, and owning partition `n` of it
//! means owning shard `n`. The membership consumer reads nothing (its partitions are
//! paused); each owned shard has its own [`ShardInput`](crate::kafka::ShardInput).

use std::collections::BTreeMap;
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

    /// Who owns which shard: `client.id` of each member (the instances set it to
    /// `riskstream@<API url>`) and its partitions of the trades topic, from the
    /// group's description (DescribeGroups).
    pub fn owners(&self, group: &str) -> Result<BTreeMap<u32, String>, SourceError> {
        let list = self.consumer.fetch_group_list(Some(group), Duration::from_secs(5)).map_err(|e| {
            SourceError::Unavailable { source_name: format!("kafka group {group}"), reason: e.to_string() }
        })?;
        let mut owners = BTreeMap::new();
        for g in list.groups().iter().filter(|g| g.name() == group) {
            for m in g.members() {
                let Some(url) = m.client_id().strip_prefix("riskstream@") else { continue };
                for p in m.assignment().map(|a| assigned(a, &self.topic)).unwrap_or_default() {
                    owners.insert(p as u32, url.to_string());
                }
            }
        }
        Ok(owners)
    }

    /// Partitions of the trades topic (the shard count the group works with).
    pub fn partition_count(&self) -> Result<u32, SourceError> {
        let parts = crate::kafka::input::partitions_of_any(&self.consumer, &self.topic)
            .map_err(|e| SourceError::Unavailable { source_name: self.topic.clone(), reason: e.to_string() })?;
        Ok(parts.len() as u32)
    }
}

/// The partitions of `topic` in a consumer protocol assignment (Kafka's
/// `ConsumerProtocolAssignment`: version i16, then [topic string, [partition i32]],
/// then user data); an unreadable one yields none.
fn assigned(bytes: &[u8], topic: &str) -> Vec<i32> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (b.get(..n)?, b.get(n..)?);
        *b = rest;
        Some(head)
    }
    fn i16_(b: &mut &[u8]) -> Option<i16> {
        take(b, 2).map(|x| i16::from_be_bytes([x[0], x[1]]))
    }
    fn i32_(b: &mut &[u8]) -> Option<i32> {
        take(b, 4).map(|x| i32::from_be_bytes([x[0], x[1], x[2], x[3]]))
    }
    let parse = |mut b: &[u8]| -> Option<Vec<i32>> {
        let _version = i16_(&mut b)?;
        let mut out = Vec::new();
        for _ in 0..i32_(&mut b)?.max(0) {
            let len = i16_(&mut b)?.max(0) as usize;
            let name = take(&mut b, len)?.to_vec();
            let n = i32_(&mut b)?.max(0);
            for _ in 0..n {
                let p = i32_(&mut b)?;
                if name == topic.as_bytes() {
                    out.push(p);
                }
            }
        }
        Some(out)
    };
    parse(bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::assigned;

    #[test]
    fn reads_a_consumer_protocol_assignment() {
        // version 1; two topics: "t" [0, 3] and "u" [1]; empty user data.
        let mut b = vec![0, 1, 0, 0, 0, 2];
        b.extend([0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3]);
        b.extend([0, 1, b'u', 0, 0, 0, 1, 0, 0, 0, 1]);
        b.extend([0, 0, 0, 0]);
        assert_eq!(assigned(&b, "t"), vec![0, 3]);
        assert_eq!(assigned(&b, "u"), vec![1]);
        assert_eq!(assigned(&b[..9], "t"), Vec::<i32>::new(), "truncated: nothing, no panic");
    }
}
