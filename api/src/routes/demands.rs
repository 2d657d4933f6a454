//! The demand API (供需对接): raise, list, answer, object, arbitrate.

use actix_web::{HttpRequest, HttpResponse, web};
use catalog::{DemandDecision, DemandView, NewDemand};
use policy::Role;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{Caller, forbidden};
use crate::problem::Problem;
use crate::startup::AppState;

type Reply = Result<HttpResponse, Problem>;

/// `POST /api/v1/demands`: raised for the caller's department.
#[utoipa::path(
    post,
    path = "/api/v1/demands",
    tag = "demands",
    request_body(content = catalog::NewDemand),
    responses(
        (status = 201, description = "The demand, pending, with its due time", body = catalog::Demand, headers(("Location" = String, description = "The demand's URL"))),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::Invalid),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn create(req: HttpRequest, state: web::Data<AppState>, body: web::Json<NewDemand>) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    caller.require(&[Role::Consumer, Role::ProviderAdmin], "raising a demand")?;
    let department = caller.department()?;
    let demand = state
        .catalog
        .create_demand(department, &body, state.demand_deadline_working_days)
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/demands/{}", demand.id)))
        .json(demand))
}

/// Query of `GET /api/v1/demands`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `mine` (raised by my department), `incoming` (for it to answer), `overdue`, or `all`
    /// (platform staff). Default: `mine`.
    #[serde(default)]
    pub view: Option<String>,
}

/// `GET /api/v1/demands?view=mine|incoming|overdue|all`.
#[utoipa::path(
    get,
    path = "/api/v1/demands",
    tag = "demands",
    params(
        ListQuery,
    ),
    responses(
        (status = 200, description = "The list", body = crate::openapi::Items<catalog::Demand>),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::Invalid),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn list(req: HttpRequest, state: web::Data<AppState>, query: web::Query<ListQuery>) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    let view = match query.view.as_deref().unwrap_or("mine") {
        "mine" => DemandView::Mine(caller.department()?),
        "incoming" => DemandView::Incoming(caller.department()?),
        "overdue" if caller.is_platform() => DemandView::Overdue(None),
        "overdue" => DemandView::Overdue(Some(caller.department()?)),
        "all" if caller.is_platform() => DemandView::All,
        "all" => return Err(forbidden("view=all is for platform staff".into()).with_field("view")),
        other => {
            return Err(crate::problem::bad_request_body(
                "invalid_query",
                format!("view `{other}` is not one of mine, incoming, overdue, all"),
            )
            .with_field("view"));
        }
    };
    Ok(HttpResponse::Ok().json(json!({"items": state.catalog.demands(view).await?})))
}

/// `GET /api/v1/demands/{id}`: for the two departments and platform staff.
#[utoipa::path(
    get,
    path = "/api/v1/demands/{id}",
    tag = "demands",
    params(
        ("id" = i64, Path, description = "The demand's id"),
    ),
    responses(
        (status = 200, description = "The demand", body = catalog::Demand),
        (status = 400, response = crate::openapi::BadPath),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn get(req: HttpRequest, state: web::Data<AppState>, id: web::Path<i64>) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    let demand = state.catalog.demand(*id).await?;
    if !caller.is_platform() && !state.catalog.demand_involves(*id, caller.department()?).await? {
        return Err(forbidden(format!("demand {id} is between other departments")));
    }
    Ok(HttpResponse::Ok().json(demand))
}

/// `POST /api/v1/demands/{id}/decision`: the responsible department's data officer answers.
#[utoipa::path(
    post,
    path = "/api/v1/demands/{id}/decision",
    tag = "demands",
    params(
        ("id" = i64, Path, description = "The demand's id"),
    ),
    request_body(content = catalog::DemandDecision),
    responses(
        (status = 200, description = "The demand, answered; an approval created its grant (授权)", body = catalog::Demand),
        (status = 400, response = crate::openapi::BadPath),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::StateConflict),
        (status = 422, response = crate::openapi::Invalid),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn decide(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<DemandDecision>,
) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    caller.require(&[Role::ProviderAdmin], "answering a demand")?;
    check_row_filter(&state, *id, &body).await?;
    Ok(HttpResponse::Ok().json(state.catalog.decide_demand(*id, caller.department()?, &body).await?))
}

/// Body of an objection.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Objection {
    /// Why the consumer disputes the answer.
    pub reason: String,
}

/// `POST /api/v1/demands/{id}/objection`: the consumer department disputes the answer.
#[utoipa::path(
    post,
    path = "/api/v1/demands/{id}/objection",
    tag = "demands",
    params(
        ("id" = i64, Path, description = "The demand's id"),
    ),
    request_body(content = Objection),
    responses(
        (status = 200, description = "The demand, objected (异议)", body = catalog::Demand),
        (status = 400, response = crate::openapi::BadPath),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::StateConflict),
        (status = 422, response = crate::openapi::Invalid),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn object(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<Objection>,
) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    caller.require(&[Role::Consumer, Role::ProviderAdmin], "objecting to an answer")?;
    Ok(HttpResponse::Ok().json(
        state
            .catalog
            .object_demand(*id, caller.department()?, &body.reason)
            .await?,
    ))
}

/// `POST /api/v1/demands/{id}/arbitration`: platform staff decide, finally.
#[utoipa::path(
    post,
    path = "/api/v1/demands/{id}/arbitration",
    tag = "demands",
    params(
        ("id" = i64, Path, description = "The demand's id"),
    ),
    request_body(content = catalog::DemandDecision),
    responses(
        (status = 200, description = "The demand, arbitrated (仲裁): final", body = catalog::Demand),
        (status = 400, response = crate::openapi::BadPath),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::StateConflict),
        (status = 422, response = crate::openapi::Invalid),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn arbitrate(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<DemandDecision>,
) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    caller.require(&[Role::PlatformAdmin, Role::Reviewer], "arbitrating a demand")?;
    check_row_filter(&state, *id, &body).await?;
    Ok(HttpResponse::Ok().json(state.catalog.arbitrate_demand(*id, &body).await?))
}

/// An approval's row filter must compile over the granted resource's data items (its library's
/// fields when it is served from one): a bad filter is a 422 naming `row_filter`, before any
/// grant exists.
async fn check_row_filter(state: &AppState, id: i64, decision: &DemandDecision) -> Result<(), Problem> {
    let DemandDecision::Approve {
        resource_code,
        row_filter: Some(row_filter),
        ..
    } = decision
    else {
        return Ok(());
    };
    let code = match resource_code {
        Some(code) => code.clone(),
        None => match state.catalog.demand(id).await?.resource_code {
            Some(code) => code,
            // The catalog refuses an approval that names no resource.
            None => return Ok(()),
        },
    };
    let resource = match state.catalog.resource_by_code(&code).await {
        Ok(resource) => resource,
        // The catalog says what is wrong with the resource.
        Err(catalog::Error::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let library = resource
        .meta
        .library
        .as_deref()
        .and_then(|name| exchange_core::LibrarySchema::by_name(name).ok());
    let columns: Vec<&str> = match library {
        Some(schema) => schema.fields.iter().map(|f| f.name).collect(),
        None => resource.meta.items.iter().map(|i| i.name.as_str()).collect(),
    };
    crate::query::check_grant_filter(&columns, row_filter)
}
