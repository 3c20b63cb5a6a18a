//! The alert log sink writes one parseable JSON line per alert, appending.

use riskstream_connectors::{AlertLogSink, AlertSink};
use riskstream_schemas::{Alert, AlertKind, AlertState, Priority, RecordRef, Timestamp};
use rust_decimal::Decimal;

fn alert(n: u64) -> Alert {
    Alert {
        alert_id: format!("0-{n}-concentration-acc-000001"),
        kind: AlertKind::Concentration,
        state: [AlertState::Raised, AlertState::Cleared][(n % 2) as usize],
        priority: Priority::High,
        account_id: "acc-000001".into(),
        user_id: "usr-000001".into(),
        ts: Timestamp(1_767_623_400_000_000 + n as i64),
        caused_by: RecordRef { shard: 0, seq: n },
        rule: "concentration".into(),
        value: Decimal::new(3125, 4),
        threshold: Decimal::new(25, 2),
        message: "S0007 is 31.25% of the account (limit 25%)".into(),
        details: None,
    }
}

fn read_log(path: &std::path::Path) -> Vec<Alert> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'));
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn alerts_are_appended_as_json_lines_across_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.jsonl");
    let mut sink = AlertLogSink::open(&path).unwrap();
    assert_eq!(sink.name(), "alert-log");
    sink.deliver(&[alert(1), alert(2)]).unwrap();
    sink.deliver(&[]).unwrap();
    sink.deliver(&[alert(3)]).unwrap();
    assert_eq!(read_log(&path), [alert(1), alert(2), alert(3)]);
    drop(sink);

    let mut reopened = AlertLogSink::open(&path).unwrap();
    reopened.deliver(&[alert(4)]).unwrap();
    let logged = read_log(&path);
    assert_eq!(logged, [alert(1), alert(2), alert(3), alert(4)]);
    let line = std::fs::read_to_string(&path).unwrap().lines().next().unwrap().to_string();
    assert!(line.contains(r#""value":"0.3125""#), "{line}");
    assert!(line.contains(r#""ts":"2026-01-05T14:30:00.000001Z""#), "{line}");
}

/// `details` (contract v3) is logged as the JSON object itself, and left out when unset.
#[test]
fn details_are_logged_as_an_object_and_left_out_when_absent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.jsonl");
    let details =
        serde_json::json!({"symbol": "S0007", "candidate_lots": [{"lot_id": "lot-3", "unrealized": "-412.2"}]});
    let harvest =
        Alert { kind: AlertKind::TaxLossHarvest, rule: "tax_loss_harvest".into(), details: Some(details), ..alert(2) };
    let mut sink = AlertLogSink::open(&path).unwrap();
    sink.deliver(&[alert(1), harvest.clone()]).unwrap();
    assert_eq!(read_log(&path), [alert(1), harvest]);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(!lines[0].contains("details"), "{}", lines[0]);
    assert!(
        lines[1]
            .contains(r#""details":{"candidate_lots":[{"lot_id":"lot-3","unrealized":"-412.2"}],"symbol":"S0007"}"#),
        "{}",
        lines[1]
    );
}

#[test]
fn opening_in_a_missing_directory_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("alerts.jsonl");
    let err = AlertLogSink::open(&path).err().unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

/// A crash between the write and the outbox's acknowledgement makes the next
/// process deliver the same round again: the log keeps each alert once.
#[test]
fn a_redelivered_round_after_a_restart_is_not_written_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.jsonl");
    AlertLogSink::open(&path).unwrap().deliver(&[alert(1), alert(2), alert(3)]).unwrap();
    let mut again = AlertLogSink::open(&path).unwrap();
    again.deliver(&[alert(2), alert(3), alert(4)]).unwrap();
    again.deliver(&[alert(5)]).unwrap();
    assert_eq!(read_log(&path), [alert(1), alert(2), alert(3), alert(4), alert(5)]);
}

/// A crash mid-write leaves a line cut short; the next process removes it (its
/// alert was never acknowledged, so it is delivered again) instead of gluing the
/// next alert onto it.
#[test]
fn a_line_cut_short_by_a_crash_is_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.jsonl");
    AlertLogSink::open(&path).unwrap().deliver(&[alert(1)]).unwrap();
    let torn = serde_json::to_string(&alert(2)).unwrap();
    let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    std::io::Write::write_all(&mut file, &torn.as_bytes()[..torn.len() / 2]).unwrap();
    drop(file);
    AlertLogSink::open(&path).unwrap().deliver(&[alert(2), alert(3)]).unwrap();
    assert_eq!(read_log(&path), [alert(1), alert(2), alert(3)]);
}
