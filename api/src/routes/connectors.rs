//! Connectors and their runs, `/api/v1/connectors/…`: configuration (secrets appear only as
//! references: an environment variable or file name), run history with counts and errors,
//! quarantined rows, and manual runs.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use catalog::{Connector, NewConnector};
use connectors::ConnectorConfig;
use exchange_core::LibrarySchema;
use policy::Role;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Caller, forbidden};
use crate::problem::Problem;
use crate::startup::AppState;
use crate::sync::StartError;

type Reply = Result<HttpResponse, Problem>;

/// Who may see and run a connector: the platform admin, and the data officer of its department.
fn require_owner(caller: &Caller, connector_department: i64, doing: &str) -> Result<(), Problem> {
    if caller.is(&[Role::PlatformAdmin])
        || (caller.is(&[Role::ProviderAdmin]) && caller.0.department_id == Some(connector_department))
    {
        Ok(())
    } else {
        Err(forbidden(format!(
            "{doing} is for the platform admin or the data officer of the connector's department"
        )))
    }
}

/// `{id}` is a connector's numeric id or its name.
async fn find(state: &AppState, id: &str) -> Result<Connector, Problem> {
    let found = match id.parse::<i64>() {
        Ok(n) => state.catalog.connector_by_id(n).await,
        Err(_) => state.catalog.connector_by_name(id).await,
    };
    found.map_err(|e| match e {
        catalog::Error::NotFound { .. } => Problem::new(
            StatusCode::NOT_FOUND,
            "connector_not_found",
            "No such connector",
            format!("no connector has the id or name {id:?}"),
        )
        .with_field("id"),
        other => other.into(),
    })
}

async fn view(state: &AppState, c: &Connector) -> Result<Value, Problem> {
    let config = ConnectorConfig::from_json(&c.config).ok();
    let last_run = state.catalog.runs(c.id, 1).await?.into_iter().next();
    let next_run_at = state.sync.next_due(c, last_run.as_ref()).await?;
    Ok(json!({
        "id": c.id,
        "name": c.name,
        "kind": c.kind,
        "department_code": c.department_code,
        "resource_code": c.resource_code,
        "mode": config.as_ref().map(|c| c.mode),
        "schedule": config.as_ref().map(|c| c.schedule),
        "config": c.config,
        "running": state.sync.is_running(c.id),
        "next_run_at": next_run_at,
        "last_run": last_run,
    }))
}

/// `GET /api/v1/connectors`: the platform admin sees every connector, a department's data
/// officer its department's.
#[utoipa::path(
    get,
    path = "/api/v1/connectors",
    tag = "connectors",
    responses(
        (status = 200, description = "The list", body = crate::openapi::Items<crate::openapi::ConnectorView>),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    caller.require(&[Role::PlatformAdmin, Role::ProviderAdmin], "listing connectors")?;
    let mut items = Vec::new();
    for c in state.catalog.connectors().await? {
        if caller.is(&[Role::PlatformAdmin]) || caller.0.department_id == Some(c.department_id) {
            items.push(view(&state, &c).await?);
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

/// `GET /api/v1/connectors/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/connectors/{id}",
    tag = "connectors",
    params(
        ("id" = String, Path, description = "The connector's numeric id or its name"),
    ),
    responses(
        (status = 200, description = "The connector", body = crate::openapi::ConnectorView),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, description = "`connector_not_found` (`field: id`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn get(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    let connector = find(&state, &id).await?;
    require_owner(&caller, connector.department_id, "reading a connector")?;
    Ok(HttpResponse::Ok().json(view(&state, &connector).await?))
}

/// Body of `POST /api/v1/connectors`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveConnector {
    /// Unique name (letters, digits, `-`, `_`).
    pub name: String,
    /// The department whose source it reads.
    pub department_code: String,
    /// The resource (and so the library) it feeds.
    pub resource_code: String,
    /// The configuration: source, mapping, mode, schedule (see docs/connectors.md).
    pub config: Value,
}

/// `POST /api/v1/connectors`: creates a connector, or replaces the configuration of the one
/// with this name. The configuration is checked whole against its source kind and the
/// library's fields; nothing is saved unless it is valid.
#[utoipa::path(
    post,
    path = "/api/v1/connectors",
    tag = "connectors",
    request_body(content = SaveConnector),
    responses(
        (status = 200, description = "The connector as saved", body = crate::openapi::ConnectorView),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, description = "`validation_failed` naming the field (`name`, `department_code`, `resource_code`, `config.source.url`, `config.mapping.x`, …), or `invalid_body`", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn save(req: HttpRequest, state: web::Data<AppState>, body: web::Json<SaveConnector>) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    let body = body.into_inner();
    let department = state
        .catalog
        .department_by_code(&body.department_code)
        .await
        .map_err(|e| match e {
            catalog::Error::NotFound { .. } => invalid(
                "department_code",
                format!("no department has the code {}", body.department_code),
            ),
            other => other.into(),
        })?;
    require_owner(&caller, department.id, "configuring a connector")?;
    if body.name.is_empty()
        || !body
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid("name", "use letters, digits, - and _".into()));
    }
    let resource = state
        .catalog
        .resource_by_code(&body.resource_code)
        .await
        .map_err(|e| match e {
            catalog::Error::NotFound { .. } => invalid(
                "resource_code",
                format!("no resource has the code {}", body.resource_code),
            ),
            other => other.into(),
        })?;
    let schema = resource
        .meta
        .library
        .as_deref()
        .and_then(|name| LibrarySchema::by_name(name).ok())
        .ok_or_else(|| {
            invalid(
                "resource_code",
                format!("resource {} is not served from a library", resource.code),
            )
        })?;
    let config = ConnectorConfig::from_json(&body.config)
        .and_then(|c| c.validate(schema).map(|()| c))
        .map_err(|e| match e {
            connectors::Error::Config { field, message } => {
                let field = if field == "config" {
                    field
                } else {
                    format!("config.{field}")
                };
                invalid(&field, message)
            }
            other => invalid("config", other.to_string()),
        })?;
    let saved = state
        .catalog
        .upsert_connector(&NewConnector {
            name: body.name,
            kind: config.source.kind().to_string(),
            department_code: body.department_code,
            resource_code: body.resource_code,
            config: body.config,
        })
        .await?;
    Ok(HttpResponse::Ok().json(view(&state, &saved).await?))
}

/// 422 `validation_failed` naming `field`, as every catalog rule answers.
fn invalid(field: &str, message: String) -> Problem {
    catalog::Error::Invalid {
        field: field.to_string(),
        message,
    }
    .into()
}

/// Query of `GET /api/v1/connectors/{id}/runs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Newest first, at most this many (1–500, default 50).
    #[serde(default = "default_limit")]
    pub limit: i64,
}

fn default_limit() -> i64 {
    50
}

/// `GET /api/v1/connectors/{id}/runs`: run history, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/connectors/{id}/runs",
    tag = "connectors",
    params(
        ("id" = String, Path, description = "The connector's numeric id or its name"),
        RunsQuery,
    ),
    responses(
        (status = 200, description = "Run history, newest first", body = crate::openapi::RunsAnswer),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, description = "`connector_not_found` (`field: id`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, response = crate::openapi::Invalid),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn runs(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<RunsQuery>,
) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    let connector = find(&state, &id).await?;
    require_owner(&caller, connector.department_id, "reading run history")?;
    if !(1..=500).contains(&query.limit) {
        return Err(Problem::invalid_query("limit", "limit: between 1 and 500"));
    }
    let runs = state.catalog.runs(connector.id, query.limit).await?;
    Ok(HttpResponse::Ok().json(json!({ "connector": connector.name, "items": runs })))
}

/// `GET /api/v1/connectors/{id}/runs/{run}`.
#[utoipa::path(
    get,
    path = "/api/v1/connectors/{id}/runs/{run}",
    tag = "connectors",
    params(
        ("id" = String, Path, description = "The connector's numeric id or its name"),
        ("run" = i64, Path, description = "The run's id"),
    ),
    responses(
        (status = 200, description = "The run, with its counts and error", body = catalog::SyncRun),
        (status = 400, response = crate::openapi::BadPath),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, description = "`connector_not_found` (`field: id`) or `run_not_found` (`field: run`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn run(req: HttpRequest, state: web::Data<AppState>, path: web::Path<(String, i64)>) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    let (id, run_id) = path.into_inner();
    let connector = find(&state, &id).await?;
    require_owner(&caller, connector.department_id, "reading a run")?;
    let run = run_of(&state, &connector, run_id).await?;
    Ok(HttpResponse::Ok().json(run))
}

async fn run_of(state: &AppState, connector: &Connector, run_id: i64) -> Result<catalog::SyncRun, Problem> {
    match state.catalog.run_by_id(run_id).await {
        Ok(run) if run.connector_id == connector.id => Ok(run),
        Ok(_) | Err(catalog::Error::NotFound { .. }) => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "run_not_found",
            "No such run",
            format!("connector {} has no run {run_id}", connector.name),
        )
        .with_field("run")),
        Err(e) => Err(e.into()),
    }
}

/// `GET /api/v1/connectors/{id}/runs/{run}/quarantine`: the rows the run rejected, with
/// their position in the source, the field and the reason.
#[utoipa::path(
    get,
    path = "/api/v1/connectors/{id}/runs/{run}/quarantine",
    tag = "connectors",
    params(
        ("id" = String, Path, description = "The connector's numeric id or its name"),
        ("run" = i64, Path, description = "The run's id"),
    ),
    responses(
        (status = 200, description = "The rows the run rejected (隔离), with position, field and reason", body = crate::openapi::QuarantineAnswer),
        (status = 400, response = crate::openapi::BadPath),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, description = "`connector_not_found` (`field: id`) or `run_not_found` (`field: run`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn quarantine(req: HttpRequest, state: web::Data<AppState>, path: web::Path<(String, i64)>) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    let (id, run_id) = path.into_inner();
    let connector = find(&state, &id).await?;
    require_owner(&caller, connector.department_id, "reading quarantined rows")?;
    let run = run_of(&state, &connector, run_id).await?;
    let rows = state.catalog.quarantined(run.id).await?;
    Ok(HttpResponse::Ok().json(json!({ "run": run.id, "items": rows })))
}

/// `POST /api/v1/connectors/{id}/runs`: starts a run now; 202 with the run (status `running`)
/// and its `Location`; 409 when one is already under way.
#[utoipa::path(
    post,
    path = "/api/v1/connectors/{id}/runs",
    tag = "connectors",
    params(
        ("id" = String, Path, description = "The connector's numeric id or its name"),
    ),
    responses(
        (status = 202, description = "The run, started (status `running`)", body = catalog::SyncRun, headers(("Location" = String, description = "The run's URL"))),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, description = "`connector_not_found` (`field: id`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`run_in_progress`: a run is under way; `resource_not_served`: the resource has no library", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn start(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    let connector = find(&state, &id).await?;
    require_owner(&caller, connector.department_id, "running a connector")?;
    let connector_id = connector.id;
    match state.sync.start(connector, "manual").await {
        Ok(run) => Ok(HttpResponse::Accepted()
            .insert_header((
                actix_web::http::header::LOCATION,
                format!("/api/v1/connectors/{connector_id}/runs/{}", run.id),
            ))
            .json(run)),
        Err(StartError::AlreadyRunning(name)) => Err(Problem::new(
            StatusCode::CONFLICT,
            "run_in_progress",
            "A run is under way",
            format!("connector {name} already has a run under way; wait for it to end"),
        )),
        Err(StartError::NoLibrary(why)) => Err(Problem::new(
            StatusCode::CONFLICT,
            "resource_not_served",
            "Resource not served",
            why,
        )),
        Err(StartError::Catalog(e)) => Err(e.into()),
    }
}
