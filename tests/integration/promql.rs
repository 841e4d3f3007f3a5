//! Runs Prometheus' own PromQL test scripts (v2.42, copied with their provenance into
//! `tests/testdata/promql/`, or the folder in `$PHAROS_PROMQL_TESTS`) against Pharos' parser and engine.
//!
//! The script language is described in that folder's README. Cases known to fail are listed in
//! `tests/testdata/promql-known-failures.txt` (one `file:line` per line); the test fails if any other
//! case fails, and also if a listed case now passes (so the list only ever shrinks). Set
//! `PHAROS_UPDATE_KNOWN_FAILURES=1` to rewrite the list after a deliberate change.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use pharos_model::api::{QueryData, VectorSample};
use pharos_model::{Label, Labels, STALE_NAN, Sample};
use pharos_query::{Engine, EngineOptions};

use crate::memstore::MemStore;

/// Parses `name{a="b", ...}` / `{...}` / `name` at the start of `s`; returns labels and the rest.
fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
    let s = s.trim_start();
    let name_len = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(s.len());
    let mut labels = Vec::new();
    if name_len > 0 {
        labels.push(Label {
            name: "__name__".into(),
            value: s[..name_len].into(),
        });
    }
    let mut rest = &s[name_len..];
    let braces = rest.starts_with('{');
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let n = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .ok_or("unterminated label set")?;
            let lname = &rest[..n];
            rest = rest[n..]
                .trim_start()
                .strip_prefix('=')
                .ok_or("expected =")?
                .trim_start();
            let (value, r) = parse_string(rest)?;
            labels.push(Label {
                name: lname.into(),
                value,
            });
            rest = r.trim_start();
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }
    if labels.is_empty() && !braces {
        return Err(format!("no series in {s:?}"));
    }
    Ok((Labels::new(labels), rest))
}

/// A Go-style quoted string (double or single quotes, backslash escapes).
fn parse_string(s: &str) -> Result<(String, &str), String> {
    let mut chars = s.char_indices();
    let quote = match chars.next() {
        Some((_, q @ ('"' | '\''))) => q,
        _ => return Err(format!("expected a quoted string at {s:?}")),
    };
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, other)) => out.push(other),
                None => break,
            },
            c if c == quote => return Ok((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    Err(format!("unterminated string {s:?}"))
}

fn parse_number(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        "nan" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Expands a value sequence (`0+10x5 _ stale 1x3 _x2`) into `(slot, value)`; `None` = missing.
fn expand_values(items: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for item in items.split_whitespace() {
        if item == "_" {
            out.push(None);
        } else if item == "stale" {
            out.push(Some(STALE_NAN));
        } else if let Some(n) = item.strip_prefix("_x") {
            let n: usize = n.parse().map_err(|_| format!("bad item {item}"))?;
            out.extend(std::iter::repeat_n(None, n));
        } else if let Some((head, times)) = item.rsplit_once('x') {
            let n: usize = times.parse().map_err(|_| format!("bad item {item}"))?;
            // `A+B`, `A-B` (the increment has an explicit sign after the first char) or `A`.
            let split = head[1..].find(['+', '-']).map(|i| i + 1);
            let (a, b) = match split {
                Some(i) => (&head[..i], &head[i..]),
                None => (head, "0"),
            };
            let a = parse_number(a).ok_or_else(|| format!("bad item {item}"))?;
            let b = parse_number(b).ok_or_else(|| format!("bad item {item}"))?;
            for k in 0..=n {
                out.push(Some(a + b * k as f64));
            }
        } else {
            out.push(Some(
                parse_number(item).ok_or_else(|| format!("bad item {item}"))?,
            ));
        }
    }
    Ok(out)
}

/// One failed case.
struct Failure {
    key: String,
    why: String,
}

fn values_equal(want: f64, got: f64) -> bool {
    if want.is_nan() || got.is_nan() {
        return want.is_nan() && got.is_nan();
    }
    if want.is_infinite() || got.is_infinite() {
        return want == got;
    }
    if want == got {
        return true;
    }
    ((want - got).abs() / (want.abs() + got.abs())) < 1e-6
}

struct Eval<'a> {
    key: String,
    kind: &'a str,
    at_ms: i64,
    expr: &'a str,
    expected: Vec<&'a str>,
}

fn check_eval(store: &MemStore, engine: &Engine, ev: &Eval<'_>) -> Result<(), String> {
    let expr = pharos_query::parser::parse(ev.expr).map_err(|e| format!("parse error: {e}"))?;
    let result = engine.instant(store, &expr, ev.at_ms);
    if ev.kind == "eval_fail" {
        return match result {
            Err(_) => Ok(()),
            Ok(v) => Err(format!("expected an error, got {:?}", v.into_query_data())),
        };
    }
    let data = result
        .map_err(|e| format!("evaluation error: {e}"))?
        .into_query_data();
    compare(data, &ev.expected, ev.kind == "eval_ordered")?;
    if ev.kind == "eval_ordered" {
        return Ok(());
    }
    // As Prometheus' runner does: evaluate as a range query from t-1m to t+1m with a 1m step;
    // the middle step must give the same result.
    let range = engine
        .range(store, &expr, ev.at_ms - 60_000, ev.at_ms + 60_000, 60_000)
        .map_err(|e| format!("range query: evaluation error: {e}"))?
        .into_query_data();
    let QueryData::Matrix(series) = range else {
        return Err(format!("range query: want a matrix, got {range:?}"));
    };
    let mid: Vec<VectorSample> = series
        .into_iter()
        .filter_map(|s| {
            let p = s.values.iter().find(|p| p.t == ev.at_ms).copied()?;
            Some(VectorSample {
                metric: s.metric,
                value: p,
            })
        })
        .collect();
    let is_scalar = matches!(ev.expected.as_slice(), [line] if parse_number(line.trim()).is_some());
    let mid = match (is_scalar, mid.as_slice()) {
        (true, [one]) => QueryData::Scalar(one.value),
        _ => QueryData::Vector(mid),
    };
    compare(mid, &ev.expected, false).map_err(|e| format!("range query: {e}"))
}

/// Compares an instant result with the expected lines of an eval block.
fn compare(data: QueryData, expected: &[&str], ordered: bool) -> Result<(), String> {
    // A scalar expectation is a single bare number line.
    if let [line] = expected
        && let Some(want) = parse_number(line.trim())
    {
        return match data {
            QueryData::Scalar(p) if values_equal(want, p.v) => Ok(()),
            other => Err(format!("want scalar {want}, got {other:?}")),
        };
    }
    let got = match data {
        QueryData::Vector(v) => v,
        other => return Err(format!("want a vector, got {other:?}")),
    };
    let mut want = Vec::new();
    for line in expected {
        let (labels, rest) = parse_labels(line)?;
        let v =
            parse_number(rest.trim()).ok_or_else(|| format!("bad expected value in {line:?}"))?;
        want.push((labels, v));
    }
    if got.len() != want.len() {
        return Err(format!(
            "want {} samples, got {}: {:?}",
            want.len(),
            got.len(),
            got.iter()
                .map(|s| format!("{} {}", s.metric, s.value.v))
                .collect::<Vec<_>>()
        ));
    }
    for (i, s) in got.iter().enumerate() {
        let pos = if ordered {
            (want[i].0 == s.metric).then_some(i)
        } else {
            want.iter().position(|(l, _)| *l == s.metric)
        };
        let Some(pos) = pos else {
            return Err(format!("unexpected series {} {}", s.metric, s.value.v));
        };
        if !values_equal(want[pos].1, s.value.v) {
            return Err(format!(
                "{}: want {}, got {}",
                s.metric, want[pos].1, s.value.v
            ));
        }
    }
    Ok(())
}

/// Runs one script; returns the number of eval cases and the failures.
fn run_script(path: &Path) -> (usize, Vec<Failure>) {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    let text = std::fs::read_to_string(path).expect("read script");
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| {
            let l = l.trim();
            if l.starts_with('#') { "" } else { l }
        })
        .collect();
    let engine = Engine::new(EngineOptions::default());
    let mut store = MemStore::default();
    let mut failures = Vec::new();
    let mut cases = 0;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let start = i;
        i += 1;
        if line.is_empty() {
            continue;
        }
        let (cmd, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let mut body = Vec::new();
        // `clear` takes no body: a command may follow on the very next line.
        while cmd != "clear" && i < lines.len() && !lines[i].is_empty() {
            body.push(lines[i]);
            i += 1;
        }
        let key = format!("{file}:{}", start + 1);
        match cmd.to_ascii_lowercase().as_str() {
            "clear" => store = MemStore::default(),
            "load" => {
                let step = pharos_model::parse_duration_ms(rest.trim()).expect("load step");
                for b in body {
                    let (labels, values) = parse_labels(b).expect("series description");
                    let samples = expand_values(values).expect("values");
                    let samples = samples
                        .into_iter()
                        .enumerate()
                        .filter_map(|(k, v)| {
                            v.map(|v| Sample {
                                t: k as i64 * step,
                                v,
                            })
                        })
                        .collect();
                    store.add(labels, samples);
                }
            }
            kind @ ("eval" | "eval_ordered" | "eval_fail") => {
                cases += 1;
                // `instant at <duration> <expr>`
                let mut parts = rest.trim().splitn(4, char::is_whitespace);
                let (Some("instant"), Some("at"), Some(at), Some(expr)) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    failures.push(Failure {
                        key,
                        why: format!("unsupported eval header {line:?}"),
                    });
                    continue;
                };
                let at_ms = pharos_model::parse_duration_ms(at).expect("eval time");
                let ev = Eval {
                    key: key.clone(),
                    kind,
                    at_ms,
                    expr: expr.trim(),
                    expected: body,
                };
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    check_eval(&store, &engine, &ev)
                }));
                let why = match outcome {
                    Ok(Ok(())) => continue,
                    Ok(Err(why)) => why,
                    Err(_) => "panicked".to_string(),
                };
                failures.push(Failure {
                    key: ev.key,
                    why: format!("{}: {why}", ev.expr),
                });
            }
            other => panic!("{key}: unknown command {other:?}"),
        }
    }
    (cases, failures)
}

fn scripts_dir() -> PathBuf {
    std::env::var_os("PHAROS_PROMQL_TESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/promql"))
}

#[test]
fn prometheus_promql_scripts() {
    let dir = scripts_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "cannot read Prometheus' PromQL scripts in {}: {e} (set PHAROS_PROMQL_TESTS to their folder)",
                dir.display()
            )
        })
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 11,
        "expected Prometheus' 11 scripts in {}",
        dir.display()
    );

    let known_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/promql-known-failures.txt");
    let known: BTreeSet<String> = std::fs::read_to_string(&known_path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();

    let (mut total, mut failed) = (0, Vec::new());
    for f in &files {
        let (n, fails) = run_script(f);
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        eprintln!("{name}: {} passed, {} failed", n - fails.len(), fails.len());
        total += n;
        failed.extend(fails);
    }
    eprintln!(
        "total: {} passed, {} failed",
        total - failed.len(),
        failed.len()
    );

    if std::env::var_os("PHAROS_UPDATE_KNOWN_FAILURES").is_some() {
        let mut text = String::from(
            "# PromQL script cases that do not pass yet (file:line  # reason). Rewritten with\n\
             # PHAROS_UPDATE_KNOWN_FAILURES=1 cargo test --test integration promql\n",
        );
        for f in &failed {
            let why: String = f
                .why
                .chars()
                .take(160)
                .collect::<String>()
                .replace('\n', " ");
            text.push_str(&format!("{}  # {why}\n", f.key));
        }
        std::fs::write(&known_path, text).expect("write known failures");
        return;
    }
    let new: Vec<String> = failed
        .iter()
        .filter(|f| !known.contains(&f.key))
        .map(|f| format!("{}: {}", f.key, f.why))
        .collect();
    let failed_keys: BTreeSet<&str> = failed.iter().map(|f| f.key.as_str()).collect();
    let fixed: Vec<&String> = known
        .iter()
        .filter(|k| !failed_keys.contains(k.as_str()))
        .collect();
    assert!(
        new.is_empty(),
        "{} new PromQL failures:\n{}",
        new.len(),
        new.join("\n")
    );
    assert!(
        fixed.is_empty(),
        "these cases pass now; remove them from {}: {fixed:?}",
        known_path.display()
    );
}

#[test]
fn runner_value_sequences() {
    #[track_caller]
    fn check(input: &str, want: &[Option<f64>]) {
        assert_eq!(expand_values(input).unwrap(), want, "{input}");
    }
    check("1 2", &[Some(1.0), Some(2.0)]);
    check("0+10x2", &[Some(0.0), Some(10.0), Some(20.0)]);
    check("8-1x1", &[Some(8.0), Some(7.0)]);
    check("-2+1x1", &[Some(-2.0), Some(-1.0)]);
    check("1x2", &[Some(1.0), Some(1.0), Some(1.0)]);
    check("_ _x2 3", &[None, None, None, Some(3.0)]);
    let (l, rest) = parse_labels(r#"m{a="x,y", b='q'} 1"#).unwrap();
    assert_eq!(l.to_string(), r#"m{a="x,y", b="q"}"#);
    assert_eq!(rest.trim(), "1");
}
