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
    /// 0000-01-01T00:00:00Z: RFC 3339 has four-digit years, so no earlier time has a text form.
    pub const RFC3339_MIN: Timestamp = Timestamp(-62_167_219_200 * MICROS_PER_SECOND);
    /// 9999-12-31T23:59:59.999999Z, the last microsecond RFC 3339 can write.
    pub const RFC3339_MAX: Timestamp = Timestamp(253_402_300_800 * MICROS_PER_SECOND - 1);
}

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

    /// Whether the time has an RFC 3339 form (years 0000 to 9999). Event times must:
    /// validation refuses the others at the edge.
    pub fn is_rfc3339(self) -> bool {
        (Self::RFC3339_MIN..=Self::RFC3339_MAX).contains(&self)
    }

    /// RFC 3339 text, or, for a time it cannot write (an empty shard's clock is
    /// `i64::MIN`), the microseconds as a decimal integer, which `Deserialize`
    /// reads back: stored rows, checkpoints and manifests hold every value.
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(t) if self.is_rfc3339() => t.format(&Rfc3339).unwrap_or_else(|_| self.0.to_string()),
            _ => self.0.to_string(),
        }
    }

    /// Reads what `to_rfc3339` writes: RFC 3339, or the integer form of a time
    /// outside RFC 3339's years (only there, so `"1700000000"` is still refused).
    pub fn parse_stored(text: &str) -> Result<Self, String> {
        match text.parse::<i64>() {
            Ok(micros) if !Timestamp(micros).is_rfc3339() => Ok(Timestamp(micros)),
            _ => Timestamp::parse(text),
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
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        Timestamp::parse_stored(&text).map_err(serde::de::Error::custom)
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
    fn rfc3339_bounds_are_the_first_and_last_microsecond_of_its_years() {
        assert_eq!(Timestamp::RFC3339_MIN.to_rfc3339(), "0000-01-01T00:00:00Z");
        assert_eq!(Timestamp::RFC3339_MAX.to_rfc3339(), "9999-12-31T23:59:59.999999Z");
        assert_eq!(Timestamp::parse("0000-01-01T00:00:00Z").unwrap(), Timestamp::RFC3339_MIN);
        assert_eq!(Timestamp::parse("9999-12-31T23:59:59.999999Z").unwrap(), Timestamp::RFC3339_MAX);
        assert!(!Timestamp(Timestamp::RFC3339_MIN.0 - 1).is_rfc3339());
        assert!(!Timestamp(Timestamp::RFC3339_MAX.0 + 1).is_rfc3339());
    }

    #[test]
    fn times_without_a_text_form_are_stored_as_integers_and_read_back() {
        // An empty shard's clock, as snapshot manifests wrote it before this was read back.
        let json = serde_json::to_string(&Timestamp(i64::MIN)).unwrap();
        assert_eq!(json, "\"-9223372036854775808\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), Timestamp(i64::MIN));
        // Inside RFC 3339's years the integer form is not a time: event JSON stays strict.
        let err = serde_json::from_str::<Timestamp>("\"1700000000\"").unwrap_err().to_string();
        assert!(err.contains("not an RFC 3339 time"), "{err}");
    }

    #[test]
    fn day_is_floor_division() {
        assert_eq!(Timestamp(-1).day(), -1);
        assert_eq!(Timestamp(MICROS_PER_DAY).day(), 1);
    }
}
