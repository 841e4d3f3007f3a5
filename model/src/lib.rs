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
