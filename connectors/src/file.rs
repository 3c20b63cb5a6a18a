//! A JSON-lines file as an event source, read line by line.
//!
//! Position = the number of lines consumed (blank ones included), so item `i` is
//! line `i + 1` of the file for a person reading it, and `seek` resumes after the
//! last line of the stored batch. Bad lines become rejected items, never dropped.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use riskstream_schemas::json::{decode_line, Decoded};
use riskstream_schemas::Rejection;

use crate::position::{bad_position, parse_count};
use crate::{EventSource, SourceBatch, SourceError};

pub struct JsonLinesFileSource {
    name: String,
    path: PathBuf,
    reader: BufReader<File>,
    /// Lines consumed so far.
    lines: u64,
    line: Vec<u8>,
}

impl JsonLinesFileSource {
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SourceError> {
        let path = path.as_ref().to_path_buf();
        let name = format!("file:{}", path.display());
        let reader = open_reader(&name, &path)?;
        Ok(JsonLinesFileSource { name, path, reader, lines: 0, line: Vec::new() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the next line into `self.line`, terminator removed; false at EOF.
    fn read_line(&mut self) -> Result<bool, SourceError> {
        self.line.clear();
        let read = self.reader.read_until(b'\n', &mut self.line).map_err(|e| io_error(&self.name, &e))?;
        if read == 0 {
            return Ok(false);
        }
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
        }
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        self.lines += 1;
        Ok(true)
    }

    fn at_eof(&mut self) -> Result<bool, SourceError> {
        let buffered = self.reader.fill_buf().map_err(|e| io_error(&self.name, &e))?;
        Ok(buffered.is_empty())
    }
}

/// `None` for a blank line (skipped, but still counted in the position).
fn decode(index: usize, line: &[u8]) -> Option<Decoded> {
    match std::str::from_utf8(line) {
        Ok(text) if text.trim().is_empty() => None,
        Ok(text) => Some(decode_line(index, text)),
        Err(e) => Some(Decoded {
            index,
            raw: String::from_utf8_lossy(line).into_owned(),
            result: Err(Rejection::body(format!("line is not UTF-8: {e}")).at(index)),
        }),
    }
}

fn open_reader(name: &str, path: &Path) -> Result<BufReader<File>, SourceError> {
    File::open(path).map(BufReader::new).map_err(|e| io_error(name, &e))
}

fn io_error(name: &str, err: &std::io::Error) -> SourceError {
    SourceError::Io { source_name: name.to_string(), reason: err.to_string() }
}

impl EventSource for JsonLinesFileSource {
    fn name(&self) -> &str {
        &self.name
    }

    /// Line numbers carry no byte offset, so resuming reads the file again from the
    /// start and skips the consumed lines.
    fn seek(&mut self, position: &str) -> Result<(), SourceError> {
        let n = parse_count(&self.name, position)?;
        self.reader = open_reader(&self.name, &self.path)?;
        self.lines = 0;
        while self.lines < n {
            let skipped = self.reader.skip_until(b'\n').map_err(|e| io_error(&self.name, &e))?;
            if skipped == 0 {
                let reason = format!("the file has only {} lines", self.lines);
                return Err(bad_position(&self.name, position, reason));
            }
            self.lines += 1;
        }
        Ok(())
    }

    fn next_batch(&mut self, max: usize) -> Result<SourceBatch, SourceError> {
        let mut items = Vec::new();
        while items.len() < max && self.read_line()? {
            let index = usize::try_from(self.lines - 1).unwrap_or(usize::MAX);
            items.extend(decode(index, &self.line));
        }
        let end = self.at_eof()?;
        Ok(SourceBatch { items, position: Some(self.lines.to_string()), end })
    }
}
