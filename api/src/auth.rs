//! Who is calling: the credential behind `Authorization: Bearer`, and the role checks every
//! write makes.

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use policy::{Credential, Role};

use crate::problem::Problem;
use crate::startup::AppState;

/// The authenticated caller of a request.
pub struct Caller(pub Credential);

impl Caller {
    /// Authenticates the request's bearer key.
    pub async fn from_request(req: &HttpRequest, state: &AppState) -> Result<Self, Problem> {
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Problem::unauthorized("send Authorization: Bearer <API key>"))?;
        let presented = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| Problem::unauthorized("the Authorization header must be `Bearer <API key>`"))?;
        policy::credentials::authenticate(&state.catalog, presented.trim())
            .await
            .map(Caller)
            .map_err(|e| match e {
                policy::Error::Unauthenticated(why) => {
                    Problem::unauthorized(format!("the API key is not valid ({why})"))
                }
                other => Problem::internal(&other),
            })
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

/// 403 `forbidden`.
pub fn forbidden(detail: String) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
}
