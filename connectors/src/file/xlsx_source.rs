//! The Excel source: one sheet of an `.xlsx` workbook, streamed cell by cell.

use std::borrow::Cow;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use calamine::{Cell, DataRef, ExcelDateTime, Reader, Xlsx, XlsxCellReader, XlsxError};
use serde::{Deserialize, Serialize};

use super::table::{self, RowSink};
use crate::{BatchStream, Error, ReadRequest, Result};

/// Reads one sheet of an Excel workbook (`.xlsx`). Every column arrives as text, named by the
/// header row, with the sheet row number in `_huitong_position`.
///
/// ```toml
/// kind = "xlsx"
/// path = "/data/renshe/shebao_2024.xlsx"
/// sheet = "参保人员"      # the first sheet when absent
/// header_row = 2          # a title in row 1, the column names in row 2
/// ```
///
/// or, in JSON:
///
/// ```json
/// {"kind": "xlsx", "path": "/data/renshe/shebao_2024.xlsx", "sheet": "参保人员", "header_row": 2}
/// ```
///
/// Cells are rendered as a person reads them: text as it is; whole numbers without a decimal
/// point or exponent (`13800138000`); other numbers in their shortest decimal form; `true` and
/// `false`; date cells as `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS` when they have a time of day
/// (milliseconds added when there are any), a time alone as `HH:MM:SS`, durations as
/// `H:MM:SS`. Empty cells are null; an error cell (`#N/A`, `#DIV/0!`) is null and its row gets a
/// `_huitong_error`, as does a row with a value right of the last header. Rows above the header
/// and empty rows are skipped.
///
/// The sheet is read with calamine's streaming cell reader, so memory does not grow with the
/// number of rows; the workbook's shared-string table is held in memory while reading, as the
/// format requires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XlsxSourceConfig {
    /// The workbook file.
    pub path: PathBuf,
    /// The sheet to read, by name; the workbook's first sheet when absent.
    #[serde(default)]
    pub sheet: Option<String>,
    /// The row holding the column names, counted from 1 as Excel does; the rows above it are
    /// skipped.
    #[serde(default = "default_header_row")]
    pub header_row: u32,
    /// Rows per Arrow batch.
    #[serde(default = "table::default_batch_size")]
    pub batch_size: usize,
}

fn default_header_row() -> u32 {
    1
}

type Workbook = Xlsx<BufReader<File>>;

impl XlsxSourceConfig {
    fn open_workbook(&self) -> Result<Workbook> {
        if self.header_row == 0 {
            return Err(Error::config("header_row", "rows are counted from 1"));
        }
        let file = table::open(&self.path)?;
        Xlsx::new(BufReader::new(file)).map_err(|e| match e {
            XlsxError::Io(e) => Error::Unreachable(format!("{}: {e}", self.path.display())),
            e => Error::Unreadable(format!("{}: not a readable xlsx workbook: {e}", self.path.display())),
        })
    }

    /// The sheet to read: the configured one, which must exist, or the first.
    fn sheet_name(&self, workbook: &Workbook) -> Result<String> {
        let names = workbook.sheet_names();
        match &self.sheet {
            Some(sheet) if names.contains(sheet) => Ok(sheet.clone()),
            Some(sheet) => Err(Error::config(
                "sheet",
                format!(
                    "{} has no sheet named {sheet:?}; its sheets are {}",
                    self.path.display(),
                    names.join(", ")
                ),
            )),
            None => names
                .into_iter()
                .next()
                .ok_or_else(|| Error::Unreadable(format!("{}: the workbook has no sheet", self.path.display()))),
        }
    }

    /// Reads down to the header row: the rows of the sheet after it, and the column names.
    fn open_sheet<'a>(&self, workbook: &'a mut Workbook) -> Result<(SheetRows<'a>, Vec<String>)> {
        let sheet = self.sheet_name(workbook)?;
        let cells = workbook
            .worksheet_cells_reader(&sheet)
            .map_err(|e| Error::Unreadable(format!("{}: sheet {sheet}: {e}", self.path.display())))?;
        let mut rows = SheetRows {
            path: self.path.clone(),
            sheet,
            cells,
            pending: None,
            ended: false,
        };
        let header_index = self.header_row - 1;
        let header = loop {
            match rows.next_row()? {
                Some((row, _)) if row < header_index => continue,
                Some((row, cells)) if row == header_index => break cells,
                _ => break Vec::new(),
            }
        };
        let rendered: Vec<(u32, Option<String>)> = header
            .iter()
            .map(|(column, value)| (*column, render(value).text().map(Cow::into_owned)))
            .collect();
        // The columns run from A to the last named one.
        let width = rendered
            .iter()
            .filter(|(_, text)| text.as_deref().is_some_and(|t| !t.trim().is_empty()))
            .map(|(column, _)| *column as usize + 1)
            .max()
            .ok_or_else(|| {
                Error::Unreadable(format!(
                    "{}: sheet {}: row {} (header_row) has no column names",
                    self.path.display(),
                    rows.sheet,
                    self.header_row
                ))
            })?;
        let mut names: Vec<Option<&str>> = vec![None; width];
        for (column, text) in &rendered {
            if let Some(slot) = names.get_mut(*column as usize) {
                *slot = text.as_deref();
            }
        }
        let columns = table::column_names(names, "header_row", &self.path)?;
        Ok((rows, columns))
    }

    /// Proves the workbook is there, the sheet exists and its header row has column names.
    pub async fn healthcheck(&self) -> Result<()> {
        let config = self.clone();
        table::blocking(move || {
            let mut workbook = config.open_workbook()?;
            config.open_sheet(&mut workbook).map(drop)
        })
        .await
    }

    /// Streams the sheet as batches of `batch_size` rows. `request` is not needed: every
    /// column is read, and the engine applies the watermark.
    pub async fn read(&self, _request: &ReadRequest) -> Result<BatchStream> {
        let config = self.clone();
        let (tx, stream) = crate::batch::channel();
        let (opened_tx, opened) = tokio::sync::oneshot::channel();
        // One blocking task opens the workbook, reads the header, reports, then streams: the
        // workbook is parsed once.
        tokio::task::spawn_blocking(move || {
            let mut workbook = match config.open_workbook() {
                Ok(workbook) => workbook,
                Err(e) => return drop(opened_tx.send(Err(e))),
            };
            let (rows, columns) = match config.open_sheet(&mut workbook) {
                Ok(opened) => opened,
                Err(e) => return drop(opened_tx.send(Err(e))),
            };
            if opened_tx.send(Ok(())).is_ok() {
                stream_rows(rows, &columns, RowSink::new(&columns, config.batch_size, tx));
            }
        });
        opened
            .await
            .map_err(|_| Error::Unreadable(format!("{}: the workbook reader failed", self.path.display())))??;
        Ok(stream)
    }
}

fn stream_rows(mut rows: SheetRows<'_>, columns: &[String], mut sink: RowSink) {
    let width = columns.len();
    let mut cells: Vec<Option<String>> = vec![None; width];
    loop {
        let (row, values) = match rows.next_row() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(e) => return sink.fail(e),
        };
        cells.iter_mut().for_each(|c| *c = None);
        let mut errors: Vec<String> = Vec::new();
        for (column, value) in &values {
            let rendered = render(value);
            let index = *column as usize;
            match rendered {
                Rendered::Empty => {}
                Rendered::Error(text) => {
                    errors.push(format!("cell {}{} is {text}", column_letters(*column), row + 1));
                }
                Rendered::Text(text) if index < width => cells[index] = Some(text.into_owned()),
                Rendered::Text(_) => errors.push(format!(
                    "row {} has a value in column {}, right of the last header",
                    row + 1,
                    column_letters(*column)
                )),
            }
        }
        if errors.is_empty() && cells.iter().all(Option::is_none) {
            continue;
        }
        let error = (!errors.is_empty()).then(|| errors.join("; "));
        if !sink.push(cells.iter().map(Option::as_deref), u64::from(row) + 1, error.as_deref()) {
            return;
        }
    }
    sink.finish();
}

/// The cells of a row: (0-based column, value).
type RowCells<'a> = Vec<(u32, DataRef<'a>)>;

/// The cells of a sheet, a row at a time, in the order the sheet stores them.
struct SheetRows<'a> {
    path: PathBuf,
    sheet: String,
    cells: XlsxCellReader<'a, BufReader<File>>,
    /// The first cell of the next row, read to know the row had ended.
    pending: Option<Cell<DataRef<'a>>>,
    /// Whether the sheet data has ended.
    ended: bool,
}

impl<'a> SheetRows<'a> {
    /// The next row with cells: its 0-based index and its (0-based column, value) pairs.
    fn next_row(&mut self) -> Result<Option<(u32, RowCells<'a>)>> {
        let Some(first) = self.pending.take().map(Ok).or_else(|| self.next_cell().transpose()) else {
            return Ok(None);
        };
        let first = first?;
        let row = first.get_position().0;
        let mut values = vec![(first.get_position().1, first.get_value().clone())];
        while let Some(cell) = self.next_cell()? {
            if cell.get_position().0 != row {
                self.pending = Some(cell);
                break;
            }
            values.push((cell.get_position().1, cell.get_value().clone()));
        }
        Ok(Some((row, values)))
    }

    fn next_cell(&mut self) -> Result<Option<Cell<DataRef<'a>>>> {
        if self.ended {
            // The reader must not be asked again past the end of the sheet data.
            return Ok(None);
        }
        let cell = self
            .cells
            .next_cell()
            .map_err(|e| sheet_error(&self.path, &self.sheet, e))?;
        self.ended = cell.is_none();
        Ok(cell)
    }
}

fn sheet_error(path: &Path, sheet: &str, e: XlsxError) -> Error {
    match e {
        XlsxError::Io(e) => Error::Unreachable(format!("{}: {e}", path.display())),
        e => Error::Unreadable(format!("{}: sheet {sheet}: {e}", path.display())),
    }
}

/// A cell as text.
enum Rendered<'v> {
    Empty,
    Text(Cow<'v, str>),
    /// An error value such as `#N/A`.
    Error(String),
}

impl<'v> Rendered<'v> {
    fn text(self) -> Option<Cow<'v, str>> {
        match self {
            Rendered::Text(text) => Some(text),
            _ => None,
        }
    }
}

fn render<'v>(value: &'v DataRef<'_>) -> Rendered<'v> {
    let text: Cow<'v, str> = match value {
        DataRef::Empty => return Rendered::Empty,
        DataRef::Error(e) => return Rendered::Error(e.to_string()),
        DataRef::String(s) | DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => Cow::Borrowed(s),
        DataRef::SharedString(s) => Cow::Borrowed(*s),
        DataRef::Int(i) => Cow::Owned(i.to_string()),
        DataRef::Float(f) => Cow::Owned(render_number(*f)),
        DataRef::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        DataRef::DateTime(d) => Cow::Owned(render_datetime(d)),
    };
    if text.is_empty() {
        Rendered::Empty
    } else {
        Rendered::Text(text)
    }
}

/// Whole numbers without `.0`, every number without an exponent, others in their shortest
/// decimal form that reads back as the same float (Rust's `Display` for `f64` does all three).
pub(super) fn render_number(f: f64) -> String {
    if f == 0.0 {
        // Also -0.0.
        "0".to_string()
    } else {
        f.to_string()
    }
}

/// An Excel date, date and time, time of day or duration.
pub(super) fn render_datetime(d: &ExcelDateTime) -> String {
    let serial = d.as_f64();
    if d.is_duration() {
        let millis = (serial.abs() * 86_400_000.0).round() as u64;
        let sign = if serial < 0.0 { "-" } else { "" };
        let (seconds, millis) = (millis / 1000, millis % 1000);
        let clock = format!("{sign}{}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60);
        return if millis > 0 {
            format!("{clock}.{millis:03}")
        } else {
            clock
        };
    }
    let (year, month, day, hour, minute, second, millis) = d.to_ymd_hms_milli();
    let mut time = format!("{hour:02}:{minute:02}:{second:02}");
    if millis > 0 {
        time.push_str(&format!(".{millis:03}"));
    }
    if (0.0..1.0).contains(&serial) {
        // A time of day: Excel's day 0 is no date.
        return time;
    }
    let date = format!("{year:04}-{month:02}-{day:02}");
    if (hour, minute, second, millis) == (0, 0, 0, 0) {
        date
    } else {
        format!("{date} {time}")
    }
}

/// Excel's name of a 0-based column: A, …, Z, AA, ….
fn column_letters(column: u32) -> String {
    let mut n = column + 1;
    let mut letters = Vec::new();
    while n > 0 {
        let rem = (n - 1) % 26;
        letters.push(b'A' + rem as u8);
        n = (n - 1) / 26;
    }
    letters.reverse();
    String::from_utf8(letters).expect("ASCII letters")
}
