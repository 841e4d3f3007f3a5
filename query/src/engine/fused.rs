//! Aggregations computed over every step of a range query at once.
//!
//! Step by step, `sum by (mode) (rate(x[5m]))` builds at every step a vector with one element
//! per series and finds each element's group. When an aggregation (any operator but `topk`,
//! `bottomk`, `quantile` and `count_values`, which need their members) reads straight from an
//! instant-vector selector or from a range function over a matrix selector, this module instead
//! finds each series' group once, walks every series once over all steps (the leaf is computed
//! as in [`super::steps`]) and folds its values into per-group, per-step accumulators. Every
//! step sees the series in their selection order, so each group's value comes out of the same
//! operations in the same order as step by step (bit for bit), and the groups come out in the
//! order the step-by-step aggregation emits them (first appearance). On two threads the steps
//! are split, never the series, which would change the order of additions.

use std::sync::Arc;

use pharos_model::storage::Series;
use pharos_model::{Labels, Sample, is_stale_nan};

use super::aggregate::{Acc, group_labels};
use super::hash::LabelMap;
use super::steps::{Grid, call_column, selector_column};
use super::{Element, EvalError, Loaded, Metric, Result};
use crate::ast::{AggOp, AggregateExpr, Expr};
use crate::functions::RangeFn;

/// The leaf an aggregation reads.
#[derive(Clone, Copy)]
pub(super) enum Leaf<'a> {
    /// An instant-vector selector looking back `lookback` ms.
    Selector {
        /// The lookback delta (ms).
        lookback: i64,
    },
    /// A range function over a matrix selector of `range` ms with literal scalar arguments.
    Call {
        /// The function.
        f: RangeFn,
        /// The selector's range (ms).
        range: i64,
        /// The scalar arguments in call order.
        scalars: &'a [f64],
    },
}

/// Whether `op` can be folded without keeping the group's members.
pub(super) fn foldable(op: AggOp) -> bool {
    !matches!(
        op,
        AggOp::Topk | AggOp::Bottomk | AggOp::Quantile | AggOp::CountValues
    )
}

/// The result of one aggregation at every step of the grid.
pub(super) struct AggTable {
    /// Label set of each group (shared across steps).
    groups: Vec<Metric>,
    /// `cells[offsets[k]..offsets[k + 1]]`: the groups (ids) and values of step `k`, in output
    /// order.
    offsets: Vec<usize>,
    cells: Vec<(u32, f64)>,
    /// Per step, what the leaf held: selected samples (selector) or samples inside the windows
    /// (range function), for `max_samples`.
    pub input: Vec<usize>,
    /// Whether the leaf is a selector (its samples add up over the steps against
    /// `max_samples`) rather than a range function (checked per step).
    pub selector: bool,
}

impl AggTable {
    /// The number of groups.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// The aggregation's result at step `k` (evaluation time `ts`).
    pub fn row(&self, k: usize, ts: i64) -> Vec<Element> {
        let (Some(lo), Some(hi)) = (self.offsets.get(k), self.offsets.get(k + 1)) else {
            return Vec::new();
        };
        self.cells
            .get(*lo..*hi)
            .unwrap_or(&[])
            .iter()
            .filter_map(|(g, v)| {
                self.groups.get(*g as usize).map(|m| Element {
                    metric: m.clone(),
                    t: ts,
                    v: *v,
                })
            })
            .collect()
    }
}

/// Fewest cells (series x steps) worth a second thread.
const PARALLEL_CELLS: usize = 200_000;

/// Where the leaf's series come from.
pub(super) enum Source<'a> {
    /// Series loaded already.
    Loaded(&'a [Loaded]),
    /// Series selected but not read yet: each is decoded (`[min_t, max_t]`) into one reused
    /// buffer, turned into its column and dropped, so a day of samples of thousands of series
    /// is never held at once (allocating, faulting in and reading back that memory cost as
    /// much as decoding it).
    Lazy {
        /// The selected series.
        set: Vec<Series>,
        /// First time to read (ms).
        min_t: i64,
        /// Last time to read (ms).
        max_t: i64,
    },
}

impl Source<'_> {
    fn len(&self) -> usize {
        match self {
            Source::Loaded(s) => s.len(),
            Source::Lazy { set, .. } => set.len(),
        }
    }
}

/// The group of every series of a leaf: `of[i]` indexes `labels`, ids in order of first
/// appearance.
pub(super) struct Groups {
    labels: Vec<Metric>,
    of: Vec<u32>,
}

impl Groups {
    /// The number of groups.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
}

/// The groups of aggregation `a` over series with these labels (as the leaf outputs them,
/// with or without `__name__`).
pub(super) fn groups<'l>(a: &AggregateExpr, labels: impl Iterator<Item = &'l Labels>) -> Groups {
    let mut ids: LabelMap<u32> = LabelMap::default();
    let mut out = Groups {
        labels: Vec::new(),
        of: Vec::new(),
    };
    for l in labels {
        let gl = group_labels(a, l);
        let id = match ids.get(&gl) {
            Some(id) => *id,
            None => {
                let id = u32::try_from(out.labels.len()).unwrap_or(u32::MAX);
                out.labels.push(Arc::new(gl.clone()));
                ids.insert(gl, id);
                id
            }
        };
        out.of.push(id);
    }
    out
}

/// The leaf's value at every step for some series, series-major (`values[i * steps + k]`,
/// meaningful where `present`), and the leaf's input samples per step.
struct Columns {
    values: Vec<f64>,
    present: Vec<bool>,
    counts: Vec<usize>,
}

/// Aggregation `a` with `groups` of `leaf` over the series of `src` at every step of `grid`,
/// where `read(t)` is the time the leaf reads at step time `t` (`@` and `offset` applied).
/// Fails where the leaf's function fails (a lazy source is used up then).
pub(super) fn agg_table(
    a: &AggregateExpr,
    groups: Groups,
    src: Source<'_>,
    grid: Grid,
    leaf: Leaf<'_>,
    read: impl Fn(i64) -> i64 + Sync,
) -> Result<AggTable> {
    let steps = grid.steps;
    let n = src.len();
    // One series' column into `values`/`present` (appended) and `counts`.
    let one = |samples: &[Sample],
               has_stale: bool,
               col: &mut Vec<Option<Sample>>,
               out: &mut Columns|
     -> Result<()> {
        col.clear();
        col.resize(steps, None);
        match leaf {
            Leaf::Selector { lookback } => {
                selector_column(samples, grid, 0, lookback, &read, col);
                for (n, c) in out.counts.iter_mut().zip(col.iter()) {
                    *n += usize::from(c.is_some());
                }
            }
            Leaf::Call {
                f, range, scalars, ..
            } => call_column(
                f,
                samples,
                has_stale,
                grid,
                0,
                range,
                scalars,
                &read,
                col,
                &mut out.counts,
            )?,
        }
        out.values
            .extend(col.iter().map(|c| c.map_or(0.0, |x| x.v)));
        out.present.extend(col.iter().map(Option::is_some));
        Ok(())
    };
    let empty = |len: usize| Columns {
        values: Vec::with_capacity(len * steps),
        present: Vec::with_capacity(len * steps),
        counts: vec![0; steps],
    };
    let run_loaded = |part: &[Loaded]| -> Result<Columns> {
        let mut out = empty(part.len());
        let mut col = Vec::new();
        for s in part {
            one(&s.samples, s.has_stale, &mut col, &mut out)?;
        }
        Ok(out)
    };
    let run_lazy = |part: Vec<Series>, min_t: i64, max_t: i64| -> Result<Columns> {
        let mut out = empty(part.len());
        let (mut col, mut buf) = (Vec::new(), Vec::new());
        for mut sr in part {
            buf.clear();
            sr.samples.collect_into(min_t, max_t, &mut buf);
            let has_stale = buf.iter().any(|x| is_stale_nan(x.v));
            one(&buf, has_stale, &mut col, &mut out)?;
        }
        Ok(out)
    };
    // Columns of the first and second half of the series, on two threads when worth it.
    let parallel = n >= 2 && n.saturating_mul(steps) >= PARALLEL_CELLS;
    let parts: Vec<Result<Columns>> = match src {
        Source::Loaded(series) if parallel => {
            let (a, b) = series.split_at(n / 2);
            std::thread::scope(|scope| {
                let h = scope.spawn(|| run_loaded(b));
                let first = run_loaded(a);
                vec![first, join(h)]
            })
        }
        Source::Loaded(series) => vec![run_loaded(series)],
        Source::Lazy {
            mut set,
            min_t,
            max_t,
        } if parallel => {
            let second = set.split_off(n / 2);
            std::thread::scope(|scope| {
                let h = scope.spawn(|| run_lazy(second, min_t, max_t));
                let first = run_lazy(set, min_t, max_t);
                vec![first, join(h)]
            })
        }
        Source::Lazy { set, min_t, max_t } => vec![run_lazy(set, min_t, max_t)],
    };
    // Fold the columns in series order into group-major accumulators.
    let ng = groups.len();
    let op = a.op;
    let mut acc = vec![Acc::default(); ng * steps];
    let mut first = vec![u32::MAX; ng * steps];
    let mut input = vec![0usize; steps];
    let mut si = 0usize;
    for part in parts {
        let part = part?;
        for (n, c) in input.iter_mut().zip(&part.counts) {
            *n += c;
        }
        for (values, present) in part
            .values
            .chunks(steps.max(1))
            .zip(part.present.chunks(steps.max(1)))
        {
            let g = groups.of.get(si).copied().unwrap_or(0) as usize;
            let base = g * steps;
            if let (Some(acc), Some(first)) = (
                acc.get_mut(base..base + steps),
                first.get_mut(base..base + steps),
            ) {
                for (((v, p), a), f) in values.iter().zip(present).zip(acc).zip(first) {
                    if *p {
                        if *f == u32::MAX {
                            *f = si as u32;
                            *a = Acc::new(*v);
                        }
                        a.add(op, *v);
                    }
                }
            }
            si += 1;
        }
    }
    let mut offsets = Vec::with_capacity(steps + 1);
    let mut cells = Vec::new();
    for k in 0..steps {
        let lo = cells.len();
        offsets.push(lo);
        let mut in_order = true;
        let mut last = 0u32;
        for g in 0..ng {
            let i = g * steps + k;
            let (Some(f), Some(a)) = (first.get(i), acc.get(i)) else {
                continue;
            };
            if *f == u32::MAX {
                continue;
            }
            in_order &= *f >= last;
            last = *f;
            cells.push((g as u32, a.result(op)));
        }
        // Group ids follow the first series of each group, so a step where every group's first
        // series has a value is in order already; otherwise order by the first series present
        // at this step, as the step-by-step aggregation does.
        if let (false, Some(row)) = (in_order, cells.get_mut(lo..)) {
            row.sort_by_key(|(g, _)| {
                first
                    .get(*g as usize * steps + k)
                    .copied()
                    .unwrap_or(u32::MAX)
            });
        }
    }
    offsets.push(cells.len());
    Ok(AggTable {
        groups: groups.labels,
        offsets,
        cells,
        input,
        selector: matches!(leaf, Leaf::Selector { .. }),
    })
}

/// The result of a worker thread (a panic becomes an error).
fn join(h: std::thread::ScopedJoinHandle<'_, Result<Columns>>) -> Result<Columns> {
    h.join()
        .unwrap_or_else(|_| Err(EvalError::Execution("worker panicked".into())))
}

/// The aggregations of `e` (outside subqueries) worth an [`AggTable`]: a foldable operator
/// without parameter over an instant-vector selector or a call (the caller checks the call).
pub(super) fn candidates<'e>(e: &'e Expr, out: &mut Vec<&'e AggregateExpr>) {
    match e {
        Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::MatrixSelector(_)
        | Expr::SubqueryExpr(_)
        | Expr::VectorSelector(_) => {}
        Expr::Call(c) => c.args.iter().for_each(|a| candidates(a, out)),
        Expr::AggregateExpr(a) => {
            if foldable(a.op)
                && a.param.is_none()
                && matches!(a.expr.unparen(), Expr::VectorSelector(_) | Expr::Call(_))
            {
                out.push(a);
            }
            candidates(&a.expr, out);
            if let Some(p) = &a.param {
                candidates(p, out);
            }
        }
        Expr::BinaryExpr(b) => {
            candidates(&b.lhs, out);
            candidates(&b.rhs, out);
        }
        Expr::Paren(e) | Expr::Unary(e) => candidates(e, out),
    }
}
