//! Criterion benchmarks of PromQL: parsing dashboard queries, and evaluating dashboard-style range
//! queries (rate + sum by, histogram_quantile, topk, a group_left join) over many series.
//!
//! The `dashboard_24h_120s` group runs the six queries of the side-by-side benchmark
//! (`bench/README.md`) over 24 h at a 120 s step on a dataset shaped like `bench/dataset.py`
//! (about 2,000 series; `PHAROS_BENCH_SERIES` changes that).
//!
//! `cargo bench -p pharos-query --bench promql`. The data lives in an in-memory store (shared
//! with the integration tests) so the figures are the engine's, not the storage's. Throughput is
//! reported in input samples per second for evaluation and in queries per second for parsing.
#![allow(missing_docs, clippy::unwrap_used)]

// Shared with the integration tests; not every helper is used here.
#[allow(dead_code)]
#[path = "../../tests/integration/memstore.rs"]
mod memstore;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use memstore::MemStore;
use pharos_model::{Labels, Sample};
use pharos_query::{Engine, EngineOptions, parser::parse};

const T0: i64 = 1_700_000_000_000;
const SCRAPE: i64 = 15_000;
/// One hour of data per series.
const POINTS: i64 = 240;

const DASHBOARD: &[&str] = &[
    r#"sum by (job) (rate(http_requests_total{code=~"5.."}[5m])) / sum by (job) (rate(http_requests_total[5m]))"#,
    "histogram_quantile(0.99, sum by (le, job) (rate(http_request_duration_seconds_bucket[5m])))",
    "topk(10, sum by (instance) (rate(http_requests_total[5m])))",
    "sum by (node) (rate(container_cpu_usage_seconds_total[5m]) * on(namespace, pod) group_left(node) kube_pod_info)",
    r#"100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[1m])))"#,
    r#"label_replace(up{job=~"api|web"}, "host", "$1", "instance", "(.*):\\d+") == 0"#,
    "max_over_time(deriv(node_memory_available_bytes[5m])[1h:1m] offset 1d)",
];

fn parsing(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(DASHBOARD.len() as u64));
    g.bench_function("dashboard_queries", |b| {
        b.iter(|| {
            for q in DASHBOARD {
                black_box(parse(black_box(q)).unwrap());
            }
        })
    });
    g.finish();
}

/// A counter with deterministic increments of 0..=31 per scrape (xorshift), `POINTS` values.
fn counter(seed: u64) -> Vec<f64> {
    let mut acc = 0.0;
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..POINTS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            acc += (x % 32) as f64;
            acc
        })
        .collect()
}

fn series(
    name: &str,
    pairs: &[(&str, String)],
    values: impl Fn(i64) -> f64,
) -> (Labels, Vec<Sample>) {
    let mut l = vec![("__name__", name.to_string())];
    l.extend(pairs.iter().map(|(n, v)| (*n, v.clone())));
    let labels = Labels::from_pairs(&l);
    let samples = (0..POINTS)
        .map(|k| Sample {
            t: T0 + k * SCRAPE,
            v: values(k),
        })
        .collect();
    (labels, samples)
}

/// 10,000 request counters, 2,400 histogram buckets, 5,000 container counters and 2,500
/// `kube_pod_info` series: one hour at 15 s.
fn dataset() -> Vec<(Labels, Vec<Sample>)> {
    let mut out = Vec::new();
    let mut seed = 1u64;
    for job in 0..10 {
        for inst in 0..250 {
            for (method, code) in [
                ("GET", "200"),
                ("POST", "200"),
                ("GET", "500"),
                ("POST", "503"),
            ] {
                seed += 1;
                let c = counter(seed);
                out.push(series(
                    "http_requests_total",
                    &[
                        ("job", format!("job-{job}")),
                        ("instance", format!("10.0.{job}.{inst}:8080")),
                        ("method", method.into()),
                        ("code", code.into()),
                    ],
                    |k| c[k as usize],
                ));
            }
        }
    }
    let bounds = [
        "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "+Inf",
    ];
    for job in 0..4 {
        for inst in 0..50 {
            for (i, le) in bounds.iter().enumerate() {
                let scale = (i + 1) as f64;
                out.push(series(
                    "http_request_duration_seconds_bucket",
                    &[
                        ("job", format!("job-{job}")),
                        ("instance", format!("10.1.{job}.{inst}:8080")),
                        ("le", (*le).into()),
                    ],
                    |k| (k as f64) * scale * 3.0,
                ));
            }
        }
    }
    for pod in 0..2500 {
        let ns = format!("ns-{}", pod % 20);
        let name = format!("pod-{pod}");
        out.push(series(
            "kube_pod_info",
            &[
                ("namespace", ns.clone()),
                ("pod", name.clone()),
                ("node", format!("node-{}", pod % 50)),
            ],
            |_| 1.0,
        ));
        for container in ["app", "sidecar"] {
            seed += 1;
            let c = counter(seed);
            out.push(series(
                "container_cpu_usage_seconds_total",
                &[
                    ("namespace", ns.clone()),
                    ("pod", name.clone()),
                    ("container", container.into()),
                ],
                |k| c[k as usize] / 100.0,
            ));
        }
    }
    out
}

fn evaluation(c: &mut Criterion) {
    let data = dataset();
    let store = MemStore::from_series(data);
    let engine = Engine::new(EngineOptions::default());
    // The last 30 minutes of the hour at a 30 s step (61 steps); every 5m window is full.
    let (start, end, step) = (T0 + 1_800_000, T0 + (POINTS - 1) * SCRAPE, 30_000);
    let window_samples = |series: u64| series * 21 * 61;
    let cases: &[(&str, &str, u64)] = &[
        (
            "rate_sum_by",
            "sum by (job) (rate(http_requests_total[5m]))",
            10_000,
        ),
        (
            "histogram_quantile",
            "histogram_quantile(0.99, sum by (le, job) (rate(http_request_duration_seconds_bucket[5m])))",
            2_400,
        ),
        ("topk", "topk(10, rate(http_requests_total[5m]))", 10_000),
        (
            "subquery",
            "max_over_time(rate(http_requests_total{job=\"job-0\"}[5m])[10m:1m])",
            1_000,
        ),
        (
            "group_left_join",
            "sum by (node) (rate(container_cpu_usage_seconds_total[5m]) * on(namespace, pod) group_left(node) kube_pod_info)",
            5_000,
        ),
    ];
    let mut g = c.benchmark_group("range_query_30m_30s");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    for (name, q, series) in cases {
        let expr = parse(q).unwrap();
        g.throughput(Throughput::Elements(window_samples(*series)));
        g.bench_function(*name, |b| {
            b.iter(|| black_box(engine.range(&store, &expr, start, end, step).unwrap()))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("instant_query");
    g.sample_size(10);
    for (name, q, series) in cases {
        let expr = parse(q).unwrap();
        g.throughput(Throughput::Elements(series * 21));
        g.bench_function(*name, |b| {
            b.iter(|| black_box(engine.instant(&store, &expr, end).unwrap()))
        });
    }
    g.finish();
}

/// A 64-bit xorshift generator for the 24 h dataset.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Points per series of the 24 h dataset (15 s scrapes).
const DAY_POINTS: i64 = 24 * 240;

fn day_series(
    labels: &[(&str, String)],
    offset: i64,
    mut value: impl FnMut(i64) -> f64,
) -> (Labels, Vec<Sample>) {
    let mut l: Vec<(&str, String)> = vec![("cluster", "bench".into())];
    l.extend(labels.iter().cloned());
    let samples = (0..DAY_POINTS)
        .map(|k| Sample {
            t: T0 + offset + k * SCRAPE,
            v: value(k),
        })
        .collect();
    (Labels::from_pairs(&l), samples)
}

/// A dataset shaped like `bench/dataset.py` for about `series` series over 24 h at 15 s: node
/// CPU counters per cpu and mode, one pod per 10 series with cAdvisor container CPU and memory
/// (kubelet's long labels) and `kube_pod_info`, the rest classic histograms of 12 buckets.
fn day_dataset(series: usize) -> Vec<(Labels, Vec<Sample>)> {
    const NAMESPACES: [&str; 20] = [
        "kube-system",
        "monitoring",
        "ingress-nginx",
        "cert-manager",
        "logging",
        "team-a",
        "team-b",
        "team-c",
        "team-d",
        "team-e",
        "team-f",
        "team-g",
        "team-h",
        "team-i",
        "team-j",
        "team-k",
        "team-l",
        "team-m",
        "team-n",
        "team-o",
    ];
    const DEPLOYS: [&str; 10] = [
        "api", "web", "worker", "cache", "db-proxy", "auth", "search", "billing", "cron", "queue",
    ];
    const MODES: [(&str, f64); 8] = [
        ("idle", 0.62),
        ("user", 0.22),
        ("system", 0.08),
        ("iowait", 0.02),
        ("irq", 0.004),
        ("softirq", 0.012),
        ("nice", 0.002),
        ("steal", 0.001),
    ];
    const BUCKETS: [&str; 12] = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
    ];
    let mut rng = Rng(0x5eed_1234_9876_abcd);
    let mut out = Vec::new();
    let pods = (series / 10).max(1);
    let nodes = (series / 500).max(1);
    let hex = |rng: &mut Rng, n: usize| -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[(rng.next() % 16) as usize]))
            .collect()
    };
    for node in 0..nodes {
        let inst = format!("node-{node:03}:9100");
        let off = 1000 * (rng.next() % 15) as i64;
        for cpu in 0..4 {
            for (mode, share) in MODES {
                let mut acc = 1e5 + rng.unit() * 9e5;
                let per = share * 15.0 * (0.5 + rng.unit());
                let mut r = Rng(rng.next() | 1);
                out.push(day_series(
                    &[
                        ("__name__", "node_cpu_seconds_total".into()),
                        ("job", "node".into()),
                        ("instance", inst.clone()),
                        ("cpu", cpu.to_string()),
                        ("mode", mode.into()),
                    ],
                    off,
                    move |_| {
                        acc += (per * 2.0 * r.unit() * 100.0).round() / 100.0;
                        acc
                    },
                ));
            }
        }
    }
    let mut count = out.len();
    for p in 0..pods {
        let ns = NAMESPACES[p % 20];
        let dep = DEPLOYS[(p / 20) % 10];
        let rs = hex(&mut rng, 10);
        let pod = format!("{dep}-{rs}-{}", hex(&mut rng, 5));
        let node = format!("node-{:03}", p % nodes);
        let uid = hex(&mut rng, 32);
        out.push(day_series(
            &[
                ("__name__", "kube_pod_info".into()),
                ("job", "kube-state-metrics".into()),
                ("instance", "10.96.0.20:8080".into()),
                ("namespace", ns.into()),
                ("pod", pod.clone()),
                ("node", node.clone()),
                ("host_ip", format!("10.0.{}.1", p % nodes)),
                ("pod_ip", format!("10.244.{}.{}", p / 250, p % 250 + 2)),
                ("uid", uid.clone()),
                ("created_by_kind", "ReplicaSet".into()),
                ("created_by_name", format!("{dep}-{rs}")),
            ],
            0,
            |_| 1.0,
        ));
        let containers: &[&str] = if p % 2 == 0 {
            &[dep, "istio-proxy"]
        } else {
            &[dep]
        };
        for c in containers {
            let cid = hex(&mut rng, 64);
            let cl = [
                ("job", "kubelet".to_string()),
                ("instance", node.clone()),
                ("metrics_path", "/metrics/cadvisor".into()),
                ("namespace", ns.into()),
                ("pod", pod.clone()),
                ("container", c.to_string()),
                ("id", format!("/kubepods/burstable/pod{uid}/{cid}")),
                (
                    "image",
                    format!("registry.example.com/{ns}/{c}:v1.{}", rng.next() % 40),
                ),
                ("name", format!("k8s_{c}_{pod}_{ns}_{uid}_0")),
            ];
            let with = |name: &str| {
                let mut l = vec![("__name__", name.to_string())];
                l.extend(cl.iter().cloned());
                l
            };
            let (mut acc, per, mut r) = (
                100.0 + rng.unit() * 1e5,
                15.0 * rng.unit() * 0.4,
                Rng(rng.next() | 1),
            );
            out.push(day_series(
                &with("container_cpu_usage_seconds_total"),
                0,
                move |_| {
                    acc += per * 2.0 * r.unit();
                    acc
                },
            ));
            let (mut mem, mut r) = (
                4096.0 * (5000 + rng.next() % 495_000) as f64,
                Rng(rng.next() | 1),
            );
            out.push(day_series(
                &with("container_memory_working_set_bytes"),
                0,
                move |_| {
                    mem = (mem + 4096.0 * ((r.next() % 401) as f64 - 200.0)).max(4096.0 * 2000.0);
                    mem
                },
            ));
            count += 2;
        }
        count += 1;
    }
    let mut h = 0;
    while count + 12 <= series || h == 0 {
        let svc = DEPLOYS[h % 10];
        let handler = ["/api/v1/items", "/api/v1/users", "/healthz", "/login"][h % 4];
        let code = if h % 3 == 0 { "500" } else { "200" };
        let rate = 1.0 + rng.unit() * 200.0;
        let off = 1000 * (rng.next() % 15) as i64;
        for (i, le) in BUCKETS.iter().enumerate() {
            let share = (i + 1) as f64 / BUCKETS.len() as f64;
            let mut r = Rng(rng.next() | 1);
            let mut acc = 0.0;
            out.push(day_series(
                &[
                    ("__name__", "http_request_duration_seconds_bucket".into()),
                    ("job", svc.into()),
                    ("instance", format!("{svc}-{}:8080", h / 10)),
                    ("handler", handler.into()),
                    ("code", code.into()),
                    ("le", (*le).into()),
                ],
                off,
                move |_| {
                    acc += (rate * share * 15.0 * (0.5 + r.unit())).round();
                    acc
                },
            ));
        }
        count += 12;
        h += 1;
    }
    out
}

/// The six dashboard queries of `bench/README.md` as range queries over 24 h at a 120 s step
/// (721 steps), over a dataset shaped like the side-by-side benchmark's.
fn dashboard_day(c: &mut Criterion) {
    let series: usize = std::env::var("PHAROS_BENCH_SERIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let data = day_dataset(series);
    let samples: usize = data.iter().map(|s| s.1.len()).sum();
    eprintln!("24h dataset: {} series, {samples} samples", data.len());
    let store = MemStore::from_series(data);
    let engine = Engine::new(EngineOptions::default());
    let end = T0 + (DAY_POINTS - 1) * SCRAPE;
    let (start, step) = (end - 86_400_000, 120_000);
    let cases: &[(&str, &str)] = &[
        (
            "rate_sum_by",
            "sum by (mode) (rate(node_cpu_seconds_total[5m]))",
        ),
        (
            "avg_over_time",
            "avg by (namespace) (avg_over_time(container_memory_working_set_bytes[5m]))",
        ),
        (
            "histogram_quantile",
            "histogram_quantile(0.99, sum by (le, job) (rate(http_request_duration_seconds_bucket[5m])))",
        ),
        (
            "topk",
            "topk(10, sum by (namespace, pod) (rate(container_cpu_usage_seconds_total[5m])))",
        ),
        (
            "group_left_join",
            "sum by (node) (rate(container_cpu_usage_seconds_total[5m]) * on (namespace, pod) group_left (node) kube_pod_info)",
        ),
        (
            "regex_selector",
            r#"sum by (namespace) (container_memory_working_set_bytes{namespace=~"team-.*|kube-.*",pod=~"(api|web)-.*"})"#,
        ),
    ];
    let mut g = c.benchmark_group("dashboard_24h_120s");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    for (name, q) in cases {
        let expr = parse(q).unwrap();
        g.bench_function(*name, |b| {
            b.iter(|| black_box(engine.range(&store, &expr, start, end, step).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, parsing, evaluation, dashboard_day);
criterion_main!(benches);
