//! Building the text batches every source produces, and the bounded channel they travel in.
//!
//! Sources hand the engine every column as nullable UTF-8 text: departmental data is parsed by
//! the mapping, not by the source, so a value a source cannot type still reaches quarantine
//! with its original text.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use tokio::sync::mpsc;

use crate::{BatchStream, Result};

/// A column a source may add: the row's position in the source (a line number, a sheet row,
/// a page and index) for quarantine reports, when the connector names no key column for it.
pub const POSITION_COLUMN: &str = "_huitong_position";

/// A column a source may add: why the source could not read this row properly (a CSV line with
/// the wrong number of fields, a JSON record that is not an object). The engine sends such
/// rows to quarantine with this reason.
pub const ROW_ERROR_COLUMN: &str = "_huitong_error";

/// Batches in flight between a source and the engine: memory stays at a few batches whatever
/// the size of the source.
pub const CHANNEL_BATCHES: usize = 2;

/// The sending half a source task writes batches into.
pub type BatchSender = mpsc::Sender<Result<RecordBatch>>;

/// A bounded channel: the source task gets the sender, the engine the stream.
pub fn channel() -> (BatchSender, BatchStream) {
    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    (tx, BatchStream::new(rx))
}

/// Accumulates rows of text cells into record batches of a fixed schema.
pub struct TextBatchBuilder {
    schema: SchemaRef,
    columns: Vec<StringBuilder>,
    len: usize,
    capacity: usize,
}

impl TextBatchBuilder {
    /// A builder for columns named `names`, expecting about `capacity` rows per batch.
    pub fn new<S: AsRef<str>>(names: &[S], capacity: usize) -> Self {
        let fields: Vec<Field> = names
            .iter()
            .map(|n| Field::new(n.as_ref(), DataType::Utf8, true))
            .collect();
        let columns = fields
            .iter()
            .map(|_| StringBuilder::with_capacity(capacity, capacity * 16))
            .collect();
        Self {
            schema: Arc::new(Schema::new(fields)),
            columns,
            len: 0,
            capacity: capacity.max(1),
        }
    }

    /// The number of columns.
    pub fn width(&self) -> usize {
        self.columns.len()
    }

    /// Appends one cell to column `i` of the row being built.
    pub fn append(&mut self, i: usize, value: Option<&str>) {
        self.columns[i].append_option(value);
    }

    /// Ends the row being built (every column must have had one `append`).
    pub fn end_row(&mut self) {
        self.len += 1;
    }

    /// Appends a whole row; missing trailing cells are null.
    pub fn push_row<'a>(&mut self, cells: impl IntoIterator<Item = Option<&'a str>>) {
        let mut cells = cells.into_iter();
        for column in &mut self.columns {
            column.append_option(cells.next().flatten());
        }
        self.len += 1;
    }

    /// Rows since the last batch.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no row is waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether a batch's worth of rows is waiting.
    pub fn is_full(&self) -> bool {
        self.len >= self.capacity
    }

    /// The waiting rows as a batch; the builder starts over.
    pub fn finish(&mut self) -> Result<RecordBatch> {
        self.len = 0;
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|c| Arc::new(c.finish()) as ArrayRef)
            .collect();
        Ok(RecordBatch::try_new(self.schema.clone(), arrays)?)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, StringArray};

    use super::*;

    #[test]
    fn builds_text_batches_with_nulls() {
        let mut b = TextBatchBuilder::new(&["a", "b"], 2);
        b.push_row([Some("1"), None]);
        assert!(!b.is_full());
        b.push_row([Some("2")]);
        assert!(b.is_full());
        let batch = b.finish().unwrap();
        assert_eq!(batch.num_rows(), 2);
        let col = batch.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        assert!(col.is_null(0) && col.is_null(1));
        assert!(b.is_empty());
    }
}
