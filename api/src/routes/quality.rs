//! Data quality reports (数据质量), `/api/v1/quality/…`: the latest report of every library
//! and resource, ranked; one library's or resource's latest report with its trend; and scoring
//! on demand. Reports are computed after every committed run (see [`crate::quality`]).

use std::collections::{BTreeMap, HashMap};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use catalog::{QualityScope, Resource, ResourceStatus};
use policy::Role;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::Caller;
use crate::problem::Problem;
use crate::quality::rules::DIMENSIONS;
use crate::quality::{EvaluationError, Report};
use crate::startup::AppState;

type Reply = Result<HttpResponse, Problem>;

/// One row of the ranking: a library's or resource's latest scores.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Ranked {
    /// 1 for the best overall score.
    pub rank: usize,
    /// `library` or `resource`.
    #[schema(value_type = String, example = "library")]
    pub scope: QualityScope,
    /// The library name or the resource code.
    pub name: String,
    /// Its Chinese name.
    pub label_zh: String,
    /// The library scored.
    pub library: String,
    /// When the report was computed.
    pub computed_at: String,
    /// The library version scored.
    pub library_version: Option<i64>,
    /// The overall score, 0–100.
    pub overall: f64,
    /// Each dimension's score (absent: not measured), by dimension code.
    #[schema(value_type = Object)]
    pub scores: BTreeMap<&'static str, Option<f64>>,
}

/// One point of a trend.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TrendPoint {
    /// When the report was computed.
    pub computed_at: String,
    /// The library version scored.
    pub library_version: Option<i64>,
    /// The overall score.
    pub overall: f64,
    /// Each dimension's score, by dimension code.
    #[schema(value_type = Object)]
    pub scores: BTreeMap<&'static str, Option<f64>>,
}

/// A library's or resource's latest report and its trend.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QualityDetail {
    /// The latest report, with rules and per-field figures.
    pub report: Report,
    /// The last reports' scores, oldest first (the latest is the last point).
    pub trend: Vec<TrendPoint>,
}

/// The ranking's answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Ranking {
    /// Best first.
    pub items: Vec<Ranked>,
}

fn scores(report: &Report) -> BTreeMap<&'static str, Option<f64>> {
    DIMENSIONS.iter().map(|d| (d.code(), report.score(*d))).collect()
}

/// Whether the caller may see a resource's report: as its catalog entry (published, or the
/// caller's department's, or platform staff).
fn may_see(caller: &Caller, resource: &Resource) -> bool {
    resource.status == ResourceStatus::Published
        || caller.is_platform()
        || caller.0.department_id == Some(resource.provider_id)
}

/// The latest report of every library and every resource the caller may see, best first.
pub(crate) async fn ranking(state: &AppState, caller: &Caller) -> Result<Vec<Ranked>, Problem> {
    let resources: HashMap<String, Resource> = state
        .catalog
        .resources()
        .await?
        .into_iter()
        .map(|r| (r.code.clone(), r))
        .collect();
    let mut items: Vec<Ranked> = Vec::new();
    for stored in state.catalog.latest_quality_reports().await? {
        if stored.scope == QualityScope::Resource && !resources.get(&stored.name).is_some_and(|r| may_see(caller, r)) {
            continue;
        }
        let report = Report::from_stored(&stored);
        items.push(Ranked {
            rank: 0,
            scores: scores(&report),
            scope: report.scope,
            name: report.name,
            label_zh: report.label_zh,
            library: report.library,
            computed_at: report.computed_at,
            library_version: report.library_version,
            overall: report.overall,
        });
    }
    items.sort_by(|a, b| {
        b.overall
            .total_cmp(&a.overall)
            .then(a.scope.code().cmp(b.scope.code()))
            .then(a.name.cmp(&b.name))
    });
    for (i, item) in items.iter_mut().enumerate() {
        item.rank = i + 1;
    }
    Ok(items)
}

/// Query of the per-library and per-resource reports.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TrendQuery {
    /// Points of the trend: the last this many reports (1–365, default 30).
    #[serde(default = "default_trend")]
    pub trend: i64,
    /// The console page's language: `zh` (default) or `en`. The JSON ignores it.
    #[serde(default)]
    pub lang: Option<String>,
}

fn default_trend() -> i64 {
    30
}

fn check_trend(trend: i64) -> Result<i64, Problem> {
    if (1..=365).contains(&trend) {
        Ok(trend)
    } else {
        Err(Problem::invalid_query(
            "trend",
            format!("trend: 1 to 365 reports, not {trend}"),
        ))
    }
}

/// What a quality page or answer is about.
pub(crate) enum Subject {
    /// A library by name.
    Library(&'static str),
    /// A resource by code.
    Resource(String),
}

/// The library named `name` (base or themed), or 404 `library_not_found` naming `field`.
pub(crate) fn library_subject(state: &AppState, name: &str, field: &str) -> Result<Subject, Problem> {
    library_name(state, name, field).map(Subject::Library)
}

fn library_name(state: &AppState, name: &str, field: &str) -> Result<&'static str, Problem> {
    crate::routes::libraries::library(state, name)
        .map(|l| l.schema().name)
        .map_err(|p| p.with_field(field))
}

/// The resource `code` as the caller may see it, or 404 `resource_not_found`.
pub(crate) async fn resource_subject(state: &AppState, caller: &Caller, code: &str) -> Result<Subject, Problem> {
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            "No such resource",
            format!("no resource has the code {code:?}"),
        )
        .with_field("code")
    };
    let resource = match state.catalog.resource_by_code(code).await {
        Ok(r) => r,
        Err(catalog::Error::NotFound { .. }) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    if !may_see(caller, &resource) {
        return Err(not_found());
    }
    Ok(Subject::Resource(resource.code))
}

/// The latest report and trend of `subject`; 404 `quality_report_not_found` before its first.
pub(crate) async fn detail(state: &AppState, subject: &Subject, trend: i64) -> Result<QualityDetail, Problem> {
    let (scope, name) = match subject {
        Subject::Library(name) => (QualityScope::Library, name.to_string()),
        Subject::Resource(code) => (QualityScope::Resource, code.clone()),
    };
    let stored = state.catalog.quality_reports(scope, &name, trend).await?;
    let Some(latest) = stored.first() else {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "quality_report_not_found",
            "No quality report yet",
            format!(
                "{} {name:?} has not been scored yet: it is scored after each committed run, or by POST /api/v1/quality/evaluations",
                scope.code()
            ),
        ));
    };
    let report = Report::from_stored(latest);
    let trend = stored
        .iter()
        .rev()
        .map(|s| {
            let r = Report::from_stored(s);
            TrendPoint {
                scores: scores(&r),
                computed_at: r.computed_at,
                library_version: r.library_version,
                overall: r.overall,
            }
        })
        .collect();
    Ok(QualityDetail { report, trend })
}

/// `GET /api/v1/quality`: the latest report of every library and resource, best first. Any
/// authenticated caller; resources as the caller sees them in the catalog.
#[utoipa::path(
    get,
    path = "/api/v1/quality",
    tag = "quality",
    responses(
        (status = 200, description = "The ranking, best overall score first", body = Ranking),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    Ok(HttpResponse::Ok().json(Ranking {
        items: ranking(&state, &caller).await?,
    }))
}

/// `GET /api/v1/quality/libraries/{name}`: a library's latest report and its trend.
#[utoipa::path(
    get,
    path = "/api/v1/quality/libraries/{name}",
    tag = "quality",
    params(("name" = String, Path, description = "The library: a base library (population, legal_entity, credit, license, spatial) or a themed one"), TrendQuery),
    responses(
        (status = 200, description = "The latest report and the trend", body = QualityDetail),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 404, description = "`library_not_found` (`field: name`), or `quality_report_not_found` before the library's first report", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, response = crate::openapi::Invalid),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn library(
    req: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
    query: web::Query<TrendQuery>,
) -> Reply {
    Caller::from_request(&req, &state).await?;
    let trend = check_trend(query.trend)?;
    let subject = library_subject(&state, &name, "name")?;
    Ok(HttpResponse::Ok().json(detail(&state, &subject, trend).await?))
}

/// `GET /api/v1/quality/resources/{code}`: a resource's latest report (its data items and its
/// connectors' runs only) and its trend.
#[utoipa::path(
    get,
    path = "/api/v1/quality/resources/{code}",
    tag = "quality",
    params(("code" = String, Path, description = "The resource code"), TrendQuery),
    responses(
        (status = 200, description = "The latest report and the trend", body = QualityDetail),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 404, description = "`resource_not_found` (`field: code`), or `quality_report_not_found` before the resource's first report", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, response = crate::openapi::Invalid),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn resource(
    req: HttpRequest,
    state: web::Data<AppState>,
    code: web::Path<String>,
    query: web::Query<TrendQuery>,
) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    let trend = check_trend(query.trend)?;
    let subject = resource_subject(&state, &caller, &code).await?;
    Ok(HttpResponse::Ok().json(detail(&state, &subject, trend).await?))
}

/// Body of `POST /api/v1/quality/evaluations` (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Evaluate {
    /// Score only this library (and its resources); every library when absent.
    #[serde(default)]
    pub library: Option<String>,
}

/// `POST /api/v1/quality/evaluations` (platform admin): scores now — one library and its
/// resources, or every library — and stores the reports.
#[utoipa::path(
    post,
    path = "/api/v1/quality/evaluations",
    tag = "quality",
    request_body(content = Option<Evaluate>, description = "Optional: `{\"library\": \"population\"}`; an empty body scores every library"),
    responses(
        (status = 201, description = "The reports just stored, each library's before its resources'", body = crate::openapi::Items<Report>),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, description = "`library_not_found` (`field: library`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, response = crate::openapi::Invalid),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn evaluate(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    caller.require(&[Role::PlatformAdmin], "scoring data quality")?;
    let body: Evaluate = if body.iter().all(u8::is_ascii_whitespace) {
        Evaluate::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| crate::problem::bad_request_body("invalid_body", e.to_string()))?
    };
    let names: Vec<&'static str> = match &body.library {
        Some(name) => vec![library_name(&state, name, "library")?],
        None => {
            // Base libraries first, then themes, each by name.
            let mut all = state.libraries.all();
            all.sort_by_key(|(name, library)| (!crate::routes::libraries::is_base(library.schema()), *name));
            all.into_iter().map(|(name, _)| name).collect()
        }
    };
    let mut items = Vec::new();
    for name in names {
        let reports = crate::quality::evaluate_library(&state.catalog, &state.libraries, name)
            .await
            .map_err(|e| match e {
                EvaluationError::Catalog(e) => Problem::from(e),
                other => Problem::internal(&other),
            })?;
        items.extend(reports.iter().map(Report::from_stored));
    }
    Ok(HttpResponse::Created().json(json!({ "items": items })))
}
