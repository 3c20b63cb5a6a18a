//! The JSON-lines file source against real files in a temp dir.

use std::io::Write;

use riskstream_connectors::{EventSource, JsonLinesFileSource, SourceError};
use riskstream_schemas::EventBody;
use tempfile::NamedTempFile;

const TICK: &str =
    r#"{"type":"MarketTick","event_id":"t1","ts":"2026-01-05T14:30:00Z","symbol":"S0001","price":"101.25"}"#;
const NEGATIVE: &str = r#"{"type":"MarketTick","ts":"2026-01-05T14:30:01Z","symbol":"S0001","price":"-1"}"#;
const OPENED: &str = r#"{"type":"AccountOpened","ts":"2026-01-05T14:30:02Z","account_id":"acc-1","user_id":"usr-1","tax_status":"roth_ira","base_currency":"USD"}"#;

/// Lines 0-4: a tick, a blank line, malformed JSON, an invalid tick (CRLF), an
/// account without a trailing newline.
fn sample_file() -> NamedTempFile {
    let mut file = NamedTempFile::new().unwrap();
    write!(file, "{TICK}\n  \n{{not json\n{NEGATIVE}\r\n{OPENED}").unwrap();
    file.flush().unwrap();
    file
}

fn indices(batch: &riskstream_connectors::SourceBatch) -> Vec<usize> {
    batch.items.iter().map(|d| d.index).collect()
}

#[test]
fn bad_lines_are_items_and_positions_count_lines() {
    let file = sample_file();
    let mut source = JsonLinesFileSource::open(file.path()).unwrap();
    assert_eq!(source.name(), format!("file:{}", file.path().display()));

    let first = source.next_batch(2).unwrap();
    assert_eq!(indices(&first), [0, 2]);
    assert_eq!((first.position.as_deref(), first.end), (Some("3"), false));
    let tick = first.items[0].result.as_ref().unwrap();
    assert_eq!(tick.event_id.as_deref(), Some("t1"));
    let malformed = first.items[1].result.as_ref().unwrap_err();
    assert_eq!(malformed.index, Some(2));
    assert!(malformed.reason.starts_with("malformed JSON"), "{}", malformed.reason);
    assert_eq!(first.items[1].raw, "{not json");

    let second = source.next_batch(10).unwrap();
    assert_eq!(indices(&second), [3, 4]);
    assert_eq!((second.position.as_deref(), second.end), (Some("5"), true));
    let negative = second.items[0].result.as_ref().unwrap_err();
    assert_eq!((negative.index, negative.field.as_deref()), (Some(3), Some("price")));
    assert!(matches!(second.items[1].result.as_ref().unwrap().body, EventBody::AccountOpened(_)));

    let after = source.next_batch(10).unwrap();
    assert!(after.items.is_empty());
    assert_eq!((after.position.as_deref(), after.end), (Some("5"), true));
}

#[test]
fn seek_resumes_after_the_stored_line() {
    let file = sample_file();
    let mut source = JsonLinesFileSource::open(file.path()).unwrap();
    source.seek("3").unwrap();
    let rest = source.next_batch(10).unwrap();
    assert_eq!(indices(&rest), [3, 4]);
    assert_eq!(rest.position.as_deref(), Some("5"));
    // Backwards works too: the file is read again from the start.
    source.seek("1").unwrap();
    assert_eq!(indices(&source.next_batch(10).unwrap()), [2, 3, 4]);
    source.seek("5").unwrap();
    let none = source.next_batch(10).unwrap();
    assert!(none.items.is_empty() && none.end);
    for bad in ["6", "x", "-1", ""] {
        let err = source.seek(bad).unwrap_err();
        assert!(matches!(err, SourceError::BadPosition { ref position, .. } if position == bad), "{bad:?}");
    }
}

#[test]
fn lines_appended_after_the_end_are_read_next() {
    let mut file = NamedTempFile::new().unwrap();
    writeln!(file, "{TICK}").unwrap();
    let mut source = JsonLinesFileSource::open(file.path()).unwrap();
    let first = source.next_batch(10).unwrap();
    assert_eq!((first.items.len(), first.end), (1, true));
    writeln!(file, "{OPENED}").unwrap();
    file.flush().unwrap();
    let more = source.next_batch(10).unwrap();
    assert_eq!(indices(&more), [1]);
    assert_eq!((more.position.as_deref(), more.end), (Some("2"), true));
}

#[test]
fn a_line_that_is_not_utf8_is_rejected_not_dropped() {
    let mut file = NamedTempFile::new().unwrap();
    file.write_all(b"\xff\xfe{}\n").unwrap();
    writeln!(file, "{TICK}").unwrap();
    let mut source = JsonLinesFileSource::open(file.path()).unwrap();
    let batch = source.next_batch(10).unwrap();
    assert_eq!(indices(&batch), [0, 1]);
    let rejection = batch.items[0].result.as_ref().unwrap_err();
    assert!(rejection.reason.contains("not UTF-8"), "{}", rejection.reason);
    assert!(batch.items[1].result.is_ok());
}

#[test]
fn a_missing_file_is_an_io_error_naming_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.jsonl");
    let err = JsonLinesFileSource::open(&path).err().unwrap();
    match err {
        SourceError::Io { source_name, .. } => {
            assert_eq!(source_name, format!("file:{}", path.display()))
        }
        other => panic!("unexpected {other}"),
    }
}
