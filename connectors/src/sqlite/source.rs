//! Reading a SQLite table as a stream of Arrow batches.

use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{AssertSqlSafe, ConnectOptions, Row, ValueRef};

use super::SqliteSourceConfig;
use crate::{BatchStream, Error, ReadRequest, Result};

impl SqliteSourceConfig {
    async fn connect(&self) -> Result<sqlx::SqliteConnection> {
        SqliteConnectOptions::new()
            .filename(&self.path)
            .read_only(true)
            .immutable(false)
            .connect()
            .await
            .map_err(|e| Error::Unreachable(format!("sqlite {}: {e}", self.path.display())))
    }

    /// Proves the source is there and readable before a run starts.
    pub async fn healthcheck(&self) -> Result<()> {
        let sql = self.select_sql()?;
        let mut conn = self.connect().await?;
        // The SQL is the connector's own configuration, run on a read-only connection.
        sqlx::query(AssertSqlSafe(format!("SELECT * FROM ({sql}) LIMIT 0")))
            .execute(&mut conn)
            .await
            .map_err(|e| Error::Unreachable(format!("sqlite {}: {e}", self.path.display())))?;
        Ok(())
    }

    /// Streams the source as batches of `batch_size` rows. SQLite types belong to values, not
    /// columns, so every column arrives as text (integers and reals in their decimal form);
    /// the mapping parses them. A bounded channel keeps at most two batches in flight.
    pub async fn read(&self, request: &ReadRequest) -> Result<BatchStream> {
        let sql = self.select_sql_since(request)?;
        let mut conn = self.connect().await?;
        let batch_size = self.batch_size.max(1);
        let (tx, stream) = crate::batch::channel();
        tokio::spawn(async move {
            let rows = sqlx::query(AssertSqlSafe(sql)).fetch(&mut conn);
            let error = |e| Error::Unreachable(format!("reading sqlite: {e}"));
            if let Err(e) = crate::sql::send_rows(rows, &tx, batch_size, cell_text, error).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(stream)
    }
}

fn cell_text(row: &SqliteRow, i: usize) -> Option<String> {
    let raw = row.try_get_raw(i).ok()?;
    if raw.is_null() {
        return None;
    }
    row.try_get::<String, _>(i)
        .or_else(|_| row.try_get::<i64, _>(i).map(|v| v.to_string()))
        .or_else(|_| row.try_get::<f64, _>(i).map(|v| v.to_string()))
        .ok()
}
