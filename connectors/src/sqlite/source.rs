//! Reading a SQLite table as a stream of Arrow batches.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use futures::TryStreamExt;
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{AssertSqlSafe, Column, ConnectOptions, Row, ValueRef};
use tokio::sync::mpsc;

use super::SqliteSourceConfig;
use crate::{BatchStream, Error, Result};

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
    pub async fn read(&self) -> Result<BatchStream> {
        let sql = self.select_sql()?;
        let mut conn = self.connect().await?;
        let batch_size = self.batch_size.max(1);
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(async move {
            let mut rows = sqlx::query(AssertSqlSafe(sql)).fetch(&mut conn);
            let mut builder: Option<BatchBuilder> = None;
            loop {
                let next = rows.try_next().await;
                let row = match next {
                    Ok(Some(row)) => row,
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(Err(Error::Unreachable(format!("reading sqlite: {e}")))).await;
                        return;
                    }
                };
                let b = builder.get_or_insert_with(|| BatchBuilder::new(&row, batch_size));
                b.push(&row);
                if b.len == batch_size {
                    let batch = b.finish();
                    if tx.send(batch).await.is_err() {
                        return;
                    }
                }
            }
            if let Some(mut b) = builder.filter(|b| b.len > 0) {
                let _ = tx.send(b.finish()).await;
            }
        });
        Ok(BatchStream::new(rx))
    }
}

struct BatchBuilder {
    schema: SchemaRef,
    columns: Vec<StringBuilder>,
    len: usize,
}

impl BatchBuilder {
    fn new(first: &SqliteRow, capacity: usize) -> Self {
        let fields: Vec<Field> = first
            .columns()
            .iter()
            .map(|c| Field::new(c.name(), DataType::Utf8, true))
            .collect();
        let columns = fields
            .iter()
            .map(|_| StringBuilder::with_capacity(capacity, capacity * 16))
            .collect();
        Self {
            schema: Arc::new(Schema::new(fields)),
            columns,
            len: 0,
        }
    }

    fn push(&mut self, row: &SqliteRow) {
        for (i, column) in self.columns.iter_mut().enumerate() {
            column.append_option(cell_text(row, i));
        }
        self.len += 1;
    }

    fn finish(&mut self) -> Result<RecordBatch> {
        self.len = 0;
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|c| Arc::new(c.finish()) as ArrayRef)
            .collect();
        Ok(RecordBatch::try_new(self.schema.clone(), arrays)?)
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
