//! The web console (控制台): server-rendered HTML pages with inline SVG charts, no script and
//! nothing loaded from outside the server, Chinese first and English with `?lang=en`.
//!
//! - [`login`]: `GET/POST /console/login` (an API key exchanged for the session cookie),
//!   `POST /console/logout`;
//! - [`pages`]: `GET /console` (a department officer's or platform staff's home page) and
//!   `GET /console/kpis` (the assessment KPIs as charts, per department and over time);
//! - [`applications`]: open-data applications to answer, with approve and reject forms
//!   (`POST /console/open-applications/{id}`);
//! - [`charts`]: the SVG charts.
//!
//! The data quality pages (`/console/quality…`) live with the quality reports
//! ([`crate::quality::page`]) and share this look.

pub mod applications;
pub mod charts;
pub mod login;
pub mod pages;

use std::fmt::Write;

use actix_web::HttpRequest;
use actix_web::HttpResponse;
use actix_web::http::{StatusCode, header};

use crate::auth::{Caller, session_cookie};
pub(crate) use crate::quality::page::{Lang, esc};
use crate::startup::AppState;

/// The console's own rules, after the quality pages' style.
const CONSOLE_STYLE: &str = "header{display:flex;flex-wrap:wrap;align-items:center;gap:.5rem 1rem;\
border-bottom:1px solid #d9e2ec;padding-bottom:.5rem}header .who{margin-left:auto;color:#486581}\
header form{display:inline;margin:0}button{font:inherit;cursor:pointer}\
tr.overdue td{background:#ffe3e3}.badge{border-radius:.6rem;padding:0 .45rem;font-size:.8rem;white-space:nowrap}\
.badge.overdue{background:#e12d39;color:#fff}.badge.failed{background:#e12d39;color:#fff}\
.badge.stale{background:#f0b429;color:#1f2933}.badge.ok{background:#c6f7e2;color:#014d40}\
.cards{display:flex;flex-wrap:wrap;gap:1rem}.card{border:1px solid #d9e2ec;border-radius:.4rem;padding:.75rem 1rem;min-width:13rem}\
.card .rate{font-size:2rem;font-weight:600}.card .of{color:#486581;font-size:.9rem}\
form.filter{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:end}form.filter label{display:flex;flex-direction:column;font-size:.9rem}\
.error{color:#cf1124;font-weight:600}.empty{color:#829ab1}";

/// A console page: the shared style, the header (navigation, who is logged in, logout and
/// the language switch) and `body`.
pub(crate) fn page(status: StatusCode, title: &str, lang: Lang, header_html: &str, body: &str) -> HttpResponse {
    document(status, lang, (title, "汇通 Huitong"), CONSOLE_STYLE, header_html, body)
}

/// An HTML page of the server (console, quality report, portal): `title · site` as its title,
/// the shared style followed by `style`, then `header_html` and `body`; never cached (the pages
/// show live data and who is logged in).
pub(crate) fn document(
    status: StatusCode,
    lang: Lang,
    (title, site): (&str, &str),
    style: &str,
    header_html: &str,
    body: &str,
) -> HttpResponse {
    let page = format!(
        "<!doctype html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} · {}</title>\
         <style>{}{style}</style></head><body>{header_html}<main>{body}</main></body></html>\n",
        lang.t("zh-CN", "en"),
        esc(title),
        esc(site),
        crate::quality::page::STYLE,
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(page)
}

/// One header cell of a [`Table`]: its text (the server's own label) and whether its column
/// holds numbers (right-aligned).
pub(crate) struct Th<'a>(pub(crate) &'a str, pub(crate) bool);

/// A header cell of a text column.
pub(crate) fn th(text: &str) -> Th<'_> {
    Th(text, false)
}

/// An HTML table written a row at a time: its header, the rows the caller writes through
/// [`Table::row`], and, when no row was written, one row saying so across every column.
pub(crate) struct Table {
    html: String,
    columns: usize,
    rows: usize,
}

impl Table {
    /// `<table id=…>` with `head` as its header row.
    pub(crate) fn new(id: &str, head: &[Th<'_>]) -> Self {
        let mut html = format!("<table id=\"{id}\"><thead><tr>");
        for Th(text, numeric) in head {
            let _ = write!(
                html,
                "{}{text}</th>",
                if *numeric { "<th class=\"n\">" } else { "<th>" }
            );
        }
        html.push_str("</tr></thead><tbody>");
        Self {
            html,
            columns: head.len(),
            rows: 0,
        }
    }

    /// Where the next `<tr>…</tr>` is written.
    pub(crate) fn row(&mut self) -> &mut String {
        self.rows += 1;
        &mut self.html
    }

    /// The table's HTML; `empty` fills its one row when no other was written.
    pub(crate) fn finish(mut self, empty: &str) -> String {
        if self.rows == 0 {
            let _ = write!(
                self.html,
                "<tr><td colspan=\"{}\" class=\"empty\">{}</td></tr>",
                self.columns,
                esc(empty)
            );
        }
        self.html.push_str("</tbody></table>");
        self.html
    }
}

/// The link to the same page in the other language: `path` with `query` (already encoded,
/// without `lang`) and `lang=en` for Chinese pages.
pub(crate) fn other_language(lang: Lang, path: &str, query: &str) -> String {
    let (target, label) = match lang {
        Lang::Zh => ("en", "English"),
        Lang::En => ("zh", "中文"),
    };
    let mut href = path.to_string();
    let mut params: Vec<String> = Vec::new();
    if !query.is_empty() {
        params.push(query.to_string());
    }
    if target == "en" {
        params.push("lang=en".into());
    }
    if !params.is_empty() {
        href.push('?');
        href.push_str(&params.join("&"));
    }
    format!(
        "<a id=\"lang-switch\" href=\"{}\" hreflang=\"{target}\">{label}</a>",
        esc(&href)
    )
}

/// The header of a page for a logged-in caller: navigation, who, logout, language.
pub(crate) fn header(lang: Lang, caller: &Caller, path: &str, query: &str) -> String {
    let mut out = String::from("<header><strong>汇通 Huitong</strong><nav>");
    for (href, zh, en) in [
        ("/console", "控制台", "Console"),
        ("/console/kpis", "考核指标", "KPIs"),
        ("/console/quality", "数据质量", "Data quality"),
    ] {
        let current = if href == path { " aria-current=\"page\"" } else { "" };
        let _ = write!(
            out,
            "<a href=\"{href}{}\"{current}>{}</a>",
            lang.suffix(),
            lang.t(zh, en)
        );
    }
    let department = caller.0.department_code.as_deref().unwrap_or("—");
    let _ = write!(
        out,
        "</nav><span class=\"who\">{} · {} · {}</span>\
         <form method=\"post\" action=\"/console/logout{}\"><button type=\"submit\" id=\"logout\">{}</button></form>{}</header>",
        esc(&caller.0.name),
        esc(caller.0.role.code()),
        esc(department),
        lang.suffix(),
        lang.t("退出", "Log out"),
        other_language(lang, path, query)
    );
    out
}

/// The caller of a console page: the `Authorization` header (answered with problem+json when
/// wrong, as the API does), else the session cookie; without a valid session the browser is
/// sent to the login page.
pub(crate) async fn console_caller(req: &HttpRequest, state: &AppState, lang: Lang) -> Result<Caller, HttpResponse> {
    if req.headers().contains_key(header::AUTHORIZATION) {
        return Caller::from_request(req, state)
            .await
            .map_err(|p| actix_web::ResponseError::error_response(&p));
    }
    match session_cookie(req) {
        Some(token) => match Caller::from_session(state, token).await {
            Ok((caller, _)) => Ok(caller),
            Err(_) => Err(to_login(lang)),
        },
        None => Err(to_login(lang)),
    }
}

/// 303 to the login page.
pub(crate) fn to_login(lang: Lang) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/console/login{}", lang.suffix())))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// A stored time as shown: `2026-11-23 08:15` (UTC).
pub(crate) fn when(stored: &str) -> String {
    match (stored.get(..10), stored.get(11..16)) {
        (Some(day), Some(time)) => format!("{day} {time}"),
        _ => stored.to_string(),
    }
}
