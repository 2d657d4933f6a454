//! The CSV source: a delimited text file in UTF-8 or, as Excel writes it on Chinese systems,
//! GBK/GB18030, decoded while streaming.

use std::collections::VecDeque;
use std::io::{self, Cursor, Read};
use std::path::PathBuf;

use csv::StringRecord;
use encoding_rs_io::DecodeReaderBytesBuilder;
use serde::{Deserialize, Serialize};

use super::table::{self, RowSink};
use crate::{BatchStream, Error, ReadRequest, Result};

/// Reads a CSV file. Every column arrives as text, named by the header line, with the line
/// number in `_huitong_position`.
///
/// ```toml
/// kind = "csv"
/// path = "/data/minzheng/dibao_2024.csv"
/// encoding = "auto"      # or "utf-8", "gbk", "gb18030"
/// delimiter = ","
/// has_header = true
/// ```
///
/// or, in JSON:
///
/// ```json
/// {"kind": "csv", "path": "/data/minzheng/dibao_2024.csv", "encoding": "gbk", "delimiter": "\t"}
/// ```
///
/// A line with more or fewer fields than the header is not dropped: its cells are delivered as
/// far as they go and `_huitong_error` says what is wrong, so the engine quarantines it. An
/// empty field is null (CSV cannot tell an empty text from a missing value). Bytes that are not
/// valid in the file's encoding, a malformed quote (a quote never closed, text after a
/// closing quote) or a record longer than 8 MiB make the file unreadable and fail the run,
/// naming the line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvSourceConfig {
    /// The CSV file.
    pub path: PathBuf,
    /// The file's character encoding; `auto` by default.
    #[serde(default)]
    pub encoding: CsvEncoding,
    /// The field delimiter: one ASCII character, `,` by default (`\t` for tab-separated
    /// files).
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    /// Whether the first line names the columns (default). Without one, the columns are
    /// `column_1`, `column_2`, … and the first line is data.
    #[serde(default = "default_has_header")]
    pub has_header: bool,
    /// Rows per Arrow batch.
    #[serde(default = "table::default_batch_size")]
    pub batch_size: usize,
}

/// The character encoding of a CSV file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CsvEncoding {
    /// UTF-8 when the file starts with a UTF-8 byte-order mark or its first 64 KiB are valid
    /// UTF-8; otherwise GB18030 (a superset of GBK, as Excel saves "CSV" on Chinese Windows). A
    /// UTF-16 byte-order mark (Excel's "Unicode text") is honoured too.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// UTF-8, with or without a byte-order mark.
    #[serde(rename = "utf-8", alias = "utf8")]
    Utf8,
    /// GBK (code page 936).
    #[serde(rename = "gbk")]
    Gbk,
    /// GB18030.
    #[serde(rename = "gb18030")]
    Gb18030,
}

fn default_delimiter() -> char {
    ','
}

fn default_has_header() -> bool {
    true
}

/// How many bytes `auto` looks at to tell UTF-8 from GB18030.
const SNIFF_BYTES: usize = 64 * 1024;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The encoding a file is actually decoded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decoding {
    /// UTF-8, passed through and checked by the CSV reader.
    Utf8,
    /// UTF-16, as its byte-order mark says.
    Utf16,
    Gbk,
    Gb18030,
}

impl Decoding {
    fn name(self) -> &'static str {
        match self {
            Decoding::Utf8 => "UTF-8",
            Decoding::Utf16 => "UTF-16",
            Decoding::Gbk => "GBK",
            Decoding::Gb18030 => "GB18030",
        }
    }

    /// Whether the decoder replaces bad bytes with U+FFFD, which then marks a decoding error.
    fn transcodes(self) -> bool {
        self != Decoding::Utf8
    }
}

impl CsvSourceConfig {
    fn delimiter_byte(&self) -> Result<u8> {
        match u8::try_from(self.delimiter) {
            Ok(b) if b.is_ascii() && !matches!(b, b'"' | b'\r' | b'\n') => Ok(b),
            _ => Err(Error::config(
                "delimiter",
                format!(
                    "{:?} cannot separate fields: use one ASCII character other than a quote or a line break",
                    self.delimiter
                ),
            )),
        }
    }

    /// Opens the file and reads its header line: the blocking part of both `healthcheck` and
    /// `read`.
    fn open(&self) -> Result<CsvTable> {
        let delimiter = self.delimiter_byte()?;
        let mut file = table::open(&self.path)?;
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        (&mut file)
            .take(SNIFF_BYTES as u64)
            .read_to_end(&mut head)
            .map_err(|e| Error::Unreachable(format!("{}: {e}", self.path.display())))?;
        let decoding = match self.encoding {
            CsvEncoding::Auto => sniff(&head),
            CsvEncoding::Utf8 => Decoding::Utf8,
            CsvEncoding::Gbk => Decoding::Gbk,
            CsvEncoding::Gb18030 => Decoding::Gb18030,
        };
        let mut decoder = DecodeReaderBytesBuilder::new();
        // A byte-order mark is never data; UTF-8 goes through as it is, so that the CSV reader
        // reports invalid bytes instead of a decoder replacing them.
        decoder.strip_bom(true).utf8_passthru(true);
        match decoding {
            Decoding::Utf8 => decoder.bom_sniffing(false),
            Decoding::Utf16 => decoder.bom_sniffing(true),
            Decoding::Gbk => decoder.encoding(Some(encoding_rs::GBK)),
            Decoding::Gb18030 => decoder.encoding(Some(encoding_rs::GB18030)),
        };
        let input: Box<dyn Read + Send> = Box::new(decoder.build(Cursor::new(head).chain(file)));
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .from_reader(Scanner::new(input, delimiter));
        let mut table = CsvTable {
            path: self.path.clone(),
            decoding,
            reader,
            columns: Vec::new(),
            has_header: self.has_header,
            first_row: None,
        };
        let first = table.next_record()?;
        match (first, self.has_header) {
            (Some((_, header)), true) => {
                table.columns = table::column_names(header.iter().map(Some), "has_header", &self.path)?;
            }
            (None, true) => {
                return Err(Error::Unreadable(format!(
                    "{}: the file is empty, it has no header line",
                    self.path.display()
                )));
            }
            (Some((line, row)), false) => {
                table.columns = (1..=row.len()).map(table::unnamed_column).collect();
                table.first_row = Some((line, row));
            }
            (None, false) => {}
        }
        Ok(table)
    }

    /// Proves the file is there and its header line readable.
    pub async fn healthcheck(&self) -> Result<()> {
        let config = self.clone();
        table::blocking(move || config.open().map(drop)).await
    }

    /// Streams the file as batches of `batch_size` rows, decoding it on the way. `request` is
    /// not needed: every column is read, and the engine applies the watermark.
    pub async fn read(&self, _request: &ReadRequest) -> Result<BatchStream> {
        let config = self.clone();
        let table = table::blocking(move || config.open()).await?;
        let (tx, stream) = crate::batch::channel();
        let sink = RowSink::new(&table.columns, self.batch_size, tx);
        tokio::task::spawn_blocking(move || table.stream(sink));
        Ok(stream)
    }
}

/// `auto`: a UTF-8 or UTF-16 byte-order mark, else UTF-8 if the first bytes are valid UTF-8 (a
/// character cut by the end of the sample allowed), else GB18030.
fn sniff(head: &[u8]) -> Decoding {
    if head.starts_with(UTF8_BOM) {
        return Decoding::Utf8;
    }
    if head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF") {
        return Decoding::Utf16;
    }
    match std::str::from_utf8(head) {
        Ok(_) => Decoding::Utf8,
        Err(e) if e.error_len().is_none() && head.len() == SNIFF_BYTES => Decoding::Utf8,
        Err(_) => Decoding::Gb18030,
    }
}

/// An open CSV file, past its header line.
struct CsvTable {
    path: PathBuf,
    decoding: Decoding,
    reader: csv::Reader<Scanner<Box<dyn Read + Send>>>,
    columns: Vec<String>,
    has_header: bool,
    /// Without a header, the first line, read to count the columns.
    first_row: Option<(u64, StringRecord)>,
}

impl CsvTable {
    /// The next record and the line it starts on, checked for decoding errors.
    fn next_record(&mut self) -> Result<Option<(u64, StringRecord)>> {
        let mut record = StringRecord::new();
        let read = self.reader.read_record(&mut record);
        // The scanner has seen every record the CSV reader returns, and more.
        let line = self.reader.get_mut().record_lines.pop_front().unwrap_or_default();
        match read {
            Ok(false) => return Ok(None),
            Ok(true) => {}
            Err(e) => return Err(self.csv_error(line, e)),
        }
        if self.decoding.transcodes() && record.iter().any(|f| f.contains(char::REPLACEMENT_CHARACTER)) {
            return Err(Error::Unreadable(format!(
                "{}: line {line} is not valid {}",
                self.path.display(),
                self.decoding.name()
            )));
        }
        Ok(Some((line, record)))
    }

    fn stream(mut self, mut sink: RowSink) {
        let width = self.columns.len();
        let mut pending = self.first_row.take();
        loop {
            let (line, record) = match pending.take().map(Ok).or_else(|| self.next_record().transpose()) {
                None => break,
                Some(Ok(next)) => next,
                Some(Err(e)) => return sink.fail(e),
            };
            let error = (record.len() != width).then(|| {
                let against = if self.has_header {
                    "the header"
                } else {
                    "the first line"
                };
                format!("line {line} has {} fields, {against} has {width}", record.len())
            });
            let cells = record.iter().map(|f| Some(f).filter(|f| !f.is_empty()));
            if !sink.push(cells, line, error.as_deref()) {
                return;
            }
        }
        sink.finish();
    }

    /// The error of the record starting on `line`.
    fn csv_error(&self, line: u64, error: csv::Error) -> Error {
        let path = self.path.display();
        match error.into_kind() {
            csv::ErrorKind::Utf8 { .. } => Error::Unreadable(format!(
                "{path}: line {line} is not valid {} (set `encoding` if the file is GBK or GB18030)",
                self.decoding.name()
            )),
            csv::ErrorKind::Io(e) => match e.get_ref().and_then(|inner| inner.downcast_ref::<Malformed>()) {
                Some(malformed) => Error::Unreadable(format!("{path}: {malformed}")),
                None => Error::Unreachable(format!("{path}: {e}")),
            },
            other => Error::Unreadable(format!("{path}: line {line}: {other:?}")),
        }
    }
}

/// Text the CSV reader would silently accept but that means the file is damaged: the CSV
/// crate reads leniently, so the decoded text is checked on its way in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Malformed {
    #[error("line {0}: a quoted field is never closed")]
    Unclosed(u64),
    #[error("line {0}: text after the closing quote of a field")]
    TextAfterQuote(u64),
    #[error("line {0}: a record longer than {MAX_RECORD_MIB} MiB (is a quote never closed?)")]
    TooLong(u64),
}

/// The longest record read: a quote never closed must not pull the rest of a large file into
/// memory as one field.
const MAX_RECORD_MIB: usize = 8;
const MAX_RECORD_BYTES: usize = MAX_RECORD_MIB << 20;

/// Where the text stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScanState {
    /// Between records, where line breaks are empty lines the CSV reader skips.
    RecordStart,
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: the end of the field, or the first of a doubled quote.
    QuoteInQuoted,
}

/// Passes decoded CSV text to the CSV reader, following records and quotes as it does
/// (RFC 4180 with doubled quotes; a quote inside an unquoted field is text; `\r`, `\n` and
/// `\r\n` end records; empty lines are skipped), to note the line each record starts on and to
/// fail the read at the first malformed quote or overlong record, after the text before it.
///
/// The CSV reader's own positions are where the previous record ended, which is not the line
/// of the next one after a `\r\n` or an empty line.
struct Scanner<R> {
    inner: R,
    delimiter: u8,
    state: ScanState,
    line: u64,
    opened_at: u64,
    malformed: Option<Malformed>,
    /// The first line of the record being scanned, and its length so far.
    record_line: u64,
    record_bytes: usize,
    /// The first line of each record scanned and not yet taken by the table: a few at most, as
    /// the CSV reader buffers a few KiB ahead.
    record_lines: VecDeque<u64>,
}

impl<R> Scanner<R> {
    fn new(inner: R, delimiter: u8) -> Self {
        Self {
            inner,
            delimiter,
            state: ScanState::RecordStart,
            line: 1,
            opened_at: 1,
            malformed: None,
            record_line: 1,
            record_bytes: 0,
            record_lines: VecDeque::new(),
        }
    }

    fn error(&self) -> Option<io::Error> {
        self.malformed
            .clone()
            .map(|m| io::Error::new(io::ErrorKind::InvalidData, m))
    }

    /// Follows one byte; false at a malformed quote.
    fn step(&mut self, byte: u8) -> bool {
        use ScanState::*;
        let line_break = byte == b'\r' || byte == b'\n';
        if self.state == RecordStart && !line_break {
            self.record_lines.push_back(self.line);
            self.record_line = self.line;
            self.record_bytes = 0;
            self.state = FieldStart;
        }
        if self.state != RecordStart {
            self.record_bytes += 1;
        }
        if self.record_bytes > MAX_RECORD_BYTES {
            self.malformed = Some(Malformed::TooLong(self.record_line));
            return false;
        }
        self.state = match (self.state, byte) {
            (RecordStart, _) => RecordStart,
            (FieldStart, b'"') => {
                self.opened_at = self.line;
                Quoted
            }
            (FieldStart | Unquoted | QuoteInQuoted, _) if line_break => RecordStart,
            (FieldStart | Unquoted | QuoteInQuoted, _) if byte == self.delimiter => FieldStart,
            (FieldStart | Unquoted, _) => Unquoted,
            (Quoted, b'"') => QuoteInQuoted,
            (Quoted, _) => Quoted,
            (QuoteInQuoted, b'"') => Quoted,
            (QuoteInQuoted, _) => {
                self.malformed = Some(Malformed::TextAfterQuote(self.line));
                return false;
            }
        };
        if byte == b'\n' {
            self.line += 1;
        }
        true
    }
}

impl<R: Read> Read for Scanner<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = self.error() {
            return Err(e);
        }
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && self.state == ScanState::Quoted {
            self.malformed = Some(Malformed::Unclosed(self.opened_at));
            return Err(self.error().expect("just set"));
        }
        for (i, &byte) in buf[..n].iter().enumerate() {
            if !self.step(byte) {
                // Hand over the text before the bad quote; the next read fails.
                return if i == 0 {
                    Err(self.error().expect("just set"))
                } else {
                    Ok(i)
                };
            }
        }
        Ok(n)
    }
}
