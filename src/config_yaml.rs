//! The loaded configuration written back as YAML with every default filled in, as Prometheus
//! shows it at `/api/v1/status/config` and on its Status page.
//!
//! Like Prometheus 2.42: sections in its order (`global`, `alerting`, `rule_files`,
//! `scrape_configs`, `remote_write`), keys of each section in its order, every job's
//! `scrape_interval` and `scrape_timeout` resolved from `global`, zero values (`false`, `0`, empty
//! strings, lists and maps) left out, and secrets shown as `<secret>`. Pharos' own `dashboards`
//! section comes last. Keys Pharos does not support (e.g. `enable_http2`, `oauth2`) are absent;
//! `tests/integration/status_config.rs` compares the result with the real Prometheus.

use std::path::Path;

use serde_norway::{Mapping, Value};

use crate::config::Config;

/// Key order of Prometheus' structs, by the key that names the section; keys not listed keep
/// their order after the listed ones.
const ORDER: &[&[&str]] = &[
    &[
        "global",
        "alerting",
        "rule_files",
        "scrape_configs",
        "remote_write",
        "dashboards",
    ],
    &[
        "scrape_interval",
        "scrape_timeout",
        "evaluation_interval",
        "external_labels",
    ],
    // A scrape config.
    &[
        "job_name",
        "honor_labels",
        "honor_timestamps",
        "params",
        "scrape_interval",
        "scrape_timeout",
        "metrics_path",
        "scheme",
        "body_size_limit",
        "sample_limit",
        "target_limit",
        "label_limit",
        "label_name_length_limit",
        "label_value_length_limit",
        "basic_auth",
        "authorization",
        "bearer_token",
        "bearer_token_file",
        "tls_config",
        "follow_redirects",
        "relabel_configs",
        "metric_relabel_configs",
        "file_sd_configs",
        "kubernetes_sd_configs",
        "static_configs",
    ],
    // An Alertmanager.
    &[
        "basic_auth",
        "authorization",
        "bearer_token",
        "bearer_token_file",
        "tls_config",
        "follow_redirects",
        "scheme",
        "path_prefix",
        "timeout",
        "api_version",
        "static_configs",
    ],
    // A relabel step.
    &[
        "source_labels",
        "separator",
        "regex",
        "modulus",
        "target_label",
        "replacement",
        "action",
    ],
    // A remote_write entry.
    &[
        "url",
        "remote_timeout",
        "headers",
        "write_relabel_configs",
        "name",
        "send_exemplars",
        "send_native_histograms",
        "basic_auth",
        "authorization",
        "bearer_token",
        "bearer_token_file",
        "tls_config",
        "follow_redirects",
        "queue_config",
        "metadata_config",
    ],
    &[
        "capacity",
        "max_shards",
        "min_shards",
        "max_samples_per_send",
        "batch_send_deadline",
        "min_backoff",
        "max_backoff",
        "retry_on_http_429",
    ],
    &["send", "send_interval", "max_samples_per_send"],
    &["targets", "labels"],
    &["files", "refresh_interval"],
    &["username", "password", "password_file"],
];

/// Keys whose value is never shown.
const SECRETS: &[&str] = &["password", "credentials", "bearer_token"];

/// Keys printed even when false or zero (Prometheus' fields without `omitempty`).
const ALWAYS: &[&str] = &["send", "honor_timestamps"];

/// `cfg` as YAML with defaults filled in, in Prometheus' layout; relative `rule_files` and
/// `file_sd_configs` files are shown joined to `base` (the configuration file's folder), as
/// Prometheus resolves them.
pub fn render(cfg: &Config, base: Option<&Path>) -> String {
    let resolve = |f: &String| match base {
        Some(b) if !Path::new(f).is_absolute() => b.join(f).display().to_string(),
        _ => f.clone(),
    };
    let mut root = Mapping::new();
    let mut put = |k: &str, v: Value| {
        root.insert(Value::String(k.to_string()), v);
    };
    put("global", value(&cfg.global));
    put("alerting", value(&cfg.alerting));
    put(
        "rule_files",
        value(&cfg.rule_files.iter().map(resolve).collect::<Vec<_>>()),
    );
    let jobs = cfg
        .scrape_configs
        .iter()
        .map(|job| {
            let mut job = job.clone();
            for sd in &mut job.file_sd_configs {
                sd.files = sd.files.iter().map(resolve).collect();
            }
            let mut v = value(&job);
            if let (Value::Mapping(m), Ok(r)) = (&mut v, job.resolve(&cfg.global)) {
                m.insert(
                    "scrape_interval".into(),
                    Value::String(r.interval.to_string()),
                );
                m.insert(
                    "scrape_timeout".into(),
                    Value::String(r.timeout.to_string()),
                );
            }
            v
        })
        .collect();
    put("scrape_configs", Value::Sequence(jobs));
    let remotes = cfg
        .remote_write
        .iter()
        .map(|rw| {
            let mut v = value(rw);
            // Prometheus shows the metadata defaults even when the section is absent.
            if let Value::Mapping(m) = &mut v
                && rw.metadata_config.is_none()
            {
                let mut md = Mapping::new();
                md.insert("send".into(), Value::Bool(true));
                md.insert("send_interval".into(), "1m".into());
                md.insert("max_samples_per_send".into(), 500.into());
                m.insert("metadata_config".into(), Value::Mapping(md));
            }
            v
        })
        .collect();
    put("remote_write", Value::Sequence(remotes));
    put("dashboards", value(&cfg.dashboards));
    let root = tidy(Value::Mapping(root), None).unwrap_or(Value::Mapping(Mapping::new()));
    match serde_norway::to_string(&root) {
        Ok(text) => flow_source_labels(&text),
        Err(e) => format!("# cannot render config: {e}\n"),
    }
}

/// The folder relative paths of a configuration are resolved against: the config file's, if it
/// has one.
pub fn base_dir(source: &crate::config::Source) -> Option<std::path::PathBuf> {
    match source {
        crate::config::Source::File(p) => p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(Path::to_path_buf),
        crate::config::Source::Embedded(_) => None,
    }
}

/// Writes `source_labels` lists on one line (`[a, b]`), as Prometheus does; label names need no
/// quoting.
fn flow_source_labels(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        out.push_str(line);
        if line.trim_start().trim_start_matches("- ") == "source_labels:" {
            let indent = line.len() - line.trim_start().len();
            let mut items = Vec::new();
            while let Some(next) = lines.peek() {
                let t = next.trim_start();
                let item_indent = next.len() - t.len();
                match t.strip_prefix("- ") {
                    Some(item) if item_indent >= indent => {
                        items.push(item.to_string());
                        lines.next();
                    }
                    _ => break,
                }
            }
            out.push_str(&format!(" [{}]", items.join(", ")));
        }
        out.push('\n');
    }
    out
}

fn value<T: serde::Serialize>(t: &T) -> Value {
    serde_norway::to_value(t).unwrap_or(Value::Null)
}

/// Drops zero values, hides secrets and orders keys; `None` when the value itself is empty.
fn tidy(v: Value, key: Option<&str>) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Bool(false) if !key.is_some_and(|k| ALWAYS.contains(&k)) => None,
        Value::Number(n)
            if n.as_f64() == Some(0.0) && !key.is_some_and(|k| ALWAYS.contains(&k)) =>
        {
            None
        }
        Value::String(s) if s.is_empty() || (key == Some("body_size_limit") && s == "0B") => None,
        Value::String(_) if key.is_some_and(|k| SECRETS.contains(&k)) => {
            Some(Value::String("<secret>".into()))
        }
        Value::Sequence(items) => {
            let items: Vec<Value> = items.into_iter().filter_map(|i| tidy(i, None)).collect();
            (!items.is_empty()).then_some(Value::Sequence(items))
        }
        Value::Mapping(m) => {
            let mut entries: Vec<(Value, Value)> = m
                .into_iter()
                .filter_map(|(k, v)| {
                    let name = k.as_str().map(str::to_string);
                    tidy(v, name.as_deref()).map(|v| (k, v))
                })
                .collect();
            if entries.is_empty() {
                return None;
            }
            let names: Vec<&str> = entries.iter().filter_map(|(k, _)| k.as_str()).collect();
            // The order whose list knows the most of these keys.
            let order = ORDER
                .iter()
                .max_by_key(|o| names.iter().filter(|n| o.contains(n)).count())
                .copied()
                .unwrap_or(&[]);
            let rank = |k: &Value| {
                k.as_str()
                    .and_then(|k| order.iter().position(|o| *o == k))
                    .unwrap_or(usize::MAX)
            };
            entries.sort_by_key(|(k, _)| rank(k));
            Some(Value::Mapping(entries.into_iter().collect()))
        }
        other => Some(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, want: &str) {
        let cfg = crate::config::parse(input, Path::new("t.yml")).unwrap();
        assert_eq!(render(&cfg, Some(Path::new("/etc/p"))), want);
    }

    #[test]
    fn defaults_order_and_secrets() {
        check(
            "",
            "global:\n  scrape_interval: 1m\n  scrape_timeout: 10s\n  evaluation_interval: 1m\n",
        );
        check(
            "global: {scrape_interval: 5s}\nscrape_configs:\n  - job_name: a\n    basic_auth: {username: u, password: p}\n    static_configs: [{targets: ['h:1']}]\n    relabel_configs: [{action: labeldrop, regex: tmp}]\n",
            "global:\n  scrape_interval: 5s\n  scrape_timeout: 5s\n  evaluation_interval: 1m\n\
             scrape_configs:\n- job_name: a\n  honor_timestamps: true\n  scrape_interval: 5s\n  scrape_timeout: 5s\n  \
             metrics_path: /metrics\n  scheme: http\n  basic_auth:\n    username: u\n    password: <secret>\n  \
             follow_redirects: true\n  relabel_configs:\n  - separator: ;\n    regex: tmp\n    replacement: $1\n    action: labeldrop\n  \
             static_configs:\n  - targets:\n    - h:1\n",
        );
        check(
            "rule_files: [r.yml, /abs/s.yml]\nscrape_configs:\n  - job_name: b\n    honor_timestamps: false\n    file_sd_configs: [{files: [f.json]}]\n    metric_relabel_configs:\n      - source_labels: [a, b]\n        action: drop\n",
            "global:\n  scrape_interval: 1m\n  scrape_timeout: 10s\n  evaluation_interval: 1m\n\
             rule_files:\n- /etc/p/r.yml\n- /abs/s.yml\n\
             scrape_configs:\n- job_name: b\n  honor_timestamps: false\n  scrape_interval: 1m\n  scrape_timeout: 10s\n  \
             metrics_path: /metrics\n  scheme: http\n  follow_redirects: true\n  metric_relabel_configs:\n  \
             - source_labels: [a, b]\n    separator: ;\n    regex: (.*)\n    replacement: $1\n    action: drop\n  \
             file_sd_configs:\n  - files:\n    - /etc/p/f.json\n    refresh_interval: 5m\n",
        );
    }
}
