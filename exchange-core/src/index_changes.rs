//! The changes a write makes to the serving index, gathered as its rows go by and applied in
//! key order once the write is committed: a full load appends to the index's B-tree from left
//! to right, and nothing is read back from the Parquet files the write just made.
//!
//! Changes are held in memory up to a budget; past it they are sorted and spilled as a run to
//! an anonymous temporary file in the library's directory (gone with the process, whatever
//! happens). At commit the runs and what is still in memory are merged.
//!
//! A run is a sequence of entries: key length (u32 LE), record length (u32 LE, `u32::MAX` for a
//! deletion), the key, the encoded record ([`crate::index::encode`]).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, Write};
use std::path::PathBuf;

use crate::index::{ServingIndex, ViewCursor};
use crate::segment::SegmentWriter;
use crate::{Error, Result};

/// The record length of a deletion.
const DELETED: u32 = u32::MAX;

/// Changes applied to the index per transaction (its dirty pages are held in memory until it
/// commits).
const APPLY_CHUNK: usize = if cfg!(test) { 7 } else { 100_000 };

/// A write whose changes, with those already held on top of the base, are at least
/// 1/`REBASE_FRACTION` of the records the index holds writes the index anew
/// ([`IndexChanges::apply`]): merging every record in one sequential pass costs less than that
/// many B-tree inserts, and many small writes do not pile up in redb without bound.
const REBASE_FRACTION: u64 = 4;

/// Copies the records `view` holds below `key` (all that are left when `None`) into `base`
/// unchanged: the held records a rebase keeps between the changes.
fn copy_below(view: &mut ViewCursor<'_>, base: &mut SegmentWriter, key: Option<&[u8]>) -> Result<()> {
    while let Some((held_key, held_record)) = view.current()
        && key.is_none_or(|key| held_key < key)
    {
        base.push(held_key, held_record)?;
        view.advance()?;
    }
    Ok(())
}

/// One change in memory: the first bytes of its key (most comparisons of a sort end there),
/// where the key starts in the buffer, the key's length and the record's (which follows the
/// key), or [`DELETED`].
#[derive(Clone, Copy)]
struct Entry {
    prefix: u128,
    start: usize,
    key_len: u32,
    record_len: u32,
}

impl Entry {
    fn new(key: &[u8], start: usize, record_len: u32) -> Self {
        Self {
            prefix: crate::segment::prefix(key),
            start,
            key_len: key.len() as u32,
            record_len,
        }
    }

    /// Key order: the prefixes, zero-padded, order as the keys do unless they are equal.
    fn cmp(&self, other: &Self, bytes: &[u8]) -> std::cmp::Ordering {
        self.prefix
            .cmp(&other.prefix)
            .then_with(|| self.key(bytes).cmp(other.key(bytes)))
    }

    fn key<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        &bytes[self.start..self.start + self.key_len as usize]
    }

    fn record<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        (self.record_len != DELETED).then(|| {
            let from = self.start + self.key_len as usize;
            &bytes[from..from + self.record_len as usize]
        })
    }
}

/// Changes with their bytes: those gathered, and each chunk applied.
#[derive(Default)]
struct Entries {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
}

impl Entries {
    fn clear(&mut self) {
        self.bytes.clear();
        self.entries.clear();
    }

    /// Adds `key` with the record `encode` appends, or its deletion (`None`).
    fn push(&mut self, key: &[u8], encode: Option<impl FnOnce(&mut Vec<u8>)>) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(key);
        let record_len = match encode {
            Some(encode) => {
                encode(&mut self.bytes);
                (self.bytes.len() - start - key.len()) as u32
            }
            None => DELETED,
        };
        self.entries.push(Entry::new(key, start, record_len));
    }

    /// Memory held: the bytes and the entries pointing into them.
    fn footprint(&self) -> usize {
        self.bytes.len() + self.entries.len() * std::mem::size_of::<Entry>()
    }

    fn sort(&mut self) {
        let bytes = &self.bytes;
        self.entries.sort_unstable_by(|a, b| a.cmp(b, bytes));
    }

    /// `entries` (a slice of this buffer's) as the changes of one transaction.
    fn changes<'a>(&'a self, entries: &[Entry]) -> Result<Vec<Change<'a>>> {
        entries
            .iter()
            .map(|e| {
                let key = std::str::from_utf8(e.key(&self.bytes)).map_err(Error::index)?;
                Ok((key, e.record(&self.bytes)))
            })
            .collect()
    }
}

/// A key and its new encoded record (`None`: deleted).
type Change<'a> = (&'a str, Option<&'a [u8]>);

/// The index changes of one write.
pub(crate) struct IndexChanges {
    dir: PathBuf,
    budget: usize,
    pending: Entries,
    runs: Vec<File>,
    len: u64,
}

impl IndexChanges {
    /// Changes that spill to `dir` past `budget` bytes in memory.
    pub(crate) fn new(dir: PathBuf, budget: usize) -> Self {
        Self {
            dir,
            budget,
            pending: Entries {
                // Reserved, not touched: no copying as it fills up to the budget.
                bytes: Vec::with_capacity(budget + (64 << 10)),
                entries: Vec::new(),
            },
            runs: Vec::new(),
            len: 0,
        }
    }

    /// `key` now holds the record whose encoding `encode` appends to the buffer it is given.
    pub(crate) fn put(&mut self, key: &str, encode: impl FnOnce(&mut Vec<u8>)) -> Result<()> {
        self.pending.push(key.as_bytes(), Some(encode));
        self.added()
    }

    /// `key` was deleted.
    pub(crate) fn delete(&mut self, key: &str) -> Result<()> {
        self.pending.push(key.as_bytes(), None::<fn(&mut Vec<u8>)>);
        self.added()
    }

    /// How many changes were gathered.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    fn added(&mut self) -> Result<()> {
        self.len += 1;
        if self.pending.footprint() >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// Writes what is in memory, sorted, as a run.
    fn spill(&mut self) -> Result<()> {
        let io = |e: std::io::Error| Error::io(format!("spilling index changes to {}", self.dir.display()))(e);
        self.pending.sort();
        let file = tempfile::tempfile_in(&self.dir).map_err(io)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let bytes = &self.pending.bytes;
        for e in &self.pending.entries {
            out.write_all(&e.key_len.to_le_bytes()).map_err(io)?;
            out.write_all(&e.record_len.to_le_bytes()).map_err(io)?;
            out.write_all(e.key(bytes)).map_err(io)?;
            out.write_all(e.record(bytes).unwrap_or_default()).map_err(io)?;
        }
        let mut file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.rewind().map_err(io)?;
        self.runs.push(file);
        self.pending.clear();
        Ok(())
    }

    /// Applies every change to `index` in key order, in transactions of [`APPLY_CHUNK`] that
    /// are not synced; the caller stamps the version afterwards.
    /// When they are many against what the index holds (a library's first load above all),
    /// the index is written anew instead, as a base merged from the records it holds and
    /// these changes, in one sequential pass ([`ServingIndex::rebase`]). No change writes
    /// nothing (not an empty base over an empty index).
    pub(crate) fn apply(self, index: &ServingIndex) -> Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        let (pending, held) = {
            let reader = index.reader()?;
            (self.len.saturating_add(reader.changes_since_base()?), reader.len()?)
        };
        if pending.saturating_mul(REBASE_FRACTION) < held {
            return self.apply_chunks(|changes| index.apply_encoded(changes));
        }
        index.rebase(|held, base| {
            let mut view = held.cursor(None)?;
            self.apply_chunks(|changes| {
                for (key, record) in changes {
                    let key = key.as_bytes();
                    copy_below(&mut view, base, Some(key))?;
                    if view.current().is_some_and(|(held_key, _)| held_key == key) {
                        view.advance()?;
                    }
                    if let Some(record) = record {
                        base.push(key, record)?;
                    }
                }
                Ok(())
            })?;
            copy_below(&mut view, base, None)
        })
    }

    /// Hands every change to `apply` in key order, in chunks of at most [`APPLY_CHUNK`].
    fn apply_chunks(mut self, mut apply: impl FnMut(Vec<Change<'_>>) -> Result<()>) -> Result<()> {
        self.pending.sort();
        if self.runs.is_empty() {
            // Everything fitted in memory: applied from where it is.
            for chunk in self.pending.entries.chunks(APPLY_CHUNK) {
                apply(self.pending.changes(chunk)?)?;
            }
            return Ok(());
        }
        let mut sources: Vec<Source> = Vec::with_capacity(self.runs.len() + 1);
        for file in std::mem::take(&mut self.runs) {
            sources.push(Source::run(file)?);
        }
        sources.push(Source::Memory {
            entries: std::mem::take(&mut self.pending),
            next: 0,
        });
        // The merge fills the next chunk on a thread of its own while this one applies the
        // last: the index's inserts and the merge each take a core. The channel holds none, so
        // at most two chunks are in memory, and an applied chunk's buffers go back to be filled
        // again rather than fresh memory being faulted in for each.
        std::thread::scope(|scope| {
            let (chunks, merged) = std::sync::mpsc::sync_channel::<Entries>(0);
            let (spent, reuse) = std::sync::mpsc::sync_channel::<Entries>(1);
            let merging = scope.spawn(move || -> Result<()> {
                let mut merge = Merge::new(sources);
                let mut chunk = Entries::default();
                while let Some(source) = merge.peek() {
                    let (key, record) = merge.sources[source].current();
                    chunk.push(key, record.map(|r| |out: &mut Vec<u8>| out.extend_from_slice(r)));
                    merge.advance()?;
                    if chunk.entries.len() >= APPLY_CHUNK {
                        let next = reuse.try_recv().unwrap_or_default();
                        if chunks.send(std::mem::replace(&mut chunk, next)).is_err() {
                            // The applying side failed, and says why.
                            return Ok(());
                        }
                    }
                }
                if !chunk.entries.is_empty() {
                    let _ = chunks.send(chunk);
                }
                Ok(())
            });
            let mut applied = Ok(());
            for mut chunk in &merged {
                applied = chunk.changes(&chunk.entries).and_then(&mut apply);
                if applied.is_err() {
                    break;
                }
                chunk.clear();
                let _ = spent.try_send(chunk);
            }
            drop(merged);
            let merge = merging
                .join()
                .unwrap_or_else(|_| Err(Error::index("merging the index changes panicked")));
            applied.and(merge)
        })
    }
}

/// One sorted input of the merge: a spilled run, or the changes still in memory.
enum Source {
    Run {
        reader: BufReader<File>,
        /// The current entry's key and record.
        buf: Vec<u8>,
        key_len: usize,
        record_len: u32,
        done: bool,
    },
    Memory {
        entries: Entries,
        next: usize,
    },
}

impl Source {
    fn run(file: File) -> Result<Self> {
        let mut source = Source::Run {
            reader: BufReader::with_capacity(1 << 18, file),
            buf: Vec::with_capacity(512),
            key_len: 0,
            record_len: 0,
            done: false,
        };
        source.advance()?;
        Ok(source)
    }

    fn done(&self) -> bool {
        match self {
            Source::Run { done, .. } => *done,
            Source::Memory { entries, next } => *next >= entries.entries.len(),
        }
    }

    fn key(&self) -> &[u8] {
        self.current().0
    }

    fn current(&self) -> (&[u8], Option<&[u8]>) {
        match self {
            Source::Run {
                buf,
                key_len,
                record_len,
                ..
            } => {
                let (key, record) = buf.split_at(*key_len);
                (key, (*record_len != DELETED).then_some(record))
            }
            Source::Memory { entries, next } => {
                let e = entries.entries[*next];
                (e.key(&entries.bytes), e.record(&entries.bytes))
            }
        }
    }

    fn advance(&mut self) -> Result<()> {
        match self {
            Source::Run {
                reader,
                buf,
                key_len,
                record_len,
                done,
            } => {
                let io = |e: std::io::Error| Error::io("reading back spilled index changes")(e);
                // The end of the run is the end of an entry: a header cut short is an error.
                if reader.fill_buf().map_err(io)?.is_empty() {
                    *done = true;
                    return Ok(());
                }
                let mut head = [0u8; 8];
                reader.read_exact(&mut head).map_err(io)?;
                *key_len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
                *record_len = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
                let len = *key_len
                    + if *record_len == DELETED {
                        0
                    } else {
                        *record_len as usize
                    };
                buf.resize(len, 0);
                reader.read_exact(buf).map_err(io)?;
            }
            Source::Memory { next, .. } => *next += 1,
        }
        Ok(())
    }
}

/// A k-way merge of sorted sources: a binary min-heap of source positions, by current key.
struct Merge {
    sources: Vec<Source>,
    heap: Vec<usize>,
}

impl Merge {
    fn new(sources: Vec<Source>) -> Self {
        let heap: Vec<usize> = (0..sources.len()).filter(|&i| !sources[i].done()).collect();
        let mut merge = Self { sources, heap };
        for i in (0..merge.heap.len() / 2).rev() {
            merge.sift_down(i);
        }
        merge
    }

    /// The source holding the smallest key.
    fn peek(&self) -> Option<usize> {
        self.heap.first().copied()
    }

    /// Moves the smallest source on to its next entry.
    fn advance(&mut self) -> Result<()> {
        let top = self.heap[0];
        self.sources[top].advance()?;
        if self.sources[top].done() {
            self.heap.swap_remove(0);
        }
        if !self.heap.is_empty() {
            self.sift_down(0);
        }
        Ok(())
    }

    fn less(&self, a: usize, b: usize) -> bool {
        self.sources[self.heap[a]].key() < self.sources[self.heap[b]].key()
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (left, right) = (2 * i + 1, 2 * i + 2);
            let mut smallest = i;
            if left < self.heap.len() && self.less(left, smallest) {
                smallest = left;
            }
            if right < self.heap.len() && self.less(right, smallest) {
                smallest = right;
            }
            if smallest == i {
                return;
            }
            self.heap.swap(i, smallest);
            i = smallest;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// Gathers `changes` under `budget`, then returns the keys handed on, in the order they were,
    /// and the index after `before` was stored and the changes applied.
    fn applied(
        before: &[String],
        changes: &[(String, Option<Vec<u8>>)],
        budget: usize,
    ) -> (Vec<String>, Vec<(String, Vec<u8>)>) {
        let gather = |dir: &std::path::Path| {
            let mut gathered = IndexChanges::new(dir.to_path_buf(), budget);
            for (key, record) in changes {
                match record {
                    Some(record) => gathered.put(key, |out| out.extend_from_slice(record)).unwrap(),
                    None => gathered.delete(key).unwrap(),
                }
            }
            assert_eq!(gathered.len(), changes.len() as u64);
            gathered
        };
        let dir = tempfile::tempdir().unwrap();
        let mut order = Vec::new();
        gather(dir.path())
            .apply_chunks(|chunk| {
                order.extend(chunk.iter().map(|(key, _)| key.to_string()));
                Ok(())
            })
            .unwrap();
        let index = ServingIndex::open(&dir.path().join("index.redb")).unwrap();
        index
            .apply_encoded(before.iter().map(|k| (k.as_str(), Some(b"before".as_slice()))))
            .unwrap();
        gather(dir.path()).apply(&index).unwrap();
        (order, index.reader().unwrap().all_encoded())
    }

    /// Keys as libraries hold them: ID numbers that share their first 16 bytes and more, names,
    /// short codes.
    fn key() -> impl Strategy<Value = String> {
        prop_oneof!["11010519491231[0-9X]{2,6}", "张[三四五六]{1,3}", "[a-z0-9]{1,3}"]
    }

    proptest! {
        /// Whatever the budget (so however many runs spill) and the order the write touched its
        /// keys in, the changes are handed on in strictly increasing key order, and the index ends
        /// up holding each changed key's record, no deleted key, and the keys the write did not
        /// touch as they were.
        #[test]
        fn spilled_and_merged_changes_reach_the_index_in_key_order(
            before in proptest::collection::btree_set(key(), 0..50),
            changes in proptest::collection::btree_map(
                key(),
                // Never empty, as encoded records are not: empty marks a deleted base record.
                proptest::option::of(proptest::collection::vec(any::<u8>(), 1..40)),
                0..300,
            )
            .prop_map(|changes| changes.into_iter().collect::<Vec<_>>())
            .prop_shuffle(),
            budget in 1usize..4000,
        ) {
            let before: Vec<String> = before.into_iter().collect();
            let mut want: BTreeMap<String, Vec<u8>> = before.iter().map(|k| (k.clone(), b"before".to_vec())).collect();
            for (key, record) in &changes {
                match record {
                    Some(record) => want.insert(key.clone(), record.clone()),
                    None => want.remove(key),
                };
            }
            let (order, held) = applied(&before, &changes, budget);
            let mut sorted: Vec<String> = changes.iter().map(|(k, _)| k.clone()).collect();
            sorted.sort();
            prop_assert_eq!(order, sorted);
            prop_assert_eq!(held, want.into_iter().collect::<Vec<_>>());
        }
    }

    /// Small writes go on top of the base until, with those before them, they reach a quarter
    /// of the index: that write writes a new base, and redb holds no change after it.
    #[test]
    fn no_change_writes_no_base() {
        let dir = tempfile::tempdir().unwrap();
        let index = ServingIndex::open(&dir.path().join("index.redb")).unwrap();
        IndexChanges::new(dir.path().to_path_buf(), 1 << 20)
            .apply(&index)
            .unwrap();
        let segments = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "seg"))
            .count();
        assert_eq!(segments, 0);
    }

    #[test]
    fn small_writes_pile_up_to_a_quarter_of_the_index_then_rebase() {
        let dir = tempfile::tempdir().unwrap();
        let index = ServingIndex::open(&dir.path().join("index.redb")).unwrap();
        let write = |keys: std::ops::Range<usize>, record: &[u8]| {
            let mut changes = IndexChanges::new(dir.path().to_path_buf(), 1 << 20);
            for i in keys {
                changes
                    .put(&format!("{i:018}"), |out| out.extend_from_slice(record))
                    .unwrap();
            }
            changes.apply(&index).unwrap();
        };
        let mut want: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        write(0..100, b"first");
        want.extend((0..100).map(|i| (format!("{i:018}"), b"first".to_vec())));
        let pending = || index.reader().unwrap().changes_since_base().unwrap();
        assert_eq!(pending(), 0, "the first load is a base");
        for round in 0..5 {
            let keys = round * 5..round * 5 + 5;
            want.extend(keys.clone().map(|i| (format!("{i:018}"), b"later".to_vec())));
            write(keys, b"later");
            let expected = if round < 4 { 5 * (round as u64 + 1) } else { 0 };
            assert_eq!(pending(), expected, "after small write {round}");
            assert_eq!(
                index.reader().unwrap().all_encoded(),
                want.clone().into_iter().collect::<Vec<_>>()
            );
        }
    }

    fn spilled(dir: &std::path::Path, keys: usize) -> IndexChanges {
        // A budget that spills a run every few changes.
        let mut changes = IndexChanges::new(dir.to_path_buf(), 200);
        for i in 0..keys {
            changes
                .put(&format!("{i:018}"), |out| out.extend_from_slice(b"record"))
                .unwrap();
        }
        assert!(changes.runs.len() > 3);
        changes
    }

    #[test]
    fn an_apply_that_fails_stops_the_merge_and_is_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut calls = 0;
        let failed = spilled(dir.path(), 100).apply_chunks(|_| {
            calls += 1;
            if calls == 2 {
                Err(Error::index("the index is full"))
            } else {
                Ok(())
            }
        });
        assert!(format!("{}", failed.unwrap_err()).contains("the index is full"));
        assert_eq!(calls, 2, "nothing applied after the failure");
    }

    #[test]
    fn a_run_cut_short_during_the_merge_is_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let changes = spilled(dir.path(), 100);
        let run = &changes.runs[1];
        run.set_len(run.metadata().unwrap().len() - 1).unwrap();
        let mut applied = 0;
        let failed = changes.apply_chunks(|chunk| {
            applied += chunk.len();
            Ok(())
        });
        assert!(failed.is_err());
        assert!(applied < 100);
    }

    #[test]
    fn a_run_cut_short_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut changes = IndexChanges::new(dir.path().to_path_buf(), 1);
        changes
            .put("110105194912310037", |out| out.extend_from_slice(b"record"))
            .unwrap();
        let mut run = changes.runs.pop().unwrap();
        let len = run.metadata().unwrap().len();
        for cut in [len - 1, 8, 3] {
            run.set_len(cut).unwrap();
            run.rewind().unwrap();
            assert!(Source::run(run.try_clone().unwrap()).is_err(), "cut at {cut} of {len}");
        }
    }
}
