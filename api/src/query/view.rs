//! A caller's view of one library: the items policy allows, masked where not plain, and only the
//! rows the grant's row filter lets through — built chunk by chunk from the serving index, so
//! no reader of a view ever holds more than a chunk of records.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray, StringBuilder};
use arrow::datatypes::SchemaRef;
use exchange_core::{FieldKind, LibrarySchema, StoredRecord};
use policy::Access;

use super::filter::{FilterError, RowFilter, text_schema};

/// Records read from the index per chunk.
pub const CHUNK: usize = 4096;

/// One column of a view.
#[derive(Debug, Clone)]
pub struct ViewColumn {
    /// The item name.
    pub name: &'static str,
    /// Its position in the library's records.
    pub position: usize,
    /// Shown unmasked.
    pub plain: bool,
    /// How it is masked.
    pub kind: FieldKind,
}

/// What a caller sees of one library.
#[derive(Debug)]
pub struct View {
    /// The library's schema.
    pub library: &'static LibrarySchema,
    /// The visible items, in resource order.
    pub columns: Vec<ViewColumn>,
    /// The Arrow schema of the view (text columns named by item).
    pub arrow: SchemaRef,
    /// The grant's row filter, over the plain stored values.
    pub row_filter: Option<Arc<RowFilter>>,
}

impl View {
    /// The view `access` allows of a library; fails when the grant's row filter does not compile.
    pub fn new(access: &Access, library: &'static LibrarySchema) -> Result<Self, FilterError> {
        let columns: Vec<ViewColumn> = access
            .items
            .iter()
            .filter_map(|item| {
                let position = library.position(&item.name)?;
                let field = &library.fields[position];
                Some(ViewColumn {
                    name: field.name,
                    position,
                    plain: item.plain,
                    kind: field.kind,
                })
            })
            .collect();
        let names: Vec<&str> = columns.iter().map(|c| c.name).collect();
        let row_filter = access
            .row_filter
            .as_deref()
            .map(|sql| RowFilter::cached(library, sql))
            .transpose()?;
        Ok(Self {
            library,
            arrow: text_schema(&names),
            columns,
            row_filter,
        })
    }

    /// The visible item names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.columns.iter().map(|c| c.name).collect()
    }

    /// Whether the grant's row filter lets `record` through.
    pub fn admits(&self, record: &StoredRecord) -> bool {
        self.row_filter.as_ref().is_none_or(|f| f.matches(&record.values))
    }

    /// The records as the caller sees them: visible items only, masked where not plain.
    pub fn batch<'r>(&self, records: impl Iterator<Item = &'r StoredRecord> + Clone) -> RecordBatch {
        let rows = records.clone().count();
        let columns: Vec<ArrayRef> = self
            .columns
            .iter()
            .map(|c| {
                // Plain values are copied straight into the column, without a string apiece.
                let bytes = records
                    .clone()
                    .map(|r| r.values[c.position].as_deref().map_or(0, str::len))
                    .sum();
                let mut column = StringBuilder::with_capacity(rows, bytes);
                let mut masked = String::new();
                for record in records.clone() {
                    match record.values[c.position].as_deref() {
                        None => column.append_null(),
                        Some(v) if c.plain => column.append_value(v),
                        Some(v) => {
                            masked.clear();
                            policy::mask::mask_into(c.kind, v, &mut masked);
                            column.append_value(&masked);
                        }
                    }
                }
                Arc::new(column.finish()) as ArrayRef
            })
            .collect();
        RecordBatch::try_new(self.arrow.clone(), columns).expect("columns match the view schema")
    }

    /// Of `records`, those the grant's row filter and then `filter` (over the view's values)
    /// let through, as the caller sees them.
    pub fn select(
        &self,
        records: &[(String, StoredRecord)],
        filter: Option<&RowFilter>,
    ) -> Result<(Vec<usize>, RecordBatch), FilterError> {
        let admitted: Vec<usize> = match &self.row_filter {
            // The grant's filter runs on plain values: its failure message could quote one, so
            // it is logged, never returned, and the chunk is withheld (fail closed).
            Some(row_filter) => match row_filter.evaluate(&raw_batch(self.library, records.iter().map(|(_, r)| r))) {
                Ok(mask) => (0..records.len()).filter(|i| mask.value(*i)).collect(),
                Err(e) => {
                    tracing::error!(filter = row_filter.sql(), error = %e, "a grant's row filter failed on the data");
                    Vec::new()
                }
            },
            None => (0..records.len()).collect(),
        };
        let batch = self.batch(admitted.iter().map(|i| &records[*i].1));
        let Some(filter) = filter else {
            return Ok((admitted, batch));
        };
        let mask: BooleanArray = filter.evaluate(&batch)?;
        let kept: Vec<usize> = admitted
            .iter()
            .enumerate()
            .filter(|(j, _)| mask.value(*j))
            .map(|(_, i)| *i)
            .collect();
        let batch =
            arrow::compute::filter_record_batch(&batch, &mask).map_err(|e| FilterError::Evaluation(e.to_string()))?;
        Ok((kept, batch))
    }
}

impl View {
    /// Of `raw` (stored, plain values over every library item, as [`raw_batch`],
    /// [`exchange_core::index::Encoded::batch`] and export snapshots make them), the rows the
    /// grant's row filter and then `filter` (over the view's values) let through, as the caller sees them: what [`View::select`] returns,
    /// with plain columns shared rather than copied.
    pub fn select_batch(&self, raw: &RecordBatch, filter: Option<&RowFilter>) -> Result<RecordBatch, FilterError> {
        let evaluation = |e: arrow::error::ArrowError| FilterError::Evaluation(e.to_string());
        let raw = match &self.row_filter {
            // As in `select`: the failure is logged, never returned, and the rows withheld.
            Some(row_filter) => match row_filter.evaluate(raw) {
                Ok(mask) => arrow::compute::filter_record_batch(raw, &mask).map_err(evaluation)?,
                Err(e) => {
                    tracing::error!(filter = row_filter.sql(), error = %e, "a grant's row filter failed on the data");
                    raw.slice(0, 0)
                }
            },
            None => raw.clone(),
        };
        let columns = self
            .columns
            .iter()
            .map(|c| {
                let column = raw.column(c.position);
                if c.plain {
                    return Ok(column.clone());
                }
                let values = column.as_any().downcast_ref::<StringArray>().ok_or_else(|| {
                    FilterError::Evaluation(format!("a stored column of type {}", column.data_type()))
                })?;
                let mut masked = StringBuilder::with_capacity(values.len(), values.values().len());
                let mut value = String::new();
                for v in values {
                    match v {
                        None => masked.append_null(),
                        Some(v) => {
                            value.clear();
                            policy::mask::mask_into(c.kind, v, &mut value);
                            masked.append_value(&value);
                        }
                    }
                }
                Ok(Arc::new(masked.finish()) as ArrayRef)
            })
            .collect::<Result<Vec<_>, FilterError>>()?;
        let batch = RecordBatch::try_new(self.arrow.clone(), columns).map_err(evaluation)?;
        match filter {
            None => Ok(batch),
            Some(filter) => arrow::compute::filter_record_batch(&batch, &filter.evaluate(&batch)?).map_err(evaluation),
        }
    }
}

/// The stored, plain values of `records` as a batch over every library item.
pub fn raw_batch<'r>(library: &LibrarySchema, records: impl Iterator<Item = &'r StoredRecord> + Clone) -> RecordBatch {
    let columns: Vec<ArrayRef> = (0..library.fields.len())
        .map(|i| Arc::new(records.clone().map(|r| r.values[i].as_deref()).collect::<StringArray>()) as ArrayRef)
        .collect();
    RecordBatch::try_new(library.text_schema(), columns).expect("columns match the library")
}
