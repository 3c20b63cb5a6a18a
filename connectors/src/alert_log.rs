//! The local alert log: every delivered alert appended as one JSON line, each
//! alert once, even across crashes.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use riskstream_schemas::Alert;

use crate::{AlertSink, SinkError};

const SINK_NAME: &str = "alert-log";

/// The tail of an existing log read at open for the ids it holds: a crash between
/// the write and the outbox's acknowledgement redelivers one round (at most 1,000
/// alerts, well under this), always the last lines written.
const TAIL_BYTES: u64 = 4 << 20;

/// Appends alerts to a file. One writer per file: a failed delivery truncates
/// its partial write away, which assumes nobody else appends meanwhile.
pub struct AlertLogSink {
    path: PathBuf,
    file: File,
    /// File length after the last complete delivery.
    len: u64,
    buf: Vec<u8>,
    /// Ids in the log's tail at open: a redelivery after a crash skips them.
    logged: HashSet<String>,
}

impl AlertLogSink {
    /// Opens (creating if needed) the log for appending. A line cut short by a
    /// crash is removed (its alert was not acknowledged, so it comes again), and
    /// the ids of the last lines are remembered so a redelivered round is not
    /// written twice.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let context =
            |e: io::Error| io::Error::new(e.kind(), format!("cannot open alert log `{}`: {e}", path.display()));
        let mut file = OpenOptions::new().create(true).read(true).append(true).open(&path).map_err(context)?;
        let (len, logged) = recover_tail(&mut file).map_err(context)?;
        Ok(AlertLogSink { path, file, len, buf: Vec::new(), logged })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn retry(&self, what: &str, err: &dyn std::fmt::Display) -> SinkError {
        let reason = format!("{what} `{}`: {err}", self.path.display());
        SinkError::Retry { sink: SINK_NAME.to_string(), reason }
    }

    /// One `write_all` per delivery, then to disk: the outbox forgets alerts once
    /// `deliver` returns, so returning before they are durable could lose them.
    fn append(&mut self) -> io::Result<()> {
        self.file.write_all(&self.buf)?;
        self.file.flush()?;
        self.file.sync_data()
    }
}

impl AlertSink for AlertLogSink {
    fn name(&self) -> &str {
        SINK_NAME
    }

    fn deliver(&mut self, alerts: &[Alert]) -> Result<(), SinkError> {
        if alerts.is_empty() {
            return Ok(());
        }
        self.buf.clear();
        for alert in alerts.iter().filter(|a| !self.logged.contains(&a.alert_id)) {
            serde_json::to_writer(&mut self.buf, alert).map_err(|e| self.retry("cannot encode for", &e))?;
            self.buf.push(b'\n');
        }
        if let Err(e) = self.append() {
            // Cut a half-written line so the redelivery starts on a fresh line.
            let _ = self.file.set_len(self.len);
            return Err(self.retry("cannot append to", &e));
        }
        self.len += self.buf.len() as u64;
        Ok(())
    }
}

/// Cuts a torn last line and returns the file's length and the ids of the lines in
/// its last `TAIL_BYTES`.
fn recover_tail(file: &mut File) -> io::Result<(u64, HashSet<String>)> {
    let len = file.metadata()?.len();
    let start = len.saturating_sub(TAIL_BYTES);
    let mut tail = Vec::with_capacity((len - start) as usize);
    file.seek(SeekFrom::Start(start))?;
    file.read_to_end(&mut tail)?;
    let complete = tail.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let len = start + complete as u64;
    if complete < tail.len() {
        tracing::warn!(bytes = tail.len() - complete, "the alert log ends in a line cut short by a crash; removed");
        file.set_len(len)?;
    }
    #[derive(serde::Deserialize)]
    struct Id {
        alert_id: String,
    }
    // The window's first line may start mid-line (unless the window is the file).
    let lines = tail[..complete].split(|&b| b == b'\n').skip(usize::from(start > 0));
    let logged = lines.filter_map(|l| serde_json::from_slice::<Id>(l).ok()).map(|i| i.alert_id).collect();
    Ok((len, logged))
}
