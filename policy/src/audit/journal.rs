//! The audit journal (审计日志文件): append-only segment files under `<data dir>/audit/`, one
//! JSON line per record, `{"hash":"…","record":{…}}`, where `record` is the canonical form
//! the hash covers. A record is durable, and its call answered, once the group holding it is
//! written and `fdatasync`ed here; the metadata DB receives it afterwards in large batches.
//!
//! A segment is named after the sequence number of its first record,
//! `journal-00000000000000000001.jsonl`, and removed once every record in it is in the DB.
//! Only the last line of the last segment can be torn (a crash mid-write, before its sync):
//! readers drop it, as no call was answered for it.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use super::{Canonical, Record};

/// Records per segment before the writer starts the next one (a few under test, to rotate).
pub(super) const SEGMENT_RECORDS: u64 = if cfg!(test) { 4 } else { 65_536 };

/// The segment file for records from `first_seq` on.
fn segment_path(dir: &Path, first_seq: i64) -> PathBuf {
    dir.join(format!("journal-{first_seq:020}.jsonl"))
}

/// The segments in `dir`, oldest first, with the sequence number each starts at.
pub(super) fn segments(dir: &Path) -> std::io::Result<Vec<(i64, PathBuf)>> {
    let mut found = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let first = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("journal-"))
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<i64>().ok());
        if let Some(first) = first {
            found.push((first, path));
        }
    }
    found.sort();
    Ok(found)
}

/// One journal line as read back.
#[derive(serde::Deserialize)]
pub(super) struct Line {
    pub hash: String,
    pub record: Canonical<String>,
}

/// Why a segment could not be read to its end.
#[derive(Debug)]
pub(super) enum ReadError {
    /// The file went away (the DB took its records and removed it meanwhile).
    Gone,
    /// The file could not be read.
    Io(std::io::Error),
    /// A line that is neither a record nor the torn last line.
    Damaged { line: usize, reason: String },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Gone => f.write_str("the segment was removed while it was read"),
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Damaged { line, reason } => write!(f, "line {line}: {reason}"),
        }
    }
}

/// Calls `each` with every complete line of `path` in order. A last line without its newline,
/// in the last segment (`last`), is a write the crash cut short and is skipped.
pub(super) fn read_segment(
    path: &Path,
    last: bool,
    mut each: impl FnMut(Line) -> std::ops::ControlFlow<()>,
) -> Result<(), ReadError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadError::Gone),
        Err(e) => return Err(ReadError::Io(e)),
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut buffer = Vec::with_capacity(1024);
    let mut number = 0;
    loop {
        buffer.clear();
        let read = reader.read_until(b'\n', &mut buffer).map_err(ReadError::Io)?;
        if read == 0 {
            return Ok(());
        }
        number += 1;
        let complete = buffer.last() == Some(&b'\n');
        match serde_json::from_slice::<Line>(&buffer) {
            Ok(line) if complete => {
                if each(line).is_break() {
                    return Ok(());
                }
            }
            _ if !complete && last => return Ok(()),
            Ok(_) => {
                return Err(ReadError::Damaged {
                    line: number,
                    reason: "a record without its line end in a segment that was continued".into(),
                });
            }
            Err(e) => {
                return Err(ReadError::Damaged {
                    line: number,
                    reason: format!("not a journal record: {e}"),
                });
            }
        }
    }
}

/// The segment being appended to.
pub(super) struct Journal {
    dir: PathBuf,
    file: File,
    path: PathBuf,
    /// Its length after the last good append: a failed append is cut back to it.
    length: u64,
    records: u64,
    /// The lines of the group being written, and how many.
    buffer: Vec<u8>,
    buffered: u64,
}

impl Journal {
    /// Starts a new segment in `dir` for records from `first_seq` on.
    pub(super) fn create(dir: &Path, first_seq: i64) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        let path = segment_path(dir, first_seq);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let length = file.metadata()?.len();
        // The new name must survive a crash as well as the records written under it.
        File::open(dir)?.sync_all()?;
        Ok(Self {
            dir: dir.to_path_buf(),
            file,
            path,
            length,
            records: 0,
            buffer: Vec::with_capacity(64 * 1024),
            buffered: 0,
        })
    }

    /// Appends `record`'s line to the group buffer.
    pub(super) fn push(&mut self, record: &Record, body: &[u8]) {
        self.buffer.extend_from_slice(b"{\"hash\":\"");
        self.buffer.extend_from_slice(record.hash.as_bytes());
        self.buffer.extend_from_slice(b"\",\"record\":");
        self.buffer.extend_from_slice(body);
        self.buffer.extend_from_slice(b"}\n");
        self.buffered += 1;
    }

    /// Writes and syncs the group's lines; on failure the segment is cut back to where it was,
    /// so no half-written group stays ahead of the next.
    pub(super) fn commit(&mut self) -> std::io::Result<()> {
        let written = self.file.write_all(&self.buffer).and_then(|()| self.file.sync_data());
        let length = self.length + self.buffer.len() as u64;
        let count = std::mem::take(&mut self.buffered);
        self.buffer.clear();
        match written {
            Ok(()) => {
                self.length = length;
                self.records += count;
                Ok(())
            }
            Err(e) => {
                if let Err(cut) = self.file.set_len(self.length).and_then(|()| self.file.sync_data()) {
                    tracing::error!(error = %cut, path = %self.path.display(), "cutting back a failed audit journal write");
                }
                Err(e)
            }
        }
    }

    /// Whether the segment holds enough records to start the next one.
    pub(super) fn full(&self) -> bool {
        self.records >= SEGMENT_RECORDS
    }

    /// Starts the next segment at `first_seq`; returns the path of the one it ends.
    pub(super) fn rotate(&mut self, first_seq: i64) -> std::io::Result<PathBuf> {
        let next = Self::create(&self.dir, first_seq)?;
        let ended = std::mem::replace(self, next);
        Ok(ended.path)
    }
}
