//! Aggregation operators (`sum`, `avg`, `count`, `min`, `max`, `group`, `stddev`, `stdvar`,
//! `topk`, `bottomk`, `quantile`, `count_values`) with `by`/`without` grouping.

use pharos_model::Labels;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::hash::Fnv;
use super::{Element, Result, Value, exec_err};
use crate::ast::{AggOp, AggregateExpr};

/// The labels of the group `l` falls into.
fn group_labels(a: &AggregateExpr, l: &Labels) -> Labels {
    if a.without {
        l.drop_names(&a.grouping)
    } else {
        l.keep(&a.grouping)
    }
}

/// Running state of one group.
struct Group {
    labels: Labels,
    value: f64,
    mean: f64,
    count: f64,
    members: Vec<Element>,
}

/// The `q`-quantile of `values` (sorted in place), interpolating between neighbours; NaN sorts
/// first, as in Prometheus.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.total_cmp(b),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Adds `v` to an incremental mean over `count` values, keeping infinities intact.
pub(crate) fn mean_add(mean: f64, v: f64, count: f64) -> f64 {
    if mean.is_infinite() {
        if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
            return mean;
        }
        if !v.is_infinite() && !v.is_nan() {
            return mean;
        }
    }
    mean + (v / count - mean / count)
}

fn format_float(v: f64) -> String {
    pharos_model::api::format_value(v)
}

/// The `k` elements `topk` (`top`) or `bottomk` keep, chosen as Prometheus 2.42 chooses them, so
/// that which of several equal values survive matches it: a binary heap (Go's `container/heap`
/// sift-up and sift-down) of at most `k` elements whose root is the weakest kept one. A newcomer
/// enters while the heap is not full, or when it beats the root strictly, or when the root is NaN;
/// it then evicts the root (replaced in place when `k` is 1, otherwise popped: the last element
/// moves to the root and sifts down) and is pushed (appended and sifted up). The kept elements
/// are returned best first, NaN last.
pub(super) fn select_k(members: Vec<Element>, k: usize, top: bool) -> Vec<Element> {
    if k == 0 {
        return Vec::new();
    }
    // `less(a, b)`: `a` is weaker than `b` (belongs nearer the root).
    let less = |a: f64, b: f64| a.is_nan() || if top { a < b } else { a > b };
    let up = |h: &mut Vec<Element>, mut j: usize| {
        while j > 0 {
            let i = (j - 1) / 2;
            if !less(h[j].v, h[i].v) {
                break;
            }
            h.swap(i, j);
            j = i;
        }
    };
    let down = |h: &mut Vec<Element>, mut i: usize, n: usize| {
        loop {
            let j1 = 2 * i + 1;
            if j1 >= n {
                break;
            }
            let mut j = j1;
            if j1 + 1 < n && less(h[j1 + 1].v, h[j1].v) {
                j = j1 + 1;
            }
            if !less(h[j].v, h[i].v) {
                break;
            }
            h.swap(i, j);
            i = j;
        }
    };
    let mut h: Vec<Element> = Vec::with_capacity(k.min(members.len()));
    for e in members {
        if h.len() == k {
            let root = h[0].v;
            let beats = if top { root < e.v } else { root > e.v };
            if !(beats || root.is_nan()) {
                continue;
            }
            if k == 1 {
                h[0] = e;
                continue;
            }
            let n = h.len() - 1;
            h.swap(0, n);
            down(&mut h, 0, n);
            h.pop();
        }
        h.push(e);
        let last = h.len() - 1;
        up(&mut h, last);
    }
    h.sort_by(|x, y| match (x.v.is_nan(), y.v.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ if top => y.v.total_cmp(&x.v),
        _ => x.v.total_cmp(&y.v),
    });
    h
}

pub(super) fn aggregate(
    a: &AggregateExpr,
    param: Option<Value>,
    v: Vec<Element>,
    ts: i64,
) -> Result<Vec<Element>> {
    let scalar_param = match &param {
        Some(Value::Scalar(s)) => s.v,
        _ => f64::NAN,
    };
    let mut count_label = String::new();
    match a.op {
        AggOp::Topk | AggOp::Bottomk
            if !(scalar_param >= i64::MIN as f64 && scalar_param <= i64::MAX as f64) =>
        {
            return exec_err(format!(
                "Scalar value {} overflows int64",
                format_float(scalar_param)
            ));
        }
        AggOp::CountValues => {
            count_label = match &param {
                Some(Value::String(s)) => s.s.clone(),
                _ => String::new(),
            };
            let valid = {
                let mut c = count_label.chars();
                matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
                    && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
            };
            if !valid {
                return exec_err(format!("invalid label name {count_label:?}"));
            }
        }
        _ => {}
    }

    // Groups in order of first appearance, found by a hash of their labels computed without
    // building the label set (collisions are resolved by comparing the labels).
    let in_group = |name: &str| {
        if a.without {
            name != pharos_model::METRIC_NAME && !a.grouping.iter().any(|g| g == name)
        } else {
            a.grouping.iter().any(|g| g == name)
        }
    };
    let hash_of = |it: &mut dyn Iterator<Item = &pharos_model::Label>| {
        let mut f = Fnv::default();
        for l in it {
            f.write(l.name.as_bytes());
            f.write_u8(0xff);
            f.write(l.value.as_bytes());
            f.write_u8(0xff);
        }
        f.finish()
    };
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<u64, Vec<usize>, BuildHasherDefault<Fnv>> = HashMap::default();
    for e in v {
        let (h, counted) = if a.op == AggOp::CountValues {
            let mut b = group_labels(a, &e.metric).builder();
            b.set(count_label.clone(), format_float(e.v));
            let gl = b.build();
            let h = hash_of(&mut gl.iter());
            (h, Some(gl))
        } else {
            (
                hash_of(&mut e.metric.iter().filter(|l| in_group(&l.name))),
                None,
            )
        };
        let found = index.get(&h).and_then(|cands| {
            cands.iter().copied().find(|&i| match &counted {
                Some(gl) => groups[i].labels == *gl,
                None => groups[i]
                    .labels
                    .iter()
                    .eq(e.metric.iter().filter(|l| in_group(&l.name))),
            })
        });
        let gi = match found {
            Some(i) => i,
            None => {
                let labels = counted.unwrap_or_else(|| group_labels(a, &e.metric));
                groups.push(Group {
                    labels,
                    value: e.v,
                    mean: 0.0,
                    count: 0.0,
                    members: Vec::new(),
                });
                index.entry(h).or_default().push(groups.len() - 1);
                groups.len() - 1
            }
        };
        let g = &mut groups[gi];
        let first = g.count == 0.0;
        g.count += 1.0;
        match a.op {
            AggOp::Sum => {
                if !first {
                    g.value += e.v;
                }
            }
            AggOp::Avg => {
                g.mean = if first {
                    e.v
                } else {
                    mean_add(g.mean, e.v, g.count)
                };
            }
            AggOp::Max => {
                if g.value < e.v || g.value.is_nan() {
                    g.value = e.v;
                }
            }
            AggOp::Min => {
                if g.value > e.v || g.value.is_nan() {
                    g.value = e.v;
                }
            }
            AggOp::Stddev | AggOp::Stdvar => {
                if first {
                    g.value = 0.0;
                    g.mean = 0.0;
                }
                let delta = e.v - g.mean;
                g.mean += delta / g.count;
                g.value += delta * (e.v - g.mean);
            }
            AggOp::Count | AggOp::Group | AggOp::CountValues => {}
            AggOp::Topk | AggOp::Bottomk | AggOp::Quantile => g.members.push(e),
        }
    }

    let mut out = Vec::new();
    for mut g in groups {
        let v = match a.op {
            AggOp::Sum | AggOp::Max | AggOp::Min => g.value,
            AggOp::Avg => g.mean,
            AggOp::Count | AggOp::CountValues => g.count,
            AggOp::Group => 1.0,
            AggOp::Stdvar => g.value / g.count,
            AggOp::Stddev => (g.value / g.count).sqrt(),
            AggOp::Quantile => {
                let mut vals: Vec<f64> = g.members.iter().map(|e| e.v).collect();
                quantile(scalar_param, &mut vals)
            }
            AggOp::Topk | AggOp::Bottomk => {
                let k = scalar_param as i64;
                if k < 1 {
                    continue;
                }
                let top = a.op == AggOp::Topk;
                let k = usize::try_from(k).unwrap_or(usize::MAX);
                g.members = select_k(std::mem::take(&mut g.members), k, top);
                for mut e in g.members {
                    e.t = ts;
                    out.push(e);
                }
                continue;
            }
        };
        out.push(Element {
            metric: std::sync::Arc::new(g.labels),
            t: ts,
            v,
        });
    }
    Ok(out)
}
