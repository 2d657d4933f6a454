//! History of a library (按版本追溯): a record's every version, a record or the whole library as
//! of a version or a time, and the net change of each key between two versions.
//!
//! All of it is read from the library's log (see [`crate::store`]): the state of a key as of
//! version N is its last `I`/`U`/`D` row with `_version <= N`. Other row kinds a library may
//! hold (conflict rows, …) are not states of a record and are ignored. Queries run on
//! DataFusion over the Delta table with a bounded memory pool: sorts spill to disk beyond it,
//! and nothing collects a whole table — a diff is paged by key, the library as of a version is
//! a stream.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, TimestampMicrosecondArray};
use chrono::{DateTime, Utc};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use deltalake::DeltaTable;
use futures::{StreamExt, TryStreamExt};

use crate::index::StoredRecord;
use crate::store::{as_strings, cell_to_string, plain_utf8};
use crate::{Error, Library, Result};

/// Memory one history query may hold before its sorts spill to disk. A hash join of a diff
/// holds the changed keys (one key string each) and cannot spill; it fails past this bound
/// instead of growing without one.
const QUERY_MEMORY: usize = 512 << 20;

/// What one version of a record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordOp {
    /// The key appeared (新增).
    Insert,
    /// The record changed (变更); the version holds the whole merged record.
    Update,
    /// The key was deleted (删除).
    Delete,
    /// Values that lost a one-source-per-field conflict (一数一源冲突); only in
    /// [`Library::conflicts`], never in a record's history.
    Conflict,
}

impl RecordOp {
    fn from_code(code: &str) -> Result<Self> {
        match code {
            "I" => Ok(RecordOp::Insert),
            "U" => Ok(RecordOp::Update),
            "D" => Ok(RecordOp::Delete),
            "C" => Ok(RecordOp::Conflict),
            other => Err(Error::index(format!("unexpected _op {other:?} in a record's history"))),
        }
    }

    /// `insert`, `update` or `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordOp::Insert => "insert",
            RecordOp::Update => "update",
            RecordOp::Delete => "delete",
            RecordOp::Conflict => "conflict",
        }
    }
}

/// One version of a record, as its library row holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordVersion {
    /// The library version that wrote it.
    pub version: i64,
    /// What it did.
    pub op: RecordOp,
    /// The record's values after it, in schema order (dates as `YYYY-MM-DD`); for a delete,
    /// the key only.
    pub values: Vec<Option<String>>,
    /// The department whose data the record is (for a delete: the one that reported it).
    pub source: String,
    /// The sync run that wrote it.
    pub run: i64,
    /// When the row was written.
    pub ingested_at: DateTime<Utc>,
}

impl RecordVersion {
    /// The record as this version left it; `None` after a delete.
    pub fn record(&self) -> Option<StoredRecord> {
        (self.op != RecordOp::Delete).then(|| StoredRecord {
            values: self.values.clone(),
            source: self.source.clone(),
            version: self.version,
            lineage: Default::default(),
        })
    }
}

/// The net change of one key between two versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Absent at the first version, present at the second.
    Insert {
        /// The record at the second version.
        after: StoredRecord,
    },
    /// Present at both with different values.
    Update {
        /// The record at the first version.
        before: StoredRecord,
        /// The record at the second version.
        after: StoredRecord,
    },
    /// Present at the first version, absent at the second.
    Delete {
        /// The record at the first version.
        before: StoredRecord,
    },
}

/// A key and its net change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    /// The key.
    pub key: String,
    /// The library version of the key's last change up to the later version (for a delete,
    /// the deletion's).
    pub version: i64,
    /// What changed.
    pub change: Change,
}

/// A page of a diff, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffPage {
    /// The changes.
    pub changes: Vec<KeyChange>,
    /// The key to continue after (the page's last) when the page is full; `None` at the end.
    pub next_after: Option<String>,
}

/// The current records of a library as of a version, in key order, a batch at a time.
pub struct RecordsAsOf {
    stream: SendableRecordBatchStream,
    fields: usize,
}

impl RecordsAsOf {
    /// The next batch of (key, record) pairs; empty at the end.
    pub async fn next_chunk(&mut self) -> Result<Vec<(String, StoredRecord)>> {
        while let Some(batch) = self.stream.try_next().await? {
            if batch.num_rows() == 0 {
                continue;
            }
            let batch = plain_utf8(&batch)?;
            let values = columns(&batch, 0..self.fields);
            let versions = int64(batch.column(self.fields))?;
            let sources = as_strings(batch.column(self.fields + 1))?;
            return Ok((0..batch.num_rows())
                .map(|row| {
                    let values: Vec<Option<String>> = values.iter().map(|a| cell_to_string(a, row)).collect();
                    let key = values[0].clone().unwrap_or_default();
                    let record = StoredRecord {
                        values,
                        source: sources.value(row).to_string(),
                        version: versions.value(row),
                        lineage: Default::default(),
                    };
                    (key, record)
                })
                .collect());
        }
        Ok(Vec::new())
    }
}

impl Library {
    /// The values that lost one-source-per-field conflicts (op `C` rows), newest first, then
    /// by key: `limit` of them from `offset`, for one key or all. Each carries the key and the
    /// losing fields only, under the department that supplied them; the record as of the same
    /// version holds the values that won.
    pub async fn conflicts(&self, key: Option<&str>, offset: usize, limit: usize) -> Result<Vec<RecordVersion>> {
        let table = self.table().await?;
        let ctx = self.history_session(&table).await?;
        let key_column = ident(self.schema().key);
        let only = key
            .map(|k| format!(" AND {key_column} = {}", literal(k)))
            .unwrap_or_default();
        let df = ctx
            .sql(&format!(
                "SELECT {} FROM library WHERE _op = 'C'{only} ORDER BY _version DESC, {key_column} \
                 LIMIT {limit} OFFSET {offset}",
                self.row_columns()
            ))
            .await?;
        self.versions(df).await
    }

    /// Every version of the record under `key` (normalized by the caller), oldest first;
    /// empty when the library never held it.
    pub async fn record_history(&self, key: &str) -> Result<Vec<RecordVersion>> {
        let table = self.table().await?;
        let ctx = self.history_session(&table).await?;
        let sql = format!(
            "SELECT {rows} FROM library WHERE {key_col} = {key} AND {states} ORDER BY _version",
            rows = self.row_columns(),
            key_col = ident(self.schema().key),
            key = literal(key),
            states = STATES,
        );
        self.versions(ctx.sql(&sql).await?).await
    }

    /// The record under `key` as it was at library version `version` (`None`: absent then).
    /// A version the library has not reached is an [`Error::InvalidValue`] of `as_of_version`.
    pub async fn record_as_of(&self, key: &str, version: i64) -> Result<Option<StoredRecord>> {
        let table = self.table().await?;
        check_version("as_of_version", version, table_version(&table))?;
        // The index says when the current record last changed: when that is at or before
        // `version` (and the index has seen `version`), the record then is the current one.
        if self.version()? >= version
            && let Some(current) = self.get(key)?
            && current.version <= version
        {
            // Past records carry no lineage (the log's rows are read without it), so neither
            // does this one: the answer is the same whichever way it is found.
            return Ok(Some(StoredRecord {
                lineage: Default::default(),
                ..current
            }));
        }
        let ctx = self.history_session(&table).await?;
        let sql = format!(
            "SELECT {rows} FROM library WHERE {key_col} = {key} AND {states} AND _version <= {version} \
             ORDER BY _version DESC LIMIT 1",
            rows = self.row_columns(),
            key_col = ident(self.schema().key),
            key = literal(key),
            states = STATES,
        );
        let last = self.versions(ctx.sql(&sql).await?).await?;
        Ok(last.first().and_then(RecordVersion::record))
    }

    /// The library version current at `time`: the newest commit at or before it, found by a
    /// binary search over the commits' timestamps (which a single writer per library makes
    /// ascending). A time before the library's first commit is an [`Error::InvalidValue`] of
    /// `as_of`.
    pub async fn version_at(&self, time: DateTime<Utc>) -> Result<i64> {
        let table = self.table().await?;
        let wanted = time.timestamp_millis();
        let stamp = |t: i64| {
            DateTime::<Utc>::from_timestamp_millis(t)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_else(|| t.to_string())
        };
        let first = commit_timestamp(&table, 0).await?;
        if wanted < first {
            return Err(Error::InvalidValue {
                field: "as_of",
                message: format!(
                    "as_of: {} is before the library's first commit ({})",
                    stamp(wanted),
                    stamp(first)
                ),
            });
        }
        // Invariant: the commit of `low` is at or before `wanted`; those after `high` are not.
        let (mut low, mut high) = (0, table_version(&table));
        while low < high {
            let middle = low + (high - low + 1) / 2;
            if commit_timestamp(&table, middle).await? <= wanted {
                low = middle;
            } else {
                high = middle - 1;
            }
        }
        Ok(low)
    }

    /// The net change of each key between versions `from` and `to` (`from <= to`), in key
    /// order: `limit` keys after `after` (from the first when `None`). A key that changed and
    /// changed back, or appeared and went again, is not reported. Versions the library has not
    /// reached are [`Error::InvalidValue`]s of `from_version` / `to_version`.
    pub async fn diff(&self, from: i64, to: i64, after: Option<&str>, limit: usize) -> Result<DiffPage> {
        let table = self.table().await?;
        let latest = table_version(&table);
        check_version("from_version", from, latest)?;
        check_version("to_version", to, latest)?;
        if from > to {
            return Err(Error::InvalidValue {
                field: "from_version",
                message: format!("from_version {from} is after to_version {to}"),
            });
        }
        if from == to || limit == 0 {
            return Ok(DiffPage {
                changes: Vec::new(),
                next_after: None,
            });
        }
        let ctx = self.history_session(&table).await?;
        let df = ctx.sql(&self.diff_sql(from, to, after, limit)).await?;
        let schema = self.schema();
        let n = schema.fields.len();
        let mut changes = Vec::new();
        let mut stream = df.execute_stream().await?;
        while let Some(batch) = stream.try_next().await? {
            let batch = plain_utf8(&batch)?;
            // Columns: the fields, _op, _version, _source (after); the fields but the key,
            // b_op, b_version, b_source (before).
            let after_values = columns(&batch, 0..n);
            let after_op = as_strings(batch.column(n))?;
            let after_version = int64(batch.column(n + 1))?;
            let after_source = as_strings(batch.column(n + 2))?;
            let before_values = columns(&batch, n + 3..2 * n + 2);
            let before_op = as_strings(batch.column(2 * n + 2))?;
            let before_version = int64(batch.column(2 * n + 3))?;
            let before_source = as_strings(batch.column(2 * n + 4))?;
            for row in 0..batch.num_rows() {
                let values: Vec<Option<String>> = after_values.iter().map(|a| cell_to_string(a, row)).collect();
                let key = values[0].clone().unwrap_or_default();
                let after = (after_op.value(row) != "D").then(|| StoredRecord {
                    values,
                    source: after_source.value(row).to_string(),
                    version: after_version.value(row),
                    lineage: Default::default(),
                });
                let before = (before_op.is_valid(row) && before_op.value(row) != "D").then(|| StoredRecord {
                    values: std::iter::once(Some(key.clone()))
                        .chain(before_values.iter().map(|a| cell_to_string(a, row)))
                        .collect(),
                    source: before_source.value(row).to_string(),
                    version: before_version.value(row),
                    lineage: Default::default(),
                });
                let change = match (before, after) {
                    (None, Some(after)) => Change::Insert { after },
                    (Some(before), Some(after)) => Change::Update { before, after },
                    (Some(before), None) => Change::Delete { before },
                    (None, None) => continue,
                };
                changes.push(KeyChange {
                    key,
                    version: after_version.value(row),
                    change,
                });
            }
        }
        let next_after = (changes.len() == limit)
            .then(|| changes.last().map(|c| c.key.clone()))
            .flatten();
        Ok(DiffPage { changes, next_after })
    }

    /// The library as of version `version`: one row per key present then — its fields, then
    /// `_version` (of its last change) and `_source` — in key order. Lazy: nothing runs until
    /// the frame is executed. A version the library has not reached is an
    /// [`Error::InvalidValue`] of `as_of_version`.
    pub async fn as_of(&self, version: i64) -> Result<DataFrame> {
        let table = self.table().await?;
        check_version("as_of_version", version, table_version(&table))?;
        let ctx = self.history_session(&table).await?;
        let fields = self.field_columns();
        let key = ident(self.schema().key);
        let sql = format!(
            "SELECT {fields}, _version, _source FROM ( \
               SELECT {fields}, _op, _version, _source, \
                 ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY _version DESC) AS __rn \
               FROM library WHERE {STATES} AND _version <= {version} \
             ) WHERE __rn = 1 AND _op <> 'D' ORDER BY {key}"
        );
        Ok(ctx.sql(&sql).await?)
    }

    /// [`Library::as_of`] as a stream of (key, record) chunks.
    pub async fn records_as_of(&self, version: i64) -> Result<RecordsAsOf> {
        let stream = self.as_of(version).await?.execute_stream().await?;
        Ok(RecordsAsOf {
            stream,
            fields: self.schema().fields.len(),
        })
    }

    /// A DataFusion session over the table with a bounded memory pool (sorts spill to disk).
    async fn history_session(&self, table: &DeltaTable) -> Result<SessionContext> {
        self.session_within(table, SessionConfig::new(), QUERY_MEMORY).await
    }

    /// A DataFusion session with `config` over the table (as `library`) whose queries hold at
    /// most `memory` bytes; sorts beyond it spill to the OS temp directory.
    pub(crate) async fn session_within(
        &self,
        table: &DeltaTable,
        config: SessionConfig,
        memory: usize,
    ) -> Result<SessionContext> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(memory)))
            .build_arc()?;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        table.update_datafusion_session(&ctx.state())?;
        ctx.register_table("library", table.table_provider().await?)?;
        Ok(ctx)
    }

    fn field_columns(&self) -> String {
        let fields: Vec<String> = self.schema().fields.iter().map(|f| ident(f.name)).collect();
        fields.join(", ")
    }

    /// The fields, then the system columns a record version is read from (by position).
    fn row_columns(&self) -> String {
        format!("{}, _op, _version, _source, _run, _ingested_at", self.field_columns())
    }

    /// Reads the rows of [`Library::row_columns`] into record versions.
    async fn versions(&self, df: DataFrame) -> Result<Vec<RecordVersion>> {
        let n = self.schema().fields.len();
        let mut out = Vec::new();
        let mut stream = df.execute_stream().await?;
        while let Some(batch) = stream.next().await {
            let batch = plain_utf8(&batch?)?;
            let values = columns(&batch, 0..n);
            let ops = as_strings(batch.column(n))?;
            let versions = int64(batch.column(n + 1))?;
            let sources = as_strings(batch.column(n + 2))?;
            let runs = int64(batch.column(n + 3))?;
            let ingested = batch
                .column(n + 4)
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .ok_or_else(|| Error::index("_ingested_at is not a microsecond timestamp"))?;
            for row in 0..batch.num_rows() {
                out.push(RecordVersion {
                    version: versions.value(row),
                    op: RecordOp::from_code(ops.value(row))?,
                    values: values.iter().map(|a| cell_to_string(a, row)).collect(),
                    source: sources.value(row).to_string(),
                    run: runs.value(row),
                    ingested_at: DateTime::from_timestamp_micros(ingested.value(row))
                        .ok_or_else(|| Error::index("_ingested_at out of range"))?,
                });
            }
        }
        Ok(out)
    }

    /// The diff query: for each key with a row in `(from, to]`, its last row at or before `to`
    /// (after) beside its last row at or before `from` (before, if any), one sort of the
    /// changed keys' rows by (key, version descending) serving every window; then the keys
    /// whose state did not change are dropped, and the page is cut in key order.
    fn diff_sql(&self, from: i64, to: i64, after: Option<&str>, limit: usize) -> String {
        let schema = self.schema();
        let key = ident(schema.key);
        let fields = self.field_columns();
        let window = format!("PARTITION BY {key} ORDER BY _version DESC");
        let rest: Vec<&str> = schema.fields[1..].iter().map(|f| f.name).collect();
        let leads: Vec<String> = rest
            .iter()
            .enumerate()
            .map(|(i, name)| format!("LEAD({}) OVER ({window}) AS __b{i}", ident(name)))
            .collect();
        let befores: Vec<String> = (0..rest.len()).map(|i| format!("__b{i}")).collect();
        let differs: Vec<String> = rest
            .iter()
            .enumerate()
            .map(|(i, name)| format!("({} IS DISTINCT FROM __b{i})", ident(name)))
            .collect();
        let differs = if differs.is_empty() {
            "FALSE".to_string()
        } else {
            differs.join(" OR ")
        };
        let after = after
            .map(|a| format!(" AND {key} > {}", literal(a)))
            .unwrap_or_default();
        format!(
            "WITH changed AS ( \
               SELECT DISTINCT {key} AS __k FROM library \
               WHERE {STATES} AND _version > {from} AND _version <= {to}{after} \
             ), \
             ranked AS ( \
               SELECT {fields}, _op, _version, _source, \
                 ROW_NUMBER() OVER ({window}) AS __rn, \
                 SUM(CASE WHEN _version <= {from} THEN 1 ELSE 0 END) \
                   OVER ({window} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS __older \
               FROM library \
               WHERE {STATES} AND _version <= {to}{after} AND {key} IN (SELECT __k FROM changed) \
             ), \
             sides AS ( \
               SELECT * FROM ranked WHERE __rn = 1 OR (_version <= {from} AND __older = 1) \
             ), \
             paired AS ( \
               SELECT {fields}, _op, _version, _source, __rn, {leads}, \
                 LEAD(_op) OVER ({window}) AS __bop, \
                 LEAD(_version) OVER ({window}) AS __bversion, \
                 LEAD(_source) OVER ({window}) AS __bsource \
               FROM sides \
             ) \
             SELECT {fields}, _op, _version, _source, {befores}, __bop, __bversion, __bsource \
             FROM paired \
             WHERE __rn = 1 \
               AND NOT ((__bop IS NULL OR __bop = 'D') AND _op = 'D') \
               AND NOT (__bop IS NOT NULL AND __bop <> 'D' AND _op <> 'D' AND NOT ({differs})) \
             ORDER BY {key} LIMIT {limit}",
            leads = leads.join(", "),
            befores = befores.join(", "),
        )
    }
}

/// Rows that are states of a record.
const STATES: &str = "_op IN ('I', 'U', 'D')";

fn check_version(field: &'static str, version: i64, latest: i64) -> Result<()> {
    if version < 0 {
        return Err(Error::InvalidValue {
            field,
            message: format!("{field}: a library version, 0 or more"),
        });
    }
    if version > latest {
        return Err(Error::InvalidValue {
            field,
            message: format!("{field}: the library is at version {latest}; version {version} does not exist yet"),
        });
    }
    Ok(())
}

/// When version `version` was committed (milliseconds since the epoch), from its commit info.
async fn commit_timestamp(table: &DeltaTable, version: i64) -> Result<i64> {
    let missing = || Error::InvalidValue {
        field: "as_of",
        message: format!("as_of: the library's log no longer holds the commit of version {version}"),
    };
    let bytes = table
        .log_store()
        .read_commit_entry(version as u64)
        .await?
        .ok_or_else(missing)?;
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let action: serde_json::Value = serde_json::from_slice(line)
            .map_err(|e| Error::index(format!("commit {version} of the library's log: {e}")))?;
        if let Some(info) = action.get("commitInfo") {
            let at = info
                .get("inCommitTimestamp")
                .or_else(|| info.get("timestamp"))
                .and_then(serde_json::Value::as_i64);
            return at.ok_or_else(|| Error::index(format!("commit {version} has no timestamp")));
        }
    }
    Err(Error::index(format!("commit {version} has no commit info")))
}

fn table_version(table: &DeltaTable) -> i64 {
    table.version().map(|v| v as i64).unwrap_or(-1)
}

/// A quoted SQL identifier.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal.
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn columns(batch: &RecordBatch, range: std::ops::Range<usize>) -> Vec<ArrayRef> {
    range.map(|i| batch.column(i).clone()).collect()
}

fn int64(array: &ArrayRef) -> Result<&Int64Array> {
    array
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| Error::index("expected an Int64 column"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::POPULATION;

    fn values(key: &str, name: &str, address: &str) -> Vec<Option<String>> {
        vec![
            Some(key.into()),
            Some(name.into()),
            Some("女".into()),
            Some("1990-01-02".into()),
            None,
            Some("330106".into()),
            Some(address.into()),
        ]
        .into_iter()
        .chain(std::iter::repeat(None))
        .take(POPULATION.fields.len())
        .collect()
    }

    fn stored(values: Vec<Option<String>>, version: i64) -> StoredRecord {
        StoredRecord {
            values,
            source: "GAJ".into(),
            version,
            lineage: Default::default(),
        }
    }

    fn key_only(key: &str) -> Vec<Option<String>> {
        let mut v = vec![None; POPULATION.fields.len()];
        v[0] = Some(key.into());
        v
    }

    /// Four versions (and the empty version 0):
    /// 1: a, b, c inserted; 2: a moves, b deleted, d inserted;
    /// 3: a moves back, b inserted again with another name, c renamed; 4: d deleted.
    async fn library() -> (tempfile::TempDir, Library, [DateTime<Utc>; 2]) {
        let dir = tempfile::tempdir().unwrap();
        let library = Library::open(dir.path(), &POPULATION).await.unwrap();
        let before_first = Utc::now();
        let mut w = library
            .writer("GAJ", 1, crate::Authority::all(library.schema()))
            .await
            .unwrap();
        w.upsert(values("a", "甲", "文三路1号")).unwrap();
        w.upsert(values("b", "乙", "文三路2号")).unwrap();
        w.upsert(values("c", "丙", "文三路3号")).unwrap();
        assert_eq!(w.commit("test", 1).await.unwrap().version, 1);
        let after_first = Utc::now();
        let mut w = library
            .writer("GAJ", 2, crate::Authority::all(library.schema()))
            .await
            .unwrap();
        w.upsert(values("a", "甲", "延安路9号")).unwrap();
        assert!(w.delete("b").unwrap());
        w.upsert(values("d", "丁", "文三路4号")).unwrap();
        assert_eq!(w.commit("test", 2).await.unwrap().version, 2);
        let mut w = library
            .writer("GAJ", 3, crate::Authority::all(library.schema()))
            .await
            .unwrap();
        w.upsert(values("a", "甲", "文三路1号")).unwrap();
        w.upsert(values("b", "乙乙", "文三路2号")).unwrap();
        w.upsert(values("c", "丙丙", "文三路3号")).unwrap();
        assert_eq!(w.commit("test", 3).await.unwrap().version, 3);
        let mut w = library
            .writer("GAJ", 4, crate::Authority::all(library.schema()))
            .await
            .unwrap();
        assert!(w.delete("d").unwrap());
        assert_eq!(w.commit("test", 4).await.unwrap().version, 4);
        (dir, library, [before_first, after_first])
    }

    #[tokio::test]
    async fn history_as_of_and_diff_follow_the_log() {
        let (_dir, library, [before_first, after_first]) = library().await;

        // History, oldest first.
        let a = library.record_history("a").await.unwrap();
        let summary: Vec<(i64, RecordOp, Option<String>)> =
            a.iter().map(|v| (v.version, v.op, v.values[6].clone())).collect();
        assert_eq!(
            summary,
            [
                (1, RecordOp::Insert, Some("文三路1号".into())),
                (2, RecordOp::Update, Some("延安路9号".into())),
                (3, RecordOp::Update, Some("文三路1号".into())),
            ]
        );
        assert_eq!(a[0].values, values("a", "甲", "文三路1号"));
        assert!(a.iter().all(|v| v.source == "GAJ"));
        assert_eq!(a.iter().map(|v| v.run).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(a.windows(2).all(|w| w[0].ingested_at <= w[1].ingested_at));
        let b = library.record_history("b").await.unwrap();
        assert_eq!(
            b.iter().map(|v| (v.version, v.op)).collect::<Vec<_>>(),
            [(1, RecordOp::Insert), (2, RecordOp::Delete), (3, RecordOp::Insert)]
        );
        assert_eq!(b[1].values, key_only("b"));
        assert_eq!(b[1].record(), None);
        assert!(library.record_history("zz").await.unwrap().is_empty());

        // A record as of a version.
        let as_of = |key: &'static str, v: i64| {
            let library = &library;
            async move { library.record_as_of(key, v).await.unwrap() }
        };
        assert_eq!(as_of("a", 0).await, None);
        assert_eq!(as_of("a", 1).await, Some(stored(values("a", "甲", "文三路1号"), 1)));
        assert_eq!(as_of("a", 2).await, Some(stored(values("a", "甲", "延安路9号"), 2)));
        assert_eq!(as_of("a", 4).await, Some(stored(values("a", "甲", "文三路1号"), 3)));
        assert_eq!(as_of("b", 2).await, None);
        assert_eq!(as_of("b", 3).await, Some(stored(values("b", "乙乙", "文三路2号"), 3)));
        assert_eq!(as_of("d", 3).await, Some(stored(values("d", "丁", "文三路4号"), 2)));
        assert_eq!(as_of("d", 4).await, None);
        for bad in [5, -1] {
            match library.record_as_of("a", bad).await {
                Err(Error::InvalidValue { field, .. }) => assert_eq!(field, "as_of_version"),
                other => panic!("version {bad}: {other:?}"),
            }
        }

        // A version as of a time.
        assert_eq!(library.version_at(before_first).await.unwrap(), 0);
        assert_eq!(library.version_at(after_first).await.unwrap(), 1);
        assert_eq!(library.version_at(Utc::now()).await.unwrap(), 4);
        let long_ago = DateTime::parse_from_rfc3339("2000-01-01T00:00:00Z").unwrap().to_utc();
        match library.version_at(long_ago).await {
            Err(Error::InvalidValue { field, message }) => {
                assert_eq!(field, "as_of");
                assert!(message.contains("first commit"), "{message}");
            }
            other => panic!("{other:?}"),
        }

        // The whole library as of a version, in key order.
        for (version, expected) in [
            (0, vec![]),
            (
                1,
                vec![
                    stored(values("a", "甲", "文三路1号"), 1),
                    stored(values("b", "乙", "文三路2号"), 1),
                    stored(values("c", "丙", "文三路3号"), 1),
                ],
            ),
            (
                2,
                vec![
                    stored(values("a", "甲", "延安路9号"), 2),
                    stored(values("c", "丙", "文三路3号"), 1),
                    stored(values("d", "丁", "文三路4号"), 2),
                ],
            ),
            (
                4,
                vec![
                    stored(values("a", "甲", "文三路1号"), 3),
                    stored(values("b", "乙乙", "文三路2号"), 3),
                    stored(values("c", "丙丙", "文三路3号"), 3),
                ],
            ),
        ] {
            let mut records = library.records_as_of(version).await.unwrap();
            let mut got = Vec::new();
            loop {
                let chunk = records.next_chunk().await.unwrap();
                if chunk.is_empty() {
                    break;
                }
                for (key, record) in chunk {
                    assert_eq!(Some(&key), record.values[0].as_ref());
                    got.push(record);
                }
            }
            assert_eq!(got, expected, "as of version {version}");
        }
    }

    fn summary(page: &DiffPage) -> Vec<(String, &'static str)> {
        page.changes
            .iter()
            .map(|c| {
                let kind = match c.change {
                    Change::Insert { .. } => "insert",
                    Change::Update { .. } => "update",
                    Change::Delete { .. } => "delete",
                };
                (c.key.clone(), kind)
            })
            .collect()
    }

    #[tokio::test]
    async fn a_diff_reports_net_changes_in_key_order() {
        let (_dir, library, _) = library().await;
        let page = library.diff(1, 3, None, 100).await.unwrap();
        // a moved and moved back: no net change.
        assert_eq!(
            summary(&page),
            [("b".into(), "update"), ("c".into(), "update"), ("d".into(), "insert")]
        );
        assert_eq!(page.next_after, None);
        assert_eq!(
            page.changes[0].change,
            Change::Update {
                before: stored(values("b", "乙", "文三路2号"), 1),
                after: stored(values("b", "乙乙", "文三路2号"), 3),
            }
        );
        assert_eq!(
            page.changes[2].change,
            Change::Insert {
                after: stored(values("d", "丁", "文三路4号"), 2)
            }
        );
        // d came and went.
        assert_eq!(
            summary(&library.diff(1, 4, None, 100).await.unwrap()),
            [("b".into(), "update"), ("c".into(), "update")]
        );
        let all = library.diff(2, 4, None, 100).await.unwrap();
        assert_eq!(
            summary(&all),
            [
                ("a".into(), "update"),
                ("b".into(), "insert"),
                ("c".into(), "update"),
                ("d".into(), "delete")
            ]
        );
        assert_eq!(
            all.changes[3].change,
            Change::Delete {
                before: stored(values("d", "丁", "文三路4号"), 2)
            }
        );
        assert_eq!(
            summary(&library.diff(0, 1, None, 100).await.unwrap()),
            [("a".into(), "insert"), ("b".into(), "insert"), ("c".into(), "insert")]
        );
        assert!(library.diff(3, 3, None, 100).await.unwrap().changes.is_empty());

        // Pages of two, following the cursor.
        let first = library.diff(2, 4, None, 2).await.unwrap();
        assert_eq!(summary(&first), [("a".into(), "update"), ("b".into(), "insert")]);
        assert_eq!(first.next_after.as_deref(), Some("b"));
        let second = library.diff(2, 4, Some("b"), 2).await.unwrap();
        assert_eq!(summary(&second), [("c".into(), "update"), ("d".into(), "delete")]);
        let third = library.diff(2, 4, Some("d"), 2).await.unwrap();
        assert!(third.changes.is_empty() && third.next_after.is_none());

        for (from, to, field) in [(0, 5, "to_version"), (-1, 2, "from_version"), (3, 2, "from_version")] {
            match library.diff(from, to, None, 10).await {
                Err(Error::InvalidValue { field: f, .. }) => assert_eq!(f, field, "{from}..{to}"),
                other => panic!("{from}..{to}: {other:?}"),
            }
        }
    }
}
