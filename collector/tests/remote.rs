//! remote_write both ways: against a scripted receiver, and against the real Prometheus 2.42
//! (Debian package `prometheus`, started here on 127.0.0.1 with a temp dir).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pharos_collector::config::GlobalConfig;
use pharos_collector::remote::{Receiver, RemoteWrite, RemoteWriteConfig};
use pharos_model::expfmt::MetricFamily;
use pharos_model::storage::{self, Appendable, Appender};
use pharos_model::{Labels, SeriesRef};

// ---------- an in-memory Appendable that records every committed sample ----------

type Data = BTreeMap<String, Vec<(i64, f64)>>;

#[derive(Default, Clone)]
struct Mem(Arc<Mutex<Data>>);
struct MemApp(Arc<Mutex<Data>>, Vec<(String, i64, f64)>);

static NEXT_REF: AtomicUsize = AtomicUsize::new(1);

impl Appendable for Mem {
    fn appender(&self) -> Box<dyn Appender> {
        Box::new(MemApp(self.0.clone(), Vec::new()))
    }
}

impl Appender for MemApp {
    fn append(
        &mut self,
        r: Option<SeriesRef>,
        l: &Labels,
        t: i64,
        v: f64,
    ) -> storage::Result<SeriesRef> {
        self.1.push((l.to_string(), t, v));
        Ok(r.unwrap_or_else(|| SeriesRef(NEXT_REF.fetch_add(1, Ordering::Relaxed) as u64)))
    }
    fn commit(self: Box<Self>) -> storage::Result<()> {
        let mut d = self.0.lock().unwrap();
        for (k, t, v) in self.1 {
            d.entry(k).or_default().push((t, v));
        }
        Ok(())
    }
    fn rollback(self: Box<Self>) -> storage::Result<()> {
        Ok(())
    }
}

impl Mem {
    fn get(&self, series: &str) -> Vec<(i64, f64)> {
        self.0
            .lock()
            .unwrap()
            .get(series)
            .cloned()
            .unwrap_or_default()
    }
    fn names(&self) -> Vec<String> {
        self.0.lock().unwrap().keys().cloned().collect()
    }
}

/// Waits (up to `secs`) until `cond` holds.
async fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    for _ in 0..secs * 10 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

fn value(fams: &[MetricFamily], name: &str) -> f64 {
    fams.iter()
        .find(|f| f.name == name)
        .and_then(|f| f.samples.first())
        .map(|s| s.value)
        .unwrap_or_else(|| panic!("no {name}"))
}

/// Serves `Receiver::handle` at `/api/v1/write`, after `fail_first` answers with `fail_status`.
async fn serve_receiver(
    mem: Mem,
    fail_first: usize,
    fail_status: u16,
) -> (String, Arc<AtomicUsize>) {
    let receiver = Arc::new(Receiver::new(Arc::new(mem)));
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let app = axum::Router::new().route(
        "/api/v1/write",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (receiver, c) = (receiver.clone(), c.clone());
                async move {
                    assert_eq!(headers["content-encoding"], "snappy");
                    assert_eq!(headers["content-type"], "application/x-protobuf");
                    assert_eq!(headers["x-prometheus-remote-write-version"], "0.1.0");
                    let n = c.fetch_add(1, Ordering::SeqCst);
                    if n < fail_first {
                        return (
                            axum::http::StatusCode::from_u16(fail_status).unwrap(),
                            "scripted failure".to_string(),
                        );
                    }
                    let (status, msg) = tokio::task::spawn_blocking(move || receiver.handle(&body))
                        .await
                        .unwrap();
                    (axum::http::StatusCode::from_u16(status).unwrap(), msg)
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, calls)
}

fn rw_config(yaml: &str) -> Vec<RemoteWriteConfig> {
    serde_norway::from_str(yaml).unwrap()
}

fn external(pairs: &[(&str, &str)]) -> GlobalConfig {
    let mut g = GlobalConfig::default();
    for (k, v) in pairs {
        g.external_labels.insert(k.to_string(), v.to_string());
    }
    g
}

/// Appends `per_series` samples of `names` at 1 s steps ending near now, `per_commit` per commit.
fn append_all(app: &dyn Appendable, names: &[&str], per_series: usize, per_commit: usize) -> i64 {
    let start = pharos_model::now_ms() - per_series as i64 * 1000;
    let labels: Vec<Labels> = names
        .iter()
        .map(|n| Labels::from_pairs(&[("__name__", *n), ("job", "rw")]))
        .collect();
    let mut refs = vec![None; names.len()];
    let mut a = app.appender();
    let mut in_batch = 0;
    for i in 0..per_series {
        for (j, l) in labels.iter().enumerate() {
            refs[j] = Some(
                a.append(refs[j], l, start + i as i64 * 1000, (i * (j + 1)) as f64)
                    .unwrap(),
            );
            in_batch += 1;
            if in_batch == per_commit {
                a.commit().unwrap();
                a = app.appender();
                in_batch = 0;
            }
        }
    }
    a.commit().unwrap();
    start
}

// ---------- against a scripted receiver ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_5xx_and_delivers_each_sample_once() {
    let received = Mem::default();
    let (addr, calls) = serve_receiver(received.clone(), 3, 503).await;
    let rw = RemoteWrite::new();
    rw.apply(
        &external(&[("cluster", "c1"), ("job", "ignored")]),
        &rw_config(&format!(
            "- url: http://{addr}/api/v1/write\n  name: q\n  write_relabel_configs:\n  - {{action: drop, source_labels: [__name__], regex: drop_me}}\n  queue_config: {{max_samples_per_send: 70, batch_send_deadline: 100ms, min_backoff: 10ms, max_backoff: 40ms, min_shards: 2}}\n"
        )),
    )
    .unwrap();
    let local = Mem::default();
    let tee = rw.tee(Arc::new(local.clone()));
    let start = append_all(tee.as_ref(), &["a", "b", "drop_me"], 200, 45);
    // A rolled-back batch is not sent.
    let mut a = tee.appender();
    a.append(
        None,
        &Labels::from_pairs(&[("__name__", "rolled_back")]),
        start,
        1.0,
    )
    .unwrap();
    a.rollback().unwrap();
    let series = |n: &str| format!(r#"{n}{{cluster="c1", job="rw"}}"#);
    wait_for("all samples", 20, || {
        received.get(&series("b")).len() >= 200
    })
    .await;
    rw.stop().await;
    for (j, name) in ["a", "b"].iter().enumerate() {
        let got = received.get(&series(name));
        let want: Vec<(i64, f64)> = (0..200)
            .map(|i| (start + i * 1000, (i as usize * (j + 1)) as f64))
            .collect();
        assert_eq!(got, want, "{name}");
    }
    assert_eq!(received.names().len(), 2, "{:?}", received.names());
    assert_eq!(local.get(r#"drop_me{job="rw"}"#).len(), 200);
    assert!(calls.load(Ordering::SeqCst) > 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_sent_failed_retried_and_dropped() {
    // 400: not retried, counted as failed.
    let received = Mem::default();
    let (addr, calls) = serve_receiver(received.clone(), usize::MAX, 400).await;
    let rw = RemoteWrite::new();
    rw.apply(
        &GlobalConfig::default(),
        &rw_config(&format!(
            "- url: http://{addr}/api/v1/write\n  queue_config: {{max_samples_per_send: 10, batch_send_deadline: 50ms, capacity: 10}}\n  write_relabel_configs:\n  - {{action: drop, source_labels: [__name__], regex: b}}\n"
        )),
    )
    .unwrap();
    let tee = rw.tee(Arc::new(Mem::default()));
    append_all(tee.as_ref(), &["a", "b"], 20, 20);
    wait_for("failed samples", 20, || {
        value(
            &rw.families(),
            "prometheus_remote_storage_samples_failed_total",
        ) >= 20.0
    })
    .await;
    let fams = rw.families();
    assert_eq!(
        value(&fams, "prometheus_remote_storage_samples_failed_total"),
        20.0
    );
    assert_eq!(
        value(&fams, "prometheus_remote_storage_samples_dropped_total"),
        20.0
    );
    assert_eq!(
        value(&fams, "prometheus_remote_storage_samples_retried_total"),
        0.0
    );
    assert_eq!(value(&fams, "prometheus_remote_storage_samples_total"), 0.0);
    assert_eq!(value(&fams, "prometheus_remote_storage_shards"), 1.0);
    for (name, want) in [
        ("prometheus_remote_storage_shards_desired", 1.0),
        ("prometheus_remote_storage_shards_min", 1.0),
        ("prometheus_remote_storage_shards_max", 200.0),
        ("prometheus_remote_storage_shard_capacity", 10.0),
        ("prometheus_remote_storage_max_samples_per_send", 10.0),
    ] {
        assert_eq!(value(&fams, name), want, "{name}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // 429 with retry_on_http_429: retried, then sent. The queue (capacity 10 x 1 shard x 4) drops
    // a commit that does not fit.
    let received = Mem::default();
    let (addr, _) = serve_receiver(received.clone(), 2, 429).await;
    rw.apply(
        &GlobalConfig::default(),
        &rw_config(&format!(
            "- url: http://{addr}/api/v1/write\n  queue_config: {{max_samples_per_send: 10, batch_send_deadline: 50ms, capacity: 10, retry_on_http_429: true, min_backoff: 5ms}}\n"
        )),
    )
    .unwrap();
    append_all(tee.as_ref(), &["a"], 30, 30);
    append_all(tee.as_ref(), &["big"], 41, 41);
    wait_for("sent samples", 20, || {
        value(&rw.families(), "prometheus_remote_storage_samples_total") >= 30.0
    })
    .await;
    let fams = rw.families();
    assert!(value(&fams, "prometheus_remote_storage_samples_retried_total") >= 20.0);
    assert_eq!(
        value(&fams, "prometheus_remote_storage_samples_dropped_total"),
        41.0
    );
    assert!(value(&fams, "prometheus_remote_storage_bytes_total") > 0.0);
    assert!(
        value(
            &fams,
            "prometheus_remote_storage_highest_timestamp_in_seconds"
        ) > 1e9
    );
    rw.stop().await;
    assert_eq!(received.get(r#"a{job="rw"}"#).len(), 30);
    assert!(received.get(r#"big{job="rw"}"#).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_queue_survives_apply_and_stop_flushes() {
    let received = Mem::default();
    let (addr, _) = serve_receiver(received.clone(), 0, 204).await;
    let cfg = rw_config(&format!(
        "- url: http://{addr}/api/v1/write\n  queue_config: {{batch_send_deadline: 1h}}\n"
    ));
    let rw = RemoteWrite::new();
    rw.apply(&GlobalConfig::default(), &cfg).unwrap();
    let tee = rw.tee(Arc::new(Mem::default()));
    append_all(tee.as_ref(), &["a"], 10, 10);
    // Same config again: the queue and its 10 pending samples stay.
    rw.apply(&GlobalConfig::default(), &cfg).unwrap();
    assert_eq!(
        value(&rw.families(), "prometheus_remote_storage_samples_pending"),
        10.0
    );
    assert!(received.names().is_empty());
    // An invalid config changes nothing.
    assert!(
        rw.apply(&GlobalConfig::default(), &rw_config("- url: nope\n"))
            .is_err()
    );
    rw.stop().await;
    assert_eq!(received.get(r#"a{job="rw"}"#).len(), 10);
}

// ---------- against the real Prometheus ----------

struct Prometheus {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_prometheus(config: &str, extra: &[&str], port: u16) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, config).unwrap();
    let addr = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the `prometheus` binary (Debian package prometheus) must be installed");
    let p = Prometheus {
        child,
        addr,
        _dir: dir,
    };
    pharos_collector::tls::install_provider();
    let client = reqwest::Client::new();
    let url = format!("http://{}/-/ready", p.addr);
    for _ in 0..300 {
        if client
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("prometheus did not become ready");
}

/// `expr` evaluated by Prometheus at `t_ms`: (labels, [(t_ms, value)]) per series of a matrix.
async fn prom_matrix(
    p: &Prometheus,
    expr: &str,
    t_ms: i64,
) -> Vec<(BTreeMap<String, String>, Vec<(i64, f64)>)> {
    let url = reqwest::Url::parse_with_params(
        &format!("http://{}/api/v1/query", p.addr),
        &[
            ("query", expr.to_string()),
            ("time", format!("{:.3}", t_ms as f64 / 1000.0)),
        ],
    )
    .unwrap();
    pharos_collector::tls::install_provider();
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"], "success", "{body}");
    body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let labels = serde_json::from_value(s["metric"].clone()).unwrap();
            let values = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                    let v: f64 = p[1].as_str().unwrap().parse().unwrap();
                    (t, v)
                })
                .collect();
            (labels, values)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pharos_remote_writes_into_prometheus() {
    let prom = start_prometheus(
        "global: {}\n",
        &["--web.enable-remote-write-receiver"],
        free_port(),
    )
    .await;
    let rw = RemoteWrite::new();
    rw.apply(
        &external(&[("cluster", "c1")]),
        &rw_config(&format!(
            "- url: http://{}/api/v1/write\n  write_relabel_configs:\n  - {{action: drop, source_labels: [__name__], regex: rw_drop}}\n  queue_config: {{max_samples_per_send: 100, batch_send_deadline: 200ms, min_shards: 3}}\n",
            prom.addr
        )),
    )
    .unwrap();
    let tee = rw.tee(Arc::new(Mem::default()));
    let start = append_all(tee.as_ref(), &["rw_a", "rw_b", "rw_drop"], 300, 70);
    rw.stop().await;
    let now = pharos_model::now_ms();
    let got = prom_matrix(&prom, "{job=\"rw\"}[1h]", now).await;
    assert_eq!(got.len(), 2, "{got:?}");
    for (j, name) in ["rw_a", "rw_b"].iter().enumerate() {
        let (labels, values) = got
            .iter()
            .find(|(l, _)| l["__name__"] == *name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(labels["cluster"], "c1");
        let want: Vec<(i64, f64)> = (0..300)
            .map(|i| (start + i * 1000, (i as usize * (j + 1)) as f64))
            .collect();
        assert_eq!(*values, want, "{name}: every sample exactly once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_remote_writes_into_pharos() {
    let received = Mem::default();
    let (addr, _) = serve_receiver(received.clone(), 0, 204).await;
    let self_port = free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  external_labels: {{origin: prom}}\nscrape_configs:\n  - job_name: prom\n    static_configs:\n      - targets: ['127.0.0.1:{self_port}']\nremote_write:\n  - url: http://{addr}/api/v1/write\n    queue_config: {{batch_send_deadline: 500ms}}\n"
    );
    let prom = start_prometheus(&config, &[], self_port).await;
    let up = format!(r#"up{{instance="127.0.0.1:{self_port}", job="prom", origin="prom"}}"#);
    wait_for("5 samples of up", 60, || received.get(&up).len() >= 5).await;
    let ours = received.get(&up);
    let last_t = ours.last().unwrap().0;
    let theirs = prom_matrix(&prom, "up[1h]", last_t).await;
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert_eq!(ours, theirs[0].1, "every sample of up exactly once");
    // Every received series has strictly increasing timestamps: nothing arrived twice.
    let data = received.0.lock().unwrap();
    assert!(data.len() > 50, "{} series", data.len());
    for (s, samples) in data.iter() {
        assert!(
            samples.windows(2).all(|w| w[0].0 < w[1].0),
            "{s}: {samples:?}"
        );
        assert!(s.contains(r#"origin="prom""#), "{s}");
    }
}
