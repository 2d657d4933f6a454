//! The open-data portal (开放数据门户): server-rendered HTML for the public and developers,
//! Chinese first (`?lang=en` for English), no script and nothing loaded from outside the server.
//!
//! - `GET /` — search, browse by theme (资源分类) and by department, the newest datasets;
//! - `GET /datasets?q=&theme=&organization=` — search results;
//! - `GET /datasets/{id}` — one dataset: metadata, data items as served, update cycle, a preview
//!   of its records, its quality score and trend, download buttons and API examples; for a
//!   conditionally open dataset, the application form;
//! - `GET /developer` — sign-up and login, or the developer's account, key and applications;
//!   `POST /developer/signup`, `/developer/login`, `/developer/logout`, `/datasets/{id}/apply`.
//!
//! The preview is an open-data call like any other: decided by [`policy::open`], held to the
//! caller's quota and audited.

use std::fmt::Write;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use catalog::{ApplicationView, OpenApplication, QualityScope, Resource};
use exchange_core::OpenType;
use policy::Role;
use serde::Deserialize;
use serde_json::Value;

use crate::auth::{Caller, session_cookie};
use crate::console::{Lang, Table, esc, other_language, th};
use crate::routes::exchange::CallRecord;
use crate::startup::AppState;

const PREVIEW_ENDPOINT: &str = "GET /datasets/{id}";
const PREVIEW_ROWS: usize = 10;

const PORTAL_STYLE: &str = "header{display:flex;flex-wrap:wrap;align-items:center;gap:.5rem 1rem;\
border-bottom:1px solid #d9e2ec;padding-bottom:.5rem}header nav a{margin-right:1rem}header .who{margin-left:auto;color:#486581}\
header form{display:inline;margin:0}button,input,select,textarea{font:inherit}button{cursor:pointer}\
form.search{display:flex;gap:.5rem;margin:1rem 0}form.search input{flex:1;padding:.4rem}\
.datasets{list-style:none;padding:0}.datasets li{border:1px solid #d9e2ec;border-radius:.4rem;padding:.6rem .9rem;margin:.6rem 0}\
.datasets .meta{color:#486581;font-size:.9rem}.badge{border-radius:.6rem;padding:0 .45rem;font-size:.8rem;white-space:nowrap;\
background:#e3f8ff;color:#0b69a3}.badge.conditional{background:#fff3c4;color:#8d2b0b}.facets{display:flex;flex-wrap:wrap;gap:2rem}\
.downloads a{display:inline-block;border:1px solid #0b69a3;border-radius:.3rem;padding:.25rem .6rem;margin:.2rem;text-decoration:none}\
pre{background:#f0f4f8;padding:.6rem;overflow-x:auto}.error{color:#cf1124;font-weight:600}.note{color:#486581}\
.key{font-family:monospace;background:#fffbea;padding:.4rem;border:1px dashed #f0b429;word-break:break-all}\
form.stack label{display:block;margin:.4rem 0}#preview td,#preview th{white-space:nowrap}form.stack input,form.stack textarea{width:100%;max-width:32rem}";

/// Query of the portal's pages.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PortalQuery {
    /// `zh` (default) or `en`.
    #[serde(default)]
    pub lang: Option<String>,
    /// Search words (name, summary, data items, department).
    #[serde(default)]
    pub q: Option<String>,
    /// A theme (资源分类): `base`, `theme` or `department`.
    #[serde(default)]
    pub theme: Option<String>,
    /// A providing department's code.
    #[serde(default)]
    pub organization: Option<String>,
}

fn lang_of(query: &PortalQuery) -> Lang {
    Lang::from(query.lang.as_deref())
}

fn html(status: StatusCode, title: &str, lang: Lang, header: &str, body: &str) -> HttpResponse {
    let site = lang.t("汇通开放数据", "Huitong Open Data");
    crate::console::document(status, lang, (title, site), PORTAL_STYLE, header, body)
}

/// The developer logged in with this browser, if any.
async fn developer_of(req: &HttpRequest, state: &AppState) -> Option<policy::Credential> {
    let token = session_cookie(req)?;
    let (caller, _) = Caller::from_session(state, token).await.ok()?;
    (caller.0.role == Role::OpenDataDeveloper).then_some(caller.0)
}

fn header_html(lang: Lang, path: &str, query: &str, developer: Option<&policy::Credential>) -> String {
    let mut out = format!(
        "<header><strong><a href=\"/{}\">{}</a></strong><nav>",
        lang.suffix(),
        lang.t("汇通开放数据", "Huitong Open Data")
    );
    for (href, zh, en) in [
        ("/", "首页", "Home"),
        ("/datasets", "数据目录", "Datasets"),
        ("/developer", "开发者中心", "Developers"),
        ("/api/docs", "API 文档", "API docs"),
    ] {
        let current = if href == path { " aria-current=\"page\"" } else { "" };
        let _ = write!(
            out,
            "<a href=\"{href}{}\"{current}>{}</a>",
            if href == "/api/docs" { "" } else { lang.suffix() },
            lang.t(zh, en)
        );
    }
    out.push_str("</nav><span class=\"who\">");
    if let Some(developer) = developer {
        let _ = write!(
            out,
            "{} <form method=\"post\" action=\"/developer/logout{}\"><button type=\"submit\" id=\"logout\">{}</button></form>",
            esc(&developer.name),
            lang.suffix(),
            lang.t("退出", "Log out")
        );
    }
    let _ = write!(out, "</span>{}</header>", other_language(lang, path, query));
    out
}

fn theme_label(lang: Lang, theme: catalog::Classification) -> &'static str {
    match theme {
        catalog::Classification::Base => lang.t("基础信息", "Base"),
        catalog::Classification::Theme => lang.t("主题信息", "Themes"),
        catalog::Classification::Department => lang.t("部门信息", "Departments' own"),
    }
}

fn open_label(lang: Lang, open: OpenType) -> &'static str {
    match open {
        OpenType::Unconditional => lang.t("无条件开放", "Open"),
        OpenType::Conditional => lang.t("有条件开放", "Open on application"),
        OpenType::NotOpen => lang.t("不予开放", "Not open"),
    }
}

fn cycle_label(lang: Lang, cycle: exchange_core::UpdateCycle) -> String {
    match lang {
        Lang::Zh => cycle.label_zh().to_string(),
        Lang::En => cycle.code().replace('_', " "),
    }
}

/// What a listing page shows: the open datasets (by code), their latest quality scores, and
/// the developer logged in with this browser, if any.
struct Listing {
    all: Vec<Resource>,
    scores: std::collections::HashMap<String, f64>,
    developer: Option<policy::Credential>,
}

impl Listing {
    async fn load(req: &HttpRequest, state: &AppState) -> Result<Self, HttpResponse> {
        let all = state.catalog.open_datasets().await.map_err(|e| {
            tracing::error!(error = %e, "portal: reading the catalog failed");
            HttpResponse::InternalServerError().finish()
        })?;
        Ok(Self {
            all,
            scores: latest_scores(state).await,
            developer: developer_of(req, state).await,
        })
    }
}

fn dataset_list(lang: Lang, list: &[&Resource], scores: &std::collections::HashMap<String, f64>) -> String {
    if list.is_empty() {
        return format!(
            "<p class=\"empty\" id=\"no-results\">{}</p>",
            lang.t("没有找到符合条件的数据集。", "No dataset matches.")
        );
    }
    let mut out = String::from("<ul class=\"datasets\" id=\"results\">");
    for r in list {
        let conditional = r.meta.open_type == OpenType::Conditional;
        let score = scores
            .get(&r.code)
            .map(|s| format!(" · {} {s:.1}", lang.t("质量评分", "quality")))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<li class=\"dataset\" data-id=\"{code}\"><a href=\"/datasets/{code}{suffix}\"><strong>{name}</strong></a> \
             <span class=\"badge{cls}\">{open}</span><div class=\"meta\">{provider} · {theme} · {cycle}{score}</div>\
             <div>{summary}</div></li>",
            code = esc(&r.code),
            suffix = lang.suffix(),
            name = esc(&r.meta.name),
            cls = if conditional { " conditional" } else { "" },
            open = open_label(lang, r.meta.open_type),
            provider = esc(&r.provider_name),
            theme = theme_label(lang, r.meta.classification),
            cycle = cycle_label(lang, r.meta.update_cycle),
            summary = esc(&r.meta.summary),
        );
    }
    out.push_str("</ul>");
    out
}

async fn latest_scores(state: &AppState) -> std::collections::HashMap<String, f64> {
    state
        .catalog
        .latest_quality_reports()
        .await
        // A page without scores beats no page: the fault goes to the log.
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "portal: reading the quality reports failed");
            Vec::new()
        })
        .into_iter()
        .filter(|r| r.scope == QualityScope::Resource)
        .map(|r| (r.name, r.overall))
        .collect()
}

fn search_form(lang: Lang, q: &str) -> String {
    format!(
        "<form class=\"search\" method=\"get\" action=\"/datasets\" role=\"search\">\
         <input type=\"search\" name=\"q\" id=\"q\" value=\"{}\" placeholder=\"{}\">{}\
         <button type=\"submit\" id=\"search\">{}</button></form>",
        esc(q),
        lang.t(
            "搜索数据集：名称、摘要、信息项、部门",
            "Search datasets: name, summary, items, department"
        ),
        if lang == Lang::En {
            "<input type=\"hidden\" name=\"lang\" value=\"en\">"
        } else {
            ""
        },
        lang.t("搜索", "Search")
    )
}

fn facets(lang: Lang, all: &[Resource]) -> String {
    let mut themes: Vec<(catalog::Classification, usize)> = Vec::new();
    let mut orgs: Vec<(String, String, usize)> = Vec::new();
    for r in all {
        match themes.iter_mut().find(|(t, _)| *t == r.meta.classification) {
            Some((_, n)) => *n += 1,
            None => themes.push((r.meta.classification, 1)),
        }
        match orgs.iter_mut().find(|(c, _, _)| *c == r.meta.provider_code) {
            Some((_, _, n)) => *n += 1,
            None => orgs.push((r.meta.provider_code.clone(), r.provider_name.clone(), 1)),
        }
    }
    let amp = if lang == Lang::En { "&amp;lang=en" } else { "" };
    let mut out = format!(
        "<div class=\"facets\"><section id=\"themes\"><h2>{}</h2><ul>",
        lang.t("按主题浏览", "By theme")
    );
    for (theme, n) in themes {
        let _ = write!(
            out,
            "<li><a href=\"/datasets?theme={}{amp}\">{}</a> ({n})</li>",
            theme.code(),
            theme_label(lang, theme)
        );
    }
    let _ = write!(
        out,
        "</ul></section><section id=\"departments\"><h2>{}</h2><ul>",
        lang.t("按部门浏览", "By department")
    );
    for (code, name, n) in orgs {
        let _ = write!(
            out,
            "<li><a href=\"/datasets?organization={}{amp}\">{}</a> ({n})</li>",
            esc(&code.to_lowercase()),
            esc(&name)
        );
    }
    out.push_str("</ul></section></div>");
    out
}

/// `GET /`: the portal's home page.
#[utoipa::path(
    get,
    path = "/",
    tag = "portal",
    security(()),
    params(PortalQuery),
    responses((status = 200, description = "开放数据门户 The portal's home page (HTML): search, browse by theme and department, the datasets", body = String, content_type = "text/html")),
)]
pub async fn home(req: HttpRequest, state: web::Data<AppState>, query: web::Query<PortalQuery>) -> HttpResponse {
    let lang = lang_of(&query);
    let Listing { all, scores, developer } = match Listing::load(&req, &state).await {
        Ok(listing) => listing,
        Err(response) => return response,
    };
    let list: Vec<&Resource> = all.iter().collect();
    let body = format!(
        "<h1>{}</h1><p class=\"note\">{}</p>{}{}<h2>{}</h2>{}",
        lang.t("汇通开放数据", "Huitong Open Data"),
        lang.t(
            "政府开放的数据集：免费下载 CSV、JSON、Parquet、XLSX，或通过开放接口与 CKAN 兼容接口调用。",
            "Datasets the government opens: download CSV, JSON, Parquet or XLSX for free, or call the open API and its CKAN-compatible API."
        ),
        search_form(lang, ""),
        facets(lang, &all),
        lang.t("全部数据集", "All datasets"),
        dataset_list(lang, &list, &scores),
    );
    html(
        StatusCode::OK,
        lang.t("首页", "Home"),
        lang,
        &header_html(lang, "/", "", developer.as_ref()),
        &body,
    )
}

/// `GET /datasets`: datasets matching a search, a theme or a department.
#[utoipa::path(
    get,
    path = "/datasets",
    tag = "portal",
    security(()),
    params(PortalQuery),
    responses((status = 200, description = "数据目录 The datasets that match (HTML)", body = String, content_type = "text/html")),
)]
pub async fn search(req: HttpRequest, state: web::Data<AppState>, query: web::Query<PortalQuery>) -> HttpResponse {
    let lang = lang_of(&query);
    let Listing { all, scores, developer } = match Listing::load(&req, &state).await {
        Ok(listing) => listing,
        Err(response) => return response,
    };
    let theme = query
        .theme
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(catalog::Classification::parse);
    let found: Vec<&Resource> = match theme {
        // A theme that is none of the three matches nothing.
        Some(None) => Vec::new(),
        theme => search_in(&all, &query, theme.flatten()),
    };
    let q = query.q.clone().unwrap_or_default();
    let body = format!(
        "<h1>{}</h1>{}<p id=\"count\">{}</p>{}",
        lang.t("数据目录", "Datasets"),
        search_form(lang, &q),
        match lang {
            Lang::Zh => format!("共 {} 个数据集", found.len()),
            Lang::En => format!("{} datasets", found.len()),
        },
        dataset_list(lang, &found, &scores),
    );
    let mut params = Vec::new();
    for (k, v) in [
        ("q", &query.q),
        ("theme", &query.theme),
        ("organization", &query.organization),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            params.push(format!(
                "{k}={}",
                url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
            ));
        }
    }
    html(
        StatusCode::OK,
        lang.t("数据目录", "Datasets"),
        lang,
        &header_html(lang, "/datasets", &params.join("&"), developer.as_ref()),
        &body,
    )
}

fn search_in<'a>(
    all: &'a [Resource],
    query: &PortalQuery,
    theme: Option<catalog::Classification>,
) -> Vec<&'a Resource> {
    let organization = query.organization.as_deref().filter(|o| !o.is_empty());
    crate::routes::open_catalog::search(all, query.q.as_deref(), organization, theme, None)
        .into_iter()
        .map(|(_, r)| r)
        .collect()
}

fn not_found(lang: Lang, id: &str, developer: Option<&policy::Credential>) -> HttpResponse {
    let body = format!(
        "<h1>{}</h1><p id=\"not-found\">{}</p>",
        lang.t("没有这个数据集", "No such dataset"),
        match lang {
            Lang::Zh => format!("没有编号为 {} 的开放数据集。", esc(id)),
            Lang::En => format!("No open dataset has the id {}.", esc(id)),
        }
    );
    html(
        StatusCode::NOT_FOUND,
        lang.t("没有这个数据集", "No such dataset"),
        lang,
        &header_html(lang, "/datasets", "", developer),
        &body,
    )
}

/// `GET /datasets/{id}`: one dataset's page.
#[utoipa::path(
    get,
    path = "/datasets/{id}",
    tag = "portal",
    security(()),
    params(("id" = String, Path, description = "The dataset id (its resource code)"), PortalQuery),
    responses(
        (status = 200, description = "数据集详情 The dataset's page (HTML): metadata, items, preview, quality, downloads, API examples", body = String, content_type = "text/html"),
        (status = 404, description = "No open dataset has this id (HTML)", body = String, content_type = "text/html"),
    ),
)]
pub async fn dataset(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<PortalQuery>,
) -> HttpResponse {
    let lang = lang_of(&query);
    let id = path.into_inner();
    let developer = developer_of(&req, &state).await;
    let resource = match state.catalog.resource_by_code(&id).await {
        Ok(r) if policy::open::is_open(&r) => r,
        _ => return not_found(lang, &id, developer.as_ref()),
    };
    // The preview is an open-data call: authorized, held to quota, audited.
    let mut call = CallRecord::new(&req, PREVIEW_ENDPOINT, &id);
    let preview = match crate::routes::open::open_read(&req, &state, &id, None, None, &mut call).await {
        Ok(read) => crate::routes::query::records_page(&read, None, PREVIEW_ROWS).map(|(rows, version, _)| {
            call.entry.row_count = Some(rows.len() as i64);
            (read.view.names(), rows, version)
        }),
        Err(problem) => Err(problem),
    };
    let application = match &developer {
        Some(d) => state
            .catalog
            .open_applications(ApplicationView::Applicant(d.id))
            .await
            .unwrap_or_default()
            .into_iter()
            .find(|a| a.dataset == id),
        None => None,
    };
    let reports = state
        .catalog
        .quality_reports(QualityScope::Resource, &id, 30)
        .await
        .unwrap_or_default();
    let base = crate::routes::open_catalog::base_url(&req);
    let body = dataset_html(
        lang,
        &resource,
        &preview,
        &reports,
        &base,
        developer.as_ref(),
        application.as_ref(),
    );
    let outcome = match &preview {
        Ok(_) => "allowed",
        Err(problem) => problem.code,
    };
    let page = html(
        StatusCode::OK,
        &resource.meta.name,
        lang,
        &header_html(lang, &format!("/datasets/{id}"), "", developer.as_ref()),
        &body,
    );
    call.finish_as(&state, page, outcome).await
}

type Preview = Result<(Vec<&'static str>, Vec<Value>, i64), crate::problem::Problem>;

fn dataset_html(
    lang: Lang,
    r: &Resource,
    preview: &Preview,
    reports: &[catalog::QualityReport],
    base: &str,
    developer: Option<&policy::Credential>,
    application: Option<&OpenApplication>,
) -> String {
    let m = &r.meta;
    let code = esc(&r.code);
    let mut out = format!(
        "<h1 id=\"dataset-name\">{}</h1><p><span class=\"badge{}\" id=\"open-type\">{}</span></p><p>{}</p>",
        esc(&m.name),
        if m.open_type == OpenType::Conditional {
            " conditional"
        } else {
            ""
        },
        open_label(lang, m.open_type),
        esc(&m.summary)
    );
    let _ = write!(
        out,
        "<table id=\"metadata\"><tbody>\
         <tr><th>{}</th><td>{code}</td></tr><tr><th>{}</th><td>{}</td></tr><tr><th>{}</th><td>{}</td></tr>\
         <tr><th>{}</th><td id=\"update-cycle\">{}</td></tr><tr><th>{}</th><td>{}</td></tr><tr><th>{}</th><td>{}</td></tr>\
         </tbody></table>",
        lang.t("资源代码", "Resource code"),
        lang.t("提供部门", "Provider"),
        esc(&r.provider_name),
        lang.t("资源分类", "Theme"),
        theme_label(lang, m.classification),
        lang.t("更新周期", "Update cycle"),
        cycle_label(lang, m.update_cycle),
        lang.t("发布日期", "Published"),
        m.publish_date.map(|d| d.to_string()).unwrap_or_else(|| "—".into()),
        lang.t("数据格式", "Format"),
        esc(&m.format),
    );
    // Items as served.
    let _ = write!(
        out,
        "<h2>{}</h2><table id=\"items\"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        lang.t("信息项", "Data items"),
        lang.t("名称", "Label"),
        lang.t("字段", "Field"),
        lang.t("类型", "Type"),
        lang.t("开放方式", "Served")
    );
    for item in &m.items {
        let served = match catalog::served(item.sensitivity) {
            Some(catalog::Served::Plain) => lang.t("明文", "plain"),
            Some(catalog::Served::Masked) if m.open_type == OpenType::Conditional => {
                lang.t("脱敏（申请获批后明文）", "masked (plain once approved)")
            }
            Some(catalog::Served::Masked) => lang.t("脱敏", "masked"),
            None => continue,
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{served}</td></tr>",
            esc(&item.label_zh),
            esc(&item.name),
            esc(&item.data_type)
        );
    }
    out.push_str("</tbody></table>");
    // Preview.
    let _ = write!(out, "<h2>{}</h2>", lang.t("数据预览", "Preview"));
    match preview {
        Ok((names, rows, version)) => {
            let _ = write!(
                out,
                "<p class=\"note\" id=\"version\">{} {version}</p><div style=\"overflow-x:auto\"><table id=\"preview\"><thead><tr>",
                lang.t("数据版本", "Library version")
            );
            for n in names {
                let label = match lang {
                    Lang::Zh => m
                        .items
                        .iter()
                        .find(|i| i.name == *n)
                        .map_or(*n, |i| i.label_zh.as_str()),
                    Lang::En => n,
                };
                let _ = write!(out, "<th title=\"{}\">{}</th>", esc(n), esc(label));
            }
            out.push_str("</tr></thead><tbody>");
            for row in rows {
                out.push_str("<tr>");
                for n in names {
                    let _ = write!(out, "<td>{}</td>", esc(row[*n].as_str().unwrap_or("")));
                }
                out.push_str("</tr>");
            }
            out.push_str("</tbody></table></div>");
        }
        Err(problem) => {
            let _ = write!(
                out,
                "<p class=\"note\" id=\"preview-refused\" data-code=\"{}\">{}</p>",
                problem.code,
                match problem.code {
                    "developer_key_required" | "application_required" => lang
                        .t(
                            "本数据集有条件开放：注册开发者并提交申请，获批后可预览和下载。",
                            "This dataset is open on application: sign up as a developer and apply; once approved you can preview and download it."
                        )
                        .to_string(),
                    "quota_exceeded" => lang
                        .t("访问过于频繁，请稍后再试。", "Too many requests; try again later.")
                        .to_string(),
                    _ => esc(&problem.detail),
                }
            );
        }
    }
    // Quality.
    let _ = write!(out, "<h2>{}</h2>", lang.t("数据质量", "Data quality"));
    match reports.first() {
        Some(latest) => {
            let mut points: Vec<(String, Option<f64>)> = reports
                .iter()
                .map(|r| (r.computed_at.get(5..10).unwrap_or("").to_string(), Some(r.overall)))
                .collect();
            points.reverse();
            let _ = write!(
                out,
                "<p><span class=\"big\" id=\"quality-score\">{:.1}</span> / 100</p>{}",
                latest.overall,
                crate::quality::page::line_chart(
                    "quality-trend",
                    lang.t("质量评分趋势", "Quality score trend"),
                    &points,
                    lang
                )
            );
        }
        None => {
            let _ = write!(
                out,
                "<p class=\"empty\">{}</p>",
                lang.t("尚未评分。", "Not scored yet.")
            );
        }
    }
    // Downloads and API examples.
    let downloadable = preview.is_ok();
    let _ = write!(out, "<h2>{}</h2>", lang.t("下载", "Download"));
    if downloadable {
        out.push_str("<p class=\"downloads\" id=\"downloads\">");
        for (format, label) in [
            ("csv&amp;bom=true", lang.t("CSV（Excel）", "CSV (Excel)")),
            ("csv", "CSV"),
            ("xlsx", "XLSX"),
            ("json", "JSON"),
            ("ndjson", "NDJSON"),
            ("parquet", "Parquet"),
        ] {
            let _ = write!(
                out,
                "<a href=\"/open/v1/datasets/{code}/download?format={format}\" download>{label}</a>"
            );
        }
        out.push_str("</p>");
    } else {
        let _ = write!(
            out,
            "<p class=\"note\">{}</p>",
            lang.t("获批后可下载。", "Downloads open once your application is approved.")
        );
    }
    let key = if m.open_type == OpenType::Conditional {
        " \\\n  -H 'Authorization: Bearer <developer key>'"
    } else {
        ""
    };
    let _ = write!(
        out,
        "<h2>{}</h2><pre id=\"api-examples\">curl '{base}/open/v1/datasets/{code}/records?limit=10'{key}\n\
         curl -o {code}.csv '{base}/open/v1/datasets/{code}/download?format=csv&amp;bom=true'{key}\n\
         # CKAN {}\nckanapi action package_show id={code} -r {base}</pre>",
        lang.t("接口示例", "API examples"),
        lang.t("兼容接口", "compatible API"),
    );
    // Applications.
    if m.open_type == OpenType::Conditional {
        let _ = write!(out, "<h2>{}</h2>", lang.t("开放申请", "Application"));
        match (developer, application) {
            (None, _) => {
                let _ = write!(
                    out,
                    "<p id=\"apply-signup\"><a href=\"/developer{}\">{}</a></p>",
                    lang.suffix(),
                    lang.t(
                        "注册或登录开发者账号后申请。",
                        "Sign up or log in as a developer to apply."
                    )
                );
            }
            (Some(_), Some(a)) if a.status == "pending" || a.status == "approved" => {
                let _ = write!(
                    out,
                    "<p id=\"application-status\" data-status=\"{}\">{}: {}</p>",
                    esc(&a.status),
                    lang.t("申请状态", "Application status"),
                    status_label(lang, &a.status)
                );
            }
            (Some(_), _) => {
                let _ = write!(
                    out,
                    "<form class=\"stack\" method=\"post\" action=\"/datasets/{code}/apply{}\" id=\"apply\">\
                     <label>{}<textarea name=\"purpose\" id=\"purpose\" rows=\"3\" required></textarea></label>\
                     <button type=\"submit\">{}</button></form>",
                    lang.suffix(),
                    lang.t("用途", "Purpose"),
                    lang.t("提交申请", "Apply")
                );
            }
        }
    }
    out
}

fn status_label(lang: Lang, status: &str) -> &'static str {
    match status {
        "pending" => lang.t("待审核", "pending"),
        "approved" => lang.t("已通过", "approved"),
        "rejected" => lang.t("未通过", "rejected"),
        "expired" => lang.t("已过期", "expired"),
        _ => lang.t("未知", "unknown"),
    }
}

/// The developer center's forms.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct DeveloperForm {
    /// Sign-up: the developer's name.
    #[serde(default)]
    pub name: String,
    /// Sign-up: contact email.
    #[serde(default)]
    pub email: String,
    /// Sign-up: company or organization.
    #[serde(default)]
    pub organization: String,
    /// Login: the developer's API key.
    #[serde(default)]
    pub key: String,
    /// Application: what the data is for.
    #[serde(default)]
    pub purpose: String,
}

/// `GET /developer`: sign-up and login, or the developer's account and applications.
#[utoipa::path(
    get,
    path = "/developer",
    tag = "portal",
    security(()),
    params(PortalQuery),
    responses((status = 200, description = "开发者中心 Sign-up and login forms, or the logged-in developer's account, key and applications (HTML)", body = String, content_type = "text/html")),
)]
pub async fn developer(req: HttpRequest, state: web::Data<AppState>, query: web::Query<PortalQuery>) -> HttpResponse {
    let lang = lang_of(&query);
    let developer = developer_of(&req, &state).await;
    developer_page(&state, lang, developer.as_ref(), None, None).await
}

async fn developer_page(
    state: &AppState,
    lang: Lang,
    developer: Option<&policy::Credential>,
    new_key: Option<&str>,
    error: Option<(StatusCode, String)>,
) -> HttpResponse {
    let mut body = format!("<h1>{}</h1>", lang.t("开发者中心", "Developer center"));
    let status = error.as_ref().map_or(StatusCode::OK, |(s, _)| *s);
    if let Some((_, message)) = &error {
        let _ = write!(
            body,
            "<p class=\"error\" id=\"form-error\" role=\"alert\">{}</p>",
            esc(message)
        );
    }
    match developer {
        Some(d) => {
            let account = state.catalog.developer(d.id).await.ok().flatten();
            if let Some(key) = new_key {
                let _ = write!(
                    body,
                    "<p>{}</p><p class=\"key\" id=\"new-key\">{}</p>",
                    lang.t(
                        "这是您的 API 密钥，只显示这一次，请妥善保存：",
                        "This is your API key, shown this once; keep it safe:"
                    ),
                    esc(key)
                );
            }
            let _ = write!(
                body,
                "<table id=\"account\"><tbody><tr><th>{}</th><td>{}</td></tr><tr><th>{}</th><td>{}</td></tr>\
                 <tr><th>{}</th><td><code id=\"key-prefix\">{}…</code> \
                 <form method=\"post\" action=\"/developer/rotate{}\" id=\"rotate\" style=\"display:inline\">\
                 <button type=\"submit\">{}</button></form></td></tr></tbody></table>",
                lang.t("姓名", "Name"),
                esc(account.as_ref().map_or(d.name.as_str(), |a| a.name.as_str())),
                lang.t("单位", "Organization"),
                esc(account.as_ref().map_or("", |a| a.organization.as_str())),
                lang.t("API 密钥", "API key"),
                esc(&d.key_prefix),
                lang.suffix(),
                lang.t(
                    "更换密钥（旧密钥立即失效）",
                    "Replace the key (the old one stops at once)"
                )
            );
            let applications = state
                .catalog
                .open_applications(ApplicationView::Applicant(d.id))
                .await
                .unwrap_or_default();
            let _ = write!(body, "<h2>{}</h2>", lang.t("我的申请", "My applications"));
            let mut table = Table::new(
                "applications",
                &[
                    th(lang.t("数据集", "Dataset")),
                    th(lang.t("用途", "Purpose")),
                    th(lang.t("状态", "Status")),
                    th(lang.t("答复", "Answer")),
                ],
            );
            for a in &applications {
                let _ = write!(
                    table.row(),
                    "<tr data-id=\"{}\"><td><a href=\"/datasets/{}{}\">{}</a></td><td>{}</td><td class=\"status\">{}</td><td>{}</td></tr>",
                    a.id,
                    esc(&a.dataset),
                    lang.suffix(),
                    esc(&a.dataset_name),
                    esc(&a.purpose),
                    status_label(lang, &a.status),
                    esc(a.reason.as_deref().unwrap_or(""))
                );
            }
            body.push_str(&table.finish(lang.t("尚无申请。", "No applications yet.")));
        }
        None => {
            let _ = write!(
                body,
                "<div class=\"facets\"><section><h2>{}</h2><form class=\"stack\" method=\"post\" action=\"/developer/signup{s}\" id=\"signup\">\
                 <label>{}<input name=\"name\" id=\"signup-name\" required></label>\
                 <label>{}<input name=\"email\" id=\"signup-email\" type=\"email\" required></label>\
                 <label>{}<input name=\"organization\" id=\"signup-organization\"></label>\
                 <button type=\"submit\">{}</button></form></section>\
                 <section><h2>{}</h2><form class=\"stack\" method=\"post\" action=\"/developer/login{s}\" id=\"login\">\
                 <label>{}<input name=\"key\" id=\"login-key\" type=\"password\" autocomplete=\"off\" required></label>\
                 <button type=\"submit\">{}</button></form></section></div>",
                lang.t("注册开发者", "Sign up"),
                lang.t("姓名", "Name"),
                lang.t("邮箱", "Email"),
                lang.t("单位（可选）", "Organization (optional)"),
                lang.t("注册", "Sign up"),
                lang.t("已有账号", "Log in"),
                lang.t("API 密钥", "API key"),
                lang.t("登录", "Log in"),
                s = lang.suffix(),
            );
        }
    }
    html(
        status,
        lang.t("开发者中心", "Developer center"),
        lang,
        &header_html(lang, "/developer", "", developer),
        &body,
    )
}

fn with_cookie(mut response: HttpResponse, cookie: &str) -> HttpResponse {
    if let Ok(value) = header::HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn see_other(location: String) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// A problem's message for a form: its detail.
fn form_error(problem: &crate::problem::Problem) -> (StatusCode, String) {
    (
        StatusCode::from_u16(problem.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
        problem.detail.clone(),
    )
}

/// `POST /developer/signup`: signs up, logs the browser in and shows the key once.
#[utoipa::path(
    post,
    path = "/developer/signup",
    tag = "portal",
    security(()),
    params(PortalQuery),
    request_body(content = DeveloperForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Signed up: the session cookie is set and the page shows the key once (HTML)", body = String, content_type = "text/html"),
        (status = 409, description = "An account with this email exists: the form again, with why (HTML)", body = String, content_type = "text/html"),
        (status = 422, description = "A field is invalid: the form again, with why (HTML)", body = String, content_type = "text/html"),
    ),
)]
pub async fn sign_up(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<PortalQuery>,
    form: web::Form<DeveloperForm>,
) -> HttpResponse {
    let lang = lang_of(&query);
    let input = crate::routes::open::SignUp {
        name: form.name.clone(),
        email: form.email.clone(),
        organization: form.organization.clone(),
    };
    let signed = match crate::routes::open::register(&state, &input).await {
        Ok(signed) => signed,
        Err(problem) => return developer_page(&state, lang, None, None, Some(form_error(&problem))).await,
    };
    let cookie = match crate::routes::session::start_session(&req, &state, signed.credential.id).await {
        Ok((cookie, _)) => cookie,
        Err(problem) => return actix_web::ResponseError::error_response(&problem),
    };
    let page = developer_page(&state, lang, Some(&signed.credential), Some(&signed.key), None).await;
    with_cookie(page, &cookie)
}

/// `POST /developer/login`: a developer key for the session cookie.
#[utoipa::path(
    post,
    path = "/developer/login",
    tag = "portal",
    security(()),
    params(PortalQuery),
    request_body(content = DeveloperForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Logged in: the session cookie is set; on to `/developer`"),
        (status = 401, description = "Not a valid developer key: the form again, with why (HTML)", body = String, content_type = "text/html"),
    ),
)]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<PortalQuery>,
    form: web::Form<DeveloperForm>,
) -> HttpResponse {
    let lang = lang_of(&query);
    let refused = |why: &str| {
        (
            StatusCode::UNAUTHORIZED,
            match lang {
                Lang::Zh => format!("API 密钥无效（{why}）"),
                Lang::En => format!("the API key is not valid ({why})"),
            },
        )
    };
    let credential = match state.auth.key(form.key.trim()).await {
        Ok(c) if c.role == Role::OpenDataDeveloper => c,
        Ok(_) => {
            return developer_page(&state, lang, None, None, Some(refused("not a developer key"))).await;
        }
        Err(policy::Error::Unauthenticated(why)) => {
            return developer_page(&state, lang, None, None, Some(refused(why))).await;
        }
        Err(other) => return actix_web::ResponseError::error_response(&crate::problem::Problem::internal(&other)),
    };
    match crate::routes::session::start_session(&req, &state, credential.id).await {
        Ok((cookie, _)) => with_cookie(see_other(format!("/developer{}", lang.suffix())), &cookie),
        Err(problem) => actix_web::ResponseError::error_response(&problem),
    }
}

/// `POST /developer/logout`: ends the session.
#[utoipa::path(
    post,
    path = "/developer/logout",
    tag = "portal",
    security(()),
    params(PortalQuery),
    responses((status = 303, description = "Logged out; on to `/developer`")),
)]
pub async fn logout(req: HttpRequest, state: web::Data<AppState>, query: web::Query<PortalQuery>) -> HttpResponse {
    let lang = lang_of(&query);
    match crate::routes::session::end_session(&req, &state).await {
        Ok(cookie) => with_cookie(see_other(format!("/developer{}", lang.suffix())), &cookie),
        Err(problem) => actix_web::ResponseError::error_response(&problem),
    }
}

/// `POST /developer/rotate`: replaces the logged-in developer's key (the old one is revoked at
/// once; the account and applications follow the new key) and shows the new key once.
#[utoipa::path(
    post,
    path = "/developer/rotate",
    tag = "portal",
    security(()),
    params(PortalQuery),
    responses(
        (status = 200, description = "The new key, shown once; the browser's session moves to it (HTML)", body = String, content_type = "text/html"),
        (status = 401, description = "Not logged in as a developer: the developer center's forms (HTML)", body = String, content_type = "text/html"),
    ),
)]
pub async fn rotate(req: HttpRequest, state: web::Data<AppState>, query: web::Query<PortalQuery>) -> HttpResponse {
    let lang = lang_of(&query);
    let Some(developer) = developer_of(&req, &state).await else {
        let message = lang
            .t("请先登录开发者账号。", "Log in as a developer first.")
            .to_string();
        return developer_page(&state, lang, None, None, Some((StatusCode::UNAUTHORIZED, message))).await;
    };
    let rotated = match policy::credentials::rotate(&state.catalog, developer.id, chrono::Duration::zero(), None).await
    {
        Ok(rotated) => rotated,
        Err(policy::Error::Catalog(e)) => {
            let problem = crate::problem::Problem::from(e);
            return developer_page(&state, lang, Some(&developer), None, Some(form_error(&problem))).await;
        }
        Err(other) => return actix_web::ResponseError::error_response(&crate::problem::Problem::internal(&other)),
    };
    state.auth.forget(developer.id);
    let cookie = match crate::routes::session::start_session(&req, &state, rotated.issued.credential.id).await {
        Ok((cookie, _)) => cookie,
        Err(problem) => return actix_web::ResponseError::error_response(&problem),
    };
    let page = developer_page(
        &state,
        lang,
        Some(&rotated.issued.credential),
        Some(&rotated.issued.key),
        None,
    )
    .await;
    with_cookie(page, &cookie)
}

/// `POST /datasets/{id}/apply`: the logged-in developer applies for a conditional dataset.
#[utoipa::path(
    post,
    path = "/datasets/{id}/apply",
    tag = "portal",
    security(()),
    params(("id" = String, Path, description = "The dataset id"), PortalQuery),
    request_body(content = DeveloperForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Applied; on to `/developer`, which lists the application"),
        (status = 401, description = "Not logged in as a developer: the developer center's forms (HTML)", body = String, content_type = "text/html"),
        (status = 409, description = "Already applied, or the dataset needs no application: the developer center, with why (HTML)", body = String, content_type = "text/html"),
        (status = 422, description = "No purpose given: the developer center, with why (HTML)", body = String, content_type = "text/html"),
    ),
)]
pub async fn apply(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<PortalQuery>,
    form: web::Form<DeveloperForm>,
) -> HttpResponse {
    let lang = lang_of(&query);
    let id = path.into_inner();
    let Some(developer) = developer_of(&req, &state).await else {
        let message = lang
            .t("请先登录开发者账号。", "Log in as a developer first.")
            .to_string();
        return developer_page(&state, lang, None, None, Some((StatusCode::UNAUTHORIZED, message))).await;
    };
    match crate::routes::open::file_application(&state, &id, developer.id, &form.purpose).await {
        Ok(_) => see_other(format!("/developer{}", lang.suffix())),
        Err(problem) => developer_page(&state, lang, Some(&developer), None, Some(form_error(&problem))).await,
    }
}
