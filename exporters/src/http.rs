//! The HTTP face of the exporter: `GET /metrics` and a landing page.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use pharos_model::expfmt::TEXT_CONTENT_TYPE;

use crate::Exporter;

const LANDING: &str = "<!DOCTYPE html>
<html>
<head><meta charset=\"utf-8\"><title>Pharos node exporter</title></head>
<body>
<h1>Pharos node exporter</h1>
<p>A node_exporter 1.5 compatible exporter.</p>
<ul><li><a href=\"metrics\">Metrics</a></li></ul>
</body>
</html>
";

/// Routes `GET /metrics` (text format 0.0.4, gathered on a blocking thread) and `GET /`
/// (an HTML page linking to `/metrics`).
pub fn router(exporter: Arc<Exporter>) -> Router {
    Router::new()
        .route("/", get(landing))
        .route("/metrics", get(metrics))
        .with_state(exporter)
}

async fn landing() -> Html<&'static str> {
    Html(LANDING)
}

async fn metrics(State(exporter): State<Arc<Exporter>>) -> Response {
    // Collectors read files and call statvfs: keep that off the async worker threads.
    match tokio::task::spawn_blocking(move || exporter.render()).await {
        Ok(body) => ([(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "metrics gathering task failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("gathering metrics failed: {e}\n"),
            )
                .into_response()
        }
    }
}
