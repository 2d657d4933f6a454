//! The library store: each library is a Delta table holding an append-only log of record
//! versions, plus a [`ServingIndex`] of the current record per key.
//!
//! Why a log and not MERGE: delta-rs MERGE rewrites every file a key touches and is slow and
//! memory-hungry on large tables, so an upsert here appends the changed records (op `I` or `U`)
//! and the index, not the table, answers "what is current". The log is also the change feed
//! and the history: a record as of version N is its last row with `_version <= N`.
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
use chrono::{NaiveDate, Utc};
use deltalake::DeltaTable;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{StructType, Transaction};
use futures::TryStreamExt;
use tokio::sync::{Mutex, MutexGuard};
use url::Url;

use crate::index::{ServingIndex, StoredRecord};
use crate::schema::{FieldKind, LibrarySchema};
use crate::{Error, Result};

const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");

/// One library: its Delta table and its serving index.
pub struct Library {
    schema: &'static LibrarySchema,
    dir: PathBuf,
    url: Url,
    index: ServingIndex,
    write_lock: Mutex<()>,
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
        let index = ServingIndex::open(&dir.join("serving.redb")).map_err(|e| match e {
            Error::Index(msg) if msg.contains("lock") || msg.contains("already open") => Error::Index(format!(
                "{msg} (is another huitong process, such as a running server, using this data dir?)"
            )),
            other => other,
        })?;
        let library = Self {
            schema,
            dir,
            url,
            index,
            write_lock: Mutex::new(()),
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

    /// The Delta table at its latest version, for queries.
    pub async fn table(&self) -> Result<DeltaTable> {
        Ok(DeltaTable::try_from_url(self.url.clone()).await?)
    }

    /// Starts a write on behalf of department `source` in sync run `run`. `authoritative` says
    /// whether `source` owns this library's data (一数一源): its values replace others', while a
    /// non-authoritative source only fills fields that are empty.
    pub async fn writer(&self, source: &str, run: i64, authoritative: bool) -> Result<LibraryWriter<'_>> {
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
        Ok(LibraryWriter {
            library: self,
            _guard: guard,
            _lock_file: lock_file,
            table,
            version,
            source: source.to_string(),
            run,
            authoritative,
            pending: HashMap::new(),
            stats: WriteStats::default(),
        })
    }

    /// Replays the table's versions newer than the index into the index.
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
        let ctx = datafusion::prelude::SessionContext::new();
        table.update_datafusion_session(&ctx.state())?;
        ctx.register_table("library", table.table_provider().await?)?;
        let df = ctx
            .sql(&format!(
                "SELECT * FROM library WHERE _version > {from} ORDER BY _version"
            ))
            .await?;
        let mut stream = df.execute_stream().await?;
        let mut changes: Vec<(String, Option<StoredRecord>)> = Vec::new();
        while let Some(batch) = stream.try_next().await? {
            changes.extend(self.records_from_batch(&batch)?);
        }
        self.index.apply(
            table_version,
            reset,
            changes.iter().map(|(k, r)| (k.as_str(), r.as_ref())),
        )
    }

    /// Reads a batch of library rows back into (key, record) pairs; deletes map to `None`.
    fn records_from_batch(&self, batch: &RecordBatch) -> Result<Vec<(String, Option<StoredRecord>)>> {
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
        let mut out = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let values: Vec<Option<String>> = fields.iter().map(|array| cell_to_string(array, row)).collect();
            let key = values[0].clone().unwrap_or_default();
            let record = (ops.value(row) != "D").then(|| StoredRecord {
                values,
                source: sources.value(row).to_string(),
                version: versions.value(row),
            });
            out.push((key, record));
        }
        Ok(out)
    }
}

fn current_version(table: &DeltaTable) -> i64 {
    table.version().map(|v| v as i64).unwrap_or(-1)
}

fn as_strings(array: &ArrayRef) -> Result<&StringArray> {
    array
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| Error::index("expected a string column"))
}

fn cell_to_string(array: &ArrayRef, row: usize) -> Option<String> {
    if array.is_null(row) {
        return None;
    }
    if let Some(strings) = array.as_any().downcast_ref::<StringArray>() {
        return Some(strings.value(row).to_string());
    }
    if let Some(dates) = array.as_any().downcast_ref::<Date32Array>() {
        let date = EPOCH + chrono::Duration::days(i64::from(dates.value(row)));
        return Some(date.format("%Y-%m-%d").to_string());
    }
    None
}

/// A write in progress: rows are merged against the current records, and everything is
/// committed together by [`LibraryWriter::commit`] or dropped.
pub struct LibraryWriter<'a> {
    library: &'a Library,
    _guard: MutexGuard<'a, ()>,
    _lock_file: File,
    table: DeltaTable,
    version: i64,
    source: String,
    run: i64,
    authoritative: bool,
    /// key → (merged record, whether the key existed before this write).
    pending: HashMap<String, (StoredRecord, bool)>,
    stats: WriteStats,
}

impl LibraryWriter<'_> {
    /// The last watermark committed under `app_id` (a connector), if any.
    pub async fn watermark(&self, app_id: &str) -> Result<Option<i64>> {
        let log_store = self.table.log_store();
        Ok(self
            .table
            .snapshot()?
            .transaction_version(log_store.as_ref(), app_id)
            .await?)
    }

    /// Merges one normalized row (values in schema order, key first, dates as `YYYY-MM-DD`).
    pub fn upsert(&mut self, values: Vec<Option<String>>) -> Result<()> {
        let Some(key) = values.first().cloned().flatten() else {
            return Err(Error::InvalidValue {
                field: "key",
                message: format!("a {} row has no {}", self.library.schema.name, self.library.schema.key),
            });
        };
        let current = match self.pending.get(&key) {
            Some((record, existed)) => Some((record.clone(), *existed)),
            None => self.library.index.get(&key)?.map(|r| (r, true)),
        };
        let Some((current, existed)) = current else {
            self.stats.inserted += 1;
            let record = StoredRecord {
                values,
                source: self.source.clone(),
                version: self.version,
            };
            self.pending.insert(key, (record, false));
            return Ok(());
        };
        let mut merged = current.clone();
        for (slot, incoming) in merged.values.iter_mut().zip(values) {
            if incoming.is_some() && (self.authoritative || slot.is_none()) {
                *slot = incoming;
            }
        }
        if self.authoritative {
            merged.source = self.source.clone();
        }
        if merged.values == current.values && merged.source == current.source {
            self.stats.unchanged += 1;
            return Ok(());
        }
        self.stats.updated += 1;
        merged.version = self.version;
        self.pending.insert(key, (merged, existed));
        Ok(())
    }

    /// Commits the merged rows and the watermark of `app_id` in one Delta commit, then updates
    /// the serving index. On error nothing is visible: the table and index stay as they were.
    pub async fn commit(self, app_id: &str, watermark: i64) -> Result<CommitOutcome> {
        let batch = self.build_batch()?;
        let properties = CommitProperties::default().with_application_transaction(Transaction::new(app_id, watermark));
        let table = self.table.write(vec![batch]).with_commit_properties(properties).await?;
        let version = current_version(&table);
        if version != self.version {
            return Err(Error::index(format!(
                "library {} committed version {version}, expected {}",
                self.library.schema.name, self.version
            )));
        }
        self.library.index.apply(
            version,
            false,
            self.pending.iter().map(|(k, (r, _))| (k.as_str(), Some(r))),
        )?;
        Ok(CommitOutcome {
            version,
            stats: self.stats,
        })
    }

    fn build_batch(&self) -> Result<RecordBatch> {
        let schema = self.library.schema;
        let arrow_schema = schema.arrow_schema();
        // Sorted by key so files are clustered and the write is deterministic.
        let mut rows: Vec<(&String, &(StoredRecord, bool))> = self.pending.iter().collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(arrow_schema.fields().len());
        for (i, field) in schema.fields.iter().enumerate() {
            let cells = rows.iter().map(|(_, (r, _))| r.values[i].as_deref());
            columns.push(match field.kind {
                FieldKind::Date => {
                    let mut builder = Date32Builder::with_capacity(rows.len());
                    for cell in cells {
                        let days = cell
                            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                            .map(|d| (d - EPOCH).num_days() as i32);
                        builder.append_option(days);
                    }
                    Arc::new(builder.finish())
                }
                _ => {
                    let mut builder = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
                    for cell in cells {
                        builder.append_option(cell);
                    }
                    Arc::new(builder.finish())
                }
            });
        }
        let n = rows.len();
        columns.push(Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(_, (_, existed))| if *existed { "U" } else { "I" }),
        )));
        columns.push(Arc::new(Int64Array::from(vec![self.version; n])));
        columns.push(Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(_, (r, _))| r.source.as_str()),
        )));
        columns.push(Arc::new(Int64Array::from(vec![self.run; n])));
        let now = Utc::now().timestamp_micros();
        columns.push(Arc::new(
            TimestampMicrosecondArray::from(vec![now; n]).with_timezone("UTC"),
        ));
        Ok(RecordBatch::try_new(arrow_schema, columns)?)
    }
}
