//! Configuration of the PostgreSQL source.

use serde::{Deserialize, Serialize};

use crate::SecretRef;

/// Reads one table, or one read-only `SELECT`, from a PostgreSQL database.
///
/// ```json
/// {
///   "kind": "postgres",
///   "url": "postgres://huitong_reader@10.1.2.3:5432/gongan",
///   "password": {"env": "GAJ_PG_PASSWORD"},
///   "table": "public.hukou"
/// }
/// ```
///
/// The password is never written in the URL: it is read from the environment or a file at
/// run time. The connection is read-only (`default_transaction_read_only`), and a run reads in
/// one statement, so it sees one consistent snapshot of the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSourceConfig {
    /// `postgres://user@host:port/database[?sslmode=…]`, without a password.
    pub url: String,
    /// Where the password is.
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// The table (`schema.table` or `table`). Exactly one of `table` and `query` is given.
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

impl PostgresSourceConfig {
    /// The SQL that reads the whole source.
    pub(crate) fn select_sql(&self) -> crate::Result<String> {
        crate::sql::base_select(self.table.as_deref(), self.query.as_deref(), crate::sql::Quote::Double)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_config_parses_and_unknown_fields_are_named() {
        let config: PostgresSourceConfig = serde_json::from_value(serde_json::json!({
            "url": "postgres://reader@db:5432/gongan", "password": {"env": "PW"}, "table": "hukou"
        }))
        .unwrap();
        assert_eq!(config.batch_size, 8192);
        assert_eq!(config.select_sql().unwrap(), "SELECT * FROM \"hukou\"");
        let err = serde_json::from_value::<PostgresSourceConfig>(serde_json::json!({"url": "x", "tabel": "t"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("tabel"), "{err}");
    }
}
