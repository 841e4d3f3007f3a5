//! remote_write in the server: the sender's queues fed from the storage's WAL (positions kept
//! under `<storage.tsdb.path>/remote_write/`), the `POST /api/v1/write` receiver (with
//! `--web.enable-remote-write-receiver`), reloads, shutdown flush and the
//! `prometheus_remote_storage_*` / `pharos_remote_write_*` metrics.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use pharos_collector::remote::{
    Receiver, RemoteWrite, WalEntry, WalPosition, WalReader, WalSource,
};
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
    /// Starts the `remote_write` queues of `cfg`, reading the WAL of the storage in `data_dir`,
    /// and, if `receive`, the receiver. Must run inside the tokio runtime.
    pub fn start(
        storage: Arc<dyn Appendable>,
        data_dir: &Path,
        cfg: &Config,
        receive: bool,
    ) -> anyhow::Result<Self> {
        let source = Arc::new(TsdbWal {
            dir: data_dir.join(pharos_tsdb::files::WAL_DIR),
        });
        let sender = RemoteWrite::with_wal(source, data_dir.join("remote_write"));
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

/// The storage's WAL as the sender's [`WalSource`].
struct TsdbWal {
    dir: PathBuf,
}

fn to_tsdb(p: WalPosition) -> pharos_tsdb::wal_watch::Position {
    pharos_tsdb::wal_watch::Position {
        segment: p.segment,
        offset: p.offset,
    }
}

impl WalSource for TsdbWal {
    fn end(&self) -> Result<WalPosition, String> {
        let p = pharos_tsdb::wal_watch::Position::end_of(&self.dir).map_err(|e| e.to_string())?;
        Ok(WalPosition {
            segment: p.segment,
            offset: p.offset,
        })
    }

    fn reader(&self, from: WalPosition) -> Box<dyn WalReader> {
        Box::new(TsdbWalReader(pharos_tsdb::wal_watch::Watcher::new(
            &self.dir,
            to_tsdb(from),
        )))
    }
}

struct TsdbWalReader(pharos_tsdb::wal_watch::Watcher);

impl WalReader for TsdbWalReader {
    fn poll(&mut self, f: &mut dyn FnMut(WalEntry, WalPosition)) -> Result<bool, String> {
        use pharos_tsdb::wal::Record;
        self.0
            .poll(&mut |rec, end| {
                let end = WalPosition {
                    segment: end.segment,
                    offset: end.offset,
                };
                let entry = match rec {
                    Record::Series(s) => WalEntry::Series(s),
                    Record::Samples(s) => {
                        WalEntry::Samples(s.into_iter().map(|s| (s.series, s.t, s.v)).collect())
                    }
                    Record::Truncation(_) => WalEntry::Other,
                };
                f(entry, end);
            })
            .map_err(|e| e.to_string())
    }

    fn checkpoint(&mut self) -> Result<Option<(u64, Vec<u64>)>, String> {
        self.0.new_checkpoint().map_err(|e| e.to_string())
    }
}
