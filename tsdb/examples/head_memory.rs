//! Measures the head's memory per active series: opens a database in a temporary directory,
//! creates `N` node-exporter-like series (6 labels each) and appends `S` samples to each at a
//! 15 s step (decimal counters; commits of 1000 samples, like scrapes), then reports the growth of the process'
//! resident set size per series, and the append rate through `Appender` (per wall second and
//! per CPU second of the process, all threads; the first round creates the series, the later
//! ones append with the refs returned).
//!
//! ```sh
//! cargo run --release -p pharos-tsdb --example head_memory -- 50000 120
//! ```
//! Linux only (reads `/proc/self/statm`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use pharos_model::storage::Appendable;
use pharos_model::{Labels, SeriesRef};
use pharos_tsdb::{Db, Options};

/// CPU seconds (user + system, all threads) of this process, at 10 ms resolution.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let rest = stat.rsplit_once(')').expect("stat format").1;
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|x| x.parse().unwrap())
        .collect();
    (f[0] + f[1]) as f64 / 100.0
}

/// Resident set size in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn labels(i: usize) -> Labels {
    let cpu = (i % 16).to_string();
    let name = format!("node_metric_{}_total", i / 16 % 100);
    let instance = format!("10.1.{}.{}:9100", i / 1600 / 250, i / 1600 % 250);
    Labels::from_pairs(&[
        ("__name__", name.as_str()),
        ("cpu", &cpu),
        ("instance", &instance),
        ("job", "node"),
        ("mode", "user"),
        ("node", "worker-a"),
    ])
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map_or(50_000, |a| a.parse().expect("series count"));
    let samples: i64 = args
        .next()
        .map_or(120, |a| a.parse().expect("samples per series"));
    let dir = tempfile::tempdir().unwrap();
    let all: Vec<Labels> = (0..n).map(labels).collect();
    let mut refs: Vec<Option<SeriesRef>> = vec![None; n];
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let before = rss();
    // Counters in hundredths, like CPU seconds as node_exporter exposes them ("1234.56"): a
    // scraped value is the decimal text parsed, not a sum of floats.
    let mut cents = vec![0i64; n];
    let t0 = 1_700_000_000_000i64;
    let (wall0, cpu0) = (Instant::now(), cpu_seconds());
    let mut first_round = (0.0, 0.0);
    for k in 0..samples {
        let mut app = db.appender();
        for (i, c) in cents.iter_mut().enumerate() {
            // Irregular increments at 0.01 resolution.
            *c += (i as i64 * 7919 + k * 104_729) % 150;
            let v = *c as f64 / 100.0;
            refs[i] = Some(app.append(refs[i], &all[i], t0 + k * 15_000, v).unwrap());
            // Scrape-sized commits, so that pending batches do not inflate the figure.
            if i % 1000 == 999 {
                app.commit().unwrap();
                app = db.appender();
            }
        }
        app.commit().unwrap();
        if k == 0 {
            first_round = (wall0.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
        }
    }
    let (wall, cpu) = (wall0.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
    let later = (n as f64) * (samples - 1) as f64;
    println!(
        "append: {:.2} M samples/s per wall s, {:.2} M/CPU s (first round, creating series: {:.2} M/s, {:.2} M/CPU s)",
        later / (wall - first_round.0) / 1e6,
        later / (cpu - first_round.1).max(0.01) / 1e6,
        n as f64 / first_round.0 / 1e6,
        n as f64 / first_round.1.max(0.01) / 1e6,
    );
    let after = rss();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let parts: Vec<&str> = status
        .lines()
        .filter(|l| l.starts_with("Rss"))
        .map(str::trim)
        .collect();
    println!("{}", parts.join(", "));
    let st = db.stats();
    println!(
        "{} series, {} samples each: RSS grew {} bytes = {:.0} bytes/series ({} head series, {} head samples)",
        n,
        samples,
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 / n as f64,
        st.head_series,
        st.head_samples
    );
    db.close().unwrap();
}
