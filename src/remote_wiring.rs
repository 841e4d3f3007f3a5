//! remote_write in the server: the sender's tee between the appenders and storage, the
//! `POST /api/v1/write` receiver (with `--web.enable-remote-write-receiver`), reloads, shutdown
//! flush and the `prometheus_remote_storage_*` / `pharos_remote_write_*` metrics.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use pharos_collector::remote::{Receiver, RemoteWrite};
use pharos_model::expfmt::MetricFamily;
use pharos_model::storage::Appendable;

use crate::config::Config;

/// The remote-write side of a running server.
pub struct Remote {
    sender: Arc<RemoteWrite>,
    /// Storage behind the sender's tee: what scrapes, rules and the receiver append to.
    appendable: Arc<dyn Appendable>,
    receiver: Option<Arc<Receiver>>,
}

impl Remote {
    /// Starts the `remote_write` queues of `cfg` and, if `receive`, the receiver. Must run inside
    /// the tokio runtime.
    pub fn start(
        storage: Arc<dyn Appendable>,
        cfg: &Config,
        receive: bool,
    ) -> anyhow::Result<Self> {
        let sender = RemoteWrite::new();
        sender
            .apply(&cfg.global, &cfg.remote_write)
            .map_err(|e| anyhow::anyhow!("cannot start remote_write: {e}"))?;
        let appendable = sender.tee(storage);
        let receiver = receive.then(|| Arc::new(Receiver::new(appendable.clone())));
        if receive {
            tracing::info!("remote-write receiver enabled at /api/v1/write");
        }
        Ok(Self {
            sender,
            appendable,
            receiver,
        })
    }

    /// What appenders should write to so remote_write sees their samples.
    pub fn appendable(&self) -> Arc<dyn Appendable> {
        self.appendable.clone()
    }

    /// Applies the `remote_write` section of a reloaded config (unchanged queues keep running).
    pub fn apply(&self, cfg: &Config) -> anyhow::Result<()> {
        self.sender
            .apply(&cfg.global, &cfg.remote_write)
            .map_err(|e| anyhow::anyhow!("cannot apply remote_write: {e}"))
    }

    /// Sends what is queued (up to Prometheus' 1 minute flush deadline) and stops the queues.
    pub async fn stop(&self) {
        self.sender.stop().await;
    }

    /// Metric families for Pharos' own `/metrics`.
    pub fn families(&self) -> Vec<MetricFamily> {
        let mut out = self.sender.families();
        if let Some(r) = &self.receiver {
            out.extend(r.families());
        }
        out
    }

    /// `POST /api/v1/write` when the receiver is enabled; otherwise a route answering 404 with
    /// the flag to set, as Prometheus does.
    pub fn router(&self) -> Router {
        match &self.receiver {
            Some(r) => Router::new()
                .route("/api/v1/write", post(write))
                // Compressed bodies up to 32 MiB (axum's default limit is 2 MiB).
                .layer(axum::extract::DefaultBodyLimit::max(32 << 20))
                .with_state(r.clone()),
            None => Router::new().route(
                "/api/v1/write",
                post(|| async {
                    (
                        StatusCode::NOT_FOUND,
                        "remote write receiver needs to be enabled with --web.enable-remote-write-receiver\n",
                    )
                }),
            ),
        }
    }
}

async fn write(State(r): State<Arc<Receiver>>, body: Bytes) -> Response {
    let answer = tokio::task::spawn_blocking(move || r.handle(&body)).await;
    match answer {
        Ok((status, msg)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, msg).into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("write task failed: {e}\n"),
        )
            .into_response(),
    }
}
