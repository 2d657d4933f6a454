//! A connector's configuration: its source and the mapping of source columns to library fields.

use std::collections::BTreeMap;

use exchange_core::LibrarySchema;
use serde::{Deserialize, Serialize};

use crate::sqlite::SqliteSourceConfig;
use crate::{BatchStream, Error, ReadRequest, Result};

/// The source of a connector, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceConfig {
    /// A SQLite database file.
    Sqlite(SqliteSourceConfig),
}

impl SourceConfig {
    /// The kind's name, as stored in the catalog.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Sqlite(_) => "sqlite",
        }
    }

    /// Proves the source reachable before a run starts.
    pub async fn healthcheck(&self) -> Result<()> {
        match self {
            SourceConfig::Sqlite(c) => c.healthcheck().await,
        }
    }

    /// Streams the source's rows as Arrow batches.
    pub async fn read(&self, request: &ReadRequest) -> Result<BatchStream> {
        match self {
            SourceConfig::Sqlite(c) => c.read(request).await,
        }
    }
}

/// Everything a connector needs: where to read and how rows map onto the library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    /// Where the rows come from.
    pub source: SourceConfig,
    /// Library field → source column. The library's key must be mapped.
    pub mapping: BTreeMap<String, String>,
    /// The source column that identifies a row in quarantine reports (its primary key);
    /// the row number when absent.
    #[serde(default)]
    pub position_column: Option<String>,
}

impl ConnectorConfig {
    /// Parses a stored configuration; errors name the offending field.
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        serde_json::from_value(value.clone()).map_err(|e| Error::config("config", e.to_string()))
    }

    /// Checks the mapping against the library schema.
    pub fn validate(&self, schema: &LibrarySchema) -> Result<()> {
        if let Some(unknown) = self.mapping.keys().find(|f| schema.position(f).is_none()) {
            return Err(Error::config(
                &format!("mapping.{unknown}"),
                format!("library {} has no field {unknown}", schema.name),
            ));
        }
        if !self.mapping.contains_key(schema.key) {
            return Err(Error::config(
                "mapping",
                format!("the key field {} must be mapped", schema.key),
            ));
        }
        Ok(())
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
    }
}
