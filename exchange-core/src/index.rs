//! The serving index: key → current record, for lookups at thousands of requests per second
//! without planning a query. An embedded redb file beside the library table, updated after each
//! library commit and stamped with the library version it reflects, so a crash between the
//! two is repaired by replaying the newer versions on open.
//!
//! Records are stored in a compact binary form (see [`encode`]). A write that changes much of
//! the library (its first load above all) writes them anew as a sorted, immutable base file
//! ([`crate::segment`]) in one sequential pass; redb then holds only the changes made since (a
//! deletion of a base record as an empty value), and a lookup reads redb, then the base.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use redb::{Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::segment::{Segment, SegmentWriter};
use crate::{Error, Result};

const RECORDS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("records");
const META: TableDefinition<'_, &str, i64> = TableDefinition::new("meta");
const VERSION_KEY: &str = "library_version";
const FORMAT_KEY: &str = "format";
/// The generation of the base segment (absent: no base).
const BASE_KEY: &str = "base";
/// Records held, base and changes together (kept only while there is a base).
const COUNT_KEY: &str = "records";
/// What redb holds for a base record deleted since: encoded records are never empty.
const TOMBSTONE: &[u8] = b"";
/// Bumped when the record encoding or the base segment's format changes; an index in another
/// format is rebuilt from its table.
const FORMAT: i64 = 4;
/// The index's page cache.
const INDEX_CACHE_BYTES: usize = 256 << 20;

/// A library's current record for one key, as the index stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecord {
    /// Field values in schema order; dates as `YYYY-MM-DD`.
    pub values: Vec<Option<String>>,
    /// The department code whose data the record is (the authoritative source when known).
    pub source: String,
    /// The library version that last changed the record.
    pub version: i64,
    /// Where each field's value came from.
    pub lineage: crate::Lineage,
}

/// Encodes a record: version (i64 LE), source (u16 length + bytes), field count (u16), then
/// each field as a u32 length (`u32::MAX` for null) and its bytes, then the lineage
/// ([`crate::Lineage::encode`]).
pub fn encode(record: &StoredRecord, out: &mut Vec<u8>) {
    out.clear();
    append_encoded(record, out);
}

/// Appends [`encode`]'s bytes for `record` to `out`.
pub(crate) fn append_encoded(record: &StoredRecord, out: &mut Vec<u8>) {
    encode_head(record.version, &record.source, &record.values, out);
    record.lineage.encode(out);
}

/// Appends what [`encode`] writes before the lineage: for a writer that has the parts at hand
/// and its lineage already encoded.
pub(crate) fn encode_head<S: AsRef<str>>(version: i64, source: &str, values: &[Option<S>], out: &mut Vec<u8>) {
    out.extend_from_slice(&version.to_le_bytes());
    let source = &source.as_bytes()[..source.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(source.len() as u16).to_le_bytes());
    out.extend_from_slice(source);
    out.extend_from_slice(&(values.len() as u16).to_le_bytes());
    for value in values {
        match value {
            Some(v) => {
                let v = v.as_ref().as_bytes();
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                out.extend_from_slice(v);
            }
            None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
        }
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(Error::index("truncated index record"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u16(&mut self) -> Result<usize> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")) as usize)
    }

    fn text(&mut self, n: usize) -> Result<&'a str> {
        std::str::from_utf8(self.take(n)?).map_err(Error::index)
    }
}

/// The version and source of an encoded record, without decoding its values.
pub fn decode_head(bytes: &[u8]) -> Result<(i64, &str)> {
    let mut c = Cursor { bytes };
    let version = i64::from_le_bytes(c.take(8)?.try_into().expect("8 bytes"));
    let len = c.u16()?;
    Ok((version, c.text(len)?))
}

/// A record's version and values borrowed from the index: what a lookup that only answers
/// with the values needs, without a `String` per value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// The library version that last changed the record.
    pub version: i64,
    /// Field values in schema order.
    pub values: Vec<Option<&'a str>>,
}

impl<'a> RecordRef<'a> {
    /// Borrows the version and values of a record [`encode`] wrote.
    pub fn decode(bytes: &'a [u8]) -> Result<Self> {
        let (version, _) = decode_head(bytes)?;
        let mut values = Vec::with_capacity(16);
        decode_values(bytes, |_, value| values.push(value))?;
        Ok(Self { version, values })
    }
}

/// Decodes what [`encode`] wrote.
pub fn decode(bytes: &[u8]) -> Result<StoredRecord> {
    let mut c = Cursor { bytes };
    let version = i64::from_le_bytes(c.take(8)?.try_into().expect("8 bytes"));
    let len = c.u16()?;
    let source = c.text(len)?.to_string();
    let n = c.u16()?;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        let len = u32::from_le_bytes(c.take(4)?.try_into().expect("4 bytes"));
        values.push(if len == u32::MAX {
            None
        } else {
            Some(c.text(len as usize)?.to_string())
        });
    }
    let (lineage, _) = crate::Lineage::decode(c.bytes).ok_or_else(|| Error::index("truncated record lineage"))?;
    Ok(StoredRecord {
        values,
        source,
        version,
        lineage,
    })
}

/// Calls `f(position, value)` for each value of a record [`encode`] wrote, in schema order,
/// borrowed from `bytes`: for scans that copy values straight into columns, without a string
/// per value. Returns how many values the record holds.
pub fn decode_values<'a>(bytes: &'a [u8], mut f: impl FnMut(usize, Option<&'a str>)) -> Result<usize> {
    let mut c = Cursor { bytes };
    c.take(8)?;
    let len = c.u16()?;
    c.take(len)?;
    let n = c.u16()?;
    for i in 0..n {
        let len = u32::from_le_bytes(c.take(4)?.try_into().expect("4 bytes"));
        f(
            i,
            if len == u32::MAX {
                None
            } else {
                Some(c.text(len as usize)?)
            },
        );
    }
    Ok(n)
}

/// The version stamp as `tx` sees it.
fn version_in(tx: &redb::ReadTransaction) -> Result<Option<i64>> {
    let meta = tx.open_table(META).map_err(Error::index)?;
    Ok(meta.get(VERSION_KEY).map_err(Error::index)?.map(|v| v.value()))
}

/// The records as `tx` sees them, over `base` (the base segment when `tx` began).
fn reader_in(tx: &redb::ReadTransaction, base: Option<Arc<Segment>>) -> Result<IndexReader> {
    let count = match base {
        Some(_) => {
            let meta = tx.open_table(META).map_err(Error::index)?;
            Some(meta.get(COUNT_KEY).map_err(Error::index)?.map_or(0, |v| v.value()) as u64)
        }
        None => None,
    };
    Ok(IndexReader {
        records: tx.open_table(RECORDS).map_err(Error::index)?,
        base,
        count,
    })
}

/// Records as the index stores them, back to back: what a scan copies out of the index to be
/// decoded elsewhere (on another thread) with [`Encoded::batch`].
#[derive(Debug)]
pub struct Encoded {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Encoded {
    /// Room for `records` records of about `bytes_each` bytes.
    fn with_capacity(records: usize, bytes_each: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(records * bytes_each),
            ends: Vec::with_capacity(records),
        }
    }

    /// Appends one encoded record, as [`encode`] wrote it.
    fn push(&mut self, record: &[u8]) {
        self.bytes.extend_from_slice(record);
        self.ends.push(self.bytes.len());
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The stored, plain values as a batch over every field of `library`
    /// ([`LibrarySchema::text_schema`]), copied straight into the columns. A record written
    /// with fewer fields than the schema now has gets nulls for the rest.
    pub fn batch(&self, library: &crate::LibrarySchema) -> Result<arrow::array::RecordBatch> {
        use arrow::array::{ArrayRef, StringBuilder};
        let width = library.fields.len();
        let rows = self.len();
        let mut columns: Vec<StringBuilder> = (0..width)
            .map(|_| StringBuilder::with_capacity(rows, self.bytes.len() / width.max(1)))
            .collect();
        let mut start = 0;
        for end in &self.ends {
            let held = decode_values(&self.bytes[start..*end], |i, value| {
                if let Some(column) = columns.get_mut(i) {
                    column.append_option(value);
                }
            })?;
            for column in columns.iter_mut().skip(held) {
                column.append_null();
            }
            start = *end;
        }
        let columns: Vec<ArrayRef> = columns
            .iter_mut()
            .map(|c| std::sync::Arc::new(c.finish()) as ArrayRef)
            .collect();
        arrow::array::RecordBatch::try_new(library.text_schema(), columns).map_err(Error::index)
    }
}

/// Reads the current records in key order, a chunk at a time.
pub struct Scan {
    reader: IndexReader,
    after: Option<String>,
    done: bool,
}

impl Scan {
    /// A scan from the first key after `after` (from the start when `None`).
    pub fn new(reader: IndexReader, after: Option<String>) -> Self {
        Self {
            reader,
            after,
            done: false,
        }
    }

    /// The next `n` records at most, copied from the index as they are stored (decoded later,
    /// elsewhere, with [`Encoded::batch`]); empty at the end.
    pub fn next_encoded(&mut self, n: usize) -> Result<Encoded> {
        let mut encoded = Encoded::with_capacity(n, 256);
        if self.done {
            return Ok(encoded);
        }
        let last = self.reader.visit(self.after.as_deref(), n, |_, bytes| {
            encoded.push(bytes);
            Ok(())
        })?;
        match last {
            Some(key) => self.after = Some(key),
            None => self.done = true,
        }
        Ok(encoded)
    }

    /// The next `n` records at most; empty at the end.
    pub fn next_chunk(&mut self, n: usize) -> Result<Vec<(String, StoredRecord)>> {
        if self.done {
            return Ok(Vec::new());
        }
        let (page, last) = self.reader.changed_since(i64::MIN, self.after.as_deref(), n, n)?;
        match last {
            Some(key) => self.after = Some(key),
            None => self.done = true,
        }
        Ok(page)
    }
}

/// The key → current-record index of one library.
pub struct ServingIndex {
    db: Database,
    path: std::path::PathBuf,
    /// The base segment and its generation, changed only with the redb commit that names it
    /// (under the write lock), so a reader's transaction and base always agree.
    base: RwLock<(i64, Option<Arc<Segment>>)>,
    /// Bumped after every commit: a read view made before it may be stale.
    commits: AtomicU64,
    /// The read view lookups share until the next commit, and the commit count it was made
    /// at: beginning a redb read transaction and opening the table for each lookup cost about
    /// 2 % of the CPU of an exchange lookup under load.
    shared: RwLock<Option<(u64, Arc<IndexReader>)>>,
}

/// A page of records changed since a version, and the last key examined (to go on from).
pub type ChangedPage = (Vec<(String, StoredRecord)>, Option<String>);

/// A consistent read view of the index, kept open across many lookups (a sync run's).
pub struct IndexReader {
    records: ReadOnlyTable<&'static str, &'static [u8]>,
    base: Option<Arc<Segment>>,
    /// Records held, when there is a base.
    count: Option<u64>,
}

impl IndexReader {
    /// `f` of the encoded record for `key`: the change made since the base, else the base's.
    fn get_encoded<T>(&self, key: &str, f: impl FnOnce(Option<&[u8]>) -> Result<T>) -> Result<T> {
        if let Some(bytes) = self.records.get(key).map_err(Error::index)? {
            let bytes = bytes.value();
            return f((bytes != TOMBSTONE).then_some(bytes));
        }
        match &self.base {
            Some(base) => base.get_with(key.as_bytes(), f)?,
            None => f(None),
        }
    }

    /// The current record for `key`.
    pub fn get(&self, key: &str) -> Result<Option<StoredRecord>> {
        self.get_encoded(key, |bytes| bytes.map(decode).transpose())
    }

    /// `f` of the current record for `key`, borrowed from the index.
    pub fn get_with<T>(&self, key: &str, f: impl FnOnce(Option<RecordRef<'_>>) -> T) -> Result<T> {
        self.get_encoded(key, |bytes| Ok(f(bytes.map(RecordRef::decode).transpose()?)))
    }

    /// A cursor on the first record after `after` (the first record when `None`): the
    /// changes made since the base merged with the base, a change (or deletion) hiding the
    /// base's record for its key.
    pub(crate) fn cursor(&self, after: Option<&str>) -> Result<ViewCursor<'_>> {
        use std::ops::Bound;
        let mut changes = match after {
            Some(after) => self
                .records
                .range::<&str>((Bound::Excluded(after), Bound::Unbounded))
                .map_err(Error::index)?,
            None => self.records.iter().map_err(Error::index)?,
        };
        let change = changes.next().transpose().map_err(Error::index)?;
        let base = match &self.base {
            Some(base) => Some(base.cursor(after.map(str::as_bytes))?),
            None => None,
        };
        let mut cursor = ViewCursor {
            changes,
            change,
            base,
            on_change: false,
        };
        cursor.settle()?;
        Ok(cursor)
    }

    /// Calls `f(key, encoded record)` for the records after `after` (from the first when
    /// `None`) in key order, while it returns true.
    fn walk(&self, after: Option<&str>, mut f: impl FnMut(&str, &[u8]) -> Result<bool>) -> Result<()> {
        let mut view = self.cursor(after)?;
        while let Some((key, record)) = view.current() {
            let key = std::str::from_utf8(key).map_err(Error::index)?;
            if !f(key, record)? {
                break;
            }
            view.advance()?;
        }
        Ok(())
    }

    /// Calls `f(key, version, source)` for every record, in key order.
    pub fn for_each_head(&self, mut f: impl FnMut(&str, i64, &str)) -> Result<()> {
        self.walk(None, |key, bytes| {
            let (version, source) = decode_head(bytes)?;
            f(key, version, source);
            Ok(true)
        })
    }

    /// Calls `f(key, record)` for every record, in key order, decoding one at a time (memory
    /// stays flat however large the library). Stops at the first error `f` returns.
    pub fn for_each_record<E: From<Error>>(
        &self,
        mut f: impl FnMut(&str, StoredRecord) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut failed = None;
        self.walk(None, |key, bytes| match f(key, decode(bytes)?) {
            Ok(()) => Ok(true),
            Err(e) => {
                failed = Some(e);
                Ok(false)
            }
        })?;
        failed.map_or(Ok(()), Err)
    }

    /// Calls `f(key, encoded record)` for the records after `after` in key order (from the
    /// first when `None`), at most `limit` of them, borrowed from the index (read the values
    /// with [`decode_values`]). Returns the last key visited, to go on from, when `limit` was
    /// reached (a call after it may visit nothing), and `None` when the index ended first.
    pub fn visit(
        &self,
        after: Option<&str>,
        limit: usize,
        mut f: impl FnMut(&str, &[u8]) -> Result<()>,
    ) -> Result<Option<String>> {
        if limit == 0 {
            return Ok(after.map(str::to_string));
        }
        let (mut visited, mut last) = (0, None);
        self.walk(after, |key, bytes| {
            f(key, bytes)?;
            visited += 1;
            if visited == limit {
                last = Some(key.to_string());
                return Ok(false);
            }
            Ok(true)
        })?;
        Ok(last)
    }

    /// Every key with its encoded record, in key order (for tests comparing indexes).
    #[cfg(test)]
    pub(crate) fn all_encoded(&self) -> Vec<(String, Vec<u8>)> {
        let mut held = Vec::new();
        self.visit(None, usize::MAX, |key, bytes| {
            held.push((key.to_string(), bytes.to_vec()));
            Ok(())
        })
        .expect("the index reads");
        held
    }

    /// Number of records in this view.
    pub fn len(&self) -> Result<u64> {
        use redb::ReadableTableMetadata;
        match self.count {
            Some(count) => Ok(count),
            None => self.records.len().map_err(Error::index),
        }
    }

    /// Whether this view holds no record.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Changes held in redb on top of the base (puts and deletions); 0 without a base.
    pub(crate) fn changes_since_base(&self) -> Result<u64> {
        use redb::ReadableTableMetadata;
        match self.base {
            Some(_) => self.records.len().map_err(Error::index),
            None => Ok(0),
        }
    }

    /// Records after `after` in key order (from the first when `None`) whose version is above
    /// `since`: at most `limit` of them, examining at most `budget` entries. Returns them and
    /// the last key examined, to continue from (`None` at the end of the index).
    pub fn changed_since(&self, since: i64, after: Option<&str>, limit: usize, budget: usize) -> Result<ChangedPage> {
        let (mut out, mut last, mut examined, mut ended) = (Vec::new(), None, 0, true);
        self.walk(after, |key, bytes| {
            if examined >= budget || out.len() >= limit {
                ended = false;
                return Ok(false);
            }
            examined += 1;
            let (version, _) = decode_head(bytes)?;
            if version > since {
                out.push((key.to_string(), decode(bytes)?));
            }
            last = Some(key.to_string());
            Ok(true)
        })?;
        Ok((out, if ended { None } else { last }))
    }
}

type Guard<'r, T> = redb::AccessGuard<'r, T>;

/// Walks the records of a read view in key order ([`IndexReader::cursor`]).
pub(crate) struct ViewCursor<'r> {
    changes: redb::Range<'r, &'static str, &'static [u8]>,
    /// The next change not yet passed.
    change: Option<(Guard<'r, &'static str>, Guard<'r, &'static [u8]>)>,
    base: Option<crate::segment::SegmentCursor<'r>>,
    /// Whether the current record is `change` (else the base's).
    on_change: bool,
}

impl ViewCursor<'_> {
    /// The current key and encoded record; `None` past the end.
    pub(crate) fn current(&self) -> Option<(&[u8], &[u8])> {
        if self.on_change {
            self.change.as_ref().map(|(k, v)| (k.value().as_bytes(), v.value()))
        } else {
            let base = self.base.as_ref()?;
            Some((base.key()?, base.record()?))
        }
    }

    /// Moves to the next record.
    pub(crate) fn advance(&mut self) -> Result<()> {
        if self.on_change {
            self.change = self.changes.next().transpose().map_err(Error::index)?;
        } else if let Some(base) = &mut self.base {
            base.advance()?;
        }
        self.settle()
    }

    /// Makes the current record the lower of the next change and the base's next record,
    /// passing deletions and the base records that changes hide.
    fn settle(&mut self) -> Result<()> {
        use std::cmp::Ordering;
        loop {
            let base_key = self.base.as_ref().and_then(|b| b.key());
            let order = match (&self.change, base_key) {
                (None, _) => {
                    self.on_change = false;
                    return Ok(());
                }
                (Some(_), None) => Ordering::Less,
                (Some((key, _)), Some(base_key)) => key.value().as_bytes().cmp(base_key),
            };
            if order == Ordering::Greater {
                self.on_change = false;
                return Ok(());
            }
            if order == Ordering::Equal {
                self.base.as_mut().expect("a base record").advance()?;
            }
            if self.change.as_ref().is_some_and(|(_, v)| v.value() != TOMBSTONE) {
                self.on_change = true;
                return Ok(());
            }
            self.change = self.changes.next().transpose().map_err(Error::index)?;
        }
    }
}

impl ServingIndex {
    /// Opens or creates the index file and its base segment. An index written in an older
    /// format, or whose base segment is missing or damaged, is emptied (and so rebuilt from the
    /// library table by the caller).
    pub fn open(path: &Path) -> Result<Self> {
        // redb's default page cache is 1 GiB; a quarter of that keeps a sync run of a 10M-row
        // library well inside its memory budget while lookups still hit the cache.
        let db = Database::builder()
            .set_cache_size(INDEX_CACHE_BYTES)
            .create(path)
            .map_err(Error::index)?;
        let tx = db.begin_write().map_err(Error::index)?;
        let generation;
        {
            tx.open_table(RECORDS).map_err(Error::index)?;
            let mut meta = tx.open_table(META).map_err(Error::index)?;
            let format = meta.get(FORMAT_KEY).map_err(Error::index)?.map(|v| v.value());
            if format != Some(FORMAT) {
                meta.remove(VERSION_KEY).map_err(Error::index)?;
                meta.insert(FORMAT_KEY, FORMAT).map_err(Error::index)?;
            }
            generation = meta.get(BASE_KEY).map_err(Error::index)?.map_or(0, |v| v.value());
        }
        tx.commit().map_err(Error::index)?;
        let index = Self {
            db,
            path: path.to_path_buf(),
            base: RwLock::new((0, None)),
            commits: AtomicU64::new(0),
            shared: RwLock::new(None),
        };
        if generation > 0 {
            match Segment::open(&index.segment_path(generation)) {
                Ok(segment) => {
                    *index.base.write().unwrap_or_else(|e| e.into_inner()) = (generation, Some(Arc::new(segment)))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the serving index's base is unreadable; the index is rebuilt from its table");
                    index.write(None, true, |_| Ok(()))?;
                }
            }
        }
        index.remove_stray_segments();
        Ok(index)
    }

    /// Where the base segment of `generation` lives: beside the redb file.
    fn segment_path(&self, generation: i64) -> std::path::PathBuf {
        self.path.with_extension(format!("{generation}.seg"))
    }

    /// Removes segment files other than the current base's: the partial one of a write that
    /// was cut off, or a base replaced when the process stopped before removing it.
    fn remove_stray_segments(&self) {
        let current = self
            .base
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .as_ref()
            .map(|s| s.path().to_path_buf());
        let (Some(dir), Some(stem)) = (self.path.parent(), self.path.file_stem().and_then(|s| s.to_str())) else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let ours =
                name.starts_with(&format!("{stem}.")) && (name.ends_with(".seg") || name.ends_with(".seg-partial"));
            if ours
                && Some(&path) != current.as_ref()
                && let Err(e) = std::fs::remove_file(&path)
            {
                tracing::warn!(error = %e, path = %path.display(), "removing a stray serving index segment");
            }
        }
    }

    /// The library version the index reflects, `None` when it was never written.
    pub fn version(&self) -> Result<Option<i64>> {
        version_in(&self.db.begin_read().map_err(Error::index)?)
    }

    /// A read view and the library version it reflects (`None`: never written), read in one
    /// transaction.
    pub fn versioned_reader(&self) -> Result<(Option<i64>, IndexReader)> {
        let base = self.base.read().unwrap_or_else(|e| e.into_inner());
        let tx = self.db.begin_read().map_err(Error::index)?;
        Ok((version_in(&tx)?, reader_in(&tx, base.1.clone())?))
    }

    /// A read view.
    pub fn reader(&self) -> Result<IndexReader> {
        Ok(self.versioned_reader()?.1)
    }

    /// The current record for `key`, as of the last commit before the call.
    pub fn get(&self, key: &str) -> Result<Option<StoredRecord>> {
        self.shared_reader()?.get(key)
    }

    /// `f` of the current record for `key` as of the last commit before the call, borrowed
    /// from the index: for a lookup answered straight from the values.
    pub fn get_with<T>(&self, key: &str, f: impl FnOnce(Option<RecordRef<'_>>) -> T) -> Result<T> {
        self.shared_reader()?.get_with(key, f)
    }

    /// The read view shared by lookups, made again after a commit. The count is read before
    /// the view is made, so a view that a commit overtook while it was being made is made
    /// again at the next call rather than kept.
    fn shared_reader(&self) -> Result<Arc<IndexReader>> {
        let commits = self.commits.load(Ordering::Acquire);
        if let Some((made_at, reader)) = &*self.shared.read().unwrap_or_else(|e| e.into_inner())
            && *made_at == commits
        {
            return Ok(Arc::clone(reader));
        }
        let reader = Arc::new(self.reader()?);
        *self.shared.write().unwrap_or_else(|e| e.into_inner()) = Some((commits, Arc::clone(&reader)));
        Ok(reader)
    }

    /// Number of keys held.
    pub fn len(&self) -> Result<u64> {
        self.reader()?.len()
    }

    /// Whether the index holds no key.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Applies a chunk of changes (`None` deletes the key) in one transaction. With `stamp`,
    /// the transaction also records that the index now reflects that library version and is
    /// made durable; without it, it is not synced (a crash before the stamping chunk replays
    /// the version, and replaying is idempotent). With `reset`, the index is emptied first.
    pub fn apply<'a>(
        &self,
        stamp: Option<i64>,
        reset: bool,
        changes: impl IntoIterator<Item = (&'a str, Option<&'a StoredRecord>)>,
    ) -> Result<()> {
        let mut buf = Vec::with_capacity(256);
        self.write(stamp, reset, |table| {
            for (key, record) in changes {
                let record = match record {
                    Some(record) => {
                        encode(record, &mut buf);
                        Some(buf.as_slice())
                    }
                    None => None,
                };
                table.change(key, record)?;
            }
            Ok(())
        })
    }

    /// [`ServingIndex::apply`] for records already encoded, unstamped (the caller stamps the
    /// version once every chunk is in).
    pub(crate) fn apply_encoded<'a>(
        &self,
        changes: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
    ) -> Result<()> {
        self.write(None, false, |table| {
            for (key, record) in changes {
                table.change(key, record)?;
            }
            Ok(())
        })
    }

    /// Writes a new base in one sequential pass, `fill` given the current view and a writer
    /// for the records of the new base (in ascending key order), and makes it the index's base
    /// in place of the old one and the changes made since, unstamped (the caller stamps the
    /// version). For a write that changes much of the index: its first load above all.
    pub(crate) fn rebase(&self, fill: impl FnOnce(&IndexReader, &mut SegmentWriter) -> Result<()>) -> Result<()> {
        let reader = self.reader()?;
        let generation = self.base.read().unwrap_or_else(|e| e.into_inner()).0 + 1;
        let mut writer = SegmentWriter::create(&self.segment_path(generation))?;
        if let Err(e) = fill(&reader, &mut writer) {
            writer.abandon();
            return Err(e);
        }
        drop(reader);
        let records = writer.records();
        let segment = Arc::new(writer.finish()?);
        let mut base = self.base.write().unwrap_or_else(|e| e.into_inner());
        let tx = self.db.begin_write().map_err(Error::index)?;
        {
            tx.delete_table(RECORDS).map_err(Error::index)?;
            tx.open_table(RECORDS).map_err(Error::index)?;
            let mut meta = tx.open_table(META).map_err(Error::index)?;
            meta.insert(BASE_KEY, generation).map_err(Error::index)?;
            meta.insert(COUNT_KEY, records as i64).map_err(Error::index)?;
        }
        // Durable: the base is named only once it is on disk, and stays named across a crash;
        // the old one is removed only after.
        tx.commit().map_err(Error::index)?;
        let old = std::mem::replace(&mut *base, (generation, Some(segment))).1;
        drop(base);
        self.committed();
        remove_replaced(old);
        Ok(())
    }

    /// One write transaction over the records, stamped (and durable) or not. With `reset`, the
    /// index (base included) is emptied first.
    ///
    /// Writes come one at a time, from the library's writer. Only a reset (here) and a rebase
    /// replace the base, under the lock's write side; any other write reads the base under no
    /// lock, so lookups making a new read view never wait for a write's transaction.
    fn write(
        &self,
        stamp: Option<i64>,
        reset: bool,
        changes: impl FnOnce(&mut Changes<'_, '_>) -> Result<()>,
    ) -> Result<()> {
        let mut replacing = reset.then(|| self.base.write().unwrap_or_else(|e| e.into_inner()));
        let base = match &replacing {
            Some(_) => None,
            None => self.base.read().unwrap_or_else(|e| e.into_inner()).1.clone(),
        };
        let dropping_base = replacing.as_ref().is_some_and(|held| held.1.is_some());
        let mut tx = self.db.begin_write().map_err(Error::index)?;
        // Dropping a base is durable: its file is removed right after.
        if stamp.is_none() && !dropping_base {
            tx.set_durability(Durability::None).map_err(Error::index)?;
        }
        {
            if reset {
                tx.delete_table(RECORDS).map_err(Error::index)?;
            }
            let mut meta = tx.open_table(META).map_err(Error::index)?;
            let count = match &base {
                Some(_) => Some(meta.get(COUNT_KEY).map_err(Error::index)?.map_or(0, |v| v.value())),
                None => None,
            };
            let mut table = Changes {
                records: tx.open_table(RECORDS).map_err(Error::index)?,
                base: base.as_deref(),
                count,
            };
            changes(&mut table)?;
            if let Some(count) = table.count {
                meta.insert(COUNT_KEY, count).map_err(Error::index)?;
            }
            if reset {
                meta.remove(BASE_KEY).map_err(Error::index)?;
                meta.remove(COUNT_KEY).map_err(Error::index)?;
            }
            if let Some(version) = stamp {
                meta.insert(VERSION_KEY, version).map_err(Error::index)?;
            } else if reset {
                meta.remove(VERSION_KEY).map_err(Error::index)?;
            }
        }
        tx.commit().map_err(Error::index)?;
        // Only now that redb no longer names it does the base go (a failed write keeps it).
        let dropped = replacing.as_mut().and_then(|held| held.1.take());
        drop(replacing);
        self.committed();
        remove_replaced(dropped);
        Ok(())
    }

    /// Lookups see the last commit from now on, and the old view no longer holds its pages.
    fn committed(&self) {
        self.commits.fetch_add(1, Ordering::Release);
        *self.shared.write().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Removes the file of a base that redb no longer names; readers still holding it keep
/// reading the open file.
fn remove_replaced(segment: Option<Arc<Segment>>) {
    if let Some(segment) = segment
        && let Err(e) = std::fs::remove_file(segment.path())
    {
        tracing::warn!(error = %e, path = %segment.path().display(), "removing a replaced serving index segment");
    }
}

/// The records table inside a write, over the base: a change to a key the base holds is
/// recorded over it (a deletion as a tombstone), and the count of records is kept.
struct Changes<'t, 'b> {
    records: redb::Table<'t, &'static str, &'static [u8]>,
    base: Option<&'b Segment>,
    count: Option<i64>,
}

impl Changes<'_, '_> {
    /// `key` now holds `record` (`None`: deleted).
    fn change(&mut self, key: &str, record: Option<&[u8]>) -> Result<()> {
        let Some(base) = self.base else {
            return match record {
                Some(record) => self.records.insert(key, record).map(drop),
                None => self.records.remove(key).map(drop),
            }
            .map_err(Error::index);
        };
        let held = match record {
            Some(record) => self.records.insert(key, record),
            None => self.records.insert(key, TOMBSTONE),
        }
        .map_err(Error::index)?;
        let was = match held {
            Some(before) => before.value() != TOMBSTONE,
            None => base.contains(key.as_bytes())?,
        };
        if let Some(count) = &mut self.count {
            *count += i64::from(record.is_some()) - i64::from(was);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_lookup_sees_every_commit_made_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let index = ServingIndex::open(&dir.path().join("index.redb")).unwrap();
        let record = |v: &str| StoredRecord {
            values: vec![Some(v.to_string())],
            source: "test".into(),
            version: 1,
            lineage: crate::Lineage::default(),
        };
        let value = |index: &ServingIndex| index.get("k").unwrap().map(|r| r.values[0].clone().unwrap());
        assert_eq!(value(&index), None);
        for v in ["first", "second", "third"] {
            index.apply(Some(1), false, [("k", Some(&record(v)))]).unwrap();
            assert_eq!(value(&index).as_deref(), Some(v), "the shared view was made again");
        }
        let mut encoded = Vec::new();
        encode(&record("fourth"), &mut encoded);
        index.apply_encoded([("k", Some(encoded.as_slice()))]).unwrap();
        assert_eq!(value(&index).as_deref(), Some("fourth"));
        let borrowed = |index: &ServingIndex| {
            index
                .get_with("k", |r| r.map(|r| (r.version, r.values[0].map(str::to_string))))
                .unwrap()
        };
        assert_eq!(borrowed(&index), Some((1, Some("fourth".to_string()))));
        index.apply_encoded([("k", None)]).unwrap();
        assert_eq!(value(&index), None);
        assert_eq!(borrowed(&index), None);
    }

    proptest! {
        #[test]
        fn records_round_trip(
            values in proptest::collection::vec(proptest::option::of(".{0,40}"), 0..12),
            source in "[A-Z-]{0,12}",
            version in any::<i64>(),
        ) {
            let lineage = crate::Lineage::uniform(&values, crate::Origin { source: source.clone(), run: 1, version });
            let record = StoredRecord { values, source, version, lineage };
            let mut buf = Vec::new();
            encode(&record, &mut buf);
            prop_assert_eq!(decode(&buf).unwrap(), record.clone());
            let (v, s) = decode_head(&buf).unwrap();
            prop_assert_eq!((v, s), (record.version, record.source.as_str()));
            let mut borrowed = Vec::new();
            let held = decode_values(&buf, |i, value| borrowed.push((i, value.map(str::to_string)))).unwrap();
            prop_assert_eq!(held, record.values.len());
            prop_assert_eq!(borrowed, record.values.iter().cloned().enumerate().collect::<Vec<_>>());
            let view = RecordRef::decode(&buf).unwrap();
            prop_assert_eq!(view.version, record.version);
            prop_assert_eq!(view.values, record.values.iter().map(|v| v.as_deref()).collect::<Vec<_>>());
        }
    }

    fn record_of(value: &str, version: i64) -> StoredRecord {
        StoredRecord {
            values: vec![Some(value.to_string())],
            source: "GAJ".into(),
            version,
            lineage: crate::Lineage::default(),
        }
    }

    /// Writes `base` as the index's base segment, in place of whatever it held.
    fn load(index: &ServingIndex, base: &std::collections::BTreeMap<String, StoredRecord>) {
        let mut buf = Vec::new();
        index
            .rebase(|_, writer| {
                for (key, record) in base {
                    encode(record, &mut buf);
                    writer.push(key.as_bytes(), &buf)?;
                }
                Ok(())
            })
            .unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// A base with changes over it reads as the model does, through every way in.
        #[test]
        fn changes_over_a_base_read_as_the_model(
            base in proptest::collection::btree_map("[a-e]{1,3}", 0i64..3, 0..60),
            changes in proptest::collection::vec(("[a-e]{1,3}", proptest::option::of(3i64..9)), 0..60),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let index = ServingIndex::open(&dir.path().join("index.redb")).unwrap();
            let mut model: std::collections::BTreeMap<String, StoredRecord> =
                base.iter().map(|(k, v)| (k.clone(), record_of(k, *v))).collect();
            load(&index, &model);
            for chunk in changes.chunks(7) {
                let chunk: Vec<(String, Option<StoredRecord>)> =
                    chunk.iter().map(|(k, v)| (k.clone(), v.map(|v| record_of(&format!("{k}{v}"), v)))).collect();
                index.apply(None, false, chunk.iter().map(|(k, r)| (k.as_str(), r.as_ref()))).unwrap();
                for (k, r) in chunk {
                    match r {
                        Some(r) => model.insert(k, r),
                        None => model.remove(&k),
                    };
                }
            }
            index.apply(Some(5), false, std::iter::empty()).unwrap();
            let check = |index: &ServingIndex| -> std::result::Result<(), TestCaseError> {
                prop_assert_eq!(index.len().unwrap(), model.len() as u64);
                for key in ["a", "b", "aa", "abc", "e", "eee", "zz"].iter().map(|k| k.to_string()).chain(base.keys().cloned()) {
                    let got = index.get(&key).unwrap();
                    prop_assert_eq!(got.as_ref(), model.get(&key));
                    prop_assert_eq!(index.get_with(&key, |r| r.map(|r| r.version)).unwrap(), model.get(&key).map(|r| r.version));
                }
                let reader = index.reader().unwrap();
                let mut heads = Vec::new();
                reader.for_each_head(|k, v, _| heads.push((k.to_string(), v))).unwrap();
                prop_assert_eq!(heads, model.iter().map(|(k, r)| (k.clone(), r.version)).collect::<Vec<_>>());
                let mut records = Vec::new();
                reader.for_each_record(|k, r| { records.push((k.to_string(), r)); Ok::<(), Error>(()) }).unwrap();
                prop_assert_eq!(&records, &model.iter().map(|(k, r)| (k.clone(), r.clone())).collect::<Vec<_>>());
                for limit in [1, 2, 5, 100] {
                    let (mut after, mut visited) = (None, Vec::new());
                    while let Some(k) = reader.visit(after.as_deref(), limit, |k, bytes| {
                        visited.push((k.to_string(), decode(bytes)?));
                        Ok(())
                    }).unwrap() {
                        after = Some(k);
                    }
                    prop_assert_eq!(&visited, &records, "limit {}", limit);
                    let (mut after, mut changed) = (None, Vec::new());
                    loop {
                        let (page, next) = reader.changed_since(2, after.as_deref(), limit, limit + 1).unwrap();
                        changed.extend(page);
                        match next { Some(k) => after = Some(k), None => break }
                    }
                    let want: Vec<_> = records.iter().filter(|(_, r)| r.version > 2).cloned().collect();
                    prop_assert_eq!(&changed, &want, "limit {}", limit);
                }
                Ok(())
            };
            check(&index)?;
            drop(index);
            let index = ServingIndex::open(&dir.path().join("index.redb")).unwrap();
            prop_assert_eq!(index.version().unwrap(), Some(5));
            check(&index)?;
        }
    }

    #[test]
    fn a_new_base_replaces_the_old_and_a_reset_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.redb");
        let index = ServingIndex::open(&path).unwrap();
        let base: std::collections::BTreeMap<String, StoredRecord> =
            (0..100).map(|i| (format!("k{i:03}"), record_of("v", 1))).collect();
        load(&index, &base);
        let first = dir.path().join("index.1.seg");
        assert!(first.exists());
        // A rebase that fails leaves the base as it was and no partial file behind.
        assert!(index.rebase(|_, _| Err(Error::index("cut off"))).is_err());
        assert!(!dir.path().join("index.2.seg-partial").exists());
        assert_eq!(
            (index.len().unwrap(), index.get("k001").unwrap().is_some()),
            (100, true)
        );
        // Changes over the first base, then a second base in place of both.
        index
            .apply(None, false, [("k001", None), ("new", Some(&record_of("n", 2)))])
            .unwrap();
        assert_eq!((index.len().unwrap(), index.get("k001").unwrap()), (100, None));
        load(&index, &base);
        assert!(!first.exists(), "the replaced base is removed");
        assert_eq!(index.reader().unwrap().all_encoded().len(), 100);
        assert_eq!(
            (index.get("new").unwrap(), index.get("k001").unwrap().is_some()),
            (None, true)
        );
        // A reset empties the index and removes the base's file; the next base is generation 3.
        index.apply(None, true, std::iter::empty()).unwrap();
        assert!(!dir.path().join("index.2.seg").exists());
        assert_eq!((index.len().unwrap(), index.get("k001").unwrap()), (0, None));
        load(&index, &base);
        assert!(dir.path().join("index.3.seg").exists());
        index.apply(Some(3), false, std::iter::empty()).unwrap();
        drop(index);
        // A stray partial file goes at the next open; a damaged base empties the index, whose
        // version is then unknown, so it is rebuilt from its table.
        std::fs::write(dir.path().join("index.4.seg-partial"), b"cut off").unwrap();
        let index = ServingIndex::open(&path).unwrap();
        assert!(!dir.path().join("index.4.seg-partial").exists());
        assert_eq!((index.len().unwrap(), index.version().unwrap()), (100, Some(3)));
        drop(index);
        let seg = dir.path().join("index.3.seg");
        let bytes = std::fs::read(&seg).unwrap();
        std::fs::write(&seg, &bytes[..bytes.len() - 4]).unwrap();
        let index = ServingIndex::open(&path).unwrap();
        assert_eq!((index.len().unwrap(), index.version().unwrap()), (0, None));
        assert!(!seg.exists());
    }

    #[test]
    fn pages_through_changes() {
        let dir = tempfile::tempdir().unwrap();
        let index = ServingIndex::open(&dir.path().join("i.redb")).unwrap();
        let records: Vec<(String, StoredRecord)> = (0..10)
            .map(|i| {
                let r = StoredRecord {
                    values: vec![Some(format!("k{i}"))],
                    source: "GAJ".into(),
                    version: i % 3,
                    lineage: Default::default(),
                };
                (format!("k{i}"), r)
            })
            .collect();
        index
            .apply(Some(2), false, records.iter().map(|(k, r)| (k.as_str(), Some(r))))
            .unwrap();
        let reader = index.reader().unwrap();
        let mut after = None;
        let mut seen = Vec::new();
        loop {
            let (page, next) = reader.changed_since(1, after.as_deref(), 2, 3).unwrap();
            seen.extend(page.into_iter().map(|(k, _)| k));
            match next {
                Some(k) => after = Some(k),
                None => break,
            }
        }
        assert_eq!(seen, ["k2", "k5", "k8"]);
        assert_eq!(index.version().unwrap(), Some(2));
        // Visiting pages through every record, whatever the page size.
        for limit in 1..=11 {
            let (mut after, mut visited) = (None, Vec::new());
            loop {
                let next = reader
                    .visit(after.as_deref(), limit, |key, bytes| {
                        visited.push((key.to_string(), decode(bytes)?));
                        Ok(())
                    })
                    .unwrap();
                match next {
                    Some(k) => after = Some(k),
                    None => break,
                }
            }
            let mut want = records.clone();
            want.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(visited, want, "limit {limit}");
        }
    }
}
