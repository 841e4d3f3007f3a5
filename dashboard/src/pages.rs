//! The pages, rendered on the server with Leptos to complete HTML documents.
//!
//! Every page function takes the [`DataSource`], the query parameters and the current time, runs
//! its queries and returns the HTML. They block (queries may be slow), so the router calls them
//! from `spawn_blocking`. Text from labels, queries and errors is escaped by Leptos (text nodes
//! and attribute values); the one raw insertion is the chart SVG, whose text plotters escapes.

use std::time::Instant;

use leptos::either::Either;
use leptos::prelude::*;
use pharos_model::api::{
    MatrixSeries, QueryData, Target, TargetHealth, format_rfc3339, format_value,
};
use serde::Deserialize;

use crate::DataSource;
use crate::chart::{ChartOptions, Unit, render_chart};
use crate::time::{DEFAULT_RANGE, RANGES, last_scrape_ago, parse_range, step_for};

/// Query parameters understood by the pages.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PageQuery {
    /// Time range name from [`RANGES`] (`5m` … `7d`); default [`DEFAULT_RANGE`].
    pub range: Option<String>,
    /// PromQL expression (Explore).
    pub expr: Option<String>,
    /// Unit of the Explore chart ([`Unit::name`]); default plain.
    pub unit: Option<String>,
}

/// A chart panel of a built-in dashboard.
#[derive(Debug, Clone, Copy)]
pub struct Panel {
    /// Title shown above the chart.
    pub title: &'static str,
    /// PromQL range query.
    pub expr: &'static str,
    /// Unit of the y axis.
    pub unit: Unit,
}

/// The charts of the Home page.
pub const HOME_PANELS: [Panel; 4] = [
    Panel {
        title: "Targets up",
        expr: "up",
        unit: Unit::Plain,
    },
    Panel {
        title: "CPU usage by mode (cores)",
        expr: "sum by (mode) (rate(node_cpu_seconds_total[1m]))",
        unit: Unit::Plain,
    },
    Panel {
        title: "Memory available",
        expr: "node_memory_MemAvailable_bytes",
        unit: Unit::Bytes,
    },
    Panel {
        title: "Samples scraped",
        expr: "scrape_samples_scraped",
        unit: Unit::Plain,
    },
];

/// Width in pixels of the SVG of a dashboard chart (it scales with the page).
const PANEL_WIDTH: u32 = 760;
const PANEL_HEIGHT: u32 = 240;
/// Width of the Explore chart.
const EXPLORE_WIDTH: u32 = 1200;
const EXPLORE_HEIGHT: u32 = 340;
/// Rows of an instant result shown in the Explore table.
const MAX_TABLE_ROWS: usize = 1000;

const CSS: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;background:#f6f7f9}
nav.top{display:flex;flex-wrap:wrap;align-items:center;gap:4px 12px;padding:8px 16px;background:#fff;border-bottom:1px solid #e1e4e8}
nav.top a{color:#444;text-decoration:none;padding:4px 8px;border-radius:6px}
nav.top a.brand{font-weight:700;color:#c2410c;margin-right:8px}
nav.top a.active,nav.top a:hover{background:#eef1f4;color:#111}
main{max-width:1400px;margin:0 auto;padding:16px}
h1{font-size:20px;margin:0 0 12px}
h2{font-size:16px;margin:20px 0 8px}
.toolbar{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin-bottom:12px}
.ranges a{display:inline-block;padding:2px 9px;margin:2px;border:1px solid #d0d7de;border-radius:6px;color:#333;text-decoration:none;background:#fff}
.ranges a.active{background:#0969da;border-color:#0969da;color:#fff}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,520px),1fr));gap:12px}
.panel{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:10px 12px;min-width:0}
.panel header{display:flex;justify-content:space-between;align-items:baseline;gap:8px}
.panel h3{margin:0;font-size:15px}
.panel header a{font-size:12px;color:#0969da;text-decoration:none}
.chart svg{display:block;width:100%;height:auto}
code.expr{display:block;font-size:12px;color:#57606a;margin:2px 0 6px;overflow-wrap:anywhere}
.error{background:#fff0f0;border:1px solid #f3b5b5;color:#a40e26;border-radius:6px;padding:8px 10px;overflow-wrap:anywhere;white-space:pre-wrap}
.notice{background:#fff8c5;border:1px solid #e5d68a;border-radius:6px;padding:6px 10px;margin-bottom:12px}
.nodata{color:#6e7781;text-align:center;padding:48px 0}
.table-wrap{overflow-x:auto;background:#fff;border:1px solid #e1e4e8;border-radius:8px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #eef0f2;vertical-align:top}
th{background:#f6f8fa;font-weight:600;font-size:13px;white-space:nowrap}
td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
td.series{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;overflow-wrap:anywhere}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.badge.up{background:#dafbe1;color:#116329}
.badge.down{background:#ffebe9;color:#a40e26}
.badge.unknown{background:#eaeef2;color:#57606a}
.label{display:inline-block;background:#eef1f4;border-radius:4px;padding:0 6px;margin:1px 2px;font:12px ui-monospace,SFMono-Regular,Menlo,monospace;overflow-wrap:anywhere}
.summary{display:flex;gap:8px;flex-wrap:wrap;margin-bottom:8px}
form.query textarea{width:100%;min-height:64px;font:13px ui-monospace,SFMono-Regular,Menlo,monospace;padding:8px;border:1px solid #d0d7de;border-radius:6px}
form.query .row{display:flex;gap:8px;flex-wrap:wrap;margin-top:6px;align-items:center}
button{background:#0969da;color:#fff;border:0;border-radius:6px;padding:6px 14px;font-weight:600;cursor:pointer}
select{padding:5px;border-radius:6px;border:1px solid #d0d7de;background:#fff}
.muted{color:#6e7781}
.err{color:#a40e26;overflow-wrap:anywhere}
a{color:#0969da}
@media (max-width:600px){main{padding:8px}th,td{padding:4px 6px}nav.top{padding:6px 8px}}
"#;

/// Which navigation entry is highlighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nav {
    Home,
    Explore,
    Targets,
}

/// Percent-encodes a query-string component (everything but unreserved characters).
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Escapes text for raw insertion into HTML. Leptos escapes text nodes and attributes itself, but
/// writes the children of `<textarea>` unescaped, so its content goes through this.
pub fn escape_html(s: &str) -> String {
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

/// The chosen range: its name, length in ms, and a notice when the requested name was unknown.
fn resolve_range(q: &PageQuery) -> (&'static str, i64, Option<String>) {
    let default = (DEFAULT_RANGE, 3_600_000);
    match q.range.as_deref() {
        None | Some("") => (default.0, default.1, None),
        Some(r) => match RANGES.iter().find(|(n, _)| *n == r) {
            Some((n, ms)) => (n, *ms, None),
            None => (
                default.0,
                parse_range(default.0).unwrap_or(default.1),
                Some(format!(
                    "Unknown range {r:?}; showing {DEFAULT_RANGE}. Choose one of: {}.",
                    RANGES.map(|(n, _)| n).join(", ")
                )),
            ),
        },
    }
}

/// Wraps page content in the HTML document with the navigation bar.
fn document(title: &str, active: Nav, content: impl IntoView + 'static) -> String {
    let link = move |href: &'static str, text: &'static str, nav: Nav| {
        let class = if nav == active { "active" } else { "" };
        view! { <a href=href class=class>{text}</a> }
    };
    let html = view! {
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <title>{format!("{title} · Pharos")}</title>
                <style inner_html=CSS></style>
            </head>
            <body>
                <nav class="top">
                    <a class="brand" href="/">"Pharos"</a>
                    {link("/", "Home", Nav::Home)}
                    {link("/graph", "Explore", Nav::Explore)}
                    {link("/targets", "Targets", Nav::Targets)}
                    <a href="/api/v1/status/buildinfo">"Build info"</a>
                </nav>
                <main>{content}</main>
            </body>
        </html>
    }
    .to_html();
    format!("<!DOCTYPE html>{html}")
}

/// Links to each range; `base` is the page URL with any other parameters, ending in `?` or `&`.
fn range_selector(base: String, current: &'static str) -> impl IntoView + use<> {
    let links = RANGES
        .iter()
        .map(|(name, _)| {
            let class = if *name == current { "active" } else { "" };
            let href = format!("{base}range={name}");
            view! { <a href=href class=class>{*name}</a> }
        })
        .collect_view();
    view! { <div class="ranges">"Range: " {links}</div> }
}

fn notice(text: Option<String>) -> impl IntoView {
    text.map(|t| view! { <div class="notice">{t}</div> })
}

/// Whether a result has no finite point to draw.
fn is_empty(series: &[MatrixSeries]) -> bool {
    series
        .iter()
        .all(|s| s.values.iter().all(|p| !p.v.is_finite()))
}

/// The body of a chart panel: the SVG, or a "no data" or error message.
fn chart_body(
    result: Result<Vec<MatrixSeries>, String>,
    opts: &ChartOptions,
) -> impl IntoView + use<> {
    match result {
        Err(e) => view! { <div class="error">{format!("Query failed: {e}")}</div> }.into_any(),
        Ok(s) if is_empty(&s) => {
            view! { <div class="nodata">"No data in this time range"</div> }.into_any()
        }
        Ok(s) => {
            let svg = render_chart(&s, opts);
            view! { <div class="chart" inner_html=svg></div> }.into_any()
        }
    }
}

fn panel_view(
    panel: &Panel,
    result: Result<Vec<MatrixSeries>, String>,
    opts: &ChartOptions,
    range: &str,
) -> impl IntoView + use<> {
    let explore = format!(
        "/graph?expr={}&range={range}&unit={}",
        urlencode(panel.expr),
        panel.unit.name()
    );
    view! {
        <section class="panel">
            <header>
                <h3>{panel.title}</h3>
                <a href=explore>"Explore"</a>
            </header>
            <code class="expr">{panel.expr}</code>
            {chart_body(result, opts)}
        </section>
    }
}

fn health_badge(h: TargetHealth) -> impl IntoView {
    let (class, text) = match h {
        TargetHealth::Up => ("badge up", "up"),
        TargetHealth::Down => ("badge down", "down"),
        TargetHealth::Unknown => ("badge unknown", "unknown"),
    };
    view! { <span class=class>{text}</span> }
}

fn summary(targets: &[Target]) -> impl IntoView + use<> {
    let count = |h| targets.iter().filter(|t| t.health == h).count();
    let (up, down, unknown) = (
        count(TargetHealth::Up),
        count(TargetHealth::Down),
        count(TargetHealth::Unknown),
    );
    view! {
        <div class="summary">
            <span class="badge up">{format!("{up} up")}</span>
            <span class="badge down">{format!("{down} down")}</span>
            {(unknown > 0).then(|| view! { <span class="badge unknown">{format!("{unknown} unknown")}</span> })}
            <span class="muted">{format!("{} targets", targets.len())}</span>
        </div>
    }
}

/// The targets table: job, endpoint, state, labels, last scrape, duration, error.
fn targets_table(targets: &[Target], now_ms: i64) -> impl IntoView + use<> {
    if targets.is_empty() {
        return Either::Left(view! { <p class="muted">"No targets are configured."</p> });
    }
    let rows = targets
        .iter()
        .map(|t| {
            let url = t.scrape_url.clone();
            // Only http(s) URLs become links: a discovered URL must never be a `javascript:` link.
            let endpoint = if url.starts_with("http://") || url.starts_with("https://") {
                Either::Left(view! { <a href=url.clone()>{url.clone()}</a> })
            } else {
                Either::Right(url)
            };
            let labels = t
                .labels
                .iter()
                .map(|(k, v)| view! { <span class="label">{format!("{k}=\"{v}\"")}</span> })
                .collect_view();
            let ago = last_scrape_ago(now_ms, &t.last_scrape);
            let duration = Unit::Seconds.format(t.last_scrape_duration);
            view! {
                <tr>
                    <td>{t.scrape_pool.clone()}</td>
                    <td class="series">{endpoint}</td>
                    <td>{health_badge(t.health)}</td>
                    <td>{labels}</td>
                    <td class="num">{ago}</td>
                    <td class="num">{duration}</td>
                    <td class="err">{t.last_error.clone()}</td>
                </tr>
            }
        })
        .collect_view();
    Either::Right(view! {
        <div class="table-wrap">
            <table>
                <thead>
                    <tr>
                        <th>"Job"</th>
                        <th>"Endpoint"</th>
                        <th>"State"</th>
                        <th>"Labels"</th>
                        <th>"Last scrape"</th>
                        <th>"Duration"</th>
                        <th>"Error"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    })
}

/// Sorted targets: by job, then endpoint.
fn sorted_targets(ds: &dyn DataSource) -> Vec<Target> {
    let mut targets = ds.targets();
    targets.sort_by(|a, b| {
        (a.scrape_pool.as_str(), a.scrape_url.as_str())
            .cmp(&(b.scrape_pool.as_str(), b.scrape_url.as_str()))
    });
    targets
}

/// `GET /`: target health and the built-in charts.
pub fn home(ds: &dyn DataSource, q: &PageQuery, now_ms: i64) -> String {
    let started = Instant::now();
    let (range, range_ms, range_notice) = resolve_range(q);
    let start = now_ms - range_ms;
    let step = step_for(range_ms, PANEL_WIDTH);
    let panels = HOME_PANELS
        .iter()
        .map(|p| {
            let result = ds.query_range(p.expr, start, now_ms, step);
            if let Err(e) = &result {
                tracing::debug!(expr = p.expr, error = %e, "home panel query failed");
            }
            let opts = ChartOptions {
                width: PANEL_WIDTH,
                height: PANEL_HEIGHT,
                start_ms: start,
                end_ms: now_ms,
                step_ms: step,
                unit: p.unit,
            };
            panel_view(p, result, &opts, range)
        })
        .collect_view();
    let targets = sorted_targets(ds);
    let elapsed = format!(
        "Step {}, loaded in {} ms",
        pharos_model::api::format_duration(step),
        started.elapsed().as_millis()
    );
    let content = view! {
        <h1>"Overview"</h1>
        {notice(range_notice)}
        <div class="toolbar">
            {range_selector("/?".to_string(), range)}
            <span class="muted">{elapsed}</span>
        </div>
        <div class="grid">{panels}</div>
        <h2>"Targets"</h2>
        {summary(&targets)}
        {targets_table(&targets, now_ms)}
    };
    document("Home", Nav::Home, content)
}

/// `GET /targets`: every scrape target.
pub fn targets(ds: &dyn DataSource, now_ms: i64) -> String {
    let targets = sorted_targets(ds);
    let content = view! {
        <h1>"Targets"</h1>
        {summary(&targets)}
        {targets_table(&targets, now_ms)}
    };
    document("Targets", Nav::Targets, content)
}

/// Rows of the instant-query table: series text and value text.
fn instant_rows(data: QueryData) -> Vec<(String, String)> {
    match data {
        QueryData::Vector(v) => v
            .into_iter()
            .map(|s| (s.metric.to_string(), format_value(s.value.v)))
            .collect(),
        QueryData::Matrix(m) => m
            .into_iter()
            .map(|s| {
                let values: Vec<String> = s
                    .values
                    .iter()
                    .map(|p| format!("{} @{}", format_value(p.v), p.t as f64 / 1000.0))
                    .collect();
                (s.metric.to_string(), values.join("\n"))
            })
            .collect(),
        QueryData::Scalar(p) => vec![("scalar".into(), format_value(p.v))],
        QueryData::String(s) => vec![("string".into(), s.s)],
    }
}

fn instant_table(result: Result<QueryData, String>) -> impl IntoView {
    let data = match result {
        Err(e) => return Either::Left(view! { <div class="error">{e}</div> }),
        Ok(d) => d,
    };
    let rows = instant_rows(data);
    let total = rows.len();
    let caption = if total > MAX_TABLE_ROWS {
        format!("{total} results (showing the first {MAX_TABLE_ROWS})")
    } else {
        format!("{total} results")
    };
    let body = if rows.is_empty() {
        Either::Left(view! {
            <tr>
                <td colspan="2" class="muted">"Empty query result"</td>
            </tr>
        })
    } else {
        Either::Right(
            rows.into_iter()
                .take(MAX_TABLE_ROWS)
                .map(|(series, value)| {
                    view! {
                        <tr>
                            <td class="series">{series}</td>
                            <td class="num" style="white-space:pre">{value}</td>
                        </tr>
                    }
                })
                .collect_view(),
        )
    };
    Either::Right(view! {
        <p class="muted">{caption}</p>
        <div class="table-wrap">
            <table>
                <thead>
                    <tr>
                        <th>"Series"</th>
                        <th>"Value"</th>
                    </tr>
                </thead>
                <tbody>{body}</tbody>
            </table>
        </div>
    })
}

/// Example queries offered on an empty Explore page.
const EXAMPLES: [&str; 4] = [
    "up",
    "sum by (mode) (rate(node_cpu_seconds_total[1m]))",
    "node_memory_MemAvailable_bytes",
    "rate(scrape_samples_scraped[5m])",
];

/// `GET /graph?expr=...&range=1h`: ad-hoc PromQL, graph and table.
pub fn explore(ds: &dyn DataSource, q: &PageQuery, now_ms: i64) -> String {
    let (range, range_ms, range_notice) = resolve_range(q);
    let expr = q.expr.clone().unwrap_or_default();
    let expr_trim = expr.trim().to_string();
    let unit = q.unit.as_deref().and_then(Unit::parse).unwrap_or_default();
    let options = RANGES
        .iter()
        .map(|(name, _)| view! { <option value=*name selected=*name == range>{*name}</option> })
        .collect_view();
    let units = [
        Unit::Plain,
        Unit::Bytes,
        Unit::Percent,
        Unit::Ratio,
        Unit::Seconds,
    ]
    .map(|u| view! { <option value=u.name() selected=u == unit>{u.name()}</option> })
    .into_iter()
    .collect_view();
    let form = view! {
        <form class="query" method="get" action="/graph">
            <textarea name="expr" placeholder="PromQL expression" inner_html=escape_html(&expr)></textarea>
            <div class="row">
                <label>"Range " <select name="range">{options}</select></label>
                <label>"Unit " <select name="unit">{units}</select></label>
                <button type="submit">"Execute"</button>
            </div>
        </form>
    };

    let results = if expr_trim.is_empty() {
        let examples = EXAMPLES
            .iter()
            .map(|e| {
                let href = format!("/graph?expr={}&range={range}", urlencode(e));
                view! {
                    <li>
                        <a href=href>
                            <code>{*e}</code>
                        </a>
                    </li>
                }
            })
            .collect_view();
        Either::Left(view! {
            <p class="muted">"Enter a PromQL expression. Examples:"</p>
            <ul>{examples}</ul>
        })
    } else {
        let started = Instant::now();
        let start = now_ms - range_ms;
        let step = step_for(range_ms, EXPLORE_WIDTH);
        let graph = ds.query_range(&expr_trim, start, now_ms, step);
        let instant = ds.query(&expr_trim, now_ms);
        let opts = ChartOptions {
            width: EXPLORE_WIDTH,
            height: EXPLORE_HEIGHT,
            start_ms: start,
            end_ms: now_ms,
            step_ms: step,
            unit,
        };
        let series_count = graph.as_ref().map_or(0, Vec::len);
        let meta = format!(
            "{series_count} series, step {}, loaded in {} ms",
            pharos_model::api::format_duration(step),
            started.elapsed().as_millis()
        );
        let base = format!(
            "/graph?expr={}&unit={}&",
            urlencode(&expr_trim),
            unit.name()
        );
        Either::Right(view! {
            <div class="toolbar">
                {range_selector(base, range)}
                <span class="muted">{meta}</span>
            </div>
            <section class="panel">
                <header>
                    <h3>"Graph"</h3>
                </header>
                {chart_body(graph, &opts)}
            </section>
            <h2>{format!("Table at {}", format_rfc3339(now_ms))}</h2>
            {instant_table(instant)}
        })
    };

    let content = view! {
        <h1>"Explore"</h1>
        {notice(range_notice)}
        {form}
        {results}
    };
    document("Explore", Nav::Explore, content)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pharos_model::Labels;
    use pharos_model::api::{Point, VectorSample};
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    const NOW: i64 = 1_700_000_000_000;

    /// A data source with canned answers that records the range queries it was asked.
    #[derive(Default)]
    struct Fake {
        ranges: Vec<(&'static str, std::result::Result<Vec<MatrixSeries>, String>)>,
        instant: Option<std::result::Result<QueryData, String>>,
        targets: Vec<Target>,
        calls: Mutex<Vec<(String, i64, i64, i64)>>,
    }

    impl DataSource for Fake {
        fn query_range(
            &self,
            expr: &str,
            start_ms: i64,
            end_ms: i64,
            step_ms: i64,
        ) -> std::result::Result<Vec<MatrixSeries>, String> {
            if let Ok(mut c) = self.calls.lock() {
                c.push((expr.to_string(), start_ms, end_ms, step_ms));
            }
            self.ranges
                .iter()
                .find(|(e, _)| *e == expr)
                .map_or(Ok(Vec::new()), |(_, r)| r.clone())
        }
        fn query(&self, _expr: &str, _t_ms: i64) -> std::result::Result<QueryData, String> {
            self.instant
                .clone()
                .unwrap_or(Ok(QueryData::Vector(Vec::new())))
        }
        fn targets(&self) -> Vec<Target> {
            self.targets.clone()
        }
    }

    fn target(job: &str, url: &str, health: TargetHealth, labels: &[(&str, &str)]) -> Target {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Target {
            discovered_labels: BTreeMap::new(),
            labels,
            scrape_pool: job.into(),
            scrape_url: url.into(),
            global_url: url.into(),
            last_error: if health == TargetHealth::Down {
                "connection refused".into()
            } else {
                String::new()
            },
            last_scrape: pharos_model::api::format_rfc3339(NOW - 4_000),
            last_scrape_duration: 0.0125,
            health,
            scrape_interval: "15s".into(),
            scrape_timeout: "10s".into(),
        }
    }

    fn line(labels: &[(&str, &str)], from: i64, n: i64, step: i64) -> MatrixSeries {
        MatrixSeries {
            metric: Labels::from_pairs(labels),
            values: (0..n)
                .map(|i| Point {
                    t: from + i * step,
                    v: i as f64,
                })
                .collect(),
        }
    }

    fn q(range: Option<&str>, expr: Option<&str>) -> PageQuery {
        PageQuery {
            range: range.map(String::from),
            expr: expr.map(String::from),
            unit: None,
        }
    }

    #[track_caller]
    fn contains_all(html: &str, wanted: &[&str]) {
        for w in wanted {
            assert!(html.contains(w), "missing {w:?} in\n{html}");
        }
    }

    #[test]
    fn targets_page_lists_targets() {
        let ds = Fake {
            targets: vec![
                target(
                    "node",
                    "http://10.0.0.2:9100/metrics",
                    TargetHealth::Down,
                    &[("instance", "10.0.0.2:9100"), ("job", "node")],
                ),
                target(
                    "node",
                    "http://10.0.0.1:9100/metrics",
                    TargetHealth::Up,
                    &[("instance", "10.0.0.1:9100"), ("job", "node")],
                ),
                target("api", "javascript:alert(1)", TargetHealth::Unknown, &[]),
            ],
            ..Fake::default()
        };
        let html = targets(&ds, NOW);
        assert!(html.starts_with("<!DOCTYPE html><html"), "{html}");
        contains_all(
            &html,
            &[
                "<a href=\"/graph\"",
                "href=\"/api/v1/status/buildinfo\"",
                "1 up",
                "1 down",
                "1 unknown",
                "3 targets",
                "<a href=\"http://10.0.0.1:9100/metrics\">http://10.0.0.1:9100/metrics</a>",
                "<span class=\"badge up\">up</span>",
                "<span class=\"badge down\">down</span>",
                "instance=\"10.0.0.2:9100\"",
                "4.0s ago",
                "12.5ms",
                "connection refused",
            ],
        );
        // Sorted by job then URL; the non-http URL is text, not a link.
        let api = html.find(">api<").unwrap_or(usize::MAX);
        let first = html.find("10.0.0.1:9100/metrics").unwrap_or(0);
        let second = html.find("10.0.0.2:9100/metrics").unwrap_or(0);
        assert!(
            api < first && first < second,
            "order api={api} {first} {second}"
        );
        assert!(!html.contains("href=\"javascript:"), "{html}");
    }

    #[test]
    fn home_shows_charts_errors_and_no_data() {
        let start = NOW - 3_600_000;
        let ds = Fake {
            ranges: vec![
                ("up", Ok(vec![line(&[("job", "node")], start, 240, 15_000)])),
                (
                    "sum by (mode) (rate(node_cpu_seconds_total[1m]))",
                    Err("unknown function rate".into()),
                ),
            ],
            targets: vec![target(
                "node",
                "http://a:9100/metrics",
                TargetHealth::Up,
                &[],
            )],
            ..Fake::default()
        };
        let html = home(&ds, &q(None, None), NOW);
        contains_all(
            &html,
            &[
                "Targets up",
                "CPU usage by mode",
                "Memory available",
                "Samples scraped",
                "<svg",
                "Query failed: unknown function rate",
                "No data in this time range",
                "class=\"active\">1h</a>",
                "1 up",
            ],
        );
        // One chart drawn (up), the others are messages.
        assert_eq!(html.matches("<svg").count(), 1);
        // Every panel asked for the last hour with the 15s step of a 760px chart.
        let calls = ds.calls.lock().map(|c| c.clone()).unwrap_or_default();
        assert_eq!(calls.len(), HOME_PANELS.len());
        for (_, s, e, step) in calls {
            assert_eq!((s, e, step), (start, NOW, 15_000));
        }
    }

    #[test]
    fn range_parameter() {
        #[track_caller]
        fn check(range: Option<&str>, want_ms: i64, want_step: i64, notice: bool) {
            let ds = Fake::default();
            let html = home(&ds, &q(range, None), NOW);
            let calls = ds.calls.lock().map(|c| c.clone()).unwrap_or_default();
            let (_, s, e, step) = calls.first().cloned().unwrap_or_default();
            assert_eq!((e - s, step), (want_ms, want_step), "{range:?}");
            assert_eq!(html.contains("class=\"notice\""), notice, "{range:?}");
        }
        check(None, 3_600_000, 15_000, false);
        check(Some("5m"), 300_000, 2_000, false);
        check(Some("7d"), 604_800_000, 3_600_000, false);
        check(Some("1y"), 3_600_000, 15_000, true);
    }

    #[test]
    fn explore_shows_graph_table_and_errors() {
        let ds = Fake {
            ranges: vec![(
                "rate(x[1m])",
                Ok(vec![line(&[("mode", "user")], NOW - 600_000, 40, 15_000)]),
            )],
            instant: Some(Ok(QueryData::Vector(vec![VectorSample {
                metric: Labels::from_pairs(&[("mode", "user")]),
                value: Point { t: NOW, v: 0.25 },
            }]))),
            ..Fake::default()
        };
        let html = explore(&ds, &q(Some("15m"), Some("rate(x[1m])")), NOW);
        contains_all(
            &html,
            &[
                "<textarea name=\"expr\" placeholder=\"PromQL expression\">rate(x[1m])</textarea>",
                "<option value=\"15m\" selected>15m</option>",
                "<svg",
                "{mode=\"user\"}</td>",
                "0.25",
                "1 results",
                "href=\"/graph?expr=rate%28x%5B1m%5D%29&amp;unit=plain&amp;range=1h\"",
            ],
        );

        let ds = Fake {
            ranges: vec![(
                "rate(",
                Err("1:6: parse error: unexpected end of input".into()),
            )],
            instant: Some(Err("1:6: parse error: unexpected end of input".into())),
            ..Fake::default()
        };
        let html = explore(&ds, &q(None, Some("rate(")), NOW);
        contains_all(
            &html,
            &[
                "Query failed: 1:6: parse error: unexpected end of input",
                "<div class=\"error\">1:6: parse error: unexpected end of input</div>",
            ],
        );
        assert!(!html.contains("<svg"));

        // No expression: examples, no queries.
        let ds = Fake::default();
        let html = explore(&ds, &q(None, None), NOW);
        contains_all(&html, &["Examples", "/graph?expr=up&amp;range=1h"]);
        assert!(ds.calls.lock().map(|c| c.is_empty()).unwrap_or(false));
    }

    #[test]
    fn escaping() {
        let evil = "<script>alert(\"x\")</script>";
        let ds = Fake {
            ranges: vec![(
                "up",
                Ok(vec![line(&[("job", evil)], NOW - 60_000, 4, 15_000)]),
            )],
            instant: Some(Err(format!("bad {evil}"))),
            targets: vec![{
                let mut t = target(
                    "j\"><script>",
                    "http://a\"><script>/",
                    TargetHealth::Down,
                    &[("x", evil)],
                );
                t.last_error = evil.into();
                t
            }],
            ..Fake::default()
        };
        for html in [
            home(&ds, &q(None, None), NOW),
            targets(&ds, NOW),
            explore(&ds, &q(Some(evil), Some(evil)), NOW),
            explore(&ds, &q(None, Some("</textarea><script>")), NOW),
        ] {
            assert!(!html.contains("<script"), "{html}");
        }
        let html = targets(&ds, NOW);
        contains_all(
            &html,
            &[
                // Text nodes escape < > &; attribute values also escape quotes.
                "x=\"&lt;script&gt;alert(\"x\")&lt;/script&gt;\"",
                "href=\"http://a&quot;&gt;&lt;script&gt;/\"",
                "<td>j\"&gt;&lt;script&gt;</td>",
            ],
        );
    }

    #[test]
    fn instant_result_shapes() {
        #[track_caller]
        fn check(data: QueryData, want: &[(&str, &str)]) {
            let rows = instant_rows(data);
            let got: Vec<(&str, &str)> =
                rows.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            assert_eq!(got, want);
        }
        check(
            QueryData::Scalar(Point { t: 0, v: 1.5 }),
            &[("scalar", "1.5")],
        );
        check(
            QueryData::String(pharos_model::api::StringPoint {
                t: 0,
                s: "hi".into(),
            }),
            &[("string", "hi")],
        );
        check(
            QueryData::Matrix(vec![line(
                &[("__name__", "up"), ("job", "a")],
                1000,
                2,
                1000,
            )]),
            &[("up{job=\"a\"}", "0 @1\n1 @2")],
        );
        check(
            QueryData::Vector(vec![VectorSample {
                metric: Labels::from_pairs(&[("a", "b")]),
                value: Point { t: 0, v: f64::NAN },
            }]),
            &[("{a=\"b\"}", "NaN")],
        );
    }

    #[test]
    fn url_encoding() {
        #[track_caller]
        fn check(s: &str, want: &str) {
            assert_eq!(urlencode(s), want);
        }
        check("up", "up");
        check("a b&c=d", "a%20b%26c%3Dd");
        check("rate(x[1m])", "rate%28x%5B1m%5D%29");
        check("é", "%C3%A9");
    }

    #[test]
    fn html_escaping() {
        assert_eq!(
            escape_html("</textarea><b a='1'>&\""),
            "&lt;/textarea&gt;&lt;b a=&#39;1&#39;&gt;&amp;&quot;"
        );
    }
}
