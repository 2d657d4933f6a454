//! The web console's login: an API key exchanged for a session cookie (`huitong_session`,
//! HttpOnly, SameSite=Strict, Secure over https). Only the token's hash is stored.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{Caller, SESSION_COOKIE, session_cookie};
use crate::problem::Problem;
use crate::startup::AppState;

type Reply = Result<HttpResponse, Problem>;

/// Body of `POST /api/v1/session`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// The officer's API key.
    pub key: String,
}

/// `POST /api/v1/session`: logs in with an API key; sets the session cookie.
#[utoipa::path(
    post,
    path = "/api/v1/session",
    tag = "authentication",
    security(()),
    request_body(content = Login),
    responses(
        (status = 201, description = "控制台登录 Logged in: the `huitong_session` cookie (HttpOnly, SameSite=Strict, Secure over https) is set", body = crate::openapi::SessionAnswer,
            headers(("Set-Cookie" = String, description = "`huitong_session=<token>; Max-Age=<seconds>; Path=/; HttpOnly; SameSite=Strict[; Secure]`"))),
        (status = 401, description = "`unauthenticated` (`field: key`): the API key is unknown, malformed, expired or revoked", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, response = crate::openapi::Invalid),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn login(req: HttpRequest, state: web::Data<AppState>, body: web::Json<Login>) -> Reply {
    let credential = state.auth.key(body.key.trim()).await.map_err(|e| match e {
        policy::Error::Unauthenticated(why) => {
            Problem::unauthorized(format!("the API key is not valid ({why})")).with_field("key")
        }
        other => Problem::internal(&other),
    })?;
    let (cookie, expires_at) = start_session(&req, &state, credential.id).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::SET_COOKIE, cookie))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "credential": credential,
            "expires_at": expires_at,
        })))
}

/// `GET /api/v1/session`: who is logged in with this browser's session.
#[utoipa::path(
    get,
    path = "/api/v1/session",
    tag = "authentication",
    security(("session" = [])),
    responses(
        (status = 200, description = "The credential logged in with this browser's session, and when the session ends", body = crate::openapi::SessionAnswer),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn whoami(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    let token = session_cookie(&req).ok_or_else(|| Problem::unauthorized("no console session; log in"))?;
    let (caller, expires_at) = Caller::from_session(&state, token).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"credential": caller.0, "expires_at": expires_at})))
}

/// `DELETE /api/v1/session`: logs out (the session is deleted) and clears the cookie.
#[utoipa::path(
    delete,
    path = "/api/v1/session",
    tag = "authentication",
    security(()),
    responses(
        (status = 204, description = "Logged out: the session (if any) is deleted and the cookie cleared",
            headers(("Set-Cookie" = String, description = "`huitong_session=; Max-Age=0; …`"))),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn logout(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    let cookie = end_session(&req, &state).await?;
    Ok(HttpResponse::NoContent()
        .insert_header((header::SET_COOKIE, cookie))
        .finish())
}

/// Starts a console session for `credential_id`: the `Set-Cookie` value and when it ends.
pub(crate) async fn start_session(
    req: &HttpRequest,
    state: &AppState,
    credential_id: i64,
) -> Result<(String, String), Problem> {
    let session = policy::sessions::start(&state.catalog, credential_id, state.session_lifetime)
        .await
        .map_err(|e| Problem::internal(&e))?;
    let cookie = format!(
        "{SESSION_COOKIE}={}; Max-Age={}; Path=/; HttpOnly; SameSite=Strict{}",
        session.token,
        state.session_lifetime.num_seconds(),
        secure_attribute(req),
    );
    Ok((cookie, catalog::timestamp_text(session.expires_at)))
}

/// Ends the request's session, if it has one, and returns the `Set-Cookie` value clearing it.
pub(crate) async fn end_session(req: &HttpRequest, state: &AppState) -> Result<String, Problem> {
    if let Some(token) = session_cookie(req) {
        policy::sessions::end(&state.catalog, token)
            .await
            .map_err(|e| Problem::internal(&e))?;
    }
    Ok(cleared_cookie(req))
}

/// The `Set-Cookie` value that clears the session cookie.
fn cleared_cookie(req: &HttpRequest) -> String {
    format!(
        "{SESSION_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict{}",
        secure_attribute(req)
    )
}

/// `; Secure` when the browser reached us over https: directly, or through a reverse proxy that
/// says so in `Forwarded: proto=https` / `X-Forwarded-Proto: https`. Trusting the header is
/// safe here: a client that lies about it only makes its own browser withhold the cookie.
pub(crate) fn secure_attribute(req: &HttpRequest) -> &'static str {
    if req.connection_info().scheme() == "https" {
        "; Secure"
    } else {
        ""
    }
}
