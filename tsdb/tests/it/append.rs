//! Appending, committing, rolling back and querying.

use std::sync::Arc;

use pharos_model::storage::{self, Appendable, Queryable, SeriesSet};
use pharos_model::{Matcher, STALE_NAN, SeriesRef};

use crate::common::*;

#[test]
fn append_commit_query() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let a = labels(&[("__name__", "up"), ("job", "a")]);
    let b = labels(&[("__name__", "up"), ("job", "b")]);
    let mut app = db.appender();
    for t in 0..300 {
        app.append(None, &b, t * 10, t as f64).unwrap();
        app.append(None, &a, t * 10, -(t as f64)).unwrap();
    }
    // Nothing is visible before commit.
    assert!(query_all(&db).is_empty());
    app.commit().unwrap();

    let got = query(&db, &[], 995, 1005);
    assert_eq!(
        got,
        vec![
            (
                r#"up{job="a"}"#.to_string(),
                vec![(1000, (-100.0f64).to_bits())]
            ),
            (
                r#"up{job="b"}"#.to_string(),
                vec![(1000, 100.0f64.to_bits())]
            ),
        ]
    );
    let all = query_all(&db);
    assert_eq!(all[0].1.len(), 300);
    assert_eq!(all[1].1.len(), 300);
    let s = db.stats();
    assert_eq!((s.head_series, s.head_samples), (2, 600));
    assert_eq!((s.min_time, s.max_time), (0, 2990));
    assert!(s.wal_bytes > 0);
    // Out of the head's range: nothing.
    assert!(query(&db, &[], 3000, 4000).is_empty());
    db.close().unwrap();
}

#[test]
fn special_values_survive() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let l = labels(&[("__name__", "x")]);
    let values = [
        f64::NAN,
        STALE_NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        1e-300,
    ];
    let mut app = db.appender();
    for (i, v) in values.iter().enumerate() {
        app.append(None, &l, i as i64, *v).unwrap();
    }
    app.commit().unwrap();
    let want: Vec<(i64, u64)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (i as i64, v.to_bits()))
        .collect();
    assert_eq!(query_all(&db)[0].1, want);
    drop(db);
    let db = open(dir.path());
    assert_eq!(query_all(&db)[0].1, want, "after replay");
}

#[test]
fn rollback_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let l = labels(&[("__name__", "x"), ("a", "1")]);
    let mut app = db.appender();
    app.append(None, &l, 1, 1.0).unwrap();
    app.rollback().unwrap();
    assert!(query_all(&db).is_empty());
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    assert!(q.label_names(&[]).unwrap().is_empty());
    drop(q); // a live querier keeps the database (and its lock) alive
    let s = db.stats();
    assert_eq!((s.head_series, s.head_samples), (0, 0));
    drop(db);
    let db = open(dir.path());
    assert!(
        query_all(&db).is_empty(),
        "rolled back samples must not be in the WAL"
    );
    assert_eq!(db.stats().replayed_records, 0);
}

#[test]
fn rejections_are_counted_and_do_not_poison_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let l = labels(&[("__name__", "x")]);
    append_all(&db, &[(&l, 100, 1.0)]);

    let mut app = db.appender();
    #[track_caller]
    fn check(got: storage::Result<SeriesRef>, want: Option<&str>) {
        match (got, want) {
            (Ok(_), None) => {}
            (Err(e), Some(w)) => assert_eq!(format!("{e:?}"), w),
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }
    check(app.append(None, &l, 50, 1.0), Some("OutOfOrder")); // older than the head
    check(app.append(None, &l, 100, 2.0), Some("DuplicateTimestamp"));
    check(app.append(None, &l, 100, 1.0), None); // identical: a no-op
    check(app.append(None, &l, 200, 2.0), None);
    check(app.append(None, &l, 150, 2.0), Some("OutOfOrder")); // older than the batch
    check(app.append(None, &l, 200, 3.0), Some("DuplicateTimestamp"));
    check(app.append(None, &l, 200, 2.0), None);
    check(
        app.append(None, &labels(&[]), 300, 1.0),
        Some(r#"InvalidLabels("empty label set")"#),
    );
    check(
        app.append(None, &labels(&[("a", "")]), 300, 1.0),
        Some(r#"InvalidLabels("empty label set")"#),
    );
    check(app.append(None, &l, 300, 3.0), None);
    app.commit().unwrap();

    assert_eq!(
        query_all(&db)[0].1,
        vec![
            (100, 1f64.to_bits()),
            (200, 2f64.to_bits()),
            (300, 3f64.to_bits())
        ]
    );
    let s = db.stats();
    assert_eq!(
        (s.out_of_order_total, s.duplicate_total, s.head_samples),
        (2, 2, 3)
    );
}

#[test]
fn series_refs() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let a = labels(&[("__name__", "a")]);
    let b = labels(&[("__name__", "b")]);
    let mut app = db.appender();
    let ra = app.append(None, &a, 1, 1.0).unwrap();
    assert_eq!(app.append(Some(ra), &a, 2, 2.0).unwrap(), ra);
    let rb = app.append(None, &b, 1, 1.0).unwrap();
    assert_ne!(ra, rb);
    app.commit().unwrap();
    let mut app = db.appender();
    // A known ref wins over the labels; an unknown one falls back to them.
    assert_eq!(app.append(Some(ra), &a, 3, 3.0).unwrap(), ra);
    assert_eq!(
        app.append(Some(SeriesRef(999_999)), &b, 3, 3.0).unwrap(),
        rb
    );
    app.commit().unwrap();
    let all = query_all(&db);
    assert_eq!(all[0].1.len(), 3);
    assert_eq!(all[1].1.len(), 2);
}

#[test]
fn two_appenders_creating_the_same_series() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let l = labels(&[("__name__", "x")]);
    let mut a1 = db.appender();
    let mut a2 = db.appender();
    a1.append(None, &l, 10, 1.0).unwrap();
    a2.append(None, &l, 20, 2.0).unwrap();
    a2.append(None, &l, 5, 0.5).unwrap_err(); // out of order within a2's batch
    a2.commit().unwrap();
    a1.commit().unwrap(); // 10 < 20: rejected at commit, counted
    assert_eq!(
        query_all(&db),
        vec![("x".to_string(), vec![(20, 2f64.to_bits())])]
    );
    assert_eq!(db.stats().head_series, 1);
    assert_eq!(db.stats().out_of_order_total, 2);
    drop(db);
    let db = open(dir.path());
    assert_eq!(
        query_all(&db),
        vec![("x".to_string(), vec![(20, 2f64.to_bits())])]
    );
}

#[test]
fn closed_db_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let l = labels(&[("__name__", "x")]);
    let mut pending = db.appender();
    pending.append(None, &l, 1, 1.0).unwrap();
    db.close().unwrap();
    assert!(matches!(pending.commit(), Err(storage::Error::Closed)));
    let mut app = db.appender();
    assert!(matches!(
        app.append(None, &l, 2, 1.0),
        Err(storage::Error::Closed)
    ));
    assert!(matches!(
        db.truncate_before(0),
        Err(pharos_tsdb::Error::Closed)
    ));
    db.close().unwrap();
}

#[test]
fn directory_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let err = pharos_tsdb::Db::open(dir.path(), opts(1 << 20)).unwrap_err();
    assert!(matches!(err, pharos_tsdb::Error::Locked { .. }), "{err}");
    drop(db);
    open(dir.path());
}

#[test]
fn concurrent_appenders_and_queriers() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(pharos_tsdb::Db::open(dir.path(), pharos_tsdb::Options::default()).unwrap());
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let db = db.clone();
            std::thread::spawn(move || {
                let ls: Vec<_> = (0..10)
                    .map(|i| {
                        labels(&[
                            ("__name__", "m"),
                            ("w", &w.to_string()),
                            ("i", &i.to_string()),
                        ])
                    })
                    .collect();
                let mut refs = vec![None; ls.len()];
                for t in 0..500 {
                    let mut app = db.appender();
                    for (i, l) in ls.iter().enumerate() {
                        refs[i] = Some(app.append(refs[i], l, t, t as f64).unwrap());
                    }
                    app.commit().unwrap();
                }
            })
        })
        .collect();
    let reader = {
        let db = db.clone();
        std::thread::spawn(move || {
            for _ in 0..50 {
                let q = db.querier(0, 1000).unwrap();
                let set: SeriesSet = q
                    .select(&[Matcher::eq("w", "1")], &Default::default())
                    .unwrap();
                for mut s in set {
                    let samples = storage::collect_samples(s.samples.as_mut());
                    // Each series' samples form a prefix 0..n.
                    assert!(samples.iter().enumerate().all(|(i, s)| s.t == i as i64));
                }
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    reader.join().unwrap();
    let s = db.stats();
    assert_eq!((s.head_series, s.head_samples), (40, 40 * 500));
    db.close().unwrap();
}

#[test]
fn append_by_ref_without_labels() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let a = labels(&[("__name__", "up"), ("job", "a")]);
    let mut app = db.appender();
    let r = app.append(None, &a, 10, 1.0).unwrap();
    // Known in the batch (not committed yet), then in the head.
    assert_eq!(app.append_by_ref(r, 20, 2.0).unwrap(), Some(r));
    app.commit().unwrap();
    let mut app = db.appender();
    assert_eq!(app.append_by_ref(r, 30, 3.0).unwrap(), Some(r));
    // Out of order is still rejected; an unknown ref is reported as unknown.
    assert!(matches!(
        app.append_by_ref(r, 25, 0.0),
        Err(storage::Error::OutOfOrder)
    ));
    assert_eq!(
        app.append_by_ref(SeriesRef(r.0 + 1000), 30, 3.0).unwrap(),
        None
    );
    app.commit().unwrap();
    let all = query_all(&db);
    assert_eq!(all.len(), 1);
    let ts: Vec<i64> = all[0].1.iter().map(|(t, _)| *t).collect();
    assert_eq!(ts, [10, 20, 30]);
    // After a restart the ref is found again in the replayed head.
    db.close().unwrap();
    drop(db);
    let db = open(dir.path());
    let mut app = db.appender();
    assert_eq!(app.append_by_ref(r, 40, 4.0).unwrap(), Some(r));
    app.commit().unwrap();
    assert_eq!(query_all(&db)[0].1.len(), 4);
}

#[test]
fn deferred_appends_are_checked_at_commit_and_only_accepted_ones_reach_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let x = labels(&[("__name__", "x")]);
    let mut app = db.appender();
    let r = app.append(None, &x, 100, 1.0).unwrap();
    app.commit().unwrap();

    let gone = SeriesRef(r.0 + 1000);
    let mut app = db.appender();
    for (sref, t, v) in [
        (r, 50, 1.0),     // out of order
        (r, 100, 1.0),    // the newest sample again: dropped without a word
        (gone, 200, 5.0), // unknown: handed back
        (r, 200, 2.0),
        (r, 200, 3.0), // another value at the newest time
        (r, 300, 3.0),
    ] {
        assert_eq!(app.append_deferred(sref, t, v).unwrap(), Some(sref));
    }
    let report = app.commit_report().unwrap();
    assert_eq!(
        report,
        storage::CommitReport {
            out_of_order: 1,
            duplicate: 1,
            out_of_bounds: 0,
            unknown: vec![(gone, 200, 5.0)],
        }
    );
    assert_eq!(report.refused(), 3);
    let want = vec![
        (100, 1f64.to_bits()),
        (200, 2f64.to_bits()),
        (300, 3f64.to_bits()),
    ];
    assert_eq!(query_all(&db)[0].1, want);
    let s = db.stats();
    assert_eq!((s.out_of_order_total, s.duplicate_total), (1, 1));

    // The WAL holds the accepted samples only (it feeds remote write).
    let mut logged = Vec::new();
    for entry in std::fs::read_dir(dir.path().join("wal")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let data = std::fs::read(&path).unwrap();
            pharos_tsdb::wal::read_records(&data, |rec| {
                if let pharos_tsdb::wal::Record::Samples(s) = rec {
                    logged.extend(s.iter().map(|s| (s.series, s.t, s.v.to_bits())));
                }
            });
        }
    }
    logged.sort();
    let accepted: Vec<(u64, i64, u64)> = want.iter().map(|&(t, v)| (r.0, t, v)).collect();
    assert_eq!(logged, accepted);

    // A plain commit counts a sample of an unknown series as out of bounds.
    let mut app = db.appender();
    app.append_deferred(gone, 400, 1.0).unwrap();
    app.commit().unwrap();
    assert_eq!(db.stats().out_of_bounds_total, 1);

    // And a restart replays what the head took.
    db.close().unwrap();
    drop(db);
    let db = open(dir.path());
    assert_eq!(query_all(&db)[0].1, want);
}
