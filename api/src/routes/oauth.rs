//! OAuth2 client credentials (RFC 6749 §4.4): `POST /oauth/token` exchanges an API key for a
//! short-lived access token (a JWT) usable wherever the key is.
//!
//! The client is a credential: `client_id` is its key prefix (the `ht_…` shown in key lists),
//! `client_secret` is the API key itself, sent by HTTP Basic or in the form. Errors follow
//! RFC 6749 §5.2, not problem+json, because OAuth2 clients expect that shape.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use serde_json::json;

use crate::startup::AppState;

/// An RFC 6749 §5.2 error.
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    basic_challenge: bool,
}

impl OAuthError {
    fn bad_request(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
            basic_challenge: false,
        }
    }

    fn invalid_client(description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: description.into(),
            basic_challenge: true,
        }
    }

    fn response(self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"));
        if self.basic_challenge {
            response.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"huitong\""));
        }
        response.json(json!({"error": self.error, "error_description": self.description}))
    }
}

/// `POST /oauth/token` with `grant_type=client_credentials`.
#[utoipa::path(
    post,
    path = "/oauth/token",
    tag = "authentication",
    security(()),
    request_body(content = crate::openapi::TokenRequest, content_type = "application/x-www-form-urlencoded",
        description = "OAuth2 client credentials (RFC 6749 §4.4); the client authenticates by HTTP Basic (`Authorization: Basic base64(client_id:client_secret)`) or with `client_id` and `client_secret` in the form, not both"),
    responses(
        (status = 200, description = "An access token (a JWT), usable as `Authorization: Bearer` wherever the key is", body = crate::openapi::TokenAnswer,
            headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 400, description = "RFC 6749 §5.2 error (not problem+json: OAuth2 clients expect this shape): `invalid_request` (not a form, a repeated or missing parameter, two client authentications), `unsupported_grant_type`, `invalid_scope`", body = crate::openapi::OAuthErrorAnswer),
        (status = 401, description = "RFC 6749 §5.2 `invalid_client`: no client authentication, malformed HTTP Basic, a secret that is not a valid key, or a `client_id` that is not its key prefix", body = crate::openapi::OAuthErrorAnswer,
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"huitong\"`"))),
        (status = 500, description = "RFC 6749 §5.2 `server_error`: a fault of the server; the cause is in its log", body = crate::openapi::OAuthErrorAnswer),
    )
)]
pub async fn token(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    match issue(&req, &state, &body).await {
        Ok(response) => response,
        Err(e) => e.response(),
    }
}

async fn issue(req: &HttpRequest, state: &AppState, body: &[u8]) -> Result<HttpResponse, OAuthError> {
    let form_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !form_type {
        return Err(OAuthError::bad_request(
            "invalid_request",
            "send the parameters as application/x-www-form-urlencoded",
        ));
    }
    let mut params: Vec<(String, String)> = Vec::new();
    for (name, value) in url::form_urlencoded::parse(body) {
        if params.iter().any(|(seen, _)| *seen == name) {
            return Err(OAuthError::bad_request(
                "invalid_request",
                format!("the parameter {name} is repeated"),
            ));
        }
        params.push((name.into_owned(), value.into_owned()));
    }
    let param = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    match param("grant_type") {
        None => {
            return Err(OAuthError::bad_request("invalid_request", "grant_type is missing"));
        }
        Some("client_credentials") => {}
        Some(other) => {
            return Err(OAuthError::bad_request(
                "unsupported_grant_type",
                format!("grant_type {other:?} is not supported; use client_credentials"),
            ));
        }
    }
    if param("scope").is_some_and(|s| !s.trim().is_empty()) {
        return Err(OAuthError::bad_request(
            "invalid_scope",
            "scopes are not used: a token carries its credential's role and department",
        ));
    }
    let (client_id, client_secret) = match basic_credentials(req)? {
        Some(basic) => {
            if param("client_secret").is_some() {
                return Err(OAuthError::bad_request(
                    "invalid_request",
                    "authenticate the client one way: HTTP Basic or form fields, not both",
                ));
            }
            basic
        }
        None => match (param("client_id"), param("client_secret")) {
            (Some(id), Some(secret)) => (id.to_string(), secret.to_string()),
            _ => {
                return Err(OAuthError::invalid_client(
                    "client authentication is required: HTTP Basic, or client_id and client_secret",
                ));
            }
        },
    };
    let credential = state.auth.key(client_secret.trim()).await.map_err(|e| match e {
        policy::Error::Unauthenticated(why) => {
            OAuthError::invalid_client(format!("the client secret is not valid ({why})"))
        }
        other => {
            tracing::error!(error = %other, "token endpoint: authentication failed");
            OAuthError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                error: "server_error",
                description: "the server failed; the cause is in its log".into(),
                basic_challenge: false,
            }
        }
    })?;
    if client_id != credential.key_prefix {
        return Err(OAuthError::invalid_client(
            "client_id is not the key prefix of this client secret",
        ));
    }
    let access_token = state.tokens.issue(&credential);
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": state.tokens.lifetime_seconds(),
        })))
}

/// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1), if sent.
fn basic_credentials(req: &HttpRequest) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || OAuthError::invalid_client("the Authorization header is not valid HTTP Basic");
    let encoded = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Basic "))
        .ok_or_else(malformed)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}
