//! `<aggregation>_over_time` functions: `avg`, `sum`, `count`, `min`, `max`, `last`, `present`,
//! `stddev`, `stdvar`, `quantile`. Pure over one series' points in the window.
//! See <https://prometheus.io/docs/prometheus/2.42/querying/functions/#aggregation_over_time>.

use pharos_model::Sample;

use super::RangeCtx;
use crate::Result;
use crate::engine::aggregate_helpers::{mean_add, quantile as quantile_of};

/// Kahan-compensated sum.
fn kahan_sum(p: &[Sample]) -> f64 {
    let (mut sum, mut c) = (0.0f64, 0.0f64);
    for s in p {
        let t = sum + s.v;
        if sum.abs() >= s.v.abs() {
            c += (sum - t) + s.v;
        } else {
            c += (s.v - t) + sum;
        }
        sum = t;
    }
    if sum.is_infinite() { sum } else { sum + c }
}

/// `avg_over_time(range-vector)`
pub(crate) fn avg(_: &RangeCtx, p: &[Sample], _: &[f64]) -> Result<Option<f64>> {
    let mut mean = 0.0;
    for (i, s) in p.iter().enumerate() {
        mean = if i == 0 {
            s.v
        } else {
            mean_add(mean, s.v, (i + 1) as f64)
        };
    }
    Ok((!p.is_empty()).then_some(mean))
}

/// `sum_over_time(range-vector)`
pub(crate) fn sum(_: &RangeCtx, p: &[Sample], _: &[f64]) -> Result<Option<f64>> {
    Ok((!p.is_empty()).then(|| kahan_sum(p)))
}

/// `count_over_time(range-vector)`
pub(crate) fn count(_: &RangeCtx, p: &[Sample], _: &[f64]) -> Result<Option<f64>> {
    Ok((!p.is_empty()).then_some(p.len() as f64))
}

/// `max_over_time(range-vector)`: NaN only if all values are NaN.
pub(crate) fn max(_: &RangeCtx, p: &[Sample], _: &[f64]) -> Result<Option<f64>> {
    let Some(first) = p.first() else {
        return Ok(None);
    };
    let mut m = first.v;
    for s in &p[1..] {
        if s.v > m || m.is_nan() {
            m = s.v;
        }
    }
    Ok(Some(m))
}

/// `min_over_time(range-vector)`: NaN only if all values are NaN.
pub(crate) fn min(_: &RangeCtx, p: &[Sample], _: &[f64]) -> Result<Option<f64>> {
    let Some(first) = p.first() else {
        return Ok(None);
    };
    let mut m = first.v;
    for s in &p[1..] {
        if s.v < m || m.is_nan() {
            m = s.v;
        }
    }
    Ok(Some(m))
}

/// `last_over_time(range-vector)` (keeps the metric name).
pub(crate) fn last(_: &RangeCtx, p: &[Sample], _: &[f64]) -> Result<Option<f64>> {
    Ok(p.last().map(|s| s.v))
}

/// `present_over_time(range-vector)`: 1 for any sample.
pub(crate) fn present(_: &RangeCtx, p: &[Sample], _: &[f64]) -> Result<Option<f64>> {
    Ok((!p.is_empty()).then_some(1.0))
}

fn variance(p: &[Sample]) -> f64 {
    let (mut count, mut mean, mut aux) = (0.0, 0.0, 0.0);
    for s in p {
        count += 1.0;
        let delta = s.v - mean;
        mean += delta / count;
        aux += delta * (s.v - mean);
    }
    aux / count
}

/// `stddev_over_time(range-vector)`: population standard deviation.
pub(crate) fn stddev(_: &RangeCtx, p: &[Sample], _: &[f64]) -> Result<Option<f64>> {
    Ok((!p.is_empty()).then(|| variance(p).sqrt()))
}

/// `stdvar_over_time(range-vector)`: population variance.
pub(crate) fn stdvar(_: &RangeCtx, p: &[Sample], _: &[f64]) -> Result<Option<f64>> {
    Ok((!p.is_empty()).then(|| variance(p)))
}

/// `quantile_over_time(q scalar, range-vector)`
pub(crate) fn quantile(_: &RangeCtx, p: &[Sample], s: &[f64]) -> Result<Option<f64>> {
    if p.is_empty() {
        return Ok(None);
    }
    let mut vals: Vec<f64> = p.iter().map(|s| s.v).collect();
    Ok(Some(quantile_of(
        s.first().copied().unwrap_or(f64::NAN),
        &mut vals,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(f: super::super::RangeFn, vals: &[f64], params: &[f64], want: Option<f64>) {
        let p: Vec<Sample> = vals
            .iter()
            .enumerate()
            .map(|(i, &v)| Sample { t: i as i64, v })
            .collect();
        let c = RangeCtx {
            ts: 0,
            start: 0,
            end: 0,
            range: 0,
        };
        let got = f(&c, &p, params).unwrap();
        match (got, want) {
            (Some(g), Some(w)) if w.is_nan() => assert!(g.is_nan()),
            (Some(g), Some(w)) if w.is_infinite() => assert_eq!(g, w),
            (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "got {g} want {w}"),
            (g, w) => assert_eq!(g, w),
        }
    }

    #[test]
    fn table() {
        check(avg, &[1.0, 2.0, 3.0], &[], Some(2.0));
        check(avg, &[f64::INFINITY, 1.0], &[], Some(f64::INFINITY));
        check(avg, &[], &[], None);
        check(sum, &[1.0, 2.0, 3.5], &[], Some(6.5));
        check(count, &[1.0, f64::NAN], &[], Some(2.0));
        check(max, &[f64::NAN, 1.0, 3.0], &[], Some(3.0));
        check(min, &[2.0, f64::NAN, 1.0], &[], Some(1.0));
        check(last, &[2.0, 5.0], &[], Some(5.0));
        check(present, &[2.0], &[], Some(1.0));
        check(stdvar, &[2.0, 4.0], &[], Some(1.0));
        check(
            stddev,
            &[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0],
            &[],
            Some(2.0),
        );
        check(quantile, &[1.0, 2.0, 3.0, 4.0], &[0.5], Some(2.5));
        check(quantile, &[1.0, 2.0], &[2.0], Some(f64::INFINITY));
    }
}
