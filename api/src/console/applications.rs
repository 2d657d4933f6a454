//! Open-data applications (开放申请) in the console: the pending applications for a department's
//! datasets (all of them, for platform staff), each with approve and reject forms.

use std::fmt::Write;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use catalog::{ApplicationView, OpenApplication};
use serde::Deserialize;

use super::{Lang, Table, console_caller, esc, header as page_header, page, th, when};
use crate::problem::Problem;
use crate::quality::page::LangQuery;
use crate::startup::AppState;

/// The section listing the applications `view` sees that wait for an answer.
pub(crate) async fn section(state: &AppState, view: ApplicationView, lang: Lang) -> Result<String, Problem> {
    let pending: Vec<OpenApplication> = state
        .catalog
        .open_applications(view)
        .await?
        .into_iter()
        .filter(|a| a.status == "pending")
        .collect();
    let mut table = Table::new(
        "open-applications",
        &[
            th("#"),
            th(lang.t("数据集", "Dataset")),
            th(lang.t("申请人", "Applicant")),
            th(lang.t("用途", "Purpose")),
            th(lang.t("提交时间", "Filed")),
            th(lang.t("答复", "Answer")),
        ],
    );
    for a in &pending {
        let _ = write!(
            table.row(),
            "<tr data-id=\"{id}\"><td>{id}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>\
             <form method=\"post\" action=\"/console/open-applications/{id}{s}\" class=\"approve\" style=\"display:inline\">\
             <input type=\"hidden\" name=\"decision\" value=\"approve\"><button type=\"submit\">{}</button></form> \
             <form method=\"post\" action=\"/console/open-applications/{id}{s}\" class=\"reject\" style=\"display:inline\">\
             <input type=\"hidden\" name=\"decision\" value=\"reject\"><input name=\"reason\" required placeholder=\"{}\"> \
             <button type=\"submit\">{}</button></form></td></tr>",
            esc(&a.dataset_name),
            esc(a.applicant.as_deref().unwrap_or("—")),
            esc(&a.purpose),
            esc(&when(&a.created_at)),
            lang.t("同意", "Approve"),
            lang.t("拒绝理由", "Reason"),
            lang.t("拒绝", "Reject"),
            id = a.id,
            s = lang.suffix(),
        );
    }
    Ok(format!(
        "<h2>{}</h2>{}",
        lang.t("待答复的开放申请", "Open-data applications to answer"),
        table.finish(lang.t("没有待答复的开放申请。", "No application waits for an answer."))
    ))
}

/// The answer form's fields.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct AnswerForm {
    /// `approve` or `reject`.
    #[serde(default)]
    pub decision: String,
    /// Why, for a rejection.
    #[serde(default)]
    pub reason: String,
}

/// `POST /console/open-applications/{id}`: approves or rejects an application from the
/// console; back to the console, or a page saying why not.
#[utoipa::path(
    post,
    path = "/console/open-applications/{id}",
    tag = "console",
    security(("session" = [])),
    params(("id" = i64, Path, description = "The application id"), LangQuery),
    request_body(content = AnswerForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Answered; back to `/console` (or to the login form without a session)"),
        (status = 401, description = "The key in the Authorization header is not valid", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not the dataset's provider nor platform staff: a page saying why (HTML)", body = String, content_type = "text/html"),
        (status = 404, description = "No such application: a page saying why (HTML)", body = String, content_type = "text/html"),
        (status = 409, description = "Already answered: a page saying why (HTML)", body = String, content_type = "text/html"),
        (status = 422, description = "A rejection without a reason, or no decision: a page saying why (HTML)", body = String, content_type = "text/html"),
    )
)]
pub async fn answer(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<i64>,
    query: web::Query<LangQuery>,
    form: web::Form<AnswerForm>,
) -> HttpResponse {
    let lang = Lang::from(query.lang.as_deref());
    let caller = match console_caller(&req, &state, lang).await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let approve = match form.decision.as_str() {
        "approve" => Some(true),
        "reject" => Some(false),
        _ => None,
    };
    let outcome = match approve {
        Some(approve) => {
            crate::routes::open::answer_application(
                &state,
                &caller,
                path.into_inner(),
                approve,
                Some(form.reason.as_str()),
                None,
            )
            .await
        }
        None => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "Invalid input",
            "decision: approve or reject",
        )),
    };
    match outcome {
        Ok(_) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("/console{}", lang.suffix())))
            .finish(),
        Err(problem) => {
            let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            let body = format!(
                "<h1>{}</h1><p class=\"error\" id=\"answer-error\" role=\"alert\">{}</p><p><a href=\"/console{}\">{}</a></p>",
                lang.t("未能答复开放申请", "The application was not answered"),
                esc(&problem.detail),
                lang.suffix(),
                lang.t("返回控制台", "Back to the console")
            );
            page(
                status,
                lang.t("开放申请", "Application"),
                lang,
                &page_header(lang, &caller, "/console", ""),
                &body,
            )
        }
    }
}
