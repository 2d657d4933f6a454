//! The library store: each library is a Delta table holding an append-only log of record
//! versions, plus a [`ServingIndex`] of the current record per key.
//!
//! Why a log and not MERGE: delta-rs MERGE rewrites every file a key touches and is slow and
//! memory-hungry on large tables, so an upsert here appends the changed records (op `I` or `U`)
//! and the index, not the table, answers "what is current". The log is also the change feed
//! and the history: a record as of version N is its last row with `_version <= N`.
//!
//! One source per field (一数一源): a write knows, field by field, whether its department is the
//! authoritative source ([`Authority`]). The authority's values replace others'; another source
//! fills a field only while it is empty (or replaces a value it supplied itself). When values
//! disagree, the losing values are kept in a row with op `C` (conflict) under the department
//! that supplied them, in the same commit: `SELECT … WHERE _op = 'C'` lists every conflict.
//! Each record carries its per-field lineage (`_lineage`, [`crate::Lineage`]).
//!
//! One writer per library at a time (an in-process mutex plus an OS file lock), so `_version` of
//! every row is exactly the Delta version that commits it. A writer commits its rows and the
//! connector's watermark (a Delta application transaction) in one Delta commit: both advance or
//! neither does.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Date32Array, Date32Builder, Int64Array, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use chrono::Utc;
use deltalake::DeltaTable;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, StructType, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use futures::TryStreamExt;
use tokio::sync::{Mutex, MutexGuard};
use url::Url;

use crate::index::{IndexReader, ServingIndex, StoredRecord, encode_head};
use crate::index_changes::IndexChanges;
use crate::lineage::{Lineage, Origin};
use crate::normalize::EPOCH;
use crate::schema::{FieldKind, LibrarySchema};
use crate::snapshot::{SnapshotReader, SnapshotStats, Snapshots};
use crate::{Error, Result};

/// One library: its Delta table and its serving index.
pub struct Library {
    schema: &'static LibrarySchema,
    dir: PathBuf,
    url: Url,
    index: ServingIndex,
    snapshots: Snapshots,
    write_lock: Mutex<()>,
    /// Versions replayed from the table into the index since open (a write brings the index up
    /// to date itself; a replay repairs an index that fell behind).
    replayed: std::sync::atomic::AtomicU64,
}

/// Counts of what a write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriteStats {
    /// Rows that created a key.
    pub inserted: u64,
    /// Rows that changed a key's record (several rows of one key in a run each count).
    pub updated: u64,
    /// Rows that changed nothing (no new version written).
    pub unchanged: u64,
    /// Keys marked deleted.
    pub deleted: u64,
    /// Field values that disagreed between sources (一数一源 conflicts), recorded as `C` rows.
    pub conflicts: u64,
}

/// Which fields of a library a write's department is the authoritative source of (一数一源).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    owned: Vec<bool>,
    /// An empty incoming value clears the field (a derived library rewritten whole).
    clears: bool,
}

impl Authority {
    /// Authoritative for every field; an empty incoming value leaves the field as it is.
    pub fn all(schema: &LibrarySchema) -> Self {
        Self::by_field(schema, |_| true)
    }

    /// Authoritative for every field, and each row is the whole record: an empty value clears
    /// the field. For libraries derived whole from others (themes).
    pub fn snapshot(schema: &LibrarySchema) -> Self {
        Self {
            clears: true,
            ..Self::all(schema)
        }
    }

    /// Authoritative for no field: the write only fills gaps.
    pub fn none(schema: &LibrarySchema) -> Self {
        Self::by_field(schema, |_| false)
    }

    /// Field by field, from a predicate on the field name.
    pub fn by_field(schema: &LibrarySchema, mut owns: impl FnMut(&str) -> bool) -> Self {
        Self {
            owned: schema.fields.iter().map(|f| owns(f.name)).collect(),
            clears: false,
        }
    }

    /// Whether the write is authoritative for field `i`.
    pub fn owns(&self, i: usize) -> bool {
        self.owned.get(i).copied().unwrap_or(false)
    }
}

/// The outcome of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CommitOutcome {
    /// The library version the commit created.
    pub version: i64,
    /// What changed.
    pub stats: WriteStats,
}

impl Library {
    /// Opens the library under `<data_dir>/libraries/<name>`, creating the table and index when
    /// missing and bringing the index up to the table's version.
    pub async fn open(data_dir: &Path, schema: &'static LibrarySchema) -> Result<Self> {
        let dir = data_dir.join("libraries").join(schema.name);
        let table_dir = dir.join("table");
        std::fs::create_dir_all(&table_dir).map_err(Error::io(format!("creating {}", table_dir.display())))?;
        let table_dir = table_dir
            .canonicalize()
            .map_err(Error::io(format!("resolving {}", table_dir.display())))?;
        let url = Url::from_directory_path(&table_dir).map_err(|()| Error::InvalidValue {
            field: "data_dir",
            message: format!("{} is not an absolute path", table_dir.display()),
        })?;
        // Loading a directory that is not yet a table makes the kernel log an error, so a
        // new library is created without trying to load it first.
        let mut table = if table_dir.join("_delta_log").is_dir() {
            DeltaTable::try_from_url(url.clone()).await?
        } else {
            deltalake::DeltaTableBuilder::from_url(url.clone())?.build()?
        };
        if table.version().is_none() {
            let columns: StructType = schema
                .arrow_schema()
                .as_ref()
                .try_into_kernel()
                .map_err(deltalake::DeltaTableError::from)?;
            table = table
                .create()
                .with_table_name(schema.name)
                .with_comment(schema.label_zh)
                .with_columns(columns.fields().cloned())
                .await?;
        }
        let expected: Vec<String> = schema
            .arrow_schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let actual: Vec<String> = table
            .snapshot()?
            .schema()
            .fields()
            .map(|f| f.name().to_string())
            .collect();
        if actual != expected {
            return Err(Error::InvalidValue {
                field: "library",
                message: format!(
                    "the {} library at {} was written with another schema ({}); this build expects schema \
                     version {} ({}). Move the directory away and sync again",
                    schema.name,
                    dir.display(),
                    actual.join(", "),
                    schema.version,
                    expected.join(", ")
                ),
            });
        }
        let index = ServingIndex::open(&dir.join("serving.redb")).map_err(|e| match e {
            Error::Index(msg) if msg.contains("lock") || msg.contains("already open") => Error::Index(format!(
                "{msg} (is another huitong process, such as a running server, using this data dir?)"
            )),
            other => other,
        })?;
        let snapshots = Snapshots::open(&dir, schema)?;
        let library = Self {
            schema,
            dir,
            url,
            index,
            snapshots,
            write_lock: Mutex::new(()),
            replayed: Default::default(),
        };
        library.catch_up(&table).await?;
        Ok(library)
    }

    /// The schema.
    pub fn schema(&self) -> &'static LibrarySchema {
        self.schema
    }

    /// The current record for `key` (already normalized by the caller).
    pub fn get(&self, key: &str) -> Result<Option<StoredRecord>> {
        self.index.get(key)
    }

    /// `f` of the current record for `key`, borrowed from the serving index (no copy of
    /// its values).
    pub fn get_with<T>(&self, key: &str, f: impl FnOnce(Option<crate::RecordRef<'_>>) -> T) -> Result<T> {
        self.index.get_with(key, f)
    }

    /// The version the library serves.
    pub fn version(&self) -> Result<i64> {
        Ok(self.index.version()?.unwrap_or(0))
    }

    /// Number of current records.
    pub fn len(&self) -> Result<u64> {
        self.index.len()
    }

    /// Whether the library holds no record.
    pub fn is_empty(&self) -> Result<bool> {
        self.index.is_empty()
    }

    /// A consistent read view of the current records.
    pub fn reader(&self) -> Result<IndexReader> {
        self.index.reader()
    }

    /// The library version of the export snapshot in place ([`crate::snapshot`]), if any.
    pub fn snapshot_version(&self) -> Option<i64> {
        self.snapshots.version()
    }

    /// The export snapshot of `version`, when there is one: the current records of that
    /// version in key order, a batch at a time. `None` means scanning the index instead.
    pub fn open_snapshot(&self, version: i64) -> Option<SnapshotReader> {
        self.snapshots.open_version(version)
    }

    /// Writes the export snapshot of the version the library serves now, unless it is in
    /// place already or being written (then `None`). Blocking: reads every current record.
    pub fn refresh_snapshot(&self) -> Result<Option<SnapshotStats>> {
        let (version, reader) = self.index.versioned_reader()?;
        self.snapshots.write(version.unwrap_or(0), reader)
    }

    /// Keys deleted after version `since`, with the version of their last deletion, in key
    /// order: `limit` of them from `offset`.
    pub async fn deletions_since(&self, since: i64, offset: usize, limit: usize) -> Result<Vec<(String, i64)>> {
        let table = self.table().await?;
        let ctx = datafusion::prelude::SessionContext::new();
        table.update_datafusion_session(&ctx.state())?;
        ctx.register_table("library", table.table_provider().await?)?;
        let key = self.schema.key;
        let df = ctx
            .sql(&format!(
                "SELECT CAST({key} AS VARCHAR) AS k, MAX(_version) AS v FROM library \
                 WHERE _op = 'D' AND _version > {since} GROUP BY {key} ORDER BY k LIMIT {limit} OFFSET {offset}"
            ))
            .await?;
        let mut out = Vec::new();
        for batch in df.collect().await? {
            let batch = plain_utf8(&batch)?;
            let keys = as_strings(batch.column(0))?;
            let versions = batch
                .column(1)
                .as_any()
                .downcast_ref::<Int64Array>()
                .ok_or_else(|| Error::index("_version is not Int64"))?;
            for row in 0..batch.num_rows() {
                out.push((keys.value(row).to_string(), versions.value(row)));
            }
        }
        Ok(out)
    }

    /// The Delta table at its latest version, for queries.
    pub async fn table(&self) -> Result<DeltaTable> {
        Ok(DeltaTable::try_from_url(self.url.clone()).await?)
    }

    /// The library version that sync run `run` committed, looking back over the last `depth`
    /// commits; `None` when it committed nothing there. Used to settle runs interrupted between
    /// their commit and their bookkeeping.
    pub async fn version_committed_by_run(&self, run: i64, depth: usize) -> Result<Option<i64>> {
        let table = self.table().await?;
        let mut history = table.history(Some(depth));
        while let Some(info) = history.try_next().await? {
            if info.info.get("huitong_run").and_then(|v| v.as_i64()) == Some(run) {
                // Commits stamp their own version; delta-rs leaves `readVersion` unset.
                let version = info.info.get("huitong_version").and_then(|v| v.as_i64());
                return Ok(version.or(info.read_version.map(|v| v as i64 + 1)));
            }
        }
        Ok(None)
    }

    /// Starts a write on behalf of department `source` in sync run `run`. `authority` says which
    /// fields `source` is the authoritative source of (一数一源): its values there replace
    /// others', while elsewhere it only fills fields that are empty (see the module docs).
    ///
    /// Waits for a write of this process to finish; fails at once when another process holds
    /// the library.
    pub async fn writer(&self, source: &str, run: i64, authority: Authority) -> Result<LibraryWriter<'_>> {
        let guard = self.write_lock.lock().await;
        let lock_path = self.dir.join("writer.lock");
        let lock_file = File::create(&lock_path).map_err(Error::io(format!("creating {}", lock_path.display())))?;
        lock_file.try_lock().map_err(|_| {
            Error::Index(format!(
                "library {} is being written by another huitong process",
                self.schema.name
            ))
        })?;
        let table = self.table().await?;
        // Another process may have committed since this one last looked.
        self.catch_up(&table).await?;
        let version = current_version(&table) + 1;
        let reader = if self.index.is_empty()? {
            None
        } else {
            Some(self.index.reader()?)
        };
        let sink = ParquetSink::start(RecordBatchWriter::for_table(&table)?.with_target_file_size(TARGET_FILE_SIZE));
        Ok(LibraryWriter {
            library: self,
            _guard: guard,
            _lock_file: lock_file,
            table,
            version,
            origin: Origin {
                source: source.to_string(),
                run,
                version,
            },
            authority,
            inserted_lineage: HashMap::default(),
            reader,
            seen: KeySet::default(),
            changes: IndexChanges::new(self.dir.clone(), INDEX_CHANGES_MEMORY),
            rows: PendingRows::new(self.schema),
            sink,
            stats: WriteStats::default(),
        })
    }

    /// Replays the table's versions newer than the index into the index, one version at a
    /// time and in bounded chunks.
    async fn catch_up(&self, table: &DeltaTable) -> Result<()> {
        let table_version = current_version(table);
        let indexed = self.index.version()?;
        if indexed == Some(table_version) {
            return Ok(());
        }
        let (from, reset) = match indexed {
            Some(v) if v < table_version => (v, false),
            _ => (-1, true),
        };
        tracing::info!(
            library = self.schema.name,
            from,
            to = table_version,
            "bringing serving index up to date"
        );
        if reset {
            self.index.apply(None, true, std::iter::empty())?;
        }
        // One partition: the version's rows read as one stream, in a bounded buffer, rather than
        // scanned in parallel into memory (the changes sort them, spilling to disk).
        let config = datafusion::prelude::SessionConfig::new().with_target_partitions(1);
        let ctx = self.session_within(table, config, REPLAY_MEMORY).await?;
        for version in (from + 1)..=table_version {
            self.replayed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // Within a version each key appears once (a writer refuses a second row for a key).
            // The changes are gathered and applied as a write applies its own: sorted (spilled
            // past INDEX_CHANGES_MEMORY), then put into redb, or written as a new base segment
            // when they are a large part of the index, as after a reset: a rebuilt index is the
            // one the writes would have made, not millions of records in redb.
            let df = ctx
                .sql(&format!(
                    "SELECT * FROM library WHERE _version = {version} AND _op IN ('I', 'U', 'D')"
                ))
                .await?;
            let mut stream = df.execute_stream().await?;
            let started = std::time::Instant::now();
            let mut changes = IndexChanges::new(self.dir.clone(), INDEX_CHANGES_MEMORY);
            while let Some(batch) = stream.try_next().await? {
                for (key, record) in self.records_from_batch(&batch)? {
                    match record {
                        Some(record) => changes.put(&key, |out| crate::index::append_encoded(&record, out))?,
                        None => changes.delete(&key)?,
                    }
                }
            }
            let rows = changes.len();
            changes.apply(&self.index)?;
            tracing::debug!(version, rows, ms = started.elapsed().as_millis() as u64, "index replay");
        }
        self.index.apply(Some(table_version), false, std::iter::empty())
    }

    /// Reads a batch of library rows back into (key, record) pairs; deletes map to `None`.
    fn records_from_batch(&self, batch: &RecordBatch) -> Result<Vec<(String, Option<StoredRecord>)>> {
        let batch = &plain_utf8(batch)?;
        let column = |name: &str| {
            batch.column_by_name(name).ok_or_else(|| Error::InvalidValue {
                field: "library",
                message: format!("column {name} missing from {}", self.schema.name),
            })
        };
        let fields: Vec<&ArrayRef> = self
            .schema
            .fields
            .iter()
            .map(|f| column(f.name))
            .collect::<Result<_>>()?;
        let ops = as_strings(column("_op")?)?;
        let versions = column("_version")?
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| Error::index("_version is not Int64"))?;
        let sources = as_strings(column("_source")?)?;
        let runs = column("_run")?
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| Error::index("_run is not Int64"))?;
        let lineages = as_strings(column("_lineage")?)?;
        let mut out = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let values: Vec<Option<String>> = fields.iter().map(|array| cell_to_string(array, row)).collect();
            let key = values[0].clone().unwrap_or_default();
            let record = (ops.value(row) != "D").then(|| {
                let lineage = (!lineages.is_null(row))
                    .then(|| Lineage::parse(lineages.value(row)))
                    .flatten()
                    .unwrap_or_else(|| {
                        Lineage::uniform(
                            &values,
                            Origin {
                                source: sources.value(row).to_string(),
                                run: runs.value(row),
                                version: versions.value(row),
                            },
                        )
                    });
                StoredRecord {
                    values,
                    source: sources.value(row).to_string(),
                    version: versions.value(row),
                    lineage,
                }
            });
            out.push((key, record));
        }
        Ok(out)
    }
}

/// The Parquet files of a write, encoded and compressed on a task of their own, so that a
/// batch is encoded while the next one is mapped and normalized.
struct ParquetSink {
    batches: Option<tokio::sync::mpsc::Sender<RecordBatch>>,
    task: Option<tokio::task::JoinHandle<Result<Vec<deltalake::kernel::Add>>>>,
}

impl ParquetSink {
    fn start(mut writer: RecordBatchWriter) -> Self {
        // One batch queued while one is encoded: memory stays at a few batches.
        let (batches, mut queued) = tokio::sync::mpsc::channel::<RecordBatch>(1);
        let task = tokio::spawn(async move {
            while let Some(batch) = queued.recv().await {
                writer.write(batch).await?;
            }
            Ok(writer.flush().await?)
        });
        Self {
            batches: Some(batches),
            task: Some(task),
        }
    }

    async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if let Some(batches) = &self.batches
            && batches.send(batch).await.is_ok()
        {
            return Ok(());
        }
        // The task stopped: it failed, and says why.
        match self.finish().await {
            Ok(_) => Err(Error::index("the Parquet writer stopped early")),
            Err(e) => Err(e),
        }
    }

    /// Writes what is buffered and returns the files written.
    async fn finish(&mut self) -> Result<Vec<deltalake::kernel::Add>> {
        self.batches = None;
        let task = self
            .task
            .take()
            .ok_or_else(|| Error::index("the Parquet writer already failed"))?;
        task.await
            .map_err(|e| Error::index(format!("the Parquet writer failed: {e}")))?
    }
}

impl Drop for ParquetSink {
    /// A write dropped without its commit writes no more files.
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A lineage as the table stores it (text) and as the index does (encoded).
fn lineage_forms(lineage: &Lineage) -> (String, Vec<u8>) {
    let mut encoded = Vec::new();
    lineage.encode(&mut encoded);
    (lineage.to_text(), encoded)
}

async fn table_watermark(table: &DeltaTable, app_id: &str) -> Result<Option<i64>> {
    let log_store = table.log_store();
    Ok(table
        .snapshot()?
        .transaction_version(log_store.as_ref(), app_id)
        .await?)
}

/// The batch with string columns as plain `Utf8`: the Parquet reader may hand them back as
/// string views, depending on how the files were written.
pub(crate) fn plain_utf8(batch: &RecordBatch) -> Result<RecordBatch> {
    use arrow::datatypes::DataType;
    if !batch
        .columns()
        .iter()
        .any(|c| matches!(c.data_type(), DataType::Utf8View | DataType::LargeUtf8))
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if matches!(column.data_type(), DataType::Utf8View | DataType::LargeUtf8) {
            columns.push(arrow::compute::cast(column, &DataType::Utf8)?);
            fields.push(field.as_ref().clone().with_data_type(DataType::Utf8));
        } else {
            columns.push(column.clone());
            fields.push(field.as_ref().clone());
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(arrow::datatypes::Schema::new(fields)),
        columns,
    )?)
}

fn current_version(table: &DeltaTable) -> i64 {
    table.version().map(|v| v as i64).unwrap_or(-1)
}

pub(crate) fn as_strings(array: &ArrayRef) -> Result<&StringArray> {
    array
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| Error::index("expected a string column"))
}

pub(crate) fn cell_to_string(array: &ArrayRef, row: usize) -> Option<String> {
    if array.is_null(row) {
        return None;
    }
    if let Some(strings) = array.as_any().downcast_ref::<StringArray>() {
        return Some(strings.value(row).to_string());
    }
    if let Some(dates) = array.as_any().downcast_ref::<Date32Array>() {
        let date = EPOCH + chrono::Duration::days(i64::from(dates.value(row)));
        return Some(crate::normalize::format_date(date));
    }
    None
}

/// Memory a write's index changes may hold before they spill to disk (in unit tests, little
/// enough that a test of a few thousand records spills).
const INDEX_CHANGES_MEMORY: usize = if cfg!(test) { 1 << 20 } else { 64 << 20 };

/// Memory the replay's scan of a version's rows may hold (what it gathers spills past
/// INDEX_CHANGES_MEMORY).
const REPLAY_MEMORY: usize = if cfg!(test) { 24 << 20 } else { 256 << 20 };

/// Parquet files of a run roll over at this size.
const TARGET_FILE_SIZE: u64 = 128 << 20;
/// Rows buffered before they are encoded into the run's Parquet files.
const FLUSH_ROWS: usize = 32 * 1024;

/// The keys a write has touched, as 128-bit hashes: 16 bytes a key whatever its length, so a
/// 10M-row run stays far below a gigabyte, with a collision chance (about 10⁻²⁵ for 10M keys)
/// far below that of a disk error.
struct KeySet {
    hashes: std::collections::HashSet<u128, BuildU128>,
    /// The two XXH64 seeds, random per write.
    seeds: (u64, u64),
}

impl Default for KeySet {
    fn default() -> Self {
        use std::hash::BuildHasher;
        Self {
            hashes: Default::default(),
            seeds: (
                std::hash::RandomState::new().hash_one(0u8),
                std::hash::RandomState::new().hash_one(1u8),
            ),
        }
    }
}

/// A hasher that takes a `u128`'s low 64 bits as its hash. For the key set, whose key hashes
/// are already uniformly random; and for the lineage of new records by the bit mask of their
/// filled fields, a handful of distinct masks per write, where hashing them costs more than
/// the probes this saves.
#[derive(Default, Clone, Copy)]
struct BuildU128;

impl std::hash::BuildHasher for BuildU128 {
    type Hasher = U128Hasher;
    fn build_hasher(&self) -> U128Hasher {
        U128Hasher(0)
    }
}

struct U128Hasher(u64);

impl std::hash::Hasher for U128Hasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

impl KeySet {
    fn hash(&self, key: &str) -> u128 {
        let hash = |seed| twox_hash::XxHash64::oneshot(seed, key.as_bytes());
        (u128::from(hash(self.seeds.0)) << 64) | u128::from(hash(self.seeds.1))
    }

    /// Adds the key; false when it was already there.
    fn insert(&mut self, key: &str) -> bool {
        let h = self.hash(key);
        self.hashes.insert(h)
    }

    fn contains(&self, key: &str) -> bool {
        self.hashes.contains(&self.hash(key))
    }
}

/// What [`LibraryWriter::upsert`] did with a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    /// A new key.
    Inserted,
    /// The key's record changed.
    Updated,
    /// The record already held these values: nothing written.
    Unchanged,
    /// The key was already written in this run: the row was not applied (the caller reports it).
    Duplicate,
}

/// Rows waiting to be encoded, column by column.
struct PendingRows {
    schema: &'static LibrarySchema,
    values: Vec<ValueColumn>,
    ops: StringBuilder,
    sources: StringBuilder,
    lineages: StringBuilder,
    len: usize,
}

enum ValueColumn {
    Text(StringBuilder),
    Date(Date32Builder),
}

impl PendingRows {
    fn new(schema: &'static LibrarySchema) -> Self {
        let values = schema
            .fields
            .iter()
            .map(|f| match f.kind {
                FieldKind::Date => ValueColumn::Date(Date32Builder::with_capacity(FLUSH_ROWS)),
                _ => ValueColumn::Text(StringBuilder::with_capacity(FLUSH_ROWS, FLUSH_ROWS * 16)),
            })
            .collect();
        Self {
            schema,
            values,
            ops: StringBuilder::new(),
            sources: StringBuilder::new(),
            lineages: StringBuilder::new(),
            len: 0,
        }
    }

    fn push<S: AsRef<str>>(
        &mut self,
        op: &str,
        source: &str,
        lineage: Option<&str>,
        values: impl IntoIterator<Item = Option<S>>,
    ) {
        let mut values = values.into_iter();
        for column in &mut self.values {
            let value = values.next().flatten();
            let value = value.as_ref().map(|v| v.as_ref());
            match column {
                ValueColumn::Text(b) => b.append_option(value),
                ValueColumn::Date(b) => b.append_option(
                    value
                        .and_then(crate::normalize::parse_stored_date)
                        .map(|d| (d - EPOCH).num_days() as i32),
                ),
            }
        }
        self.ops.append_value(op);
        self.sources.append_value(source);
        self.lineages.append_option(lineage);
        self.len += 1;
    }

    fn finish(&mut self, version: i64, run: i64) -> Result<RecordBatch> {
        let n = self.len;
        self.len = 0;
        let mut columns: Vec<ArrayRef> = self
            .values
            .iter_mut()
            .map(|c| match c {
                ValueColumn::Text(b) => Arc::new(b.finish()) as ArrayRef,
                ValueColumn::Date(b) => Arc::new(b.finish()) as ArrayRef,
            })
            .collect();
        columns.push(Arc::new(self.ops.finish()));
        columns.push(Arc::new(Int64Array::from(vec![version; n])));
        columns.push(Arc::new(self.sources.finish()));
        columns.push(Arc::new(Int64Array::from(vec![run; n])));
        let now = Utc::now().timestamp_micros();
        columns.push(Arc::new(
            TimestampMicrosecondArray::from(vec![now; n]).with_timezone("UTC"),
        ));
        columns.push(Arc::new(self.lineages.finish()));
        Ok(RecordBatch::try_new(self.schema.arrow_schema(), columns)?)
    }
}

/// A write in progress. Rows are merged against the current records and streamed into Parquet
/// files as they come, so memory stays bounded whatever the size of the run; the files become
/// part of the library only when [`LibraryWriter::commit`] commits them, together with the
/// connector's watermark. Dropped without a commit, the write leaves the library as it was
/// (its files are unreferenced, for a later vacuum).
pub struct LibraryWriter<'a> {
    library: &'a Library,
    _guard: MutexGuard<'a, ()>,
    _lock_file: File,
    table: DeltaTable,
    version: i64,
    /// This write's department, run and version: the origin of every value it writes.
    origin: Origin,
    authority: Authority,
    /// The lineage of a new record, as text and encoded, by the set of fields it fills.
    inserted_lineage: HashMap<u128, (String, Vec<u8>), BuildU128>,
    /// The index as of the start of the write; `None` when the library was empty (a first load
    /// looks nothing up).
    reader: Option<IndexReader>,
    seen: KeySet,
    /// What the write changes in the serving index, applied once it is committed.
    changes: IndexChanges,
    rows: PendingRows,
    sink: ParquetSink,
    stats: WriteStats,
}

impl LibraryWriter<'_> {
    /// The last watermark committed under `app_id` (a connector), if any. (The future borrows
    /// only the table, so a writer can be used from spawned tasks.)
    pub fn watermark<'t>(&'t self, app_id: &'t str) -> impl Future<Output = Result<Option<i64>>> + Send + 't {
        table_watermark(&self.table, app_id)
    }

    /// The library version this write will commit.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// What the write has done so far.
    pub fn stats(&self) -> WriteStats {
        self.stats
    }

    /// A row holds one value per field and its dates as `YYYY-MM-DD`: the index takes the values
    /// as given, and must hold what the table does.
    fn check_row<S: AsRef<str>>(&self, values: &[Option<S>]) -> Result<()> {
        let fields = self.library.schema.fields;
        if values.len() != fields.len() {
            return Err(Error::InvalidValue {
                field: "row",
                message: format!(
                    "a {} row has {} values for {} fields",
                    self.library.schema.name,
                    values.len(),
                    fields.len()
                ),
            });
        }
        for (field, value) in fields.iter().zip(values) {
            if let (FieldKind::Date, Some(value)) = (field.kind, value.as_ref().map(AsRef::as_ref))
                && crate::normalize::parse_stored_date(value).is_none()
            {
                return Err(Error::InvalidValue {
                    field: field.name,
                    message: format!("{value:?} is not a date written YYYY-MM-DD"),
                });
            }
        }
        Ok(())
    }

    fn current(&self, key: &str) -> Result<Option<StoredRecord>> {
        match &self.reader {
            Some(reader) => reader.get(key),
            None => Ok(None),
        }
    }

    /// Merges one normalized row (values in schema order, key first, dates as `YYYY-MM-DD`)
    /// field by field under the write's [`Authority`] (see the module docs); values that lose a
    /// conflict are written as a `C` row. A key may be written once per write: a second row for
    /// it is a [`Upsert::Duplicate`]. After an error the write is to be dropped, not committed.
    pub fn upsert<S: AsRef<str>>(&mut self, values: impl AsRef<[Option<S>]>) -> Result<Upsert> {
        let values = values.as_ref();
        self.check_row(values)?;
        let Some(key) = values.first().and_then(|v| v.as_ref()).map(AsRef::as_ref) else {
            return Err(Error::InvalidValue {
                field: "key",
                message: format!("a {} row has no {}", self.library.schema.name, self.library.schema.key),
            });
        };
        if !self.seen.insert(key) {
            return Ok(Upsert::Duplicate);
        }
        let Some(current) = self.current(key)? else {
            self.stats.inserted += 1;
            // A new record's lineage is this write's origin for every filled field: it depends
            // only on which fields are filled, so it is built once per pattern (up to 128
            // fields; a wider record builds its own).
            let origin = &self.origin;
            let built;
            let (text, encoded) = if values.len() <= 128 {
                let filled = values
                    .iter()
                    .enumerate()
                    .fold(0u128, |mask, (i, v)| if v.is_some() { mask | 1 << i } else { mask });
                self.inserted_lineage
                    .entry(filled)
                    .or_insert_with(|| lineage_forms(&Lineage::uniform(values, origin.clone())))
            } else {
                built = lineage_forms(&Lineage::uniform(values, origin.clone()));
                &built
            };
            self.changes.put(key, |out| {
                encode_head(self.version, &origin.source, values, out);
                out.extend_from_slice(encoded);
            })?;
            self.rows
                .push("I", &origin.source, Some(text), values.iter().map(|v| v.as_ref()));
            return Ok(Upsert::Inserted);
        };
        let StoredRecord {
            values: mut merged,
            source: current_source,
            mut lineage,
            ..
        } = current;
        let unchanged_lineage = lineage.clone();
        let values_before = merged.clone();
        // Values that lost a conflict, by the department that supplied them.
        let mut losers: Vec<(String, Vec<Option<String>>)> = Vec::new();
        let width = values.len();
        let mut lose = |source: &str, i: usize, value: String, key: &str| {
            let slot = match losers.iter().position(|(s, _)| s == source) {
                Some(p) => p,
                None => {
                    let mut row = vec![None; width];
                    row[0] = Some(key.to_string());
                    losers.push((source.to_string(), row));
                    losers.len() - 1
                }
            };
            losers[slot].1[i] = Some(value);
        };
        for (i, incoming) in values.iter().enumerate() {
            let Some(incoming) = incoming.as_ref().map(AsRef::as_ref) else {
                if self.authority.clears && merged[i].is_some() {
                    merged[i] = None;
                    lineage.set(i, None);
                }
                continue;
            };
            let owns = self.authority.owns(i);
            match &merged[i] {
                None => {
                    merged[i] = Some(incoming.to_string());
                    lineage.set(i, Some(&self.origin));
                }
                Some(held) if held == incoming => {
                    // The authority confirming a value takes it over.
                    if owns && lineage.field(i).is_none_or(|o| o.source != self.origin.source) {
                        lineage.set(i, Some(&self.origin));
                    }
                }
                Some(held) => {
                    let holder = lineage
                        .field(i)
                        .map_or_else(|| current_source.clone(), |o| o.source.clone());
                    if owns || holder == self.origin.source {
                        if holder != self.origin.source {
                            lose(&holder, i, held.clone(), key);
                        }
                        merged[i] = Some(incoming.to_string());
                        lineage.set(i, Some(&self.origin));
                    } else {
                        lose(&self.origin.source, i, incoming.to_string(), key);
                    }
                }
            }
        }
        for (source, row) in &losers {
            self.stats.conflicts += row.iter().skip(1).filter(|v| v.is_some()).count() as u64;
            self.rows.push("C", source, None, row.iter().map(|v| v.as_deref()));
        }
        // The record belongs to the authority of its key: the library's owner.
        let source = if self.authority.owns(0) {
            self.origin.source.clone()
        } else {
            current_source.clone()
        };
        lineage.compact();
        if merged == values_before && lineage == unchanged_lineage && source == current_source {
            self.stats.unchanged += 1;
            return Ok(Upsert::Unchanged);
        }
        self.stats.updated += 1;
        self.changes.put(key, |out| {
            encode_head(self.version, &source, &merged, out);
            lineage.encode(out);
        })?;
        self.rows.push("U", &source, Some(&lineage.to_text()), merged);
        Ok(Upsert::Updated)
    }

    /// Marks `key` deleted (a source reported the deletion). False when the library did not
    /// hold it; [`Upsert::Duplicate`]-like repeats in one write are ignored.
    pub fn delete(&mut self, key: &str) -> Result<bool> {
        if !self.seen.insert(key) || self.current(key)?.is_none() {
            return Ok(false);
        }
        self.push_delete(key)?;
        Ok(true)
    }

    fn push_delete(&mut self, key: &str) -> Result<()> {
        self.stats.deleted += 1;
        self.changes.delete(key)?;
        let fields = self.library.schema.fields.len();
        let values = std::iter::once(Some(key)).chain(std::iter::repeat_n(None, fields - 1));
        self.rows.push("D", &self.origin.source, None, values);
        Ok(())
    }

    /// For a full snapshot: marks deleted every record this write's source owns that the write
    /// did not see. Refuses (and writes nothing) when that would delete more than
    /// `max_percent` of the source's records — a truncated or wrongly filtered source must not
    /// empty a library. Returns how many were marked.
    pub fn delete_unseen(&mut self, max_percent: u8) -> Result<u64> {
        let Some(reader) = &self.reader else {
            return Ok(0);
        };
        let mut owned = 0u64;
        let mut gone = Vec::new();
        reader.for_each_head(|key, _, source| {
            if source == self.origin.source {
                owned += 1;
                if !self.seen.contains(key) {
                    gone.push(key.to_string());
                }
            }
        })?;
        let limit = owned * u64::from(max_percent) / 100;
        if gone.len() as u64 > limit && !gone.is_empty() {
            return Err(Error::InvalidValue {
                field: "max_delete_percent",
                message: format!(
                    "the source no longer has {} of the {owned} records it supplied, more than {max_percent}% — \
                     is it truncated? Nothing was deleted; raise max_delete_percent to accept",
                    gone.len()
                ),
            });
        }
        for key in &gone {
            self.push_delete(key)?;
        }
        Ok(gone.len() as u64)
    }

    /// Encodes the buffered rows into the run's files once a batch's worth has gathered.
    pub async fn flush_if_full(&mut self) -> Result<()> {
        if self.rows.len >= FLUSH_ROWS {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.rows.len > 0 {
            let batch = self.rows.finish(self.version, self.origin.run)?;
            self.sink.write(batch).await?;
        }
        Ok(())
    }

    /// Commits the written rows and the watermark of `app_id` in one Delta commit (stamped with
    /// the run in its commit info), then brings the serving index up to it. On error nothing is
    /// visible: the table and the index stay as they were. A write that changed nothing and
    /// leaves the watermark where it was commits nothing and reports the current version.
    pub async fn commit(mut self, app_id: &str, watermark: i64) -> Result<CommitOutcome> {
        let started = std::time::Instant::now();
        self.flush().await?;
        let adds = self.sink.finish().await?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            files = adds.len(),
            "run files written"
        );
        let previous = table_watermark(&self.table, app_id).await?;
        if adds.is_empty() && previous == Some(watermark) {
            return Ok(CommitOutcome {
                version: self.version - 1,
                stats: self.stats,
            });
        }
        let mut metadata = HashMap::new();
        metadata.insert("huitong_run".to_string(), serde_json::Value::from(self.origin.run));
        metadata.insert("huitong_version".to_string(), serde_json::Value::from(self.version));
        metadata.insert(
            "huitong_source".to_string(),
            serde_json::Value::from(self.origin.source.clone()),
        );
        let properties = CommitProperties::default()
            .with_application_transaction(Transaction::new(app_id, watermark))
            .with_metadata(metadata)
            .with_max_retries(0);
        let operation = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: None,
            predicate: None,
        };
        let finalized = CommitBuilder::from(properties)
            .with_actions(adds.into_iter().map(Action::Add).collect())
            .build(Some(self.table.snapshot()?), self.table.log_store(), operation)
            .await?;
        let version = finalized.version() as i64;
        if version != self.version {
            return Err(Error::index(format!(
                "library {} committed version {version}, expected {}",
                self.library.schema.name, self.version
            )));
        }
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            version,
            "delta commit done"
        );
        drop(self.reader.take());
        // The run's key set (hundreds of MB for 10M keys) is not needed past the commit.
        self.seen = KeySet::default();
        let index = &self.library.index;
        if index.version()? == Some(version - 1) {
            // The index reflects the version this write started from: its own changes bring
            // it up to date, in key order.
            let changes = self.changes.len();
            let applying = std::time::Instant::now();
            self.changes.apply(index)?;
            let applied_ms = applying.elapsed().as_millis() as u64;
            // The stamp's commit is the durable one: it waits for the index's pages to reach
            // the disk.
            index.apply(Some(version), false, std::iter::empty())?;
            tracing::debug!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                changes,
                applied_ms,
                stamped_ms = applying.elapsed().as_millis() as u64 - applied_ms,
                "serving index updated from the write"
            );
        } else {
            // Not expected while the write holds the library; the table is the authority.
            let table = self.library.table().await?;
            self.library.catch_up(&table).await?;
            tracing::debug!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "serving index caught up"
            );
        }
        Ok(CommitOutcome {
            version,
            stats: self.stats,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::POPULATION;

    fn row(pairs: &[(&str, &str)]) -> Vec<Option<String>> {
        let mut values = vec![None; POPULATION.fields.len()];
        for (name, value) in pairs {
            values[POPULATION.position(name).unwrap()] = Some(value.to_string());
        }
        values
    }

    async fn write(
        library: &Library,
        source: &str,
        run: i64,
        authority: Authority,
        values: Vec<Option<String>>,
    ) -> WriteStats {
        let mut writer = library.writer(source, run, authority).await.unwrap();
        writer.upsert(values).unwrap();
        writer.commit("test", run).await.unwrap().stats
    }

    /// Every record of the index as stored.
    fn index_records(library: &Library) -> Vec<(String, Vec<u8>)> {
        library.reader().unwrap().all_encoded()
    }

    /// Asserts that the index the writes kept up to date is the one a replay of the table
    /// builds from scratch, byte for byte.
    async fn assert_the_index_rebuilds_the_same(dir: &Path, library: Library) {
        let kept = index_records(&library);
        assert!(!kept.is_empty());
        drop(library);
        std::fs::remove_file(dir.join("libraries/population/serving.redb")).unwrap();
        let library = Library::open(dir, &POPULATION).await.unwrap();
        assert_eq!(index_records(&library), kept);
        // Rebuilt as a write builds it: a base segment, not every record put into redb.
        let segments = std::fs::read_dir(dir.join("libraries/population"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "seg"))
            .count();
        assert_eq!(segments, 1, "the rebuilt index has its base");
    }

    #[tokio::test]
    async fn one_source_per_field_with_lineage_and_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let library = Library::open(dir.path(), &POPULATION).await.unwrap();
        let key = "11010519491231002X";
        let phone_owner = |f: &str| f == "phone";
        let gaj = Authority::by_field(&POPULATION, |f| !phone_owner(f));
        let wjw = Authority::by_field(&POPULATION, phone_owner);

        // 公安 owns everything but the phone, which 卫健委 owns; 民政 owns nothing.
        let s = write(
            &library,
            "GAJ",
            1,
            gaj.clone(),
            row(&[("id_number", key), ("name", "张三"), ("phone", "13800000001")]),
        )
        .await;
        assert_eq!((s.inserted, s.conflicts), (1, 0));
        let s = write(
            &library,
            "WJW",
            2,
            wjw,
            row(&[("id_number", key), ("name", "张叁"), ("phone", "13800000002")]),
        )
        .await;
        assert_eq!(
            (s.updated, s.conflicts),
            (1, 2),
            "WJW loses the name, GAJ loses the phone"
        );
        let s = write(
            &library,
            "MZJ",
            3,
            Authority::none(&POPULATION),
            row(&[
                ("id_number", key),
                ("phone", "13800000003"),
                ("current_address", "西湖区文三路1号"),
            ]),
        )
        .await;
        assert_eq!(
            (s.updated, s.conflicts),
            (1, 1),
            "MZJ fills the address, loses the phone"
        );
        let s = write(
            &library,
            "MZJ",
            4,
            Authority::none(&POPULATION),
            row(&[("id_number", key), ("current_address", "西湖区文三路2号")]),
        )
        .await;
        assert_eq!((s.updated, s.conflicts), (1, 0), "MZJ may change the value it supplied");
        let s = write(
            &library,
            "GAJ",
            5,
            gaj,
            row(&[("id_number", key), ("name", "张三"), ("phone", "13800000001")]),
        )
        .await;
        assert_eq!(
            (s.unchanged, s.conflicts),
            (1, 1),
            "GAJ's phone loses again; nothing else changes"
        );

        let record = library.get(key).unwrap().unwrap();
        let value = |name: &str| record.values[POPULATION.position(name).unwrap()].as_deref();
        let origin = |name: &str| {
            record
                .lineage
                .field(POPULATION.position(name).unwrap())
                .cloned()
                .unwrap()
        };
        assert_eq!(value("name"), Some("张三"));
        assert_eq!(value("phone"), Some("13800000002"));
        assert_eq!(value("current_address"), Some("西湖区文三路2号"));
        assert_eq!(record.source, "GAJ");
        assert_eq!((origin("name").source.as_str(), origin("name").run), ("GAJ", 1));
        assert_eq!((origin("phone").source.as_str(), origin("phone").version), ("WJW", 2));
        assert_eq!(
            (origin("current_address").source.as_str(), origin("current_address").run),
            ("MZJ", 4)
        );

        let table = library.table().await.unwrap();
        let ctx = datafusion::prelude::SessionContext::new();
        table.update_datafusion_session(&ctx.state()).unwrap();
        ctx.register_table("library", table.table_provider().await.unwrap())
            .unwrap();
        let batches = ctx
            .sql("SELECT _source, name, phone FROM library WHERE _op = 'C' ORDER BY _version, _source")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("| ") && !l.contains("_source"))
            .collect();
        assert_eq!(
            lines,
            [
                "| GAJ     |      | 13800000001 |",
                "| WJW     | 张叁 |             |",
                "| MZJ     |      | 13800000003 |",
                "| GAJ     |      | 13800000001 |",
            ],
            "{text}"
        );
        let mut listed: Vec<(i64, String)> = library
            .conflicts(None, 0, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.version, c.source))
            .collect();
        listed.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let want = [(5, "GAJ"), (3, "MZJ"), (2, "GAJ"), (2, "WJW")].map(|(v, s)| (v, s.to_string()));
        assert_eq!(listed, want);
        assert_eq!(library.conflicts(Some(key), 3, 10).await.unwrap().len(), 1);
        assert!(
            library
                .conflicts(Some("110105194912310037"), 0, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_the_index_rebuilds_the_same(dir.path(), library).await;
    }

    #[tokio::test]
    async fn writes_keep_the_index_as_a_replay_builds_it_without_replaying() {
        use std::sync::atomic::Ordering;
        let dir = tempfile::tempdir().unwrap();
        let library = Library::open(dir.path(), &POPULATION).await.unwrap();
        let replayed = library.replayed.load(Ordering::Relaxed);
        let n = 12_000;
        let person = |i: usize, street: &str| {
            row(&[
                ("id_number", &format!("K{i:07}")),
                ("name", &format!("姓名{i}")),
                (
                    "birth_date",
                    &format!("19{:02}-{:02}-{:02}", i % 100, i % 12 + 1, i % 28 + 1),
                ),
                ("address", &format!("浙江省杭州市{street}{i}号{}", "附".repeat(20))),
            ])
        };
        // Enough rows that the write's index changes spill past INDEX_CHANGES_MEMORY.
        let mut writer = library.writer("GAJ", 1, Authority::all(&POPULATION)).await.unwrap();
        for i in (0..n).map(|i| (i * 7_919) % n) {
            writer.upsert(person(i, "文三路")).unwrap();
        }
        writer.commit("test", 1).await.unwrap();
        // A full snapshot: a third changed, a few reported deleted, the last sixth gone from
        // the source (deleted as unseen).
        let mut writer = library
            .writer("GAJ", 2, Authority::snapshot(&POPULATION))
            .await
            .unwrap();
        for i in 0..n * 5 / 6 {
            if i % 100 == 1 {
                assert!(writer.delete(&format!("K{i:07}")).unwrap());
            } else {
                writer
                    .upsert(person(i, if i % 3 == 0 { "学院路" } else { "文三路" }))
                    .unwrap();
            }
        }
        assert_eq!(writer.delete_unseen(20).unwrap(), (n - n * 5 / 6) as u64);
        let stats = writer.commit("test", 2).await.unwrap().stats;
        assert_eq!(stats.deleted, (n - n * 5 / 6 + n * 5 / 6 / 100) as u64);
        assert_eq!(
            library.replayed.load(Ordering::Relaxed),
            replayed,
            "no version was replayed"
        );
        assert!(library.get("K0000101").unwrap().is_none());
        assert!(library.get(&format!("K{:07}", n - 1)).unwrap().is_none());
        let changed = library.get("K0000003").unwrap().unwrap();
        assert!(
            changed.values[POPULATION.position("address").unwrap()]
                .as_deref()
                .unwrap()
                .contains("学院路")
        );
        assert_eq!(
            changed.values[POPULATION.position("birth_date").unwrap()].as_deref(),
            Some("1903-04-04")
        );
        assert_the_index_rebuilds_the_same(dir.path(), library).await;
    }

    #[tokio::test]
    async fn a_row_the_table_cannot_hold_as_given_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let library = Library::open(dir.path(), &POPULATION).await.unwrap();
        let mut writer = library.writer("GAJ", 1, Authority::all(&POPULATION)).await.unwrap();
        let short = vec![Some("K0000001".to_string())];
        assert!(matches!(
            writer.upsert(short),
            Err(Error::InvalidValue { field: "row", .. })
        ));
        let bad_date = row(&[("id_number", "K0000001"), ("birth_date", "1990/01/02")]);
        assert!(matches!(
            writer.upsert(bad_date),
            Err(Error::InvalidValue {
                field: "birth_date",
                ..
            })
        ));
    }

    #[tokio::test]
    async fn a_commit_is_found_by_its_run() {
        let dir = tempfile::tempdir().unwrap();
        let library = Library::open(dir.path(), &POPULATION).await.unwrap();
        let all = Authority::all(&POPULATION);
        write(
            &library,
            "GAJ",
            41,
            all.clone(),
            row(&[("id_number", "11010519491231002X"), ("name", "张三")]),
        )
        .await;
        write(
            &library,
            "GAJ",
            42,
            all,
            row(&[("id_number", "11010519491231002X"), ("name", "李四")]),
        )
        .await;
        assert_eq!(library.version_committed_by_run(41, 10).await.unwrap(), Some(1));
        assert_eq!(library.version_committed_by_run(42, 10).await.unwrap(), Some(2));
        assert_eq!(library.version_committed_by_run(43, 10).await.unwrap(), None);
    }

    /// A rebuild replays a large version as a base and a small one after it (updates and a
    /// deletion, under a quarter of the index) into redb over that base: the same records.
    #[tokio::test]
    async fn a_rebuild_replays_small_versions_over_the_base() {
        let dir = tempfile::tempdir().unwrap();
        let library = Library::open(dir.path(), &POPULATION).await.unwrap();
        let key = |i: usize| format!("K{i:07}");
        let mut writer = library.writer("GAJ", 1, Authority::all(&POPULATION)).await.unwrap();
        for i in 0..200 {
            writer
                .upsert(row(&[("id_number", &key(i)), ("name", &format!("姓名{i}"))]))
                .unwrap();
        }
        writer.commit("test", 1).await.unwrap();
        let mut writer = library.writer("GAJ", 2, Authority::all(&POPULATION)).await.unwrap();
        writer.upsert(row(&[("id_number", &key(7)), ("name", "改名")])).unwrap();
        assert!(writer.delete(&key(8)).unwrap());
        writer.commit("test", 2).await.unwrap();
        assert!(library.get(&key(8)).unwrap().is_none());
        assert_eq!(
            library.get(&key(7)).unwrap().unwrap().values[1].as_deref(),
            Some("改名")
        );
        assert_eq!(
            library.index.reader().unwrap().changes_since_base().unwrap(),
            2,
            "the small write went to redb"
        );
        assert_the_index_rebuilds_the_same(dir.path(), library).await;
        let library = Library::open(dir.path(), &POPULATION).await.unwrap();
        assert_eq!(
            library.index.reader().unwrap().changes_since_base().unwrap(),
            2,
            "and so did its replay"
        );
        assert!(library.get(&key(8)).unwrap().is_none());
    }

    #[tokio::test]
    async fn the_index_replays_a_version_larger_than_its_changes_memory() {
        let dir = tempfile::tempdir().unwrap();
        let library = Library::open(dir.path(), &POPULATION).await.unwrap();
        let n = 120_000;
        let mut writer = library.writer("GAJ", 1, Authority::all(&POPULATION)).await.unwrap();
        // Keys written out of order, with values wide enough that the write's index changes (and
        // the replay's) spill past INDEX_CHANGES_MEMORY.
        for i in (0..n).map(|i| (i * 7_919) % n) {
            writer
                .upsert(row(&[
                    ("id_number", &format!("K{i:07}")),
                    ("name", &format!("姓名{i}")),
                    ("address", &format!("浙江省杭州市西湖区文三路{i}号{}", "附".repeat(40))),
                ]))
                .unwrap();
        }
        writer.commit("test", 1).await.unwrap();
        let keys = |library: &Library| {
            let mut keys = Vec::new();
            library
                .reader()
                .unwrap()
                .for_each_head(|key, _, _| keys.push(key.to_string()))
                .unwrap();
            keys
        };
        // The index lists keys in key order whatever order they were written in, so this holds
        // every key once; what the test exercises is the replay's changes spilling past their
        // memory and merging.
        let want: Vec<String> = (0..n).map(|i| format!("K{i:07}")).collect();
        assert_eq!(keys(&library), want);
        // Rebuilt from the table alone: the same records.
        assert_the_index_rebuilds_the_same(dir.path(), library).await;
    }

    #[tokio::test]
    async fn a_snapshot_write_clears_what_it_leaves_empty() {
        let dir = tempfile::tempdir().unwrap();
        let library = Library::open(dir.path(), &POPULATION).await.unwrap();
        let key = "11010519491231002X";
        let full = row(&[("id_number", key), ("name", "张三"), ("phone", "13800000001")]);
        let without_phone = row(&[("id_number", key), ("name", "张三")]);
        write(&library, "DSJ", 1, Authority::snapshot(&POPULATION), full.clone()).await;
        let s = write(&library, "DSJ", 2, Authority::all(&POPULATION), without_phone.clone()).await;
        assert_eq!(s.unchanged, 1, "an ordinary write leaves the phone");
        let s = write(&library, "DSJ", 3, Authority::snapshot(&POPULATION), without_phone).await;
        assert_eq!(s.updated, 1);
        let record = library.get(key).unwrap().unwrap();
        assert_eq!(record.values, row(&[("id_number", key), ("name", "张三")]));
        assert!(record.lineage.field(POPULATION.position("phone").unwrap()).is_none());
        assert_the_index_rebuilds_the_same(dir.path(), library).await;
    }
}
