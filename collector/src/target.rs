//! Targets: from a scrape config's static groups to labelled, relabelled scrape URLs.

use std::collections::BTreeMap;
use std::sync::Mutex;

use pharos_model::api::{self, TargetHealth};
use pharos_model::{Label, Labels};

use crate::config::{Duration, ResolvedScrapeConfig};
use crate::discovery::TargetGroup;
use crate::relabel;

/// The mutable state of a target, updated after every scrape.
#[derive(Debug, Clone)]
pub(crate) struct Health {
    pub health: TargetHealth,
    pub last_error: String,
    /// Start of the last scrape in ms, if any.
    pub last_scrape: Option<i64>,
    /// Seconds the last scrape took.
    pub last_duration: f64,
}

/// One scrape target.
#[derive(Debug)]
pub(crate) struct Target {
    /// The scrape pool (job name).
    pub pool: String,
    /// Labels before relabeling.
    pub discovered: BTreeMap<String, String>,
    /// Final labels: `job`, `instance` and the static/relabelled ones (no `__` labels).
    pub labels: Labels,
    /// The URL scraped.
    pub url: String,
    /// `url` parsed (once, not at every scrape).
    pub parsed_url: reqwest::Url,
    pub interval: Duration,
    pub timeout: Duration,
    /// Identity: a target whose key is unchanged across `apply` keeps its loop.
    pub key: String,
    pub health: Mutex<Health>,
}

impl Target {
    /// The API view of this target.
    pub fn to_api(&self) -> api::Target {
        let h = self
            .health
            .lock()
            .map(|h| h.clone())
            .unwrap_or_else(|e| e.into_inner().clone());
        api::Target {
            discovered_labels: self.discovered.clone(),
            labels: self
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect(),
            scrape_pool: self.pool.clone(),
            scrape_url: self.url.clone(),
            global_url: self.url.clone(),
            last_error: h.last_error,
            last_scrape: h
                .last_scrape
                .map(api::format_rfc3339)
                .unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
            last_scrape_duration: h.last_duration,
            health: h.health,
            scrape_interval: self.interval.to_string(),
            scrape_timeout: self.timeout.to_string(),
        }
    }

    /// Records the outcome of a scrape.
    pub fn record(&self, start_ms: i64, duration: f64, error: Option<&str>) {
        let mut h = self.health.lock().unwrap_or_else(|e| e.into_inner());
        h.last_scrape = Some(start_ms);
        h.last_duration = duration;
        match error {
            None => {
                h.health = TargetHealth::Up;
                h.last_error.clear();
            }
            Some(e) => {
                h.health = TargetHealth::Down;
                h.last_error = e.to_string();
            }
        }
    }
}

/// Builds the targets of one scrape config from its discovered groups: each target's labels,
/// then the group's labels where the target has none of that name, then the pool's defaults
/// (`job`, `__scheme__`, `__metrics_path__`, `__scrape_interval__`, `__scrape_timeout__`,
/// `__param_*`) where still unset; then `relabel_configs`, the `instance` default and the URL.
/// Targets dropped by relabeling are left out; targets whose labels are unusable are logged and
/// left out.
pub(crate) fn build_targets(sc: &ResolvedScrapeConfig, groups: &[TargetGroup]) -> Vec<Target> {
    let c = &sc.config;
    let mut out = Vec::new();
    for group in groups {
        for t in &group.targets {
            let mut d: BTreeMap<String, String> = t.clone();
            for (k, v) in &group.labels {
                d.entry(k.clone()).or_insert_with(|| v.clone());
            }
            let defaults = [
                ("job", c.job_name.clone()),
                ("__metrics_path__", c.metrics_path.clone()),
                ("__scheme__", c.scheme.clone()),
                ("__scrape_interval__", sc.interval.to_string()),
                ("__scrape_timeout__", sc.timeout.to_string()),
            ];
            for (k, v) in defaults {
                d.entry(k.to_string()).or_insert(v);
            }
            for (k, v) in &c.params {
                if let Some(first) = v.first() {
                    d.entry(format!("__param_{k}"))
                        .or_insert_with(|| first.clone());
                }
            }
            d.retain(|_, v| !v.is_empty());
            let addr = d.get("__address__").cloned().unwrap_or_default();
            match populate(sc, d) {
                Ok(Some(t)) => out.push(t),
                Ok(None) => {
                    tracing::debug!(job = %c.job_name, %addr, "target dropped by relabeling")
                }
                Err(e) => tracing::warn!(job = %c.job_name, %addr, "skipping target: {e}"),
            }
        }
    }
    out
}

/// The groups of a config's `static_configs`.
pub(crate) fn static_groups(c: &crate::config::ScrapeConfig) -> Vec<TargetGroup> {
    c.static_configs
        .iter()
        .enumerate()
        .map(|(i, sc)| TargetGroup::from_static(format!("static/{i}"), sc))
        .collect()
}

/// Relabels one target and derives its URL, interval and timeout.
fn populate(
    sc: &ResolvedScrapeConfig,
    discovered: BTreeMap<String, String>,
) -> Result<Option<Target>, String> {
    let c = &sc.config;
    let lset = Labels::new(
        discovered
            .iter()
            .map(|(k, v)| Label {
                name: k.clone(),
                value: v.clone(),
            })
            .collect(),
    );
    let Some(lset) = relabel::process(&lset, &c.relabel_configs) else {
        return Ok(None);
    };
    let addr = lset
        .get("__address__")
        .ok_or("no address left after relabeling")?
        .to_string();
    if addr.contains('/') {
        return Err(format!("{addr:?} is not a valid hostname"));
    }
    let scheme = lset.get("__scheme__").unwrap_or("http");
    let path = lset.get("__metrics_path__").unwrap_or("/metrics");
    let interval = match lset.get("__scrape_interval__") {
        Some(s) => Duration::parse(s).map_err(|e| e.to_string())?,
        None => sc.interval,
    };
    let timeout = match lset.get("__scrape_timeout__") {
        Some(s) => Duration::parse(s).map_err(|e| e.to_string())?,
        None => sc.timeout,
    };
    if interval.0.is_zero() || timeout.0.is_zero() || timeout > interval {
        return Err(format!(
            "scrape interval {interval} and timeout {timeout} are not usable"
        ));
    }
    let mut url = reqwest::Url::parse(&format!("{scheme}://{addr}{path}"))
        .map_err(|e| format!("invalid URL {scheme}://{addr}{path}: {e}"))?;
    let mut params: Vec<(String, String)> = Vec::new();
    for (k, vals) in &c.params {
        match lset.get(&format!("__param_{k}")) {
            Some(v) => params.push((k.clone(), v.to_string())),
            None => params.extend(vals.iter().map(|v| (k.clone(), v.clone()))),
        }
        // Extra values of a multi-valued parameter are kept after the (possibly relabelled) first.
        if lset.get(&format!("__param_{k}")).is_some() {
            params.extend(vals.iter().skip(1).map(|v| (k.clone(), v.clone())));
        }
    }
    for l in lset.iter() {
        if let Some(k) = l.name.strip_prefix("__param_")
            && !c.params.contains_key(k)
        {
            params.push((k.to_string(), l.value.clone()));
        }
    }
    if !params.is_empty() {
        url.query_pairs_mut().extend_pairs(params);
    }
    let mut b = lset.builder();
    if lset.get("instance").is_none() {
        b.set("instance", addr.clone());
    }
    let full = b.build();
    let labels = Labels::new(
        full.iter()
            .filter(|l| !l.name.starts_with("__"))
            .cloned()
            .collect(),
    );
    let parsed_url = url;
    let url = parsed_url.to_string();
    let key = format!(
        "{}\u{0}{url}\u{0}{labels}\u{0}{interval}\u{0}{timeout}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{:?}\u{0}{}/{}/{}\u{0}{:?}",
        c.job_name,
        c.honor_labels,
        c.honor_timestamps,
        c.sample_limit,
        c.body_size_limit.0,
        c.metric_relabel_configs,
        c.label_limit,
        c.label_name_length_limit,
        c.label_value_length_limit,
        c.http(),
    );
    Ok(Some(Target {
        pool: c.job_name.clone(),
        discovered,
        labels,
        url,
        parsed_url,
        interval,
        timeout,
        key,
        health: Mutex::new(Health {
            health: TargetHealth::Unknown,
            last_error: String::new(),
            last_scrape: None,
            last_duration: 0.0,
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, GlobalConfig};

    fn targets(yaml: &str) -> Vec<Target> {
        let cfg = Config::from_yaml(yaml).unwrap();
        let sc = &cfg.scrape_configs[0];
        build_targets(
            &sc.resolve(&GlobalConfig::default()).unwrap(),
            &static_groups(sc),
        )
    }

    #[test]
    fn labels_and_urls() {
        let t = targets(
            "scrape_configs:\n- job_name: node\n  params: {module: [a, b]}\n  static_configs:\n  - targets: ['h1:9100']\n    labels: {env: prod}\n",
        );
        assert_eq!(t.len(), 1);
        assert_eq!(
            t[0].labels.to_string(),
            r#"{env="prod", instance="h1:9100", job="node"}"#
        );
        assert_eq!(t[0].url, "http://h1:9100/metrics?module=a&module=b");
        assert_eq!(t[0].discovered["__address__"], "h1:9100");
        assert_eq!(t[0].discovered["__scrape_interval__"], "1m");
        let api = t[0].to_api();
        assert_eq!(api.last_scrape, "0001-01-01T00:00:00Z");
        assert_eq!(api.health, TargetHealth::Unknown);
        assert_eq!(api.scrape_timeout, "10s");
    }

    #[test]
    fn relabeling_targets() {
        let t = targets(
            "scrape_configs:\n- job_name: j\n  static_configs:\n  - targets: ['a:1', 'b:2']\n  relabel_configs:\n  - {source_labels: [__address__], regex: 'b:.*', action: drop}\n  - {source_labels: [__address__], regex: '(.*):.*', target_label: instance}\n  - {target_label: __metrics_path__, replacement: /probe}\n  - {target_label: __param_target, replacement: x}\n",
        );
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].labels.to_string(), r#"{instance="a", job="j"}"#);
        assert_eq!(t[0].url, "http://a:1/probe?target=x");
    }
}
