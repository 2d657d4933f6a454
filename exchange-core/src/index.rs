//! The serving index: key → current record, for lookups at thousands of requests per second
//! without planning a query. An embedded redb file beside the library table, updated after each
//! library commit and stamped with the library version it reflects, so a crash between the
//! two is repaired by replaying the newer versions on open.
//!
//! Records are stored in a compact binary form (see [`encode`]): the index of a 10M-row library
//! is written at bulk-load speed after a full pull, and read back in a microsecond per lookup.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use redb::{Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

const RECORDS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("records");
const META: TableDefinition<'_, &str, i64> = TableDefinition::new("meta");
const VERSION_KEY: &str = "library_version";
const FORMAT_KEY: &str = "format";
/// Bumped when the record encoding changes; an index in another format is rebuilt from its table.
const FORMAT: i64 = 3;
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

/// The records as `tx` sees them.
fn reader_in(tx: &redb::ReadTransaction) -> Result<IndexReader> {
    Ok(IndexReader {
        records: tx.open_table(RECORDS).map_err(Error::index)?,
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
}

impl IndexReader {
    /// The current record for `key`.
    pub fn get(&self, key: &str) -> Result<Option<StoredRecord>> {
        match self.records.get(key).map_err(Error::index)? {
            Some(bytes) => decode(bytes.value()).map(Some),
            None => Ok(None),
        }
    }

    /// `f` of the current record for `key`, borrowed from the index.
    pub fn get_with<T>(&self, key: &str, f: impl FnOnce(Option<RecordRef<'_>>) -> T) -> Result<T> {
        match self.records.get(key).map_err(Error::index)? {
            Some(bytes) => Ok(f(Some(RecordRef::decode(bytes.value())?))),
            None => Ok(f(None)),
        }
    }

    /// Calls `f(key, version, source)` for every record, in key order.
    pub fn for_each_head(&self, mut f: impl FnMut(&str, i64, &str)) -> Result<()> {
        for entry in self.records.iter().map_err(Error::index)? {
            let (key, value) = entry.map_err(Error::index)?;
            let (version, source) = decode_head(value.value())?;
            f(key.value(), version, source);
        }
        Ok(())
    }

    /// Calls `f(key, record)` for every record, in key order, decoding one at a time (memory
    /// stays flat however large the library). Stops at the first error `f` returns.
    pub fn for_each_record<E: From<Error>>(
        &self,
        mut f: impl FnMut(&str, StoredRecord) -> Result<(), E>,
    ) -> Result<(), E> {
        for entry in self.records.iter().map_err(Error::index)? {
            let (key, value) = entry.map_err(Error::index)?;
            f(key.value(), decode(value.value())?)?;
        }
        Ok(())
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
        use std::ops::Bound;
        let range = match after {
            Some(after) => self
                .records
                .range::<&str>((Bound::Excluded(after), Bound::Unbounded))
                .map_err(Error::index)?,
            None => self.records.iter().map_err(Error::index)?,
        };
        if limit == 0 {
            return Ok(after.map(str::to_string));
        }
        for (visited, entry) in range.enumerate() {
            let (key, value) = entry.map_err(Error::index)?;
            f(key.value(), value.value())?;
            if visited + 1 == limit {
                return Ok(Some(key.value().to_string()));
            }
        }
        Ok(None)
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
        self.records.len().map_err(Error::index)
    }

    /// Whether this view holds no record.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Records after `after` in key order (from the first when `None`) whose version is above
    /// `since`: at most `limit` of them, examining at most `budget` entries. Returns them and
    /// the last key examined, to continue from (`None` at the end of the index).
    pub fn changed_since(&self, since: i64, after: Option<&str>, limit: usize, budget: usize) -> Result<ChangedPage> {
        use std::ops::Bound;
        let range = match after {
            Some(after) => self
                .records
                .range::<&str>((Bound::Excluded(after), Bound::Unbounded))
                .map_err(Error::index)?,
            None => self.records.iter().map_err(Error::index)?,
        };
        let mut out = Vec::new();
        let mut last = None;
        for (examined, entry) in range.enumerate() {
            let (key, value) = entry.map_err(Error::index)?;
            let key = key.value();
            if examined >= budget || out.len() >= limit {
                return Ok((out, last));
            }
            let (version, _) = decode_head(value.value())?;
            if version > since {
                out.push((key.to_string(), decode(value.value())?));
            }
            last = Some(key.to_string());
        }
        Ok((out, None))
    }
}

impl ServingIndex {
    /// Opens or creates the index file. An index written in an older format is emptied (and
    /// so rebuilt from the library table by the caller).
    pub fn open(path: &Path) -> Result<Self> {
        // redb's default page cache is 1 GiB; a quarter of that keeps a sync run of a 10M-row
        // library well inside its memory budget while lookups still hit the cache.
        let db = Database::builder()
            .set_cache_size(INDEX_CACHE_BYTES)
            .create(path)
            .map_err(Error::index)?;
        let tx = db.begin_write().map_err(Error::index)?;
        {
            tx.open_table(RECORDS).map_err(Error::index)?;
            let mut meta = tx.open_table(META).map_err(Error::index)?;
            let format = meta.get(FORMAT_KEY).map_err(Error::index)?.map(|v| v.value());
            if format != Some(FORMAT) {
                meta.remove(VERSION_KEY).map_err(Error::index)?;
                meta.insert(FORMAT_KEY, FORMAT).map_err(Error::index)?;
            }
        }
        tx.commit().map_err(Error::index)?;
        Ok(Self {
            db,
            commits: AtomicU64::new(0),
            shared: RwLock::new(None),
        })
    }

    /// The library version the index reflects, `None` when it was never written.
    pub fn version(&self) -> Result<Option<i64>> {
        version_in(&self.db.begin_read().map_err(Error::index)?)
    }

    /// A read view and the library version it reflects (`None`: never written), read in one
    /// transaction.
    pub fn versioned_reader(&self) -> Result<(Option<i64>, IndexReader)> {
        let tx = self.db.begin_read().map_err(Error::index)?;
        Ok((version_in(&tx)?, reader_in(&tx)?))
    }

    /// A read view.
    pub fn reader(&self) -> Result<IndexReader> {
        reader_in(&self.db.begin_read().map_err(Error::index)?)
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
        use redb::ReadableTableMetadata;
        self.reader()?.records.len().map_err(Error::index)
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
        self.write(stamp, reset, |records| {
            let mut buf = Vec::with_capacity(256);
            for (key, record) in changes {
                match record {
                    Some(record) => {
                        encode(record, &mut buf);
                        records.insert(key, buf.as_slice()).map_err(Error::index)?;
                    }
                    None => {
                        records.remove(key).map_err(Error::index)?;
                    }
                }
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
        self.write(None, false, |records| {
            for (key, record) in changes {
                match record {
                    Some(record) => records.insert(key, record).map(drop),
                    None => records.remove(key).map(drop),
                }
                .map_err(Error::index)?;
            }
            Ok(())
        })
    }

    /// One write transaction over the records table, stamped (and durable) or not.
    fn write(
        &self,
        stamp: Option<i64>,
        reset: bool,
        changes: impl FnOnce(&mut redb::Table<'_, &'static str, &'static [u8]>) -> Result<()>,
    ) -> Result<()> {
        let mut tx = self.db.begin_write().map_err(Error::index)?;
        if stamp.is_none() {
            tx.set_durability(Durability::None).map_err(Error::index)?;
        }
        {
            if reset {
                tx.delete_table(RECORDS).map_err(Error::index)?;
            }
            let mut records = tx.open_table(RECORDS).map_err(Error::index)?;
            changes(&mut records)?;
            let mut meta = tx.open_table(META).map_err(Error::index)?;
            if let Some(version) = stamp {
                meta.insert(VERSION_KEY, version).map_err(Error::index)?;
            } else if reset {
                meta.remove(VERSION_KEY).map_err(Error::index)?;
            }
        }
        tx.commit().map_err(Error::index)?;
        // Lookups see the commit from now on, and the old view no longer holds its pages.
        self.commits.fetch_add(1, Ordering::Release);
        *self.shared.write().unwrap_or_else(|e| e.into_inner()) = None;
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
