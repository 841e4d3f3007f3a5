//! Element-wise math functions: `abs`, `ceil`, `floor`, `exp`, `sqrt`, `ln`, `log2`, `log10`,
//! `sgn`, trigonometry, `deg`, `rad`, `pi`, `round`, `clamp`, `clamp_min`, `clamp_max`.
//! See <https://prometheus.io/docs/prometheus/2.42/querying/functions/>. All drop `__name__`.

use pharos_model::Sample;

use super::{Env, scalar_arg, vector_arg};
use crate::Result;
use crate::engine::{Element, Value, drop_name};

/// Applies `f` to every element of the first argument, dropping the metric name.
fn map(mut env: Env<'_>, f: impl Fn(f64) -> f64) -> Result<Value> {
    let ts = env.ts;
    let v = vector_arg(&mut env, 0);
    Ok(Value::Vector(
        v.into_iter()
            .map(|e| Element {
                metric: drop_name(&e.metric),
                t: ts,
                v: f(e.v),
            })
            .collect(),
    ))
}

macro_rules! simple {
    ($($name:ident => $f:expr),* $(,)?) => {
        $(
            #[doc = concat!("`", stringify!($name), "(v instant-vector)`")]
            pub(crate) fn $name(env: Env<'_>) -> Result<Value> {
                map(env, $f)
            }
        )*
    };
}

simple! {
    abs => f64::abs,
    ceil => f64::ceil,
    floor => f64::floor,
    exp => f64::exp,
    sqrt => f64::sqrt,
    ln => f64::ln,
    log2 => f64::log2,
    log10 => f64::log10,
    acos => f64::acos,
    acosh => f64::acosh,
    asin => f64::asin,
    asinh => f64::asinh,
    atan => f64::atan,
    atanh => f64::atanh,
    cos => f64::cos,
    cosh => f64::cosh,
    sin => f64::sin,
    sinh => f64::sinh,
    tan => f64::tan,
    tanh => f64::tanh,
    deg => f64::to_degrees,
    rad => f64::to_radians,
    sgn => sgn_f,
}

fn sgn_f(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        v
    }
}

/// `pi()`
pub(crate) fn pi(env: Env<'_>) -> Result<Value> {
    Ok(Value::Scalar(Sample {
        t: env.ts,
        v: std::f64::consts::PI,
    }))
}

/// `round(v, to_nearest=1)`: rounds half up to a multiple of `to_nearest`.
pub(crate) fn round(env: Env<'_>) -> Result<Value> {
    let to = if env.args.len() > 1 {
        scalar_arg(&env, 1)
    } else {
        1.0
    };
    let inv = 1.0 / to;
    map(env, move |v| (v * inv + 0.5).floor() / inv)
}

/// Go's `math.Min`: NaN if either is NaN.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// Go's `math.Max`: NaN if either is NaN.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// `clamp(v, min, max)`: empty when `min > max`.
pub(crate) fn clamp(env: Env<'_>) -> Result<Value> {
    let (lo, hi) = (scalar_arg(&env, 1), scalar_arg(&env, 2));
    if hi < lo {
        return Ok(Value::Vector(Vec::new()));
    }
    map(env, move |v| go_max(lo, go_min(hi, v)))
}

/// `clamp_max(v, max)`
pub(crate) fn clamp_max(env: Env<'_>) -> Result<Value> {
    let hi = scalar_arg(&env, 1);
    map(env, move |v| go_min(hi, v))
}

/// `clamp_min(v, min)`
pub(crate) fn clamp_min(env: Env<'_>) -> Result<Value> {
    let lo = scalar_arg(&env, 1);
    map(env, move |v| go_max(lo, v))
}
