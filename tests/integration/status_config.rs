//! `/api/v1/status/config` against the real Prometheus 2.42: the same input file, both loaded,
//! the YAML each shows (defaults filled in) compared key by key and in order.
//!
//! Known differences, removed from Prometheus' answer before comparing (Pharos has no such
//! settings): `enable_http2` (every HTTP client), `follow_redirects` of Alertmanagers, and YAML
//! quoting (`"y"` vs `y`), which parsing
//! both sides makes irrelevant.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Pharos, free_port, get};

const CONFIG: &str = r#"global:
  scrape_interval: 15s
  external_labels: {dc: eu1}
rule_files: [rules/*.yml]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['127.0.0.1:1']
    - scheme: https
      path_prefix: /am
      authorization: {credentials: s3cret}
      tls_config: {insecure_skip_verify: true, server_name: am.test}
      static_configs:
        - targets: ['127.0.0.1:6']
scrape_configs:
  - job_name: self
    static_configs:
      - targets: ['127.0.0.1:2']
        labels: {team: a}
  - job_name: node
    scrape_interval: 5s
    metrics_path: /m
    honor_labels: true
    sample_limit: 100
    params: {x: [y]}
    basic_auth: {username: u, password: p}
    file_sd_configs:
      - files: [f.json]
    relabel_configs:
      - source_labels: [__address__]
        target_label: instance
        regex: '(.*):.*'
      - action: labeldrop
        regex: tmp
      - action: hashmod
        source_labels: [instance]
        modulus: 4
        target_label: shard
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: go_.*
        action: drop
  - job_name: slow
    scrape_interval: 2m
    scrape_timeout: 30s
    scheme: http
    honor_timestamps: false
    static_configs:
      - targets: ['127.0.0.1:3', '127.0.0.1:4']
remote_write:
  - url: http://127.0.0.1:5/api/v1/write
    write_relabel_configs:
      - action: keep
        source_labels: [__name__]
        regex: up
"#;

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn prometheus_config_yaml(dir: &Path, cfg: &Path) -> String {
    let addr = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let _p = Prometheus(
        Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prom").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus (Debian package `prometheus`)"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok((200, body)) = get(&addr, "/api/v1/status/config") {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            return v["data"]["yaml"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "prometheus did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Removes the keys Pharos does not support, at any depth: `enable_http2`.
fn without_unsupported(v: &mut serde_norway::Value) {
    match v {
        serde_norway::Value::Mapping(m) => {
            m.shift_remove("enable_http2");
            for (_, x) in m.iter_mut() {
                without_unsupported(x);
            }
        }
        serde_norway::Value::Sequence(s) => s.iter_mut().for_each(without_unsupported),
        _ => {}
    }
}

#[test]
fn status_config_matches_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("p.yml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let prom = prometheus_config_yaml(dir.path(), &cfg);

    let web = free_port();
    let p = Pharos::start(
        web,
        &[
            &format!("--config.file={}", cfg.display()),
            &format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            "--exporter.listen-address=off",
        ],
        &dir.path().join("pharos.log"),
    );
    let v = p.api("/api/v1/status/config");
    let ours = v["data"]["yaml"].as_str().unwrap().to_string();

    let mut want: serde_norway::Value = serde_norway::from_str(&prom).unwrap();
    without_unsupported(&mut want);
    let got: serde_norway::Value = serde_norway::from_str(&ours).unwrap();
    // Written out again, so key order counts too.
    let want_text = serde_norway::to_string(&want).unwrap();
    let got_text = serde_norway::to_string(&got).unwrap();
    assert_eq!(
        got_text, want_text,
        "Pharos:\n{ours}\nPrometheus 2.42:\n{prom}"
    );
}
