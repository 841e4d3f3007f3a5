//! `pharos-model`: the shared vocabulary of Pharos.
//!
//! Every other crate (`tsdb`, `collector`, `query`, `dashboard`, `exporters`) depends on this one and
//! on nothing else of Pharos: they meet only through the types and traits defined here.
//!
//! - [`Labels`], [`Sample`], [`SeriesRef`] and the staleness marker [`STALE_NAN`];
//! - [`Matcher`]: label matchers with Prometheus' fully anchored regex semantics;
//! - [`storage`]: the `Appendable`/`Queryable` traits storage engines implement;
//! - [`expfmt`]: the Prometheus text exposition format (parser and writer);
//! - [`api`]: serde types of the Prometheus HTTP API JSON.
//!
//! ```
//! use pharos_model::{Labels, Matcher, MatchOp};
//! let l = Labels::from_pairs(&[("__name__", "up"), ("job", "node")]);
//! let m = Matcher::new(MatchOp::Re, "job", "no.*").unwrap();
//! assert!(m.matches(l.get("job").unwrap_or("")));
//! assert_eq!(l.to_string(), r#"up{job="node"}"#);
//! ```

pub mod api;
pub mod expfmt;
pub mod http;
mod labels;
mod matcher;
pub mod storage;

pub use labels::{Label, Labels, LabelsBuilder, METRIC_NAME};
pub use matcher::{MatchOp, Matcher};

/// The bit pattern Prometheus uses to mark a series as stale (a signalling NaN).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;
/// The staleness marker as a float: compare with [`is_stale_nan`], never with `==`.
pub const STALE_NAN: f64 = f64::from_bits(STALE_NAN_BITS);

/// True if `v` is exactly the staleness marker (not any other NaN).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One sample: a timestamp in milliseconds since the Unix epoch and a float value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub t: i64,
    /// The value; may be NaN, ±Inf or [`STALE_NAN`].
    pub v: f64,
}

/// An opaque reference to a series, handed out by an appender so later appends skip the label lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesRef(pub u64);

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_nan_is_distinct_from_plain_nan() {
        assert!(is_stale_nan(STALE_NAN));
        assert!(STALE_NAN.is_nan());
        assert!(!is_stale_nan(f64::NAN));
        assert!(!is_stale_nan(1.0));
    }
}

/// Parses a Prometheus duration: one or more `<int><unit>` parts in decreasing unit order, units
/// `y w d h m s ms` (`15s`, `1h30m`, `2d`). Returns milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("ms", 1),
        ("m", 60_000),
        ("s", 1000),
    ];
    let bad = || format!("not a valid duration string: {s:?}");
    if s.is_empty() {
        return Err(bad());
    }
    if s == "0" {
        return Ok(0);
    }
    let mut rest = s;
    let mut total: i64 = 0;
    let mut last_rank = usize::MAX;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (rank, (unit, size)) = UNITS
            .iter()
            .enumerate()
            .find(|(_, (u, _))| rest.starts_with(u))
            .ok_or_else(bad)?;
        // Canonical order of magnitude: y w d h m s ms (ms is listed before m for prefix matching).
        let order = match *unit {
            "ms" => 6,
            "m" => 4,
            "s" => 5,
            _ => rank,
        };
        if last_rank != usize::MAX && order <= last_rank {
            return Err(bad());
        }
        last_rank = order;
        rest = &rest[unit.len()..];
        total = n
            .checked_mul(*size)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

#[cfg(test)]
mod duration_tests {
    use super::parse_duration_ms;

    #[track_caller]
    fn check(s: &str, want: Option<i64>) {
        assert_eq!(parse_duration_ms(s).ok(), want, "{s}");
    }

    #[test]
    fn durations() {
        check("15s", Some(15_000));
        check("1h30m", Some(5_400_000));
        check("15d", Some(15 * 86_400_000));
        check("100ms", Some(100));
        check("1m5s10ms", Some(65_010));
        check("0", Some(0));
        check("0s", Some(0));
        check("", None);
        check("5", None);
        check("1s1h", None);
        check("1.5h", None);
        check("-1s", None);
        check("99999999999999999y", None);
    }
}
