//! Series selection and label queries for all four matcher kinds.

use pharos_model::storage::Queryable;
use pharos_model::{MatchOp, Matcher};

use crate::common::*;

/// Five series identified by their `i` label.
fn setup() -> (tempfile::TempDir, pharos_tsdb::Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let series = [
        labels(&[
            ("__name__", "up"),
            ("i", "1"),
            ("job", "node"),
            ("instance", "a"),
        ]),
        labels(&[
            ("__name__", "up"),
            ("i", "2"),
            ("job", "node"),
            ("instance", "b"),
            ("env", "prod"),
        ]),
        labels(&[
            ("__name__", "up"),
            ("i", "3"),
            ("job", "api"),
            ("instance", "c"),
        ]),
        labels(&[
            ("__name__", "down"),
            ("i", "4"),
            ("job", "api"),
            ("env", ""),
        ]),
        labels(&[
            ("__name__", "down"),
            ("i", "5"),
            ("job", "db"),
            ("env", "dev"),
        ]),
    ];
    let samples: Vec<_> = series.iter().map(|l| (l, 1000, 1.0)).collect();
    append_all(&db, &samples);
    (dir, db)
}

fn parse(m: &str) -> Matcher {
    for (op, kind) in [
        ("!~", MatchOp::NotRe),
        ("=~", MatchOp::Re),
        ("!=", MatchOp::Ne),
        ("=", MatchOp::Eq),
    ] {
        if let Some((name, value)) = m.split_once(op) {
            return Matcher::new(kind, name, value).unwrap();
        }
    }
    panic!("bad matcher {m}");
}

#[test]
fn selection_table() {
    let (_dir, db) = setup();
    #[track_caller]
    fn check(db: &pharos_tsdb::Db, matchers: &[&str], want: &str) {
        let ms: Vec<Matcher> = matchers.iter().map(|m| parse(m)).collect();
        let mut got: Vec<String> = query(db, &ms, 0, 2000)
            .iter()
            .map(|(l, _)| l.split("i=\"").nth(1).unwrap()[..1].to_string())
            .collect();
        got.sort();
        assert_eq!(got.join(","), want, "{matchers:?}");
    }
    check(&db, &["job=node"], "1,2");
    check(&db, &["job!=node"], "3,4,5");
    check(&db, &["job=~node|api"], "1,2,3,4");
    check(&db, &["job=~n.*"], "1,2");
    check(&db, &["job!~n.*|db"], "3,4");
    check(&db, &["job=~NODE"], "");
    check(&db, &["job=~(?i)NODE"], "1,2");
    check(&db, &["job=nope"], "");
    // Matchers that accept "" also select series without the label.
    check(&db, &["env="], "1,3,4");
    check(&db, &["env!="], "2,5");
    check(&db, &["env=~"], "1,3,4");
    check(&db, &["env=~prod|"], "1,2,3,4");
    check(&db, &["env=~.*"], "1,2,3,4,5");
    check(&db, &["env=~.+"], "2,5");
    check(&db, &["env!~prod"], "1,3,4,5");
    check(&db, &["env!~"], "2,5");
    check(&db, &["env!~prod|dev"], "1,3,4");
    check(&db, &["nolabel="], "1,2,3,4,5");
    check(&db, &["nolabel!="], "");
    check(&db, &["nolabel=~x|y"], "");
    check(&db, &["nolabel!~x"], "1,2,3,4,5");
    // Combinations.
    check(&db, &["__name__=up", "env!=prod"], "1,3");
    check(&db, &["__name__=up", "instance=~a|c"], "1,3");
    check(&db, &["job=~node|api", "env!~"], "2");
    check(&db, &["__name__=down", "job!=api", "env=~d.*"], "5");
    check(&db, &[], "1,2,3,4,5");
}

#[test]
fn results_are_sorted_by_labels() {
    let (_dir, db) = setup();
    let got: Vec<String> = query(&db, &[], 0, 2000)
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    // Label sets compare pair by pair, (name, value): `__name__` first, then `env` < `i`.
    assert_eq!(
        got,
        [
            r#"down{env="dev", i="5", job="db"}"#,
            r#"down{i="4", job="api"}"#,
            r#"up{env="prod", i="2", instance="b", job="node"}"#,
            r#"up{i="1", instance="a", job="node"}"#,
            r#"up{i="3", instance="c", job="api"}"#,
        ]
    );
}

#[test]
fn label_names_and_values() {
    let (_dir, db) = setup();
    let q = db.querier(0, 2000).unwrap();
    assert_eq!(
        q.label_names(&[]).unwrap(),
        ["__name__", "env", "i", "instance", "job"]
    );
    assert_eq!(
        q.label_names(&[parse("__name__=down")]).unwrap(),
        ["__name__", "env", "i", "job"]
    );
    assert_eq!(q.label_values("job", &[]).unwrap(), ["api", "db", "node"]);
    assert_eq!(
        q.label_values("env", &[parse("job!=db")]).unwrap(),
        ["prod"]
    );
    assert_eq!(
        q.label_values("instance", &[parse("env=")]).unwrap(),
        ["a", "c"]
    );
    assert!(q.label_values("nolabel", &[]).unwrap().is_empty());
    // A querier outside the head's time range sees nothing.
    let q = db.querier(5000, 6000).unwrap();
    assert!(q.label_names(&[]).unwrap().is_empty());
    assert!(q.label_values("job", &[]).unwrap().is_empty());
}
