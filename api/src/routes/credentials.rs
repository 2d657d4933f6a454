//! Accounts: API keys with a role and a department, issued and revoked by the platform admin.
//! A key is shown once, in the answer to its issue or rotation; only its hash is stored.

use actix_web::{HttpRequest, HttpResponse, web};
use policy::Role;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Caller;
use crate::problem::Problem;
use crate::startup::AppState;

type Reply = Result<HttpResponse, Problem>;

/// Body of `POST /api/v1/credentials`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCredential {
    /// A name people recognize (system or officer).
    pub name: String,
    /// The role.
    pub role: Role,
    /// The department it acts for (required except for open-data developers).
    #[serde(default)]
    pub department_code: Option<String>,
    /// When it stops working.
    #[serde(default)]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Issues a key after checking the request; shared by the API and `huitong keys issue`.
pub async fn issue(state_catalog: &catalog::Catalog, new: &NewCredential) -> Result<policy::IssuedKey, Problem> {
    let mut v = catalog::Validator::default();
    v.check(
        !new.name.trim().is_empty(),
        "name",
        "name the system or officer the key is for",
    );
    v.check(
        new.expires_at.is_none_or(|at| at > chrono::Utc::now()),
        "expires_at",
        "an expiry lies in the future",
    );
    let department_id = match &new.department_code {
        Some(code) => match state_catalog.department_by_code(code).await {
            Ok(d) => Some(d.id),
            Err(catalog::Error::NotFound { .. }) => {
                v.error("department_code", format!("no department has the code {code}"));
                None
            }
            Err(e) => return Err(e.into()),
        },
        None => {
            v.check(
                matches!(new.role, Role::OpenDataDeveloper | Role::PlatformAdmin),
                "department_code",
                "this role acts for a department",
            );
            None
        }
    };
    v.finish()?;
    policy::credentials::issue(state_catalog, &new.name, new.role, department_id, new.expires_at)
        .await
        .map_err(|e| Problem::internal(&e))
}

/// `POST /api/v1/credentials` (platform admin): the key is in the answer, once.
#[utoipa::path(
    post,
    path = "/api/v1/credentials",
    tag = "credentials",
    request_body(content = NewCredential),
    responses(
        (status = 201, description = "The credential and its key, shown this once", body = crate::openapi::IssuedCredential),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::Invalid),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn create(req: HttpRequest, state: web::Data<AppState>, body: web::Json<NewCredential>) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    caller.require(&[Role::PlatformAdmin], "issuing a key")?;
    let issued = issue(&state.catalog, &body).await?;
    Ok(HttpResponse::Created().json(json!({"credential": issued.credential, "key": issued.key})))
}

/// `GET /api/v1/credentials`: the platform admin sees all; a data officer their department's.
#[utoipa::path(
    get,
    path = "/api/v1/credentials",
    tag = "credentials",
    responses(
        (status = 200, description = "The list", body = crate::openapi::Items<policy::CredentialInfo>),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    let department = if caller.is(&[Role::PlatformAdmin]) {
        None
    } else {
        caller.require(&[Role::ProviderAdmin], "listing keys")?;
        Some(caller.department()?)
    };
    let items = policy::credentials::list(&state.catalog, department)
        .await
        .map_err(|e| Problem::internal(&e))?;
    Ok(HttpResponse::Ok().json(json!({"items": items})))
}

/// `DELETE /api/v1/credentials/{id}` (platform admin): revokes the key at once.
#[utoipa::path(
    delete,
    path = "/api/v1/credentials/{id}",
    tag = "credentials",
    params(
        ("id" = i64, Path, description = "The credential's id"),
    ),
    responses(
        (status = 204, description = "Revoked; the key stops working at once"),
        (status = 400, response = crate::openapi::BadPath),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, description = "`not_found`: no active credential has this id", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn revoke(req: HttpRequest, state: web::Data<AppState>, id: web::Path<i64>) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    caller.require(&[Role::PlatformAdmin], "revoking a key")?;
    if policy::credentials::revoke(&state.catalog, *id)
        .await
        .map_err(|e| Problem::internal(&e))?
    {
        state.auth.forget(*id);
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(Problem::from(catalog::Error::NotFound {
            entity: "active credential",
            key: id.to_string(),
        }))
    }
}

/// Longest grace period a rotated key may keep working: 7 days.
const MAX_GRACE_SECONDS: i64 = 7 * 24 * 3600;

/// Body of `POST /api/v1/credentials/{id}/rotate` (optional: no body means revoke the old key now).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// How long the old key keeps working, in seconds (0: revoked at once; at most 7 days).
    #[serde(default)]
    pub grace_seconds: i64,
    /// When the new key expires (default: when the old one would have).
    #[serde(default)]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `POST /api/v1/credentials/{id}/rotate` (platform admin; a provider admin for its own
/// department's keys; an open-data developer for its own key, whose account and applications
/// follow it): a new key for the same name, role and department, shown once; the old
/// key works on for the grace period, then expires.
#[utoipa::path(
    post,
    path = "/api/v1/credentials/{id}/rotate",
    tag = "credentials",
    params(
        ("id" = i64, Path, description = "The credential's id"),
    ),
    request_body(content = Option<Rotation>, description = "Optional: without a body the old key is revoked at once"),
    responses(
        (status = 201, description = "密钥轮换 The new credential and its key, shown this once; the old key works on for the grace period", body = crate::openapi::RotatedCredential),
        (status = 400, response = crate::openapi::BadPath),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, description = "`forbidden`: not a platform admin, a provider admin rotating another department's key, or a developer rotating another key than its own", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no credential has this id", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`invalid_state`: the credential is revoked, expired or already rotated", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (`grace_seconds` out of 0–604800, `expires_at` not in the future; `errors` lists each) or `invalid_body` (the body does not parse)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn rotate(req: HttpRequest, state: web::Data<AppState>, id: web::Path<i64>, body: web::Bytes) -> Reply {
    let caller = Caller::from_request(&req, &state).await?;
    let own_developer_key = caller.is(&[Role::OpenDataDeveloper]) && caller.0.id == *id;
    if !own_developer_key {
        caller.require(&[Role::PlatformAdmin, Role::ProviderAdmin], "rotating a key")?;
    }
    let rotation: Rotation = if body.iter().all(u8::is_ascii_whitespace) {
        Rotation::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| crate::problem::bad_request_body("invalid_body", e.to_string()))?
    };
    let mut v = catalog::Validator::default();
    v.check(
        (0..=MAX_GRACE_SECONDS).contains(&rotation.grace_seconds),
        "grace_seconds",
        "a grace period is 0 (revoke now) to 604800 seconds (7 days)",
    );
    v.check(
        rotation.expires_at.is_none_or(|at| at > chrono::Utc::now()),
        "expires_at",
        "an expiry lies in the future",
    );
    v.finish()?;
    let target = policy::credentials::info(&state.catalog, *id)
        .await
        .map_err(policy_problem)?;
    if !own_developer_key
        && !caller.is(&[Role::PlatformAdmin])
        && target.credential.department_id != Some(caller.department()?)
    {
        return Err(crate::auth::forbidden(
            "a provider admin rotates only its own department's keys".into(),
        ));
    }
    let rotated = policy::credentials::rotate(
        &state.catalog,
        *id,
        chrono::Duration::seconds(rotation.grace_seconds),
        rotation.expires_at,
    )
    .await
    .map_err(policy_problem)?;
    state.auth.forget(*id);
    Ok(HttpResponse::Created().json(json!({
        "credential": rotated.issued.credential,
        "key": rotated.issued.key,
        "replaces": rotated.replaced,
        "old_key_expires_at": rotated.old_key_expires_at.map(catalog::timestamp_text),
        "old_key_revoked": rotated.old_key_expires_at.is_none(),
    })))
}

/// Catalog errors keep their meaning (404, 409 …); anything else is ours.
fn policy_problem(e: policy::Error) -> Problem {
    match e {
        policy::Error::Catalog(e) => e.into(),
        other => Problem::internal(&other),
    }
}
