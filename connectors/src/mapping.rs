//! Declarative mapping of source columns onto library fields, with transforms.
//!
//! A field maps from a column by name, or from a column through transforms applied in order
//! before the library field's own normalization (which always folds width, trims, and parses
//! ID numbers, dates, genders, region codes and phone numbers by the field's kind):
//!
//! ```json
//! "mapping": {
//!   "id_number": "sfzh",
//!   "gender": {"column": "xb", "transforms": [{"code_table": {"codes": {"1": "男", "2": "女"}}}]},
//!   "birth_date": {"column": "csrq", "transforms": [{"date": {"format": "%d/%m/%Y"}}]},
//!   "ethnicity": {"column": "mz", "default": "汉族"}
//! }
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How one library field is filled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FieldMapping {
    /// Straight from a source column.
    Column(String),
    /// From a column through transforms.
    Spec(MappingSpec),
}

/// A column with transforms and a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingSpec {
    /// The source column.
    pub column: String,
    /// Applied in order to the column's text.
    #[serde(default)]
    pub transforms: Vec<Transform>,
    /// Used when the column is null or empty.
    #[serde(default)]
    pub default: Option<String>,
}

/// One step of a mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// Removes surrounding whitespace (also the ideographic space U+3000).
    Trim,
    /// Full-width ASCII (ＡＢＣ１２３) to half-width.
    FoldWidth,
    /// Upper case (ASCII).
    Upper,
    /// Lower case (ASCII).
    Lower,
    /// Removes every occurrence of these characters (e.g. `"- "` in phone numbers).
    Remove(String),
    /// Replaces text.
    Replace {
        /// What to find.
        from: String,
        /// What to put instead.
        to: String,
    },
    /// Parses a date and writes it `YYYY-MM-DD`: with `format` (chrono syntax, e.g. `%d/%m/%Y`)
    /// when given, else in any of the forms seen in practice (2021-12-17, 2021/12/17, 20211217,
    /// 2021年12月17日).
    Date {
        /// The one format to accept.
        #[serde(default)]
        format: Option<String>,
    },
    /// Maps codes to values (a department's own code table, or e.g. GB/T 2261.1 gender).
    CodeTable {
        /// Code → value.
        codes: BTreeMap<String, String>,
        /// Whether a code outside the table rejects the row (default) or passes through.
        #[serde(default = "yes")]
        strict: bool,
    },
    /// Checks the value is of a type and writes it canonically.
    Cast(CastKind),
}

fn yes() -> bool {
    true
}

/// Targets of [`Transform::Cast`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CastKind {
    /// A whole number: `007` → `7`; `12.0` → `12`.
    Integer,
    /// A decimal number, written without exponent or trailing zeros.
    Decimal,
    /// Any text (no check).
    Text,
}

impl FieldMapping {
    /// The source column.
    pub fn column(&self) -> &str {
        match self {
            FieldMapping::Column(c) => c,
            FieldMapping::Spec(spec) => &spec.column,
        }
    }

    /// Applies the transforms and default to a raw cell; `Err` says why the value is refused.
    pub fn apply<'a>(&'a self, raw: Option<&'a str>) -> Result<Option<Cow<'a, str>>, String> {
        let spec = match self {
            FieldMapping::Column(_) => return Ok(raw.map(Cow::Borrowed)),
            FieldMapping::Spec(spec) => spec,
        };
        let mut value = raw.filter(|v| !v.trim().is_empty()).map(Cow::Borrowed);
        if let Some(v) = value.take() {
            let mut v = v;
            for t in &spec.transforms {
                v = t.apply(v)?;
            }
            value = Some(v).filter(|v| !v.is_empty());
        }
        Ok(value.or_else(|| spec.default.as_deref().map(Cow::Borrowed)))
    }
}

impl Transform {
    fn apply<'a>(&self, v: Cow<'a, str>) -> Result<Cow<'a, str>, String> {
        Ok(match self {
            Transform::Trim => {
                let t = v.trim_matches(|c: char| c.is_whitespace() || c == '\u{3000}');
                if t.len() == v.len() {
                    v
                } else {
                    Cow::Owned(t.to_string())
                }
            }
            Transform::FoldWidth => match exchange_core::normalize::fold_width(&v) {
                Cow::Borrowed(folded) if folded.len() == v.len() => v,
                folded => Cow::Owned(folded.into_owned()),
            },
            Transform::Upper => Cow::Owned(v.to_ascii_uppercase()),
            Transform::Lower => Cow::Owned(v.to_ascii_lowercase()),
            Transform::Remove(chars) => Cow::Owned(v.chars().filter(|c| !chars.contains(*c)).collect()),
            Transform::Replace { from, to } => Cow::Owned(v.replace(from.as_str(), to)),
            Transform::Date { format } => {
                let date = match format {
                    Some(f) => chrono::NaiveDate::parse_from_str(v.trim(), f).ok(),
                    None => exchange_core::normalize::parse_date(&v),
                };
                let date = date.ok_or_else(|| match format {
                    Some(f) => format!("{v:?} is not a date in the format {f}"),
                    None => format!("{v:?} is not a recognizable date"),
                })?;
                Cow::Owned(exchange_core::normalize::format_date(date))
            }
            Transform::CodeTable { codes, strict } => match codes.get(v.trim()) {
                Some(mapped) => Cow::Owned(mapped.clone()),
                None if *strict => return Err(format!("{v:?} is not in the code table")),
                None => v,
            },
            Transform::Cast(kind) => cast(*kind, v)?,
        })
    }
}

fn cast(kind: CastKind, v: Cow<'_, str>) -> Result<Cow<'_, str>, String> {
    let t = v.trim();
    match kind {
        CastKind::Text => Ok(v),
        CastKind::Integer => {
            if let Ok(n) = t.parse::<i128>() {
                return Ok(Cow::Owned(n.to_string()));
            }
            match t.parse::<f64>() {
                Ok(f) if f.fract() == 0.0 && f.abs() < 1e18 => Ok(Cow::Owned((f as i64).to_string())),
                _ => Err(format!("{v:?} is not a whole number")),
            }
        }
        CastKind::Decimal => {
            let f: f64 = t.parse().map_err(|_| format!("{v:?} is not a number"))?;
            if !f.is_finite() {
                return Err(format!("{v:?} is not a number"));
            }
            Ok(Cow::Owned(f.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> FieldMapping {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn transforms_apply_in_order() {
        let m = spec(serde_json::json!({"column": "xb", "transforms": [
            "trim", "fold_width", {"code_table": {"codes": {"1": "男", "2": "女"}}}
        ]}));
        assert_eq!(m.apply(Some(" １ ")).unwrap().as_deref(), Some("男"));
        assert!(m.apply(Some("3")).unwrap_err().contains("code table"));
        assert_eq!(m.apply(None).unwrap(), None);

        let date = spec(serde_json::json!({"column": "d", "transforms": [{"date": {"format": "%d/%m/%Y"}}]}));
        assert_eq!(date.apply(Some("17/12/2021")).unwrap().as_deref(), Some("2021-12-17"));
        assert!(date.apply(Some("2021-12-17")).unwrap_err().contains("%d/%m/%Y"));
        let any_date = spec(serde_json::json!({"column": "d", "transforms": [{"date": {}}]}));
        for raw in ["2021-12-17", "2021/12/17", "20211217", "2021年12月17日"] {
            assert_eq!(
                any_date.apply(Some(raw)).unwrap().as_deref(),
                Some("2021-12-17"),
                "{raw}"
            );
        }

        let int = spec(serde_json::json!({"column": "n", "transforms": [{"cast": "integer"}]}));
        assert_eq!(int.apply(Some("007")).unwrap().as_deref(), Some("7"));
        assert_eq!(int.apply(Some("12.0")).unwrap().as_deref(), Some("12"));
        assert!(int.apply(Some("12.5")).is_err());

        let defaulted = spec(serde_json::json!({"column": "mz", "default": "汉族", "transforms": ["trim"]}));
        assert_eq!(defaulted.apply(Some("  ")).unwrap().as_deref(), Some("汉族"));
        let phone = spec(serde_json::json!({"column": "p", "transforms": [{"remove": "- "}]}));
        assert_eq!(
            phone.apply(Some("138-0013 8000")).unwrap().as_deref(),
            Some("13800138000")
        );

        assert_eq!(
            FieldMapping::Column("x".into()).apply(Some(" a ")).unwrap().as_deref(),
            Some(" a ")
        );
    }

    #[test]
    fn unknown_transforms_are_refused_by_name() {
        let err = serde_json::from_value::<FieldMapping>(serde_json::json!({"column": "x", "transforms": ["shout"]}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("did not match") || err.contains("shout"), "{err}");
    }
}
