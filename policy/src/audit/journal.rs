//! The audit journal (审计日志文件): append-only segment files under `<data dir>/audit/`, one
//! JSON line per record, `{"hash":"…","record":{…}}`, where `record` is the canonical form
//! the hash covers. A record is durable, and its call answered, once the group holding it is
//! written and `fdatasync`ed here. The journal is where the audit trail is kept: readers scan
//! its segments (see the module above); nothing copies the records elsewhere.
//!
//! A segment is named after the sequence number of its first record,
//! `journal-00000000000000000001.jsonl`. It is made at its full size up front, zero-filled and
//! synced, and groups overwrite its zeros: the `fdatasync` of a group then writes the group's
//! blocks alone, where appending also wrote the file's new size and block allocation
//! (measured on this machine's ext4: 88 µs a sync against 190 µs). Records end where the zeros
//! begin; a JSON line never holds a NUL. A segment ends when the next group does not fit, so
//! few zeros are left after its records; the last one is cut to its records at a start.
//!
//! Segments are written with `O_DIRECT` where the file system allows it: whole 4 KiB pages
//! from the writer's buffer straight to the disk, the zeros of a new segment included, without
//! a copy into the page cache and its writeback (the segment maker's copying of 32 MiB of
//! zeros was some 5 % of the server's CPU under load). A group is written from the start of
//! the page its first record falls in (the records before it in that page are kept in memory)
//! to the end of the page of its last, padded with the zeros the file holds there. Elsewhere
//! the same pages go through the page cache.
//!
//! Only the tail of the last segment can be torn (a crash mid-write, before its sync): a last
//! line without its line end, and whatever lies past the first NUL. No call was answered for
//! it: readers drop it, and the next start cuts it off.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use super::Canonical;

/// Records per segment before the writer starts the next one (a few under test, to rotate).
pub(super) const SEGMENT_RECORDS: u64 = if cfg!(test) { 4 } else { 65_536 };

/// The size a segment is made at, made ahead on a thread of its own while the one before fills:
/// about 44,000 records of the lookup benchmark, so that a segment ends on its bytes rather
/// than on [`SEGMENT_RECORDS`] and few of the zeros written go unused.
const SEGMENT_BYTES: u64 = if cfg!(test) { 16 << 10 } else { 32 << 20 };

/// The size of the first segment after a start, and of one made when the next is not ready:
/// small, as calls wait while it is made.
const SMALL_SEGMENT_BYTES: u64 = if cfg!(test) { 4 << 10 } else { 1 << 20 };

/// The segment made ahead while the one from `first_seq` fills: written under this name,
/// renamed when it is taken.
fn spare_path(dir: &Path, first_seq: i64) -> PathBuf {
    dir.join(format!("spare-{first_seq:020}.tmp"))
}

/// The zeros a segment is made with are written and sent to the disk this many at a time.
const ZERO_CHUNK: usize = 256 << 10;

/// Writes to a segment start and end on this boundary (`O_DIRECT` needs the disk's block size,
/// which is at most this).
const PAGE: u64 = 4096;

/// A zeroed buffer of `len` bytes starting on a [`PAGE`] boundary, in `raw` (grown as needed).
fn aligned(raw: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if raw.len() < len + PAGE as usize {
        *raw = vec![0; (len + PAGE as usize).next_power_of_two()];
    }
    let address = raw.as_ptr() as usize;
    let start = address.next_multiple_of(PAGE as usize) - address;
    &mut raw[start..start + len]
}

/// Makes `path` a new file of `bytes` zeros (a multiple of [`PAGE`]), synced with its size, and
/// opened for [`Journal`]'s writes: with `O_DIRECT` where the file system takes it.
/// A file it could not finish is removed, so no segment is left named ahead of the one written.
///
/// The zeros go to the disk a chunk at a time, each waited for before the next is written:
/// the `fdatasync`s of the calls being answered meanwhile wait behind one chunk at most
/// (about 0.3 ms on this machine's disk), where the 32 MiB of a whole segment written back at
/// once held them for tens of milliseconds and set the p99 latency at half load.
fn make_segment(path: &Path, bytes: u64) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = |flags| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .custom_flags(flags)
            .open(path)
    };
    let (file, direct) = match open(libc::O_DIRECT) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // The file system does not take O_DIRECT; Linux made the file before refusing.
            let _ = fs::remove_file(path);
            (open(0)?, false)
        }
        opened => (opened?, true),
    };
    let mut raw = Vec::new();
    let zeros = aligned(&mut raw, (bytes as usize).min(ZERO_CHUNK));
    let mut written = 0;
    let filled = (|| {
        while written < bytes {
            let n = (bytes - written).min(zeros.len() as u64);
            file.write_all_at(&zeros[..n as usize], written)?;
            // With O_DIRECT the write returned once the chunk was on the disk.
            if !direct {
                write_back(&file, written, n)?;
            }
            written += n;
        }
        file.sync_all()
    })();
    match filled {
        Ok(()) => Ok(file),
        Err(e) => {
            let _ = fs::remove_file(path);
            Err(e)
        }
    }
}

/// Writes `len` bytes of `file` from `offset` to the disk and waits for them, without the
/// device flush and metadata of an `fsync` (`sync_file_range(2)`; not durable by itself).
#[allow(unsafe_code)]
fn write_back(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(std::io::Error::other("a range past the largest file offset"));
    };
    // SAFETY: a system call on a descriptor `file` keeps open; it reads or writes none of our memory.
    if unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

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

/// Cuts the last segment `path` to its complete records, dropping a torn tail and the zeros
/// after its records, and returns its last record; a segment left without records is removed.
/// For the start, before a new segment is begun after it.
pub(super) fn seal(path: &Path) -> Result<Option<Line>, ReadError> {
    let mut end = 0u64;
    let mut last = None;
    read_segment_at(path, true, 0, |line, line_end| {
        end = line_end;
        last = Some(line);
        std::ops::ControlFlow::Continue(())
    })?;
    let cut = || -> std::io::Result<()> {
        if last.is_none() {
            return fs::remove_file(path);
        }
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(end)?;
        file.sync_all()
    };
    cut().map_err(ReadError::Io)?;
    Ok(last)
}

/// The first record of segment `path`, if it holds one (read with a small buffer: readers
/// look at the first record of many segments).
pub(super) fn first_record(path: &Path) -> Result<Option<Line>, ReadError> {
    let mut reader = BufReader::with_capacity(16 << 10, open(path)?);
    let mut buffer = Vec::new();
    if read_line(&mut reader, &mut buffer).map_err(ReadError::Io)? == LineEnd::End {
        return Ok(None);
    }
    serde_json::from_slice(&buffer)
        .map(Some)
        .map_err(|e| ReadError::Damaged {
            line: 1,
            after: 0,
            reason: format!("not a journal record: {e}"),
        })
}

fn open(path: &Path) -> Result<File, ReadError> {
    File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ReadError::Gone,
        _ => ReadError::Io(e),
    })
}

/// A place in segment `file` where a line starts at or before the first line numbered `seq`
/// or later, found by bisecting on the sequence numbers of the lines (they ascend along a
/// segment) with reads of 64 KiB (a line may be a few KiB long); the start of the file when in
/// doubt. A reader starting there reads a few hundred KiB where it would read the whole
/// segment.
fn line_start_before(file: &File, seq: i64) -> u64 {
    const PROBE: usize = 64 << 10;
    let Ok(len) = file.metadata().map(|m| m.len()) else {
        return 0;
    };
    let mut probe = vec![0u8; PROBE];
    // `lo` is always a line start whose record comes before `seq` (or the file's start).
    let (mut lo, mut hi) = (0u64, len);
    while hi - lo > 4 * PROBE as u64 {
        let mid = lo + (hi - lo) / 2;
        let Ok(n) = file.read_at(&mut probe, mid) else {
            return lo;
        };
        let bytes = &probe[..n];
        let next_line = bytes
            .iter()
            .position(|&b| b == b'\n' || b == 0)
            .filter(|&at| bytes[at] == b'\n')
            .map(|at| at + 1);
        match next_line.and_then(|start| Some((start, line_seq(&bytes[start..])?))) {
            Some((start, found)) if found < seq => lo = mid + start as u64,
            // At or past `seq`, in the zeros after the records, or a line as long as the
            // probe: look before.
            _ => hi = mid,
        }
    }
    lo
}

/// A journal line's sequence number, read from where the line format puts it
/// (`{"hash":"<64 hex>","record":{"seq":N,…`) without parsing the line: readers skip the
/// records before a cursor this way. `None` when the line is not in that form.
pub(super) fn line_seq(line: &[u8]) -> Option<i64> {
    const PREFIX: usize = r#"{"hash":""#.len() + 64;
    let rest = line.get(PREFIX..)?.strip_prefix(br#"","record":{"seq":"#)?;
    let sign = usize::from(rest.first() == Some(&b'-'));
    let end = sign + rest[sign..].iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
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
    /// The file went away while it was read (removed by hand: the server never removes one).
    Gone,
    /// The file could not be read.
    Io(std::io::Error),
    /// A line that is neither a record nor the torn last line: its number, counted from the
    /// byte the reading started at (`after`, 0 for the file's start).
    Damaged { line: usize, after: u64, reason: String },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Gone => f.write_str("the segment was removed while it was read"),
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Damaged { line, after: 0, reason } => write!(f, "line {line}: {reason}"),
            ReadError::Damaged { line, after, reason } => write!(f, "line {line} after byte {after}: {reason}"),
        }
    }
}

/// Calls `each` with every complete line of `path` in order. A last line without its newline,
/// in the last segment (`last`), is a write the crash cut short and is skipped.
#[cfg(test)]
pub(super) fn read_segment(
    path: &Path,
    last: bool,
    mut each: impl FnMut(Line) -> std::ops::ControlFlow<()>,
) -> Result<(), ReadError> {
    read_segment_at(path, last, 0, |line, _| each(line))
}

/// Calls `each` with every complete line of `path` in order, from the first record numbered
/// `from_seq` or later (the reading starts where bisecting puts it, and skips the lines
/// before `from_seq` unparsed, by [`line_seq`]), telling `each` where in the file each line
/// ends. A last line without its newline, in the last segment (`last`), is a write the crash
/// cut short and is skipped.
pub(super) fn read_segment_at(
    path: &Path,
    last: bool,
    from_seq: i64,
    mut each: impl FnMut(Line, u64) -> std::ops::ControlFlow<()>,
) -> Result<(), ReadError> {
    let mut file = open(path)?;
    let start = if from_seq > 1 {
        line_start_before(&file, from_seq)
    } else {
        0
    };
    if start > 0 {
        file.seek(SeekFrom::Start(start)).map_err(ReadError::Io)?;
    }
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut buffer = Vec::with_capacity(1024);
    let (mut number, mut offset) = (0, start);
    loop {
        buffer.clear();
        let end = read_line(&mut reader, &mut buffer).map_err(ReadError::Io)?;
        if buffer.is_empty() {
            return Ok(());
        }
        number += 1;
        offset += buffer.len() as u64;
        let complete = end == LineEnd::Newline;
        if complete && line_seq(&buffer).is_some_and(|seq| seq < from_seq) {
            continue;
        }
        match serde_json::from_slice::<Line>(&buffer) {
            // A line not in the form `line_seq` reads, before `from_seq`.
            Ok(line) if complete && line.record.seq < from_seq => {}
            Ok(line) if complete => {
                if each(line, offset).is_break() {
                    return Ok(());
                }
            }
            _ if !complete && last => return Ok(()),
            Ok(_) => {
                return Err(ReadError::Damaged {
                    line: number,
                    after: start,
                    reason: "a record without its line end in a segment that was continued".into(),
                });
            }
            Err(e) => {
                return Err(ReadError::Damaged {
                    line: number,
                    after: start,
                    reason: format!("not a journal record: {e}"),
                });
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum LineEnd {
    Newline,
    /// The zeros a segment is made of, or the end of the file: no more records.
    End,
}

/// Reads into `line` up to and including the next line end, or up to the first NUL or the
/// end of the file.
fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<LineEnd> {
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(LineEnd::End);
        }
        match available.iter().position(|&b| b == b'\n' || b == 0) {
            Some(at) if available[at] == b'\n' => {
                line.extend_from_slice(&available[..=at]);
                reader.consume(at + 1);
                return Ok(LineEnd::Newline);
            }
            Some(at) => {
                line.extend_from_slice(&available[..at]);
                return Ok(LineEnd::End);
            }
            None => {
                let n = available.len();
                line.extend_from_slice(available);
                reader.consume(n);
            }
        }
    }
}

/// The segment being written.
pub(super) struct Journal {
    dir: PathBuf,
    file: File,
    path: PathBuf,
    first_seq: i64,
    /// Where the records written and synced end: the next group goes here.
    length: u64,
    /// The zero-filled bytes the segment was made with.
    capacity: u64,
    records: u64,
    /// The lines of the group being written, and how many.
    buffer: Vec<u8>,
    buffered: u64,
    /// The records of the page `length` falls in, before it: a group's write starts with them.
    tail: Vec<u8>,
    /// Where a group's pages are put together, aligned for `O_DIRECT`.
    pages: Vec<u8>,
    /// The next segment, being made ahead.
    spare: Option<(PathBuf, JoinHandle<std::io::Result<File>>)>,
    /// Why writes are refused: a failed write that could not be zeroed again.
    broken: Option<String>,
}

impl Journal {
    /// Starts a new segment in `dir` for records from `first_seq` on, after removing segments
    /// an earlier writer made ahead and did not take.
    pub(super) fn create(dir: &Path, first_seq: i64) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.starts_with("spare-") && name.ends_with(".tmp") {
                fs::remove_file(&path)?;
            }
        }
        let (path, file, capacity) = new_segment(dir, first_seq, None)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            file,
            path,
            first_seq,
            length: 0,
            capacity,
            records: 0,
            buffer: Vec::with_capacity(64 * 1024),
            buffered: 0,
            tail: Vec::with_capacity(PAGE as usize),
            pages: Vec::new(),
            spare: None,
            broken: None,
        })
    }

    /// Appends the line of the record whose canonical form is `body` to the group buffer.
    pub(super) fn push(&mut self, hash: &str, body: &[u8]) {
        self.buffer.extend_from_slice(b"{\"hash\":\"");
        self.buffer.extend_from_slice(hash.as_bytes());
        self.buffer.extend_from_slice(b"\",\"record\":");
        self.buffer.extend_from_slice(body);
        self.buffer.extend_from_slice(b"}\n");
        self.buffered += 1;
    }

    /// Whether the group buffered should start the next segment: this one holds its records,
    /// or has no room for the group. A group larger than a whole segment goes past its end.
    pub(super) fn full(&self) -> bool {
        self.records > 0 && (self.records >= SEGMENT_RECORDS || self.length + self.buffer.len() as u64 > self.capacity)
    }

    /// Writes and syncs the group's lines; on failure the bytes it may have left are zeroed
    /// again, so no half-written group stays ahead of the next.
    ///
    /// When the zeroing fails too, the bytes of the failed group may still be there behind the
    /// next, and a reader would take them for records: the journal then refuses every write
    /// until the server is restarted (and the start reads what the segment holds).
    pub(super) fn commit(&mut self) -> std::io::Result<()> {
        let count = std::mem::take(&mut self.buffered);
        let size = self.buffer.len();
        if let Some(why) = &self.broken {
            self.buffer.clear();
            return Err(std::io::Error::other(why.clone()));
        }
        let written = self.write_pages(true).and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.length += size as u64;
                self.records += count;
                // The records in the page where the next group starts: those of this group, or
                // when it did not fill the page, the tail before it and all of it.
                let kept = (self.length % PAGE) as usize;
                if kept < size {
                    self.tail.clear();
                    self.tail.extend_from_slice(&self.buffer[size - kept..]);
                } else {
                    self.tail.extend_from_slice(&self.buffer);
                }
                self.buffer.clear();
                if self.spare.is_none() && self.length * 2 > self.capacity {
                    self.make_spare();
                }
                Ok(())
            }
            Err(e) => {
                let zeroed = self.write_pages(false).and_then(|()| self.file.sync_data());
                self.buffer.clear();
                if let Err(zeroing) = zeroed {
                    tracing::error!(error = %zeroing, path = %self.path.display(), "zeroing a failed audit journal write; refusing writes until a restart");
                    self.broken = Some(format!(
                        "a failed write to {} could not be undone ({zeroing}); restart the server",
                        self.path.display()
                    ));
                }
                Err(e)
            }
        }
    }

    /// Writes the pages from the one `length` falls in: the records before it in that page,
    /// then the group buffered (`group`) or nothing, then zeros to the end of the page, as
    /// far as the group buffered reaches (the pages a failed write may have left bytes in).
    fn write_pages(&mut self, group: bool) -> std::io::Result<()> {
        let start = self.length - self.tail.len() as u64;
        let end = (self.length + self.buffer.len() as u64).div_ceil(PAGE) * PAGE;
        let pages = aligned(&mut self.pages, (end - start) as usize);
        debug_assert!(
            start.is_multiple_of(PAGE)
                && (pages.len() as u64).is_multiple_of(PAGE)
                && (pages.as_ptr() as u64).is_multiple_of(PAGE)
        );
        let mut at = self.tail.len();
        pages[..at].copy_from_slice(&self.tail);
        if group {
            pages[at..at + self.buffer.len()].copy_from_slice(&self.buffer);
            at += self.buffer.len();
        }
        pages[at..].fill(0);
        self.file.write_all_at(pages, start)
    }

    /// Starts making the next segment, on a thread of its own.
    fn make_spare(&mut self) {
        let path = spare_path(&self.dir, self.first_seq);
        let making = path.clone();
        match std::thread::Builder::new()
            .name("huitong-audit-spare".into())
            .spawn(move || {
                super::lower_priority();
                make_segment(&making, SEGMENT_BYTES)
            }) {
            Ok(handle) => self.spare = Some((path, handle)),
            Err(e) => tracing::warn!(error = %e, "starting to make the next audit journal segment"),
        }
    }

    /// Starts the next segment at `first_seq`, keeping the group buffered; returns the path of
    /// the one it ends.
    pub(super) fn rotate(&mut self, first_seq: i64) -> std::io::Result<PathBuf> {
        let ready = self.spare.take_if(|(_, making)| making.is_finished());
        let (path, file, capacity) = new_segment(&self.dir, first_seq, ready)?;
        self.file = file;
        self.capacity = capacity;
        self.first_seq = first_seq;
        self.length = 0;
        self.records = 0;
        self.tail.clear();
        Ok(std::mem::replace(&mut self.path, path))
    }
}

/// Makes the segment for records from `first_seq` on: the one made ahead (`ready`, finished)
/// when it was made whole, otherwise a small one now. Returns its path, file and size. It is
/// not kept unless its name is durable: a segment named ahead of the one still written would
/// make that one read as not the last.
fn new_segment(
    dir: &Path,
    first_seq: i64,
    ready: Option<(PathBuf, JoinHandle<std::io::Result<File>>)>,
) -> std::io::Result<(PathBuf, File, u64)> {
    let path = segment_path(dir, first_seq);
    let made = match ready.map(|(spare, making)| (spare, making.join())) {
        Some((spare, Ok(Ok(file)))) => fs::rename(&spare, &path).map(|()| (file, SEGMENT_BYTES)),
        Some((spare, failed)) => {
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => "its thread panicked".into(),
            };
            tracing::warn!(error = %why, "making the next audit journal segment ahead; making a small one now");
            let _ = fs::remove_file(&spare);
            make_segment(&path, SMALL_SEGMENT_BYTES).map(|file| (file, SMALL_SEGMENT_BYTES))
        }
        None => make_segment(&path, SMALL_SEGMENT_BYTES).map(|file| (file, SMALL_SEGMENT_BYTES)),
    };
    let (file, capacity) = made?;
    if let Err(e) = File::open(dir).and_then(|dir| dir.sync_all()) {
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok((path, file, capacity))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditEntry, GENESIS_HASH};

    /// Journals one group of `n` records from `first_seq` on, each with a request id of `len`
    /// bytes, as the writer does; returns the segment it ended, if it started the next.
    fn write_group(journal: &mut Journal, first_seq: i64, n: usize, len: usize) -> Option<PathBuf> {
        let mut body = Vec::new();
        for seq in first_seq..first_seq + n as i64 {
            let entry = AuditEntry {
                request_id: "r".repeat(len),
                endpoint: "GET /".into(),
                outcome: "allowed".into(),
                ..AuditEntry::default()
            };
            let canonical = Canonical::new(seq, "2026-11-24T00:00:00Z".into(), entry);
            let hash = canonical.hash_into(GENESIS_HASH, &mut body);
            journal.push(&hash, &body);
        }
        let ended = journal.full().then(|| journal.rotate(first_seq).unwrap());
        journal.commit().unwrap();
        ended
    }

    fn seqs(path: &Path) -> Vec<i64> {
        let mut seqs = Vec::new();
        read_segment(path, true, |line| {
            seqs.push(line.record.seq);
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        seqs
    }

    fn size(path: &Path) -> u64 {
        fs::metadata(path).unwrap().len()
    }

    /// Waits until the segment being made ahead is made.
    fn wait_for_spare(journal: &Journal) {
        let (_, making) = journal.spare.as_ref().expect("a segment is being made ahead");
        while !making.is_finished() {
            std::thread::yield_now();
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Groups written as whole pages from the page their first record falls in: whatever
        /// the groups' sizes (within a page, across pages, past a segment's end), each segment
        /// holds its records back to back, then zeros only.
        #[test]
        fn groups_of_any_size_leave_records_then_zeros(
            groups in proptest::collection::vec((1usize..5, 0usize..7000), 1..14)
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut journal = Journal::create(dir.path(), 1).unwrap();
            let mut next = 1;
            for (n, len) in groups {
                write_group(&mut journal, next, n, len);
                next += n as i64;
            }
            let mut all = Vec::new();
            for (_, path) in segments(dir.path()).unwrap() {
                let bytes = fs::read(&path).unwrap();
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                proptest::prop_assert!(bytes[end..].iter().all(|&b| b == 0), "{} has bytes after its zeros", path.display());
                proptest::prop_assert!(end == 0 || bytes[end - 1] == b'\n', "{} ends mid-line", path.display());
                all.extend(seqs(&path));
            }
            proptest::prop_assert_eq!(all, (1..next).collect::<Vec<_>>());
        }
    }

    #[test]
    fn groups_overwrite_the_zeros_and_a_full_segment_takes_the_one_made_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::create(dir.path(), 1).unwrap();
        let first = segment_path(dir.path(), 1);
        assert_eq!(size(&first), SMALL_SEGMENT_BYTES);

        assert_eq!(write_group(&mut journal, 1, 1, 2_500), None);
        assert_eq!(
            size(&first),
            SMALL_SEGMENT_BYTES,
            "written over the zeros, not appended"
        );
        // Past half of the segment: the next is being made.
        wait_for_spare(&journal);

        // No room for a second such group: it starts the segment made ahead.
        assert_eq!(write_group(&mut journal, 2, 1, 2_500), Some(first.clone()));
        let second = segment_path(dir.path(), 2);
        assert_eq!(size(&second), SEGMENT_BYTES);
        assert_eq!((seqs(&first), seqs(&second)), (vec![1], vec![2]));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "the segment made ahead was renamed: {names:?}");
    }

    #[test]
    fn a_segment_ends_on_its_record_count_and_a_group_larger_than_it_goes_past_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::create(dir.path(), 1).unwrap();
        let first = segment_path(dir.path(), 1);
        assert_eq!(write_group(&mut journal, 1, SEGMENT_RECORDS as usize, 10), None);
        assert_eq!(write_group(&mut journal, 5, 1, 10), Some(first.clone()));
        let second = segment_path(dir.path(), 5);
        // Into a segment holding nothing yet, a group goes whole, whatever its size.
        let big = SEGMENT_BYTES as usize + 1_000;
        let third = segment_path(dir.path(), 6);
        assert_eq!(write_group(&mut journal, 6, 1, big), Some(second.clone()));
        assert!(size(&third) > SEGMENT_BYTES);
        assert_eq!(write_group(&mut journal, 7, 1, 10), Some(third.clone()));
        assert_eq!(seqs(&first), [1, 2, 3, 4]);
        assert_eq!((seqs(&second), seqs(&third)), (vec![5], vec![6]));
        assert_eq!(seqs(&segment_path(dir.path(), 7)), [7]);
    }

    #[test]
    fn lines_end_at_a_newline_and_records_at_the_first_nul_across_buffer_fills() {
        let read = |bytes: &[u8]| {
            // A buffer smaller than a line: lines and the zeros span fills.
            let mut reader = std::io::BufReader::with_capacity(8, bytes);
            let mut lines = Vec::new();
            loop {
                let mut line = Vec::new();
                let end = read_line(&mut reader, &mut line).unwrap();
                if line.is_empty() {
                    return lines;
                }
                lines.push((String::from_utf8(line).unwrap(), end == LineEnd::Newline));
                if end == LineEnd::End {
                    return lines;
                }
            }
        };
        let line = |text: &str, complete| (text.to_string(), complete);
        assert_eq!(
            read(b"first line\nsecond, longer line\n"),
            [line("first line\n", true), line("second, longer line\n", true)]
        );
        // Zeros at the start of a fill, and in the middle of one.
        assert_eq!(read(b"1234567\n\0\0\0\0{\"late\"}\n"), [line("1234567\n", true)]);
        assert_eq!(read(b"123\n\0\0\0{\"late\"}\n"), [line("123\n", true)]);
        // A torn line: cut by the zeros, or by the end of the file.
        assert_eq!(
            read(b"whole\n{\"torn\0\0\0\0\0\0\0\0x\n"),
            [line("whole\n", true), line("{\"torn", false)]
        );
        assert_eq!(read(b"whole\n{\"torn"), [line("whole\n", true), line("{\"torn", false)]);
        assert_eq!(read(b"\0\0\0\0\0\0\0\0\0\0line\n"), []);
    }

    /// A segment file of `n` records, followed by zeros as the last segment is: every seventh
    /// with a request id of 5,000 bytes, every 500th longer than the bisection's probe, and
    /// every eleventh written with its keys the other way round (not the form `line_seq`
    /// reads, so a reader has to parse it to skip it).
    fn long_segment(dir: &Path, n: i64) -> PathBuf {
        let mut text = Vec::new();
        let mut body = Vec::new();
        for seq in 1..=n {
            let entry = AuditEntry {
                request_id: match seq {
                    _ if seq % 500 == 0 => "r".repeat(70_000),
                    _ if seq % 7 == 0 => "r".repeat(5_000),
                    _ => format!("request-{seq}"),
                },
                endpoint: "GET /".into(),
                outcome: "allowed".into(),
                ..AuditEntry::default()
            };
            let canonical = Canonical::new(seq, "2026-11-24T00:00:00Z".into(), entry);
            let hash = canonical.hash_into(GENESIS_HASH, &mut body);
            if seq % 11 == 0 {
                text.extend_from_slice(b"{\"record\":");
                text.extend_from_slice(&body);
                text.extend_from_slice(format!(",\"hash\":\"{hash}\"}}\n").as_bytes());
            } else {
                text.extend_from_slice(format!("{{\"hash\":\"{hash}\",\"record\":").as_bytes());
                text.extend_from_slice(&body);
                text.extend_from_slice(b"}\n");
            }
        }
        text.resize(text.len() + 100_000, 0);
        let path = segment_path(dir, 1);
        fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_reader_from_a_sequence_number_gets_exactly_the_records_from_it() {
        let dir = tempfile::tempdir().unwrap();
        let n = 3_000;
        let path = long_segment(dir.path(), n);
        let file = File::open(&path).unwrap();
        let bytes = fs::read(&path).unwrap();
        for from in (0..=n + 2).step_by(37).chain([1, 2, n - 1, n, n + 1]) {
            let start = line_start_before(&file, from) as usize;
            assert!(
                start == 0 || bytes[start - 1] == b'\n',
                "{from}: {start} is a line start"
            );
            if start > 0 {
                let line = bytes[start..].split(|&b| b == b'\n').next().unwrap();
                let parsed: Line = serde_json::from_slice(line).unwrap();
                assert!(parsed.record.seq < from, "{from}: starts before it");
            }
            let mut read = Vec::new();
            read_segment_at(&path, true, from, |line, _| {
                read.push(line.record.seq);
                std::ops::ControlFlow::Continue(())
            })
            .unwrap();
            assert_eq!(read, (from.max(1)..=n).collect::<Vec<_>>(), "from {from}");
        }
        // Far into the segment, the reading starts near its record, not at the file's start.
        let records_end = bytes.len() - 100_000;
        let start = line_start_before(&file, n - 10) as usize;
        assert!(start + 300_000 > records_end, "bisected to {start} of {records_end}");
    }

    #[test]
    fn a_start_removes_segments_made_ahead_and_not_taken() {
        let dir = tempfile::tempdir().unwrap();
        let left = spare_path(dir.path(), 1);
        fs::write(&left, [0; 16]).unwrap();
        Journal::create(dir.path(), 1).unwrap();
        assert!(!left.exists());
        assert_eq!(segments(dir.path()).unwrap(), [(1, segment_path(dir.path(), 1))]);
    }
}
