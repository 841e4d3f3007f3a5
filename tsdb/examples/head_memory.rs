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
//! With `replay DIR`, opens a copy of the database in `DIR` instead (its WAL is replayed into
//! the head) and reports the live heap (counted by this program's allocator), its peak during
//! the replay, the RSS growth and the head's own breakdown by part, per series:
//!
//! ```sh
//! cargo run --release -p pharos-tsdb --example head_memory -- replay /path/to/data
//! ```
//! Linux only (reads `/proc/self/statm`).

#![allow(clippy::unwrap_used, clippy::expect_used)]
// The counting allocator below is the only unsafe code: it forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

/// Counts the live heap bytes and their peak.
struct Counting;

/// Counting is on only in `replay` mode (it would slow the append rate measured otherwise).
static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call forwards to `System` with the caller's arguments unchanged; the counters
// are only statistics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            let n = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(n, Ordering::Relaxed);
        }
        // SAFETY: forwarded as is.
        unsafe { System.alloc(l) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        }
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(p, l) }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if !COUNTING.load(Ordering::Relaxed) {
        } else if new >= l.size() {
            let n = LIVE.fetch_add(new - l.size(), Ordering::Relaxed) + new - l.size();
            PEAK.fetch_max(n, Ordering::Relaxed);
        } else {
            LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
        }
        // SAFETY: forwarded as is.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Opens a copy of the database in `src` and reports its head's memory.
fn replay(src: &std::path::Path) {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(src, dir.path());
    let _ = std::fs::remove_file(dir.path().join("lock"));
    let (rss0, live0) = (rss(), LIVE.load(Ordering::Relaxed));
    PEAK.store(live0, Ordering::Relaxed);
    let started = Instant::now();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let elapsed = started.elapsed();
    let (rss1, live1, peak) = (
        rss(),
        LIVE.load(Ordering::Relaxed),
        PEAK.load(Ordering::Relaxed),
    );
    let n = db.stats().head_series.max(1) as f64;
    println!(
        "replayed in {elapsed:.2?}: {} series, {} samples; per series: live heap {:.0} B, \
         peak during replay {:.0} B, RSS growth {:.0} B",
        db.stats().head_series,
        db.stats().head_samples,
        live1.wrapping_sub(live0) as f64 / n,
        peak.wrapping_sub(live0) as f64 / n,
        rss1.saturating_sub(rss0) as f64 / n,
    );
    // What glibc keeps of the freed replay buffers: the RSS it gives back when asked to.
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> i32;
        fn malloc_stats();
    }
    // SAFETY: glibc's malloc_trim takes no pointers and is thread safe.
    unsafe { malloc_trim(0) };
    if std::env::var_os("MALLOC_STATS").is_some() {
        // SAFETY: takes no arguments; prints to stderr.
        unsafe { malloc_stats() };
    }
    println!(
        "  RSS growth after malloc_trim(0): {:.0} B/series",
        rss().saturating_sub(rss0) as f64 / n
    );
    for (what, v) in db.head_memory() {
        match what.strip_prefix("B ") {
            Some(part) => println!("  {part}: {:.1} B/series", v as f64 / n),
            None => println!("  {what}: {v}"),
        }
    }
    db.close().unwrap();
}

fn copy_dir(src: &std::path::Path, dst: &std::path::Path) {
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&to).unwrap();
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}

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
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("replay") {
        // Set before anything is allocated, so that frees match counted allocations.
        COUNTING.store(true, Ordering::Relaxed);
        let dir = args.nth(1).expect("replay DIR");
        replay(std::path::Path::new(&dir));
        return;
    }
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
