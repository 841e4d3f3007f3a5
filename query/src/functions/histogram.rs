//! `histogram_quantile(φ, buckets)` over classic `le`-bucket histograms.
//! See <https://prometheus.io/docs/prometheus/2.42/querying/functions/#histogram_quantile>.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use super::{Env, scalar_arg, vector_arg};
use crate::Result;
use crate::engine::hash::{Fnv, LabelMap};
use crate::engine::{Element, Metric, Value};

/// One cumulative bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    upper: f64,
    count: f64,
}

/// Prometheus' `bucketQuantile`: linear interpolation inside the bucket holding the rank, after
/// merging equal bounds and forcing counts to be monotonic.
fn bucket_quantile(q: f64, mut b: Vec<Bucket>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    b.sort_by(|x, y| x.upper.total_cmp(&y.upper));
    if b.last().is_none_or(|l| l.upper != f64::INFINITY) {
        return f64::NAN;
    }
    // Coalesce buckets with the same upper bound.
    let mut merged: Vec<Bucket> = Vec::with_capacity(b.len());
    for x in b {
        match merged.last_mut() {
            Some(l) if l.upper == x.upper => l.count += x.count,
            _ => merged.push(x),
        }
    }
    let mut max = f64::NEG_INFINITY;
    for x in &mut merged {
        if x.count > max {
            max = x.count;
        } else if x.count < max {
            x.count = max;
        }
    }
    let b = merged;
    if b.len() < 2 {
        return f64::NAN;
    }
    let observations = b[b.len() - 1].count;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let idx = b[..b.len() - 1].partition_point(|x| x.count < rank);
    if idx == b.len() - 1 {
        return b[b.len() - 2].upper;
    }
    if idx == 0 && b[0].upper <= 0.0 {
        return b[0].upper;
    }
    let mut start = 0.0;
    let end = b[idx].upper;
    let mut count = b[idx].count;
    if idx > 0 {
        start = b[idx - 1].upper;
        count -= b[idx - 1].count;
        rank -= b[idx - 1].count;
    }
    start + (end - start) * (rank / count)
}

/// `histogram_quantile(φ scalar, b instant-vector)`: buckets are grouped by all labels but
/// `le`; the result drops `le` and `__name__`. Series without a parsable `le` are ignored.
pub(crate) fn histogram_quantile(env: Env<'_>) -> Result<Value> {
    histogram_quantile_cached(env, &mut QuantileCache::default())
}

/// Most input label sets a [`QuantileCache`] remembers before it starts over.
const CACHE_LIMIT: usize = 1 << 20;

/// A bucket's histogram id and upper bound.
type Bound = (u32, f64);

/// What one `histogram_quantile` call learns during a range query, reused at every step: the
/// histogram (interned to an id) and the bucket bound of every input label set, and each
/// histogram's result label set built once. Input label sets are recognised by the address of
/// their shared [`Metric`]; the cache holds a clone of each, so an address is never reused for
/// another label set while it is cached.
#[derive(Default)]
pub(crate) struct QuantileCache {
    /// Per input address: the histogram id and upper bound (`None`: no parsable `le`).
    of: HashMap<usize, (Metric, Option<Bound>), BuildHasherDefault<Fnv>>,
    /// Histograms (labels without `le`) interned to ids.
    ids: LabelMap<u32>,
    /// Result label set of each id.
    labels: Vec<Metric>,
    /// Per id, its index in the current step's groups (`u32::MAX`: none yet).
    slot: Vec<u32>,
}

impl QuantileCache {
    fn lookup(&mut self, metric: &Metric) -> Option<Bound> {
        let p = Arc::as_ptr(metric) as usize;
        if let Some((_, x)) = self.of.get(&p) {
            return *x;
        }
        let x = metric
            .get("le")
            .and_then(pharos_model::api::parse_value)
            .map(|upper| {
                let mut b = metric.builder();
                b.del("le");
                let sig = b.build();
                let id = match self.ids.get(&sig) {
                    Some(id) => *id,
                    None => {
                        let id = u32::try_from(self.labels.len()).unwrap_or(u32::MAX);
                        self.labels.push(Arc::new(sig.without_metric_name()));
                        self.slot.push(u32::MAX);
                        self.ids.insert(sig, id);
                        id
                    }
                };
                (id, upper)
            });
        self.of.insert(p, (metric.clone(), x));
        x
    }
}

/// [`histogram_quantile`] with the grouping of a previous step's evaluation reused.
pub(crate) fn histogram_quantile_cached(
    mut env: Env<'_>,
    cache: &mut QuantileCache,
) -> Result<Value> {
    if cache.of.len() > CACHE_LIMIT {
        *cache = QuantileCache::default();
    }
    let q = scalar_arg(&env, 0);
    let v = vector_arg(&mut env, 1);
    let mut groups: Vec<(u32, Vec<Bucket>)> = Vec::new();
    for e in v {
        let Some((id, upper)) = cache.lookup(&e.metric) else {
            continue;
        };
        let Some(slot) = cache.slot.get_mut(id as usize) else {
            continue;
        };
        if *slot == u32::MAX {
            *slot = u32::try_from(groups.len()).unwrap_or(u32::MAX);
            groups.push((id, Vec::new()));
        }
        if let Some(g) = groups.get_mut(*slot as usize) {
            g.1.push(Bucket { upper, count: e.v });
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    for (id, buckets) in groups {
        if let Some(slot) = cache.slot.get_mut(id as usize) {
            *slot = u32::MAX;
        }
        if let Some(metric) = cache.labels.get(id as usize) {
            out.push(Element {
                metric: metric.clone(),
                t: env.ts,
                v: bucket_quantile(q, buckets),
            });
        }
    }
    Ok(Value::Vector(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(pairs: &[(f64, f64)]) -> Vec<Bucket> {
        pairs
            .iter()
            .map(|&(upper, count)| Bucket { upper, count })
            .collect()
    }

    #[test]
    fn quantiles() {
        let h = b(&[(0.1, 10.0), (0.2, 20.0), (f64::INFINITY, 20.0)]);
        assert!((bucket_quantile(0.5, h.clone()) - 0.1).abs() < 1e-12);
        assert!((bucket_quantile(0.75, h.clone()) - 0.15).abs() < 1e-12);
        assert_eq!(bucket_quantile(1.0, h.clone()), 0.2);
        assert_eq!(bucket_quantile(-1.0, h.clone()), f64::NEG_INFINITY);
        assert!(bucket_quantile(0.5, b(&[(0.1, 1.0)])).is_nan());
        assert!(bucket_quantile(0.5, b(&[(0.1, 0.0), (f64::INFINITY, 0.0)])).is_nan());
    }
}
