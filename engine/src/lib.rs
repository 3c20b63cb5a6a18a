//! The riskstream engine: the sequencer, the hash-chained event store and the
//! RocksDB projections, the pipeline that joins them per batch, alert delivery
//! through the outbox, verify and replay, and the query API. The domain itself
//! (state, valuation, rules) is `riskstream-projections`; event sources and alert
//! sinks are `riskstream-connectors`.
//!
//! Flow, one module per step: `sequencer` -> `privacy` (seal personal fields) ->
//! `store` (append) -> `pipeline` (apply + rules + commit) -> `outbox` (sinks); `api`,
//! `verify`, `replay` read, the API's account views through `views` (the committed
//! store, not the writer's state). `handle` is the engine handle the API, the
//! runtime, the Kafka runner and the CLI share.
//! `distributed` drives the same pipeline from Kafka, one shard per partition.

pub mod api;
pub mod audit;
pub mod config;
pub mod distributed;
pub mod handle;
pub mod metrics;
pub mod outbox;
pub mod pipeline;
pub mod privacy;
pub mod replay;
pub mod runtime;
pub mod sequencer;
pub mod store;
pub mod verify;
pub mod views;

pub use config::EngineConfig;
pub use pipeline::{stored_rules, Engine, EngineError, IngestReport, ShardBatch};
