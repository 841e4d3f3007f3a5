//! Serde types of the Prometheus HTTP API JSON (v1), shared by the API server, the dashboard and
//! tests. Field names and order follow Prometheus 2.42.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

use crate::Labels;

/// `status` of the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Request succeeded.
    Success,
    /// Request failed; `errorType` and `error` say why.
    Error,
}

/// Prometheus' `errorType` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    /// 503
    Timeout,
    /// 503
    Canceled,
    /// 422
    Execution,
    /// 400
    BadData,
    /// 500
    Internal,
    /// 502
    Unavailable,
    /// 404
    NotFound,
}

impl ErrorType {
    /// The HTTP status code Prometheus uses for this error type.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorType::Timeout | ErrorType::Canceled => 503,
            ErrorType::Execution => 422,
            ErrorType::BadData => 400,
            ErrorType::Internal => 500,
            ErrorType::Unavailable => 502,
            ErrorType::NotFound => 404,
        }
    }
}

/// The envelope of every API response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response<T> {
    /// success or error.
    pub status: Status,
    /// The payload (absent on errors).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data: Option<T>,
    /// Kind of error.
    #[serde(rename = "errorType", skip_serializing_if = "Option::is_none", default)]
    pub error_type: Option<ErrorType>,
    /// Error message.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    /// Non-fatal warnings.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub warnings: Vec<String>,
}

impl<T> Response<T> {
    /// A success envelope.
    pub fn success(data: T) -> Self {
        Self {
            status: Status::Success,
            data: Some(data),
            error_type: None,
            error: None,
            warnings: Vec::new(),
        }
    }

    /// An error envelope.
    pub fn error(kind: ErrorType, message: impl Into<String>) -> Self {
        Self {
            status: Status::Error,
            data: None,
            error_type: Some(kind),
            error: Some(message.into()),
            warnings: Vec::new(),
        }
    }
}

/// Formats a sample value as the API does: shortest round-trip decimal without exponent, and
/// `NaN`, `+Inf`, `-Inf`.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// Parses a value as formatted by [`format_value`] (also accepts `Inf`, `inf`).
pub fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// Serializes a millisecond timestamp as float seconds the way Prometheus does (`1435781451.781`,
/// or `1435781451` when whole).
pub fn serialize_timestamp<S: Serializer>(t: i64, s: S) -> Result<S::Ok, S::Error> {
    if t % 1000 == 0 {
        s.serialize_i64(t / 1000)
    } else {
        s.serialize_f64(t as f64 / 1000.0)
    }
}

/// One `[timestamp, "value"]` pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Milliseconds.
    pub t: i64,
    /// Value.
    pub v: f64,
}

impl Serialize for Point {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Ts(i64);
        impl Serialize for Ts {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                serialize_timestamp(self.0, s)
            }
        }
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&Ts(self.t))?;
        t.serialize_element(&format_value(self.v))?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for Point {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Point;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a [timestamp, \"value\"] pair")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Point, A::Error> {
                let secs: f64 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let val: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                let v = parse_value(&val)
                    .ok_or_else(|| de::Error::custom(format!("invalid sample value {val:?}")))?;
                Ok(Point {
                    t: (secs * 1000.0).round() as i64,
                    v,
                })
            }
        }
        d.deserialize_seq(V)
    }
}

/// An element of an instant vector.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VectorSample {
    /// Series labels.
    #[serde(deserialize_with = "de_labels")]
    pub metric: Labels,
    /// The sample.
    pub value: Point,
}

/// A series of a range vector.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MatrixSeries {
    /// Series labels.
    #[serde(deserialize_with = "de_labels")]
    pub metric: Labels,
    /// Samples in time order.
    pub values: Vec<Point>,
}

fn de_labels<'de, D: Deserializer<'de>>(d: D) -> Result<Labels, D::Error> {
    let m: BTreeMap<String, String> = BTreeMap::deserialize(d)?;
    Ok(Labels::from_pairs(&m.into_iter().collect::<Vec<_>>()))
}

/// `data` of `/api/v1/query` and `/api/v1/query_range`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
pub enum QueryData {
    /// Instant vector.
    Vector(Vec<VectorSample>),
    /// Range vector.
    Matrix(Vec<MatrixSeries>),
    /// Scalar: `[t, "v"]`.
    Scalar(Point),
    /// String: `[t, "s"]`.
    String(StringPoint),
}

/// A string result `[t, "s"]`.
#[derive(Debug, Clone, PartialEq)]
pub struct StringPoint {
    /// Milliseconds.
    pub t: i64,
    /// The string.
    pub s: String,
}

impl Serialize for StringPoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = Point { t: self.t, v: 0.0 };
        let mut t = s.serialize_tuple(2)?;
        // Reuse the timestamp formatting of Point.
        let ts = serde_json::to_value(p)
            .ok()
            .and_then(|v| v.get(0).cloned())
            .unwrap_or(serde_json::Value::Null);
        t.serialize_element(&ts)?;
        t.serialize_element(&self.s)?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for StringPoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (secs, s): (f64, String) = Deserialize::deserialize(d)?;
        Ok(StringPoint {
            t: (secs * 1000.0).round() as i64,
            s,
        })
    }
}

/// Health of a scrape target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetHealth {
    /// Last scrape succeeded.
    Up,
    /// Last scrape failed.
    Down,
    /// Not scraped yet.
    Unknown,
}

/// One active target, as in `/api/v1/targets`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Labels before relabeling (`__address__`, `__scheme__`, ...).
    pub discovered_labels: BTreeMap<String, String>,
    /// Labels after relabeling.
    pub labels: BTreeMap<String, String>,
    /// The job name.
    pub scrape_pool: String,
    /// The URL scraped.
    pub scrape_url: String,
    /// The URL as reachable from outside.
    pub global_url: String,
    /// Error of the last scrape, or "".
    pub last_error: String,
    /// RFC 3339 time of the last scrape (`0001-01-01T00:00:00Z` before the first).
    pub last_scrape: String,
    /// Seconds the last scrape took.
    pub last_scrape_duration: f64,
    /// Health.
    pub health: TargetHealth,
    /// e.g. `15s`.
    pub scrape_interval: String,
    /// e.g. `10s`.
    pub scrape_timeout: String,
}

/// `data` of `/api/v1/targets`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetsData {
    /// Targets being scraped.
    pub active_targets: Vec<Target>,
    /// Targets dropped by relabeling.
    pub dropped_targets: Vec<serde_json::Value>,
}

/// Something that knows the current scrape targets (the collector), for the API and dashboard.
pub trait TargetsProvider: Send + Sync {
    /// The active targets, sorted by pool then URL.
    fn active_targets(&self) -> Vec<Target>;
}

/// Formats milliseconds since the epoch as RFC 3339 in UTC with millisecond precision, e.g.
/// `2024-01-02T03:04:05.678Z`.
pub fn format_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days` algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01; the inverse of [`civil_from_days`].
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats a duration in ms the way Prometheus prints durations (`1h30m`, `15s`, `0s`).
pub fn format_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms;
    if rest < 0 {
        out.push('-');
        rest = -rest;
    }
    for (unit, size) in [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_points() {
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(0.1), "0.1");
        assert_eq!(format_value(1e21), "1000000000000000000000");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        let p = Point {
            t: 1435781451781,
            v: 1.5,
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"[1435781451.781,"1.5"]"#
        );
        let p = Point {
            t: 1000,
            v: f64::INFINITY,
        };
        assert_eq!(serde_json::to_string(&p).unwrap(), r#"[1,"+Inf"]"#);
        let back: Point = serde_json::from_str(r#"[1435781451.781,"1.5"]"#).unwrap();
        assert_eq!(
            back,
            Point {
                t: 1435781451781,
                v: 1.5
            }
        );
    }

    #[test]
    fn envelope_shape() {
        let r = Response::success(QueryData::Vector(vec![VectorSample {
            metric: Labels::from_pairs(&[("__name__", "up"), ("job", "x")]),
            value: Point { t: 2000, v: 1.0 },
        }]));
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"x"},"value":[2,"1"]}]}}"#
        );
        let e: Response<QueryData> = Response::error(ErrorType::BadData, "boom");
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"status":"error","errorType":"bad_data","error":"boom"}"#
        );
        let s = Response::success(QueryData::String(StringPoint {
            t: 1500,
            s: "x".into(),
        }));
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"status":"success","data":{"resultType":"string","result":[1.5,"x"]}}"#
        );
    }

    #[test]
    fn dates_and_durations() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        for d in [-1000, 0, 11_016, 20_000, 59] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(format_duration(15_000), "15s");
        assert_eq!(format_duration(5_400_000), "1h30m");
        assert_eq!(format_duration(0), "0s");
    }
}
