//! Engine tests against a tiny in-memory [`Queryable`], loaded in the style of Prometheus' test
//! scripts (`0+10x10` expands to 11 samples).

use std::time::Duration;

use pharos_model::storage::{
    Querier, Queryable, SelectHints, Series, SeriesSet, VecSampleIterator,
};
use pharos_model::{Labels, Matcher, STALE_NAN, Sample};

use super::*;
use crate::parser::{parse, parse_metric_selector};

/// Series held in memory.
pub(crate) struct Mem {
    pub series: Vec<(Labels, Vec<Sample>)>,
}

struct MemQuerier {
    series: Vec<(Labels, Vec<Sample>)>,
}

impl Queryable for Mem {
    fn querier(&self, min_t: i64, max_t: i64) -> pharos_model::storage::Result<Box<dyn Querier>> {
        let series = self
            .series
            .iter()
            .map(|(l, s)| {
                (
                    l.clone(),
                    s.iter()
                        .filter(|x| x.t >= min_t && x.t <= max_t)
                        .copied()
                        .collect(),
                )
            })
            .collect();
        Ok(Box::new(MemQuerier { series }))
    }
}

impl Querier for MemQuerier {
    fn select(
        &self,
        matchers: &[Matcher],
        _: &SelectHints,
    ) -> pharos_model::storage::Result<SeriesSet> {
        let mut out: Vec<Series> = self
            .series
            .iter()
            .filter(|(l, _)| Matcher::all_match(matchers, l))
            .map(|(l, s)| Series {
                labels: l.clone(),
                samples: Box::new(VecSampleIterator::new(s.clone())),
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(Box::new(out.into_iter()))
    }

    fn label_names(&self, matchers: &[Matcher]) -> pharos_model::storage::Result<Vec<String>> {
        let mut names: Vec<String> = self
            .series
            .iter()
            .filter(|(l, _)| Matcher::all_match(matchers, l))
            .flat_map(|(l, _)| l.iter().map(|x| x.name.clone()).collect::<Vec<_>>())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
    ) -> pharos_model::storage::Result<Vec<String>> {
        let mut vals: Vec<String> = self
            .series
            .iter()
            .filter(|(l, _)| Matcher::all_match(matchers, l))
            .filter_map(|(l, _)| l.get(name).map(str::to_string))
            .collect();
        vals.sort();
        vals.dedup();
        Ok(vals)
    }
}

/// Expands `a+bxn` / `a-bxn` / `v` / `_` / `stale` items, one per `step_ms` from t=0.
pub(crate) fn expand(spec: &str, step_ms: i64) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut i = 0i64;
    for item in spec.split_whitespace() {
        if item == "_" {
            i += 1;
            continue;
        }
        if item == "stale" {
            out.push(Sample {
                t: i * step_ms,
                v: STALE_NAN,
            });
            i += 1;
            continue;
        }
        if let Some((base_delta, n)) = item.split_once('x') {
            let n: i64 = n.parse().unwrap();
            let split = base_delta[1..].find(['+', '-']).map(|p| p + 1).unwrap();
            let base: f64 = base_delta[..split].parse().unwrap();
            let delta: f64 = base_delta[split..].parse().unwrap();
            for k in 0..=n {
                out.push(Sample {
                    t: i * step_ms,
                    v: base + delta * k as f64,
                });
                i += 1;
            }
            continue;
        }
        out.push(Sample {
            t: i * step_ms,
            v: pharos_model::api::parse_value(item).unwrap(),
        });
        i += 1;
    }
    out
}

pub(crate) fn load(step_ms: i64, lines: &[(&str, &str)]) -> Mem {
    let series = lines
        .iter()
        .map(|(sel, spec)| {
            let m = parse_metric_selector(sel).unwrap();
            let pairs: Vec<(String, String)> = m
                .iter()
                .map(|m| (m.name.clone(), m.value.clone()))
                .collect();
            (Labels::from_pairs(&pairs), expand(spec, step_ms))
        })
        .collect();
    Mem { series }
}

const M: i64 = 60_000;

fn engine() -> Engine {
    Engine::new(EngineOptions::default())
}

/// Formats a result as sorted `labels value` lines (or `scalar value`).
fn render(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = match v {
        Value::Scalar(s) => vec![format!("scalar {}", pharos_model::api::format_value(s.v))],
        Value::String(s) => vec![format!("string {}", s.s)],
        Value::Vector(v) => v
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e.metric,
                    pharos_model::api::format_value(round(e.v))
                )
            })
            .collect(),
        Value::Matrix(m) => m
            .iter()
            .map(|s| {
                let pts: Vec<String> = s
                    .points
                    .iter()
                    .map(|p| {
                        format!(
                            "{}@{}",
                            pharos_model::api::format_value(round(p.v)),
                            p.t / 1000
                        )
                    })
                    .collect();
                format!("{} {}", s.metric, pts.join(" "))
            })
            .collect(),
    };
    out.sort();
    out
}

fn round(v: f64) -> f64 {
    if v.is_finite() {
        (v * 1e6).round() / 1e6
    } else {
        v
    }
}

#[track_caller]
fn check(db: &Mem, query: &str, t_ms: i64, want: &[&str]) {
    let e = parse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
    let got = engine()
        .instant(db, &e, t_ms)
        .unwrap_or_else(|e| panic!("{query}: {e}"));
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(render(&got), want, "{query}");
}

#[track_caller]
fn check_fail(db: &Mem, query: &str, t_ms: i64, want: &str) {
    let e = parse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
    match engine().instant(db, &e, t_ms) {
        Ok(v) => panic!("{query}: got {v:?}, want error {want}"),
        Err(e) => assert!(
            e.to_string().contains(want),
            "{query}: got {e}, want {want}"
        ),
    }
}

fn http_requests() -> Mem {
    load(
        5 * M,
        &[
            (
                r#"http_requests{job="api-server", instance="0", group="production"}"#,
                "0+10x10",
            ),
            (
                r#"http_requests{job="api-server", instance="1", group="production"}"#,
                "0+20x10",
            ),
            (
                r#"http_requests{job="api-server", instance="0", group="canary"}"#,
                "0+30x10",
            ),
            (
                r#"http_requests{job="api-server", instance="1", group="canary"}"#,
                "0+40x10",
            ),
            (
                r#"http_requests{job="app-server", instance="0", group="production"}"#,
                "0+50x10",
            ),
            (
                r#"http_requests{job="app-server", instance="1", group="production"}"#,
                "0+60x10",
            ),
            (
                r#"http_requests{job="app-server", instance="0", group="canary"}"#,
                "0+70x10",
            ),
            (
                r#"http_requests{job="app-server", instance="1", group="canary"}"#,
                "0+80x10",
            ),
        ],
    )
}

#[test]
fn scalars_and_literals() {
    let db = load(M, &[]);
    check(&db, "1 + 2 * 3", 0, &["scalar 7"]);
    check(&db, "2 ^ 3 ^ 2", 0, &["scalar 512"]);
    check(&db, "-2 ^ 2", 0, &["scalar -4"]);
    check(&db, "1 % 0", 0, &["scalar NaN"]);
    check(&db, "1 / 0", 0, &["scalar +Inf"]);
    check(&db, "1 < bool 2", 0, &["scalar 1"]);
    check(&db, "time()", 50 * M, &["scalar 3000"]);
    check(&db, "\"hello\"", 0, &["string hello"]);
    check(&db, "vector(1) + 1", 0, &["{} 2"]);
    check(&db, "scalar(vector(5))", 0, &["scalar 5"]);
    check(&db, "pi()", 0, &["scalar 3.141592653589793"]);
}

#[test]
fn selectors_lookback_and_staleness() {
    let db = load(
        M,
        &[
            ("a", "1 2 3 _ _ _ _ _ _ _ _ _"),
            ("b", "1 stale 3"),
            ("c{x=\"1\"}", "5"),
        ],
    );
    check(&db, "a", 2 * M, &["a 3"]);
    check(&db, "a", 7 * M, &["a 3"]); // within 5m lookback
    check(&db, "a", 8 * M, &[]);
    check(&db, "b", 90_000, &[]); // stale marker ends the series
    check(&db, "b", 2 * M, &["b 3"]);
    check(&db, "a offset 1m", 2 * M, &["a 2"]);
    check(&db, "a @ 60", 30 * M, &["a 2"]);
    check(&db, "a offset -1m", M, &["a 3"]);
    check(&db, "a[2m]", 2 * M, &["a 1@0 2@60 3@120"]);
    check(&db, "b[5m]", 2 * M, &["b 1@0 3@120"]);
    check(&db, "timestamp(a)", 7 * M, &["{} 120"]);
    check(&db, "{__name__=~\"a|c\"}", 0, &["a 1", "c{x=\"1\"} 5"]);
}

#[test]
fn rates_and_range_functions() {
    let db = load(
        5 * M,
        &[
            (r#"http_requests{path="/foo"}"#, "0+10x10"),
            (r#"http_requests{path="/bar"}"#, "0+10x5 0+10x5"),
        ],
    );
    check(
        &db,
        "increase(http_requests[50m])",
        50 * M,
        &["{path=\"/bar\"} 90", "{path=\"/foo\"} 100"],
    );
    check(
        &db,
        "rate(http_requests{path=\"/foo\"}[50m])",
        50 * M,
        &["{path=\"/foo\"} 0.033333"],
    );
    check(
        &db,
        "irate(http_requests{path=\"/foo\"}[50m])",
        50 * M,
        &["{path=\"/foo\"} 0.033333"],
    );
    check(
        &db,
        "delta(http_requests{path=\"/foo\"}[50m])",
        50 * M,
        &["{path=\"/foo\"} 100"],
    );
    check(
        &db,
        "resets(http_requests[50m])",
        50 * M,
        &["{path=\"/bar\"} 1", "{path=\"/foo\"} 0"],
    );
    check(
        &db,
        "changes(http_requests[50m])",
        50 * M,
        &["{path=\"/bar\"} 10", "{path=\"/foo\"} 10"],
    );
    check(
        &db,
        "last_over_time(http_requests{path=\"/foo\"}[10m])",
        50 * M,
        &["http_requests{path=\"/foo\"} 100"],
    );
    check(
        &db,
        "max_over_time(http_requests[50m])",
        50 * M,
        &["{path=\"/bar\"} 50", "{path=\"/foo\"} 100"],
    );
    check(
        &db,
        "count_over_time(http_requests{path=\"/foo\"}[50m])",
        50 * M,
        &["{path=\"/foo\"} 11"],
    );
    check(
        &db,
        "deriv(http_requests{path=\"/foo\"}[50m])",
        50 * M,
        &["{path=\"/foo\"} 0.033333"],
    );
    check(
        &db,
        "predict_linear(http_requests{path=\"/foo\"}[50m], 600)",
        50 * M,
        &["{path=\"/foo\"} 120"],
    );
    check(&db, "absent(nope{job=\"x\"})", 0, &["{job=\"x\"} 1"]);
    check(&db, "absent(http_requests)", 0, &[]);
    check(
        &db,
        "absent_over_time(nope{a=\"b\",a=\"c\"}[5m])",
        0,
        &["{} 1"],
    );
    check(
        &db,
        "quantile_over_time(0.5, http_requests{path=\"/foo\"}[50m])",
        50 * M,
        &["{path=\"/foo\"} 50"],
    );
}

#[test]
fn subqueries_and_at() {
    let db = load(M, &[("metric", "0+1x100")]);
    check(&db, "max_over_time(metric[10m:1m])", 50 * M, &["{} 50"]);
    check(&db, "min_over_time(metric[10m:1m])", 50 * M, &["{} 40"]);
    check(
        &db,
        "sum_over_time(metric[3m:1m] offset 1m)",
        50 * M,
        &["{} 190"],
    );
    check(&db, "rate(metric[5m:30s])", 50 * M, &["{} 0.016667"]);
    check(&db, "metric @ 10", 99 * M, &["metric 0"]);
    check(&db, "sum_over_time(metric[2m:] @ 120)", 99 * M, &["{} 3"]);
}

#[test]
fn aggregations() {
    let db = http_requests();
    let t = 50 * M;
    check(
        &db,
        "sum by (job) (http_requests)",
        t,
        &["{job=\"api-server\"} 1000", "{job=\"app-server\"} 2600"],
    );
    check(
        &db,
        "sum(http_requests) by (job)",
        t,
        &["{job=\"api-server\"} 1000", "{job=\"app-server\"} 2600"],
    );
    check(
        &db,
        "avg without (instance, group) (http_requests)",
        t,
        &["{job=\"api-server\"} 250", "{job=\"app-server\"} 650"],
    );
    check(&db, "count(http_requests)", t, &["{} 8"]);
    check(&db, "min(http_requests)", t, &["{} 100"]);
    check(
        &db,
        "max by (group) (http_requests)",
        t,
        &["{group=\"canary\"} 800", "{group=\"production\"} 600"],
    );
    check(
        &db,
        "group by (job) (http_requests)",
        t,
        &["{job=\"api-server\"} 1", "{job=\"app-server\"} 1"],
    );
    check(
        &db,
        "stddev by (job) (http_requests)",
        t,
        &[
            "{job=\"api-server\"} 111.803399",
            "{job=\"app-server\"} 111.803399",
        ],
    );
    check(
        &db,
        "stdvar(http_requests{job=\"api-server\"})",
        t,
        &["{} 12500"],
    );
    check(
        &db,
        "quantile(0.5, http_requests{job=\"api-server\"})",
        t,
        &["{} 250"],
    );
    check(
        &db,
        "topk(1, http_requests)",
        t,
        &["http_requests{group=\"canary\", instance=\"1\", job=\"app-server\"} 800"],
    );
    check(
        &db,
        "bottomk by (job) (1, http_requests)",
        t,
        &[
            "http_requests{group=\"production\", instance=\"0\", job=\"api-server\"} 100",
            "http_requests{group=\"production\", instance=\"0\", job=\"app-server\"} 500",
        ],
    );
    check(
        &db,
        "count_values(\"v\", http_requests{job=\"api-server\", group=\"production\"})",
        t,
        &["{v=\"100\"} 1", "{v=\"200\"} 1"],
    );
    check_fail(
        &db,
        "count_values(\"a-b\", http_requests)",
        t,
        "invalid label name",
    );
}

#[test]
fn binary_matching() {
    let db = http_requests();
    let t = 50 * M;
    check(
        &db,
        "http_requests{job=\"api-server\", group=\"canary\"} * 2",
        t,
        &[
            "{group=\"canary\", instance=\"0\", job=\"api-server\"} 600",
            "{group=\"canary\", instance=\"1\", job=\"api-server\"} 800",
        ],
    );
    check(
        &db,
        "http_requests{job=\"api-server\", group=\"canary\"} > 350",
        t,
        &["http_requests{group=\"canary\", instance=\"1\", job=\"api-server\"} 400"],
    );
    check(
        &db,
        "350 < http_requests{job=\"api-server\", group=\"canary\"}",
        t,
        &["http_requests{group=\"canary\", instance=\"1\", job=\"api-server\"} 400"],
    );
    check(
        &db,
        "http_requests{job=\"api-server\", group=\"canary\"} > bool 350",
        t,
        &[
            "{group=\"canary\", instance=\"0\", job=\"api-server\"} 0",
            "{group=\"canary\", instance=\"1\", job=\"api-server\"} 1",
        ],
    );
    check(
        &db,
        "sum by (job) (http_requests) / on(job) group_left sum by (job) (http_requests)",
        t,
        &["{job=\"api-server\"} 1", "{job=\"app-server\"} 1"],
    );
    check(
        &db,
        "http_requests{group=\"canary\"} / ignoring(group) http_requests{group=\"production\"}",
        t,
        &[
            "{instance=\"0\", job=\"api-server\"} 3",
            "{instance=\"0\", job=\"app-server\"} 1.4",
            "{instance=\"1\", job=\"api-server\"} 2",
            "{instance=\"1\", job=\"app-server\"} 1.333333",
        ],
    );
    check(
        &db,
        "http_requests{job=\"api-server\"} / on(job) group_left sum by (job) (http_requests)",
        t,
        &[
            "{group=\"canary\", instance=\"0\", job=\"api-server\"} 0.3",
            "{group=\"canary\", instance=\"1\", job=\"api-server\"} 0.4",
            "{group=\"production\", instance=\"0\", job=\"api-server\"} 0.1",
            "{group=\"production\", instance=\"1\", job=\"api-server\"} 0.2",
        ],
    );
    check(
        &db,
        "sum by (job) (http_requests) + on(job) group_right http_requests{instance=\"0\", job=\"api-server\"}",
        t,
        &[
            "{group=\"canary\", instance=\"0\", job=\"api-server\"} 1300",
            "{group=\"production\", instance=\"0\", job=\"api-server\"} 1100",
        ],
    );
    check(
        &db,
        "http_requests{group=\"canary\"} and http_requests{instance=\"0\"}",
        t,
        &[
            "http_requests{group=\"canary\", instance=\"0\", job=\"api-server\"} 300",
            "http_requests{group=\"canary\", instance=\"0\", job=\"app-server\"} 700",
        ],
    );
    check(
        &db,
        "http_requests{group=\"canary\"} unless on(job) http_requests{job=\"app-server\"}",
        t,
        &[
            "http_requests{group=\"canary\", instance=\"0\", job=\"api-server\"} 300",
            "http_requests{group=\"canary\", instance=\"1\", job=\"api-server\"} 400",
        ],
    );
    check(
        &db,
        "http_requests{instance=\"0\", group=\"canary\"} or on(job) http_requests{instance=\"1\"}",
        t,
        &[
            "http_requests{group=\"canary\", instance=\"0\", job=\"api-server\"} 300",
            "http_requests{group=\"canary\", instance=\"0\", job=\"app-server\"} 700",
        ],
    );
    check_fail(
        &db,
        "http_requests / on(job) http_requests",
        t,
        "many-to-many matching not allowed",
    );
    check_fail(
        &db,
        "sum by (job) (http_requests) / on(job) group_right http_requests * on(job) http_requests",
        t,
        "many-to-many",
    );
    check_fail(
        &db,
        "sum by (job) (http_requests) + on(job) group_right(group) http_requests{instance=\"0\", job=\"api-server\"}",
        t,
        "grouping labels must ensure unique matches",
    );
    check_fail(
        &db,
        "http_requests{instance=\"0\", job=\"api-server\"} + on(job) group_left(group) sum by (job) (http_requests)",
        t,
        "grouping labels must ensure unique matches",
    );
}

#[test]
fn functions_on_vectors() {
    let db = load(
        M,
        &[
            (r#"m{a="x"}"#, "-1.5"),
            (r#"m{a="y"}"#, "2.5"),
            (r#"t{src="a-b"}"#, "1"),
            (r#"dup{a="1",b="x"}"#, "1"),
            (r#"dup{a="1",b="y"}"#, "2"),
            (r#"dup2{a="1",b="y"}"#, "2"),
        ],
    );
    check(&db, "abs(m)", 0, &["{a=\"x\"} 1.5", "{a=\"y\"} 2.5"]);
    check(&db, "ceil(m)", 0, &["{a=\"x\"} -1", "{a=\"y\"} 3"]);
    check(&db, "floor(m)", 0, &["{a=\"x\"} -2", "{a=\"y\"} 2"]);
    check(&db, "round(m)", 0, &["{a=\"x\"} -1", "{a=\"y\"} 3"]);
    check(&db, "round(m, 2)", 0, &["{a=\"x\"} -2", "{a=\"y\"} 2"]);
    check(&db, "clamp(m, 0, 1)", 0, &["{a=\"x\"} 0", "{a=\"y\"} 1"]);
    check(&db, "clamp(m, 2, 1)", 0, &[]);
    check(
        &db,
        "clamp_max(m, 0)",
        0,
        &["{a=\"x\"} -1.5", "{a=\"y\"} 0"],
    );
    check(&db, "clamp_min(m, 0)", 0, &["{a=\"x\"} 0", "{a=\"y\"} 2.5"]);
    check(&db, "sgn(m)", 0, &["{a=\"x\"} -1", "{a=\"y\"} 1"]);
    check(&db, "exp(vector(0))", 0, &["{} 1"]);
    check(&db, "sqrt(vector(16))", 0, &["{} 4"]);
    check(&db, "log2(vector(8))", 0, &["{} 3"]);
    check(
        &db,
        "label_replace(t, \"dst\", \"$1-$2\", \"src\", \"(.*)-(.*)\")",
        0,
        &["t{dst=\"a-b\", src=\"a-b\"} 1"],
    );
    check(
        &db,
        "label_replace(t, \"dst\", \"x\", \"src\", \"nomatch\")",
        0,
        &["t{src=\"a-b\"} 1"],
    );
    check(
        &db,
        "label_join(dup{b=\"x\"}, \"j\", \"/\", \"a\", \"b\")",
        0,
        &["dup{a=\"1\", b=\"x\", j=\"1/x\"} 1"],
    );
    check_fail(
        &db,
        "label_replace(dup, \"b\", \"\", \"\", \"\")",
        0,
        "same labelset",
    );
    check_fail(
        &db,
        "label_replace(t, \"a-b\", \"\", \"src\", \"(.*)\")",
        0,
        "invalid destination label name",
    );
    check_fail(
        &db,
        "label_replace(t, \"d\", \"\", \"src\", \"(.*\")",
        0,
        "invalid regular expression",
    );
    check_fail(&db, "ceil({__name__=~\"dup|dup2\"})", 0, "same labelset");
    check(&db, "ceil(dup{b=\"x\"})", 0, &["{a=\"1\", b=\"x\"} 1"]);
    // 2024-02-29T13:45:00Z
    check(&db, "day_of_month(vector(1709214300))", 0, &["{} 29"]);
    check(&db, "day_of_week(vector(1709214300))", 0, &["{} 4"]);
    check(&db, "hour(vector(1709214300))", 0, &["{} 13"]);
    check(&db, "year()", 0, &["{} 1970"]);
    check(&db, "days_in_month(vector(1709214300))", 0, &["{} 29"]);
}

#[test]
fn sort_order() {
    let db = load(
        M,
        &[
            ("s{i=\"1\"}", "3"),
            ("s{i=\"2\"}", "1"),
            ("s{i=\"3\"}", "2"),
        ],
    );
    let e = parse("sort_desc(s)").unwrap();
    let Value::Vector(v) = engine().instant(&db, &e, 0).unwrap() else {
        panic!()
    };
    let order: Vec<f64> = v.iter().map(|e| e.v).collect();
    assert_eq!(order, vec![3.0, 2.0, 1.0]);
    let e = parse("sort(s)").unwrap();
    let Value::Vector(v) = engine().instant(&db, &e, 0).unwrap() else {
        panic!()
    };
    assert_eq!(
        v.iter().map(|e| e.v).collect::<Vec<_>>(),
        vec![1.0, 2.0, 3.0]
    );
}

#[test]
fn histogram_quantile_groups() {
    let db = load(
        5 * M,
        &[
            (r#"b_bucket{job="a", le="0.1"}"#, "0+1x10"),
            (r#"b_bucket{job="a", le="0.2"}"#, "0+3x10"),
            (r#"b_bucket{job="a", le="+Inf"}"#, "0+4x10"),
            (r#"c_bucket{job="a", le="0.1"}"#, "0+1x10"),
            (r#"c_bucket{job="a", le="+Inf"}"#, "0+4x10"),
        ],
    );
    check(
        &db,
        "histogram_quantile(0.5, rate(b_bucket[5m]))",
        50 * M,
        &["{job=\"a\"} 0.15"],
    );
    check_fail(
        &db,
        "histogram_quantile(0.5, {__name__=~\".*_bucket\"})",
        50 * M,
        "same labelset",
    );
}

#[test]
fn range_queries() {
    let db = load(M, &[("a", "0+1x10"), ("b", "1 1 1 stale")]);
    let e = parse("a * 2").unwrap();
    let v = engine().range(&db, &e, 0, 3 * M, M).unwrap();
    assert_eq!(render(&v), vec!["{} 0@0 2@60 4@120 6@180"]);
    let e = parse("b").unwrap();
    let v = engine().range(&db, &e, 0, 4 * M, M).unwrap();
    assert_eq!(render(&v), vec!["b 1@0 1@60 1@120"]);
    let e = parse("time()").unwrap();
    let v = engine().range(&db, &e, 0, 2 * M, M).unwrap();
    assert_eq!(render(&v), vec!["{} 0@0 60@60 120@120"]);
    let e = parse("a @ end()").unwrap();
    let v = engine().range(&db, &e, 0, 2 * M, M).unwrap();
    assert_eq!(render(&v), vec!["a 2@0 2@60 2@120"]);
    let e = parse("a[5m]").unwrap();
    assert!(engine().range(&db, &e, 0, M, M).is_err());
}

#[test]
fn limits() {
    let db = load(M, &[("a", "0+1x100")]);
    let opts = EngineOptions {
        max_samples: 10,
        ..EngineOptions::default()
    };
    let e = parse("sum_over_time(a[1h])").unwrap();
    let err = Engine::new(opts).instant(&db, &e, 100 * M).unwrap_err();
    assert_eq!(
        err.to_string(),
        "query processing would load too many samples into memory in query execution"
    );
    let opts = EngineOptions {
        timeout: Duration::ZERO,
        ..EngineOptions::default()
    };
    let e = parse("a").unwrap();
    let err = Engine::new(opts).range(&db, &e, 0, 100 * M, M).unwrap_err();
    assert!(matches!(err, EvalError::Timeout(_)), "{err}");
}

/// Random token soup must never panic the parser or the engine.
#[test]
fn no_panics_on_random_queries() {
    let pieces = [
        "a",
        "b",
        "{",
        "}",
        "(",
        ")",
        "[",
        "]",
        ":",
        ",",
        "5m",
        "1m",
        "0",
        "1",
        "-",
        "+",
        "*",
        "/",
        "%",
        "^",
        "==",
        "!=",
        ">",
        "<=",
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "@",
        "start()",
        "end()",
        "sum",
        "topk",
        "quantile",
        "count_values",
        "rate",
        "abs",
        "label_replace",
        "histogram_quantile",
        "time",
        "\"x\"",
        "'y'",
        "x=\"1\"",
        "=~",
        "!~",
        "Inf",
        "NaN",
        "0x1f",
        "1e3",
        ".5",
        "#",
        "le",
        "1h30m",
        "vector",
        "scalar",
        "absent",
        "round",
        "clamp",
        "sort",
        "holt_winters",
        "predict_linear",
    ];
    let db = load(
        M,
        &[
            ("a{x=\"1\"}", "1 2 3 stale 5"),
            ("b{x=\"1\", le=\"+Inf\"}", "0+1x10"),
        ],
    );
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut parsed = 0;
    for _ in 0..20_000 {
        let n = 1 + next() % 10;
        let q: Vec<&str> = (0..n)
            .map(|_| pieces[(next() % pieces.len() as u64) as usize])
            .collect();
        let q = q.join(" ");
        if let Ok(e) = parse(&q) {
            parsed += 1;
            // Round-trips through Display.
            let again = parse(&e.to_string()).unwrap_or_else(|err| panic!("{q} -> {e}: {err}"));
            assert_eq!(again.to_string(), e.to_string(), "{q}");
            let _ = engine().instant(&db, &e, 3 * M);
            let _ = engine().range(&db, &e, 0, 5 * M, M);
        }
    }
    assert!(parsed > 500, "only {parsed} random queries parsed");
}

#[test]
fn topk_bottomk_ties_as_prometheus() {
    // Which of several equal values survive depends on the heap Prometheus 2.42 keeps; these
    // outcomes were observed on Prometheus itself (the differential test found the first).
    #[track_caller]
    fn check(values: &[f64], k: usize, top: bool, want: &[usize]) {
        let elems: Vec<Element> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Element {
                metric: Arc::new(Labels::from_pairs(&[("i", i.to_string())])),
                t: 0,
                v: *v,
            })
            .collect();
        let got: Vec<usize> = aggregate::select_k(elems, k, top)
            .iter()
            .map(|e| e.metric.get("i").unwrap().parse().unwrap())
            .collect();
        assert_eq!(got, want, "{values:?} k={k} top={top}");
    }
    let vals = [
        2863.0, 3167.0, 2838.0, 3017.0, 3108.0, 3691.0, 3108.0, 3453.0, 3401.0, 3453.0, 2939.0,
        3564.0, 853.0,
    ];
    // A stable sort would keep element 7; Prometheus' heap keeps 9.
    check(&vals, 3, true, &[5, 11, 9]);
    check(&[1.0, 1.0, 1.0], 2, true, &[0, 1]);
    check(&[1.0, 1.0, 1.0], 1, false, &[0]);
    check(&[f64::NAN, 2.0, 1.0], 1, true, &[1]);
    check(&[f64::NAN, f64::NAN, 1.0], 2, false, &[2, 0]);
    check(&[3.0, 1.0, 2.0], 0, true, &[]);
    check(&[3.0, 1.0, 2.0], 5, false, &[1, 2, 0]);
}

/// Range queries reuse grouping and matching state across steps (by label-set address); their
/// results must equal one instant query per step, also when series come and go mid-range, the
/// "one" side of a join changes labels, and an error arises at one step only.
#[test]
fn range_steps_match_instant_evaluations() {
    let db = load(
        M,
        &[
            (r#"info{pod="p1",node="n1"}"#, "1 1 1 1 stale"),
            (r#"info{pod="p1",node="n2"}"#, "_ _ _ _ _ 1 1 1 1 1 1"),
            (r#"info{pod="p2",node="n1"}"#, "1+0x10"),
            (r#"cpu{pod="p1",c="a"}"#, "0+1x10"),
            (r#"cpu{pod="p1",c="b"}"#, "0+2x10"),
            (r#"cpu{pod="p2",c="a"}"#, "_ _ 0+3x8"),
            (r#"dup{pod="p1",x="1"}"#, "_ _ _ _ _ _ _ 1 stale"),
            (r#"dup{pod="p1",x="2"}"#, "_ _ _ _ _ _ _ 1 stale"),
            (r#"cpu2{pod="p1",c="a"}"#, "_ _ _ _ _ _ 5 6 stale"),
            (r#"gauge{pod="p1"}"#, "1 5 2 NaN 3 stale 4 Inf -1 2 2"),
            (r#"hb{le="0.1",pod="p1"}"#, "0+1x10"),
            (r#"hb{le="+Inf",pod="p1"}"#, "0+3x10"),
            (r#"hb{le="1",pod="p2"}"#, "0+1x4 stale"),
            (r#"hb{le="+Inf",pod="p2"}"#, "_ _ 0+2x8"),
            (r#"hb{le="x",pod="p3"}"#, "0+2x8"),
        ],
    );
    let queries = [
        // Precomputed range-major (selectors and range functions over a selector).
        "cpu",
        "gauge",
        "gauge offset 2m",
        "gauge @ 300",
        "timestamp(gauge)",
        "rate(cpu[3m])",
        "rate(cpu[3m] offset 1m) + cpu",
        "increase(cpu[2m] @ 300)",
        "avg_over_time(gauge[3m])",
        "last_over_time(gauge[2m])",
        "quantile_over_time(0.5, gauge[4m])",
        "quantile_over_time(-(0.5), gauge[4m])",
        "predict_linear(cpu[4m], 60)",
        "holt_winters(gauge[5m], 2, 0.5)",
        "holt_winters(gauge[5m], 0.5, 0.5)",
        "count_over_time({__name__=~\"cpu2?\"}[2m])",
        "rate({__name__=~\"cpu2?\"}[2m])",
        "max_over_time(rate(cpu[2m])[5m:1m])",
        "histogram_quantile(0.5, rate(hb[3m]))",
        "histogram_quantile(0.9, sum by (le) (rate(hb[3m])))",
        "histogram_quantile(0.9, hb)",
        "sum by (pod) (rate(cpu[2m])) > on(pod) group_left count_over_time(info[1m])",
        "cpu * on(pod) group_left(node) info",
        "sum by (node) (cpu * on(pod) group_left(node) info)",
        "info * on(pod) group_right(node) cpu",
        "cpu > bool on(pod, c) (cpu - 1)",
        "cpu + ignoring(c) group_left sum by (pod) (cpu)",
        "sum by (pod) (cpu) / on(pod) group_left sum by (pod) (info)",
        "sum by (pod) (cpu)",
        "sum without (c) (cpu)",
        "count by (pod) (cpu > 5)",
        "avg by (c) (cpu) - on(c) max by (c) (cpu)",
        "topk(1, cpu)",
        "quantile by (pod) (0.5, cpu)",
        "count_values by (pod) (\"v\", cpu)",
        "cpu and on(pod) info{node=\"n2\"}",
        "cpu unless on(pod) info{node=\"n2\"}",
        "info or cpu",
        "sum by (node) (label_replace(cpu, \"node\", \"$1\", \"pod\", \"(.*)\"))",
        "cpu * on(pod) group_left(x) dup",
        "cpu * on(pod) group_left dup",
    ];
    for q in queries {
        let e = parse(q).unwrap();
        let range = engine().range(&db, &e, 0, 10 * M, M);
        let mut want: Vec<RangeSeries> = Vec::new();
        let mut err = None;
        for step in 0..=10 {
            match engine().instant(&db, &e, step * M) {
                Ok(Value::Vector(v)) => {
                    for el in v {
                        let p = Sample {
                            t: step * M,
                            v: el.v,
                        };
                        match want.iter_mut().find(|s| s.metric == el.metric) {
                            Some(s) => s.points.push(p),
                            None => want.push(RangeSeries {
                                metric: el.metric,
                                points: vec![p],
                            }),
                        }
                    }
                }
                Ok(other) => panic!("{q}: unexpected {other:?}"),
                Err(e) => {
                    err = Some(e.to_string());
                    break;
                }
            }
        }
        match (range, err) {
            (Err(got), Some(want)) => assert_eq!(got.to_string(), want, "{q}"),
            (Ok(got), None) => {
                want.sort_by(|a, b| a.metric.cmp(&b.metric));
                assert_eq!(render(&got), render(&Value::Matrix(want)), "{q}");
            }
            (got, want) => panic!("{q}: range {got:?}, instant error {want:?}"),
        }
    }
}

/// Aggregations straight over a selector or a range function are computed for all steps at
/// once (`fused`): every step must give the same values bit for bit as an instant query, in the
/// same order (visible through `topk` ties over a sum), with series coming and going, NaN, Inf,
/// staleness markers, `@`, `offset`, `without`, and leaves whose names differ.
#[test]
fn fused_aggregations_match_instant_evaluations_exactly() {
    let db = load(
        M,
        &[
            (r#"c{pod="p1",k="a"}"#, "0.1+0.7x12"),
            (r#"c{pod="p2",k="a"}"#, "_ _ _ 3+0.3x9"),
            (r#"c{pod="p1",k="b"}"#, "5 3 1 0.2 7 stale _ 1 2 3 4 5 6"),
            (r#"c{pod="p3",k="b"}"#, "0.3+0.1x5 stale _ 2+1x4"),
            (
                r#"c{pod="p2",k="b"}"#,
                "1e300 1e300 -1e300 Inf NaN 1 2 3 -Inf 4 NaN 5 6",
            ),
            (r#"d{pod="p1",k="a"}"#, "1 1 1 1 1 1 1 1 1 1 1 1 1"),
            (r#"d{pod="p2",k="a"}"#, "_ _ 1 1 1 1 1 stale"),
        ],
    );
    let queries = [
        "sum by (pod) (c)",
        "sum by (k) (c)",
        "sum(c)",
        "sum without (k) (c)",
        "avg by (pod) (c)",
        "count by (k) (c)",
        "min by (pod) (c)",
        "max by (k) (c)",
        "group by (pod) (c)",
        "stddev by (k) (c)",
        "stdvar(c)",
        "sum by (pod) (c offset 2m)",
        "sum by (pod) (c @ 300)",
        "sum by (pod) (rate(c[3m]))",
        "sum by (k) (increase(c[4m]))",
        "avg by (pod) (avg_over_time(c[3m]))",
        "max by (pod) (max_over_time(c[2m] offset 1m))",
        "sum by (__name__) (last_over_time(c[2m]))",
        "sum by (__name__) (c)",
        "sum by (pod) (quantile_over_time(0.3, c[5m]))",
        "sum by (pod) (rate({__name__=~\"c|d\"}[3m]))",
        "sum by (pod) (last_over_time({__name__=~\"c|d\"}[3m]))",
        "sum by (pod) ({__name__=~\"c|d\"})",
        "topk(1, sum by (pod) (d))",
        "bottomk(2, sum by (pod) (rate(d[3m])))",
        "topk(2, count by (pod) ({__name__=~\"c|d\"}))",
        "histogram_quantile(0.5, sum by (le) (rate(c[3m])))",
        "sum by (pod) (rate(c[3m])) / on(pod) group_left count by (pod) (d)",
        "max_over_time(sum by (pod) (c)[4m:1m])",
        "sum(holt_winters(c[5m], 2, 0.5))",
        "sum by (k) (holt_winters(c[5m], 0.5, 0.5))",
        "sum(rate(c[3m])) + sum(holt_winters(c[5m], 0.5, 2))",
    ];
    let bits = |v: f64| if v.is_nan() { u64::MAX } else { v.to_bits() };
    for q in queries {
        let e = parse(q).unwrap();
        let mut want: Vec<(Metric, Vec<(i64, u64)>)> = Vec::new();
        let mut err = None;
        for step in 0..=12 {
            let v = match engine().instant(&db, &e, step * M) {
                Ok(Value::Vector(v)) => v,
                Ok(other) => panic!("{q}: unexpected {other:?}"),
                Err(e) => {
                    err = Some(e.to_string());
                    break;
                }
            };
            for el in v {
                let p = (step * M, bits(el.v));
                match want.iter_mut().find(|s| s.0 == el.metric) {
                    Some(s) => s.1.push(p),
                    None => want.push((el.metric, vec![p])),
                }
            }
        }
        want.sort_by(|a, b| a.0.cmp(&b.0));
        let got = match (engine().range(&db, &e, 0, 12 * M, M), err) {
            (Ok(Value::Matrix(got)), None) => got,
            (Err(got), Some(want)) => {
                assert_eq!(got.to_string(), want, "{q}");
                continue;
            }
            (got, want) => panic!("{q}: range {got:?}, instant error {want:?}"),
        };
        let got: Vec<(Metric, Vec<(i64, u64)>)> = got
            .into_iter()
            .map(|s| {
                (
                    s.metric,
                    s.points.iter().map(|p| (p.t, bits(p.v))).collect(),
                )
            })
            .collect();
        assert_eq!(got, want, "{q}");
    }
}

/// The whole-range aggregations keep the sample limits of the leaves they replace: selected
/// samples add up over the steps, samples in the windows count per step.
#[test]
fn fused_aggregations_keep_sample_limits() {
    #[track_caller]
    fn check(query: &str, max_samples: usize, fails: bool) {
        let db = load(M, &[("a{x=\"1\"}", "0+1x100"), ("a{x=\"2\"}", "0+1x100")]);
        let opts = EngineOptions {
            max_samples,
            ..EngineOptions::default()
        };
        let e = parse(query).unwrap();
        let got = Engine::new(opts).range(&db, &e, 98 * M, 100 * M, M);
        match (got, fails) {
            (Err(EvalError::TooManySamples(_)), true) | (Ok(_), false) => {}
            (got, _) => panic!("{query} with {max_samples}: {got:?}"),
        }
    }
    // 2 series x 3 steps selected.
    check("a", 6, false);
    check("a", 5, true);
    check("sum(a)", 6, false);
    check("sum(a)", 5, true);
    // 2 series x 11 samples in each 10m window at most.
    check("count_over_time(a[10m])", 22, false);
    check("count_over_time(a[10m])", 21, true);
    check("sum(count_over_time(a[10m]))", 22, false);
    check("sum(count_over_time(a[10m]))", 21, true);
}
