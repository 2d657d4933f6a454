//! The console's login and logout, as plain HTML forms: the officer pastes an API key, the
//! server checks it and sets the session cookie (as `POST /api/v1/session` does) and sends the
//! browser on to the console.

use std::fmt::Write;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::{Lang, esc, page};
use crate::problem::Problem;
use crate::quality::page::LangQuery;
use crate::routes::session::{end_session, start_session};
use crate::startup::AppState;

/// The login form's fields.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LoginForm {
    /// The officer's API key.
    #[serde(default)]
    pub key: String,
}

fn login_page(status: StatusCode, lang: Lang, error: Option<&str>) -> HttpResponse {
    let other = super::other_language(lang, "/console/login", "");
    let mut body = format!(
        "<h1>{}</h1><p class=\"rule\">{}</p>",
        lang.t("汇通控制台登录", "Huitong console login"),
        lang.t(
            "使用本部门数据管理员或平台管理员的 API 密钥（ht_ 开头）登录。",
            "Log in with the API key (starting ht_) of a department data officer or of platform staff."
        )
    );
    if let Some(error) = error {
        let _ = write!(
            body,
            "<p class=\"error\" id=\"login-error\" role=\"alert\">{}</p>",
            esc(error)
        );
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/console/login{}\" id=\"login\">\
         <label for=\"key\">{}</label> <input id=\"key\" name=\"key\" type=\"password\" autocomplete=\"off\" required size=\"50\"> \
         <button type=\"submit\">{}</button></form>",
        lang.suffix(),
        lang.t("API 密钥", "API key"),
        lang.t("登录", "Log in")
    );
    let header = format!("<header><strong>汇通 Huitong</strong><span class=\"who\"></span>{other}</header>");
    page(status, lang.t("登录", "Log in"), lang, &header, &body)
}

/// `GET /console/login`: the login form.
#[utoipa::path(
    get,
    path = "/console/login",
    tag = "console",
    security(()),
    params(LangQuery),
    responses(
        (status = 200, description = "The login form as an HTML page", body = String, content_type = "text/html"),
        (status = 422, response = crate::openapi::Invalid),
    )
)]
pub async fn form(query: web::Query<LangQuery>) -> HttpResponse {
    login_page(StatusCode::OK, Lang::from(query.lang.as_deref()), None)
}

/// `POST /console/login`: checks the key; sets the session cookie and sends the browser to
/// `/console`, or shows the form again with why.
#[utoipa::path(
    post,
    path = "/console/login",
    tag = "console",
    security(()),
    params(LangQuery),
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Logged in: the `huitong_session` cookie is set and the browser sent to `/console`",
            headers(("Set-Cookie" = String, description = "`huitong_session=<token>; Max-Age=<seconds>; Path=/; HttpOnly; SameSite=Strict[; Secure]`"),
                ("Location" = String, description = "`/console` (with `?lang=en` for English)"))),
        (status = 401, description = "The key is unknown, malformed, expired or revoked: the form again, with why (HTML)", body = String, content_type = "text/html"),
        (status = 422, response = crate::openapi::Invalid),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<LangQuery>,
    body: web::Form<LoginForm>,
) -> Result<HttpResponse, Problem> {
    let lang = Lang::from(query.lang.as_deref());
    let credential = match state.auth.key(body.key.trim()).await {
        Ok(credential) => credential,
        Err(policy::Error::Unauthenticated(why)) => {
            let message = match lang {
                Lang::Zh => format!("API 密钥无效（{why}）"),
                Lang::En => format!("the API key is not valid ({why})"),
            };
            return Ok(login_page(StatusCode::UNAUTHORIZED, lang, Some(&message)));
        }
        Err(other) => return Err(Problem::internal(&other)),
    };
    let (cookie, _) = start_session(&req, &state, credential.id).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::SET_COOKIE, cookie))
        .insert_header((header::LOCATION, format!("/console{}", lang.suffix())))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// `POST /console/logout`: ends the session, clears the cookie, back to the login form.
#[utoipa::path(
    post,
    path = "/console/logout",
    tag = "console",
    security(()),
    params(LangQuery),
    responses(
        (status = 303, description = "Logged out: the session (if any) is deleted, the cookie cleared and the browser sent to `/console/login`",
            headers(("Set-Cookie" = String, description = "`huitong_session=; Max-Age=0; …`"),
                ("Location" = String, description = "`/console/login`"))),
        (status = 422, response = crate::openapi::Invalid),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<LangQuery>,
) -> Result<HttpResponse, Problem> {
    let lang = Lang::from(query.lang.as_deref());
    let cookie = end_session(&req, &state).await?;
    let mut response = super::to_login(lang);
    response.headers_mut().insert(
        header::SET_COOKIE,
        header::HeaderValue::from_str(&cookie).expect("a cookie is a valid header"),
    );
    Ok(response)
}
