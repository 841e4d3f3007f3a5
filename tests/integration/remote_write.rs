//! remote_write through the `pharos` binary, both ways, with the real Prometheus 2.42: Prometheus
//! remote-writes its own `up` into Pharos (`--web.enable-remote-write-receiver`), and Pharos
//! remote-writes its own `up` into Prometheus (`--web.enable-remote-write-receiver`).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::{Pharos, enc, free_port, get};

struct Prom(Child);

impl Drop for Prom {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Series (as `job` label values) with a value for `expr` at the API at `addr`.
fn jobs(addr: &str, expr: &str) -> Vec<String> {
    let Ok((200, body)) = get(addr, &format!("/api/v1/query?query={}", enc(expr))) else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["data"]["result"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s["metric"]["job"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn both_directions_with_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let (web, prom_port) = (free_port(), free_port());
    let prom_addr = format!("127.0.0.1:{prom_port}");
    let pharos_cfg = dir.path().join("pharos.yml");
    std::fs::write(
        &pharos_cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  external_labels: {{from: pharos}}\n\
             scrape_configs:\n  - job_name: pharos\n    static_configs:\n      - targets: ['127.0.0.1:{web}']\n\
             remote_write:\n  - url: http://{prom_addr}/api/v1/write\n    queue_config: {{batch_send_deadline: 500ms}}\n"
        ),
    )
    .unwrap();
    let prom_cfg = dir.path().join("prometheus.yml");
    // Prometheus forwards only what it scraped itself (not what Pharos sent it).
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  scrape_interval: 1s\n\
             scrape_configs:\n  - job_name: prom\n    static_configs:\n      - targets: ['{prom_addr}']\n\
             remote_write:\n  - url: http://127.0.0.1:{web}/api/v1/write\n    queue_config: {{batch_send_deadline: 500ms}}\n\
             \x20   write_relabel_configs:\n      - {{action: keep, source_labels: [job], regex: prom}}\n"
        ),
    )
    .unwrap();
    let pharos = Pharos::start(
        web,
        &[
            &format!("--config.file={}", pharos_cfg.display()),
            &format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            "--exporter.listen-address=off",
            "--web.enable-remote-write-receiver",
        ],
        &dir.path().join("pharos.log"),
    );
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prom = Prom(
        Command::new("prometheus")
            .arg(format!("--config.file={}", prom_cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("prom").display()
            ))
            .arg(format!("--web.listen-address={prom_addr}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the `prometheus` binary (Debian package prometheus) must be installed"),
    );
    pharos.wait_until(Duration::from_secs(60), "Prometheus' up in Pharos", |p| {
        jobs(&p.web, "up").contains(&"prom".to_string())
    });
    pharos.wait_until(Duration::from_secs(60), "Pharos' up in Prometheus", |_| {
        jobs(&prom_addr, r#"up{from="pharos"}"#) == ["pharos"]
    });
    let (status, metrics) = get(&pharos.web, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("prometheus_remote_storage_samples_total{remote_name="),
        "{metrics}"
    );
    assert!(metrics.contains("pharos_remote_write_samples_total"));
}
