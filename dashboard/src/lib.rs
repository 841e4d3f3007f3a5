//! pharos-dashboard: the web pages of Pharos, rendered on the server.
//!
//! Pages are Leptos views rendered to HTML strings (feature `ssr`, no WebAssembly) and charts are
//! SVG drawn by plotters ([`chart`]). The dashboard knows nothing of the storage or the query
//! engine: it reads everything through a [`DataSource`], so it can sit on the in-process engine or
//! on any Prometheus-compatible HTTP API.
//!
//! Pages: `/` (health at a glance and built-in charts), `/d/<uid>` (dashboards from files: the
//! built-in Nodes and Pods, and any in the dashboards folder; see [`board`]), `/dashboards`,
//! `/graph?expr=...` (Explore: ad-hoc PromQL as a graph or a table), `/targets`, `/alerts` and
//! `/rules` (see [`alerts`]), `/status`, and
//! `/render?expr=...` (a chart as an SVG image to embed in notifications). Pages take `range`
//! (`5m` … `7d`) or `from`/`to` (`now-6h`, RFC 3339, epoch seconds or ms), `refresh` (`5s`,
//! `15s`, `1m`) and `theme` (`dark`, `light`).
//!
//! ```no_run
//! use std::sync::Arc;
//! # fn wire(ds: Arc<dyn pharos_dashboard::DataSource>) {
//! let opts = pharos_dashboard::Options { dashboards_dir: Some("dashboards".into()) };
//! let app: axum::Router = pharos_dashboard::router_with(ds, opts);
//! # }
//! ```

pub mod alerts;
pub mod assets;
pub mod board;
pub mod chart;
pub mod dash;
pub mod pages;
pub mod time;
pub mod ui;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use pharos_model::api::{MatrixSeries, QueryData, Target};

pub use pages::PageQuery;

/// Where the dashboard reads its data: the in-process query engine, or a remote
/// Prometheus-compatible API. Calls may block; the router makes them from blocking threads.
pub trait DataSource: Send + Sync + 'static {
    /// Evaluates `expr` at each step from `start_ms` to `end_ms` (inclusive, ms since the epoch).
    /// The error is the message to show (e.g. a parse error).
    fn query_range(
        &self,
        expr: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> std::result::Result<Vec<MatrixSeries>, String>;

    /// Evaluates `expr` at `t_ms`.
    fn query(&self, expr: &str, t_ms: i64) -> std::result::Result<QueryData, String>;

    /// The active scrape targets.
    fn targets(&self) -> Vec<Target>;

    /// The values of `label` on series matching `selector` (empty: any series with the label)
    /// that have samples between `start_ms` and `end_ms`, sorted. The default asks
    /// [`DataSource::query`] for `count by (label) (last_over_time(selector[range]))`.
    fn label_values(
        &self,
        label: &str,
        selector: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> std::result::Result<Vec<String>, String> {
        let selector = if selector.trim().is_empty() {
            format!("{{{label}!=\"\"}}")
        } else {
            selector.to_string()
        };
        let range_s = ((end_ms - start_ms) / 1000).max(1);
        let expr = format!("count by ({label}) (last_over_time({selector}[{range_s}s]))");
        let mut values: Vec<String> = match self.query(&expr, end_ms)? {
            QueryData::Vector(v) => v
                .into_iter()
                .filter_map(|s| s.metric.get(label).map(str::to_string))
                .collect(),
            _ => return Err(format!("{expr} did not return a vector")),
        };
        values.sort();
        values.dedup();
        Ok(values)
    }

    /// The rule groups for the Alerts and Rules pages: the `data` object of Prometheus'
    /// `/api/v1/rules` (`{"groups": [...]}`, alerting rules with their active alerts). The
    /// default, `None`, means the source serves no rules.
    fn rules(&self) -> Option<serde_json::Value> {
        None
    }

    /// What the Status page shows besides build information. The default is empty.
    fn status(&self) -> StatusInfo {
        StatusInfo::default()
    }
}

/// What a data source reports for the Status page.
#[derive(Debug, Clone, Default)]
pub struct StatusInfo {
    /// Titled sections of name/value pairs (build, runtime, flags, storage).
    pub sections: Vec<(String, Vec<(String, String)>)>,
    /// The configuration file as loaded.
    pub config_yaml: Option<String>,
}

/// How the dashboard is set up.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Folder of dashboard files (`*.yaml`, `*.yml`, `*.json`), read at start and again when its
    /// files change; `None`: only the built-in dashboards.
    pub dashboards_dir: Option<std::path::PathBuf>,
}

/// The `dashboards:` section of the configuration file, e.g. `dashboards: {dir: ./dashboards}`.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Folder of dashboard files (`*.yaml`, `*.yml`, `*.json`); a relative path is relative to
    /// the configuration file's folder. Absent: only the built-in dashboards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<std::path::PathBuf>,
}

/// Errors of the dashboard's handlers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The blocking task rendering a page panicked or was cancelled.
    #[error("rendering page {page} failed: {reason}")]
    Render {
        /// The path of the page.
        page: &'static str,
        /// Why the task did not finish.
        reason: String,
    },
}

/// Result of the dashboard's handlers.
pub type Result<T> = std::result::Result<T, Error>;

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        tracing::error!(error = %self, "dashboard page failed");
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

#[derive(Clone)]
struct AppState {
    ds: Arc<dyn DataSource>,
    boards: Arc<board::Store>,
}

/// The dashboard's routes with only the built-in dashboards; see [`router_with`].
pub fn router(ds: Arc<dyn DataSource>) -> Router {
    router_with(ds, Options::default())
}

/// The dashboard's routes (`/`, `/d/{uid}`, `/dashboards`, `/graph`, `/targets`, `/alerts`,
/// `/rules`, `/status`, `/render`) with their state applied, ready to be merged with the API router.
pub fn router_with(ds: Arc<dyn DataSource>, opts: Options) -> Router {
    router_with_store(ds, Arc::new(board::Store::new(opts.dashboards_dir)))
}

/// [`router_with`] reading its dashboards from `boards`, which the caller keeps to switch folders
/// on a configuration reload ([`board::Store::set_dir`]).
pub fn router_with_store(ds: Arc<dyn DataSource>, boards: Arc<board::Store>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/d/{uid}", get(dashboard))
        .route("/dashboards", get(dashboards))
        .route("/graph", get(graph))
        .route("/targets", get(targets))
        .route("/alerts", get(alerts))
        .route("/rules", get(rules))
        .route("/status", get(status))
        .route("/render", get(render_svg))
        .with_state(AppState { ds, boards })
}

/// Runs a page function on a blocking thread (it queries the data source) and returns its HTML.
async fn render<F>(state: AppState, page: &'static str, f: F) -> Result<String>
where
    F: FnOnce(&dyn DataSource, &board::Loaded, &ui::Chrome, i64) -> String + Send + 'static,
{
    let AppState { ds, boards } = state;
    tokio::task::spawn_blocking(move || {
        let loaded = boards.current();
        let chrome = ui::Chrome {
            boards: loaded.nav(),
            ..ui::Chrome::default()
        };
        f(&*ds, &loaded, &chrome, time::now_ms())
    })
    .await
    .map_err(|e| Error::Render {
        page,
        reason: e.to_string(),
    })
}

type Params = Vec<(String, String)>;

/// The chrome of a page from its raw parameters (theme and refresh).
fn chrome_from(params: &Params, base: &ui::Chrome) -> ui::Chrome {
    let get = |k: &str| {
        params
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    ui::Chrome {
        theme: ui::Chrome::theme_param(get("theme")),
        ..base.clone()
    }
}

async fn home(State(st): State<AppState>, Query(q): Query<PageQuery>) -> Result<Html<String>> {
    render(st, "/", move |ds, _, c, now| pages::home(ds, &q, c, now))
        .await
        .map(Html)
}

async fn dashboard(
    State(st): State<AppState>,
    Path(uid): Path<String>,
    Query(params): Query<Params>,
) -> Result<Response> {
    let page = render(st, "/d", move |ds, loaded, c, now| {
        let chrome = chrome_from(&params, c);
        match loaded.get(&uid) {
            Some(b) => dash::board_page(ds, &b, &params, &chrome, now),
            None => String::new(),
        }
    })
    .await?;
    if page.is_empty() {
        return Ok((StatusCode::NOT_FOUND, "no such dashboard").into_response());
    }
    Ok(Html(page).into_response())
}

async fn dashboards(
    State(st): State<AppState>,
    Query(params): Query<Params>,
) -> Result<Html<String>> {
    render(st, "/dashboards", move |_, loaded, c, _| {
        dash::list_page(loaded, &chrome_from(&params, c))
    })
    .await
    .map(Html)
}

async fn graph(State(st): State<AppState>, Query(q): Query<PageQuery>) -> Result<Html<String>> {
    render(st, "/graph", move |ds, _, c, now| {
        pages::explore(ds, &q, c, now)
    })
    .await
    .map(Html)
}

async fn targets(State(st): State<AppState>, Query(params): Query<Params>) -> Result<Html<String>> {
    render(st, "/targets", move |ds, _, c, now| {
        pages::targets(ds, &chrome_from(&params, c), now)
    })
    .await
    .map(Html)
}

async fn alerts(
    State(st): State<AppState>,
    Query(q): Query<alerts::AlertsQuery>,
) -> Result<Html<String>> {
    render(st, "/alerts", move |ds, _, c, now| {
        alerts::alerts_page(ds, &q, c, now)
    })
    .await
    .map(Html)
}

async fn rules(
    State(st): State<AppState>,
    Query(q): Query<alerts::AlertsQuery>,
) -> Result<Html<String>> {
    render(st, "/rules", move |ds, _, c, now| {
        alerts::rules_page(ds, &q, c, now)
    })
    .await
    .map(Html)
}

async fn status(State(st): State<AppState>, Query(params): Query<Params>) -> Result<Html<String>> {
    render(st, "/status", move |ds, _, c, _| {
        pages::status(ds, &chrome_from(&params, c))
    })
    .await
    .map(Html)
}

async fn render_svg(State(st): State<AppState>, Query(params): Query<Params>) -> Result<Response> {
    let svg = render(st, "/render", move |ds, _, _, now| {
        dash::render_image(ds, &params, now)
    })
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        svg,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Empty;

    impl DataSource for Empty {
        fn query_range(
            &self,
            expr: &str,
            _: i64,
            _: i64,
            _: i64,
        ) -> std::result::Result<Vec<MatrixSeries>, String> {
            Err(format!("no engine for {expr}"))
        }
        fn query(&self, expr: &str, _: i64) -> std::result::Result<QueryData, String> {
            Err(format!("no engine for {expr}"))
        }
        fn targets(&self) -> Vec<Target> {
            Vec::new()
        }
    }

    /// Sends one HTTP/1.1 GET and returns the status line and the whole response (headers and
    /// body).
    async fn get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text.lines().next().unwrap_or_default().to_string();
        (status, text)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn routes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(Arc::new(Empty));
        tokio::spawn(async move { axum::serve(listener, app).await });

        #[track_caller]
        fn check(got: &(String, String), status: &str, body_has: &[&str]) {
            assert!(got.0.contains(status), "{got:?}");
            for b in body_has {
                assert!(got.1.contains(b), "missing {b:?} in {}", got.1);
            }
        }
        check(
            &get(addr, "/").await,
            "200",
            &[
                "content-type: text/html; charset=utf-8",
                "<!DOCTYPE html>",
                "Query failed: no engine for up",
                "0 targets",
            ],
        );
        check(&get(addr, "/targets").await, "200", &["<h1>Targets</h1>"]);
        check(
            &get(addr, "/graph?expr=rate%28x%5B1m%5D%29&range=5m").await,
            "200",
            &[
                "Query failed: no engine for rate(x[1m])",
                "class=\"active\">5m</a>",
            ],
        );
        check(&get(addr, "/graph?range=2d").await, "200", &["Examples"]);
        check(
            &get(addr, "/d/nodes?theme=dark&refresh=5s").await,
            "200",
            &[
                "<h1>Nodes</h1>",
                "data-theme=\"dark\"",
                "http-equiv=\"refresh\" content=\"5\"",
                "cannot list values: no engine for count by (instance)",
                "Query failed: no engine for",
            ],
        );
        check(
            &get(addr, "/d/pods").await,
            "200",
            &["<h1>Pods</h1>", "Namespace"],
        );
        check(&get(addr, "/d/nope").await, "404", &[]);
        check(
            &get(addr, "/dashboards").await,
            "200",
            &["href=\"/d/nodes\"", "href=\"/d/pods\""],
        );
        check(&get(addr, "/status").await, "200", &["<h1>Status</h1>"]);
        check(
            &get(addr, "/alerts?state=firing&refresh=5s").await,
            "200",
            &["<h1>Alerts</h1>", "serves no rules", "content=\"5\""],
        );
        check(&get(addr, "/rules").await, "200", &["<h1>Rules</h1>"]);
        check(
            &get(addr, "/render?expr=up&width=300").await,
            "200",
            &[
                "content-type: image/svg+xml",
                "<svg",
                "Query failed: no engine for up",
            ],
        );
        check(&get(addr, "/nope").await, "404", &[]);
    }
}
