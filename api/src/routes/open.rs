//! The open-data API (数据开放), `/open/v1/…`: downloads and reads of open datasets for the
//! public and for developers (社会开发者), developer sign-up, and applications for conditionally
//! open datasets (有条件开放) with their answers under `/api/v1/open-applications`.
//!
//! Every read and download is decided by [`policy::open`] from the catalog, held to its quota
//! (anonymous callers per client address, developers per key) and recorded in the audit trail
//! like an exchange call; an anonymous caller is recorded by a keyed hash of its address.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use catalog::{ApplicationView, Resource};
use exchange_core::Library;
use policy::open::{OpenCaller, OpenDenial};
use policy::{Access, Credential, Role};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{Caller, forbidden};
use crate::problem::Problem;
use crate::routes::exchange::{CallRecord, over_quota};
use crate::routes::open_catalog::dataset_not_found;
use crate::routes::query::{ExportOptions, Format, cursor_param, export_response, read_of, records_page};
use crate::startup::AppState;

type Reply = Result<HttpResponse, Problem>;

const DOWNLOAD_ENDPOINT: &str = "GET /open/v1/datasets/{id}/download";
const RECORDS_ENDPOINT: &str = "GET /open/v1/datasets/{id}/records";

fn denied(id: &str, denial: OpenDenial) -> Problem {
    match denial {
        OpenDenial::NotOpen => dataset_not_found(id),
        OpenDenial::DeveloperKeyRequired => Problem::new(
            StatusCode::UNAUTHORIZED,
            denial.code(),
            "Developer key required",
            denial.message(),
        ),
        OpenDenial::ApplicationRequired => Problem::new(
            StatusCode::FORBIDDEN,
            denial.code(),
            "Application required",
            denial.message(),
        ),
    }
}

/// Whether the request carries credentials (a bearer header or a console session).
fn presents_credentials(req: &HttpRequest) -> bool {
    req.headers().contains_key(actix_web::http::header::AUTHORIZATION) || crate::auth::session_cookie(req).is_some()
}

/// Authenticates the caller if it presents credentials (anonymous otherwise), takes the call
/// from its quota, and asks policy what it may read of the dataset `id`.
pub(crate) async fn authorize_open(
    req: &HttpRequest,
    state: &AppState,
    id: &str,
    call: &mut CallRecord,
) -> Result<(Arc<Resource>, Arc<Library>, Access), Problem> {
    let credential = if presents_credentials(req) {
        let credential = Caller::from_request(req, state).await?.0;
        call.entry.credential_id = Some(credential.id);
        call.entry.department = credential.department_code.clone();
        state.open_developers.check(credential.id, None).map_err(over_quota)?;
        Some(credential)
    } else {
        let address = req.peer_addr().map(|a| a.ip());
        let shown = address.map(|a| a.to_string()).unwrap_or_default();
        call.entry.client_hash = Some(policy::sha256_hex(&[&state.audit_key, shown.as_bytes()]));
        if let Some(address) = address {
            state
                .open_anonymous
                .check(policy::quota::address_key(address), None)
                .map_err(over_quota)?;
        }
        None
    };
    let resource = match state.catalog_cache.resource(id).await {
        Ok(resource) => resource,
        Err(catalog::Error::NotFound { .. }) => return Err(dataset_not_found(id)),
        Err(other) => return Err(Problem::internal(&other)),
    };
    let application = match &credential {
        Some(credential) if resource.meta.open_type == exchange_core::OpenType::Conditional => state
            .catalog_cache
            .application(resource.id, credential.id)
            .await
            .map_err(|e| Problem::internal(&e))?,
        _ => None,
    };
    let caller = match &credential {
        Some(_) => OpenCaller::Developer(application.as_deref()),
        None => OpenCaller::Anonymous,
    };
    let access = policy::open::decide_open(&resource, caller).map_err(|d| denied(id, d))?;
    call.entry.application_id = application.map(|a| a.id);
    let library = resource
        .meta
        .library
        .as_deref()
        .and_then(|name| state.libraries.get(name))
        .ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                "dataset_has_no_data",
                "Dataset has no data yet",
                format!("dataset {id} is catalogued as open but not yet served from a library"),
            )
            .with_field("id")
        })?;
    for item in &access.items {
        if item.plain {
            call.entry.items_plain.push(item.name.clone());
        } else {
            call.entry.items_masked.push(item.name.clone());
        }
    }
    Ok((resource, library, access))
}

/// Query of the download endpoint.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// `csv`, `json`, `ndjson`, `parquet` or `xlsx`.
    pub format: String,
    /// CSV only: start the file with a UTF-8 byte-order mark, so Excel shows Chinese text
    /// correctly (`true` or `false`, default `false`).
    #[serde(default)]
    pub bom: Option<String>,
    /// Comma-separated items to download (default: every open item).
    #[serde(default)]
    pub fields: Option<String>,
    /// A DataFusion SQL boolean expression over the open items (masked items compare by their
    /// masked value).
    #[serde(default)]
    pub filter: Option<String>,
    /// Download the dataset as it was at this library version (default: the current one).
    #[param(value_type = Option<i64>)]
    #[serde(default)]
    pub as_of_version: Option<String>,
    /// Download the dataset as it was at this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    #[serde(default)]
    pub as_of: Option<String>,
}

fn flag(field: &str, raw: Option<&str>) -> Result<bool, Problem> {
    match raw.map(str::trim) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(Problem::invalid_query(
            field,
            format!("{field}: true or false, not {other:?}"),
        )),
    }
}

/// `GET /open/v1/datasets/{id}/download?format=…`: the dataset's open items as a file,
/// streamed with bounded memory at any size, from the library version it names.
#[utoipa::path(
    get,
    path = "/open/v1/datasets/{id}/download",
    tag = "open data",
    security((), ("bearer" = [])),
    params(
        ("id" = String, Path, description = "The dataset id (its resource code, 资源代码)"),
        DownloadQuery,
        crate::openapi::RequestIdHeader,
    ),
    responses(
        (status = 200, description = "数据下载 The dataset's open items (L1 plain, L2 masked, or plain under an approved application; L3/L4 never), streamed in the format asked. XLSX has a header row of the items' Chinese labels; the other formats name items by their field names",
            content(
                (String = "text/csv; charset=utf-8"),
                (String = "application/json"),
                (String = "application/x-ndjson"),
                (Vec<u8> = "application/vnd.apache.parquet"),
                (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            ),
            headers(
                ("Content-Disposition" = String, description = "`attachment; filename=\"<id>-v<version>.<format>\"`"),
                ("X-Library-Version" = i64, description = "The library version the file was written from"),
                ("X-Request-Id" = String, description = "The request id, as sent or generated"),
            )),
        (status = 401, description = "`developer_key_required`: a conditionally open dataset (有条件开放) called without a key; `unauthenticated`: the key presented is not valid", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 403, description = "`application_required`: a conditionally open dataset and no approved application for it; `item_not_granted` (`field: fields` or `filter`): an item that is not open", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`dataset_not_found` (`field: id`): no open dataset has this id; `dataset_has_no_data`: catalogued but not served yet", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_query` naming the parameter (`format`, `bom`, `as_of_version`, `as_of`); `invalid_filter` (`field: filter`); `unknown_item` (`field: fields`); `too_many_records_for_xlsx` (`field: format`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 429, response = crate::openapi::QuotaExceeded),
        (status = 500, response = crate::openapi::ExchangeFault),
        (status = 503, response = crate::openapi::AuditUnavailable),
    )
)]
pub async fn download(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<DownloadQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let id = path.into_inner();
    let mut call = CallRecord::new(&req, DOWNLOAD_ENDPOINT, &id);
    let outcome = serve_download(&req, &state, &id, &query, &mut call).await;
    call.finish(&state, outcome).await
}

async fn serve_download(
    req: &HttpRequest,
    state: &AppState,
    id: &str,
    query: &DownloadQuery,
    call: &mut CallRecord,
) -> Reply {
    let format = Format::parse(&query.format)?;
    let bom = flag("bom", query.bom.as_deref())?;
    let as_of = crate::routes::history::AsOf::optional(query.as_of_version.as_deref(), query.as_of.as_deref())?;
    let (resource, library, access) = authorize_open(req, state, id, call).await?;
    let read = read_of(
        state,
        resource,
        library,
        access,
        query.filter.as_deref(),
        query.fields.as_deref(),
        call,
    )?;
    export_response(read, format, as_of, ExportOptions { bom }).await
}

/// Query of the records endpoint.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OpenRecordsQuery {
    /// A DataFusion SQL boolean expression over the open items.
    #[serde(default)]
    pub filter: Option<String>,
    /// Comma-separated items to return (default: every open item).
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

/// `GET /open/v1/datasets/{id}/records`: a page of the dataset's records (open items only,
/// masked as policy says), in key order; follow `next_cursor` until it is null.
#[utoipa::path(
    get,
    path = "/open/v1/datasets/{id}/records",
    tag = "open data",
    security((), ("bearer" = [])),
    params(
        ("id" = String, Path, description = "The dataset id (its resource code, 资源代码)"),
        OpenRecordsQuery,
        crate::openapi::RequestIdHeader,
    ),
    responses(
        (status = 200, description = "数据预览 A page of the dataset's records, open items only", body = crate::openapi::RecordsAnswer),
        (status = 401, description = "`developer_key_required` or `unauthenticated`", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 403, description = "`application_required`; `item_not_granted` (`field: fields` or `filter`): an item that is not open", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`dataset_not_found` (`field: id`); `dataset_has_no_data`", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_query` naming the parameter (`limit`, `cursor`); `invalid_filter` (`field: filter`); `unknown_item` (`field: fields`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 429, response = crate::openapi::QuotaExceeded),
        (status = 500, response = crate::openapi::ExchangeFault),
        (status = 503, response = crate::openapi::AuditUnavailable),
    )
)]
pub async fn records(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<OpenRecordsQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let id = path.into_inner();
    let mut call = CallRecord::new(&req, RECORDS_ENDPOINT, &id);
    let outcome = serve_records(&req, &state, &id, &query, &mut call).await;
    call.finish(&state, outcome).await
}

async fn serve_records(
    req: &HttpRequest,
    state: &AppState,
    id: &str,
    query: &OpenRecordsQuery,
    call: &mut CallRecord,
) -> Reply {
    if !(1..=1000).contains(&query.limit) {
        return Err(Problem::invalid_query("limit", "limit: between 1 and 1000"));
    }
    let after = cursor_param(query.cursor.as_deref())?;
    let read = open_read(req, state, id, query.filter.as_deref(), query.fields.as_deref(), call).await?;
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

/// An authorized open read of the dataset `id` (the records endpoint and the portal's preview).
pub(crate) async fn open_read(
    req: &HttpRequest,
    state: &AppState,
    id: &str,
    filter: Option<&str>,
    fields: Option<&str>,
    call: &mut CallRecord,
) -> Result<crate::routes::query::Read, Problem> {
    let (resource, library, access) = authorize_open(req, state, id, call).await?;
    read_of(state, resource, library, access, filter, fields, call)
}

/// Body of `POST /open/v1/developers`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUp {
    /// The developer's name.
    pub name: String,
    /// A contact email; one account per email.
    pub email: String,
    /// The company or organization (may be empty for an individual).
    #[serde(default)]
    pub organization: String,
}

fn required(field: &'static str, value: &str, max: usize) -> Result<String, Problem> {
    let value = value.trim();
    let invalid = |why: &str| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "Invalid input",
            format!("{field}: {why}"),
        )
        .with_field(field)
    };
    if value.is_empty() {
        return Err(invalid("required"));
    }
    if value.chars().count() > max {
        return Err(invalid(&format!("at most {max} characters")));
    }
    Ok(value.to_string())
}

fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@')
}

/// `POST /open/v1/developers`: signs up a developer (开发者注册): the account and its API key,
/// shown once.
#[utoipa::path(
    post,
    path = "/open/v1/developers",
    tag = "open data",
    security(()),
    request_body(content = SignUp),
    responses(
        (status = 201, description = "开发者注册 The account and its API key (`key`), shown this once and stored only as a hash", body = crate::openapi::DeveloperSignedUp),
        (status = 409, description = "`conflict` (`field: email`): an account with this email exists", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` naming the field (`name`, `email`, `organization`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn sign_up(state: web::Data<AppState>, body: web::Json<SignUp>) -> Reply {
    let signed = register(&state, &body).await?;
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "developer": signed.developer,
            "credential": signed.credential,
            "key": signed.key,
            "expires_at": signed.expires_at,
        })))
}

/// A developer just signed up.
pub(crate) struct Signed {
    pub(crate) developer: Option<catalog::Developer>,
    pub(crate) credential: Credential,
    pub(crate) key: String,
    pub(crate) expires_at: Option<String>,
}

/// Checks a sign-up and stores the account with its key (the API's and the portal's sign-up).
pub(crate) async fn register(state: &AppState, body: &SignUp) -> Result<Signed, Problem> {
    let name = required("name", &body.name, 100)?;
    let email = required("email", &body.email, 200)?;
    if !valid_email(&email) {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "Invalid input",
            "email: not an email address",
        )
        .with_field("email"));
    }
    let organization = body.organization.trim();
    if organization.chars().count() > 200 {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "Invalid input",
            "organization: at most 200 characters",
        )
        .with_field("organization"));
    }
    let expires_at = state.developer_key_lifetime.map(|d| chrono::Utc::now() + d);
    let issued = policy::credentials::sign_up_developer(&state.catalog, &name, &email, organization, expires_at)
        .await
        .map_err(|e| match e {
            policy::Error::Catalog(catalog::Error::Conflict { .. }) => Problem::new(
                StatusCode::CONFLICT,
                "conflict",
                "Already exists",
                "a developer account with this email already exists",
            )
            .with_field("email"),
            other => Problem::internal(&other),
        })?;
    let developer = state.catalog.developer(issued.credential.id).await?;
    Ok(Signed {
        developer,
        credential: issued.credential,
        key: issued.key,
        expires_at: expires_at.map(catalog::timestamp_text),
    })
}

async fn developer(req: &HttpRequest, state: &AppState, doing: &str) -> Result<Credential, Problem> {
    let caller = Caller::from_request(req, state).await?;
    caller.require(&[Role::OpenDataDeveloper], doing)?;
    Ok(caller.0)
}

/// `GET /open/v1/developers/me`: the developer's account and applications.
#[utoipa::path(
    get,
    path = "/open/v1/developers/me",
    tag = "open data",
    responses(
        (status = 200, description = "The developer account behind the key and its applications, newest first", body = crate::openapi::DeveloperAnswer),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn me(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    let credential = developer(&req, &state, "reading a developer account").await?;
    let account = state.catalog.developer(credential.id).await?;
    let applications = state
        .catalog
        .open_applications(ApplicationView::Applicant(credential.id))
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "developer": account,
        "credential": credential,
        "applications": applications,
    })))
}

/// Body of `POST /open/v1/datasets/{id}/applications`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Apply {
    /// What the data is for (用途), in words.
    pub purpose: String,
}

/// `POST /open/v1/datasets/{id}/applications`: a developer applies for a conditionally open
/// dataset (有条件开放); the dataset's provider answers.
#[utoipa::path(
    post,
    path = "/open/v1/datasets/{id}/applications",
    tag = "open data",
    params(("id" = String, Path, description = "The dataset id (its resource code)")),
    request_body(content = Apply),
    responses(
        (status = 201, description = "开放申请 The application, pending", body = catalog::OpenApplication, headers(("Location" = String, description = "The application's URL"))),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, description = "`forbidden`: only developer keys apply", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`dataset_not_found` (`field: id`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`invalid_state`: an application for this dataset is already pending or approved; `not_conditional`: the dataset is open without conditions, download it", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (`field: purpose`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn apply(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
    body: web::Json<Apply>,
) -> Reply {
    let id = path.into_inner();
    let credential = developer(&req, &state, "applying for a dataset").await?;
    let application = file_application(&state, &id, credential.id, &body.purpose).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/open-applications/{}", application.id)))
        .json(application))
}

/// Files a developer's application for the dataset `id` (the API's and the portal's).
pub(crate) async fn file_application(
    state: &AppState,
    id: &str,
    credential_id: i64,
    purpose: &str,
) -> Result<catalog::OpenApplication, Problem> {
    let purpose = required("purpose", purpose, 2000)?;
    let resource = match state.catalog.resource_by_code(id).await {
        Ok(resource) if policy::open::is_open(&resource) => resource,
        Ok(_) | Err(catalog::Error::NotFound { .. }) => return Err(dataset_not_found(id)),
        Err(other) => return Err(other.into()),
    };
    if resource.meta.open_type != exchange_core::OpenType::Conditional {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "not_conditional",
            "No application needed",
            format!("dataset {id} is open without conditions (无条件开放): download it directly"),
        ));
    }
    Ok(state
        .catalog
        .apply_for_dataset(resource.id, credential_id, &purpose)
        .await?)
}

/// `GET /api/v1/open-applications`: applications for the caller's department's datasets
/// (a provider's officer), or all of them (platform staff); a developer sees its own.
#[utoipa::path(
    get,
    path = "/api/v1/open-applications",
    tag = "open data",
    responses(
        (status = 200, description = "Applications, newest first", body = crate::openapi::Items<catalog::OpenApplication>),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn applications(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    let view = if caller.is_platform() {
        ApplicationView::All
    } else if caller.is(&[Role::OpenDataDeveloper]) {
        ApplicationView::Applicant(caller.0.id)
    } else {
        caller.require(&[Role::ProviderAdmin], "listing open-data applications")?;
        ApplicationView::Provider(caller.department()?)
    };
    let items = state.catalog.open_applications(view).await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

/// Body of `POST /api/v1/open-applications/{id}/decision`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationDecision {
    /// Approve (true) or reject (false).
    pub approve: bool,
    /// Why; required for a rejection.
    #[serde(default)]
    pub reason: Option<String>,
    /// When an approval ends (RFC 3339); default: never.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// Answers application `id` as `caller`: the dataset's provider or platform staff (the API's
/// and the console's).
pub(crate) async fn answer_application(
    state: &AppState,
    caller: &Caller,
    id: i64,
    approve: bool,
    reason: Option<&str>,
    expires_at: Option<&str>,
) -> Result<catalog::OpenApplication, Problem> {
    let application = state.catalog.open_application(id).await?;
    if !caller.is_platform() {
        caller.require(&[Role::ProviderAdmin], "answering an open-data application")?;
        let resource = state.catalog.resource_by_code(&application.dataset).await?;
        if Some(resource.provider_id) != caller.0.department_id {
            return Err(forbidden(format!(
                "application {} is for dataset {}, which another department provides",
                application.id, application.dataset
            )));
        }
    }
    let expires_at = match expires_at.map(str::trim) {
        None | Some("") => None,
        Some(raw) => {
            let at = chrono::DateTime::parse_from_rfc3339(raw)
                .ok()
                .map(|t| t.to_utc())
                .filter(|t| *t > chrono::Utc::now())
                .ok_or_else(|| {
                    Problem::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "validation_failed",
                        "Invalid input",
                        "expires_at: an RFC 3339 time in the future",
                    )
                    .with_field("expires_at")
                })?;
            Some(catalog::timestamp_text(at))
        }
    };
    Ok(state
        .catalog
        .decide_open_application(application.id, approve, reason, expires_at.as_deref(), &caller.actor())
        .await?)
}

/// `POST /api/v1/open-applications/{id}/decision`: the dataset's provider (or platform staff)
/// approves or rejects a pending application.
#[utoipa::path(
    post,
    path = "/api/v1/open-applications/{id}/decision",
    tag = "open data",
    params(("id" = i64, Path, description = "The application id")),
    request_body(content = ApplicationDecision),
    responses(
        (status = 200, description = "The application, answered", body = catalog::OpenApplication),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::StateConflict),
        (status = 422, description = "`validation_failed`: a rejection without a `reason`, or `expires_at` not an RFC 3339 time in the future", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn decide(
    req: HttpRequest,
    path: web::Path<i64>,
    state: web::Data<AppState>,
    body: web::Json<ApplicationDecision>,
) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    let answered = answer_application(
        &state,
        &caller,
        path.into_inner(),
        body.approve,
        body.reason.as_deref(),
        body.expires_at.as_deref(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(answered))
}
