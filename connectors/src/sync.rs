//! The sync engine: one run of one connector into its library.
//!
//! A run reads its source as a stream of batches, maps and normalizes each row, merges it into
//! the library writer (which streams it to Parquet) and finally commits the rows and the
//! connector's watermark in one Delta commit. Mapping and normalizing a batch (pure work on its
//! rows) runs on a blocking thread while the batch before it is merged, so the two share the
//! cores with the source reader and the Parquet encoder. Until that commit nothing is visible; a run that
//! fails, or a process killed at any point, leaves the library and the watermark as they were,
//! so the next run reads the same rows again: nothing lost, nothing twice.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, RecordBatch, StringArray, StringBuilder};
use catalog::{Catalog, Connector, QuarantinedRow, RunCounts, RunStatus, SyncRun};
use exchange_core::{Authority, FieldKind, Library, LibrarySchema, LibraryWriter, Upsert};

use crate::batch::{POSITION_COLUMN, ROW_ERROR_COLUMN};
use crate::mapping::FieldMapping;
use crate::{ConnectorConfig, Error, ReadRequest, Result, Since, SyncMode};

/// A column a change-feed source sets to `D` on rows that report a deletion.
pub const OP_COLUMN: &str = "_huitong_op";

/// Quarantined rows are written to the catalog in chunks of this many as a run goes.
const QUARANTINE_CHUNK: usize = 500;
/// How many recent library commits are searched to settle an interrupted run.
const SETTLE_DEPTH: usize = 50;

/// Receives progress of a run (the CLI shows a bar; the server logs).
pub trait Progress: Send + Sync {
    /// `n` more source rows were processed.
    fn rows(&self, n: u64);
    /// The source became unreachable; the run starts over after `wait`.
    fn retrying(&self, _attempt: u32, _wait: Duration, _error: &Error) {}
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl Progress for NoProgress {
    fn rows(&self, _n: u64) {}
}

/// The Delta application-transaction id under which a connector's watermark is committed.
pub fn watermark_app_id(connector_id: i64) -> String {
    format!("huitong-connector-{connector_id}")
}

/// Runs `connector` once into `library`, recording the run (started by `trigger`: `manual`,
/// `schedule` or `cli`) in the catalog.
pub async fn run_connector(
    catalog: &Catalog,
    library: &Library,
    connector: &Connector,
    trigger: &str,
    progress: &dyn Progress,
) -> Result<SyncRun> {
    let run_id = catalog.start_run(connector.id, trigger).await?;
    execute_run(catalog, library, connector, run_id, progress).await
}

/// Carries out run `run_id` (already recorded as started) of `connector`: retries from the
/// start while the source is unreachable, then commits or fails. Either way the run's record
/// in the catalog is finished.
#[tracing::instrument(skip_all, fields(connector = %connector.name, run = run_id))]
pub async fn execute_run(
    catalog: &Catalog,
    library: &Library,
    connector: &Connector,
    run_id: i64,
    progress: &dyn Progress,
) -> Result<SyncRun> {
    let mut attempts = 0i64;
    let outcome = async {
        let config = ConnectorConfig::from_json(&connector.config)?;
        config.validate(library.schema())?;
        let resource = catalog.resource_by_code(&connector.resource_code).await?;
        // 一数一源: the catalog names the authoritative department of a field; a field it names
        // none for belongs to the provider of the connector's resource.
        let claims = catalog.field_authorities(library.schema().name).await?;
        let provider = resource.provider_id == connector.department_id;
        let authority = Authority::by_field(library.schema(), |field| {
            claims
                .iter()
                .find(|c| c.field == field)
                .map_or(provider, |c| c.department_id == connector.department_id)
        });
        let mut wait = Duration::from_millis(config.retry_backoff_ms);
        loop {
            attempts += 1;
            let mut run = Run {
                catalog,
                library,
                connector,
                config: &config,
                run_id,
                counts: RunCounts::default(),
                quarantine: Vec::new(),
            };
            match run.attempt(authority.clone(), progress).await {
                Ok(version) => break Ok((run.counts, version)),
                Err(e @ Error::Unreachable(_)) if attempts <= i64::from(config.retries) => {
                    tracing::warn!(error = %e, attempt = attempts, "source unreachable; retrying from the start");
                    catalog.discard_quarantine(run_id).await?;
                    progress.retrying(attempts as u32, wait, &e);
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(300));
                }
                Err(e) => break Err(e),
            }
        }
    }
    .await;
    match outcome {
        Ok((counts, version)) => {
            tracing::info!(
                version,
                read = counts.read,
                rejected = counts.rejected,
                "sync run committed"
            );
            Ok(catalog
                .finish_run(run_id, RunStatus::Succeeded, counts, attempts, Some(version), None)
                .await?)
        }
        Err(e) => {
            tracing::warn!(error = %e, "sync run failed; nothing committed");
            catalog.discard_quarantine(run_id).await?;
            let message = match &e {
                Error::Unreachable(_) if attempts > 1 => format!("{e} (gave up after {attempts} attempts)"),
                _ => e.to_string(),
            };
            catalog
                .finish_run(
                    run_id,
                    RunStatus::Failed,
                    RunCounts::default(),
                    attempts,
                    None,
                    Some(&message),
                )
                .await?;
            Err(e)
        }
    }
}

/// One attempt of a run.
struct Run<'a> {
    catalog: &'a Catalog,
    library: &'a Library,
    connector: &'a Connector,
    config: &'a ConnectorConfig,
    run_id: i64,
    counts: RunCounts,
    quarantine: Vec<QuarantinedRow>,
}

impl Run<'_> {
    /// Reads, merges and commits; returns the library version committed.
    async fn attempt(&mut self, authority: Authority, progress: &dyn Progress) -> Result<i64> {
        self.config.source.healthcheck().await?;
        let mut writer = self
            .library
            .writer(&self.connector.department_code, self.run_id, authority)
            .await?;
        // Holding the writer, no other run of this library is under way anywhere: runs still
        // marked running were interrupted.
        self.settle_interrupted().await?;
        let app_id = watermark_app_id(self.connector.id);
        let watermark = writer.watermark(&app_id).await?;
        let since = match (self.config.mode, &self.config.cursor, watermark) {
            (SyncMode::Incremental, Some(cursor), Some(watermark)) => Some(Since {
                column: cursor.column.clone(),
                kind: cursor.kind,
                watermark,
            }),
            _ => None,
        };
        let request = ReadRequest {
            since: since.clone(),
            columns: self.config.source_columns(),
        };
        let mut stream = self.config.source.read(&request).await?;
        let mut high_water = watermark;
        let (config, schema) = (Arc::new(self.config.clone()), self.library.schema());
        let after = since.as_ref().map(|s| s.watermark);
        // The batch being planned while the one before it is merged.
        let mut planning: Option<(RecordBatch, tokio::task::JoinHandle<Result<PlannedBatch>>)> = None;
        loop {
            let next = match stream.next().await {
                Some(batch) => Some(batch?),
                None => None,
            };
            let started = next.map(|batch| {
                let (config, planned) = (config.clone(), batch.clone());
                let plan = tokio::task::spawn_blocking(move || {
                    Ok(MappedBatch::new(&planned, &config, schema)?.plan(&config, after))
                });
                (batch, plan)
            });
            if let Some((batch, plan)) = std::mem::replace(&mut planning, started) {
                // A panic while planning goes on here, as it would have inline.
                let planned = plan
                    .await
                    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
                let mapped = MappedBatch::new(&batch, self.config, schema)?;
                let PlannedBatch { rows, values: columns } = planned;
                // The values of the row being merged, when it is upserted, borrowed from the
                // planned columns.
                let mut values = Vec::with_capacity(columns.len());
                let mut upserted = 0;
                for (row, planned) in rows.into_iter().enumerate() {
                    self.counts.read += 1;
                    values.clear();
                    if matches!(planned.plan, Plan::Upsert) {
                        values.extend(columns.iter().map(|c| c.is_valid(upserted).then(|| c.value(upserted))));
                        upserted += 1;
                    }
                    self.row(&mapped, row, planned, &values, &mut high_water, &mut writer)?;
                }
                writer.flush_if_full().await?;
                if self.quarantine.len() >= QUARANTINE_CHUNK {
                    self.flush_quarantine().await?;
                }
                progress.rows(batch.num_rows() as u64);
            }
            if planning.is_none() {
                break;
            }
        }
        tracing::debug!(read = self.counts.read, "source read and merged");
        if self.config.mode == SyncMode::Full {
            writer.delete_unseen(self.config.max_delete_percent)?;
        }
        self.flush_quarantine().await?;
        let stats = writer.stats();
        self.counts.inserted = stats.inserted as i64;
        self.counts.updated = stats.updated as i64;
        self.counts.unchanged += stats.unchanged as i64;
        self.counts.deleted = stats.deleted as i64;
        // A full run with a cursor also carries the watermark forward, so a connector loaded in
        // full can continue incrementally.
        let new_watermark = high_water.or(watermark).unwrap_or(0);
        let commit = writer.commit(&app_id, new_watermark).await?;
        Ok(commit.version)
    }

    /// One source row, as planned: quarantined, skipped (before the watermark), deleted or
    /// merged (with `values`, its library values).
    fn row(
        &mut self,
        mapped: &MappedBatch<'_>,
        row: usize,
        planned: PlannedRow,
        values: &[Option<&str>],
        high_water: &mut Option<i64>,
        writer: &mut LibraryWriter<'_>,
    ) -> Result<()> {
        if let Some(value) = planned.cursor {
            *high_water = Some(high_water.map_or(value, |h| h.max(value)));
        }
        match planned.plan {
            Plan::Reject(rejection) => self.reject(mapped, row, rejection),
            Plan::Unchanged => self.counts.unchanged += 1,
            Plan::Delete(Ok(key)) => {
                writer.delete(&key)?;
            }
            Plan::Delete(Err(rejection)) => self.reject(mapped, row, rejection),
            Plan::Upsert => {
                if writer.upsert(values)? == Upsert::Duplicate {
                    // Rare: the key is worked out again rather than kept for every row.
                    let key = mapped.normalize_key(row).ok();
                    let key_field = &self.library.schema().fields[0];
                    let rejection = Rejection {
                        field: Some(key_field.name.to_string()),
                        reason: format!(
                            "{} ({}) {} {} in the source; the first row was taken",
                            key_field.label_zh,
                            key_field.name,
                            key.as_deref().unwrap_or_default(),
                            catalog::DUPLICATE_REASON_MARK
                        ),
                    };
                    self.reject(mapped, row, rejection);
                }
            }
        }
        Ok(())
    }

    fn reject(&mut self, mapped: &MappedBatch<'_>, row: usize, rejection: Rejection) {
        self.counts.rejected += 1;
        self.quarantine
            .push(mapped.quarantine(row, self.counts.read, rejection));
    }

    async fn flush_quarantine(&mut self) -> Result<()> {
        self.catalog
            .add_quarantined(self.run_id, self.connector.id, &self.quarantine)
            .await?;
        self.quarantine.clear();
        Ok(())
    }

    async fn settle_interrupted(&self) -> Result<()> {
        for stale in self.catalog.running_runs(self.connector.id, self.run_id).await? {
            let committed = self.library.version_committed_by_run(stale.id, SETTLE_DEPTH).await?;
            tracing::warn!(
                run = stale.id,
                ?committed,
                "settling a run interrupted by the end of its process"
            );
            self.catalog.settle_interrupted_run(stale.id, committed).await?;
        }
        Ok(())
    }
}

/// What a source row comes to before it meets the library: worked out from the row alone, on
/// a blocking thread ([`MappedBatch::plan`]).
struct PlannedRow {
    /// The row's cursor value, when it has one at or past the watermark.
    cursor: Option<i64>,
    plan: Plan,
}

enum Plan {
    /// Quarantined, with why.
    Reject(Rejection),
    /// Before the watermark: counted unchanged.
    Unchanged,
    /// A deletion reported by a change feed: the key, or why it is not one.
    Delete(std::result::Result<String, Rejection>),
    /// Merged: its library values are the next row of [`PlannedBatch::values`].
    Upsert,
}

/// A batch as planned: each row's plan, and the library values of the rows to merge, one
/// column per library field, in row order. Values are appended to the columns straight from
/// the source's arrays, not held as a `String` each.
struct PlannedBatch {
    rows: Vec<PlannedRow>,
    values: Vec<StringArray>,
}

/// Why a row was rejected.
struct Rejection {
    field: Option<String>,
    reason: String,
}

/// A source batch viewed through the mapping: for each library field, its source column.
struct MappedBatch<'a> {
    batch: &'a RecordBatch,
    schema: &'static LibrarySchema,
    columns: Vec<Option<(&'a FieldMapping, &'a StringArray)>>,
    position: Option<&'a StringArray>,
    source_position: Option<&'a StringArray>,
    row_error: Option<&'a StringArray>,
    cursor: Option<&'a StringArray>,
    op: Option<&'a StringArray>,
}

impl<'a> MappedBatch<'a> {
    fn new(batch: &'a RecordBatch, config: &'a ConnectorConfig, schema: &'static LibrarySchema) -> Result<Self> {
        let text_column = |name: &str, field: &str| -> Result<&'a StringArray> {
            let array = batch
                .column_by_name(name)
                .ok_or_else(|| Error::config(field, format!("the source has no column {name}")))?;
            array
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| Error::config(field, format!("the source column {name} is not text")))
        };
        let optional = |name: &str| batch.column_by_name(name).and_then(|a| a.as_any().downcast_ref());
        let columns = schema
            .fields
            .iter()
            .map(|f| {
                config
                    .mapping
                    .get(f.name)
                    .map(|m| Ok((m, text_column(m.column(), &format!("mapping.{}", f.name))?)))
                    .transpose()
            })
            .collect::<Result<_>>()?;
        let position = config
            .position_column
            .as_deref()
            .map(|c| text_column(c, "position_column"))
            .transpose()?;
        let cursor = config
            .cursor
            .as_ref()
            .map(|c| text_column(&c.column, "cursor.column"))
            .transpose()?;
        Ok(Self {
            batch,
            schema,
            columns,
            position,
            source_position: optional(POSITION_COLUMN),
            row_error: optional(ROW_ERROR_COLUMN),
            cursor,
            op: optional(OP_COLUMN),
        })
    }

    fn text(&self, column: Option<&'a StringArray>, row: usize) -> Option<&'a str> {
        column.filter(|c| !c.is_null(row)).map(|c| c.value(row))
    }

    /// Field `i`'s value in `row`: mapped, transformed and normalized; borrowed from the
    /// source's array when that is already how the library writes it.
    fn field(&self, i: usize, row: usize) -> Result<Option<Cow<'a, str>>, Rejection> {
        let field = &self.schema.fields[i];
        let value = match &self.columns[i] {
            None => None,
            Some((mapping, array)) => {
                let raw = (!array.is_null(row)).then(|| array.value(row));
                let rejection = |reason: String| Rejection {
                    field: Some(field.name.to_string()),
                    reason: format!(
                        "{} ({}, column {}): {reason}",
                        field.label_zh,
                        field.name,
                        mapping.column()
                    ),
                };
                match mapping.apply(raw).map_err(rejection)? {
                    None => None,
                    Some(Cow::Borrowed(mapped)) => field.normalize(mapped).map_err(rejection)?,
                    Some(Cow::Owned(mapped)) => field
                        .normalize(&mapped)
                        .map_err(rejection)?
                        .map(|v| Cow::Owned(v.into_owned())),
                }
            }
        };
        if value.is_none() && field.required {
            return Err(Rejection {
                field: Some(field.name.to_string()),
                reason: format!("{} ({}) is required", field.label_zh, field.name),
            });
        }
        Ok(value)
    }

    /// The row's key (the first field, or the parts of a compound key), normalized.
    fn normalize_key(&self, row: usize) -> Result<String, Rejection> {
        let schema = self.schema;
        if schema.key_parts.is_empty() {
            return Ok(self.field(0, row)?.map(Cow::into_owned).unwrap_or_default());
        }
        let mut values: Vec<Option<Cow<'a, str>>> = vec![None; schema.fields.len()];
        for part in schema.key_parts {
            if let Some(i) = schema.position(part) {
                values[i] = self.field(i, row)?;
            }
        }
        self.compose_key(&mut values)?;
        Ok(values[0].take().map(Cow::into_owned).unwrap_or_default())
    }

    fn compose_key(&self, values: &mut [Option<Cow<'a, str>>]) -> Result<(), Rejection> {
        let schema = self.schema;
        schema.compose_key(values).map_err(|reason| Rejection {
            field: Some(schema.key.to_string()),
            reason,
        })
    }

    /// The row's library values into `values` (cleared first), or why it cannot enter the
    /// library.
    fn normalize(&self, row: usize, values: &mut Vec<Option<Cow<'a, str>>>) -> Result<(), Rejection> {
        let schema = self.schema;
        let fields = schema.fields;
        values.clear();
        for i in 0..fields.len() {
            // A compound key is derived from its parts below, never read from the source.
            let derived = i == 0 && !schema.key_parts.is_empty();
            values.push(if derived { None } else { self.field(i, row)? });
        }
        self.compose_key(values)?;
        derive_from_id_number(fields, values);
        Ok(())
    }

    /// Plans every row of the batch (see [`PlannedRow`]); rows whose cursor is before the
    /// watermark `after` are unchanged.
    fn plan(&self, config: &ConnectorConfig, after: Option<i64>) -> PlannedBatch {
        let rows = self.batch.num_rows();
        let width = self.schema.fields.len();
        let mut columns: Vec<StringBuilder> = (0..width)
            .map(|_| StringBuilder::with_capacity(rows, rows * 16))
            .collect();
        let mut values = Vec::with_capacity(width);
        let rows = (0..rows)
            .map(|row| {
                let planned = self.plan_row(config, after, row, &mut values);
                if matches!(planned.plan, Plan::Upsert) {
                    for (column, value) in columns.iter_mut().zip(values.drain(..)) {
                        column.append_option(value);
                    }
                }
                planned
            })
            .collect();
        PlannedBatch {
            rows,
            values: columns.iter_mut().map(StringBuilder::finish).collect(),
        }
    }

    /// One row's plan; when it is [`Plan::Upsert`], its library values are in `values`.
    fn plan_row(
        &self,
        config: &ConnectorConfig,
        after: Option<i64>,
        row: usize,
        values: &mut Vec<Option<Cow<'a, str>>>,
    ) -> PlannedRow {
        let rejected = |rejection| PlannedRow {
            cursor: None,
            plan: Plan::Reject(rejection),
        };
        if let Some(reason) = self.text(self.row_error, row) {
            return rejected(Rejection {
                field: None,
                reason: reason.to_string(),
            });
        }
        let mut cursor = None;
        if let Some(column) = &config.cursor {
            let Some(value) = self.text(self.cursor, row).and_then(|t| column.kind.parse(t)) else {
                let reason = format!(
                    "the cursor column {} is empty or not a {:?}",
                    column.column, column.kind
                );
                return rejected(Rejection { field: None, reason });
            };
            if after.is_some_and(|watermark| value < watermark) {
                return PlannedRow {
                    cursor: None,
                    plan: Plan::Unchanged,
                };
            }
            cursor = Some(value);
        }
        let plan = if self.text(self.op, row) == Some("D") {
            // A deletion carries its key only.
            Plan::Delete(self.normalize_key(row))
        } else {
            match self.normalize(row, values) {
                Ok(()) => Plan::Upsert,
                Err(rejection) => Plan::Reject(rejection),
            }
        };
        PlannedRow { cursor, plan }
    }

    fn quarantine(&self, row: usize, row_number: i64, rejection: Rejection) -> QuarantinedRow {
        let schema = self.batch.schema();
        let mut raw = serde_json::Map::new();
        for (i, field) in schema.fields().iter().enumerate() {
            if field.name().starts_with("_huitong_") {
                continue;
            }
            let value = self
                .text(self.batch.column(i).as_any().downcast_ref::<StringArray>(), row)
                .map(|v| serde_json::Value::String(v.to_string()))
                .unwrap_or(serde_json::Value::Null);
            raw.insert(field.name().clone(), value);
        }
        let position = self
            .text(self.position, row)
            .or_else(|| self.text(self.source_position, row))
            .map(str::to_string)
            .unwrap_or_else(|| format!("row {row_number}"));
        QuarantinedRow {
            position,
            field: rejection.field,
            reason: rejection.reason,
            raw: raw.into(),
        }
    }
}

/// Birth date and gender are encoded in the ID number: fill them when the source left them out.
fn derive_from_id_number(fields: &[exchange_core::LibraryField], values: &mut [Option<Cow<'_, str>>]) {
    // Parsed when first needed: a source that maps both fields has nothing parsed again.
    let mut id: Option<Option<exchange_core::IdNumber>> = None;
    for (i, field) in fields.iter().enumerate() {
        if values[i].is_some() {
            continue;
        }
        let derive: fn(&exchange_core::IdNumber) -> Cow<'static, str> = match field.kind {
            FieldKind::Date if field.name == "birth_date" => {
                |id: &exchange_core::IdNumber| Cow::Owned(exchange_core::normalize::format_date(id.birth_date()))
            }
            FieldKind::Gender => |id: &exchange_core::IdNumber| Cow::Borrowed(id.gender()),
            _ => continue,
        };
        let parsed = id.get_or_insert_with(|| {
            fields
                .iter()
                .position(|f| f.kind == FieldKind::IdNumber)
                .and_then(|at| values[at].as_deref())
                .and_then(|s| exchange_core::IdNumber::parse(s).ok())
        });
        let Some(parsed) = parsed else { return };
        values[i] = Some(derive(parsed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Birth date and gender come from the ID number where the source left them empty, and
    /// only there; without a valid ID number nothing is filled.
    #[test]
    fn birth_date_and_gender_are_derived_where_empty() {
        let fields = exchange_core::schema::POPULATION.fields;
        let at = |name: &str| exchange_core::schema::POPULATION.position(name).unwrap();
        let row = |id: &'static str, gender: Option<&'static str>| {
            let mut values: Vec<Option<Cow<'static, str>>> = vec![None; fields.len()];
            values[at("id_number")] = Some(Cow::Borrowed(id));
            values[at("gender")] = gender.map(Cow::Borrowed);
            values
        };
        let mut values = row("11010519491231002X", None);
        derive_from_id_number(fields, &mut values);
        assert_eq!(values[at("birth_date")].as_deref(), Some("1949-12-31"));
        assert_eq!(values[at("gender")].as_deref(), Some("女"));
        assert_eq!(values[at("phone")], None);

        let mut values = row("11010519491231002X", Some("男"));
        derive_from_id_number(fields, &mut values);
        assert_eq!(values[at("gender")].as_deref(), Some("男"), "a value given is kept");
        assert_eq!(values[at("birth_date")].as_deref(), Some("1949-12-31"));

        let mut values = row("110105194912310021", None);
        derive_from_id_number(fields, &mut values);
        assert_eq!(
            (values[at("birth_date")].clone(), values[at("gender")].clone()),
            (None, None)
        );
    }
}
