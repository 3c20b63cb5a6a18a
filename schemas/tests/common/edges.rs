//! Edge values of stored times, for the schemas round-trip tests and the engine's
//! persisted-format tests (which include `common/` by path).

use riskstream_schemas::Timestamp;

/// The times a stored row can hold, edge values first: i64's ends (an empty
/// shard's clock is `i64::MIN`), RFC 3339's bounds and one past them, the epoch.
pub const EDGE_MICROS: [i64; 11] = [
    i64::MIN,
    i64::MIN + 1,
    Timestamp::RFC3339_MIN.0 - 1,
    Timestamp::RFC3339_MIN.0,
    -1,
    0,
    1,
    Timestamp::RFC3339_MAX.0,
    Timestamp::RFC3339_MAX.0 + 1,
    i64::MAX - 1,
    i64::MAX,
];
