//! Configuration of the MySQL / MariaDB source.

use serde::{Deserialize, Serialize};

use crate::SecretRef;

/// Reads one table, or one read-only `SELECT`, from a MySQL or MariaDB database.
///
/// ```json
/// {
///   "kind": "mysql",
///   "url": "mysql://huitong_reader@10.1.2.4:3306/minzheng",
///   "password": {"file": "/etc/huitong/secrets/mzj-mysql"},
///   "table": "jiuzhu_duixiang"
/// }
/// ```
///
/// The password is never written in the URL. A run reads with one statement inside a
/// read-only transaction with a consistent snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlSourceConfig {
    /// `mysql://user@host:port/database`, without a password.
    pub url: String,
    /// Where the password is.
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// The table. Exactly one of `table` and `query` is given.
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

impl MysqlSourceConfig {
    /// The SQL that reads the whole source.
    pub(crate) fn select_sql(&self) -> crate::Result<String> {
        crate::sql::base_select(
            self.table.as_deref(),
            self.query.as_deref(),
            crate::sql::Quote::Backtick,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_config_parses() {
        let config: MysqlSourceConfig = serde_json::from_value(serde_json::json!({
            "url": "mysql://reader@db/minzheng", "table": "jiuzhu"
        }))
        .unwrap();
        assert_eq!(config.select_sql().unwrap(), "SELECT * FROM `jiuzhu`");
    }
}
