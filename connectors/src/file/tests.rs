use std::path::{Path, PathBuf};

use arrow::array::{Array, RecordBatch, StringArray};
use proptest::prelude::*;
use rust_xlsxwriter::{ExcelDateTime, Format, Formula, Workbook};

use super::*;
use crate::batch::{POSITION_COLUMN, ROW_ERROR_COLUMN};
use crate::{BatchStream, Error, ReadRequest};

fn csv_config(path: &Path) -> CsvSourceConfig {
    serde_json::from_value(serde_json::json!({ "path": path })).unwrap()
}

fn xlsx_config(path: &Path) -> XlsxSourceConfig {
    serde_json::from_value(serde_json::json!({ "path": path })).unwrap()
}

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

async fn collect(mut stream: BatchStream) -> crate::Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        batches.push(batch?);
    }
    Ok(batches)
}

/// Everything a source delivered: the column names and the rows as text.
#[derive(Debug)]
struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
    batch_sizes: Vec<usize>,
}

impl Table {
    fn from_batches(batches: &[RecordBatch]) -> Self {
        let columns = batches
            .first()
            .map(|b| b.schema().fields().iter().map(|f| f.name().clone()).collect())
            .unwrap_or_default();
        let mut rows = Vec::new();
        for batch in batches {
            for row in 0..batch.num_rows() {
                rows.push(
                    batch
                        .columns()
                        .iter()
                        .map(|c| {
                            let c = c.as_any().downcast_ref::<StringArray>().expect("text columns");
                            (!c.is_null(row)).then(|| c.value(row).to_string())
                        })
                        .collect(),
                );
            }
        }
        Self {
            columns,
            rows,
            batch_sizes: batches.iter().map(RecordBatch::num_rows).collect(),
        }
    }

    fn column(&self, name: &str) -> Vec<Option<&str>> {
        if self.rows.is_empty() {
            return Vec::new();
        }
        let i = self.columns.iter().position(|c| c == name).expect(name);
        self.rows.iter().map(|r| r[i].as_deref()).collect()
    }

    /// The file's own columns, without position and error.
    fn cells(&self) -> Vec<Vec<Option<&str>>> {
        let width = self.columns.len().saturating_sub(2);
        self.rows
            .iter()
            .map(|r| r[..width].iter().map(Option::as_deref).collect())
            .collect()
    }
}

async fn read_csv(config: &CsvSourceConfig) -> crate::Result<Table> {
    let batches = collect(config.read(&ReadRequest::default()).await?).await?;
    Ok(Table::from_batches(&batches))
}

async fn read_xlsx(config: &XlsxSourceConfig) -> crate::Result<Table> {
    let batches = collect(config.read(&ReadRequest::default()).await?).await?;
    Ok(Table::from_batches(&batches))
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter()
        .map(|s| s.to_string())
        .chain([POSITION_COLUMN.to_string(), ROW_ERROR_COLUMN.to_string()])
        .collect()
}

// ---- configuration ----

#[test]
fn configs_parse_with_defaults_and_name_unknown_fields() {
    let csv = csv_config(Path::new("/data/a.csv"));
    assert_eq!(csv.encoding, CsvEncoding::Auto);
    assert_eq!(csv.delimiter, ',');
    assert!(csv.has_header);
    assert_eq!(csv.batch_size, 8192);
    let gbk: CsvSourceConfig =
        serde_json::from_value(serde_json::json!({"path": "a.csv", "encoding": "gbk", "delimiter": "\t"})).unwrap();
    assert_eq!((gbk.encoding, gbk.delimiter), (CsvEncoding::Gbk, '\t'));
    for (text, encoding) in [("utf-8", CsvEncoding::Utf8), ("gb18030", CsvEncoding::Gb18030)] {
        let c: CsvSourceConfig = serde_json::from_value(serde_json::json!({"path": "a", "encoding": text})).unwrap();
        assert_eq!(c.encoding, encoding);
        assert_eq!(serde_json::to_value(c.encoding).unwrap(), text);
    }
    let err = serde_json::from_value::<CsvSourceConfig>(serde_json::json!({"path": "a", "delimeter": ";"}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("delimeter"), "{err}");
    let err = serde_json::from_value::<CsvSourceConfig>(serde_json::json!({"path": "a", "encoding": "big5"}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("big5"), "{err}");

    let xlsx = xlsx_config(Path::new("/data/a.xlsx"));
    assert_eq!(
        (xlsx.sheet.as_deref(), xlsx.header_row, xlsx.batch_size),
        (None, 1, 8192)
    );
    let err = serde_json::from_value::<XlsxSourceConfig>(serde_json::json!({"path": "a", "sheets": "x"}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("sheets"), "{err}");
}

// ---- CSV ----

const CHINESE_CSV: &str =
    "姓名,公民身份号码,住址\n张三,110105199001011234,北京市朝阳区建国路1号\n李四,310101198507150021,上海市黄浦区\n";

fn chinese_rows() -> Vec<Vec<Option<&'static str>>> {
    vec![
        vec![Some("张三"), Some("110105199001011234"), Some("北京市朝阳区建国路1号")],
        vec![Some("李四"), Some("310101198507150021"), Some("上海市黄浦区")],
    ]
}

#[tokio::test]
async fn a_gbk_csv_reads_back_with_auto_and_explicit_encodings() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(CHINESE_CSV);
    assert!(!unmappable);
    assert!(std::str::from_utf8(&bytes).is_err(), "the sample must not be UTF-8");
    let path = write(&dir, "gbk.csv", &bytes);
    for encoding in [CsvEncoding::Auto, CsvEncoding::Gbk, CsvEncoding::Gb18030] {
        let config = CsvSourceConfig {
            encoding,
            ..csv_config(&path)
        };
        config.healthcheck().await.unwrap();
        let table = read_csv(&config).await.unwrap();
        assert_eq!(table.columns, names(&["姓名", "公民身份号码", "住址"]), "{encoding:?}");
        assert_eq!(table.cells(), chinese_rows(), "{encoding:?}");
        assert_eq!(table.column(POSITION_COLUMN), [Some("2"), Some("3")]);
        assert_eq!(table.column(ROW_ERROR_COLUMN), [None, None]);
    }
    // Read as UTF-8, the header line itself is not valid.
    let as_utf8 = CsvSourceConfig {
        encoding: CsvEncoding::Utf8,
        ..csv_config(&path)
    };
    let err = as_utf8.healthcheck().await.unwrap_err();
    assert!(
        matches!(&err, Error::Unreadable(m) if m.contains("line 1") && m.contains("UTF-8")),
        "{err}"
    );
}

#[tokio::test]
async fn utf8_with_and_without_a_bom_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("bom.csv", [b"\xEF\xBB\xBF".as_slice(), CHINESE_CSV.as_bytes()].concat()),
        ("plain.csv", CHINESE_CSV.as_bytes().to_vec()),
    ] {
        let path = write(&dir, name, &bytes);
        for encoding in [CsvEncoding::Auto, CsvEncoding::Utf8] {
            let table = read_csv(&CsvSourceConfig {
                encoding,
                ..csv_config(&path)
            })
            .await
            .unwrap();
            assert_eq!(
                table.columns,
                names(&["姓名", "公民身份号码", "住址"]),
                "{name} {encoding:?}"
            );
            assert_eq!(table.cells(), chinese_rows());
        }
    }
}

#[tokio::test]
async fn utf16_with_a_bom_reads_back_as_excel_unicode_text() {
    let dir = tempfile::tempdir().unwrap();
    let text = CHINESE_CSV.replace(',', "\t");
    let bytes: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let path = write(&dir, "unicode.txt", &bytes);
    let table = read_csv(&CsvSourceConfig {
        delimiter: '\t',
        ..csv_config(&path)
    })
    .await
    .unwrap();
    assert_eq!(table.cells(), chinese_rows());
}

#[tokio::test]
async fn auto_detection_allows_a_character_cut_by_the_sample_end() {
    let dir = tempfile::tempdir().unwrap();
    // "name\n" (5 bytes) then 3-byte characters: byte 65536 falls inside one.
    let mut text = String::from("name\n");
    let mut expected = Vec::new();
    while text.len() < 70_000 {
        let line =
            "汉字汉字汉字汉字汉字汉字汉字汉字汉字汉字汉字汉字汉字汉字汉字汉字汉字汉字汉字汉字汉字汉字汉字汉字汉字";
        text.push_str(line);
        text.push('\n');
        expected.push(vec![Some(line)]);
    }
    assert!(!text.is_char_boundary(64 * 1024));
    let path = write(&dir, "long.csv", text.as_bytes());
    let table = read_csv(&csv_config(&path)).await.unwrap();
    assert_eq!(table.cells(), expected);
}

#[tokio::test]
async fn bytes_invalid_in_the_encoding_are_unreadable_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let (gbk, _, _) = encoding_rs::GBK.encode(CHINESE_CSV);
    let bytes = [gbk.as_ref(), b"\xD5\xC5\xFF,x,y\n"].concat();
    let path = write(&dir, "bad.csv", &bytes);
    for encoding in [CsvEncoding::Auto, CsvEncoding::Gbk] {
        let config = CsvSourceConfig {
            encoding,
            ..csv_config(&path)
        };
        config.healthcheck().await.unwrap();
        let err = read_csv(&config).await.unwrap_err();
        assert!(matches!(&err, Error::Unreadable(m) if m.contains("line 4")), "{err}");
    }
    // UTF-8 detected from its first 64 KiB, broken further on.
    let mut text = String::from(CHINESE_CSV);
    while text.len() < 70_000 {
        text.push_str("王五,110105199001011234,北京市朝阳区建国路1号\n");
    }
    let bad_line = text.matches('\n').count() + 1;
    let bytes = [text.as_bytes(), b"\xE5\xBC,x,y\n"].concat();
    let path = write(&dir, "bad-utf8.csv", &bytes);
    let err = read_csv(&csv_config(&path)).await.unwrap_err();
    let line = format!("line {bad_line} ");
    assert!(
        matches!(&err, Error::Unreadable(m) if m.contains(&line) && m.contains("UTF-8")),
        "{err}"
    );
}

#[tokio::test]
async fn a_ragged_line_is_kept_with_an_error_and_the_rows_after_it_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "ragged.csv", b"a,b,c\n1,2,3\n4,5\n6,7,8,9\n10,11,12\n");
    let table = read_csv(&csv_config(&path)).await.unwrap();
    assert_eq!(
        table.cells(),
        [
            vec![Some("1"), Some("2"), Some("3")],
            vec![Some("4"), Some("5"), None],
            vec![Some("6"), Some("7"), Some("8")],
            vec![Some("10"), Some("11"), Some("12")],
        ]
    );
    assert_eq!(
        table.column(ROW_ERROR_COLUMN),
        [
            None,
            Some("line 3 has 2 fields, the header has 3"),
            Some("line 4 has 4 fields, the header has 3"),
            None
        ]
    );
    assert_eq!(
        table.column(POSITION_COLUMN),
        [Some("2"), Some("3"), Some("4"), Some("5")]
    );
}

#[tokio::test]
async fn rows_come_in_batches_of_batch_size_with_their_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("id,name\n");
    for i in 1..=25 {
        text.push_str(&format!("{i},n{i}\n"));
    }
    let path = write(&dir, "rows.csv", text.as_bytes());
    let table = read_csv(&CsvSourceConfig {
        batch_size: 10,
        ..csv_config(&path)
    })
    .await
    .unwrap();
    assert_eq!(table.batch_sizes, [10, 10, 5]);
    let positions: Vec<String> = (2..=26).map(|l| l.to_string()).collect();
    assert_eq!(
        table.column(POSITION_COLUMN),
        positions.iter().map(|p| Some(p.as_str())).collect::<Vec<_>>()
    );
    assert_eq!(table.column("name")[24], Some("n25"));
}

#[tokio::test]
async fn quoted_fields_span_lines_and_positions_are_their_first_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "quoted.csv",
        b"id,note\r\n1,\"two\r\nlines, and a comma\"\r\n2,\"say \"\"hi\"\"\"\r\n3,5\"3 is literal\r\n\r\n4,\"\"\r\n",
    );
    let table = read_csv(&csv_config(&path)).await.unwrap();
    assert_eq!(
        table.cells(),
        [
            vec![Some("1"), Some("two\r\nlines, and a comma")],
            vec![Some("2"), Some("say \"hi\"")],
            vec![Some("3"), Some("5\"3 is literal")],
            vec![Some("4"), None],
        ]
    );
    assert_eq!(
        table.column(POSITION_COLUMN),
        [Some("2"), Some("4"), Some("5"), Some("7")]
    );
}

#[tokio::test]
async fn a_malformed_quote_is_unreadable_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let unclosed = write(&dir, "unclosed.csv", b"id,note\n1,ok\n2,\"never closed\n3,x\n");
    let err = read_csv(&csv_config(&unclosed)).await.unwrap_err();
    assert!(
        matches!(&err, Error::Unreadable(m) if m.contains("line 3") && m.contains("never closed")),
        "{err}"
    );
    let after = write(&dir, "after.csv", b"id,note\n1,ok\n2,ok\n3,\"quoted\"tail\n4,x\n");
    let err = read_csv(&csv_config(&after)).await.unwrap_err();
    assert!(
        matches!(&err, Error::Unreadable(m) if m.contains("line 4") && m.contains("closing quote")),
        "{err}"
    );
    // A quote never closed in a large file stops at the record limit, not at the end of the file.
    let mut long = b"id,note\n1,\"starts here\n".to_vec();
    long.extend(std::iter::repeat_n(b"lorem ipsum\n".as_slice(), 800_000).flatten());
    let long = write(&dir, "long.csv", &long);
    let err = read_csv(&csv_config(&long)).await.unwrap_err();
    assert!(
        matches!(&err, Error::Unreadable(m) if m.contains("line 2") && m.contains("8 MiB")),
        "{err}"
    );
    // The rows before the damage were delivered first.
    let config = CsvSourceConfig {
        batch_size: 1,
        ..csv_config(&after)
    };
    let mut stream = config.read(&ReadRequest::default()).await.unwrap();
    let mut rows = 0;
    while let Some(Ok(batch)) = stream.next().await {
        rows += batch.num_rows();
    }
    assert_eq!(rows, 2);
}

#[tokio::test]
async fn headers_are_trimmed_named_when_empty_and_unique() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "header.csv", " 姓名 ,,住址\n张三,x,北京\n".as_bytes());
    let table = read_csv(&csv_config(&path)).await.unwrap();
    assert_eq!(table.columns, names(&["姓名", "column_2", "住址"]));

    let path = write(&dir, "dup.csv", "姓名,住址, 姓名\n张三,北京,李四\n".as_bytes());
    let config = csv_config(&path);
    for err in [
        config.healthcheck().await.unwrap_err(),
        read_csv(&config).await.unwrap_err(),
    ] {
        assert!(
            matches!(&err, Error::Config { message, .. } if message.contains("\"姓名\"")),
            "{err}"
        );
    }
    let path = write(&dir, "reserved.csv", b"id,_huitong_error\n1,2\n");
    let err = csv_config(&path).healthcheck().await.unwrap_err();
    assert!(
        matches!(&err, Error::Config { message, .. } if message.contains("_huitong_error")),
        "{err}"
    );
}

#[tokio::test]
async fn without_a_header_columns_are_numbered_and_the_first_line_is_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "noheader.csv", b"1;a\n2;b;extra\n");
    let table = read_csv(&CsvSourceConfig {
        has_header: false,
        delimiter: ';',
        ..csv_config(&path)
    })
    .await
    .unwrap();
    assert_eq!(table.columns, names(&["column_1", "column_2"]));
    assert_eq!(table.cells(), [vec![Some("1"), Some("a")], vec![Some("2"), Some("b")]]);
    assert_eq!(table.column(POSITION_COLUMN), [Some("1"), Some("2")]);
    assert_eq!(
        table.column(ROW_ERROR_COLUMN),
        [None, Some("line 2 has 3 fields, the first line has 2")]
    );
}

#[tokio::test]
async fn a_missing_or_empty_file_or_a_bad_delimiter_fails_the_healthcheck() {
    let dir = tempfile::tempdir().unwrap();
    let missing = csv_config(&dir.path().join("nope.csv"));
    assert!(matches!(missing.healthcheck().await, Err(Error::Unreachable(_))));
    assert!(matches!(
        missing.read(&ReadRequest::default()).await,
        Err(Error::Unreachable(_))
    ));
    let directory = csv_config(dir.path());
    assert!(matches!(directory.healthcheck().await, Err(Error::Unreachable(_))));

    let empty = csv_config(&write(&dir, "empty.csv", b""));
    assert!(matches!(empty.healthcheck().await, Err(Error::Unreadable(m)) if m.contains("header")));
    let header_only = csv_config(&write(&dir, "header.csv", b"a,b\n"));
    header_only.healthcheck().await.unwrap();
    let table = read_csv(&header_only).await.unwrap();
    assert!(table.rows.is_empty());

    let bad = CsvSourceConfig {
        delimiter: '，',
        ..header_only
    };
    assert!(matches!(bad.healthcheck().await, Err(Error::Config { field, .. }) if field == "delimiter"));
}

// ---- XLSX ----

fn sample_workbook(path: &Path) {
    let mut workbook = Workbook::new();
    let date = Format::new().set_num_format("yyyy-mm-dd");
    let datetime = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
    let sheet = workbook.add_worksheet();
    sheet.set_name("名单").unwrap();
    for (column, name) in ["姓名", "手机号码", "出生日期", "备注", "分数", "在职", "登记时间"]
        .iter()
        .enumerate()
    {
        sheet.write_string(0, column as u16, *name).unwrap();
    }
    sheet.write_string(1, 0, "张三").unwrap();
    sheet.write_number(1, 1, 13800138000.0).unwrap();
    sheet
        .write_datetime_with_format(1, 2, ExcelDateTime::from_ymd(1990, 1, 2).unwrap(), &date)
        .unwrap();
    // D2 stays empty.
    sheet.write_number(1, 4, 88.5).unwrap();
    sheet.write_boolean(1, 5, true).unwrap();
    let registered = ExcelDateTime::from_ymd(2024, 3, 1).unwrap().and_hms(8, 30, 0).unwrap();
    sheet.write_datetime_with_format(1, 6, registered, &datetime).unwrap();

    sheet.write_string(2, 0, "李四").unwrap();
    sheet.write_number(2, 1, 110105.0).unwrap();
    sheet
        .write_formula(2, 4, Formula::new("=NA()").set_result("#N/A"))
        .unwrap();
    sheet.write_boolean(2, 5, false).unwrap();
    workbook.save(path).unwrap();
}

#[tokio::test]
async fn an_xlsx_sheet_reads_back_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("book.xlsx");
    sample_workbook(&path);
    let config = xlsx_config(&path);
    config.healthcheck().await.unwrap();
    let table = read_xlsx(&config).await.unwrap();
    assert_eq!(
        table.columns,
        names(&["姓名", "手机号码", "出生日期", "备注", "分数", "在职", "登记时间"])
    );
    assert_eq!(
        table.cells(),
        [
            vec![
                Some("张三"),
                Some("13800138000"),
                Some("1990-01-02"),
                None,
                Some("88.5"),
                Some("true"),
                Some("2024-03-01 08:30:00")
            ],
            vec![Some("李四"), Some("110105"), None, None, None, Some("false"), None],
        ]
    );
    assert_eq!(table.column(POSITION_COLUMN), [Some("2"), Some("3")]);
    assert_eq!(table.column(ROW_ERROR_COLUMN), [None, Some("cell E3 is #N/A")]);
}

#[tokio::test]
async fn a_named_sheet_with_its_header_in_row_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.xlsx");
    let mut workbook = Workbook::new();
    workbook.add_worksheet().write_string(0, 0, "封面").unwrap();
    let sheet = workbook.add_worksheet();
    sheet.set_name("数据").unwrap();
    sheet.write_string(0, 0, "2024年低保人员名单").unwrap();
    sheet.write_string(1, 0, "序号").unwrap();
    sheet.write_string(1, 1, "姓名").unwrap();
    for row in 2..27u32 {
        sheet.write_number(row, 0, f64::from(row - 1)).unwrap();
        sheet.write_string(row, 1, format!("人员{}", row - 1)).unwrap();
    }
    // Row 28 is empty; row 29 has a value right of the header.
    sheet.write_number(28, 0, 26.0).unwrap();
    sheet.write_string(28, 1, "人员26").unwrap();
    sheet.write_string(28, 3, "备注").unwrap();
    workbook.save(&path).unwrap();

    let config = XlsxSourceConfig {
        sheet: Some("数据".into()),
        header_row: 2,
        batch_size: 10,
        ..xlsx_config(&path)
    };
    config.healthcheck().await.unwrap();
    let table = read_xlsx(&config).await.unwrap();
    assert_eq!(table.columns, names(&["序号", "姓名"]));
    assert_eq!(table.batch_sizes, [10, 10, 6]);
    assert_eq!(
        table.rows[0][..3],
        [Some("1".into()), Some("人员1".into()), Some("3".into())]
    );
    assert_eq!(table.column(POSITION_COLUMN)[25], Some("29"));
    assert_eq!(
        table.column(ROW_ERROR_COLUMN)[25],
        Some("row 29 has a value in column D, right of the last header")
    );

    // The first sheet by default: a header and no rows, so no batch.
    xlsx_config(&path).healthcheck().await.unwrap();
    let first = read_xlsx(&xlsx_config(&path)).await.unwrap();
    assert!(first.batch_sizes.is_empty());
    // An empty header row, a missing sheet.
    let below = XlsxSourceConfig {
        header_row: 40,
        ..config.clone()
    };
    assert!(matches!(below.healthcheck().await, Err(Error::Unreadable(m)) if m.contains("row 40")));
    let missing = XlsxSourceConfig {
        sheet: Some("Sheet9".into()),
        ..config.clone()
    };
    let err = missing.healthcheck().await.unwrap_err();
    assert!(
        matches!(&err, Error::Config { field, message } if field == "sheet" && message.contains("数据")),
        "{err}"
    );
    let zero = XlsxSourceConfig {
        header_row: 0,
        ..config
    };
    assert!(matches!(zero.healthcheck().await, Err(Error::Config { field, .. }) if field == "header_row"));
}

#[tokio::test]
async fn a_missing_or_broken_workbook_fails_the_healthcheck() {
    let dir = tempfile::tempdir().unwrap();
    let missing = xlsx_config(&dir.path().join("nope.xlsx"));
    assert!(matches!(missing.healthcheck().await, Err(Error::Unreachable(_))));
    assert!(matches!(
        missing.read(&ReadRequest::default()).await,
        Err(Error::Unreachable(_))
    ));
    let broken = xlsx_config(&write(&dir, "broken.xlsx", b"not a zip file"));
    assert!(matches!(broken.healthcheck().await, Err(Error::Unreadable(_))));
}

#[test]
fn numbers_and_dates_render_as_people_write_them() {
    use super::xlsx_source::{render_datetime, render_number};
    for (value, text) in [
        (110105.0, "110105"),
        (13800138000.0, "13800138000"),
        (110105199001011234.0, "110105199001011230"),
        (1e21, "1000000000000000000000"),
        (-42.0, "-42"),
        (-0.0, "0"),
        (0.1, "0.1"),
        (88.5, "88.5"),
        (1.5e-7, "0.00000015"),
    ] {
        assert_eq!(render_number(value), text);
    }
    use calamine::{ExcelDateTime, ExcelDateTimeType};
    let date = |serial: f64| render_datetime(&ExcelDateTime::new(serial, ExcelDateTimeType::DateTime, false));
    assert_eq!(date(45943.0), "2025-10-13");
    assert_eq!(date(45943.5), "2025-10-13 12:00:00");
    assert_eq!(date(45943.541), "2025-10-13 12:59:02.400");
    assert_eq!(date(0.75), "18:00:00");
    let duration = ExcelDateTime::new(1.5, ExcelDateTimeType::TimeDelta, false);
    assert_eq!(render_datetime(&duration), "36:00:00");
}

// ---- property: any table written as CSV reads back cell for cell ----

/// Text as departments write it: Chinese (all in GBK), ASCII, and the characters CSV must quote.
const ALPHABET: &[char] = &[
    '张', '王', '李', '赵', '刘', '陈', '杨', '黄', '省', '市', '区', '县', '街', '道', '号', '·', '（', '）', 'a',
    'Z', '0', '9', ' ', ',', '"', '\n', '\r', ';', '-',
];

fn cell() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(ALPHABET), 0..8).prop_map(|chars| chars.into_iter().collect())
}

fn table() -> impl Strategy<Value = Vec<Vec<String>>> {
    (1usize..5).prop_flat_map(|width| prop::collection::vec(prop::collection::vec(cell(), width), 0..12))
}

proptest! {
    #[test]
    fn any_table_written_as_csv_reads_back(rows in table(), gbk: bool, crlf: bool, width in 1usize..5) {
        let width = rows.first().map_or(width, Vec::len);
        let header: Vec<String> = (1..=width).map(|i| format!("列{i}")).collect();
        let terminator = if crlf { csv::Terminator::CRLF } else { csv::Terminator::Any(b'\n') };
        let mut writer = csv::WriterBuilder::new().terminator(terminator).from_writer(Vec::new());
        writer.write_record(&header).unwrap();
        for row in &rows {
            writer.write_record(row).unwrap();
        }
        let text = String::from_utf8(writer.into_inner().unwrap()).unwrap();
        let (bytes, encoding) = if gbk {
            let (bytes, _, unmappable) = encoding_rs::GBK.encode(&text);
            prop_assert!(!unmappable);
            // GBK text that happens to be valid UTF-8 is read as UTF-8 by `auto`: name it.
            let encoding = if std::str::from_utf8(&bytes).is_ok() { CsvEncoding::Gbk } else { CsvEncoding::Auto };
            (bytes.into_owned(), encoding)
        } else {
            (text.into_bytes(), CsvEncoding::Auto)
        };
        let dir = tempfile::tempdir().unwrap();
        let config = CsvSourceConfig { encoding, batch_size: 5, ..csv_config(&write(&dir, "p.csv", &bytes)) };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let table = runtime.block_on(read_csv(&config)).unwrap();
        let expected: Vec<Vec<Option<&str>>> = rows
            .iter()
            .map(|r| r.iter().map(|c| Some(c.as_str()).filter(|c| !c.is_empty())).collect())
            .collect();
        prop_assert_eq!(table.cells(), expected);
        // Positions are the first line of each record, counting the line breaks inside quotes.
        let mut line = 2;
        for (i, row) in rows.iter().enumerate() {
            let expected_line = line.to_string();
            prop_assert_eq!(table.column(POSITION_COLUMN)[i], Some(expected_line.as_str()));
            line += 1 + row.iter().map(|c| c.matches('\n').count()).sum::<usize>();
        }
        prop_assert!(table.column(ROW_ERROR_COLUMN).iter().all(Option::is_none));
    }
}
