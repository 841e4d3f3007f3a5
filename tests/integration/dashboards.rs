//! Dashboards from files: the `dashboards:` section of the config (and its reload) and the
//! `--dashboards.dir` flag, against the real binary.

use std::io::{Read, Write};
use std::time::Duration;

use crate::harness::{Pharos, free_port, get};

/// A dashboard with a variable and one time-series panel over Pharos' own `up`.
fn board(title: &str) -> String {
    format!(
        "title: {title}\n\
         variables:\n  - name: job\n    query: label_values(up, job)\n\
         rows:\n  - title: Health\n    panels:\n      - title: Up by job\n        type: timeseries\n\
         \x20       queries:\n          - expr: up{{job=~\"$job\"}}\n            legend: \"{{{{job}}}}\"\n"
    )
}

fn write_config(dir: &std::path::Path, web: u16, boards: &str) -> std::path::PathBuf {
    let path = dir.join("pharos.yml");
    std::fs::write(
        &path,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: pharos\n    static_configs:\n      - targets: ['127.0.0.1:{web}']\n\
             dashboards:\n  dir: {boards}\n"
        ),
    )
    .unwrap();
    path
}

fn post(addr: &str, path: &str) -> u16 {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn dashboards_folder_from_config_renders_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    for (sub, file, title) in [
        ("boards", "mine.yaml", "Mine"),
        ("other", "theirs.yml", "Theirs"),
    ] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        std::fs::write(dir.path().join(sub).join(file), board(title)).unwrap();
    }
    let web = free_port();
    // Relative to the config file's folder, not the working directory.
    let cfg = write_config(dir.path(), web, "boards");
    let p = Pharos::start(
        web,
        &[
            &format!("--config.file={}", cfg.display()),
            &format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            "--exporter.listen-address=off",
        ],
        &dir.path().join("pharos.log"),
    );
    // Listed in the navigation and on /dashboards.
    let (status, list) = get(&p.web, "/dashboards").unwrap();
    assert_eq!(status, 200);
    assert!(list.contains("href=\"/d/mine\""), "{list}");
    assert!(list.contains("href=\"/d/nodes\""), "{list}");
    // Renders with data once the first scrape landed: the variable is filled and the chart plots.
    p.wait_until(Duration::from_secs(30), "a plotted chart on /d/mine", |p| {
        let (s, page) = get(&p.web, "/d/mine?range=5m").unwrap();
        // Axes are 1px polylines; plotted series are 2px wide.
        s == 200
            && page.contains("<h1>Mine</h1>")
            && page.contains("stroke-width=\"2\"")
            && page.contains("selected>pharos</option>")
    });
    let (_, page) = get(&p.web, "/d/mine?range=5m").unwrap();
    assert!(page.contains("Up by job"), "{page}");
    assert!(!page.contains("Query failed"), "{page}");

    // Reload with another folder: the old dashboard goes, the new one comes.
    write_config(
        dir.path(),
        web,
        &dir.path().join("other").display().to_string(),
    );
    assert_eq!(post(&p.web, "/-/reload"), 200);
    assert_eq!(get(&p.web, "/d/mine").unwrap().0, 404);
    let (s, page) = get(&p.web, "/d/theirs").unwrap();
    assert_eq!(s, 200);
    assert!(page.contains("<h1>Theirs</h1>"), "{page}");
}

#[test]
fn dashboards_dir_flag_wins_over_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("flagged")).unwrap();
    std::fs::write(dir.path().join("flagged/flag.yaml"), board("By flag")).unwrap();
    let web = free_port();
    let cfg = write_config(dir.path(), web, "nowhere");
    let p = Pharos::start(
        web,
        &[
            &format!("--config.file={}", cfg.display()),
            &format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            &format!("--dashboards.dir={}", dir.path().join("flagged").display()),
            "--exporter.listen-address=off",
        ],
        &dir.path().join("pharos.log"),
    );
    let (s, page) = get(&p.web, "/d/flag").unwrap();
    assert_eq!(s, 200);
    assert!(page.contains("<h1>By flag</h1>"), "{page}");
}
