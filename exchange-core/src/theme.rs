//! Themed libraries' schemas (主题库 / 专题库), declared at run time.
//!
//! Every user of a library holds its schema as `&'static LibrarySchema`. A theme's schema is
//! only known once the catalog declares it, so [`register_theme`] leaks it once: themes are few
//! and declared rarely (a handful per platform, each declared once per process start), so the
//! leaked bytes are bounded and small, and in exchange every reader keeps the cheap `&'static`
//! it already has. Declaring the same name again with the same shape returns the schema
//! already registered (no second leak); a different shape is refused. [`redeclare_theme`] is
//! the one explicit path that replaces a theme's shape: it leaks the new schema and makes
//! [`LibrarySchema::by_name`] return it, while holders of the old one keep a valid (stale)
//! schema — the caller must reopen the library over fresh storage.

use std::collections::BTreeMap;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use crate::domain::Sensitivity;
use crate::schema::{FieldKind, LIBRARIES, LibraryField, LibrarySchema, SYSTEM_COLUMNS};
use crate::{Error, Result};

/// One declared field of a theme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThemeField {
    /// Column name (English, snake_case): an output column of the theme's SQL.
    pub name: String,
    /// The Chinese label (信息项名称).
    pub label_zh: String,
    /// Semantic kind: decides normalization and storage (dates are stored as dates).
    #[schema(value_type = String, example = "date")]
    pub kind: FieldKind,
    /// Default sensitivity grade, L1–L4.
    pub sensitivity: Sensitivity,
}

/// A theme's schema as declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThemeDefinition {
    /// Library name (snake_case); not a base library's.
    pub name: String,
    /// Chinese name.
    pub label_zh: String,
    /// The key field's name; one of `fields`.
    pub key: String,
    /// The fields, in any order (the schema puts the key first).
    pub fields: Vec<ThemeField>,
}

static THEMES: RwLock<BTreeMap<&'static str, &'static LibrarySchema>> = RwLock::new(BTreeMap::new());

/// Whether `name` is lower-case ASCII snake_case starting with a letter.
pub fn is_library_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && name.len() <= 63
}

impl ThemeDefinition {
    /// Checks the definition on its own (names, key), naming the offending part.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field, message: String| Err(Error::InvalidValue { field, message });
        if !is_library_name(&self.name) {
            return invalid(
                "name",
                format!(
                    "{:?} is not a library name: lower-case snake_case, e.g. elderly",
                    self.name
                ),
            );
        }
        if LIBRARIES.iter().any(|l| l.name == self.name) {
            return invalid("name", format!("{} is a base library", self.name));
        }
        if self.fields.is_empty() {
            return invalid("fields", "a theme has at least one field".into());
        }
        for (i, f) in self.fields.iter().enumerate() {
            if !is_library_name(&f.name) || SYSTEM_COLUMNS.contains(&f.name.as_str()) {
                return invalid("fields", format!("{:?} is not a field name: snake_case", f.name));
            }
            if self.fields[..i].iter().any(|g| g.name == f.name) {
                return invalid("fields", format!("{} is declared twice", f.name));
            }
            if f.label_zh.trim().is_empty() {
                return invalid("fields", format!("{} needs its Chinese label (label_zh)", f.name));
            }
            if f.kind == FieldKind::Code {
                return invalid(
                    "fields",
                    format!(
                        "{}: a theme's field cannot be of kind code (it has no value list); use text",
                        f.name
                    ),
                );
            }
        }
        if !self.fields.iter().any(|f| f.name == self.key) {
            return invalid("key", format!("the key {} is not one of the fields", self.key));
        }
        Ok(())
    }

    /// The fields as a library has them: key first (required), then the others in order.
    fn library_fields(&self) -> impl Iterator<Item = (&ThemeField, bool)> {
        let key = self.fields.iter().filter(|f| f.name == self.key).map(|f| (f, true));
        key.chain(self.fields.iter().filter(|f| f.name != self.key).map(|f| (f, false)))
    }

    /// Whether `schema` has exactly this shape (names, labels, kinds, sensitivities, key).
    fn matches(&self, schema: &LibrarySchema) -> bool {
        schema.name == self.name
            && schema.label_zh == self.label_zh
            && schema.key == self.key
            && schema.fields.len() == self.fields.len()
            && self.library_fields().zip(schema.fields).all(|((f, required), s)| {
                s.name == f.name
                    && s.label_zh == f.label_zh
                    && s.kind == f.kind
                    && s.sensitivity == f.sensitivity
                    && s.required == required
            })
    }

    fn leak(&self) -> &'static LibrarySchema {
        let leak_str = |s: &str| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) };
        let fields: Vec<LibraryField> = self
            .library_fields()
            .map(|(f, required)| LibraryField {
                name: leak_str(&f.name),
                label_zh: leak_str(&f.label_zh),
                kind: f.kind,
                sensitivity: f.sensitivity,
                required,
                allowed: &[],
            })
            .collect();
        let fields: &'static [LibraryField] = Box::leak(fields.into_boxed_slice());
        Box::leak(Box::new(LibrarySchema {
            name: leak_str(&self.name),
            label_zh: leak_str(&self.label_zh),
            version: 1,
            key: fields[0].name,
            key_parts: &[],
            fields,
        }))
    }
}

/// Registers a theme's schema for the life of the process and returns it. Idempotent for the
/// same shape; a different shape of a registered theme is refused (`field: "fields"`).
pub fn register_theme(def: &ThemeDefinition) -> Result<&'static LibrarySchema> {
    def.validate()?;
    let mut themes = THEMES.write().unwrap_or_else(|e| e.into_inner());
    if let Some(existing) = themes.get(def.name.as_str()) {
        return if def.matches(existing) {
            Ok(existing)
        } else {
            Err(Error::InvalidValue {
                field: "fields",
                message: format!(
                    "theme {} is already declared with another shape; redeclare it explicitly to change it",
                    def.name
                ),
            })
        };
    }
    let schema = def.leak();
    themes.insert(schema.name, schema);
    Ok(schema)
}

/// Replaces a registered theme's shape (or registers it). Holders of the old schema keep it;
/// the caller reopens the library, whose stored rows have the old shape, over fresh storage.
pub fn redeclare_theme(def: &ThemeDefinition) -> Result<&'static LibrarySchema> {
    def.validate()?;
    let mut themes = THEMES.write().unwrap_or_else(|e| e.into_inner());
    if let Some(existing) = themes.get(def.name.as_str())
        && def.matches(existing)
    {
        return Ok(existing);
    }
    let schema = def.leak();
    themes.insert(schema.name, schema);
    Ok(schema)
}

/// The registered theme named `name`.
pub fn registered_theme(name: &str) -> Option<&'static LibrarySchema> {
    THEMES.read().unwrap_or_else(|e| e.into_inner()).get(name).copied()
}

/// Every registered theme, by name.
pub fn registered_themes() -> Vec<&'static LibrarySchema> {
    THEMES
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, kind: FieldKind) -> ThemeField {
        ThemeField {
            name: name.into(),
            label_zh: format!("{name}标签"),
            kind,
            sensitivity: Sensitivity::L2,
        }
    }

    fn def(name: &str) -> ThemeDefinition {
        ThemeDefinition {
            name: name.into(),
            label_zh: "测试主题库".into(),
            key: "id_number".into(),
            fields: vec![
                field("birth_date", FieldKind::Date),
                field("id_number", FieldKind::IdNumber),
            ],
        }
    }

    #[test]
    fn a_theme_is_found_by_name_with_its_key_first() {
        let schema = register_theme(&def("theme_unit_found")).unwrap();
        assert_eq!(schema.fields[0].name, "id_number");
        assert!(schema.fields[0].required && !schema.fields[1].required);
        assert!(std::ptr::eq(
            LibrarySchema::by_name("theme_unit_found").unwrap(),
            schema
        ));
        assert!(LibrarySchema::by_name("population").is_ok());
    }

    #[test]
    fn the_same_shape_returns_the_same_schema_and_another_is_refused() {
        let first = register_theme(&def("theme_unit_shape")).unwrap();
        let again = register_theme(&def("theme_unit_shape")).unwrap();
        assert!(std::ptr::eq(first, again), "no second leak");
        let mut other = def("theme_unit_shape");
        other.fields[0].kind = FieldKind::Text;
        let err = register_theme(&other).unwrap_err();
        assert!(matches!(err, Error::InvalidValue { field: "fields", .. }), "{err}");
        let replaced = redeclare_theme(&other).unwrap();
        assert!(!std::ptr::eq(first, replaced));
        assert_eq!(
            LibrarySchema::by_name("theme_unit_shape").unwrap().fields[1].kind,
            FieldKind::Text
        );
        assert_eq!(first.fields[1].kind, FieldKind::Date, "the old schema stays valid");
    }

    #[test]
    fn bad_definitions_name_what_is_wrong() {
        type Change = fn(&mut ThemeDefinition);
        let cases: &[(&str, Change)] = &[
            ("name", |d| d.name = "population".into()),
            ("name", |d| d.name = "Elderly".into()),
            ("key", |d| d.key = "name".into()),
            ("fields", |d| d.fields.clear()),
            ("fields", |d| d.fields[0].name = "_op".into()),
            ("fields", |d| d.fields[0].name = "id_number".into()),
        ];
        for (expected, change) in cases {
            let mut d = def("theme_unit_bad");
            change(&mut d);
            match register_theme(&d) {
                Err(Error::InvalidValue { field, .. }) => assert_eq!(field, *expected, "{d:?}"),
                other => panic!("{d:?}: {other:?}"),
            }
        }
    }
}
