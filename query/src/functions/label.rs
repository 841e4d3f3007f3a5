//! `label_replace` and `label_join`.
//! See <https://prometheus.io/docs/prometheus/2.42/querying/functions/#label_replace>.

use regex::Regex;

use super::{Env, string_arg, vector_arg};
use crate::Result;
use crate::engine::{Element, Value, exec_err};

fn valid_label_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `label_replace(v, dst, replacement, src, regex)`: where the anchored `regex` matches the value
/// of `src`, sets `dst` to `replacement` with `$1`/`${name}` expanded (empty deletes it).
pub(crate) fn label_replace(mut env: Env<'_>) -> Result<Value> {
    let (dst, repl, src, re) = (
        string_arg(&env, 1),
        string_arg(&env, 2),
        string_arg(&env, 3),
        string_arg(&env, 4),
    );
    let regex = match Regex::new(&format!("^(?s:{re})$")) {
        Ok(r) => r,
        // Prometheus names the pattern, not the compiler's diagnosis.
        Err(_) => {
            return exec_err(format!(
                "invalid regular expression in label_replace(): {re}"
            ));
        }
    };
    if !valid_label_name(&dst) {
        return exec_err(format!(
            "invalid destination label name in label_replace(): {dst}"
        ));
    }
    let ts = env.ts;
    let v = vector_arg(&mut env, 0);
    let mut out = Vec::with_capacity(v.len());
    for e in v {
        let src_val = e.metric.get(&src).unwrap_or("");
        let metric = match regex.captures(src_val) {
            Some(caps) => {
                let mut res = String::new();
                caps.expand(&repl, &mut res);
                let mut b = e.metric.builder();
                b.set(dst.clone(), res);
                std::sync::Arc::new(b.build())
            }
            None => e.metric,
        };
        out.push(Element {
            metric,
            t: ts,
            v: e.v,
        });
    }
    Ok(Value::Vector(out))
}

/// `label_join(v, dst, separator, src...)`: sets `dst` to the `src` values joined by
/// `separator`.
pub(crate) fn label_join(mut env: Env<'_>) -> Result<Value> {
    let dst = string_arg(&env, 1);
    let sep = string_arg(&env, 2);
    let srcs: Vec<String> = (3..env.args.len()).map(|i| string_arg(&env, i)).collect();
    if !valid_label_name(&dst) {
        return exec_err(format!(
            "invalid destination label name in label_join(): {dst}"
        ));
    }
    for s in &srcs {
        if !valid_label_name(s) {
            return exec_err(format!("invalid source label name in label_join(): {s}"));
        }
    }
    let ts = env.ts;
    let v = vector_arg(&mut env, 0);
    Ok(Value::Vector(
        v.into_iter()
            .map(|e| {
                let joined: Vec<&str> =
                    srcs.iter().map(|s| e.metric.get(s).unwrap_or("")).collect();
                let mut b = e.metric.builder();
                b.set(dst.clone(), joined.join(&sep));
                Element {
                    metric: std::sync::Arc::new(b.build()),
                    t: ts,
                    v: e.v,
                }
            })
            .collect(),
    ))
}
