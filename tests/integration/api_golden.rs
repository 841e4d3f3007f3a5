//! Golden tests of the Prometheus HTTP API: the real Prometheus 2.42 (Debian `prometheus`) and
//! Pharos are loaded with the same samples and asked the same requests; the responses must match
//! byte for byte after the few normalisations listed in [`Norm`].
//!
//! Prometheus' responses are also kept under `tests/testdata/api/` (one `.golden` file per
//! request: status line, content type, body). With Prometheus installed, the live responses are
//! compared with the golden files too (set `PHAROS_UPDATE_GOLDEN=1` to rewrite them after a
//! deliberate change of the requests or data); without it, Pharos is compared with the golden
//! files alone, so the test still says something on a machine without the package.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pharos_model::Labels;
use pharos_model::storage::Appendable;

use crate::harness::{Pharos, free_port};

/// 2023-01-01T00:00:00Z in ms: the start of the data set.
const T0: i64 = 1_672_531_200_000;
/// The data set covers one hour.
const SPAN: i64 = 3_600_000;

/// One series of the shared data set.
struct Series {
    labels: Vec<(&'static str, String)>,
    samples: Vec<(i64, f64)>,
}

/// The data set both servers are loaded with: counters, gauges with fractions, special values,
/// timestamps with millisecond fractions, classic histogram buckets and label values that JSON
/// must escape.
fn dataset() -> Vec<Series> {
    let mut out = Vec::new();
    let every = |step_ms: i64| (0..=SPAN / step_ms).map(move |i| (i, T0 + i * step_ms));
    for (inst, method, code, rate) in [
        ("a:80", "GET", "200", 3.0),
        ("a:80", "POST", "500", 0.5),
        ("b:80", "GET", "200", 7.25),
    ] {
        out.push(Series {
            labels: vec![
                ("__name__", "http_requests_total".into()),
                ("code", code.into()),
                ("instance", inst.into()),
                ("job", "api".into()),
                ("method", method.into()),
            ],
            samples: every(15_000).map(|(i, t)| (t, i as f64 * rate)).collect(),
        });
    }
    for inst in ["a:80", "b:80"] {
        out.push(Series {
            labels: vec![
                ("__name__", "node_load1".into()),
                ("instance", inst.into()),
                ("job", "node".into()),
            ],
            samples: every(15_000)
                .map(|(i, t)| {
                    (
                        t,
                        ((i % 17) as f64) * 0.1 + if inst == "b:80" { 1e-7 } else { 0.0 },
                    )
                })
                .collect(),
        });
    }
    let specials = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e21,
        -0.000123,
        42.0,
    ];
    out.push(Series {
        labels: vec![("__name__", "special".into()), ("kind", "values".into())],
        samples: every(60_000)
            .map(|(i, t)| (t, specials[i as usize % specials.len()]))
            .collect(),
    });
    // Millisecond fractions in timestamps: .780, .005, .123 ...
    out.push(Series {
        labels: vec![("__name__", "jittery".into()), ("job", "x".into())],
        samples: every(30_000)
            .map(|(i, t)| (t + [780, 5, 123, 0, 50][i as usize % 5], i as f64))
            .collect(),
    });
    for (le, frac) in [("0.1", 0.5), ("0.5", 0.8), ("+Inf", 1.0)] {
        out.push(Series {
            labels: vec![
                ("__name__", "req_duration_seconds_bucket".into()),
                ("job", "api".into()),
                ("le", le.into()),
            ],
            samples: every(15_000)
                .map(|(i, t)| (t, (i as f64 * 10.0 * frac).floor()))
                .collect(),
        });
    }
    out.push(Series {
        labels: vec![
            ("__name__", "escapes".into()),
            ("path", "/a\"b\\c<d>&e".into()),
            ("unicode", "ü\u{2028}x".into()),
        ],
        samples: every(60_000).map(|(i, t)| (t, i as f64 / 3.0)).collect(),
    });
    out
}

/// Formats a value for the OpenMetrics file so it parses back to the same f64.
fn om_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v:e}")
    }
}

fn om_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The data set as an OpenMetrics file (for `promtool tsdb create-blocks-from openmetrics`).
fn openmetrics(data: &[Series]) -> String {
    let mut s = String::new();
    for x in data {
        let name = &x.labels[0].1;
        let labels: Vec<String> = x.labels[1..]
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", om_escape(v)))
            .collect();
        for (t, v) in &x.samples {
            s.push_str(&format!(
                "{name}{{{}}} {} {}.{:03}\n",
                labels.join(","),
                om_value(*v),
                t / 1000,
                t % 1000
            ));
        }
    }
    s.push_str("# EOF\n");
    s
}

/// An empty configuration, the same for both servers.
const CONFIG: &str = "global:\n  scrape_interval: 15s\n";

/// A real Prometheus, killed on drop.
struct Prometheus {
    child: Child,
    addr: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn have_prometheus() -> bool {
    ["prometheus", "promtool"].iter().all(|b| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn wait_ready(addr: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if http(addr, "GET", "/-/ready", None, &[]).is_ok_and(|r| r.status == 200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{what} on {addr} not ready after 60s");
}

fn start_prometheus(dir: &Path, data: &[Series], admin: bool) -> Prometheus {
    let om = dir.join("data.om");
    std::fs::write(&om, openmetrics(data)).unwrap();
    let tsdb = dir.join("prom-data");
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(&tsdb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = dir.join("prometheus.yml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.tsdb.path={}", tsdb.display()))
        .arg("--storage.tsdb.retention.time=100y")
        .arg(format!("--web.listen-address={addr}"))
        .arg("--web.enable-lifecycle");
    if admin {
        cmd.arg("--web.enable-admin-api");
    }
    let child = cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap();
    let p = Prometheus { child, addr };
    wait_ready(&p.addr, "prometheus");
    p
}

fn start_pharos(dir: &Path, data: &[Series], admin: bool) -> Pharos {
    let tsdb = dir.join("pharos-data");
    {
        let db = pharos_tsdb::Db::open(&tsdb, pharos_tsdb::Options::default()).unwrap();
        let mut app = db.appender();
        for x in data {
            let l = Labels::from_pairs(&x.labels);
            let mut r = None;
            for (t, v) in &x.samples {
                r = Some(app.append(r, &l, *t, *v).unwrap());
            }
        }
        app.commit().unwrap();
        db.close().unwrap();
    }
    let cfg = dir.join("pharos.yml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let mut args = vec![
        format!("--config.file={}", cfg.display()),
        format!("--storage.tsdb.path={}", tsdb.display()),
        "--exporter.listen-address=off".to_string(),
    ];
    if admin {
        args.push("--web.enable-admin-api".into());
    }
    // Prometheus' data is in blocks (promtool): with the admin API, so is Pharos', so that
    // deleting and cleaning work on the same kind of storage.
    if admin {
        let db = pharos_tsdb::Db::open(&tsdb, pharos_tsdb::Options::default()).unwrap();
        db.flush().unwrap();
        db.close().unwrap();
    }
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    Pharos::start(free_port(), &args, &dir.join("pharos.log"))
}

/// A response: status, content type, body.
struct Reply {
    status: u16,
    content_type: String,
    content_encoding: String,
    /// `Access-Control-Allow-Origin`.
    cors: String,
    body: String,
}

/// A blocking HTTP/1.1 request with `Connection: close`.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    form: Option<&str>,
    headers: &[(&str, &str)],
) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    match form {
        Some(b) => req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None if method == "POST" => req.push_str("Content-Length: 0\r\n\r\n"),
        None => req.push_str("\r\n"),
    }
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw.get(split + 4..).unwrap_or_default().to_vec();
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body);
    }
    if header("content-encoding").is_some_and(|v| v.eq_ignore_ascii_case("gzip")) {
        let mut d = flate2::read::GzDecoder::new(&body[..]);
        let mut out = Vec::new();
        d.read_to_end(&mut out)?;
        body = out;
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok(Reply {
        status,
        content_type: header("content-type").unwrap_or_default(),
        content_encoding: header("content-encoding").unwrap_or_default(),
        cors: header("access-control-allow-origin").unwrap_or_default(),
        body: String::from_utf8_lossy(&body).to_string(),
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&b[..i]);
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        let rest = &b[i + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        b = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// What may legitimately differ between the two servers, and how it is blanked out.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Norm {
    /// Byte for byte.
    Exact,
    /// Evaluation at "now": every JSON number that is a sample timestamp is replaced by 0.
    Now,
    /// Build, runtime and flag values differ by nature: keep the JSON shape (keys and value
    /// types) of `data`, blank every string and number.
    Shape,
    /// Only the status code and the envelope's `status`/`errorType` must match: where the error
    /// text comes from a different regular expression library or parser, and for timeouts,
    /// whose stage (`query queue` or `query execution`) Prometheus picks at random when the
    /// deadline has passed on arrival (a Go `select` between two ready channels).
    StatusOnly,
    /// The product name in plain-text answers (`Prometheus Server is Healthy.`).
    Product,
    /// A snapshot's random name: checked for Prometheus' form `YYYYMMDDTHHMMSSZ-<16 hex>`,
    /// then replaced by `NAME`.
    SnapshotName,
}

/// One request of the golden table.
struct Req {
    name: &'static str,
    method: &'static str,
    path: String,
    form: Option<String>,
    norm: Norm,
}

fn enc(s: &str) -> String {
    crate::harness::enc(s)
}

/// Seconds of `T0 + offset_ms` as the API writes them.
fn ts(offset_ms: i64) -> String {
    let t = T0 + offset_ms;
    if t % 1000 == 0 {
        format!("{}", t / 1000)
    } else {
        format!("{}.{:03}", t / 1000, t % 1000)
    }
}

fn requests() -> Vec<Req> {
    let mut v = Vec::new();
    let mut add = |name: &'static str,
                   method: &'static str,
                   path: String,
                   form: Option<String>,
                   norm: Norm| {
        v.push(Req {
            name,
            method,
            path,
            form,
            norm,
        })
    };
    let end = ts(SPAN);
    let mid = ts(SPAN / 2);
    let q = |e: &str, t: &str| format!("/api/v1/query?query={}&time={t}", enc(e));
    let qr = |e: &str, s: &str, en: &str, step: &str| {
        format!(
            "/api/v1/query_range?query={}&start={s}&end={en}&step={step}",
            enc(e)
        )
    };
    use Norm::*;
    // Instant queries: every result type and value format.
    add(
        "query_vector",
        "GET",
        q("http_requests_total", &mid),
        None,
        Exact,
    );
    add(
        "query_rate",
        "GET",
        q("sum by (job) (rate(http_requests_total[5m]))", &mid),
        None,
        Exact,
    );
    add("query_scalar", "GET", q("1+1", &mid), None, Exact);
    add("query_string", "GET", q("\"hello\"", &mid), None, Exact);
    add(
        "query_matrix",
        "GET",
        q("node_load1[1m]", &mid),
        None,
        Exact,
    );
    add(
        "query_matrix_ms",
        "GET",
        q("jittery[2m]", &mid),
        None,
        Exact,
    );
    add(
        "query_specials",
        "GET",
        q("special[10m]", &mid),
        None,
        Exact,
    );
    add(
        "query_tiny",
        "GET",
        q("node_load1 * 1e-3", &mid),
        None,
        Exact,
    );
    add("query_escapes", "GET", q("escapes", &mid), None, Exact);
    add(
        "query_histogram",
        "GET",
        q(
            "histogram_quantile(0.9, rate(req_duration_seconds_bucket[5m]))",
            &mid,
        ),
        None,
        Exact,
    );
    add("query_empty", "GET", q("nonexistent", &mid), None, Exact);
    add(
        "query_frac_time",
        "GET",
        q("jittery", "1672532100.78"),
        None,
        Exact,
    );
    add(
        "query_rfc3339",
        "GET",
        q("node_load1", "2023-01-01T00:30:00Z"),
        None,
        Exact,
    );
    add(
        "query_rfc3339_frac",
        "GET",
        q("node_load1", "2023-01-01T00:30:00.5%2B01:00"),
        None,
        Exact,
    );
    add(
        "query_negative_time",
        "GET",
        q("time()", "-1.5"),
        None,
        Exact,
    );
    add(
        "query_timeout",
        "GET",
        format!(
            "{}&timeout=0.000001",
            q("sum(rate(http_requests_total[5m]))", &mid)
        ),
        None,
        StatusOnly,
    );
    add(
        "range_timeout",
        "POST",
        "/api/v1/query_range".into(),
        Some("query=up&start=1&end=1000&step=1&timeout=0".into()),
        StatusOnly,
    );
    add(
        "query_post_and_url",
        "POST",
        format!("/api/v1/query?query=1&time={mid}"),
        Some("query=2".into()),
        Exact,
    );
    add(
        "status_config",
        "GET",
        "/api/v1/status/config".into(),
        None,
        Shape,
    );
    add(
        "query_scalar_frac",
        "GET",
        q("time()", "1672532100.78"),
        None,
        Exact,
    );
    add(
        "query_scalar_tiny",
        "GET",
        q("1e-7 * -1", "1672532100.005"),
        None,
        Exact,
    );
    add("query_scalar_huge", "GET", q("1e21", &mid), None, Exact);
    add("query_scalar_nan", "GET", q("NaN", &mid), None, Exact);
    add(
        "query_string_frac",
        "GET",
        q("\"<a&b>\"", "-0.25"),
        None,
        Exact,
    );
    add(
        "query_vector_tiny",
        "GET",
        q("vector(1e-7)", "1672532100.5"),
        None,
        Exact,
    );
    add(
        "range_tiny_scalar",
        "GET",
        qr("1e-7", &ts(0), &ts(100_000), "33.3"),
        None,
        Exact,
    );
    add(
        "query_range_vector",
        "GET",
        q("rate(http_requests_total[5m])[10m:2m]", &mid),
        None,
        Exact,
    );
    add(
        "query_post",
        "POST",
        "/api/v1/query".into(),
        Some(format!("query={}&time={mid}", enc("node_load1 > 0.5"))),
        Exact,
    );
    add(
        "query_now",
        "GET",
        format!("/api/v1/query?query={}", enc("1+1")),
        None,
        Now,
    );
    add(
        "query_timeout_param",
        "GET",
        format!("{}&timeout=5s", q("up", &mid)),
        None,
        Exact,
    );
    // Instant query errors.
    add("query_missing", "GET", "/api/v1/query".into(), None, Exact);
    add("query_bad_expr", "GET", q("sum(", &mid), None, Exact);
    add("query_bad_expr2", "GET", q("foo{", &mid), None, Exact);
    add(
        "query_bad_expr3",
        "GET",
        q("rate(foo)", &mid),
        None,
        StatusOnly,
    );
    add("query_bad_time", "GET", q("1", "yesterday"), None, Exact);
    add(
        "query_bad_timeout",
        "GET",
        format!("{}&timeout=abc", q("1", &mid)),
        None,
        Exact,
    );
    add(
        "query_exec_error",
        "GET",
        q("label_replace(up, \"a\", \"b\", \"c\", \"(\")", &mid),
        None,
        StatusOnly,
    );
    add(
        "query_many_to_many",
        "GET",
        q("http_requests_total + on(job) node_load1", &mid),
        None,
        Exact,
    );
    add(
        "query_dup_series",
        "GET",
        q(
            "{job=\"api\"} or label_replace(http_requests_total, \"le\", \"x\", \"\", \"\")",
            &mid,
        ),
        None,
        Exact,
    );
    // Range queries.
    add(
        "range_basic",
        "GET",
        qr("rate(http_requests_total[5m])", &ts(0), &end, "300"),
        None,
        Exact,
    );
    add(
        "range_duration_step",
        "GET",
        qr("node_load1", &ts(0), &end, "5m"),
        None,
        Exact,
    );
    add(
        "range_float_step",
        "GET",
        qr("node_load1", &ts(0), &ts(120_000), "7.5"),
        None,
        Exact,
    );
    add(
        "range_rfc3339",
        "GET",
        qr(
            "sum(node_load1)",
            "2023-01-01T00:00:00Z",
            "2023-01-01T00:10:00.000Z",
            "60",
        ),
        None,
        Exact,
    );
    add(
        "range_scalar",
        "GET",
        qr("scalar(sum(node_load1))", &ts(0), &ts(300_000), "60"),
        None,
        Exact,
    );
    add(
        "range_specials",
        "GET",
        qr("special", &ts(0), &ts(600_000), "60"),
        None,
        Exact,
    );
    add(
        "range_frac_times",
        "GET",
        qr("jittery", "1672531200.333", "1672531500.5", "33.3"),
        None,
        Exact,
    );
    add(
        "range_post",
        "POST",
        "/api/v1/query_range".into(),
        Some(format!(
            "query={}&start={}&end={end}&step=600",
            enc("sum(http_requests_total) by (code)"),
            ts(0)
        )),
        Exact,
    );
    add(
        "range_empty",
        "GET",
        qr("nonexistent", &ts(0), &end, "60"),
        None,
        Exact,
    );
    // Range query errors.
    add(
        "range_missing_start",
        "GET",
        format!("/api/v1/query_range?query=up&end={end}&step=60"),
        None,
        Exact,
    );
    add(
        "range_missing_end",
        "GET",
        format!("/api/v1/query_range?query=up&start={end}&step=60"),
        None,
        Exact,
    );
    add(
        "range_missing_step",
        "GET",
        format!("/api/v1/query_range?query=up&start={}&end={end}", ts(0)),
        None,
        Exact,
    );
    add(
        "range_end_before_start",
        "GET",
        qr("up", &end, &ts(0), "60"),
        None,
        Exact,
    );
    add(
        "range_zero_step",
        "GET",
        qr("up", &ts(0), &end, "0"),
        None,
        Exact,
    );
    add(
        "range_negative_step",
        "GET",
        qr("up", &ts(0), &end, "-5"),
        None,
        Exact,
    );
    add(
        "range_bad_step",
        "GET",
        qr("up", &ts(0), &end, "abc"),
        None,
        Exact,
    );
    add(
        "range_too_many_points",
        "GET",
        qr("up", "0", "100000", "1"),
        None,
        Exact,
    );
    add(
        "range_string_expr",
        "GET",
        qr("\"x\"", &ts(0), &end, "60"),
        None,
        Exact,
    );
    add(
        "range_matrix_expr",
        "GET",
        qr("up[5m]", &ts(0), &end, "60"),
        None,
        Exact,
    );
    add(
        "range_bad_expr",
        "GET",
        qr("sum(", &ts(0), &end, "60"),
        None,
        Exact,
    );
    add(
        "range_bad_timeout",
        "GET",
        format!("{}&timeout=x", qr("up", &ts(0), &end, "60")),
        None,
        Exact,
    );
    // Series, labels, label values.
    add(
        "series_one",
        "GET",
        format!("/api/v1/series?match[]={}", enc("node_load1")),
        None,
        Exact,
    );
    add(
        "series_two",
        "GET",
        format!(
            "/api/v1/series?match[]={}&match[]={}",
            enc("node_load1"),
            enc("{job=\"api\",le=\"+Inf\"}")
        ),
        None,
        Exact,
    );
    add(
        "series_range",
        "GET",
        format!(
            "/api/v1/series?match[]={}&start={}&end={}",
            enc("{__name__=~\"node.*|http.*\"}"),
            ts(0),
            ts(60_000)
        ),
        None,
        Exact,
    );
    add(
        "series_outside",
        "GET",
        "/api/v1/series?match[]=node_load1&start=0&end=100".to_string(),
        None,
        Exact,
    );
    add(
        "series_rfc3339",
        "GET",
        "/api/v1/series?match[]=node_load1&start=2023-01-01T00:00:00Z&end=2023-01-01T01:00:00Z"
            .to_string(),
        None,
        Exact,
    );
    add(
        "series_post",
        "POST",
        "/api/v1/series".into(),
        Some(format!(
            "match[]={}",
            enc("http_requests_total{code=\"500\"}")
        )),
        Exact,
    );
    add(
        "series_no_match",
        "GET",
        "/api/v1/series".into(),
        None,
        Exact,
    );
    add(
        "series_bad_match",
        "GET",
        format!("/api/v1/series?match[]={}", enc("{")),
        None,
        Exact,
    );
    add(
        "series_empty_matcher",
        "GET",
        format!("/api/v1/series?match[]={}", enc("{job=\"\"}")),
        None,
        Exact,
    );
    add(
        "series_bad_start",
        "GET",
        "/api/v1/series?match[]=up&start=abc".into(),
        None,
        Exact,
    );
    add("labels_all", "GET", "/api/v1/labels".into(), None, Exact);
    add(
        "labels_match",
        "GET",
        format!("/api/v1/labels?match[]={}", enc("node_load1")),
        None,
        Exact,
    );
    add(
        "labels_range",
        "GET",
        format!("/api/v1/labels?start={}&end={}", ts(0), end),
        None,
        Exact,
    );
    add(
        "labels_outside",
        "GET",
        "/api/v1/labels?start=0&end=100".into(),
        None,
        Exact,
    );
    add(
        "labels_post",
        "POST",
        "/api/v1/labels".into(),
        Some(format!("match[]={}&match[]=special", enc("{le!=\"\"}"))),
        Exact,
    );
    add(
        "labels_bad_match",
        "GET",
        format!("/api/v1/labels?match[]={}", enc("x{")),
        None,
        Exact,
    );
    add(
        "labels_bad_end",
        "GET",
        "/api/v1/labels?end=abc".into(),
        None,
        Exact,
    );
    add(
        "label_values_name",
        "GET",
        "/api/v1/label/__name__/values".into(),
        None,
        Exact,
    );
    add(
        "label_values_job",
        "GET",
        "/api/v1/label/job/values".into(),
        None,
        Exact,
    );
    add(
        "label_values_match",
        "GET",
        format!(
            "/api/v1/label/instance/values?match[]={}",
            enc("node_load1")
        ),
        None,
        Exact,
    );
    add(
        "label_values_range",
        "GET",
        format!("/api/v1/label/job/values?start={}&end={}", ts(0), ts(1000)),
        None,
        Exact,
    );
    add(
        "label_values_escapes",
        "GET",
        "/api/v1/label/path/values".into(),
        None,
        Exact,
    );
    add(
        "label_values_missing",
        "GET",
        "/api/v1/label/nope/values".into(),
        None,
        Exact,
    );
    add(
        "label_values_bad_name",
        "GET",
        "/api/v1/label/1bad/values".into(),
        None,
        Exact,
    );
    add(
        "label_values_bad_match",
        "GET",
        format!("/api/v1/label/job/values?match[]={}", enc("{a=~\"(\"}")),
        None,
        StatusOnly,
    );
    // Metadata, exemplars, targets, rules, alerts.
    add("metadata", "GET", "/api/v1/metadata".into(), None, Exact);
    add(
        "metadata_metric",
        "GET",
        "/api/v1/metadata?metric=node_load1&limit=1".into(),
        None,
        Exact,
    );
    add(
        "targets_metadata",
        "GET",
        "/api/v1/targets/metadata?match_target=%7Bjob%3D%22x%22%7D".into(),
        None,
        Exact,
    );
    add(
        "exemplars",
        "GET",
        format!(
            "/api/v1/query_exemplars?query=node_load1&start={}&end={end}",
            ts(0)
        ),
        None,
        Exact,
    );
    add(
        "exemplars_post",
        "POST",
        "/api/v1/query_exemplars".into(),
        Some(format!("query=node_load1&start={}&end={end}", ts(0))),
        Exact,
    );
    add(
        "exemplars_bad",
        "GET",
        "/api/v1/query_exemplars?query=sum(".into(),
        None,
        Exact,
    );
    add("targets", "GET", "/api/v1/targets".into(), None, Exact);
    add(
        "targets_active",
        "GET",
        "/api/v1/targets?state=active".into(),
        None,
        Exact,
    );
    add(
        "targets_dropped",
        "GET",
        "/api/v1/targets?state=dropped".into(),
        None,
        Exact,
    );
    add("rules", "GET", "/api/v1/rules".into(), None, Exact);
    add(
        "rules_type",
        "GET",
        "/api/v1/rules?type=alert".into(),
        None,
        Exact,
    );
    add("alerts", "GET", "/api/v1/alerts".into(), None, Exact);
    add(
        "alertmanagers",
        "GET",
        "/api/v1/alertmanagers".into(),
        None,
        Exact,
    );
    // Status.
    add(
        "buildinfo",
        "GET",
        "/api/v1/status/buildinfo".into(),
        None,
        Shape,
    );
    add(
        "runtimeinfo",
        "GET",
        "/api/v1/status/runtimeinfo".into(),
        None,
        Shape,
    );
    add(
        "tsdb_status",
        "GET",
        "/api/v1/status/tsdb".into(),
        None,
        Shape,
    );
    add(
        "format_query",
        "GET",
        format!(
            "/api/v1/format_query?query={}",
            enc("sum by(job)(rate(http_requests_total{job=\"api\"}[5m]))>0")
        ),
        None,
        Exact,
    );
    add(
        "format_query_post",
        "POST",
        "/api/v1/format_query".into(),
        Some(format!("query={}", enc("foo  +  bar offset 5m"))),
        Exact,
    );
    add(
        "format_query_bad",
        "GET",
        format!("/api/v1/format_query?query={}", enc("sum(")),
        None,
        Exact,
    );
    // Federation and lifecycle.
    add("federate_empty", "GET", "/federate".into(), None, Exact);
    add("healthy", "GET", "/-/healthy".into(), None, Product);
    add("ready", "GET", "/-/ready".into(), None, Product);
    add("reload", "POST", "/-/reload".into(), None, Exact);
    add("reload_get", "GET", "/-/reload".into(), None, Exact);
    add(
        "walreplay",
        "GET",
        "/api/v1/status/walreplay".into(),
        None,
        Exact,
    );
    add(
        "series_delete",
        "DELETE",
        "/api/v1/series?match[]=up".into(),
        None,
        Exact,
    );
    add(
        "label_values_post",
        "POST",
        "/api/v1/label/job/values".into(),
        None,
        Exact,
    );
    add(
        "snapshot_get",
        "GET",
        "/api/v1/admin/tsdb/snapshot".into(),
        None,
        Exact,
    );
    add("options", "OPTIONS", "/api/v1/query".into(), None, Exact);
    add(
        "query_put",
        "PUT",
        "/api/v1/query?query=1".into(),
        None,
        Exact,
    );
    add(
        "query_get_form_ignored",
        "GET",
        "/api/v1/query".into(),
        Some("query=1".into()),
        Exact,
    );
    add(
        "admin_disabled",
        "POST",
        "/api/v1/admin/tsdb/snapshot".into(),
        None,
        Exact,
    );
    add("not_found", "GET", "/api/v1/nope".into(), None, Exact);
    v
}

/// Applies `norm` to a body.
fn normalise(norm: Norm, body: &str) -> String {
    match norm {
        Norm::Exact => body.to_string(),
        Norm::Now => {
            let mut v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
            if let Some(r) = v.pointer_mut("/data/result/0") {
                *r = serde_json::json!(0);
            }
            v.to_string()
        }
        Norm::Shape => {
            let data = body.find("\"data\":").map(|i| i + 7).unwrap_or(body.len());
            format!("{}{}", &body[..data], blank_values(&body[data..]))
        }
        Norm::Product => body.replace("Prometheus", "Pharos"),
        Norm::SnapshotName => {
            let mut v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
            if let Some(n) = v.pointer_mut("/data/name") {
                let name = n.as_str().unwrap_or_default();
                let b = name.as_bytes();
                let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
                let ok = b.len() == 33
                    && digits(0..8)
                    && b[8] == b'T'
                    && digits(9..15)
                    && &b[15..17] == b"Z-"
                    && b[17..]
                        .iter()
                        .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
                if ok {
                    *n = serde_json::json!("NAME");
                }
            }
            v.to_string()
        }
        Norm::StatusOnly => {
            let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
            serde_json::json!({"status": v["status"], "errorType": v["errorType"]}).to_string()
        }
    }
}

/// Replaces every JSON value that is a string, number or boolean with `""`, `0` or `false`,
/// keeping object keys and their order (raw text, so the order of fields is compared too).
fn blank_values(json: &str) -> String {
    let b = json.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'"' {
            let start = i;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            let rest = json[i.min(b.len())..].trim_start();
            if rest.starts_with(':') {
                out.push_str(&json[start..i.min(b.len())]);
            } else {
                out.push_str("\"\"");
            }
        } else if c == b'-' || c.is_ascii_digit() {
            while i < b.len() && matches!(b[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                i += 1;
            }
            out.push('0');
        } else if json[i..].starts_with("true") || json[i..].starts_with("false") {
            i += if b[i] == b't' { 4 } else { 5 };
            out.push_str("false");
        } else {
            out.push(c as char);
            i += 1;
        }
    }
    out
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/api")
}

fn render(status: u16, content_type: &str, body: &str) -> String {
    format!("{status}\n{content_type}\n{body}\n")
}

fn capture(addr: &str, r: &Req) -> String {
    let reply = http(addr, r.method, &r.path, r.form.as_deref(), &[]).unwrap();
    render(
        reply.status,
        &reply.content_type,
        &normalise(r.norm, &reply.body),
    )
}

/// Loads both servers with the data set, sends `reqs` to both and compares the answers with
/// each other and with the golden files `<prefix><name>.golden`. Returns the servers' addresses
/// (Prometheus' is `None` when it is not installed) for further checks.
fn compare(prefix: &str, reqs: &[Req], admin: bool, more: impl FnOnce(Option<&str>, &str)) {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset();
    let prom = have_prometheus().then(|| start_prometheus(dir.path(), &data, admin));
    if prom.is_none() {
        eprintln!("prometheus/promtool not installed: comparing Pharos with the golden files only");
    }
    let pharos = start_pharos(dir.path(), &data, admin);
    let update = std::env::var_os("PHAROS_UPDATE_GOLDEN").is_some();
    std::fs::create_dir_all(golden_dir()).unwrap();
    let mut diffs = Vec::new();
    for r in reqs {
        let path = golden_dir().join(format!("{prefix}{}.golden", r.name));
        let want = match &prom {
            Some(p) => {
                let live = capture(&p.addr, r);
                if update {
                    std::fs::write(&path, &live).unwrap();
                } else {
                    let stored = std::fs::read_to_string(&path).unwrap_or_default();
                    assert_eq!(
                        stored,
                        live,
                        "{}: Prometheus no longer answers as recorded in {}; rerun with PHAROS_UPDATE_GOLDEN=1",
                        r.name,
                        path.display()
                    );
                }
                live
            }
            None => std::fs::read_to_string(&path).unwrap(),
        };
        let got = capture(&pharos.web, r);
        if got != want {
            diffs.push(format!(
                "--- {} {} {}{}\nprometheus: {want}pharos:     {got}",
                r.name,
                r.method,
                r.path,
                r.form
                    .as_deref()
                    .map(|f| format!(" body {f}"))
                    .unwrap_or_default()
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    more(prom.as_ref().map(|p| p.addr.as_str()), &pharos.web);
}

#[test]
fn api_matches_prometheus() {
    compare("", &requests(), false, |prom, pharos| {
        // Compression: asked for gzip, both compress, and the content is what was sent plain.
        for path in [
            format!(
                "/api/v1/query_range?query=node_load1&start={}&end={}&step=15",
                ts(0),
                ts(SPAN)
            ),
            "/api/v1/series?match[]=http_requests_total".to_string(),
            "/api/v1/labels".to_string(),
        ] {
            for addr in prom.into_iter().chain([pharos]) {
                let origin = [("Origin", "http://grafana.example")];
                let cors = http(addr, "GET", &path, None, &origin).unwrap();
                assert_eq!(cors.cors, "*", "{addr}{path}");
                let plain = http(addr, "GET", &path, None, &[]).unwrap();
                let zipped =
                    http(addr, "GET", &path, None, &[("Accept-Encoding", "gzip")]).unwrap();
                assert_eq!(zipped.content_encoding, "gzip", "{addr}{path}");
                assert_eq!(zipped.status, 200);
                assert_eq!(zipped.body, plain.body, "{addr}{path}");
            }
        }
        // status/flags: each system lists its own flags; those both have, for settings both
        // servers run with at their defaults, must read the same.
        let flags = |addr: &str| -> serde_json::Value {
            let r = http(addr, "GET", "/api/v1/status/flags", None, &[]).unwrap();
            assert_eq!(r.status, 200, "{addr}");
            let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(v["status"], "success", "{addr}");
            assert!(
                v["data"]
                    .as_object()
                    .unwrap()
                    .values()
                    .all(|x| x.is_string()),
                "{addr}: {v}"
            );
            v["data"].clone()
        };
        let ours = flags(pharos);
        for key in [
            "query.lookback-delta",
            "query.max-concurrency",
            "query.max-samples",
            "query.timeout",
            "storage.tsdb.retention.size",
            "web.enable-admin-api",
            "web.enable-remote-write-receiver",
        ] {
            assert!(ours[key].is_string(), "pharos lacks flag {key}: {ours}");
            if let Some(prom) = prom {
                assert_eq!(ours[key], flags(prom)[key], "flag {key}");
            }
        }
        assert_eq!(
            ours["web.listen-address"].as_str().unwrap(),
            pharos,
            "web.listen-address"
        );
    });
}

/// The admin endpoints with `--web.enable-admin-api` on both servers: the parameter checks,
/// then deleting series (part of one, all of another), the queries showing the gap, cleaning
/// the tombstones, the same queries again, and snapshots.
#[test]
fn admin_api_matches_prometheus() {
    use Norm::*;
    let req = |name, method, path: &str, form: Option<&str>, norm| Req {
        name,
        method,
        path: path.to_string(),
        form: form.map(str::to_string),
        norm,
    };
    let reqs = [
        req(
            "delete_no_match",
            "POST",
            "/api/v1/admin/tsdb/delete_series",
            None,
            Exact,
        ),
        req(
            "delete_bad_match",
            "POST",
            "/api/v1/admin/tsdb/delete_series?match[]=%7B",
            None,
            Exact,
        ),
        req(
            "delete_bad_start",
            "PUT",
            "/api/v1/admin/tsdb/delete_series",
            Some("match[]=up&start=x"),
            Exact,
        ),
        req(
            "delete_bad_end",
            "POST",
            "/api/v1/admin/tsdb/delete_series?match[]=up&end=x",
            None,
            Exact,
        ),
        req(
            "clean_tombstones",
            "POST",
            "/api/v1/admin/tsdb/clean_tombstones",
            None,
            Exact,
        ),
        req(
            "snapshot_bad_skip_head",
            "POST",
            "/api/v1/admin/tsdb/snapshot?skip_head=maybe",
            None,
            Exact,
        ),
    ];
    let mut reqs = Vec::from(reqs);
    // What the deletions must change, asked before and after each step.
    let range = format!(
        "/api/v1/query_range?query=node_load1&start={}&end={}&step=60",
        ts(0),
        ts(SPAN)
    );
    let count = format!(
        "/api/v1/query?query=count_over_time(%7B__name__%3D~%22node_load1%7Chttp_requests_total%22%7D%5B2h%5D)&time={}",
        ts(SPAN)
    );
    let series = "/api/v1/series?match[]=http_requests_total".to_string();
    let values = "/api/v1/label/code/values".to_string();
    let checks = |reqs: &mut Vec<Req>, names: [&'static str; 4]| {
        for (name, path) in names.into_iter().zip([&range, &count, &series, &values]) {
            reqs.push(req(name, "GET", path, None, Exact));
        }
    };
    checks(
        &mut reqs,
        [
            "before_range",
            "before_count",
            "before_series",
            "before_values",
        ],
    );
    reqs.push(req(
        "delete_part",
        "POST",
        "/api/v1/admin/tsdb/delete_series",
        Some(&format!(
            "match[]=node_load1%7Binstance%3D%22a%3A80%22%7D&start={}&end={}",
            ts(10 * 60_000),
            ts(20 * 60_000)
        )),
        Exact,
    ));
    reqs.push(req(
        "delete_all",
        "PUT",
        "/api/v1/admin/tsdb/delete_series?match[]=http_requests_total%7Bcode%3D%22500%22%7D",
        None,
        Exact,
    ));
    reqs.push(req(
        "delete_nothing",
        "POST",
        "/api/v1/admin/tsdb/delete_series?match[]=nope&match[]=up%7Bjob%3D%22x%22%7D",
        None,
        Exact,
    ));
    checks(
        &mut reqs,
        [
            "deleted_range",
            "deleted_count",
            "deleted_series",
            "deleted_values",
        ],
    );
    reqs.push(req(
        "clean_after_delete",
        "PUT",
        "/api/v1/admin/tsdb/clean_tombstones",
        None,
        Exact,
    ));
    checks(
        &mut reqs,
        [
            "cleaned_range",
            "cleaned_count",
            "cleaned_series",
            "cleaned_values",
        ],
    );
    reqs.push(req(
        "snapshot",
        "POST",
        "/api/v1/admin/tsdb/snapshot",
        None,
        SnapshotName,
    ));
    reqs.push(req(
        "snapshot_skip_head",
        "PUT",
        "/api/v1/admin/tsdb/snapshot",
        Some("skip_head=true"),
        SnapshotName,
    ));
    // `match[]` after `match[]`: the first is deleted before the second fails to parse.
    reqs.push(req(
        "delete_then_bad",
        "POST",
        "/api/v1/admin/tsdb/delete_series",
        Some("match[]=node_load1%7Binstance%3D%22b%3A80%22%7D&match[]=%7B"),
        Exact,
    ));
    reqs.push(req("partial_count", "GET", &count, None, Exact));
    compare("admin_", &reqs, true, |_, _| {});
}

/// The requests Grafana's Prometheus data source makes (Grafana 9/10, HTTP method POST, the
/// default), as its Go backend and its frontend build them: form bodies with keys sorted as Go's
/// `url.Values.Encode` does, times as float seconds, steps in seconds.
fn grafana_requests() -> Vec<Req> {
    use Norm::*;
    let form = |pairs: &[(&str, &str)]| {
        let mut p: Vec<_> = pairs.to_vec();
        p.sort();
        p.iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect::<Vec<_>>()
            .join("&")
    };
    let (start, end) = (ts(0), ts(SPAN));
    let now = "1672534800.123";
    let mut v = Vec::new();
    let mut add = |name, method, path: String, body: Option<String>, norm| {
        v.push(Req {
            name,
            method,
            path,
            form: body,
            norm,
        })
    };
    // "Save & test": the health check (`1+1` at time 4, an instant query over 1s..4s) and the
    // build-info probe that decides between Prometheus and Mimir.
    add(
        "health_check",
        "POST",
        "/api/v1/query".into(),
        Some(form(&[("query", "1+1"), ("time", "4")])),
        Exact,
    );
    add(
        "buildinfo",
        "GET",
        "/api/v1/status/buildinfo".into(),
        None,
        Shape,
    );
    // Opening a dashboard: the language provider's start-up lookups...
    add(
        "labels",
        "POST",
        "/api/v1/labels".into(),
        Some(form(&[("start", &start), ("end", &end)])),
        Exact,
    );
    add(
        "metric_names",
        "GET",
        format!("/api/v1/label/__name__/values?start={start}&end={end}"),
        None,
        Exact,
    );
    add("metadata", "GET", "/api/v1/metadata".into(), None, Exact);
    // ... the template variables label_values(job) and label_values(node_load1, instance) ...
    add(
        "var_job",
        "GET",
        format!("/api/v1/label/job/values?start={start}&end={end}"),
        None,
        Exact,
    );
    add(
        "var_instance",
        "GET",
        format!("/api/v1/label/instance/values?match%5B%5D=node_load1&start={start}&end={end}"),
        None,
        Exact,
    );
    add(
        "var_series",
        "POST",
        "/api/v1/series".into(),
        Some(form(&[
            ("match[]", "node_load1"),
            ("start", &start),
            ("end", &end),
        ])),
        Exact,
    );
    add(
        "var_query_result",
        "POST",
        "/api/v1/query".into(),
        Some(form(&[
            ("query", "count by (job) (http_requests_total)"),
            ("time", now),
        ])),
        Exact,
    );
    // ... and the panels' range queries (start and end aligned to the step).
    add(
        "panel_rate",
        "POST",
        "/api/v1/query_range".into(),
        Some(form(&[
            (
                "query",
                "sum by (code) (rate(http_requests_total{job=\"api\"}[1m]))",
            ),
            ("start", &start),
            ("end", &end),
            ("step", "60"),
        ])),
        Exact,
    );
    add(
        "panel_quantile",
        "POST",
        "/api/v1/query_range".into(),
        Some(form(&[
            (
                "query",
                "histogram_quantile(0.9, sum by (le) (rate(req_duration_seconds_bucket[5m])))",
            ),
            ("start", &start),
            ("end", &end),
            ("step", "120"),
        ])),
        Exact,
    );
    add(
        "panel_gauge",
        "POST",
        "/api/v1/query_range".into(),
        Some(form(&[
            ("query", "node_load1"),
            ("start", &start),
            ("end", &end),
            ("step", "15"),
        ])),
        Exact,
    );
    add(
        "panel_error",
        "POST",
        "/api/v1/query_range".into(),
        Some(form(&[
            ("query", "rate(node_load1)"),
            ("start", &start),
            ("end", &end),
            ("step", "15"),
        ])),
        StatusOnly,
    );
    // Explore: the range and instant queries run side by side, exemplars, the label browser.
    add(
        "explore_range",
        "POST",
        "/api/v1/query_range".into(),
        Some(form(&[
            ("query", "rate(http_requests_total[5m])"),
            ("start", &start),
            ("end", &end),
            ("step", "14.4"),
        ])),
        Exact,
    );
    add(
        "explore_instant",
        "POST",
        "/api/v1/query".into(),
        Some(form(&[
            ("query", "rate(http_requests_total[5m])"),
            ("time", now),
        ])),
        Exact,
    );
    add(
        "explore_exemplars",
        "POST",
        "/api/v1/query_exemplars".into(),
        Some(form(&[
            ("query", "rate(http_requests_total[5m])"),
            ("start", &start),
            ("end", &end),
        ])),
        Exact,
    );
    add(
        "browser_series",
        "POST",
        "/api/v1/series".into(),
        Some(form(&[
            ("match[]", "{__name__=\"http_requests_total\"}"),
            ("start", &start),
            ("end", &end),
        ])),
        Exact,
    );
    add(
        "browser_values",
        "GET",
        format!("/api/v1/label/code/values?start={start}&end={end}"),
        None,
        Exact,
    );
    // Alerting's list of data-source rules.
    add("rules", "GET", "/api/v1/rules".into(), None, Exact);
    v
}

#[test]
fn grafana_walkthrough() {
    compare("grafana_", &grafana_requests(), false, |_, pharos| {
        // What Grafana reads from the answers: the health check's scalar and the build info.
        let r = http(
            pharos,
            "POST",
            "/api/v1/query",
            Some("query=1%2B1&time=4"),
            &[],
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["data"]["result"], serde_json::json!([4, "2"]));
        let r = http(pharos, "GET", "/api/v1/status/buildinfo", None, &[]).unwrap();
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert!(v["data"]["version"].is_string() && v["data"].get("features").is_none());
    });
}

/// `/federate` answers from the newest samples (within 5 minutes of now), so it is compared
/// with the live Prometheus only, on data written just before the servers start.
#[test]
fn federate_matches_prometheus() {
    if !have_prometheus() {
        eprintln!("prometheus/promtool not installed: nothing to compare /federate with");
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let base = now - now % 1000 - 120_000;
    let data = vec![
        Series {
            labels: vec![
                ("__name__", "fed_total".into()),
                ("instance", "a:1".into()),
                ("job", "x".into()),
            ],
            samples: (0..5)
                .map(|i| (base + i * 15_000, i as f64 * 2.5))
                .collect(),
        },
        Series {
            labels: vec![("__name__", "fed_gauge".into()), ("path", "<&\"\\>".into())],
            samples: vec![(base + 1_234, 1e-7), (base + 30_000, f64::INFINITY)],
        },
        Series {
            labels: vec![("__name__", "fed_old".into())],
            samples: vec![(base - 3_600_000, 1.0)],
        },
    ];
    let dir = tempfile::tempdir().unwrap();
    let prom = start_prometheus(dir.path(), &data, false);
    let pharos = start_pharos(dir.path(), &data, false);
    let mut diffs = Vec::new();
    for path in [
        "/federate?match[]=fed_total".to_string(),
        format!("/federate?match[]={}", enc("{__name__=~\"fed_.*\"}")),
        format!("/federate?match[]=fed_gauge&match[]={}", enc("{job=\"x\"}")),
        "/federate?match[]=fed_old".to_string(),
        format!("/federate?match[]={}", enc("{")),
    ] {
        let want = http(&prom.addr, "GET", &path, None, &[]).unwrap();
        let got = http(&pharos.web, "GET", &path, None, &[]).unwrap();
        let (want, got) = (
            render(want.status, &want.content_type, &want.body),
            render(got.status, &got.content_type, &got.body),
        );
        if want != got {
            diffs.push(format!("--- {path}\nprometheus: {want}pharos:     {got}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}
