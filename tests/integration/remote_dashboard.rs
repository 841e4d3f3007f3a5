//! `--dashboard.datasource.url`: the dashboard in front of another Prometheus-compatible API
//! (another Pharos, and the real Prometheus 2.42).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Pharos, enc, free_port, get};

/// Starts `pharos` with an empty scrape config whose dashboard reads from `url`.
fn front(dir: &std::path::Path, url: &str) -> Pharos {
    let cfg = dir.join("front.yml");
    std::fs::write(&cfg, "scrape_configs: []\n").unwrap();
    Pharos::start(
        free_port(),
        &[
            &format!("--config.file={}", cfg.display()),
            &format!("--storage.tsdb.path={}", dir.join("front").display()),
            "--exporter.listen-address=off",
            &format!("--dashboard.datasource.url={url}"),
        ],
        &dir.join("front.log"),
    )
}

fn page(p: &Pharos, path: &str) -> String {
    let (status, html) = get(&p.web, path).unwrap();
    assert_eq!(status, 200, "{path}: {html}");
    html
}

#[test]
fn dashboard_reads_from_another_pharos() {
    let dir = tempfile::tempdir().unwrap();
    let web = free_port();
    let cfg = dir.path().join("back.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: backend\n    static_configs:\n      - targets: ['127.0.0.1:{web}']\n"
        ),
    )
    .unwrap();
    let back = Pharos::start(
        web,
        &[
            &format!("--config.file={}", cfg.display()),
            &format!("--storage.tsdb.path={}", dir.path().join("back").display()),
            "--exporter.listen-address=off",
        ],
        &dir.path().join("back.log"),
    );
    back.wait_until(Duration::from_secs(30), "two scrapes", |p| {
        p.api("/api/v1/query?query=count_over_time(up[1m])")["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|n| n >= 2.0)
    });
    let f = front(dir.path(), &format!("http://{}", back.web));

    // The front has no targets of its own: everything shown comes from the backend.
    let html = page(&f, "/targets");
    assert!(html.contains(&format!("127.0.0.1:{web}")), "{html}");
    assert!(html.contains("backend"), "{html}");
    let html = page(&f, &format!("/graph?range=5m&expr={}", enc("up")));
    assert!(
        html.contains("<path") || html.contains("<polyline"),
        "no chart line"
    );
    assert!(html.contains("job=\"backend\""), "{html}");
    // The backend's error message reaches the page.
    let html = page(&f, &format!("/graph?expr={}", enc("sum(")));
    assert!(html.contains("parse error"), "{html}");
    let html = page(&f, "/status");
    assert!(html.contains(&back.web), "status names the data source");
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn dashboard_reads_from_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: prom\n    static_configs:\n      - targets: ['{addr}']\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prom = Prometheus(
        Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("prom").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus (Debian package `prometheus`)"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = get(&addr, "/api/v1/query?query=count_over_time(up[1m])")
            .ok()
            .filter(|(s, _)| *s == 200)
            .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok())
            .and_then(|v| {
                v["data"]["result"][0]["value"][1]
                    .as_str()?
                    .parse::<f64>()
                    .ok()
            });
        if up.is_some_and(|n| n >= 2.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not scrape itself"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let f = front(dir.path(), &format!("http://{addr}"));
    let html = page(&f, "/targets");
    assert!(html.contains(&addr) && html.contains("prom"), "{html}");
    let html = page(
        &f,
        &format!(
            "/graph?range=5m&expr={}",
            enc("rate(prometheus_http_requests_total[1m])")
        ),
    );
    assert!(
        html.contains("<path") || html.contains("<polyline"),
        "no chart line"
    );
    let html = page(&f, "/rules");
    assert!(
        !html.contains("serves no rules"),
        "Prometheus' empty rules answer is read"
    );
}
