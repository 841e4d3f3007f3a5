//! remote_write through the `pharos` binary, both ways, with the real Prometheus 2.42: Prometheus
//! remote-writes its own `up` into Pharos (`--web.enable-remote-write-receiver`), and Pharos
//! remote-writes its own `up` into Prometheus (`--web.enable-remote-write-receiver`). Pharos'
//! sender reads its WAL: samples written while the receiver is down, or not yet sent when Pharos
//! is killed with SIGKILL, arrive exactly once after the restart.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pharos_collector::remote::proto;

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
        jobs(&prom_addr, r#"up{from="pharos"}"#).contains(&"pharos".to_string())
    });
    let (status, metrics) = get(&pharos.web, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("prometheus_remote_storage_samples_total{remote_name="),
        "{metrics}"
    );
    assert!(metrics.contains("pharos_remote_write_samples_total"));
}

fn start_prometheus(dir: &Path, addr: &str) -> Prom {
    let cfg = dir.join("prometheus.yml");
    std::fs::write(&cfg, "global:\n  scrape_interval: 1m\n").unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    Prom(
        Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prom").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the `prometheus` binary (Debian package prometheus) must be installed"),
    )
}

/// Remote-writes samples `from..to` (1 s apart after `base`, value = index) of `series` series
/// named `rw_restart{s="<i>"}` to the receiver at `addr`, 50 samples per series per request.
fn push(addr: &str, base: i64, series: usize, from: i64, to: i64) {
    let mut k = from;
    while k < to {
        let end = (k + 50).min(to);
        let req = proto::WriteRequest {
            timeseries: (0..series)
                .map(|i| proto::TimeSeries {
                    labels: vec![
                        proto::Label {
                            name: "__name__".into(),
                            value: "rw_restart".into(),
                        },
                        proto::Label {
                            name: "s".into(),
                            value: i.to_string(),
                        },
                    ],
                    samples: (k..end)
                        .map(|j| proto::Sample {
                            value: j as f64,
                            timestamp: base + j * 1000,
                        })
                        .collect(),
                })
                .collect(),
        };
        let body = proto::encode(&req, &mut Vec::new()).unwrap();
        let mut s = TcpStream::connect(addr).expect("connect");
        write!(
            s,
            "POST /api/v1/write HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\n\
             X-Prometheus-Remote-Write-Version: 0.1.0\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(&body).unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        assert!(resp.starts_with("HTTP/1.1 204"), "{resp}");
        k = end;
    }
}

/// `(count, sum)` of the `rw_restart` samples in Prometheus, from `query` at `t` (ms).
fn stored(addr: &str, t: i64) -> (u64, f64) {
    let one = |q: &str| -> f64 {
        let path = format!(
            "/api/v1/query?query={}&time={}",
            crate::harness::enc(q),
            t as f64 / 1000.0
        );
        let Ok((200, body)) = get(addr, &path) else {
            return -1.0;
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0)
    };
    (
        one("sum(count_over_time(rw_restart[3h]))") as u64,
        one("sum(sum_over_time(rw_restart[3h]))"),
    )
}

#[test]
fn nothing_lost_or_repeated_across_outage_and_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (web, prom_port) = (free_port(), free_port());
    let prom_addr = format!("127.0.0.1:{prom_port}");
    let cfg = dir.path().join("pharos.yml");
    std::fs::write(
        &cfg,
        format!(
            "remote_write:\n  - url: http://{prom_addr}/api/v1/write\n    \
             queue_config: {{batch_send_deadline: 200ms, max_samples_per_send: 100, min_shards: 2, max_backoff: 200ms}}\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let args_owned = [
        format!("--config.file={}", cfg.display()),
        format!("--storage.tsdb.path={}", data.display()),
        "--exporter.listen-address=off".to_string(),
        "--web.enable-remote-write-receiver".to_string(),
    ];
    let args: Vec<&str> = args_owned.iter().map(String::as_str).collect();
    let log = dir.path().join("pharos.log");
    let series = 10usize;
    let base = pharos_model::now_ms() / 1000 * 1000 - 30 * 60_000;
    // Expected (count, sum) after pushing samples 0..n of every series.
    let want = |n: i64| {
        (
            series as u64 * n as u64,
            series as f64 * (n * (n - 1) / 2) as f64,
        )
    };

    // 1. The receiver is down: Pharos retries, then is killed.
    let pharos = Pharos::start(web, &args, &log);
    push(&pharos.web, base, series, 0, 300);
    pharos.wait_until(Duration::from_secs(30), "failed send attempts", |p| {
        get(&p.web, "/metrics").is_ok_and(|(_, m)| {
            m.lines().any(|l| {
                l.starts_with("prometheus_remote_storage_samples_retried_total{")
                    && !l.ends_with(" 0")
            })
        })
    });
    pharos.signal_and_wait("KILL");

    // 2. Restarted with the receiver up: the samples of before arrive, then new ones.
    let _prom = start_prometheus(dir.path(), &prom_addr);
    let pharos = Pharos::start(web, &args, &log);
    push(&pharos.web, base, series, 300, 600);
    let at = base + 1000 * 1000;
    pharos.wait_until(
        Duration::from_secs(60),
        "600 samples per series in Prometheus",
        |_| stored(&prom_addr, at) == want(600),
    );

    // 3. Killed while sending: what was not acknowledged is sent after the restart.
    push(&pharos.web, base, series, 600, 900);
    pharos.signal_and_wait("KILL");
    let pharos = Pharos::start(web, &args, &log);
    pharos.wait_until(
        Duration::from_secs(60),
        "900 samples per series in Prometheus",
        |_| stored(&prom_addr, at) == want(900),
    );
    // Nothing more arrives later (no sample twice with another value, none beyond).
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(stored(&prom_addr, at), want(900));
    // A clean stop then start sends nothing again.
    assert!(pharos.signal_and_wait("TERM").success());
    let pharos = Pharos::start(web, &args, &log);
    let (_, m) = get(&pharos.web, "/metrics").unwrap();
    let sent: f64 = m
        .lines()
        .find(|l| l.starts_with("prometheus_remote_storage_samples_total{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0);
    assert_eq!(sent, 0.0, "{m}");
}

/// A remote-write receiver that counts how often each `(s label, timestamp)` arrives, answers
/// 503 while `down`, and takes 20 ms per request (so a kill lands mid-stream).
struct Counter {
    addr: String,
    seen: Arc<Mutex<HashMap<(String, i64), u32>>>,
    down: Arc<AtomicBool>,
}

impl Counter {
    fn start() -> Counter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let down = Arc::new(AtomicBool::new(true));
        let (seen2, down2) = (seen.clone(), down.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (seen, down) = (seen2.clone(), down2.clone());
                std::thread::spawn(move || serve(conn, &seen, &down));
            }
        });
        Counter { addr, seen, down }
    }

    /// (distinct samples, samples received more than once).
    fn counts(&self) -> (usize, u64) {
        let seen = self.seen.lock().unwrap();
        let dups = seen.values().map(|&n| u64::from(n) - 1).sum();
        (seen.len(), dups)
    }
}

/// Answers the requests of one (keep-alive) connection.
fn serve(conn: TcpStream, seen: &Mutex<HashMap<(String, i64), u32>>, down: &AtomicBool) {
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut w = conn;
    loop {
        let mut len = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        if down.load(Ordering::SeqCst) {
            let _ = w.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
            continue;
        }
        let req = proto::decode(&body).unwrap();
        {
            let mut seen = seen.lock().unwrap();
            for ts in req.timeseries {
                let s = ts
                    .labels
                    .iter()
                    .find(|l| l.name == "s")
                    .map(|l| l.value.clone())
                    .unwrap_or_default();
                for x in ts.samples {
                    *seen.entry((s.clone(), x.timestamp)).or_default() += 1;
                }
            }
        }
        let _ = w.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
    }
}

/// With one shard, a SIGKILL mid-stream resends at most the batch in flight (plus the rest of
/// the WAL record it ends in), and an outage loses nothing.
#[test]
fn sigkill_resends_at_most_the_batch_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let recv = Counter::start();
    let web = free_port();
    let cfg = dir.path().join("pharos.yml");
    std::fs::write(
        &cfg,
        format!(
            "remote_write:\n  - url: http://{}/api/v1/write\n    \
             queue_config: {{batch_send_deadline: 100ms, max_samples_per_send: 100, max_backoff: 100ms}}\n",
            recv.addr
        ),
    )
    .unwrap();
    let args_owned = [
        format!("--config.file={}", cfg.display()),
        format!("--storage.tsdb.path={}", dir.path().join("data").display()),
        "--exporter.listen-address=off".to_string(),
        "--web.enable-remote-write-receiver".to_string(),
    ];
    let args: Vec<&str> = args_owned.iter().map(String::as_str).collect();
    let log = dir.path().join("pharos.log");
    let base = pharos_model::now_ms() / 1000 * 1000 - 30 * 60_000;
    let mut pharos = Pharos::start(web, &args, &log);
    // Refused (503) while down, then killed.
    push(&pharos.web, base, 10, 0, 100);
    std::thread::sleep(Duration::from_millis(500));
    pharos = {
        pharos.signal_and_wait("KILL");
        recv.down.store(false, Ordering::SeqCst);
        Pharos::start(web, &args, &log)
    };
    pharos.wait_until(Duration::from_secs(60), "1000 samples", |_| {
        recv.counts().0 == 1000
    });
    assert_eq!(recv.counts(), (1000, 0));
    let mut allowed = 0;
    for round in 1..4 {
        let from = round * 300 - 200;
        push(&pharos.web, base, 10, from, from + 300);
        // 3000 samples at 100 per 20 ms request: still sending when killed.
        std::thread::sleep(Duration::from_millis(100));
        pharos.signal_and_wait("KILL");
        let (got, _) = recv.counts();
        assert!(
            got < (from as usize + 300) * 10,
            "round {round}: all sent before the kill"
        );
        pharos = Pharos::start(web, &args, &log);
        let want = (from as usize + 300) * 10;
        pharos.wait_until(Duration::from_secs(60), "all samples", |_| {
            recv.counts().0 == want
        });
        // One batch of 100 plus the rest of the 500-sample WAL record it ends in.
        allowed += 600;
        let (_, dups) = recv.counts();
        eprintln!(
            "round {round}: {got} of {want} samples before the kill, {dups} sent twice so far"
        );
        assert!(dups <= allowed, "round {round}: {dups} samples sent twice");
    }
    assert!(pharos.signal_and_wait("TERM").success());
}
