//! Configuration of the SQLite source.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Reads one table, or one read-only `SELECT`, from a SQLite database file.
///
/// ```toml
/// kind = "sqlite"
/// path = "/data/gongan/hukou.db"
/// table = "hukou"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteSourceConfig {
    /// The database file. It is opened read-only; the source is never written.
    pub path: PathBuf,
    /// The table to read. Exactly one of `table` and `query` is given.
    #[serde(default)]
    pub table: Option<String>,
    /// A read-only `SELECT` to read instead of a table.
    #[serde(default)]
    pub query: Option<String>,
    /// Rows per Arrow batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
}

fn default_batch_size() -> usize {
    8192
}

impl SqliteSourceConfig {
    /// The SQL that reads the source, after checking the config is complete.
    pub(crate) fn select_sql(&self) -> crate::Result<String> {
        match (&self.table, &self.query) {
            (Some(table), None) => {
                if table.is_empty() || table.contains('"') {
                    return Err(crate::Error::config("table", format!("{table:?} is not a table name")));
                }
                Ok(format!("SELECT * FROM \"{table}\""))
            }
            (None, Some(query)) => {
                let head = query.trim_start().to_ascii_lowercase();
                if !(head.starts_with("select") || head.starts_with("with")) {
                    return Err(crate::Error::config("query", "only a SELECT may be given"));
                }
                Ok(query.clone())
            }
            _ => Err(crate::Error::config("table", "give exactly one of `table` and `query`")),
        }
    }
}
