//! Criterion benchmarks of the storage engine: chunk encode/decode per encoding, head append
//! through `Appender`, postings intersection and select over blocks and head.
//!
//! `cargo bench -p pharos-tsdb` (prints the measured bytes per sample of each data shape first).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pharos_model::storage::{Appendable, Queryable, SelectHints, collect_samples};
use pharos_model::{Labels, Matcher, Sample, SeriesRef};
use pharos_tsdb::chunk::{self, Decoder, Encoder, Encoding};
use pharos_tsdb::{Db, Options};

/// 120 samples at 15 s with 0-3 ms jitter, for each data shape.
fn shapes() -> Vec<(&'static str, Vec<Sample>)> {
    let t = |i: i64| 1_700_000_000_000 + i * 15_000 + (i * 7) % 4;
    let mk = |f: &dyn Fn(i64) -> f64| (0..120).map(|i| Sample { t: t(i), v: f(i) }).collect();
    vec![
        ("constant", mk(&|_| 1.0)),
        ("int_counter", mk(&|i| (i * 1000 + (i * i) % 17) as f64)),
        (
            "cpu_seconds",
            mk(&|i| (12_345_600 + i * 1493 + i % 3) as f64 / 100.0),
        ),
        (
            "bytes_gauge",
            mk(&|i| (8_000_000_000 + ((i * 7919) % 97) * 4096) as f64),
        ),
        ("float_gauge", mk(&|i| ((i as f64) * 0.7).sin() * 3.3)),
    ]
}

fn chunks(c: &mut Criterion) {
    for (name, samples) in shapes() {
        let mut xor = Encoder::new();
        for s in &samples {
            xor.append(s.t, s.v);
        }
        let mut best = Vec::new();
        let enc = chunk::encode_best(&samples, &mut best);
        println!(
            "{name}: xor {:.2} bytes/sample, best ({enc:?}) {:.2} bytes/sample",
            xor.bytes().len() as f64 / 120.0,
            best.len() as f64 / 120.0
        );
        let mut g = c.benchmark_group(format!("chunk/{name}"));
        g.throughput(Throughput::Elements(samples.len() as u64));
        g.bench_function("encode_xor", |b| {
            b.iter(|| {
                let mut e = Encoder::new();
                for s in black_box(&samples) {
                    e.append(s.t, s.v);
                }
                e.into_bytes()
            })
        });
        g.bench_function("encode_best", |b| {
            let mut out = Vec::new();
            b.iter(|| {
                out.clear();
                chunk::encode_best(black_box(&samples), &mut out)
            })
        });
        g.bench_function("decode_xor", |b| {
            b.iter(|| {
                Decoder::new(black_box(xor.bytes()))
                    .unwrap()
                    .collect_all()
                    .unwrap()
            })
        });
        g.bench_function("decode_best", |b| {
            let mut out = Vec::with_capacity(120);
            b.iter(|| {
                out.clear();
                chunk::decode_into(enc, black_box(&best), &mut out).unwrap();
            })
        });
        g.finish();
    }
    let _ = Encoding::Xor;
}

/// Block-sized chunks (480 samples at a regular 15 s, as block writers cut them from scrapes
/// without jitter) of the shapes that dominate the bench dataset, decoded with the encoding
/// `encode_best` picks: `cargo bench -p pharos-tsdb --bench tsdb -- decode480`.
fn block_chunks(c: &mut Criterion) {
    let t = |i: i64| 1_700_000_000_000 + i * 15_000;
    let mk = |f: &mut dyn FnMut(i64) -> f64| -> Vec<Sample> {
        (0..480).map(|i| Sample { t: t(i), v: f(i) }).collect()
    };
    let mut state = 1e10 / 3.0;
    let mut seed = 7u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 1_000_000) as f64 / 1e6
    };
    let shapes: Vec<(&str, Vec<Sample>)> = vec![
        ("constant", mk(&mut |_| 1.0)),
        ("int_counter", mk(&mut |i| (i * 1000 + (i * i) % 17) as f64)),
        (
            "cpu_seconds",
            mk(&mut |i| (12_345_600 + i * 1493 + i % 3) as f64 / 100.0),
        ),
        (
            "bytes_gauge",
            mk(&mut |i| (8_000_000_000 + ((i * 7919) % 97) * 4096) as f64),
        ),
        (
            "float_counter",
            mk(&mut |_| {
                state += 3e5 * (0.5 + rnd());
                state
            }),
        ),
        ("float_gauge", mk(&mut |i| ((i as f64) * 0.7).sin() * 3.3)),
    ];
    // The same shapes scraped with 0-3 ms of jitter: timestamps take a packed run of their own.
    let jittered: Vec<(String, Vec<Sample>)> = shapes
        .iter()
        .filter(|(name, _)| *name != "constant")
        .map(|(name, s)| {
            let s = s.iter().enumerate().map(|(i, s)| Sample {
                t: s.t + (i as i64 * 7) % 4,
                v: s.v,
            });
            (format!("{name}_jitter"), s.collect())
        })
        .collect();
    let shapes = shapes
        .into_iter()
        .map(|(name, s)| (name.to_string(), s))
        .chain(jittered);
    for (name, samples) in shapes {
        let mut best = Vec::new();
        let enc = chunk::encode_best(&samples, &mut best);
        println!(
            "decode480/{name}: {enc:?}, {:.3} bytes/sample",
            best.len() as f64 / samples.len() as f64
        );
        let mut g = c.benchmark_group(format!("decode480/{name}"));
        g.throughput(Throughput::Elements(samples.len() as u64));
        g.bench_function("decode_best", |b| {
            let mut out = Vec::with_capacity(samples.len());
            b.iter(|| {
                out.clear();
                chunk::decode_into(enc, black_box(&best), &mut out).unwrap();
                out.len()
            })
        });
        g.finish();
    }
}

fn series_labels(n: usize) -> Vec<Labels> {
    (0..n)
        .map(|i| {
            Labels::from_pairs(&[
                ("__name__", format!("metric_{}", i % 100).as_str()),
                ("instance", format!("host-{}", i / 100).as_str()),
                ("job", if i % 2 == 0 { "node" } else { "pod" }),
            ])
        })
        .collect()
}

fn opts() -> Options {
    Options {
        retention: Duration::ZERO,
        ..Options::default()
    }
}

fn head_append(c: &mut Criterion) {
    const SERIES: usize = 10_000;
    let ls = series_labels(SERIES);
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let mut refs: Vec<Option<SeriesRef>> = vec![None; SERIES];
    let mut t = 1_700_000_000_000i64;
    let mut g = c.benchmark_group("head");
    g.throughput(Throughput::Elements(SERIES as u64));
    g.bench_function("append_commit_10k_series", |b| {
        b.iter(|| {
            t += 15_000;
            let mut app = db.appender();
            for (i, l) in ls.iter().enumerate() {
                refs[i] = Some(
                    app.append(refs[i], l, t, (t / 1000 + i as i64) as f64)
                        .unwrap(),
                );
            }
            app.commit().unwrap();
        })
    });
    // A scrape's commit: 500 samples of cached series, appended by ref and checked at the
    // commit, one target after another over 100 targets (50k series: each commit finds its
    // series out of the caches, as a 1 s scrape interval does).
    const TARGETS: usize = 100;
    const PER_TARGET: usize = 500;
    let ls = series_labels(TARGETS * PER_TARGET);
    t += 1_000;
    let mut app = db.appender();
    let scraped: Vec<SeriesRef> = ls
        .iter()
        .map(|l| app.append(None, l, t, 0.0).unwrap())
        .collect();
    app.commit().unwrap();
    let mut k = 0usize;
    g.throughput(Throughput::Elements(PER_TARGET as u64));
    g.bench_function("scrape_commit_500_of_50k_series", |b| {
        b.iter(|| {
            k = (k + 1) % TARGETS;
            if k == 0 {
                t += 1_000;
            }
            let mut app = db.appender();
            for (j, &r) in scraped[k * PER_TARGET..][..PER_TARGET].iter().enumerate() {
                app.append_deferred(r, t, (t / 1000 + j as i64) as f64)
                    .unwrap();
            }
            app.commit_report().unwrap()
        })
    });
    g.finish();
}

fn select(c: &mut Criterion) {
    const SERIES: usize = 10_000;
    let ls = series_labels(SERIES);
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let base = 1_700_000_000_000i64 / 7_200_000 * 7_200_000;
    let mut refs: Vec<Option<SeriesRef>> = vec![None; SERIES];
    for k in 0..4 * 60 {
        let t = base + k * 60_000;
        let mut app = db.appender();
        for (i, l) in ls.iter().enumerate() {
            refs[i] = Some(
                app.append(refs[i], l, t, (k * 3 + i as i64) as f64)
                    .unwrap(),
            );
        }
        app.commit().unwrap();
    }
    db.compact().unwrap();
    let st = db.stats();
    println!(
        "select dataset: {} blocks, {} block samples, {:.3} block bytes/sample, head {} samples",
        st.blocks,
        st.block_samples,
        st.block_bytes as f64 / st.block_samples.max(1) as f64,
        st.head_samples
    );
    let mut g = c.benchmark_group("select");
    let matchers = [
        Matcher::eq("__name__", "metric_7"),
        Matcher::eq("job", "pod"),
    ];
    g.bench_function("postings_intersection_blocks_and_head", |b| {
        b.iter(|| {
            let q = db.querier(base, base + 4 * 3_600_000).unwrap();
            q.select(black_box(&matchers), &SelectHints::default())
                .unwrap()
                .count()
        })
    });
    g.bench_function("select_and_decode_100_series_4h", |b| {
        let m = [Matcher::eq("__name__", "metric_7")];
        b.iter(|| {
            let q = db.querier(base, base + 4 * 3_600_000).unwrap();
            q.select(&m, &SelectHints::default())
                .unwrap()
                .map(|mut s| collect_samples(s.samples.as_mut()).len())
                .sum::<usize>()
        })
    });
    g.bench_function("select_and_collect_into_100_series_4h", |b| {
        let m = [Matcher::eq("__name__", "metric_7")];
        let (lo, hi) = (base, base + 4 * 3_600_000);
        b.iter(|| {
            let q = db.querier(lo, hi).unwrap();
            let mut out = Vec::new();
            q.select(&m, &SelectHints::default())
                .unwrap()
                .map(|mut s| {
                    out.clear();
                    s.samples.collect_into(lo, hi, &mut out);
                    out.len()
                })
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, chunks, block_chunks, head_append, select);
criterion_main!(benches);
