//! Export snapshots (导出快照): a library's current records in key order, written as one Arrow
//! IPC file, `<library>/export/current-v<N>.arrow`, for the library version `N` they reflect.
//!
//! A bulk export (CSV, Parquet, … of a whole library) of a version that has a snapshot reads it
//! instead of scanning the serving index: the index is a B-tree of encoded records with their
//! lineage, hundreds of bytes a record across pages that a range scan reads one at a time,
//! while the snapshot holds only the values, already in columns. A snapshot is a cache: the
//! index stays the truth, a missing, stale or unreadable snapshot is never read (the export
//! scans the index, which gives the same bytes), and [`crate::Library::refresh_snapshot`]
//! writes a new one from an index read view — the server does so in the background once a
//! library has changed (`exchange.export_snapshots` in docs/configuration.md).
//!
//! A snapshot is written to a temporary file, synced and renamed into place, and older
//! snapshots are then removed; an export that opened one keeps reading it after its removal.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;

use crate::index::{IndexReader, Scan};
use crate::schema::LibrarySchema;
use crate::{Error, Result};

/// Records per batch of a snapshot: what an export hands its writer at a time.
pub const SNAPSHOT_BATCH: usize = 8192;

const VERSION_METADATA: &str = "huitong.library_version";

/// What writing a snapshot did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotStats {
    /// The library version it reflects.
    pub version: i64,
    /// Records written.
    pub records: u64,
    /// Size of the file.
    pub bytes: u64,
    /// How long writing it took.
    pub elapsed: Duration,
}

/// The export snapshots of one library.
pub(crate) struct Snapshots {
    dir: PathBuf,
    library: &'static LibrarySchema,
    /// The version of the snapshot in place, if any.
    current: Mutex<Option<i64>>,
    /// Held while a snapshot is written: one writer at a time.
    writing: Mutex<()>,
}

fn file_name(version: i64) -> String {
    format!("current-v{version}.arrow")
}

fn version_of(name: &str) -> Option<i64> {
    name.strip_prefix("current-v")?.strip_suffix(".arrow")?.parse().ok()
}

impl Snapshots {
    /// The snapshots under `<library_dir>/export`: the newest one that opens as a snapshot of
    /// `library` is kept, every other file there (older snapshots, a write a crash cut short)
    /// is removed.
    pub(crate) fn open(library_dir: &Path, library: &'static LibrarySchema) -> Result<Self> {
        let dir = library_dir.join("export");
        std::fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
        let mut found: Vec<(i64, PathBuf)> = Vec::new();
        let mut stray = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(Error::io(format!("listing {}", dir.display())))? {
            let entry = entry.map_err(Error::io(format!("listing {}", dir.display())))?;
            let name = entry.file_name();
            match name.to_str().and_then(version_of) {
                Some(version) => found.push((version, entry.path())),
                None => stray.push(entry.path()),
            }
        }
        found.sort_unstable_by_key(|(version, _)| std::cmp::Reverse(*version));
        let mut current = None;
        for (version, path) in found {
            if current.is_none() {
                match SnapshotReader::open(&path, library) {
                    Ok(reader) if reader.version == version => {
                        current = Some(version);
                        continue;
                    }
                    Ok(_) => {
                        tracing::warn!(path = %path.display(), "an export snapshot names another version; removed")
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "an unreadable export snapshot; removed")
                    }
                }
            }
            stray.push(path);
        }
        for path in stray {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "could not remove an old export snapshot");
            }
        }
        Ok(Self {
            dir,
            library,
            current: Mutex::new(current),
            writing: Mutex::new(()),
        })
    }

    /// The version of the snapshot in place.
    pub(crate) fn version(&self) -> Option<i64> {
        *self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The snapshot of `version`, when it is the one in place and still opens.
    pub(crate) fn open_version(&self, version: i64) -> Option<SnapshotReader> {
        if self.version() != Some(version) {
            return None;
        }
        match SnapshotReader::open(&self.dir.join(file_name(version)), self.library) {
            Ok(reader) => Some(reader),
            Err(e) => {
                // Replaced since (then the current version moved on first), or removed or
                // damaged behind the server's back: forgotten, so that it is written again.
                let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
                if *current == Some(version) {
                    tracing::warn!(dir = %self.dir.display(), version, error = %e, "the export snapshot cannot be read; it will be written again");
                    *current = None;
                }
                None
            }
        }
    }

    /// Writes the snapshot of the records `reader` sees, at `version`. Returns `None` without
    /// writing when that version's snapshot is in place or another write is under way.
    pub(crate) fn write(&self, version: i64, reader: IndexReader) -> Result<Option<SnapshotStats>> {
        let Ok(_writing) = self.writing.try_lock() else {
            return Ok(None);
        };
        if self.version() == Some(version) {
            return Ok(None);
        }
        let started = Instant::now();
        let path = self.dir.join(file_name(version));
        let partial = self.dir.join(format!("{}.partial", file_name(version)));
        let records = write_file(&partial, version, Scan::new(reader, None), self.library).inspect_err(|_| {
            let _ = std::fs::remove_file(&partial);
        })?;
        std::fs::rename(&partial, &path).map_err(Error::io(format!("renaming {}", partial.display())))?;
        let previous = self.current.lock().unwrap_or_else(|e| e.into_inner()).replace(version);
        if let Some(previous) = previous.filter(|p| *p != version) {
            let _ = std::fs::remove_file(self.dir.join(file_name(previous)));
        }
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Ok(Some(SnapshotStats {
            version,
            records,
            bytes,
            elapsed: started.elapsed(),
        }))
    }
}

/// Writes every record `scan` reads to `path`, in key order, and syncs it.
fn write_file(path: &Path, version: i64, mut scan: Scan, library: &LibrarySchema) -> Result<u64> {
    let io = |what: &str| Error::io(format!("{what} {}", path.display()));
    let file = File::create(path).map_err(io("creating"))?;
    let mut writer = FileWriter::try_new(BufWriter::with_capacity(1 << 20, file), &library.text_schema())?;
    // In the file's footer: the batches keep the plain text schema.
    writer.write_metadata(VERSION_METADATA, version.to_string());
    let mut records = 0u64;
    loop {
        let chunk = scan.next_encoded(SNAPSHOT_BATCH)?;
        if chunk.is_empty() {
            break;
        }
        records += chunk.len() as u64;
        writer.write(&chunk.batch(library)?)?;
    }
    writer.finish()?;
    let file = writer
        .into_inner()?
        .into_inner()
        .map_err(|e| Error::index(e.to_string()))?;
    file.sync_all().map_err(io("syncing"))?;
    Ok(records)
}

/// An open snapshot, read a batch at a time: the stored values of every field
/// ([`LibrarySchema::text_schema`]), in key order.
pub struct SnapshotReader {
    version: i64,
    batches: FileReader<BufReader<File>>,
}

impl SnapshotReader {
    fn open(path: &Path, library: &LibrarySchema) -> Result<Self> {
        let file = File::open(path).map_err(Error::io(format!("opening {}", path.display())))?;
        let batches = FileReader::try_new(BufReader::with_capacity(1 << 20, file), None)?;
        if batches.schema() != library.text_schema() {
            return Err(Error::index("an export snapshot of another schema"));
        }
        let version = batches
            .custom_metadata()
            .get(VERSION_METADATA)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::index("an export snapshot without its library version"))?;
        Ok(Self { version, batches })
    }

    /// The next batch of records (schema [`LibrarySchema::text_schema`]); `None` at the end.
    pub fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        Ok(self.batches.next().transpose()?)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, StringArray};

    use crate::schema::POPULATION;
    use crate::{Authority, Library};

    /// Every record the index holds, in key order, as the rows of a text batch.
    fn index_rows(library: &Library) -> Vec<Vec<Option<String>>> {
        let mut rows = Vec::new();
        library
            .reader()
            .unwrap()
            .for_each_record(|_, record| {
                rows.push(record.values);
                Ok::<_, crate::Error>(())
            })
            .unwrap();
        rows
    }

    fn snapshot_rows(library: &Library, version: i64) -> Vec<Vec<Option<String>>> {
        let mut snapshot = library.open_snapshot(version).expect("a snapshot of this version");
        assert_eq!(snapshot.version, version);
        let mut rows = Vec::new();
        while let Some(batch) = snapshot.next_batch().unwrap() {
            assert_eq!(batch.schema(), POPULATION.text_schema());
            assert!(batch.num_rows() <= super::SNAPSHOT_BATCH);
            let columns: Vec<&StringArray> = batch
                .columns()
                .iter()
                .map(|c| c.as_any().downcast_ref().unwrap())
                .collect();
            for r in 0..batch.num_rows() {
                rows.push(
                    columns
                        .iter()
                        .map(|c| c.is_valid(r).then(|| c.value(r).to_string()))
                        .collect(),
                );
            }
        }
        rows
    }

    fn person(i: usize) -> Vec<Option<String>> {
        let mut values = vec![None; POPULATION.fields.len()];
        values[0] = Some(format!("K{i:07}"));
        values[POPULATION.position("name").unwrap()] = Some(format!("姓名,\"{i}\""));
        if i.is_multiple_of(3) {
            values[POPULATION.position("phone").unwrap()] = Some(format!("138{i:08}"));
        }
        values
    }

    fn files(library_dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(library_dir.join("export"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn snapshots_hold_the_current_records_of_their_version() {
        let dir = tempfile::tempdir().unwrap();
        let library_dir = dir.path().join("libraries").join(POPULATION.name);
        let library = Library::open(dir.path(), &POPULATION).await.unwrap();
        assert_eq!(library.snapshot_version(), None);

        // An empty library has an empty snapshot.
        let stats = library.refresh_snapshot().unwrap().expect("written");
        assert_eq!((stats.version, stats.records), (0, 0));
        assert!(snapshot_rows(&library, 0).is_empty());

        // More records than one batch holds, written out of key order.
        let n = super::SNAPSHOT_BATCH * 2 + 17;
        let mut writer = library.writer("GAJ", 1, Authority::all(&POPULATION)).await.unwrap();
        for i in (0..n).rev() {
            writer.upsert(person(i)).unwrap();
        }
        let v1 = writer.commit("test", 1).await.unwrap().version;
        assert_eq!(
            library.snapshot_version(),
            Some(0),
            "a commit leaves the snapshot as it was"
        );
        assert!(
            library.open_snapshot(v1).is_none(),
            "no snapshot of the new version yet"
        );

        let stats = library.refresh_snapshot().unwrap().expect("written");
        assert_eq!((stats.version, stats.records), (v1, n as u64));
        assert!(stats.bytes > 0);
        assert_eq!(library.refresh_snapshot().unwrap(), None, "already in place");
        assert_eq!(snapshot_rows(&library, v1), index_rows(&library));
        assert_eq!(
            files(&library_dir),
            [format!("current-v{v1}.arrow")],
            "the older one is removed"
        );

        // A change and a deletion make it stale; a reader opened before the refresh goes on
        // reading the old version after its file is removed.
        let mut old = library.open_snapshot(v1).unwrap();
        let mut writer = library.writer("GAJ", 2, Authority::all(&POPULATION)).await.unwrap();
        let mut changed = person(5);
        changed[POPULATION.position("name").unwrap()] = Some("改名".into());
        writer.upsert(changed).unwrap();
        writer.delete("K0000007").unwrap();
        let v2 = writer.commit("test", 2).await.unwrap().version;
        assert!(library.open_snapshot(v2).is_none());
        library.refresh_snapshot().unwrap().expect("written");
        let rows = snapshot_rows(&library, v2);
        assert_eq!(rows, index_rows(&library));
        assert_eq!(rows.len(), n - 1);
        assert!(library.open_snapshot(v1).is_none(), "replaced");
        let mut old_rows = 0;
        while let Some(batch) = old.next_batch().unwrap() {
            old_rows += batch.num_rows();
        }
        assert_eq!(old_rows, n);

        // A snapshot removed behind the library's back is not read, and is forgotten.
        let path = library_dir.join("export").join(format!("current-v{v2}.arrow"));
        std::fs::rename(&path, library_dir.join("moved")).unwrap();
        assert!(library.open_snapshot(v2).is_none());
        assert_eq!(library.snapshot_version(), None);
        std::fs::rename(library_dir.join("moved"), &path).unwrap();

        // Reopened, the library finds its snapshot; a damaged file and a cut-short write are
        // removed, not read.
        drop(library);
        std::fs::write(
            library_dir.join("export").join(format!("current-v{}.arrow", v2 + 1)),
            b"not arrow",
        )
        .unwrap();
        std::fs::write(library_dir.join("export").join("current-v9.arrow.partial"), b"half").unwrap();
        let library = Library::open(dir.path(), &POPULATION).await.unwrap();
        assert_eq!(library.snapshot_version(), Some(v2));
        assert_eq!(snapshot_rows(&library, v2), index_rows(&library));
        assert_eq!(files(&library_dir), [format!("current-v{v2}.arrow")]);
    }
}
