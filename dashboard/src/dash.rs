//! Dashboard pages (`/d/<uid>`): variables, time picker, rows of panels; the dashboard list
//! (`/dashboards`) and panels as images (`/render`).

use std::collections::BTreeMap;
use std::time::Instant;

use leptos::either::Either;
use leptos::prelude::*;
use pharos_model::Labels;
use pharos_model::api::{MatrixSeries, QueryData};

use crate::DataSource;
use crate::board::{self, ALL, Board, Context, Kind, Loaded, Panel, Resolved};
use crate::chart::{ChartOptions, Unit, render_chart, render_message};
use crate::pages::urlencode;
use crate::time::{TimeRange, parse_refresh, step_for};
use crate::ui::{Chrome, chart_block, document, query_string, time_toolbar};

/// Width in pixels of a full-width (12 column) chart.
const FULL_WIDTH: u32 = 1500;
/// Height of a dashboard chart's plot.
const CHART_HEIGHT: u32 = 220;
/// Default limit of table and bar rows.
const DEFAULT_LIMIT: usize = 50;
/// Default limit of repeated rows (each is several charts): beyond it the page links to
/// `repeat=all`, so a page for a large cluster stays fast and small.
const DEFAULT_REPEAT: usize = 8;
/// Hard limit of repeated rows even with `repeat=all`.
const MAX_REPEAT: usize = 500;

/// The request parameters of a page as a map (the last value of a repeated name wins).
pub fn param_map(params: &[(String, String)]) -> BTreeMap<String, String> {
    params.iter().cloned().collect()
}

/// One series to show: its legend text and its data.
struct Shown {
    name: String,
    series: MatrixSeries,
}

/// Instant values of a query: (legend text, labels, value).
type Values = Vec<(String, Labels, f64)>;

fn instant_values(
    ds: &dyn DataSource,
    expr: &str,
    legend: Option<&str>,
    t: i64,
) -> Result<Values, String> {
    Ok(match ds.query(expr, t)? {
        QueryData::Vector(v) => v
            .into_iter()
            .map(|s| (board::legend(legend, &s.metric), s.metric, s.value.v))
            .collect(),
        QueryData::Scalar(p) => {
            vec![(legend.unwrap_or("scalar").to_string(), Labels::empty(), p.v)]
        }
        QueryData::Matrix(m) => m
            .into_iter()
            .filter_map(|s| {
                let last = s.values.last()?.v;
                Some((board::legend(legend, &s.metric), s.metric, last))
            })
            .collect(),
        QueryData::String(_) => return Err("a string result cannot be shown in a panel".into()),
    })
}

/// A piece of a dashboard page rendered on its own.
enum Job<'a> {
    /// A row with the variables it is rendered with.
    Row(&'a board::Row, Vec<Resolved>),
    /// A line of text, with an optional link (address, text).
    Note(String, Option<(String, String)>),
}

/// Runs `f` over `jobs` on up to as many threads as there are cores; results keep their order.
fn render_parallel<T: Sync>(jobs: &[T], f: impl Fn(&T) -> String + Sync) -> Vec<String> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(jobs.len());
    if threads <= 1 {
        return jobs.iter().map(&f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut out: Vec<(usize, String)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else { break };
                        done.push((i, f(job)));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, s)| s).collect()
}

/// Renders `GET /d/<uid>`.
pub fn board_page(
    ds: &dyn DataSource,
    b: &Board,
    params: &[(String, String)],
    chrome: &Chrome,
    now_ms: i64,
) -> String {
    let started = Instant::now();
    let p = param_map(params);
    let get = |k: &str| p.get(k).map(String::as_str);
    let default_range = b.time.as_deref().unwrap_or("1h");
    let tr = TimeRange::resolve(get("range"), get("from"), get("to"), default_range, now_ms);
    let refresh = get("refresh").unwrap_or("off").to_string();
    let chrome = Chrome {
        refresh_s: parse_refresh(Some(&refresh)),
        ..chrome.clone()
    };
    let vars = board::resolve_variables(ds, &b.variables, &p, tr.start_ms, tr.end_ms);
    let path = format!("/d/{}", b.uid);

    // Parameters that keep the variables (for the time picker's links).
    let var_pairs: Vec<(String, String)> = vars
        .iter()
        .map(|v| (format!("var-{}", v.name), v.selected.clone()))
        .collect();
    let mut time_pairs: Vec<(String, String)> = vec![
        ("from".into(), tr.from.clone()),
        ("to".into(), tr.to.clone()),
    ];
    if refresh != "off" {
        time_pairs.push(("refresh".into(), refresh.clone()));
    }

    // Rows (and each repetition of a repeated row) are independent: render them to HTML on
    // all cores.
    let show_all = get("repeat") == Some("all");
    let mut jobs: Vec<Job> = Vec::new();
    for row in &b.rows {
        let repeat = row
            .repeat
            .as_ref()
            .and_then(|r| vars.iter().find(|v| &v.name == r));
        match repeat {
            // A repeated row appears once per value when more than one is selected.
            Some(v) => {
                let values = v.values();
                if values.len() < 2 {
                    continue;
                }
                let limit = if show_all {
                    MAX_REPEAT
                } else {
                    row.repeat_limit.unwrap_or(DEFAULT_REPEAT).min(MAX_REPEAT)
                };
                let more = values.len().saturating_sub(limit);
                for value in values.into_iter().take(limit) {
                    let bound: Vec<Resolved> = vars
                        .iter()
                        .map(|x| {
                            let mut x = x.clone();
                            if x.name == v.name {
                                x.selected = value.clone();
                            }
                            x
                        })
                        .collect();
                    jobs.push(Job::Row(row, bound));
                }
                if more > 0 && show_all {
                    jobs.push(Job::Note(
                        format!("… and {more} more (at most {MAX_REPEAT} repeated rows)"),
                        None,
                    ));
                } else if more > 0 {
                    let mut pairs: Vec<(String, String)> = params
                        .iter()
                        .filter(|(k, _)| k != "repeat")
                        .cloned()
                        .collect();
                    pairs.push(("repeat".into(), "all".into()));
                    jobs.push(Job::Note(
                        format!("… and {more} more."),
                        Some((
                            format!("{path}{}", query_string(&pairs)),
                            format!("Show all {}", limit + more),
                        )),
                    ));
                }
            }
            None => jobs.push(Job::Row(row, vars.clone())),
        }
    }
    let rendered = render_parallel(&jobs, |job| match job {
        Job::Row(row, vars) => row_view(ds, row, vars, &tr, &time_pairs).to_html(),
        Job::Note(text, link) => {
            let link = link
                .clone()
                .map(|(href, label)| view! { " " <a href=href>{label}</a> });
            view! { <p class="muted">{text.clone()}{link}</p> }.to_html()
        }
    });
    let rows = view! { <div inner_html=rendered.concat()></div> };

    let var_form = vars_form(&path, &vars, &time_pairs);
    let elapsed = format!("rendered in {} ms", started.elapsed().as_millis());
    let content = view! {
        <h1>{b.title.clone()}</h1>
        {(!b.description.is_empty()).then(|| view! { <p class="muted">{b.description.clone()}</p> })}
        {tr.notice.clone().map(|t| view! { <div class="notice">{t}</div> })}
        {var_form}
        {time_toolbar(&path, &var_pairs, &tr, &refresh)}
        {rows}
        <p class="muted">{elapsed}</p>
    };
    document(&b.title, &path, &chrome, content)
}

fn vars_form(
    path: &str,
    vars: &[Resolved],
    time_pairs: &[(String, String)],
) -> impl IntoView + use<> {
    if vars.is_empty() {
        return Either::Left(());
    }
    let hidden = time_pairs
        .iter()
        .map(|(k, v)| view! { <input type="hidden" name=k.clone() value=v.clone() /> })
        .collect_view();
    let selects =
        vars.iter()
            .map(|v| {
                let all = v.include_all.then(|| {
                    view! { <option value=ALL selected=v.selected == ALL>"All"</option> }
                });
                let mut options = v.options.clone();
                if v.selected != ALL && !options.contains(&v.selected) {
                    options.insert(0, v.selected.clone());
                }
                let opts = options
                    .into_iter()
                    .map(|o| {
                        let sel = o == v.selected;
                        let text = o.clone();
                        view! { <option value=o selected=sel>{text}</option> }
                    })
                    .collect_view();
                let err = v.error.clone().map(
                    |e| view! { <span class="err">{format!("cannot list values: {e}")}</span> },
                );
                view! {
                    <label>
                        {v.label.clone()}
                        <select name=format!("var-{}", v.name)>{all} {opts}</select>
                        {err}
                    </label>
                }
            })
            .collect_view();
    Either::Right(view! {
        <form class="vars" method="get" action=path.to_string()>
            {hidden}
            {selects}
            <noscript>
                <button type="submit">"Apply"</button>
            </noscript>
        </form>
    })
}

fn row_view(
    ds: &dyn DataSource,
    row: &board::Row,
    vars: &[Resolved],
    tr: &TimeRange,
    time_pairs: &[(String, String)],
) -> impl IntoView + use<> {
    let ctx = Context {
        vars,
        range_ms: tr.len_ms(),
        step_ms: 0,
    };
    let title = ctx.expand_text(&row.title);
    let panels = row
        .panels
        .iter()
        .map(|p| panel_view(ds, p, vars, tr, time_pairs))
        .collect_view();
    view! {
        <section class="row">
            {(!title.is_empty()).then(|| view! { <h2>{title}</h2> })}
            <div class="rowgrid">{panels}</div>
        </section>
    }
}

fn panel_view(
    ds: &dyn DataSource,
    p: &Panel,
    vars: &[Resolved],
    tr: &TimeRange,
    time_pairs: &[(String, String)],
) -> impl IntoView + use<> {
    let span = p.width.unwrap_or(6).clamp(1, 12);
    let width = (FULL_WIDTH * u32::from(span) / 12).max(300);
    let step = step_for(tr.len_ms(), width);
    let ctx = Context {
        vars,
        range_ms: tr.len_ms(),
        step_ms: step,
    };
    let title = ctx.expand_text(&p.title);
    let queries: Vec<(String, Option<String>)> = p
        .all_queries()
        .iter()
        .map(|q| (ctx.expand(&q.expr), q.legend.clone()))
        .collect();
    let unit = p.unit();
    let first = queries.first().map(|q| q.0.clone()).unwrap_or_default();
    let mut explore_pairs = vec![
        ("expr".to_string(), first),
        ("unit".to_string(), unit.name().to_string()),
    ];
    explore_pairs.extend(time_pairs.iter().cloned());
    let explore = format!("/graph{}", query_string(&explore_pairs));
    let body = match p.kind {
        Kind::Timeseries => {
            let mut render_pairs: Vec<(String, String)> = Vec::new();
            for (e, l) in &queries {
                render_pairs.push(("expr".into(), e.clone()));
                render_pairs.push(("legend".into(), l.clone().unwrap_or_default()));
            }
            render_pairs.push(("unit".into(), unit.name().into()));
            render_pairs.push(("from".into(), tr.start_ms.to_string()));
            render_pairs.push(("to".into(), tr.end_ms.to_string()));
            render_pairs.push(("title".into(), title.clone()));
            if p.stack {
                render_pairs.push(("stacked".into(), "on".into()));
            }
            let image = format!("/render{}", query_string(&render_pairs));
            let body = timeseries(ds, &queries, p, tr, width, step);
            return view! {
                <div class="panel" style=format!("grid-column:span {span}")>
                    <header>
                        <h3>{title}</h3>
                        <span>
                            <a href=explore>"Explore"</a>
                            <a href=image>"Image"</a>
                        </span>
                    </header>
                    {body}
                </div>
            }
            .into_any();
        }
        Kind::Stat | Kind::Gauge | Kind::Bar => instant_panel(ds, &queries, p, tr.end_ms),
        Kind::Table => table(ds, p, &queries, tr.end_ms),
    };
    view! {
        <div class="panel" style=format!("grid-column:span {span}")>
            <header>
                <h3>{title}</h3>
                <a href=explore>"Explore"</a>
            </header>
            {body}
        </div>
    }
    .into_any()
}

fn error_view(e: String) -> AnyView {
    view! { <div class="error">{format!("Query failed: {e}")}</div> }.into_any()
}

fn timeseries(
    ds: &dyn DataSource,
    queries: &[(String, Option<String>)],
    p: &Panel,
    tr: &TimeRange,
    width: u32,
    step: i64,
) -> AnyView {
    let mut shown: Vec<Shown> = Vec::new();
    for (expr, legend) in queries {
        match ds.query_range(expr, tr.start_ms, tr.end_ms, step) {
            Ok(series) => shown.extend(series.into_iter().map(|s| Shown {
                name: board::legend(legend.as_deref(), &s.metric),
                series: s,
            })),
            Err(e) => return error_view(e),
        }
    }
    let (names, series): (Vec<String>, Vec<MatrixSeries>) =
        shown.into_iter().map(|s| (s.name, s.series)).unzip();
    let opts = ChartOptions {
        width,
        height: CHART_HEIGHT,
        start_ms: tr.start_ms,
        end_ms: tr.end_ms,
        step_ms: step,
        unit: p.unit(),
        stacked: p.stack,
        ..ChartOptions::default()
    };
    chart_block(&series, &names, &opts)
}

/// A CSS colour from a threshold (names and `#hex` only, checked at load).
fn color_style(p: &Panel, v: f64) -> String {
    p.color_for(v)
        .map(|c| format!("color:{c}"))
        .unwrap_or_default()
}

fn instant_panel(
    ds: &dyn DataSource,
    queries: &[(String, Option<String>)],
    p: &Panel,
    t: i64,
) -> AnyView {
    let mut values: Values = Vec::new();
    for (expr, legend) in queries {
        match instant_values(ds, expr, legend.as_deref(), t) {
            Ok(v) => values.extend(v),
            Err(e) => return error_view(e),
        }
    }
    if values.is_empty() {
        return view! { <div class="nodata">"No data"</div> }.into_any();
    }
    let unit = p.unit();
    match p.kind {
        Kind::Stat => {
            let items = values
                .into_iter()
                .take(12)
                .map(|(name, _, v)| {
                    view! {
                        <div class="stat">
                            <div class="v" style=color_style(p, v)>{unit.format(v)}</div>
                            <div class="n">{name}</div>
                        </div>
                    }
                })
                .collect_view();
            view! { <div class="stats">{items}</div> }.into_any()
        }
        Kind::Gauge => {
            let (lo, hi) = match unit {
                Unit::Percent => (p.min.unwrap_or(0.0), p.max.unwrap_or(100.0)),
                Unit::Ratio => (p.min.unwrap_or(0.0), p.max.unwrap_or(1.0)),
                _ => (
                    p.min.unwrap_or(0.0),
                    p.max
                        .unwrap_or_else(|| values.iter().map(|v| v.2).fold(0.0, f64::max).max(1.0)),
                ),
            };
            let items = values
                .into_iter()
                .take(8)
                .map(|(name, _, v)| {
                    let frac = if hi > lo {
                        ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
                    } else {
                        0.0
                    };
                    let fill = format!(
                        "width:{:.1}%;{}",
                        frac * 100.0,
                        p.color_for(v)
                            .map(|c| format!("background:{c}"))
                            .unwrap_or_default()
                    );
                    view! {
                        <div class="gauge stat">
                            <div class="v" style=color_style(p, v)>{unit.format(v)}</div>
                            <div class="bar">
                                <div class="fill" style=fill></div>
                            </div>
                            <div class="n">{name}</div>
                        </div>
                    }
                })
                .collect_view();
            view! { <div>{items}</div> }.into_any()
        }
        _ => {
            values.sort_by(|a, b| b.2.total_cmp(&a.2));
            let max = values.iter().map(|v| v.2).fold(0.0, f64::max);
            let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
            let items = values
                .into_iter()
                .take(limit)
                .map(|(name, _, v)| {
                    let frac = if max > 0.0 {
                        (v / max).clamp(0.0, 1.0)
                    } else {
                        0.0
                    };
                    let fill = format!(
                        "width:{:.1}%;{}",
                        frac * 100.0,
                        p.color_for(v)
                            .map(|c| format!("background:{c}"))
                            .unwrap_or_default()
                    );
                    view! {
                        <div class="item">
                            <div class="top">
                                <span>{name}</span>
                                <span>{unit.format(v)}</span>
                            </div>
                            <div class="bar">
                                <div class="fill" style=fill></div>
                            </div>
                        </div>
                    }
                })
                .collect_view();
            view! { <div class="bars">{items}</div> }.into_any()
        }
    }
}

/// Expands a row link: `{{label}}` becomes the URL-encoded value. Only site paths and http(s)
/// URLs are links.
fn row_link(template: &str, labels: &Labels) -> Option<String> {
    if !(template.starts_with('/') && !template.starts_with("//")
        || template.starts_with("http://")
        || template.starts_with("https://"))
    {
        return None;
    }
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after.find("}}")?;
        out.push_str(&urlencode(labels.get(after[..end].trim()).unwrap_or("")));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Some(out)
}

fn table(ds: &dyn DataSource, p: &Panel, queries: &[(String, Option<String>)], t: i64) -> AnyView {
    let defs = p.all_queries();
    // Rows keyed by legend text, in first-seen order; one value per query.
    let mut keys: Vec<String> = Vec::new();
    let mut rows: BTreeMap<String, (Labels, Vec<Option<f64>>)> = BTreeMap::new();
    for (qi, (expr, legend)) in queries.iter().enumerate() {
        let vals = match instant_values(ds, expr, legend.as_deref(), t) {
            Ok(v) => v,
            Err(e) => return error_view(e),
        };
        for (name, labels, v) in vals {
            let entry = rows.entry(name.clone()).or_insert_with(|| {
                keys.push(name);
                (labels, vec![None; queries.len()])
            });
            entry.1[qi] = Some(v);
        }
    }
    if keys.is_empty() {
        return view! { <div class="nodata">"No data"</div> }.into_any();
    }
    let names: Vec<String> = defs
        .iter()
        .map(|q| {
            q.name
                .clone()
                .or_else(|| q.legend.clone())
                .unwrap_or_else(|| q.expr.clone())
        })
        .collect();
    let units: Vec<Unit> = defs
        .iter()
        .map(|q| {
            q.unit
                .as_deref()
                .and_then(Unit::parse)
                .unwrap_or_else(|| p.unit())
        })
        .collect();
    let sort_col = p
        .sort
        .as_ref()
        .and_then(|s| names.iter().position(|n| n == s))
        .unwrap_or(0);
    let mut ordered: Vec<(String, Labels, Vec<Option<f64>>)> = keys
        .into_iter()
        .filter_map(|k| rows.remove(&k).map(|(l, v)| (k, l, v)))
        .collect();
    ordered.sort_by(|a, b| {
        let v = |r: &Vec<Option<f64>>| {
            r.get(sort_col)
                .copied()
                .flatten()
                .unwrap_or(f64::NEG_INFINITY)
        };
        v(&b.2).total_cmp(&v(&a.2)).then_with(|| a.0.cmp(&b.0))
    });
    let total = ordered.len();
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    let head = names
        .iter()
        .map(|n| view! { <th class="num">{n.clone()}</th> })
        .collect_view();
    let body = ordered
        .into_iter()
        .take(limit)
        .map(|(name, labels, vals)| {
            let link = p.link.as_deref().and_then(|l| row_link(l, &labels));
            let first = match link {
                Some(href) => Either::Left(view! { <a href=href>{name.clone()}</a> }),
                None => Either::Right(name.clone()),
            };
            let cells = vals
                .into_iter()
                .zip(units.iter().copied())
                .map(|(v, u)| {
                    let text = v.map_or_else(|| "-".to_string(), |v| u.format(v));
                    let sort = v.map_or_else(String::new, |v| v.to_string());
                    let style = v.map(|v| color_style(p, v)).unwrap_or_default();
                    view! { <td class="num" data-v=sort style=style>{text}</td> }
                })
                .collect_view();
            view! {
                <tr>
                    <td class="series">{first}</td>
                    {cells}
                </tr>
            }
        })
        .collect_view();
    let more = (total > limit).then(|| {
        view! { <p class="muted">{format!("Showing {limit} of {total} rows")}</p> }
    });
    view! {
        <div class="table-wrap">
            <table class="sortable">
                <thead>
                    <tr>
                        <th>"Name"</th>
                        {head}
                    </tr>
                </thead>
                <tbody>{body}</tbody>
            </table>
        </div>
        {more}
    }
    .into_any()
}

/// Renders `GET /dashboards`: every dashboard and the files that could not be loaded.
pub fn list_page(loaded: &Loaded, chrome: &Chrome) -> String {
    let items = loaded
        .boards
        .iter()
        .map(|b| {
            let href = format!("/d/{}", b.uid);
            view! {
                <tr>
                    <td>
                        <a href=href>{b.title.clone()}</a>
                    </td>
                    <td class="muted">{b.description.clone()}</td>
                </tr>
            }
        })
        .collect_view();
    let errors = loaded
        .errors
        .iter()
        .map(|e| view! { <div class="error">{e.clone()}</div> })
        .collect_view();
    let content = view! {
        <h1>"Dashboards"</h1>
        {errors}
        <div class="table-wrap">
            <table>
                <tbody>{items}</tbody>
            </table>
        </div>
    };
    document("Dashboards", "/dashboards", chrome, content)
}

/// Renders `GET /render?expr=...[&expr=...]&legend=...&unit=&from=&to=&range=&width=&height=
/// &stacked=on&title=`: the chart as a stand-alone SVG image with its legend, for alert
/// notifications and chat. Returns the SVG (an SVG with the error message when the query
/// fails).
pub fn render_image(ds: &dyn DataSource, params: &[(String, String)], now_ms: i64) -> String {
    let p = param_map(params);
    let get = |k: &str| p.get(k).map(String::as_str);
    let tr = TimeRange::resolve(get("range"), get("from"), get("to"), "1h", now_ms);
    let width = get("width")
        .and_then(|w| w.parse::<u32>().ok())
        .unwrap_or(800)
        .clamp(200, 4000);
    let height = get("height")
        .and_then(|w| w.parse::<u32>().ok())
        .unwrap_or(260)
        .clamp(120, 3000);
    let unit = get("unit").and_then(Unit::parse).unwrap_or_default();
    let exprs: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "expr")
        .map(|(_, v)| v.as_str())
        .collect();
    let legends: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "legend")
        .map(|(_, v)| v.as_str())
        .collect();
    if exprs.iter().all(|e| e.trim().is_empty()) {
        return render_message("No expr parameter given", width, height);
    }
    let step = step_for(tr.len_ms(), width);
    let (mut names, mut series) = (Vec::new(), Vec::new());
    for (i, e) in exprs.iter().enumerate() {
        match ds.query_range(e, tr.start_ms, tr.end_ms, step) {
            Ok(s) => {
                for m in s {
                    names.push(board::legend(legends.get(i).copied(), &m.metric));
                    series.push(m);
                }
            }
            Err(e) => return render_message(&format!("Query failed: {e}"), width, height),
        }
    }
    let opts = ChartOptions {
        width,
        height,
        start_ms: tr.start_ms,
        end_ms: tr.end_ms,
        step_ms: step,
        unit,
        stacked: get("stacked").is_some_and(|s| s == "on" || s == "1" || s == "true"),
        names,
        ..ChartOptions::default()
    };
    let svg = render_chart(&series, &opts);
    match get("title").filter(|t| !t.is_empty()) {
        Some(t) => {
            // A title line above the chart: nest the chart in an outer SVG.
            let esc = crate::pages::escape_html(t);
            let (w, h) = svg_size(&svg).unwrap_or((width, height));
            format!(
                "<svg width=\"{w}\" height=\"{}\" viewBox=\"0 0 {w} {}\" xmlns=\"http://www.w3.org/2000/svg\">\
                 <rect width=\"100%\" height=\"100%\" fill=\"#FFFFFF\"/>\
                 <text x=\"10\" y=\"19\" font-family=\"sans-serif\" font-size=\"14\" font-weight=\"600\" fill=\"#1F2328\">{esc}</text>\
                 <svg y=\"26\">{}</svg></svg>",
                h + 26,
                h + 26,
                svg.trim_start_matches(|c| c != '<')
            )
        }
        None => svg,
    }
}

/// Width and height attributes of the outer `<svg>` element plotters writes.
fn svg_size(svg: &str) -> Option<(u32, u32)> {
    let head = &svg[..svg.find('>')?];
    let attr = |name: &str| -> Option<u32> {
        let i = head.find(&format!(" {name}=\""))? + name.len() + 3;
        let rest = &head[i..];
        rest[..rest.find('"')?].parse().ok()
    };
    Some((attr("width")?, attr("height")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_links() {
        let l = Labels::from_pairs(&[("instance", "a b/<x>"), ("pod", "p")]);
        #[track_caller]
        fn check(t: &str, l: &Labels, want: Option<&str>) {
            assert_eq!(row_link(t, l).as_deref(), want, "{t}");
        }
        check(
            "/d/nodes?var-instance={{instance}}",
            &l,
            Some("/d/nodes?var-instance=a%20b%2F%3Cx%3E"),
        );
        check("/x?a={{ pod }}&b={{nope}}", &l, Some("/x?a=p&b="));
        check("javascript:alert({{pod}})", &l, None);
        check("//evil.example/{{pod}}", &l, None);
        check(
            "https://grafana.example/{{pod}}",
            &l,
            Some("https://grafana.example/p"),
        );
    }

    /// Answers every query with one series per instance in `instances` whose labels are
    /// selected by the query's `instance=~"..."` matcher; records the queries.
    struct Fake {
        instances: Vec<&'static str>,
        seen: std::sync::Mutex<Vec<String>>,
    }

    impl Fake {
        fn matching(&self, expr: &str) -> Vec<Labels> {
            if let Ok(mut s) = self.seen.lock() {
                s.push(expr.to_string());
            }
            let re = expr
                .split("instance=~\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .map(|r| r.replace("\\\\", "\\"))
                .unwrap_or_else(|| ".*".into());
            let re = regex::Regex::new(&format!("^(?:{re})$")).unwrap();
            self.instances
                .iter()
                .filter(|i| re.is_match(i))
                .map(|i| Labels::from_pairs(&[("instance", *i)]))
                .collect()
        }
    }

    impl DataSource for Fake {
        fn query_range(
            &self,
            expr: &str,
            start: i64,
            end: i64,
            step: i64,
        ) -> Result<Vec<MatrixSeries>, String> {
            Ok(self
                .matching(expr)
                .into_iter()
                .map(|metric| MatrixSeries {
                    metric,
                    values: (0..=(end - start) / step)
                        .map(|k| pharos_model::api::Point {
                            t: start + k * step,
                            v: k as f64,
                        })
                        .collect(),
                })
                .collect())
        }
        fn query(&self, expr: &str, t: i64) -> Result<QueryData, String> {
            Ok(QueryData::Vector(
                self.matching(expr)
                    .into_iter()
                    .map(|metric| pharos_model::api::VectorSample {
                        metric,
                        value: pharos_model::api::Point { t, v: 42.0 },
                    })
                    .collect(),
            ))
        }
        fn targets(&self) -> Vec<pharos_model::api::Target> {
            Vec::new()
        }
    }

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn board_variables_repeat_rows_and_escaping() {
        let evil = "<script>alert(1)</script>";
        let ds = Fake {
            instances: vec!["a:9100", "b.example:9100", evil],
            seen: std::sync::Mutex::new(Vec::new()),
        };
        let loaded = board::load(None);
        let nodes = loaded.get("nodes").unwrap();
        let page = |params: &[(&str, &str)]| {
            let params: Vec<(String, String)> = params
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect();
            board_page(&ds, &nodes, &params, &Chrome::default(), NOW)
        };
        // All nodes: a repeated row per node, a table row per node with a link.
        let html = page(&[]);
        for want in [
            "Node a:9100",
            "Node b.example:9100",
            "Node &lt;script&gt;alert(1)&lt;/script&gt;",
            "href=\"/d/nodes?var-instance=b.example%3A9100\"",
            "<option value=\"$__all\" selected>All</option>",
            "class=\"active\">1h</a>",
        ] {
            assert!(html.contains(want), "missing {want:?}");
        }
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("Query failed"));
        // One node: its value is regex-escaped in queries, and no repeated rows.
        ds.seen.lock().unwrap().clear();
        let html = page(&[("var-instance", "b.example:9100"), ("range", "6h")]);
        assert!(!html.contains("Node a:9100"));
        assert!(html.contains("<option value=\"b.example:9100\" selected>"));
        let seen = ds.seen.lock().unwrap().clone();
        assert!(
            seen.iter()
                .any(|q| q.contains("instance=~\"b\\\\.example:9100\"")),
            "{seen:?}"
        );
        // A 6h range on a 750px panel: 2 minute steps, and a rate interval of step + 15s.
        assert!(seen.iter().any(|q| q.contains("[2m15s]")), "{seen:?}");
    }

    #[test]
    fn repeated_rows_are_capped_with_a_show_all_link() {
        let names: Vec<&'static str> = (0..11).map(|i| &*format!("n{i:02}:9100").leak()).collect();
        let ds = Fake {
            instances: names,
            seen: std::sync::Mutex::new(Vec::new()),
        };
        let loaded = board::load(None);
        let nodes = loaded.get("nodes").unwrap();
        let page = |params: &[(&str, &str)]| {
            let params: Vec<(String, String)> = params
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect();
            board_page(&ds, &nodes, &params, &Chrome::default(), NOW)
        };
        let html = page(&[("range", "6h")]);
        assert_eq!(html.matches("<h2>Node n").count(), DEFAULT_REPEAT, "{html}");
        assert!(html.contains("… and 3 more."), "{html}");
        assert!(
            html.contains("href=\"/d/nodes?range=6h&amp;repeat=all\">Show all 11</a>"),
            "{html}"
        );
        let html = page(&[("range", "6h"), ("repeat", "all")]);
        assert_eq!(html.matches("<h2>Node n").count(), 11);
        assert!(!html.contains("Show all"));
    }

    #[test]
    fn render_image_with_title_and_legend() {
        let ds = Fake {
            instances: vec!["a:9100"],
            seen: std::sync::Mutex::new(Vec::new()),
        };
        let params: Vec<(String, String)> = [
            ("expr", "node_load1{instance=~\".*\"}"),
            ("legend", "load {{instance}}"),
            ("title", "Load <1m>"),
            ("range", "1h"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
        let svg = render_image(&ds, &params, NOW);
        assert!(svg.starts_with("<svg width=\"800\""), "{svg}");
        assert!(
            svg.contains("Load &lt;1m&gt;") && svg.contains("load a:9100"),
            "{svg}"
        );
        assert!(svg.contains("<polyline"), "{svg}");
        let none = render_image(&ds, &[], NOW);
        assert!(none.contains("No expr parameter given"));
    }

    #[test]
    fn svg_sizes() {
        assert_eq!(
            svg_size("<svg width=\"800\" height=\"300\" viewBox=\"0 0 800 300\">"),
            Some((800, 300))
        );
        assert_eq!(svg_size("<svg>"), None);
    }
}
