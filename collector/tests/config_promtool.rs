//! The scrape part of the config checked by Pharos and by `promtool check config` (Prometheus
//! 2.42, Debian package `prometheus`): what Prometheus rejects, Pharos rejects too, with a message
//! that names the problem; what it accepts, Pharos accepts. (Debian's Prometheus is built without
//! kubernetes_sd, so those configs are covered by the collector's own tests.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

use std::process::Command;

use pharos_collector::config::Config;

/// (accepted, output) of `promtool check config` on `yaml`.
fn promtool(dir: &std::path::Path, yaml: &str) -> (bool, String) {
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new("promtool")
        .args(["check", "config", "--syntax-only"])
        .arg(&path)
        .current_dir(dir)
        .output()
        .expect("promtool (Debian package prometheus) must be installed");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn rejects_what_prometheus_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let job = |body: &str| format!("scrape_configs:\n- job_name: a\n{body}");
    // (config, what Pharos' error must contain)
    let table: Vec<(String, &str)> = vec![
        (
            job("  scrape_intervall: 5s\n"),
            "`scrape_intervall`, expected one of",
        ),
        (
            "globall: {}\n".into(),
            "`globall`, expected `global` or `scrape_configs` at line 1",
        ),
        (job("  tls_config: {bogus: 1}\n"), "unknown field `bogus`"),
        (job("  basic_auth: {username: u, bogus: 1}\n"), "bogus"),
        (
            job("  static_configs: [{targets: ['a:1'], lables: {}}]\n"),
            "lables",
        ),
        (
            job("  relabel_configs: [{action: replace, bogus: 1}]\n"),
            "bogus",
        ),
        (job("  honor_labels: maybe\n"), "honor_labels"),
        (job("  sample_limit: -1\n"), "sample_limit"),
        (job("  params: {x: y}\n"), "params"),
        (
            job("  scrape_interval: 5s\n  scrape_timeout: 6s\n"),
            "scrape_timeout 6s greater than scrape_interval 5s",
        ),
        (
            "global: {scrape_interval: 5s, scrape_timeout: 10s}\n".into(),
            "global scrape_timeout 10s greater than scrape_interval 5s",
        ),
        (
            "scrape_configs:\n- job_name: a\n- job_name: a\n".into(),
            "found multiple scrape configs with job name \"a\"",
        ),
        (
            "scrape_configs:\n- job_name: ''\n".into(),
            "job_name is empty",
        ),
        (
            job("  static_configs: [{targets: ['a/b:90']}]\n"),
            "target \"a/b:90\" is not host:port",
        ),
        (
            job("  static_configs: [{targets: ['']}]\n"),
            "target \"\" is not host:port",
        ),
        (
            job("  static_configs: [{targets: ['a:9'], labels: {'1x': y}}]\n"),
            "invalid label name \"1x\"",
        ),
        (
            "global: {external_labels: {'a-b': x}}\n".into(),
            "invalid label name \"a-b\"",
        ),
        (job("  body_size_limit: 10XB\n"), "not a valid size"),
        (
            job("  basic_auth: {username: u, password: p, password_file: f}\n"),
            "password and password_file",
        ),
        (
            job("  bearer_token: x\n  basic_auth: {username: u}\n"),
            "at most one of basic_auth",
        ),
        (
            job("  authorization: {type: Basic, credentials: x}\n"),
            "use \"basic_auth\"",
        ),
        (
            job("  tls_config: {min_version: TLS14}\n"),
            "unknown TLS version: TLS14",
        ),
        (
            job("  file_sd_configs: [{files: ['x/*.txt']}]\n"),
            "x/*.txt",
        ),
        (job("  relabel_configs: [{regex: '('}]\n"), "invalid regex"),
        (
            job("  relabel_configs: [{action: explode}]\n"),
            "unknown relabel action \"explode\"",
        ),
        (
            job("  relabel_configs: [{source_labels: [a], target_label: '1x'}]\n"),
            "\"1x\" is invalid 'target_label' for replace action",
        ),
        (
            job(
                "  metric_relabel_configs: [{action: hashmod, source_labels: [a], target_label: x}]\n",
            ),
            "non-zero modulus",
        ),
        (
            job("  relabel_configs: [{action: labeldrop, regex: a, separator: ','}]\n"),
            "only takes a regex",
        ),
        (
            job(
                "  relabel_configs: [{action: keepequal, source_labels: [a], target_label: b, replacement: x}]\n",
            ),
            "'replacement' can not be set for keepequal action",
        ),
        (
            job("  relabel_configs: [{action: labelmap, regex: 'a(.*)', replacement: 'x-$1'}]\n"),
            "invalid 'replacement' for labelmap action",
        ),
        (
            job("  relabel_configs: [{action: drop, source_labels: ['a-b']}]\n"),
            "invalid source label \"a-b\"",
        ),
    ];
    let mut report = String::new();
    for (yaml, want) in &table {
        let (prom_ok, prom_out) = promtool(dir.path(), yaml);
        if prom_ok {
            report.push_str(&format!(
                "promtool accepted (the table is wrong):\n{yaml}{prom_out}\n"
            ));
        }
        match Config::from_yaml(yaml) {
            Ok(_) => report.push_str(&format!("Pharos accepted, promtool: {prom_out}\n{yaml}\n")),
            Err(e) if !e.to_string().contains(want) => report.push_str(&format!(
                "Pharos' error {:?} lacks {want:?}\n{yaml}\n",
                e.to_string()
            )),
            Err(_) => {}
        }
    }
    assert!(report.is_empty(), "{report}");
}

#[test]
fn accepts_what_prometheus_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let table = [
        // Zero durations mean "not set".
        "global: {scrape_interval: 0s, scrape_timeout: 0s, evaluation_interval: 0s}\nscrape_configs:\n- job_name: a\n  scrape_interval: 0s\n  scrape_timeout: 0s\n",
        // Action names in any case; templated target labels.
        "scrape_configs:\n- job_name: a\n  relabel_configs:\n  - {action: Replace, source_labels: [a], target_label: 'l_${1}'}\n  - {action: DROP, source_labels: [a], regex: x}\n  - {action: uppercase, source_labels: [a], target_label: '${1}'}\n",
        "scrape_configs:\n- job_name: a\n  scheme: https\n  honor_labels: true\n  honor_timestamps: false\n  params: {module: [http_2xx]}\n  sample_limit: 10\n  label_limit: 5\n  label_name_length_limit: 10\n  label_value_length_limit: 10\n  target_limit: 3\n  body_size_limit: 10MB\n  follow_redirects: false\n  tls_config: {insecure_skip_verify: true, server_name: x.test, min_version: TLS12}\n  authorization: {type: Token, credentials: abc}\n  static_configs: [{targets: ['a:1', '[::1]:2'], labels: {env: prod}}]\n  file_sd_configs: [{files: ['sd/*.yml', 'sd/*.json'], refresh_interval: 1m}]\n  metric_relabel_configs:\n  - {action: keepequal, source_labels: [a], target_label: b}\n  - {action: labelmap, regex: 'x_(.*)', replacement: 'y_$1'}\n",
    ];
    for yaml in table {
        let (prom_ok, prom_out) = promtool(dir.path(), yaml);
        assert!(
            prom_ok,
            "promtool rejected (the table is wrong): {prom_out}\n{yaml}"
        );
        if let Err(e) = Config::from_yaml(yaml) {
            panic!("Pharos rejected what promtool accepts: {e}\n{yaml}");
        }
    }
}
