//! Filtered, projected reads of a resource under policy:
//! `GET /api/v1/exchange/{resource_code}/records?filter=…&fields=…&cursor=…&limit=…` (paged by
//! key) and `GET /api/v1/exchange/{resource_code}/export?format=…` (streamed bulk export).

use std::io::Write;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use arrow::array::RecordBatch;
use catalog::Resource;
use exchange_core::index::{Encoded, Scan};
use exchange_core::{Library, ShareMethod};
use policy::Access;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::problem::Problem;
use crate::query::view::{CHUNK, View, raw_batch};
use crate::query::{FilterError, RowFilter};
use crate::routes::exchange::{CallRecord, authorize, project};
use crate::startup::AppState;

const RECORDS_ENDPOINT: &str = "GET /api/v1/exchange/{resource_code}/records";
const EXPORT_ENDPOINT: &str = "GET /api/v1/exchange/{resource_code}/export";

/// Records examined for one page at most: a page of a very selective filter may come back short
/// (even empty) with a `next_cursor` to go on from.
const PAGE_BUDGET: usize = 100_000;

/// Query of the records endpoint.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecordsQuery {
    /// A DataFusion SQL boolean expression over the items the caller may see.
    #[serde(default)]
    pub filter: Option<String>,
    /// Comma-separated items to return (default: every item the caller may see).
    #[serde(default)]
    pub fields: Option<String>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Records per page, 1–1000 (default 100).
    #[serde(default = "default_limit")]
    pub limit: usize,
}

fn default_limit() -> usize {
    100
}

/// Query of the export endpoint.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `csv`, `json`, `ndjson`, `parquet` or `xlsx`.
    pub format: String,
    /// Comma-separated items to export (default: every item the caller may see).
    #[serde(default)]
    pub fields: Option<String>,
    /// A DataFusion SQL boolean expression over the items the caller may see.
    #[serde(default)]
    pub filter: Option<String>,
    /// Export the library as it was at this version (历史快照; default: the current one).
    #[param(value_type = Option<i64>)]
    #[serde(default)]
    pub as_of_version: Option<String>,
    /// Export the library as it was at this instant (RFC 3339): the version current then.
    #[param(value_type = Option<String>, format = DateTime)]
    #[serde(default)]
    pub as_of: Option<String>,
}

fn invalid(code: &'static str, field: &str, detail: impl Into<String>) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        code,
        "Invalid query parameter",
        detail,
    )
    .with_field(field)
}

fn not_granted(field: &str, item: &str) -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        "item_not_granted",
        "Item not granted",
        format!("the data item {item} is not among the items you may read"),
    )
    .with_field(field)
}

/// An authorized read: the caller's view, the filter over it and the items to return.
pub(crate) struct Read {
    pub(crate) resource: std::sync::Arc<Resource>,
    pub(crate) library: Arc<Library>,
    pub(crate) access: Access,
    pub(crate) view: Arc<View>,
    pub(crate) filter: Option<Arc<RowFilter>>,
    /// Positions in the view's columns of the items returned.
    pub(crate) fields: Vec<usize>,
}

impl Read {
    pub(crate) fn field_names(&self) -> Vec<&'static str> {
        self.fields.iter().map(|i| self.view.columns[*i].name).collect()
    }
}

async fn prepare(
    req: &HttpRequest,
    state: &AppState,
    resource_code: &str,
    filter: Option<&str>,
    fields: Option<&str>,
    call: &mut CallRecord,
) -> Result<Read, Problem> {
    let (resource, library, access) = authorize(req, state, resource_code, call).await?;
    read_of(state, resource, library, access, filter, fields, call)
}

/// The read `access` allows of `library`, with the caller's `filter` and `fields` checked
/// against it: an unknown item is a 422, an item the caller may not read a 403.
pub(crate) fn read_of(
    state: &AppState,
    resource: Arc<Resource>,
    library: Arc<Library>,
    access: Access,
    filter: Option<&str>,
    fields: Option<&str>,
    call: &mut CallRecord,
) -> Result<Read, Problem> {
    let resource_code = resource.code.as_str();
    let schema = library.schema();
    let view = View::new(&access, schema).map_err(|e| {
        tracing::error!(grant = ?access.grant_id, error = %e, "a grant's row filter does not compile");
        Problem::internal(&e)
    })?;
    let names = view.names();
    let fields = match fields.map(str::trim).filter(|f| !f.is_empty()) {
        None => (0..names.len()).collect(),
        Some(list) => {
            let mut positions = Vec::new();
            for item in list.split(',').map(str::trim) {
                if schema.position(item).is_none() {
                    return Err(invalid(
                        "unknown_item",
                        "fields",
                        format!("resource {resource_code} has no data item {item:?}"),
                    ));
                }
                let position = names
                    .iter()
                    .position(|n| *n == item)
                    .ok_or_else(|| not_granted("fields", item))?;
                if !positions.contains(&position) {
                    positions.push(position);
                }
            }
            positions
        }
    };
    let filter = match filter.map(str::trim) {
        None => None,
        Some("") => return Err(invalid("invalid_filter", "filter", "an empty filter")),
        Some(sql) => {
            call.entry.subject_hash = Some(policy::sha256_hex(&[&state.audit_key, sql.as_bytes()]));
            // Against every item first, so that an item the caller may not read is a 403, not
            // "no such column".
            let over_library = RowFilter::cached(schema, sql).map_err(|e| filter_problem(&e))?;
            if let Some(item) = over_library.columns().iter().find(|c| !names.contains(&c.as_str())) {
                return Err(not_granted("filter", item));
            }
            Some(RowFilter::cached_columns(&names, sql).map_err(|e| filter_problem(&e))?)
        }
    };
    let returned: Vec<&str> = fields.iter().map(|i| names[*i]).collect();
    call.entry.items_plain.retain(|i| returned.contains(&i.as_str()));
    call.entry.items_masked.retain(|i| returned.contains(&i.as_str()));
    Ok(Read {
        resource,
        library,
        access,
        view: Arc::new(view),
        filter,
        fields,
    })
}

fn filter_problem(e: &FilterError) -> Problem {
    invalid("invalid_filter", "filter", format!("filter: {e}"))
}

/// `GET /api/v1/exchange/{resource_code}/records`: the records the caller may see that match
/// `filter`, in key order, `limit` per page; follow `next_cursor` until it is null.
#[utoipa::path(
    get,
    path = "/api/v1/exchange/{resource_code}/records",
    tag = "exchange",
    params(
        ("resource_code" = String, Path, description = "资源代码 The resource code"),
        RecordsQuery,
        crate::openapi::RequestIdHeader,
    ),
    responses(
        (status = 200, description = "条件查询 A page of the matching records the caller may see, in key order (granted items only, masked where not plain, outside the grant's row filter left out); a page may come back short, even empty, with a `next_cursor` to go on from", body = crate::openapi::RecordsAnswer, headers(("X-Request-Id" = String, description = "The request id, as sent or generated"))),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, description = "Refused by policy (策略拒绝): `no_grant` (conditional share without an active grant), `grant_expired`, `not_shared` (不予共享), `role_forbidden` (platform staff and open-data developers do not consume), `no_department`; `item_not_granted` (`field: fields` or `filter`): the request names an item the caller may not read", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, response = crate::openapi::ResourceMissing),
        (status = 422, description = "`invalid_filter` (`field: filter`): the filter is empty or not a valid SQL boolean expression over the caller's items; `unknown_item` (`field: fields`): no such data item; `invalid_query` naming the parameter (`limit`, `cursor`, or one that does not parse)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 429, response = crate::openapi::QuotaExceeded),
        (status = 500, response = crate::openapi::ExchangeFault),
        (status = 503, response = crate::openapi::AuditUnavailable),
    )
)]
pub async fn records(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<RecordsQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let resource_code = path.into_inner();
    let mut call = CallRecord::new(&req, RECORDS_ENDPOINT, &resource_code);
    let outcome = serve_records(&req, &state, &resource_code, &query, &mut call).await;
    call.finish(&state, outcome).await
}

fn parse_cursor(raw: &str) -> Option<String> {
    String::from_utf8(hex::decode(raw).ok()?).ok()
}

async fn serve_records(
    req: &HttpRequest,
    state: &AppState,
    resource_code: &str,
    query: &RecordsQuery,
    call: &mut CallRecord,
) -> Result<HttpResponse, Problem> {
    if !(1..=1000).contains(&query.limit) {
        return Err(Problem::invalid_query("limit", "limit: between 1 and 1000"));
    }
    let after = cursor_param(query.cursor.as_deref())?;
    let read = prepare(
        req,
        state,
        resource_code,
        query.filter.as_deref(),
        query.fields.as_deref(),
        call,
    )
    .await?;
    let (page, version, next_cursor) = records_page(&read, after, query.limit)?;
    call.entry.row_count = Some(page.len() as i64);
    Ok(HttpResponse::Ok().json(json!({
        "resource_code": read.resource.code,
        "library_version": version,
        "records": page,
        "next_cursor": next_cursor,
        "masked": read.masked_names(),
    })))
}

/// Parses a `cursor` parameter.
pub(crate) fn cursor_param(cursor: Option<&str>) -> Result<Option<String>, Problem> {
    cursor
        .map(|raw| {
            parse_cursor(raw).ok_or_else(|| Problem::invalid_query("cursor", "cursor: not a cursor this endpoint gave"))
        })
        .transpose()
}

impl Read {
    /// The returned items served masked.
    pub(crate) fn masked_names(&self) -> Vec<&'static str> {
        self.fields
            .iter()
            .map(|i| &self.view.columns[*i])
            .filter(|c| !c.plain)
            .map(|c| c.name)
            .collect()
    }
}

/// One page of the read's records after the key `after`, in key order: the records, the
/// library version read, and the cursor of the next page (`None` at the end).
pub(crate) fn records_page(
    read: &Read,
    after: Option<String>,
    limit: usize,
) -> Result<(Vec<Value>, i64, Option<String>), Problem> {
    let version = read.library.version().map_err(|e| Problem::internal(&e))?;
    let mut scan = Scan::new(read.library.reader().map_err(|e| Problem::internal(&e))?, after);
    let names = read.field_names();
    let mut out = Vec::new();
    let mut examined = 0;
    let mut last: Option<String> = None;
    let mut exhausted = false;
    'pages: while out.len() < limit {
        if examined >= PAGE_BUDGET {
            break;
        }
        let chunk = scan
            .next_chunk(CHUNK.min(PAGE_BUDGET - examined))
            .map_err(|e| Problem::internal(&e))?;
        if chunk.is_empty() {
            exhausted = true;
            break;
        }
        examined += chunk.len();
        let (kept, _) = read
            .view
            .select(&chunk, read.filter.as_deref())
            .map_err(|e| filter_problem(&e))?;
        let mut kept = kept.into_iter().peekable();
        for (i, (key, stored)) in chunk.iter().enumerate() {
            if kept.peek() == Some(&i) {
                kept.next();
                let mut record = project(&read.access, &read.library, &stored.values);
                record.retain(|name| names.contains(&name));
                out.push(serde_json::to_value(record).map_err(|e| Problem::internal(&e))?);
            }
            last = Some(key.clone());
            if out.len() == limit {
                // The rest of the chunk is read again from the cursor on the next page.
                break 'pages;
            }
        }
    }
    // At the end of the index only when the scan ran dry, not merely when the page filled.
    let next_cursor = if exhausted {
        None
    } else {
        last.map(|k| policy::hex_string(k.as_bytes()))
    };
    Ok((out, version, next_cursor))
}

/// `GET /api/v1/exchange/{resource_code}/export?format=csv|json|ndjson|parquet|xlsx`: every record the
/// caller may see (projected, masked, row-filtered), streamed, for resources shared in bulk;
/// with `as_of_version` or `as_of` (a time), the library as it was then.
#[utoipa::path(
    get,
    path = "/api/v1/exchange/{resource_code}/export",
    tag = "exchange",
    params(
        ("resource_code" = String, Path, description = "资源代码 The resource code"),
        ExportQuery,
        crate::openapi::RequestIdHeader,
    ),
    responses(
        (status = 200, description = "批量导出 Every record the caller may see (granted items only, masked where not plain, row-filtered), streamed as a file in the format asked",
            content(
                (Vec<u8> = "application/vnd.apache.parquet"),
                (String = "text/csv; charset=utf-8"),
                (String = "application/json"),
                (String = "application/x-ndjson"),
                (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            ),
            headers(
                ("Content-Disposition" = String, description = "`attachment; filename=\"<resource_code>-v<version>.<format>\"`"),
                ("X-Library-Version" = i64, description = "The library version exported (the one `as_of_version` or `as_of` names, when given)"),
                ("X-Request-Id" = String, description = "The request id, as sent or generated"),
            )),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, description = "Refused by policy (策略拒绝): `no_grant` (conditional share without an active grant), `grant_expired`, `not_shared` (不予共享), `role_forbidden` (platform staff and open-data developers do not consume), `no_department`; `item_not_granted` (`field: fields` or `filter`): the request names an item the caller may not read; `bulk_not_allowed`: the resource is shared by API calls (接口), not in bulk (库表 or 文件)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, response = crate::openapi::ResourceMissing),
        (status = 422, description = "`invalid_query` (`field: format`): not csv, json, ndjson, parquet or xlsx, or a parameter that does not parse; `invalid_query` (`field: as_of_version`): not a version, or one the library has not reached; `invalid_query` (`field: as_of`): not an RFC 3339 time, before the library's first commit, or given with `as_of_version`; `invalid_filter` (`field: filter`); `unknown_item` (`field: fields`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 429, response = crate::openapi::QuotaExceeded),
        (status = 500, response = crate::openapi::ExchangeFault),
        (status = 503, response = crate::openapi::AuditUnavailable),
    )
)]
pub async fn export(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ExportQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let resource_code = path.into_inner();
    let mut call = CallRecord::new(&req, EXPORT_ENDPOINT, &resource_code);
    let outcome = serve_export(&req, &state, &resource_code, &query, &mut call).await;
    call.finish(&state, outcome).await
}

/// An export file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Parquet,
    Csv,
    Json,
    Ndjson,
    Xlsx,
}

/// Rows an XLSX worksheet holds below its header row.
pub(crate) const XLSX_MAX_RECORDS: u64 = 1_048_575;

impl Format {
    /// The format a `format` parameter names, or a 422 naming it.
    pub(crate) fn parse(s: &str) -> Result<Self, Problem> {
        match s.trim() {
            "parquet" => Ok(Format::Parquet),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "ndjson" => Ok(Format::Ndjson),
            "xlsx" => Ok(Format::Xlsx),
            _ => Err(Problem::invalid_query(
                "format",
                "format: one of csv, json, ndjson, parquet, xlsx",
            )),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Parquet => "application/vnd.apache.parquet",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Json => "application/json",
            Format::Ndjson => "application/x-ndjson",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
            Format::Xlsx => "xlsx",
        }
    }
}

/// Whether a resource's share method (共享方式) allows a bulk export: 库表 (bulk) and 文件
/// (file) do; 接口 (API calls) does not — its consumers call records, records:batch or verify.
pub fn bulk_allowed(method: ShareMethod) -> bool {
    matches!(method, ShareMethod::Bulk | ShareMethod::File)
}

async fn serve_export(
    req: &HttpRequest,
    state: &AppState,
    resource_code: &str,
    query: &ExportQuery,
    call: &mut CallRecord,
) -> Result<HttpResponse, Problem> {
    let format = Format::parse(&query.format)?;
    let as_of = crate::routes::history::AsOf::optional(query.as_of_version.as_deref(), query.as_of.as_deref())?;
    let read = prepare(
        req,
        state,
        resource_code,
        query.filter.as_deref(),
        query.fields.as_deref(),
        call,
    )
    .await?;
    if !bulk_allowed(read.resource.meta.share_method) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "bulk_not_allowed",
            "Bulk export not allowed",
            format!(
                "resource {} is shared by {} ({}), not in bulk; read it through the records endpoints",
                read.resource.code,
                read.resource.meta.share_method.code(),
                read.resource.meta.share_method.label_zh()
            ),
        ));
    }
    export_response(read, format, as_of, ExportOptions::default()).await
}

/// How an export file is written beyond its format.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ExportOptions {
    /// CSV: start with a UTF-8 byte-order mark, so Excel shows Chinese text correctly.
    pub(crate) bom: bool,
}

/// Streams every record of `read` (at the version `as_of` names, else the current one) as a
/// file in `format`, with bounded memory: the writer runs a chunk of records at a time on a
/// blocking thread and waits while the client is slower than it.
pub(crate) async fn export_response(
    read: Read,
    format: Format,
    as_of: Option<crate::routes::history::AsOf>,
    options: ExportOptions,
) -> Result<HttpResponse, Problem> {
    let current = read.library.version().map_err(|e| Problem::internal(&e))?;
    let as_of = match as_of {
        Some(as_of) => Some(as_of.version(&read.library).await?),
        None => None,
    };
    if format == Format::Xlsx
        && read.filter.is_none()
        && read.library.len().map_err(|e| Problem::internal(&e))? > XLSX_MAX_RECORDS
    {
        return Err(invalid(
            "too_many_records_for_xlsx",
            "format",
            format!(
                "an XLSX worksheet holds at most {XLSX_MAX_RECORDS} records and this library holds more; \
                 download csv or parquet, or narrow it with a filter"
            ),
        ));
    }
    // An older version is read from the library's log; the current one from the index.
    let (version, log) = match as_of {
        Some(version) if version != current => {
            let records = read
                .library
                .records_as_of(version)
                .await
                .map_err(crate::routes::history::library_problem)?;
            (version, Some(records))
        }
        _ => (current, None),
    };
    let filename = format!("{}-v{version}.{}", read.resource.code, format.extension());
    // A few chunks in flight at most: a slow client slows the writer instead of filling memory.
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let Read {
        library,
        view,
        filter,
        fields,
        ..
    } = read;
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let sink = ChannelSink {
            tx: tx.clone(),
            buf: Vec::with_capacity(SINK_BYTES),
        };
        let out = Output {
            view: &view,
            filter: filter.as_deref(),
            fields: &fields,
            format,
            options,
        };
        let written = match log {
            Some(mut records) => out.write(
                || {
                    let chunk = runtime.block_on(records.next_chunk()).map_err(|e| e.to_string())?;
                    Ok(raw_batch(view.library, chunk.iter().map(|(_, r)| r)))
                },
                sink,
            ),
            None => match current_records(&library, version) {
                Ok(mut source) => {
                    // Storage is read on a thread of its own, at most a few chunks ahead of
                    // the writer: reading and encoding each hold a core. Reading stops when
                    // the writer stops taking chunks.
                    let (ahead, chunks) = std::sync::mpsc::sync_channel(CHUNKS_AHEAD);
                    runtime.spawn_blocking(move || {
                        loop {
                            let chunk = source.next();
                            let last = !matches!(chunk, Ok(Some(_)));
                            if ahead.send(chunk).is_err() || last {
                                break;
                            }
                        }
                    });
                    out.write(
                        || match chunks.recv().map_err(|_| "reading the records stopped".to_string())?? {
                            Some(chunk) => chunk.batch(view.library),
                            None => Ok(RecordBatch::new_empty(view.library.text_schema())),
                        },
                        sink,
                    )
                }
                Err(e) => Err(e.to_string()),
            },
        };
        if let Err(e) = written {
            tracing::warn!(error = %e, "export stopped");
            let _ = tx.blocking_send(Err(std::io::Error::other(e)));
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    Ok(HttpResponse::Ok()
        .insert_header(("Content-Type", format.content_type()))
        .insert_header(("Content-Disposition", format!("attachment; filename=\"{filename}\"")))
        .insert_header(("X-Library-Version", version.to_string()))
        .streaming(body))
}

/// Where an export of the current version reads its records: the library's export snapshot of
/// that version when there is one, else a scan of the serving index. Both give the current
/// records in key order, so the file is the same either way.
enum CurrentRecords {
    Snapshot(exchange_core::snapshot::SnapshotReader),
    Index(Scan),
}

/// A chunk of records as it comes off storage: decoded into columns by the export's writer.
enum Chunk {
    Batch(RecordBatch),
    Encoded(Encoded),
}

fn current_records(library: &Library, version: i64) -> exchange_core::Result<CurrentRecords> {
    Ok(match library.open_snapshot(version) {
        Some(snapshot) => CurrentRecords::Snapshot(snapshot),
        None => CurrentRecords::Index(Scan::new(library.reader()?, None)),
    })
}

impl CurrentRecords {
    /// The next chunk; `None` at the end.
    fn next(&mut self) -> Result<Option<Chunk>, String> {
        match self {
            Self::Snapshot(snapshot) => Ok(snapshot.next_batch().map_err(|e| e.to_string())?.map(Chunk::Batch)),
            Self::Index(scan) => {
                let encoded = scan.next_encoded(CHUNK).map_err(|e| e.to_string())?;
                Ok((!encoded.is_empty()).then_some(Chunk::Encoded(encoded)))
            }
        }
    }
}

impl Chunk {
    /// The stored values as a batch over every library item (as [`raw_batch`] makes it).
    fn batch(self, library: &exchange_core::LibrarySchema) -> Result<RecordBatch, String> {
        match self {
            Self::Batch(batch) => Ok(batch),
            Self::Encoded(encoded) => encoded.batch(library).map_err(|e| e.to_string()),
        }
    }
}

/// Bytes buffered before a chunk is handed to the response.
const SINK_BYTES: usize = 64 << 10;

/// Chunks of records the index scan may read ahead of the export's writer.
const CHUNKS_AHEAD: usize = 2;

/// A `Write` that hands its bytes to the response stream in chunks; fails once the client is gone.
struct ChannelSink {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChannelSink {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(SINK_BYTES)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= SINK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// The writer of one export format.
enum ExportWriter {
    Parquet(parquet::arrow::ArrowWriter<ChannelSink>),
    /// Written as arrow's CSV writer writes text columns (the same `csv` settings: `,`, `"`
    /// only where needed, doubled inside, `\n` after each record, null as an empty field),
    /// straight from the columns' bytes.
    Csv(csv::Writer<ChannelSink>, csv::ByteRecord),
    Json(arrow::json::ArrayWriter<ChannelSink>),
    Ndjson(arrow::json::LineDelimitedWriter<ChannelSink>),
    Xlsx(Box<XlsxOut>),
}

/// An XLSX file being written: a constant-memory worksheet (rows go to a temp file as they
/// are written), zipped into a second temp file at the end and streamed from there.
struct XlsxOut {
    workbook: rust_xlsxwriter::Workbook,
    row: u32,
    sink: ChannelSink,
}

/// Rows per Parquet row group: what the writer holds in memory before it flushes.
const ROW_GROUP_ROWS: usize = 65_536;

/// What one export writes: the view's records, filtered, projected, in a format.
struct Output<'a> {
    view: &'a View,
    filter: Option<&'a RowFilter>,
    fields: &'a [usize],
    format: Format,
    options: ExportOptions,
}

impl Output<'_> {
    /// Writes the records `next_chunk` hands out (stored values over every library item, as
    /// [`raw_batch`] makes them; empty at the end) as the caller sees them.
    fn write(
        &self,
        mut next_chunk: impl FnMut() -> Result<RecordBatch, String>,
        mut sink: ChannelSink,
    ) -> Result<(), String> {
        let err = |e: &dyn std::fmt::Display| e.to_string();
        let schema = Arc::new(self.view.arrow.project(self.fields).map_err(|e| err(&e))?);
        let mut writer = match self.format {
            Format::Parquet => {
                let props = parquet::file::properties::WriterProperties::builder()
                    .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                    .build();
                ExportWriter::Parquet(
                    parquet::arrow::ArrowWriter::try_new(sink, schema.clone(), Some(props)).map_err(|e| err(&e))?,
                )
            }
            Format::Csv => {
                if self.options.bom {
                    sink.write_all("\u{feff}".as_bytes()).map_err(|e| err(&e))?;
                }
                let mut writer = csv::WriterBuilder::new()
                    .delimiter(b',')
                    .quote(b'"')
                    .quote_style(csv::QuoteStyle::Necessary)
                    .double_quote(true)
                    .terminator(csv::Terminator::Any(b'\n'))
                    .buffer_capacity(SINK_BYTES)
                    .from_writer(sink);
                // The header goes out even when no record does.
                writer
                    .write_record(schema.fields().iter().map(|f| f.name().as_bytes()))
                    .map_err(|e| err(&e))?;
                ExportWriter::Csv(writer, csv::ByteRecord::new())
            }
            Format::Json => ExportWriter::Json(
                arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, arrow::json::writer::JsonArray>(sink),
            ),
            Format::Ndjson => ExportWriter::Ndjson(
                arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, arrow::json::writer::LineDelimited>(sink),
            ),
            Format::Xlsx => ExportWriter::Xlsx(Box::new(self.xlsx_start(sink)?)),
        };
        let mut write = |batch: &RecordBatch| -> Result<(), String> {
            match &mut writer {
                ExportWriter::Parquet(w) => w.write(batch).map_err(|e| err(&e)),
                ExportWriter::Csv(w, record) => write_csv(w, record, batch),
                ExportWriter::Json(w) => w.write(batch).map_err(|e| err(&e)),
                ExportWriter::Ndjson(w) => w.write(batch).map_err(|e| err(&e)),
                ExportWriter::Xlsx(x) => x.write(batch),
            }
        };
        write(&RecordBatch::new_empty(schema.clone()))?;
        loop {
            let chunk = next_chunk()?;
            if chunk.num_rows() == 0 {
                break;
            }
            let batch = self.view.select_batch(&chunk, self.filter).map_err(|e| err(&e))?;
            if batch.num_rows() > 0 {
                write(&batch.project(self.fields).map_err(|e| err(&e))?)?;
            }
        }
        match writer {
            ExportWriter::Parquet(w) => {
                let mut sink = w.into_inner().map_err(|e| err(&e))?;
                sink.flush().map_err(|e| err(&e))
            }
            ExportWriter::Csv(w, _) => w
                .into_inner()
                .map_err(|e| e.error().to_string())?
                .flush()
                .map_err(|e| err(&e)),
            ExportWriter::Json(mut w) => {
                w.finish().map_err(|e| err(&e))?;
                w.into_inner().flush().map_err(|e| err(&e))
            }
            ExportWriter::Ndjson(mut w) => {
                w.finish().map_err(|e| err(&e))?;
                w.into_inner().flush().map_err(|e| err(&e))
            }
            ExportWriter::Xlsx(x) => x.finish(),
        }
    }

    /// A workbook with one constant-memory worksheet and the header row: each item's Chinese
    /// label (信息项名称), as departments and the public read it in Excel.
    fn xlsx_start(&self, sink: ChannelSink) -> Result<XlsxOut, String> {
        let err = |e: rust_xlsxwriter::XlsxError| e.to_string();
        let mut workbook = rust_xlsxwriter::Workbook::new();
        let sheet = workbook.add_worksheet_with_constant_memory().map_err(err)?;
        sheet.set_name("data").map_err(err)?;
        let bold = rust_xlsxwriter::Format::new().set_bold();
        for (col, i) in self.fields.iter().enumerate() {
            let column = &self.view.columns[*i];
            let label = self.view.library.fields[column.position].label_zh;
            sheet
                .write_string_with_format(0, col as u16, label, &bold)
                .map_err(err)?;
        }
        Ok(XlsxOut { workbook, row: 0, sink })
    }
}

impl XlsxOut {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), String> {
        if self.row as u64 + batch.num_rows() as u64 > XLSX_MAX_RECORDS {
            return Err(format!(
                "more than {XLSX_MAX_RECORDS} records match: more than an XLSX worksheet holds"
            ));
        }
        let sheet = self.workbook.worksheet_from_index(0).map_err(|e| e.to_string())?;
        use arrow::array::Array;
        let columns: Vec<&arrow::array::StringArray> = batch
            .columns()
            .iter()
            .map(|c| c.as_any().downcast_ref().expect("views are text"))
            .collect();
        for r in 0..batch.num_rows() {
            self.row += 1;
            for (c, column) in columns.iter().enumerate() {
                if column.is_valid(r) {
                    sheet
                        .write_string(self.row, c as u16, column.value(r))
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(), String> {
        let mut file = tempfile::tempfile().map_err(|e| e.to_string())?;
        self.workbook.save_to_writer(&mut file).map_err(|e| e.to_string())?;
        use std::io::Seek;
        file.rewind().map_err(|e| e.to_string())?;
        std::io::copy(&mut file, &mut self.sink).map_err(|e| e.to_string())?;
        self.sink.flush().map_err(|e| e.to_string())
    }
}

/// Writes the rows of `batch`, whose columns are all text, as CSV records.
fn write_csv(
    writer: &mut csv::Writer<ChannelSink>,
    record: &mut csv::ByteRecord,
    batch: &RecordBatch,
) -> Result<(), String> {
    use arrow::array::Array;
    let columns = batch
        .columns()
        .iter()
        .map(|c| {
            c.as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .ok_or_else(|| format!("an export column of type {} (text expected)", c.data_type()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for row in 0..batch.num_rows() {
        record.clear();
        for column in &columns {
            record.push_field(if column.is_null(row) {
                b""
            } else {
                column.value(row).as_bytes()
            });
        }
        writer.write_byte_record(record).map_err(|e| e.to_string())?;
    }
    Ok(())
}
