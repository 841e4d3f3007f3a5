//! Aggregation operators (`sum`, `avg`, `count`, `min`, `max`, `group`, `stddev`, `stdvar`,
//! `topk`, `bottomk`, `quantile`, `count_values`) with `by`/`without` grouping.

use pharos_model::Labels;

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use super::hash::{Fnv, LabelMap};
use super::{Element, Metric, Result, Value, exec_err};
use crate::ast::{AggOp, AggregateExpr};

/// The labels of the group `l` falls into.
pub(super) fn group_labels(a: &AggregateExpr, l: &Labels) -> Labels {
    if a.without {
        l.drop_names(&a.grouping)
    } else {
        l.keep(&a.grouping)
    }
}

/// The running value of one group, for every operator but `topk`, `bottomk` and `quantile`
/// (which also keep their members). Shared with the whole-range aggregation of `fused`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Acc {
    value: f64,
    mean: f64,
    count: f64,
}

impl Acc {
    /// The state of a group whose first element has value `v`, before [`Acc::add`] adds it.
    pub(super) fn new(v: f64) -> Self {
        Acc {
            value: v,
            mean: 0.0,
            count: 0.0,
        }
    }

    /// Adds one element's value.
    pub(super) fn add(&mut self, op: AggOp, v: f64) {
        let first = self.count == 0.0;
        self.count += 1.0;
        match op {
            AggOp::Sum => {
                if !first {
                    self.value += v;
                }
            }
            AggOp::Avg => {
                self.mean = if first {
                    v
                } else {
                    mean_add(self.mean, v, self.count)
                };
            }
            AggOp::Max => {
                if self.value < v || self.value.is_nan() {
                    self.value = v;
                }
            }
            AggOp::Min => {
                if self.value > v || self.value.is_nan() {
                    self.value = v;
                }
            }
            AggOp::Stddev | AggOp::Stdvar => {
                if first {
                    self.value = 0.0;
                    self.mean = 0.0;
                }
                let delta = v - self.mean;
                self.mean += delta / self.count;
                self.value += delta * (v - self.mean);
            }
            AggOp::Count
            | AggOp::Group
            | AggOp::CountValues
            | AggOp::Topk
            | AggOp::Bottomk
            | AggOp::Quantile => {}
        }
    }

    /// The group's result for `op` (not `topk`, `bottomk`, `quantile`: NaN).
    pub(super) fn result(&self, op: AggOp) -> f64 {
        match op {
            AggOp::Sum | AggOp::Max | AggOp::Min => self.value,
            AggOp::Avg => self.mean,
            AggOp::Count | AggOp::CountValues => self.count,
            AggOp::Group => 1.0,
            AggOp::Stdvar => self.value / self.count,
            AggOp::Stddev => (self.value / self.count).sqrt(),
            AggOp::Topk | AggOp::Bottomk | AggOp::Quantile => f64::NAN,
        }
    }
}

/// Running state of one group.
struct Group {
    labels: Metric,
    acc: Acc,
    members: Vec<Element>,
}

impl Group {
    fn new(labels: Metric, value: f64) -> Self {
        Group {
            labels,
            acc: Acc::new(value),
            members: Vec::new(),
        }
    }

    /// Adds one element to the group.
    fn add(&mut self, op: AggOp, e: Element) {
        self.acc.add(op, e.v);
        if matches!(op, AggOp::Topk | AggOp::Bottomk | AggOp::Quantile) {
            self.members.push(e);
        }
    }
}

/// Most input label sets a [`GroupCache`] remembers before it starts over; bounds its memory
/// when the input gets fresh label sets at every step.
const CACHE_LIMIT: usize = 1 << 20;

/// What one aggregation node learns during a query, reused at every step: the group of every
/// input label set, and each group's label set built once (so results keep one address across
/// steps, which lets later operators cache by address too). Input label sets are recognised by
/// the address of their shared [`Metric`]; the cache holds a clone of each, so an address is
/// never reused for another label set while it is cached.
#[derive(Default)]
pub(super) struct GroupCache {
    /// Group id of each input metric, by address.
    group_of: HashMap<usize, (Metric, u32), BuildHasherDefault<Fnv>>,
    /// Group label sets interned to ids.
    ids: LabelMap<u32>,
    /// Label set of each group id.
    labels: Vec<Metric>,
    /// Per group id, its index in the current step's groups (`u32::MAX`: none yet).
    slot: Vec<u32>,
}

impl GroupCache {
    /// Starts over when the cache has grown past [`CACHE_LIMIT`].
    fn bound(&mut self) {
        if self.group_of.len() > CACHE_LIMIT {
            *self = GroupCache::default();
        }
    }

    /// The group id of `metric`.
    fn group(&mut self, a: &AggregateExpr, metric: &Metric) -> u32 {
        let p = Arc::as_ptr(metric) as usize;
        if let Some((_, id)) = self.group_of.get(&p) {
            return *id;
        }
        let gl = group_labels(a, metric);
        let id = match self.ids.get(&gl) {
            Some(id) => *id,
            None => {
                let id = u32::try_from(self.labels.len()).unwrap_or(u32::MAX);
                self.labels.push(Arc::new(gl.clone()));
                self.slot.push(u32::MAX);
                self.ids.insert(gl, id);
                id
            }
        };
        self.group_of.insert(p, (metric.clone(), id));
        id
    }
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
    cache: &mut GroupCache,
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

    let mut groups: Vec<Group> = Vec::new();
    if a.op == AggOp::CountValues {
        // The group depends on the value: found by its full label set at every step.
        let mut index: LabelMap<usize> = LabelMap::default();
        for e in v {
            let mut b = group_labels(a, &e.metric).builder();
            b.set(count_label.clone(), format_float(e.v));
            let gl = b.build();
            let gi = match index.get(&gl) {
                Some(i) => *i,
                None => {
                    index.insert(gl.clone(), groups.len());
                    groups.push(Group::new(Arc::new(gl), e.v));
                    groups.len() - 1
                }
            };
            groups[gi].add(a.op, e);
        }
    } else {
        // Groups in order of first appearance; each input label set's group is looked up once
        // per query through the cache.
        cache.bound();
        let mut used: Vec<u32> = Vec::new();
        for e in v {
            let id = cache.group(a, &e.metric);
            let slot = &mut cache.slot[id as usize];
            let gi = if *slot == u32::MAX {
                *slot = u32::try_from(groups.len()).unwrap_or(u32::MAX);
                used.push(id);
                groups.push(Group::new(cache.labels[id as usize].clone(), e.v));
                groups.len() - 1
            } else {
                *slot as usize
            };
            groups[gi].add(a.op, e);
        }
        for id in used {
            cache.slot[id as usize] = u32::MAX;
        }
    }
    let mut out = Vec::new();
    for mut g in groups {
        let v = match a.op {
            AggOp::Sum
            | AggOp::Max
            | AggOp::Min
            | AggOp::Avg
            | AggOp::Count
            | AggOp::CountValues
            | AggOp::Group
            | AggOp::Stdvar
            | AggOp::Stddev => g.acc.result(a.op),
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
            metric: g.labels,
            t: ts,
            v,
        });
    }
    Ok(out)
}
