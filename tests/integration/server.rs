//! End to end: exporter → scrape → storage → PromQL → HTTP API and dashboard, shutdown and restart.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::harness::{Pharos, enc, free_port, get};

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A config scraping Pharos itself and its embedded exporter every second.
fn write_config(dir: &std::path::Path, web: u16, exporter: u16) -> std::path::PathBuf {
    let path = dir.join("pharos.yml");
    std::fs::write(
        &path,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n\
             \x20 - job_name: pharos\n    static_configs:\n      - targets: ['127.0.0.1:{web}']\n\
             \x20 - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{exporter}']\n"
        ),
    )
    .unwrap();
    path
}

/// The value of `expr` at time `t` for the series with `job`, from /api/v1/query.
fn value_at(p: &Pharos, expr: &str, t: f64, job: &str) -> Option<f64> {
    let v = p.api(&format!("/api/v1/query?query={}&time={t}", enc(expr)));
    assert_eq!(v["status"], "success", "{v}");
    v["data"]["result"]
        .as_array()?
        .iter()
        .find(|s| s["metric"]["job"] == job)
        .and_then(|s| s["value"][1].as_str()?.parse().ok())
}

fn start(dir: &std::path::Path, cfg: &std::path::Path, web: u16, exporter: &str) -> Pharos {
    Pharos::start(
        web,
        &[
            &format!("--config.file={}", cfg.display()),
            &format!("--storage.tsdb.path={}", dir.join("data").display()),
            &format!("--exporter.listen-address={exporter}"),
            "--log.level=debug",
        ],
        &dir.join("pharos.log"),
    )
}

#[test]
fn scrape_query_dashboard_shutdown_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (web, exporter) = (free_port(), free_port());
    let cfg = write_config(dir.path(), web, exporter);
    let p = start(dir.path(), &cfg, web, &format!("127.0.0.1:{exporter}"));

    // Two scrape rounds of both targets.
    p.wait_until(Duration::from_secs(30), "two scrapes of each target", |p| {
        ["pharos", "node"].iter().all(|job| {
            value_at(p, "count_over_time(up[1m])", now_s(), job).is_some_and(|n| n >= 2.0)
        })
    });

    // `up` has both targets with value 1, in Prometheus' JSON shape.
    let v = p.api("/api/v1/query?query=up");
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"]["resultType"], "vector");
    let result = v["data"]["result"].as_array().unwrap();
    let mut jobs: Vec<&str> = result
        .iter()
        .map(|s| s["metric"]["job"].as_str().unwrap())
        .collect();
    jobs.sort();
    assert_eq!(jobs, ["node", "pharos"], "{v}");
    for s in result {
        assert_eq!(s["metric"]["__name__"], "up");
        assert!(
            s["metric"]["instance"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:")
        );
        assert!(s["value"][0].is_number(), "{s}");
        assert_eq!(s["value"][1], "1", "{s}");
    }

    // Real node data flowed through: the exporter's CPU counters are queryable with rate().
    let cpu = p.api(&format!(
        "/api/v1/query?query={}",
        enc("sum by (mode) (rate(node_cpu_seconds_total[1m]))")
    ));
    let modes = cpu["data"]["result"].as_array().unwrap();
    assert!(modes.iter().any(|s| s["metric"]["mode"] == "idle"), "{cpu}");

    // A range query returns a matrix with points at every step.
    let end = now_s();
    let r = p.api(&format!(
        "/api/v1/query_range?query=up&start={}&end={end}&step=1",
        end - 10.0
    ));
    assert_eq!(r["data"]["resultType"], "matrix", "{r}");
    let series = r["data"]["result"].as_array().unwrap();
    assert_eq!(series.len(), 2, "{r}");
    assert!(
        series
            .iter()
            .all(|s| s["values"].as_array().unwrap().len() >= 2),
        "{r}"
    );

    // Bad queries are 400 bad_data, like Prometheus.
    let (status, body) = get(&p.web, "/api/v1/query?query=sum(").unwrap();
    assert_eq!(status, 400, "{body}");
    let e: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["status"], "error");
    assert_eq!(e["errorType"], "bad_data");

    // The targets API lists both as up.
    let t = p.api("/api/v1/targets");
    let active = t["data"]["activeTargets"].as_array().unwrap();
    assert_eq!(active.len(), 2, "{t}");
    assert!(active.iter().all(|a| a["health"] == "up"), "{t}");

    // The dashboard shows the targets and a chart of real data.
    let (status, html) = get(&p.web, "/").unwrap();
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!("127.0.0.1:{exporter}")),
        "exporter target missing"
    );
    assert!(
        html.contains(&format!("127.0.0.1:{web}")),
        "self target missing"
    );
    assert!(html.contains("<svg"), "no chart on the home page");
    assert!(
        html.contains("<path") || html.contains("<polyline"),
        "chart has no line"
    );

    // Health, readiness and Pharos' own metrics.
    assert_eq!(get(&p.web, "/-/healthy").unwrap().0, 200);
    let (status, metrics) = get(&p.web, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("pharos_tsdb_head_series "), "{metrics}");
    for name in [
        "pharos_tsdb_blocks_loaded ",
        "pharos_tsdb_block_bytes ",
        "pharos_tsdb_compactions_total ",
    ] {
        assert!(metrics.contains(name), "{name}: {metrics}");
    }
    assert!(
        metrics.contains("process_resident_memory_bytes "),
        "{metrics}"
    );
    let (status, node) = get(&format!("127.0.0.1:{exporter}"), "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(
        node.contains("node_cpu_seconds_total{"),
        "exporter output lacks CPU"
    );

    // Remember what was stored, then stop gracefully.
    let t0 = now_s();
    let before = value_at(&p, "count_over_time(up[10m])", t0, "node").unwrap();
    assert!(before >= 2.0);
    let st = p.signal_and_wait("TERM");
    assert!(st.success(), "exit status after SIGTERM: {st:?}");

    // Restart on the same data dir with nothing to scrape: the earlier samples are served.
    let empty = dir.path().join("empty.yml");
    std::fs::write(&empty, "scrape_configs: []\n").unwrap();
    let web2 = free_port();
    let p2 = start(dir.path(), &empty, web2, "off");
    let after = value_at(&p2, "count_over_time(up[10m])", t0, "node");
    assert_eq!(after, Some(before), "samples lost across a restart");
    let st = p2.signal_and_wait("INT");
    assert!(st.success(), "exit status after SIGINT: {st:?}");
}

#[test]
fn committed_samples_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (web, exporter) = (free_port(), free_port());
    let cfg = write_config(dir.path(), web, exporter);
    let p = start(dir.path(), &cfg, web, &format!("127.0.0.1:{exporter}"));
    p.wait_until(Duration::from_secs(30), "three scrapes", |p| {
        value_at(p, "count_over_time(up[1m])", now_s(), "pharos").is_some_and(|n| n >= 3.0)
    });
    let t0 = now_s();
    let before = value_at(&p, "count_over_time(up[10m])", t0, "pharos").unwrap();
    let st = p.signal_and_wait("KILL");
    assert!(!st.success());

    let empty = dir.path().join("empty.yml");
    std::fs::write(&empty, "scrape_configs: []\n").unwrap();
    let p2 = start(dir.path(), &empty, free_port(), "off");
    let after = value_at(&p2, "count_over_time(up[10m])", t0, "pharos");
    assert_eq!(
        after,
        Some(before),
        "acknowledged samples lost after kill -9"
    );
}

#[test]
fn bad_config_file_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.yml");
    std::fs::write(&cfg, "global:\n  scrape_interval: 15s\nscrape_confgs: []\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pharos"))
        .args([
            &format!("--config.file={}", cfg.display()),
            &format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            &format!("--web.listen-address=127.0.0.1:{}", free_port()),
            "--exporter.listen-address=off",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yml"), "{err}");
    assert!(err.contains("scrape_confgs"), "{err}");
    assert!(err.contains("line 3"), "{err}");
}

#[test]
fn help_on_every_command() {
    for args in [
        &["--help"][..],
        &["server", "--help"],
        &["exporter", "--help"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pharos"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage: pharos"), "{args:?}: {text}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pharos"))
        .args(["exporter", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--no-collector.cpu"), "{text}");
    assert!(text.contains("--path.procfs"), "{text}");
}

#[test]
fn embedded_default_scrapes_both_targets_and_loads_the_default_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (web, exporter) = (free_port(), free_port());
    let p = Pharos::start(
        web,
        &[
            &format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            &format!("--exporter.listen-address=127.0.0.1:{exporter}"),
        ],
        &dir.path().join("pharos.log"),
    );
    let rules = p.api("/api/v1/rules");
    let names: Vec<&str> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .filter_map(|r| r["name"].as_str())
        .collect();
    for want in [
        "TargetDown",
        "NodeFilesystemFillingUp",
        "ContainerOOMKilled",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let cfg = p.api("/api/v1/status/config");
    let yaml = cfg["data"]["yaml"].as_str().unwrap();
    assert!(yaml.contains("pharos.rules.yml"), "{yaml}");
    assert!(yaml.contains(&format!("127.0.0.1:{exporter}")), "{yaml}");
    // The first scrapes of the embedded jobs happen within the 15 s interval.
    p.wait_until(Duration::from_secs(40), "both embedded targets up", |p| {
        ["pharos", "node"]
            .iter()
            .all(|job| value_at(p, "up", now_s(), job) == Some(1.0))
    });
    let st = p.signal_and_wait("TERM");
    assert!(st.success(), "{st:?}");
}
