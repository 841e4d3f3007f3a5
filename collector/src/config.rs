//! The collector's part of the config file: `global` and `scrape_configs`, in Prometheus' shape.
//!
//! Every struct denies unknown keys, so a typo is an error naming the key and its line. Defaults
//! live in the `default_*` functions of this module and in [`ScrapeConfig::resolve`], which fills
//! in what a scrape config inherits from `global`.
//!
//! ```
//! use pharos_collector::config::Config;
//! let cfg = Config::from_yaml("scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['localhost:9100']\n").unwrap();
//! let job = cfg.scrape_configs[0].resolve(&cfg.global).unwrap();
//! assert_eq!(job.interval.std().as_secs(), 60);
//! assert_eq!(job.config.metrics_path, "/metrics");
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::auth::{Authorization, BasicAuth, HttpClientConfig, TlsConfig};
use crate::discovery::file::FileSdConfig;
use crate::discovery::kubernetes::KubernetesSdConfig;
use crate::relabel::RelabelConfig;
use crate::{Error, Result};

/// A duration written the Prometheus way (`15s`, `1m30s`, `1h`, `100ms`, `2d`), at millisecond
/// precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// A duration of `s` seconds.
    pub const fn from_secs(s: u64) -> Self {
        Self(std::time::Duration::from_secs(s))
    }

    /// Parses `15s`, `1h30m`, `0`...
    pub fn parse(s: &str) -> Result<Self> {
        let ms = pharos_model::parse_duration_ms(s).map_err(Error::InvalidConfig)?;
        Ok(Self(std::time::Duration::from_millis(ms.max(0) as u64)))
    }

    /// Whole milliseconds.
    pub fn as_millis(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }

    /// The standard library duration.
    pub fn std(self) -> std::time::Duration {
        self.0
    }
}

impl fmt::Display for Duration {
    /// Prometheus' spelling: `1m30s`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&pharos_model::api::format_duration(self.as_millis()))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ms = pharos_model::parse_duration_ms(&s).map_err(serde::de::Error::custom)?;
        Ok(Self(std::time::Duration::from_millis(ms.max(0) as u64)))
    }
}

/// A size in bytes written the Prometheus way: a plain number or with a unit `B`, `KB`, `MB`, `GB`,
/// `TB` (powers of 1024, also spelled `KiB`...). 0 means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `100MB`, `512KiB`, `1024`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::InvalidConfig(format!("not a valid size: {s:?}"));
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let n: u64 = s[..digits].parse().map_err(|_| bad())?;
        let shift = match &s[digits..] {
            "" | "B" => 0,
            "KB" | "KiB" => 10,
            "MB" | "MiB" => 20,
            "GB" | "GiB" => 30,
            "TB" | "TiB" => 40,
            _ => return Err(bad()),
        };
        n.checked_mul(1u64 << shift).map(Self).ok_or_else(bad)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(&format!("{}B", self.0))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Self(n)),
            Raw::S(s) => Self::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

fn default_scrape_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_scrape_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_evaluation_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_metrics_path() -> String {
    "/metrics".into()
}
fn default_scheme() -> String {
    "http".into()
}
fn default_true() -> bool {
    true
}

/// The `global` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawGlobalConfig")]
pub struct GlobalConfig {
    /// Default scrape interval (1m).
    pub scrape_interval: Duration,
    /// Default scrape timeout (10s, or the scrape interval if that is shorter and no timeout is
    /// given).
    pub scrape_timeout: Duration,
    /// How often rules are evaluated (1m); used by the rule manager.
    pub evaluation_interval: Duration,
    /// Labels added to series and alerts leaving Pharos (federation, remote write, alerts); never
    /// to stored samples.
    pub external_labels: BTreeMap<String, String>,
}

/// `global` as written, before the timeout default is derived from the interval.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGlobalConfig {
    #[serde(default = "default_scrape_interval")]
    scrape_interval: Duration,
    #[serde(default)]
    scrape_timeout: Option<Duration>,
    #[serde(default = "default_evaluation_interval")]
    evaluation_interval: Duration,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
}

impl From<RawGlobalConfig> for GlobalConfig {
    /// Zero durations mean "not set", as in Prometheus.
    fn from(mut r: RawGlobalConfig) -> Self {
        if r.scrape_interval.0.is_zero() {
            r.scrape_interval = default_scrape_interval();
        }
        if r.evaluation_interval.0.is_zero() {
            r.evaluation_interval = default_evaluation_interval();
        }
        r.scrape_timeout = r.scrape_timeout.filter(|t| !t.0.is_zero());
        Self {
            scrape_interval: r.scrape_interval,
            scrape_timeout: r
                .scrape_timeout
                .unwrap_or_else(|| default_scrape_timeout().min(r.scrape_interval)),
            evaluation_interval: r.evaluation_interval,
            external_labels: r.external_labels,
        }
    }
}

impl Default for GlobalConfig {
    fn default() -> Self {
        Self {
            scrape_interval: default_scrape_interval(),
            scrape_timeout: default_scrape_timeout(),
            evaluation_interval: default_evaluation_interval(),
            external_labels: BTreeMap::new(),
        }
    }
}

/// One `static_configs` entry: addresses and the labels they share.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// `host:port` addresses (become `__address__`).
    #[serde(default)]
    pub targets: Vec<String>,
    /// Labels of every target of this group.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// One `scrape_configs` entry (a scrape pool).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// The `job` label and the pool's name; unique.
    pub job_name: String,
    /// Defaults to `global.scrape_interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_interval: Option<Duration>,
    /// Defaults to `global.scrape_timeout`, capped at the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_timeout: Option<Duration>,
    /// HTTP path (`/metrics`).
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    /// `http` or `https`.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// URL query parameters.
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    /// Keep the scraped labels on conflict with target labels (instead of `exported_` renames).
    #[serde(default)]
    pub honor_labels: bool,
    /// Use timestamps present in the scraped data (true).
    #[serde(default = "default_true")]
    pub honor_timestamps: bool,
    /// Fail a scrape with more samples than this after metric relabeling (0: no limit).
    #[serde(default)]
    pub sample_limit: u64,
    /// Fail a scrape whose uncompressed body is larger (0: no limit).
    #[serde(default)]
    pub body_size_limit: ByteSize,
    /// Fail a scrape with a series of more labels than this, `__name__` included (0: no limit).
    #[serde(default)]
    pub label_limit: u64,
    /// Fail a scrape with a label name longer than this (0: no limit).
    #[serde(default)]
    pub label_name_length_limit: u64,
    /// Fail a scrape with a label value longer than this (0: no limit).
    #[serde(default)]
    pub label_value_length_limit: u64,
    /// Fail every scrape of the pool while it has more targets than this after relabeling (0: no
    /// limit).
    #[serde(default)]
    pub target_limit: u64,
    /// `basic_auth` for scrapes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// `authorization` for scrapes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    /// Legacy bearer token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bearer_token: String,
    /// Legacy bearer token file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bearer_token_file: String,
    /// `tls_config`, see [`crate::tls`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
    /// Follow redirects (true).
    #[serde(default = "default_true")]
    pub follow_redirects: bool,
    /// Statically listed targets.
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    /// Targets read from files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub file_sd_configs: Vec<FileSdConfig>,
    /// Targets discovered from the Kubernetes API.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kubernetes_sd_configs: Vec<KubernetesSdConfig>,
    /// Relabeling of targets before scraping.
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    /// Relabeling of scraped series before storing.
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
}

impl ScrapeConfig {
    /// A config for `job_name` with every default.
    pub fn new(job_name: impl Into<String>) -> Self {
        Self {
            job_name: job_name.into(),
            scrape_interval: None,
            scrape_timeout: None,
            metrics_path: default_metrics_path(),
            scheme: default_scheme(),
            params: BTreeMap::new(),
            honor_labels: false,
            honor_timestamps: true,
            sample_limit: 0,
            body_size_limit: ByteSize(0),
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
            target_limit: 0,
            basic_auth: None,
            authorization: None,
            bearer_token: String::new(),
            bearer_token_file: String::new(),
            tls_config: None,
            follow_redirects: true,
            static_configs: Vec::new(),
            file_sd_configs: Vec::new(),
            kubernetes_sd_configs: Vec::new(),
            relabel_configs: Vec::new(),
            metric_relabel_configs: Vec::new(),
        }
    }

    /// The HTTP client part (authentication, TLS, redirects).
    pub fn http(&self) -> HttpClientConfig {
        HttpClientConfig {
            basic_auth: self.basic_auth.clone(),
            authorization: self.authorization.clone(),
            bearer_token: self.bearer_token.clone(),
            bearer_token_file: self.bearer_token_file.clone(),
            tls_config: self.tls_config.clone(),
            follow_redirects: self.follow_redirects,
        }
    }

    /// True if `other` discovers targets the same way (static, file and Kubernetes configs).
    pub fn same_discovery(&self, other: &ScrapeConfig) -> bool {
        self.static_configs == other.static_configs
            && self.file_sd_configs == other.file_sd_configs
            && self.kubernetes_sd_configs == other.kubernetes_sd_configs
    }

    /// Validates this config and fills in what it inherits from `global`.
    pub fn resolve(&self, global: &GlobalConfig) -> Result<ResolvedScrapeConfig> {
        let job = &self.job_name;
        if job.is_empty() {
            return Err(Error::InvalidConfig("job_name is empty".into()));
        }
        // As in Prometheus, a zero interval or timeout means "not set": the global one applies.
        let interval = self
            .scrape_interval
            .filter(|i| !i.0.is_zero())
            .unwrap_or(global.scrape_interval);
        if interval.0.is_zero() {
            return Err(Error::InvalidConfig(format!(
                "job {job:?}: scrape_interval must be positive"
            )));
        }
        let timeout = match self.scrape_timeout.filter(|t| !t.0.is_zero()) {
            Some(t) => t,
            None => global.scrape_timeout.min(interval),
        };
        if timeout > interval {
            return Err(Error::InvalidConfig(format!(
                "job {job:?}: scrape_timeout {timeout} greater than scrape_interval {interval}"
            )));
        }
        if timeout.0.is_zero() {
            return Err(Error::InvalidConfig(format!(
                "job {job:?}: scrape_timeout must be positive"
            )));
        }
        if !self.metrics_path.starts_with('/') {
            return Err(Error::InvalidConfig(format!(
                "job {job:?}: metrics_path {:?} must start with '/'",
                self.metrics_path
            )));
        }
        if self.scheme != "http" && self.scheme != "https" {
            return Err(Error::InvalidConfig(format!(
                "job {job:?}: scheme {:?} is not http or https",
                self.scheme
            )));
        }
        for (i, sc) in self.static_configs.iter().enumerate() {
            if let Some(t) = sc.targets.iter().find(|t| t.is_empty() || t.contains('/')) {
                return Err(Error::InvalidConfig(format!(
                    "job {job:?}: static_configs[{i}]: target {t:?} is not host:port"
                )));
            }
            if let Some(name) = sc.labels.keys().find(|n| !is_label_name(n)) {
                return Err(Error::InvalidConfig(format!(
                    "job {job:?}: static_configs[{i}]: invalid label name {name:?}"
                )));
            }
        }
        let in_job = |e: Error| match e {
            Error::InvalidConfig(m) => Error::InvalidConfig(format!("job {job:?}: {m}")),
            other => other,
        };
        self.http().validate().map_err(in_job)?;
        for f in &self.file_sd_configs {
            f.validate().map_err(in_job)?;
        }
        for k in &self.kubernetes_sd_configs {
            k.validate().map_err(in_job)?;
        }
        for (what, list) in [
            ("relabel_configs", &self.relabel_configs),
            ("metric_relabel_configs", &self.metric_relabel_configs),
        ] {
            for (i, rc) in list.iter().enumerate() {
                rc.validate()
                    .map_err(|e| Error::InvalidConfig(format!("job {job:?}: {what}[{i}]: {e}")))?;
            }
        }
        Ok(ResolvedScrapeConfig {
            config: self.clone(),
            interval,
            timeout,
        })
    }
}

/// A validated scrape config with its effective interval and timeout.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedScrapeConfig {
    /// The config as written.
    pub config: ScrapeConfig,
    /// Effective scrape interval.
    pub interval: Duration,
    /// Effective scrape timeout.
    pub timeout: Duration,
}

/// True for `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// The collector's sections of a config file, for `pharos check config` and tests. The binary's
/// own config struct embeds [`GlobalConfig`] and [`ScrapeConfig`] next to its other sections.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `global`.
    #[serde(default)]
    pub global: GlobalConfig,
    /// `scrape_configs`.
    #[serde(default)]
    pub scrape_configs: Vec<ScrapeConfig>,
}

impl Config {
    /// Parses YAML; unknown keys are errors naming the key, line and column.
    pub fn from_yaml(yaml: &str) -> Result<Self> {
        let cfg: Config =
            serde_norway::from_str(yaml).map_err(|e| Error::Yaml(with_location(yaml, &e)))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every scrape config and that job names are unique.
    pub fn validate(&self) -> Result<()> {
        validate_all(&self.global, &self.scrape_configs).map(|_| ())
    }
}

/// The YAML error's message, with the line of an unknown key added when the parser gave none
/// (it does not for keys of the top-level mapping).
pub fn with_location(yaml: &str, e: &serde_norway::Error) -> String {
    let msg = e.to_string();
    if msg.contains(" line ") {
        return msg;
    }
    let key = msg
        .split_once("unknown field `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(k, _)| k);
    if let Some(key) = key {
        for (i, line) in yaml.lines().enumerate() {
            let t = line.trim_start().trim_start_matches("- ");
            if t.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with(':'))
            {
                return format!(
                    "{msg} at line {} column {}",
                    i + 1,
                    line.len() - t.len() + 1
                );
            }
        }
    }
    match e.location() {
        Some(l) => format!("{msg} at line {} column {}", l.line(), l.column()),
        None => msg,
    }
}

/// Resolves every scrape config and checks that job names are unique.
pub fn validate_all(
    global: &GlobalConfig,
    scrape_configs: &[ScrapeConfig],
) -> Result<Vec<ResolvedScrapeConfig>> {
    if global.scrape_timeout > global.scrape_interval {
        return Err(Error::InvalidConfig(format!(
            "global scrape_timeout {} greater than scrape_interval {}",
            global.scrape_timeout, global.scrape_interval
        )));
    }
    if let Some(name) = global.external_labels.keys().find(|n| !is_label_name(n)) {
        return Err(Error::InvalidConfig(format!(
            "global external_labels: invalid label name {name:?}"
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(scrape_configs.len());
    for sc in scrape_configs {
        if !seen.insert(sc.job_name.as_str()) {
            return Err(Error::InvalidConfig(format!(
                "found multiple scrape configs with job name {:?}",
                sc.job_name
            )));
        }
        out.push(sc.resolve(global)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_duration(s: &str, want_ms: Option<u64>) {
        assert_eq!(
            Duration::parse(s).ok().map(|d| d.0.as_millis() as u64),
            want_ms,
            "{s}"
        );
    }

    #[test]
    fn durations() {
        check_duration("15s", Some(15_000));
        check_duration("1m30s", Some(90_000));
        check_duration("1h", Some(3_600_000));
        check_duration("250ms", Some(250));
        check_duration("0", Some(0));
        check_duration("", None);
        check_duration("1x", None);
        check_duration("s", None);
        assert_eq!(Duration::parse("90s").unwrap().to_string(), "1m30s");
        let d: Duration = serde_norway::from_str("\"2m\"").unwrap();
        assert_eq!(d, Duration::from_secs(120));
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(ByteSize::parse("100").unwrap(), ByteSize(100));
        assert_eq!(ByteSize::parse("2KB").unwrap(), ByteSize(2048));
        assert_eq!(ByteSize::parse("1MiB").unwrap(), ByteSize(1 << 20));
        assert!(ByteSize::parse("1XB").is_err());
        assert!(ByteSize::parse("MB").is_err());
    }

    const FULL: &str = r#"
global:
  scrape_interval: 15s
  external_labels:
    cluster: eu1
scrape_configs:
  - job_name: node
    scrape_timeout: 5s
    params:
      module: [http_2xx]
    honor_labels: true
    static_configs:
      - targets: ['a:9100', 'b:9100']
        labels: {env: prod}
    relabel_configs:
      - source_labels: [__address__]
        regex: '(.*):9100'
        target_label: host
    metric_relabel_configs:
      - action: drop
        source_labels: [__name__]
        regex: go_.*
  - job_name: self
    scrape_interval: 1m30s
    honor_timestamps: false
    sample_limit: 1000
    body_size_limit: 10MB
"#;

    #[test]
    fn parses_prometheus_shape() {
        let cfg = Config::from_yaml(FULL).unwrap();
        assert_eq!(cfg.global.scrape_interval, Duration::from_secs(15));
        assert_eq!(cfg.global.scrape_timeout, Duration::from_secs(10));
        assert_eq!(cfg.global.evaluation_interval, Duration::from_secs(60));
        assert_eq!(cfg.global.external_labels["cluster"], "eu1");
        let node = cfg.scrape_configs[0].resolve(&cfg.global).unwrap();
        assert_eq!(node.interval, Duration::from_secs(15));
        assert_eq!(node.timeout, Duration::from_secs(5));
        assert!(node.config.honor_labels && node.config.honor_timestamps);
        assert_eq!(node.config.static_configs[0].targets, ["a:9100", "b:9100"]);
        assert_eq!(node.config.params["module"], ["http_2xx"]);
        assert_eq!(node.config.relabel_configs[0].target_label, "host");
        let this = cfg.scrape_configs[1].resolve(&cfg.global).unwrap();
        assert_eq!(this.interval, Duration::from_secs(90));
        assert_eq!(this.timeout, Duration::from_secs(10));
        assert!(!this.config.honor_timestamps);
        assert_eq!(this.config.sample_limit, 1000);
        assert_eq!(this.config.body_size_limit, ByteSize(10 << 20));
        assert_eq!(this.config.metrics_path, "/metrics");
        assert_eq!(this.config.scheme, "http");
    }

    #[track_caller]
    fn check_err(yaml: &str, want: &[&str]) {
        let err = Config::from_yaml(yaml).unwrap_err().to_string();
        for w in want {
            assert!(err.contains(w), "{err:?} lacks {w:?}");
        }
    }

    #[test]
    fn errors() {
        check_err(
            "scrape_configs:\n  - job_name: a\n    scrape_intervall: 5s\n",
            &["scrape_intervall", "line 3"],
        );
        check_err("globall: {}\n", &["globall", "line 1"]);
        check_err(
            "global:\n  scrape_interval: 15s\n  bogus: 1\n",
            &["bogus", "line 3"],
        );
        check_err(
            "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: [x]\n        lables: {}\n",
            &["lables", "line 5"],
        );
        check_err(
            "scrape_configs:\n  - job_name: a\n    scrape_interval: 5q\n",
            // serde_norway places errors of custom deserializers at the enclosing mapping.
            &["not a valid duration", "\"5q\"", "line 2"],
        );
        check_err(
            "scrape_configs:\n  - job_name: a\n  - job_name: a\n",
            &["multiple scrape configs", "\"a\""],
        );
        check_err(
            "scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 6s\n",
            &["scrape_timeout 6s greater than scrape_interval 5s"],
        );
        check_err(
            "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - regex: '('\n",
            &["line 4"],
        );
        check_err(
            "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: replace\n        source_labels: [a]\n",
            &["relabel_configs[0]", "target_label"],
        );
        check_err(
            "scrape_configs:\n  - job_name: a\n    metrics_path: metrics\n",
            &["must start with '/'"],
        );
    }

    #[test]
    fn zero_interval_and_timeout_inherit_global() {
        let cfg = Config::from_yaml(
            "global: {scrape_interval: 20s, scrape_timeout: 7s}\nscrape_configs:\n  - job_name: a\n    scrape_interval: 0s\n    scrape_timeout: 0s\n",
        )
        .unwrap();
        let r = cfg.scrape_configs[0].resolve(&cfg.global).unwrap();
        assert_eq!(
            (r.interval, r.timeout),
            (Duration::from_secs(20), Duration::from_secs(7))
        );
    }

    #[test]
    fn timeout_capped_at_interval_when_inherited() {
        let mut sc = ScrapeConfig::new("x");
        sc.scrape_interval = Some(Duration::from_secs(5));
        let r = sc.resolve(&GlobalConfig::default()).unwrap();
        assert_eq!(r.timeout, Duration::from_secs(5));
    }
}
