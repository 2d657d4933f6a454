//! Library schemas: the fields of each base library, their semantic kind (which drives
//! normalization and masking) and default sensitivity.
//!
//! Every library table also carries system columns: `_op` (I insert, U update, D delete),
//! `_version` (the Delta version that wrote the row), `_source` (department code), `_run` (sync
//! run id), `_ingested_at` and `_lineage` (each field's origin, see [`crate::lineage`]). A fourth
//! op, `C`, records the values that lost a one-source-per-field conflict (see
//! [`crate::store`]).

use std::borrow::Cow;
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
    /// A GB 32100 unified social credit code.
    Uscc,
    /// A subject: a unified social credit code (an organization) or a citizen ID number (a person).
    Subject,
    /// A telephone number: mobile, or landline with area code.
    Phone,
    /// A decimal amount.
    Decimal,
    /// A GB/T 4754 industry code.
    IndustryCode,
    /// A longitude in decimal degrees.
    Longitude,
    /// A latitude in decimal degrees.
    Latitude,
    /// One of a fixed list of values (the field's `allowed` list).
    Code,
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
    /// For [`FieldKind::Code`]: the values it may take.
    pub allowed: &'static [&'static str],
}

/// A base or themed library's schema.
#[derive(Debug)]
pub struct LibrarySchema {
    /// Library name, also its folder under `<data dir>/libraries`.
    pub name: &'static str,
    /// Chinese name.
    pub label_zh: &'static str,
    /// The schema's version: raised whenever its fields change (docs/libraries.md keeps the
    /// history). A library stored under another shape is refused on open.
    pub version: u32,
    /// The key field (the first of `fields`).
    pub key: &'static str,
    /// When the key is compound: the fields it is made of, joined by `:` in this order (the
    /// key field itself is then derived, never mapped from a source).
    pub key_parts: &'static [&'static str],
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
        allowed: &[],
    }
}

const fn code(name: &'static str, label_zh: &'static str, allowed: &'static [&'static str]) -> LibraryField {
    LibraryField {
        name,
        label_zh,
        kind: FieldKind::Code,
        sensitivity: Sensitivity::L1,
        required: false,
        allowed,
    }
}

use FieldKind as K;
use Sensitivity::{L1, L2, L3, L4};

/// 人口基础库: the population base library, keyed by citizen ID number.
pub static POPULATION: LibrarySchema = LibrarySchema {
    name: "population",
    label_zh: "人口基础库",
    version: 2,
    key: "id_number",
    key_parts: &[],
    fields: &[
        field("id_number", "公民身份号码", K::IdNumber, L3, true),
        field("name", "姓名", K::PersonName, L3, true),
        field("gender", "性别", K::Gender, L2, false),
        field("birth_date", "出生日期", K::Date, L2, false),
        field("ethnicity", "民族", K::Text, L2, false),
        field("region_code", "户籍地行政区划代码", K::RegionCode, L1, false),
        field("address", "户籍地址", K::Address, L3, false),
        field("phone", "联系电话", K::Mobile, L4, false),
        field("current_address", "现住址", K::Address, L3, false),
        LibraryField {
            sensitivity: L3,
            ..code("marital_status", "婚姻状况", &["未婚", "已婚", "丧偶", "离婚"])
        },
        LibraryField {
            sensitivity: L2,
            ..code(
                "education",
                "学历",
                &[
                    "研究生",
                    "大学本科",
                    "大学专科",
                    "中等专科",
                    "高中",
                    "初中",
                    "小学",
                    "文盲或半文盲",
                ],
            )
        },
        LibraryField {
            sensitivity: L2,
            ..code("status", "人员状态", &["正常", "死亡", "迁出"])
        },
    ],
};

/// 法人基础库: legal entities (enterprises, institutions, social organizations), keyed by
/// unified social credit code.
pub static LEGAL_ENTITY: LibrarySchema = LibrarySchema {
    name: "legal_entity",
    label_zh: "法人基础库",
    version: 1,
    key: "uscc",
    key_parts: &[],
    fields: &[
        field("uscc", "统一社会信用代码", K::Uscc, L1, true),
        field("name", "名称", K::Text, L1, true),
        code(
            "entity_type",
            "主体类型",
            &[
                "企业",
                "个体工商户",
                "农民专业合作社",
                "机关",
                "事业单位",
                "社会团体",
                "民办非企业单位",
                "基金会",
                "其他",
            ],
        ),
        field("legal_rep_name", "法定代表人", K::PersonName, L2, false),
        field("legal_rep_id", "法定代表人身份证号", K::IdNumber, L3, false),
        field("registered_capital", "注册资本(万元)", K::Decimal, L1, false),
        field("established", "成立日期", K::Date, L1, false),
        field("region_code", "住所行政区划代码", K::RegionCode, L1, false),
        field("address", "住所", K::Text, L1, false),
        field("business_scope", "经营范围", K::Text, L1, false),
        field("industry_code", "行业代码", K::IndustryCode, L1, false),
        code("status", "登记状态", &["存续", "在业", "吊销", "注销", "迁出"]),
    ],
};

/// 社会信用基础库: credit records about legal entities and people, keyed by record number.
pub static CREDIT: LibrarySchema = LibrarySchema {
    name: "credit",
    label_zh: "社会信用基础库",
    version: 1,
    key: "record_id",
    key_parts: &[],
    fields: &[
        field("record_id", "信用记录编号", K::Text, L1, true),
        field("subject_id", "主体代码", K::Subject, L2, true),
        field("subject_name", "主体名称", K::Text, L2, false),
        LibraryField {
            required: true,
            ..code(
                "record_type",
                "记录类型",
                &["行政许可", "行政处罚", "守信红名单", "失信黑名单"],
            )
        },
        field("authority", "认定机关", K::Text, L1, false),
        field("decision_date", "决定日期", K::Date, L1, false),
        field("valid_until", "有效期至", K::Date, L1, false),
        field("content", "内容", K::Text, L2, false),
    ],
};

/// 电子证照基础库: e-licenses, keyed by license type and number together.
pub static LICENSE: LibrarySchema = LibrarySchema {
    name: "license",
    label_zh: "电子证照基础库",
    version: 1,
    key: "license_id",
    key_parts: &["license_type", "license_no"],
    fields: &[
        field("license_id", "证照标识", K::Text, L1, true),
        field("license_type", "证照类型代码", K::Text, L1, true),
        field("license_no", "证照编号", K::Text, L2, true),
        field("license_name", "证照名称", K::Text, L1, false),
        field("holder_id", "持证主体代码", K::Subject, L3, true),
        field("holder_name", "持证主体名称", K::Text, L3, false),
        field("issuer", "发证机关", K::Text, L1, false),
        field("issue_date", "发证日期", K::Date, L1, false),
        field("valid_until", "有效期至", K::Date, L1, false),
        code("status", "证照状态", &["有效", "注销", "过期", "吊销"]),
    ],
};

/// 自然资源和空间地理基础库: standardized addresses and places, keyed by address code.
pub static SPATIAL: LibrarySchema = LibrarySchema {
    name: "spatial",
    label_zh: "自然资源和空间地理基础库",
    version: 1,
    key: "address_id",
    key_parts: &[],
    fields: &[
        field("address_id", "地址编码", K::Text, L1, true),
        field("address", "标准地址", K::Address, L1, true),
        field("region_code", "乡镇街道区划代码", K::RegionCode, L1, true),
        field("place_name", "地名", K::Text, L1, false),
        field("longitude", "经度", K::Longitude, L1, false),
        field("latitude", "纬度", K::Latitude, L1, false),
        code("crs", "坐标系", &["WGS84", "CGCS2000"]),
        field("parcel_id", "宗地代码", K::Text, L2, false),
    ],
};

/// Every base library this build knows.
pub static LIBRARIES: &[&LibrarySchema] = &[&POPULATION, &LEGAL_ENTITY, &CREDIT, &LICENSE, &SPATIAL];

/// System columns appended after the library's own fields.
pub const SYSTEM_COLUMNS: [&str; 6] = ["_op", "_version", "_source", "_run", "_ingested_at", "_lineage"];

/// An Arrow schema of nullable text columns named `columns`.
pub fn text_schema(columns: &[&str]) -> Arc<Schema> {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ))
}

impl LibrarySchema {
    /// Looks a library up by name: a base library, or a theme registered with
    /// [`crate::theme::register_theme`].
    pub fn by_name(name: &str) -> crate::Result<&'static LibrarySchema> {
        LIBRARIES
            .iter()
            .copied()
            .find(|s| s.name == name)
            .or_else(|| crate::theme::registered_theme(name))
            .ok_or_else(|| crate::Error::UnknownLibrary(name.to_string()))
    }

    /// For a compound key: sets the key (the first value) from its parts, joined by `:`. An
    /// error names the missing part. A simple key is left as it is.
    pub fn compose_key<S: AsRef<str> + From<String>>(&self, values: &mut [Option<S>]) -> Result<(), String> {
        if self.key_parts.is_empty() {
            return Ok(());
        }
        let mut key = String::new();
        for part in self.key_parts {
            let value = self
                .position(part)
                .and_then(|i| values.get(i))
                .and_then(|v| v.as_ref())
                .ok_or_else(|| format!("{part} is part of the key and is required"))?;
            if !key.is_empty() {
                key.push(':');
            }
            key.push_str(value.as_ref());
        }
        values[0] = Some(S::from(key));
        Ok(())
    }

    /// Position of a field by name.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// Every field as nullable text, in schema order: the stored values as the serving index
    /// holds them (dates as `YYYY-MM-DD`), which views, exports and export snapshots read.
    pub fn text_schema(&self) -> Arc<Schema> {
        text_schema(&self.fields.iter().map(|f| f.name).collect::<Vec<_>>())
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
            Field::new("_lineage", DataType::Utf8, true),
        ]);
        Arc::new(Schema::new(fields))
    }
}

impl LibraryField {
    /// Normalizes one raw source value for this field: `Ok(None)` for an empty value,
    /// `Ok(Some(canonical))` when it parses, `Err(reason)` when it does not.
    pub fn normalize<'a>(&self, raw: &'a str) -> Result<Option<Cow<'a, str>>, String> {
        use crate::normalize::{
            date, fold_width, mobile, normalize_decimal, normalize_degrees, normalize_gender, normalize_industry_code,
            normalize_phone,
        };
        let folded = fold_width(raw);
        if folded.is_empty() {
            return Ok(None);
        }
        // Values already written as the library writes them (most are) are borrowed, not
        // copied: a pull normalizes millions.
        let value: Cow<'a, str> = match self.kind {
            FieldKind::IdNumber => reborrow(folded, |v| crate::IdNumber::normalized(v).map_err(|e| e.to_string()))?,
            FieldKind::Gender => Cow::Borrowed(
                normalize_gender(&folded).ok_or_else(|| format!("{folded:?} is not a GB/T 2261.1 gender"))?,
            ),
            FieldKind::Date => reborrow(folded, |v| {
                date(v).ok_or_else(|| format!("{v:?} is not a recognizable date"))
            })?,
            FieldKind::RegionCode => reborrow(folded, |v| crate::RegionCode::normalized(v).map_err(|e| e.to_string()))?,
            FieldKind::Mobile => reborrow(folded, |v| {
                mobile(v).ok_or_else(|| format!("{v:?} is not a mainland mobile number"))
            })?,
            FieldKind::Uscc => Cow::Owned(
                crate::Uscc::parse(&folded)
                    .map(|c| c.as_str().to_string())
                    .map_err(|e| e.to_string())?,
            ),
            FieldKind::Subject => Cow::Owned(match crate::Uscc::parse(&folded) {
                Ok(code) => code.as_str().to_string(),
                Err(uscc) => crate::IdNumber::parse(&folded)
                    .map(|id| id.as_str().to_string())
                    .map_err(|id| {
                        format!("{folded:?} is neither a unified social credit code ({uscc}) nor an ID number ({id})")
                    })?,
            }),
            FieldKind::Phone => Cow::Owned(
                normalize_phone(&folded).ok_or_else(|| format!("{folded:?} is not a mobile or landline number"))?,
            ),
            FieldKind::Decimal => {
                Cow::Owned(normalize_decimal(&folded).ok_or_else(|| format!("{folded:?} is not a number"))?)
            }
            FieldKind::IndustryCode => Cow::Owned(
                normalize_industry_code(&folded)
                    .ok_or_else(|| format!("{folded:?} is not a GB/T 4754 industry code"))?,
            ),
            FieldKind::Longitude => Cow::Owned(
                normalize_degrees(&folded, -180.0, 180.0)
                    .ok_or_else(|| format!("{folded:?} is not a longitude in degrees (-180 to 180)"))?,
            ),
            FieldKind::Latitude => Cow::Owned(
                normalize_degrees(&folded, -90.0, 90.0)
                    .ok_or_else(|| format!("{folded:?} is not a latitude in degrees (-90 to 90)"))?,
            ),
            FieldKind::Code => {
                let squeezed: Cow<'_, str> = if folded.contains(char::is_whitespace) {
                    Cow::Owned(folded.split_whitespace().collect())
                } else {
                    Cow::Borrowed(&folded)
                };
                match self.allowed.iter().find(|a| **a == squeezed) {
                    Some(value) => Cow::Borrowed(*value),
                    None => return Err(format!("{folded:?} is not one of {}", self.allowed.join(" / "))),
                }
            }
            // Names hold no inner spaces in Chinese; a stray one comes from data entry.
            FieldKind::PersonName if folded.contains(char::is_whitespace) && folded.chars().any(|c| c > '\u{2E80}') => {
                Cow::Owned(folded.split_whitespace().collect())
            }
            FieldKind::PersonName | FieldKind::Address | FieldKind::Text => folded,
        };
        Ok(Some(value))
    }
}

/// `normalize(folded)`, still borrowing from the raw value when `folded` does and `normalize`
/// borrows its input.
fn reborrow<'a>(
    folded: Cow<'a, str>,
    normalize: impl for<'b> Fn(&'b str) -> Result<Cow<'b, str>, String>,
) -> Result<Cow<'a, str>, String> {
    Ok(match folded {
        Cow::Borrowed(folded) => normalize(folded)?,
        Cow::Owned(folded) => Cow::Owned(normalize(&folded)?.into_owned()),
    })
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

    proptest::proptest! {
        /// The borrowed shortcut for dates written as stored answers as the full parse does.
        #[test]
        fn a_date_normalizes_as_parse_date_writes_it(s in "[0-9]{1,4}-[0-9]{1,2}-[0-9]{1,2}|[0-9]{8}| ?[0-9]{4}/[0-9]{2}/[0-9]{2}") {
            let normalized = field("birth_date").normalize(&s).ok().flatten().map(Cow::into_owned);
            let parsed = crate::normalize::parse_date(&s).map(crate::normalize::format_date);
            proptest::prop_assert_eq!(normalized, parsed);
        }
    }

    /// A value already written as the library writes it comes back borrowed, not copied (a
    /// pull normalizes millions), and unchanged.
    #[test]
    fn values_already_normalized_are_borrowed() {
        for (name, value) in [
            ("id_number", "11010519491231002X"),
            ("name", "张三"),
            ("gender", "女"),
            ("birth_date", "1990-01-02"),
            ("ethnicity", "汉族"),
            ("region_code", "110105"),
            ("address", "北京市东城区东华门街道1号"),
            ("phone", "13800138000"),
            ("marital_status", "已婚"),
        ] {
            match field(name).normalize(value) {
                Ok(Some(Cow::Borrowed(got))) => assert_eq!(got, value, "{name}"),
                other => panic!("{name} {value:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn rejections_say_why() {
        let err = field("id_number").normalize("110105194912310021").unwrap_err();
        assert!(err.contains("check character"), "{err}");
        assert!(field("birth_date").normalize("31/12/1990").is_err());
        // The stored form is borrowed only where parse_date would accept it.
        assert!(field("birth_date").normalize("0999-01-01").is_err());
        assert!(field("region_code").normalize("999999").is_err());
    }

    #[test]
    fn base_libraries_normalize_their_kinds() {
        let f = |schema: &'static LibrarySchema, name: &str| &schema.fields[schema.position(name).unwrap()];
        let cases: &[(&LibrarySchema, &str, &str, Result<&str, &str>)] = &[
            (&LEGAL_ENTITY, "uscc", "91350100m000100y43", Ok("91350100M000100Y43")),
            (&LEGAL_ENTITY, "uscc", "91350100M000100Y44", Err("check character")),
            (&LEGAL_ENTITY, "registered_capital", "1,000.00", Ok("1000")),
            (&LEGAL_ENTITY, "industry_code", "c13", Ok("C13")),
            (&LEGAL_ENTITY, "status", " 存 续 ", Ok("存续")),
            (&LEGAL_ENTITY, "status", "正常", Err("存续 / 在业")),
            (&CREDIT, "subject_id", "91350100M000100Y43", Ok("91350100M000100Y43")),
            (&CREDIT, "subject_id", "11010519491231002x", Ok("11010519491231002X")),
            (&CREDIT, "subject_id", "12345", Err("neither")),
            (&SPATIAL, "region_code", "110101001", Ok("110101001")),
            (&SPATIAL, "longitude", "116.4074", Ok("116.4074")),
            (&SPATIAL, "latitude", "100", Err("latitude")),
            (&POPULATION, "marital_status", "已婚", Ok("已婚")),
        ];
        for (schema, name, raw, want) in cases {
            let got = f(schema, name).normalize(raw);
            match want {
                Ok(v) => {
                    assert_eq!(got.unwrap().as_deref(), Some(*v), "{}.{name} {raw}", schema.name);
                    let again = f(schema, name).normalize(v).unwrap().unwrap();
                    assert_eq!(again, *v, "{}.{name}: normalizing {v} again", schema.name);
                }
                Err(reason) => assert!(got.unwrap_err().contains(reason), "{}.{name} {raw}", schema.name),
            }
        }
    }

    /// docs/libraries.md is the schema reference: it must say what the code says.
    #[test]
    fn the_schema_reference_matches_the_code() {
        let doc = include_str!("../../docs/libraries.md");
        for schema in LIBRARIES {
            let heading = format!("## {} `{}` (version {})", schema.label_zh, schema.name, schema.version);
            let section = doc
                .split_once(&heading)
                .unwrap_or_else(|| panic!("docs/libraries.md has no section {heading:?}"))
                .1;
            let section = section.split("\n## ").next().unwrap_or_default();
            for f in schema.fields {
                let kind = serde_json::to_value(f.kind).unwrap();
                let row = format!(
                    "| `{}` | {} | `{}` | {} | {} | {} |",
                    f.name,
                    f.label_zh,
                    kind.as_str().unwrap(),
                    f.sensitivity.code(),
                    if f.required { "yes" } else { "" },
                    f.allowed.join(" / ")
                );
                assert!(
                    section.contains(&row),
                    "docs/libraries.md, {}: expected the row\n{row}",
                    schema.name
                );
            }
            let rows = section.lines().filter(|l| l.starts_with("| `")).count();
            assert_eq!(
                rows,
                schema.fields.len(),
                "docs/libraries.md lists other fields of {}",
                schema.name
            );
        }
    }

    #[test]
    fn compound_keys_join_their_parts() {
        let mut values: Vec<Option<String>> = vec![None; LICENSE.fields.len()];
        values[LICENSE.position("license_type").unwrap()] = Some("CSYXZM".into());
        assert!(LICENSE.compose_key(&mut values).unwrap_err().contains("license_no"));
        values[LICENSE.position("license_no").unwrap()] = Some("Q330106123".into());
        LICENSE.compose_key(&mut values).unwrap();
        assert_eq!(values[0].as_deref(), Some("CSYXZM:Q330106123"));
    }

    #[test]
    fn every_library_is_keyed_by_its_first_field() {
        for schema in LIBRARIES {
            assert_eq!(schema.fields[0].name, schema.key, "{}", schema.name);
            assert!(schema.fields[0].required, "{}", schema.name);
            for part in schema.key_parts {
                assert!(schema.position(part).is_some(), "{}.{part}", schema.name);
            }
            for field in schema.fields {
                assert_eq!(
                    field.kind == FieldKind::Code,
                    !field.allowed.is_empty(),
                    "{}.{}",
                    schema.name,
                    field.name
                );
            }
        }
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
