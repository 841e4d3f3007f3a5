//! pharos-dashboard: the web pages of Pharos, rendered on the server.
//!
//! Pages are Leptos views rendered to HTML strings (feature `ssr`, no WebAssembly) and charts are
//! SVG drawn by plotters ([`chart`]). The dashboard knows nothing of the storage or the query
//! engine: it reads everything through a [`DataSource`], so it can sit on the in-process engine or
//! on any Prometheus-compatible HTTP API.
//!
//! Pages: `/` (target health and built-in charts), `/graph?expr=...&range=1h` (Explore: ad-hoc
//! PromQL as a graph and a table) and `/targets`. Each takes `range` (`5m`, `15m`, `1h`, `6h`,
//! `24h`, `2d`, `7d`).
//!
//! ```no_run
//! use std::sync::Arc;
//! # fn wire(ds: Arc<dyn pharos_dashboard::DataSource>) {
//! let app: axum::Router = pharos_dashboard::router(ds);
//! # }
//! ```

pub mod chart;
pub mod pages;
pub mod time;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
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
}

/// The dashboard's routes (`/`, `/graph`, `/targets`) with their state applied, ready to be
/// merged with the API router.
pub fn router(ds: Arc<dyn DataSource>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/graph", get(graph))
        .route("/targets", get(targets))
        .with_state(AppState { ds })
}

/// Runs a page function on a blocking thread (it queries the data source) and returns its HTML.
async fn render<F>(state: AppState, page: &'static str, f: F) -> Result<Html<String>>
where
    F: FnOnce(&dyn DataSource, i64) -> String + Send + 'static,
{
    let ds = state.ds;
    tokio::task::spawn_blocking(move || f(&*ds, time::now_ms()))
        .await
        .map(Html)
        .map_err(|e| Error::Render {
            page,
            reason: e.to_string(),
        })
}

async fn home(State(st): State<AppState>, Query(q): Query<PageQuery>) -> Result<Html<String>> {
    render(st, "/", move |ds, now| pages::home(ds, &q, now)).await
}

async fn graph(State(st): State<AppState>, Query(q): Query<PageQuery>) -> Result<Html<String>> {
    render(st, "/graph", move |ds, now| pages::explore(ds, &q, now)).await
}

async fn targets(State(st): State<AppState>) -> Result<Html<String>> {
    render(st, "/targets", pages::targets).await
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
                "No targets",
            ],
        );
        check(&get(addr, "/targets").await, "200", &["<h1>Targets</h1>"]);
        check(
            &get(addr, "/graph?expr=rate%28x%5B1m%5D%29&range=5m").await,
            "200",
            &[
                "Query failed: no engine for rate(x[1m])",
                "<option value=\"5m\" selected>",
            ],
        );
        check(&get(addr, "/graph?range=2d").await, "200", &["Examples"]);
        check(&get(addr, "/nope").await, "404", &[]);
    }
}
