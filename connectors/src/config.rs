//! A connector's configuration: its source and the mapping of source columns to library fields.

use std::collections::BTreeMap;

use exchange_core::LibrarySchema;
use serde::{Deserialize, Serialize};

use crate::file::{CsvSourceConfig, XlsxSourceConfig};
use crate::http::HttpSourceConfig;
use crate::huitong::HuitongSourceConfig;
use crate::mapping::FieldMapping;
use crate::mysql::MysqlSourceConfig;
use crate::postgres::PostgresSourceConfig;
use crate::sqlite::SqliteSourceConfig;
use crate::{BatchStream, CursorKind, Error, ReadRequest, Result};

/// The source of a connector, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceConfig {
    /// A SQLite database file.
    Sqlite(SqliteSourceConfig),
    /// A PostgreSQL database (or one speaking its protocol).
    Postgres(PostgresSourceConfig),
    /// A MySQL or MariaDB database (or one speaking their protocol).
    Mysql(MysqlSourceConfig),
    /// A CSV file (UTF-8 or GBK/GB18030).
    Csv(CsvSourceConfig),
    /// A sheet of an Excel workbook.
    Xlsx(XlsxSourceConfig),
    /// A JSON HTTP API, paged.
    Http(HttpSourceConfig),
    /// Another Huitong's change feed.
    Huitong(HuitongSourceConfig),
}

impl SourceConfig {
    /// The kind's name, as stored in the catalog.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Sqlite(_) => "sqlite",
            SourceConfig::Postgres(_) => "postgres",
            SourceConfig::Mysql(_) => "mysql",
            SourceConfig::Csv(_) => "csv",
            SourceConfig::Xlsx(_) => "xlsx",
            SourceConfig::Http(_) => "http",
            SourceConfig::Huitong(_) => "huitong",
        }
    }

    /// Checks what can be checked without reaching the source (URLs, exactly one of table and
    /// query); errors name the field under `source`.
    pub fn check(&self) -> Result<()> {
        let checked = match self {
            SourceConfig::Sqlite(c) => c.select_sql().map(|_| ()),
            SourceConfig::Postgres(c) => crate::sql::check_url(&c.url).and(c.select_sql()).map(|_| ()),
            SourceConfig::Mysql(c) => crate::sql::check_url(&c.url).and(c.select_sql()).map(|_| ()),
            SourceConfig::Csv(_) | SourceConfig::Xlsx(_) => Ok(()),
            SourceConfig::Http(c) => c.checked_url().map(|_| ()),
            SourceConfig::Huitong(c) => c.check(),
        };
        checked.map_err(|e| match e {
            Error::Config { field, message } => Error::Config {
                field: format!("source.{field}"),
                message,
            },
            other => other,
        })
    }

    /// Proves the source reachable before a run starts.
    pub async fn healthcheck(&self) -> Result<()> {
        match self {
            SourceConfig::Sqlite(c) => c.healthcheck().await,
            SourceConfig::Postgres(c) => c.healthcheck().await,
            SourceConfig::Mysql(c) => c.healthcheck().await,
            SourceConfig::Csv(c) => c.healthcheck().await,
            SourceConfig::Xlsx(c) => c.healthcheck().await,
            SourceConfig::Http(c) => c.healthcheck().await,
            SourceConfig::Huitong(c) => c.healthcheck().await,
        }
    }

    /// Streams the source's rows as Arrow batches.
    pub async fn read(&self, request: &ReadRequest) -> Result<BatchStream> {
        match self {
            SourceConfig::Sqlite(c) => c.read(request).await,
            SourceConfig::Postgres(c) => c.read(request).await,
            SourceConfig::Mysql(c) => c.read(request).await,
            SourceConfig::Csv(c) => c.read(request).await,
            SourceConfig::Xlsx(c) => c.read(request).await,
            SourceConfig::Http(c) => c.read(request).await,
            SourceConfig::Huitong(c) => c.read(request).await,
        }
    }
}

/// Everything a connector needs: where to read, how rows map onto the library, and how a run
/// proceeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    /// Where the rows come from.
    pub source: SourceConfig,
    /// Library field → source column (or column with transforms). The key must be mapped.
    pub mapping: BTreeMap<String, FieldMapping>,
    /// The source column that identifies a row in quarantine reports (its primary key); the
    /// source's own position (line, sheet row, page) or the row number when absent.
    #[serde(default)]
    pub position_column: Option<String>,
    /// `full` (default): every run reads the whole source, and records the source no longer has
    /// are marked deleted. `incremental`: a run reads rows at or past the cursor's watermark.
    #[serde(default)]
    pub mode: SyncMode,
    /// The cursor of incremental runs. A full run with a cursor records its high-water mark
    /// too, so a connector loaded in full can go on incrementally.
    #[serde(default)]
    pub cursor: Option<CursorConfig>,
    /// A full run that would mark more than this share of the source's records deleted fails
    /// instead (a truncated source must not empty a library). Default 50.
    #[serde(default = "default_max_delete_percent")]
    pub max_delete_percent: u8,
    /// When runs start by themselves.
    #[serde(default)]
    pub schedule: Schedule,
    /// A run whose source is unreachable or drops mid-run is retried this many times (from the
    /// start, nothing having been committed) before it fails. Default 3.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The wait before the first retry, doubled for each next one. Default 1000.
    #[serde(default = "default_backoff_ms")]
    pub retry_backoff_ms: u64,
}

fn default_max_delete_percent() -> u8 {
    50
}

fn default_retries() -> u32 {
    3
}

fn default_backoff_ms() -> u64 {
    1000
}

/// How a run reads its source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// A snapshot: the whole source, deletions detected.
    #[default]
    Full,
    /// Only what changed since the watermark.
    Incremental,
}

/// The cursor column of an incremental connector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CursorConfig {
    /// The source column (an increasing id or an update time).
    pub column: String,
    /// How to read it.
    pub kind: CursorKind,
}

/// When a connector runs by itself (`huitong serve` runs the scheduler; `huitong sync` and
/// `POST /api/v1/connectors/{id}/runs` run it at any time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// As often as the resource's update cycle (更新周期) in the catalog says: real-time
    /// resources are polled continuously at the configured interval, daily ones daily, ….
    #[default]
    Catalog,
    /// Every this many seconds.
    Every(u64),
    /// Only when asked.
    Manual,
}

impl ConnectorConfig {
    /// Parses a stored configuration; errors name the offending field.
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        serde_json::from_value(value.clone()).map_err(|e| Error::config("config", e.to_string()))
    }

    /// Checks the mapping against the library schema, and the mode against the cursor.
    pub fn validate(&self, schema: &LibrarySchema) -> Result<()> {
        self.source.check()?;
        if let Some(unknown) = self.mapping.keys().find(|f| schema.position(f).is_none()) {
            return Err(Error::config(
                &format!("mapping.{unknown}"),
                format!("library {} has no field {unknown}", schema.name),
            ));
        }
        if schema.key_parts.is_empty() {
            if !self.mapping.contains_key(schema.key) {
                return Err(Error::config(
                    "mapping",
                    format!("the key field {} must be mapped", schema.key),
                ));
            }
        } else {
            if self.mapping.contains_key(schema.key) {
                return Err(Error::config(
                    &format!("mapping.{}", schema.key),
                    format!(
                        "{} is made of {}; map those instead",
                        schema.key,
                        schema.key_parts.join(" and ")
                    ),
                ));
            }
            if let Some(part) = schema.key_parts.iter().find(|p| !self.mapping.contains_key(**p)) {
                return Err(Error::config(
                    "mapping",
                    format!("{part} is part of the key {} and must be mapped", schema.key),
                ));
            }
        }
        if self.mode == SyncMode::Incremental && self.cursor.is_none() {
            return Err(Error::config(
                "cursor",
                "an incremental connector needs a cursor column",
            ));
        }
        if self.max_delete_percent > 100 {
            return Err(Error::config("max_delete_percent", "a percentage is at most 100"));
        }
        if self.schedule == Schedule::Every(0) {
            return Err(Error::config("schedule.every", "give a number of seconds above 0"));
        }
        Ok(())
    }

    /// The source columns a run reads: the mapped ones, the position column and the cursor.
    pub fn source_columns(&self) -> Vec<String> {
        let mut columns: Vec<String> = self.mapping.values().map(|m| m.column().to_string()).collect();
        columns.extend(self.position_column.clone());
        columns.extend(self.cursor.as_ref().map(|c| c.column.clone()));
        let mut seen = std::collections::HashSet::new();
        columns.retain(|c| seen.insert(c.clone()));
        columns
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exchange_core::schema::POPULATION;

    fn sample() -> serde_json::Value {
        serde_json::json!({
            "source": {"kind": "sqlite", "path": "/data/ga.db", "table": "hukou"},
            "mapping": {"id_number": "sfzh", "name": "xm"},
            "position_column": "id"
        })
    }

    #[test]
    fn a_sample_config_parses_and_validates() {
        let config = ConnectorConfig::from_json(&sample()).unwrap();
        assert_eq!(config.source.kind(), "sqlite");
        config.validate(&POPULATION).unwrap();
    }

    #[test]
    fn wrong_configs_name_the_field() {
        let mut unknown_field = sample();
        unknown_field["mappings"] = serde_json::json!({});
        let err = ConnectorConfig::from_json(&unknown_field).unwrap_err().to_string();
        assert!(err.contains("mappings"), "{err}");

        let mut bad_target = sample();
        bad_target["mapping"]["shoe_size"] = "x".into();
        let err = ConnectorConfig::from_json(&bad_target).unwrap().validate(&POPULATION);
        assert!(err.unwrap_err().to_string().contains("mapping.shoe_size"));

        let mut no_key = sample();
        no_key["mapping"] = serde_json::json!({"name": "xm"});
        let err = ConnectorConfig::from_json(&no_key).unwrap().validate(&POPULATION);
        assert!(err.unwrap_err().to_string().contains("id_number"));

        let mut no_cursor = sample();
        no_cursor["mode"] = "incremental".into();
        let err = ConnectorConfig::from_json(&no_cursor).unwrap().validate(&POPULATION);
        assert!(err.unwrap_err().to_string().contains("cursor"));

        let mut every = sample();
        every["schedule"] = serde_json::json!({"every": 0});
        let err = ConnectorConfig::from_json(&every).unwrap().validate(&POPULATION);
        assert!(err.unwrap_err().to_string().contains("schedule.every"));
    }
}
