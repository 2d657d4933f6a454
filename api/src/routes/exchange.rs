//! The exchange API for government consumers, `/api/v1/exchange/{resource_code}/…`.
//!
//! Every call, allowed or refused, is decided by policy from the catalog and recorded in the
//! audit trail before the response leaves.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use catalog::Resource;
use exchange_core::{Library, StoredRecord};
use policy::{Access, AuditEntry, Credential, Decision};
use serde_json::{Map, Value, json};

use crate::problem::Problem;
use crate::startup::AppState;

const RECORD_ENDPOINT: &str = "GET /api/v1/exchange/{resource_code}/records/{key}";

/// What the audit record of a call accumulates while the call is served.
pub(crate) struct CallRecord {
    started: Instant,
    pub(crate) entry: AuditEntry,
}

impl CallRecord {
    pub(crate) fn new(req: &HttpRequest, endpoint: &str, resource_code: &str) -> Self {
        // The caller's id when acceptable, as the middleware would echo it (startup.rs); this
        // one is set on the response, so the audit record and the response header agree.
        let request_id = crate::startup::sent_request_id(req.headers())
            .and_then(|id| id.to_str().ok())
            .map_or_else(crate::startup::new_request_id, str::to_string);
        Self {
            started: Instant::now(),
            entry: AuditEntry {
                request_id,
                endpoint: endpoint.to_string(),
                resource_code: Some(resource_code.to_string()),
                ..AuditEntry::default()
            },
        }
    }

    fn caller(&mut self, credential: &Credential) {
        self.entry.credential_id = Some(credential.id);
        self.entry.department = credential.department_code.clone();
    }

    /// Records the outcome durably, then returns the response (or a 503 if it cannot be recorded).
    pub(crate) async fn finish(self, state: &AppState, outcome: Result<HttpResponse, Problem>) -> HttpResponse {
        match outcome {
            Ok(response) => self.finish_as(state, response, "allowed").await,
            Err(problem) => {
                let code = problem.code;
                self.finish_as(state, actix_web::ResponseError::error_response(&problem), code)
                    .await
            }
        }
    }

    /// Records `response` with the outcome `outcome` (`allowed`, or the code of the refusal a
    /// page shows in place of the data), then returns it (or a 503 if it cannot be recorded).
    pub(crate) async fn finish_as(
        mut self,
        state: &AppState,
        mut response: HttpResponse,
        outcome: &str,
    ) -> HttpResponse {
        self.entry.outcome = outcome.to_string();
        self.entry.status = response.status().as_u16();
        self.entry.latency_us = self.started.elapsed().as_micros() as i64;
        let request_id = self.entry.request_id.clone();
        if let Err(e) = state.audit.record(self.entry).await {
            tracing::error!(error = %e, "call refused: its audit record could not be written");
            let problem = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit_unavailable",
                "Audit trail unavailable",
                "the call could not be recorded, so it was not served",
            );
            response = actix_web::ResponseError::error_response(&problem);
        }
        if let Ok(value) = request_id.parse() {
            response.headers_mut().insert(crate::startup::X_REQUEST_ID, value);
        }
        response
    }
}

/// `GET /api/v1/exchange/{resource_code}/records/{key}`: one record, masked as policy says.
#[utoipa::path(
    get,
    path = "/api/v1/exchange/{resource_code}/records/{key}",
    tag = "exchange",
    params(
        ("resource_code" = String, Path, description = "资源代码 The resource code"),
        ("key" = String, Path, description = "The record's key; for the population library a citizen ID number (full-width digits, lower-case x and 15-digit numbers are normalized)"),
        crate::routes::history::AsOfQuery,
        crate::openapi::RequestIdHeader,
    ),
    responses(
        (status = 200, description = "The record, with the granted items only, masked (脱敏) where not plain; with `as_of_version` or `as_of`, the record as it was then (历史快照), and the answer also carries `as_of_version`", body = crate::openapi::RecordAnswer, headers(("X-Request-Id" = String, description = "The request id, as sent or generated"))),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::PolicyRefused),
        (status = 404, description = "`resource_not_found` (`field: resource_code`), `resource_not_served`, or `record_not_found` (`field: key`): a valid key the library does not hold", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_key` (`field: key`): not a valid citizen ID number (公民身份号码); `detail` says why. `invalid_query` naming the parameter: `as_of_version` not a version or one the library has not reached; `as_of` not an RFC 3339 time, before the library's first commit, or given with `as_of_version`", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 429, response = crate::openapi::QuotaExceeded),
        (status = 500, response = crate::openapi::ExchangeFault),
        (status = 503, response = crate::openapi::AuditUnavailable),
    )
)]
pub async fn get_record(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (resource_code, key) = path.into_inner();
    let mut call = CallRecord::new(&req, RECORD_ENDPOINT, &resource_code);
    // The lookup without a query is the hot path: a query (as_of_version, as_of) is looked at
    // only when there is one.
    let outcome = if req.query_string().is_empty() {
        serve_record(&req, &state, &resource_code, &key, &mut call).await
    } else {
        crate::routes::history::serve_record_as_of(&req, &state, &resource_code, &key, &mut call).await
    };
    call.finish(&state, outcome).await
}

/// Authenticates, finds the resource, its library and the caller's grant, checks the quotas
/// and asks policy; refusals are problems with a stable code. Catalog reads come from the
/// [`policy::CatalogCache`], so a lookup does not touch the metadata DB.
pub(crate) async fn authorize(
    req: &HttpRequest,
    state: &AppState,
    resource_code: &str,
    call: &mut CallRecord,
) -> Result<(Arc<Resource>, Arc<Library>, Access), Problem> {
    let credential = crate::auth::Caller::from_request(req, state).await?.0;
    call.caller(&credential);
    let resource = state.catalog_cache.resource(resource_code).await.map_err(|e| match e {
        catalog::Error::NotFound { .. } => Problem::new(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            "No such resource",
            format!("no resource has the code {resource_code:?}"),
        )
        .with_field("resource_code"),
        other => Problem::internal(&other),
    })?;
    let library = library_of(state, &resource)?;
    let grant = match credential.department_id {
        Some(department) => state
            .catalog_cache
            .grant(resource.id, department)
            .await
            .map_err(|e| Problem::internal(&e))?,
        None => None,
    };
    let usable_grant = grant.as_deref().filter(|g| g.state() == "active");
    state.quotas.check(credential.id, usable_grant).map_err(over_quota)?;
    let access = match policy::decide(&resource, &credential, grant.as_deref()) {
        Decision::Allow(access) => access,
        Decision::Deny(denial) => return Err(denied(denial)),
    };
    call.entry.grant_id = access.grant_id;
    call.entry.demand_id = access.demand_id;
    for item in &access.items {
        if item.plain {
            call.entry.items_plain.push(item.name.clone());
        } else {
            call.entry.items_masked.push(item.name.clone());
        }
    }
    Ok((resource, library, access))
}

/// 404 for a valid key the library does not hold, or holds outside the grant's row filter.
pub(crate) fn record_not_found(resource_code: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "record_not_found",
        "No such record",
        format!("resource {resource_code} holds no record for this key"),
    )
    .with_field("key")
}

/// 403 with the denial's stable code.
pub(crate) fn denied(denial: policy::Denial) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, denial.code(), "Access denied", denial.message())
}

/// 429 saying whose allowance ran out, with Retry-After and RateLimit headers.
pub(crate) fn over_quota(over: policy::OverQuota) -> Problem {
    use policy::quota::{Scope, Window};
    let seconds = over.retry_after.as_secs_f64().ceil().max(1.0) as u64;
    let whose = match over.scope {
        Scope::Credential => "this credential's",
        Scope::Grant => "the grant's",
    };
    let window = match over.window {
        Window::Second => "per-second",
        Window::Day => "daily",
    };
    let mut problem = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "quota_exceeded",
        "Quota exceeded",
        format!(
            "{whose} {window} quota of {} calls is used up; retry after {seconds} s",
            over.limit
        ),
    );
    problem.retry_after = Some(seconds);
    problem.rate_limit = Some(over.limit);
    problem.rate_limit_window = Some(match over.window {
        Window::Second => 1,
        Window::Day => 86_400,
    });
    problem
}

/// A stored record as the caller may see it: the granted items only, in the resource's order,
/// masked where not plain. It serializes as a JSON object straight from the record's values,
/// without a `serde_json::Map` of copies in between.
#[derive(Debug, PartialEq)]
pub(crate) struct Projected<'a> {
    fields: Vec<(&'a str, Option<Cow<'a, str>>)>,
}

impl serde::Serialize for Projected<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.fields.len()))?;
        for (name, value) in &self.fields {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl Projected<'_> {
    /// Keeps the items `keep` says yes to.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.fields.retain(|(name, _)| keep(name));
    }
}

/// [`Projected`]: a record's `values` (in schema order) as `access` lets the caller see them.
pub(crate) fn project<'a, S: AsRef<str>>(
    access: &'a Access,
    library: &Library,
    values: &'a [Option<S>],
) -> Projected<'a> {
    let schema = library.schema();
    let mut fields = Vec::with_capacity(access.items.len());
    for item in &access.items {
        let Some(position) = schema.position(&item.name) else {
            continue;
        };
        let value = values[position].as_ref().map(|v| {
            let v = v.as_ref();
            if item.plain {
                Cow::Borrowed(v)
            } else {
                Cow::Owned(policy::mask::mask(schema.fields[position].kind, v))
            }
        });
        fields.push((item.name.as_str(), value));
    }
    Projected { fields }
}

/// The answer to `GET records/{key}`.
#[derive(serde::Serialize)]
struct RecordAnswer<'a> {
    resource_code: &'a str,
    library_version: i64,
    record: Projected<'a>,
    masked: &'a [String],
}

async fn serve_record(
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
    // Answered from the values as the index holds them; a record outside the grant's row
    // filter is answered exactly as a missing one.
    let body = library
        .get_with(&key, |stored| {
            let stored = stored.filter(|s| admits(row_filter.as_deref(), &s.values))?;
            Some(serde_json::to_vec(&RecordAnswer {
                resource_code: &resource.code,
                library_version: stored.version,
                record: project(&access, &library, &stored.values),
                masked: &call.entry.items_masked,
            }))
        })
        .map_err(|e| Problem::internal(&e))?;
    let body = body
        .ok_or_else(|| record_not_found(resource_code))?
        .map_err(|e| Problem::internal(&e))?;
    call.entry.row_count = Some(1);
    Ok(HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(body))
}

const CHANGES_ENDPOINT: &str = "GET /api/v1/exchange/{resource_code}/changes";

/// Query of the change feed.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChangesQuery {
    /// Changes after this library version (0: everything).
    pub since_version: i64,
    /// Changes per page, 1–5000 (default 1000).
    #[serde(default = "default_page")]
    pub limit: usize,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

fn default_page() -> usize {
    1000
}

/// `GET /api/v1/exchange/{resource_code}/changes?since_version=N`: the net change of each key
/// since version N — its current record (masked as policy says) or its deletion — paged by
/// key. Follow `next_cursor` to the end, then ask again from `as_of_version`: a consumer that
/// does so misses no change, and a change that lands while it pages is at worst sent twice.
#[utoipa::path(
    get,
    path = "/api/v1/exchange/{resource_code}/changes",
    tag = "exchange",
    params(
        ("resource_code" = String, Path, description = "资源代码 The resource code"),
        ChangesQuery,
        crate::openapi::RequestIdHeader,
    ),
    responses(
        (status = 200, description = "A page of the change feed (变更订阅)", body = crate::openapi::ChangesAnswer, headers(("X-Request-Id" = String, description = "The request id, as sent or generated"))),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::PolicyRefused),
        (status = 404, response = crate::openapi::ResourceMissing),
        (status = 422, description = "`invalid_query` naming the parameter (`since_version`, `limit`, `cursor`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 429, response = crate::openapi::QuotaExceeded),
        (status = 500, response = crate::openapi::ExchangeFault),
        (status = 503, response = crate::openapi::AuditUnavailable),
    )
)]
pub async fn changes(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ChangesQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let resource_code = path.into_inner();
    let mut call = CallRecord::new(&req, CHANGES_ENDPOINT, &resource_code);
    let outcome = serve_changes(&req, &state, &resource_code, &query, &mut call).await;
    call.finish(&state, outcome).await
}

/// Where a page of the change feed resumes.
enum FeedCursor {
    /// Current records after this key.
    Upserts { as_of: i64, after: Option<String> },
    /// Deletions, from this offset.
    Deletes { as_of: i64, offset: usize },
}

impl FeedCursor {
    fn parse(raw: &str) -> Option<Self> {
        let mut parts = raw.splitn(3, ':');
        let phase = parts.next()?;
        let as_of = parts.next()?.parse().ok()?;
        let rest = parts.next()?;
        match phase {
            "u" => Some(FeedCursor::Upserts {
                as_of,
                after: Some(rest.to_string()),
            }),
            "d" => Some(FeedCursor::Deletes {
                as_of,
                offset: rest.parse().ok()?,
            }),
            _ => None,
        }
    }

    fn render(&self) -> String {
        match self {
            FeedCursor::Upserts { as_of, after } => format!("u:{as_of}:{}", after.as_deref().unwrap_or("")),
            FeedCursor::Deletes { as_of, offset } => format!("d:{as_of}:{offset}"),
        }
    }
}

async fn serve_changes(
    req: &HttpRequest,
    state: &AppState,
    resource_code: &str,
    query: &ChangesQuery,
    call: &mut CallRecord,
) -> Result<HttpResponse, Problem> {
    let bad = |field: &str, detail: &str| Problem::invalid_query(field, detail);
    if query.since_version < 0 {
        return Err(bad("since_version", "since_version: a library version, 0 or more"));
    }
    if !(1..=5000).contains(&query.limit) {
        return Err(bad("limit", "limit: between 1 and 5000"));
    }
    let cursor = match &query.cursor {
        Some(raw) => Some(FeedCursor::parse(raw).ok_or_else(|| bad("cursor", "cursor: not a cursor this feed gave"))?),
        None => None,
    };
    let (resource, library, access) = authorize(req, state, resource_code, call).await?;
    let since = query.since_version;
    let cursor = match cursor {
        Some(c) => c,
        None => FeedCursor::Upserts {
            as_of: library.version().map_err(|e| Problem::internal(&e))?,
            after: None,
        },
    };
    let mut changes = Vec::new();
    let (as_of, next) = match cursor {
        FeedCursor::Upserts { as_of, after } => {
            let reader = library.reader().map_err(|e| Problem::internal(&e))?;
            let (page, last) = reader
                .changed_since(since, after.as_deref().filter(|a| !a.is_empty()), query.limit, 100_000)
                .map_err(|e| Problem::internal(&e))?;
            let row_filter = crate::query::grant_filter(&access, library.schema())?;
            for (key, stored) in &page {
                if !admits(row_filter.as_deref(), &stored.values) {
                    continue;
                }
                changes.push(json!({
                    "op": "upsert",
                    "key": key,
                    "version": stored.version,
                    "record": project(&access, &library, &stored.values),
                }));
            }
            let next = match last {
                Some(after) => FeedCursor::Upserts {
                    as_of,
                    after: Some(after),
                },
                None => FeedCursor::Deletes { as_of, offset: 0 },
            };
            (as_of, Some(next))
        }
        FeedCursor::Deletes { as_of, offset } => {
            let deletes = library
                .deletions_since(since, offset, query.limit)
                .await
                .map_err(|e| Problem::internal(&e))?;
            let fetched = deletes.len();
            for (key, version) in deletes {
                // A key deleted and inserted again is current, and was sent as an upsert.
                if library.get(&key).map_err(|e| Problem::internal(&e))?.is_none() {
                    changes.push(json!({"op": "delete", "key": key, "version": version, "record": null}));
                }
            }
            let next = (fetched == query.limit).then_some(FeedCursor::Deletes {
                as_of,
                offset: offset + fetched,
            });
            (as_of, next)
        }
    };
    call.entry.row_count = Some(changes.len() as i64);
    Ok(HttpResponse::Ok().json(json!({
        "resource_code": resource.code,
        "since_version": since,
        "as_of_version": as_of,
        "changes": changes,
        "next_cursor": next.map(|c| c.render()),
        "masked": call.entry.items_masked,
    })))
}

/// The record if the caller may see it: one outside the grant's row filter is treated as
/// absent, so its existence does not leak.
pub(crate) fn visible(filter: Option<&crate::query::RowFilter>, stored: Option<StoredRecord>) -> Option<StoredRecord> {
    stored.filter(|stored| admits(filter, &stored.values))
}

/// Whether the grant's row filter (none: every row) lets the caller see a record with these
/// `values` (in schema order).
pub(crate) fn admits<S: AsRef<str>>(filter: Option<&crate::query::RowFilter>, values: &[Option<S>]) -> bool {
    filter.is_none_or(|f| f.matches(values))
}

const BATCH_ENDPOINT: &str = "POST /api/v1/exchange/{resource_code}/records:batch";

/// Most keys in one batch.
pub const MAX_BATCH: usize = 1000;

/// Body of `records:batch`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"keys": ["330102198807150031", "110105199001010022"]}))]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The keys, 1 to 1,000.
    pub keys: Vec<String>,
}

/// `POST /api/v1/exchange/{resource_code}/records:batch`: up to 1,000 records in one call,
/// results in request order; a key with no record is marked `not_found`, a malformed one
/// `invalid_key` with the reason, and neither fails the batch.
#[utoipa::path(
    post,
    path = "/api/v1/exchange/{resource_code}/records:batch",
    tag = "exchange",
    params(
        ("resource_code" = String, Path, description = "资源代码 The resource code"),
        crate::openapi::RequestIdHeader,
    ),
    request_body(content = BatchRequest, description = "The keys to look up, 1 to 1,000"),
    responses(
        (status = 200, description = "批量查询 One result per key, in request order: `found` with the record (granted items only, masked where not plain), `not_found`, or `invalid_key` with the reason; a bad key does not fail the batch", body = crate::openapi::BatchAnswer, headers(("X-Request-Id" = String, description = "The request id, as sent or generated"))),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::PolicyRefused),
        (status = 404, response = crate::openapi::ResourceMissing),
        (status = 422, description = "`invalid_batch` (`field: keys`): no keys or more than 1,000; `invalid_body`: the body does not parse", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 429, response = crate::openapi::QuotaExceeded),
        (status = 500, response = crate::openapi::ExchangeFault),
        (status = 503, response = crate::openapi::AuditUnavailable),
    )
)]
pub async fn batch(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<BatchRequest>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let resource_code = path.into_inner();
    let mut call = CallRecord::new(&req, BATCH_ENDPOINT, &resource_code);
    let outcome = serve_batch(&req, &state, &resource_code, &body.keys, &mut call).await;
    call.finish(&state, outcome).await
}

async fn serve_batch(
    req: &HttpRequest,
    state: &AppState,
    resource_code: &str,
    keys: &[String],
    call: &mut CallRecord,
) -> Result<HttpResponse, Problem> {
    if keys.is_empty() || keys.len() > MAX_BATCH {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_batch",
            "Invalid batch",
            format!(
                "keys: between 1 and {MAX_BATCH} keys per call; this one has {}",
                keys.len()
            ),
        )
        .with_field("keys"));
    }
    let (resource, library, access) = authorize(req, state, resource_code, call).await?;
    let row_filter = crate::query::grant_filter(&access, library.schema())?;
    let reader = library.reader().map_err(|e| Problem::internal(&e))?;
    let mut subjects = Vec::with_capacity(keys.len());
    let mut found = 0i64;
    let results: Vec<Value> = keys
        .iter()
        .map(|raw| {
            let key = match parse_key(&library, raw) {
                Ok(key) => key,
                Err(problem) => {
                    return Ok(json!({"key": raw, "status": "invalid_key", "detail": problem.detail}));
                }
            };
            let stored = visible(row_filter.as_deref(), reader.get(&key)?);
            subjects.push(key);
            Ok(match stored {
                Some(stored) => {
                    found += 1;
                    json!({
                        "key": raw,
                        "status": "found",
                        "library_version": stored.version,
                        "record": project(&access, &library, &stored.values),
                    })
                }
                None => json!({"key": raw, "status": "not_found"}),
            })
        })
        .collect::<exchange_core::Result<_>>()
        .map_err(|e| Problem::internal(&e))?;
    call.entry.subject_hash = Some(policy::sha256_hex(&[&state.audit_key, subjects.join("\n").as_bytes()]));
    call.entry.row_count = Some(found);
    Ok(HttpResponse::Ok().json(json!({
        "resource_code": resource.code,
        "found": found,
        "results": results,
        "masked": call.entry.items_masked,
    })))
}

const VERIFY_ENDPOINT: &str = "POST /api/v1/exchange/{resource_code}/verify";

/// Body of `verify` (核验).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"key": "330102198807150031", "claims": {"name": "周杰", "birth_date": "1988-07-15"}}))]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The record's key, e.g. an ID number.
    pub key: String,
    /// Claimed values by data item, e.g. `{"name": "张三"}`.
    pub claims: std::collections::BTreeMap<String, String>,
}

/// `POST /api/v1/exchange/{resource_code}/verify` (核验): whether each claimed value equals
/// the record's, `match` or `no_match` per item, without returning any data. Claims are
/// normalized like source values (full-width digits, date forms); a key with no record
/// matches nothing. Any granted item may be verified, masked ones included — that is the point
/// of verification.
#[utoipa::path(
    post,
    path = "/api/v1/exchange/{resource_code}/verify",
    tag = "exchange",
    params(
        ("resource_code" = String, Path, description = "资源代码 The resource code"),
        crate::openapi::RequestIdHeader,
    ),
    request_body(content = VerifyRequest, description = "The key and the claimed values to check (核验)"),
    responses(
        (status = 200, description = "核验结果 `match` or `no_match` per claimed item, and whether all match; no data is returned", body = crate::openapi::VerifyAnswer, headers(("X-Request-Id" = String, description = "The request id, as sent or generated"))),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, description = "Refused by policy (策略拒绝): `no_grant` (conditional share without an active grant), `grant_expired`, `not_shared` (不予共享), `role_forbidden` (platform staff and open-data developers do not consume), `no_department`, or `item_not_granted` (`field: claims.<item>`): a claimed item is not among the granted items", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, response = crate::openapi::ResourceMissing),
        (status = 422, description = "`invalid_claims` (`field: claims`): no claims; `unknown_item` (`field: claims.<item>`): the resource has no such data item; `invalid_claim` (`field: claims.<item>`): the claimed value does not normalize; `invalid_key` (`field: key`): not a valid citizen ID number; `invalid_body`: the body does not parse", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 429, response = crate::openapi::QuotaExceeded),
        (status = 500, response = crate::openapi::ExchangeFault),
        (status = 503, response = crate::openapi::AuditUnavailable),
    )
)]
pub async fn verify(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<VerifyRequest>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let resource_code = path.into_inner();
    let mut call = CallRecord::new(&req, VERIFY_ENDPOINT, &resource_code);
    let outcome = serve_verify(&req, &state, &resource_code, &body, &mut call).await;
    call.finish(&state, outcome).await
}

async fn serve_verify(
    req: &HttpRequest,
    state: &AppState,
    resource_code: &str,
    body: &VerifyRequest,
    call: &mut CallRecord,
) -> Result<HttpResponse, Problem> {
    if body.claims.is_empty() {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_claims",
            "Nothing to verify",
            "claims: name at least one data item and its claimed value",
        )
        .with_field("claims"));
    }
    let (resource, library, access) = authorize(req, state, resource_code, call).await?;
    // Nothing is returned: the audit record lists no items.
    call.entry.items_plain.clear();
    call.entry.items_masked.clear();
    let schema = library.schema();
    let mut claims = Vec::with_capacity(body.claims.len());
    for (item, claimed) in &body.claims {
        let field = format!("claims.{item}");
        let Some(position) = schema.position(item) else {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_item",
                "Unknown data item",
                format!("{resource_code} has no data item {item:?}"),
            )
            .with_field(field));
        };
        if !access.items.iter().any(|a| &a.name == item) {
            return Err(denied(policy::Denial::ItemNotGranted).with_field(field));
        }
        let normalized = schema.fields[position].normalize(claimed).map_err(|why| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_claim",
                "Invalid claimed value",
                format!("{item}: {why}"),
            )
            .with_field(field.clone())
        })?;
        claims.push((item, position, normalized));
    }
    let key = parse_key(&library, &body.key)?;
    call.entry.subject_hash = Some(policy::sha256_hex(&[&state.audit_key, key.as_bytes()]));
    let row_filter = crate::query::grant_filter(&access, library.schema())?;
    let stored = visible(
        row_filter.as_deref(),
        library.get(&key).map_err(|e| Problem::internal(&e))?,
    );
    call.entry.row_count = Some(i64::from(stored.is_some()));
    let mut results = Map::new();
    let mut all = stored.is_some();
    for (item, position, claimed) in claims {
        let matches = stored
            .as_ref()
            .is_some_and(|s| claimed.is_some() && s.values[position].as_deref() == claimed.as_deref());
        all &= matches;
        results.insert(item.clone(), Value::from(if matches { "match" } else { "no_match" }));
    }
    Ok(HttpResponse::Ok().json(json!({
        "resource_code": resource.code,
        "found": stored.is_some(),
        "match": all,
        "results": results,
    })))
}

fn library_of(state: &AppState, resource: &Resource) -> Result<Arc<Library>, Problem> {
    resource
        .meta
        .library
        .as_deref()
        .and_then(|name| state.libraries.get(name))
        .ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                "resource_not_served",
                "Resource not served",
                format!("resource {} is catalogued but not served from a library", resource.code),
            )
            .with_field("resource_code")
        })
}

/// Parses the key as the library's key field requires: a bad ID number is a 422 that says
/// what is wrong with it, not a 404.
pub(crate) fn parse_key(library: &Library, raw: &str) -> Result<String, Problem> {
    let key_field = &library.schema().fields[0];
    match key_field.normalize(raw) {
        Ok(Some(key)) => Ok(key.into_owned()),
        Ok(None) => Err(format!("{} is empty", key_field.label_zh)),
        Err(reason) => Err(format!("{} is not valid: {reason}", key_field.label_zh)),
    }
    .map_err(|detail| {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_key", "Invalid key", detail).with_field("key")
    })
}
