//! WAL Samples record size and encode/decode speed on a realistic commit: 50 series x 40 samples
//! at 15 s (the remote-write batch shape of `bench/dataset.py`), with float counters (2 decimals),
//! integer counters, page-sized gauges, load averages, constants and histogram buckets/sums.
//!
//! The sizes (bytes/sample of each encoding, and of compressing the record bytes with snappy and
//! zstd) are printed once before the timings.
//!
//! With `PHAROS_WAL_DATASET=path/to/shard-0.bin` (a shard file of `bench/dataset.py`: records of
//! `[window: u32][samples: u32][length: u32]` and a snappy-compressed remote-write request), the
//! commits are that file's requests 200..400 instead (series refs numbered by label bytes).

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pharos_tsdb::wal::{
    RefSample, decode_record, encode_samples, encode_samples_compressed, encode_samples_plain,
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

/// A protobuf varint at the start of `b`, and the bytes after it.
fn pb_varint(b: &[u8]) -> (u64, &[u8]) {
    let mut n = 0u64;
    for (i, &x) in b.iter().enumerate().take(10) {
        n |= u64::from(x & 0x7f) << (7 * i);
        if x & 0x80 == 0 {
            return (n, &b[i + 1..]);
        }
    }
    panic!("bad varint");
}

/// The fields of a protobuf message: (field number, wire type, bytes or fixed/varint value).
fn pb_fields(mut b: &[u8]) -> Vec<(u64, &[u8], u64)> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (key, rest) = pb_varint(b);
        match key & 7 {
            0 => {
                let (v, rest) = pb_varint(rest);
                out.push((key >> 3, &[][..], v));
                b = rest;
            }
            1 => {
                let v = u64::from_le_bytes(rest[..8].try_into().unwrap());
                out.push((key >> 3, &[][..], v));
                b = &rest[8..];
            }
            2 => {
                let (n, rest) = pb_varint(rest);
                out.push((key >> 3, &rest[..n as usize], 0));
                b = &rest[n as usize..];
            }
            w => panic!("wire type {w}"),
        }
    }
    out
}

/// Requests `skip..skip + take` of a `bench/dataset.py` shard file as commits.
fn real_batches(path: &str, skip: usize, take: usize) -> Vec<Vec<RefSample>> {
    let data = std::fs::read(path).unwrap();
    let mut refs: std::collections::HashMap<Vec<u8>, u64> = Default::default();
    let mut rest = &data[..];
    let mut out = Vec::new();
    let mut i = 0;
    while rest.len() >= 12 && out.len() < take {
        let len = u32::from_le_bytes(rest[8..12].try_into().unwrap()) as usize;
        let body = &rest[12..12 + len];
        rest = &rest[12 + len..];
        i += 1;
        if i <= skip {
            continue;
        }
        let raw = snap::raw::Decoder::new().decompress_vec(body).unwrap();
        let mut samples = Vec::new();
        for (f, ts, _) in pb_fields(&raw) {
            if f != 1 {
                continue;
            }
            let fields = pb_fields(ts);
            let labels: Vec<u8> = fields
                .iter()
                .filter(|x| x.0 == 1)
                .flat_map(|x| x.1.to_vec())
                .collect();
            let next = refs.len() as u64 + 1;
            let r = *refs.entry(labels).or_insert(next);
            for (f, s, _) in fields {
                if f != 2 {
                    continue;
                }
                let (mut t, mut v) = (0i64, 0f64);
                for (g, _, x) in pb_fields(s) {
                    match g {
                        1 => v = f64::from_bits(x),
                        2 => t = x as i64,
                        _ => {}
                    }
                }
                samples.push(RefSample { series: r, t, v });
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
    let data = match std::env::var("PHAROS_WAL_DATASET") {
        Ok(path) => real_batches(&path, 200, 200),
        Err(_) => batches(50),
    };
    let n = data.iter().map(Vec::len).sum::<usize>() as f64;
    for (name, f) in [
        (
            "plain (type 2)",
            encode_samples_plain as fn(&mut Vec<u8>, &[RefSample]),
        ),
        ("written (type 4: dense)", encode_samples),
        (
            "dense + zstd(1) as before (type 5)",
            encode_samples_compressed,
        ),
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
    // The dense records compressed at other zstd levels (negative: zstd's fast modes).
    let dense_records: Vec<Vec<u8>> = data
        .iter()
        .map(|b| {
            let mut v = Vec::new();
            encode_samples(&mut v, b);
            v
        })
        .collect();
    for level in [-20, -10, -5, -3, -1, 1, 3] {
        let mut z = zstd::bulk::Compressor::new(level).unwrap();
        let bytes: usize = dense_records
            .iter()
            .map(|r| z.compress(r).unwrap().len().min(r.len()))
            .sum();
        eprintln!(
            "wal dense + zstd({level}): {:.3} bytes/sample",
            bytes as f64 / n
        );
    }

    let mut g = c.benchmark_group("wal_samples");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("encode_plain", |b| {
        b.iter(|| encode_all(&data, encode_samples_plain))
    });
    g.bench_function("encode_dense", |b| {
        b.iter(|| encode_all(&data, encode_samples))
    });
    g.bench_function("encode_dense_zstd", |b| {
        b.iter(|| encode_all(&data, encode_samples_compressed))
    });
    for level in [-10, -5, -1, 1] {
        let mut z = zstd::bulk::Compressor::new(level).unwrap();
        let mut buf = Vec::new();
        g.bench_function(format!("encode_dense_then_zstd({level})"), |b| {
            b.iter(|| {
                let mut total = 0;
                for batch in &data {
                    buf.clear();
                    encode_samples(&mut buf, batch);
                    total += z.compress(&buf).unwrap().len();
                }
                total
            })
        });
    }
    let dense = encode_all(&data, encode_samples);
    let zstd = encode_all(&data, encode_samples_compressed);
    for (name, bytes) in [("decode_dense", &dense), ("decode_dense_zstd", &zstd)] {
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
    g.bench_function("snappy_over_dense_records", |b| {
        b.iter(|| {
            dense_records
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
