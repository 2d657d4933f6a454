//! Library history under policy (按版本追溯): a record as it was
//! (`records/{key}?as_of_version=N` or `?as_of=<time>`), a record's every version
//! (`records/{key}/history`) and the net change between two versions (`diff`). The same
//! authorization, masking, row filter and audit as the record lookup and the change feed.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use exchange_core::{Change, KeyChange, Library};
use policy::Access;
use serde_json::{Value, json};

use crate::problem::Problem;
use crate::query::RowFilter;
use crate::routes::exchange::{CallRecord, admits, authorize, parse_key, project, record_not_found, visible};
use crate::startup::AppState;

/// A library error: bad input (a version not reached, a time before the first commit) is a 422
/// naming its parameter; anything else is a fault of ours.
pub(crate) fn library_problem(e: exchange_core::Error) -> Problem {
    match e {
        exchange_core::Error::InvalidValue { field, message } => Problem::invalid_query(field, message),
        other => Problem::internal(&other),
    }
}

/// A library version given as a query parameter: an integer, 0 or more.
pub(crate) fn parse_version(field: &str, raw: &str) -> Result<i64, Problem> {
    raw.trim().parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
        Problem::invalid_query(
            field,
            format!("{field}: a library version (an integer, 0 or more), not {raw:?}"),
        )
    })
}

/// Query of a record as it was (`records/{key}?…`): one of the two.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AsOfQuery {
    /// The record as it was at this library version (0 or more, not after the current one).
    #[param(value_type = Option<i64>)]
    #[serde(default)]
    pub as_of_version: Option<String>,
    /// The record as it was at this instant (RFC 3339, e.g. `2026-11-23T08:00:00Z`): the
    /// library version current then.
    #[param(value_type = Option<String>, format = DateTime)]
    #[serde(default)]
    pub as_of: Option<String>,
}

/// The request's query, parsed here rather than by an extractor, so that the record lookup
/// without a query does not pay for it.
fn parse_query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, Problem> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_query",
                "Invalid query parameter",
                format!("the query does not parse: {e}"),
            )
        })
}

/// Which version `as_of_version` / `as_of` name; the time is resolved against the library.
pub(crate) enum AsOf {
    Version(i64),
    Time(chrono::DateTime<chrono::Utc>),
}

impl AsOf {
    fn parse(query: &AsOfQuery) -> Result<Self, Problem> {
        Self::optional(query.as_of_version.as_deref(), query.as_of.as_deref())?.ok_or_else(|| {
            Problem::invalid_query(
                "as_of_version",
                "as_of_version or as_of: which version of the record to return",
            )
        })
    }

    /// `as_of_version` or `as_of` (not both), if either is given.
    pub(crate) fn optional(version: Option<&str>, time: Option<&str>) -> Result<Option<Self>, Problem> {
        match (version, time) {
            (Some(_), Some(_)) => Err(Problem::invalid_query("as_of", "give as_of_version or as_of, not both")),
            (Some(v), None) => Ok(Some(AsOf::Version(parse_version("as_of_version", v)?))),
            (None, Some(t)) => chrono::DateTime::parse_from_rfc3339(t.trim())
                .map(|t| Some(AsOf::Time(t.to_utc())))
                .map_err(|e| {
                    Problem::invalid_query(
                        "as_of",
                        format!("as_of: an RFC 3339 time such as 2026-11-23T08:00:00Z ({e})"),
                    )
                }),
            (None, None) => Ok(None),
        }
    }

    pub(crate) async fn version(&self, library: &Library) -> Result<i64, Problem> {
        match self {
            AsOf::Version(v) => Ok(*v),
            AsOf::Time(t) => library.version_at(*t).await.map_err(library_problem),
        }
    }
}

/// `GET …/records/{key}?as_of_version=N` or `?as_of=<time>`: the record as it was, served
/// from [`crate::routes::exchange::get_record`] when the request has a query.
pub(crate) async fn serve_record_as_of(
    req: &HttpRequest,
    state: &AppState,
    resource_code: &str,
    key: &str,
    call: &mut CallRecord,
) -> Result<HttpResponse, Problem> {
    let as_of = AsOf::parse(&parse_query::<AsOfQuery>(req)?)?;
    let (resource, library, access) = authorize(req, state, resource_code, call).await?;
    let key = parse_key(&library, key)?;
    call.entry.subject_hash = Some(policy::sha256_hex(&[&state.audit_key, key.as_bytes()]));
    let version = as_of.version(&library).await?;
    let row_filter = crate::query::grant_filter(&access, library.schema())?;
    let stored = library.record_as_of(&key, version).await.map_err(library_problem)?;
    let stored = visible(row_filter.as_deref(), stored).ok_or_else(|| record_not_found(resource_code))?;
    call.entry.row_count = Some(1);
    Ok(HttpResponse::Ok().json(json!({
        "resource_code": resource.code,
        "as_of_version": version,
        "library_version": stored.version,
        "record": project(&access, &library, &stored.values),
        "masked": call.entry.items_masked,
    })))
}

const HISTORY_ENDPOINT: &str = "GET /api/v1/exchange/{resource_code}/records/{key}/history";

/// `GET /api/v1/exchange/{resource_code}/records/{key}/history`: every version of one record,
/// oldest first, masked as policy says.
#[utoipa::path(
    get,
    path = "/api/v1/exchange/{resource_code}/records/{key}/history",
    tag = "exchange",
    params(
        ("resource_code" = String, Path, description = "资源代码 The resource code"),
        ("key" = String, Path, description = "The record's key, normalized as for `records/{key}`"),
        crate::openapi::RequestIdHeader,
    ),
    responses(
        (status = 200, description = "历史版本 Every version of the record, oldest first: what it did (insert, update, delete), when and from which department, and the record after it (granted items only, masked where not plain). Versions outside the grant's row filter are left out, and a delete only follows a version shown", body = crate::openapi::HistoryAnswer, headers(("X-Request-Id" = String, description = "The request id, as sent or generated"))),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::PolicyRefused),
        (status = 404, description = "`resource_not_found` (`field: resource_code`), `resource_not_served`, or `record_not_found` (`field: key`): the library never held the key (or no version of it is within the grant's row filter)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_key` (`field: key`): not a valid citizen ID number (公民身份号码)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 429, response = crate::openapi::QuotaExceeded),
        (status = 500, response = crate::openapi::ExchangeFault),
        (status = 503, response = crate::openapi::AuditUnavailable),
    )
)]
pub async fn record_history(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (resource_code, key) = path.into_inner();
    let mut call = CallRecord::new(&req, HISTORY_ENDPOINT, &resource_code);
    let outcome = serve_history(&req, &state, &resource_code, &key, &mut call).await;
    call.finish(&state, outcome).await
}

async fn serve_history(
    req: &HttpRequest,
    state: &AppState,
    resource_code: &str,
    key: &str,
    call: &mut CallRecord,
) -> Result<HttpResponse, Problem> {
    let (resource, library, access) = authorize(req, state, resource_code, call).await?;
    let key = parse_key(&library, key)?;
    call.entry.subject_hash = Some(policy::sha256_hex(&[&state.audit_key, key.as_bytes()]));
    let row_filter = crate::query::grant_filter(&access, library.schema())?;
    let history = library.record_history(&key).await.map_err(library_problem)?;
    let mut versions = Vec::new();
    // A delete is shown when it removes a state the caller was shown.
    let mut shown = false;
    for version in &history {
        let record = version.record();
        let include = match &record {
            Some(record) => admits(row_filter.as_deref(), &record.values),
            None => shown,
        };
        shown = include && record.is_some();
        if !include {
            continue;
        }
        versions.push(json!({
            "version": version.version,
            "op": version.op.as_str(),
            "source": version.source,
            "ingested_at": version.ingested_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "record": record.as_ref().map(|r| project(&access, &library, &r.values)),
        }));
    }
    if versions.is_empty() {
        return Err(record_not_found(resource_code));
    }
    call.entry.row_count = Some(versions.len() as i64);
    Ok(HttpResponse::Ok().json(json!({
        "resource_code": resource.code,
        "versions": versions,
        "masked": call.entry.items_masked,
    })))
}

const DIFF_ENDPOINT: &str = "GET /api/v1/exchange/{resource_code}/diff";

/// Query of a diff. Numbers are taken as text so that a bad one is named.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// The earlier library version (0: the empty library).
    #[param(value_type = i64)]
    #[serde(default)]
    pub from_version: Option<String>,
    /// The later library version, at most the current one.
    #[param(value_type = i64)]
    #[serde(default)]
    pub to_version: Option<String>,
    /// Keys per page, 1–5000 (default 1000).
    #[param(value_type = Option<usize>)]
    #[serde(default)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `GET /api/v1/exchange/{resource_code}/diff?from_version=A&to_version=B`: the net change of
/// each key between two versions, paged by key.
#[utoipa::path(
    get,
    path = "/api/v1/exchange/{resource_code}/diff",
    tag = "exchange",
    params(
        ("resource_code" = String, Path, description = "资源代码 The resource code"),
        DiffQuery,
        crate::openapi::RequestIdHeader,
    ),
    responses(
        (status = 200, description = "版本比对 The net change of each key between the two versions, in key order: `insert` (absent at from_version, present at to_version), `update` with the record before and after, `delete` with the record before; records as for `records/{key}` (granted items only, masked where not plain). A key that changed and changed back is left out; so is an update the caller cannot see (only items outside the grant changed). Under a grant's row filter, a record entering it is an insert and one leaving it a delete. A page may come back short; follow `next_cursor` until it is null", body = crate::openapi::DiffAnswer, headers(("X-Request-Id" = String, description = "The request id, as sent or generated"))),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::PolicyRefused),
        (status = 404, response = crate::openapi::ResourceMissing),
        (status = 422, description = "`invalid_query` naming the parameter (`from_version`, `to_version`, `limit`, `cursor`): missing, not a version, a version the library has not reached, or from_version after to_version", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 429, response = crate::openapi::QuotaExceeded),
        (status = 500, response = crate::openapi::ExchangeFault),
        (status = 503, response = crate::openapi::AuditUnavailable),
    )
)]
pub async fn diff(req: HttpRequest, path: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    let resource_code = path.into_inner();
    let mut call = CallRecord::new(&req, DIFF_ENDPOINT, &resource_code);
    let outcome = serve_diff(&req, &state, &resource_code, &mut call).await;
    call.finish(&state, outcome).await
}

async fn serve_diff(
    req: &HttpRequest,
    state: &AppState,
    resource_code: &str,
    call: &mut CallRecord,
) -> Result<HttpResponse, Problem> {
    let query: DiffQuery = parse_query(req)?;
    let required = |field: &str, value: &Option<String>| match value {
        Some(v) => parse_version(field, v),
        None => Err(Problem::invalid_query(field, format!("{field}: required"))),
    };
    let from = required("from_version", &query.from_version)?;
    let to = required("to_version", &query.to_version)?;
    if from > to {
        return Err(Problem::invalid_query(
            "from_version",
            format!("from_version {from} is after to_version {to}"),
        ));
    }
    let limit = match &query.limit {
        None => 1000,
        Some(raw) => raw
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=5000).contains(l))
            .ok_or_else(|| Problem::invalid_query("limit", "limit: between 1 and 5000"))?,
    };
    let after = match query.cursor.as_deref() {
        None => None,
        Some(raw) => Some(
            hex::decode(raw)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| Problem::invalid_query("cursor", "cursor: not a cursor this endpoint gave"))?,
        ),
    };
    let (resource, library, access) = authorize(req, state, resource_code, call).await?;
    let row_filter = crate::query::grant_filter(&access, library.schema())?;
    let page = library
        .diff(from, to, after.as_deref(), limit)
        .await
        .map_err(library_problem)?;
    let mut changes = Vec::with_capacity(page.changes.len());
    for change in &page.changes {
        if let Some(entry) = visible_change(&access, &library, row_filter.as_deref(), change) {
            changes.push(entry);
        }
    }
    call.entry.row_count = Some(changes.len() as i64);
    Ok(HttpResponse::Ok().json(json!({
        "resource_code": resource.code,
        "from_version": from,
        "to_version": to,
        "changes": changes,
        "next_cursor": page.next_after.map(|k| policy::hex_string(k.as_bytes())),
        "masked": call.entry.items_masked,
    })))
}

/// A key's change as the caller sees it: each side only if the grant's row filter admits it,
/// projected and masked; `None` when nothing the caller can see changed.
fn visible_change(access: &Access, library: &Library, filter: Option<&RowFilter>, change: &KeyChange) -> Option<Value> {
    let (before, after) = match &change.change {
        Change::Insert { after } => (None, Some(after)),
        Change::Update { before, after } => (Some(before), Some(after)),
        Change::Delete { before } => (Some(before), None),
    };
    let before = before.filter(|r| admits(filter, &r.values));
    let after = after.filter(|r| admits(filter, &r.values));
    let before_version = before.map(|r| r.version);
    let (op, before, after) = match (
        before.map(|r| project(access, library, &r.values)),
        after.map(|r| project(access, library, &r.values)),
    ) {
        (None, Some(a)) => ("insert", None, Some(a)),
        (Some(b), None) => ("delete", Some(b), None),
        (Some(b), Some(a)) if b != a => ("update", Some(b), Some(a)),
        _ => return None,
    };
    Some(json!({
        "op": op,
        "key": change.key,
        "version": change.version,
        "before_version": before_version,
        "before": before,
        "after": after,
    }))
}
