//! Helpers shared by the test modules.

use std::path::Path;
use std::time::Duration;

use pharos_model::storage::{Appendable, Queryable, SelectHints, collect_samples};
use pharos_model::{Labels, Matcher};
use pharos_tsdb::{Db, Options};

/// Options for tests: no retention, small segments, fsync every commit unless told otherwise.
pub fn opts(segment_size: u64) -> Options {
    Options {
        retention: Duration::ZERO,
        wal_segment_size: segment_size,
        fsync_interval: Duration::ZERO,
        ..Options::default()
    }
}

pub fn open(dir: &Path) -> Db {
    Db::open(dir, opts(128 << 20)).unwrap()
}

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs)
}

/// Appends and commits `(labels, t, v)` samples in one batch; panics on any rejection.
pub fn append_all(db: &Db, samples: &[(&Labels, i64, f64)]) {
    let mut app = db.appender();
    for (l, t, v) in samples {
        app.append(None, l, *t, *v).unwrap();
    }
    app.commit().unwrap();
}

/// Every selected series as `(labels as text, samples as (t, v bits))`.
pub fn query(
    db: &Db,
    matchers: &[Matcher],
    min_t: i64,
    max_t: i64,
) -> Vec<(String, Vec<(i64, u64)>)> {
    let q = db.querier(min_t, max_t).unwrap();
    q.select(matchers, &SelectHints::default())
        .unwrap()
        .map(|mut s| {
            let samples = collect_samples(s.samples.as_mut())
                .into_iter()
                .map(|s| (s.t, s.v.to_bits()))
                .collect();
            (s.labels.to_string(), samples)
        })
        .collect()
}

/// All samples of all series.
pub fn query_all(db: &Db) -> Vec<(String, Vec<(i64, u64)>)> {
    query(db, &[], i64::MIN, i64::MAX)
}
