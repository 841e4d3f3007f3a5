//! Rough measurements, run on demand:
//! `cargo test -p pharos-tsdb --release --test it -- --ignored --nocapture bench`.

use std::time::Instant;

use pharos_model::storage::{Appendable, Queryable, SelectHints, collect_samples};
use pharos_model::{Matcher, SeriesRef};
use pharos_tsdb::chunk::{Encoder, SAMPLES_PER_CHUNK};
use pharos_tsdb::{Db, Options};

use crate::common::*;

#[test]
#[ignore]
fn bench_append_query_replay() {
    const SERIES: usize = 10_000;
    const SCRAPES: i64 = 120;
    let dir = tempfile::tempdir().unwrap();
    let ls: Vec<_> = (0..SERIES)
        .map(|i| {
            labels(&[
                ("__name__", &format!("metric_{}", i % 100)),
                ("instance", &format!("host-{}", i / 100)),
                ("job", "node"),
            ])
        })
        .collect();
    let db = Db::open(
        dir.path(),
        Options {
            retention: std::time::Duration::ZERO,
            ..Options::default()
        },
    )
    .unwrap();
    let mut refs: Vec<Option<SeriesRef>> = vec![None; SERIES];
    let start = Instant::now();
    for s in 0..SCRAPES {
        let t = 1_700_000_000_000 + s * 15_000;
        let mut app = db.appender();
        for (i, l) in ls.iter().enumerate() {
            let v = (s as f64) * (i % 7) as f64 + 0.25;
            refs[i] = Some(app.append(refs[i], l, t, v).unwrap());
        }
        app.commit().unwrap();
    }
    let took = start.elapsed();
    let n = SERIES as f64 * SCRAPES as f64;
    let st = db.stats();
    println!(
        "append+commit: {n} samples in {took:?} = {:.2} M samples/s; WAL {:.1} bytes/sample",
        n / took.as_secs_f64() / 1e6,
        st.wal_bytes as f64 / n
    );

    let start = Instant::now();
    let q = db.querier(0, i64::MAX).unwrap();
    let mut total = 0;
    for mut s in q
        .select(&[Matcher::eq("job", "node")], &SelectHints::default())
        .unwrap()
    {
        total += collect_samples(s.samples.as_mut()).len();
    }
    let took = start.elapsed();
    println!(
        "select all + decode: {total} samples in {took:?} = {:.2} M samples/s",
        total as f64 / took.as_secs_f64() / 1e6
    );
    let start = Instant::now();
    let got = q
        .select(
            &[
                Matcher::eq("__name__", "metric_7"),
                Matcher::eq("instance", "host-42"),
            ],
            &SelectHints::default(),
        )
        .unwrap()
        .count();
    println!(
        "select 1 series of {SERIES}: {got} in {:?}",
        start.elapsed()
    );
    drop(q);
    drop(db);

    let start = Instant::now();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    println!(
        "replay: {} samples, {} records in {:?}",
        db.stats().head_samples,
        db.stats().replayed_records,
        start.elapsed()
    );

    for (name, f) in [
        ("constant", &(|_: i64| 42.0) as &dyn Fn(i64) -> f64),
        ("counter +1/scrape", &|i: i64| i as f64),
        ("counter cpu seconds", &|i: i64| 1234.5 + i as f64 * 0.13),
        ("gauge bytes", &|i: i64| {
            (1_000_000_000 + (i * 7919) % 65_536 * 4096) as f64
        }),
    ] {
        let mut e = Encoder::new();
        for i in 0..i64::from(SAMPLES_PER_CHUNK) {
            e.append(1_700_000_000_000 + i * 15_000 + (i * 37) % 5, f(i));
        }
        println!(
            "chunk {name}: {:.2} bytes/sample",
            e.bytes().len() as f64 / f64::from(SAMPLES_PER_CHUNK)
        );
    }
}
