//! The serving index's base: an immutable file of records sorted by key, written once in one
//! sequential pass when a library is first loaded, and mapped into memory (`mmap`): a lookup
//! reads its block where the page cache holds it, without a system call or a copy.
//!
//! The file is a header, then the entries back to back in key order, grouped into blocks of
//! about [`BLOCK`] bytes of entries (a block starts at an entry, so an entry is never split),
//! each block ending with a directory of its entries, then a footer holding the first key and
//! offset of each block, then a trailer:
//!
//! ```text
//! "HTSEG002"                                   header, 8 bytes
//! block*      entry*, then the block's directory
//! entry       key length (u16 LE), record length (u32 LE), key, record
//! directory   per entry: its offset in the block (u16 LE), its key's fingerprint (u16 LE);
//!             then the number of entries (u16 LE)
//! footer      per block: offset (u64 LE), key length (u16 LE), first key
//! trailer     records (u64 LE), blocks (u64 LE), footer offset (u64 LE), "HTSEGEND"
//! ```
//!
//! Opening a segment reads only the footer: the first keys of its blocks stay in memory (for
//! 10M records of about 250 bytes, some 600,000 keys), and a lookup searches them, then reads
//! the directory at the end of the one block that can hold the key and goes straight to the
//! entry whose fingerprint matches. Walking the entries from the block's start instead was a
//! chain of dependent reads, each a cache miss at 10M records (about 17 entries a block): a
//! lookup took 1.8–2.0 µs that way and 1.4–1.5 µs with the directory (`index-lookup`,
//! docs/benchmarks.md).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"HTSEG002";
const END: &[u8; 8] = b"HTSEGEND";
const TRAILER: u64 = 32;
/// A block's entries end once they reach this size: an entry starts below it, so its offset
/// in the block fits a `u16`.
const BLOCK: u64 = 4096;
/// An entry's head: key length and record length.
const HEAD: usize = 6;
/// A directory item: the entry's offset and its key's fingerprint.
const ITEM: usize = 4;

/// A key's fingerprint in its block's directory: a lookup compares whole keys only where the
/// fingerprint matches (one entry in 65,536 otherwise).
fn fingerprint(key: &[u8]) -> u16 {
    twox_hash::XxHash64::oneshot(0, key) as u16
}

fn corrupt(path: &Path, what: &str) -> Error {
    Error::index(format!("serving index segment {}: {what}", path.display()))
}

/// Writes a segment from entries given in ascending key order, to a temporary name; the
/// segment exists under its own name only once [`SegmentWriter::finish`] made it durable.
pub struct SegmentWriter {
    path: PathBuf,
    temp: PathBuf,
    out: BufWriter<File>,
    offset: u64,
    block_start: u64,
    /// The directory of the block being written: its items, then (once it ends) its count.
    directory: Vec<u8>,
    /// Per block: its offset and first key.
    footer: Vec<u8>,
    blocks: u64,
    records: u64,
    last_key: Vec<u8>,
}

impl SegmentWriter {
    /// Starts the segment that [`SegmentWriter::finish`] will leave at `path`.
    pub fn create(path: &Path) -> Result<Self> {
        let temp = path.with_extension("seg-partial");
        let file = File::create(&temp).map_err(|e| corrupt(&temp, &format!("creating: {e}")))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(MAGIC).map_err(|e| corrupt(&temp, &e.to_string()))?;
        Ok(Self {
            path: path.to_path_buf(),
            temp,
            out,
            offset: MAGIC.len() as u64,
            block_start: 0,
            directory: Vec::new(),
            footer: Vec::new(),
            blocks: 0,
            records: 0,
            last_key: Vec::new(),
        })
    }

    /// Appends `key`'s record; keys must come in strictly ascending order.
    pub fn push(&mut self, key: &[u8], record: &[u8]) -> Result<()> {
        if self.records > 0 && key <= self.last_key.as_slice() {
            return Err(corrupt(&self.temp, "keys written out of order"));
        }
        let key_len = u16::try_from(key.len()).map_err(|_| corrupt(&self.temp, "a key longer than 65,535 bytes"))?;
        let record_len = u32::try_from(record.len()).map_err(|_| corrupt(&self.temp, "a record longer than 4 GiB"))?;
        if self.records == 0 || self.offset - self.block_start >= BLOCK {
            self.end_block()?;
            self.block_start = self.offset;
            self.footer.extend_from_slice(&self.offset.to_le_bytes());
            self.footer.extend_from_slice(&key_len.to_le_bytes());
            self.footer.extend_from_slice(key);
            self.blocks += 1;
        }
        let in_block = u16::try_from(self.offset - self.block_start).expect("an entry starts within BLOCK");
        self.directory.extend_from_slice(&in_block.to_le_bytes());
        self.directory.extend_from_slice(&fingerprint(key).to_le_bytes());
        let io = |e: std::io::Error| corrupt(&self.temp, &e.to_string());
        let mut head = [0u8; HEAD];
        head[..2].copy_from_slice(&key_len.to_le_bytes());
        head[2..].copy_from_slice(&record_len.to_le_bytes());
        self.out.write_all(&head).map_err(io)?;
        self.out.write_all(key).map_err(io)?;
        self.out.write_all(record).map_err(io)?;
        self.offset += (HEAD + key.len() + record.len()) as u64;
        self.records += 1;
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        Ok(())
    }

    /// Writes the directory of the block being written, if one is.
    fn end_block(&mut self) -> Result<()> {
        if self.directory.is_empty() {
            return Ok(());
        }
        let count = u16::try_from(self.directory.len() / ITEM).expect("a block of 4 KiB holds at most 683 entries");
        self.directory.extend_from_slice(&count.to_le_bytes());
        self.out
            .write_all(&self.directory)
            .map_err(|e| corrupt(&self.temp, &e.to_string()))?;
        self.offset += self.directory.len() as u64;
        self.directory.clear();
        Ok(())
    }

    /// Gives up the segment, removing what was written of it.
    pub fn abandon(self) {
        drop(self.out);
        if let Err(e) = std::fs::remove_file(&self.temp) {
            tracing::warn!(error = %e, path = %self.temp.display(), "removing an abandoned serving index segment");
        }
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Writes the footer, syncs the file and gives it its name.
    pub fn finish(mut self) -> Result<Segment> {
        self.end_block()?;
        let io = |e: std::io::Error| corrupt(&self.temp, &e.to_string());
        let footer_offset = self.offset;
        self.out.write_all(&self.footer).map_err(io)?;
        for n in [self.records, self.blocks, footer_offset] {
            self.out.write_all(&n.to_le_bytes()).map_err(io)?;
        }
        self.out.write_all(END).map_err(io)?;
        let file = self.out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&self.temp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Segment::open(&self.path)
    }
}

/// An open segment: its file, mapped, and the first key of each block.
pub struct Segment {
    path: PathBuf,
    map: memmap2::Mmap,
    records: u64,
    /// Offsets of the blocks, and the footer's offset (where the last block ends).
    offsets: Vec<u64>,
    /// The blocks' first keys back to back, and where each ends.
    keys: Vec<u8>,
    key_ends: Vec<usize>,
    /// The first 16 bytes of each block's first key (zero-padded, big-endian): most steps of
    /// a lookup's search end on these, one cache line apart rather than two indirections.
    prefixes: Vec<u128>,
}

/// The first 16 bytes of `key`, zero-padded, as a number that orders as the keys do unless
/// two are equal.
pub(crate) fn prefix(key: &[u8]) -> u128 {
    let mut head = [0u8; 16];
    let n = key.len().min(16);
    head[..n].copy_from_slice(&key[..n]);
    u128::from_be_bytes(head)
}

impl Segment {
    /// Opens a segment [`SegmentWriter::finish`] wrote, reading its footer.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| corrupt(path, &format!("opening: {e}")))?;
        let map = map(&file).map_err(|e| corrupt(path, &format!("mapping: {e}")))?;
        let len = map.len() as u64;
        if len < MAGIC.len() as u64 + TRAILER {
            return Err(corrupt(path, "shorter than its header and trailer"));
        }
        if &map[..MAGIC.len()] != MAGIC {
            return Err(corrupt(path, "not a segment of this format (its header differs)"));
        }
        let trailer = &map[(len - TRAILER) as usize..];
        let n = |i: usize| u64::from_le_bytes(trailer[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let (records, blocks, footer_offset) = (n(0), n(1), n(2));
        if &trailer[24..] != END || footer_offset < MAGIC.len() as u64 || footer_offset > len - TRAILER {
            return Err(corrupt(path, "no valid trailer (the file is not a finished segment)"));
        }
        let footer = &map[footer_offset as usize..(len - TRAILER) as usize];
        // Each block takes at least 10 bytes of the footer: a damaged count is refused before
        // anything is sized by it.
        if blocks > footer.len() as u64 / 10 {
            return Err(corrupt(path, "footer does not match its trailer"));
        }
        let mut offsets = Vec::with_capacity(blocks as usize + 1);
        let mut keys = Vec::with_capacity(footer.len());
        let mut key_ends = Vec::with_capacity(blocks as usize);
        let mut prefixes = Vec::with_capacity(blocks as usize);
        let mut rest = footer;
        for _ in 0..blocks {
            if rest.len() < 10 {
                return Err(corrupt(path, "footer cut short"));
            }
            let offset = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
            let key_len = u16::from_le_bytes(rest[8..10].try_into().expect("2 bytes")) as usize;
            let key = rest
                .get(10..10 + key_len)
                .ok_or_else(|| corrupt(path, "footer cut short"))?;
            if offsets.last().is_some_and(|&last| offset <= last) || offset >= footer_offset {
                return Err(corrupt(path, "block offsets out of order"));
            }
            offsets.push(offset);
            prefixes.push(prefix(key));
            keys.extend_from_slice(key);
            key_ends.push(keys.len());
            rest = &rest[10 + key_len..];
        }
        if !rest.is_empty() || (blocks == 0) != (records == 0) {
            return Err(corrupt(path, "footer does not match its trailer"));
        }
        offsets.push(footer_offset);
        Ok(Self {
            path: path.to_path_buf(),
            map,
            records,
            offsets,
            keys,
            key_ends,
            prefixes,
        })
    }

    /// Records held.
    pub fn len(&self) -> u64 {
        self.records
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn first_key(&self, block: usize) -> &[u8] {
        let start = if block == 0 { 0 } else { self.key_ends[block - 1] };
        &self.keys[start..self.key_ends[block]]
    }

    /// The block that holds `key` if any block does: the last whose first key is not above it.
    fn block_of(&self, key: &[u8]) -> Option<usize> {
        let p = prefix(key);
        let after = partition_point(self.prefixes.len(), |b| {
            let q = self.prefixes[b];
            q < p || (q == p && self.first_key(b) <= key)
        });
        after.checked_sub(1)
    }

    /// The entries of `block` (from its start) and its directory's items.
    fn block(&self, block: usize) -> Result<(&[u8], &[u8])> {
        let bytes = &self.map[self.offsets[block] as usize..self.offsets[block + 1] as usize];
        let split = bytes.len().checked_sub(2).and_then(|at| {
            let count = u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize;
            at.checked_sub(count * ITEM)
        });
        match split {
            Some(entries_end) => Ok((&bytes[..entries_end], &bytes[entries_end..bytes.len() - 2])),
            None => Err(corrupt(&self.path, "a block's directory does not fit in it")),
        }
    }

    /// `f` of `key`'s record, borrowed for the call.
    pub fn get_with<T>(&self, key: &[u8], f: impl FnOnce(Option<&[u8]>) -> T) -> Result<T> {
        let Some(block) = self.block_of(key) else {
            return Ok(f(None));
        };
        let (entries, directory) = self.block(block)?;
        let wanted = fingerprint(key).to_le_bytes();
        for item in directory.chunks_exact(ITEM) {
            if item[2..] != wanted {
                continue;
            }
            let at = u16::from_le_bytes([item[0], item[1]]) as usize;
            let mut entry = Entries {
                bytes: entries.get(at..).unwrap_or_default(),
            };
            match entry.next(&self.path)? {
                Some((k, record)) if k == key => return Ok(f(Some(record))),
                Some(_) => continue,
                None => return Err(corrupt(&self.path, "a directory item points past its block's entries")),
            }
        }
        Ok(f(None))
    }

    /// Whether `key` is held.
    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        self.get_with(key, |r| r.is_some())
    }

    /// A cursor on the first entry whose key is above `after` (the first entry when `None`).
    pub fn cursor(&self, after: Option<&[u8]>) -> Result<SegmentCursor<'_>> {
        let block = after.and_then(|a| self.block_of(a)).unwrap_or(0);
        let mut cursor = SegmentCursor {
            segment: self,
            block,
            entries: if self.offsets.len() > 1 {
                self.block(block)?.0
            } else {
                &[]
            },
            current: None,
        };
        cursor.advance()?;
        if let Some(after) = after {
            while cursor.key().is_some_and(|k| k <= after) {
                cursor.advance()?;
            }
        }
        Ok(cursor)
    }
}

/// Maps `file` read-only.
///
/// A lookup then reads its block from the page cache directly: with `pread`, the system call
/// and the copy of the 4 KiB block were 7.5 % of an exchange worker's samples under load
/// (docs/benchmarks.md), and a batch of 100 keys made 100 of them.
#[allow(unsafe_code)]
fn map(file: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the mapping is only sound while nobody changes the file under it (a truncated
    // file makes reading past its new end fault). Huitong never does: a segment is written
    // under a temporary name, synced and renamed into place by `SegmentWriter::finish`, and
    // then only read; a newer base is a new file, and removing this one (unlink) keeps the
    // mapping valid; a second server on the same data directory is refused by the index's
    // lock. Editing a serving index file by hand is not supported, as for any of the data
    // directory's files. One cost of mapping: a disk error while a page is read ends the
    // process (SIGBUS) where `pread` returned an error.
    unsafe { memmap2::Mmap::map(file) }
}

/// The first index in `0..n` where `pred` turns false (`pred` true then false over the range).
fn partition_point(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Entries read one after the other from a buffer of whole entries.
struct Entries<'a> {
    bytes: &'a [u8],
}

impl<'a> Entries<'a> {
    /// The next entry, `None` at the end; an error when an entry is cut short.
    fn next(&mut self, path: &Path) -> Result<Option<(&'a [u8], &'a [u8])>> {
        if self.bytes.is_empty() {
            return Ok(None);
        }
        let cut = || corrupt(path, "entry cut short");
        let head = self.bytes.get(..HEAD).ok_or_else(cut)?;
        let key_len = u16::from_le_bytes([head[0], head[1]]) as usize;
        let record_len = u32::from_le_bytes(head[2..6].try_into().expect("4 bytes")) as usize;
        let key = self.bytes.get(HEAD..HEAD + key_len).ok_or_else(cut)?;
        let record = self
            .bytes
            .get(HEAD + key_len..HEAD + key_len + record_len)
            .ok_or_else(cut)?;
        self.bytes = &self.bytes[HEAD + key_len + record_len..];
        Ok(Some((key, record)))
    }
}

/// Walks a segment's entries in key order.
pub struct SegmentCursor<'a> {
    segment: &'a Segment,
    /// The block the entries after the current one are in, and those entries.
    block: usize,
    entries: &'a [u8],
    /// The current entry's key and record.
    current: Option<(&'a [u8], &'a [u8])>,
}

impl SegmentCursor<'_> {
    /// The current entry's key; `None` past the end.
    pub fn key(&self) -> Option<&[u8]> {
        self.current.map(|(k, _)| k)
    }

    /// The current entry's record.
    pub fn record(&self) -> Option<&[u8]> {
        self.current.map(|(_, r)| r)
    }

    /// Moves to the next entry.
    pub fn advance(&mut self) -> Result<()> {
        let segment = self.segment;
        // The next block's entries once this block's are walked (`offsets` ends with the
        // footer's offset, so the last block is `offsets.len() - 2`).
        while self.entries.is_empty() && self.block + 2 < segment.offsets.len() {
            self.block += 1;
            self.entries = segment.block(self.block)?.0;
        }
        let mut entries = Entries { bytes: self.entries };
        self.current = entries.next(&segment.path)?;
        self.entries = entries.bytes;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn written(dir: &Path, records: &BTreeMap<String, Vec<u8>>) -> Segment {
        let mut writer = SegmentWriter::create(&dir.join("s.seg")).unwrap();
        for (k, v) in records {
            writer.push(k.as_bytes(), v).unwrap();
        }
        writer.finish().unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Every key is found with its record, keys between them are not, and a cursor from any
        /// point walks the rest in order.
        #[test]
        fn reads_back_what_was_written(
            records in proptest::collection::btree_map("[a-f]{1,6}", proptest::collection::vec(any::<u8>(), 0..900), 0..200),
            probes in proptest::collection::vec("[a-g]{0,7}", 0..40),
        ) {
            // Odd-length keys share their first 16 bytes: the search compares whole keys there.
            let long = |k: &String| if k.len() % 2 == 1 { format!("{}{k}", "x".repeat(16)) } else { k.clone() };
            let records: BTreeMap<String, Vec<u8>> = records.iter().map(|(k, v)| (long(k), v.clone())).collect();
            let probes: Vec<String> = probes.iter().map(long).collect();
            let dir = tempfile::tempdir().unwrap();
            let segment = written(dir.path(), &records);
            prop_assert_eq!(segment.len(), records.len() as u64);
            for (k, v) in &records {
                let got = segment.get_with(k.as_bytes(), |r| r.map(<[u8]>::to_vec)).unwrap();
                prop_assert_eq!(got.as_ref(), Some(v));
            }
            for probe in &probes {
                let got = segment.get_with(probe.as_bytes(), |r| r.map(<[u8]>::to_vec)).unwrap();
                prop_assert_eq!(got.as_ref(), records.get(probe));
                let mut cursor = segment.cursor(Some(probe.as_bytes())).unwrap();
                let mut walked = Vec::new();
                while let Some(k) = cursor.key() {
                    walked.push((String::from_utf8(k.to_vec()).unwrap(), cursor.record().unwrap().to_vec()));
                    cursor.advance().unwrap();
                }
                let want: Vec<_> = records.range::<String, _>((std::ops::Bound::Excluded(probe.clone()), std::ops::Bound::Unbounded))
                    .map(|(k, v)| (k.clone(), v.clone())).collect();
                prop_assert_eq!(walked, want);
            }
            let mut cursor = segment.cursor(None).unwrap();
            let mut n = 0;
            while cursor.key().is_some() { n += 1; cursor.advance().unwrap(); }
            prop_assert_eq!(n, records.len());
        }
    }

    #[test]
    fn an_empty_segment_finds_nothing_and_walks_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let segment = written(dir.path(), &BTreeMap::new());
        assert!(segment.is_empty());
        assert!(!segment.get_with(b"k", |r| r.is_some()).unwrap());
        assert!(segment.cursor(None).unwrap().key().is_none());
        assert!(segment.cursor(Some(b"k")).unwrap().key().is_none());
    }

    /// Keys whose fingerprints are equal, in one block: each is told from the other by its
    /// whole key, and a key sharing their fingerprint but absent is not found.
    #[test]
    fn keys_sharing_a_fingerprint_in_one_block_are_told_apart() {
        let mut by_print: BTreeMap<u16, Vec<String>> = BTreeMap::new();
        let shared = (0..)
            .find_map(|i| {
                let key = format!("k{i:06}");
                let same = by_print.entry(fingerprint(key.as_bytes())).or_default();
                same.push(key);
                (same.len() == 3).then(|| same.clone())
            })
            .unwrap();
        let (present, absent) = (&shared[..2], &shared[2]);
        let records: BTreeMap<String, Vec<u8>> = present.iter().map(|k| (k.clone(), k.as_bytes().to_vec())).collect();
        let dir = tempfile::tempdir().unwrap();
        let segment = written(dir.path(), &records);
        assert_eq!(segment.offsets.len(), 2, "one block");
        for key in present {
            let got = segment.get_with(key.as_bytes(), |r| r.map(<[u8]>::to_vec)).unwrap();
            assert_eq!(got.as_deref(), Some(key.as_bytes()));
        }
        assert!(!segment.get_with(absent.as_bytes(), |r| r.is_some()).unwrap());
    }

    /// A block whose directory is damaged gives an error naming the segment, not a panic or
    /// another key's record; a segment of the earlier format is refused at opening (the index
    /// then rebuilds its base from the library's table).
    #[test]
    fn a_damaged_directory_or_an_earlier_format_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let records: BTreeMap<String, Vec<u8>> = (0..40).map(|i| (format!("k{i:03}"), vec![b'v'; 300])).collect();
        let segment = written(dir.path(), &records);
        let bytes = std::fs::read(segment.path()).unwrap();
        let end_of_first = segment.offsets[1] as usize;
        let damaged = |change: &dyn Fn(&mut Vec<u8>)| {
            let mut copy = bytes.clone();
            change(&mut copy);
            let path = dir.path().join("damaged.seg");
            std::fs::write(&path, &copy).unwrap();
            Segment::open(&path)
        };
        // The count says more items than the block holds.
        let segment = damaged(&|b| b[end_of_first - 2..end_of_first].copy_from_slice(&u16::MAX.to_le_bytes())).unwrap();
        let err = segment.get_with(b"k000", |r| r.is_some()).unwrap_err();
        assert!(err.to_string().contains("damaged.seg"), "{err}");
        assert!(segment.cursor(None).is_err());
        // An item points past the entries (14 entries of 310 bytes in the first block).
        let first_item = end_of_first - 2 - ITEM * 14;
        let segment = damaged(&|b| b[first_item..first_item + 2].copy_from_slice(&u16::MAX.to_le_bytes())).unwrap();
        let err = segment.get_with(b"k000", |r| r.is_some()).unwrap_err();
        assert!(err.to_string().contains("points past"), "{err}");
        assert!(
            segment.get_with(b"k001", |r| r.is_some()).unwrap(),
            "the other items still serve"
        );
        // The earlier format's header.
        assert!(damaged(&|b| b[..8].copy_from_slice(b"HTSEG001")).is_err());
    }

    #[test]
    fn keys_out_of_order_and_unfinished_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = SegmentWriter::create(&dir.path().join("a.seg")).unwrap();
        writer.push(b"b", b"1").unwrap();
        assert!(writer.push(b"a", b"2").is_err());
        assert!(writer.push(b"b", b"2").is_err(), "a key twice");
        // Never finished: only the partial file exists, and it does not open as a segment.
        drop(writer);
        assert!(!dir.path().join("a.seg").exists());
        assert!(Segment::open(&dir.path().join("a.seg-partial")).is_err());
        // A finished segment cut anywhere no longer opens.
        let mut records = BTreeMap::new();
        for i in 0..50 {
            records.insert(format!("k{i:03}"), vec![i as u8; 200]);
        }
        let segment = written(dir.path(), &records);
        let bytes = std::fs::read(segment.path()).unwrap();
        // All of it cut: an empty file, which maps to no bytes at all.
        for cut in [1, 8, 31, bytes.len() / 2, bytes.len() - 1, bytes.len()] {
            let path = dir.path().join("cut.seg");
            std::fs::write(&path, &bytes[..bytes.len() - cut]).unwrap();
            assert!(Segment::open(&path).is_err(), "cut by {cut}");
        }
    }
}
