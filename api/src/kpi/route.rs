//! `GET /api/v1/kpis`: the assessment KPIs of a period, per department and per month.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDate;
use policy::Role;
use serde::Deserialize;

use super::{MAX_MONTHS, Period, compute};
use crate::auth::{Caller, forbidden};
use crate::problem::Problem;
use crate::startup::AppState;

/// Query of `GET /api/v1/kpis`. Empty values count as absent (an HTML form sends them).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KpiQuery {
    /// First day, `YYYY-MM-DD` (UTC); default: the first day of the month eleven months before `to`'s.
    #[serde(default)]
    pub from: Option<String>,
    /// Last day, included, `YYYY-MM-DD` (UTC); default: today.
    #[serde(default)]
    pub to: Option<String>,
    /// Only this department (code). A provider admin sees only its own department.
    #[serde(default)]
    pub department: Option<String>,
}

fn date(value: Option<&str>, field: &'static str) -> Result<Option<NaiveDate>, Problem> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map(Some)
            .map_err(|e| Problem::invalid_query(field, format!("{field} must be a date YYYY-MM-DD, got {v:?} ({e})"))),
    }
}

/// The period a query asks for, checked.
pub fn period_of(query: &KpiQuery, today: NaiveDate) -> Result<Period, Problem> {
    let to = date(query.to.as_deref(), "to")?.unwrap_or(today);
    let from = date(query.from.as_deref(), "from")?.unwrap_or(Period::default_until(to).from);
    if from > to {
        return Err(Problem::invalid_query(
            "from",
            format!("from ({from}) is after to ({to})"),
        ));
    }
    let period = Period { from, to };
    if period.months().len() > MAX_MONTHS {
        return Err(Problem::invalid_query(
            "from",
            format!("the period spans more than {MAX_MONTHS} months; ask for a shorter one"),
        ));
    }
    Ok(period)
}

/// The department whose figures the caller may see for this query: platform staff any (or
/// all), a provider admin its own; anyone else nothing.
pub async fn department_of(state: &AppState, caller: &Caller, query: &KpiQuery) -> Result<Option<String>, Problem> {
    if !caller.is_platform() {
        caller.require(&[Role::ProviderAdmin], "reading the KPIs")?;
    }
    let asked = query.department.as_deref().map(str::trim).filter(|d| !d.is_empty());
    if let Some(code) = asked {
        match state.catalog.department_by_code(code).await {
            Ok(_) => {}
            Err(catalog::Error::NotFound { .. }) => {
                return Err(Problem::invalid_query("department", format!("no department {code:?}")));
            }
            Err(other) => return Err(Problem::internal(&other)),
        }
    }
    if caller.is_platform() {
        return Ok(asked.map(str::to_string));
    }
    let own = caller
        .0
        .department_code
        .clone()
        .ok_or_else(|| forbidden("this key acts for no department".into()))?;
    match asked {
        Some(code) if code != own => Err(forbidden(format!(
            "a provider admin sees its own department's KPIs ({own}), not {code}'s"
        ))
        .with_field("department")),
        _ => Ok(Some(own)),
    }
}

/// `GET /api/v1/kpis`: each KPI's numerator, denominator and rate over the period, its monthly
/// series, each department's figures and the calls per resource.
#[utoipa::path(
    get,
    path = "/api/v1/kpis",
    tag = "kpis",
    params(KpiQuery),
    responses(
        (status = 200, description = "The KPIs of the period (definitions in docs/console.md)", body = super::KpiReport),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, description = "`forbidden`: not platform staff or a provider admin; a provider admin asking for another department (`field: department`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_query` naming the parameter: `from`/`to` not a date YYYY-MM-DD, `from` after `to`, a period over 120 months, an unknown `department`", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn kpis(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<KpiQuery>,
) -> Result<HttpResponse, Problem> {
    let caller = Caller::from_request(&req, &state).await?;
    let period = period_of(&query, chrono::Utc::now().date_naive())?;
    let department = department_of(&state, &caller, &query).await?;
    let report = compute(&state, &period, department.as_deref())
        .await
        .map_err(|e| Problem::internal(&e))?;
    Ok(HttpResponse::Ok().json(report))
}
