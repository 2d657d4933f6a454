//! Reading a PostgreSQL table or query as a stream of text batches, with `COPY … TO STDOUT`:
//! the server formats every value as text (dates ISO), the rows arrive as one stream without
//! per-row protocol overhead, and one statement reads one consistent snapshot.

use std::str::FromStr;

use futures::TryStreamExt;
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, Column, ConnectOptions, Executor, SqlSafeStr};

use super::PostgresSourceConfig;
use super::copy_text::CopyTextParser;
use crate::batch::TextBatchBuilder;
use crate::{BatchStream, Error, ReadRequest, Result};

impl PostgresSourceConfig {
    /// The connection options, with the password from its secret.
    fn options(&self) -> Result<PgConnectOptions> {
        crate::sql::check_url(&self.url)?;
        let mut options = PgConnectOptions::from_str(&self.url)
            .map_err(|e| Error::config("url", e.to_string()))?
            .application_name("huitong")
            .options([("default_transaction_read_only", "on"), ("DateStyle", "ISO, YMD")]);
        if let Some(secret) = &self.password {
            options = options.password(secret.resolve("password")?.expose_secret());
        }
        Ok(options)
    }

    fn describe_target(&self) -> String {
        crate::sql::target("postgres", &self.url, 5432)
    }

    async fn connect(&self) -> Result<PgConnection> {
        let options = self.options()?;
        options.connect().await.map_err(|e| self.error(e))
    }

    fn error(&self, e: sqlx::Error) -> Error {
        crate::sql::driver_error(self.describe_target(), e)
    }

    /// The column names of the run's SELECT.
    async fn columns(&self, conn: &mut PgConnection, sql: &str) -> Result<Vec<String>> {
        let described = conn
            .describe(AssertSqlSafe(sql.to_string()).into_sql_str())
            .await
            .map_err(|e| self.error(e))?;
        Ok(described.columns().iter().map(|c| c.name().to_string()).collect())
    }

    /// Proves the source reachable and the table or query readable.
    pub async fn healthcheck(&self) -> Result<()> {
        let sql = self.select_sql()?;
        let mut conn = self.connect().await?;
        self.columns(&mut conn, &sql).await?;
        Ok(())
    }

    /// Streams the source as batches of `batch_size` rows, every column as text.
    pub async fn read(&self, request: &ReadRequest) -> Result<BatchStream> {
        let sql = crate::sql::run_select(&self.select_sql()?, request, crate::sql::Quote::Double)?;
        let mut conn = self.connect().await?;
        let names = self.columns(&mut conn, &sql).await?;
        let batch_size = self.batch_size.max(1);
        let (tx, stream) = crate::batch::channel();
        let this = self.clone();
        tokio::spawn(async move {
            let outcome = async {
                let mut chunks = conn
                    .copy_out_raw(&format!("COPY ({sql}) TO STDOUT"))
                    .await
                    .map_err(|e| this.error(e))?;
                let mut builder = TextBatchBuilder::new(&names, batch_size);
                let mut parser = CopyTextParser::default();
                let mut ready = Vec::new();
                while let Some(chunk) = chunks.try_next().await.map_err(|e| this.error(e))? {
                    parser.feed(&chunk, &mut builder, |b| {
                        ready.push(b.finish()?);
                        Ok(())
                    })?;
                    for batch in ready.drain(..) {
                        if tx.send(Ok(batch)).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                if parser.has_partial_row() {
                    return Err(Error::Unreachable(format!(
                        "{}: the stream ended in the middle of a row",
                        this.describe_target()
                    )));
                }
                if !builder.is_empty() {
                    let _ = tx.send(builder.finish()).await;
                }
                Ok(())
            }
            .await;
            if let Err(e) = outcome {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(stream)
    }
}
