//! File sources: a CSV file ([`CsvSourceConfig`]) and an Excel workbook sheet
//! ([`XlsxSourceConfig`]), as departments drop them on a shared folder.
//!
//! Both deliver every column as nullable UTF-8 text, one column per header, plus
//! [`POSITION_COLUMN`](crate::batch::POSITION_COLUMN) (the CSV line number, the sheet row
//! number) and [`ROW_ERROR_COLUMN`](crate::batch::ROW_ERROR_COLUMN) (why a row could not be read
//! properly, null normally). Files are streamed on a blocking thread: memory stays at a few
//! batches whatever the size of the file. File sources ignore [`ReadRequest::since`]: the engine
//! drops rows older than the watermark.
//!
//! [`ReadRequest::since`]: crate::ReadRequest::since

mod csv_source;
mod table;
mod xlsx_source;

pub use csv_source::{CsvEncoding, CsvSourceConfig};
pub use xlsx_source::XlsxSourceConfig;

#[cfg(test)]
mod tests;
