//! A JSON-lines file (or standard input) as an event source, read line by line.
//!
//! A file is known by its identity, not by how its path was typed: the name is
//! `file:` + the canonical path (symlinks and `./` resolved), and the position is
//! `LINES:BYTES:SHA256`, the lines consumed, their bytes and a digest of those
//! bytes. Resuming checks the digest, so a re-run imports only lines appended
//! since, and a file whose imported part changed is refused ([`SourceError::Changed`])
//! instead of being applied again. Item indexes are 1-based line numbers, the
//! number an editor shows. Bad lines become rejected items, never dropped.
//! Standard input has no identity: it is read once and never resumed.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use riskstream_schemas::json::{decode_line, Decoded};
use riskstream_schemas::Rejection;
use sha2::{Digest, Sha256};

use crate::position::{bad_position, parse_count};
use crate::{EventSource, SourceBatch, SourceError};

/// The name of standard input as a source.
pub const STDIN_SOURCE: &str = "stdin";

pub struct JsonLinesFileSource {
    name: String,
    /// `None` for standard input.
    path: Option<PathBuf>,
    reader: Box<dyn BufRead + Send>,
    /// Lines and bytes consumed so far, and the digest of those bytes.
    lines: u64,
    bytes: u64,
    digest: Sha256,
    line: Vec<u8>,
}

/// Where a file import stands: parsed from a stored position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePosition {
    pub lines: u64,
    /// `None` in positions written before byte counts and digests were stored.
    pub checked: Option<(u64, String)>,
}

impl FilePosition {
    pub fn parse(source_name: &str, position: &str) -> Result<Self, SourceError> {
        let mut parts = position.splitn(3, ':');
        let lines = parse_count(source_name, parts.next().unwrap_or_default())?;
        match (parts.next(), parts.next()) {
            (None, None) => Ok(FilePosition { lines, checked: None }),
            (Some(bytes), Some(digest)) if digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Ok(FilePosition { lines, checked: Some((parse_count(source_name, bytes)?, digest.to_string())) })
            }
            _ => Err(bad_position(source_name, position, "expected LINES:BYTES:SHA256")),
        }
    }
}

impl JsonLinesFileSource {
    /// Opens a file; its name is its canonical path, so every spelling of one file
    /// shares one stored position.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SourceError> {
        let typed = path.as_ref();
        let path = typed.canonicalize().map_err(|e| io_error(&format!("file:{}", typed.display()), &e))?;
        let name = format!("file:{}", path.display());
        let reader = Box::new(open_reader(&name, &path)?);
        Ok(Self::with_reader(name, Some(path), reader))
    }

    /// Standard input: read once, positions are not stored.
    pub fn stdin() -> Self {
        Self::with_reader(STDIN_SOURCE.to_string(), None, Box::new(BufReader::new(std::io::stdin())))
    }

    fn with_reader(name: String, path: Option<PathBuf>, reader: Box<dyn BufRead + Send>) -> Self {
        JsonLinesFileSource { name, path, reader, lines: 0, bytes: 0, digest: Sha256::new(), line: Vec::new() }
    }

    /// The canonical path; `None` for standard input.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Lines consumed so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    fn position(&self) -> Option<String> {
        self.path.as_ref()?;
        Some(format!("{}:{}:{}", self.lines, self.bytes, hex::encode(self.digest.clone().finalize())))
    }

    /// Reads the next line into `self.line`, terminator removed; false at EOF.
    fn read_line(&mut self) -> Result<bool, SourceError> {
        self.line.clear();
        let read = self.reader.read_until(b'\n', &mut self.line).map_err(|e| io_error(&self.name, &e))?;
        if read == 0 {
            return Ok(false);
        }
        self.digest.update(&self.line);
        self.bytes += read as u64;
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

    fn rewind(&mut self) -> Result<&Path, SourceError> {
        let Some(path) = self.path.as_deref() else {
            return Err(bad_position(&self.name, "", "standard input cannot be read again"));
        };
        self.reader = Box::new(open_reader(&self.name, path)?);
        self.lines = 0;
        self.bytes = 0;
        self.digest = Sha256::new();
        Ok(path)
    }

    /// Re-reads the first `bytes` bytes and checks they are the ones imported.
    fn seek_checked(&mut self, at: &FilePosition, bytes: u64, digest: &str) -> Result<(), SourceError> {
        let mut left = bytes;
        let mut buf = vec![0u8; 64 * 1024];
        let mut ended_line = true;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = self.reader.read(&mut buf[..want]).map_err(|e| io_error(&self.name, &e))?;
            if n == 0 {
                return Err(self.changed(at, format!("it is now {} bytes long, shorter than that", bytes - left)));
            }
            self.digest.update(&buf[..n]);
            ended_line = buf[n - 1] == b'\n';
            left -= n as u64;
        }
        if hex::encode(self.digest.clone().finalize()) != digest {
            return Err(self.changed(at, "their content differs".to_string()));
        }
        // A last line imported without its newline must not have grown since.
        let next = self.reader.fill_buf().map_err(|e| io_error(&self.name, &e))?.first().copied();
        if !ended_line && next.is_some_and(|b| b != b'\n' && b != b'\r') {
            return Err(self.changed(at, format!("line {} was extended", at.lines)));
        }
        (self.lines, self.bytes) = (at.lines, bytes);
        if !ended_line && next.is_some() {
            // The newline that now ends that line belongs to it, not to a new line.
            let mut rest = Vec::new();
            let n = self.reader.read_until(b'\n', &mut rest).map_err(|e| io_error(&self.name, &e))?;
            if rest.iter().any(|b| !b.is_ascii_whitespace()) {
                return Err(self.changed(at, format!("line {} was extended", at.lines)));
            }
            self.digest.update(&rest);
            self.bytes += n as u64;
        }
        Ok(())
    }

    fn changed(&self, at: &FilePosition, how: String) -> SourceError {
        SourceError::Changed {
            source_name: self.name.clone(),
            reason: format!(
                "its first {} lines ({} bytes) were imported before and have changed since: {how}",
                at.lines,
                at.checked.as_ref().map_or(0, |c| c.0)
            ),
        }
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

    /// Reads the file again from the start: up to the stored bytes, checking their
    /// digest; a position without one (older data dirs) skips lines unchecked.
    fn seek(&mut self, position: &str) -> Result<(), SourceError> {
        let at = FilePosition::parse(&self.name, position)?;
        self.rewind()?;
        if let Some((bytes, digest)) = &at.checked {
            return self.seek_checked(&at, *bytes, digest);
        }
        while self.lines < at.lines {
            if !self.read_line()? {
                let reason = format!("the file has only {} lines", self.lines);
                return Err(bad_position(&self.name, position, reason));
            }
        }
        Ok(())
    }

    fn next_batch(&mut self, max: usize) -> Result<SourceBatch, SourceError> {
        let mut items = Vec::new();
        while items.len() < max && self.read_line()? {
            let line = usize::try_from(self.lines).unwrap_or(usize::MAX);
            items.extend(decode(line, &self.line));
        }
        let end = self.at_eof()?;
        Ok(SourceBatch { items, position: self.position(), end })
    }
}
