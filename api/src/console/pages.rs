//! `GET /console`: the home page — for a department officer its resources, incoming demands
//! with deadlines, objections and connector runs; for platform staff the registrations to
//! review, overdue demands and objections, sync health, the quality ranking and the KPIs.
//! `GET /console/kpis`: the KPIs as charts, per department and over time.

use std::fmt::Write;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use catalog::{Demand, DemandStatus, DemandView, ObjectionQuery, ObjectionStatus, Resource, ResourceStatus, RunStatus};
use chrono::{DateTime, Utc};
use exchange_core::UpdateCycle;
use policy::Role;
use serde::Deserialize;

use super::charts::{call_bars, rate_bars, rate_line};
use super::{Lang, Table, Th, console_caller, esc, header, page, th, when};
use crate::auth::Caller;
use crate::kpi::route::{KpiQuery, department_of, period_of};
use crate::kpi::{KPIS, KpiReport, Period, compute, percent};
use crate::problem::Problem;
use crate::quality::page::LangQuery;
use crate::startup::AppState;

fn demand_status(lang: Lang, s: DemandStatus) -> &'static str {
    match s {
        DemandStatus::Pending => lang.t("待答复", "pending"),
        DemandStatus::Approved => lang.t("已同意", "approved"),
        DemandStatus::Rejected => lang.t("已拒绝", "rejected"),
        DemandStatus::Objected => lang.t("异议中（待仲裁）", "objected (to arbitrate)"),
    }
}

fn objection_status(lang: Lang, s: ObjectionStatus) -> &'static str {
    match s {
        ObjectionStatus::Open => lang.t("待处理", "open"),
        ObjectionStatus::Confirmed => lang.t("已确认无误", "confirmed"),
        ObjectionStatus::Corrected => lang.t("已更正", "corrected"),
    }
}

fn resource_status(lang: Lang, s: ResourceStatus) -> &'static str {
    match s {
        ResourceStatus::Draft => lang.t("草稿", "draft"),
        ResourceStatus::Submitted => lang.t("待审核", "submitted"),
        ResourceStatus::Published => lang.t("已发布", "published"),
        ResourceStatus::Retired => lang.t("已下线", "retired"),
    }
}

fn overdue_badge(lang: Lang) -> String {
    format!("<span class=\"badge overdue\">{}</span>", lang.t("已逾期", "overdue"))
}

/// How long a connector may go without a successful run before it is stale: its resource's
/// update cycle plus a day of slack; irregular sources are never stale.
fn stale_after(cycle: UpdateCycle) -> Option<chrono::Duration> {
    let days = match cycle {
        UpdateCycle::RealTime => 1,
        UpdateCycle::Daily => 2,
        UpdateCycle::Weekly => 8,
        UpdateCycle::Monthly => 32,
        UpdateCycle::Quarterly => 93,
        UpdateCycle::HalfYearly => 184,
        UpdateCycle::Yearly => 366,
        UpdateCycle::Irregular => return None,
    };
    Some(chrono::Duration::days(days))
}

/// A connector's health, from its last runs.
enum Health {
    Ok,
    Failed,
    Stale,
    Never,
    Running,
}

impl Health {
    fn badge(&self, lang: Lang) -> String {
        let (class, zh, en) = match self {
            Health::Ok => ("ok", "正常", "healthy"),
            Health::Failed => ("failed", "最近一次失败", "last run failed"),
            Health::Stale => ("stale", "数据过期", "stale"),
            Health::Never => ("stale", "从未同步", "never run"),
            Health::Running => ("ok", "同步中", "running"),
        };
        format!("<span class=\"badge {class}\">{}</span>", lang.t(zh, en))
    }

    fn is_problem(&self) -> bool {
        matches!(self, Health::Failed | Health::Stale | Health::Never)
    }
}

fn parse_time(stored: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(stored).ok().map(|t| t.with_timezone(&Utc))
}

/// One connector's row for the sync tables.
struct ConnectorRow {
    name: String,
    department: String,
    resource_code: String,
    health: Health,
    runs: Vec<catalog::SyncRun>,
}

async fn connector_rows(
    state: &AppState,
    resources: &[Resource],
    department_id: Option<i64>,
) -> Result<Vec<ConnectorRow>, Problem> {
    let now = Utc::now();
    let mut rows = Vec::new();
    for connector in state.catalog.connectors().await? {
        if department_id.is_some_and(|d| d != connector.department_id) {
            continue;
        }
        let runs = state.catalog.runs(connector.id, 5).await?;
        let cycle = resources
            .iter()
            .find(|r| r.id == connector.resource_id)
            .map(|r| r.meta.update_cycle);
        let last_success = runs
            .iter()
            .filter(|r| r.status == RunStatus::Succeeded)
            .filter_map(|r| r.finished_at.as_deref().and_then(parse_time))
            .max();
        let health = match runs.first() {
            None => Health::Never,
            Some(last) if last.status == RunStatus::Failed => Health::Failed,
            Some(last) if last.status == RunStatus::Running => Health::Running,
            Some(_) => match (last_success, cycle.and_then(stale_after)) {
                (Some(at), Some(limit)) if now - at > limit => Health::Stale,
                _ => Health::Ok,
            },
        };
        rows.push(ConnectorRow {
            name: connector.name,
            department: connector.department_code,
            resource_code: connector.resource_code,
            health,
            runs,
        });
    }
    Ok(rows)
}

fn run_status(lang: Lang, run: &catalog::SyncRun) -> String {
    match run.status {
        RunStatus::Succeeded => lang.t("成功", "succeeded").to_string(),
        RunStatus::Running => lang.t("进行中", "running").to_string(),
        RunStatus::Failed => format!(
            "<span class=\"badge failed\">{}</span> {}",
            lang.t("失败", "failed"),
            esc(run.error.as_deref().unwrap_or_default())
        ),
    }
}

fn demands_table(id: &str, demands: &[&Demand], lang: Lang, empty: &str) -> String {
    let mut table = Table::new(
        id,
        &[
            th("#"),
            th(lang.t("需求", "Demand")),
            th(lang.t("资源", "Resource")),
            th(lang.t("需求方", "Consumer")),
            th(lang.t("答复部门", "Answered by")),
            th(lang.t("状态", "Status")),
            th(lang.t("答复期限", "Due")),
        ],
    );
    for d in demands {
        let class = if d.overdue { " class=\"overdue\"" } else { "" };
        let _ = write!(
            table.row(),
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td></tr>",
            d.id,
            esc(&d.title),
            esc(d.resource_code.as_deref().unwrap_or("—")),
            esc(&d.consumer_department),
            esc(&d.responsible_department),
            demand_status(lang, d.status),
            esc(&when(&d.due_at)),
            if d.overdue { overdue_badge(lang) } else { String::new() }
        );
    }
    table.finish(empty)
}

fn objections_table(id: &str, objections: &[catalog::Objection], lang: Lang) -> String {
    let mut table = Table::new(
        id,
        &[
            th("#"),
            th(lang.t("资源", "Resource")),
            th(lang.t("字段", "Field")),
            th(lang.t("提出部门", "Raised by")),
            th(lang.t("处理部门", "Routed to")),
            th(lang.t("状态", "Status")),
            th(lang.t("处理期限", "Due")),
        ],
    );
    for o in objections {
        let class = if o.overdue { " class=\"overdue\"" } else { "" };
        let _ = write!(
            table.row(),
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td></tr>",
            o.id,
            esc(&o.resource_code),
            esc(o.field.as_deref().unwrap_or("—")),
            esc(&o.raised_by_department),
            esc(&o.routed_to_department),
            objection_status(lang, o.status),
            esc(&when(&o.due_at)),
            if o.overdue { overdue_badge(lang) } else { String::new() }
        );
    }
    table.finish(lang.t("无", "None"))
}

/// The KPI cards: each KPI's rate over the period, with its figures.
fn kpi_cards(report: &KpiReport, lang: Lang) -> String {
    let mut out = String::from("<div class=\"cards\" id=\"kpi-cards\">");
    for kpi in &report.kpis {
        let _ = write!(
            out,
            "<div class=\"card\" id=\"kpi-{}\"><div class=\"label\">{}</div><div class=\"rate\">{}</div>\
             <div class=\"of\"><span class=\"numerator\">{}</span> / <span class=\"denominator\">{}</span></div></div>",
            kpi.code.code(),
            lang.t(kpi.label_zh, kpi.label_en),
            percent(kpi.ratio.rate),
            kpi.ratio.numerator,
            kpi.ratio.denominator
        );
    }
    out.push_str("</div>");
    out
}

/// `GET /console`: the home page of the logged-in officer.
#[utoipa::path(
    get,
    path = "/console",
    tag = "console",
    security(("session" = []), ("bearer" = [])),
    params(LangQuery),
    responses(
        (status = 200, description = "The home page (HTML): a department officer's resources, incoming demands with deadlines (overdue highlighted), objections and connector runs; for platform staff the registrations to review, overdue demands and objections, sync health, the quality ranking and the KPIs", body = String, content_type = "text/html"),
        (status = 303, description = "No console session: to `/console/login`", headers(("Location" = String, description = "`/console/login`"))),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::Invalid),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn home(req: HttpRequest, state: web::Data<AppState>, query: web::Query<LangQuery>) -> HttpResponse {
    let lang = Lang::from(query.lang.as_deref());
    let caller = match console_caller(&req, &state, lang).await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let body = if caller.is_platform() {
        platform_home(&state, &caller, lang).await
    } else {
        match caller.0.department_id {
            Some(department) => department_home(&state, &caller, department, lang).await,
            None => Err(crate::auth::forbidden(
                "the console is for department officers and platform staff; this key acts for no department".into(),
            )),
        }
    };
    match body {
        Ok(body) => page(
            StatusCode::OK,
            lang.t("控制台", "Console"),
            lang,
            &header(lang, &caller, "/console", ""),
            &body,
        ),
        Err(problem) => actix_web::ResponseError::error_response(&problem),
    }
}

async fn department_home(state: &AppState, caller: &Caller, department: i64, lang: Lang) -> Result<String, Problem> {
    let department_row = state.catalog.department(department).await?;
    let mut body = format!(
        "<h1>{} · {}</h1>",
        esc(&department_row.name),
        lang.t("部门控制台", "department console")
    );
    if caller.is(&[Role::ProviderAdmin]) {
        let period = Period::default_until(Utc::now().date_naive());
        let report = compute(state, &period, Some(&department_row.code))
            .await
            .map_err(|e| Problem::internal(&e))?;
        let _ = write!(
            body,
            "<h2>{} <small>{} – {}</small></h2>{}<p><a href=\"/console/kpis{}\">{}</a></p>",
            lang.t("本部门考核指标", "Our KPIs"),
            report.from,
            report.to,
            kpi_cards(&report, lang),
            lang.suffix(),
            lang.t("查看指标图表 →", "KPI charts →")
        );
    }

    let resources = state.catalog.resources().await?;
    let mine: Vec<&Resource> = resources.iter().filter(|r| r.provider_id == department).collect();
    let _ = write!(body, "<h2>{}</h2>", lang.t("我的资源", "My resources"));
    let mut table = Table::new(
        "my-resources",
        &[
            th(lang.t("资源代码", "Code")),
            th(lang.t("名称", "Name")),
            th(lang.t("状态", "Status")),
            th(lang.t("共享类型", "Share type")),
            th(lang.t("开放类型", "Open type")),
            th(lang.t("更新周期", "Update cycle")),
            Th(lang.t("库记录数", "Records"), true),
        ],
    );
    for r in &mine {
        let records = r
            .meta
            .library
            .as_deref()
            .and_then(|l| state.libraries.get(l))
            .and_then(|l| l.len().ok())
            .map_or_else(|| "—".to_string(), |n| n.to_string());
        let (share, open, cycle) = match lang {
            Lang::Zh => (
                r.meta.share_type.label_zh(),
                r.meta.open_type.label_zh(),
                r.meta.update_cycle.label_zh(),
            ),
            Lang::En => (
                r.meta.share_type.code(),
                r.meta.open_type.code(),
                r.meta.update_cycle.code(),
            ),
        };
        let _ = write!(
            table.row(),
            "<tr><td><a href=\"/console/quality/{}{}\">{}</a></td><td>{}</td><td>{}</td><td>{share}</td><td>{open}</td><td>{cycle}</td><td class=\"n\">{records}</td></tr>",
            esc(&r.code),
            lang.suffix(),
            esc(&r.code),
            esc(&r.meta.name),
            resource_status(lang, r.status),
        );
    }
    body.push_str(&table.finish(lang.t("本部门尚未编目资源。", "No resource catalogued yet.")));

    let mut incoming = state.catalog.demands(DemandView::Incoming(department)).await?;
    // Pending first, the most urgent first; answered ones after.
    incoming.sort_by(|a, b| {
        (a.status != DemandStatus::Pending, a.due_at.as_str())
            .cmp(&(b.status != DemandStatus::Pending, b.due_at.as_str()))
    });
    let refs: Vec<&Demand> = incoming.iter().collect();
    let _ = write!(
        body,
        "<h2>{}</h2>{}",
        lang.t("待本部门答复的需求", "Incoming demands"),
        demands_table(
            "incoming-demands",
            &refs,
            lang,
            lang.t("没有需要答复的需求。", "No demand to answer.")
        )
    );

    let objections: Vec<catalog::Objection> = state
        .catalog
        .objections(&ObjectionQuery {
            department_id: Some(department),
            ..ObjectionQuery::default()
        })
        .await?
        .into_iter()
        .filter(|o| o.routed_department_id == department)
        .collect();
    let _ = write!(
        body,
        "<h2>{}</h2>{}",
        lang.t("需本部门处理的异议", "Objections to answer"),
        objections_table("objections", &objections, lang)
    );

    body.push_str(&super::applications::section(state, catalog::ApplicationView::Provider(department), lang).await?);

    let connectors = connector_rows(state, &resources, Some(department)).await?;
    let _ = write!(body, "<h2>{}</h2>", lang.t("数据源同步", "Connector runs"));
    let mut table = Table::new(
        "connector-runs",
        &[
            th(lang.t("数据源", "Connector")),
            th(lang.t("资源", "Resource")),
            th(lang.t("健康", "Health")),
            th(lang.t("开始时间", "Started")),
            th(lang.t("结果", "Result")),
            Th(lang.t("读取/新增/更新/隔离", "read/new/updated/quarantined"), true),
        ],
    );
    for c in &connectors {
        let class = if c.health.is_problem() {
            " class=\"overdue\""
        } else {
            ""
        };
        if c.runs.is_empty() {
            let _ = write!(
                table.row(),
                "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td colspan=\"3\">—</td></tr>",
                esc(&c.name),
                esc(&c.resource_code),
                c.health.badge(lang)
            );
        }
        for (i, run) in c.runs.iter().enumerate() {
            let _ = write!(
                table.row(),
                "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}/{}/{}/{}</td></tr>",
                if i == 0 { class } else { "" },
                if i == 0 { esc(&c.name) } else { String::new() },
                if i == 0 { esc(&c.resource_code) } else { String::new() },
                if i == 0 { c.health.badge(lang) } else { String::new() },
                esc(&when(&run.started_at)),
                run_status(lang, run),
                run.counts.read,
                run.counts.inserted,
                run.counts.updated,
                run.counts.rejected
            );
        }
    }
    body.push_str(&table.finish(lang.t("本部门没有数据源。", "No connector of ours.")));
    Ok(body)
}

async fn platform_home(state: &AppState, caller: &Caller, lang: Lang) -> Result<String, Problem> {
    let period = Period::default_until(Utc::now().date_naive());
    let report = compute(state, &period, None).await.map_err(|e| Problem::internal(&e))?;
    let mut body = format!(
        "<h1>{}</h1><h2>{} <small>{} – {}</small></h2>{}<p><a href=\"/console/kpis{}\">{}</a></p>",
        lang.t("平台控制台", "Platform console"),
        lang.t("考核指标", "KPIs"),
        report.from,
        report.to,
        kpi_cards(&report, lang),
        lang.suffix(),
        lang.t("按部门、按月查看指标图表 →", "KPI charts by department and month →")
    );

    let resources = state.catalog.resources().await?;
    let submitted: Vec<&Resource> = resources
        .iter()
        .filter(|r| r.status == ResourceStatus::Submitted)
        .collect();
    let _ = write!(
        body,
        "<h2>{} <small>({})</small></h2>",
        lang.t("待审核的资源注册", "Registrations to review"),
        submitted.len(),
    );
    let mut table = Table::new(
        "registrations",
        &[
            th(lang.t("资源代码", "Code")),
            th(lang.t("名称", "Name")),
            th(lang.t("提供方", "Provider")),
            th(lang.t("提交时间", "Submitted")),
        ],
    );
    for r in &submitted {
        let _ = write!(
            table.row(),
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.code),
            esc(&r.meta.name),
            esc(&r.provider_name),
            esc(&when(&r.updated_at))
        );
    }
    body.push_str(&table.finish(lang.t("没有待审核的注册。", "Nothing to review.")));

    let overdue = state.catalog.demands(DemandView::Overdue(None)).await?;
    let all = state.catalog.demands(DemandView::All).await?;
    let to_arbitrate: Vec<&Demand> = all.iter().filter(|d| d.status == DemandStatus::Objected).collect();
    let overdue_refs: Vec<&Demand> = overdue.iter().collect();
    let _ = write!(
        body,
        "<h2>{} <small>({})</small></h2>{}<h2>{} <small>({})</small></h2>{}",
        lang.t("逾期未答复的需求", "Overdue demands"),
        overdue.len(),
        demands_table(
            "overdue-demands",
            &overdue_refs,
            lang,
            lang.t("没有逾期需求。", "No overdue demand.")
        ),
        lang.t("待仲裁的需求异议", "Demand objections to arbitrate"),
        to_arbitrate.len(),
        demands_table(
            "to-arbitrate",
            &to_arbitrate,
            lang,
            lang.t("没有待仲裁的异议。", "Nothing to arbitrate.")
        )
    );
    let overdue_objections = state
        .catalog
        .objections(&ObjectionQuery {
            overdue: true,
            ..ObjectionQuery::default()
        })
        .await?;
    let _ = write!(
        body,
        "<h2>{} <small>({})</small></h2>{}",
        lang.t("逾期未处理的数据异议", "Overdue data objections"),
        overdue_objections.len(),
        objections_table("overdue-objections", &overdue_objections, lang)
    );

    body.push_str(&super::applications::section(state, catalog::ApplicationView::All, lang).await?);

    let mut connectors = connector_rows(state, &resources, None).await?;
    connectors.sort_by_key(|c| !c.health.is_problem());
    let problems = connectors.iter().filter(|c| c.health.is_problem()).count();
    let _ = write!(
        body,
        "<h2>{} <small>({} / {})</small></h2><p class=\"rule\">{}</p><table id=\"sync-health\"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        lang.t("同步健康", "Sync health"),
        problems,
        connectors.len(),
        lang.t(
            "最近一次同步失败，或最近一次成功同步早于资源更新周期加一天，即为异常。",
            "A connector is unhealthy when its last run failed, or its last successful run is older than its resource's update cycle plus a day."
        ),
        lang.t("数据源", "Connector"),
        lang.t("部门", "Department"),
        lang.t("资源", "Resource"),
        lang.t("健康", "Health"),
        lang.t("最近一次同步", "Last run"),
    );
    for c in &connectors {
        let class = if c.health.is_problem() {
            " class=\"overdue\""
        } else {
            ""
        };
        let last = c.runs.first().map_or_else(
            || "—".to_string(),
            |r| format!("{} {}", esc(&when(&r.started_at)), run_status(lang, r)),
        );
        let _ = write!(
            body,
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{last}</td></tr>",
            esc(&c.name),
            esc(&c.department),
            esc(&c.resource_code),
            c.health.badge(lang)
        );
    }
    body.push_str("</tbody></table>");

    let ranking = crate::routes::quality::ranking(state, caller).await?;
    let _ = write!(
        body,
        "<h2>{}</h2><table id=\"quality-top\"><thead><tr><th class=\"n\">{}</th><th>{}</th><th class=\"n\">{}</th></tr></thead><tbody>",
        lang.t("数据质量排名", "Quality ranking"),
        lang.t("排名", "Rank"),
        lang.t("名称", "Name"),
        lang.t("综合得分", "Overall"),
    );
    for item in ranking.iter().take(5) {
        let _ = write!(
            body,
            "<tr><td class=\"n\">{}</td><td><a href=\"/console/quality/{}{}\">{}</a></td><td class=\"n\">{:.1}</td></tr>",
            item.rank,
            esc(&item.name),
            lang.suffix(),
            esc(&item.label_zh),
            item.overall
        );
    }
    let _ = write!(
        body,
        "</tbody></table><p><a href=\"/console/quality{}\">{}</a></p>",
        lang.suffix(),
        lang.t("完整排名 →", "Full ranking →")
    );
    Ok(body)
}

/// Query of `GET /console/kpis`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KpiPageQuery {
    /// First day, `YYYY-MM-DD`; default: eleven months before `to`'s month began.
    #[serde(default)]
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD`; default: today.
    #[serde(default)]
    pub to: Option<String>,
    /// Only this department (platform staff; a provider admin sees its own).
    #[serde(default)]
    pub department: Option<String>,
    /// `zh` (default) or `en`.
    #[serde(default)]
    pub lang: Option<String>,
}

/// `GET /console/kpis`: the KPIs as charts — each KPI's monthly line, each department's bars —
/// and calls per resource.
#[utoipa::path(
    get,
    path = "/console/kpis",
    tag = "console",
    security(("session" = []), ("bearer" = [])),
    params(KpiPageQuery),
    responses(
        (status = 200, description = "The KPI charts (HTML, inline SVG)", body = String, content_type = "text/html"),
        (status = 303, description = "No console session: to `/console/login`", headers(("Location" = String, description = "`/console/login`"))),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, description = "`forbidden`: not platform staff or a provider admin, or another department asked for by a provider admin", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The page again with why (HTML): `from`/`to` not a date, `from` after `to`, a period over 120 months, an unknown department", body = String, content_type = "text/html"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn kpis(req: HttpRequest, state: web::Data<AppState>, query: web::Query<KpiPageQuery>) -> HttpResponse {
    let query = query.into_inner();
    let lang = Lang::from(query.lang.as_deref());
    let caller = match console_caller(&req, &state, lang).await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let api_query = KpiQuery {
        from: query.from.clone(),
        to: query.to.clone(),
        department: query.department.clone(),
    };
    // The language switch keeps the period and department.
    let kept: Vec<String> = [
        ("from", &query.from),
        ("to", &query.to),
        ("department", &query.department),
    ]
    .iter()
    .filter_map(|(name, value)| {
        value
            .as_deref()
            .filter(|v| !v.is_empty())
            .map(|v| format!("{name}={}", url_encode(v)))
    })
    .collect();
    let head = header(lang, &caller, "/console/kpis", &kept.join("&"));
    let title = lang.t("考核指标", "KPIs");
    let departments = match state.catalog.departments().await {
        Ok(d) => d,
        Err(e) => return actix_web::ResponseError::error_response(&Problem::from(e)),
    };
    let outcome = async {
        let department = department_of(&state, &caller, &api_query).await?;
        let period = period_of(&api_query, Utc::now().date_naive())?;
        let report = compute(&state, &period, department.as_deref())
            .await
            .map_err(|e| Problem::internal(&e))?;
        Ok::<_, Problem>(report)
    }
    .await;
    let form = filter_form(&query, &caller, &departments, lang);
    match outcome {
        Ok(report) => page(
            StatusCode::OK,
            title,
            lang,
            &head,
            &format!("{form}{}", kpis_html(&report, lang)),
        ),
        Err(problem) if problem.status == 422 => {
            let body = format!(
                "<h1>{title}</h1>{form}<p class=\"error\" id=\"kpi-error\" role=\"alert\">{}</p>",
                esc(&problem.detail)
            );
            page(StatusCode::UNPROCESSABLE_ENTITY, title, lang, &head, &body)
        }
        Err(problem) => actix_web::ResponseError::error_response(&problem),
    }
}

fn url_encode(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

fn filter_form(query: &KpiPageQuery, caller: &Caller, departments: &[catalog::Department], lang: Lang) -> String {
    let mut out = format!(
        "<form class=\"filter\" method=\"get\" action=\"/console/kpis\" id=\"kpi-filter\">\
         <label>{}<input type=\"date\" name=\"from\" value=\"{}\"></label>\
         <label>{}<input type=\"date\" name=\"to\" value=\"{}\"></label>",
        lang.t("起始日期", "From"),
        esc(query.from.as_deref().unwrap_or_default()),
        lang.t("截止日期", "To"),
        esc(query.to.as_deref().unwrap_or_default()),
    );
    if caller.is_platform() {
        let _ = write!(
            out,
            "<label>{}<select name=\"department\"><option value=\"\">{}</option>",
            lang.t("部门", "Department"),
            lang.t("全部部门", "All departments")
        );
        for d in departments {
            let selected = if query.department.as_deref() == Some(d.code.as_str()) {
                " selected"
            } else {
                ""
            };
            let _ = write!(
                out,
                "<option value=\"{}\"{selected}>{} {}</option>",
                esc(&d.code),
                esc(&d.code),
                esc(&d.name)
            );
        }
        out.push_str("</select></label>");
    }
    if lang == Lang::En {
        out.push_str("<input type=\"hidden\" name=\"lang\" value=\"en\">");
    }
    let _ = write!(
        out,
        "<button type=\"submit\">{}</button></form>",
        lang.t("查询", "Show")
    );
    out
}

fn kpis_html(report: &KpiReport, lang: Lang) -> String {
    let scope = match &report.department {
        Some(code) => report
            .departments
            .iter()
            .find(|d| &d.code == code)
            .map_or_else(|| code.clone(), |d| format!("{} {}", d.code, d.name)),
        None => lang.t("全部部门", "all departments").to_string(),
    };
    let mut body = format!(
        "<h1>{} <small id=\"kpi-period\">{} – {} · {}</small></h1>{}",
        lang.t("考核指标", "KPIs"),
        report.from,
        report.to,
        esc(&scope),
        kpi_cards(report, lang)
    );
    for code in KPIS {
        let kpi = report.kpi(code);
        let rule = match lang {
            Lang::Zh => code.rule_zh(),
            Lang::En => code.rule_en(),
        };
        let _ = write!(
            body,
            "<h2 id=\"section-{}\">{}</h2><p class=\"rule\">{}</p><div class=\"charts\">",
            code.code(),
            lang.t(kpi.label_zh, kpi.label_en),
            esc(rule)
        );
        let points: Vec<(String, crate::kpi::Ratio)> = kpi.series.iter().map(|p| (p.month.clone(), p.ratio)).collect();
        let title = match lang {
            Lang::Zh => format!("{}（按月）", kpi.label_zh),
            Lang::En => format!("{} by month", kpi.label_en),
        };
        let _ = write!(
            body,
            "<figure>{}</figure>",
            rate_line(&format!("trend-{}", code.code()), &title, &points, lang)
        );
        let bars: Vec<(String, crate::kpi::Ratio)> = report
            .departments
            .iter()
            .filter(|d| d.get(code).denominator > 0)
            .map(|d| (format!("{} {}", d.code, d.name), d.get(code)))
            .collect();
        let title = match lang {
            Lang::Zh => format!("{}（按部门）", kpi.label_zh),
            Lang::En => format!("{} by department", kpi.label_en),
        };
        let _ = write!(
            body,
            "<figure>{}</figure></div>",
            rate_bars(&format!("departments-{}", code.code()), &title, &bars, lang)
        );
    }
    let _ = write!(
        body,
        "<h2 id=\"section-calls\">{}</h2><p class=\"rule\">{}</p>",
        lang.t("资源调用量", "Calls per resource"),
        lang.t(
            "期内共享交换接口（/api/v1/exchange/…）的调用，按审计记录统计：成功（策略允许）与拒绝。",
            "Calls of the exchange API (/api/v1/exchange/…) in the period, from the audit trail: allowed by policy, and refused."
        )
    );
    let rows: Vec<(String, i64, i64)> = report
        .calls
        .iter()
        .take(15)
        .map(|c| (format!("{} {}", c.resource_code, c.name), c.allowed, c.denied))
        .collect();
    let _ = write!(
        body,
        "<figure>{}</figure>",
        call_bars(
            "calls-chart",
            lang.t("各资源调用量（成功/拒绝）", "Calls per resource (allowed / denied)"),
            &rows,
            lang
        ),
    );
    let mut table = Table::new(
        "calls",
        &[
            th(lang.t("资源代码", "Code")),
            th(lang.t("名称", "Name")),
            th(lang.t("提供方", "Provider")),
            Th(lang.t("成功", "Allowed"), true),
            Th(lang.t("拒绝", "Denied"), true),
        ],
    );
    for c in &report.calls {
        let _ = write!(
            table.row(),
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&c.resource_code),
            esc(&c.name),
            esc(&c.department),
            c.allowed,
            c.denied
        );
    }
    body.push_str(&table.finish(lang.t("期内无调用。", "No call in the period.")));
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn irregular_sources_are_never_stale() {
        assert_eq!(stale_after(UpdateCycle::Irregular), None);
        assert_eq!(stale_after(UpdateCycle::Daily), Some(chrono::Duration::days(2)));
    }
}
