//! Exposition-format parser throughput, in lines per second, on a typical exporter body.
//!
//! `cargo bench -p pharos-model --bench expfmt`

#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pharos_model::expfmt::{Format, Parser};

/// A node_exporter-like body: labelled counters with timestamps, HELP/TYPE every 100 lines,
/// exponent-form values.
fn body(lines: usize) -> (String, u64) {
    let mut body = String::new();
    let mut n = 0;
    for i in 0..lines {
        if i % 100 == 0 {
            body.push_str("# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n");
            body.push_str("# TYPE node_cpu_seconds_total counter\n");
            n += 2;
        }
        body.push_str(&format!(
            "http_requests_total{{method=\"post\",code=\"{}\",handler=\"/api/v1/query\"}} {} 1395066363000\n",
            200 + i % 300,
            i * 7
        ));
        body.push_str(&format!(
            "node_cpu_seconds_total{{cpu=\"{}\",mode=\"idle\"}} 1.{}e+06\n",
            i % 64,
            i
        ));
        n += 2;
    }
    (body, n)
}

fn bench(c: &mut Criterion) {
    let (text, lines) = body(50_000);
    let mut g = c.benchmark_group("expfmt");
    g.throughput(Throughput::Elements(lines));
    g.bench_function("parse_text", |b| {
        b.iter(|| {
            let n = Parser::new(&text, Format::Text)
                .filter(|e| e.is_ok())
                .count();
            assert!(n > 0);
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
