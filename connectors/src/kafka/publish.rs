//! Writes to Kafka. A shard's audit records and the alerts they caused leave in one
//! transaction of the shard's own transactional producer (`transactional.id` =
//! `<group>-shard-<n>`): an alert is on the alerts topic exactly when its record is
//! on the audit topic, and a new owner's `init_transactions` fences the old one.
//! Dead letters go through an idempotent producer (at least once).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message as _, OwnedHeaders, ToBytes};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use riskstream_schemas::Alert;

use crate::kafka::merge::InputId;
use crate::kafka::wire::ValueCodec;
use crate::kafka::KafkaConfig;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Another instance took the shard; this one must stop writing it.
    #[error("shard {0} was taken over by another instance (producer fenced)")]
    Fenced(u32),
    #[error("kafka: {0}")]
    Kafka(String),
}

fn kafka(e: impl std::fmt::Display) -> PublishError {
    PublishError::Kafka(e.to_string())
}

const TXN_TIMEOUT: Duration = Duration::from_secs(60);

/// Enqueues `rec`, serving delivery reports while librdkafka's queue is full.
fn send_waiting<C, K, P>(producer: &BaseProducer<C>, mut rec: BaseRecord<'_, K, P>) -> Result<(), KafkaError>
where
    C: rdkafka::producer::ProducerContext<DeliveryOpaque = ()>,
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    loop {
        match producer.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                rec = back;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Remembers the highest offset acknowledged on the audit topic, so the shard's
/// owner can later restore from there instead of from the partition's start.
#[derive(Default)]
pub struct AuditOffsets {
    audit: String,
    last: std::sync::atomic::AtomicI64,
}

impl rdkafka::ClientContext for AuditOffsets {}

impl rdkafka::producer::ProducerContext for AuditOffsets {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, _: ()) {
        if let Ok(m) = result {
            if m.topic() == self.audit {
                self.last.fetch_max(m.offset(), std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

pub struct ShardPublisher {
    shard: u32,
    producer: BaseProducer<AuditOffsets>,
    codec: Arc<ValueCodec>,
    audit: String,
    alerts: String,
}

impl ShardPublisher {
    /// Creates the shard's producer and fences any earlier owner of the shard.
    pub fn open(config: &KafkaConfig, codec: Arc<ValueCodec>, shard: u32) -> Result<ShardPublisher, PublishError> {
        let txn_id = format!("{}-shard-{shard}", config.group_id);
        let offsets = AuditOffsets { audit: config.topics.audit.clone(), last: (-1).into() };
        let producer: BaseProducer<AuditOffsets> = config
            .client_config(&[
                ("transactional.id", &txn_id),
                ("enable.idempotence", "true"),
                ("partitioner", "murmur2_random"),
                ("linger.ms", "5"),
                ("transaction.timeout.ms", "60000"),
            ])
            .create_with_context(offsets)
            .map_err(kafka)?;
        producer.init_transactions(TXN_TIMEOUT).map_err(kafka)?;
        Ok(ShardPublisher {
            shard,
            producer,
            codec,
            audit: config.topics.audit.clone(),
            alerts: config.topics.alerts.clone(),
        })
    }

    /// Publishes audit records `(key, value)` and their alerts atomically.
    pub fn publish(&self, records: &[(Vec<u8>, Vec<u8>)], alerts: &[Alert]) -> Result<(), PublishError> {
        let result = self.try_publish(records, alerts);
        if let Err(e) = &result {
            if matches!(e, PublishError::Kafka(_)) {
                let _ = self.producer.abort_transaction(TXN_TIMEOUT);
            }
        }
        result
    }

    fn try_publish(&self, records: &[(Vec<u8>, Vec<u8>)], alerts: &[Alert]) -> Result<(), PublishError> {
        self.producer.begin_transaction().map_err(|e| self.classify(e))?;
        for (key, value) in records {
            let rec = BaseRecord::to(&self.audit).partition(self.shard as i32).key(key).payload(value);
            self.send(rec)?;
        }
        for alert in alerts {
            let value = self.codec.encode_alert(alert).map_err(PublishError::Kafka)?;
            let headers =
                OwnedHeaders::new().insert(Header { key: "alert_id", value: Some(alert.alert_id.as_bytes()) });
            let rec = BaseRecord::to(&self.alerts).key(alert.user_id.as_bytes()).payload(&value).headers(headers);
            self.send(rec)?;
        }
        self.producer.commit_transaction(TXN_TIMEOUT).map_err(|e| self.classify(e))?;
        // Serve the last delivery reports, so `last_audit_offset` covers this commit.
        self.producer.poll(Duration::ZERO);
        Ok(())
    }

    /// Offset of the last audit record acknowledged by the broker (-1: none yet).
    pub fn last_audit_offset(&self) -> i64 {
        self.producer.context().last.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn send<K: ToBytes + ?Sized, P: ToBytes + ?Sized>(&self, rec: BaseRecord<'_, K, P>) -> Result<(), PublishError> {
        send_waiting(&self.producer, rec).map_err(|e| self.classify(e))
    }

    fn classify(&self, e: KafkaError) -> PublishError {
        match e.rdkafka_error_code() {
            Some(
                RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::Fenced | RDKafkaErrorCode::InvalidProducerEpoch,
            ) => PublishError::Fenced(self.shard),
            _ => kafka(e),
        }
    }
}

/// Publishes input events the way upstream systems should: account events keyed by
/// `user_id` to the partition Kafka's default partitioner gives that key, ticks keyed
/// by symbol, values in the topic's format. For `riskstream produce`, the load test
/// and the tests.
pub struct EventProducer {
    producer: BaseProducer,
    codec: Arc<ValueCodec>,
    config: KafkaConfig,
    partitions: u32,
}

impl EventProducer {
    /// `partitions`: of the account topics (the shard count).
    pub fn open(config: &KafkaConfig, codec: Arc<ValueCodec>, partitions: u32) -> Result<EventProducer, PublishError> {
        let producer: BaseProducer = config
            .client_config(&[("enable.idempotence", "true"), ("partitioner", "murmur2_random"), ("linger.ms", "5")])
            .create()
            .map_err(kafka)?;
        Ok(EventProducer { producer, codec, config: config.clone(), partitions })
    }

    pub fn send(&self, event: &riskstream_schemas::Event) -> Result<(), PublishError> {
        self.send_raw(event, None)
    }

    /// Sends `raw` as the value instead of the encoded event (bad input, for tests).
    pub fn send_raw(&self, event: &riskstream_schemas::Event, raw: Option<&[u8]>) -> Result<(), PublishError> {
        use riskstream_schemas::EventBody as B;
        let topic = self.config.topics.for_event(&event.body);
        let value = match raw {
            Some(r) => r.to_vec(),
            None => self.codec.encode(self.config.format_of(topic), event).map_err(PublishError::Kafka)?,
        };
        let (key, partition) = match (&event.body, event.body.user_id()) {
            (_, Some(user)) => {
                (user.to_string(), Some(riskstream_schemas::placement::shard_for(user, self.partitions) as i32))
            }
            (B::MarketTick(t), None) => (t.symbol.clone(), None),
            (B::SecurityListed(s), None) => (s.symbol.clone(), None),
            _ => (String::new(), None),
        };
        let mut rec = BaseRecord::to(topic).key(key.as_bytes()).payload(&value);
        if let Some(p) = partition {
            rec = rec.partition(p);
        }
        send_waiting(&self.producer, rec).map_err(kafka)
    }

    /// Waits until every sent event is acknowledged.
    pub fn flush(&self) -> Result<(), PublishError> {
        self.producer.flush(Duration::from_secs(60)).map_err(kafka)
    }
}

/// A rejected input message, for the dead-letter topic.
pub struct DeadLetterOut<'a> {
    pub input: &'a InputId,
    pub offset: i64,
    pub raw: &'a [u8],
    pub field: Option<&'a str>,
    pub reason: &'a str,
}

pub struct DeadLetterProducer {
    producer: BaseProducer,
    topic: String,
}

impl DeadLetterProducer {
    pub fn open(config: &KafkaConfig) -> Result<DeadLetterProducer, PublishError> {
        let producer: BaseProducer = config.client_config(&[("enable.idempotence", "true")]).create().map_err(kafka)?;
        Ok(DeadLetterProducer { producer, topic: config.topics.dead_letters.clone() })
    }

    /// Sends the original value with the reason and origin in headers; waits for acks.
    pub fn send(&self, letters: &[DeadLetterOut<'_>]) -> Result<(), PublishError> {
        for l in letters {
            let partition = l.input.partition.to_string();
            let offset = l.offset.to_string();
            let mut headers = OwnedHeaders::new()
                .insert(Header { key: "reason", value: Some(l.reason.as_bytes()) })
                .insert(Header { key: "source.topic", value: Some(l.input.topic.as_bytes()) })
                .insert(Header { key: "source.partition", value: Some(partition.as_bytes()) })
                .insert(Header { key: "source.offset", value: Some(offset.as_bytes()) });
            if let Some(f) = l.field {
                headers = headers.insert(Header { key: "field", value: Some(f.as_bytes()) });
            }
            let rec = BaseRecord::<[u8], [u8]>::to(&self.topic).payload(l.raw).headers(headers);
            send_waiting(&self.producer, rec).map_err(kafka)?;
        }
        self.producer.flush(Duration::from_secs(30)).map_err(kafka)
    }
}

/// One audit message: offset, key, value.
pub type AuditMessage = (i64, Vec<u8>, Vec<u8>);

/// Reads partition `shard` of the audit topic from `from` to its end (committed
/// transactions only).
pub fn read_audit(config: &KafkaConfig, shard: u32, from: i64) -> Result<Vec<AuditMessage>, PublishError> {
    let consumer: BaseConsumer<crate::kafka::input::QuietEof> = config
        .client_config(&[
            ("group.id", &format!("{}-restore", config.group_id)),
            ("enable.auto.commit", "false"),
            ("enable.partition.eof", "true"),
            ("isolation.level", "read_committed"),
        ])
        .create_with_context(crate::kafka::input::QuietEof)
        .map_err(kafka)?;
    let topic = &config.topics.audit;
    let (_, high) = consumer.fetch_watermarks(topic, shard as i32, Duration::from_secs(10)).map_err(kafka)?;
    let mut out = Vec::new();
    if high <= from {
        return Ok(out);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, shard as i32, Offset::Offset(from)).map_err(kafka)?;
    consumer.assign(&tpl).map_err(kafka)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                out.push((m.offset(), m.key().unwrap_or_default().to_vec(), m.payload().unwrap_or_default().to_vec()));
                if m.offset() + 1 >= high {
                    break;
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(kafka(e)),
            None if std::time::Instant::now() > deadline => {
                return Err(kafka(format!("timed out reading {topic}/{shard} up to offset {high}")))
            }
            None => {}
        }
    }
    Ok(out)
}
