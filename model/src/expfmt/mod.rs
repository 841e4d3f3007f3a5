//! The Prometheus text exposition format (0.0.4) and OpenMetrics 1.0: data types, a writer
//! ([`write_text`]) and a zero-copy parser ([`parse`]).

use std::fmt::Write as _;

mod parser;

pub use parser::{Entry, Format, LabelPair, Labels, ParseError, Parser, parse};

/// Content type of the Prometheus text format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of OpenMetrics text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `# TYPE` of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricType {
    /// counter
    Counter,
    /// gauge
    Gauge,
    /// histogram
    Histogram,
    /// summary
    Summary,
    /// untyped (OpenMetrics: unknown)
    #[default]
    Untyped,
    /// OpenMetrics info
    Info,
    /// OpenMetrics stateset
    StateSet,
    /// OpenMetrics gaugehistogram
    GaugeHistogram,
}

impl MetricType {
    /// The keyword in `# TYPE` lines of the text format.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Summary => "summary",
            MetricType::Untyped => "untyped",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::GaugeHistogram => "gaugehistogram",
        }
    }

    /// Parses a `# TYPE` keyword (text format and OpenMetrics spellings).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            "untyped" | "unknown" => MetricType::Untyped,
            "info" => MetricType::Info,
            "stateset" => MetricType::StateSet,
            "gaugehistogram" => MetricType::GaugeHistogram,
            _ => return None,
        })
    }
}

/// One sample line of a family, with its full name (e.g. `x_bucket` in histogram `x`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSample {
    /// Full metric name of the line.
    pub name: String,
    /// Label pairs in output order.
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
    /// Optional timestamp in ms.
    pub timestamp: Option<i64>,
}

/// A metric family: HELP, TYPE and its sample lines.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricFamily {
    /// Family name.
    pub name: String,
    /// HELP text (unescaped).
    pub help: String,
    /// TYPE.
    pub kind: MetricType,
    /// Sample lines.
    pub samples: Vec<MetricSample>,
}

impl MetricFamily {
    /// A new empty family.
    pub fn new(name: impl Into<String>, help: impl Into<String>, kind: MetricType) -> Self {
        Self {
            name: name.into(),
            help: help.into(),
            kind,
            samples: Vec::new(),
        }
    }

    /// Adds a sample line named like the family.
    pub fn push(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        let name = self.name.clone();
        self.push_named(name, labels, value)
    }

    /// Adds a sample line with its own name (`_bucket`, `_sum`, `_count`, `_total`...).
    pub fn push_named(
        &mut self,
        name: impl Into<String>,
        labels: &[(&str, &str)],
        value: f64,
    ) -> &mut Self {
        self.samples.push(MetricSample {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
            timestamp: None,
        });
        self
    }
}

/// Formats a float exactly as Prometheus' Go client does (`strconv.FormatFloat(v, 'g', -1, 64)`):
/// the shortest round-trip digits, in exponent form (`2.5325268992e+10`, `5e-06`) when the decimal
/// exponent is below -4 or at least 6; `NaN`, `+Inf`, `-Inf`.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-trip mantissa, e.g. "2.5325268992e10", "5e-6".
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        format!("{v}")
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    }
}

fn escape_into(out: &mut String, s: &str, quote: bool) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// Writes families in the Prometheus text format 0.0.4.
pub fn write_text(out: &mut String, families: &[MetricFamily]) {
    for f in families {
        if !f.help.is_empty() {
            out.push_str("# HELP ");
            out.push_str(&f.name);
            out.push(' ');
            escape_into(out, &f.help, false);
            out.push('\n');
        }
        out.push_str("# TYPE ");
        out.push_str(&f.name);
        out.push(' ');
        out.push_str(match f.kind {
            MetricType::Info | MetricType::StateSet => "gauge",
            MetricType::GaugeHistogram => "histogram",
            k => k.as_str(),
        });
        out.push('\n');
        for s in &f.samples {
            out.push_str(&s.name);
            if !s.labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in s.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(k);
                    out.push_str("=\"");
                    escape_into(out, v, true);
                    out.push('"');
                }
                out.push('}');
            }
            out.push(' ');
            out.push_str(&format_float(s.value));
            if let Some(t) = s.timestamp {
                let _ = write!(out, " {t}");
            }
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_text_format() {
        let mut f = MetricFamily::new(
            "x_total",
            "A \"counter\"\nwith \\ newline",
            MetricType::Counter,
        );
        f.push(&[("a", "q\"\\\n")], 1.5).push(&[], f64::INFINITY);
        let mut out = String::new();
        write_text(&mut out, &[f]);
        assert_eq!(
            out,
            "# HELP x_total A \"counter\"\\nwith \\\\ newline\n# TYPE x_total counter\nx_total{a=\"q\\\"\\\\\\n\"} 1.5\nx_total +Inf\n"
        );
    }

    #[test]
    fn floats() {
        #[track_caller]
        fn check(v: f64, want: &str) {
            assert_eq!(format_float(v), want, "{v:?}");
        }
        // Expectations are what Go's strconv.FormatFloat(v, 'g', -1, 64) prints.
        check(1.0, "1");
        check(0.0, "0");
        check(-0.0, "-0");
        check(123456.5, "123456.5");
        check(999999.0, "999999");
        check(1e6, "1e+06");
        check(1234567.0, "1.234567e+06");
        check(25325268992.0, "2.5325268992e+10");
        check(0.0001, "0.0001");
        check(0.00001, "1e-05");
        check(5e-6, "5e-06");
        check(1e-300, "1e-300");
        check(-1.5e100, "-1.5e+100");
        check(f64::NAN, "NaN");
        check(f64::NEG_INFINITY, "-Inf");
    }
}
