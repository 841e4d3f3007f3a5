//! Pieces shared by all pages: the HTML document with the navigation, the time-range picker
//! with auto-refresh, and the chart block (SVG, hover data and a legend with min/max/avg/last).

use leptos::prelude::*;
use pharos_model::api::MatrixSeries;

use crate::assets::{CSS, HEAD_JS, JS};
use crate::chart::{ChartOptions, PALETTE, Unit, assign_colors, render_plot, stats};
use crate::pages::urlencode;
use crate::time::{RANGES, REFRESHES, TimeRange, format_datetime};

/// Links of the navigation bar after Home and the dashboards: (path, text).
pub const NAV: &[(&str, &str)] = &[
    ("/graph", "Explore"),
    ("/targets", "Targets"),
    ("/alerts", "Alerts"),
    ("/rules", "Rules"),
    ("/status", "Status"),
];

/// What every page shows around its content: the dashboards in the navigation, the theme and
/// the auto-refresh interval.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    /// (uid, title) of each dashboard.
    pub boards: Vec<(String, String)>,
    /// `dark` or `light` when asked for in the URL; otherwise the saved or system choice.
    pub theme: Option<&'static str>,
    /// Reload the page every this many seconds (0: never).
    pub refresh_s: u32,
}

impl Chrome {
    /// The theme from a `theme` parameter.
    pub fn theme_param(s: Option<&str>) -> Option<&'static str> {
        match s {
            Some("dark") => Some("dark"),
            Some("light") => Some("light"),
            _ => None,
        }
    }
}

/// Wraps page content in the HTML document with the navigation bar; `active` is the path of the
/// highlighted entry.
pub fn document(
    title: &str,
    active: &str,
    chrome: &Chrome,
    content: impl IntoView + 'static,
) -> String {
    let link = |href: String, text: String| {
        let class = if href == active { "active" } else { "" };
        view! { <a href=href class=class>{text}</a> }
    };
    let boards = chrome
        .boards
        .iter()
        .map(|(uid, t)| link(format!("/d/{uid}"), t.clone()))
        .collect_view();
    let rest = NAV
        .iter()
        .map(|(h, t)| link((*h).to_string(), (*t).to_string()))
        .collect_view();
    let refresh = (chrome.refresh_s > 0)
        .then(|| view! { <meta http-equiv="refresh" content=chrome.refresh_s.to_string() /> });
    let html = view! {
        <html lang="en" data-theme=chrome.theme>
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                {refresh}
                <title>{format!("{title} · Pharos")}</title>
                <style inner_html=CSS></style>
                <script inner_html=HEAD_JS></script>
            </head>
            <body>
                <nav class="top">
                    <a class="brand" href="/">"Pharos"</a>
                    {link("/".to_string(), "Home".to_string())}
                    {boards}
                    {rest}
                    <span class="sep"></span>
                    <button type="button" id="theme-toggle" title="Switch between light and dark">
                        "◐ Theme"
                    </button>
                </nav>
                <main>{content}</main>
                <script inner_html=JS></script>
            </body>
        </html>
    }
    .to_html();
    format!("<!DOCTYPE html>{html}")
}

/// A query string from pairs, starting with `?` (empty pairs give `?`).
pub fn query_string(pairs: &[(String, String)]) -> String {
    let mut s = String::from("?");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push('&');
        }
        s.push_str(&urlencode(k));
        s.push('=');
        s.push_str(&urlencode(v));
    }
    s
}

fn with(base: &[(String, String)], extra: &[(&str, String)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = base.to_vec();
    v.extend(extra.iter().map(|(k, x)| ((*k).to_string(), x.clone())));
    v
}

/// The time-range picker: quick relative ranges, a from/to form (relative `now-6h` or absolute
/// times), zoom out, and the auto-refresh choice. `base` holds the page's other parameters.
pub fn time_toolbar(
    path: &str,
    base: &[(String, String)],
    tr: &TimeRange,
    refresh: &str,
) -> impl IntoView + use<> {
    let refresh_pair: Vec<(&str, String)> = if refresh == "off" || refresh.is_empty() {
        Vec::new()
    } else {
        vec![("refresh", refresh.to_string())]
    };
    let ranges = RANGES
        .iter()
        .map(|(name, _)| {
            let class = if Some(*name) == tr.relative {
                "active"
            } else {
                ""
            };
            let mut extra = refresh_pair.clone();
            extra.push(("range", (*name).to_string()));
            let href = format!("{path}{}", query_string(&with(base, &extra)));
            view! { <a href=href class=class>{*name}</a> }
        })
        .collect_view();
    let half = tr.len_ms() / 2;
    let mut out_extra = refresh_pair.clone();
    out_extra.push(("from", (tr.start_ms - half).to_string()));
    out_extra.push(("to", (tr.end_ms + half).to_string()));
    let zoom_out = format!("{path}{}", query_string(&with(base, &out_extra)));
    let hidden = base
        .iter()
        .chain(
            refresh_pair
                .iter()
                .map(|(k, v)| ((*k).to_string(), v.clone()))
                .collect::<Vec<_>>()
                .iter(),
        )
        .map(|(k, v)| view! { <input type="hidden" name=k.clone() value=v.clone() /> })
        .collect_view();
    let time_pairs: Vec<(&str, String)> = vec![("from", tr.from.clone()), ("to", tr.to.clone())];
    let refreshes = REFRESHES
        .iter()
        .map(|(name, _)| {
            let active = *name == refresh || (refresh.is_empty() && *name == "off");
            let class = if active { "active" } else { "" };
            let mut extra = time_pairs.clone();
            if *name != "off" {
                extra.push(("refresh", (*name).to_string()));
            }
            let href = format!("{path}{}", query_string(&with(base, &extra)));
            view! { <a href=href class=class>{*name}</a> }
        })
        .collect_view();
    let shown = format!(
        "{} to {} UTC",
        format_datetime(tr.start_ms),
        format_datetime(tr.end_ms)
    );
    view! {
        <div class="toolbar">
            <div class="ranges">"Last " {ranges}</div>
            <form class="picker" method="get" action=path.to_string()>
                {hidden}
                <label>"From " <input name="from" value=tr.from.clone() /></label>
                <label>"To " <input name="to" value=tr.to.clone() /></label>
                <button type="submit">"Apply"</button>
                <a href=zoom_out>"Zoom out"</a>
            </form>
            <div class="ranges refresh">"Refresh " {refreshes}</div>
            <span class="muted">{shown}</span>
        </div>
    }
}

/// Most series whose values the page script gets for its hover read-out.
const HOVER_SERIES: usize = 60;
/// Most rows of a chart's HTML legend.
const LEGEND_ROWS: usize = 60;

/// JSON for a `<script>` element: `<`, `>` and `&` escaped so no label can close the element.
pub fn script_json(v: &serde_json::Value) -> String {
    v.to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn hex(i: usize) -> String {
    let c = PALETTE[i % PALETTE.len()];
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// `v` rounded to 4 significant digits: enough for a read-out, and a quarter of the bytes.
fn round_significant(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let e = 3 - v.abs().log10().floor() as i32;
    let r = if e >= 0 {
        let scale = 10f64.powi(e);
        (v * scale).round() / scale
    } else {
        let scale = 10f64.powi(-e);
        (v / scale).round() * scale
    };
    if r.is_finite() { r } else { v }
}

/// Whether a result has no finite point to draw.
pub fn is_empty(series: &[MatrixSeries]) -> bool {
    series
        .iter()
        .all(|s| s.values.iter().all(|p| !p.v.is_finite()))
}

/// A chart for a page: the SVG (no legend, transparent), the data for the hover read-out, and an
/// HTML legend with min, max, avg and last. `names` are the legend texts, one per series.
pub fn chart_block(series: &[MatrixSeries], names: &[String], opts: &ChartOptions) -> AnyView {
    if is_empty(series) {
        return view! { <div class="nodata">"No data in this time range"</div> }.into_any();
    }
    let opts = ChartOptions {
        legend: false,
        transparent: true,
        ..opts.clone()
    };
    let (svg, area) = render_plot(series, &opts);
    let label_strings: Vec<String> = series.iter().map(|s| s.metric.to_string()).collect();
    let colors = assign_colors(&label_strings);
    let name_of = |i: usize| {
        names
            .get(i)
            .cloned()
            .unwrap_or_else(|| label_strings[i].clone())
    };
    let step = opts.step_ms.max(1);
    let n = ((opts.end_ms - opts.start_ms) / step + 1).clamp(1, 20_000);
    let mut data = format!(
        "{{\"t0\":{},\"step\":{step},\"n\":{n},\"unit\":\"{}\",\"series\":[",
        opts.start_ms,
        opts.unit.name()
    );
    let mut values: Vec<Option<f64>> = Vec::with_capacity(n as usize);
    for (i, s) in series.iter().enumerate().take(HOVER_SERIES) {
        values.clear();
        values.resize(n as usize, None);
        for p in &s.values {
            let k = ((p.t - opts.start_ms) as f64 / step as f64).round() as i64;
            if (0..n).contains(&k) && p.v.is_finite() {
                values[k as usize] = Some(round_significant(p.v));
            }
        }
        if i > 0 {
            data.push(',');
        }
        let name = serde_json::Value::String(name_of(i));
        data.push_str(&format!(
            "{{\"name\":{},\"color\":\"{}\",\"v\":[",
            script_json(&name),
            hex(colors[i])
        ));
        for (k, v) in values.iter().enumerate() {
            if k > 0 {
                data.push(',');
            }
            match v {
                Some(v) => data.push_str(&v.to_string()),
                None => data.push_str("null"),
            }
        }
        data.push_str("]}");
    }
    data.push_str("]}");
    let unit = opts.unit;
    let mut rows: Vec<(usize, String, Option<crate::chart::Stats>)> = series
        .iter()
        .enumerate()
        .map(|(i, s)| (i, name_of(i), stats(&s.values)))
        .collect();
    // Largest last value first, as Grafana sorts a legend by a column.
    rows.sort_by(|a, b| {
        let l = |r: &Option<crate::chart::Stats>| r.map_or(f64::NEG_INFINITY, |s| s.last);
        l(&b.2).total_cmp(&l(&a.2))
    });
    let more = rows.len().saturating_sub(LEGEND_ROWS);
    let legend_rows = rows
        .into_iter()
        .take(LEGEND_ROWS)
        .map(|(i, name, st)| {
            let style = format!("background:{}", hex(colors[i]));
            let cell = move |f: fn(&crate::chart::Stats) -> f64| {
                let v = st.as_ref().map(f);
                let text = v.map_or_else(|| "-".to_string(), |v| unit.format(v));
                let sort = v.map_or_else(String::new, |v| v.to_string());
                view! { <td class="num" data-v=sort>{text}</td> }
            };
            view! {
                <tr>
                    <td class="name">
                        <span class="sw" style=style></span>
                        {name}
                    </td>
                    {cell(|s| s.min)}
                    {cell(|s| s.max)}
                    {cell(|s| s.avg)}
                    {cell(|s| s.last)}
                </tr>
            }
        })
        .collect_view();
    let more = (more > 0).then(|| {
        view! {
            <tr>
                <td class="muted" colspan="5">{format!("… and {more} more series")}</td>
            </tr>
        }
    });
    let chart = match area {
        Some(a) => view! {
            <div
                class="chart"
                data-w=a.width.to_string()
                data-x0=a.x0.to_string()
                data-x1=a.x1.to_string()
                data-y0=a.y0.to_string()
                data-y1=a.y1.to_string()
                data-start=a.start_ms.to_string()
                data-end=a.end_ms.to_string()
            >
                <div inner_html=svg></div>
                <script type="application/json" class="chart-data" inner_html=data></script>
            </div>
        }
        .into_any(),
        None => view! { <div class="chart" inner_html=svg></div> }.into_any(),
    };
    view! {
        {chart}
        <div class="legend-wrap">
            <table class="legend sortable">
                <thead>
                    <tr>
                        <th>"Series"</th>
                        <th class="num">"Min"</th>
                        <th class="num">"Max"</th>
                        <th class="num">"Avg"</th>
                        <th class="num">"Last"</th>
                    </tr>
                </thead>
                <tbody>{legend_rows} {more}</tbody>
            </table>
        </div>
    }
    .into_any()
}

/// The unit select of Explore.
pub fn unit_options(selected: Unit) -> impl IntoView {
    crate::chart::UNITS
        .map(|u| view! { <option value=u.name() selected=u == selected>{u.name()}</option> })
        .into_iter()
        .collect_view()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_and_script_json() {
        #[track_caller]
        fn check(v: f64, want: &str) {
            assert_eq!(round_significant(v).to_string(), want, "{v}");
        }
        check(1.841_470_984_807_896_5, "1.841");
        check(123_456_789.0, "123500000");
        check(-0.000_123_456, "-0.0001235");
        check(0.0, "0");
        assert!((round_significant(1e300) / 1e300 - 1.0).abs() < 1e-3);
        let v = serde_json::Value::String("</script><b>&".into());
        assert_eq!(
            script_json(&v),
            "\"\\u003c/script\\u003e\\u003cb\\u003e\\u0026\""
        );
    }
}
