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
    /// The SQL that reads the whole source, after checking the config is complete.
    pub(crate) fn select_sql(&self) -> crate::Result<String> {
        crate::sql::base_select(self.table.as_deref(), self.query.as_deref(), crate::sql::Quote::Double)
    }

    /// The SQL of one run.
    pub(crate) fn select_sql_since(&self, request: &crate::ReadRequest) -> crate::Result<String> {
        crate::sql::run_select(&self.select_sql()?, request, crate::sql::Quote::Double)
    }
}
