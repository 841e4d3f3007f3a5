//! The PromQL evaluation engine.
//!
//! A query first walks the AST to find, for every selector, the time range it can touch (lookback,
//! ranges, offsets, `@` and subqueries included), loads those samples once through one
//! [`Querier`](pharos_model::storage::Querier), and then evaluates the expression step by step:
//! an instant query is one step, a range query one step per `step`. For range queries, instant
//! selectors and range functions over a selector are first computed for every step at once,
//! series by series (see `steps`), and the steps read their rows. A subquery's inner expression
//! is evaluated once per query over every step-aligned time any outer step needs, and each outer
//! step reads its window from that. Semantics follow Prometheus 2.42 (closed `[t - range, t]` windows, 5m lookback,
//! staleness markers end a series, `__name__` dropped by functions and arithmetic).

mod aggregate;
/// Numeric helpers shared by aggregations and `*_over_time`.
pub(crate) mod aggregate_helpers {
    pub(crate) use super::aggregate::{mean_add, quantile};
}
mod binary;
mod fused;
pub(crate) mod hash;
mod steps;

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pharos_model::api::{MatrixSeries, Point, QueryData, StringPoint, VectorSample};
use pharos_model::storage::{Querier, Queryable, SelectHints};
use pharos_model::{Labels, Sample, is_stale_nan};

use crate::ast::*;
use crate::functions::{Env, Impl, RangeCtx, RangeFn};
use hash::{LabelRefSet, MetricMap};

/// Errors of query evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The query is valid but cannot be computed (e.g. many-to-many matching).
    #[error("{0}")]
    Execution(String),
    /// The query would hold more samples than `max_samples`.
    #[error("query processing would load too many samples into memory in {0}")]
    TooManySamples(&'static str),
    /// The query ran longer than the timeout.
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// The storage failed.
    #[error("storage error: {0}")]
    Storage(#[from] pharos_model::storage::Error),
}

/// Result alias of the engine.
pub type Result<T> = std::result::Result<T, EvalError>;

pub(crate) fn exec_err<T>(msg: impl Into<String>) -> Result<T> {
    Err(EvalError::Execution(msg.into()))
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (Prometheus: 5m).
    pub lookback_delta: Duration,
    /// Most samples a query may hold (Prometheus: 50,000,000).
    pub max_samples: usize,
    /// Longest a query may run (Prometheus: 2m).
    pub timeout: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            lookback_delta: Duration::from_secs(300),
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
        }
    }
}

/// A shared label set: elements and series point at the labels of the selected series instead
/// of copying them at every step.
pub type Metric = Arc<Labels>;

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    /// Labels.
    pub metric: Metric,
    /// Timestamp (ms): the sample's own time straight out of a selector (what `timestamp()`
    /// reports), the evaluation time otherwise; results carry the evaluation time.
    pub t: i64,
    /// Value.
    pub v: f64,
}

/// One series of a range vector.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// Labels.
    pub metric: Metric,
    /// Points in time order.
    pub points: Vec<Sample>,
}

/// The result of an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar at a time.
    Scalar(Sample),
    /// A string at a time.
    String(StringPoint),
    /// An instant vector.
    Vector(Vec<Element>),
    /// A range vector (also the result of range queries).
    Matrix(Vec<RangeSeries>),
}

impl Value {
    /// The API JSON shape of this value.
    pub fn into_query_data(self) -> QueryData {
        match self {
            Value::Scalar(s) => QueryData::Scalar(Point { t: s.t, v: s.v }),
            Value::String(s) => QueryData::String(s),
            Value::Vector(v) => QueryData::Vector(
                v.into_iter()
                    .map(|e| VectorSample {
                        metric: Arc::unwrap_or_clone(e.metric),
                        value: Point { t: e.t, v: e.v },
                    })
                    .collect(),
            ),
            Value::Matrix(m) => QueryData::Matrix(
                m.into_iter()
                    .map(|s| MatrixSeries {
                        metric: Arc::unwrap_or_clone(s.metric),
                        values: s
                            .points
                            .into_iter()
                            .map(|p| Point { t: p.t, v: p.v })
                            .collect(),
                    })
                    .collect(),
            ),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String(_) => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// The PromQL engine: stateless apart from its options, shareable across threads.
#[derive(Debug, Clone)]
pub struct Engine {
    opts: EngineOptions,
    default_step: i64,
}

/// Default resolution of subqueries without a step (Prometheus' default evaluation interval).
const DEFAULT_SUBQUERY_STEP_MS: i64 = 60_000;

impl Engine {
    /// An engine with these options.
    pub fn new(opts: EngineOptions) -> Self {
        Self {
            opts,
            default_step: DEFAULT_SUBQUERY_STEP_MS,
        }
    }

    /// Sets the step of subqueries written without one (`x[5m:]`), in ms; the global
    /// evaluation interval in Prometheus.
    pub fn with_default_subquery_step(mut self, step_ms: i64) -> Self {
        if step_ms > 0 {
            self.default_step = step_ms;
        }
        self
    }

    /// The options.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `expr` at `t_ms`.
    pub fn instant(&self, q: &dyn Queryable, expr: &Expr, t_ms: i64) -> Result<Value> {
        let ev = Evaluator::prepare(self, q, expr, t_ms, t_ms, false)?;
        ev.check_deadline()?;
        let v = ev.eval(expr, t_ms)?;
        Ok(match v {
            Value::Vector(mut v) => {
                for e in &mut v {
                    e.t = t_ms;
                }
                Value::Vector(v)
            }
            v => v,
        })
    }

    /// Evaluates `expr` at every `step_ms` from `start_ms` to `end_ms` (inclusive) into a matrix.
    pub fn range(
        &self,
        q: &dyn Queryable,
        expr: &Expr,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Value> {
        if step_ms <= 0 {
            return exec_err("zero or negative query resolution step widths are not accepted");
        }
        if end_ms < start_ms {
            return exec_err("end timestamp must not be before start time");
        }
        match expr.value_type() {
            ValueType::Scalar | ValueType::Vector => {}
            t => {
                return exec_err(format!(
                    "invalid expression type \"{t}\" for range query, must be Scalar or instant Vector"
                ));
            }
        }
        let steps = (end_ms - start_ms) / step_ms + 1;
        let mut ev = Evaluator::prepare(self, q, expr, start_ms, end_ms, steps >= 2)?;
        ev.build_tables(
            expr,
            steps::Grid {
                start: start_ms,
                step: step_ms,
                steps: usize::try_from(steps).unwrap_or(usize::MAX),
            },
        )?;
        // Output series found by the address of the step result's label set (stable across
        // steps for most expressions), then by the labels themselves. Only addresses of the
        // label sets held in `out` are recorded, so none can be reused by another label set.
        let mut out: Vec<RangeSeries> = Vec::new();
        let mut by_addr: HashMap<usize, usize, BuildHasherDefault<hash::Fnv>> = HashMap::default();
        let mut by_labels: MetricMap<usize> = MetricMap::default();
        let mut push = |metric: Metric, p: Sample| {
            let i = match by_addr.get(&(Arc::as_ptr(&metric) as usize)) {
                Some(i) => *i,
                None => match by_labels.get(&metric) {
                    Some(i) => *i,
                    None => {
                        by_addr.insert(Arc::as_ptr(&metric) as usize, out.len());
                        by_labels.insert(metric.clone(), out.len());
                        out.push(RangeSeries {
                            metric,
                            points: Vec::new(),
                        });
                        out.len() - 1
                    }
                },
            };
            if let Some(s) = out.get_mut(i) {
                s.points.push(p);
            }
        };
        let mut total = 0usize;
        let mut ts = start_ms;
        while ts <= end_ms {
            ev.check_deadline()?;
            match ev.eval(expr, ts)? {
                Value::Scalar(s) => {
                    push(Arc::new(Labels::empty()), Sample { t: ts, v: s.v });
                    total += 1;
                }
                Value::Vector(v) => {
                    total += v.len();
                    for e in v {
                        push(e.metric, Sample { t: ts, v: e.v });
                    }
                }
                other => {
                    return exec_err(format!(
                        "unexpected {} result in range query",
                        other.type_name()
                    ));
                }
            }
            if total > self.opts.max_samples {
                return Err(EvalError::TooManySamples("query execution"));
            }
            let Some(next) = ts.checked_add(step_ms) else {
                break;
            };
            ts = next;
        }
        out.sort_by(|a, b| a.metric.cmp(&b.metric));
        Ok(Value::Matrix(out))
    }
}

/// Samples of one selected series.
struct Loaded {
    labels: Metric,
    /// `labels` without `__name__`, computed once for functions and arithmetic.
    dropped: Metric,
    samples: Vec<Sample>,
    /// Whether `samples` holds a staleness marker (range functions must skip them).
    has_stale: bool,
}

/// The selected series of one selector node.
#[derive(Default)]
struct Selected {
    series: Vec<Loaded>,
    /// All series carry the same metric name, so they stay distinct once it is dropped.
    one_name: bool,
}

/// Where the last window of a range function over one series was: `(start, end, lo, hi)` with
/// `samples[lo..hi]` inside `[start, end]`. Successive steps move windows forward, so the next
/// window is found by stepping from here rather than by two binary searches.
type Cursor = (i64, i64, usize, usize);

/// Samples [`advance`] walks one by one before it gallops.
const LINEAR_STEPS: usize = 16;

/// Moves `i` forward to the first sample with `t > bound` (`past_equal`) or `t >= bound`:
/// a short linear walk, then a galloping search (probes at doubling distances, then a binary
/// search inside the last gap). Galloping only touches memory near `i`: a plain binary search
/// over the rest of a day-long series costs a cache miss per probe at every step and was
/// three quarters of the time of `avg_over_time` over 24 h.
fn advance(samples: &[Sample], mut i: usize, bound: i64, past_equal: bool) -> usize {
    let before = |x: &Sample| {
        if past_equal {
            x.t <= bound
        } else {
            x.t < bound
        }
    };
    // Dashboard steps move a 5m window over 15s samples by a few to a dozen samples: a linear
    // walk of that length has branches the CPU predicts, unlike a binary search.
    for _ in 0..LINEAR_STEPS {
        match samples.get(i) {
            Some(x) if before(x) => i += 1,
            _ => return i,
        }
    }
    // Invariant: every sample before `i` is before the bound.
    let mut gap = LINEAR_STEPS;
    loop {
        let probe = i.saturating_add(gap);
        match samples.get(probe) {
            Some(x) if before(x) => {
                i = probe + 1;
                gap = gap.saturating_mul(2);
            }
            _ => {
                let hi = probe.min(samples.len());
                return i + samples
                    .get(i..hi)
                    .map_or(0, |rest| rest.partition_point(before));
            }
        }
    }
}

/// `samples[lo..hi]` inside `[start, end]`, reusing `cur` when the window moved forward.
fn window(samples: &[Sample], start: i64, end: i64, cur: &mut Cursor) -> (usize, usize) {
    let (lo, hi) = if start >= cur.0 && end >= cur.1 {
        let lo = advance(samples, cur.2, start, false);
        (lo, advance(samples, cur.3.max(lo), end, true))
    } else {
        let lo = samples.partition_point(|x| x.t < start);
        (lo, samples.partition_point(|x| x.t <= end).max(lo))
    };
    *cur = (start, end, lo, hi);
    (lo, hi)
}

struct Evaluator {
    start: i64,
    end: i64,
    lookback: i64,
    default_step: i64,
    max_samples: usize,
    /// Samples selected by instant-vector selectors so far, summed over all steps: Prometheus
    /// materialises a selector's points for every step of a range query at once, so they count
    /// against `max_samples` together.
    selected: std::cell::Cell<usize>,
    deadline: Instant,
    /// Selected series per selector node (keyed by the node's address).
    data: HashMap<usize, Selected>,
    /// Window cursors of range functions, per selector node and series.
    cursors: RefCell<HashMap<usize, Vec<Cursor>>>,
    /// Inner evaluation time range of every subquery node (keyed by address).
    sq_ranges: HashMap<usize, (i64, i64)>,
    /// Each subquery evaluated once over its whole range (inner steps are aligned to absolute
    /// multiples of the step, so every outer step reads a slice of the same points).
    sq_cache: RefCell<HashMap<usize, Rc<Vec<RangeSeries>>>>,
    /// Grouping state of every aggregation node (keyed by address), kept across steps.
    agg_cache: RefCell<HashMap<usize, aggregate::GroupCache>>,
    /// Matching state of every binary operator node (keyed by address), kept across steps.
    bin_cache: RefCell<HashMap<usize, binary::MatchCache>>,
    /// Grouping state of every `histogram_quantile` call (keyed by address), kept across steps.
    hq_cache: RefCell<HashMap<usize, crate::functions::histogram::QuantileCache>>,
    /// The step grid of a range query, for the precomputed tables.
    grid: Option<steps::Grid>,
    /// Every step of instant selectors, precomputed range-major (keyed by [`key`]).
    sel_tables: HashMap<usize, steps::Table>,
    /// Every step of range functions over a selector, precomputed (keyed by the call's address).
    call_tables: HashMap<usize, steps::Table>,
    /// Every step of aggregations over a selector or such a range function, precomputed (keyed
    /// by the aggregation's address; see [`fused`]).
    agg_tables: HashMap<usize, fused::AggTable>,
    /// Series selected but not loaded yet (keyed by [`key`]): leaves of aggregations that
    /// [`fused`] reads series by series. [`Evaluator::build_tables`] loads what it leaves.
    lazy: HashMap<usize, Lazy>,
    /// The querier, kept while there are lazy series (to select them again should their
    /// aggregation fail and leave its leaf to be evaluated step by step).
    querier: Option<Box<dyn Querier>>,
}

/// Series selected but not read yet, and how they were selected.
struct Lazy {
    set: Vec<pharos_model::storage::Series>,
    hints: SelectHints,
}

/// A range function over a matrix selector: the call, its function and the selector.
type LeafCall<'a> = (&'a Call, RangeFn, &'a MatrixSelector);

/// The selector and, for a range function, the call an aggregation reads straight from, if
/// [`fused`] can compute it: an instant-vector selector, or a range function over a matrix
/// selector with number literals as its other arguments.
fn fused_leaf(a: &AggregateExpr) -> Option<(&VectorSelector, Option<LeafCall<'_>>)> {
    match a.expr.unparen() {
        Expr::VectorSelector(vs) => Some((vs, None)),
        Expr::Call(c) => {
            let Impl::Range(f) = c.func.imp else {
                return None;
            };
            let ms = c.args.iter().map(Expr::unparen).find_map(|a| match a {
                Expr::MatrixSelector(ms) => Some(ms),
                _ => None,
            })?;
            steps::literal_scalars(c)?;
            Some((&ms.vs, Some((c, f, ms))))
        }
        _ => None,
    }
}

/// Most cells (series x steps) all precomputed tables of one query may hold together (24 bytes
/// each, about 100 MiB, twice that while a table is transposed); nodes beyond that are
/// evaluated step by step.
const MAX_TABLE_CELLS: usize = 4 << 20;

fn key(vs: &VectorSelector) -> usize {
    vs as *const VectorSelector as usize
}

/// Every selector with the time range it may read and the function it feeds, and every
/// subquery with the range of its inner evaluation times.
fn collect_selectors<'e>(
    e: &'e Expr,
    s: i64,
    t: i64,
    ctx: (i64, i64, i64),
    func: Option<&'static str>,
    out: &mut Vec<(&'e VectorSelector, i64, i64, Option<&'static str>)>,
    sq_out: &mut HashMap<usize, (i64, i64)>,
) {
    let (qs, qe, lookback) = ctx;
    let at = |a: Option<AtModifier>, s: i64, t: i64| match a {
        Some(AtModifier::Timestamp(x)) => (x, x),
        Some(AtModifier::Start) => (qs, qs),
        Some(AtModifier::End) => (qe, qe),
        None => (s, t),
    };
    match e {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
        Expr::VectorSelector(vs) => {
            let (s, t) = at(vs.at, s, t);
            out.push((
                vs,
                s.saturating_sub(vs.offset).saturating_sub(lookback),
                t.saturating_sub(vs.offset),
                func,
            ));
        }
        Expr::MatrixSelector(ms) => {
            let (s, t) = at(ms.vs.at, s, t);
            out.push((
                &ms.vs,
                s.saturating_sub(ms.vs.offset).saturating_sub(ms.range),
                t.saturating_sub(ms.vs.offset),
                func,
            ));
        }
        Expr::SubqueryExpr(sq) => {
            let (s, t) = at(sq.at, s, t);
            let (lo, hi) = (
                s.saturating_sub(sq.offset).saturating_sub(sq.range),
                t.saturating_sub(sq.offset),
            );
            sq_out
                .entry(sq as *const SubqueryExpr as usize)
                .and_modify(|r| {
                    r.0 = r.0.min(lo);
                    r.1 = r.1.max(hi);
                })
                .or_insert((lo, hi));
            collect_selectors(
                &sq.expr,
                s.saturating_sub(sq.offset).saturating_sub(sq.range),
                t.saturating_sub(sq.offset),
                ctx,
                None,
                out,
                sq_out,
            );
        }
        Expr::Call(c) => {
            for a in &c.args {
                collect_selectors(a, s, t, ctx, Some(c.func.name), out, sq_out);
            }
        }
        Expr::AggregateExpr(a) => {
            collect_selectors(&a.expr, s, t, ctx, None, out, sq_out);
            if let Some(p) = &a.param {
                collect_selectors(p, s, t, ctx, None, out, sq_out);
            }
        }
        Expr::BinaryExpr(b) => {
            collect_selectors(&b.lhs, s, t, ctx, None, out, sq_out);
            collect_selectors(&b.rhs, s, t, ctx, None, out, sq_out);
        }
        Expr::Paren(e) | Expr::Unary(e) => collect_selectors(e, s, t, ctx, func, out, sq_out),
    }
}

/// Fewest selected series worth decoding on a second thread.
const PARALLEL_LOAD_SERIES: usize = 64;

/// Reads the samples in `[s, t]` of every selected series (decoding chunks is most of a
/// query's time on a real store), on two threads when there are many series.
fn load_series(set: Vec<pharos_model::storage::Series>, s: i64, t: i64) -> Vec<Loaded> {
    let load = |part: Vec<pharos_model::storage::Series>| -> Vec<Loaded> {
        // Series of one selector mostly hold about as many samples each: sizing each buffer
        // after the previous series (with some slack) saves growing it by doubling, a copy of
        // everything decoded so far each time (a tenth of a day-long query's time).
        let mut hint = 0usize;
        part.into_iter()
            .map(|mut sr| {
                let mut samples = Vec::with_capacity(hint.saturating_add(hint / 16));
                sr.samples.collect_into(s, t, &mut samples);
                hint = samples.len();
                Loaded {
                    dropped: Arc::new(sr.labels.without_metric_name()),
                    labels: Arc::new(sr.labels),
                    has_stale: samples.iter().any(|x| is_stale_nan(x.v)),
                    samples,
                }
            })
            .collect()
    };
    if set.len() < PARALLEL_LOAD_SERIES {
        return load(set);
    }
    let mut first = set;
    let second = first.split_off(first.len() / 2);
    std::thread::scope(|scope| {
        let h = scope.spawn(|| load(second));
        let mut out = load(first);
        match h.join() {
            Ok(rest) => out.extend(rest),
            // Loading cannot panic; should it, the panic is the caller's.
            Err(p) => std::panic::resume_unwind(p),
        }
        out
    })
}

/// Removes the metric name; used by functions and arithmetic. Shares `l` when it has none.
pub(crate) fn drop_name(l: &Metric) -> Metric {
    if l.metric_name().is_some() {
        Arc::new(l.without_metric_name())
    } else {
        l.clone()
    }
}

/// Fails if two elements have the same labels.
pub(crate) fn check_unique(v: &[Element]) -> Result<()> {
    if v.len() < 2 {
        return Ok(());
    }
    let mut seen = LabelRefSet::with_capacity_and_hasher(v.len(), Default::default());
    for e in v {
        if !seen.insert(&*e.metric) {
            return exec_err("vector cannot contain metrics with the same labelset");
        }
    }
    Ok(())
}

impl Evaluator {
    /// Selects the series of every selector and loads their samples; with `lazy` (a range
    /// query with several steps), the series of leaves of aggregations that [`fused`] may
    /// compute are only selected, to be read by [`Evaluator::build_tables`].
    fn prepare(
        engine: &Engine,
        q: &dyn Queryable,
        expr: &Expr,
        start: i64,
        end: i64,
        lazy: bool,
    ) -> Result<Self> {
        let lookback = engine.opts.lookback_delta.as_millis() as i64;
        let mut sels = Vec::new();
        let mut sq_ranges = HashMap::new();
        collect_selectors(
            expr,
            start,
            end,
            (start, end, lookback),
            None,
            &mut sels,
            &mut sq_ranges,
        );
        let mut data = HashMap::new();
        let mut lazy_sets = HashMap::new();
        let mut kept_querier = None;
        if !sels.is_empty() {
            let min_t = sels.iter().map(|s| s.1).min().unwrap_or(start);
            let max_t = sels.iter().map(|s| s.2).max().unwrap_or(end);
            let querier = q.querier(min_t, max_t)?;
            let mut lazy_keys = std::collections::HashSet::new();
            if lazy {
                let mut aggs = Vec::new();
                fused::candidates(expr, &mut aggs);
                for a in aggs {
                    if let Some((vs, _)) = fused_leaf(a) {
                        lazy_keys.insert(key(vs));
                    }
                }
            }
            // The same node may appear several times (it is one node); merge its ranges first.
            let mut ranges: HashMap<usize, (&VectorSelector, i64, i64, Option<&'static str>)> =
                HashMap::new();
            for (vs, s, t, f) in sels {
                ranges
                    .entry(key(vs))
                    .and_modify(|r| {
                        r.1 = r.1.min(s);
                        r.2 = r.2.max(t);
                    })
                    .or_insert((vs, s, t, f));
            }
            for (k, (vs, s, t, func)) in ranges {
                let hints = SelectHints {
                    start: s,
                    end: t,
                    step: 0,
                    func: func.map(str::to_string),
                };
                let set: Vec<pharos_model::storage::Series> =
                    querier.select(&vs.matchers, &hints)?.collect();
                let first = set.first().map(|s| s.labels.metric_name());
                let one_name = set.iter().all(|s| Some(s.labels.metric_name()) == first);
                if lazy_keys.contains(&k) {
                    lazy_sets.insert(k, Lazy { set, hints });
                    data.insert(
                        k,
                        Selected {
                            series: Vec::new(),
                            one_name,
                        },
                    );
                    continue;
                }
                let series = load_series(set, s, t);
                data.insert(k, Selected { series, one_name });
            }
            if !lazy_sets.is_empty() {
                kept_querier = Some(querier);
            }
        }
        Ok(Self {
            start,
            end,
            lookback,
            default_step: engine.default_step,
            max_samples: engine.opts.max_samples,
            selected: std::cell::Cell::new(0),
            deadline: Instant::now() + engine.opts.timeout,
            data,
            sq_ranges,
            sq_cache: RefCell::new(HashMap::new()),
            cursors: RefCell::new(HashMap::new()),
            agg_cache: RefCell::new(HashMap::new()),
            bin_cache: RefCell::new(HashMap::new()),
            hq_cache: RefCell::new(HashMap::new()),
            grid: None,
            sel_tables: HashMap::new(),
            call_tables: HashMap::new(),
            agg_tables: HashMap::new(),
            lazy: lazy_sets,
            querier: kept_querier,
        })
    }

    /// Precomputes the aggregations [`fused`] can compute, then the selectors and range
    /// functions of `expr` (outside subqueries) at every step of `grid`, range-major (see
    /// [`steps`]), within [`MAX_TABLE_CELLS`]. Loads the lazy series left over.
    fn build_tables(&mut self, expr: &Expr, grid: steps::Grid) -> Result<()> {
        let r = self.build_tables_within(expr, grid);
        if r.is_ok() {
            self.load_lazy();
        }
        r
    }

    /// Loads the lazy series no aggregation has read.
    fn load_lazy(&mut self) {
        for (k, lz) in std::mem::take(&mut self.lazy) {
            let series = load_series(lz.set, lz.hints.start, lz.hints.end);
            if let Some(sel) = self.data.get_mut(&k) {
                sel.series = series;
            }
        }
        self.querier = None;
    }

    /// Selects and loads again the series of `vs`, read lazily and used up by an aggregation
    /// that failed.
    fn reload(&mut self, vs: &VectorSelector, hints: &SelectHints) -> Result<()> {
        let Some(querier) = &self.querier else {
            return Ok(());
        };
        let set: Vec<pharos_model::storage::Series> =
            querier.select(&vs.matchers, hints)?.collect();
        let series = load_series(set, hints.start, hints.end);
        if let Some(sel) = self.data.get_mut(&key(vs)) {
            sel.series = series;
        }
        Ok(())
    }

    fn build_tables_within(&mut self, expr: &Expr, grid: steps::Grid) -> Result<()> {
        if grid.steps < 2 {
            return Ok(());
        }
        let (mut sels, mut calls) = (Vec::new(), Vec::new());
        steps::candidates(expr, &mut sels, &mut calls);
        let mut budget = MAX_TABLE_CELLS;
        let (qs, qe) = (self.start, self.end);
        let at = move |a: Option<AtModifier>, t: i64| match a {
            Some(AtModifier::Timestamp(x)) => x,
            Some(AtModifier::Start) => qs,
            Some(AtModifier::End) => qe,
            None => t,
        };
        // Aggregations straight over a leaf first: their leaf needs no table of its own.
        let mut aggs = Vec::new();
        fused::candidates(expr, &mut aggs);
        let mut covered: std::collections::HashSet<usize> = std::collections::HashSet::new();
        for a in aggs {
            self.check_deadline()?;
            let Some((vs, call)) = fused_leaf(a) else {
                continue;
            };
            let scalars = call
                .and_then(|(c, _, _)| steps::literal_scalars(c))
                .unwrap_or_default();
            let (leaf, covers, keep_name) = match call {
                None => (
                    fused::Leaf::Selector {
                        lookback: self.lookback,
                    },
                    key(vs),
                    true,
                ),
                Some((c, f, ms)) => {
                    let keep_name = c.func.name == "last_over_time";
                    let one_name = self.data.get(&key(vs)).is_some_and(|s| s.one_name);
                    // Dropping different names could make duplicates, an error at the step.
                    if !keep_name && !one_name {
                        continue;
                    }
                    let leaf = fused::Leaf::Call {
                        f,
                        range: ms.range,
                        scalars: &scalars,
                    };
                    (leaf, c as *const Call as usize, keep_name)
                }
            };
            let (vat, off) = (vs.at, vs.offset);
            let read = |t| at(vat, t).saturating_sub(off);
            let built = match self.lazy.remove(&key(vs)) {
                Some(lz) => {
                    let groups = if keep_name {
                        fused::groups(a, lz.set.iter().map(|s| &s.labels))
                    } else {
                        let dropped: Vec<Labels> = lz
                            .set
                            .iter()
                            .map(|s| s.labels.without_metric_name())
                            .collect();
                        fused::groups(a, dropped.iter())
                    };
                    if groups.len().saturating_mul(grid.steps) > budget {
                        self.lazy.insert(key(vs), lz);
                        continue;
                    }
                    let src = fused::Source::Lazy {
                        set: lz.set,
                        min_t: lz.hints.start,
                        max_t: lz.hints.end,
                    };
                    let built = fused::agg_table(a, groups, src, grid, leaf, read);
                    if built.is_err() {
                        self.reload(vs, &lz.hints)?;
                    }
                    built
                }
                None => {
                    let series = self.series_of(vs);
                    let groups = fused::groups(
                        a,
                        series
                            .iter()
                            .map(|s| if keep_name { &*s.labels } else { &*s.dropped }),
                    );
                    if groups.len().saturating_mul(grid.steps) > budget {
                        continue;
                    }
                    fused::agg_table(a, groups, fused::Source::Loaded(series), grid, leaf, read)
                }
            };
            // A function that fails is left to fail at its step, in order.
            if let Ok(t) = built {
                budget = budget.saturating_sub(t.input.len().saturating_mul(t.groups()));
                covered.insert(covers);
                self.agg_tables
                    .insert(a as *const AggregateExpr as usize, t);
            }
        }
        self.load_lazy();
        for c in calls {
            if covered.contains(&(c as *const Call as usize)) {
                continue;
            }
            let Some(Expr::MatrixSelector(ms)) = c
                .args
                .iter()
                .map(Expr::unparen)
                .find(|a| matches!(a, Expr::MatrixSelector(_)))
            else {
                continue;
            };
            let Some(scalars) = steps::literal_scalars(c) else {
                continue;
            };
            let series = self.series_of(&ms.vs);
            let cells = series.len().saturating_mul(grid.steps);
            if cells > budget {
                continue;
            }
            self.check_deadline()?;
            let (vat, off) = (ms.vs.at, ms.vs.offset);
            // A function that fails is left to fail at its step, in order.
            if let Ok(Some(t)) = steps::call_table(c, series, grid, ms.range, &scalars, |t| {
                at(vat, t).saturating_sub(off)
            }) {
                budget -= cells;
                self.call_tables.insert(c as *const Call as usize, t);
            }
        }
        for vs in sels {
            if covered.contains(&key(vs)) {
                continue;
            }
            let series = self.series_of(vs);
            let cells = series.len().saturating_mul(grid.steps);
            if cells > budget || self.sel_tables.contains_key(&key(vs)) {
                continue;
            }
            self.check_deadline()?;
            let (vat, off) = (vs.at, vs.offset);
            let t = steps::selector_table(series, grid, self.lookback, |t| {
                at(vat, t).saturating_sub(off)
            })?;
            budget -= cells;
            self.sel_tables.insert(key(vs), t);
        }
        self.grid = Some(grid);
        Ok(())
    }

    /// The precomputed row of `table` at `ts`, if there is one.
    fn row<'a>(
        &self,
        table: Option<&'a steps::Table>,
        ts: i64,
    ) -> Option<(&'a steps::Table, usize)> {
        let k = self.grid?.index(ts)?;
        table.map(|t| (t, k))
    }

    fn check_deadline(&self) -> Result<()> {
        if Instant::now() > self.deadline {
            return Err(EvalError::Timeout("expression evaluation"));
        }
        Ok(())
    }

    fn at_time(&self, at: Option<AtModifier>, ts: i64) -> i64 {
        match at {
            Some(AtModifier::Timestamp(t)) => t,
            Some(AtModifier::Start) => self.start,
            Some(AtModifier::End) => self.end,
            None => ts,
        }
    }

    fn series_of(&self, vs: &VectorSelector) -> &[Loaded] {
        self.data.get(&key(vs)).map_or(&[], |s| s.series.as_slice())
    }

    fn eval(&self, e: &Expr, ts: i64) -> Result<Value> {
        match e {
            Expr::NumberLiteral(v) => Ok(Value::Scalar(Sample { t: ts, v: *v })),
            Expr::StringLiteral(s) => Ok(Value::String(StringPoint {
                t: ts,
                s: s.clone(),
            })),
            Expr::Paren(e) => self.eval(e, ts),
            Expr::Unary(e) => match self.eval(e, ts)? {
                Value::Scalar(s) => Ok(Value::Scalar(Sample { t: s.t, v: -s.v })),
                Value::Vector(v) => {
                    let v: Vec<Element> = v
                        .into_iter()
                        .map(|e| Element {
                            metric: drop_name(&e.metric),
                            t: ts,
                            v: -e.v,
                        })
                        .collect();
                    check_unique(&v)?;
                    Ok(Value::Vector(v))
                }
                other => exec_err(format!("unary minus on {}", other.type_name())),
            },
            Expr::VectorSelector(vs) => {
                let v = match self.row(self.sel_tables.get(&key(vs)), ts) {
                    Some((table, k)) => self
                        .series_of(vs)
                        .iter()
                        .zip(table.row(k))
                        .filter_map(|(s, x)| {
                            x.map(|x| Element {
                                metric: s.labels.clone(),
                                t: x.t,
                                v: x.v,
                            })
                        })
                        .collect(),
                    None => self.select_vector(vs, ts),
                };
                let selected = self.selected.get().saturating_add(v.len());
                self.selected.set(selected);
                if selected > self.max_samples {
                    return Err(EvalError::TooManySamples("query execution"));
                }
                Ok(Value::Vector(v))
            }
            Expr::MatrixSelector(_) | Expr::SubqueryExpr(_) => {
                let (m, _) = self.range_arg(e, ts)?;
                Ok(Value::Matrix(m))
            }
            Expr::Call(c) => {
                self.check_deadline()?;
                self.call(c, ts)
            }
            Expr::AggregateExpr(a) => {
                let fused = self.grid.and_then(|g| g.index(ts)).and_then(|k| {
                    self.agg_tables
                        .get(&(a as *const AggregateExpr as usize))
                        .map(|t| (t, k))
                });
                if let Some((t, k)) = fused {
                    let n = t.input.get(k).copied().unwrap_or(0);
                    // The accounting the leaf does step by step.
                    self.check_deadline()?;
                    if t.selector {
                        let selected = self.selected.get().saturating_add(n);
                        self.selected.set(selected);
                        if selected > self.max_samples {
                            return Err(EvalError::TooManySamples("query execution"));
                        }
                    } else if n > self.max_samples {
                        return Err(EvalError::TooManySamples("query execution"));
                    }
                    return Ok(Value::Vector(t.row(k, ts)));
                }
                let param = match &a.param {
                    Some(p) => Some(self.eval(p, ts)?),
                    None => None,
                };
                let v = match self.eval(&a.expr, ts)? {
                    Value::Vector(v) => v,
                    other => return exec_err(format!("aggregation over {}", other.type_name())),
                };
                let mut caches = self.agg_cache.borrow_mut();
                let cache = caches
                    .entry(a as *const AggregateExpr as usize)
                    .or_default();
                aggregate::aggregate(a, param, v, ts, cache).map(Value::Vector)
            }
            Expr::BinaryExpr(b) => {
                let l = self.eval(&b.lhs, ts)?;
                let r = self.eval(&b.rhs, ts)?;
                let mut caches = self.bin_cache.borrow_mut();
                let cache = caches.entry(b as *const BinaryExpr as usize).or_default();
                binary::binary(b, l, r, ts, cache)
            }
        }
    }

    fn select_vector(&self, vs: &VectorSelector, ts: i64) -> Vec<Element> {
        let rt = self.at_time(vs.at, ts).saturating_sub(vs.offset);
        let mut out = Vec::new();
        for s in self.series_of(vs) {
            let idx = s.samples.partition_point(|x| x.t <= rt);
            let Some(x) = idx.checked_sub(1).and_then(|i| s.samples.get(i)) else {
                continue;
            };
            if x.t < rt.saturating_sub(self.lookback) || is_stale_nan(x.v) {
                continue;
            }
            out.push(Element {
                metric: s.labels.clone(),
                t: x.t,
                v: x.v,
            });
        }
        out
    }

    /// A range-vector argument: the series in the window and the window itself.
    fn range_arg(&self, e: &Expr, ts: i64) -> Result<(Vec<RangeSeries>, RangeCtx)> {
        match e.unparen() {
            Expr::MatrixSelector(ms) => {
                let end = self.at_time(ms.vs.at, ts).saturating_sub(ms.vs.offset);
                let start = end.saturating_sub(ms.range);
                let mut out = Vec::new();
                let mut total = 0usize;
                for s in self.series_of(&ms.vs) {
                    let lo = s.samples.partition_point(|x| x.t < start);
                    let hi = s.samples.partition_point(|x| x.t <= end);
                    let points: Vec<Sample> = s.samples[lo..hi.max(lo)]
                        .iter()
                        .filter(|x| !is_stale_nan(x.v))
                        .copied()
                        .collect();
                    if points.is_empty() {
                        continue;
                    }
                    total += points.len();
                    if total > self.max_samples {
                        return Err(EvalError::TooManySamples("query execution"));
                    }
                    out.push(RangeSeries {
                        metric: s.labels.clone(),
                        points,
                    });
                }
                Ok((
                    out,
                    RangeCtx {
                        ts,
                        start,
                        end,
                        range: ms.range,
                    },
                ))
            }
            Expr::SubqueryExpr(sq) => {
                let end = self.at_time(sq.at, ts).saturating_sub(sq.offset);
                let start = end.saturating_sub(sq.range);
                let k = sq as *const SubqueryExpr as usize;
                let cached = self.sq_cache.borrow().get(&k).cloned();
                let full = match cached {
                    Some(m) => m,
                    None => {
                        let (lo, hi) = self.sq_ranges.get(&k).copied().unwrap_or((start, end));
                        let m = Rc::new(self.subquery_points(sq, lo.min(start), hi.max(end))?);
                        self.sq_cache.borrow_mut().insert(k, m.clone());
                        m
                    }
                };
                let mut out = Vec::new();
                for s in full.iter() {
                    let lo = s.points.partition_point(|p| p.t < start);
                    let hi = s.points.partition_point(|p| p.t <= end);
                    if hi > lo {
                        out.push(RangeSeries {
                            metric: s.metric.clone(),
                            points: s.points[lo..hi].to_vec(),
                        });
                    }
                }
                Ok((
                    out,
                    RangeCtx {
                        ts,
                        start,
                        end,
                        range: sq.range,
                    },
                ))
            }
            other => exec_err(format!("expected a range vector, got {other}")),
        }
    }

    /// Evaluates a subquery's inner expression at every multiple of its step in `[lo, hi]`.
    fn subquery_points(&self, sq: &SubqueryExpr, lo: i64, hi: i64) -> Result<Vec<RangeSeries>> {
        let step = sq.step.unwrap_or(self.default_step).max(1);
        let mut t = step * lo.div_euclid(step);
        if t < lo {
            t = t.saturating_add(step);
        }
        let mut order: Vec<Metric> = Vec::new();
        let mut series: MetricMap<Vec<Sample>> = MetricMap::default();
        let mut total = 0usize;
        while t <= hi {
            self.check_deadline()?;
            match self.eval(&sq.expr, t)? {
                Value::Vector(v) => {
                    total += v.len();
                    for e in v {
                        let p = Sample { t, v: e.v };
                        match series.get_mut(&e.metric) {
                            Some(ps) => ps.push(p),
                            None => {
                                order.push(e.metric.clone());
                                series.insert(e.metric, vec![p]);
                            }
                        }
                    }
                }
                Value::Scalar(s) => {
                    total += 1;
                    let l = Arc::new(Labels::empty());
                    if !series.contains_key(&l) {
                        order.push(l.clone());
                    }
                    series.entry(l).or_default().push(Sample { t, v: s.v });
                }
                other => return exec_err(format!("subquery over {}", other.type_name())),
            }
            if total > self.max_samples {
                return Err(EvalError::TooManySamples("query execution"));
            }
            let Some(next) = t.checked_add(step) else {
                break;
            };
            t = next;
        }
        Ok(order
            .into_iter()
            .filter_map(|l| {
                series
                    .remove(&l)
                    .map(|points| RangeSeries { metric: l, points })
            })
            .collect())
    }

    fn call(&self, c: &Call, ts: i64) -> Result<Value> {
        match c.func.imp {
            Impl::Range(f) => {
                let mut scalars = Vec::new();
                let mut matrix_arg = None;
                for a in &c.args {
                    if a.value_type() == ValueType::Matrix {
                        matrix_arg = Some(a);
                    } else {
                        match self.eval(a, ts)? {
                            Value::Scalar(s) => scalars.push(s.v),
                            other => {
                                return exec_err(format!(
                                    "unexpected {} argument",
                                    other.type_name()
                                ));
                            }
                        }
                    }
                }
                let Some(arg) = matrix_arg else {
                    return exec_err(format!("{} needs a range vector", c.func.name));
                };
                let keep_name = c.func.name == "last_over_time";
                let name = |l: &Metric| if keep_name { l.clone() } else { drop_name(l) };
                let mut out = Vec::new();
                let table = self.row(self.call_tables.get(&(c as *const Call as usize)), ts);
                if let (Some((table, k)), Expr::MatrixSelector(ms)) = (table, arg.unparen()) {
                    if table
                        .window_samples
                        .get(k)
                        .is_some_and(|n| *n > self.max_samples)
                    {
                        return Err(EvalError::TooManySamples("query execution"));
                    }
                    let series = self.series_of(&ms.vs);
                    out.reserve(series.len());
                    for (s, x) in series.iter().zip(table.row(k)) {
                        if let Some(x) = x {
                            let metric = if keep_name {
                                s.labels.clone()
                            } else {
                                s.dropped.clone()
                            };
                            out.push(Element {
                                metric,
                                t: ts,
                                v: x.v,
                            });
                        }
                    }
                    let one_name = self.data.get(&key(&ms.vs)).is_some_and(|s| s.one_name);
                    if keep_name || one_name {
                        return Ok(Value::Vector(out));
                    }
                } else if let Expr::MatrixSelector(ms) = arg.unparen() {
                    out.reserve(self.series_of(&ms.vs).len());
                    // Fast path: run the function over the loaded samples in place.
                    let end = self.at_time(ms.vs.at, ts).saturating_sub(ms.vs.offset);
                    let start = end.saturating_sub(ms.range);
                    let ctx = RangeCtx {
                        ts,
                        start,
                        end,
                        range: ms.range,
                    };
                    let mut scratch = Vec::new();
                    let mut total = 0usize;
                    let series = self.series_of(&ms.vs);
                    let mut cursors = self.cursors.borrow_mut();
                    let cursors = cursors
                        .entry(key(&ms.vs))
                        .or_insert_with(|| vec![(i64::MIN, i64::MIN, 0, 0); series.len()]);
                    for (s, cur) in series.iter().zip(cursors.iter_mut()) {
                        let (lo, hi) = window(&s.samples, start, end, cur);
                        let mut points = &s.samples[lo..hi];
                        if s.has_stale && points.iter().any(|x| is_stale_nan(x.v)) {
                            scratch.clear();
                            scratch.extend(points.iter().filter(|x| !is_stale_nan(x.v)));
                            points = &scratch;
                        }
                        if points.is_empty() {
                            continue;
                        }
                        total += points.len();
                        if total > self.max_samples {
                            return Err(EvalError::TooManySamples("query execution"));
                        }
                        if let Some(v) = f(&ctx, points, &scalars)? {
                            let metric = if keep_name {
                                s.labels.clone()
                            } else {
                                s.dropped.clone()
                            };
                            out.push(Element { metric, t: ts, v });
                        }
                    }
                    // Distinct series with one metric name stay distinct without it.
                    let one_name = self.data.get(&key(&ms.vs)).is_some_and(|s| s.one_name);
                    if keep_name || one_name {
                        return Ok(Value::Vector(out));
                    }
                } else {
                    let (series, ctx) = self.range_arg(arg, ts)?;
                    for s in series {
                        if let Some(v) = f(&ctx, &s.points, &scalars)? {
                            out.push(Element {
                                metric: name(&s.metric),
                                t: ts,
                                v,
                            });
                        }
                    }
                }
                check_unique(&out)?;
                Ok(Value::Vector(out))
            }
            Impl::General(f) => {
                let mut args = Vec::with_capacity(c.args.len());
                for a in &c.args {
                    args.push(self.eval(a, ts)?);
                }
                let env = Env {
                    ts,
                    args,
                    exprs: &c.args,
                };
                let v = if c.func.name == "histogram_quantile" {
                    let mut caches = self.hq_cache.borrow_mut();
                    let cache = caches.entry(c as *const Call as usize).or_default();
                    crate::functions::histogram::histogram_quantile_cached(env, cache)?
                } else {
                    f(env)?
                };
                if let Value::Vector(v) = &v {
                    check_unique(v)?;
                }
                Ok(v)
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
