//! Errors as `application/problem+json` (RFC 9457), each with a stable `code`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// One problem. The `code` is stable and documented; `detail` is for people.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "type": "urn:huitong:problem:invalid_key", "title": "Invalid key", "status": 422,
    "detail": "公民身份号码 is not a valid citizen ID number: wrong check character",
    "code": "invalid_key", "field": "key"
}))]
pub struct Problem {
    /// `urn:huitong:problem:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary of the kind of problem.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What happened here.
    pub detail: String,
    /// The stable code (稳定错误码), one of: `unauthenticated`, `invalid_token`, `token_expired`,
    /// `forbidden`, `not_found`, `conflict`, `invalid_state`, `validation_failed`,
    /// `invalid_body`, `invalid_query`, `bad_path`, `invalid_key`, `no_grant`, `grant_expired`,
    /// `not_shared`, `role_forbidden`, `no_department`, `item_not_granted`, `resource_not_found`,
    /// `resource_not_served`, `record_not_found`, `grant_filter_invalid`, `invalid_batch`, `invalid_claims`,
    /// `invalid_claim`, `unknown_item`, `invalid_filter`, `bulk_not_allowed`, `invalid_sql`,
    /// `sql_not_allowed`, `unknown_view`, `query_timeout`, `query_too_large`, `query_failed`,
    /// `quota_exceeded`, `audit_unavailable`, `connector_not_found`, `run_not_found`,
    /// `run_in_progress`, `invalid_value`, `correction_unchanged`, `record_unchanged`,
    /// `library_not_found`, `quality_report_not_found`, `theme_not_found`, `dataset_not_found`, `no_such_endpoint`,
    /// `internal`. New codes may be added; a code never changes meaning.
    pub code: &'static str,
    /// The offending field or parameter, when one is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every offending field, when a request has several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub errors: Vec<catalog::FieldError>,
    /// Seconds to wait (429).
    #[serde(skip)]
    pub retry_after: Option<u64>,
    /// The RateLimit-Limit value (429).
    #[serde(skip)]
    pub rate_limit: Option<u64>,
    /// The window of that limit in seconds, for RateLimit-Policy (429).
    #[serde(skip)]
    pub rate_limit_window: Option<u64>,
}

impl Problem {
    /// A problem with `status`, stable `code`, `title` and `detail`.
    pub fn new(status: StatusCode, code: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            type_uri: format!("urn:huitong:problem:{code}"),
            title,
            status: status.as_u16(),
            detail: detail.into(),
            code,
            field: None,
            errors: Vec::new(),
            retry_after: None,
            rate_limit: None,
            rate_limit_window: None,
        }
    }

    /// Names the offending field.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 422 `invalid_query` naming the query parameter to blame.
    pub fn invalid_query(field: &str, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_query",
            "Invalid query parameter",
            detail,
        )
        .with_field(field)
    }

    /// 401: no valid credential.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Authentication required",
            detail,
        )
    }

    /// 404 for an unknown route.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "no_such_endpoint",
            "No such endpoint",
            format!("{path} is not an endpoint of this server"),
        )
    }

    /// 500 for a fault of ours; the cause goes to the log, not the caller.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the server failed; the cause is in its log",
        )
    }
}

impl From<catalog::Error> for Problem {
    /// Bad input, missing entities, refusals and state conflicts keep their meaning; anything
    /// else is a fault of ours.
    fn from(e: catalog::Error) -> Self {
        use catalog::Error::*;
        match e {
            NotFound { entity, key } => Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found",
                format!("{entity} {key:?} not found"),
            ),
            Conflict { entity, key } => Problem::new(
                StatusCode::CONFLICT,
                "conflict",
                "Already exists",
                format!("{entity} {key:?} already exists"),
            ),
            Validation(errors) => {
                let detail = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                let mut problem = Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    "Invalid input",
                    detail,
                );
                problem.field = errors.first().map(|e| e.field.clone());
                problem.errors = errors;
                problem
            }
            Invalid { field, message } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "Invalid input",
                format!("{field}: {message}"),
            )
            .with_field(field),
            Forbidden(why) => Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", why),
            State(why) => Problem::new(StatusCode::CONFLICT, "invalid_state", "Not allowed in this state", why),
            other => Problem::internal(&other),
        }
    }
}

/// A request body or query string that does not parse: names the field when serde does.
pub fn bad_request_body(kind: &'static str, message: String) -> Problem {
    // serde says "unknown field `x`, expected …" or "missing field `x`" or "… at line 1 column 9".
    let field = message.split('`').nth(1).map(str::to_string);
    let mut problem = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, kind, "Invalid request", message);
    problem.field = field;
    problem
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.title, self.code, self.detail)
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
            response.insert_header(("RateLimit-Remaining", "0"));
            response.insert_header(("RateLimit-Reset", seconds.to_string()));
        }
        if let Some(limit) = self.rate_limit {
            response.insert_header(("RateLimit-Limit", limit.to_string()));
            if let Some(window) = self.rate_limit_window {
                response.insert_header(("RateLimit-Policy", format!("{limit};w={window}")));
            }
        }
        if self.status == 401 {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.body(serde_json::to_string(self).unwrap_or_default())
    }
}
