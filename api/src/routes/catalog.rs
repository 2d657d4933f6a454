//! The catalog API: departments, resources and their lifecycle, grants, responsibility lists,
//! and the DCAT-AP export. Every write checks the caller's role and department.

use actix_web::{HttpRequest, HttpResponse, web};
use catalog::{
    NewDepartment, NewResponsibility, Resource, ResourceInput, ResourceQuery, ResourceStatus, ResponsibilityKind,
    Visibility,
};
use policy::Role;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{Caller, forbidden};
use crate::problem::Problem;
use crate::startup::AppState;

type Reply = Result<HttpResponse, Problem>;

/// `GET /api/v1/departments`.
#[utoipa::path(
    get,
    path = "/api/v1/departments",
    tag = "catalog",
    responses(
        (status = 200, description = "The list", body = crate::openapi::Items<catalog::Department>),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn list_departments(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    Caller::from_request(&req, &state).await?;
    Ok(HttpResponse::Ok().json(json!({"items": state.catalog.departments().await?})))
}

/// `POST /api/v1/departments` (platform admin): registers or updates a department.
#[utoipa::path(
    post,
    path = "/api/v1/departments",
    tag = "catalog",
    request_body(content = catalog::NewDepartment),
    responses(
        (status = 200, description = "The department as saved", body = catalog::Department),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::Invalid),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn save_department(req: HttpRequest, state: web::Data<AppState>, body: web::Json<NewDepartment>) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    caller.require(&[Role::PlatformAdmin], "registering a department")?;
    Ok(HttpResponse::Ok().json(state.catalog.save_department(&body).await?))
}

/// `GET /api/v1/resources`: filtered, paged, ranked by relevance when `q` is given.
/// Platform staff see every resource; others see published ones and their own department's.
#[utoipa::path(
    get,
    path = "/api/v1/resources",
    tag = "catalog",
    params(
        catalog::ResourceQuery,
    ),
    responses(
        (status = 200, description = "A page of resources, ranked by relevance when `q` is given", body = catalog::Page<catalog::ResourceSummary>),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 422, response = crate::openapi::Invalid),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn list_resources(req: HttpRequest, state: web::Data<AppState>, query: web::Query<ResourceQuery>) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    let visibility = if caller.is_platform() {
        Visibility::All
    } else {
        Visibility::PublishedOr(caller.0.department_id.unwrap_or(-1))
    };
    Ok(HttpResponse::Ok().json(state.catalog.search_resources(&query, visibility).await?))
}

/// A resource the caller may see: published, or their own department's, or anything for
/// platform staff. Others' unpublished resources are reported as absent.
async fn visible_resource(caller: &Caller, state: &AppState, code: &str) -> Result<Resource, Problem> {
    let resource = state
        .catalog
        .resource_by_code(code)
        .await
        .map_err(|e| Problem::from(e).with_field("code"))?;
    if resource.status == ResourceStatus::Published
        || caller.is_platform()
        || caller.0.department_id == Some(resource.provider_id)
    {
        Ok(resource)
    } else {
        Err(Problem::from(catalog::Error::NotFound {
            entity: "resource",
            key: code.to_string(),
        })
        .with_field("code"))
    }
}

/// Refuses unless the caller is platform admin or the provider's data officer.
fn require_provider(caller: &Caller, provider_id: i64, doing: &str) -> Result<(), Problem> {
    if caller.is(&[Role::PlatformAdmin])
        || (caller.is(&[Role::ProviderAdmin]) && caller.0.department_id == Some(provider_id))
    {
        Ok(())
    } else {
        Err(forbidden(format!(
            "{doing} is for the providing department's data officer or the platform admin"
        )))
    }
}

/// `GET /api/v1/resources/{code}`.
#[utoipa::path(
    get,
    path = "/api/v1/resources/{code}",
    tag = "catalog",
    params(
        ("code" = String, Path, description = "资源代码 The resource code, e.g. `1-01-001-000001`"),
    ),
    responses(
        (status = 200, description = "The resource with its data items (信息项)", body = catalog::Resource),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 404, response = crate::openapi::NotFound),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn get_resource(req: HttpRequest, state: web::Data<AppState>, code: web::Path<String>) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    Ok(HttpResponse::Ok().json(visible_resource(&caller, &state, &code).await?))
}

/// `POST /api/v1/resources`: registers a draft for the caller's department.
#[utoipa::path(
    post,
    path = "/api/v1/resources",
    tag = "catalog",
    request_body(content = catalog::ResourceInput),
    responses(
        (status = 201, description = "The draft, registered", body = catalog::Resource, headers(("Location" = String, description = "The resource's URL"))),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 409, response = crate::openapi::StateConflict),
        (status = 422, response = crate::openapi::Invalid),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn create_resource(req: HttpRequest, state: web::Data<AppState>, body: web::Json<ResourceInput>) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    caller.require(&[Role::ProviderAdmin, Role::PlatformAdmin], "registering a resource")?;
    if caller.is(&[Role::ProviderAdmin]) && caller.0.department_code.as_deref() != Some(body.provider_code.as_str()) {
        return Err(forbidden(format!(
            "a data officer registers resources of their own department ({}), not {}",
            caller.0.department_code.as_deref().unwrap_or("none"),
            body.provider_code
        ))
        .with_field("provider_code"));
    }
    let resource = state.catalog.create_resource(&caller.actor(), &body).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/resources/{}", resource.code)))
        .json(resource))
}

/// `PUT /api/v1/resources/{code}`: replaces a draft's or published resource's metadata.
#[utoipa::path(
    put,
    path = "/api/v1/resources/{code}",
    tag = "catalog",
    params(
        ("code" = String, Path, description = "资源代码 The resource code, e.g. `1-01-001-000001`"),
    ),
    request_body(content = catalog::ResourceInput),
    responses(
        (status = 200, description = "The resource as changed", body = catalog::Resource),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::StateConflict),
        (status = 422, response = crate::openapi::Invalid),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn update_resource(
    req: HttpRequest,
    state: web::Data<AppState>,
    code: web::Path<String>,
    body: web::Json<ResourceInput>,
) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    let current = visible_resource(&caller, &state, &code).await?;
    require_provider(&caller, current.provider_id, "changing a resource")?;
    Ok(HttpResponse::Ok().json(state.catalog.update_resource(&caller.actor(), &code, &body).await?))
}

/// The body of lifecycle actions.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// The reviewer's or actor's comment.
    #[serde(default)]
    pub comment: Option<String>,
}

/// `POST /api/v1/resources/{code}/{action}` for submit, publish, return and retire.
#[utoipa::path(
    post,
    path = "/api/v1/resources/{code}/{action}",
    tag = "catalog",
    params(
        ("code" = String, Path, description = "资源代码 The resource code, e.g. `1-01-001-000001`"),
        ("action" = String, Path, description = "`submit` (提交审核), `publish` (发布), `return` (退回; `comment` required) or `retire` (下线)", pattern = "^(submit|publish|return|retire)$"),
    ),
    request_body(content = Option<ActionBody>, description = "The reviewer's or actor's comment (optional except for `return`)"),
    responses(
        (status = 200, description = "The resource in its new status", body = catalog::Resource),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, description = "`not_found`: no such resource (or not visible); `no_such_endpoint`: an action other than the four", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, response = crate::openapi::StateConflict),
        (status = 422, response = crate::openapi::Invalid),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn resource_action(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: Option<web::Json<ActionBody>>,
) -> Reply {
    let (code, action) = path.into_inner();
    let caller = Caller::from_request(&req, &state).await?;
    if matches!(action.as_str(), "publish" | "return") {
        // The role decides before anything about the resource is revealed.
        caller.require(&[Role::Reviewer, Role::PlatformAdmin], "reviewing a resource")?;
    }
    let current = visible_resource(&caller, &state, &code).await?;
    match action.as_str() {
        "submit" => require_provider(&caller, current.provider_id, "submitting a resource for review")?,
        "publish" | "return" => {}
        "retire" => {
            if !caller.is_platform() {
                require_provider(&caller, current.provider_id, "retiring a resource")?;
            }
        }
        other => {
            return Err(Problem::no_route(&format!("/api/v1/resources/{code}/{other}")));
        }
    }
    let comment = body.and_then(|b| b.into_inner().comment);
    Ok(HttpResponse::Ok().json(
        state
            .catalog
            .transition(&caller.actor(), &code, &action, comment.as_deref())
            .await?,
    ))
}

/// `GET /api/v1/resources/{code}/history`.
#[utoipa::path(
    get,
    path = "/api/v1/resources/{code}/history",
    tag = "catalog",
    params(
        ("code" = String, Path, description = "资源代码 The resource code, e.g. `1-01-001-000001`"),
    ),
    responses(
        (status = 200, description = "The list", body = crate::openapi::Items<catalog::HistoryEntry>),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 404, response = crate::openapi::NotFound),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn resource_history(req: HttpRequest, state: web::Data<AppState>, code: web::Path<String>) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    visible_resource(&caller, &state, &code).await?;
    Ok(HttpResponse::Ok().json(json!({"items": state.catalog.resource_history(&code).await?})))
}

/// `GET /api/v1/grants`: platform staff see all; a department the grants it holds or gave.
#[utoipa::path(
    get,
    path = "/api/v1/grants",
    tag = "catalog",
    responses(
        (status = 200, description = "The list", body = crate::openapi::Items<crate::openapi::GrantView>),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn list_grants(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    let department = if caller.is_platform() {
        None
    } else {
        Some(caller.department()?)
    };
    let grants: Vec<serde_json::Value> = state
        .catalog
        .grants(department)
        .await?
        .into_iter()
        .map(|g| {
            let state = g.state();
            let mut value = serde_json::to_value(g).unwrap_or_default();
            value["state"] = state.into();
            value
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"items": grants})))
}

/// Query of `GET /api/v1/responsibilities`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ResponsibilityQuery {
    /// `share` or `open`.
    #[serde(default)]
    pub kind: Option<ResponsibilityKind>,
}

/// `GET /api/v1/responsibilities?kind=share|open`.
#[utoipa::path(
    get,
    path = "/api/v1/responsibilities",
    tag = "catalog",
    params(
        ResponsibilityQuery,
    ),
    responses(
        (status = 200, description = "The list", body = crate::openapi::Items<catalog::Responsibility>),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 422, response = crate::openapi::Invalid),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn list_responsibilities(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ResponsibilityQuery>,
) -> Reply {
    Caller::from_request(&req, &state).await?;
    Ok(HttpResponse::Ok().json(json!({"items": state.catalog.responsibilities(query.kind).await?})))
}

/// `POST /api/v1/responsibilities` (platform admin).
#[utoipa::path(
    post,
    path = "/api/v1/responsibilities",
    tag = "catalog",
    request_body(content = catalog::NewResponsibility),
    responses(
        (status = 201, description = "The duty, with its derived status", body = catalog::Responsibility),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::Invalid),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn create_responsibility(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<NewResponsibility>,
) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    caller.require(&[Role::PlatformAdmin], "setting a responsibility")?;
    Ok(HttpResponse::Created().json(state.catalog.create_responsibility(&body).await?))
}

/// `GET /api/v1/catalog.jsonld`: the published catalog as DCAT-AP JSON-LD, for harvesting by
/// an upper-level platform. No data items' values, only metadata; no key needed.
#[utoipa::path(
    get,
    path = "/api/v1/catalog.jsonld",
    tag = "catalog",
    security(()),
    responses(
        (status = 200, description = "The published catalog as DCAT-AP JSON-LD (metadata only)", body = Object, content_type = "application/ld+json"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn dcat(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    let base = format!("{}://{}", req.connection_info().scheme(), req.connection_info().host());
    let resources = state.catalog.resources().await?;
    let datasets: Vec<serde_json::Value> = resources
        .iter()
        .filter(|r| r.status == ResourceStatus::Published)
        .map(|r| {
            let m = &r.meta;
            json!({
                "@id": format!("{base}/api/v1/resources/{}", r.code),
                "@type": "dcat:Dataset",
                "dct:identifier": r.code,
                "dct:title": {"@value": m.name, "@language": "zh"},
                "dct:description": {"@value": m.summary, "@language": "zh"},
                "dct:publisher": {"@type": "foaf:Organization", "foaf:name": r.provider_name, "dct:identifier": m.provider_code},
                "dct:issued": m.publish_date.map(|d| d.to_string()),
                "dct:modified": r.updated_at,
                "dct:accrualPeriodicity": m.update_cycle.code(),
                "dcat:theme": m.classification.label_zh(),
                "dct:accessRights": m.share_type.label_zh(),
                "huitong:openType": m.open_type.label_zh(),
                "huitong:classCode": m.class_code,
                "dct:relation": m.related_codes.iter().map(|c| format!("{base}/api/v1/resources/{c}")).collect::<Vec<_>>(),
                "dcat:keyword": m.items.iter().map(|i| i.label_zh.clone()).collect::<Vec<_>>(),
                "dcat:distribution": [{
                    "@type": "dcat:Distribution",
                    "dcat:accessURL": format!("{base}/api/v1/exchange/{}", r.code),
                    "dct:format": m.format,
                    "huitong:shareMethod": m.share_method.label_zh(),
                }],
            })
        })
        .collect();
    Ok(HttpResponse::Ok().content_type("application/ld+json").json(json!({
        "@context": {
            "dcat": "http://www.w3.org/ns/dcat#",
            "dct": "http://purl.org/dc/terms/",
            "foaf": "http://xmlns.com/foaf/0.1/",
            "huitong": format!("{base}/ns#"),
        },
        "@id": format!("{base}/api/v1/catalog.jsonld"),
        "@type": "dcat:Catalog",
        "dct:title": {"@value": "政务信息资源目录", "@language": "zh"},
        "dcat:dataset": datasets,
    })))
}
