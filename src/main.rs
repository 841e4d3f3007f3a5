//! `pharos`: the one binary of Pharos, a light Prometheus-compatible monitoring stack.
//!
//! With no arguments it runs `pharos server` with the embedded default configuration: the built-in
//! node exporter on 127.0.0.1:9100, the server scraping itself and the exporter every 15 s, data
//! under `./data`, the HTTP API and dashboard on 127.0.0.1:9090. `pharos exporter` runs the node
//! exporter alone (the per-node DaemonSet).
//!
//! This file holds the command line; `server.rs` wires the crates together.

mod cmd_check;
mod cmd_query;
mod cmd_tsdb;
mod config;
mod config_yaml;
mod dashboards_wiring;
#[cfg(test)]
mod deploy_check;
mod remote_source;
mod remote_wiring;
mod rules_wiring;
mod selfmetrics;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

/// Command line of `pharos`.
#[derive(Debug, Parser)]
#[command(
    name = "pharos",
    version,
    about = "Pharos: a light, Prometheus-compatible monitoring stack for Kubernetes nodes and pods.",
    long_about = "Pharos: a light, Prometheus-compatible monitoring stack for Kubernetes nodes and pods.\n\n\
                  Without a subcommand, runs `pharos server` (with any server flags given here).",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the monitoring server: scraping, storage, PromQL API and dashboard (the default).
    Server(ServerArgs),
    /// Run only the node exporter (for a DaemonSet on every node), serving /metrics.
    Exporter(ExporterArgs),
    /// Check rule and configuration files (as promtool check).
    #[command(subcommand)]
    Check(cmd_check::CheckCommand),
    /// Run rule unit tests (as promtool test).
    #[command(subcommand)]
    Test(cmd_check::TestCommand),
    /// Evaluate a PromQL expression against a server or a data directory and print a table.
    Query(cmd_query::QueryArgs),
    /// Inspect a data directory, backfill it from a text file, or export it as text.
    #[command(subcommand)]
    Tsdb(cmd_tsdb::TsdbCommand),
}

/// Logging flags, accepted by every command.
#[derive(Debug, Args)]
struct LogArgs {
    /// Only log messages with the given severity or above.
    #[arg(long = "log.level", global = true, default_value = "info",
          value_parser = ["debug", "info", "warn", "error"])]
    level: String,
}

/// Flags of `pharos server`, named after Prometheus' own.
#[derive(Debug, Args, Clone)]
pub struct ServerArgs {
    /// Configuration file (prometheus.yml format). Without it, the embedded default is used:
    /// scrape Pharos itself (job "pharos") and the built-in node exporter (job "node") every 15s,
    /// and evaluate the default node and pod rules.
    #[arg(long = "config.file", value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// Base path for metrics storage.
    #[arg(long = "storage.tsdb.path", value_name = "DIR", default_value = "data")]
    pub tsdb_path: PathBuf,
    /// How long to retain samples in storage (a Prometheus duration such as 15d or 12h).
    #[arg(long = "storage.tsdb.retention.time", value_name = "DURATION", default_value = "15d",
          value_parser = parse_retention)]
    pub retention: std::time::Duration,
    /// Maximum bytes of storage blocks and WAL to keep (e.g. 512MB, 10GB; 0 = no limit); the
    /// oldest blocks are deleted first.
    #[arg(long = "storage.tsdb.retention.size", value_name = "SIZE", default_value = "0",
          value_parser = parse_size)]
    pub retention_size: u64,
    /// Address to listen on for the HTTP API, the dashboard and Pharos' own /metrics.
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = "127.0.0.1:9090"
    )]
    pub web_listen_address: String,
    /// Address of the embedded node exporter's /metrics, or "off" to disable it.
    #[arg(
        long = "exporter.listen-address",
        value_name = "ADDR|off",
        default_value = "127.0.0.1:9100"
    )]
    pub exporter_listen_address: String,
    /// Accept remote-write requests (protobuf + snappy) at POST /api/v1/write.
    #[arg(long = "web.enable-remote-write-receiver")]
    pub enable_remote_write_receiver: bool,
    /// Enable the admin endpoints under /api/v1/admin/ (as Prometheus' flag of the same name).
    #[arg(long = "web.enable-admin-api")]
    pub enable_admin_api: bool,
    /// Maximum number of queries evaluated at once; further queries wait in a queue.
    #[arg(long = "query.max-concurrency", value_name = "N", default_value_t = 20)]
    pub query_max_concurrency: usize,
    /// Maximum time a query may take before it is aborted (a Prometheus duration).
    #[arg(long = "query.timeout", value_name = "DURATION", default_value = "2m",
          value_parser = parse_retention)]
    pub query_timeout: std::time::Duration,
    /// Folder of dashboard files (YAML/JSON), shown in the dashboard's navigation; overrides
    /// `dashboards.dir` of the configuration file.
    #[arg(long = "dashboards.dir", value_name = "DIR")]
    pub dashboards_dir: Option<PathBuf>,
    /// Read the dashboard's data from this Prometheus-compatible API (Prometheus,
    /// VictoriaMetrics, Mimir, another Pharos) instead of this server's own storage.
    #[arg(long = "dashboard.datasource.url", value_name = "URL")]
    pub dashboard_datasource_url: Option<String>,
}

/// Flags of `pharos exporter`, named after node_exporter's. `--collector.<name>` and
/// `--no-collector.<name>` flags are added at run time for every collector.
#[derive(Debug, Args, Clone)]
pub struct ExporterArgs {
    /// Address on which to expose metrics.
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = "0.0.0.0:9100"
    )]
    pub web_listen_address: String,
    /// procfs mountpoint.
    #[arg(long = "path.procfs", value_name = "DIR", default_value = "/proc")]
    pub procfs: PathBuf,
    /// sysfs mountpoint.
    #[arg(long = "path.sysfs", value_name = "DIR", default_value = "/sys")]
    pub sysfs: PathBuf,
    /// rootfs mountpoint (the host's / when run in a container, e.g. /host).
    #[arg(long = "path.rootfs", value_name = "DIR", default_value = "/")]
    pub rootfs: PathBuf,
    /// cgroup mount root read by the container collector (default: <path.sysfs>/fs/cgroup).
    #[arg(long = "path.cgroupfs", value_name = "DIR")]
    pub cgroupfs: Option<PathBuf>,
    /// Where the container collector gets pod and container names: `kubelet` (runtime bundles
    /// and kubelet log directories under --path.rootfs), `none`, or a PodList JSON file or
    /// http:// URL (the kubelet's read-only port /pods, or the API server via kubectl proxy).
    #[arg(
        long = "collector.container.metadata",
        value_name = "SOURCE",
        default_value = "kubelet"
    )]
    pub container_metadata: pharos_exporters::pod::metadata::Source,
    /// Disable every collector not enabled with a --collector.<name> flag (as node_exporter's
    /// --collector.disable-defaults).
    #[arg(long = "collector.disable-defaults")]
    pub disable_defaults: bool,
}

/// A byte size with Prometheus' units (B, KB, MB, GB, TB, PB, EB; powers of 1024).
fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(digits);
    let n: u64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    let shift = match unit {
        "" | "B" => 0,
        "KB" => 10,
        "MB" => 20,
        "GB" => 30,
        "TB" => 40,
        "PB" => 50,
        "EB" => 60,
        _ => {
            return Err(format!(
                "invalid size unit {unit:?} (use B, KB, MB, GB, TB, PB, EB)"
            ));
        }
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

fn parse_retention(s: &str) -> Result<std::time::Duration, String> {
    let ms = pharos_model::parse_duration_ms(s)?;
    if ms <= 0 {
        return Err("retention must be positive".into());
    }
    Ok(std::time::Duration::from_millis(ms as u64))
}

/// Adds `--collector.<name>` / `--no-collector.<name>` to the exporter command.
fn with_collector_flags(cmd: clap::Command) -> clap::Command {
    cmd.mut_subcommand("exporter", |mut sub| {
        for name in pharos_exporters::Exporter::collector_names() {
            sub = sub
                .arg(
                    clap::Arg::new(format!("collector.{name}"))
                        .long(format!("collector.{name}"))
                        .action(clap::ArgAction::SetTrue)
                        .help(format!("Enable the {name} collector (default: enabled)."))
                        .help_heading("Collectors"),
                )
                .arg(
                    clap::Arg::new(format!("no-collector.{name}"))
                        .long(format!("no-collector.{name}"))
                        .action(clap::ArgAction::SetTrue)
                        .help(format!("Disable the {name} collector."))
                        .help_heading("Collectors"),
                );
        }
        sub
    })
}

fn main() -> ExitCode {
    let matches = with_collector_flags(Cli::command()).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    init_logging(&cli.log.level);
    // reqwest is built with `rustls-no-provider`: `ring` must be the default before any client.
    pharos_collector::tls::install_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("pharos")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        None => runtime.block_on(server::run(cli.server)),
        Some(Command::Server(args)) => runtime.block_on(server::run(args)),
        Some(Command::Query(args)) => runtime.block_on(cmd_query::run(args)),
        Some(Command::Check(c)) => cmd_check::check(c),
        Some(Command::Tsdb(c)) => cmd_tsdb::run(c),
        Some(Command::Test(c)) => cmd_check::test(c),
        Some(Command::Exporter(args)) => {
            let sub = matches.subcommand_matches("exporter");
            let collectors = pharos_exporters::Exporter::collector_names()
                .iter()
                .filter_map(|name| {
                    let on = sub.is_some_and(|m| m.get_flag(&format!("collector.{name}")));
                    let off = sub.is_some_and(|m| m.get_flag(&format!("no-collector.{name}")));
                    match (on, off) {
                        (_, true) => Some((name.to_string(), false)),
                        (true, false) => Some((name.to_string(), true)),
                        _ => args.disable_defaults.then(|| (name.to_string(), false)),
                    }
                })
                .collect();
            runtime.block_on(server::run_exporter(args, collectors))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
}
