//! Criterion benchmarks of PromQL: parsing dashboard queries, and evaluating dashboard-style range
//! queries (rate + sum by, histogram_quantile, topk, a group_left join) over many series.
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

criterion_group!(benches, parsing, evaluation);
criterion_main!(benches);
