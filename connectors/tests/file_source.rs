//! The JSON-lines file source against real files in a temp dir.

use std::io::Write;

use riskstream_connectors::{EventSource, JsonLinesFileSource, SourceError};
use riskstream_schemas::EventBody;
use tempfile::NamedTempFile;

const TICK: &str =
    r#"{"type":"MarketTick","event_id":"t1","ts":"2026-01-05T14:30:00Z","symbol":"S0001","price":"101.25"}"#;
const NEGATIVE: &str = r#"{"type":"MarketTick","ts":"2026-01-05T14:30:01Z","symbol":"S0001","price":"-1"}"#;
const OPENED: &str = r#"{"type":"AccountOpened","ts":"2026-01-05T14:30:02Z","account_id":"acc-1","user_id":"usr-1","tax_status":"roth_ira","base_currency":"USD"}"#;

/// Lines 1-5: a tick, a blank line, malformed JSON, an invalid tick (CRLF), an
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

/// The lines count of a stored position.
fn lines(position: Option<&str>) -> u64 {
    position.map(|p| p.split(':').next().unwrap().parse().unwrap()).unwrap()
}

#[test]
fn bad_lines_are_items_numbered_from_one_and_positions_count_lines() {
    let file = sample_file();
    let mut source = JsonLinesFileSource::open(file.path()).unwrap();
    assert_eq!(source.name(), format!("file:{}", file.path().canonicalize().unwrap().display()));

    let first = source.next_batch(2).unwrap();
    assert_eq!(indices(&first), [1, 3]);
    assert_eq!((lines(first.position.as_deref()), first.end), (3, false));
    let tick = first.items[0].result.as_ref().unwrap();
    assert_eq!(tick.event_id.as_deref(), Some("t1"));
    let malformed = first.items[1].result.as_ref().unwrap_err();
    assert_eq!(malformed.index, Some(3));
    assert!(malformed.reason.starts_with("malformed JSON"), "{}", malformed.reason);
    assert_eq!(first.items[1].raw, "{not json");

    let second = source.next_batch(10).unwrap();
    assert_eq!(indices(&second), [4, 5]);
    assert_eq!((lines(second.position.as_deref()), second.end), (5, true));
    let negative = second.items[0].result.as_ref().unwrap_err();
    assert_eq!((negative.index, negative.field.as_deref()), (Some(4), Some("price")));
    assert!(matches!(second.items[1].result.as_ref().unwrap().body, EventBody::AccountOpened(_)));

    let after = source.next_batch(10).unwrap();
    assert!(after.items.is_empty());
    assert_eq!((after.position, after.end), (second.position, true));
}

#[test]
fn seek_resumes_after_the_stored_line_and_checks_the_imported_bytes() {
    let file = sample_file();
    let mut source = JsonLinesFileSource::open(file.path()).unwrap();
    let three = source.next_batch(2).unwrap().position.unwrap();
    let five = source.next_batch(10).unwrap().position.unwrap();
    source.seek(&three).unwrap();
    let rest = source.next_batch(10).unwrap();
    assert_eq!(indices(&rest), [4, 5]);
    assert_eq!(rest.position.as_deref(), Some(five.as_str()));
    source.seek(&five).unwrap();
    let none = source.next_batch(10).unwrap();
    assert!(none.items.is_empty() && none.end);
    // Positions stored before digests (a plain line count) still resume.
    source.seek("1").unwrap();
    assert_eq!(indices(&source.next_batch(10).unwrap()), [3, 4, 5]);
    for bad in ["6", "x", "-1", "", "3:10", "3:10:zz"] {
        let err = source.seek(bad).unwrap_err();
        assert!(matches!(err, SourceError::BadPosition { ref position, .. } if position == bad), "{bad:?}");
    }
}

#[test]
fn every_spelling_of_a_file_is_one_source() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    std::fs::write(&path, format!("{TICK}\n")).unwrap();
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let dotted = dir.path().join(".").join("sub").join("..").join("events.jsonl");
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let name = JsonLinesFileSource::open(&path).unwrap().name().to_string();
    for other in [&link, &dotted] {
        assert_eq!(JsonLinesFileSource::open(other).unwrap().name(), name, "{}", other.display());
    }
}

#[test]
fn a_file_changed_after_its_import_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    std::fs::write(&path, format!("{TICK}\n{OPENED}\n")).unwrap();
    let mut source = JsonLinesFileSource::open(&path).unwrap();
    let position = source.next_batch(10).unwrap().position.unwrap();
    let changed = |content: String| {
        std::fs::write(&path, content).unwrap();
        let mut again = JsonLinesFileSource::open(&path).unwrap();
        again.seek(&position)
    };
    // Appended lines are fine and are what the next batch reads.
    changed(format!("{TICK}\n{OPENED}\n{NEGATIVE}\n")).unwrap();
    let edited = changed(format!("{NEGATIVE}\n{OPENED}\n")).unwrap_err();
    assert!(matches!(edited, SourceError::Changed { .. }), "{edited}");
    assert!(edited.to_string().contains("first 2 lines"), "{edited}");
    let shorter = changed(format!("{TICK}\n")).unwrap_err();
    assert!(shorter.to_string().contains("shorter"), "{shorter}");
}

#[test]
fn a_last_line_without_newline_that_grew_is_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    std::fs::write(&path, format!("{TICK}\n{{\"type\"")).unwrap();
    let mut source = JsonLinesFileSource::open(&path).unwrap();
    let position = source.next_batch(10).unwrap().position.unwrap();
    std::fs::write(&path, format!("{TICK}\n{{\"type\"\n{OPENED}\n")).unwrap();
    let mut again = JsonLinesFileSource::open(&path).unwrap();
    again.seek(&position).unwrap();
    assert_eq!(indices(&again.next_batch(10).unwrap()), [3], "a newline after the cut line is not a change");
    std::fs::write(&path, format!("{TICK}\n{{\"type\": 1}}\n")).unwrap();
    let err = JsonLinesFileSource::open(&path).unwrap().seek(&position).unwrap_err();
    assert!(err.to_string().contains("line 2 was extended"), "{err}");
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
    assert_eq!(indices(&more), [2]);
    assert_eq!((lines(more.position.as_deref()), more.end), (2, true));
}

#[test]
fn a_line_that_is_not_utf8_is_rejected_not_dropped() {
    let mut file = NamedTempFile::new().unwrap();
    file.write_all(b"\xff\xfe{}\n").unwrap();
    writeln!(file, "{TICK}").unwrap();
    let mut source = JsonLinesFileSource::open(file.path()).unwrap();
    let batch = source.next_batch(10).unwrap();
    assert_eq!(indices(&batch), [1, 2]);
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
