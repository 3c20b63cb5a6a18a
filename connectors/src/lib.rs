//! The edges of the flow: where events come from (`EventSource`: file, simulator,
//! memory, Kafka) and where alerts leave (`AlertSink`: the local alert
//! log, memory, Kafka). The engine is generic over both traits; only the
//! binary names concrete types.

pub mod alert_log;
pub mod file;
pub mod kafka;
pub mod memory;
mod position;
pub mod simulator;

use riskstream_schemas::json::Decoded;
use riskstream_schemas::Alert;

pub use crate::alert_log::AlertLogSink;
pub use crate::file::{FilePosition, JsonLinesFileSource, STDIN_SOURCE};
pub use crate::memory::{MemoryAlertSink, MemoryEventSource};
pub use crate::simulator::{Simulation, SimulatorConfig, SimulatorSource};

/// What a source hands the engine: decoded items (bad ones included, so they can be
/// dead-lettered with their raw text) and the position to resume after them.
#[derive(Debug, Clone, Default)]
pub struct SourceBatch {
    pub items: Vec<Decoded>,
    /// Opaque to the engine; stored in the same write batch as the records, and
    /// handed back to `seek` on restart.
    pub position: Option<String>,
    /// No more events will come (a file read to its end, a bounded simulation).
    pub end: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Retry later (a file being written, a broker away).
    #[error("source `{source_name}` is unavailable: {reason}")]
    Unavailable { source_name: String, reason: String },
    /// The stored position cannot be used with this source; an operator must look.
    #[error("source `{source_name}` cannot resume from `{position}`: {reason}")]
    BadPosition { source_name: String, position: String, reason: String },
    #[error("source `{source_name}`: {reason}")]
    Io { source_name: String, reason: String },
    /// What was consumed before is not what the source holds now (a file edited
    /// after its import); going on could apply events twice.
    #[error("source `{source_name}` changed: {reason}")]
    Changed { source_name: String, reason: String },
}

/// A pull source of events. Sources are polled by one pump thread.
pub trait EventSource: Send {
    /// Stable name: the key of the stored position.
    fn name(&self) -> &str;
    /// Continue after `position`, as returned in an earlier batch.
    fn seek(&mut self, position: &str) -> Result<(), SourceError>;
    /// Up to `max` items; an empty batch with `end == false` means "nothing yet".
    fn next_batch(&mut self, max: usize) -> Result<SourceBatch, SourceError>;
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Delivery failed but may succeed later; the alerts stay in the outbox.
    #[error("sink `{sink}` failed, will retry: {reason}")]
    Retry { sink: String, reason: String },
}

/// A destination for alerts leaving the outbox. `deliver` may see an alert again
/// after a crash (at-least-once); consumers dedupe by `alert_id`.
pub trait AlertSink: Send {
    fn name(&self) -> &str;
    fn deliver(&mut self, alerts: &[Alert]) -> Result<(), SinkError>;
}
