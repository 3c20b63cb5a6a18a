//! The local alert log: every delivered alert appended as one JSON line.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use riskstream_schemas::Alert;

use crate::{AlertSink, SinkError};

const SINK_NAME: &str = "alert-log";

/// Appends alerts to a file. One writer per file: a failed delivery truncates
/// its partial write away, which assumes nobody else appends meanwhile.
pub struct AlertLogSink {
    path: PathBuf,
    file: File,
    /// File length after the last complete delivery.
    len: u64,
    buf: Vec<u8>,
}

impl AlertLogSink {
    /// Opens (creating if needed) the log for appending.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let context =
            |e: io::Error| io::Error::new(e.kind(), format!("cannot open alert log `{}`: {e}", path.display()));
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(context)?;
        let len = file.metadata().map_err(context)?.len();
        Ok(AlertLogSink { path, file, len, buf: Vec::new() })
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
        for alert in alerts {
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
