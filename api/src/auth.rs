//! Who is calling: the credential behind `Authorization: Bearer` (an API key or an OAuth2
//! access token) or, without that header, behind the console's session cookie; and the role
//! checks every write makes.

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use policy::{Credential, Role, TokenError};

use crate::problem::Problem;
use crate::startup::AppState;

/// The console's session cookie.
pub const SESSION_COOKIE: &str = "huitong_session";

/// The authenticated caller of a request.
pub struct Caller(pub Credential);

impl Caller {
    /// Authenticates the request: `Authorization: Bearer <API key | access token>`, else the
    /// session cookie.
    pub async fn from_request(req: &HttpRequest, state: &AppState) -> Result<Self, Problem> {
        let Some(header) = req.headers().get(actix_web::http::header::AUTHORIZATION) else {
            return match session_cookie(req) {
                Some(token) => Self::from_session(state, token).await.map(|(caller, _)| caller),
                None => Err(Problem::unauthorized(
                    "send Authorization: Bearer <API key or access token>, or log in to the console",
                )),
            };
        };
        let presented = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                Problem::unauthorized("the Authorization header must be `Bearer <API key or access token>`")
            })?;
        if !presented.starts_with("ht_") && presented.contains('.') {
            return Self::from_token(state, presented).await;
        }
        state
            .auth
            .key(presented)
            .await
            .map(Caller)
            .map_err(|e| unauthenticated(e, "the API key is not valid"))
    }

    /// The caller behind an access token: valid signature, unexpired, and a credential still
    /// valid now (a token dies with its key).
    async fn from_token(state: &AppState, token: &str) -> Result<Self, Problem> {
        let claims = state.tokens.verify(token).map_err(|e| {
            let code = match e {
                TokenError::Expired => "token_expired",
                TokenError::Invalid => "invalid_token",
            };
            Problem::new(StatusCode::UNAUTHORIZED, code, "Authentication required", e.to_string())
        })?;
        let id = claims.credential_id().ok_or_else(|| {
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "Authentication required",
                "the access token names no credential",
            )
        })?;
        state
            .auth
            .credential(id)
            .await
            .map(Caller)
            .map_err(|e| unauthenticated(e, "the access token's credential is no longer valid"))
    }

    /// The caller behind a console session, and when the session ends.
    pub async fn from_session(state: &AppState, token: &str) -> Result<(Self, String), Problem> {
        policy::sessions::authenticate(&state.catalog, token)
            .await
            .map(|(credential, expires_at)| (Caller(credential), expires_at))
            .map_err(|e| unauthenticated(e, "the console session is not valid; log in again"))
    }

    /// Whether the caller has one of `roles`.
    pub fn is(&self, roles: &[Role]) -> bool {
        roles.contains(&self.0.role)
    }

    /// Platform staff: admin or reviewer.
    pub fn is_platform(&self) -> bool {
        self.is(&[Role::PlatformAdmin, Role::Reviewer])
    }

    /// Refuses unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role], doing: &str) -> Result<(), Problem> {
        if self.is(roles) {
            Ok(())
        } else {
            let allowed: Vec<&str> = roles.iter().map(|r| r.code()).collect();
            Err(forbidden(format!(
                "{doing} needs the role {}; this key is {}",
                allowed.join(" or "),
                self.0.role.code()
            )))
        }
    }

    /// The caller's department, or a refusal.
    pub fn department(&self) -> Result<i64, Problem> {
        self.0
            .department_id
            .ok_or_else(|| forbidden("this key acts for no department".into()))
    }

    /// An audit/history label: `credential 12 (demo:provider_admin)`.
    pub fn actor(&self) -> String {
        format!("credential {} ({})", self.0.id, self.0.name)
    }
}

/// The value of the session cookie, if the request carries one.
pub fn session_cookie(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE).then_some(value.trim_matches('"'))
        })
}

/// 401 for a failed authentication (the reason in the detail); a DB failure is a 500.
fn unauthenticated(e: policy::Error, what: &str) -> Problem {
    match e {
        policy::Error::Unauthenticated(why) => Problem::unauthorized(format!("{what} ({why})")),
        other => Problem::internal(&other),
    }
}

/// 403 `forbidden`.
pub fn forbidden(detail: String) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
}
