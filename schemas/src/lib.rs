//! The event contract (DESIGN.md, "Event contract v1"): the Rust types, the Avro
//! schemas in `schemas/avro/`, and the Avro and JSON codecs. This is where every
//! event enters the flow; everything after it works on typed, validated events.

pub mod avro;
pub mod json;
pub mod placement;
mod time;
mod types;
mod validate;

pub use crate::time::{Timestamp, MICROS_PER_DAY, MICROS_PER_SECOND};
pub use crate::types::*;
pub use crate::validate::{validate, DECIMAL_SCALE, MAX_ID_LEN, WEIGHT_SUM_TOLERANCE};

use std::fmt;

/// Why one event (or a whole body) was refused: sent back to the producer and kept
/// with the event in the dead-letter store. It is always the sender's to fix.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rejection {
    /// Position of the event in its batch, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// The offending field (dotted path), when one field is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub reason: String,
}

impl Rejection {
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Rejection { index: None, field: Some(field.into()), reason: reason.into() }
    }

    pub fn body(reason: impl Into<String>) -> Self {
        Rejection { index: None, field: None, reason: reason.into() }
    }

    pub fn at(mut self, index: usize) -> Self {
        self.index = Some(index);
        self
    }

    /// serde says "missing field `x`" or "unknown field `x`, expected ..."; pull the
    /// field name out so the sender sees which one.
    pub fn from_serde(message: &str) -> Self {
        let field = message.split('`').nth(1).map(str::to_string);
        let reason = message.split(" at line ").next().unwrap_or(message).to_string();
        Rejection { index: None, field, reason }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "event {i} rejected: ")?,
            None => write!(f, "rejected: ")?,
        }
        match &self.field {
            Some(field) if !self.reason.contains(&format!("`{field}`")) => {
                write!(f, "field `{field}` {}", self.reason)
            }
            _ => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for Rejection {}
