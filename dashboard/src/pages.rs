//! The pages, rendered on the server with Leptos to complete HTML documents.
//!
//! Every page function takes the [`DataSource`], the query parameters and the current time, runs
//! its queries and returns the HTML. They block (queries may be slow), so the router calls them
//! from `spawn_blocking`. Text from labels, queries and errors is escaped by Leptos (text nodes
//! and attribute values); the raw insertions are the chart SVG (whose text plotters escapes),
//! the chart data JSON (with `<` escaped) and the fixed style sheet and script.

use std::time::Instant;

use leptos::either::Either;
use leptos::prelude::*;
use pharos_model::api::{
    MatrixSeries, QueryData, Target, TargetHealth, format_rfc3339, format_value,
};
use serde::Deserialize;

use crate::DataSource;
use crate::chart::{ChartOptions, Unit};
use crate::time::{DEFAULT_RANGE, TimeRange, last_scrape_ago, parse_refresh, step_for};
use crate::ui::{Chrome, chart_block, document, query_string, time_toolbar, unit_options};

/// Query parameters understood by the pages.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PageQuery {
    /// Time range name from [`crate::time::RANGES`] (`5m` … `7d`); default [`DEFAULT_RANGE`].
    pub range: Option<String>,
    /// Start of an absolute or relative range (`now-6h`, RFC 3339, epoch s or ms); wins over
    /// `range`.
    pub from: Option<String>,
    /// End of the range (default `now`).
    pub to: Option<String>,
    /// Auto-refresh: `off`, `5s`, `15s`, `1m`.
    pub refresh: Option<String>,
    /// `dark` or `light`.
    pub theme: Option<String>,
    /// PromQL expression (Explore).
    pub expr: Option<String>,
    /// Unit of the Explore chart ([`Unit::name`]); default plain.
    pub unit: Option<String>,
    /// Explore tab: `graph` (range query, default) or `table` (instant query).
    pub tab: Option<String>,
    /// Explore: `on` to stack the graph's series.
    pub stacked: Option<String>,
}

impl PageQuery {
    fn time_range(&self, now_ms: i64) -> TimeRange {
        TimeRange::resolve(
            self.range.as_deref(),
            self.from.as_deref(),
            self.to.as_deref(),
            DEFAULT_RANGE,
            now_ms,
        )
    }

    fn refresh(&self) -> String {
        self.refresh.clone().unwrap_or_else(|| "off".into())
    }

    /// The chrome of a page with these parameters.
    fn chrome(&self, base: &Chrome) -> Chrome {
        Chrome {
            refresh_s: parse_refresh(self.refresh.as_deref()),
            theme: Chrome::theme_param(self.theme.as_deref()).or(base.theme),
            ..base.clone()
        }
    }
}

/// A chart panel of a built-in page.
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

/// The numbers at the top of the Home page: (title, instant query, unit).
pub const HOME_STATS: [(&str, &str, Unit); 5] = [
    (
        "Nodes up",
        "count(up == 1 and on (instance) node_uname_info) or vector(0)",
        Unit::Plain,
    ),
    (
        "Firing alerts",
        "count(ALERTS{alertstate=\"firing\"}) or vector(0)",
        Unit::Plain,
    ),
    ("Head series", "sum(pharos_tsdb_head_series)", Unit::Plain),
    (
        "Ingestion",
        "sum(rate(pharos_target_samples_appended_total[5m]))",
        Unit::OpsPerSecond,
    ),
    ("WAL size", "sum(pharos_tsdb_wal_bytes)", Unit::Bytes),
];

/// Width in pixels of the SVG of a dashboard chart (it scales with the page).
const PANEL_WIDTH: u32 = 760;
const PANEL_HEIGHT: u32 = 220;
/// Width of the Explore chart.
const EXPLORE_WIDTH: u32 = 1200;
const EXPLORE_HEIGHT: u32 = 340;
/// Rows of an instant result shown in the Explore table.
const MAX_TABLE_ROWS: usize = 1000;

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

fn notice(text: Option<String>) -> impl IntoView {
    text.map(|t| view! { <div class="notice">{t}</div> })
}

/// The body of a chart panel: the chart, or a "no data" or error message.
fn chart_body(
    result: Result<Vec<MatrixSeries>, String>,
    opts: &ChartOptions,
) -> impl IntoView + use<> {
    match result {
        Err(e) => view! { <div class="error">{format!("Query failed: {e}")}</div> }.into_any(),
        Ok(s) => chart_block(&s, &[], opts),
    }
}

fn panel_view(
    panel: &Panel,
    result: Result<Vec<MatrixSeries>, String>,
    opts: &ChartOptions,
    time: &[(String, String)],
) -> impl IntoView + use<> {
    let mut pairs = vec![
        ("expr".to_string(), panel.expr.to_string()),
        ("unit".to_string(), panel.unit.name().to_string()),
    ];
    pairs.extend(time.iter().cloned());
    let explore = format!("/graph{}", query_string(&pairs));
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

/// `GET /`: health at a glance (nodes, targets, alerts, storage, ingestion), the built-in charts
/// and links to everything.
pub fn home(ds: &dyn DataSource, q: &PageQuery, chrome: &Chrome, now_ms: i64) -> String {
    let started = Instant::now();
    let tr = q.time_range(now_ms);
    let refresh = q.refresh();
    let step = step_for(tr.len_ms(), PANEL_WIDTH);
    let time_pairs = vec![
        ("from".to_string(), tr.from.clone()),
        ("to".to_string(), tr.to.clone()),
    ];
    let panels = HOME_PANELS
        .iter()
        .map(|p| {
            let result = ds.query_range(p.expr, tr.start_ms, tr.end_ms, step);
            if let Err(e) = &result {
                tracing::debug!(expr = p.expr, error = %e, "home panel query failed");
            }
            let opts = ChartOptions {
                width: PANEL_WIDTH,
                height: PANEL_HEIGHT,
                start_ms: tr.start_ms,
                end_ms: tr.end_ms,
                step_ms: step,
                unit: p.unit,
                ..ChartOptions::default()
            };
            panel_view(p, result, &opts, &time_pairs)
        })
        .collect_view();
    let targets = sorted_targets(ds);
    let failing: Vec<Target> = targets
        .iter()
        .filter(|t| t.health != TargetHealth::Up)
        .cloned()
        .collect();
    let stats = HOME_STATS
        .iter()
        .map(|(title, expr, unit)| {
            let text = match ds.query(expr, now_ms) {
                Ok(QueryData::Vector(v)) => v
                    .first()
                    .map_or_else(|| "-".to_string(), |s| unit.format(s.value.v)),
                Ok(QueryData::Scalar(p)) => unit.format(p.v),
                _ => "-".to_string(),
            };
            let href = format!("/graph{}", query_string(&[("expr".into(), (*expr).into())]));
            view! {
                <a class="panel stat" href=href style="text-decoration:none;color:inherit">
                    <div class="v">{text}</div>
                    <div class="n">{*title}</div>
                </a>
            }
        })
        .collect_view();
    let boards = chrome
        .boards
        .iter()
        .map(|(uid, title)| {
            let href = format!("/d/{uid}");
            view! { <a href=href>{title.clone()}</a> " · " }
        })
        .collect_view();
    let elapsed = format!(
        "Step {}, loaded in {} ms",
        pharos_model::api::format_duration(step),
        started.elapsed().as_millis()
    );
    let failing_view = (!failing.is_empty()).then(|| {
        view! {
            <h2>"Targets with errors"</h2>
            {targets_table(&failing, now_ms)}
        }
    });
    let content = view! {
        <h1>"Overview"</h1>
        {notice(tr.notice.clone())}
        <div class="grid" style="grid-template-columns:repeat(auto-fit,minmax(150px,1fr))">
            <a class="panel stat" href="/targets" style="text-decoration:none;color:inherit">
                {summary(&targets)}
                <div class="n">"Targets"</div>
            </a>
            {stats}
        </div>
        <p>"Dashboards: " {boards} <a href="/dashboards">"all dashboards"</a> " · "
            <a href="/graph">"Explore"</a> " · " <a href="/status">"Status"</a></p>
        {crate::alerts::firing_on_home(ds, now_ms)}
        {failing_view}
        {time_toolbar("/", &[], &tr, &refresh)}
        <div class="grid">{panels}</div>
        <p class="muted">{elapsed}</p>
    };
    document("Home", "/", &q.chrome(chrome), content)
}

/// `GET /targets`: every scrape target.
pub fn targets(ds: &dyn DataSource, chrome: &Chrome, now_ms: i64) -> String {
    let targets = sorted_targets(ds);
    let content = view! {
        <h1>"Targets"</h1>
        {summary(&targets)}
        {targets_table(&targets, now_ms)}
    };
    document("Targets", "/targets", chrome, content)
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

/// A PromQL error message with its position (`3:7: parse error: ...`, as Prometheus and Pharos
/// report them): (line, column, message).
pub fn error_position(msg: &str) -> Option<(usize, usize, &str)> {
    let (line, rest) = msg.split_once(':')?;
    let (col, rest) = rest.split_once(':')?;
    Some((
        line.trim().parse().ok()?,
        col.trim().parse().ok()?,
        rest.trim(),
    ))
}

/// The expression with the character at the error's position marked.
fn error_marked(expr: &str, err: &str) -> impl IntoView + use<> {
    let pos = error_position(err).and_then(|(line, col, _)| {
        let start: usize = expr
            .split_inclusive('\n')
            .take(line.checked_sub(1)?)
            .map(str::len)
            .sum();
        // Columns count bytes from 1 (Prometheus' convention); clamp to a char boundary.
        let mut at = (start + col.checked_sub(1)?).min(expr.len());
        while !expr.is_char_boundary(at) {
            at -= 1;
        }
        Some(at)
    });
    pos.map(|at| {
        let before = expr[..at].to_string();
        let ch_len = expr[at..].chars().next().map_or(0, char::len_utf8);
        let mark = if ch_len == 0 {
            " ".to_string()
        } else {
            expr[at..at + ch_len].to_string()
        };
        let after = expr[at + ch_len..].to_string();
        view! {
            <pre class="errpos">{before}<mark>{mark}</mark>{after}</pre>
        }
    })
}

/// `GET /graph?expr=...&range=1h&tab=graph|table&stacked=on`: ad-hoc PromQL, graph and table.
pub fn explore(ds: &dyn DataSource, q: &PageQuery, chrome: &Chrome, now_ms: i64) -> String {
    let tr = q.time_range(now_ms);
    let refresh = q.refresh();
    let expr = q.expr.clone().unwrap_or_default();
    let expr_trim = expr.trim().to_string();
    let unit = q.unit.as_deref().and_then(Unit::parse).unwrap_or_default();
    let table_tab = q.tab.as_deref() == Some("table");
    let stacked = matches!(q.stacked.as_deref(), Some("on" | "1" | "true"));
    let form = view! {
        <form class="query" method="get" action="/graph">
            <textarea name="expr" placeholder="PromQL expression (Ctrl+Enter runs it)" inner_html=escape_html(&expr)></textarea>
            <input type="hidden" name="from" value=tr.from.clone() />
            <input type="hidden" name="to" value=tr.to.clone() />
            <input type="hidden" name="tab" value=if table_tab { "table" } else { "graph" } />
            <div class="row">
                <label>"Unit " <select name="unit">{unit_options(unit)}</select></label>
                <label><input type="checkbox" name="stacked" value="on" checked=stacked />" Stacked"</label>
                <button type="submit">"Execute"</button>
            </div>
        </form>
        <div class="history" style="display:none">
            <h2>"History"</h2>
            <ul id="history"></ul>
        </div>
    };

    let results = if expr_trim.is_empty() {
        let examples = EXAMPLES
            .iter()
            .map(|e| {
                let href = format!(
                    "/graph{}",
                    query_string(&[("expr".into(), (*e).to_string())])
                );
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
        let step = step_for(tr.len_ms(), EXPLORE_WIDTH);
        let mut base = vec![
            ("expr".to_string(), expr_trim.clone()),
            ("unit".to_string(), unit.name().to_string()),
        ];
        if stacked {
            base.push(("stacked".into(), "on".into()));
        }
        let tab_link = |tab: &str| {
            let mut pairs = base.clone();
            pairs.push(("tab".into(), tab.into()));
            pairs.push(("from".into(), tr.from.clone()));
            pairs.push(("to".into(), tr.to.clone()));
            format!("/graph{}", query_string(&pairs))
        };
        let (graph_href, table_href) = (tab_link("graph"), tab_link("table"));
        let mut share = base.clone();
        share.push(("from".into(), tr.start_ms.to_string()));
        share.push(("to".into(), tr.end_ms.to_string()));
        if table_tab {
            share.push(("tab".into(), "table".into()));
        }
        let share = format!("/graph{}", query_string(&share));
        let mut toolbar_base = base.clone();
        if table_tab {
            toolbar_base.push(("tab".into(), "table".into()));
        }
        let (body, error, meta) = if table_tab {
            let instant = ds.query(&expr_trim, tr.end_ms);
            let err = instant.as_ref().err().cloned();
            let meta = format!(
                "instant query at {}, loaded in {} ms",
                format_rfc3339(tr.end_ms),
                started.elapsed().as_millis()
            );
            (instant_table(instant).into_any(), err, meta)
        } else {
            let graph = ds.query_range(&expr_trim, tr.start_ms, tr.end_ms, step);
            let err = graph.as_ref().err().cloned();
            let series_count = graph.as_ref().map_or(0, Vec::len);
            let opts = ChartOptions {
                width: EXPLORE_WIDTH,
                height: EXPLORE_HEIGHT,
                start_ms: tr.start_ms,
                end_ms: tr.end_ms,
                step_ms: step,
                unit,
                stacked,
                ..ChartOptions::default()
            };
            let meta = format!(
                "{series_count} series, step {}, loaded in {} ms",
                pharos_model::api::format_duration(step),
                started.elapsed().as_millis()
            );
            let body = view! {
                <section class="panel">{chart_body(graph, &opts)}</section>
            };
            (body.into_any(), err, meta)
        };
        let marked = error.map(|e| error_marked(&expr_trim, &e));
        Either::Right(view! {
            {marked}
            {time_toolbar("/graph", &toolbar_base, &tr, &refresh)}
            <div class="tabs">
                <a href=graph_href class=if table_tab { "" } else { "active" }>"Graph"</a>
                <a href=table_href class=if table_tab { "active" } else { "" }>"Table"</a>
                <span class="sep" style="flex:1"></span>
                <a href=share title="This view with absolute times, to share">"Share link"</a>
            </div>
            <p class="muted">{meta}</p>
            {body}
        })
    };

    let content = view! {
        <h1>"Explore"</h1>
        {notice(tr.notice.clone())}
        {form}
        {results}
    };
    document("Explore", "/graph", &q.chrome(chrome), content)
}

/// `GET /status`: build information, and what the data source reports (runtime, flags, storage
/// statistics, the configuration file).
pub fn status(ds: &dyn DataSource, chrome: &Chrome) -> String {
    let st = ds.status();
    let kv = |pairs: Vec<(String, String)>| {
        let items = pairs
            .into_iter()
            .map(|(k, v)| view! { <dt>{k}</dt> <dd>{v}</dd> })
            .collect_view();
        view! { <dl class="kv">{items}</dl> }
    };
    let dashboard_build = vec![(
        "dashboard version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    )];
    let sections = st
        .sections
        .into_iter()
        .map(|(title, pairs)| {
            view! {
                <section class="panel" style="margin-bottom:12px">
                    <h2 style="margin-top:0">{title}</h2>
                    {kv(pairs)}
                </section>
            }
        })
        .collect_view();
    let config = st.config_yaml.map(|c| {
        view! {
            <h2>"Configuration"</h2>
            <pre class="config">{c}</pre>
        }
    });
    let content = view! {
        <h1>"Status"</h1>
        {sections}
        <section class="panel" style="margin-bottom:12px">
            <h2 style="margin-top:0">"Dashboard"</h2>
            {kv(dashboard_build)}
        </section>
        {config}
    };
    document("Status", "/status", chrome, content)
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
            ..PageQuery::default()
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
        let html = targets(&ds, &Chrome::default(), NOW);
        assert!(html.starts_with("<!DOCTYPE html><html"), "{html}");
        contains_all(
            &html,
            &[
                "<a href=\"/graph\"",
                "href=\"/status\"",
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
        let html = home(&ds, &q(None, None), &Chrome::default(), NOW);
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
            let html = home(&ds, &q(range, None), &Chrome::default(), NOW);
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
        let html = explore(
            &ds,
            &q(Some("15m"), Some("rate(x[1m])")),
            &Chrome::default(),
            NOW,
        );
        contains_all(
            &html,
            &[
                ">rate(x[1m])</textarea>",
                "<input type=\"hidden\" name=\"from\" value=\"now-15m\">",
                "<a href=\"/graph?expr=rate%28x%5B1m%5D%29&amp;unit=plain&amp;range=1h\"",
                "<svg",
                "{mode=\"user\"}",
                "1 series, step 5s",
                "Share link",
                // The share link has absolute times.
                &format!("&amp;from={}&amp;to={NOW}", NOW - 900_000),
            ],
        );
        // The graph tab runs only the range query; the table tab only the instant one.
        assert!(!html.contains("1 results"));
        let table = PageQuery {
            tab: Some("table".into()),
            ..q(Some("15m"), Some("rate(x[1m])"))
        };
        let html = explore(&ds, &table, &Chrome::default(), NOW);
        contains_all(&html, &["{mode=\"user\"}</td>", "0.25", "1 results"]);
        assert!(!html.contains("<svg"));

        let ds = Fake {
            ranges: vec![(
                "rate(",
                Err("1:6: parse error: unexpected end of input".into()),
            )],
            instant: Some(Err("1:6: parse error: unexpected end of input".into())),
            ..Fake::default()
        };
        let html = explore(&ds, &q(None, Some("rate(")), &Chrome::default(), NOW);
        contains_all(
            &html,
            &[
                "Query failed: 1:6: parse error: unexpected end of input",
                // The position is marked (past the end here).
                "<pre class=\"errpos\">rate(<mark> </mark>",
            ],
        );
        assert!(!html.contains("<svg"));
        let table = PageQuery {
            tab: Some("table".into()),
            ..q(None, Some("rate("))
        };
        let html = explore(&ds, &table, &Chrome::default(), NOW);
        contains_all(
            &html,
            &["<div class=\"error\">1:6: parse error: unexpected end of input</div>"],
        );

        // No expression: examples, no queries.
        let ds = Fake::default();
        let html = explore(&ds, &q(None, None), &Chrome::default(), NOW);
        contains_all(&html, &["Examples", "/graph?expr=up\""]);
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
            home(&ds, &q(None, None), &Chrome::default(), NOW),
            targets(&ds, &Chrome::default(), NOW),
            explore(&ds, &q(Some(evil), Some(evil)), &Chrome::default(), NOW),
            explore(
                &ds,
                &q(None, Some("</textarea><script>")),
                &Chrome::default(),
                NOW,
            ),
        ] {
            no_injected_script(&html);
        }
        let html = targets(&ds, &Chrome::default(), NOW);
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

    /// The page's own scripts are the only `<script` elements.
    #[track_caller]
    fn no_injected_script(html: &str) {
        let own = html
            .replace("<script>try{", "")
            .replace("<script>(function(){", "")
            .replace(
                "<script type=\"application/json\" class=\"chart-data\">",
                "",
            );
        assert!(!own.contains("<script"), "{html}");
    }

    #[test]
    fn error_marking() {
        #[track_caller]
        fn check(expr: &str, err: &str, want: Option<&str>) {
            let got = error_marked(expr, err).into_view().to_html();
            match want {
                Some(w) => assert!(got.contains(w), "{got}"),
                None => assert!(!got.contains("errpos"), "{got}"),
            }
        }
        check("sum(x", "1:6: parse error: x", Some("sum(x<mark> </mark>"));
        check(
            "a +\nb +)",
            "2:4: parse error: x",
            Some("a +\nb +<mark>)</mark>"),
        );
        check("é+", "1:2: parse error: x", Some("<mark>é</mark>+"));
        check("up", "no position here", None);
        assert_eq!(
            error_position("3:7: parse error: boom"),
            Some((3, 7, "parse error: boom"))
        );
    }

    #[test]
    fn status_page() {
        let html = status(&Fake::default(), &Chrome::default());
        contains_all(&html, &["<h1>Status</h1>", "dashboard version"]);
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
