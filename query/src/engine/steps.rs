//! Range-major precomputation for range queries.
//!
//! Evaluating a range query step by step visits every selected series once per step, and each
//! visit touches a new stretch of that series' samples: with thousands of series per step the
//! CPU caches cannot follow that many streams, so nearly every visit is a cache miss. For the two
//! leaf shapes dashboards are made of, an instant-vector selector and a range function over a
//! matrix selector (`rate(x[5m])`, `avg_over_time(x[5m])`, ...), this module instead walks each
//! series once over all steps (sequential reads, one cursor), and stores the result of every
//! step in a step-major table. The step-by-step evaluation then reads its step's row. The
//! result of a node at a time is a pure function of that time, so a table answers for its node
//! at any time on the query's step grid, also inside subqueries; any other time falls back to
//! the ordinary evaluation. Large tables are computed on two threads.

use pharos_model::{Sample, is_stale_nan};

use super::{Cursor, Loaded, Result, advance, window};
use crate::ast::{Call, Expr, ValueType, VectorSelector};
use crate::functions::{Impl, RangeCtx, RangeFn};

/// The step grid of a range query.
#[derive(Debug, Clone, Copy)]
pub(super) struct Grid {
    pub start: i64,
    pub step: i64,
    pub steps: usize,
}

impl Grid {
    /// The index of `ts` on the grid, if it is on it.
    pub fn index(&self, ts: i64) -> Option<usize> {
        if ts < self.start {
            return None;
        }
        let d = ts.checked_sub(self.start)?;
        if d % self.step != 0 {
            return None;
        }
        usize::try_from(d / self.step)
            .ok()
            .filter(|k| *k < self.steps)
    }

    pub fn time(&self, k: usize) -> i64 {
        self.start
            .saturating_add(self.step.saturating_mul(k as i64))
    }
}

/// The results of one node at every step: `cells[k * series + s]` is series `s` at step `k`
/// (`None`: no output). Selector cells hold the sample found (its own timestamp); function
/// cells the evaluation time and value.
pub(super) struct Table {
    pub series: usize,
    pub cells: Vec<Option<Sample>>,
    /// Samples inside the windows at each step (range functions only), for `max_samples`.
    pub window_samples: Vec<usize>,
}

impl Table {
    /// The row of step `k`.
    pub fn row(&self, k: usize) -> &[Option<Sample>] {
        let lo = k.saturating_mul(self.series);
        self.cells
            .get(lo..lo.saturating_add(self.series))
            .unwrap_or(&[])
    }
}

/// Series-major cells of some series and their per-step sample counts.
type Columns = (Vec<Option<Sample>>, Vec<usize>);

/// Fewest cells (series x steps) worth a second thread.
const PARALLEL_CELLS: usize = 200_000;

/// Runs `per_series` over every series (on two threads for large inputs) and transposes the
/// series-major results into a step-major [`Table`]. `per_series` fills one column of
/// `grid.steps` cells and the per-step sample counts.
fn build<F>(series: &[Loaded], grid: Grid, per_series: F) -> Result<Table>
where
    F: Fn(&Loaded, &mut [Option<Sample>], &mut [usize]) -> Result<()> + Sync,
{
    let n = series.len();
    let steps = grid.steps;
    let run = |chunk: &[Loaded]| -> Result<Columns> {
        let mut cols = vec![None; chunk.len() * steps];
        let mut counts = vec![0usize; steps];
        for (s, col) in chunk.iter().zip(cols.chunks_mut(steps.max(1))) {
            per_series(s, col, &mut counts)?;
        }
        Ok((cols, counts))
    };
    let parts: Vec<(usize, Result<Columns>)> =
        if n >= 2 && n.saturating_mul(steps) >= PARALLEL_CELLS {
            let mid = n / 2;
            let (a, b) = series.split_at(mid);
            std::thread::scope(|scope| {
                let h = scope.spawn(|| run(b));
                let ra = run(a);
                let rb = h
                    .join()
                    .unwrap_or_else(|_| Err(super::EvalError::Execution("worker panicked".into())));
                vec![(0, ra), (mid, rb)]
            })
        } else {
            vec![(0, run(series))]
        };
    let mut cells = vec![None; n * steps];
    let mut window_samples = vec![0usize; steps];
    for (first, part) in parts {
        let (cols, counts) = part?;
        for (k, c) in counts.iter().enumerate() {
            if let Some(w) = window_samples.get_mut(k) {
                *w = w.saturating_add(*c);
            }
        }
        for (i, col) in cols.chunks(steps.max(1)).enumerate() {
            let s = first + i;
            for (k, cell) in col.iter().enumerate() {
                if let Some(dst) = cells.get_mut(k * n + s) {
                    *dst = *cell;
                }
            }
        }
    }
    Ok(Table {
        series: n,
        cells,
        window_samples,
    })
}

/// The table of an instant-vector selector whose reading time at step time `t` is `read(t)`.
pub(super) fn selector_table(
    series: &[Loaded],
    grid: Grid,
    lookback: i64,
    read: impl Fn(i64) -> i64 + Sync,
) -> Result<Table> {
    build(series, grid, |s, col, _| {
        selector_column(&s.samples, grid, 0, lookback, &read, col);
        Ok(())
    })
}

/// Fills `col[j]` with the sample an instant-vector selector reading at `read(t)` finds in
/// a series' `samples` at step `k0 + j` (`None`: nothing within `lookback`, or a staleness
/// marker).
pub(super) fn selector_column(
    samples: &[Sample],
    grid: Grid,
    k0: usize,
    lookback: i64,
    read: &impl Fn(i64) -> i64,
    col: &mut [Option<Sample>],
) {
    let mut idx = 0usize;
    let mut last = i64::MIN;
    for (j, cell) in col.iter_mut().enumerate() {
        let rt = read(grid.time(k0 + j));
        idx = if rt >= last {
            advance(samples, idx, rt, true)
        } else {
            samples.partition_point(|x| x.t <= rt)
        };
        last = rt;
        let Some(x) = idx.checked_sub(1).and_then(|i| samples.get(i)) else {
            continue;
        };
        if x.t < rt.saturating_sub(lookback) || is_stale_nan(x.v) {
            continue;
        }
        *cell = Some(*x);
    }
}

/// The scalar arguments of `c` if they are all number literals (so they are the same at every
/// step), in call order without the range-vector argument.
pub(super) fn literal_scalars(c: &Call) -> Option<Vec<f64>> {
    let mut out = Vec::new();
    for a in &c.args {
        if a.value_type() == ValueType::Matrix {
            continue;
        }
        match a.unparen() {
            Expr::NumberLiteral(v) => out.push(*v),
            Expr::Unary(e) => match e.unparen() {
                Expr::NumberLiteral(v) => out.push(-*v),
                _ => return None,
            },
            _ => return None,
        }
    }
    Some(out)
}

/// The table of range function `c` over the series of its matrix selector `vs` with range
/// `range`, whose window end at step time `t` is `read(t)`. Fails where the function fails.
pub(super) fn call_table(
    c: &Call,
    series: &[Loaded],
    grid: Grid,
    range: i64,
    scalars: &[f64],
    read: impl Fn(i64) -> i64 + Sync,
) -> Result<Option<Table>> {
    let Impl::Range(f) = c.func.imp else {
        return Ok(None);
    };
    build(series, grid, |s, col, counts| {
        call_column(
            f,
            &s.samples,
            s.has_stale,
            grid,
            0,
            range,
            scalars,
            &read,
            col,
            counts,
        )
    })
    .map(Some)
}

/// Fills `col[j]` with range function `f` over the window of a series' `samples` at step
/// `k0 + j` (window end `read(t)`, length `range`; cells hold the step time and the value) and
/// adds the samples in each window to `counts[j]`. `has_stale`: whether `samples` holds
/// staleness markers (they are skipped). Fails where the function fails.
#[allow(clippy::too_many_arguments)]
pub(super) fn call_column(
    f: RangeFn,
    samples: &[Sample],
    has_stale: bool,
    grid: Grid,
    k0: usize,
    range: i64,
    scalars: &[f64],
    read: &impl Fn(i64) -> i64,
    col: &mut [Option<Sample>],
    counts: &mut [usize],
) -> Result<()> {
    let mut cur: Cursor = (i64::MIN, i64::MIN, 0, 0);
    let mut scratch: Vec<Sample> = Vec::new();
    for (j, cell) in col.iter_mut().enumerate() {
        let ts = grid.time(k0 + j);
        let end = read(ts);
        let start = end.saturating_sub(range);
        let (lo, hi) = window(samples, start, end, &mut cur);
        let mut points = samples.get(lo..hi).unwrap_or(&[]);
        if has_stale && points.iter().any(|x| is_stale_nan(x.v)) {
            scratch.clear();
            scratch.extend(points.iter().filter(|x| !is_stale_nan(x.v)));
            points = &scratch;
        }
        if points.is_empty() {
            continue;
        }
        if let Some(n) = counts.get_mut(j) {
            *n = n.saturating_add(points.len());
        }
        let ctx = RangeCtx {
            ts,
            start,
            end,
            range,
        };
        if let Some(v) = f(&ctx, points, scalars)? {
            *cell = Some(Sample { t: ts, v });
        }
    }
    Ok(())
}

/// The nodes worth a table in `e`: instant selectors and range functions over a matrix
/// selector with literal scalar arguments, outside subqueries.
pub(super) fn candidates<'e>(
    e: &'e Expr,
    sels: &mut Vec<&'e VectorSelector>,
    calls: &mut Vec<&'e Call>,
) {
    match e {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::MatrixSelector(_) => {}
        Expr::SubqueryExpr(_) => {}
        Expr::VectorSelector(vs) => sels.push(vs),
        Expr::Call(c) => {
            let over_selector = c
                .args
                .iter()
                .any(|a| matches!(a.unparen(), Expr::MatrixSelector(_)));
            if matches!(c.func.imp, Impl::Range(_)) && over_selector {
                calls.push(c);
            } else {
                for a in &c.args {
                    candidates(a, sels, calls);
                }
            }
        }
        Expr::AggregateExpr(a) => {
            candidates(&a.expr, sels, calls);
            if let Some(p) = &a.param {
                candidates(p, sels, calls);
            }
        }
        Expr::BinaryExpr(b) => {
            candidates(&b.lhs, sels, calls);
            candidates(&b.rhs, sels, calls);
        }
        Expr::Paren(e) | Expr::Unary(e) => candidates(e, sels, calls),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_index() {
        #[track_caller]
        fn check(ts: i64, want: Option<usize>) {
            let g = Grid {
                start: 1000,
                step: 100,
                steps: 5,
            };
            assert_eq!(g.index(ts), want, "{ts}");
        }
        check(1000, Some(0));
        check(1400, Some(4));
        check(1500, None);
        check(1050, None);
        check(999, None);
        check(i64::MIN, None);
        check(i64::MAX, None);
    }

    /// Galloping `advance` agrees with a plain binary search from every start position.
    #[test]
    fn advance_matches_partition_point() {
        let samples: Vec<Sample> = (0..300)
            .map(|i| Sample {
                t: i * 10 + (i % 3),
                v: 0.0,
            })
            .collect();
        for from in [0usize, 1, 7, 150, 299, 300] {
            for bound in [-5i64, 0, 9, 10, 11, 500, 1234, 2999, 3000, 5000] {
                for past_equal in [false, true] {
                    let want = samples
                        .partition_point(|x| {
                            if past_equal {
                                x.t <= bound
                            } else {
                                x.t < bound
                            }
                        })
                        .max(from);
                    assert_eq!(
                        advance(&samples, from, bound, past_equal),
                        want,
                        "from {from} bound {bound} {past_equal}"
                    );
                }
            }
        }
    }
}
