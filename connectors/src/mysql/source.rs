//! Reading a MySQL / MariaDB table or query as a stream of text batches. The query goes over
//! the text protocol, so every value arrives as the server's text for it (dates ISO), which is
//! what the mapping parses.

use std::str::FromStr;

use secrecy::ExposeSecret;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlRow};
use sqlx::{AssertSqlSafe, ConnectOptions, Row, ValueRef};

use super::MysqlSourceConfig;
use crate::{BatchStream, Error, ReadRequest, Result};

impl MysqlSourceConfig {
    fn options(&self) -> Result<MySqlConnectOptions> {
        crate::sql::check_url(&self.url)?;
        let mut options = MySqlConnectOptions::from_str(&self.url)
            .map_err(|e| Error::config("url", e.to_string()))?
            .charset("utf8mb4");
        if let Some(secret) = &self.password {
            options = options.password(secret.resolve("password")?.expose_secret());
        }
        Ok(options)
    }

    fn describe_target(&self) -> String {
        crate::sql::target("mysql", &self.url, 3306)
    }

    fn error(&self, e: sqlx::Error) -> Error {
        crate::sql::driver_error(self.describe_target(), e)
    }

    async fn connect(&self) -> Result<MySqlConnection> {
        let mut conn = self.options()?.connect().await.map_err(|e| self.error(e))?;
        sqlx::raw_sql("SET SESSION TRANSACTION READ ONLY")
            .execute(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        Ok(conn)
    }

    /// Proves the source reachable and the table or query readable.
    pub async fn healthcheck(&self) -> Result<()> {
        let sql = self.select_sql()?;
        let mut conn = self.connect().await?;
        sqlx::raw_sql(AssertSqlSafe(format!("SELECT * FROM ({sql}) AS huitong_check LIMIT 0")))
            .execute(&mut conn)
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Streams the source as batches of `batch_size` rows, every column as text.
    pub async fn read(&self, request: &ReadRequest) -> Result<BatchStream> {
        let sql = crate::sql::run_select(&self.select_sql()?, request, crate::sql::Quote::Backtick)?;
        let mut conn = self.connect().await?;
        let batch_size = self.batch_size.max(1);
        let (tx, stream) = crate::batch::channel();
        let this = self.clone();
        tokio::spawn(async move {
            let outcome = async {
                sqlx::raw_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                    .execute(&mut conn)
                    .await
                    .map_err(|e| this.error(e))?;
                let rows = sqlx::raw_sql(AssertSqlSafe(sql)).fetch(&mut conn);
                crate::sql::send_rows(rows, &tx, batch_size, cell_text, |e| this.error(e)).await
            }
            .await;
            if let Err(e) = outcome {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(stream)
    }
}

/// A cell as the text protocol delivered it (binary columns that are not UTF-8 are read
/// lossily).
fn cell_text(row: &MySqlRow, i: usize) -> Option<String> {
    let raw = row.try_get_raw(i).ok()?;
    if raw.is_null() {
        return None;
    }
    match row.try_get_unchecked::<&str, _>(i) {
        Ok(s) => Some(s.to_string()),
        Err(_) => row
            .try_get_unchecked::<&[u8], _>(i)
            .ok()
            .map(|b| String::from_utf8_lossy(b).into_owned()),
    }
}
