//! The bad-input list, all at once: next to a healthy target, targets with a malformed
//! body, an oversize body, too many samples, too many labels, a timeout, a TLS error and an HTTP
//! error. Each goes down with its reason in `lastError`, nothing of its scrapes is appended (the
//! valid lines before the problem included), and the healthy target is unaffected.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use pharos_collector::ScrapeManager;
use pharos_collector::config::Config;

mod mem;
use mem::Mem;

impl Mem {
    /// Names of the non-synthetic series stored for `job`.
    fn scraped_names(&self, job: &str) -> Vec<String> {
        const SYNTHETIC: [&str; 5] = [
            "up",
            "scrape_duration_seconds",
            "scrape_samples_scraped",
            "scrape_samples_post_metric_relabeling",
            "scrape_series_added",
        ];
        let d = self.0.lock().unwrap();
        d.keys()
            .filter(|l| l.get("job") == Some(job))
            .filter_map(|l| l.get("__name__").map(str::to_string))
            .filter(|n| !SYNTHETIC.contains(&n.as_str()))
            .collect()
    }

    fn last(&self, name: &str, job: &str) -> Option<f64> {
        let d = self.0.lock().unwrap();
        d.iter()
            .find(|(l, _)| l.get("__name__") == Some(name) && l.get("job") == Some(job))
            .and_then(|(_, s)| s.last().map(|x| x.1))
    }
}

async fn exporter(path: axum::extract::Path<String>) -> axum::response::Response {
    let text = |b: &'static str| {
        (
            [("content-type", "text/plain; version=0.0.4")],
            b.to_string(),
        )
            .into_response()
    };
    match path.0.as_str() {
        "good" => text("m 1\n"),
        "malformed" => text("m 1\nbroken{ 2\n"),
        "oversize" => text("m 1\nn 2\no 3\np 4\n"),
        "samples" => text("m 1\nn 2\no 3\n"),
        "labels" => text("m 1\nn{a=\"1\",b=\"2\",c=\"3\"} 2\n"),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            text("m 1\n")
        }
        "error" => (StatusCode::SERVICE_UNAVAILABLE, "busy\n").into_response(),
        _ => (StatusCode::NOT_FOUND, "no\n").into_response(),
    }
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..300 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_targets_go_down_alone_with_nothing_appended() {
    let app = axum::Router::new().route("/{path}", axum::routing::get(exporter));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // (job, metrics path, extra config, what lastError must contain)
    let jobs = [
        ("good", "good", "", ""),
        ("malformed", "malformed", "", "line 2"),
        (
            "oversize",
            "oversize",
            "    body_size_limit: 10\n",
            "body size limit",
        ),
        (
            "samples",
            "samples",
            "    sample_limit: 2\n",
            "sample limit",
        ),
        (
            "labels",
            "labels",
            "    label_limit: 3\n",
            "label_limit exceeded",
        ),
        (
            "slow",
            "slow",
            "    scrape_timeout: 300ms\n",
            "timed out after 300ms",
        ),
        ("tls", "good", "    scheme: https\n", "InvalidContentType"),
        ("http_error", "error", "", "503"),
    ];
    let mut yaml = String::from("global: {scrape_interval: 1s}\nscrape_configs:\n");
    for (job, path, extra, _) in jobs {
        yaml.push_str(&format!(
            "  - job_name: {job}\n    metrics_path: /{path}\n{extra}    static_configs: [{{targets: ['{addr}']}}]\n"
        ));
    }
    let cfg = Config::from_yaml(&yaml).unwrap();
    let mem = Mem::default();
    let m = ScrapeManager::new(Arc::new(mem.clone()));
    m.apply(&cfg.global, &cfg.scrape_configs).unwrap();
    // Two scrapes of every target (the slow one times out twice).
    wait_for("two scrapes of every target", || {
        let d = mem.0.lock().unwrap();
        jobs.iter().all(|(job, ..)| {
            d.iter().any(|(l, s)| {
                l.get("__name__") == Some("up") && l.get("job") == Some(job) && s.len() >= 2
            })
        })
    })
    .await;
    let targets = m.targets();
    let mut report = String::new();
    for (job, _, _, want_err) in jobs {
        let t = targets.iter().find(|t| t.scrape_pool == job).unwrap();
        let up = mem.last("up", job);
        let names = mem.scraped_names(job);
        if job == "good" {
            if up != Some(1.0) || names != ["m"] || !t.last_error.is_empty() {
                report.push_str(&format!(
                    "{job}: up {up:?}, series {names:?}, error {:?}\n",
                    t.last_error
                ));
            }
            continue;
        }
        if up != Some(0.0) {
            report.push_str(&format!("{job}: up is {up:?}\n"));
        }
        if !names.is_empty() {
            report.push_str(&format!("{job}: half-appended series {names:?}\n"));
        }
        if !t.last_error.contains(want_err) {
            report.push_str(&format!(
                "{job}: lastError {:?} lacks {want_err:?}\n",
                t.last_error
            ));
        }
        if mem.last("scrape_samples_scraped", job).is_none() {
            report.push_str(&format!("{job}: no scrape_samples_scraped\n"));
        }
    }
    let errors: Vec<String> = targets
        .iter()
        .map(|t| format!("{}: {}", t.scrape_pool, t.last_error))
        .collect();
    assert!(report.is_empty(), "{report}\nall errors: {errors:#?}");
    m.stop().await;
}
