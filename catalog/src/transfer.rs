//! Catalog import and export in the layout of a compilation template (目录编制模板): one row
//! per data item, the resource's columns repeated, Chinese headers — so departments keep
//! compiling catalogs in Excel as they do today.
//!
//! `.xlsx` (first sheet) and `.csv` (UTF-8, with or without BOM, or GBK/GB18030 as Excel
//! writes on Chinese Windows). An import validates every row with the same rules as the API,
//! reports every error by row and column, and writes all resources in one transaction or none.

use std::collections::HashMap;
use std::path::Path;

use exchange_core::{OpenType, Sensitivity, ShareMethod, ShareType, UpdateCycle};
use serde::Serialize;

use crate::error::Validator;
use crate::resources::{Classification, DataItem, ResourceInput, insert_resource, write_update};
use crate::{Catalog, Error, Result};

/// The template's columns: header, and the request field it fills.
const COLUMNS: &[(&str, &str)] = &[
    ("资源代码", "code"),
    ("资源名称", "name"),
    ("资源提供方代码", "provider_code"),
    ("资源分类", "classification"),
    ("类目编码", "class_code"),
    ("资源摘要", "summary"),
    ("资源格式", "format"),
    ("共享类型", "share_type"),
    ("共享条件", "share_conditions"),
    ("共享依据", "legal_basis"),
    ("共享方式", "share_method"),
    ("开放类型", "open_type"),
    ("更新周期", "update_cycle"),
    ("发布日期", "publish_date"),
    ("关联资源代码", "related_codes"),
    ("所属库", "library"),
    ("信息项英文名", "items.name"),
    ("信息项名称", "items.label_zh"),
    ("数据类型", "items.data_type"),
    ("数据长度", "items.length"),
    ("敏感级别", "items.sensitivity"),
    ("是否主键", "items.is_key"),
    ("是否权威来源", "items.authoritative"),
];

/// Columns every file must have; the others may be left out.
const REQUIRED: &[&str] = &[
    "资源名称",
    "资源提供方代码",
    "资源分类",
    "类目编码",
    "共享类型",
    "共享方式",
    "开放类型",
    "更新周期",
    "信息项英文名",
    "信息项名称",
    "数据类型",
    "敏感级别",
];

const DATA_TYPE_LABELS: &[(&str, &str)] = &[
    ("string", "字符型"),
    ("integer", "整型"),
    ("decimal", "数值型"),
    ("date", "日期型"),
    ("datetime", "日期时间型"),
    ("boolean", "布尔型"),
    ("binary", "二进制"),
];

/// One problem of an import, where a data officer finds it in the workbook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportError {
    /// 1-based row as Excel numbers it (the header is row 1).
    pub row: usize,
    /// The column's header, when one is to blame.
    pub column: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.column {
            Some(column) => write!(f, "第 {} 行「{}」: {}", self.row, column, self.message),
            None => write!(f, "第 {} 行: {}", self.row, self.message),
        }
    }
}

/// The outcome of an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ImportOutcome {
    /// Everything was written.
    Imported {
        /// Codes of new resources (drafts).
        created: Vec<String>,
        /// Codes of changed resources.
        updated: Vec<String>,
        /// Codes of resources the file did not change.
        unchanged: Vec<String>,
    },
    /// Nothing was written, for these reasons.
    Rejected(Vec<ImportError>),
}

/// A resource assembled from its rows.
struct Group {
    first_row: usize,
    item_rows: Vec<usize>,
    input: ResourceInput,
}

fn header_of(field: &str) -> Option<&'static str> {
    let base = field.split('[').next().unwrap_or(field);
    let item_field = field.split("].").nth(1);
    let key = match (base, item_field) {
        ("items", Some(sub)) => format!("items.{sub}"),
        ("items", None) => "items.name".to_string(),
        (other, _) => other.to_string(),
    };
    COLUMNS.iter().find(|(_, f)| *f == key).map(|(h, _)| *h)
}

/// Reads a file's first sheet (xlsx) or its rows (csv) as text.
pub fn read_rows(path: &Path) -> Result<Vec<Vec<String>>> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let io = |e: String| Error::Invalid {
        field: "file".into(),
        message: format!("{}: {e}", path.display()),
    };
    match ext.as_str() {
        "xlsx" | "xlsm" | "xls" => {
            use calamine::{Data, Reader, open_workbook_auto};
            let mut workbook = open_workbook_auto(path).map_err(|e| io(e.to_string()))?;
            let range = workbook
                .worksheet_range_at(0)
                .ok_or_else(|| io("the workbook has no sheet".into()))?
                .map_err(|e| io(e.to_string()))?;
            Ok(range
                .rows()
                .map(|row| {
                    row.iter()
                        .map(|cell| match cell {
                            Data::Empty => String::new(),
                            Data::String(s) => s.clone(),
                            Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
                            Data::Float(f) => f.to_string(),
                            Data::Int(i) => i.to_string(),
                            Data::Bool(b) => if *b { "是" } else { "否" }.to_string(),
                            // Excel counts days from 1899-12-30.
                            Data::DateTime(d) => (chrono::NaiveDate::from_ymd_opt(1899, 12, 30).expect("date")
                                + chrono::Duration::days(d.as_f64() as i64))
                            .to_string(),
                            other => other.to_string(),
                        })
                        .collect()
                })
                .collect())
        }
        "csv" | "txt" => {
            let bytes = std::fs::read(path).map_err(|e| io(e.to_string()))?;
            let text = decode_text(&bytes);
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(text.as_bytes());
            reader
                .records()
                .map(|r| {
                    r.map(|rec| rec.iter().map(str::to_string).collect())
                        .map_err(|e| io(e.to_string()))
                })
                .collect()
        }
        other => Err(io(format!("unsupported file type .{other}: use .xlsx or .csv"))),
    }
}

/// UTF-8 (BOM stripped) when the bytes are UTF-8, else GB18030 (a superset of GBK).
fn decode_text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => encoding_rs::GB18030.decode(bytes).0.into_owned(),
    }
}

fn yes_no(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "是" | "y" | "yes" | "true" | "1" => Some(true),
        "否" | "n" | "no" | "false" | "0" | "" => Some(false),
        _ => None,
    }
}

/// Turns rows into resources; records every cell that does not parse.
fn parse_rows(rows: &[Vec<String>], errors: &mut Vec<ImportError>) -> Vec<Group> {
    let Some(header) = rows.first() else {
        errors.push(ImportError {
            row: 1,
            column: None,
            message: "the file is empty".into(),
        });
        return Vec::new();
    };
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, cell) in header.iter().enumerate() {
        let name = cell.trim().trim_start_matches('\u{feff}');
        match COLUMNS.iter().find(|(h, _)| *h == name) {
            Some((h, _)) => {
                index.insert(h, i);
            }
            None if name.is_empty() => {}
            None => errors.push(ImportError {
                row: 1,
                column: Some(name.to_string()),
                message: "unknown column; the template's columns are listed in docs/catalog.md".into(),
            }),
        }
    }
    for required in REQUIRED {
        if !index.contains_key(required) {
            errors.push(ImportError {
                row: 1,
                column: Some((*required).into()),
                message: "required column missing".into(),
            });
        }
    }
    if !errors.is_empty() {
        return Vec::new();
    }
    let mut groups: Vec<Group> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    for (n, row) in rows.iter().enumerate().skip(1) {
        let row_number = n + 1;
        if row.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let cell = |h: &str| {
            index
                .get(h)
                .and_then(|i| row.get(*i))
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let mut fail = |h: &str, message: String| {
            errors.push(ImportError {
                row: row_number,
                column: Some(h.to_string()),
                message,
            });
        };
        fn vocab<T: std::str::FromStr<Err = exchange_core::Error>>(text: &str) -> std::result::Result<T, String> {
            text.parse::<T>().map_err(|e| e.to_string())
        }
        let share_type = vocab::<ShareType>(&cell("共享类型"))
            .map_err(|e| fail("共享类型", e))
            .ok();
        let share_method = vocab::<ShareMethod>(&cell("共享方式"))
            .map_err(|e| fail("共享方式", e))
            .ok();
        let open_type = vocab::<OpenType>(&cell("开放类型"))
            .map_err(|e| fail("开放类型", e))
            .ok();
        let update_cycle = vocab::<UpdateCycle>(&cell("更新周期"))
            .map_err(|e| fail("更新周期", e))
            .ok();
        let classification = Classification::parse(&cell("资源分类"));
        if classification.is_none() {
            fail(
                "资源分类",
                format!(
                    "{:?} is not 基础信息资源, 主题信息资源 or 部门信息资源",
                    cell("资源分类")
                ),
            );
        }
        let publish_date = match cell("发布日期") {
            d if d.is_empty() => None,
            d => {
                let parsed = exchange_core::normalize::parse_date(&d);
                if parsed.is_none() {
                    fail("发布日期", format!("{d:?} is not a date"));
                }
                parsed
            }
        };
        let data_type_text = cell("数据类型");
        let data_type = DATA_TYPE_LABELS
            .iter()
            .find(|(code, label)| *code == data_type_text || *label == data_type_text)
            .map(|(code, _)| code.to_string());
        if data_type.is_none() {
            fail(
                "数据类型",
                format!(
                    "{data_type_text:?} is not one of {}",
                    DATA_TYPE_LABELS.iter().map(|(_, l)| *l).collect::<Vec<_>>().join("、")
                ),
            );
        }
        let length = match cell("数据长度") {
            l if l.is_empty() => None,
            l => {
                let parsed = l.parse::<i64>().ok();
                if parsed.is_none() {
                    fail("数据长度", format!("{l:?} is not a whole number"));
                }
                parsed
            }
        };
        let sensitivity = vocab::<Sensitivity>(&cell("敏感级别"))
            .map_err(|e| fail("敏感级别", e))
            .ok();
        let is_key = yes_no(&cell("是否主键"));
        if is_key.is_none() {
            fail("是否主键", "是 or 否".into());
        }
        let authoritative = yes_no(&cell("是否权威来源"));
        if authoritative.is_none() {
            fail("是否权威来源", "是 or 否".into());
        }
        let (
            Some(share_type),
            Some(share_method),
            Some(open_type),
            Some(update_cycle),
            Some(classification),
            Some(data_type),
            Some(sensitivity),
            Some(is_key),
            Some(authoritative),
        ) = (
            share_type,
            share_method,
            open_type,
            update_cycle,
            classification,
            data_type,
            sensitivity,
            is_key,
            authoritative,
        )
        else {
            continue;
        };
        let text = |h: &str| Some(cell(h)).filter(|s| !s.is_empty());
        let input = ResourceInput {
            code: text("资源代码"),
            name: cell("资源名称"),
            provider_code: cell("资源提供方代码"),
            classification,
            class_code: cell("类目编码"),
            library: text("所属库"),
            summary: cell("资源摘要"),
            format: text("资源格式").unwrap_or_else(|| "database".into()),
            share_type,
            share_conditions: text("共享条件"),
            legal_basis: text("共享依据"),
            share_method,
            open_type,
            update_cycle,
            publish_date,
            related_codes: cell("关联资源代码")
                .split([';', '；', ',', '，'])
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            connector: None,
            items: Vec::new(),
        };
        let item = DataItem {
            name: cell("信息项英文名"),
            label_zh: cell("信息项名称"),
            data_type,
            length,
            sensitivity,
            is_key,
            authoritative,
        };
        let key = input
            .code
            .clone()
            .unwrap_or_else(|| format!("{}\u{1f}{}", input.name, input.provider_code));
        match by_key.get(&key) {
            Some(&g) => {
                let group = &mut groups[g];
                // The resource's columns repeat on every item row and must agree.
                let (first, this) = (
                    serde_json::to_value(&group.input).ok(),
                    serde_json::to_value(&input).ok(),
                );
                if let (Some(serde_json::Value::Object(a)), Some(serde_json::Value::Object(b))) = (first, this) {
                    for (field, value) in &b {
                        if field != "items" && a.get(field) != Some(value) {
                            errors.push(ImportError {
                                row: row_number,
                                column: header_of(field).map(str::to_string),
                                message: format!("differs from row {} of the same resource", group.first_row),
                            });
                        }
                    }
                }
                group.input.items.push(item);
                group.item_rows.push(row_number);
            }
            None => {
                by_key.insert(key, groups.len());
                let mut input = input;
                input.items.push(item);
                groups.push(Group {
                    first_row: row_number,
                    item_rows: vec![row_number],
                    input,
                });
            }
        }
    }
    if groups.is_empty() && errors.is_empty() {
        errors.push(ImportError {
            row: 2,
            column: None,
            message: "no resource rows below the header".into(),
        });
    }
    groups
}

/// `input` with what the template does not carry taken from `current`.
fn with_binding(current: &crate::Resource, input: &ResourceInput) -> ResourceInput {
    let mut input = input.clone();
    input.connector = current.meta.connector.clone();
    input
}

/// Whether the rows say nothing new about `current` (then its state does not matter).
fn same_metadata(current: &crate::Resource, input: &ResourceInput) -> bool {
    serde_json::to_value(with_binding(current, input)).ok() == serde_json::to_value(&current.meta).ok()
}

/// Where a validation error of `group` sits in the file.
fn locate(group: &Group, field: &str, message: String) -> ImportError {
    let item_index = field
        .strip_prefix("items[")
        .and_then(|rest| rest.split(']').next())
        .and_then(|i| i.parse::<usize>().ok());
    let row = item_index
        .and_then(|i| group.item_rows.get(i).copied())
        .unwrap_or(group.first_row);
    ImportError {
        row,
        column: header_of(field).map(str::to_string),
        message,
    }
}

impl Catalog {
    /// Imports a compilation-template file: new resources become drafts, existing drafts and
    /// published resources are updated. Every error is reported; on any error nothing is written.
    pub async fn import_catalog(&self, actor: &str, path: &Path) -> Result<ImportOutcome> {
        let rows = read_rows(path)?;
        let mut errors = Vec::new();
        let groups = parse_rows(&rows, &mut errors);
        if !errors.is_empty() {
            return Ok(ImportOutcome::Rejected(errors));
        }
        enum Plan {
            Unchanged(String),
            Create(i64),
            Update(Box<(crate::Resource, ResourceInput)>),
        }
        let mut plans = Vec::with_capacity(groups.len());
        for group in &groups {
            let mut v = Validator::default();
            let existing = match &group.input.code {
                Some(code) => match self.resource_by_code(code).await {
                    Ok(resource) => Some(resource),
                    Err(Error::NotFound { .. }) => None,
                    Err(e) => return Err(e),
                },
                None => None,
            };
            let plan = match existing {
                // The template has no connector column: an import keeps the binding.
                Some(current) if same_metadata(&current, &group.input) => Some(Plan::Unchanged(current.code.clone())),
                Some(current) => match self
                    .check_update(&current, &with_binding(&current, &group.input), &mut v)
                    .await
                {
                    Ok(input) => Some(Plan::Update(Box::new((current, input)))),
                    Err(Error::State(message)) => {
                        errors.push(ImportError {
                            row: group.first_row,
                            column: Some("资源代码".into()),
                            message,
                        });
                        None
                    }
                    Err(e) => return Err(e),
                },
                None => self.check_new(&group.input, &mut v).await?.map(Plan::Create),
            };
            for e in v.into_errors() {
                errors.push(locate(group, &e.field, e.message));
            }
            plans.push(plan);
        }
        if !errors.is_empty() {
            errors.sort_by_key(|e| e.row);
            return Ok(ImportOutcome::Rejected(errors));
        }
        let (mut created, mut updated, mut unchanged) = (Vec::new(), Vec::new(), Vec::new());
        let mut tx = self.pool.begin().await?;
        for (group, plan) in groups.iter().zip(plans) {
            match plan {
                Some(Plan::Unchanged(code)) => unchanged.push(code),
                Some(Plan::Create(provider_id)) => {
                    created.push(insert_resource(&mut tx, actor, &group.input, provider_id).await?)
                }
                Some(Plan::Update(update)) => {
                    let (current, input) = *update;
                    if write_update(&mut tx, actor, &current, input).await? {
                        updated.push(current.code.clone());
                    } else {
                        unchanged.push(current.code.clone());
                    }
                }
                None => unreachable!("errors were returned above"),
            }
        }
        tx.commit().await?;
        Ok(ImportOutcome::Imported {
            created,
            updated,
            unchanged,
        })
    }

    /// Exports every resource to `path` (.xlsx or .csv, UTF-8 with BOM so Excel shows Chinese),
    /// one row per data item. Returns the number of resources written.
    pub async fn export_catalog(&self, path: &Path) -> Result<usize> {
        let resources = self.resources().await?;
        let mut rows: Vec<Vec<String>> = vec![COLUMNS.iter().map(|(h, _)| h.to_string()).collect()];
        for r in &resources {
            let m = &r.meta;
            for item in &m.items {
                let data_type = DATA_TYPE_LABELS
                    .iter()
                    .find(|(c, _)| *c == item.data_type)
                    .map_or(item.data_type.as_str(), |(_, l)| l);
                let yes = |b: bool| if b { "是" } else { "否" }.to_string();
                rows.push(vec![
                    r.code.clone(),
                    m.name.clone(),
                    m.provider_code.clone(),
                    m.classification.label_zh().into(),
                    m.class_code.clone(),
                    m.summary.clone(),
                    m.format.clone(),
                    m.share_type.label_zh().into(),
                    m.share_conditions.clone().unwrap_or_default(),
                    m.legal_basis.clone().unwrap_or_default(),
                    m.share_method.label_zh().into(),
                    m.open_type.label_zh().into(),
                    m.update_cycle.label_zh().into(),
                    m.publish_date.map(|d| d.to_string()).unwrap_or_default(),
                    m.related_codes.join(";"),
                    m.library.clone().unwrap_or_default(),
                    item.name.clone(),
                    item.label_zh.clone(),
                    data_type.to_string(),
                    item.length.map(|l| l.to_string()).unwrap_or_default(),
                    item.sensitivity.code().into(),
                    yes(item.is_key),
                    yes(item.authoritative),
                ]);
            }
        }
        let fail = |e: String| Error::Invalid {
            field: "file".into(),
            message: format!("{}: {e}", path.display()),
        };
        match path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase()
            .as_str()
        {
            "xlsx" => {
                let mut workbook = rust_xlsxwriter::Workbook::new();
                let sheet = workbook.add_worksheet();
                sheet.set_name("政务信息资源目录").map_err(|e| fail(e.to_string()))?;
                let bold = rust_xlsxwriter::Format::new().set_bold();
                for (r, row) in rows.iter().enumerate() {
                    for (c, value) in row.iter().enumerate() {
                        let (r, c) = (r as u32, c as u16);
                        if r == 0 {
                            sheet.write_string_with_format(r, c, value, &bold)
                        } else {
                            sheet.write_string(r, c, value)
                        }
                        .map_err(|e| fail(e.to_string()))?;
                    }
                }
                sheet.set_freeze_panes(1, 0).map_err(|e| fail(e.to_string()))?;
                for (c, (header, _)) in COLUMNS.iter().enumerate() {
                    sheet
                        .set_column_width(c as u16, (header.chars().count() * 2 + 4) as f64)
                        .map_err(|e| fail(e.to_string()))?;
                }
                workbook.save(path).map_err(|e| fail(e.to_string()))?;
            }
            "csv" => {
                let mut out = b"\xEF\xBB\xBF".to_vec();
                {
                    let mut writer = csv::Writer::from_writer(&mut out);
                    for row in &rows {
                        writer.write_record(row).map_err(|e| fail(e.to_string()))?;
                    }
                    writer.flush().map_err(|e| fail(e.to_string()))?;
                }
                std::fs::write(path, out).map_err(|e| fail(e.to_string()))?;
            }
            other => return Err(fail(format!("unsupported file type .{other}: use .xlsx or .csv"))),
        }
        Ok(resources.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gbk_csv_decodes() {
        let (bytes, _, _) = encoding_rs::GBK.encode("资源名称,共享类型\n全员人口基础信息,有条件共享\n");
        assert_eq!(decode_text(&bytes), "资源名称,共享类型\n全员人口基础信息,有条件共享\n");
        assert_eq!(decode_text("\u{feff}资源".as_bytes()), "资源");
    }

    #[test]
    fn field_errors_map_to_template_columns() {
        assert_eq!(header_of("legal_basis"), Some("共享依据"));
        assert_eq!(header_of("items[2].data_type"), Some("数据类型"));
        assert_eq!(header_of("items"), Some("信息项英文名"));
        assert_eq!(header_of("related_codes[0]"), Some("关联资源代码"));
    }
}
