//! Bytes per sample of the chunk encodings on a real data directory, for choosing chunk sizes
//! and the zstd level of persisted blocks by measurement (not a timing benchmark).
//!
//! `PHAROS_DENSITY_DIR=/path/to/data cargo bench -p pharos-tsdb --bench density`
//! (`PHAROS_DENSITY_QUICK=1`: only `encode_best` at 480/1440/4320 and the bytes per metric name)
//!
//! The directory is copied to a temporary one first (opening it writes a WAL segment). Every
//! series is read whole, cut into chunks of N samples and encoded with `chunk::encode_best`
//! (Xor or Packed, the smaller) and with `chunk::encode_cold` at several zstd levels; the figure
//! includes the per-chunk framing of a block (length, encoding byte, CRC32C, index entry: about
//! 13 bytes). Without the variable it measures a synthetic mix instead.
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::Path;
use std::time::Instant;

use pharos_model::storage::{Queryable, SelectHints, collect_samples};
use pharos_model::{MatchOp, Matcher, Sample};
use pharos_tsdb::chunk::{self, Encoding};
use pharos_tsdb::{Db, Options};

/// Block framing per chunk: uvarint length (2), encoding byte, CRC32C, index entry (~6).
const FRAMING: usize = 13;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else if e.file_name() != "lock" {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

fn load(dir: &Path) -> Vec<(String, Vec<Sample>)> {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(dir, tmp.path());
    let db = Db::open(
        tmp.path(),
        Options {
            retention: std::time::Duration::ZERO,
            ..Options::default()
        },
    )
    .unwrap();
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    let all = Matcher::new(MatchOp::Re, "__name__", ".+").unwrap();
    let set = q.select(&[all], &SelectHints::default()).unwrap();
    set.map(|mut s| {
        let name = s.labels.get("__name__").unwrap_or("").to_string();
        (name, collect_samples(s.samples.as_mut()))
    })
    .collect()
}

fn synthetic() -> Vec<(String, Vec<Sample>)> {
    let mut out = Vec::new();
    for k in 0..200i64 {
        let t = |i: i64| 1_700_000_000_000 + i * 15_000 + k * 37;
        let n = 5760;
        let mk = |f: &dyn Fn(i64) -> f64| (0..n).map(|i| Sample { t: t(i), v: f(i) }).collect();
        out.push((
            "cpu".into(),
            mk(&|i| (k * 1000 + i * 14 + (i * k) % 3) as f64 / 100.0),
        ));
        out.push((
            "load".into(),
            mk(&|i| ((i as f64) * 0.01 + k as f64).sin() * 3.3 + 4.0),
        ));
        out.push((
            "bytes".into(),
            mk(&|i| (8_000_000_000 + ((i * 7919 + k) % 97) * 4096) as f64),
        ));
        out.push(("const".into(), mk(&|_| 1.0)));
    }
    out
}

fn measure(data: &[(String, Vec<Sample>)], size: usize, level: Option<i32>) -> (f64, f64) {
    let (mut bytes, mut samples) = (0usize, 0usize);
    let mut buf = Vec::new();
    let started = Instant::now();
    for (_, s) in data {
        for part in s.chunks(size) {
            buf.clear();
            match level {
                None => {
                    chunk::encode_best(part, &mut buf);
                }
                Some(l) => {
                    chunk::encode_cold(part, l, &mut buf);
                }
            }
            bytes += buf.len() + FRAMING;
            samples += part.len();
        }
    }
    let secs = started.elapsed().as_secs_f64();
    (bytes as f64 / samples as f64, samples as f64 / secs / 1e6)
}

/// Decode throughput (best of 3 passes over all chunks) of chunks of `size` samples encoded
/// with `encode_best` (`level` None) or `encode_cold` at `level`.
fn decode_rate(data: &[(String, Vec<Sample>)], size: usize, level: Option<i32>) -> f64 {
    let mut encoded: Vec<(Encoding, Vec<u8>)> = Vec::new();
    let mut samples = 0usize;
    for (_, s) in data {
        for part in s.chunks(size) {
            let mut buf = Vec::new();
            let e = match level {
                None => chunk::encode_best(part, &mut buf),
                Some(l) => chunk::encode_cold(part, l, &mut buf),
            };
            encoded.push((e, buf));
            samples += part.len();
        }
    }
    let mut out = Vec::new();
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let started = Instant::now();
        for (e, b) in &encoded {
            out.clear();
            chunk::decode_into(*e, b, &mut out).unwrap();
        }
        best = best.min(started.elapsed().as_secs_f64());
    }
    samples as f64 / best / 1e6
}

fn main() {
    let data = match std::env::var_os("PHAROS_DENSITY_DIR") {
        Some(d) => load(Path::new(&d)),
        None => synthetic(),
    };
    let total: usize = data.iter().map(|(_, s)| s.len()).sum();
    println!("{} series, {total} samples", data.len());
    if std::env::var_os("PHAROS_DENSITY_QUICK").is_some() {
        // What block writers do: encode_best at a few chunk sizes, and where the bytes go.
        for size in [480, 1440, 4320] {
            let (bps, rate) = measure(&data, size, None);
            let dec = decode_rate(&data, size, None);
            println!("best, {size}/chunk: {bps:.4} B/sample ({rate:.1} M/s enc, {dec:.1} M/s dec)");
        }
        let mut by: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
        let mut buf = Vec::new();
        for (name, s) in &data {
            for part in s.chunks(480) {
                buf.clear();
                chunk::encode_best(part, &mut buf);
                let e = by.entry(name.as_str()).or_default();
                e.0 += buf.len() + FRAMING;
                e.1 += part.len();
            }
        }
        let all: usize = by.values().map(|v| v.0).sum();
        let mut rows: Vec<_> = by.into_iter().collect();
        rows.sort_by_key(|(_, (b, _))| std::cmp::Reverse(*b));
        for (name, (b, n)) in rows.iter().take(20) {
            println!(
                "{name}: {:.1}% of bytes, {:.3} B/sample",
                100.0 * *b as f64 / all as f64,
                *b as f64 / *n as f64
            );
        }
        return;
    }
    println!("| samples/chunk | best | zstd 1 | zstd 3 | zstd 9 | zstd 19 |");
    for size in [120, 480, 1440, 4320, 12960] {
        let mut row = format!("| {size} |");
        for level in [None, Some(1), Some(3), Some(9), Some(19)] {
            let (bps, rate) = measure(&data, size, level);
            row.push_str(&format!(" {bps:.3} B ({rate:.1} M/s enc) |"));
        }
        println!("{row}");
    }
    for size in [480, 1440, 4320] {
        println!(
            "decode zstd 3, {size}/chunk: {:.1} M samples/s",
            decode_rate(&data, size, Some(3))
        );
    }
    // Per metric name at 1440/chunk, zstd 3: where the bytes go.
    let mut by: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    let mut buf = Vec::new();
    for (name, s) in &data {
        for part in s.chunks(1440) {
            buf.clear();
            chunk::encode_cold(part, 3, &mut buf);
            let e = by.entry(name.as_str()).or_default();
            e.0 += buf.len() + FRAMING;
            e.1 += part.len();
        }
    }
    let mut rows: Vec<_> = by.into_iter().collect();
    rows.sort_by_key(|(_, (b, _))| std::cmp::Reverse(*b));
    for (name, (b, n)) in rows.iter().take(15) {
        println!(
            "{name}: {:.1}% of bytes, {:.3} B/sample",
            100.0 * *b as f64
                / (total as f64 * 1.0).max(1.0)
                / (rows.iter().map(|r| r.1.0).sum::<usize>() as f64 / total as f64),
            *b as f64 / *n as f64
        );
    }
}
