//! `histogram_quantile(φ, buckets)` over classic `le`-bucket histograms.
//! See <https://prometheus.io/docs/prometheus/2.42/querying/functions/#histogram_quantile>.

use pharos_model::Labels;

use super::{Env, scalar_arg, vector_arg};
use crate::Result;
use crate::engine::hash::LabelMap;
use crate::engine::{Element, Value};

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
pub(crate) fn histogram_quantile(mut env: Env<'_>) -> Result<Value> {
    let q = scalar_arg(&env, 0);
    let v = vector_arg(&mut env, 1);
    let mut order: Vec<Labels> = Vec::new();
    let mut groups: LabelMap<(Labels, Vec<Bucket>)> = LabelMap::default();
    for e in v {
        let Some(upper) = e.metric.get("le").and_then(pharos_model::api::parse_value) else {
            continue;
        };
        let mut b = e.metric.builder();
        b.del("le");
        let sig = b.build();
        let g = groups.entry(sig.clone()).or_insert_with(|| {
            order.push(sig.clone());
            (sig.without_metric_name(), Vec::new())
        });
        g.1.push(Bucket { upper, count: e.v });
    }
    let mut out = Vec::new();
    for sig in order {
        if let Some((metric, buckets)) = groups.remove(&sig) {
            out.push(Element {
                metric: std::sync::Arc::new(metric),
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
