//! What the file sources share: naming columns from a header row, opening the file, and
//! turning rows into batches on a blocking thread.

use std::fs::File;
use std::path::Path;

use crate::batch::{BatchSender, POSITION_COLUMN, ROW_ERROR_COLUMN, TextBatchBuilder};
use crate::{Error, Result};

pub(super) fn default_batch_size() -> usize {
    8192
}

/// The name of the `n`th column (1-based) when the file gives it none.
pub(super) fn unnamed_column(n: usize) -> String {
    format!("column_{n}")
}

/// Column names from the cells of a header row: trimmed, an empty one named `column_N` after
/// its 1-based position. A name given twice, or one of the columns the source adds itself, is
/// a configuration error on `field` (the setting that says which row is the header).
pub(super) fn column_names<'a>(
    header: impl IntoIterator<Item = Option<&'a str>>,
    field: &str,
    path: &Path,
) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for (i, cell) in header.into_iter().enumerate() {
        let name = match cell.map(str::trim) {
            Some(name) if !name.is_empty() => name.to_string(),
            _ => unnamed_column(i + 1),
        };
        if name == POSITION_COLUMN || name == ROW_ERROR_COLUMN {
            return Err(Error::config(
                field,
                format!(
                    "{}: the header {name:?} is reserved for the source's own column",
                    path.display()
                ),
            ));
        }
        if let Some(first) = names.iter().position(|n| *n == name) {
            return Err(Error::config(
                field,
                format!(
                    "{}: the header {name:?} appears twice (columns {} and {})",
                    path.display(),
                    first + 1,
                    i + 1
                ),
            ));
        }
        names.push(name);
    }
    Ok(names)
}

/// Opens a source file for reading. A file that is not there (yet), or cannot be opened, is
/// [`Error::Unreachable`]: a later run may find it.
pub(super) fn open(path: &Path) -> Result<File> {
    let unreachable = |e: std::io::Error| Error::Unreachable(format!("{}: {e}", path.display()));
    let file = File::open(path).map_err(unreachable)?;
    if !file.metadata().map_err(unreachable)?.is_file() {
        return Err(Error::Unreachable(format!("{}: not a regular file", path.display())));
    }
    Ok(file)
}

/// Runs blocking file work off the async runtime.
pub(super) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Unreadable(format!("the file reader failed: {e}")))?
}

/// Rows of text cells on their way to the engine, a batch at a time, from a blocking thread.
pub(super) struct RowSink {
    builder: TextBatchBuilder,
    width: usize,
    tx: BatchSender,
}

impl RowSink {
    /// A sink for rows of `columns`, followed by the position and row-error columns.
    pub(super) fn new(columns: &[String], batch_size: usize, tx: BatchSender) -> Self {
        let mut names: Vec<&str> = columns.iter().map(String::as_str).collect();
        names.extend([POSITION_COLUMN, ROW_ERROR_COLUMN]);
        Self {
            builder: TextBatchBuilder::new(&names, batch_size.max(1)),
            width: columns.len(),
            tx,
        }
    }

    /// Adds a row: its cells (missing trailing ones are null, extra ones dropped), its
    /// position in the file, and why it was not read properly. Returns `false` when the engine
    /// has stopped listening and reading should stop.
    pub(super) fn push<'c>(
        &mut self,
        cells: impl IntoIterator<Item = Option<&'c str>>,
        position: u64,
        error: Option<&str>,
    ) -> bool {
        let mut cells = cells.into_iter();
        for i in 0..self.width {
            self.builder.append(i, cells.next().flatten());
        }
        self.builder.append(self.width, Some(&position.to_string()));
        self.builder.append(self.width + 1, error);
        self.builder.end_row();
        !self.builder.is_full() || self.flush()
    }

    fn flush(&mut self) -> bool {
        self.tx.blocking_send(self.builder.finish()).is_ok()
    }

    /// Sends the last rows: the end of the file.
    pub(super) fn finish(mut self) {
        if !self.builder.is_empty() {
            self.flush();
        }
    }

    /// Ends the stream with an error; rows not yet sent are dropped, as the run fails anyway.
    pub(super) fn fail(self, error: Error) {
        let _ = self.tx.blocking_send(Err(error));
    }
}
