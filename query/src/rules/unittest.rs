//! promtool's rule unit-test files: `pharos test rules FILE...`.
//!
//! A test file names `rule_files` (relative to itself), an `evaluation_interval` (default 1m) and
//! `tests`, each with `input_series` in the expanding notation (`1+2x3`, `_`, `_x2`, `stale`),
//! optional `external_labels`/`external_url`, `alert_rule_test` (the firing alerts at an
//! `eval_time`) and `promql_expr_test` (an expression's samples at an `eval_time`). The groups
//! are evaluated at every evaluation interval from 0 to the last `eval_time`; a rule evaluation
//! error fails the test, as in promtool.

use std::collections::BTreeMap;
use std::path::Path;

use pharos_model::{Labels, MatchOp, STALE_NAN};
use serde::Deserialize;

use super::file::parse_rule_file;
use super::group::Group;
use super::memstore::MemStore;
use super::rule::{AlertState, EvalContext, Rule};
use crate::{Engine, EngineOptions, parser};

/// A unit-test file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// Rule files under test, relative to the test file.
    #[serde(default)]
    pub rule_files: Vec<String>,
    /// Evaluation interval (default 1m).
    #[serde(default)]
    pub evaluation_interval: Option<String>,
    /// Order of group evaluation (by name); default: file order.
    #[serde(default)]
    pub group_eval_order: Vec<String>,
    /// The tests.
    #[serde(default)]
    pub tests: Vec<TestGroup>,
}

/// One test.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestGroup {
    /// Interval of the input series (default: the evaluation interval).
    #[serde(default)]
    pub interval: Option<String>,
    /// Input series.
    #[serde(default)]
    pub input_series: Vec<InputSeries>,
    /// Alert checks.
    #[serde(default)]
    pub alert_rule_test: Vec<AlertTest>,
    /// Expression checks.
    #[serde(default)]
    pub promql_expr_test: Vec<ExprTest>,
    /// External labels for templates.
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    /// External URL for templates.
    #[serde(default)]
    pub external_url: String,
    /// A name shown in failures.
    #[serde(default)]
    pub name: String,
}

/// One input series.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSeries {
    /// `metric{label="value"}`.
    pub series: String,
    /// Values in the expanding notation.
    #[serde(default)]
    pub values: String,
}

/// Expected firing alerts of one alert rule at one time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertTest {
    /// When.
    pub eval_time: String,
    /// Which alert rule.
    pub alertname: String,
    /// The firing alerts expected (none if empty).
    #[serde(default)]
    pub exp_alerts: Vec<ExpAlert>,
}

/// One expected alert.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpAlert {
    /// Labels (without `alertname`).
    #[serde(default)]
    pub exp_labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default)]
    pub exp_annotations: BTreeMap<String, String>,
}

/// Expected result of an expression.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExprTest {
    /// The expression.
    pub expr: String,
    /// When.
    pub eval_time: String,
    /// Expected samples.
    #[serde(default)]
    pub exp_samples: Vec<ExpSample>,
}

/// One expected sample.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpSample {
    /// `metric{labels}` (empty for a scalar).
    #[serde(default)]
    pub labels: String,
    /// The value.
    pub value: f64,
}

/// Parses the expanding notation into values (`None` = no sample at that step).
pub fn parse_values(s: &str) -> Result<Vec<Option<f64>>, String> {
    let num = |t: &str| -> Result<f64, String> {
        pharos_model::api::parse_value(t)
            .or(match t {
                "+Inf" | "inf" => Some(f64::INFINITY),
                "nan" => Some(f64::NAN),
                _ => None,
            })
            .ok_or_else(|| format!("invalid value {t:?} in series values {s:?}"))
    };
    let mut out = Vec::new();
    for tok in s.split_whitespace() {
        if tok == "_" {
            out.push(None);
            continue;
        }
        if tok == "stale" {
            out.push(Some(STALE_NAN));
            continue;
        }
        if let Some(n) = tok.strip_prefix("_x") {
            let n: usize = n
                .parse()
                .map_err(|_| format!("invalid repetition in {tok:?}"))?;
            out.extend(std::iter::repeat_n(None, n));
            continue;
        }
        let Some(xpos) = tok.rfind('x') else {
            out.push(Some(num(tok)?));
            continue;
        };
        let times: usize = tok[xpos + 1..]
            .parse()
            .map_err(|_| format!("invalid repetition in {tok:?}"))?;
        let head = &tok[..xpos];
        // Split `a+b` / `a-b` at the last sign that is not a leading sign or an exponent's.
        let b = head.as_bytes();
        let mut split = None;
        for i in (1..b.len()).rev() {
            if (b[i] == b'+' || b[i] == b'-') && !matches!(b[i - 1], b'e' | b'E') {
                split = Some(i);
                break;
            }
        }
        let (start, step) = match split {
            Some(i) => {
                let d = num(&head[i + 1..])?;
                (num(&head[..i])?, if b[i] == b'-' { -d } else { d })
            }
            None => (num(head)?, 0.0),
        };
        for k in 0..=times {
            out.push(Some(start + step * k as f64));
        }
    }
    Ok(out)
}

fn dur(s: &Option<String>, default: i64) -> Result<i64, String> {
    match s.as_deref() {
        None | Some("") => Ok(default),
        Some(v) => pharos_model::parse_duration_ms(v),
    }
}

fn labels_of(series: &str) -> Result<Labels, String> {
    if series.trim().is_empty() || series.trim() == "{}" {
        return Ok(Labels::empty());
    }
    let ms = parser::parse_metric_selector(series)
        .map_err(|e| format!("invalid series {series:?}: {e}"))?;
    let mut pairs = Vec::new();
    for m in ms {
        if m.op != MatchOp::Eq {
            return Err(format!(
                "invalid series {series:?}: only = matchers are allowed"
            ));
        }
        pairs.push((m.name.clone(), m.value.clone()));
    }
    Ok(Labels::from_pairs(&pairs))
}

fn fmt_ms(ms: i64) -> String {
    pharos_model::api::format_duration(ms)
}

/// Runs one test file; returns the failure messages (empty: it passed).
pub fn run_file(path: &Path) -> Vec<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return vec![format!("cannot read {}: {e}", path.display())],
    };
    let tf: TestFile = match serde_norway::from_str(&text) {
        Ok(t) => t,
        Err(e) => return vec![format!("{}: {e}", path.display())],
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let eval_interval = match dur(&tf.evaluation_interval, 60_000) {
        Ok(0) | Err(_) => return vec!["invalid evaluation_interval".into()],
        Ok(d) => d,
    };
    let mut errs = Vec::new();
    for (i, t) in tf.tests.iter().enumerate() {
        if let Err(mut e) = run_test(&tf, t, base, eval_interval) {
            if !t.name.is_empty() {
                e.insert(0, format!("    name: {},", t.name));
            } else if tf.tests.len() > 1 {
                e.insert(0, format!("    test {}:", i + 1));
            }
            errs.extend(e);
        }
    }
    errs
}

fn load_groups(tf: &TestFile, base: &Path, eval_interval: i64) -> Result<Vec<Group>, Vec<String>> {
    let mut groups = Vec::new();
    for f in &tf.rule_files {
        let p = base.join(f);
        let paths = super::manager::expand_glob(&p).map_err(|e| vec![e])?;
        if paths.is_empty() {
            return Err(vec![format!(
                "cannot load rule file {}: no such file",
                p.display()
            )]);
        }
        for p in paths {
            let text = std::fs::read_to_string(&p)
                .map_err(|e| vec![format!("cannot read {}: {e}", p.display())])?;
            let rf = parse_rule_file(&text, &p)
                .map_err(|e| e.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
            for g in &rf.groups {
                let g = Group::from_desc(g, &p.display().to_string(), eval_interval)
                    .map_err(|e| vec![e.to_string()])?;
                g.set_restored();
                groups.push(g);
            }
        }
    }
    if !tf.group_eval_order.is_empty() {
        let mut ordered = Vec::new();
        for name in &tf.group_eval_order {
            match groups.iter().position(|g| &g.name == name) {
                Some(i) => ordered.push(groups.remove(i)),
                None => {
                    return Err(vec![format!(
                        "group {name:?} in group_eval_order not found"
                    )]);
                }
            }
        }
        ordered.extend(groups);
        groups = ordered;
    }
    Ok(groups)
}

fn run_test(
    tf: &TestFile,
    t: &TestGroup,
    base: &Path,
    eval_interval: i64,
) -> Result<(), Vec<String>> {
    let groups = load_groups(tf, base, eval_interval)?;
    let store = MemStore::new();
    let interval = dur(&t.interval, eval_interval).map_err(|e| vec![e])?;
    for s in &t.input_series {
        let l = labels_of(&s.series).map_err(|e| vec![e])?;
        let vals = parse_values(&s.values).map_err(|e| vec![e])?;
        for (k, v) in vals.into_iter().enumerate() {
            if let Some(v) = v {
                store.add(&l, k as i64 * interval, v);
            }
        }
    }
    let engine = Engine::new(EngineOptions::default());
    let ctx = EvalContext {
        engine: &engine,
        queryable: &store,
        external_labels: &t.external_labels,
        external_url: &t.external_url,
    };
    // Alert checks, sorted by time.
    let mut alert_tests: Vec<(i64, &AlertTest)> = Vec::new();
    for a in &t.alert_rule_test {
        let at = pharos_model::parse_duration_ms(&a.eval_time).map_err(|e| vec![e])?;
        alert_tests.push((at, a));
    }
    alert_tests.sort_by_key(|(at, _)| *at);
    let mut max_t = alert_tests.last().map(|(t, _)| *t).unwrap_or(0);
    let mut expr_tests = Vec::new();
    for e in &t.promql_expr_test {
        let at = pharos_model::parse_duration_ms(&e.eval_time).map_err(|e| vec![e])?;
        max_t = max_t.max(at);
        expr_tests.push((at, e));
    }
    let mut errs = Vec::new();
    let mut next = 0usize;
    let mut ts = 0i64;
    while ts <= max_t {
        for g in &groups {
            g.eval(&ctx, &store, ts, 60_000);
            for r in &g.rules {
                if let Some(e) = r.status().last_error.filter(|_| r.status().last_eval == ts) {
                    errs.push(format!(
                        "    rule: {}, time: {}, err: {e}",
                        r.name(),
                        fmt_ms(ts)
                    ));
                }
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        while next < alert_tests.len() && alert_tests[next].0 < ts + eval_interval {
            let (at, a) = alert_tests[next];
            next += 1;
            if at < ts {
                continue;
            }
            check_alerts(&groups, at, a, &mut errs);
        }
        ts += eval_interval;
    }
    for (at, e) in expr_tests {
        check_expr(&ctx, at, e, &mut errs);
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

type AlertKey = (Vec<(String, String)>, Vec<(String, String)>);

fn render(alerts: &[AlertKey]) -> String {
    let mut s = String::from("[\n");
    for (i, (l, a)) in alerts.iter().enumerate() {
        let f = |v: &Vec<(String, String)>| {
            v.iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        s.push_str(&format!(
            "            {i}:\n              Labels:{{{}}}\n              Annotations:{{{}}}\n",
            f(l),
            f(a)
        ));
    }
    s.push_str("            ]");
    s
}

fn check_alerts(groups: &[Group], at: i64, a: &AlertTest, errs: &mut Vec<String>) {
    let mut got: Vec<AlertKey> = Vec::new();
    for g in groups {
        for r in &g.rules {
            let Rule::Alerting(ar) = r else { continue };
            if ar.name != a.alertname {
                continue;
            }
            for al in ar.lock().active.values() {
                if al.state == AlertState::Firing {
                    got.push((
                        al.labels
                            .iter()
                            .map(|l| (l.name.clone(), l.value.clone()))
                            .collect(),
                        al.annotations
                            .iter()
                            .map(|l| (l.name.clone(), l.value.clone()))
                            .collect(),
                    ));
                }
            }
        }
    }
    let mut exp: Vec<AlertKey> = a
        .exp_alerts
        .iter()
        .map(|e| {
            let mut l = e.exp_labels.clone();
            l.insert("alertname".into(), a.alertname.clone());
            (
                l.into_iter().filter(|(_, v)| !v.is_empty()).collect(),
                e.exp_annotations
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )
        })
        .collect();
    got.sort();
    exp.sort();
    if got != exp {
        errs.push(format!(
            "    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
            a.alertname,
            fmt_ms(at),
            render(&exp),
            render(&got)
        ));
    }
}

fn check_expr(ctx: &EvalContext<'_>, at: i64, e: &ExprTest, errs: &mut Vec<String>) {
    let expr = match parser::parse(&e.expr) {
        Ok(x) => x,
        Err(err) => {
            errs.push(format!(
                "    expr: {:?}, time: {}, err: {err}",
                e.expr,
                fmt_ms(at)
            ));
            return;
        }
    };
    let mut got = match ctx.query(&expr, at) {
        Ok(v) => v,
        Err(err) => {
            errs.push(format!(
                "    expr: {:?}, time: {}, err: {err}",
                e.expr,
                fmt_ms(at)
            ));
            return;
        }
    };
    let mut exp = Vec::new();
    for s in &e.exp_samples {
        match labels_of(&s.labels) {
            Ok(l) => exp.push((l, s.value)),
            Err(err) => {
                errs.push(format!(
                    "    expr: {:?}, time: {}, err: {err}",
                    e.expr,
                    fmt_ms(at)
                ));
                return;
            }
        }
    }
    got.sort_by(|a, b| a.0.cmp(&b.0));
    exp.sort_by(|a, b| a.0.cmp(&b.0));
    let same = got.len() == exp.len()
        && got.iter().zip(&exp).all(|((gl, gv), (el, ev))| {
            gl == el
                && (gv == ev
                    || (gv.is_nan() && ev.is_nan())
                    || ((gv - ev).abs() <= 1e-9 * ev.abs().max(1.0)))
        });
    if !same {
        let show = |v: &[(Labels, f64)]| {
            v.iter()
                .map(|(l, x)| format!("{l} {x}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        errs.push(format!(
            "    expr: {:?}, time: {},\n        exp: {}\n        got: {}",
            e.expr,
            fmt_ms(at),
            show(&exp),
            show(&got)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(s: &str, want: &[Option<f64>]) {
        let got = parse_values(s).unwrap();
        assert_eq!(got.len(), want.len(), "{s}");
        for (g, w) in got.iter().zip(want) {
            match (g, w) {
                (Some(g), Some(w)) if g.is_nan() => assert!(w.is_nan(), "{s}"),
                _ => assert_eq!(g, w, "{s}"),
            }
        }
    }

    #[test]
    fn expanding_notation() {
        check("1 2 3", &[Some(1.0), Some(2.0), Some(3.0)]);
        check("0+10x2", &[Some(0.0), Some(10.0), Some(20.0)]);
        check("5-1x2", &[Some(5.0), Some(4.0), Some(3.0)]);
        check("-1+1x1", &[Some(-1.0), Some(0.0)]);
        check("1x2", &[Some(1.0), Some(1.0), Some(1.0)]);
        check("1 _ _x2 3", &[Some(1.0), None, None, None, Some(3.0)]);
        check("1e3+1e1x1", &[Some(1000.0), Some(1010.0)]);
        check(
            "NaN Inf -Inf",
            &[Some(f64::NAN), Some(f64::INFINITY), Some(f64::NEG_INFINITY)],
        );
        assert!(pharos_model::is_stale_nan(
            parse_values("stale").unwrap()[0].unwrap()
        ));
        assert!(parse_values("1+ax2").is_err());
    }
}
