//! Zero-copy parser for the text exposition formats. (Being written: see the collector issue.)

use std::borrow::Cow;

use super::MetricType;

/// Which dialect to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

/// One parsed line of interest.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'a> {
    /// `# HELP name text` (text unescaped).
    Help {
        /// Family name.
        name: &'a str,
        /// Unescaped help text.
        text: Cow<'a, str>,
    },
    /// `# TYPE name kind`.
    Type {
        /// Family name.
        name: &'a str,
        /// Kind.
        kind: MetricType,
    },
    /// `# UNIT name unit` (OpenMetrics).
    Unit {
        /// Family name.
        name: &'a str,
        /// Unit.
        unit: &'a str,
    },
    /// A sample line.
    Sample {
        /// Metric name.
        name: &'a str,
        /// Label pairs (values unescaped), in input order.
        labels: Vec<(&'a str, Cow<'a, str>)>,
        /// Value.
        value: f64,
        /// Timestamp in ms, if given.
        timestamp: Option<i64>,
    },
}

/// A parse error with the 1-based line number.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What was expected.
    pub message: String,
}

/// An iterator over the entries of a scrape body.
#[derive(Debug)]
pub struct Parser<'a> {
    _input: &'a str,
    _format: Format,
}

impl<'a> Parser<'a> {
    /// A parser over `input`.
    pub fn new(input: &'a str, format: Format) -> Self {
        Self {
            _input: input,
            _format: format,
        }
    }
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Entry<'a>, ParseError>;
    fn next(&mut self) -> Option<Self::Item> {
        None
    }
}

/// Parses a whole body.
pub fn parse(input: &str, format: Format) -> Result<Vec<Entry<'_>>, ParseError> {
    Parser::new(input, format).collect()
}
