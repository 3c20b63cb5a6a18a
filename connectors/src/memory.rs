//! In-memory source and sink, for tests and embedded demos.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use riskstream_schemas::json::{self, Decoded};
use riskstream_schemas::{validate, Alert, Event};

use crate::position::{bad_position, parse_count};
use crate::{AlertSink, EventSource, SinkError, SourceBatch, SourceError};

/// Hands out a fixed list of events; position = events handed out so far.
#[derive(Debug, Clone)]
pub struct MemoryEventSource {
    name: String,
    events: Vec<Event>,
    next: usize,
}

impl MemoryEventSource {
    pub fn new(events: Vec<Event>) -> Self {
        Self::named("memory", events)
    }

    /// Two memory sources in one engine need distinct names (the position key).
    pub fn named(name: impl Into<String>, events: Vec<Event>) -> Self {
        MemoryEventSource { name: name.into(), events, next: 0 }
    }

    /// Validates like the decoders of the real sources, so an invalid event put in
    /// a test arrives as a rejected item, not as a trusted one.
    fn decoded(index: usize, event: &Event) -> Decoded {
        let result = validate(event).map(|()| event.clone()).map_err(|r| r.at(index));
        Decoded { index, raw: json::encode(event), result }
    }
}

impl EventSource for MemoryEventSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn seek(&mut self, position: &str) -> Result<(), SourceError> {
        let n = parse_count(&self.name, position)?;
        match usize::try_from(n) {
            Ok(n) if n <= self.events.len() => {
                self.next = n;
                Ok(())
            }
            _ => {
                let reason = format!("only {} events exist", self.events.len());
                Err(bad_position(&self.name, position, reason))
            }
        }
    }

    fn next_batch(&mut self, max: usize) -> Result<SourceBatch, SourceError> {
        let end = self.events.len().min(self.next.saturating_add(max));
        let items = (self.next..end).map(|i| Self::decoded(i, &self.events[i])).collect();
        self.next = end;
        Ok(SourceBatch { items, position: Some(end.to_string()), end: end == self.events.len() })
    }
}

#[derive(Debug, Default)]
struct Delivered {
    alerts: Vec<Alert>,
    failures_left: usize,
}

/// Collects delivered alerts. Clones share one store, so a test keeps a clone
/// while the engine owns the sink.
#[derive(Debug, Clone, Default)]
pub struct MemoryAlertSink {
    inner: Arc<Mutex<Delivered>>,
}

impl MemoryAlertSink {
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything delivered so far, in delivery order (redeliveries included).
    pub fn alerts(&self) -> Vec<Alert> {
        self.lock().alerts.clone()
    }

    /// Makes the next `n` deliveries fail with `SinkError::Retry`, storing nothing.
    pub fn fail_next(&self, n: usize) {
        self.lock().failures_left = n;
    }

    /// A panicking test thread must not hide what was delivered from the others.
    fn lock(&self) -> MutexGuard<'_, Delivered> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl AlertSink for MemoryAlertSink {
    fn name(&self) -> &str {
        "memory"
    }

    fn deliver(&mut self, alerts: &[Alert]) -> Result<(), SinkError> {
        let mut inner = self.lock();
        if inner.failures_left > 0 {
            inner.failures_left -= 1;
            let reason = format!("injected failure ({} more to come)", inner.failures_left);
            return Err(SinkError::Retry { sink: "memory".to_string(), reason });
        }
        inner.alerts.extend_from_slice(alerts);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use riskstream_schemas::{AlertKind, AlertState, EventBody, MarketTick, Priority, RecordRef, Timestamp};
    use rust_decimal::Decimal;

    fn tick(n: i64, price: i64) -> Event {
        let body = MarketTick { symbol: "S0001".into(), price: Decimal::from(price), volume: None };
        Event { event_id: Some(format!("e{n}")), ts: Timestamp(n), body: EventBody::MarketTick(body) }
    }

    fn alert(id: &str) -> Alert {
        Alert {
            alert_id: id.into(),
            kind: AlertKind::Drift,
            state: AlertState::Raised,
            priority: Priority::Medium,
            account_id: "acc-1".into(),
            user_id: "usr-1".into(),
            ts: Timestamp(5),
            caused_by: RecordRef { shard: 0, seq: 7 },
            rule: "drift".into(),
            value: Decimal::new(7, 2),
            threshold: Decimal::new(5, 2),
            message: "S0001 is 7% off target".into(),
            details: None,
        }
    }

    #[test]
    fn batches_positions_and_end() {
        let mut src = MemoryEventSource::new((0..5).map(|n| tick(n, 10)).collect());
        let first = src.next_batch(2).unwrap();
        assert_eq!(first.items.iter().map(|d| d.index).collect::<Vec<_>>(), [0, 1]);
        assert_eq!((first.position.as_deref(), first.end), (Some("2"), false));
        let rest = src.next_batch(10).unwrap();
        assert_eq!(rest.items.len(), 3);
        assert_eq!((rest.position.as_deref(), rest.end), (Some("5"), true));
        assert_eq!(rest.items[2].result.as_ref().unwrap().event_id.as_deref(), Some("e4"));
        let empty = src.next_batch(10).unwrap();
        assert!(empty.items.is_empty() && empty.end);
    }

    #[test]
    fn seek_skips_and_rejects_bad_positions() {
        let mut src = MemoryEventSource::new((0..5).map(|n| tick(n, 10)).collect());
        src.seek("3").unwrap();
        let batch = src.next_batch(10).unwrap();
        assert_eq!(batch.items[0].result.as_ref().unwrap().event_id.as_deref(), Some("e3"));
        src.seek("0").unwrap();
        assert_eq!(src.next_batch(1).unwrap().items[0].index, 0);
        assert!(matches!(src.seek("6"), Err(SourceError::BadPosition { .. })));
        assert!(matches!(src.seek("abc"), Err(SourceError::BadPosition { .. })));
    }

    #[test]
    fn invalid_events_arrive_rejected_with_their_index() {
        let mut src = MemoryEventSource::new(vec![tick(0, 10), tick(1, -3)]);
        let batch = src.next_batch(10).unwrap();
        assert!(batch.items[0].result.is_ok());
        let rejection = batch.items[1].result.as_ref().unwrap_err();
        assert_eq!((rejection.index, rejection.field.as_deref()), (Some(1), Some("price")));
        assert!(batch.items[1].raw.contains("\"-3\""));
    }

    #[test]
    fn sink_failure_injection_then_delivery() {
        let sink = MemoryAlertSink::new();
        let mut engine_side = sink.clone();
        sink.fail_next(2);
        for _ in 0..2 {
            let err = engine_side.deliver(&[alert("a1")]).unwrap_err();
            assert!(matches!(err, SinkError::Retry { ref sink, .. } if sink == "memory"));
        }
        assert!(sink.alerts().is_empty());
        engine_side.deliver(&[alert("a1"), alert("a2")]).unwrap();
        let ids: Vec<String> = sink.alerts().into_iter().map(|a| a.alert_id).collect();
        assert_eq!(ids, ["a1", "a2"]);
    }
}
