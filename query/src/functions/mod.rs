//! The PromQL function table and implementations, one family per file.
//!
//! Range-vector functions (`Impl::Range`) are pure over one series' points in the window and
//! return at most one value; the engine applies them per series and drops `__name__` (except for
//! `last_over_time`). Other functions (`Impl::General`) see their evaluated arguments.

pub(crate) mod histogram;
mod label;
mod math;
mod misc;
mod over_time;
mod rate;
mod time;

use pharos_model::Sample;

use crate::Result;
use crate::ast::{Expr, ValueType};
use crate::engine::Value;

/// What a range-vector function sees besides the points.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RangeCtx {
    /// Evaluation time (ms).
    pub ts: i64,
    /// Start of the selected window (ms, inclusive).
    pub start: i64,
    /// End of the selected window (ms, inclusive).
    pub end: i64,
    /// The range of the selector (ms).
    pub range: i64,
}

/// A function over one series' points (in time order, stale markers removed) and the scalar
/// arguments in call order.
pub(crate) type RangeFn = fn(&RangeCtx, &[Sample], &[f64]) -> Result<Option<f64>>;

/// Arguments of a general function.
pub(crate) struct Env<'a> {
    /// Evaluation time (ms).
    pub ts: i64,
    /// Evaluated arguments.
    pub args: Vec<Value>,
    /// The argument expressions (for `absent`).
    pub exprs: &'a [Expr],
}

/// A general function.
pub(crate) type GeneralFn = fn(Env<'_>) -> Result<Value>;

/// How a function is evaluated.
#[derive(Clone, Copy)]
pub(crate) enum Impl {
    /// Per series of the (single) range-vector argument.
    Range(RangeFn),
    /// Over all evaluated arguments.
    General(GeneralFn),
}

/// A PromQL function: its signature and implementation.
pub struct Function {
    /// Name as called.
    pub name: &'static str,
    /// Argument types; with `variadic != 0` the last one may be omitted (and, for -1, repeated).
    pub arg_types: &'static [ValueType],
    /// 0: fixed arity; n > 0: up to n optional trailing arguments; -1: unlimited.
    pub variadic: i32,
    /// Result type.
    pub return_type: ValueType,
    pub(crate) imp: Impl,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for Function {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name
    }
}

use ValueType::{Matrix as M, Scalar as S, String as Str, Vector as V};

macro_rules! f {
    ($name:literal, [$($t:expr),*], $var:expr, $ret:expr, $imp:expr) => {
        Function { name: $name, arg_types: &[$($t),*], variadic: $var, return_type: $ret, imp: $imp }
    };
}

static FUNCTIONS: &[Function] = &[
    // math.rs
    f!("abs", [V], 0, V, Impl::General(math::abs)),
    f!("ceil", [V], 0, V, Impl::General(math::ceil)),
    f!("floor", [V], 0, V, Impl::General(math::floor)),
    f!("exp", [V], 0, V, Impl::General(math::exp)),
    f!("sqrt", [V], 0, V, Impl::General(math::sqrt)),
    f!("ln", [V], 0, V, Impl::General(math::ln)),
    f!("log2", [V], 0, V, Impl::General(math::log2)),
    f!("log10", [V], 0, V, Impl::General(math::log10)),
    f!("sgn", [V], 0, V, Impl::General(math::sgn)),
    f!("acos", [V], 0, V, Impl::General(math::acos)),
    f!("acosh", [V], 0, V, Impl::General(math::acosh)),
    f!("asin", [V], 0, V, Impl::General(math::asin)),
    f!("asinh", [V], 0, V, Impl::General(math::asinh)),
    f!("atan", [V], 0, V, Impl::General(math::atan)),
    f!("atanh", [V], 0, V, Impl::General(math::atanh)),
    f!("cos", [V], 0, V, Impl::General(math::cos)),
    f!("cosh", [V], 0, V, Impl::General(math::cosh)),
    f!("sin", [V], 0, V, Impl::General(math::sin)),
    f!("sinh", [V], 0, V, Impl::General(math::sinh)),
    f!("tan", [V], 0, V, Impl::General(math::tan)),
    f!("tanh", [V], 0, V, Impl::General(math::tanh)),
    f!("deg", [V], 0, V, Impl::General(math::deg)),
    f!("rad", [V], 0, V, Impl::General(math::rad)),
    f!("pi", [], 0, S, Impl::General(math::pi)),
    f!("round", [V, S], 1, V, Impl::General(math::round)),
    f!("clamp", [V, S, S], 0, V, Impl::General(math::clamp)),
    f!("clamp_max", [V, S], 0, V, Impl::General(math::clamp_max)),
    f!("clamp_min", [V, S], 0, V, Impl::General(math::clamp_min)),
    // rate.rs
    f!("rate", [M], 0, V, Impl::Range(rate::rate)),
    f!("increase", [M], 0, V, Impl::Range(rate::increase)),
    f!("delta", [M], 0, V, Impl::Range(rate::delta)),
    f!("irate", [M], 0, V, Impl::Range(rate::irate)),
    f!("idelta", [M], 0, V, Impl::Range(rate::idelta)),
    f!("deriv", [M], 0, V, Impl::Range(rate::deriv)),
    f!(
        "predict_linear",
        [M, S],
        0,
        V,
        Impl::Range(rate::predict_linear)
    ),
    f!(
        "holt_winters",
        [M, S, S],
        0,
        V,
        Impl::Range(rate::holt_winters)
    ),
    f!("changes", [M], 0, V, Impl::Range(rate::changes)),
    f!("resets", [M], 0, V, Impl::Range(rate::resets)),
    // over_time.rs
    f!("avg_over_time", [M], 0, V, Impl::Range(over_time::avg)),
    f!("sum_over_time", [M], 0, V, Impl::Range(over_time::sum)),
    f!("count_over_time", [M], 0, V, Impl::Range(over_time::count)),
    f!("min_over_time", [M], 0, V, Impl::Range(over_time::min)),
    f!("max_over_time", [M], 0, V, Impl::Range(over_time::max)),
    f!("last_over_time", [M], 0, V, Impl::Range(over_time::last)),
    f!(
        "present_over_time",
        [M],
        0,
        V,
        Impl::Range(over_time::present)
    ),
    f!(
        "stddev_over_time",
        [M],
        0,
        V,
        Impl::Range(over_time::stddev)
    ),
    f!(
        "stdvar_over_time",
        [M],
        0,
        V,
        Impl::Range(over_time::stdvar)
    ),
    f!(
        "quantile_over_time",
        [S, M],
        0,
        V,
        Impl::Range(over_time::quantile)
    ),
    f!(
        "absent_over_time",
        [M],
        0,
        V,
        Impl::General(misc::absent_over_time)
    ),
    // time.rs
    f!("time", [], 0, S, Impl::General(time::time)),
    f!("timestamp", [V], 0, V, Impl::General(time::timestamp)),
    f!("day_of_month", [V], 1, V, Impl::General(time::day_of_month)),
    f!("day_of_week", [V], 1, V, Impl::General(time::day_of_week)),
    f!("day_of_year", [V], 1, V, Impl::General(time::day_of_year)),
    f!(
        "days_in_month",
        [V],
        1,
        V,
        Impl::General(time::days_in_month)
    ),
    f!("hour", [V], 1, V, Impl::General(time::hour)),
    f!("minute", [V], 1, V, Impl::General(time::minute)),
    f!("month", [V], 1, V, Impl::General(time::month)),
    f!("year", [V], 1, V, Impl::General(time::year)),
    // misc.rs
    f!("absent", [V], 0, V, Impl::General(misc::absent)),
    f!("scalar", [V], 0, S, Impl::General(misc::scalar)),
    f!("vector", [S], 0, V, Impl::General(misc::vector)),
    f!("sort", [V], 0, V, Impl::General(misc::sort)),
    f!("sort_desc", [V], 0, V, Impl::General(misc::sort_desc)),
    // label.rs
    f!(
        "label_replace",
        [V, Str, Str, Str, Str],
        0,
        V,
        Impl::General(label::label_replace)
    ),
    f!(
        "label_join",
        [V, Str, Str, Str],
        -1,
        V,
        Impl::General(label::label_join)
    ),
    // histogram.rs
    f!(
        "histogram_quantile",
        [S, V],
        0,
        V,
        Impl::General(histogram::histogram_quantile)
    ),
];

/// The function called `name`, if PromQL has one.
pub fn lookup(name: &str) -> Option<&'static Function> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

/// Names of all functions (for autocompletion).
pub fn names() -> impl Iterator<Item = &'static str> {
    FUNCTIONS.iter().map(|f| f.name)
}

/// The instant vector argument `i` (empty if it is not one).
pub(crate) fn vector_arg(env: &mut Env<'_>, i: usize) -> Vec<crate::engine::Element> {
    match env.args.get_mut(i) {
        Some(Value::Vector(v)) => std::mem::take(v),
        _ => Vec::new(),
    }
}

/// The scalar argument `i` (NaN if it is not one).
pub(crate) fn scalar_arg(env: &Env<'_>, i: usize) -> f64 {
    match env.args.get(i) {
        Some(Value::Scalar(s)) => s.v,
        _ => f64::NAN,
    }
}

/// The string argument `i` ("" if it is not one).
pub(crate) fn string_arg(env: &Env<'_>, i: usize) -> String {
    match env.args.get(i) {
        Some(Value::String(s)) => s.s.clone(),
        _ => String::new(),
    }
}
