//! Counter and gauge functions over a range: `rate`, `increase`, `delta` (with Prometheus'
//! extrapolation), `irate`, `idelta`, `deriv`, `predict_linear`, `holt_winters`, `changes`,
//! `resets`. Pure over one series' points.
//! See <https://prometheus.io/docs/prometheus/2.42/querying/functions/#rate>.

use pharos_model::Sample;

use super::RangeCtx;
use crate::Result;
use crate::engine::exec_err;

/// The change of a counter over `p` (at least one sample): last minus first, plus the value
/// before every reset, as Prometheus adds them. Counter resets are rare: one is looked for first
/// with independent comparisons, and only then Prometheus' loop runs (its running sum is a chain
/// of dependent additions the compiler makes branch-free, most of the cost of `rate` over a 5m
/// window otherwise). Without a reset and with a first value that is not negative the loop adds
/// nothing, so skipping it leaves the result bit for bit the same.
fn counter_change(p: &[Sample]) -> f64 {
    let (Some(first), Some(last)) = (p.first(), p.last()) else {
        return 0.0;
    };
    let mut result = last.v - first.v;
    if first.v < 0.0 || p.windows(2).any(|w| w[1].v < w[0].v) {
        let mut prev = 0.0;
        for s in p {
            if s.v < prev {
                result += prev;
            }
            prev = s.v;
        }
    }
    result
}

/// Prometheus' `extrapolatedRate`: the change over the window, extrapolated to the window edges
/// when the first/last samples are close enough to them (within 1.1 average intervals), and not
/// below zero for counters.
fn extrapolated(ctx: &RangeCtx, p: &[Sample], counter: bool, rate: bool) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (first, last) = (p[0], p[p.len() - 1]);
    let result = if counter {
        counter_change(p)
    } else {
        last.v - first.v
    };
    let mut to_start = (first.t - ctx.start) as f64 / 1000.0;
    let to_end = (ctx.end - last.t) as f64 / 1000.0;
    let sampled = (last.t - first.t) as f64 / 1000.0;
    let avg = sampled / (p.len() - 1) as f64;
    if counter && result > 0.0 && first.v >= 0.0 {
        let to_zero = sampled * (first.v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = avg * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        avg / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        avg / 2.0
    };
    // The same operation order as Prometheus (factor first, then one multiplication), so results
    // agree to the last bit.
    let mut factor = interval / sampled;
    if rate {
        factor /= ctx.range as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `rate(v range-vector)`
pub(crate) fn rate(ctx: &RangeCtx, p: &[Sample], _: &[f64]) -> Result<Option<f64>> {
    Ok(extrapolated(ctx, p, true, true))
}

/// `increase(v range-vector)`
pub(crate) fn increase(ctx: &RangeCtx, p: &[Sample], _: &[f64]) -> Result<Option<f64>> {
    Ok(extrapolated(ctx, p, true, false))
}

/// `delta(v range-vector)`
pub(crate) fn delta(ctx: &RangeCtx, p: &[Sample], _: &[f64]) -> Result<Option<f64>> {
    Ok(extrapolated(ctx, p, false, false))
}

fn instant(p: &[Sample], rate: bool) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (prev, last) = (p[p.len() - 2], p[p.len() - 1]);
    let mut v = if rate && last.v < prev.v {
        last.v
    } else {
        last.v - prev.v
    };
    let dt = last.t - prev.t;
    if dt == 0 {
        return None;
    }
    if rate {
        v /= dt as f64 / 1000.0;
    }
    Some(v)
}

/// `irate(v range-vector)`: per-second rate from the last two samples.
pub(crate) fn irate(_: &RangeCtx, p: &[Sample], _: &[f64]) -> Result<Option<f64>> {
    Ok(instant(p, true))
}

/// `idelta(v range-vector)`: difference of the last two samples.
pub(crate) fn idelta(_: &RangeCtx, p: &[Sample], _: &[f64]) -> Result<Option<f64>> {
    Ok(instant(p, false))
}

/// Least-squares fit of value over time (seconds relative to `intercept_t`).
pub(crate) fn linear_regression(p: &[Sample], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut sy, mut sxy, mut sx2) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let init = p.first().map(|s| s.v).unwrap_or(0.0);
    let mut const_y = true;
    for (i, s) in p.iter().enumerate() {
        if const_y && i > 0 && s.v != init {
            const_y = false;
        }
        n += 1.0;
        let x = (s.t - intercept_t) as f64 / 1000.0;
        sx += x;
        sy += s.v;
        sxy += x * s.v;
        sx2 += x * x;
    }
    if const_y {
        if init.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init);
    }
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

/// `deriv(v range-vector)`: per-second slope by simple linear regression.
pub(crate) fn deriv(_: &RangeCtx, p: &[Sample], _: &[f64]) -> Result<Option<f64>> {
    if p.len() < 2 {
        return Ok(None);
    }
    Ok(Some(linear_regression(p, p[0].t).0))
}

/// `predict_linear(v range-vector, t scalar)`: the regression's value `t` seconds after now.
pub(crate) fn predict_linear(ctx: &RangeCtx, p: &[Sample], s: &[f64]) -> Result<Option<f64>> {
    if p.len() < 2 {
        return Ok(None);
    }
    let (slope, intercept) = linear_regression(p, ctx.ts);
    Ok(Some(slope * s.first().copied().unwrap_or(0.0) + intercept))
}

/// `holt_winters(v range-vector, sf scalar, tf scalar)`: double exponential smoothing.
pub(crate) fn holt_winters(_: &RangeCtx, p: &[Sample], s: &[f64]) -> Result<Option<f64>> {
    let sf = s.first().copied().unwrap_or(f64::NAN);
    let tf = s.get(1).copied().unwrap_or(f64::NAN);
    if !(sf > 0.0 && sf < 1.0) {
        return exec_err(format!(
            "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
        ));
    }
    if !(tf > 0.0 && tf < 1.0) {
        return exec_err(format!(
            "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
        ));
    }
    if p.len() < 2 {
        return Ok(None);
    }
    let (mut s0, mut s1) = (0.0, p[0].v);
    let mut b = p[1].v - p[0].v;
    for (i, x) in p.iter().enumerate().skip(1) {
        let xs = sf * x.v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = xs + y;
    }
    Ok(Some(s1))
}

/// `changes(v range-vector)`: how often the value changed (NaN to NaN is no change).
pub(crate) fn changes(_: &RangeCtx, p: &[Sample], _: &[f64]) -> Result<Option<f64>> {
    let n = p
        .windows(2)
        .filter(|w| !(w[0].v == w[1].v || (w[0].v.is_nan() && w[1].v.is_nan())))
        .count();
    Ok((!p.is_empty()).then_some(n as f64))
}

/// `resets(v range-vector)`: how often the value decreased.
pub(crate) fn resets(_: &RangeCtx, p: &[Sample], _: &[f64]) -> Result<Option<f64>> {
    let n = p.windows(2).filter(|w| w[1].v < w[0].v).count();
    Ok((!p.is_empty()).then_some(n as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(vals: &[(i64, f64)]) -> Vec<Sample> {
        vals.iter()
            .map(|&(t, v)| Sample { t: t * 1000, v })
            .collect()
    }

    fn ctx(end_s: i64, range_s: i64) -> RangeCtx {
        RangeCtx {
            ts: end_s * 1000,
            start: (end_s - range_s) * 1000,
            end: end_s * 1000,
            range: range_s * 1000,
        }
    }

    #[track_caller]
    fn check(got: Result<Option<f64>>, want: Option<f64>) {
        let got = got.unwrap();
        match (got, want) {
            (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "got {g}, want {w}"),
            (g, w) => assert_eq!(g, w),
        }
    }

    #[test]
    fn rates() {
        // Counter 0,10,...,100 every 30s over a 5m window ending at the last sample.
        let p: Vec<Sample> = (0..=10)
            .map(|i| Sample {
                t: i * 30_000,
                v: i as f64 * 10.0,
            })
            .collect();
        let c = ctx(300, 300);
        check(increase(&c, &p, &[]), Some(100.0));
        check(rate(&c, &p, &[]), Some(100.0 / 300.0));
        check(irate(&c, &p, &[]), Some(10.0 / 30.0));
        check(idelta(&c, &p, &[]), Some(10.0));
        check(deriv(&c, &p, &[]), Some(1.0 / 3.0));
        check(rate(&c, &p[..1], &[]), None);
        // A reset: 5,10,2 counts as 5 + (10) + 2 - ... = 12 over the samples.
        let p = pts(&[(0, 5.0), (10, 10.0), (20, 2.0)]);
        check(delta(&ctx(20, 20), &p, &[]), Some(-3.0));
        check(increase(&ctx(20, 20), &p, &[]), Some(7.0));
        check(resets(&ctx(20, 20), &p, &[]), Some(1.0));
        check(changes(&ctx(20, 20), &p, &[]), Some(2.0));
        check(
            predict_linear(
                &ctx(20, 20),
                &pts(&[(0, 0.0), (10, 10.0), (20, 20.0)]),
                &[10.0],
            ),
            Some(30.0),
        );
        assert!(holt_winters(&ctx(20, 20), &p, &[1.5, 0.5]).is_err());
    }

    /// The reset scan that skips Prometheus' loop when there is no reset gives the same bits as
    /// always running the loop, with resets anywhere, negative and NaN values, and `-0.0`.
    #[test]
    fn reset_fast_path_is_bit_exact() {
        #[track_caller]
        fn check(vals: &[f64]) {
            let p: Vec<Sample> = vals
                .iter()
                .enumerate()
                .map(|(i, v)| Sample {
                    t: i as i64 * 15_000,
                    v: *v,
                })
                .collect();
            let mut want = p[p.len() - 1].v - p[0].v;
            let mut prev = 0.0;
            for s in &p {
                if s.v < prev {
                    want += prev;
                }
                prev = s.v;
            }
            assert_eq!(counter_change(&p).to_bits(), want.to_bits(), "{vals:?}");
        }
        check(&[1.0, 2.0, 3.0]);
        check(&[5.0, 10.0, 2.0, 4.0]);
        check(&[-1.0, 2.0, 3.0]);
        check(&[0.0, -0.0, 0.0]);
        check(&[-0.0, 0.0]);
        check(&[1.0, f64::NAN, 3.0, 2.0]);
        check(&[3.0, 2.0, 1.0, 0.0]);
        check(&[0.1, 0.2, 0.30000000000000004, 0.3]);
    }
}
