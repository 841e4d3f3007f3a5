//! Differential test of the PromQL engine against the real Prometheus 2.42.
//!
//! A deterministic dataset (counters with resets, gauges with full-precision decimals, special
//! values, classic histograms, a `kube_pod_info`-style info metric joined to container metrics,
//! staleness markers and gaps longer and shorter than the lookback delta) is pushed into a fresh
//! Prometheus through its remote-write receiver, and the same samples are loaded into a
//! [`MemStore`]. Remote write rather than `promtool tsdb create-blocks-from openmetrics`: the
//! OpenMetrics text cannot carry staleness markers (a `NaN` there is an ordinary NaN), while the
//! protobuf carries the marker's exact bit pattern.
//!
//! Every query of [`QUERIES`] then runs as instant queries at several times and as range queries
//! against both: Prometheus over HTTP, Pharos' engine in-process. Results must match: result type,
//! label sets exactly, values within 1e-9 relative (NaN = NaN), order where the query sorts, and
//! errors where Prometheus errs (same class; the same message for execution errors).
//!
//! Needs `prometheus` on the PATH (Debian package `prometheus`, installed by `.ci/run`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pharos_model::api::QueryData;
use pharos_model::{Label, Labels, STALE_NAN, Sample};
use pharos_query::{Engine, EngineOptions};

use crate::harness::{enc, free_port, get};
use crate::memstore::MemStore;

/// Start of the dataset (ms), deliberately not aligned to a minute.
const T0: i64 = 1_699_999_987_123;
/// Scrape interval of the dataset (ms).
const STEP: i64 = 15_000;
/// Length of the dataset (ms): two hours, the head block of a fresh Prometheus.
const SPAN: i64 = 2 * 3600 * 1000;

/// splitmix64: a tiny deterministic generator, so both sides get the very same dataset.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn f(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

fn labels(name: &str, pairs: &[(&str, &str)]) -> Labels {
    let mut v = vec![Label {
        name: "__name__".into(),
        value: name.into(),
    }];
    v.extend(pairs.iter().map(|(n, val)| Label {
        name: (*n).into(),
        value: (*val).into(),
    }));
    Labels::new(v)
}

/// Scrape times of one series: every `STEP` from `T0 + phase`, with a little jitter on some.
fn times(rng: &mut Rng, jitter: bool) -> Vec<i64> {
    let phase = rng.below(STEP as u64) as i64;
    (0..=SPAN / STEP)
        .map(|k| {
            let j = if jitter { rng.below(401) as i64 } else { 0 };
            T0 + phase + k * STEP + j
        })
        .collect()
}

/// The dataset: every series with its samples in time order.
fn dataset() -> Vec<(Labels, Vec<Sample>)> {
    let mut rng = Rng(42);
    let mut out = Vec::new();
    let instances = ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"];

    // Counters with integer increments; one series resets half-way.
    for job in ["api", "web"] {
        for inst in instances {
            for method in ["GET", "POST"] {
                for code in ["200", "500"] {
                    let l = labels(
                        "http_requests_total",
                        &[
                            ("job", job),
                            ("instance", inst),
                            ("method", method),
                            ("code", code),
                        ],
                    );
                    let max = if code == "200" { 50 } else { 3 };
                    let reset = job == "api" && inst == instances[1] && method == "GET";
                    let ts = times(&mut rng, true);
                    let mut v = rng.below(1000) as f64;
                    let mut samples = Vec::new();
                    for (k, t) in ts.into_iter().enumerate() {
                        if reset && k == 240 {
                            v = rng.below(5) as f64;
                        } else {
                            v += rng.below(max) as f64;
                        }
                        samples.push(Sample { t, v });
                    }
                    out.push((l, samples));
                }
            }
        }
    }
    // A float counter.
    for job in ["api", "web"] {
        for inst in instances {
            let l = labels(
                "process_cpu_seconds_total",
                &[("job", job), ("instance", inst)],
            );
            let mut v = rng.f() * 100.0;
            let s = times(&mut rng, false)
                .into_iter()
                .map(|t| {
                    v += rng.f() * 0.37;
                    Sample { t, v }
                })
                .collect();
            out.push((l, s));
        }
    }
    // Gauges with full-precision decimals, negatives included.
    for inst in instances {
        let l = labels("node_memory_available_bytes", &[("instance", inst)]);
        let base = 1.0e9 + rng.f() * 1.0e8;
        let s = times(&mut rng, true)
            .into_iter()
            .map(|t| Sample {
                t,
                v: base + (rng.f() - 0.5) * 3.3e7 + rng.f(),
            })
            .collect();
        out.push((l, s));
    }
    for room in ["cellar", "attic", "lab", "yard"] {
        let l = labels("temperature_celsius", &[("room", room), ("job", "sensors")]);
        let mut v = rng.f() * 40.0 - 15.0;
        let s = times(&mut rng, false)
            .into_iter()
            .map(|t| {
                v += (rng.f() - 0.5) * 1.7;
                Sample { t, v }
            })
            .collect();
        out.push((l, s));
    }
    // Special values.
    for (kind, f) in [
        ("nan", f64::NAN),
        ("inf", f64::INFINITY),
        ("neginf", f64::NEG_INFINITY),
        ("zero", 0.0),
    ] {
        let l = labels("special_values", &[("kind", kind)]);
        let s = times(&mut rng, false)
            .into_iter()
            .enumerate()
            .map(|(k, t)| Sample {
                t,
                v: if k % 7 == 3 { 1.5 } else { f },
            })
            .collect();
        out.push((l, s));
    }
    // Classic histograms: cumulative buckets, _sum and _count.
    let bounds = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
    ];
    for job in ["api", "web"] {
        for inst in instances {
            let ts = times(&mut rng, false);
            let mut counts = vec![0.0f64; bounds.len()];
            let mut sum = 0.0;
            let mut series: Vec<Vec<Sample>> = vec![Vec::new(); bounds.len() + 2];
            let scale = if job == "api" { 0.08 } else { 0.6 };
            for &t in &ts {
                for _ in 0..rng.below(20) {
                    let d = -scale * (1.0 - rng.f()).ln();
                    sum += d;
                    for (i, b) in bounds.iter().enumerate() {
                        let b: f64 = if *b == "+Inf" {
                            f64::INFINITY
                        } else {
                            b.parse().expect("bound")
                        };
                        if d <= b {
                            counts[i] += 1.0;
                        }
                    }
                }
                for (i, c) in counts.iter().enumerate() {
                    series[i].push(Sample { t, v: *c });
                }
                series[bounds.len()].push(Sample { t, v: sum });
                series[bounds.len() + 1].push(Sample {
                    t,
                    v: counts[bounds.len() - 1],
                });
            }
            for (i, s) in series.into_iter().enumerate() {
                let l = if i < bounds.len() {
                    labels(
                        "http_request_duration_seconds_bucket",
                        &[("job", job), ("instance", inst), ("le", bounds[i])],
                    )
                } else if i == bounds.len() {
                    labels(
                        "http_request_duration_seconds_sum",
                        &[("job", job), ("instance", inst)],
                    )
                } else {
                    labels(
                        "http_request_duration_seconds_count",
                        &[("job", job), ("instance", inst)],
                    )
                };
                out.push((l, s));
            }
        }
    }
    // An info metric and the container metrics it is joined to.
    for ns in ["default", "kube-system"] {
        for p in 0..4 {
            let pod = format!("{ns}-pod-{p}");
            let node = format!("node-{}", p % 2);
            let ip = format!("10.1.{}.{p}", ns.len());
            let info = labels(
                "kube_pod_info",
                &[
                    ("namespace", ns),
                    ("pod", &pod),
                    ("node", &node),
                    ("pod_ip", &ip),
                ],
            );
            let s = times(&mut rng, false)
                .into_iter()
                .map(|t| Sample { t, v: 1.0 })
                .collect();
            out.push((info, s));
            for c in ["app", "sidecar"] {
                let req = labels(
                    "kube_pod_container_resource_requests",
                    &[
                        ("namespace", ns),
                        ("pod", &pod),
                        ("container", c),
                        ("resource", "cpu"),
                    ],
                );
                let r = (1 + rng.below(8)) as f64 * 0.125;
                let s = times(&mut rng, false)
                    .into_iter()
                    .map(|t| Sample { t, v: r })
                    .collect();
                out.push((req, s));
                let usage = labels(
                    "container_cpu_usage_seconds_total",
                    &[("namespace", ns), ("pod", &pod), ("container", c)],
                );
                let mut v = 0.0;
                let s = times(&mut rng, true)
                    .into_iter()
                    .map(|t| {
                        v += rng.f() * 15.0 * r;
                        Sample { t, v }
                    })
                    .collect();
                out.push((usage, s));
            }
        }
    }
    // Staleness markers: a target that disappears for half an hour and comes back.
    for inst in instances {
        for name in ["up", "batch_last_success_timestamp_seconds"] {
            let l = labels(name, &[("job", "batch"), ("instance", inst)]);
            let gone = (40 * 60_000, 70 * 60_000);
            let mut s = Vec::new();
            let mut was_up = true;
            for t in times(&mut rng, false) {
                let off = t - T0;
                if inst != instances[0] && off >= gone.0 && off < gone.1 {
                    if was_up {
                        s.push(Sample { t, v: STALE_NAN });
                        was_up = false;
                    }
                    continue;
                }
                was_up = true;
                let v = if name == "up" {
                    1.0
                } else {
                    ((t / 1000) - (t / 1000) % 600) as f64
                };
                s.push(Sample { t, v });
            }
            out.push((l, s));
        }
    }
    // Gaps without markers: 3 minutes (within the lookback delta) and 12 minutes (beyond it).
    for inst in instances {
        let l = labels("flaky_gauge", &[("instance", inst)]);
        let s = times(&mut rng, false)
            .into_iter()
            .filter(|t| {
                let m = (t - T0) / 60_000;
                !((20..23).contains(&m) || (60..72).contains(&m))
            })
            .map(|t| Sample {
                t,
                v: (rng.below(2000) as f64 - 1000.0) / 7.0,
            })
            .collect();
        out.push((l, s));
    }
    let version = labels("build_info", &[("version", "2.42.0-rc.1"), ("job", "api")]);
    let s = times(&mut rng, false)
        .into_iter()
        .map(|t| Sample { t, v: 1.0 })
        .collect();
    out.push((version, s));
    // Prometheus' head hands series to the engine in creation order, Pharos in label order:
    // create them in label order so that ties (topk) are broken alike.
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The queries, all of our own composition. Each runs as instant and as range queries.
const QUERIES: &[&str] = &[
    // Selectors, matchers, offset and @.
    "http_requests_total",
    r#"http_requests_total{job="api"}"#,
    r#"http_requests_total{code!="200"}"#,
    r#"http_requests_total{instance=~"10\\.0\\.0\\.[12]:.*"}"#,
    r#"http_requests_total{method!~"G.*",code="500"}"#,
    r#"{__name__=~"http_requests_total|process_cpu_seconds_total",instance="10.0.0.3:8080"}"#,
    r#"{__name__=~"temp.*"}"#,
    "http_requests_total offset 5m",
    "http_requests_total offset -7m",
    "temperature_celsius offset 1h30m",
    "temperature_celsius @ 1700003587.5",
    "temperature_celsius @ start()",
    "temperature_celsius @ end() offset 10m",
    "process_cpu_seconds_total[2m]",
    "up",
    "batch_last_success_timestamp_seconds",
    "flaky_gauge",
    "special_values",
    "build_info",
    "nonexistent_metric",
    // Counter functions.
    "rate(http_requests_total[5m])",
    "rate(http_requests_total[1m])",
    "rate(http_requests_total[30s])",
    "irate(http_requests_total[5m])",
    "increase(http_requests_total[10m])",
    "increase(http_requests_total[1h] offset 20m)",
    "rate(process_cpu_seconds_total[3m] @ 1700004000)",
    "resets(http_requests_total[1h])",
    "changes(up[1h])",
    "changes(temperature_celsius[10m])",
    "rate(up[10m])",
    "rate(special_values[5m])",
    // Gauge functions.
    "delta(temperature_celsius[10m])",
    "idelta(temperature_celsius[5m])",
    "deriv(node_memory_available_bytes[10m])",
    "predict_linear(node_memory_available_bytes[15m], 3600)",
    "predict_linear(temperature_celsius[5m], -600)",
    "holt_winters(temperature_celsius[20m], 0.3, 0.7)",
    "holt_winters(node_memory_available_bytes[10m], 0.9, 0.1)",
    // *_over_time.
    "avg_over_time(node_memory_available_bytes[10m])",
    "min_over_time(temperature_celsius[30m])",
    "max_over_time(temperature_celsius[30m])",
    "sum_over_time(flaky_gauge[15m])",
    "count_over_time(flaky_gauge[15m])",
    "last_over_time(flaky_gauge[15m])",
    "quantile_over_time(0.9, temperature_celsius[1h])",
    "quantile_over_time(0, node_memory_available_bytes[10m])",
    "quantile_over_time(1.5, temperature_celsius[10m])",
    "stddev_over_time(node_memory_available_bytes[20m])",
    "stdvar_over_time(temperature_celsius[20m])",
    "present_over_time(batch_last_success_timestamp_seconds[10m])",
    "absent_over_time(batch_last_success_timestamp_seconds{instance=\"10.0.0.2:8080\"}[10m])",
    "absent_over_time(nonexistent_metric[5m])",
    "avg_over_time(special_values[5m])",
    "sum_over_time(special_values[10m])",
    // Math.
    "abs(temperature_celsius)",
    "ceil(temperature_celsius)",
    "floor(temperature_celsius)",
    "round(temperature_celsius)",
    "round(temperature_celsius, 0.25)",
    "round(node_memory_available_bytes, 1000)",
    "exp(temperature_celsius / 10)",
    "ln(node_memory_available_bytes)",
    "log2(http_requests_total)",
    "log10(temperature_celsius)",
    "sqrt(temperature_celsius)",
    "sgn(temperature_celsius)",
    "clamp(temperature_celsius, -2, 10)",
    "clamp(temperature_celsius, 10, -2)",
    "clamp_min(temperature_celsius, 0)",
    "clamp_max(temperature_celsius, 5.5)",
    "sin(temperature_celsius) + cos(temperature_celsius) * tan(temperature_celsius)",
    "asin(temperature_celsius / 100) - acos(temperature_celsius / 100) + atan(temperature_celsius)",
    "sinh(temperature_celsius / 10) + cosh(temperature_celsius / 10) - tanh(temperature_celsius)",
    "asinh(temperature_celsius) + acosh(abs(temperature_celsius) + 1) + atanh(temperature_celsius / 100)",
    "deg(temperature_celsius) + rad(temperature_celsius) + pi()",
    "abs(special_values)",
    // Time functions.
    "time()",
    "timestamp(temperature_celsius)",
    "timestamp(up)",
    "time() - timestamp(flaky_gauge)",
    "minute()",
    "hour(timestamp(temperature_celsius))",
    "day_of_month(batch_last_success_timestamp_seconds)",
    "day_of_week()",
    "day_of_year(vector(1700000000))",
    "days_in_month(vector(1709251200))",
    "month(batch_last_success_timestamp_seconds)",
    "year()",
    // Misc and labels.
    "vector(42)",
    "scalar(temperature_celsius{room=\"lab\"})",
    "scalar(temperature_celsius)",
    "absent(nonexistent_metric{job=\"x\",instance=~\"a.*\"})",
    "absent(up)",
    "sort(temperature_celsius)",
    "sort_desc(rate(http_requests_total[5m]))",
    r#"label_replace(http_requests_total, "host", "$1", "instance", "(.*):\\d+")"#,
    r#"label_replace(temperature_celsius, "room", "", "room", ".*")"#,
    r#"label_replace(build_info, "major", "${1}x", "version", "(\\d+)\\..*")"#,
    r#"label_replace(up, "instance", "same", "job", ".*")"#,
    r#"label_join(http_requests_total, "key", "/", "job", "method", "code")"#,
    r#"label_join(temperature_celsius, "room", "-", "job")"#,
    // Histograms.
    "histogram_quantile(0.9, rate(http_request_duration_seconds_bucket[5m]))",
    "histogram_quantile(0.5, sum by (le) (rate(http_request_duration_seconds_bucket[10m])))",
    "histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket[5m])))",
    "histogram_quantile(0, http_request_duration_seconds_bucket)",
    "histogram_quantile(1, http_request_duration_seconds_bucket)",
    "histogram_quantile(1.1, http_request_duration_seconds_bucket)",
    "histogram_quantile(-0.5, http_request_duration_seconds_bucket)",
    "rate(http_request_duration_seconds_sum[5m]) / rate(http_request_duration_seconds_count[5m])",
    // Aggregations.
    "sum(http_requests_total)",
    "sum by (job) (rate(http_requests_total[5m]))",
    "sum without (instance, method) (rate(http_requests_total[5m]))",
    "sum(rate(http_requests_total[5m])) by (code)",
    "avg by (job) (process_cpu_seconds_total)",
    "min(temperature_celsius)",
    "max by (instance) (http_requests_total)",
    "count(http_requests_total)",
    "count by (job) (up)",
    "group by (job) (http_requests_total)",
    "stddev(temperature_celsius)",
    "stdvar by (job) (http_requests_total)",
    "topk(3, http_requests_total)",
    "topk by (job) (2, rate(http_requests_total[5m]))",
    "bottomk(2, temperature_celsius)",
    "topk(0, temperature_celsius)",
    "bottomk(2, special_values)",
    "quantile(0.5, temperature_celsius)",
    "quantile by (job) (0.95, rate(http_requests_total[5m]))",
    "quantile(2, temperature_celsius)",
    r#"count_values("value", kube_pod_container_resource_requests)"#,
    r#"count_values by (namespace) ("req", kube_pod_container_resource_requests)"#,
    "sum(special_values)",
    "avg(special_values)",
    "max(special_values)",
    "min(special_values)",
    "sum by (namespace) (kube_pod_info)",
    // Binary operators: arithmetic, comparison, bool, set operators and every matching mode.
    "1 + 2 * 3 ^ 2 ^ 0.5 - 7 % 4",
    "-temperature_celsius",
    "temperature_celsius * 2 - 1",
    "2 ^ temperature_celsius",
    "temperature_celsius % 3",
    "atan2(temperature_celsius, 10)",
    "temperature_celsius atan2 on(room) temperature_celsius",
    "temperature_celsius > 5",
    "temperature_celsius > bool 5",
    "5 < temperature_celsius",
    "temperature_celsius == temperature_celsius",
    "temperature_celsius != bool 0",
    "http_requests_total >= 1000 <= 5000",
    "1 == bool 1",
    "process_cpu_seconds_total / on(job, instance) sum by (job, instance) (http_requests_total)",
    "rate(http_requests_total[5m]) / ignoring(code) group_left sum without (code) (rate(http_requests_total[5m]))",
    "sum without (code) (rate(http_requests_total[5m])) / ignoring(code) group_right rate(http_requests_total[5m])",
    "rate(container_cpu_usage_seconds_total[5m]) * on(namespace, pod) group_left(node) kube_pod_info",
    "sum by (node) (rate(container_cpu_usage_seconds_total[5m]) * on(namespace, pod) group_left(node, pod_ip) kube_pod_info)",
    "kube_pod_container_resource_requests * on(namespace, pod, container) group_left() rate(container_cpu_usage_seconds_total[5m])",
    "rate(container_cpu_usage_seconds_total[5m]) / ignoring(resource) kube_pod_container_resource_requests",
    "up and on(instance) batch_last_success_timestamp_seconds",
    "http_requests_total and http_requests_total{code=\"500\"}",
    "http_requests_total unless on(job) http_requests_total{job=\"web\"}",
    "temperature_celsius or flaky_gauge",
    "up or on(instance) vector(1)",
    "flaky_gauge unless up",
    "http_requests_total > on(job, instance, method, code) group_left http_requests_total offset 10m",
    "sum by (job) (http_requests_total) > bool on(job) sum by (job) (http_requests_total offset 1h)",
    "special_values + 1",
    "special_values > 0",
    "special_values == bool special_values",
    // Subqueries.
    "max_over_time(rate(http_requests_total[5m])[30m:1m])",
    "avg_over_time(temperature_celsius[10m:])",
    "min_over_time(sum by (job) (rate(http_requests_total[1m]))[20m:2m])",
    "rate(sum by (job) (http_requests_total)[10m:30s])",
    "max_over_time(deriv(node_memory_available_bytes[5m])[1h:5m] offset 10m)",
    "last_over_time(temperature_celsius[30m:7m] @ 1700004000)",
    "count_over_time(up[20m:1m])",
    "quantile_over_time(0.5, (temperature_celsius > 0)[30m:45s])",
    "sum_over_time(vector(1)[5m:1m])",
    // Errors where Prometheus errs.
    "sum(http_requests_total",
    "rate(http_requests_total)",
    "http_requests_total{job=\"api\"",
    "histogram_quantile(0.9)",
    "foo bar",
    "1 +",
    "label_replace(temperature_celsius, \"1bad\", \"x\", \"room\", \".*\")",
    "label_replace(temperature_celsius, \"x\", \"y\", \"room\", \"(\")",
    "http_requests_total + ignoring(code) http_requests_total",
    "http_requests_total * on(job) group_left http_requests_total",
    "label_replace(temperature_celsius, \"room\", \"same\", \"room\", \".*\")",
    "up and 1",
    "temperature_celsius[5m:1m] offset 1m [2m]",
    "sum(temperature_celsius) by (job) by (room)",
    "topk(\"x\", temperature_celsius)",
    "{job=\"api\"} offset 1x",
];

/// A running Prometheus on a free loopback port with its own data directory.
pub struct Prometheus {
    child: Child,
    /// `127.0.0.1:port` of its HTTP API.
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus with the remote-write receiver on and waits until it is ready.
    pub fn start() -> Prometheus {
        Self::start_with(&[])
    }

    /// [`Prometheus::start`] with extra flags.
    pub fn start_with(flags: &[&str]) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 15s\n").expect("write config");
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--web.enable-remote-write-receiver")
            .args(flags)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus (install the Debian package `prometheus`)");
        let p = Prometheus {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !matches!(get(&p.addr, "/-/ready"), Ok((200, _))) {
            assert!(Instant::now() < deadline, "Prometheus not ready after 60s");
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    /// Sends one remote-write request (protobuf, snappy block format).
    pub fn remote_write(&self, series: &[(&Labels, &[Sample])]) {
        let body = snap::raw::Encoder::new()
            .compress_vec(&write_request(series))
            .expect("snappy");
        let mut s = TcpStream::connect(&self.addr).expect("connect");
        write!(
            s,
            "POST /api/v1/write HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Content-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\n\
             X-Prometheus-Remote-Write-Version: 0.1.0\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        )
        .expect("write head");
        s.write_all(&body).expect("write body");
        let mut resp = String::new();
        s.read_to_string(&mut resp).expect("read response");
        assert!(
            resp.starts_with("HTTP/1.1 204") || resp.starts_with("HTTP/1.1 200"),
            "remote write refused: {resp}"
        );
    }

    /// Runs `path` (an API query URL): the result, or the error type and message.
    fn query(&self, path: &str) -> Result<QueryData, (String, String)> {
        let (_, body) = get(&self.addr, path).expect("query Prometheus");
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: bad JSON {e}: {body}"));
        if v["status"] == "success" {
            return Ok(serde_json::from_value(v["data"].clone())
                .unwrap_or_else(|e| panic!("{path}: bad data {e}: {body}")));
        }
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        Err((s("errorType"), s("error")))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(out, field << 3 | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A `prometheus.WriteRequest`: timeseries = 1 { labels = 1 { name = 1, value = 2 },
/// samples = 2 { value = 1 (double), timestamp = 2 (int64) } }.
fn write_request(series: &[(&Labels, &[Sample])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ts = Vec::new();
    let mut item = Vec::new();
    for (labels, samples) in series {
        ts.clear();
        for l in labels.iter() {
            item.clear();
            field_bytes(&mut item, 1, l.name.as_bytes());
            field_bytes(&mut item, 2, l.value.as_bytes());
            field_bytes(&mut ts, 1, &item);
        }
        for s in *samples {
            item.clear();
            varint(&mut item, 1 << 3 | 1);
            item.extend_from_slice(&s.v.to_bits().to_le_bytes());
            varint(&mut item, 2 << 3);
            varint(&mut item, s.t as u64);
            field_bytes(&mut ts, 2, &item);
        }
        field_bytes(&mut out, 1, &ts);
    }
    out
}

/// Whether two results agree: same type, same label sets, values within 1e-9 relative, NaN = NaN;
/// vectors compared in order when `ordered`, otherwise as sets.
fn same_result(want: &QueryData, got: &QueryData, ordered: bool) -> Result<(), String> {
    fn close(a: f64, b: f64) -> bool {
        if a.is_nan() || b.is_nan() {
            return a.is_nan() && b.is_nan();
        }
        if a == b {
            return true;
        }
        if a.is_infinite() || b.is_infinite() {
            return false;
        }
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
    }
    match (want, got) {
        (QueryData::Scalar(a), QueryData::Scalar(b)) => {
            if a.t == b.t && close(a.v, b.v) {
                Ok(())
            } else {
                Err(format!("scalar: want {a:?}, got {b:?}"))
            }
        }
        (QueryData::String(a), QueryData::String(b)) => {
            if a == b {
                Ok(())
            } else {
                Err(format!("string: want {a:?}, got {b:?}"))
            }
        }
        (QueryData::Vector(a), QueryData::Vector(b)) => {
            let (mut a, mut b) = (a.clone(), b.clone());
            if !ordered {
                a.sort_by(|x, y| x.metric.cmp(&y.metric));
                b.sort_by(|x, y| x.metric.cmp(&y.metric));
            }
            let show = |v: &[pharos_model::api::VectorSample]| {
                v.iter()
                    .map(|s| format!("{} {}@{}", s.metric, s.value.v, s.value.t))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            // Ordered results must agree in their sequence of values; which of several equal
            // values comes first is left to the sort (Go's sort is not stable).
            let in_order = !ordered
                || (a.len() == b.len()
                    && a.iter().zip(&b).all(|(x, y)| close(x.value.v, y.value.v)));
            if ordered {
                a.sort_by(|x, y| x.metric.cmp(&y.metric));
                b.sort_by(|x, y| x.metric.cmp(&y.metric));
            }
            let same = in_order
                && a.len() == b.len()
                && a.iter().zip(&b).all(|(x, y)| {
                    x.metric == y.metric && x.value.t == y.value.t && close(x.value.v, y.value.v)
                });
            if same {
                Ok(())
            } else {
                Err(format!("vector:\n  want {}\n  got  {}", show(&a), show(&b)))
            }
        }
        (QueryData::Matrix(a), QueryData::Matrix(b)) => {
            let (mut a, mut b) = (a.clone(), b.clone());
            a.sort_by(|x, y| x.metric.cmp(&y.metric));
            b.sort_by(|x, y| x.metric.cmp(&y.metric));
            if a.len() != b.len() {
                let names = |m: &[pharos_model::api::MatrixSeries]| {
                    m.iter()
                        .map(|s| s.metric.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                return Err(format!(
                    "matrix: want {} series, got {}:\n  want {}\n  got  {}",
                    a.len(),
                    b.len(),
                    names(&a),
                    names(&b)
                ));
            }
            for (x, y) in a.iter().zip(&b) {
                if x.metric != y.metric {
                    return Err(format!(
                        "matrix: want series {}, got {}",
                        x.metric, y.metric
                    ));
                }
                let same = x.values.len() == y.values.len()
                    && x.values
                        .iter()
                        .zip(&y.values)
                        .all(|(p, q)| p.t == q.t && close(p.v, q.v));
                if !same {
                    let first = x
                        .values
                        .iter()
                        .zip(&y.values)
                        .find(|(p, q)| !(p.t == q.t && close(p.v, q.v)));
                    return Err(format!(
                        "matrix {}: {} vs {} points; first difference {first:?}",
                        x.metric,
                        x.values.len(),
                        y.values.len()
                    ));
                }
            }
            Ok(())
        }
        _ => Err(format!("want {want:?}, got {got:?}")),
    }
}

/// What one side answered: a result, a parse error, or an evaluation error (with its message).
enum Outcome {
    Data(QueryData),
    BadData(String),
    Execution(String),
}

fn pharos_outcome(
    store: &MemStore,
    engine: &Engine,
    q: &str,
    range: Option<(i64, i64, i64)>,
    at: i64,
) -> Outcome {
    let expr = match pharos_query::parser::parse(q) {
        Ok(e) => e,
        Err(e) => return Outcome::BadData(e.to_string()),
    };
    let r = match range {
        None => engine.instant(store, &expr, at),
        Some((s, e, step)) => {
            // Prometheus rejects a range-vector or string expression as a bad request.
            use pharos_query::ast::ValueType;
            if !matches!(expr.value_type(), ValueType::Scalar | ValueType::Vector) {
                return Outcome::BadData(format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                    expr.value_type()
                ));
            }
            engine.range(store, &expr, s, e, step)
        }
    };
    match r {
        Ok(v) => Outcome::Data(v.into_query_data()),
        Err(e) => Outcome::Execution(e.to_string()),
    }
}

fn prometheus_outcome(p: &Prometheus, q: &str, range: Option<(i64, i64, i64)>, at: i64) -> Outcome {
    let secs = |ms: i64| format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000));
    let path = match range {
        None => format!("/api/v1/query?query={}&time={}", enc(q), secs(at)),
        Some((s, e, step)) => format!(
            "/api/v1/query_range?query={}&start={}&end={}&step={}",
            enc(q),
            secs(s),
            secs(e),
            secs(step)
        ),
    };
    match p.query(&path) {
        Ok(d) => Outcome::Data(d),
        Err((kind, msg)) if kind == "bad_data" => Outcome::BadData(msg),
        Err((_, msg)) => Outcome::Execution(msg),
    }
}

/// Compares the two outcomes of one query; `None` when they agree.
fn compare(q: &str, want: Outcome, got: Outcome) -> Option<String> {
    let ordered = q.starts_with("sort");
    match (want, got) {
        (Outcome::Data(a), Outcome::Data(b)) => same_result(&a, &b, ordered).err(),
        (Outcome::BadData(_), Outcome::BadData(_)) => None,
        (Outcome::Execution(a), Outcome::Execution(b)) if a == b => None,
        (Outcome::Execution(a), Outcome::Execution(b)) => {
            Some(format!("error: want {a:?}, got {b:?}"))
        }
        (Outcome::BadData(a), _) => Some(format!("want a bad_data error {a:?}")),
        (Outcome::Execution(a), _) => Some(format!("want an execution error {a:?}")),
        (Outcome::Data(_), Outcome::BadData(e) | Outcome::Execution(e)) => {
            Some(format!("want a result, got the error {e:?}"))
        }
    }
}

/// Pushes `data` in time order, 10 minutes of every series per request, so the head accepts it.
fn load(prom: &Prometheus, data: &[(Labels, Vec<Sample>)]) {
    let window = 10 * 60_000;
    let mut from = T0;
    while from <= T0 + SPAN + STEP {
        let batch: Vec<(&Labels, &[Sample])> = data
            .iter()
            .map(|(l, s)| {
                let lo = s.partition_point(|x| x.t < from);
                let hi = s.partition_point(|x| x.t < from + window);
                (l, &s[lo..hi])
            })
            .filter(|(_, s)| !s.is_empty())
            .collect();
        prom.remote_write(&batch);
        from += window;
    }
}

#[test]
fn promql_matches_prometheus() {
    let data = dataset();
    let prom = Prometheus::start();
    load(&prom, &data);
    let total: usize = data.iter().map(|(_, s)| s.len()).sum();
    let store = MemStore::from_series(data.clone());
    let engine = Engine::new(EngineOptions::default());

    // Instant queries at aligned and unaligned times, inside the data, at its edges and after
    // it (lookback); range queries over steps that do and do not divide the subquery steps.
    let instants = [
        T0 + 3_600_000,
        T0 + 1_817_345,
        T0 + 45 * 60_000 + 1,
        T0 + SPAN,
        T0 + SPAN + 4 * 60_000,
        T0 + SPAN + 10 * 60_000,
        T0 + 30_000,
    ];
    let ranges = [
        (T0 + 600_000, T0 + SPAN + 600_000, 60_000),
        (T0 + 1_234_567, T0 + 5_000_000, 37_000),
        (T0 - 600_000, T0 + 900_000, 15_000),
    ];
    let mut failures = Vec::new();
    let mut checks = 0;
    for q in QUERIES {
        for &at in &instants {
            checks += 1;
            let want = prometheus_outcome(&prom, q, None, at);
            let got = pharos_outcome(&store, &engine, q, None, at);
            if let Some(why) = compare(q, want, got) {
                failures.push(format!("instant {q} @ {at}: {why}"));
            }
        }
        for &r in &ranges {
            checks += 1;
            let want = prometheus_outcome(&prom, q, Some(r), 0);
            let got = pharos_outcome(&store, &engine, q, Some(r), 0);
            if let Some(why) = compare(q, want, got) {
                failures.push(format!("range {q} {r:?}: {why}"));
            }
        }
    }
    eprintln!(
        "differential: {} series, {total} samples, {} queries, {checks} comparisons, {} failed",
        data.len(),
        QUERIES.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {checks} comparisons differ from Prometheus:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn remote_write_encoding() {
    let l = labels("m", &[("a", "b")]);
    let s = [Sample { t: 1, v: 1.0 }];
    let got = write_request(&[(&l, &s)]);
    // timeseries { labels { "__name__" "m" } labels { "a" "b" } samples { 1.0 @ 1 } }
    let mut want = vec![0x0a, 0x24];
    want.extend([0x0a, 0x0d, 0x0a, 0x08]);
    want.extend(b"__name__");
    want.extend([0x12, 0x01, b'm']);
    want.extend([0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'b']);
    want.extend([0x12, 0x0b, 0x09]);
    want.extend(1.0f64.to_bits().to_le_bytes());
    want.extend([0x10, 0x01]);
    assert_eq!(got, want);
}

/// The sample limit: queries well below and well above `--query.max-samples` succeed or fail
/// alike (the error text included).
#[test]
fn max_samples_like_prometheus() {
    let data = dataset();
    let prom = Prometheus::start_with(&["--query.max-samples=2000"]);
    load(&prom, &data);
    let store = MemStore::from_series(data);
    let engine = Engine::new(EngineOptions {
        max_samples: 2000,
        ..EngineOptions::default()
    });
    let long = Some((T0 + 600_000, T0 + SPAN + 600_000, 60_000));
    let coarse = Some((T0 + 600_000, T0 + SPAN + 600_000, 300_000));
    let at = T0 + 3_600_000;
    let cases = [
        // 24 series x 121 steps of a selector are held at once: too many.
        ("sum(http_requests_total)", long, true),
        ("http_requests_total", long, true),
        ("rate(http_requests_total[5m])", long, true),
        ("http_requests_total[1h]", None, true),
        ("sum(http_requests_total)", coarse, false),
        ("sum(http_requests_total)", None, false),
        ("topk(3, rate(http_requests_total[5m]))", None, false),
        ("max_over_time(temperature_celsius[1h])", None, false),
    ];
    let mut failures = Vec::new();
    for (q, range, fails) in cases {
        let want = prometheus_outcome(&prom, q, range, at);
        assert_eq!(
            matches!(want, Outcome::Execution(_)),
            fails,
            "Prometheus on {q} {range:?}"
        );
        let got = pharos_outcome(&store, &engine, q, range, at);
        if let Some(why) = compare(q, want, got) {
            failures.push(format!("{q} {range:?}: {why}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
