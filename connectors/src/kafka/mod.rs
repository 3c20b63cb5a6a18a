//! Kafka edges of distributed mode: the topic layout and client settings, message
//! values (Confluent wire format Avro, or JSON), the per-shard event-time merge of a
//! shard's input partitions, the per-shard input consumer, group membership, and the
//! per-shard transactional publisher of audit records and alerts, and the notifiers'
//! consumer of the alerts topic.
//!
//! A shard is partition `n` of every account-scoped topic (co-partitioned, keyed by
//! `user_id`) plus every partition of the broadcast ticks topic.

pub mod alerts;
pub mod config;
pub mod input;
pub mod membership;
pub mod merge;
pub mod publish;
pub mod registry;
pub mod wire;

pub use alerts::{AlertBatch, AlertConsumer, RejectedAlert};
pub use config::{KafkaConfig, Topics};
pub use input::ShardInput;
pub use membership::{Membership, OwnershipChange};
pub use merge::{InputId, Merge, Merged, Position};
pub use publish::{EventProducer, ShardPublisher};
pub use wire::{ValueCodec, ValueFormat};
