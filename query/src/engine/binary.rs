//! Binary operators: scalar/scalar, vector/scalar and vector/vector with one-to-one,
//! many-to-one and one-to-many matching, and the set operators `and`, `or`, `unless`.

use pharos_model::{Labels, Sample};

use super::hash::{LabelMap, LabelSet};
use super::{Element, Result, Value, check_unique, drop_name, exec_err};
use crate::ast::{BinOp, BinaryExpr, Cardinality, VectorMatching};

/// Applies `op` to two floats; for comparisons returns the left value and whether it holds.
fn elem(op: BinOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinOp::Add => (l + r, true),
        BinOp::Sub => (l - r, true),
        BinOp::Mul => (l * r, true),
        BinOp::Div => (l / r, true),
        BinOp::Mod => (l % r, true),
        BinOp::Pow => (l.powf(r), true),
        BinOp::Atan2 => (l.atan2(r), true),
        BinOp::Eql => (l, l == r),
        BinOp::Neq => (l, l != r),
        BinOp::Lss => (l, l < r),
        BinOp::Lte => (l, l <= r),
        BinOp::Gtr => (l, l > r),
        BinOp::Gte => (l, l >= r),
        BinOp::And | BinOp::Or | BinOp::Unless => (f64::NAN, false),
    }
}

/// A label set as Prometheus prints it in error messages: `{__name__="m", a="b"}` (the metric
/// name is an ordinary label there, values quoted with Go's escapes).
fn braced(l: &Labels) -> String {
    let mut out = String::from("{");
    for (i, l) in l.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&l.name);
        out.push_str("=\"");
        for c in l.value.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// Arithmetic operators drop the metric name (comparisons and `atan2` keep it, as in 2.42).
fn drops_name(op: BinOp) -> bool {
    matches!(
        op,
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Pow | BinOp::Mod
    )
}

pub(super) fn binary(b: &BinaryExpr, l: Value, r: Value, ts: i64) -> Result<Value> {
    match (l, r) {
        (Value::Scalar(l), Value::Scalar(r)) => {
            let (v, keep) = elem(b.op, l.v, r.v);
            let v = if b.op.is_comparison() {
                if keep { 1.0 } else { 0.0 }
            } else {
                v
            };
            Ok(Value::Scalar(Sample { t: ts, v }))
        }
        (Value::Vector(l), Value::Scalar(r)) => vector_scalar(b, l, r.v, false, ts),
        (Value::Scalar(l), Value::Vector(r)) => vector_scalar(b, r, l.v, true, ts),
        (Value::Vector(l), Value::Vector(r)) => {
            let default = VectorMatching {
                card: if b.op.is_set() {
                    Cardinality::ManyToMany
                } else {
                    Cardinality::OneToOne
                },
                labels: vec![],
                on: false,
                include: vec![],
            };
            let m = b.matching.as_ref().unwrap_or(&default);
            let out = match b.op {
                BinOp::And => and(l, r, m),
                BinOp::Or => or(l, r, m),
                BinOp::Unless => unless(l, r, m),
                _ => vector_vector(b, l, r, m, ts)?,
            };
            Ok(Value::Vector(out))
        }
        _ => exec_err("binary expression must contain only scalar and instant vector types"),
    }
}

fn vector_scalar(b: &BinaryExpr, v: Vec<Element>, s: f64, swap: bool, ts: i64) -> Result<Value> {
    let mut out = Vec::with_capacity(v.len());
    for e in v {
        let (l, r) = if swap { (s, e.v) } else { (e.v, s) };
        let (mut value, keep) = elem(b.op, l, r);
        // A comparison keeps the vector's value even when the scalar is on the left.
        if b.op.is_comparison() && swap {
            value = r;
        }
        if b.return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let metric = if b.return_bool || drops_name(b.op) {
            drop_name(&e.metric)
        } else {
            e.metric
        };
        out.push(Element {
            metric,
            t: ts,
            v: value,
        });
    }
    check_unique(&out)?;
    Ok(Value::Vector(out))
}

/// The labels two sides are matched on.
fn signature(l: &Labels, m: &VectorMatching) -> Labels {
    if m.on {
        l.keep(&m.labels)
    } else {
        l.drop_names(&m.labels)
    }
}

fn and(l: Vec<Element>, r: Vec<Element>, m: &VectorMatching) -> Vec<Element> {
    let right: LabelSet = r.iter().map(|e| signature(&e.metric, m)).collect();
    l.into_iter()
        .filter(|e| right.contains(&signature(&e.metric, m)))
        .collect()
}

fn or(l: Vec<Element>, r: Vec<Element>, m: &VectorMatching) -> Vec<Element> {
    let left: LabelSet = l.iter().map(|e| signature(&e.metric, m)).collect();
    let mut out = l;
    out.extend(
        r.into_iter()
            .filter(|e| !left.contains(&signature(&e.metric, m))),
    );
    out
}

fn unless(l: Vec<Element>, r: Vec<Element>, m: &VectorMatching) -> Vec<Element> {
    let right: LabelSet = r.iter().map(|e| signature(&e.metric, m)).collect();
    l.into_iter()
        .filter(|e| !right.contains(&signature(&e.metric, m)))
        .collect()
}

fn vector_vector(
    b: &BinaryExpr,
    lhs: Vec<Element>,
    rhs: Vec<Element>,
    m: &VectorMatching,
    ts: i64,
) -> Result<Vec<Element>> {
    if m.card == Cardinality::ManyToMany {
        return exec_err("many-to-many only allowed for set operators");
    }
    // Make the right side the "one" side.
    let (many, one) = if m.card == Cardinality::OneToMany {
        (rhs, lhs)
    } else {
        (lhs, rhs)
    };
    let mut one_sigs: LabelMap<Element> =
        LabelMap::with_capacity_and_hasher(one.len(), Default::default());
    for e in one {
        let sig = signature(&e.metric, m);
        if let Some(dup) = one_sigs.get(&sig) {
            let side = if m.card == Cardinality::OneToMany {
                "left"
            } else {
                "right"
            };
            let matched = if m.on {
                e.metric.keep(&m.labels)
            } else {
                e.metric.drop_names(&m.labels)
            };
            return exec_err(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                braced(&matched),
                braced(&e.metric),
                braced(&dup.metric)
            ));
        }
        one_sigs.insert(sig, e);
    }
    let mut matched: LabelMap<LabelSet> = LabelMap::default();
    let mut out = Vec::new();
    for e in many {
        let sig = signature(&e.metric, m);
        let Some(o) = one_sigs.get(&sig) else {
            continue;
        };
        let (vl, vr) = if m.card == Cardinality::OneToMany {
            (o.v, e.v)
        } else {
            (e.v, o.v)
        };
        let (mut value, keep) = elem(b.op, vl, vr);
        if b.return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let mut metric = result_metric(&e.metric, &o.metric, b.op, m);
        if b.return_bool {
            metric = metric.without_metric_name();
        }
        match matched.get_mut(&sig) {
            None => {
                let mut set = LabelSet::default();
                set.insert(metric.clone());
                matched.insert(sig, set);
            }
            Some(set) => {
                if m.card == Cardinality::OneToOne {
                    return exec_err(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                    );
                }
                if !set.insert(metric.clone()) {
                    return exec_err(
                        "multiple matches for labels: grouping labels must ensure unique matches",
                    );
                }
            }
        }
        out.push(Element {
            metric: std::sync::Arc::new(metric),
            t: ts,
            v: value,
        });
    }
    check_unique(&out)?;
    Ok(out)
}

fn result_metric(many: &Labels, one: &Labels, op: BinOp, m: &VectorMatching) -> Labels {
    let mut b = many.builder();
    if drops_name(op) {
        b.del(pharos_model::METRIC_NAME);
    }
    if m.card == Cardinality::OneToOne {
        if m.on {
            b = many.keep(&m.labels).builder();
            if drops_name(op) {
                b.del(pharos_model::METRIC_NAME);
            }
        } else {
            for l in &m.labels {
                b.del(l);
            }
        }
    }
    for l in &m.include {
        match one.get(l) {
            Some(v) => b.set(l.clone(), v),
            None => b.del(l),
        };
    }
    b.build()
}
