//! Distributed-mode settings: brokers, topic names and formats, and any librdkafka
//! client setting passed through unchanged.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::kafka::wire::ValueFormat;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Topics {
    /// Account-scoped inputs, co-partitioned and keyed by `user_id`.
    pub trades: String,
    pub cash: String,
    /// Account opening, targets, limits and preferences.
    pub actions: String,
    /// Broadcast input: `MarketTick` and `SecurityListed`, read in full by every instance.
    pub ticks: String,
    /// Output: alerts (Avro, keyed by `user_id`).
    pub alerts: String,
    /// Output: every shard's log, partition = shard, key = (shard, seq).
    pub audit: String,
    /// Output: rejected input messages, the reason in headers.
    pub dead_letters: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            trades: "riskstream.trades".into(),
            cash: "riskstream.cash".into(),
            actions: "riskstream.actions".into(),
            ticks: "riskstream.ticks".into(),
            alerts: "riskstream.alerts".into(),
            audit: "riskstream.audit".into(),
            dead_letters: "riskstream.dead-letters".into(),
        }
    }
}

impl Topics {
    /// The input topic an event type is published to.
    pub fn for_event(&self, body: &riskstream_schemas::EventBody) -> &str {
        use riskstream_schemas::EventBody as B;
        match body {
            B::TradeExecuted(_) => &self.trades,
            B::CashMovement(_) => &self.cash,
            B::MarketTick(_) | B::SecurityListed(_) | B::PriceBatch(_) => &self.ticks,
            B::AccountOpened(_) | B::TargetAllocationSet(_) | B::RiskLimitsSet(_) | B::AlertPreferencesSet(_) => {
                &self.actions
            }
        }
    }

    /// The account-scoped inputs, in the order that breaks event-time ties.
    pub fn account_inputs(&self) -> [&str; 3] {
        [&self.actions, &self.cash, &self.trades]
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Consumer group of the engine instances; also the prefix of the per-shard
    /// transactional ids.
    pub group_id: String,
    /// Optional `group.instance.id` (static membership): a restart within the
    /// session timeout keeps the partitions without a rebalance.
    pub instance_id: Option<String>,
    pub topics: Topics,
    /// Confluent Schema Registry; without it the schema ids embedded in the binary
    /// are used (docs/EVENTS.md lists them).
    pub registry_url: Option<String>,
    /// Input topics whose values are JSON events instead of Avro.
    pub json_topics: Vec<String>,
    /// For `riskstream topics create`: partitions of the account topics, the audit
    /// topic and the alerts topic (= the shard count).
    pub partitions: u32,
    pub tick_partitions: u32,
    pub replication_factor: i16,
    pub min_insync_replicas: u32,
    /// Retention of the input topics (ms); the audit topic keeps everything.
    pub input_retention_ms: i64,
    /// Any librdkafka setting, applied to every client after ours.
    pub client: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            group_id: "riskstream".into(),
            instance_id: None,
            topics: Topics::default(),
            registry_url: None,
            json_topics: Vec::new(),
            partitions: 8,
            tick_partitions: 1,
            replication_factor: 3,
            min_insync_replicas: 2,
            input_retention_ms: 7 * 24 * 3600 * 1000,
            client: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    pub fn format_of(&self, topic: &str) -> ValueFormat {
        if self.json_topics.iter().any(|t| t == topic) {
            ValueFormat::Json
        } else {
            ValueFormat::Avro
        }
    }

    /// A group consumer's config: failure detection faster than librdkafka's 45 s
    /// default (a rejoin otherwise stalls for tens of seconds), then `settings`.
    pub fn group_config(&self, settings: &[(&str, &str)]) -> ClientConfig {
        let mut all = vec![("session.timeout.ms", "6000"), ("heartbeat.interval.ms", "500")];
        all.extend_from_slice(settings);
        self.client_config(&all)
    }

    /// A client config with the brokers, our `settings`, then the user's.
    pub fn client_config(&self, settings: &[(&str, &str)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in settings {
            c.set(*k, *v);
        }
        for (k, v) in &self.client {
            c.set(k, v);
        }
        c
    }
}
