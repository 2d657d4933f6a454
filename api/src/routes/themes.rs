//! Themed libraries (主题库), `/api/v1/themes/…`: declare a theme as SQL over libraries, list
//! and read themes with their materialization history, materialize by hand. A declared
//! theme's library is then catalogued as a resource (`library` = the theme's name) and served
//! by the exchange API like any other.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use catalog::Theme;
use policy::Role;
use serde_json::{Value, json};

use crate::auth::{Caller, forbidden};
use crate::problem::Problem;
use crate::startup::AppState;
use crate::themes::{HISTORY_SHOWN, ThemeDeclaration, ThemeError};

type Reply = Result<HttpResponse, Problem>;

impl From<ThemeError> for Problem {
    fn from(e: ThemeError) -> Self {
        match e {
            ThemeError::Invalid { field, message } => catalog::Error::Invalid {
                field: field.to_string(),
                message,
            }
            .into(),
            ThemeError::Exists(name) => Problem::new(
                StatusCode::CONFLICT,
                "conflict",
                "Already exists",
                format!("a theme named {name} is already declared"),
            )
            .with_field("name"),
            ThemeError::NotFound(name) => not_found(&name),
            ThemeError::Catalog(e) => e.into(),
            other => Problem::internal(&other),
        }
    }
}

fn not_found(name: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "theme_not_found",
        "No such theme",
        format!("no theme is named {name:?}"),
    )
    .with_field("name")
}

async fn find(state: &AppState, name: &str) -> Result<Theme, Problem> {
    state.catalog.theme_by_name(name).await.map_err(|e| match e {
        catalog::Error::NotFound { .. } => not_found(name),
        other => other.into(),
    })
}

/// A theme with its library's served version and record count.
fn view(state: &AppState, theme: &Theme) -> Value {
    let library = state.libraries.get(&theme.name);
    let mut value = serde_json::to_value(theme).unwrap_or(Value::Null);
    value["library"] = json!({
        "version": library.as_ref().and_then(|l| l.version().ok()),
        "records": library.as_ref().and_then(|l| l.len().ok()),
    });
    value
}

/// `POST /api/v1/themes`: declares a theme (platform admin). The SQL must be one query that
/// plans over the current libraries; its output columns exactly the declared fields, the key
/// among them. The theme's rows carry the caller's department as their source. Declaring does
/// not materialize: `POST /api/v1/themes/{name}/materializations` does, as do its refreshes.
#[utoipa::path(
    post,
    path = "/api/v1/themes",
    tag = "themes",
    request_body(content = ThemeDeclaration),
    responses(
        (status = 201, description = "Declared; its library is open and empty", body = crate::openapi::ThemeView),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 409, description = "`conflict` (`field: name`): a theme of this name exists", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` naming `name` (not snake_case, or a base library's), `sql` (not one query, an unknown table or column, a type error), `fields` (not exactly the SQL's output columns, a duplicate, a column without a text form), `key` or `refresh`; or `invalid_body`", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn declare(req: HttpRequest, state: web::Data<AppState>, body: web::Json<ThemeDeclaration>) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    caller.require(&[Role::PlatformAdmin], "declaring a theme")?;
    let department = caller
        .0
        .department_id
        .ok_or_else(|| forbidden("a theme's rows carry a department as their source; this key acts for none".into()))?;
    let department = state.catalog.department(department).await?;
    let theme = state.themes.declare(&body, &department.code).await?;
    Ok(HttpResponse::Created().json(view(&state, &theme)))
}

/// `GET /api/v1/themes`: every theme (any authenticated caller).
#[utoipa::path(
    get,
    path = "/api/v1/themes",
    tag = "themes",
    responses(
        (status = 200, description = "The themes by name", body = crate::openapi::Items<crate::openapi::ThemeView>),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    Caller::from_request(&req, &state).await?;
    let items: Vec<Value> = state.catalog.themes().await?.iter().map(|t| view(&state, t)).collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

/// `GET /api/v1/themes/{name}`: a theme with its latest materializations, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/themes/{name}",
    tag = "themes",
    params(("name" = String, Path, description = "The theme's (library) name")),
    responses(
        (status = 200, description = "The theme and its materialization history", body = crate::openapi::ThemeView),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 404, description = "`theme_not_found` (`field: name`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn get(req: HttpRequest, state: web::Data<AppState>, name: web::Path<String>) -> Reply {
    Caller::from_request(&req, &state).await?;
    let theme = find(&state, &name).await?;
    let mut value = view(&state, &theme);
    value["materializations"] =
        serde_json::to_value(state.catalog.materializations(theme.id, HISTORY_SHOWN).await?).unwrap_or(Value::Null);
    Ok(HttpResponse::Ok().json(value))
}

/// `POST /api/v1/themes/{name}/materializations`: materializes the theme now (platform admin),
/// after any materialization of it under way, and answers when done. A materialization that
/// fails (an input gone, a query error) is recorded and returned with status `failed` and the
/// error; nothing of it is committed.
#[utoipa::path(
    post,
    path = "/api/v1/themes/{name}/materializations",
    tag = "themes",
    params(("name" = String, Path, description = "The theme's (library) name")),
    responses(
        (status = 201, description = "The materialization as recorded: `succeeded` with its counts and the theme library's version, or `failed` with the error", body = catalog::Materialization),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, description = "`theme_not_found` (`field: name`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn materialize(req: HttpRequest, state: web::Data<AppState>, name: web::Path<String>) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    caller.require(&[Role::PlatformAdmin], "materializing a theme")?;
    // On the server's runtime: this worker goes on serving while the theme's query runs.
    let done = state.themes.materialize_elsewhere(&name, "manual").await?;
    Ok(HttpResponse::Created().json(done))
}
