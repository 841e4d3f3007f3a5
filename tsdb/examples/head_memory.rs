//! Measures the head's memory per active series: opens a database in a temporary directory,
//! creates `N` node-exporter-like series (6 labels each) and appends `S` samples to each at a
//! 15 s step (commits of 1000 samples, like scrapes), then reports the growth of the process' resident set size per series.
//!
//! ```sh
//! cargo run --release -p pharos-tsdb --example head_memory -- 50000 120
//! ```
//! Linux only (reads `/proc/self/statm`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use pharos_model::Labels;
use pharos_model::storage::Appendable;
use pharos_tsdb::{Db, Options};

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
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let before = rss();
    let mut value = vec![0f64; n];
    let t0 = 1_700_000_000_000i64;
    for k in 0..samples {
        let mut app = db.appender();
        for (i, v) in value.iter_mut().enumerate() {
            // Counters with irregular increments at 0.01 resolution, like CPU seconds.
            *v += ((i as i64 * 7919 + k * 104_729) % 150) as f64 / 100.0;
            app.append(None, &labels(i), t0 + k * 15_000, *v).unwrap();
            // Scrape-sized commits, so that pending batches do not inflate the figure.
            if i % 1000 == 999 {
                app.commit().unwrap();
                app = db.appender();
            }
        }
        app.commit().unwrap();
    }
    let after = rss();
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
