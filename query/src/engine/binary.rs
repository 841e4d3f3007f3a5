//! Binary operators: scalar/scalar, vector/scalar and vector/vector with one-to-one,
//! many-to-one and one-to-many matching, and the set operators `and`, `or`, `unless`.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use pharos_model::{Labels, Sample};

use super::hash::{Fnv, LabelMap};
use super::{Element, Metric, Result, Value, check_unique, drop_name, exec_err};
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

/// Applies `b` to its evaluated operands at `ts`; `cache` is the node's [`MatchCache`].
pub(super) fn binary(
    b: &BinaryExpr,
    l: Value,
    r: Value,
    ts: i64,
    cache: &mut MatchCache,
) -> Result<Value> {
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
            cache.bound();
            let out = match b.op {
                BinOp::And => and(l, r, m, cache),
                BinOp::Or => or(l, r, m, cache),
                BinOp::Unless => unless(l, r, m, cache),
                _ => vector_vector(b, l, r, m, ts, cache)?,
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

/// Most metrics a [`MatchCache`] remembers before it starts over; bounds its memory when the
/// operands get fresh label sets at every step (e.g. from `label_replace`).
const CACHE_LIMIT: usize = 1 << 20;

/// What one vector/vector operator node learns about its operands during a query, reused at
/// every step: the matching signature of every operand label set (interned to a small id) and
/// the result label set of every pair of matched operands. Operand label sets are recognised by
/// the address of their shared [`Metric`]; the cache holds a clone of each, so an address is
/// never reused for another label set while it is cached.
#[derive(Default)]
pub(super) struct MatchCache {
    /// Signature id of each operand metric, by address.
    sig_of: PtrMap<(Metric, u32)>,
    /// Signatures interned to ids.
    sig_ids: LabelMap<u32>,
    /// Result metric of each `(many, one)` pair of operand addresses.
    results: HashMap<(usize, usize), Metric, BuildHasherDefault<Fnv>>,
    /// Result label sets interned, so equal results share one address.
    interned: HashSet<Metric, BuildHasherDefault<Fnv>>,
    /// Number of the current step's evaluation; marks which entries of `one_at` are current.
    generation: u32,
    /// Per signature id: `(generation, index)` of the "one" side element matching it at the
    /// current step, and `(generation, _)` once a "many" element matched it (one-to-one).
    one_at: Vec<(u32, u32)>,
    matched_at: Vec<u32>,
}

/// A map keyed by the address of a shared label set.
type PtrMap<V> = HashMap<usize, V, BuildHasherDefault<Fnv>>;

fn addr(m: &Metric) -> usize {
    Arc::as_ptr(m) as usize
}

impl MatchCache {
    /// Starts over when the cache has grown past [`CACHE_LIMIT`].
    fn bound(&mut self) {
        if self.sig_of.len() > CACHE_LIMIT || self.results.len() > CACHE_LIMIT {
            *self = MatchCache::default();
        }
    }

    /// The signature id of `metric` under `m`.
    fn sig(&mut self, metric: &Metric, m: &VectorMatching) -> u32 {
        if let Some((_, id)) = self.sig_of.get(&addr(metric)) {
            return *id;
        }
        let next = u32::try_from(self.sig_ids.len()).unwrap_or(u32::MAX);
        let id = *self.sig_ids.entry(signature(metric, m)).or_insert(next);
        self.sig_of.insert(addr(metric), (metric.clone(), id));
        id
    }

    /// Starts a step: entries of `one_at` and `matched_at` from earlier steps become stale.
    fn next_generation(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.one_at.iter_mut().for_each(|x| *x = (0, 0));
            self.matched_at.iter_mut().for_each(|x| *x = 0);
            self.generation = 1;
        }
    }

    /// Grows the per-signature tables to cover every interned signature.
    fn cover_sigs(&mut self) {
        let n = self.sig_ids.len();
        if self.one_at.len() < n {
            self.one_at.resize(n, (0, 0));
            self.matched_at.resize(n, 0);
        }
    }

    /// The shared copy of `l`.
    fn intern(&mut self, l: Labels) -> Metric {
        if let Some(x) = self.interned.get(&l) {
            return x.clone();
        }
        let x = Arc::new(l);
        self.interned.insert(x.clone());
        x
    }
}

/// Signature ids of one side.
type SigSet = HashSet<u32, BuildHasherDefault<Fnv>>;

fn and(l: Vec<Element>, r: Vec<Element>, m: &VectorMatching, c: &mut MatchCache) -> Vec<Element> {
    let right: SigSet = r.iter().map(|e| c.sig(&e.metric, m)).collect();
    l.into_iter()
        .filter(|e| right.contains(&c.sig(&e.metric, m)))
        .collect()
}

fn or(l: Vec<Element>, r: Vec<Element>, m: &VectorMatching, c: &mut MatchCache) -> Vec<Element> {
    let left: SigSet = l.iter().map(|e| c.sig(&e.metric, m)).collect();
    let mut out = l;
    out.extend(
        r.into_iter()
            .filter(|e| !left.contains(&c.sig(&e.metric, m))),
    );
    out
}

fn unless(
    l: Vec<Element>,
    r: Vec<Element>,
    m: &VectorMatching,
    c: &mut MatchCache,
) -> Vec<Element> {
    let right: SigSet = r.iter().map(|e| c.sig(&e.metric, m)).collect();
    l.into_iter()
        .filter(|e| !right.contains(&c.sig(&e.metric, m)))
        .collect()
}

fn vector_vector(
    b: &BinaryExpr,
    lhs: Vec<Element>,
    rhs: Vec<Element>,
    m: &VectorMatching,
    ts: i64,
    cache: &mut MatchCache,
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
    cache.next_generation();
    let gen_now = cache.generation;
    let one_ids: Vec<u32> = one.iter().map(|e| cache.sig(&e.metric, m)).collect();
    let many_ids: Vec<u32> = many.iter().map(|e| cache.sig(&e.metric, m)).collect();
    cache.cover_sigs();
    for (i, (e, &sig)) in one.iter().zip(&one_ids).enumerate() {
        let Some(slot) = cache.one_at.get_mut(sig as usize) else {
            continue;
        };
        if slot.0 == gen_now {
            let dup = one.get(slot.1 as usize).unwrap_or(e);
            let side = if m.card == Cardinality::OneToMany {
                "left"
            } else {
                "right"
            };
            let matched = signature(&e.metric, m);
            return exec_err(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                braced(&matched),
                braced(&e.metric),
                braced(&dup.metric)
            ));
        }
        *slot = (gen_now, u32::try_from(i).unwrap_or(u32::MAX));
    }
    // Result metrics are interned, so equal label sets are equal addresses.
    let mut matched: HashSet<(u32, usize), BuildHasherDefault<Fnv>> = HashSet::default();
    let mut out = Vec::with_capacity(many.len());
    for (e, &sig) in many.iter().zip(&many_ids) {
        let o = match cache.one_at.get(sig as usize) {
            Some(&(g, i)) if g == gen_now => match one.get(i as usize) {
                Some(o) => o,
                None => continue,
            },
            _ => continue,
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
        let pair = (addr(&e.metric), addr(&o.metric));
        let metric = match cache.results.get(&pair) {
            Some(x) => x.clone(),
            None => {
                let mut l = result_metric(&e.metric, &o.metric, b.op, m);
                if b.return_bool {
                    l = l.without_metric_name();
                }
                let x = cache.intern(l);
                cache.results.insert(pair, x.clone());
                x
            }
        };
        if m.card == Cardinality::OneToOne {
            let seen = cache.matched_at.get_mut(sig as usize);
            if seen.as_ref().is_some_and(|g| **g == gen_now) {
                return exec_err(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                );
            }
            if let Some(g) = seen {
                *g = gen_now;
            }
        } else if !matched.insert((sig, addr(&metric))) {
            return exec_err(
                "multiple matches for labels: grouping labels must ensure unique matches",
            );
        }
        out.push(Element {
            metric,
            t: ts,
            v: value,
        });
    }
    if out.len() > 1 {
        let mut seen: HashSet<usize, BuildHasherDefault<Fnv>> =
            HashSet::with_capacity_and_hasher(out.len(), Default::default());
        if !out.iter().all(|e| seen.insert(addr(&e.metric))) {
            return exec_err("vector cannot contain metrics with the same labelset");
        }
    }
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
