//! The sync engine: one run of one connector into its library.

use arrow::array::{Array, RecordBatch, StringArray};
use catalog::{Catalog, Connector, QuarantinedRow, RunCounts, RunStatus, SyncRun};
use exchange_core::{FieldKind, Library};

use crate::{ConnectorConfig, Error, Result};

/// Receives progress of a run (the CLI shows a bar; the server logs).
pub trait Progress: Send + Sync {
    /// `n` more source rows were processed.
    fn rows(&self, n: u64);
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl Progress for NoProgress {
    fn rows(&self, _n: u64) {}
}

/// Runs `connector` once into `library`: reads every source row, normalizes and validates it,
/// merges it into the library and commits the run with its watermark, or on any failure
/// commits nothing. The run and its quarantined rows are recorded in the catalog.
#[tracing::instrument(skip_all, fields(connector = %connector.name, resource = %connector.resource_code))]
pub async fn run_connector(
    catalog: &Catalog,
    library: &Library,
    connector: &Connector,
    progress: &dyn Progress,
) -> Result<SyncRun> {
    let config = ConnectorConfig::from_json(&connector.config)?;
    config.validate(library.schema())?;
    let resource = catalog.resource_by_code(&connector.resource_code).await?;
    let authoritative = resource.provider_id == connector.department_id;
    config.source.healthcheck().await?;

    let run_id = catalog.start_run(connector.id).await?;
    let mut counts = RunCounts::default();
    let mut quarantined = Vec::new();
    let outcome = async {
        let mut writer = library
            .writer(&connector.department_code, run_id, authoritative)
            .await?;
        let mut stream = config.source.read(&crate::ReadRequest::default()).await?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let mapped = MappedBatch::new(&batch, &config, library)?;
            for row in 0..batch.num_rows() {
                counts.read += 1;
                match mapped.normalize(row) {
                    Ok(values) => writer.upsert(values)?,
                    Err(rejection) => quarantined.push(mapped.quarantine(row, counts.read, rejection)),
                }
            }
            progress.rows(batch.num_rows() as u64);
        }
        writer
            .commit(&format!("huitong-connector-{}", connector.id), run_id)
            .await
            .map_err(Error::from)
    }
    .await;

    counts.rejected = quarantined.len() as i64;
    match outcome {
        Ok(commit) => {
            counts.inserted = commit.stats.inserted as i64;
            counts.updated = commit.stats.updated as i64;
            counts.unchanged = commit.stats.unchanged as i64;
            tracing::info!(
                run = run_id,
                version = commit.version,
                read = counts.read,
                rejected = counts.rejected,
                "sync run committed"
            );
            Ok(catalog
                .finish_run(
                    run_id,
                    RunStatus::Succeeded,
                    counts,
                    Some(commit.version),
                    None,
                    &quarantined,
                )
                .await?)
        }
        Err(e) => {
            tracing::warn!(run = run_id, error = %e, "sync run failed; nothing committed");
            catalog
                .finish_run(run_id, RunStatus::Failed, counts, None, Some(&e.to_string()), &[])
                .await?;
            Err(e)
        }
    }
}

/// Why a row was rejected.
struct Rejection {
    field: Option<String>,
    reason: String,
}

/// A source batch viewed through the mapping: for each library field, its source column.
struct MappedBatch<'a> {
    batch: &'a RecordBatch,
    library: &'a Library,
    columns: Vec<Option<&'a StringArray>>,
    position: Option<&'a StringArray>,
}

impl<'a> MappedBatch<'a> {
    fn new(batch: &'a RecordBatch, config: &ConnectorConfig, library: &'a Library) -> Result<Self> {
        let text_column = |name: &str| -> Result<&'a StringArray> {
            let array = batch
                .column_by_name(name)
                .ok_or_else(|| Error::config(&format!("mapping.{name}"), format!("the source has no column {name}")))?;
            array
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| Error::config(&format!("mapping.{name}"), "the source column is not text"))
        };
        let columns = library
            .schema()
            .fields
            .iter()
            .map(|f| config.mapping.get(f.name).map(|c| text_column(c)).transpose())
            .collect::<Result<_>>()?;
        let position = config.position_column.as_deref().map(text_column).transpose()?;
        Ok(Self {
            batch,
            library,
            columns,
            position,
        })
    }

    /// The row's library values, or why it cannot enter the library.
    fn normalize(&self, row: usize) -> Result<Vec<Option<String>>, Rejection> {
        let fields = self.library.schema().fields;
        let mut values = Vec::with_capacity(fields.len());
        for (field, column) in fields.iter().zip(&self.columns) {
            let raw = column.filter(|c| !c.is_null(row)).map(|c| c.value(row)).unwrap_or("");
            let value = field.normalize(raw).map_err(|reason| Rejection {
                field: Some(field.name.to_string()),
                reason: format!("{} ({}): {reason}", field.label_zh, field.name),
            })?;
            if value.is_none() && field.required {
                return Err(Rejection {
                    field: Some(field.name.to_string()),
                    reason: format!("{} ({}) is required", field.label_zh, field.name),
                });
            }
            values.push(value);
        }
        derive_from_id_number(fields, &mut values);
        Ok(values)
    }

    fn quarantine(&self, row: usize, row_number: i64, rejection: Rejection) -> QuarantinedRow {
        let schema = self.batch.schema();
        let mut raw = serde_json::Map::new();
        for (i, field) in schema.fields().iter().enumerate() {
            let column = self.batch.column(i);
            let value = column
                .as_any()
                .downcast_ref::<StringArray>()
                .filter(|c| !c.is_null(row))
                .map(|c| serde_json::Value::String(c.value(row).to_string()))
                .unwrap_or(serde_json::Value::Null);
            raw.insert(field.name().clone(), value);
        }
        let position = self
            .position
            .filter(|c| !c.is_null(row))
            .map(|c| c.value(row).to_string())
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
fn derive_from_id_number(fields: &[exchange_core::LibraryField], values: &mut [Option<String>]) {
    let Some(id) = fields
        .iter()
        .position(|f| f.kind == FieldKind::IdNumber)
        .and_then(|i| values[i].as_deref())
        .and_then(|s| exchange_core::IdNumber::parse(s).ok())
    else {
        return;
    };
    for (field, value) in fields.iter().zip(values.iter_mut()) {
        if value.is_none() {
            match field.kind {
                FieldKind::Date if field.name == "birth_date" => {
                    *value = Some(id.birth_date().format("%Y-%m-%d").to_string());
                }
                FieldKind::Gender => *value = Some(id.gender().to_string()),
                _ => {}
            }
        }
    }
}
