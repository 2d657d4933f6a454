//! Reading a JSON API page by page as a stream of Arrow batches.

use std::collections::HashMap;
use std::error::Error as _;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};

use super::json::Json;
use super::{HttpSourceConfig, Pagination};
use crate::batch::{BatchSender, POSITION_COLUMN, ROW_ERROR_COLUMN, TextBatchBuilder};
use crate::{BatchStream, Error, ReadRequest, Result};

/// The longest wait between two tries of a request.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How much of an error response body is quoted in the error.
const BODY_EXCERPT_CHARS: usize = 200;

impl HttpSourceConfig {
    /// Proves the endpoint answers the first page with records, headers included, before a
    /// run starts.
    pub async fn healthcheck(&self) -> Result<()> {
        let client = Client::new(self, None)?;
        client.fetch(&At::first(&self.pagination)).await?;
        Ok(())
    }

    /// Streams the records as batches of `batch_size` rows: one text column per name in
    /// `request.columns` (or, when it is empty, per key of the first record, in its order),
    /// then the position and row-error columns. Pages are fetched one at a time by a task that
    /// waits while the engine is busy, so memory stays at a page and a few batches.
    pub async fn read(&self, request: &ReadRequest) -> Result<BatchStream> {
        let client = Client::new(self, request.since.as_ref().map(|s| s.literal()))?;
        let columns = if request.columns.is_empty() {
            None
        } else {
            Some(usable_columns(request.columns.iter().map(String::as_str)))
        };
        let (tx, stream) = crate::batch::channel();
        tokio::spawn(client.stream(columns, tx));
        Ok(stream)
    }
}

/// Requests to one endpoint, with the headers resolved.
struct Client {
    http: reqwest::Client,
    url: Url,
    /// Sent on every request; each value is marked sensitive.
    headers: HeaderMap,
    /// The header values, to keep them out of quoted response bodies.
    secrets: Vec<SecretString>,
    since: Option<String>,
    config: HttpSourceConfig,
}

/// One page of a response.
struct Page {
    records: Vec<Json>,
    /// Cursor pagination: the cursor of the next page, if any.
    next: Option<String>,
}

impl Client {
    fn new(config: &HttpSourceConfig, since: Option<String>) -> Result<Self> {
        let url = config.checked_url()?;
        let mut headers = HeaderMap::new();
        let mut secrets = Vec::new();
        for (name, secret) in &config.headers {
            let field = format!("headers.{name}");
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::config(&field, "not a valid HTTP header name"))?;
            let value = secret.resolve(&field)?;
            // The error must not quote the value.
            let mut header_value = HeaderValue::from_str(value.expose_secret())
                .map_err(|_| Error::config(&field, "the secret is not a valid header value (a line break?)"))?;
            header_value.set_sensitive(true);
            headers.insert(header, header_value);
            secrets.push(value);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_secs))
            .build()
            .map_err(|e| Error::Unreachable(format!("cannot start an HTTP client: {}", error_chain(e))))?;
        Ok(Self {
            http,
            url,
            headers,
            secrets,
            since,
            config: config.clone(),
        })
    }

    /// The URL of one page: the endpoint with the static query, the watermark and the page.
    fn page_url(&self, at: &At) -> Url {
        let mut pairs: Vec<(&str, String)> = self.config.query.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        if let (Some(param), Some(since)) = (&self.config.since_param, &self.since) {
            pairs.push((param, since.clone()));
        }
        pairs.extend(at.params(&self.config.pagination));
        let mut url = self.url.clone();
        if !pairs.is_empty() {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        url
    }

    /// Fetches one page, trying again on failures worth it.
    async fn fetch(&self, at: &At) -> Result<Page> {
        let url = self.page_url(at);
        let attempts = self.config.retries.max(1);
        let mut backoff = Duration::from_millis(self.config.backoff_ms).min(MAX_BACKOFF);
        let mut attempt = 1;
        loop {
            let (failure, retry_after) = match self.try_fetch(&url, at).await? {
                Ok(page) => return Ok(page),
                Err(failure) => failure,
            };
            if attempt >= attempts {
                let times = if attempts == 1 { "attempt" } else { "attempts" };
                return Err(Error::Unreachable(format!(
                    "GET {url} ({}): {failure} after {attempts} {times}",
                    at.label()
                )));
            }
            let wait = retry_after.unwrap_or(backoff).min(MAX_BACKOFF);
            tracing::warn!(%url, page = %at.label(), attempt, %failure, ?wait, "HTTP source: trying again");
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            attempt += 1;
        }
    }

    /// One try: the page, a failure worth trying again (with the server's `Retry-After`), or
    /// an error that trying again will not mend.
    async fn try_fetch(&self, url: &Url, at: &At) -> Result<Result<Page, (String, Option<Duration>)>> {
        let response = match self.http.get(url.clone()).headers(self.headers.clone()).send().await {
            Ok(response) => response,
            Err(e) => return Ok(Err((self.describe(e), None))),
        };
        let status = response.status();
        if status.is_success() {
            return match response.bytes().await {
                Ok(body) => self.parse(url, at, &body).map(Ok),
                Err(e) => Ok(Err((self.describe(e), None))),
            };
        }
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            let retry_after = if matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE) {
                response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs)
            } else {
                None
            };
            return Ok(Err((status.to_string(), retry_after)));
        }
        let refused = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
        let hint = match status {
            _ if refused => ": check the connector's headers",
            StatusCode::NOT_FOUND => ": check the connector's url",
            _ => "",
        };
        // A refusal may quote the credentials it refused: its body is not shown.
        let said = if refused {
            String::new()
        } else {
            let body = response.bytes().await.unwrap_or_default();
            self.excerpt(&body)
                .map(|text| format!(" (the server said: {text})"))
                .unwrap_or_default()
        };
        Err(Error::Unreadable(format!(
            "GET {url} ({}): {status}{hint}{said}",
            at.label()
        )))
    }

    /// Reads the records, and the next cursor, of a response body.
    fn parse(&self, url: &Url, at: &At, body: &[u8]) -> Result<Page> {
        let unreadable = |what: String| Error::Unreadable(format!("GET {url} ({}): {what}", at.label()));
        let mut json: Json =
            serde_json::from_slice(body).map_err(|e| unreadable(format!("the response is not JSON: {e}")))?;
        let next = match &self.config.pagination {
            Pagination::Cursor { next, .. } => match json.pointer_mut(next) {
                None | Some(Json::Null) => None,
                Some(Json::String(s)) if s.is_empty() => None,
                Some(Json::String(s)) => Some(std::mem::take(s)),
                Some(Json::Number(n)) => Some(n.to_string()),
                Some(other) => {
                    return Err(unreadable(format!(
                        "the next cursor at {next} is {}, not a string or a number",
                        other.kind()
                    )));
                }
            },
            _ => None,
        };
        let pointer = &self.config.records;
        let records = match json.pointer_mut(pointer) {
            Some(Json::Array(items)) => std::mem::take(items),
            Some(other) if pointer.is_empty() => {
                return Err(unreadable(format!(
                    "the response is {}, not an array of records (set `records` to the JSON pointer of the array)",
                    other.kind()
                )));
            }
            Some(other) => {
                return Err(unreadable(format!(
                    "`records` {pointer} is {}, not an array of records",
                    other.kind()
                )));
            }
            None => return Err(unreadable(format!("the response has nothing at `records` {pointer}"))),
        };
        tracing::debug!(%url, page = %at.label(), records = records.len(), "HTTP source: page read");
        Ok(Page { records, next })
    }

    /// A transport failure, in words; reqwest's own message is often just "error sending
    /// request", the cause is further down.
    fn describe(&self, e: reqwest::Error) -> String {
        if e.is_timeout() {
            return format!("no complete answer within {} s", self.config.timeout_secs);
        }
        error_chain(e.without_url())
    }

    /// The start of a response body, on one line, with the header values blotted out.
    fn excerpt(&self, body: &[u8]) -> Option<String> {
        let mut text = String::from_utf8_lossy(body)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for secret in &self.secrets {
            let value = secret.expose_secret();
            // The whole value, and its words (the token of `Bearer <token>`).
            for part in std::iter::once(value).chain(value.split_whitespace().filter(|w| w.len() >= 6)) {
                if !part.is_empty() {
                    text = text.replace(part, "***");
                }
            }
        }
        if text.is_empty() {
            return None;
        }
        if text.chars().count() > BODY_EXCERPT_CHARS {
            text = text.chars().take(BODY_EXCERPT_CHARS).chain("…".chars()).collect();
        }
        Some(text)
    }

    /// Fetches every page and sends its records down `tx` as batches, ending at the last page,
    /// at the first error (sent down `tx`), or when nobody listens any more.
    async fn stream(self, mut columns: Option<Vec<String>>, tx: BatchSender) {
        let mut at = At::first(&self.config.pagination);
        let mut rows: Option<Rows> = None;
        let mut previous: Vec<Json> = Vec::new();
        loop {
            if tx.is_closed() {
                return;
            }
            let page = match self.fetch(&at).await {
                Ok(page) => page,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            if let Err(e) = at.check(&self.config.pagination, &page.records, &previous) {
                let _ = tx.send(Err(e)).await;
                return;
            }
            if !page.records.is_empty() {
                let rows = rows.get_or_insert_with(|| {
                    let names = columns.take().unwrap_or_else(|| first_keys(&page.records));
                    Rows::new(names, self.config.batch_size.max(1))
                });
                for (i, record) in page.records.iter().enumerate() {
                    rows.push(record, &at.position(i));
                    if rows.builder.is_full() && tx.send(rows.builder.finish()).await.is_err() {
                        return;
                    }
                }
            }
            let next = match at.next(&self.config.pagination, &page) {
                Ok(next) => next,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            match next {
                Some(next) => at = next,
                None => break,
            }
            previous = page.records;
        }
        if let Some(rows) = rows.as_mut().filter(|r| !r.builder.is_empty()) {
            let _ = tx.send(rows.builder.finish()).await;
        }
    }
}

/// Which page a request reads.
#[derive(Debug, Clone, PartialEq, Eq)]
enum At {
    /// The only request, without pagination.
    Single,
    /// A page number.
    Page(u64),
    /// An offset.
    Offset(u64),
    /// The `count`th request (from 1) of cursor pagination, with the cursor it sends.
    Cursor { count: u64, token: Option<String> },
}

impl At {
    fn first(pagination: &Pagination) -> Self {
        match pagination {
            Pagination::None => At::Single,
            Pagination::Page { first, .. } => At::Page(*first),
            Pagination::Offset { .. } => At::Offset(0),
            Pagination::Cursor { .. } => At::Cursor { count: 1, token: None },
        }
    }

    /// The page, in words, for messages.
    fn label(&self) -> String {
        match self {
            At::Single => "page 1".into(),
            At::Page(n) => format!("page {n}"),
            At::Offset(offset) => format!("offset {offset}"),
            At::Cursor { count, .. } => format!("page {count}"),
        }
    }

    /// Where the `i`th record (from 0) of this page is: `page 3, record 17` (from 1), or
    /// `offset 1000+16` (the record at offset 1016).
    fn position(&self, i: usize) -> String {
        match self {
            At::Offset(offset) => format!("offset {offset}+{i}"),
            _ => format!("{}, record {}", self.label(), i + 1),
        }
    }

    /// The query parameters that select this page.
    fn params<'a>(&self, pagination: &'a Pagination) -> Vec<(&'a str, String)> {
        match (self, pagination) {
            (
                At::Page(n),
                Pagination::Page {
                    param,
                    size_param,
                    size,
                    ..
                },
            ) => vec![(param.as_str(), n.to_string()), (size_param.as_str(), size.to_string())],
            (
                At::Offset(offset),
                Pagination::Offset {
                    param,
                    limit_param,
                    limit,
                },
            ) => vec![
                (param.as_str(), offset.to_string()),
                (limit_param.as_str(), limit.to_string()),
            ],
            (At::Cursor { token: Some(token), .. }, Pagination::Cursor { param, .. }) => {
                vec![(param.as_str(), token.clone())]
            }
            _ => Vec::new(),
        }
    }

    /// Refuses a page that shows the server ignores the pagination parameters: reading on
    /// would never end, or would repeat records.
    fn check(&self, pagination: &Pagination, records: &[Json], previous: &[Json]) -> Result<()> {
        let (size, param) = match pagination {
            Pagination::Page { size, param, .. } => (*size, param),
            Pagination::Offset { limit, param, .. } => (*limit, param),
            Pagination::Cursor { param, .. } => (u64::MAX, param),
            Pagination::None => return Ok(()),
        };
        if records.len() as u64 > size {
            return Err(Error::Unreadable(format!(
                "{}: {} records, more than the {size} asked for: does the server take the page size \
                 parameter, and allow pages this large?",
                self.label(),
                records.len()
            )));
        }
        if records.len() > 1 && records == previous {
            return Err(Error::Unreadable(format!(
                "{}: the same records as the page before: does the server take the `{param}` parameter?",
                self.label()
            )));
        }
        Ok(())
    }

    /// The page after this one, `None` after the last.
    fn next(&self, pagination: &Pagination, page: &Page) -> Result<Option<At>> {
        let len = page.records.len() as u64;
        Ok(match (self, pagination) {
            (At::Page(n), Pagination::Page { size, .. }) if len >= *size => Some(At::Page(n + 1)),
            (At::Offset(offset), Pagination::Offset { limit, .. }) if len >= *limit => Some(At::Offset(offset + len)),
            (At::Cursor { count, token }, Pagination::Cursor { .. }) => match &page.next {
                None => None,
                Some(next) if Some(next) == token.as_ref() => {
                    return Err(Error::Unreadable(format!(
                        "{}: the next cursor is the one just sent: the pages would never end",
                        self.label()
                    )));
                }
                Some(next) => Some(At::Cursor {
                    count: count + 1,
                    token: Some(next.clone()),
                }),
            },
            _ => None,
        })
    }
}

/// The column names, without duplicates nor the reserved columns the source adds itself.
fn usable_columns<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut columns: Vec<String> = Vec::new();
    for name in names {
        if name != POSITION_COLUMN && name != ROW_ERROR_COLUMN && !columns.iter().any(|c| c == name) {
            columns.push(name.to_string());
        }
    }
    columns
}

/// The keys of the first record that is an object, in order.
fn first_keys(records: &[Json]) -> Vec<String> {
    records
        .iter()
        .find_map(|r| match r {
            Json::Object(pairs) => Some(usable_columns(pairs.iter().map(|(k, _)| k.as_str()))),
            _ => None,
        })
        .unwrap_or_default()
}

/// Records turned into rows of text cells.
struct Rows {
    builder: TextBatchBuilder,
    /// Column name → index, for the record columns.
    index: HashMap<String, usize>,
}

impl Rows {
    fn new(columns: Vec<String>, batch_size: usize) -> Self {
        let mut names = columns.clone();
        names.push(POSITION_COLUMN.to_string());
        names.push(ROW_ERROR_COLUMN.to_string());
        Self {
            builder: TextBatchBuilder::new(&names, batch_size),
            index: columns.into_iter().enumerate().map(|(i, c)| (c, i)).collect(),
        }
    }

    fn push(&mut self, record: &Json, position: &str) {
        let width = self.index.len();
        let mut cells = vec![None; width];
        let error = match record {
            Json::Object(pairs) => {
                for (key, value) in pairs {
                    if let Some(&i) = self.index.get(key) {
                        cells[i] = value.text();
                    }
                }
                None
            }
            other => {
                let mut text = other.compact();
                if text.chars().count() > BODY_EXCERPT_CHARS {
                    text = text.chars().take(BODY_EXCERPT_CHARS).chain("…".chars()).collect();
                }
                Some(format!("the record is {}, not a JSON object: {text}", other.kind()))
            }
        };
        for (i, cell) in cells.iter().enumerate() {
            self.builder.append(i, cell.as_deref());
        }
        self.builder.append(width, Some(position));
        self.builder.append(width + 1, error.as_deref());
        self.builder.end_row();
    }
}

/// An error and its causes, on one line.
fn error_chain(e: reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}
