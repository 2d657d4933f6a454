//! Paging through another Huitong's change feed.

use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::Value;

use super::HuitongSourceConfig;
use crate::batch::{POSITION_COLUMN, TextBatchBuilder};
use crate::sync::OP_COLUMN;
use crate::{BatchStream, Error, ReadRequest, Result};

/// The column holding the remote library version a pull reflects.
pub const VERSION_COLUMN: &str = "_huitong_version";

impl HuitongSourceConfig {
    fn client(&self) -> Result<reqwest::Client> {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(self.timeout_secs.max(1)))
            .build()
            .map_err(|e| Error::config("base_url", e.to_string()))
    }

    /// Checks the URL without reaching it.
    pub(crate) fn check(&self) -> Result<()> {
        self.feed_url().map(|_| ())
    }

    fn feed_url(&self) -> Result<url::Url> {
        let base = url::Url::parse(&self.base_url).map_err(|e| Error::config("base_url", e.to_string()))?;
        if !base.username().is_empty() || base.password().is_some() {
            return Err(Error::config(
                "base_url",
                "no credentials in the URL: the key goes in `api_key`",
            ));
        }
        base.join(&format!(
            "api/v1/exchange/{}/changes",
            url::form_urlencoded::byte_serialize(self.resource_code.as_bytes()).collect::<String>()
        ))
        .map_err(|e| Error::config("base_url", e.to_string()))
    }

    async fn page(
        &self,
        client: &reqwest::Client,
        key: &str,
        since: i64,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Value> {
        let mut url = self.feed_url()?;
        url.query_pairs_mut()
            .append_pair("since_version", &since.to_string())
            .append_pair("limit", &limit.to_string());
        if let Some(cursor) = cursor {
            url.query_pairs_mut().append_pair("cursor", cursor);
        }
        let target = format!("huitong {} {}", self.base_url, self.resource_code);
        let response = client
            .get(url)
            .bearer_auth(key)
            .send()
            .await
            .map_err(|e| Error::Unreachable(format!("{target}: {}", e.without_url())))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| Error::Unreachable(format!("{target}: reading the answer: {}", e.without_url())))?;
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(Error::Unreachable(format!("{target}: {status}")));
        }
        if !status.is_success() {
            let detail = body["detail"].as_str().unwrap_or("");
            let code = body["code"].as_str().unwrap_or("");
            return Err(Error::Unreadable(format!("{target}: {status} {code}: {detail}")));
        }
        Ok(body)
    }

    /// Proves the remote reachable and the key granted: asks for the first change (from version
    /// 0, so the remote stops at its first record).
    pub async fn healthcheck(&self) -> Result<()> {
        let key = self.api_key.resolve("api_key")?;
        self.page(&self.client()?, key.expose_secret(), 0, 1, None).await?;
        Ok(())
    }

    /// Streams the changes since the watermark (everything on a first or full run).
    pub async fn read(&self, request: &ReadRequest) -> Result<BatchStream> {
        let key = self.api_key.resolve("api_key")?;
        let client = self.client()?;
        let since = request.since.as_ref().map_or(0, |s| s.watermark);
        let mut columns = request.columns.clone();
        columns.retain(|c| c != VERSION_COLUMN && c != OP_COLUMN && c != POSITION_COLUMN);
        if !columns.contains(&self.key_field) {
            columns.push(self.key_field.clone());
        }
        let mut names = columns.clone();
        names.extend([
            VERSION_COLUMN.to_string(),
            OP_COLUMN.to_string(),
            POSITION_COLUMN.to_string(),
        ]);
        let limit = self.page_size.clamp(1, 5000);
        let (tx, stream) = crate::batch::channel();
        let this = self.clone();
        tokio::spawn(async move {
            let outcome = async {
                let mut builder = TextBatchBuilder::new(&names, limit);
                let mut cursor: Option<String> = None;
                let mut page_number = 0u64;
                loop {
                    page_number += 1;
                    let body = this
                        .page(&client, key.expose_secret(), since, limit, cursor.as_deref())
                        .await?;
                    if let Some(masked) = body["masked"].as_array() {
                        let masked: Vec<&str> = masked
                            .iter()
                            .filter_map(Value::as_str)
                            .filter(|m| columns.iter().any(|c| c == m))
                            .collect();
                        if !masked.is_empty() {
                            return Err(Error::Unreadable(format!(
                                "the grant on {} gives {} masked only; a library is not fed masked values — \
                                 ask the providing platform for a plain grant",
                                this.resource_code,
                                masked.join(", ")
                            )));
                        }
                    }
                    let as_of = body["as_of_version"].as_i64().unwrap_or(0).to_string();
                    let changes = body["changes"]
                        .as_array()
                        .ok_or_else(|| Error::Unreadable(format!("page {page_number} holds no `changes` list")))?;
                    for (i, change) in changes.iter().enumerate() {
                        let deleted = change["op"] == "delete";
                        let key = change["key"].as_str();
                        for (c, column) in columns.iter().enumerate() {
                            let value = if column == &this.key_field {
                                key.map(str::to_string)
                            } else {
                                text(&change["record"][column.as_str()])
                            };
                            builder.append(c, value.as_deref());
                        }
                        builder.append(columns.len(), Some(&as_of));
                        builder.append(columns.len() + 1, Some(if deleted { "D" } else { "U" }));
                        builder.append(
                            columns.len() + 2,
                            Some(&format!("page {page_number}, change {}", i + 1)),
                        );
                        builder.end_row();
                        if builder.is_full() && tx.send(builder.finish()).await.is_err() {
                            return Ok(());
                        }
                    }
                    match body["next_cursor"].as_str() {
                        Some(next) => cursor = Some(next.to_string()),
                        None => break,
                    }
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

fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}
