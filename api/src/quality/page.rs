//! The quality report pages of the web console (数据质量报告), server-rendered HTML with inline
//! SVG charts (no script, nothing loaded from outside the server): `GET /console/quality`
//! ranks every library and resource; `GET /console/quality/{name}` shows one library (by
//! name) or resource (by code) with a trend line per dimension and per-field bars. Chinese
//! first; `?lang=en` for English.

use std::fmt::Write;

use actix_web::{HttpRequest, HttpResponse, web};

use crate::auth::Caller;
use crate::problem::Problem;
use crate::quality::Report;
use crate::quality::rules::{DIMENSIONS, Dimension};
use crate::routes::quality::{QualityDetail, Ranked, TrendQuery, detail, library_subject, ranking, resource_subject};
use crate::startup::AppState;

/// The page language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    Zh,
    En,
}

impl Lang {
    pub(crate) fn from(query: Option<&str>) -> Self {
        if query == Some("en") { Lang::En } else { Lang::Zh }
    }

    pub(crate) fn t<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Lang::Zh => "",
            Lang::En => "?lang=en",
        }
    }

    fn dimension(self, d: Dimension) -> &'static str {
        match self {
            Lang::Zh => d.label_zh(),
            Lang::En => d.label_en(),
        }
    }
}

/// Query of the ranking page.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LangQuery {
    /// `zh` (default) or `en`.
    #[serde(default)]
    pub lang: Option<String>,
}

/// Escapes text for HTML content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A score as shown: one decimal, or a dash when not measured.
fn score(s: Option<f64>) -> String {
    s.map_or_else(|| "—".to_string(), |s| format!("{s:.1}"))
}

fn html(status: actix_web::http::StatusCode, title: &str, lang: Lang, body: &str) -> HttpResponse {
    crate::console::document(status, lang, (title, "汇通 Huitong"), "", "", body)
}

pub(crate) const STYLE: &str = "body{font-family:system-ui,'PingFang SC','Microsoft YaHei',sans-serif;margin:2rem auto;\
max-width:72rem;padding:0 1rem;color:#1f2933}h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}\
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #d9e2ec;padding:.35rem .5rem;text-align:left;\
vertical-align:top}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}.big{font-size:2.5rem;font-weight:600}\
.charts{display:flex;flex-wrap:wrap;gap:1rem}figure{margin:0}svg text{font-size:11px;fill:#334e68}\
.rule{color:#486581;font-size:.9rem}nav a{margin-right:1rem}";

/// A line chart of scores (0–100) over reports, oldest left.
pub(crate) fn line_chart(id: &str, title: &str, points: &[(String, Option<f64>)], lang: Lang) -> String {
    use crate::console::charts::{TrendAxes, TrendPoint, trend};
    let values: Vec<String> = points.iter().map(|(_, v)| score(*v)).collect();
    let desc = format!(
        "{}: {}",
        lang.t("各次测评得分，由早到晚", "scores of each report, oldest first"),
        values.join(", ")
    );
    let points: Vec<TrendPoint> = points
        .iter()
        .map(|(label, value)| TrendPoint {
            label: label.clone(),
            value: *value,
            tip: score(*value),
        })
        .collect();
    let axes = TrendAxes {
        y_suffix: "",
        x_label: lang.t("测评时间（库版本）", "report time (library version)"),
        y_label: Some(lang.t("得分", "score")),
    };
    trend(id, title, &desc, &points, &axes)
}

/// Horizontal bars, one per field, 0–100.
fn bar_chart(id: &str, title: &str, bars: &[(String, Option<f64>)], lang: Lang) -> String {
    const LABEL: f64 = 240.0;
    const BAR: f64 = 300.0;
    const ROW: f64 = 22.0;
    const TOP: f64 = 26.0;
    let w = LABEL + BAR + 56.0;
    let h = TOP + ROW * bars.len() as f64 + 34.0;
    let summary: Vec<String> = bars.iter().map(|(l, v)| format!("{l} {}", score(*v))).collect();
    let mut svg = format!(
        "<svg id=\"{id}\" class=\"bars\" role=\"img\" aria-labelledby=\"{id}-t {id}-d\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\"><title id=\"{id}-t\">{}</title><desc id=\"{id}-d\">{}</desc>\
         <text x=\"0\" y=\"14\" font-weight=\"600\">{}</text>",
        esc(title),
        esc(&summary.join("; ")),
        esc(title)
    );
    for (i, (label, v)) in bars.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let len = BAR * v.unwrap_or(0.0) / 100.0;
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{LABEL}\" y=\"{}\" width=\"{len:.1}\" height=\"{}\" fill=\"#3ebd93\"><title>{}: {}</title></rect>\
             <text x=\"{:.1}\" y=\"{}\">{}</text>",
            LABEL - 6.0,
            y + 14.0,
            esc(label),
            y + 3.0,
            ROW - 6.0,
            esc(label),
            score(*v),
            LABEL + len + 4.0,
            y + 14.0,
            score(*v)
        );
    }
    let axis_y = TOP + ROW * bars.len() as f64 + 2.0;
    let _ = write!(
        svg,
        "<line x1=\"{LABEL}\" x2=\"{}\" y1=\"{axis_y}\" y2=\"{axis_y}\" stroke=\"#829ab1\"/>",
        LABEL + BAR
    );
    for tick in [0.0, 50.0, 100.0] {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{tick}</text>",
            LABEL + BAR * tick / 100.0,
            axis_y + 14.0
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text></svg>",
        LABEL + BAR / 2.0,
        axis_y + 30.0,
        lang.t("得分（0–100）", "score (0–100)")
    );
    svg
}

fn nav(lang: Lang, here: &str) -> String {
    let other = match lang {
        Lang::Zh => format!("<a href=\"{here}?lang=en\">English</a>"),
        Lang::En => format!("<a href=\"{here}\">中文</a>"),
    };
    format!(
        "<nav><a href=\"/console{}\">{}</a><a href=\"/console/quality{}\">{}</a>{other}</nav>",
        lang.suffix(),
        lang.t("控制台", "Console"),
        lang.suffix(),
        lang.t("数据质量排名", "Quality ranking")
    )
}

fn ranking_html(items: &[Ranked], lang: Lang) -> String {
    let mut body = nav(lang, "/console/quality");
    let _ = write!(
        body,
        "<h1>{}</h1><p class=\"rule\">{}</p><table><caption>{}</caption><thead><tr><th class=\"n\">{}</th><th>{}</th><th>{}</th>\
         <th class=\"n\">{}</th>",
        lang.t("数据质量报告", "Data quality report"),
        lang.t(
            "每次同步提交后自动测评打分（0–100），按综合得分排名。",
            "Scored 0–100 after every committed sync run, ranked by overall score."
        ),
        lang.t("各库与资源的最新得分", "Latest scores of each library and resource"),
        lang.t("排名", "Rank"),
        lang.t("名称", "Name"),
        lang.t("范围", "Scope"),
        lang.t("综合得分", "Overall"),
    );
    for d in DIMENSIONS {
        let _ = write!(body, "<th class=\"n\">{}</th>", lang.dimension(d));
    }
    let _ = write!(body, "<th>{}</th></tr></thead><tbody>", lang.t("测评时间", "Computed"));
    for item in items {
        let scope = match item.scope {
            catalog::QualityScope::Library => lang.t("基础库", "library"),
            catalog::QualityScope::Resource => lang.t("资源", "resource"),
        };
        let _ = write!(
            body,
            "<tr><td class=\"n\">{}</td><td><a href=\"/console/quality/{}{}\">{}</a> <small>{}</small></td><td>{scope}</td>\
             <td class=\"n\"><strong>{}</strong></td>",
            item.rank,
            esc(&item.name),
            lang.suffix(),
            esc(&item.label_zh),
            esc(&item.name),
            score(Some(item.overall))
        );
        for d in DIMENSIONS {
            let _ = write!(
                body,
                "<td class=\"n\">{}</td>",
                score(item.scores.get(d.code()).copied().flatten())
            );
        }
        let _ = write!(body, "<td>{}</td></tr>", esc(&item.computed_at));
    }
    if items.is_empty() {
        let _ = write!(
            body,
            "<tr><td colspan=\"9\">{}</td></tr>",
            lang.t("尚无测评报告。", "No report yet.")
        );
    }
    body.push_str("</tbody></table>");
    body
}

fn detail_html(detail: &QualityDetail, lang: Lang) -> String {
    let report: &Report = &detail.report;
    let here = format!("/console/quality/{}", report.name);
    let mut body = nav(lang, &esc(&here));
    let _ = write!(
        body,
        "<h1>{} <small>{}</small></h1><p>{} <span class=\"big\" id=\"overall\">{}</span> \
         <span class=\"rule\">{} {} · {} v{}</span></p>",
        esc(&report.label_zh),
        esc(&report.name),
        lang.t("综合得分", "Overall score"),
        score(Some(report.overall)),
        lang.t("测评于", "computed at"),
        esc(&report.computed_at),
        lang.t("库版本", "library version"),
        report.library_version.unwrap_or_default()
    );
    let _ = write!(
        body,
        "<h2>{}</h2><table><thead><tr><th>{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        lang.t("各维度得分与规则", "Dimensions and their rules"),
        lang.t("维度", "Dimension"),
        lang.t("得分", "Score"),
        lang.t("权重", "Weight"),
        lang.t("规则", "Rule"),
        lang.t("依据数字", "Figures"),
    );
    for d in &report.dimensions {
        let rule = match lang {
            Lang::Zh => &d.rule_zh,
            Lang::En => &d.rule_en,
        };
        let _ = write!(
            body,
            "<tr id=\"dim-{}\"><td>{}</td><td class=\"n\"><strong>{}</strong></td><td class=\"n\">{}</td>\
             <td class=\"rule\">{}</td><td><code>{}</code></td></tr>",
            d.dimension.code(),
            lang.dimension(d.dimension),
            score(d.score),
            d.weight,
            esc(rule),
            esc(&d.figures.to_string())
        );
    }
    body.push_str("</tbody></table>");

    let _ = write!(body, "<h2>{}</h2><div class=\"charts\">", lang.t("趋势", "Trend"));
    let labels: Vec<String> = detail
        .trend
        .iter()
        .map(|p| {
            format!(
                "{} v{}",
                p.computed_at.get(..10).unwrap_or(&p.computed_at),
                p.library_version.unwrap_or_default()
            )
        })
        .collect();
    let overall: Vec<(String, Option<f64>)> = detail
        .trend
        .iter()
        .zip(&labels)
        .map(|(p, l)| (l.clone(), Some(p.overall)))
        .collect();
    let _ = write!(
        body,
        "<figure>{}</figure>",
        line_chart(
            "trend-overall",
            lang.t("综合得分趋势", "Overall score trend"),
            &overall,
            lang
        )
    );
    for d in DIMENSIONS {
        let points: Vec<(String, Option<f64>)> = detail
            .trend
            .iter()
            .zip(&labels)
            .map(|(p, l)| (l.clone(), p.scores.get(d.code()).copied().flatten()))
            .collect();
        let title = match lang {
            Lang::Zh => format!("{}趋势", d.label_zh()),
            Lang::En => format!("{} trend", d.label_en()),
        };
        let _ = write!(
            body,
            "<figure>{}</figure>",
            line_chart(&format!("trend-{}", d.code()), &title, &points, lang)
        );
    }
    body.push_str("</div>");

    for d in &report.dimensions {
        if d.fields.is_empty() {
            continue;
        }
        let title = match lang {
            Lang::Zh => format!("各字段{}", d.label_zh),
            Lang::En => format!("{} by field", d.dimension.label_en()),
        };
        let bars: Vec<(String, Option<f64>)> = d
            .fields
            .iter()
            .map(|f| (format!("{} {}", f.label_zh, f.field), f.score))
            .collect();
        let _ = write!(
            body,
            "<h2>{}</h2><figure>{}</figure>",
            esc(&title),
            bar_chart(&format!("fields-{}", d.dimension.code()), &title, &bars, lang)
        );
        if d.dimension == Dimension::Consistency {
            let examples: Vec<String> = d
                .fields
                .iter()
                .flat_map(|f| {
                    f.figures["unresolved_examples"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .map(move |e| {
                            format!(
                                "<li>{}: {} → {}</li>",
                                esc(&f.field),
                                esc(e["key"].as_str().unwrap_or_default()),
                                esc(e["value"].as_str().unwrap_or_default())
                            )
                        })
                })
                .collect();
            if !examples.is_empty() {
                let _ = write!(
                    body,
                    "<p>{}</p><ul>{}</ul>",
                    lang.t(
                        "未能关联的引用示例（记录 → 引用值）：",
                        "Unresolved references (record → value):"
                    ),
                    examples.concat()
                );
            }
        }
    }
    body
}

/// `GET /console/quality`: the ranking page.
#[utoipa::path(
    get,
    path = "/console/quality",
    tag = "console",
    params(LangQuery),
    responses(
        (status = 200, description = "The ranking as an HTML page", body = String, content_type = "text/html"),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn ranking_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<LangQuery>,
) -> Result<HttpResponse, Problem> {
    let caller = Caller::from_request(&req, &state).await?;
    let lang = Lang::from(query.lang.as_deref());
    let items = ranking(&state, &caller).await?;
    Ok(html(
        actix_web::http::StatusCode::OK,
        lang.t("数据质量报告", "Data quality report"),
        lang,
        &ranking_html(&items, lang),
    ))
}

/// `GET /console/quality/{name}`: one library (by name) or resource (by code).
#[utoipa::path(
    get,
    path = "/console/quality/{name}",
    tag = "console",
    params(("name" = String, Path, description = "A library name or a resource code"), TrendQuery),
    responses(
        (status = 200, description = "The report as an HTML page with SVG charts", body = String, content_type = "text/html"),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 404, description = "`resource_not_found` (`field: code`): neither a library nor a resource; `quality_report_not_found`", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, response = crate::openapi::Invalid),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn detail_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
    query: web::Query<TrendQuery>,
) -> Result<HttpResponse, Problem> {
    let caller = Caller::from_request(&req, &state).await?;
    let lang = Lang::from(query.lang.as_deref());
    let subject = match library_subject(&state, &name, "name") {
        Ok(subject) => subject,
        Err(_) => resource_subject(&state, &caller, &name).await?,
    };
    let trend = query.trend.clamp(1, 365);
    let detail = detail(&state, &subject, trend).await?;
    let title = format!("{} · {}", detail.report.label_zh, lang.t("数据质量", "data quality"));
    Ok(html(
        actix_web::http::StatusCode::OK,
        &title,
        lang,
        &detail_html(&detail, lang),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_labelled_svg() {
        let points = vec![
            ("2026-11-23 v1".to_string(), Some(80.0)),
            ("2026-11-24 v2".into(), Some(90.5)),
        ];
        let svg = line_chart("t", "综合 <趋势>", &points, Lang::Zh);
        assert!(svg.starts_with("<svg id=\"t\" class=\"trend\" role=\"img\""), "{svg}");
        assert!(svg.contains("<title id=\"t-t\">综合 &lt;趋势&gt;</title>"));
        assert!(svg.contains("80.0, 90.5"));
        assert!(svg.contains("<polyline"));
        let bars = bar_chart(
            "b",
            "fields",
            &[("姓名 name".into(), Some(50.0)), ("phone".into(), None)],
            Lang::En,
        );
        assert!(bars.contains("width=\"150.0\""), "{bars}");
        assert!(bars.contains(">—</text>"));
        assert!(bars.contains("score (0–100)"));
    }
}
