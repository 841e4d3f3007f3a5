//! The top-level configuration file: a superset of prometheus.yml.
//!
//! Each crate owns its section (`pharos_collector::config` for `global` and `scrape_configs`); this
//! module assembles them, rejects unknown keys with the line they are on, and builds the embedded
//! default used when no `--config.file` is given.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use pharos_collector::config::{GlobalConfig, ScrapeConfig};
use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Defaults for every job.
    #[serde(default)]
    pub global: GlobalConfig,
    /// The scrape jobs.
    #[serde(default)]
    pub scrape_configs: Vec<ScrapeConfig>,
    /// Rule file globs (relative to the config file's directory), evaluated by the rule manager.
    #[serde(default)]
    pub rule_files: Vec<String>,
    /// Where alerts are sent (Alertmanagers).
    #[serde(default)]
    pub alerting: pharos_query::notifier::AlertingConfig,
    /// Where to send appended samples (remote write 1.0).
    #[serde(default)]
    pub remote_write: Vec<pharos_collector::remote::RemoteWriteConfig>,
    /// Dashboards from files (`dashboards: {dir: ./dashboards}`), relative to this file's folder.
    #[serde(default)]
    pub dashboards: pharos_dashboard::Config,
}

/// Where the configuration came from, kept for reloads and `/api/v1/status/config`.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file given with `--config.file`.
    File(PathBuf),
    /// The embedded default, generated from the listen addresses.
    Embedded(String),
}

impl Source {
    /// Reads and parses the configuration; errors name the file, line and problem.
    pub fn load(&self) -> anyhow::Result<(Config, String)> {
        match self {
            Source::File(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                let cfg = parse(&text, path)?;
                Ok((cfg, text))
            }
            Source::Embedded(text) => {
                let cfg = parse(text, Path::new("<embedded default>"))?;
                Ok((cfg, text.clone()))
            }
        }
    }
}

/// Parses configuration text; `origin` names it in errors.
pub fn parse(text: &str, origin: &Path) -> anyhow::Result<Config> {
    let cfg: Config = serde_norway::from_str(text).map_err(|e| {
        anyhow::anyhow!(
            "{}: {}",
            origin.display(),
            pharos_collector::config::with_location(text, &e)
        )
    })?;
    pharos_collector::config::validate_all(&cfg.global, &cfg.scrape_configs)
        .map_err(|e| anyhow::anyhow!("{}: {e}", origin.display()))?;
    cfg.alerting
        .endpoints()
        .map_err(|e| anyhow::anyhow!("{}: alerting: {e}", origin.display()))?;
    pharos_collector::remote::validate_all(&cfg.remote_write)
        .map_err(|e| anyhow::anyhow!("{}: {e}", origin.display()))?;
    Ok(cfg)
}

/// The default rule set for nodes and pods (`deploy/rules/pharos.rules.yml`), loaded by the
/// embedded default configuration.
pub const DEFAULT_RULES: &str = include_str!("../deploy/rules/pharos.rules.yml");

/// Where the embedded default writes [`DEFAULT_RULES`], relative to the storage directory (the
/// rule manager reads rule files from disk; the file is rewritten at every start).
pub const DEFAULT_RULES_FILE: &str = "rules/pharos.rules.yml";

/// The embedded default: scrape Pharos itself and, unless disabled, the built-in node exporter,
/// every 15 s, and evaluate the default rule set at `rules_file` (if given) every 15 s.
pub fn embedded_default(
    web_addr: &str,
    exporter_addr: Option<&str>,
    rules_file: Option<&Path>,
) -> String {
    let mut s = String::from(
        "# Pharos' embedded default configuration (used when --config.file is not given).\n\
         global:\n  scrape_interval: 15s\n  scrape_timeout: 10s\n  evaluation_interval: 15s\n",
    );
    if let Some(path) = rules_file {
        // A single-quoted YAML scalar: the only escape is '' for '.
        let quoted = path.display().to_string().replace('\'', "''");
        s.push_str(&format!("rule_files:\n  - '{quoted}'\n"));
    }
    s.push_str("scrape_configs:\n");
    s.push_str(&format!(
        "  - job_name: pharos\n    static_configs:\n      - targets: ['{}']\n",
        scrape_address(web_addr)
    ));
    if let Some(addr) = exporter_addr {
        s.push_str(&format!(
            "  - job_name: node\n    static_configs:\n      - targets: ['{}']\n",
            scrape_address(addr)
        ));
    }
    s
}

/// Writes [`DEFAULT_RULES`] under the storage directory and returns its absolute path.
pub fn write_default_rules(tsdb_path: &Path) -> anyhow::Result<PathBuf> {
    let path = tsdb_path.join(DEFAULT_RULES_FILE);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&path, DEFAULT_RULES)
        .with_context(|| format!("cannot write the default rules to {}", path.display()))?;
    Ok(std::fs::canonicalize(&path).unwrap_or(path))
}

/// The address to scrape for a listen address: a wildcard host becomes loopback.
pub fn scrape_address(listen: &str) -> String {
    if let Some(port) = listen.strip_prefix("0.0.0.0:") {
        format!("127.0.0.1:{port}")
    } else if let Some(port) = listen.strip_prefix("[::]:") {
        format!("[::1]:{port}")
    } else if let Some(port) = listen.strip_prefix(':') {
        format!("127.0.0.1:{port}")
    } else {
        listen.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses_with_both_jobs() {
        let text = embedded_default(
            "127.0.0.1:9090",
            Some("0.0.0.0:9100"),
            Some(Path::new("/d/it's/rules.yml")),
        );
        let cfg = parse(&text, Path::new("x")).unwrap();
        let jobs: Vec<_> = cfg
            .scrape_configs
            .iter()
            .map(|s| s.job_name.as_str())
            .collect();
        assert_eq!(jobs, ["pharos", "node"]);
        assert!(text.contains("127.0.0.1:9100"));
        let cfg = parse(&text, Path::new("x")).unwrap();
        assert_eq!(cfg.rule_files, ["/d/it's/rules.yml"]);
        let text = embedded_default("127.0.0.1:9090", None, None);
        assert_eq!(
            parse(&text, Path::new("x")).unwrap().scrape_configs.len(),
            1
        );
    }

    #[test]
    fn unknown_key_names_file_and_line() {
        let err = parse(
            "global:\n  scrape_interval: 15s\nscrape_config:\n  - job_name: x\n",
            Path::new("/etc/p.yml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("/etc/p.yml: "), "{err}");
        assert!(err.contains("scrape_config"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn duplicate_job_is_an_error() {
        let err = parse(
            "scrape_configs:\n  - job_name: a\n  - job_name: a\n",
            Path::new("c.yml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("c.yml: "), "{err}");
        assert!(err.contains("\"a\""), "{err}");
    }
}
