//! Alerts over https: a real Alertmanager 0.25 (Debian's `prometheus-alertmanager`) serving TLS
//! and basic auth from a `--web.config.file`, under a route prefix; the `pharos` binary posts to
//! it with `scheme: https`, `tls_config` (CA file, `server_name`), `basic_auth` (password file)
//! and `path_prefix`. A second Alertmanager entry with the wrong CA fails with a clear error.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Pharos, free_port, get};

#[path = "../../collector/tests/pki/mod.rs"]
mod pki;

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
const PASSWORD: &str = "s3cret-pw";

/// A bcrypt hash of `password` (libxcrypt through perl's `crypt`), for Alertmanager's
/// `basic_auth_users`.
fn bcrypt(password: &str) -> String {
    let out = Command::new("perl")
        .args([
            "-e",
            "print crypt($ARGV[0], '$2b$05$pharospharospharospharo')",
            password,
        ])
        .output()
        .expect("perl");
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(
        hash.starts_with("$2b$05$"),
        "no bcrypt in crypt(3): {hash:?}"
    );
    hash
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `curl` over https with the test CA and the basic-auth user: (HTTP status, body).
fn curl(ca: &str, url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert", ca, "-u"])
        .arg(format!("pharos:{PASSWORD}"))
        .args(["-w", "\n%{http_code}", url])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
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

#[test]
fn alerts_reach_alertmanager_over_https_with_basic_auth() {
    assert!(
        Path::new(ALERTMANAGER).exists(),
        "{ALERTMANAGER} is missing: apt-get install prometheus-alertmanager (see .ci/run)"
    );
    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  pharos: '{}'\n",
            pki.p("server.crt"),
            pki.p("server.key"),
            bcrypt(PASSWORD)
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("am.yml"),
        "route:\n  receiver: blackhole\n  group_wait: 1s\n  group_interval: 1s\nreceivers:\n- name: blackhole\n",
    )
    .unwrap();
    let am_port = free_port();
    let log = std::fs::File::create(d.join("am.log")).unwrap();
    let _am = Killed(
        Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", d.join("am.yml").display()))
            .arg(format!("--web.config.file={}", d.join("web.yml").display()))
            .arg(format!("--storage.path={}", d.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--web.route-prefix=/am")
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start alertmanager"),
    );
    let ca = pki.p("ca.crt");
    let alerts_url = format!("https://127.0.0.1:{am_port}/am/api/v2/alerts");
    wait(
        Duration::from_secs(30),
        "alertmanager ready over https",
        || curl(&ca, &format!("https://127.0.0.1:{am_port}/am/-/ready")).0 == 200,
    );
    // Basic auth is enforced: no password, no alerts.
    let anon = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
            &ca,
        ])
        .arg(&alerts_url)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&anon.stdout), "401");

    std::fs::write(d.join("pw"), format!("{PASSWORD}\n")).unwrap();
    std::fs::write(
        d.join("rules.yml"),
        "groups:\n- name: g\n  interval: 1s\n  rules:\n  - alert: Always\n    expr: vector(1)\n    labels: {severity: test}\n",
    )
    .unwrap();
    let am = |target: &str, ca_file: &str| {
        format!(
            "  - scheme: https\n    path_prefix: /am\n    basic_auth: {{username: pharos, password_file: pw}}\n    tls_config: {{ca_file: '{ca_file}', server_name: metrics.test}}\n    static_configs: [{{targets: ['{target}']}}]\n"
        )
    };
    let cfg = format!(
        "global: {{evaluation_interval: 1s}}\nrule_files: [rules.yml]\nalerting:\n  alertmanagers:\n{}{}",
        am(&format!("127.0.0.1:{am_port}"), &ca),
        am(&format!("localhost:{am_port}"), &pki.p("other.crt")),
    );
    // password_file is relative to the working directory; give absolute paths.
    let cfg = cfg.replace(
        "password_file: pw",
        &format!("password_file: '{}'", d.join("pw").display()),
    );
    std::fs::write(d.join("pharos.yml"), cfg).unwrap();
    let web_port = free_port();
    let pharos_log = d.join("pharos.log");
    let pharos = Pharos::start(
        web_port,
        &[
            &format!("--config.file={}", d.join("pharos.yml").display()),
            &format!("--storage.tsdb.path={}", d.join("data").display()),
            "--exporter.listen-address=off",
        ],
        &pharos_log,
    );
    wait(Duration::from_secs(30), "the alert in alertmanager", || {
        let (status, body) = curl(&ca, &alerts_url);
        status == 200 && body.contains("\"alertname\":\"Always\"")
    });
    let (_, body) = curl(&ca, &alerts_url);
    let alerts: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(alerts.len(), 1, "{body}");
    assert_eq!(alerts[0]["labels"]["severity"], "test");

    // The entry with the wrong CA counts errors and logs why.
    let bad = format!("https://localhost:{am_port}/am/api/v2/alerts");
    let errors = |m: &str| {
        m.lines()
            .find(|l| {
                l.starts_with("prometheus_notifications_errors_total{")
                    && l.contains(&format!("alertmanager=\"{bad}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    wait(Duration::from_secs(30), "an error for the wrong CA", || {
        errors(&get(&pharos.web, "/metrics").unwrap().1) > 0.0
    });
    let m = get(&pharos.web, "/metrics").unwrap().1;
    let good = format!("https://127.0.0.1:{am_port}/am/api/v2/alerts");
    assert!(
        m.lines()
            .any(|l| l.starts_with("prometheus_notifications_sent_total{")
                && l.contains(&good)
                && !l.ends_with(" 0")),
        "{m}"
    );
    assert!(pharos.signal_and_wait("TERM").success());
    let log = std::fs::read_to_string(&pharos_log).unwrap();
    assert!(
        log.contains("invalid peer certificate: UnknownIssuer") && log.contains(&bad),
        "{log}"
    );
}
