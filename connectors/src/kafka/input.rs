//! One shard's inputs: a consumer assigned (not subscribed) to the shard's partition
//! of each account topic and to every ticks partition, starting at the shard's stored
//! position, feeding the shard's [`Merge`]. Messages are decoded and checked for
//! placement here, so the merge sees events or reasons.

use std::sync::Arc;

use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use riskstream_schemas::placement::shard_for;
use riskstream_schemas::{EventBody, Rejection, Timestamp};

use crate::kafka::merge::{InputId, Merge, Merged, Message, Position};
use crate::kafka::wire::ValueCodec;
use crate::kafka::KafkaConfig;
use crate::SourceError;

/// Client context of the shard consumers: end-of-partition is how the merge learns
/// an input is caught up, not an error worth logging.
pub struct QuietEof;

impl rdkafka::ClientContext for QuietEof {
    fn error(&self, error: KafkaError, reason: &str) {
        let eof = matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF);
        if !eof {
            tracing::error!(error = %error, reason, "kafka client");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for QuietEof {}

/// How long every input must stay at its end before the open price window is closed.
const IDLE_FLUSH: std::time::Duration = std::time::Duration::from_millis(500);

/// Stop fetching an input while this many of its messages wait in the merge.
const PAUSE_AT: usize = 50_000;

pub struct ShardInput {
    shard: u32,
    shards: u32,
    consumer: Arc<BaseConsumer<QuietEof>>,
    queues: Vec<(InputId, PartitionQueue<QuietEof>, bool)>,
    merge: Merge,
    codec: Arc<ValueCodec>,
    config: KafkaConfig,
    paused: Vec<bool>,
    idle_since: Option<std::time::Instant>,
}

fn unavailable(shard: u32, e: impl std::fmt::Display) -> SourceError {
    SourceError::Unavailable { source_name: format!("kafka shard {shard}"), reason: e.to_string() }
}

/// How many partitions `topic` has (0 if it does not exist).
pub fn partition_count(config: &KafkaConfig, topic: &str) -> Result<u32, KafkaError> {
    let consumer: BaseConsumer = config.client_config(&[]).create()?;
    Ok(partitions_of(&consumer, topic)?.len() as u32)
}

/// The partitions of `topic`, from the broker's metadata.
pub fn partitions_of(consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>, KafkaError> {
    partitions_of_any(consumer, topic)
}

pub(crate) fn partitions_of_any<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
) -> Result<Vec<i32>, KafkaError> {
    let md = consumer.fetch_metadata(Some(topic), std::time::Duration::from_secs(10))?;
    let t = md.topics().iter().find(|t| t.name() == topic);
    let mut parts: Vec<i32> = t.map(|t| t.partitions().iter().map(|p| p.id()).collect()).unwrap_or_default();
    parts.sort_unstable();
    Ok(parts)
}

impl ShardInput {
    /// Opens shard `shard` of `shards` at `start`; `last_ticks` seeds the stale-tick check.
    pub fn open(
        config: &KafkaConfig,
        codec: Arc<ValueCodec>,
        shard: u32,
        shards: u32,
        start: Position,
        last_ticks: impl IntoIterator<Item = (String, Timestamp)>,
    ) -> Result<ShardInput, SourceError> {
        let client_id = format!("riskstream-shard-{shard}");
        let consumer: BaseConsumer<QuietEof> = config
            .client_config(&[
                ("group.id", &format!("{}-inputs", config.group_id)),
                ("client.id", &client_id),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("enable.partition.eof", "true"),
                ("isolation.level", "read_committed"),
                ("auto.offset.reset", "earliest"),
            ])
            .create_with_context(QuietEof)
            .map_err(|e| unavailable(shard, e))?;
        let consumer = Arc::new(consumer);
        let t = &config.topics;
        let mut inputs: Vec<InputId> = t
            .account_inputs()
            .iter()
            .map(|topic| InputId { topic: topic.to_string(), partition: shard as i32 })
            .collect();
        let tick_parts = partitions_of_any(&consumer, &t.ticks).map_err(|e| unavailable(shard, e))?;
        if tick_parts.is_empty() {
            return Err(unavailable(
                shard,
                format!("topic `{}` does not exist (run `riskstream topics create`)", t.ticks),
            ));
        }
        inputs.extend(tick_parts.into_iter().map(|p| InputId { topic: t.ticks.clone(), partition: p }));
        let mut merge = Merge::new(inputs, start);
        for (symbol, ts) in last_ticks {
            merge.seen_tick(&symbol, ts);
        }
        let mut tpl = TopicPartitionList::new();
        for (id, offset) in merge.start_offsets() {
            tpl.add_partition_offset(&id.topic, id.partition, Offset::Offset(offset))
                .map_err(|e| unavailable(shard, e))?;
        }
        consumer.assign(&tpl).map_err(|e| unavailable(shard, e))?;
        let mut queues = Vec::new();
        for (id, _) in merge.start_offsets() {
            let q = consumer
                .split_partition_queue(&id.topic, id.partition)
                .ok_or_else(|| unavailable(shard, format!("cannot read {id}")))?;
            let is_ticks = id.topic == t.ticks;
            queues.push((id, q, is_ticks));
        }
        // The assignment starts fetching at once, and what arrives before a partition's
        // queue is split goes to the consumer's own queue, where `fill` never reads it:
        // a small partition fetched whole (its end included) that early was never
        // applied. Seeking each partition back to its start makes librdkafka discard
        // what was fetched before (it drops messages older than a seek) and fetch it
        // again into the split queues.
        for (id, offset) in merge.start_offsets() {
            consumer
                .seek(&id.topic, id.partition, Offset::Offset(offset), std::time::Duration::from_secs(10))
                .map_err(|e| unavailable(shard, e))?;
        }
        let paused = vec![false; queues.len()];
        Ok(ShardInput {
            shard,
            shards,
            consumer,
            queues,
            merge,
            codec,
            config: config.clone(),
            paused,
            idle_since: None,
        })
    }

    pub fn shard(&self) -> u32 {
        self.shard
    }

    /// Moves up to `budget` fetched messages into the merge without waiting.
    pub fn fill(&mut self, budget: usize) -> Result<usize, SourceError> {
        // Serves the consumer's own events (errors, statistics).
        if let Some(Err(e)) = self.consumer.poll(std::time::Duration::ZERO) {
            tracing_warn(self.shard, &e);
        }
        let mut taken = 0;
        for i in 0..self.queues.len() {
            let mut got = 0;
            while got < budget {
                let (id, q, is_ticks) = &self.queues[i];
                match q.poll(std::time::Duration::ZERO) {
                    None => break,
                    Some(Err(KafkaError::PartitionEOF(_))) => {
                        let id = id.clone();
                        self.merge.at_end(&id);
                        break;
                    }
                    Some(Err(e)) => return Err(unavailable(self.shard, e)),
                    Some(Ok(m)) => {
                        let raw = m.payload().unwrap_or_default().to_vec();
                        let event = self.decode(id, *is_ticks, &raw);
                        let message = Message { offset: m.offset(), event, raw };
                        let id = id.clone();
                        self.merge.push(&id, message);
                        got += 1;
                    }
                }
            }
            taken += got;
            self.pace(i)?;
        }
        Ok(taken)
    }

    /// Pauses an input whose messages pile up while the merge waits for another.
    fn pace(&mut self, i: usize) -> Result<(), SourceError> {
        let (id, _, _) = &self.queues[i];
        let buffered = self.merge.buffered_of(id);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&id.topic, id.partition);
        if !self.paused[i] && buffered >= PAUSE_AT {
            self.consumer.pause(&tpl).map_err(|e| unavailable(self.shard, e))?;
            self.paused[i] = true;
        } else if self.paused[i] && buffered < PAUSE_AT / 4 {
            self.consumer.resume(&tpl).map_err(|e| unavailable(self.shard, e))?;
            self.paused[i] = false;
        }
        Ok(())
    }

    fn decode(&self, id: &InputId, is_ticks: bool, raw: &[u8]) -> Result<riskstream_schemas::Event, Rejection> {
        if raw.is_empty() {
            return Err(Rejection::body("empty message value"));
        }
        let mut event = self.codec.decode(self.config.format_of(&id.topic), raw)?;
        if matches!(event.body, EventBody::PriceBatch(_)) {
            return Err(Rejection::field("type", "PriceBatch is written by the engine, not accepted as input"));
        }
        match (event.body.user_id(), is_ticks) {
            (Some(_), true) => {
                return Err(Rejection::field(
                    "user_id",
                    format!(
                        "{} is account-scoped; publish it to an account topic, not the broadcast {}",
                        event.body.type_name(),
                        id.topic
                    ),
                ))
            }
            (None, false) => {
                return Err(Rejection::field(
                    "type",
                    format!(
                        "{} is a broadcast event; publish it to {}",
                        event.body.type_name(),
                        self.config.topics.ticks
                    ),
                ))
            }
            (Some(user), false) => {
                let home = shard_for(user, self.shards);
                if home != self.shard {
                    return Err(Rejection::field(
                        "user_id",
                        format!(
                            "user `{user}` belongs to partition {home}, not {} (key messages by user_id with the default murmur2 partitioner)",
                            id.partition
                        ),
                    ));
                }
            }
            (None, true) => {}
        }
        // Live must apply exactly what replay reads back from the log.
        event.body.normalize();
        Ok(event)
    }

    /// Emits merged items (see [`Merge::pull`]); closes the open price window once
    /// every input has been idle for [`IDLE_FLUSH`].
    pub fn pull(&mut self, max: usize) -> Vec<Merged> {
        let items = self.merge.pull(max);
        if !items.is_empty() || !self.merge.idle() {
            self.idle_since = None;
            return items;
        }
        let since = *self.idle_since.get_or_insert_with(std::time::Instant::now);
        if since.elapsed() >= IDLE_FLUSH {
            self.idle_since = None;
            return self.merge.flush_idle();
        }
        items
    }

    pub fn applied(&self) -> &Position {
        self.merge.applied()
    }

    pub fn buffered(&self) -> usize {
        self.merge.buffered()
    }

    pub fn stale_ticks(&self) -> u64 {
        self.merge.stale_ticks()
    }

    /// Lag per input: the broker's end offset minus the next offset to apply (asks
    /// the broker; call it now and then, not per batch).
    pub fn lag(&self) -> Vec<(InputId, i64)> {
        self.queues
            .iter()
            .filter_map(|(id, _, _)| {
                let (_, high) =
                    self.consumer.fetch_watermarks(&id.topic, id.partition, std::time::Duration::from_secs(1)).ok()?;
                Some((id.clone(), (high - self.merge.applied().offset(id)).max(0)))
            })
            .collect()
    }
}

fn tracing_warn(shard: u32, e: &KafkaError) {
    tracing::warn!(shard, error = %e, "kafka input");
}
