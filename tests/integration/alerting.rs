//! Rules and alerting end to end: an alert rule fires in the `pharos` binary, appears in a real
//! Alertmanager 0.25 (Debian's `prometheus-alertmanager`, started here on loopback) with its
//! labels and annotations, and is resolved there when the condition clears; plus the rules API,
//! `ALERTS`, and bad rule files at start-up and on reload.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{Pharos, enc, free_port, get};

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// A running Alertmanager, killed on drop.
struct Alertmanager {
    child: Child,
    addr: String,
}

impl Alertmanager {
    fn start(dir: &Path, prefix: &str) -> Alertmanager {
        assert!(
            Path::new(ALERTMANAGER).exists(),
            "{ALERTMANAGER} is missing: apt-get install prometheus-alertmanager (see .ci/run)"
        );
        let cfg = dir.join("am.yml");
        std::fs::write(
            &cfg,
            "route:\n  receiver: blackhole\n  group_wait: 1s\n  group_interval: 1s\nreceivers:\n- name: blackhole\n",
        )
        .unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join("am.log")).unwrap();
        let child = Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg(format!("--web.route-prefix={prefix}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start alertmanager");
        let am = Alertmanager { child, addr };
        wait(Duration::from_secs(30), "alertmanager ready", || {
            get(&am.addr, &format!("{prefix}/-/ready"))
                .map(|(s, _)| s == 200)
                .unwrap_or(false)
        });
        am
    }

    fn alerts(&self, prefix: &str) -> Vec<serde_json::Value> {
        let (s, body) = get(&self.addr, &format!("{prefix}/api/v2/alerts")).unwrap();
        assert_eq!(s, 200, "{body}");
        serde_json::from_str::<Vec<serde_json::Value>>(&body).unwrap()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking HTTP/1.1 POST without a body; returns (status, body).
fn post(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

fn wait(timeout: Duration, what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// Serves `/metrics` with one sample on `port` until `stop` is set.
fn serve_target(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let l = TcpListener::bind(("127.0.0.1", port)).expect("bind target port");
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            match l.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf);
                    let body = "demo_value 1\n";
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    })
}

const RULES: &str = r#"groups:
- name: availability
  interval: 1s
  rules:
  - alert: TargetDown
    expr: up{job="flaky"} == 0
    for: 2s
    labels:
      severity: page
      team: '{{ $labels.job }}-team'
    annotations:
      summary: 'Target {{ $labels.instance }} of job {{ $labels.job }} is down'
      description: 'up is {{ $value }}; cluster {{ $externalLabels.cluster }}'
  - record: job:up:sum
    expr: sum by (job) (up)
"#;

#[test]
fn alert_round_trip_through_real_alertmanager() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = "/am";
    let am = Alertmanager::start(dir.path(), prefix);
    let target_port = free_port();
    std::fs::write(dir.path().join("rules.yml"), RULES).unwrap();
    let am_port = am.addr.rsplit(':').next().unwrap();
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  external_labels:\n    cluster: lab\n\
         rule_files: ['rules.yml']\n\
         alerting:\n  alertmanagers:\n  - static_configs:\n    - targets: ['127.0.0.1:{am_port}']\n    path_prefix: {prefix}\n    api_version: v2\n    timeout: 5s\n\
         scrape_configs:\n  - job_name: flaky\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
    );
    let cfg_path = dir.path().join("pharos.yml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let web_port = free_port();
    let data = dir.path().join("data");
    let pharos = Pharos::start(
        web_port,
        &[
            &format!("--config.file={}", cfg_path.display()),
            &format!("--storage.tsdb.path={}", data.display()),
            "--exporter.listen-address=off",
        ],
        &dir.path().join("pharos.log"),
    );

    // Pending first, then firing, in Pharos' API.
    pharos.wait_until(Duration::from_secs(30), "firing alert", |p| {
        let a = p.api("/api/v1/alerts");
        a["data"]["alerts"]
            .as_array()
            .is_some_and(|v| v.iter().any(|x| x["state"] == "firing"))
    });
    let rules = pharos.api("/api/v1/rules");
    let g = &rules["data"]["groups"][0];
    assert_eq!(g["name"], "availability");
    assert_eq!(g["interval"], 1.0);
    assert!(g["file"].as_str().unwrap().ends_with("rules.yml"));
    let alerting = &g["rules"][0];
    assert_eq!(alerting["type"], "alerting");
    assert_eq!(alerting["state"], "firing");
    assert_eq!(alerting["duration"], 2.0);
    assert_eq!(alerting["health"], "ok");
    assert_eq!(alerting["query"], "up{job=\"flaky\"} == 0");
    assert_eq!(g["rules"][1]["type"], "recording");
    let only_alerts = pharos.api("/api/v1/rules?type=alert");
    assert_eq!(
        only_alerts["data"]["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let q = pharos.api(&format!(
        "/api/v1/query?query={}",
        enc("ALERTS{alertname=\"TargetDown\",alertstate=\"firing\"}")
    ));
    assert_eq!(
        q["data"]["result"][0]["metric"]["team"], "flaky-team",
        "{q}"
    );
    let rec = pharos.api(&format!("/api/v1/query?query={}", enc("job:up:sum")));
    assert_eq!(rec["data"]["result"][0]["value"][1], "0", "{rec}");

    // The dashboard's Alerts, Rules and Home pages show the firing alert.
    let (status, html) = get(&pharos.web, "/alerts?state=firing").unwrap();
    assert_eq!(status, 200, "{html}");
    let target = format!("127.0.0.1:{target_port}");
    for want in [
        "<h1>Alerts</h1>",
        "1 firing",
        "data-state=\"firing\"",
        "<strong>TargetDown</strong>",
        "team=\"flaky-team\"",
        &format!("Target {target} of job flaky is down"),
        "up is 0; cluster lab",
        "<td class=\"num\">0</td>",
    ] {
        assert!(html.contains(want), "/alerts lacks {want:?}: {html}");
    }
    let (status, html) = get(&pharos.web, "/rules").unwrap();
    assert_eq!(status, 200, "{html}");
    for want in [
        "<h2>availability</h2>",
        "every 1s",
        "job:up:sum",
        ">ok</span>",
    ] {
        assert!(html.contains(want), "/rules lacks {want:?}: {html}");
    }
    let html = get(&pharos.web, "/").unwrap().1;
    assert!(
        html.contains("Firing alerts") && html.contains(&target),
        "{html}"
    );

    // Alertmanager has it, with labels (external ones added) and expanded annotations.
    wait(Duration::from_secs(30), "alert in alertmanager", || {
        !am.alerts(prefix).is_empty()
    });
    let got = am.alerts(prefix);
    assert_eq!(got.len(), 1, "{got:?}");
    let a = &got[0];
    let instance = format!("127.0.0.1:{target_port}");
    assert_eq!(a["labels"]["alertname"], "TargetDown");
    assert_eq!(a["labels"]["severity"], "page");
    assert_eq!(a["labels"]["team"], "flaky-team");
    assert_eq!(a["labels"]["job"], "flaky");
    assert_eq!(a["labels"]["instance"], instance.as_str());
    assert_eq!(a["labels"]["cluster"], "lab");
    assert_eq!(
        a["annotations"]["summary"],
        format!("Target {instance} of job flaky is down").as_str()
    );
    assert_eq!(a["annotations"]["description"], "up is 0; cluster lab");
    assert_eq!(a["status"]["state"], "active");
    let gen_url = a["generatorURL"].as_str().unwrap();
    assert!(
        gen_url.starts_with(&format!("http://127.0.0.1:{web_port}/graph?g0.expr=")),
        "{gen_url}"
    );

    // The target comes up: the alert resolves in Pharos and in Alertmanager.
    let stop = Arc::new(AtomicBool::new(false));
    let server = serve_target(target_port, stop.clone());
    pharos.wait_until(Duration::from_secs(30), "alert resolved in pharos", |p| {
        p.api("/api/v1/alerts")["data"]["alerts"]
            .as_array()
            .is_some_and(|v| v.is_empty())
    });
    wait(
        Duration::from_secs(30),
        "alert resolved in alertmanager",
        || am.alerts(prefix).is_empty(),
    );
    let m = get(&pharos.web, "/metrics").unwrap().1;
    assert!(
        m.lines()
            .any(|l| l.starts_with("prometheus_notifications_sent_total{") && !l.ends_with(" 0")),
        "{m}"
    );
    stop.store(true, Ordering::SeqCst);
    server.join().unwrap();
    assert!(pharos.signal_and_wait("TERM").success());
}

#[test]
fn invalid_rule_file_stops_start_up_and_is_kept_out_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n- name: g\n  rules:\n  - alert: Broken\n    expr: up ==\n",
    )
    .unwrap();
    let cfg_path = dir.path().join("pharos.yml");
    std::fs::write(&cfg_path, "rule_files: ['rules.yml']\nscrape_configs: []\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pharos"))
        .arg(format!("--config.file={}", cfg_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("d").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .arg("--exporter.listen-address=off")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "rules.yml: 5:11: group \"g\", rule 1, \"Broken\": could not parse expression"
        ),
        "{err}"
    );

    // A good file starts; a broken reload keeps the old rules and says so.
    std::fs::write(
        &rules,
        "groups:\n- name: g\n  interval: 1s\n  rules:\n  - record: one\n    expr: vector(1)\n",
    )
    .unwrap();
    let pharos = Pharos::start(
        free_port(),
        &[
            &format!("--config.file={}", cfg_path.display()),
            &format!("--storage.tsdb.path={}", dir.path().join("d").display()),
            "--exporter.listen-address=off",
        ],
        &dir.path().join("pharos.log"),
    );
    std::fs::write(
        &rules,
        "groups:\n- name: g\n  rules:\n  - record: 'bad name'\n    expr: up\n",
    )
    .unwrap();
    let (status, body) = post(&pharos.web, "/-/reload").unwrap();
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("invalid recording rule name"), "{body}");
    let r = pharos.api("/api/v1/rules");
    assert_eq!(r["data"]["groups"][0]["rules"][0]["name"], "one");
    pharos.wait_until(Duration::from_secs(20), "old rule still evaluated", |p| {
        p.api("/api/v1/query?query=one")["data"]["result"]
            .as_array()
            .is_some_and(|v| !v.is_empty())
    });
    let m = get(&pharos.web, "/metrics").unwrap().1;
    assert!(
        m.contains("pharos_rule_config_last_reload_successful 0"),
        "{m}"
    );
    assert!(m.contains("pharos_config_last_reload_successful 0"), "{m}");
    let info = pharos.api("/api/v1/status/runtimeinfo");
    assert_eq!(info["data"]["reloadConfigSuccess"], false, "{info}");
    // Mending the file and reloading again clears the flag.
    std::fs::write(
        &rules,
        "groups:\n- name: g\n  rules:\n  - record: one\n    expr: vector(1)\n",
    )
    .unwrap();
    let (status, body) = post(&pharos.web, "/-/reload").unwrap();
    assert_eq!(status, 200, "{body}");
    let info = pharos.api("/api/v1/status/runtimeinfo");
    assert_eq!(info["data"]["reloadConfigSuccess"], true, "{info}");
}

/// Runs a command in `dir`; returns (success, stdout, stderr without log lines).
fn run_in(dir: &Path, prog: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(prog)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {prog}: {e} (apt-get install prometheus)"));
    let err: String = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.contains("ERROR"))
        .map(|l| format!("{l}\n"))
        .collect();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        err,
    )
}

#[test]
fn check_and_test_rules_agree_with_promtool() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/rules");
    let pharos = env!("CARGO_BIN_EXE_pharos");
    // Same verdict and the same messages (file, line:col, group, rule, problem).
    for file in ["rules.yml", "bad_rules.yml"] {
        let want = run_in(&dir, "promtool", &["check", "rules", file]);
        let got = run_in(&dir, pharos, &["check", "rules", file]);
        assert_eq!(got.0, want.0, "{file}: exit status");
        assert_eq!(got.1, want.1, "{file}: stdout");
        assert_eq!(got.2, want.2, "{file}: stderr");
    }
    // Same pass/fail outcome of the unit-test files.
    let mut tests: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".test.yml"))
        .collect();
    tests.sort();
    assert!(tests.len() >= 3);
    for t in &tests {
        let want = run_in(&dir, "promtool", &["test", "rules", t]);
        let got = run_in(&dir, pharos, &["test", "rules", t]);
        assert_eq!(
            got.0, want.0,
            "{t}: promtool says {}, pharos says {}\npromtool: {}{}\npharos: {}{}",
            want.0, got.0, want.1, want.2, got.1, got.2
        );
    }
}

#[test]
fn default_rules_pass_their_unit_tests_in_pharos_and_promtool() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/rules");
    let pharos = env!("CARGO_BIN_EXE_pharos");
    for prog in ["promtool", pharos] {
        let (ok, out, err) = run_in(&dir, prog, &["check", "rules", "pharos.rules.yml"]);
        assert!(ok, "{prog} check rules: {out}{err}");
        assert!(out.contains("SUCCESS: 13 rules found"), "{prog}: {out}");
        let (ok, out, err) = run_in(&dir, prog, &["test", "rules", "pharos.rules.test.yml"]);
        assert!(ok, "{prog} test rules: {out}{err}");
        assert!(out.contains("SUCCESS"), "{prog}: {out}");
    }
    // The tests can fail: a wrong expected annotation fails in both.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir.join("pharos.rules.yml"),
        tmp.path().join("pharos.rules.yml"),
    )
    .unwrap();
    let tests = std::fs::read_to_string(dir.join("pharos.rules.test.yml")).unwrap();
    let broken = tests.replace("restarted 3 times", "restarted 4 times");
    assert_ne!(broken, tests);
    std::fs::write(tmp.path().join("pharos.rules.test.yml"), broken).unwrap();
    for prog in ["promtool", pharos] {
        let (ok, out, err) = run_in(
            tmp.path(),
            prog,
            &["test", "rules", "pharos.rules.test.yml"],
        );
        assert!(!ok, "{prog} passed a wrong expectation: {out}{err}");
        let all = format!("{out}{err}");
        assert!(all.contains("alertname: PodCrashLooping"), "{prog}: {all}");
    }
}
