//! The dashboard in a real browser: a running Pharos scraping its embedded node exporter, a
//! second `pharos exporter` and a fake cAdvisor/kube-state-metrics endpoint (with hostile and
//! UTF-8 label values), pages loaded in headless Chromium (`--dump-dom` to check the DOM after
//! the page script ran, `--screenshot` for a person to look at). Screenshots are written to
//! `$CARGO_TARGET_TMPDIR/browser/`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{Pharos, enc, free_port, get};

/// A pod name that would run script if it were inserted as HTML.
const EVIL_POD: &str = "<script>document.body.dataset.pwned=1</script>";
/// A pod name with quotes and non-ASCII text.
const UTF8_POD: &str = "café-日本-\\\"q'";
/// The same name as it reads after unescaping the exposition format.
const UTF8_POD_TEXT: &str = "café-日本-\"q'";

/// Serves cAdvisor- and kube-state-metrics-style pod metrics on `listener` until `stop`; the
/// counters grow with every scrape.
fn fake_pods(listener: TcpListener, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let n = AtomicU64::new(0);
        while !stop.load(Ordering::SeqCst) {
            let Ok((mut s, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let i = n.fetch_add(1, Ordering::SeqCst) as f64;
            let pods = [
                ("prod", "api-7d9f", 0.5, 300e6, 2.0),
                ("prod", "db-0", 1.2, 900e6, 0.0),
                ("dev", EVIL_POD, 0.1, 50e6, 1.0),
                ("dev", UTF8_POD, 0.2, 80e6, 0.0),
            ];
            let mut body = String::new();
            for (ns, pod, cpu, mem, restarts) in pods {
                let l = format!("namespace=\"{ns}\",pod=\"{pod}\",container=\"main\"");
                body.push_str(&format!(
                    "container_cpu_usage_seconds_total{{{l}}} {}\n\
                     container_memory_working_set_bytes{{{l}}} {}\n\
                     container_network_receive_bytes_total{{{l},interface=\"eth0\"}} {}\n\
                     container_network_transmit_bytes_total{{{l},interface=\"eth0\"}} {}\n\
                     container_fs_reads_bytes_total{{{l}}} {}\n\
                     container_fs_writes_bytes_total{{{l}}} {}\n\
                     container_oom_events_total{{{l}}} {}\n\
                     kube_pod_container_resource_requests{{{l},resource=\"cpu\"}} {}\n\
                     kube_pod_container_resource_limits{{{l},resource=\"cpu\"}} {}\n\
                     kube_pod_container_resource_limits{{{l},resource=\"memory\"}} {}\n\
                     kube_pod_container_status_restarts_total{{{l}}} {}\n",
                    i * cpu,
                    mem + (i % 10.0) * 1e6,
                    i * 1e5 * cpu,
                    i * 5e4 * cpu,
                    i * 2e4,
                    i * 4e4,
                    restarts,
                    cpu * 0.8,
                    cpu * 2.0,
                    mem * 1.5,
                    restarts + (i / 20.0).floor(),
                ));
            }
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    })
}

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromium() -> &'static str {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(c)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            return c;
        }
    }
    panic!("headless Chromium is needed for the browser tests: apt-get install -y chromium");
}

/// Runs headless Chromium with `args` on `url` (fresh profile) and returns its stdout.
fn chrome(args: &[String], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--virtual-time-budget=3000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .arg(url)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut child = Killed(cmd.spawn().expect("start chromium"));
    let mut out = child.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.0.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "chromium did not finish on {url}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().unwrap()
}

/// The DOM of `url` after the page and its script ran. Checks the script ran without errors.
fn dom(base: &str, path: &str) -> String {
    let html = chrome(&["--dump-dom".into()], &format!("http://{base}{path}"));
    assert!(
        html.contains("data-js=\"ok\""),
        "page script did not run on {path}:\n{html}"
    );
    assert!(
        !html.contains("data-js-errors=\""),
        "script errors on {path}:\n{html}"
    );
    assert!(
        !html.contains("data-pwned=\""),
        "a label value ran as script on {path}"
    );
    html
}

/// Writes a screenshot of `url` at `width`x`height` to `dir/name.png`.
fn screenshot(dir: &Path, base: &str, path: &str, name: &str, size: (u32, u32)) -> PathBuf {
    let file = dir.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&file);
    chrome(
        &[
            format!("--screenshot={}", file.display()),
            format!("--window-size={},{}", size.0, size.1),
        ],
        &format!("http://{base}{path}"),
    );
    let png = std::fs::read(&file).unwrap_or_default();
    assert!(
        png.starts_with(b"\x89PNG"),
        "no screenshot of {path} at {}",
        file.display()
    );
    assert!(
        png.len() > 10_000,
        "screenshot of {path} is suspiciously small"
    );
    file
}

/// Series lines drawn in the charts of a page (plotters draws them 2px wide).
fn plotted_lines(html: &str) -> usize {
    html.matches("<polyline")
        .count()
        .min(html.matches("stroke-width=\"2\"").count())
}

#[track_caller]
fn has_all(html: &str, what: &str, wanted: &[&str]) {
    for w in wanted {
        assert!(html.contains(w), "{what}: missing {w:?}");
    }
}

fn result_count(p: &Pharos, expr: &str) -> usize {
    let (status, body) = get(&p.web, &format!("/api/v1/query?query={}", enc(expr))).unwrap();
    if status != 200 {
        return 0;
    }
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["data"]["result"].as_array().map_or(0, Vec::len)
}

#[test]
fn dashboard_pages_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&shots).unwrap();

    let (web, exporter, exporter2) = (free_port(), free_port(), free_port());
    let pods_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let pods_addr = pods_listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let pods = fake_pods(pods_listener, stop.clone());

    let _second_node = Killed(
        Command::new(env!("CARGO_BIN_EXE_pharos"))
            .args([
                "exporter",
                &format!("--web.listen-address=127.0.0.1:{exporter2}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let cfg = dir.path().join("pharos.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files: ['{rules}']\n\
             scrape_configs:\n\
             \x20 - job_name: pharos\n    static_configs:\n      - targets: ['127.0.0.1:{web}']\n\
             \x20 - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{exporter}', '127.0.0.1:{exporter2}']\n\
             \x20 - job_name: kubernetes-pods\n    static_configs:\n      - targets: ['{pods_addr}']\n\
             \x20 - job_name: down\n    static_configs:\n      - targets: ['127.0.0.1:1']\n",
            rules = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("deploy/rules/pharos.rules.yml")
                .display()
        ),
    )
    .unwrap();
    let p = Pharos::start(
        web,
        &[
            &format!("--config.file={}", cfg.display()),
            &format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            &format!("--exporter.listen-address=127.0.0.1:{exporter}"),
        ],
        &dir.path().join("pharos.log"),
    );
    // Enough samples for rates of both nodes and all pods.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(result_count(
        &p,
        "rate(node_cpu_seconds_total{mode=\"idle\",cpu=\"0\"}[1m])",
    ) == 2
        && result_count(
            &p,
            "rate(container_cpu_usage_seconds_total{job=\"kubernetes-pods\"}[1m]) > 0",
        ) == 4)
    {
        assert!(
            Instant::now() < deadline,
            "no rates of both nodes and all pods after 60s: {:?} {:?}",
            get(
                &p.web,
                &format!(
                    "/api/v1/query?query={}",
                    enc("rate(node_cpu_seconds_total{mode=\"idle\",cpu=\"0\"}[1m])")
                )
            ),
            get(
                &p.web,
                &format!(
                    "/api/v1/query?query={}",
                    enc("rate(container_cpu_usage_seconds_total[1m])")
                )
            ),
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(4));
    let base = p.web.clone();
    let node_a = format!("127.0.0.1:{exporter}");

    // Home: health at a glance.
    let html = dom(&base, "/?range=5m");
    has_all(
        &html,
        "home",
        &[
            "Overview",
            "Nodes up",
            "Firing alerts",
            "Targets with errors",
            "127.0.0.1:1",
        ],
    );
    assert!(
        plotted_lines(&html) > 0,
        "home has no plotted lines: {}",
        html.get(html.find("<svg").unwrap_or(0)..)
            .unwrap_or("")
            .chars()
            .take(3000)
            .collect::<String>()
    );

    // Nodes, all nodes: overview, the table with a row per node, and a repeated row per node.
    let html = dom(&base, "/d/nodes?range=5m");
    has_all(
        &html,
        "nodes",
        &[
            "<h1>Nodes</h1>",
            "CPU by mode",
            "Disk space used per mount",
            &format!("Node {node_a}"),
            &format!("Node 127.0.0.1:{exporter2}"),
            &format!("href=\"/d/nodes?var-instance=127.0.0.1%3A{exporter}\""),
            "class=\"active\">5m</a>",
            "<th class=\"num\">Min</th>",
        ],
    );
    assert!(!html.contains("Query failed"), "a nodes panel failed");
    assert!(
        plotted_lines(&html) >= 10,
        "nodes: {} lines",
        plotted_lines(&html)
    );
    let all_lines = plotted_lines(&html);

    // One node: the variable changes what is shown (no repeated rows).
    let one = format!("/d/nodes?range=5m&var-instance={}", enc(&node_a));
    let html = dom(&base, &one);
    assert!(!html.contains(&format!("Node 127.0.0.1:{exporter2}")));
    assert!(
        html.contains(&format!("<option value=\"{node_a}\" selected")),
        "selected node"
    );
    assert!(plotted_lines(&html) < all_lines && plotted_lines(&html) > 0);

    // The time picker: an absolute range is shown as such.
    let now = pharos_model::now_ms();
    let html = dom(
        &base,
        &format!("/d/nodes?from={}&to={}", now - 120_000, now - 60_000),
    );
    has_all(
        &html,
        "absolute range",
        &[&format!("value=\"{}\"", now - 120_000)],
    );
    assert!(!html.contains("class=\"active\">1h</a>"));

    // Pods: namespaces and pods from label values; hostile names are text.
    let html = dom(&base, "/d/pods?range=5m");
    has_all(
        &html,
        "pods",
        &[
            "<h1>Pods</h1>",
            "api-7d9f",
            "db-0",
            "&lt;script&gt;document.body.dataset.pwned=1&lt;/script&gt;",
            UTF8_POD_TEXT,
            "Top pods by CPU and memory",
            "CPU usage vs request and limit",
        ],
    );
    assert!(!html.contains("Query failed"), "a pods panel failed");
    assert!(plotted_lines(&html) >= 4);
    let html = dom(&base, "/d/pods?range=5m&var-namespace=prod");
    assert!(
        html.contains("db-0") && !html.contains("dataset.pwned"),
        "namespace filter"
    );

    // Explore: graph, table, and an error with its position.
    let html = dom(
        &base,
        &format!(
            "/graph?expr={}&range=5m",
            enc("rate(node_cpu_seconds_total{mode=\"user\"}[1m])")
        ),
    );
    assert!(plotted_lines(&html) >= 2);
    let html = dom(&base, &format!("/graph?tab=table&expr={}", enc("up")));
    has_all(
        &html,
        "explore table",
        &["job=\"kubernetes-pods\"", "results"],
    );
    let html = dom(&base, &format!("/graph?expr={}", enc("sum(rate(up[1m])")));
    has_all(&html, "explore error", &["class=\"errpos\"", "<mark>"]);

    // Targets, Status, the dashboard list and a panel as an image.
    let html = dom(&base, "/targets");
    has_all(&html, "targets", &["kubernetes-pods", "badge down"]);
    let html = dom(&base, "/status");
    has_all(&html, "status", &["head series", "scrape_configs"]);
    // Alerts and Rules, with the default rule set: the down target makes TargetDown pending.
    let html = dom(&base, "/alerts");
    has_all(&html, "alerts", &["TargetDown", "NodeFilesystemFillingUp"]);
    let html = dom(&base, "/rules");
    has_all(&html, "rules", &["pharos.rules.yml", "ContainerOOMKilled"]);
    let html = dom(&base, "/dashboards");
    has_all(
        &html,
        "dashboards",
        &["href=\"/d/nodes\"", "href=\"/d/pods\""],
    );
    let (status, svg) = get(
        &base,
        &format!("/render?expr={}&range=5m&title=Load", enc("node_load1")),
    )
    .unwrap();
    assert_eq!(status, 200);
    assert!(
        svg.starts_with("<svg") && svg.contains("<polyline"),
        "{svg}"
    );

    // Screenshots for a person to look at.
    for (path, name, size) in [
        ("/d/nodes?range=5m".to_string(), "nodes", (1400, 2600)),
        (format!("{one}&theme=dark"), "nodes-one-dark", (1400, 1800)),
        ("/d/pods?range=5m".to_string(), "pods", (1400, 2000)),
        ("/".to_string(), "home", (1400, 1400)),
        (
            format!(
                "/graph?range=5m&expr={}",
                enc("sum by (mode) (rate(node_cpu_seconds_total[1m]))")
            ),
            "explore",
            (1400, 1000),
        ),
        ("/d/nodes?range=5m".to_string(), "nodes-narrow", (420, 2400)),
        ("/alerts".to_string(), "alerts", (1400, 1400)),
    ] {
        let f = screenshot(&shots, &base, &path, name, size);
        eprintln!("screenshot: {}", f.display());
    }
    stop.store(true, Ordering::SeqCst);
    pods.join().unwrap();
}
