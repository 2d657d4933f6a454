//! Errors as `application/problem+json` (RFC 9457), each with a stable `code`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// One problem. The `code` is stable and documented; `detail` is for people.
#[derive(Debug, Clone, Serialize)]
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
    /// The stable code.
    pub code: &'static str,
    /// The offending field or parameter, when one is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Seconds to wait (429).
    #[serde(skip)]
    pub retry_after: Option<u64>,
    /// The RateLimit-Limit value (429).
    #[serde(skip)]
    pub rate_limit: Option<u32>,
}

impl Problem {
    /// A problem with `status`, stable `code`, `title` and `detail`.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            type_uri: format!("urn:huitong:problem:{code}"),
            title,
            status: status.as_u16(),
            detail: detail.into(),
            code,
            field: None,
            retry_after: None,
            rate_limit: None,
        }
    }

    /// Names the offending field.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
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
        }
        if self.status == 401 {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.body(serde_json::to_string(self).unwrap_or_default())
    }
}
