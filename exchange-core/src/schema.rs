//! Library schemas: the fields of each base library, their semantic kind (which drives
//! normalization and masking) and default sensitivity.
//!
//! Every library table also carries system columns: `_op` (I insert, U update, D delete),
//! `_version` (the Delta version that wrote the row), `_source` (department code), `_run` (sync
//! run id) and `_ingested_at`.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

use crate::domain::Sensitivity;

/// What a field holds, beyond its storage type: decides how it is parsed and masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// A GB 11643 citizen ID number.
    IdNumber,
    /// A person's name.
    PersonName,
    /// A GB/T 2261.1 gender.
    Gender,
    /// A calendar date, stored as `YYYY-MM-DD`.
    Date,
    /// A GB/T 2260 region code.
    RegionCode,
    /// A postal address.
    Address,
    /// A mainland mobile number.
    Mobile,
    /// Free text.
    Text,
}

/// One field of a library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LibraryField {
    /// Column name (English, snake_case).
    pub name: &'static str,
    /// The Chinese label (信息项名称).
    pub label_zh: &'static str,
    /// Semantic kind.
    pub kind: FieldKind,
    /// Default sensitivity grade when the field is registered in the catalog.
    pub sensitivity: Sensitivity,
    /// Whether a row without it is rejected.
    pub required: bool,
}

/// A base or themed library's schema.
#[derive(Debug)]
pub struct LibrarySchema {
    /// Library name, also its folder under `<data dir>/libraries`.
    pub name: &'static str,
    /// Chinese name.
    pub label_zh: &'static str,
    /// The key field (the first of `fields`).
    pub key: &'static str,
    /// The fields, key first.
    pub fields: &'static [LibraryField],
}

const fn field(
    name: &'static str,
    label_zh: &'static str,
    kind: FieldKind,
    sensitivity: Sensitivity,
    required: bool,
) -> LibraryField {
    LibraryField {
        name,
        label_zh,
        kind,
        sensitivity,
        required,
    }
}

/// 人口基础库: the population base library, keyed by citizen ID number.
pub static POPULATION: LibrarySchema = LibrarySchema {
    name: "population",
    label_zh: "人口基础库",
    key: "id_number",
    fields: &[
        field("id_number", "公民身份号码", FieldKind::IdNumber, Sensitivity::L3, true),
        field("name", "姓名", FieldKind::PersonName, Sensitivity::L3, true),
        field("gender", "性别", FieldKind::Gender, Sensitivity::L2, false),
        field("birth_date", "出生日期", FieldKind::Date, Sensitivity::L2, false),
        field("ethnicity", "民族", FieldKind::Text, Sensitivity::L2, false),
        field(
            "region_code",
            "户籍地行政区划代码",
            FieldKind::RegionCode,
            Sensitivity::L1,
            false,
        ),
        field("address", "户籍地址", FieldKind::Address, Sensitivity::L3, false),
        field("phone", "联系电话", FieldKind::Mobile, Sensitivity::L4, false),
    ],
};

/// Every library this build knows.
pub static LIBRARIES: &[&LibrarySchema] = &[&POPULATION];

/// System columns appended after the library's own fields.
pub const SYSTEM_COLUMNS: [&str; 5] = ["_op", "_version", "_source", "_run", "_ingested_at"];

impl LibrarySchema {
    /// Looks a library up by name.
    pub fn by_name(name: &str) -> crate::Result<&'static LibrarySchema> {
        LIBRARIES
            .iter()
            .copied()
            .find(|s| s.name == name)
            .ok_or_else(|| crate::Error::UnknownLibrary(name.to_string()))
    }

    /// Position of a field by name.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// The Arrow schema of the library table: the fields, then the system columns.
    pub fn arrow_schema(&self) -> Arc<Schema> {
        let mut fields: Vec<Field> = self
            .fields
            .iter()
            .map(|f| {
                let data_type = match f.kind {
                    FieldKind::Date => DataType::Date32,
                    _ => DataType::Utf8,
                };
                Field::new(f.name, data_type, f.name != self.key)
            })
            .collect();
        fields.extend([
            Field::new("_op", DataType::Utf8, false),
            Field::new("_version", DataType::Int64, false),
            Field::new("_source", DataType::Utf8, false),
            Field::new("_run", DataType::Int64, false),
            Field::new(
                "_ingested_at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
        ]);
        Arc::new(Schema::new(fields))
    }
}

impl LibraryField {
    /// Normalizes one raw source value for this field: `Ok(None)` for an empty value,
    /// `Ok(Some(canonical))` when it parses, `Err(reason)` when it does not.
    pub fn normalize(&self, raw: &str) -> Result<Option<String>, String> {
        use crate::normalize::{fold_width, normalize_gender, normalize_mobile, parse_date};
        let folded = fold_width(raw);
        if folded.is_empty() {
            return Ok(None);
        }
        let value = match self.kind {
            FieldKind::IdNumber => crate::IdNumber::parse(&folded)
                .map(|id| id.as_str().to_string())
                .map_err(|e| e.to_string())?,
            FieldKind::Gender => normalize_gender(&folded)
                .ok_or_else(|| format!("{folded:?} is not a GB/T 2261.1 gender"))?
                .to_string(),
            FieldKind::Date => parse_date(&folded)
                .ok_or_else(|| format!("{folded:?} is not a recognizable date"))?
                .format("%Y-%m-%d")
                .to_string(),
            FieldKind::RegionCode => crate::RegionCode::parse(&folded)
                .map_err(|e| e.to_string())?
                .as_str()
                .to_string(),
            FieldKind::Mobile => {
                normalize_mobile(&folded).ok_or_else(|| format!("{folded:?} is not a mainland mobile number"))?
            }
            // Names hold no inner spaces in Chinese; a stray one comes from data entry.
            FieldKind::PersonName if folded.chars().any(|c| c > '\u{2E80}') => folded.split_whitespace().collect(),
            FieldKind::PersonName | FieldKind::Address | FieldKind::Text => folded,
        };
        Ok(Some(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str) -> &'static LibraryField {
        &POPULATION.fields[POPULATION.position(name).unwrap()]
    }

    #[test]
    fn normalizes_by_kind() {
        assert_eq!(
            field("id_number").normalize("110105491231002").unwrap().as_deref(),
            Some("11010519491231002X")
        );
        assert_eq!(field("name").normalize(" 张 三 ").unwrap().as_deref(), Some("张三"));
        assert_eq!(field("gender").normalize("2").unwrap().as_deref(), Some("女"));
        assert_eq!(
            field("birth_date").normalize("1990年1月2日").unwrap().as_deref(),
            Some("1990-01-02")
        );
        assert_eq!(field("phone").normalize("").unwrap(), None);
    }

    #[test]
    fn rejections_say_why() {
        let err = field("id_number").normalize("110105194912310021").unwrap_err();
        assert!(err.contains("check character"), "{err}");
        assert!(field("birth_date").normalize("31/12/1990").is_err());
        assert!(field("region_code").normalize("999999").is_err());
    }

    #[test]
    fn arrow_schema_has_fields_then_system_columns() {
        let schema = POPULATION.arrow_schema();
        assert_eq!(schema.field(0).name(), "id_number");
        assert!(!schema.field(0).is_nullable());
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(&names[POPULATION.fields.len()..], &SYSTEM_COLUMNS);
    }
}
