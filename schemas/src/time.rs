//! Event time: microseconds since the Unix epoch, UTC; RFC 3339 in JSON, Avro `timestamp-micros`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

pub const MICROS_PER_SECOND: i64 = 1_000_000;
pub const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

impl Timestamp {
    pub fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    /// Days since the epoch (UTC); rules that reset daily key on it.
    pub fn day(self) -> i64 {
        self.0.div_euclid(MICROS_PER_DAY)
    }

    pub fn plus_seconds(self, seconds: i64) -> Self {
        Timestamp(self.0.saturating_add(seconds.saturating_mul(MICROS_PER_SECOND)))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let t = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| format!("`{text}` is not an RFC 3339 time: {e}"))?;
        let nanos = t.unix_timestamp_nanos();
        i64::try_from(nanos / 1_000).map(Timestamp).map_err(|_| format!("`{text}` is out of range"))
    }

    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(t) => t.format(&Rfc3339).unwrap_or_else(|_| self.0.to_string()),
            Err(_) => self.0.to_string(),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip_keeps_microseconds() {
        let t = Timestamp::parse("2026-01-05T14:30:00.123456Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-05T14:30:00.123456Z");
        assert_eq!(Timestamp::parse(&t.to_rfc3339()).unwrap(), t);
    }

    #[test]
    fn offsets_are_normalised_to_utc() {
        let a = Timestamp::parse("2026-01-05T15:30:00+01:00").unwrap();
        let b = Timestamp::parse("2026-01-05T14:30:00Z").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn day_is_floor_division() {
        assert_eq!(Timestamp(-1).day(), -1);
        assert_eq!(Timestamp(MICROS_PER_DAY).day(), 1);
    }
}
