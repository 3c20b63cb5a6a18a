//! Source positions that are counts (events handed out, lines consumed), shared
//! by the memory, file and simulator sources.

use crate::SourceError;

/// Parses a stored position: plain ASCII digits only, so a position written by a
/// different kind of source (a Kafka offset map, say) is refused, not misread.
pub(crate) fn parse_count(source_name: &str, position: &str) -> Result<u64, SourceError> {
    let digits = !position.is_empty() && position.bytes().all(|b| b.is_ascii_digit());
    match position.parse::<u64>() {
        Ok(n) if digits => Ok(n),
        _ => Err(bad_position(source_name, position, "expected a count of consumed items")),
    }
}

pub(crate) fn bad_position(source_name: &str, position: &str, reason: impl Into<String>) -> SourceError {
    SourceError::BadPosition {
        source_name: source_name.to_string(),
        position: position.to_string(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_plain_digits() {
        assert_eq!(parse_count("s", "0").unwrap(), 0);
        assert_eq!(parse_count("s", "42").unwrap(), 42);
        for bad in ["", "+1", "-1", " 1", "1.0", "x", "99999999999999999999999"] {
            let err = parse_count("s", bad).unwrap_err();
            assert!(matches!(err, SourceError::BadPosition { .. }), "{bad:?} accepted");
        }
    }
}
