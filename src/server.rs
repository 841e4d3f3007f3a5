//! `pharos server` and `pharos exporter`: the wiring of all crates.
//!
//! Start-up order: bind the listeners (so a port clash fails at once), load the configuration,
//! serve `/-/healthy` and a not-ready `/-/ready` while the storage replays its WAL, then start
//! scraping and mark the server ready. Shutdown on SIGINT/SIGTERM: stop the scrape loops (their
//! in-flight appends finish), stop serving, close the storage (flush and fsync), exit 0.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use anyhow::Context as _;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pharos_collector::ScrapeManager;
use pharos_dashboard::DataSource;
use pharos_exporters::Exporter;
use pharos_model::api::{MatrixSeries, QueryData, Target, TargetsProvider};
use pharos_model::expfmt::{MetricType, TEXT_CONTENT_TYPE};
use pharos_query::{Engine, EngineOptions};
use pharos_tsdb::Db;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

use crate::config::{self, Source};
use crate::selfmetrics::Snapshot;
use crate::{ExporterArgs, ServerArgs};

/// Everything the running server holds.
struct Running {
    db: Arc<Db>,
    scrapes: Arc<ScrapeManager>,
    remote: Arc<crate::remote_wiring::Remote>,
    rules: Arc<crate::rules_wiring::Rules>,
    source: Source,
    config_yaml: Arc<RwLock<String>>,
    start_time_s: f64,
    /// Outcome of the latest configuration (re)load.
    reload_status: Arc<pharos_query::api::ReloadStatus>,
    /// `--dashboard.datasource.url`: the dashboard reads from this API instead of local storage.
    dashboard_source: Option<Arc<crate::remote_source::RemoteSource>>,
    /// The dashboard files, switched to another folder on reload.
    boards: Arc<pharos_dashboard::board::Store>,
    /// `--dashboards.dir`, which wins over the configuration file.
    dashboards_flag: Option<std::path::PathBuf>,
}

/// State shared by the outer router before and after start-up.
#[derive(Clone, Default)]
struct Shell {
    /// The full application, set once storage is open and the first config applied.
    app: Arc<OnceLock<Router>>,
    ready: Arc<AtomicBool>,
}

/// Runs the server until SIGINT/SIGTERM.
pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let start_time_s = pharos_model::now_ms() as f64 / 1000.0;
    let web = TcpListener::bind(&args.web_listen_address)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (--web.listen-address)",
                args.web_listen_address
            )
        })?;
    let exporter_addr = match args.exporter_listen_address.as_str() {
        "off" | "" => None,
        a => Some(a.to_string()),
    };
    let exporter_listener = match &exporter_addr {
        Some(a) => Some(TcpListener::bind(a).await.with_context(|| {
            format!(
                "cannot listen on {a} (--exporter.listen-address); pass another address, or \
                 --exporter.listen-address=off if a node exporter already runs here"
            )
        })?),
        None => None,
    };
    let source = match &args.config_file {
        Some(p) => Source::File(p.clone()),
        None => Source::Embedded(config::embedded_default(
            &local_addr(&web, &args.web_listen_address),
            exporter_listener
                .as_ref()
                .zip(exporter_addr.as_deref())
                .map(|(l, a)| local_addr(l, a))
                .as_deref(),
            Some(&config::write_default_rules(&args.tsdb_path)?),
        )),
    };
    let (cfg, _) = source.load()?;

    let shell = Shell::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let web_addr = local_addr(&web, &args.web_listen_address);
    tracing::info!(address = %web_addr, "serving HTTP API and dashboard");
    let http = tokio::spawn(serve(web, outer_router(shell.clone()), stop_rx.clone()));

    let exporter_task = exporter_listener.map(|l| {
        let exporter = Arc::new(Exporter::new(pharos_exporters::Options::default()));
        tracing::info!(address = %local_addr(&l, ""), "serving the built-in node exporter");
        tokio::spawn(serve(
            l,
            pharos_exporters::router(exporter),
            stop_rx.clone(),
        ))
    });

    let path = args.tsdb_path.clone();
    // The storage applies time retention itself (after replay and every minute).
    let retention = args.retention;
    let retention_size = args.retention_size;
    tracing::info!(path = %path.display(), "opening storage");
    let db = tokio::task::spawn_blocking(move || {
        Db::open(
            &path,
            pharos_tsdb::Options {
                retention,
                retention_size,
                ..Default::default()
            },
        )
    })
    .await
    .context("storage open task failed")?
    .with_context(|| format!("cannot open storage at {}", args.tsdb_path.display()))?;
    let db = Arc::new(db);

    let remote = Arc::new(crate::remote_wiring::Remote::start(
        db.clone(),
        &args.tsdb_path,
        &cfg,
        args.enable_remote_write_receiver,
    )?);
    let rules = Arc::new(crate::rules_wiring::Rules::start(
        db.clone(),
        remote.appendable(),
        &cfg,
        &source,
        format!("http://{}", config::scrape_address(&web_addr)),
    )?);
    let scrapes = ScrapeManager::new(remote.appendable());
    scrapes
        .apply(&cfg.global, &cfg.scrape_configs)
        .context("cannot apply the scrape configuration")?;

    let shown_config =
        crate::config_yaml::render(&cfg, crate::config_yaml::base_dir(&source).as_deref());
    let running = Arc::new(Running {
        db: db.clone(),
        scrapes: scrapes.clone(),
        remote: remote.clone(),
        rules: rules.clone(),
        boards: Arc::new(pharos_dashboard::board::Store::new(
            crate::dashboards_wiring::dir(args.dashboards_dir.as_deref(), &cfg, &source),
        )),
        dashboards_flag: args.dashboards_dir.clone(),
        source,
        // Shown at /api/v1/status/config: re-serialised with defaults, as Prometheus does.
        config_yaml: Arc::new(RwLock::new(shown_config)),
        start_time_s,
        reload_status: Arc::new(pharos_query::api::ReloadStatus::new(pharos_model::now_ms())),
        dashboard_source: match &args.dashboard_datasource_url {
            Some(url) => Some(Arc::new(crate::remote_source::RemoteSource::new(url)?)),
            None => None,
        },
    });
    let app = app_router(running.clone(), &args);
    if shell.app.set(app).is_err() {
        anyhow::bail!("application router set twice");
    }
    shell.ready.store(true, Ordering::SeqCst);
    tracing::info!("server is ready to receive web requests");

    let reload_task = tokio::spawn(reload_on_sighup(running.clone(), stop_rx.clone()));

    shutdown_signal().await;
    tracing::info!("received shutdown signal, stopping scrapes");
    scrapes.stop().await;
    rules.stop().await;
    remote.stop().await;
    let _ = stop_tx.send(true);
    for t in [Some(http), exporter_task].into_iter().flatten() {
        if let Ok(Err(e)) = t.await {
            tracing::warn!(error = %e, "HTTP server stopped with an error");
        }
    }
    let _ = reload_task.await;
    tracing::info!("closing storage");
    // With no remote-write queue state (nothing resumes reading the WAL), the WAL is rewritten
    // as one compact segment holding the head (about half the bytes on disk).
    let wal_readers = std::fs::read_dir(args.tsdb_path.join("remote_write"))
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    tokio::task::spawn_blocking(move || {
        if wal_readers {
            db.close()
        } else {
            db.close_compacting_wal()
        }
    })
    .await
    .context("storage close task failed")?
    .context("cannot close storage cleanly")?;
    tracing::info!("see you next time");
    Ok(())
}

/// Runs the node exporter alone until SIGINT/SIGTERM.
pub async fn run_exporter(
    args: ExporterArgs,
    collectors: BTreeMap<String, bool>,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&args.web_listen_address)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (--web.listen-address)",
                args.web_listen_address
            )
        })?;
    let opts = pharos_exporters::Options {
        procfs: args.procfs,
        sysfs: args.sysfs,
        rootfs: args.rootfs,
        collectors,
        cgroupfs: args.cgroupfs,
        metadata: args.container_metadata,
    };
    let exporter = Arc::new(Exporter::new(opts));
    tracing::info!(address = %local_addr(&listener, &args.web_listen_address), "serving node exporter metrics");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(serve(listener, pharos_exporters::router(exporter), stop_rx));
    shutdown_signal().await;
    let _ = stop_tx.send(true);
    task.await.context("exporter task failed")??;
    Ok(())
}

fn local_addr(l: &TcpListener, fallback: &str) -> String {
    l.local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| fallback.to_string())
}

async fn serve(
    listener: TcpListener,
    router: Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
}

/// Health and readiness, answered even while storage is still opening; everything else goes to
/// the application once it is set.
fn outer_router(shell: Shell) -> Router {
    Router::new()
        .route(
            "/-/healthy",
            get(|| async { "Pharos Server is Healthy.\n" }).head(|| async {}),
        )
        .route("/-/ready", get(ready).head(ready))
        .fallback(forward)
        .with_state(shell)
}

async fn ready(State(shell): State<Shell>) -> Response {
    if shell.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "Pharos Server is Ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()
    }
}

async fn forward(State(shell): State<Shell>, req: Request<Body>) -> Response {
    match shell.app.get() {
        Some(app) => match app.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        },
        None => (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response(),
    }
}

/// A byte count as Prometheus prints size flags: power-of-1024 parts from the largest down,
/// zero parts left out (`0B`, `512MiB`, `1GiB512MiB`).
fn format_base2_bytes(mut n: u64) -> String {
    const UNITS: [(&str, u64); 7] = [
        ("EiB", 1 << 60),
        ("PiB", 1 << 50),
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("B", 1),
    ];
    if n == 0 {
        return "0B".to_string();
    }
    let mut out = String::new();
    for (unit, size) in UNITS {
        if n >= size {
            out.push_str(&format!("{}{unit}", n / size));
            n %= size;
        }
    }
    out
}

/// The application: API, dashboard, own metrics, reload.
fn app_router(running: Arc<Running>, args: &ServerArgs) -> Router {
    let engine = Arc::new(Engine::new(EngineOptions {
        timeout: args.query_timeout,
        ..EngineOptions::default()
    }));
    let mut flags = BTreeMap::new();
    flags.insert(
        "config.file".to_string(),
        args.config_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    );
    flags.insert(
        "storage.tsdb.path".to_string(),
        args.tsdb_path.display().to_string(),
    );
    flags.insert(
        "storage.tsdb.retention.time".to_string(),
        pharos_model::api::format_duration(args.retention.as_millis() as i64),
    );
    flags.insert(
        "web.listen-address".to_string(),
        args.web_listen_address.clone(),
    );
    flags.insert(
        "exporter.listen-address".to_string(),
        args.exporter_listen_address.clone(),
    );
    flags.insert(
        "web.enable-admin-api".to_string(),
        args.enable_admin_api.to_string(),
    );
    flags.insert(
        "query.max-concurrency".to_string(),
        args.query_max_concurrency.to_string(),
    );
    flags.insert(
        "query.timeout".to_string(),
        pharos_model::api::format_duration(args.query_timeout.as_millis() as i64),
    );
    flags.insert(
        "query.lookback-delta".to_string(),
        pharos_model::api::format_duration(engine.options().lookback_delta.as_millis() as i64),
    );
    flags.insert(
        "query.max-samples".to_string(),
        engine.options().max_samples.to_string(),
    );
    flags.insert(
        "storage.tsdb.retention.size".to_string(),
        format_base2_bytes(args.retention_size),
    );
    flags.insert(
        "web.enable-remote-write-receiver".to_string(),
        args.enable_remote_write_receiver.to_string(),
    );
    let api = pharos_query::api::router(pharos_query::api::ApiState {
        queryable: running.db.clone(),
        engine: engine.clone(),
        targets: running.scrapes.clone(),
        build: pharos_query::api::BuildInfo::default(),
        config_yaml: running.config_yaml.clone(),
        flags: flags.clone(),
        start_time_ms: (running.start_time_s * 1000.0) as i64,
        rules: Some(running.rules.provider()),
        reload: running.reload_status.clone(),
        admin: Some(running.db.clone()),
    });
    let boards = running.boards.clone();
    let source: Arc<dyn DataSource> = match &running.dashboard_source {
        Some(remote) => remote.clone(),
        None => Arc::new(LocalSource {
            db: running.db.clone(),
            engine,
            scrapes: running.scrapes.clone(),
            flags,
            config_yaml: running.config_yaml.clone(),
            start_time_s: running.start_time_s,
            rules: running.rules.provider(),
        }),
    };
    let dashboard = pharos_dashboard::router_with_store(source, boards);
    let remote = running.remote.router();
    let own = Router::new()
        .route("/metrics", get(own_metrics))
        .route(
            "/-/reload",
            post(reload_handler).put(reload_handler).fallback(|| async {
                // Prometheus' answer to other methods, byte for byte.
                (
                    StatusCode::METHOD_NOT_ALLOWED,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    "Only POST or PUT requests allowed",
                )
            }),
        )
        .with_state(running);
    api.merge(dashboard).merge(own).merge(remote)
}

async fn own_metrics(State(running): State<Arc<Running>>) -> Response {
    let r = running.clone();
    let text = tokio::task::spawn_blocking(move || gather_own(&r)).await;
    match text {
        Ok(t) => ([(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)], t).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn gather_own(running: &Running) -> String {
    let mut s = Snapshot::default();
    s.single(
        "pharos_config_last_reload_successful",
        "Whether the last configuration reload attempt was successful.",
        MetricType::Gauge,
        if running.reload_status.success() {
            1.0
        } else {
            0.0
        },
    );
    s.single(
        "pharos_config_last_reload_success_timestamp_seconds",
        "Timestamp of the last successful configuration reload.",
        MetricType::Gauge,
        running.reload_status.last_success_ms() as f64 / 1000.0,
    );
    let st = running.db.stats();
    s.single(
        "pharos_tsdb_head_series",
        "Number of series in the head.",
        MetricType::Gauge,
        st.head_series as f64,
    );
    s.single(
        "pharos_tsdb_head_samples",
        "Number of samples held in the head.",
        MetricType::Gauge,
        st.head_samples as f64,
    );
    s.single(
        "pharos_tsdb_wal_segments",
        "Number of WAL segment files.",
        MetricType::Gauge,
        st.wal_segments as f64,
    );
    s.single(
        "pharos_tsdb_wal_bytes",
        "Total size of the WAL segment files in bytes.",
        MetricType::Gauge,
        st.wal_bytes as f64,
    );
    s.single(
        "pharos_tsdb_out_of_order_samples_total",
        "Samples rejected because they were older than the newest sample of their series.",
        MetricType::Counter,
        st.out_of_order_total as f64,
    );
    s.single(
        "pharos_tsdb_wal_corruptions_total",
        "Corrupt WAL records found (and truncated) during replay.",
        MetricType::Counter,
        st.wal_corruptions_total as f64,
    );
    for (name, help, kind, v) in [
        (
            "pharos_tsdb_blocks_loaded",
            "Number of persisted blocks.",
            MetricType::Gauge,
            st.blocks,
        ),
        (
            "pharos_tsdb_block_bytes",
            "Size of the persisted blocks in bytes.",
            MetricType::Gauge,
            st.block_bytes,
        ),
        (
            "pharos_tsdb_block_samples",
            "Samples in the persisted blocks.",
            MetricType::Gauge,
            st.block_samples,
        ),
        (
            "pharos_tsdb_quarantined_blocks_total",
            "Damaged blocks moved to quarantine/ at open.",
            MetricType::Counter,
            st.quarantined_blocks_total,
        ),
        (
            "pharos_tsdb_head_blocks_written_total",
            "Blocks written from the head.",
            MetricType::Counter,
            st.head_blocks_written_total,
        ),
        (
            "pharos_tsdb_compactions_total",
            "Compactions (merges of blocks) run.",
            MetricType::Counter,
            st.compactions_total,
        ),
        (
            "pharos_tsdb_blocks_deleted_total",
            "Blocks deleted by retention (time or size).",
            MetricType::Counter,
            st.blocks_deleted_total,
        ),
    ] {
        s.single(name, help, kind, v as f64);
    }
    s.families.extend(running.scrapes.stats().families());
    s.families.extend(running.remote.families());
    s.families.extend(running.rules.families());
    s.render(running.start_time_s)
}

async fn reload_handler(State(running): State<Arc<Running>>) -> Response {
    match reload(&running) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e:#}"),
        )
            .into_response(),
    }
}

/// Re-reads the configuration and applies it; on error the running configuration stays.
fn reload(running: &Running) -> anyhow::Result<()> {
    let result = running.source.load().and_then(|(cfg, _)| {
        running.rules.apply(&cfg)?;
        running
            .scrapes
            .apply(&cfg.global, &cfg.scrape_configs)
            .context("cannot apply the scrape configuration")?;
        running.remote.apply(&cfg)?;
        running.boards.set_dir(crate::dashboards_wiring::dir(
            running.dashboards_flag.as_deref(),
            &cfg,
            &running.source,
        ));
        if let Ok(mut y) = running.config_yaml.write() {
            *y = crate::config_yaml::render(
                &cfg,
                crate::config_yaml::base_dir(&running.source).as_deref(),
            );
        }
        Ok(())
    });
    running
        .reload_status
        .record(result.is_ok(), pharos_model::now_ms());
    match &result {
        Ok(()) => tracing::info!("configuration reloaded"),
        Err(e) => tracing::error!("configuration reload failed, keeping the old one: {e:#}"),
    }
    result
}

async fn reload_on_sighup(running: Arc<Running>, mut stop: tokio::sync::watch::Receiver<bool>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reload with POST /-/reload");
            return;
        };
        loop {
            tokio::select! {
                _ = hup.recv() => { let _ = reload(&running); }
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (running, stop.wait_for(|s| *s).await);
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// The dashboard's view of the in-process engine.
struct LocalSource {
    db: Arc<Db>,
    engine: Arc<Engine>,
    scrapes: Arc<ScrapeManager>,
    flags: BTreeMap<String, String>,
    config_yaml: Arc<RwLock<String>>,
    start_time_s: f64,
    rules: Arc<dyn pharos_query::rules::json::RulesProvider>,
}

impl DataSource for LocalSource {
    fn rules(&self) -> Option<serde_json::Value> {
        let filter = pharos_query::rules::json::RulesFilter::default();
        serde_json::to_value(self.rules.rule_groups(&filter)).ok()
    }

    fn status(&self) -> pharos_dashboard::StatusInfo {
        let st = self.db.stats();
        let kv = |k: &str, v: String| (k.to_string(), v);
        pharos_dashboard::StatusInfo {
            sections: vec![
                (
                    "Build".into(),
                    vec![kv("version", env!("CARGO_PKG_VERSION").into())],
                ),
                (
                    "Runtime".into(),
                    vec![kv(
                        "start time",
                        pharos_model::api::format_rfc3339((self.start_time_s * 1000.0) as i64),
                    )],
                ),
                (
                    "Storage".into(),
                    vec![
                        kv("head series", st.head_series.to_string()),
                        kv("head samples", st.head_samples.to_string()),
                        kv("WAL segments", st.wal_segments.to_string()),
                        kv("WAL bytes", st.wal_bytes.to_string()),
                    ],
                ),
                (
                    "Flags".into(),
                    self.flags.iter().map(|(k, v)| kv(k, v.clone())).collect(),
                ),
            ],
            config_yaml: self.config_yaml.read().ok().map(|c| c.clone()),
        }
    }

    fn query_range(
        &self,
        expr: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Vec<MatrixSeries>, String> {
        let e = pharos_query::parser::parse(expr).map_err(|e| e.to_string())?;
        let v = self
            .engine
            .range(&*self.db, &e, start_ms, end_ms, step_ms)
            .map_err(|e| e.to_string())?;
        match v.into_query_data() {
            QueryData::Matrix(m) => Ok(m),
            other => Err(format!("range query returned {}", result_type(&other))),
        }
    }

    fn query(&self, expr: &str, t_ms: i64) -> Result<QueryData, String> {
        let e = pharos_query::parser::parse(expr).map_err(|e| e.to_string())?;
        self.engine
            .instant(&*self.db, &e, t_ms)
            .map(|v| v.into_query_data())
            .map_err(|e| e.to_string())
    }

    fn targets(&self) -> Vec<Target> {
        self.scrapes.active_targets()
    }
}

fn result_type(d: &QueryData) -> &'static str {
    match d {
        QueryData::Vector(_) => "vector",
        QueryData::Matrix(_) => "matrix",
        QueryData::Scalar(_) => "scalar",
        QueryData::String(_) => "string",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn size_flags_print_as_prometheus_does() {
        for (n, want) in [
            (0, "0B"),
            (1, "1B"),
            (1536 << 20, "1GiB512MiB"),
            (512 << 20, "512MiB"),
            ((10 << 30) + 1, "10GiB1B"),
        ] {
            assert_eq!(super::format_base2_bytes(n), want, "{n}");
        }
    }
}
