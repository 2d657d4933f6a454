//! The exchange API for government consumers, `/api/v1/exchange/{resource_code}/…`.
//!
//! Every call, allowed or refused, is decided by policy from the catalog and recorded in the
//! audit trail before the response leaves.

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use catalog::Resource;
use exchange_core::{FieldKind, IdNumber, Library, StoredRecord};
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
        let request_id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map(str::to_string)
            .unwrap_or_else(new_request_id);
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
    pub(crate) async fn finish(mut self, state: &AppState, outcome: Result<HttpResponse, Problem>) -> HttpResponse {
        let mut response = match outcome {
            Ok(response) => {
                self.entry.outcome = "allowed".into();
                response
            }
            Err(problem) => {
                self.entry.outcome = problem.code.to_string();
                actix_web::ResponseError::error_response(&problem)
            }
        };
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
            response
                .headers_mut()
                .insert(actix_web::http::header::HeaderName::from_static("x-request-id"), value);
        }
        response
    }
}

fn new_request_id() -> String {
    use rand::Rng;
    let bytes: [u8; 12] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `GET /api/v1/exchange/{resource_code}/records/{key}`: one record, masked as policy says.
pub async fn get_record(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (resource_code, key) = path.into_inner();
    let mut call = CallRecord::new(&req, RECORD_ENDPOINT, &resource_code);
    let outcome = serve_record(&req, &state, &resource_code, &key, &mut call).await;
    call.finish(&state, outcome).await
}

/// Authenticates, checks the quota, finds the resource and its library, and asks policy;
/// refusals are problems with a stable code.
pub(crate) async fn authorize<'s>(
    req: &HttpRequest,
    state: &'s AppState,
    resource_code: &str,
    call: &mut CallRecord,
) -> Result<(Resource, &'s Library, Access), Problem> {
    let credential = crate::auth::Caller::from_request(req, state).await?.0;
    call.caller(&credential);
    state.quotas.check(credential.id).map_err(|over| {
        let seconds = over.retry_after.as_secs_f64().ceil().max(1.0) as u64;
        let mut problem = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "quota_exceeded",
            "Quota exceeded",
            format!("this credential's quota is used up; retry after {seconds} s"),
        );
        problem.retry_after = Some(seconds);
        problem.rate_limit = Some(over.limit);
        problem
    })?;
    let resource = state
        .catalog
        .resource_by_code(resource_code)
        .await
        .map_err(|e| match e {
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
            .catalog
            .active_grant(resource.id, department)
            .await
            .map_err(|e| Problem::internal(&e))?,
        None => None,
    };
    let access = match policy::decide(&resource, &credential, grant.as_ref()) {
        Decision::Allow(access) => access,
        Decision::Deny(denial) => {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                denial.code(),
                "Access denied",
                denial.message(),
            ));
        }
    };
    call.entry.grant_id = access.grant_id;
    for item in &access.items {
        if item.plain {
            call.entry.items_plain.push(item.name.clone());
        } else {
            call.entry.items_masked.push(item.name.clone());
        }
    }
    Ok((resource, library, access))
}

/// A stored record as the caller may see it: the granted items only, masked where not plain.
pub(crate) fn project(access: &Access, library: &Library, stored: &StoredRecord) -> Map<String, Value> {
    let schema = library.schema();
    let mut record = Map::new();
    for item in &access.items {
        let Some(position) = schema.position(&item.name) else {
            continue;
        };
        let value = stored.values[position].as_deref().map(|v| {
            if item.plain {
                v.to_string()
            } else {
                policy::mask::mask(schema.fields[position].kind, v)
            }
        });
        record.insert(item.name.clone(), value.map(Value::String).unwrap_or(Value::Null));
    }
    record
}

async fn serve_record(
    req: &HttpRequest,
    state: &AppState,
    resource_code: &str,
    key: &str,
    call: &mut CallRecord,
) -> Result<HttpResponse, Problem> {
    let (resource, library, access) = authorize(req, state, resource_code, call).await?;
    let key = parse_key(library, key)?;
    call.entry.subject_hash = Some(policy::sha256_hex(&[&state.audit_key, key.as_bytes()]));
    let stored = library.get(&key).map_err(|e| Problem::internal(&e))?.ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "record_not_found",
            "No such record",
            format!("resource {resource_code} holds no record for this key"),
        )
        .with_field("key")
    })?;
    Ok(HttpResponse::Ok().json(json!({
        "resource_code": resource.code,
        "library_version": stored.version,
        "record": project(&access, library, &stored),
        "masked": call.entry.items_masked,
    })))
}

const CHANGES_ENDPOINT: &str = "GET /api/v1/exchange/{resource_code}/changes";

/// Query of the change feed.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
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
    let bad = |field: &str, detail: &str| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_query",
            "Invalid query parameter",
            detail,
        )
        .with_field(field)
    };
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
            for (key, stored) in &page {
                changes.push(json!({
                    "op": "upsert",
                    "key": key,
                    "version": stored.version,
                    "record": project(&access, library, stored),
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
    Ok(HttpResponse::Ok().json(json!({
        "resource_code": resource.code,
        "since_version": since,
        "as_of_version": as_of,
        "changes": changes,
        "next_cursor": next.map(|c| c.render()),
        "masked": call.entry.items_masked,
    })))
}

fn library_of<'a>(state: &'a AppState, resource: &Resource) -> Result<&'a Library, Problem> {
    resource
        .meta
        .library
        .as_deref()
        .and_then(|name| state.libraries.get(name))
        .map(|l| l.as_ref())
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
    let schema = library.schema();
    let key_field = &schema.fields[0];
    match key_field.kind {
        FieldKind::IdNumber => IdNumber::parse(raw).map(|id| id.as_str().to_string()).map_err(|e| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_key",
                "Invalid key",
                format!("{} is not a valid citizen ID number: {e}", key_field.label_zh),
            )
            .with_field("key")
        }),
        _ => Ok(raw.trim().to_string()),
    }
}
