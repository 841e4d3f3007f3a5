//! WAL Samples record size and encode/decode speed on a realistic commit: 50 series x 40 samples
//! at 15 s (the remote-write batch shape of `bench/dataset.py`), with float counters (2 decimals),
//! integer counters, page-sized gauges, load averages, constants and histogram buckets/sums.
//!
//! The sizes (bytes/sample of each encoding, and of compressing the record bytes with snappy and
//! zstd) are printed once before the timings.

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pharos_tsdb::wal::{
    RefSample, decode_record, encode_samples, encode_samples_plain, encode_samples_uncompressed,
};

const SERIES: u64 = 50;
const STEPS: i64 = 40;

/// A small deterministic generator (xorshift64*), in [0, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `batches` commits of 50 series x 40 samples, series-major as remote write appends them.
fn batches(batches: usize) -> Vec<Vec<RefSample>> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut state: Vec<f64> = (0..SERIES)
        .map(|i| (i * 7919 % 1000) as f64 * 1e3)
        .collect();
    let mut out = Vec::new();
    for b in 0..batches {
        let mut samples = Vec::new();
        for r in 0..SERIES {
            let off = (r as i64 * 37) % 15_000;
            for i in 0..STEPS {
                let t = 1_700_000_000_000 + (b as i64 * STEPS + i) * 15_000 + off;
                let v = &mut state[r as usize];
                *v = match r % 7 {
                    // cpu seconds counter, 2 decimals
                    0 => ((*v + 15.0 * (0.5 + rng.next())) * 100.0).round() / 100.0,
                    // bytes counter, multiples of 512
                    1 => *v + 512.0 * (2000.0 * rng.next()).floor(),
                    // memory gauge, multiples of 4096
                    2 => (*v + 4096.0 * (400.0 * (rng.next() - 0.5)).floor()).max(0.0),
                    // load average
                    3 => *v * 0.9 + 0.1 * 3.0 * rng.next(),
                    // constant
                    4 => 1.0,
                    // histogram bucket counts
                    5 => *v + (100.0 * rng.next()).floor(),
                    // histogram sum, 6 decimals
                    _ => ((*v + 100.0 * 0.05 * (0.9 + 0.2 * rng.next())) * 1e6).round() / 1e6,
                };
                samples.push(RefSample {
                    series: 1000 + r,
                    t,
                    v: *v,
                });
            }
        }
        out.push(samples);
    }
    out
}

fn encode_all(data: &[Vec<RefSample>], f: fn(&mut Vec<u8>, &[RefSample])) -> Vec<u8> {
    let mut buf = Vec::new();
    for b in data {
        f(&mut buf, b);
    }
    buf
}

fn wal_samples(c: &mut Criterion) {
    let data = batches(50);
    let n = data.iter().map(Vec::len).sum::<usize>() as f64;
    for (name, f) in [
        (
            "plain (type 2)",
            encode_samples_plain as fn(&mut Vec<u8>, &[RefSample]),
        ),
        ("dense (type 4)", encode_samples_uncompressed),
        ("written (type 5: dense + zstd)", encode_samples),
    ] {
        let one: Vec<Vec<u8>> = data
            .iter()
            .map(|b| {
                let mut v = Vec::new();
                f(&mut v, b);
                v
            })
            .collect();
        let raw: usize = one.iter().map(Vec::len).sum();
        let snappy: usize = one
            .iter()
            .map(|r| {
                snap::raw::Encoder::new()
                    .compress_vec(r)
                    .map_or(r.len(), |c| c.len())
            })
            .sum();
        let zstd1: usize = one
            .iter()
            .map(|r| zstd::bulk::compress(r, 1).map_or(r.len(), |c| c.len()))
            .sum();
        eprintln!(
            "wal {name}: {:.3} bytes/sample; per record + snappy {:.3}; + zstd(1) {:.3}",
            raw as f64 / n,
            snappy as f64 / n,
            zstd1 as f64 / n
        );
    }

    let mut g = c.benchmark_group("wal_samples");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("encode_plain", |b| {
        b.iter(|| encode_all(&data, encode_samples_plain))
    });
    g.bench_function("encode_dense", |b| {
        b.iter(|| encode_all(&data, encode_samples_uncompressed))
    });
    g.bench_function("encode_written", |b| {
        b.iter(|| encode_all(&data, encode_samples))
    });
    let dense = encode_all(&data, encode_samples_uncompressed);
    let written = encode_all(&data, encode_samples);
    for (name, bytes) in [("decode_dense", &dense), ("decode_written", &written)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut rest = &bytes[..];
                let mut k = 0;
                while !rest.is_empty() {
                    let (_, after) = decode_record(rest).unwrap();
                    rest = after;
                    k += 1;
                }
                k
            })
        });
    }
    let plain = encode_all(&data, encode_samples_plain);
    g.bench_function("decode_plain", |b| {
        b.iter(|| {
            let mut rest = &plain[..];
            while !rest.is_empty() {
                rest = decode_record(rest).unwrap().1;
            }
        })
    });
    let snappy: Vec<Vec<u8>> = data
        .iter()
        .map(|b| {
            let mut v = Vec::new();
            encode_samples(&mut v, b);
            v
        })
        .collect();
    g.bench_function("encode_dense_then_snappy", |b| {
        b.iter(|| {
            snappy
                .iter()
                .map(|r| {
                    snap::raw::Encoder::new()
                        .compress_vec(r)
                        .map_or(0, |c| c.len())
                })
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, wal_samples);
criterion_main!(benches);
