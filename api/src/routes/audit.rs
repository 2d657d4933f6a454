//! The audit trail (全程留痕、可追溯) as its readers see it: providers who used their data,
//! consumers their own calls, the platform everything; JSON pages or a CSV export; and the
//! chain check.

use actix_web::{HttpRequest, HttpResponse, web};
use policy::Role;
use policy::audit::{AuditQuery, AuditRecord};
use serde::Deserialize;
use serde_json::json;

use crate::auth::Caller;
use crate::problem::Problem;
use crate::startup::AppState;

type Reply = Result<HttpResponse, Problem>;

/// Query of `GET /api/v1/audit`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only calls on this resource code.
    #[serde(default)]
    pub resource: Option<String>,
    /// Recorded at or after: a date (`2026-11-23`, from 00:00 China Standard Time) or an RFC 3339 time.
    #[serde(default)]
    pub from: Option<String>,
    /// Recorded before: a date (up to the end of that day) or an RFC 3339 time.
    #[serde(default)]
    pub to: Option<String>,
    /// Only calls made by this department (platform staff and providers).
    #[serde(default)]
    pub department: Option<String>,
    /// Records after this sequence number: the `next_after` of the previous page.
    #[serde(default)]
    pub after: Option<i64>,
    /// Records per page, 1–1000 (default 100); ignored by the CSV export.
    #[serde(default)]
    pub limit: Option<i64>,
    /// `json` (default) or `csv` (every matching record, streamed in pages).
    #[serde(default)]
    pub format: Option<String>,
}

/// China Standard Time, where a bare date's day begins.
fn cst() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(policy::quota::CST_OFFSET as i32).expect("a valid offset")
}

/// A bound as stored: a date means the start of that day (`end`: of the next day) in CST.
fn bound(field: &'static str, raw: &str, end: bool) -> Result<String, Problem> {
    let bad = || {
        Problem::invalid_query(
            field,
            format!("{field}: a date (2026-11-23) or an RFC 3339 time, not {raw:?}"),
        )
    };
    if let Ok(date) = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        let day = if end { date.succ_opt().ok_or_else(bad)? } else { date };
        let start = day.and_hms_opt(0, 0, 0).ok_or_else(bad)?;
        let at = start.and_local_timezone(cst()).single().ok_or_else(bad)?;
        return Ok(catalog::timestamp_text(at.to_utc()));
    }
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| catalog::timestamp_text(t.to_utc()))
        .map_err(|_| bad())
}

/// Who may read which records: the platform all; a provider's data officer the calls on its
/// department's resources and by its department; a consumer system its department's calls;
/// an open-data developer its own.
fn scope(caller: &Caller, params: &AuditParams, query: &mut AuditQuery) -> Result<(), Problem> {
    match caller.0.role {
        Role::PlatformAdmin | Role::Reviewer => {
            query.caller_department = params.department.clone();
        }
        Role::ProviderAdmin => {
            query.provider_department_id = Some(caller.department()?);
            query.caller_department = params.department.clone();
        }
        Role::Consumer => {
            query.caller_department = Some(
                caller
                    .0
                    .department_code
                    .clone()
                    .ok_or_else(|| crate::auth::forbidden("this key acts for no department".into()))?,
            );
            if params
                .department
                .as_ref()
                .is_some_and(|d| Some(d) != query.caller_department.as_ref())
            {
                return Err(crate::auth::forbidden(
                    "a consumer reads its own department's calls only".into(),
                ));
            }
        }
        Role::OpenDataDeveloper => query.credential_id = Some(caller.0.id),
    }
    Ok(())
}

/// `GET /api/v1/audit?resource=…&from=…&to=…`: the audit records the caller may read,
/// oldest first, paged by `after`; `format=csv` exports them all.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    params(AuditParams),
    responses(
        (status = 200, description = "审计记录 The audit records the caller may read, oldest first: the platform all; a provider's data officer the calls on its department's resources and by its department; a consumer system its department's calls; an open-data developer its own. JSON pages (follow `next_after`), or with `format=csv` every matching record as CSV",
            content(
                (crate::openapi::AuditPage = "application/json"),
                (String = "text/csv; charset=utf-8"),
            )),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, description = "`forbidden`: a consumer asking for another department's calls, or a key that acts for no department where one is needed", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_query` naming the parameter: `limit` out of 1–1000, `from`/`to` not a date or RFC 3339 time, `format` not json or csv, or one that does not parse", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn list(req: HttpRequest, state: web::Data<AppState>, params: web::Query<AuditParams>) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::invalid_query("limit", "limit: between 1 and 1000"));
    }
    let mut query = AuditQuery {
        resource_code: params.resource.clone(),
        from: params.from.as_deref().map(|f| bound("from", f, false)).transpose()?,
        to: params.to.as_deref().map(|t| bound("to", t, true)).transpose()?,
        after_seq: params.after.unwrap_or(0),
        limit,
        ..AuditQuery::default()
    };
    scope(&caller, &params, &mut query)?;
    // Every call answered before this one is listed: its record is durable in the journal.
    match params.format.as_deref().unwrap_or("json") {
        "json" => {
            let records = state
                .audit
                .query(&state.catalog, &query)
                .await
                .map_err(|e| Problem::internal(&e))?;
            let next_after = (records.len() as i64 == limit)
                .then(|| records.last().map(|r| r.seq))
                .flatten();
            Ok(HttpResponse::Ok().json(json!({"items": records, "next_after": next_after})))
        }
        "csv" => Ok(csv_export(state.into_inner(), query)),
        other => Err(Problem::invalid_query(
            "format",
            format!("format: json or csv, not {other:?}"),
        )),
    }
}

const CSV_HEADER: &str = "seq,at,request_id,credential_id,department,resource_code,endpoint,subject_hash,\
    status,outcome,items_plain,items_masked,row_count,grant_id,demand_id,latency_us,hash\n";

/// One page of records as CSV lines (the csv crate quotes what needs quoting).
fn csv_page(records: &[AuditRecord]) -> Result<Vec<u8>, csv::Error> {
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut out = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    for r in records {
        out.write_record([
            r.seq.to_string(),
            r.at.clone(),
            r.request_id.clone(),
            opt(r.credential_id),
            r.department.clone().unwrap_or_default(),
            r.resource_code.clone().unwrap_or_default(),
            r.endpoint.clone(),
            r.subject_hash.clone().unwrap_or_default(),
            r.status.to_string(),
            r.outcome.clone(),
            r.items_plain.join(";"),
            r.items_masked.join(";"),
            opt(r.row_count),
            opt(r.grant_id),
            opt(r.demand_id),
            r.latency_us.to_string(),
            r.hash.clone(),
        ])?;
    }
    out.into_inner().map_err(|e| e.into_error().into())
}

/// Every matching record as CSV, read and sent 1,000 at a time.
fn csv_export(state: std::sync::Arc<AppState>, mut query: AuditQuery) -> HttpResponse {
    query.limit = 1000;
    let pages = futures::stream::unfold(Some(query), move |next| {
        let state = state.clone();
        async move {
            let mut query = next?;
            let chunk = match state.audit.query(&state.catalog, &query).await {
                Ok(records) => records,
                Err(e) => {
                    tracing::error!(error = %e, "audit CSV export stopped");
                    return Some((Err(std::io::Error::other(e.to_string())), None));
                }
            };
            let more = chunk.len() as i64 == query.limit;
            query.after_seq = chunk.last().map_or(query.after_seq, |r| r.seq);
            match csv_page(&chunk) {
                Ok(lines) => Some((Ok(web::Bytes::from(lines)), more.then_some(query))),
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    use futures::StreamExt;
    let header =
        futures::stream::once(async { Ok::<_, std::io::Error>(web::Bytes::from_static(CSV_HEADER.as_bytes())) });
    let body = header.chain(pages);
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("Content-Disposition", "attachment; filename=\"huitong-audit.csv\""))
        .streaming(body)
}

/// `GET /api/v1/audit/verify` (platform staff): recomputes the chain; the first broken link,
/// if any.
#[utoipa::path(
    get,
    path = "/api/v1/audit/verify",
    tag = "audit",
    responses(
        (status = 200, description = "链校验 The hash chain recomputed: how many records, whether it is intact, and the first broken link (a changed, removed or reordered record)", body = crate::openapi::AuditChainAnswer),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn verify(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    caller.require(&[Role::PlatformAdmin, Role::Reviewer], "checking the audit chain")?;
    let report = policy::audit::verify(&state.catalog, Some(state.audit.journal_dir()))
        .await
        .map_err(|e| Problem::internal(&e))?;
    Ok(HttpResponse::Ok().json(json!({
        "records": report.records,
        "intact": report.first_broken.is_none(),
        "first_broken": report.first_broken,
    })))
}
