//! End-to-end scrapes: a tiny axum server, the scrape manager, and an in-memory store.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use pharos_collector::ScrapeManager;
use pharos_collector::config::Config;
use pharos_model::api::TargetHealth;
use pharos_model::storage::{self, Appendable, Appender};
use pharos_model::{Labels, SeriesRef, is_stale_nan};

// ---------- an in-memory Appendable ----------

type Data = BTreeMap<Labels, Vec<(i64, f64)>>;

#[derive(Default, Clone)]
struct Mem {
    data: Arc<Mutex<Data>>,
}

struct MemAppender {
    data: Arc<Mutex<Data>>,
    batch: Vec<(Labels, i64, f64)>,
}

impl Appendable for Mem {
    fn appender(&self) -> Box<dyn Appender> {
        Box::new(MemAppender {
            data: self.data.clone(),
            batch: Vec::new(),
        })
    }
}

impl Appender for MemAppender {
    fn append(
        &mut self,
        _r: Option<SeriesRef>,
        l: &Labels,
        t: i64,
        v: f64,
    ) -> storage::Result<SeriesRef> {
        let data = self.data.lock().unwrap();
        let last = self
            .batch
            .iter()
            .rev()
            .find(|(bl, _, _)| bl == l)
            .map(|(_, t, v)| (*t, *v))
            .or_else(|| data.get(l).and_then(|s| s.last().copied()));
        if let Some((lt, lv)) = last {
            if t < lt {
                return Err(storage::Error::OutOfOrder);
            }
            if t == lt && lv.to_bits() != v.to_bits() {
                return Err(storage::Error::DuplicateTimestamp);
            }
        }
        self.batch.push((l.clone(), t, v));
        Ok(SeriesRef(0))
    }

    fn commit(self: Box<Self>) -> storage::Result<()> {
        let mut data = self.data.lock().unwrap();
        for (l, t, v) in self.batch {
            data.entry(l).or_default().push((t, v));
        }
        Ok(())
    }

    fn rollback(self: Box<Self>) -> storage::Result<()> {
        Ok(())
    }
}

impl Mem {
    /// Samples of the series whose `Display` form is `series`.
    fn samples(&self, series: &str) -> Vec<(i64, f64)> {
        let data = self.data.lock().unwrap();
        data.iter()
            .find(|(l, _)| l.to_string() == series)
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    }

    fn names(&self) -> Vec<String> {
        self.data
            .lock()
            .unwrap()
            .keys()
            .map(|l| l.to_string())
            .collect()
    }
}

// ---------- a tiny exporter ----------

#[derive(Clone)]
struct Exposed {
    body: Arc<Mutex<(StatusCode, String, &'static str, bool)>>,
    seen_headers: Arc<Mutex<Option<HeaderMap>>>,
}

impl Exposed {
    fn set(&self, body: &str) {
        self.body.lock().unwrap().1 = body.to_string();
    }
}

async fn serve(body: &str, content_type: &'static str, gzip: bool) -> (String, Exposed) {
    let exposed = Exposed {
        body: Arc::new(Mutex::new((
            StatusCode::OK,
            body.to_string(),
            content_type,
            gzip,
        ))),
        seen_headers: Arc::new(Mutex::new(None)),
    };
    let e = exposed.clone();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move |headers: HeaderMap| {
            let e = e.clone();
            async move {
                *e.seen_headers.lock().unwrap() = Some(headers);
                let (status, body, ct, gzip) = e.body.lock().unwrap().clone();
                let mut h = HeaderMap::new();
                h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
                let bytes = if gzip {
                    h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                    let mut enc =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    enc.write_all(body.as_bytes()).unwrap();
                    enc.finish().unwrap()
                } else {
                    body.into_bytes()
                };
                (status, h, bytes).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, exposed)
}

const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

fn config(addr: &str, extra: &str) -> Config {
    Config::from_yaml(&format!(
        "global:\n  scrape_interval: 1s\n  external_labels: {{cluster: c1}}\nscrape_configs:\n  - job_name: test\n    static_configs:\n      - targets: ['{addr}']\n        labels: {{env: t}}\n{extra}"
    ))
    .unwrap()
}

/// Waits until the (only) target's health is `h`: recorded just after the scrape's commit.
async fn wait_health(m: &ScrapeManager, h: TargetHealth) {
    wait_for("target health", || {
        m.targets().first().is_some_and(|t| t.health == h)
    })
    .await;
}

/// Waits (up to 10s) until `cond` holds.
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn series(name: &str, addr: &str, extra: &str) -> String {
    format!(r#"{name}{{env="t", instance="{addr}", job="test"{extra}}}"#)
}

// ---------- tests ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_samples_and_synthetic_series() {
    let body = "# HELP x_total Things.\n# TYPE x_total counter\nx_total{path=\"/a\"} 3\nx_total{path=\"/b\"} 4.5\ng NaN\n";
    let (addr, exposed) = serve(body, TEXT, false).await;
    let mem = Mem::default();
    let m = ScrapeManager::new(Arc::new(mem.clone()));
    let cfg = config(&addr, "");
    m.apply(&cfg.global, &cfg.scrape_configs).unwrap();
    let up = series("up", &addr, "");
    wait_for("a first scrape", || !mem.samples(&up).is_empty()).await;

    let a = mem.samples(&series("x_total", &addr, r#", path="/a""#));
    assert_eq!(a.len(), 1, "{:?}", mem.names());
    assert_eq!(a[0].1, 3.0);
    let t = a[0].0;
    assert!((pharos_model::now_ms() - t).abs() < 5000);
    assert_eq!(
        mem.samples(&series("x_total", &addr, r#", path="/b""#))[0],
        (t, 4.5)
    );
    assert!(mem.samples(&series("g", &addr, ""))[0].1.is_nan());
    assert_eq!(mem.samples(&up), vec![(t, 1.0)]);
    assert_eq!(
        mem.samples(&series("scrape_samples_scraped", &addr, ""))[0].1,
        3.0
    );
    assert_eq!(
        mem.samples(&series("scrape_samples_post_metric_relabeling", &addr, ""))[0].1,
        3.0
    );
    assert_eq!(
        mem.samples(&series("scrape_series_added", &addr, ""))[0].1,
        3.0
    );
    let d = mem.samples(&series("scrape_duration_seconds", &addr, ""))[0].1;
    assert!(d > 0.0 && d < 5.0, "{d}");
    // External labels are not stored.
    assert!(mem.names().iter().all(|n| !n.contains("cluster")));

    let headers = exposed.seen_headers.lock().unwrap().clone().unwrap();
    assert_eq!(
        headers[header::ACCEPT],
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    );
    assert_eq!(headers["x-prometheus-scrape-timeout-seconds"], "1");

    wait_health(&m, TargetHealth::Up).await;
    let targets = m.targets();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].health, TargetHealth::Up);
    assert_eq!(targets[0].scrape_url, format!("http://{addr}/metrics"));
    assert_eq!(targets[0].labels["env"], "t");
    assert_eq!(targets[0].last_error, "");

    // A second scrape: series already known, none added.
    wait_for("a second scrape", || mem.samples(&up).len() >= 2).await;
    assert_eq!(
        mem.samples(&series("scrape_series_added", &addr, ""))[1].1,
        0.0
    );
    assert_eq!(
        mem.samples(&series("x_total", &addr, r#", path="/a""#))
            .len(),
        2
    );

    // Re-applying the same config keeps the loop (its health is not reset to unknown).
    m.apply(&cfg.global, &cfg.scrape_configs).unwrap();
    assert_eq!(m.targets()[0].health, TargetHealth::Up);
    let stats = m.stats();
    assert!(
        stats.scrapes_total >= 2 && stats.failures_total == 0,
        "{stats:?}"
    );
    assert_eq!(stats.targets_up, 1);

    // Removing the target: its series, and the synthetic ones, go stale.
    m.apply(&cfg.global, &[]).unwrap();
    m.stop().await;
    assert!(m.targets().is_empty());
    for s in [
        series("x_total", &addr, r#", path="/a""#),
        up.clone(),
        series("scrape_duration_seconds", &addr, ""),
    ] {
        let last = *mem.samples(&s).last().unwrap();
        assert!(is_stale_nan(last.1), "{s}: {last:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_series_get_staleness_markers() {
    let (addr, exposed) = serve("a 1\nb 2\n", TEXT, false).await;
    let mem = Mem::default();
    let m = ScrapeManager::new(Arc::new(mem.clone()));
    let cfg = config(&addr, "");
    m.apply(&cfg.global, &cfg.scrape_configs).unwrap();
    let (a, b) = (series("a", &addr, ""), series("b", &addr, ""));
    wait_for("a first scrape", || !mem.samples(&b).is_empty()).await;
    exposed.set("a 1\n");
    wait_for("b's staleness marker", || {
        mem.samples(&b).last().is_some_and(|s| is_stale_nan(s.1))
    })
    .await;
    let bs = mem.samples(&b);
    assert_eq!(bs.len(), 2, "{bs:?}");
    // The marker carries the scrape timestamp, which is also a's second sample.
    let a_samples = mem.samples(&a);
    assert!(a_samples.contains(&(bs[1].0, 1.0)), "{a_samples:?} {bs:?}");
    // The series comes back.
    exposed.set("a 1\nb 3\n");
    wait_for("b again", || {
        mem.samples(&b).last().is_some_and(|s| s.1 == 3.0)
    })
    .await;
    m.stop().await;
    assert!(is_stale_nan(mem.samples(&a).last().unwrap().1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_body_marks_down_and_rolls_back() {
    let (addr, exposed) = serve("a 1\nb 2\n", TEXT, false).await;
    let mem = Mem::default();
    let m = ScrapeManager::new(Arc::new(mem.clone()));
    let cfg = config(&addr, "");
    m.apply(&cfg.global, &cfg.scrape_configs).unwrap();
    let up = series("up", &addr, "");
    wait_for("a first scrape", || !mem.samples(&up).is_empty()).await;
    exposed.set("a 5\nc 1\nb{ 2\n");
    wait_for("up = 0", || {
        mem.samples(&up).last().is_some_and(|s| s.1 == 0.0)
    })
    .await;
    wait_health(&m, TargetHealth::Down).await;
    let t = m.targets();
    assert!(
        t[0].last_error.starts_with("line 3: expected"),
        "{}",
        t[0].last_error
    );
    // The partial appends (a = 5, c) were rolled back; a and b went stale.
    let a = mem.samples(&series("a", &addr, ""));
    assert!(a.iter().all(|s| s.1 != 5.0), "{a:?}");
    assert!(is_stale_nan(a.last().unwrap().1));
    assert!(is_stale_nan(
        mem.samples(&series("b", &addr, "")).last().unwrap().1
    ));
    assert!(mem.samples(&series("c", &addr, "")).is_empty());
    assert_eq!(
        mem.samples(&series("scrape_samples_scraped", &addr, ""))
            .last()
            .unwrap()
            .1,
        0.0
    );
    assert!(m.stats().failures_total >= 1);
    // Recovery.
    exposed.set("a 6\n");
    wait_for("up = 1 again", || {
        mem.samples(&up).last().is_some_and(|s| s.1 == 1.0)
    })
    .await;
    wait_health(&m, TargetHealth::Up).await;
    assert_eq!(m.targets()[0].last_error, "");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_errors_mark_down() {
    let (addr, exposed) = serve("a 1\n", TEXT, false).await;
    exposed.body.lock().unwrap().0 = StatusCode::INTERNAL_SERVER_ERROR;
    let mem = Mem::default();
    let m = ScrapeManager::new(Arc::new(mem.clone()));
    let cfg = config(&addr, "");
    m.apply(&cfg.global, &cfg.scrape_configs).unwrap();
    let up = series("up", &addr, "");
    wait_for("a scrape", || !mem.samples(&up).is_empty()).await;
    assert_eq!(mem.samples(&up)[0].1, 0.0);
    wait_health(&m, TargetHealth::Down).await;
    assert_eq!(
        m.targets()[0].last_error,
        "server returned HTTP status 500 Internal Server Error"
    );
    m.stop().await;
    // Nothing listens on port 1 (connection refused).
    let cfg = Config::from_yaml(
        "scrape_configs:\n  - job_name: dead\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['127.0.0.1:1']\n",
    )
    .unwrap();
    m.apply(&cfg.global, &cfg.scrape_configs).unwrap();
    wait_for("a failed scrape", || {
        m.targets()[0].health == TargetHealth::Down
    })
    .await;
    assert!(!m.targets()[0].last_error.is_empty());
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetrics_gzip_timestamps_and_relabeling() {
    let body = "# TYPE a counter\na_total{job=\"inner\"} 1 100.5\nb 2\ngo_x 3\n# EOF\n";
    let (addr, _exposed) = serve(
        body,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        true,
    )
    .await;
    let mem = Mem::default();
    let m = ScrapeManager::new(Arc::new(mem.clone()));
    let extra = "    metric_relabel_configs:\n      - {action: drop, source_labels: [__name__], regex: 'go_.*'}\n      - {source_labels: [__name__], regex: 'b', target_label: kind, replacement: bee}\n";
    let cfg = config(&addr, extra);
    m.apply(&cfg.global, &cfg.scrape_configs).unwrap();
    let up = series("up", &addr, "");
    wait_for("a scrape", || !mem.samples(&up).is_empty()).await;
    assert_eq!(mem.samples(&up)[0].1, 1.0, "{:?}", m.targets());
    // Honored timestamp (OpenMetrics seconds), and the conflicting job label exported.
    assert_eq!(
        mem.samples(&format!(
            r#"a_total{{env="t", exported_job="inner", instance="{addr}", job="test"}}"#
        )),
        vec![(100_500, 1.0)]
    );
    assert_eq!(
        mem.samples(&format!(
            r#"b{{env="t", instance="{addr}", job="test", kind="bee"}}"#
        ))
        .len(),
        1
    );
    assert!(mem.names().iter().all(|n| !n.starts_with("go_")));
    assert_eq!(
        mem.samples(&series("scrape_samples_scraped", &addr, ""))[0].1,
        3.0
    );
    assert_eq!(
        mem.samples(&series("scrape_samples_post_metric_relabeling", &addr, ""))[0].1,
        2.0
    );
    // The second scrape repeats a_total's own timestamp: same value, accepted as a no-op by this
    // store (no error); the scrape stays up.
    wait_for("a second scrape", || mem.samples(&up).len() >= 2).await;
    assert_eq!(mem.samples(&up)[1].1, 1.0);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honor_labels_and_sample_limit() {
    let (addr, _exposed) = serve("a{job=\"inner\"} 1 5\nb 2\nc 3\n", TEXT, false).await;
    let mem = Mem::default();
    let m = ScrapeManager::new(Arc::new(mem.clone()));
    let cfg = config(
        &addr,
        "    honor_labels: true\n    honor_timestamps: false\n",
    );
    m.apply(&cfg.global, &cfg.scrape_configs).unwrap();
    let up = series("up", &addr, "");
    wait_for("a scrape", || !mem.samples(&up).is_empty()).await;
    let a = mem.samples(&format!(r#"a{{env="t", instance="{addr}", job="inner"}}"#));
    assert_eq!(a.len(), 1);
    assert_ne!(a[0].0, 5, "timestamp must not be honored");
    m.stop().await;

    let mem = Mem::default();
    let m = ScrapeManager::new(Arc::new(mem.clone()));
    let cfg = config(&addr, "    sample_limit: 2\n");
    m.apply(&cfg.global, &cfg.scrape_configs).unwrap();
    wait_for("a scrape", || !mem.samples(&up).is_empty()).await;
    assert_eq!(mem.samples(&up)[0].1, 0.0);
    wait_health(&m, TargetHealth::Down).await;
    assert!(
        m.targets()[0].last_error.contains("sample limit"),
        "{:?}",
        m.targets()
    );
    assert!(mem.samples(&series("b", &addr, "")).is_empty());
    assert_eq!(m.stats().sample_limit_exceeded_total, 1);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_samples_are_counted_not_fatal() {
    // The same series twice with decreasing timestamps: the second is out of order.
    let (addr, _exposed) = serve("a 1 2000\na 2 1000\nb 1\n", TEXT, false).await;
    let mem = Mem::default();
    let m = ScrapeManager::new(Arc::new(mem.clone()));
    let cfg = config(&addr, "");
    m.apply(&cfg.global, &cfg.scrape_configs).unwrap();
    let up = series("up", &addr, "");
    wait_for("a scrape", || !mem.samples(&up).is_empty()).await;
    assert_eq!(mem.samples(&up)[0].1, 1.0);
    assert_eq!(mem.samples(&series("a", &addr, "")), vec![(2000, 1.0)]);
    assert_eq!(mem.samples(&series("b", &addr, "")).len(), 1);
    assert!(m.stats().out_of_order_total >= 1);
    m.stop().await;
}

#[test]
fn apply_outside_a_runtime_is_an_error() {
    let m = ScrapeManager::new(Arc::new(Mem::default()));
    let cfg = config("127.0.0.1:1", "");
    let err = m.apply(&cfg.global, &cfg.scrape_configs).unwrap_err();
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}

#[tokio::test]
async fn invalid_config_changes_nothing() {
    let m = ScrapeManager::new(Arc::new(Mem::default()));
    let mut cfg = config("127.0.0.1:1", "");
    cfg.scrape_configs.push(cfg.scrape_configs[0].clone());
    let err = m.apply(&cfg.global, &cfg.scrape_configs).unwrap_err();
    assert!(err.to_string().contains("multiple scrape configs"), "{err}");
    assert!(m.targets().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_size_limit_and_stats() {
    let (addr, _exposed) = serve("a 1\nb 2\nc 3\n", TEXT, false).await;
    let mem = Mem::default();
    let m = ScrapeManager::new(Arc::new(mem.clone()));
    let cfg = config(&addr, "    body_size_limit: 10B\n");
    m.apply(&cfg.global, &cfg.scrape_configs).unwrap();
    let up = series("up", &addr, "");
    wait_for("a scrape", || !mem.samples(&up).is_empty()).await;
    assert_eq!(mem.samples(&up)[0].1, 0.0);
    wait_health(&m, TargetHealth::Down).await;
    assert_eq!(
        m.targets()[0].last_error,
        "body size limit exceeded: more than 10 bytes"
    );
    let providers: &dyn pharos_model::api::TargetsProvider = m.as_ref();
    assert_eq!(providers.active_targets().len(), 1);
    let stats = m.stats();
    assert_eq!((stats.targets, stats.targets_up), (1, 0));
    let mut text = String::new();
    pharos_model::expfmt::write_text(&mut text, &stats.families());
    assert!(
        text.contains("# TYPE pharos_target_scrape_failures_total counter\n"),
        "{text}"
    );
    assert!(text.contains("\npharos_targets 1\n"), "{text}");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_change_restarts_loop_without_staleness() {
    let (addr, _exposed) = serve("a 1\n", TEXT, false).await;
    let mem = Mem::default();
    let m = ScrapeManager::new(Arc::new(mem.clone()));
    let cfg = config(&addr, "");
    m.apply(&cfg.global, &cfg.scrape_configs).unwrap();
    let (a, up) = (series("a", &addr, ""), series("up", &addr, ""));
    wait_for("a first scrape", || !mem.samples(&up).is_empty()).await;
    let cfg = config(&addr, "    scrape_timeout: 500ms\n");
    m.apply(&cfg.global, &cfg.scrape_configs).unwrap();
    assert_eq!(m.targets()[0].scrape_timeout, "500ms");
    let n = mem.samples(&up).len();
    wait_for("a scrape by the new loop", || mem.samples(&up).len() > n).await;
    assert!(
        mem.samples(&a).iter().all(|s| !is_stale_nan(s.1)),
        "{:?}",
        mem.samples(&a)
    );
    m.stop().await;
    assert!(is_stale_nan(mem.samples(&a).last().unwrap().1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_header_is_sent() {
    let (addr, exposed) = serve("a 1\n", TEXT, false).await;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "open sesame\n").unwrap();
    let mem = Mem::default();
    let m = ScrapeManager::new(Arc::new(mem.clone()));
    let extra = format!(
        "    basic_auth: {{username: Aladdin, password_file: '{}'}}\n",
        pw.display()
    );
    let cfg = config(&addr, &extra);
    m.apply(&cfg.global, &cfg.scrape_configs).unwrap();
    wait_health(&m, TargetHealth::Up).await;
    let headers = exposed.seen_headers.lock().unwrap().clone().unwrap();
    assert_eq!(
        headers[header::AUTHORIZATION],
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    );
    // A changed credential is a changed target: the loop restarts with the new header.
    let cfg = config(&addr, "    authorization: {credentials: tok}\n");
    m.apply(&cfg.global, &cfg.scrape_configs).unwrap();
    wait_for("the bearer token", || {
        exposed
            .seen_headers
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|h| h[header::AUTHORIZATION] == "Bearer tok")
    })
    .await;
    // A missing secret file fails the scrape with the reason.
    let cfg = config(&addr, "    bearer_token_file: /nonexistent/pharos-token\n");
    m.apply(&cfg.global, &cfg.scrape_configs).unwrap();
    wait_health(&m, TargetHealth::Down).await;
    assert!(
        m.targets()[0]
            .last_error
            .contains("/nonexistent/pharos-token"),
        "{}",
        m.targets()[0].last_error
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_limits_fail_the_scrape() {
    let (addr, exposed) = serve("a{x=\"1\"} 1\n", TEXT, false).await;
    let mem = Mem::default();
    let m = ScrapeManager::new(Arc::new(mem.clone()));
    // a{x, env, instance, job} + __name__ = 5 labels.
    let cfg = config(
        &addr,
        "    label_limit: 5\n    label_value_length_limit: 16\n",
    );
    m.apply(&cfg.global, &cfg.scrape_configs).unwrap();
    wait_health(&m, TargetHealth::Up).await;
    exposed.set("a{x=\"1\",y=\"2\"} 1\n");
    wait_health(&m, TargetHealth::Down).await;
    assert_eq!(
        m.targets()[0].last_error,
        "label_limit exceeded (metric: a, number of labels: 6, limit: 5)"
    );
    exposed.set("a{x=\"12345678901234567\"} 1\n");
    wait_for("the value length error", || {
        m.targets()[0]
            .last_error
            .starts_with("label_value_length_limit exceeded (metric: a, label name: x, value: \"12345678901234567\", length: 17, limit: 16)")
    })
    .await;
    assert!(
        mem.samples(&series("a", &addr, r#", x="12345678901234567""#))
            .is_empty()
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sd_targets_follow_the_file_and_target_limit() {
    let (a, _ea) = serve("m 1\n", TEXT, false).await;
    let (b, _eb) = serve("m 2\n", TEXT, false).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("targets.json");
    std::fs::write(
        &file,
        format!(r#"[{{"targets": ["{a}"], "labels": {{"team": "x"}}}}]"#),
    )
    .unwrap();
    let yaml = |limit: u64| {
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: fsd\n    target_limit: {limit}\n    file_sd_configs:\n      - files: ['{}/*.json']\n    relabel_configs:\n      - {{source_labels: [__meta_filepath], regex: '.*/(.*)', target_label: file}}\n",
            dir.path().display()
        )
    };
    let cfg = Config::from_yaml(&yaml(0)).unwrap();
    let mem = Mem::default();
    let m = ScrapeManager::new(Arc::new(mem.clone()));
    m.apply(&cfg.global, &cfg.scrape_configs).unwrap();
    // The file is read during `apply`.
    assert_eq!(m.targets().len(), 1);
    assert_eq!(m.targets()[0].labels["team"], "x");
    assert_eq!(m.targets()[0].labels["file"], "targets.json");
    let ma = format!(r#"m{{file="targets.json", instance="{a}", job="fsd", team="x"}}"#);
    let mb = format!(r#"m{{file="targets.json", instance="{b}", job="fsd"}}"#);
    wait_for("a scraped", || !mem.samples(&ma).is_empty()).await;
    // The file changes: b replaces a, whose series go stale.
    std::fs::write(&file, format!(r#"[{{"targets": ["{b}"]}}]"#)).unwrap();
    wait_for("b scraped", || !mem.samples(&mb).is_empty()).await;
    wait_for("a stale", || {
        mem.samples(&ma).last().is_some_and(|s| is_stale_nan(s.1))
    })
    .await;
    assert_eq!(m.targets().len(), 1);
    // Two targets over a limit of one: both fail with the reason, up = 0.
    std::fs::write(&file, format!(r#"[{{"targets": ["{a}", "{b}"]}}]"#)).unwrap();
    let cfg = Config::from_yaml(&yaml(1)).unwrap();
    m.apply(&cfg.global, &cfg.scrape_configs).unwrap();
    // Same discovery: the pool keeps its watcher, which sees the change within a second.
    wait_for("two targets", || m.targets().len() == 2).await;
    wait_for("target_limit errors", || {
        m.targets().iter().all(|t| {
            t.health == TargetHealth::Down
                && t.last_error == "target_limit exceeded (number of targets: 2, limit: 1)"
        })
    })
    .await;
    let up_b = format!(r#"up{{file="targets.json", instance="{b}", job="fsd"}}"#);
    wait_for("up = 0", || {
        mem.samples(&up_b).last().is_some_and(|s| s.1 == 0.0)
    })
    .await;
    // Back under the limit: scrapes succeed again.
    std::fs::write(&file, format!(r#"[{{"targets": ["{b}"]}}]"#)).unwrap();
    wait_for("up = 1", || {
        mem.samples(&up_b).last().is_some_and(|s| s.1 == 1.0)
    })
    .await;
    m.stop().await;
}
