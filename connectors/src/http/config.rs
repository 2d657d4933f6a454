//! Configuration of the HTTP JSON source.

use std::collections::BTreeMap;

use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::{Error, Result, SecretRef};

/// Reads the records of a JSON API over HTTP `GET`, page by page.
///
/// ```json
/// {
///   "kind": "http",
///   "url": "http://api.wjw.example.gov.cn/v1/vaccinations",
///   "records": "/data/list",
///   "pagination": {"kind": "page", "param": "pageNo", "size_param": "pageSize", "size": 500},
///   "query": {"region": "330100"},
///   "headers": {"Authorization": {"env": "WJW_API_TOKEN"}},
///   "since_param": "updatedSince",
///   "retries": 3,
///   "backoff_ms": 500,
///   "timeout_secs": 30
/// }
/// ```
///
/// Every record becomes one row; every column is text (strings as they are, numbers and booleans
/// in their JSON form, nested objects and arrays as compact JSON). The rows also carry
/// [`POSITION_COLUMN`](crate::batch::POSITION_COLUMN) (`page 3, record 17`, or `offset 1000+17`
/// with offset pagination) and [`ROW_ERROR_COLUMN`](crate::batch::ROW_ERROR_COLUMN), set when a
/// record is not a JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSourceConfig {
    /// The endpoint, `http://` or `https://`, possibly with a query string of its own. It must
    /// not hold credentials (`user:password@`): send them with `headers`.
    pub url: String,
    /// A JSON pointer (RFC 6901) to the array of records in each response body: `/data/list`
    /// for `{"code": 0, "data": {"list": [...]}}`. The default, `""`, is the body itself. A body
    /// where the pointer finds no array fails the run: an API error answered with status 200
    /// must not pass for an empty page.
    #[serde(default)]
    pub records: String,
    /// How the records are split into pages; a single request by default.
    #[serde(default)]
    pub pagination: Pagination,
    /// Query parameters added to every request, e.g. `{"region": "330100"}`. Not for secrets:
    /// they appear in error messages and logs along with the URL.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Headers sent on every request: header name → where its value is read, e.g.
    /// `{"Authorization": {"env": "WJW_API_TOKEN"}}`. Values are read at run time and never
    /// logged nor shown in errors.
    #[serde(default)]
    pub headers: BTreeMap<String, SecretRef>,
    /// On incremental runs, the query parameter that receives the watermark (`42`,
    /// `2024-03-01 08:00:00` or `2024-03-01`, by the cursor's kind), for APIs that can return
    /// only the records changed since then. Without it every run reads every record and the
    /// engine drops the older ones.
    #[serde(default)]
    pub since_param: Option<String>,
    /// How many times a request is tried, the first time included, when the server cannot be
    /// reached, times out, or answers 5xx or 429. At least 1.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The wait before the second try, in milliseconds; doubled before each further try, up to
    /// 30 s. A 429 or 503 answer with `Retry-After: <seconds>` waits that long instead (also at
    /// most 30 s).
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
    /// The time allowed for one request, response body included, in seconds. At least 1.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Rows per Arrow batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
}

/// How an API splits its records into pages. Page and offset pagination stop at the first page
/// shorter than the requested size (an empty one included), so the size must not exceed the
/// largest page the server agrees to send; a page longer than requested fails the run, as
/// the server is then ignoring the size parameter.
///
/// ```json
/// {"kind": "none"}
/// {"kind": "page", "param": "page", "size_param": "size", "size": 500, "first": 1}
/// {"kind": "offset", "param": "offset", "limit_param": "limit", "limit": 500}
/// {"kind": "cursor", "param": "cursor", "next": "/data/next_cursor"}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pagination {
    /// One request returns every record.
    #[default]
    None,
    /// Numbered pages: `?page=1&size=500`, `?page=2&size=500`, …
    Page {
        /// The page number parameter.
        #[serde(default = "default_page_param")]
        param: String,
        /// The page size parameter.
        #[serde(default = "default_size_param")]
        size_param: String,
        /// Records per page.
        #[serde(default = "default_page_size")]
        size: u64,
        /// The number of the first page (1, or 0 for some APIs).
        #[serde(default = "default_first_page")]
        first: u64,
    },
    /// Offsets into the record list: `?offset=0&limit=500`, `?offset=500&limit=500`, …
    Offset {
        /// The offset parameter.
        #[serde(default = "default_offset_param")]
        param: String,
        /// The page size parameter.
        #[serde(default = "default_limit_param")]
        limit_param: String,
        /// Records per page.
        #[serde(default = "default_page_size")]
        limit: u64,
    },
    /// Opaque cursors: each response names the cursor of the next page, sent back as
    /// `?cursor=<next>`; the first request has none. Reading stops when the response has no
    /// next cursor (absent, `null` or `""`).
    Cursor {
        /// The parameter the next cursor is sent in.
        #[serde(default = "default_cursor_param")]
        param: String,
        /// A JSON pointer to the next cursor in each response body (a string or a number),
        /// e.g. `/data/next_cursor`.
        next: String,
    },
}

fn default_retries() -> u32 {
    3
}

fn default_backoff_ms() -> u64 {
    500
}

fn default_timeout_secs() -> u64 {
    30
}

fn default_batch_size() -> usize {
    1000
}

fn default_page_param() -> String {
    "page".into()
}

fn default_size_param() -> String {
    "size".into()
}

fn default_page_size() -> u64 {
    500
}

fn default_first_page() -> u64 {
    1
}

fn default_offset_param() -> String {
    "offset".into()
}

fn default_limit_param() -> String {
    "limit".into()
}

fn default_cursor_param() -> String {
    "cursor".into()
}

impl HttpSourceConfig {
    /// The endpoint, after checking the whole config is usable.
    pub(crate) fn checked_url(&self) -> Result<Url> {
        // The parse error never quotes the URL, which may hold a password.
        let url = Url::parse(&self.url).map_err(|e| Error::config("url", format!("not a valid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::config("url", "only http:// and https:// URLs can be read"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::config(
                "url",
                "credentials must not be written in the URL: send them with `headers`, e.g. \
                 {\"Authorization\": {\"env\": \"API_TOKEN\"}}",
            ));
        }
        check_pointer("records", &self.records)?;
        match &self.pagination {
            Pagination::None => {}
            Pagination::Page {
                param,
                size_param,
                size,
                ..
            } => {
                check_param("pagination.param", param)?;
                check_param("pagination.size_param", size_param)?;
                check_size("pagination.size", *size)?;
            }
            Pagination::Offset {
                param,
                limit_param,
                limit,
            } => {
                check_param("pagination.param", param)?;
                check_param("pagination.limit_param", limit_param)?;
                check_size("pagination.limit", *limit)?;
            }
            Pagination::Cursor { param, next } => {
                check_param("pagination.param", param)?;
                check_pointer("pagination.next", next)?;
                if next.is_empty() {
                    return Err(Error::config("pagination.next", "point at the next cursor, e.g. /next"));
                }
            }
        }
        if let Some(param) = &self.since_param {
            check_param("since_param", param)?;
        }
        if self.retries == 0 {
            return Err(Error::config("retries", "a request must be tried at least once"));
        }
        if self.timeout_secs == 0 {
            return Err(Error::config("timeout_secs", "give at least 1 second"));
        }
        Ok(url)
    }
}

fn check_pointer(field: &str, pointer: &str) -> Result<()> {
    if pointer.is_empty() || pointer.starts_with('/') {
        Ok(())
    } else {
        Err(Error::config(
            field,
            format!("{pointer:?} is not a JSON pointer: it starts with `/`, like /data/list (or is \"\")"),
        ))
    }
}

fn check_param(field: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        Err(Error::config(field, "a query parameter name cannot be empty"))
    } else {
        Ok(())
    }
}

fn check_size(field: &str, size: u64) -> Result<()> {
    if size == 0 {
        Err(Error::config(field, "a page holds at least one record"))
    } else {
        Ok(())
    }
}
