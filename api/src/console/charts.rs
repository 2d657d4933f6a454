//! The console's SVG charts: rates (0–100 %) over months and by department, and calls per
//! resource. Each chart is an accessible image: a `<title>` and a `<desc>` that lists its
//! figures, so the numbers are readable without the picture.

use std::fmt::Write;

use super::{Lang, esc};
use crate::kpi::{Ratio, percent};

const BLUE: &str = "#2680c2";
const GREEN: &str = "#3ebd93";
const RED: &str = "#e12d39";

fn open_svg(id: &str, class: &str, w: f64, h: f64, title: &str, desc: &str) -> String {
    format!(
        "<svg id=\"{id}\" class=\"{class}\" role=\"img\" aria-labelledby=\"{id}-t {id}-d\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\"><title id=\"{id}-t\">{}</title><desc id=\"{id}-d\">{}</desc>\
         <text x=\"0\" y=\"14\" font-weight=\"600\">{}</text>",
        esc(title),
        esc(desc),
        esc(title)
    )
}

/// A point of a [`trend`] line: its x label, its value on a 0–100 scale (`None`: a gap), and
/// what its tooltip says after the label.
pub(crate) struct TrendPoint {
    pub(crate) label: String,
    pub(crate) value: Option<f64>,
    pub(crate) tip: String,
}

/// How a [`trend`] chart is labelled.
pub(crate) struct TrendAxes<'a> {
    /// After each y tick: `%` for rates, nothing for scores.
    pub(crate) y_suffix: &'a str,
    /// Under the x axis.
    pub(crate) x_label: &'a str,
    /// Beside the y axis, if anything.
    pub(crate) y_label: Option<&'a str>,
}

/// A line over 0–100, oldest left; points without a value are gaps between runs. The
/// description (`desc`) lists the figures so they are readable without the picture. The
/// console's KPI lines, the quality reports' score trends and the portal's use it.
pub(crate) fn trend(id: &str, title: &str, desc: &str, points: &[TrendPoint], axes: &TrendAxes<'_>) -> String {
    const W: f64 = 420.0;
    const H: f64 = 200.0;
    const LEFT: f64 = 48.0;
    const RIGHT: f64 = 14.0;
    const TOP: f64 = 26.0;
    const BOTTOM: f64 = 40.0;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let x = |i: usize| {
        if points.len() <= 1 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + plot_w * i as f64 / (points.len() - 1) as f64
        }
    };
    let y = |value: f64| TOP + plot_h * (1.0 - value / 100.0);
    let mut svg = open_svg(id, "trend", W, H, title, desc);
    for tick in [0, 25, 50, 75, 100] {
        let ty = y(f64::from(tick));
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{ty}\" y2=\"{ty}\" stroke=\"#d9e2ec\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{tick}{}</text>",
            W - RIGHT,
            LEFT - 6.0,
            ty + 4.0,
            axes.y_suffix
        );
    }
    if let Some(label) = axes.y_label {
        let _ = write!(
            svg,
            "<text transform=\"translate(12 {}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
            TOP + plot_h / 2.0,
            esc(label)
        );
    }
    let axis_y = H - BOTTOM;
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{axis_y}\" y2=\"{axis_y}\" stroke=\"#829ab1\"/>",
        W - RIGHT
    );
    // X labels: the first, the last and about four between.
    let step = points.len().div_ceil(6).max(1);
    let last = points.len().saturating_sub(1);
    for (i, point) in points.iter().enumerate() {
        // Every step-th point, and the last one unless a label sits too close to it.
        if i == last || (i % step == 0 && last - i >= step.max(2)) {
            // The last label ends at the right edge, so it is not cut off.
            let anchor = if i == last && last > 0 { "end" } else { "middle" };
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text>",
                x(i),
                axis_y + 14.0,
                esc(&point.label)
            );
        }
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        LEFT + plot_w / 2.0,
        axis_y + 32.0,
        esc(axes.x_label)
    );
    // Runs of consecutive measured points are drawn as lines.
    let mut run: Vec<String> = Vec::new();
    let mut lines = Vec::new();
    for (i, point) in points.iter().enumerate() {
        match point.value {
            Some(value) => run.push(format!("{:.1},{:.1}", x(i), y(value))),
            None => lines.push(std::mem::take(&mut run)),
        }
    }
    lines.push(run);
    for line in lines.iter().filter(|l| l.len() > 1) {
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{BLUE}\" stroke-width=\"2\" points=\"{}\"/>",
            line.join(" ")
        );
    }
    for (i, point) in points.iter().enumerate() {
        if let Some(value) = point.value {
            let _ = write!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{BLUE}\"><title>{}: {}</title></circle>",
                x(i),
                y(value),
                esc(&point.label),
                esc(&point.tip)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A line of monthly rates (0–100 %), oldest left; months without a denominator are gaps.
pub(crate) fn rate_line(id: &str, title: &str, points: &[(String, Ratio)], lang: Lang) -> String {
    let figures = |r: &Ratio| format!("{} ({}/{})", percent(r.rate), r.numerator, r.denominator);
    let desc: Vec<String> = points
        .iter()
        .map(|(month, r)| format!("{month} {}", figures(r)))
        .collect();
    let points: Vec<TrendPoint> = points
        .iter()
        .map(|(month, r)| TrendPoint {
            label: month.clone(),
            value: r.rate.map(|rate| rate * 100.0),
            tip: figures(r),
        })
        .collect();
    let axes = TrendAxes {
        y_suffix: "%",
        x_label: lang.t("月份（UTC）", "month (UTC)"),
        y_label: None,
    };
    trend(id, title, &desc.join("; "), &points, &axes)
}

/// Horizontal bars of rates (0–100 %), one per label (department).
pub(crate) fn rate_bars(id: &str, title: &str, bars: &[(String, Ratio)], lang: Lang) -> String {
    const LABEL: f64 = 200.0;
    const BAR: f64 = 220.0;
    const ROW: f64 = 22.0;
    const TOP: f64 = 26.0;
    let w = LABEL + BAR + 110.0;
    let h = TOP + ROW * bars.len().max(1) as f64 + 34.0;
    let desc: Vec<String> = bars
        .iter()
        .map(|(label, r)| format!("{label} {} ({}/{})", percent(r.rate), r.numerator, r.denominator))
        .collect();
    let mut svg = open_svg(id, "bars", w, h, title, &desc.join("; "));
    for (i, (label, r)) in bars.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let len = BAR * r.rate.unwrap_or(0.0);
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{LABEL}\" y=\"{}\" width=\"{len:.1}\" height=\"{}\" fill=\"{GREEN}\"><title>{}: {}</title></rect>\
             <text x=\"{:.1}\" y=\"{}\">{} ({}/{})</text>",
            LABEL - 6.0,
            y + 14.0,
            esc(label),
            y + 3.0,
            ROW - 6.0,
            esc(label),
            percent(r.rate),
            LABEL + len + 4.0,
            y + 14.0,
            percent(r.rate),
            r.numerator,
            r.denominator
        );
    }
    if bars.is_empty() {
        let _ = write!(
            svg,
            "<text x=\"{LABEL}\" y=\"{}\">{}</text>",
            TOP + 14.0,
            lang.t("无数据", "nothing to count")
        );
    }
    let axis_y = TOP + ROW * bars.len().max(1) as f64 + 2.0;
    let _ = write!(
        svg,
        "<line x1=\"{LABEL}\" x2=\"{}\" y1=\"{axis_y}\" y2=\"{axis_y}\" stroke=\"#829ab1\"/>",
        LABEL + BAR
    );
    for tick in [0, 50, 100] {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{tick}%</text>",
            LABEL + BAR * f64::from(tick) / 100.0,
            axis_y + 14.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Stacked horizontal bars of calls per resource: allowed, then denied.
pub(crate) fn call_bars(id: &str, title: &str, rows: &[(String, i64, i64)], lang: Lang) -> String {
    const LABEL: f64 = 230.0;
    const BAR: f64 = 260.0;
    const ROW: f64 = 22.0;
    const TOP: f64 = 44.0;
    let w = LABEL + BAR + 110.0;
    let h = TOP + ROW * rows.len().max(1) as f64 + 16.0;
    let most = rows.iter().map(|(_, a, d)| a + d).max().unwrap_or(0).max(1) as f64;
    let desc: Vec<String> = rows
        .iter()
        .map(|(label, allowed, denied)| {
            format!(
                "{label}: {} {allowed}, {} {denied}",
                lang.t("成功", "allowed"),
                lang.t("拒绝", "denied")
            )
        })
        .collect();
    let mut svg = open_svg(id, "bars", w, h, title, &desc.join("; "));
    let _ = write!(
        svg,
        "<rect x=\"{LABEL}\" y=\"22\" width=\"10\" height=\"10\" fill=\"{GREEN}\"/><text x=\"{}\" y=\"31\">{}</text>\
         <rect x=\"{}\" y=\"22\" width=\"10\" height=\"10\" fill=\"{RED}\"/><text x=\"{}\" y=\"31\">{}</text>",
        LABEL + 14.0,
        lang.t("成功", "allowed"),
        LABEL + 90.0,
        LABEL + 104.0,
        lang.t("拒绝", "denied")
    );
    for (i, (label, allowed, denied)) in rows.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let a = BAR * *allowed as f64 / most;
        let d = BAR * *denied as f64 / most;
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{LABEL}\" y=\"{}\" width=\"{a:.1}\" height=\"{}\" fill=\"{GREEN}\"/>\
             <rect x=\"{:.1}\" y=\"{}\" width=\"{d:.1}\" height=\"{}\" fill=\"{RED}\"/>\
             <text x=\"{:.1}\" y=\"{}\">{allowed} / {denied}</text>",
            LABEL - 6.0,
            y + 14.0,
            esc(label),
            y + 3.0,
            ROW - 6.0,
            LABEL + a,
            y + 3.0,
            ROW - 6.0,
            LABEL + a + d + 4.0,
            y + 14.0,
        );
    }
    if rows.is_empty() {
        let _ = write!(
            svg,
            "<text x=\"{LABEL}\" y=\"{}\">{}</text>",
            TOP + 14.0,
            lang.t("期内无调用", "no calls in the period")
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ratio(numerator: i64, denominator: i64) -> Ratio {
        Ratio {
            numerator,
            denominator,
            rate: (denominator > 0).then(|| numerator as f64 / denominator as f64),
        }
    }

    #[test]
    fn charts_state_their_figures() {
        let line = rate_line(
            "l",
            "使用率 <趋势>",
            &[
                ("2026-10".into(), ratio(1, 4)),
                ("2026-11".into(), ratio(0, 0)),
                ("2026-12".into(), ratio(3, 4)),
            ],
            Lang::Zh,
        );
        assert!(line.contains("<title id=\"l-t\">使用率 &lt;趋势&gt;</title>"), "{line}");
        assert!(
            line.contains("2026-10 25.0% (1/4); 2026-11 — (0/0); 2026-12 75.0% (3/4)"),
            "{line}"
        );
        // The unmeasured month breaks the line: two single points, no polyline.
        assert!(!line.contains("<polyline"), "{line}");
        let bars = rate_bars("b", "开放率", &[("市公安局".into(), ratio(1, 2))], Lang::En);
        assert!(bars.contains("width=\"110.0\""), "{bars}");
        assert!(bars.contains("50.0% (1/2)"));
        let calls = call_bars("c", "calls", &[("a".into(), 3, 1), ("b".into(), 0, 2)], Lang::En);
        assert!(calls.contains("width=\"195.0\""), "{calls}");
        assert!(calls.contains("a: allowed 3, denied 1"));
    }
}
