//! The libraries themselves (基础库、主题库), `/api/v1/libraries/…`: their schemas with the
//! authoritative department of each field (一数一源), a record's per-field lineage (数据血缘)
//! and the values that lost conflicts between sources.
//!
//! Schemas are for every authenticated caller. Lineage and conflicts are governance data: the
//! platform's staff see them for every library, a provider admin for the libraries its
//! department provides a resource of. (Consumers read records through the exchange API, under
//! their grants.)

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use exchange_core::{FieldKind, Library, LibrarySchema, Sensitivity};
use policy::Role;
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, forbidden};
use crate::problem::Problem;
use crate::routes::exchange::parse_key;
use crate::routes::history::library_problem;
use crate::startup::AppState;

type Reply = Result<HttpResponse, Problem>;

/// The authoritative department of a field, from the catalog.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldAuthority {
    /// The department's code.
    pub department_code: String,
    /// The resource whose data item claims the field.
    pub resource_code: String,
}

/// One field of a library's schema.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldInfo {
    /// Column name.
    pub name: &'static str,
    /// 信息项名称.
    pub label_zh: &'static str,
    /// Semantic kind (decides normalization and masking).
    #[schema(value_type = String, example = "id_number")]
    pub kind: FieldKind,
    /// Default sensitivity grade.
    #[schema(value_type = String, example = "L3")]
    pub sensitivity: Sensitivity,
    /// Whether a row without it is rejected.
    pub required: bool,
    /// The values a code field may take.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub allowed: &'static [&'static str],
    /// Who is authoritative for it (一数一源); absent: the provider of the feeding resource.
    pub authority: Option<FieldAuthority>,
}

/// A library: its schema and state.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LibraryInfo {
    /// Library name.
    pub name: &'static str,
    /// Chinese name.
    pub label_zh: &'static str,
    /// `base` (基础库) or `theme` (主题库).
    pub class: &'static str,
    /// The schema's version (docs/libraries.md).
    pub schema_version: u32,
    /// The key field.
    pub key: &'static str,
    /// The fields a compound key is made of, joined by `:`.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub key_parts: &'static [&'static str],
    /// The library version served.
    pub version: i64,
    /// Current records.
    pub records: u64,
    /// The library version of its export snapshot (the current records as a file that bulk
    /// exports read); equal to `version` when exports read it, absent or lower while it is
    /// being written or when snapshots are off.
    pub snapshot_version: Option<i64>,
    /// The fields, key first.
    pub fields: Vec<FieldInfo>,
}

/// The list of libraries.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LibraryList {
    /// Base libraries first, then themes, by name.
    pub items: Vec<LibraryInfo>,
}

fn info(resources: &[catalog::Resource], library: &Library) -> Result<LibraryInfo, Problem> {
    let schema = library.schema();
    let claims = catalog::field_authorities_in(resources, schema.name);
    let internal = |e: exchange_core::Error| Problem::internal(&e);
    Ok(LibraryInfo {
        name: schema.name,
        label_zh: schema.label_zh,
        class: if is_base(schema) { "base" } else { "theme" },
        schema_version: schema.version,
        key: schema.key,
        key_parts: schema.key_parts,
        version: library.version().map_err(internal)?,
        records: library.len().map_err(internal)?,
        snapshot_version: library.snapshot_version(),
        fields: schema
            .fields
            .iter()
            .map(|f| FieldInfo {
                name: f.name,
                label_zh: f.label_zh,
                kind: f.kind,
                sensitivity: f.sensitivity,
                required: f.required,
                allowed: f.allowed,
                authority: claims.iter().find(|c| c.field == f.name).map(|c| FieldAuthority {
                    department_code: c.department_code.clone(),
                    resource_code: c.resource_code.clone(),
                }),
            })
            .collect(),
    })
}

/// Whether `schema` is a base library's (not a theme's).
pub(crate) fn is_base(schema: &LibrarySchema) -> bool {
    exchange_core::schema::LIBRARIES.iter().any(|l| l.name == schema.name)
}

/// The open library `name` (base or themed), or 404 `library_not_found` naming `name`.
pub(crate) fn library(state: &AppState, name: &str) -> Result<Arc<Library>, Problem> {
    state.libraries.get(name).ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "library_not_found",
            "No such library",
            format!("no library is named {name:?}; GET /api/v1/libraries lists them"),
        )
        .with_field("name")
    })
}

/// `GET /api/v1/libraries`: every library's schema, state and field authorities.
#[utoipa::path(
    get,
    path = "/api/v1/libraries",
    tag = "libraries",
    responses(
        (status = 200, description = "The base libraries, then the themes", body = LibraryList),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    Caller::from_request(&req, &state).await?;
    let resources = state.catalog.resources().await?;
    let mut all = state.libraries.all();
    all.sort_by_key(|(name, library)| (!is_base(library.schema()), *name));
    let items = all
        .iter()
        .map(|(_, library)| info(&resources, library))
        .collect::<Result<_, _>>()?;
    Ok(HttpResponse::Ok().json(LibraryList { items }))
}

/// `GET /api/v1/libraries/{name}`: one library's schema, state and field authorities.
#[utoipa::path(
    get,
    path = "/api/v1/libraries/{name}",
    tag = "libraries",
    params(("name" = String, Path, description = "The library, e.g. population")),
    responses(
        (status = 200, description = "The library", body = LibraryInfo),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 404, description = "`library_not_found` (`field: name`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn get(req: HttpRequest, state: web::Data<AppState>, name: web::Path<String>) -> Reply {
    Caller::from_request(&req, &state).await?;
    let library = library(&state, &name)?;
    let resources = state.catalog.resources().await?;
    Ok(HttpResponse::Ok().json(info(&resources, &library)?))
}

/// Lineage and conflicts are for the platform, and for provider admins of a department that
/// provides a resource of the library.
async fn governor(req: &HttpRequest, state: &AppState, library: &str) -> Result<Caller, Problem> {
    let caller = Caller::from_request(req, state).await?;
    if caller.is_platform() {
        return Ok(caller);
    }
    caller.require(&[Role::ProviderAdmin], "reading a library's lineage and conflicts")?;
    let department = caller.department()?;
    let provides = state
        .catalog
        .resources()
        .await?
        .iter()
        .any(|r| r.provider_id == department && r.meta.library.as_deref() == Some(library));
    if provides {
        Ok(caller)
    } else {
        Err(forbidden(format!(
            "the department of this key provides no resource of the {library} library"
        )))
    }
}

/// Where one field's value came from.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldLineage {
    /// The field.
    pub field: &'static str,
    /// Whether it holds a value.
    pub filled: bool,
    /// The department, run and library version that supplied the value; absent when empty.
    pub origin: Option<exchange_core::Origin>,
}

/// A record's lineage.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecordLineage {
    /// The library.
    pub library: &'static str,
    /// The record's key.
    pub key: String,
    /// The library version that last changed the record.
    pub version: i64,
    /// The department the record belongs to (the authority of its key).
    pub source: String,
    /// Per field, in schema order.
    pub fields: Vec<FieldLineage>,
}

/// `GET /api/v1/libraries/{name}/records/{key}/lineage`: where each field of the current
/// record came from (数据血缘).
#[utoipa::path(
    get,
    path = "/api/v1/libraries/{name}/records/{key}/lineage",
    tag = "libraries",
    params(
        ("name" = String, Path, description = "The library"),
        ("key" = String, Path, description = "The record's key, normalized like the exchange API's"),
    ),
    responses(
        (status = 200, description = "Each field's origin", body = RecordLineage),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, description = "`forbidden`: neither platform staff nor a provider of the library", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`library_not_found` (`field: name`) or `record_not_found` (`field: key`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_key` (`field: key`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn lineage(req: HttpRequest, state: web::Data<AppState>, path: web::Path<(String, String)>) -> Reply {
    let (name, raw_key) = path.into_inner();
    let library = library(&state, &name)?;
    governor(&req, &state, &name).await?;
    let key = parse_key(&library, &raw_key)?;
    let record = library.get(&key).map_err(|e| Problem::internal(&e))?.ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "record_not_found",
            "No such record",
            format!("library {name} holds no record {key}"),
        )
        .with_field("key")
    })?;
    let fields = library
        .schema()
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| FieldLineage {
            field: f.name,
            filled: record.values.get(i).is_some_and(Option::is_some),
            origin: record.lineage.field(i).cloned(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(RecordLineage {
        library: library.schema().name,
        key,
        version: record.version,
        source: record.source,
        fields,
    }))
}

/// Query of the conflict list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConflictQuery {
    /// Only this record's conflicts.
    pub key: Option<String>,
    /// Conflicts to skip (newest first).
    #[serde(default)]
    pub offset: usize,
    /// At most this many, 1–1000 (default 100).
    pub limit: Option<usize>,
}

/// Values that lost to another source.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Conflict {
    /// The library version whose commit recorded it.
    pub version: i64,
    /// The record's key.
    pub key: String,
    /// The department whose values lost.
    pub source: String,
    /// Its sync run (0: a manual correction).
    pub run: i64,
    /// When it was recorded.
    pub recorded_at: String,
    /// The losing values, by field (the record as of `version` holds the winning ones).
    #[schema(value_type = Object)]
    pub values: serde_json::Map<String, serde_json::Value>,
}

/// A page of conflicts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConflictPage {
    /// Newest first.
    pub items: Vec<Conflict>,
    /// The offset of the next page; absent on the last.
    pub next_offset: Option<usize>,
}

/// `GET /api/v1/libraries/{name}/conflicts`: the values sources supplied that lost to the
/// authoritative source (or to the source that filled the field first), newest first.
#[utoipa::path(
    get,
    path = "/api/v1/libraries/{name}/conflicts",
    tag = "libraries",
    params(("name" = String, Path, description = "The library"), ConflictQuery),
    responses(
        (status = 200, description = "A page of conflicts", body = ConflictPage),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, description = "`forbidden`: neither platform staff nor a provider of the library", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`library_not_found` (`field: name`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_query` naming `limit`, or `invalid_key` (`field: key`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn conflicts(
    req: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
    query: Result<web::Query<ConflictQuery>, actix_web::Error>,
) -> Reply {
    let library = library(&state, &name)?;
    governor(&req, &state, &name).await?;
    let query = query
        .map_err(|e| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_query",
                "Invalid query",
                e.to_string(),
            )
        })?
        .into_inner();
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::invalid_query(
            "limit",
            format!("limit is 1 to 1000, got {limit}"),
        ));
    }
    let key = query.key.as_deref().map(|k| parse_key(&library, k)).transpose()?;
    let rows = library
        .conflicts(key.as_deref(), query.offset, limit + 1)
        .await
        .map_err(library_problem)?;
    let more = rows.len() > limit;
    let schema = library.schema();
    let items = rows
        .into_iter()
        .take(limit)
        .map(|row| {
            let values = schema
                .fields
                .iter()
                .zip(&row.values)
                .skip(1)
                .filter_map(|(f, v)| {
                    v.as_ref()
                        .map(|v| (f.name.to_string(), serde_json::Value::from(v.as_str())))
                })
                .collect();
            Conflict {
                version: row.version,
                key: row.values.first().cloned().flatten().unwrap_or_default(),
                source: row.source,
                run: row.run,
                recorded_at: row.ingested_at.to_rfc3339(),
                values,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(ConflictPage {
        items,
        next_offset: more.then_some(query.offset + limit),
    }))
}
