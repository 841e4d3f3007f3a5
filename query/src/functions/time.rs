//! Time functions: `time`, `timestamp`, and the calendar functions `day_of_month`,
//! `day_of_week`, `day_of_year`, `days_in_month`, `hour`, `minute`, `month`, `year`, which read
//! each value as Unix seconds (default: `vector(time())`) in UTC.
//! See <https://prometheus.io/docs/prometheus/2.42/querying/functions/#day_of_month>.

use pharos_model::api::{civil_from_days, days_from_civil};
use pharos_model::{Labels, Sample};

use super::{Env, vector_arg};
use crate::Result;
use crate::engine::{Element, Value, drop_name};

/// `time()`: evaluation time in seconds.
pub(crate) fn time(env: Env<'_>) -> Result<Value> {
    Ok(Value::Scalar(Sample {
        t: env.ts,
        v: env.ts as f64 / 1000.0,
    }))
}

/// `timestamp(v)`: the time of each sample in seconds.
pub(crate) fn timestamp(mut env: Env<'_>) -> Result<Value> {
    let ts = env.ts;
    let v = vector_arg(&mut env, 0);
    Ok(Value::Vector(
        v.into_iter()
            .map(|e| Element {
                metric: drop_name(&e.metric),
                t: ts,
                v: e.t as f64 / 1000.0,
            })
            .collect(),
    ))
}

/// Calendar fields of a Unix time in seconds.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    /// 0 = Sunday.
    weekday: i64,
    yday: i64,
    hour: i64,
    minute: i64,
}

fn civil(secs: i64) -> Civil {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        weekday: (days + 4).rem_euclid(7),
        yday: days - days_from_civil(year, 1, 1) + 1,
        hour: sod / 3600,
        minute: (sod % 3600) / 60,
    }
}

fn days_in(year: i64, month: u32) -> i64 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    days_from_civil(ny, nm, 1) - days_from_civil(year, month, 1)
}

fn calendar(mut env: Env<'_>, f: fn(&Civil) -> f64) -> Result<Value> {
    let ts = env.ts;
    let v = if env.args.is_empty() {
        vec![Element {
            metric: std::sync::Arc::new(Labels::empty()),
            t: ts,
            v: ts as f64 / 1000.0,
        }]
    } else {
        vector_arg(&mut env, 0)
    };
    Ok(Value::Vector(
        v.into_iter()
            .map(|e| {
                let v = if e.v.is_finite() {
                    f(&civil(e.v as i64))
                } else {
                    f64::NAN
                };
                Element {
                    metric: drop_name(&e.metric),
                    t: ts,
                    v,
                }
            })
            .collect(),
    ))
}

/// `day_of_month(v)`: 1–31.
pub(crate) fn day_of_month(env: Env<'_>) -> Result<Value> {
    calendar(env, |c| c.day as f64)
}

/// `day_of_week(v)`: 0 (Sunday)–6.
pub(crate) fn day_of_week(env: Env<'_>) -> Result<Value> {
    calendar(env, |c| c.weekday as f64)
}

/// `day_of_year(v)`: 1–366.
pub(crate) fn day_of_year(env: Env<'_>) -> Result<Value> {
    calendar(env, |c| c.yday as f64)
}

/// `days_in_month(v)`: 28–31.
pub(crate) fn days_in_month(env: Env<'_>) -> Result<Value> {
    calendar(env, |c| days_in(c.year, c.month) as f64)
}

/// `hour(v)`: 0–23.
pub(crate) fn hour(env: Env<'_>) -> Result<Value> {
    calendar(env, |c| c.hour as f64)
}

/// `minute(v)`: 0–59.
pub(crate) fn minute(env: Env<'_>) -> Result<Value> {
    calendar(env, |c| c.minute as f64)
}

/// `month(v)`: 1–12.
pub(crate) fn month(env: Env<'_>) -> Result<Value> {
    calendar(env, |c| c.month as f64)
}

/// `year(v)`
pub(crate) fn year(env: Env<'_>) -> Result<Value> {
    calendar(env, |c| c.year as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_fields() {
        // 2024-02-29T13:45:00Z, a Thursday, day 60 of a leap year.
        let c = civil(1_709_214_300);
        assert_eq!(
            (c.year, c.month, c.day, c.weekday, c.yday, c.hour, c.minute),
            (2024, 2, 29, 4, 60, 13, 45)
        );
        assert_eq!(days_in(2024, 2), 29);
        assert_eq!(days_in(2023, 12), 31);
        assert_eq!(civil(0).weekday, 4);
    }
}
