//! `absent`, `absent_over_time`, `scalar`, `vector`, `sort`, `sort_desc`.
//! See <https://prometheus.io/docs/prometheus/2.42/querying/functions/#absent>.

use pharos_model::{Labels, LabelsBuilder, MatchOp, Sample};

use super::{Env, scalar_arg, vector_arg};
use crate::Result;
use crate::ast::Expr;
use crate::engine::{Element, Value};

/// The labels `absent` reports: those of the selector's equality matchers (a label matched more
/// than once is left out).
fn absent_labels(e: &Expr) -> Labels {
    let matchers = match e.unparen() {
        Expr::VectorSelector(vs) => &vs.matchers,
        Expr::MatrixSelector(ms) => &ms.vs.matchers,
        _ => return Labels::empty(),
    };
    let mut b = LabelsBuilder::default();
    let mut seen = std::collections::HashSet::new();
    for m in matchers {
        if m.name == pharos_model::METRIC_NAME {
            continue;
        }
        if m.op == MatchOp::Eq && seen.insert(m.name.clone()) {
            b.set(m.name.clone(), m.value.clone());
        } else {
            seen.insert(m.name.clone());
            b.del(&m.name);
        }
    }
    b.build()
}

/// `absent(v)`: one element with value 1 if `v` is empty.
pub(crate) fn absent(env: Env<'_>) -> Result<Value> {
    let empty = matches!(env.args.first(), Some(Value::Vector(v)) if v.is_empty());
    Ok(Value::Vector(if empty {
        let metric = std::sync::Arc::new(env.exprs.first().map(absent_labels).unwrap_or_default());
        vec![Element {
            metric,
            t: env.ts,
            v: 1.0,
        }]
    } else {
        Vec::new()
    }))
}

/// `absent_over_time(v range-vector)`: one element with value 1 if no series has samples.
pub(crate) fn absent_over_time(env: Env<'_>) -> Result<Value> {
    let empty = matches!(env.args.first(), Some(Value::Matrix(m)) if m.is_empty());
    Ok(Value::Vector(if empty {
        let metric = std::sync::Arc::new(env.exprs.first().map(absent_labels).unwrap_or_default());
        vec![Element {
            metric,
            t: env.ts,
            v: 1.0,
        }]
    } else {
        Vec::new()
    }))
}

/// `scalar(v)`: the single element's value, or NaN.
pub(crate) fn scalar(env: Env<'_>) -> Result<Value> {
    let v = match env.args.first() {
        Some(Value::Vector(v)) if v.len() == 1 => v[0].v,
        _ => f64::NAN,
    };
    Ok(Value::Scalar(Sample { t: env.ts, v }))
}

/// `vector(s)`: one element without labels.
pub(crate) fn vector(env: Env<'_>) -> Result<Value> {
    Ok(Value::Vector(vec![Element {
        metric: std::sync::Arc::new(Labels::empty()),
        t: env.ts,
        v: scalar_arg(&env, 0),
    }]))
}

fn sorted(mut env: Env<'_>, desc: bool) -> Result<Value> {
    let mut v = vector_arg(&mut env, 0);
    // NaN sorts last in both directions.
    v.sort_by(|a, b| match (a.v.is_nan(), b.v.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ if desc => b.v.total_cmp(&a.v),
        _ => a.v.total_cmp(&b.v),
    });
    Ok(Value::Vector(v))
}

/// `sort(v)`: ascending by value.
pub(crate) fn sort(env: Env<'_>) -> Result<Value> {
    sorted(env, false)
}

/// `sort_desc(v)`: descending by value.
pub(crate) fn sort_desc(env: Env<'_>) -> Result<Value> {
    sorted(env, true)
}
