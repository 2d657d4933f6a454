//! The data lab: `GET /api/v1/lab/views` (the caller's views) and `POST /api/v1/lab/query`
//! (one read-only SQL query over them). See [`crate::query::lab`] for what a view holds.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema};
use policy::{Credential, Decision};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::problem::Problem;
use crate::query::lab::{self, LabError, LabView, view_name};
use crate::query::view::View;
use crate::routes::exchange::CallRecord;
use crate::startup::AppState;

const QUERY_ENDPOINT: &str = "POST /api/v1/lab/query";

/// Body of a lab query.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"sql": "SELECT gender, count(*) FROM r_1_01_001_000001 GROUP BY gender", "max_rows": 100}))]
#[serde(deny_unknown_fields)]
pub struct LabQuery {
    /// One SQL query over the caller's views.
    pub sql: String,
    /// Rows returned at most, 1–10,000 (default 1,000).
    #[serde(default)]
    pub max_rows: Option<usize>,
}

/// The views `credential` may query: one per served resource policy lets it read.
async fn views_of(state: &AppState, credential: &Credential) -> Result<Vec<LabView>, Problem> {
    let mut views = Vec::new();
    for resource in state.catalog.resources().await? {
        let Some(library) = resource.meta.library.as_deref().and_then(|l| state.libraries.get(l)) else {
            continue;
        };
        let grant = match credential.department_id {
            Some(department) => state.catalog_cache.grant(resource.id, department).await?,
            None => None,
        };
        let Decision::Allow(access) = policy::decide(&resource, credential, grant.as_deref()) else {
            continue;
        };
        match View::new(&access, library.schema()) {
            Ok(view) => views.push(LabView {
                name: view_name(&resource.code),
                resource_code: resource.code.clone(),
                resource_name: resource.meta.name.clone(),
                grant_id: access.grant_id,
                view: std::sync::Arc::new(view),
                library: library.clone(),
            }),
            // Fail closed: a grant whose filter does not compile shows nothing.
            Err(e) => tracing::error!(resource = %resource.code, grant = ?access.grant_id, error = %e,
                "a grant's row filter does not compile; its view is left out"),
        }
    }
    Ok(views)
}

/// `GET /api/v1/lab/views`: the caller's views, their columns and which are masked.
#[utoipa::path(
    get,
    path = "/api/v1/lab/views",
    tag = "lab",
    responses(
        (status = 200, description = "The views (视图) the caller may query: one per served resource policy lets it read, with its columns and which are masked", body = crate::openapi::LabViewsAnswer),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn views(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    let credential = crate::auth::Caller::from_request(&req, &state).await?.0;
    let views = views_of(&state, &credential).await?;
    let listed: Vec<Value> = views
        .iter()
        .map(|v| {
            json!({
                "view": v.name,
                "resource_code": v.resource_code,
                "resource_name": v.resource_name,
                "grant_id": v.grant_id,
                "row_filtered": v.view.row_filter.is_some(),
                "columns": v.view.columns.iter().map(|c| {
                    let field = &v.view.library.fields[c.position];
                    json!({"name": c.name, "label_zh": field.label_zh, "type": "text", "masked": !c.plain})
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "views": listed })))
}

/// `POST /api/v1/lab/query`: one read-only query; audited like every exchange call.
#[utoipa::path(
    post,
    path = "/api/v1/lab/query",
    tag = "lab",
    params(
        crate::openapi::RequestIdHeader,
    ),
    request_body(content = LabQuery, description = "One read-only SQL query (DataFusion dialect) over the caller's views"),
    responses(
        (status = 200, description = "The result: columns, rows as arrays in column order, and the views read", body = crate::openapi::LabAnswer, headers(("X-Request-Id" = String, description = "The request id, as sent or generated"))),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 422, description = "`field: sql`: `invalid_sql` (does not parse), `sql_not_allowed` (not one read-only query), `unknown_view` (names a view the caller does not have), `query_timeout`, `query_too_large`, `query_failed`; `invalid_body` (`field: max_rows` out of 1–10,000, or a body that does not parse)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 429, response = crate::openapi::QuotaExceeded),
        (status = 500, response = crate::openapi::Internal),
        (status = 503, response = crate::openapi::AuditUnavailable),
    )
)]
pub async fn query(req: HttpRequest, state: web::Data<AppState>, body: web::Json<LabQuery>) -> HttpResponse {
    let mut call = CallRecord::new(&req, QUERY_ENDPOINT, "");
    call.entry.resource_code = None;
    let outcome = serve_query(&req, &state, body.into_inner(), &mut call).await;
    call.finish(&state, outcome).await
}

fn unprocessable(code: &'static str, title: &'static str, detail: String) -> Problem {
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, title, detail).with_field("sql")
}

async fn serve_query(
    req: &HttpRequest,
    state: &AppState,
    body: LabQuery,
    call: &mut CallRecord,
) -> Result<HttpResponse, Problem> {
    let credential = crate::auth::Caller::from_request(req, state).await?.0;
    call.entry.credential_id = Some(credential.id);
    call.entry.department = credential.department_code.clone();
    call.entry.subject_hash = Some(policy::sha256_hex(&[&state.audit_key, body.sql.as_bytes()]));
    state
        .quotas
        .check(credential.id, None)
        .map_err(crate::routes::exchange::over_quota)?;
    let max_rows = body.max_rows.unwrap_or(lab::DEFAULT_ROWS);
    if !(1..=lab::MAX_ROWS).contains(&max_rows) {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "Invalid request",
            format!("max_rows: between 1 and {}", lab::MAX_ROWS),
        )
        .with_field("max_rows"));
    }
    let views = views_of(state, &credential).await?;
    let answer = lab::run(body.sql, views.clone(), max_rows).await.map_err(|e| match e {
        LabError::InvalidSql(m) => unprocessable("invalid_sql", "Invalid SQL", m),
        LabError::NotAllowed(m) => unprocessable("sql_not_allowed", "SQL not allowed", m),
        e @ LabError::UnknownView(_) => unprocessable("unknown_view", "No such view", e.to_string()),
        e @ LabError::Timeout => unprocessable("query_timeout", "Query timed out", e.to_string()),
        e @ LabError::TooLarge(_) => unprocessable("query_too_large", "Query too large", e.to_string()),
        LabError::Failed(m) => unprocessable("query_failed", "Query failed", m),
    })?;
    // The audit record names what was read: the resources behind the views, their items as
    // returned plain or masked (qualified by resource when the query read several), the grant.
    let read: Vec<&LabView> = views.iter().filter(|v| answer.views_read.contains(&v.name)).collect();
    call.entry.resource_code = (!read.is_empty()).then(|| {
        read.iter()
            .map(|v| v.resource_code.as_str())
            .collect::<Vec<_>>()
            .join(",")
    });
    call.entry.grant_id = match read.as_slice() {
        [only] => only.grant_id,
        _ => None,
    };
    for v in &read {
        for c in &v.view.columns {
            let name = if read.len() == 1 {
                c.name.to_string()
            } else {
                format!("{}.{}", v.resource_code, c.name)
            };
            if c.plain {
                call.entry.items_plain.push(name);
            } else {
                call.entry.items_masked.push(name);
            }
        }
    }
    let rows = rows_of(&answer.batches).map_err(|e| Problem::internal(&e))?;
    let columns: Vec<Value> = answer
        .schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "columns": columns,
        "rows": rows,
        "row_count": rows.len(),
        "truncated": answer.truncated,
        "views": answer.views_read,
    })))
}

/// Rows as JSON arrays in column order (names may repeat in a result, so not objects).
fn rows_of(batches: &[RecordBatch]) -> Result<Vec<Value>, arrow::error::ArrowError> {
    let mut rows = Vec::new();
    for batch in batches {
        if batch.num_rows() == 0 {
            continue;
        }
        // Positional names, so that the JSON writer's objects can be read back in order.
        let fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| Field::new(format!("c{i}"), f.data_type().clone(), true))
            .collect();
        let renamed = RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), batch.columns().to_vec())?;
        let mut writer = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::JsonArray>(Vec::new());
        writer.write(&renamed)?;
        writer.finish()?;
        let objects: Vec<serde_json::Map<String, Value>> = serde_json::from_slice(&writer.into_inner())
            .map_err(|e| arrow::error::ArrowError::JsonError(e.to_string()))?;
        let width = batch.num_columns();
        for mut object in objects {
            rows.push(Value::Array(
                (0..width)
                    .map(|i| object.remove(&format!("c{i}")).unwrap_or(Value::Null))
                    .collect(),
            ));
        }
    }
    Ok(rows)
}
