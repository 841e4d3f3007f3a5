//! Zero-copy parser for the Prometheus text format 0.0.4 and OpenMetrics 1.0 text.
//!
//! The body is cut into lines; each line is parsed by one small nom function per grammar rule
//! ([`metric_name`], [`label_set`], [`quoted`], [`value`], ...). Names and label values borrow from
//! the input; a label value or HELP text is only copied when it contains an escape sequence.
//!
//! Accepted (both dialects unless noted):
//! - `# HELP name text` (`\\` and `\n` unescaped; OpenMetrics also `\"`), `# TYPE name kind`,
//!   `# UNIT name unit` (OpenMetrics); other comments are ignored;
//! - `name{label="value",...} value [timestamp]`, with a trailing comma allowed in the label set,
//!   `\\`, `\"` and `\n` escapes in label values, spaces or tabs between tokens, blank lines;
//! - values `NaN`, `+Inf`, `-Inf`, `Inf` and any float; timestamps are integer milliseconds in the
//!   text format and float seconds in OpenMetrics (converted to milliseconds, rounded);
//! - OpenMetrics: exemplars (` # {labels} value [timestamp]`) are checked and skipped, and the
//!   body must end with `# EOF` (an optional final newline may follow, nothing else).
//!
//! ```
//! use pharos_model::expfmt::{parse, Entry, Format};
//! let entries = parse("# TYPE up gauge\nup{job=\"a\"} 1 1700000000000\n", Format::Text).unwrap();
//! assert!(matches!(entries[1], Entry::Sample { name: "up", value: 1.0, timestamp: Some(1700000000000), .. }));
//! ```

use std::borrow::Cow;

use nom::{IResult, Parser as _};

use super::MetricType;

/// Which dialect to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// The dialect a `Content-Type` header announces: OpenMetrics for
    /// `application/openmetrics-text`, the text format for anything else (as Prometheus does).
    pub fn from_content_type(content_type: &str) -> Self {
        let media = content_type.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }
}

/// One parsed line of interest.
// Samples are by far the most common entry; boxing their inline labels would bring back the
// allocation per line that `Labels` avoids.
#[allow(clippy::large_enum_variant)]
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
        labels: Labels<'a>,
        /// Value.
        value: f64,
        /// Timestamp in ms, if given.
        timestamp: Option<i64>,
    },
}

/// One label pair of a sample line: name, and value (unescaped; borrowed unless it had escapes).
pub type LabelPair<'a> = (&'a str, Cow<'a, str>);

/// Pairs [`Labels`] holds without allocating.
const INLINE_LABELS: usize = 6;

/// The label pairs of a sample line: up to six inline (no allocation per line), more on the
/// heap. Dereferences to a slice of [`LabelPair`]s and iterates like a `Vec`.
#[derive(Clone)]
pub struct Labels<'a> {
    /// Pairs in `inline[..len]`; 0 once they moved to `spill`.
    len: usize,
    inline: [LabelPair<'a>; INLINE_LABELS],
    /// All pairs once there are more than fit inline; empty before.
    spill: Vec<LabelPair<'a>>,
}

impl<'a> Labels<'a> {
    /// No labels.
    #[inline]
    pub fn new() -> Self {
        Self {
            len: 0,
            inline: std::array::from_fn(|_| ("", Cow::Borrowed(""))),
            spill: Vec::new(),
        }
    }

    /// Appends a pair.
    #[inline(always)]
    pub fn push(&mut self, pair: LabelPair<'a>) {
        if self.spill.is_empty()
            && let Some(slot) = self.inline.get_mut(self.len)
        {
            *slot = pair;
            self.len += 1;
        } else {
            self.push_spilled(pair);
        }
    }

    /// [`Labels::push`] past the inline capacity: moves the inline pairs to the heap first.
    #[cold]
    #[inline(never)]
    fn push_spilled(&mut self, pair: LabelPair<'a>) {
        if self.spill.is_empty() {
            self.spill.reserve(INLINE_LABELS * 2);
            for slot in &mut self.inline[..self.len] {
                self.spill
                    .push(std::mem::replace(slot, ("", Cow::Borrowed(""))));
            }
            self.len = 0;
        }
        self.spill.push(pair);
    }
}

impl Default for Labels<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> std::ops::Deref for Labels<'a> {
    type Target = [LabelPair<'a>];

    #[inline]
    fn deref(&self) -> &Self::Target {
        if self.len == 0 {
            &self.spill
        } else {
            &self.inline[..self.len]
        }
    }
}

impl PartialEq for Labels<'_> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl std::fmt::Debug for Labels<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> FromIterator<LabelPair<'a>> for Labels<'a> {
    fn from_iter<I: IntoIterator<Item = LabelPair<'a>>>(iter: I) -> Self {
        let mut l = Labels::new();
        for p in iter {
            l.push(p);
        }
        l
    }
}

impl<'a> IntoIterator for Labels<'a> {
    type Item = LabelPair<'a>;
    type IntoIter = std::iter::Chain<
        std::iter::Take<std::array::IntoIter<LabelPair<'a>, INLINE_LABELS>>,
        std::vec::IntoIter<LabelPair<'a>>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.inline.into_iter().take(self.len).chain(self.spill)
    }
}

impl<'a, 'b> IntoIterator for &'b Labels<'a> {
    type Item = &'b LabelPair<'a>;
    type IntoIter = std::slice::Iter<'b, LabelPair<'a>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// A parse error with the 1-based line number.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What was expected (and what was found instead).
    pub message: String,
}

/// The nom error of this grammar: what was expected, and the input where it was expected.
#[derive(Debug, Clone, PartialEq)]
struct Expected<'a> {
    input: &'a str,
    what: &'static str,
}

impl<'a> nom::error::ParseError<&'a str> for Expected<'a> {
    fn from_error_kind(input: &'a str, _kind: nom::error::ErrorKind) -> Self {
        Expected {
            input,
            what: "valid syntax",
        }
    }

    fn append(_input: &'a str, _kind: nom::error::ErrorKind, other: Self) -> Self {
        other
    }
}

impl<'a, E> nom::error::FromExternalError<&'a str, E> for Expected<'a> {
    fn from_external_error(input: &'a str, _kind: nom::error::ErrorKind, _e: E) -> Self {
        Expected {
            input,
            what: "valid syntax",
        }
    }
}

type PResult<'a, O> = IResult<&'a str, O, Expected<'a>>;

/// A recoverable error: `what` was expected at `input`.
fn fail<'a, O>(input: &'a str, what: &'static str) -> PResult<'a, O> {
    Err(nom::Err::Error(Expected { input, what }))
}

/// Runs `p`; if it fails, reports `what` as expected at the position where `p` started.
fn expect<'a, O>(
    what: &'static str,
    mut p: impl nom::Parser<&'a str, Output = O, Error = Expected<'a>>,
) -> impl FnMut(&'a str) -> PResult<'a, O> {
    move |i: &'a str| {
        p.parse(i)
            .map_err(|e| e.map(|_| Expected { input: i, what }))
    }
}

/// Bytes of blanks (spaces or tabs) at the start of `i`. A byte loop: nom's `take_while` on
/// `&str` decodes characters, which costs more than the whole rest of a short line.
#[inline]
fn blank_len(i: &str) -> usize {
    i.as_bytes()
        .iter()
        .take_while(|&&c| c == b' ' || c == b'\t')
        .count()
}

/// Spaces or tabs, at least one.
fn blanks1(i: &str) -> PResult<'_, &str> {
    match blank_len(i) {
        0 => Err(nom::Err::Error(Expected {
            input: i,
            what: "valid syntax",
        })),
        n => Ok((&i[n..], &i[..n])),
    }
}

/// Spaces or tabs, possibly none.
#[inline]
fn blanks0(i: &str) -> PResult<'_, &str> {
    let n = blank_len(i);
    Ok((&i[n..], &i[..n]))
}

/// Skips spaces and tabs.
#[inline]
fn skip_blanks(i: &str) -> &str {
    &i[blank_len(i)..]
}

/// A run of non-blank characters (a value or timestamp token); `None` if empty.
#[inline]
fn token(i: &str) -> Option<(&str, &str)> {
    let b = i.as_bytes();
    let n = b
        .iter()
        .position(|&c| c == b' ' || c == b'\t')
        .unwrap_or(b.len());
    // Blanks are ASCII, so `n` is a char boundary.
    (n > 0).then(|| (&i[n..], &i[..n]))
}

/// Byte classes of names, one lookup per byte: bit 0 `[a-zA-Z_]`, bit 1 `[0-9]`, bit 2 `:`.
const NAME_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if b.is_ascii_alphabetic() || b == b'_' {
            t[c] = 1;
        } else if b.is_ascii_digit() {
            t[c] = 2;
        } else if b == b':' {
            t[c] = 4;
        }
        c += 1;
    }
    t
};

/// Splits `i` after the longest prefix whose first byte has a class in `first` and the others
/// a class in `rest` (masks of [`NAME_CLASS`] bits).
#[inline]
fn ident(i: &str, first: u8, rest: u8) -> Option<(&str, &str)> {
    let b = i.as_bytes();
    if b.first()
        .is_none_or(|&c| NAME_CLASS[c as usize] & first == 0)
    {
        return None;
    }
    let n = 1 + b[1..]
        .iter()
        .take_while(|&&c| NAME_CLASS[c as usize] & rest != 0)
        .count();
    // Only ASCII bytes were consumed, so `n` is a char boundary.
    Some((&i[n..], &i[..n]))
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
#[inline]
fn metric_name(i: &str) -> PResult<'_, &str> {
    match ident(i, 1 | 4, 1 | 2 | 4) {
        Some(r) => Ok(r),
        None => fail(i, "metric name"),
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
#[inline]
fn label_name(i: &str) -> PResult<'_, &str> {
    match ident(i, 1, 1 | 2) {
        Some(r) => Ok(r),
        None => fail(i, "label name"),
    }
}

/// Replaces `\\` and `\n` (and `\"` if `quote`) in `s`; other backslashes are kept as they are.
fn unescape(s: &str, quote: bool) -> Cow<'_, str> {
    if !s.as_bytes().contains(&b'\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quote => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

/// `0x01` in every byte of a word.
const LO: u64 = 0x0101_0101_0101_0101;
/// `0x80` in every byte of a word.
const HI: u64 = 0x8080_8080_8080_8080;

/// Marks (high bit) the bytes of `x` equal to `byte`. A byte may be marked falsely only above a
/// truly equal one, so the lowest mark is always exact.
#[inline(always)]
fn eq_mask(x: u64, byte: u8) -> u64 {
    let y = x ^ (LO * u64::from(byte));
    y.wrapping_sub(LO) & !y & HI
}

/// Index of the first `"`, `\\` or `\n` in `b` at or after `from`, eight bytes at a time (SWAR).
#[inline]
fn find_quote_end(b: &[u8], from: usize) -> Option<usize> {
    let mut k = from;
    while let Some(chunk) = b.get(k..k + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let x = u64::from_le_bytes(w);
        let m = eq_mask(x, b'"') | eq_mask(x, b'\\') | eq_mask(x, b'\n');
        if m != 0 {
            return Some(k + (m.trailing_zeros() / 8) as usize);
        }
        k += 8;
    }
    b.get(k..)?
        .iter()
        .position(|&c| matches!(c, b'"' | b'\\' | b'\n'))
        .map(|n| k + n)
}

/// A double-quoted label value with escapes; borrowed unless it contains a backslash.
fn quoted(i: &str) -> PResult<'_, Cow<'_, str>> {
    let Some(body) = i.strip_prefix('"') else {
        return fail(i, "'\"' opening a label value");
    };
    let b = body.as_bytes();
    let mut k = 0;
    let mut escaped = false;
    while let Some(at) = find_quote_end(b, k) {
        k = at;
        match b[k] {
            b'"' => {
                let raw = &body[..k];
                let v = if escaped {
                    unescape(raw, true)
                } else {
                    Cow::Borrowed(raw)
                };
                return Ok((&body[k + 1..], v));
            }
            b'\\' => {
                escaped = true;
                k += 2;
            }
            // A newline cannot occur inside a line; skip it like any other byte.
            _ => k += 1,
        }
    }
    fail(i, "'\"' closing the label value")
}

/// One `name="value"` pair, blanks allowed around `=`.
#[inline]
fn label_pair(i: &str) -> PResult<'_, (&str, Cow<'_, str>)> {
    let (i, name) = label_name(i)?;
    let i = skip_blanks(i);
    let Some(i) = i.strip_prefix('=') else {
        return fail(i, "'=' after the label name");
    };
    let (i, value) = quoted(skip_blanks(i))?;
    Ok((i, (name, value)))
}

/// `{` pairs separated by `,` (a trailing comma allowed) `}`.
fn label_set(i: &str) -> PResult<'_, Labels<'_>> {
    let Some(mut i) = i.strip_prefix('{') else {
        return fail(i, "'{'");
    };
    let mut labels = Labels::new();
    loop {
        i = skip_blanks(i);
        if let Some(rest) = i.strip_prefix('}') {
            return Ok((rest, labels));
        }
        let (rest, pair) = label_pair(i)?;
        labels.push(pair);
        i = skip_blanks(rest);
        if let Some(rest) = i.strip_prefix(',') {
            i = rest;
        } else if !i.starts_with('}') {
            return fail(i, "',' or '}' after a label value");
        }
    }
}

/// A float: digits, `NaN`, `+Inf`, `-Inf`, `Inf` (case-insensitive, as Go's `ParseFloat`).
#[inline]
fn value(i: &str) -> PResult<'_, f64> {
    match token(i) {
        Some((rest, t)) => match parse_float(t) {
            Ok(v) => Ok((rest, v)),
            Err(_) => fail(i, "value (a float, NaN, +Inf or -Inf)"),
        },
        None => fail(i, "value (a float, NaN, +Inf or -Inf)"),
    }
}

/// Exact powers of ten as `f64` (10^22 is the largest one that is).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Decimal floats of the common shapes (`-12`, `0.25`, `1.5e+06`) with at most 15 significant
/// digits and a decimal exponent within ±22: the digits form an exact integer below 2^53 and the
/// power of ten is exact, so one multiplication or division rounds correctly (Clinger's fast
/// path), as the full algorithm would. Anything else is `None`.
#[inline]
fn fast_float(b: &[u8]) -> Option<f64> {
    let (neg, mut k) = match b.first()? {
        b'-' => (true, 1),
        b'+' => (false, 1),
        _ => (false, 0),
    };
    let mut mant: u64 = 0;
    let mut digits = 0usize;
    while let Some(&c) = b.get(k)
        && c.is_ascii_digit()
    {
        mant = mant.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
        digits += 1;
        k += 1;
    }
    let mut exp: i64 = 0;
    if b.get(k) == Some(&b'.') {
        k += 1;
        let from = k;
        while let Some(&c) = b.get(k)
            && c.is_ascii_digit()
        {
            mant = mant.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
            k += 1;
        }
        digits += k - from;
        exp -= (k - from) as i64;
    }
    if digits == 0 || digits > 15 {
        return None;
    }
    if let Some(b'e' | b'E') = b.get(k) {
        k += 1;
        let eneg = match b.get(k) {
            Some(b'-') => {
                k += 1;
                true
            }
            Some(b'+') => {
                k += 1;
                false
            }
            _ => false,
        };
        let from = k;
        let mut e: i64 = 0;
        while let Some(&c) = b.get(k)
            && c.is_ascii_digit()
        {
            e = e * 10 + i64::from(c - b'0');
            k += 1;
            if k - from > 4 {
                return None;
            }
        }
        if k == from {
            return None;
        }
        exp += if eneg { -e } else { e };
    }
    if k != b.len() {
        return None;
    }
    let m = mant as f64;
    let v = if exp >= 0 {
        m * *POW10.get(usize::try_from(exp).ok()?)?
    } else {
        m / *POW10.get(usize::try_from(-exp).ok()?)?
    };
    Some(if neg { -v } else { v })
}

fn parse_float(s: &str) -> Result<f64, std::num::ParseFloatError> {
    match fast_float(s.as_bytes()) {
        Some(v) => Ok(v),
        None => s.parse::<f64>(),
    }
}

/// An integer of at most 18 digits with an optional `-`, else what `str::parse` says.
#[inline]
fn parse_i64(s: &str) -> Result<i64, std::num::ParseIntError> {
    let b = s.as_bytes();
    let (neg, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return s.parse::<i64>();
    }
    let n = digits
        .iter()
        .fold(0i64, |acc, &c| acc * 10 + i64::from(c - b'0'));
    Ok(if neg { -n } else { n })
}

/// Text format timestamp: integer milliseconds.
#[inline]
fn timestamp_ms(i: &str) -> PResult<'_, i64> {
    match token(i) {
        Some((rest, t)) => match parse_i64(t) {
            Ok(v) => Ok((rest, v)),
            Err(_) => fail(i, "timestamp (integer milliseconds)"),
        },
        None => fail(i, "timestamp (integer milliseconds)"),
    }
}

/// OpenMetrics timestamp: float seconds, returned in milliseconds (rounded).
fn timestamp_seconds(i: &str) -> PResult<'_, i64> {
    let Some((rest, secs)) = token(i).and_then(|(rest, t)| Some((rest, parse_float(t).ok()?)))
    else {
        return fail(i, "timestamp (seconds)");
    };
    let ms = secs * 1000.0;
    if !ms.is_finite() || ms.abs() >= 9.2e18 {
        return fail(i, "timestamp (finite seconds)");
    }
    Ok((rest, ms.round() as i64))
}

/// An OpenMetrics exemplar after the value: `# {labels} value [timestamp]`; checked, then dropped.
fn exemplar(i: &str) -> PResult<'_, ()> {
    let (i, _) = expect(
        "'#' starting an exemplar",
        nom::character::complete::char('#'),
    )
    .parse(i)?;
    let (i, _) = blanks0(i)?;
    let (i, _) = label_set(i)?;
    let (i, _) = blanks1(i)?;
    let (i, _) = value(i)?;
    let (i, _) = blanks0(i)?;
    if i.is_empty() {
        return Ok((i, ()));
    }
    let (i, _) = timestamp_seconds(i)?;
    Ok((i, ()))
}

/// A whole sample line: `name[{labels}] value [timestamp] [# exemplar]`.
fn sample_line(i: &str, format: Format) -> PResult<'_, Entry<'_>> {
    let (i, name) = metric_name(i)?;
    let i = skip_blanks(i);
    let (i, labels) = if i.starts_with('{') {
        let (i, l) = label_set(i)?;
        (skip_blanks(i), l)
    } else {
        (i, Labels::new())
    };
    if i.is_empty() {
        return fail(i, "value (a float, NaN, +Inf or -Inf)");
    }
    let (i, value) = value(i)?;
    let mut i = skip_blanks(i);
    let mut timestamp = None;
    let exemplar_next = format == Format::OpenMetrics && i.starts_with('#');
    if !i.is_empty() && !exemplar_next {
        let (rest, t) = match format {
            Format::Text => timestamp_ms(i)?,
            Format::OpenMetrics => timestamp_seconds(i)?,
        };
        timestamp = Some(t);
        i = skip_blanks(rest);
    }
    if format == Format::OpenMetrics && i.starts_with('#') {
        i = exemplar(i)?.0;
    }
    if !i.is_empty() {
        return fail(i, "end of line after the sample");
    }
    Ok((
        i,
        Entry::Sample {
            name,
            labels,
            value,
            timestamp,
        },
    ))
}

/// The common sample line shape in one pass over the body, without looking for the line end
/// first: `name{l="v",...} value[ timestamp]` followed by `\n` or the end of the body, single
/// spaces, label values without escapes, a value [`fast_float`] takes and an integer timestamp
/// (text format only). Returns the entry and the bytes consumed (with the `\n`), or `None` for
/// any other line, which the general path then parses (and reports errors for) as usual, with
/// the same result for the lines accepted here.
#[inline]
fn fast_sample(rest: &str, format: Format) -> Option<(Entry<'_>, usize)> {
    let b = rest.as_bytes();
    let (after, name) = ident(rest, 1 | 4, 1 | 2 | 4)?;
    let mut k = name.len();
    let mut labels = Labels::new();
    if b.get(k) == Some(&b'{') {
        k += 1;
        loop {
            if b.get(k) == Some(&b'}') {
                k += 1;
                break;
            }
            let (_, lname) = ident(rest.get(k..)?, 1, 1 | 2)?;
            k += lname.len();
            if b.get(k..k + 2)? != b"=\"" {
                return None;
            }
            k += 2;
            let end = find_quote_end(b, k)?;
            if b[end] != b'"' {
                return None;
            }
            // `k` follows an ASCII quote and `end` is an ASCII quote: both are char boundaries.
            labels.push((lname, Cow::Borrowed(rest.get(k..end)?)));
            k = end + 1;
            match b.get(k) {
                Some(b',') => k += 1,
                Some(b'}') => {}
                _ => return None,
            }
        }
    } else if after.is_empty() {
        return None;
    }
    if b.get(k) != Some(&b' ') {
        return None;
    }
    k += 1;
    let from = k;
    while let Some(&c) = b.get(k)
        && c != b' '
        && c != b'\n'
    {
        k += 1;
    }
    let value = fast_float(&b[from..k])?;
    let mut timestamp = None;
    if b.get(k) == Some(&b' ') {
        if format != Format::Text {
            return None;
        }
        k += 1;
        let neg = b.get(k) == Some(&b'-');
        if neg {
            k += 1;
        }
        let from = k;
        let mut t: i64 = 0;
        while let Some(&c) = b.get(k)
            && c.is_ascii_digit()
        {
            if k - from == 18 {
                // 19 digits may overflow: the general path decides.
                return None;
            }
            t = t * 10 + i64::from(c - b'0');
            k += 1;
        }
        if k == from {
            return None;
        }
        timestamp = Some(if neg { -t } else { t });
    }
    let consumed = match b.get(k) {
        None => k,
        Some(b'\n') => k + 1,
        Some(_) => return None,
    };
    Some((
        Entry::Sample {
            name,
            labels,
            value,
            timestamp,
        },
        consumed,
    ))
}

/// What a `#` line turned out to be.
#[allow(clippy::large_enum_variant)] // transient, see `Entry`
enum Comment<'a> {
    Entry(Entry<'a>),
    Eof,
    Ignored,
}

/// A line starting with `#`: HELP, TYPE, UNIT, EOF, or an ignored comment.
fn comment_line(line: &str, format: Format) -> PResult<'_, Comment<'_>> {
    let (i, _) = nom::character::complete::char('#').parse(line)?;
    let (i, sp) = blanks0(i)?;
    if format == Format::OpenMetrics && i == "EOF" {
        return Ok(("", Comment::Eof));
    }
    let keyword_end = i.find([' ', '\t']).unwrap_or(i.len());
    let keyword = &i[..keyword_end];
    let kind = match keyword {
        "HELP" | "TYPE" => keyword,
        "UNIT" if format == Format::OpenMetrics => keyword,
        _ => return Ok(("", Comment::Ignored)),
    };
    if sp.is_empty() {
        return Ok(("", Comment::Ignored));
    }
    let (i, _) = expect("metric name after the keyword", blanks1).parse(&i[keyword_end..])?;
    let (i, name) = metric_name(i)?;
    // The rest of the line, after one separating blank.
    let rest = match i.as_bytes().first() {
        None => "",
        Some(b' ' | b'\t') => &i[1..],
        Some(_) => return fail(i, "blank after the metric name"),
    };
    let entry = match kind {
        "HELP" => Entry::Help {
            name,
            text: unescape(rest, format == Format::OpenMetrics),
        },
        "TYPE" => {
            let word = rest.trim_matches([' ', '\t']);
            let known = match format {
                Format::Text => {
                    matches!(
                        word,
                        "counter" | "gauge" | "histogram" | "summary" | "untyped"
                    )
                }
                Format::OpenMetrics => matches!(
                    word,
                    "counter"
                        | "gauge"
                        | "histogram"
                        | "gaugehistogram"
                        | "stateset"
                        | "info"
                        | "summary"
                        | "unknown"
                ),
            };
            match MetricType::parse(word) {
                Some(kind) if known => Entry::Type { name, kind },
                _ => return fail(rest, "metric type"),
            }
        }
        _ => Entry::Unit {
            name,
            unit: rest.trim_matches([' ', '\t']),
        },
    };
    Ok(("", Comment::Entry(entry)))
}

/// An iterator over the entries of a scrape body.
///
/// After the first error it yields nothing more.
#[derive(Debug)]
pub struct Parser<'a> {
    input: &'a str,
    /// Byte offset of the next line.
    pos: usize,
    /// 1-based number of the line last read.
    line: usize,
    format: Format,
    /// Set after an error, after `# EOF`, or at the end of input.
    done: bool,
}

impl<'a> Parser<'a> {
    /// A parser over `input`.
    pub fn new(input: &'a str, format: Format) -> Self {
        Self {
            input,
            pos: 0,
            line: 0,
            format,
            done: false,
        }
    }

    /// The 1-based number of the line last read (0 before the first).
    pub fn line(&self) -> usize {
        self.line
    }

    fn error(&mut self, line_text: &str, e: nom::Err<Expected<'_>>) -> ParseError {
        self.done = true;
        let (at, what) = match e {
            nom::Err::Error(x) | nom::Err::Failure(x) => (x.input, x.what),
            nom::Err::Incomplete(_) => ("", "more input"),
        };
        let column = line_text.len() - at.len().min(line_text.len()) + 1;
        let found = if at.is_empty() {
            "end of line".to_string()
        } else {
            let mut end = at.len().min(24);
            while !at.is_char_boundary(end) {
                end -= 1;
            }
            format!("{:?}", &at[..end])
        };
        ParseError {
            line: self.line,
            message: format!("expected {what} at column {column}, got {found}"),
        }
    }

    fn fail_line(&mut self, message: impl Into<String>) -> ParseError {
        self.done = true;
        ParseError {
            line: self.line,
            message: message.into(),
        }
    }
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Entry<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let input: &'a str = self.input;
            if self.pos >= input.len() {
                self.done = true;
                if self.format == Format::OpenMetrics {
                    self.line += 1;
                    return Some(Err(
                        self.fail_line("expected \"# EOF\" at the end of the body")
                    ));
                }
                return None;
            }
            let rest = &input[self.pos..];
            if let Some((entry, used)) = fast_sample(rest, self.format) {
                self.pos += used;
                self.line += 1;
                return Some(Ok(entry));
            }
            let (raw, advance) = match rest.find('\n') {
                Some(n) => (&rest[..n], n + 1),
                None => (rest, rest.len()),
            };
            self.pos += advance;
            self.line += 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            match line.as_bytes().first() {
                None => continue,
                Some(b'#') => match comment_line(line, self.format) {
                    Ok((_, Comment::Entry(e))) => return Some(Ok(e)),
                    Ok((_, Comment::Ignored)) => continue,
                    Ok((_, Comment::Eof)) => {
                        self.done = true;
                        if self.pos < input.len() {
                            self.line += 1;
                            return Some(Err(self.fail_line("unexpected data after \"# EOF\"")));
                        }
                        return None;
                    }
                    Err(e) => return Some(Err(self.error(line, e))),
                },
                Some(b' ' | b'\t') if self.format == Format::Text => {
                    // The text format allows leading blanks (and lines of only blanks).
                    let trimmed = line.trim_start_matches([' ', '\t']);
                    if trimmed.is_empty() {
                        continue;
                    }
                    return Some(self.sample(line, trimmed));
                }
                Some(_) => return Some(self.sample(line, line)),
            }
        }
        None
    }
}

impl<'a> Parser<'a> {
    fn sample(&mut self, line: &'a str, body: &'a str) -> Result<Entry<'a>, ParseError> {
        match sample_line(body, self.format) {
            Ok((_, e)) => Ok(e),
            Err(e) => Err(self.error(line, e)),
        }
    }
}

/// Parses a whole body.
pub fn parse(input: &str, format: Format) -> Result<Vec<Entry<'_>>, ParseError> {
    Parser::new(input, format).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_float(s: &str, fast: bool) {
        let want = s.parse::<f64>().ok();
        assert_eq!(fast_float(s.as_bytes()).is_some(), fast, "{s}");
        assert_eq!(
            parse_float(s).ok().map(f64::to_bits),
            want.map(f64::to_bits),
            "{s}"
        );
    }

    #[test]
    fn floats_parse_like_std() {
        for (s, fast) in [
            ("0", true),
            ("-0", true),
            ("+7", true),
            ("1.5e+06", true),
            ("1.23456e-7", true),
            (".5", true),
            ("5.", true),
            ("123456789012345", true),
            ("1234567890123456", false),
            ("1e22", true),
            ("1e23", false),
            ("1e-22", true),
            ("1e-23", false),
            ("0.1", true),
            ("1e", false),
            ("1e+", false),
            (".", false),
            ("-", false),
            ("1.2.3", false),
            ("NaN", false),
            ("+Inf", false),
            ("-inf", false),
            ("1x", false),
            ("1e99999", false),
        ] {
            check_float(s, fast);
        }
        // Seeded random decimals of every shape the fast path takes.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..200_000 {
            let digits = 1 + next() % 15;
            let mant = next() % 10u64.pow(digits as u32);
            let point = next() % (digits + 1);
            let text = format!("{mant:0width$}", width = digits as usize);
            let (a, b) = text.split_at(point as usize);
            let e = (next() % 61) as i64 - 30;
            let sign = ["", "-", "+"][(next() % 3) as usize];
            let s = match next() % 3 {
                0 => format!("{sign}{a}.{b}"),
                1 => format!("{sign}{a}.{b}e{e}"),
                _ => format!("{sign}{text}E{e:+}"),
            };
            let want = s.parse::<f64>().map(f64::to_bits).ok();
            assert_eq!(parse_float(&s).ok().map(f64::to_bits), want, "{s}");
        }
        assert_eq!(parse_i64("-1395066363000"), Ok(-1_395_066_363_000));
        assert_eq!(parse_i64("9223372036854775807"), Ok(i64::MAX));
        assert!(parse_i64("9223372036854775808").is_err());
        assert!(parse_i64("-").is_err());
        assert!(parse_i64("1.5").is_err());
    }

    fn s<'a>(
        name: &'a str,
        labels: &[(&'a str, &'a str)],
        value: f64,
        ts: Option<i64>,
    ) -> Entry<'a> {
        Entry::Sample {
            name,
            labels: labels
                .iter()
                .map(|(k, v)| (*k, Cow::Borrowed(*v)))
                .collect(),
            value,
            timestamp: ts,
        }
    }

    #[track_caller]
    fn check(format: Format, input: &str, want: &[Entry<'_>]) {
        match parse(input, format) {
            Ok(got) => assert_eq!(got, want, "input: {input:?}"),
            Err(e) => panic!("input {input:?}: unexpected error {e}"),
        }
    }

    #[track_caller]
    fn check_err(format: Format, input: &str, line: usize, contains: &str) {
        match parse(input, format) {
            Ok(got) => panic!("input {input:?}: expected an error, got {got:?}"),
            Err(e) => {
                assert_eq!(e.line, line, "input {input:?}: {e}");
                assert!(
                    e.message.contains(contains),
                    "input {input:?}: {e} lacks {contains:?}"
                );
            }
        }
    }

    #[test]
    fn text_samples() {
        use Format::Text as T;
        check(T, "", &[]);
        check(T, "\n\n  \n", &[]);
        check(T, "up 1\n", &[s("up", &[], 1.0, None)]);
        check(T, "up 1", &[s("up", &[], 1.0, None)]);
        check(T, "up 1\r\n", &[s("up", &[], 1.0, None)]);
        check(T, "up{} 1\n", &[s("up", &[], 1.0, None)]);
        check(
            T,
            "a:b:c_d 2.5e3 1700000000123\n",
            &[s("a:b:c_d", &[], 2500.0, Some(1700000000123))],
        );
        check(T, "x -3 -5\n", &[s("x", &[], -3.0, Some(-5))]);
        check(
            T,
            "x{a=\"1\",b=\"2\"} 3\n",
            &[s("x", &[("a", "1"), ("b", "2")], 3.0, None)],
        );
        check(T, "x{a=\"1\",} 3\n", &[s("x", &[("a", "1")], 3.0, None)]);
        check(
            T,
            "x{ a = \"1\" , b=\"\" } 3\n",
            &[s("x", &[("a", "1"), ("b", "")], 3.0, None)],
        );
        check(T, "x{a=\",=}\"} 3\n", &[s("x", &[("a", ",=}")], 3.0, None)]);
        check(
            T,
            "x{a=\"häßlich 🌍\"} 3\n",
            &[s("x", &[("a", "häßlich 🌍")], 3.0, None)],
        );
        check(
            T,
            "x\t{a=\"1\"}\t\t7  \n",
            &[s("x", &[("a", "1")], 7.0, None)],
        );
        check(T, "  x 1\n", &[s("x", &[], 1.0, None)]);
        check(
            T,
            "x +Inf\ny -Inf\nz Inf\n",
            &[
                s("x", &[], f64::INFINITY, None),
                s("y", &[], f64::NEG_INFINITY, None),
                s("z", &[], f64::INFINITY, None),
            ],
        );
        check(
            T,
            "a 1\n\nb 2\n",
            &[s("a", &[], 1.0, None), s("b", &[], 2.0, None)],
        );
        check(
            T,
            "a 123456789012345678901\n",
            &[s("a", &[], 123456789012345678901.0, None)],
        );
    }

    #[test]
    fn nan_value() {
        let got = parse("x NaN\n", Format::Text).unwrap();
        assert!(matches!(&got[..], [Entry::Sample { value, .. }] if value.is_nan()));
    }

    #[test]
    fn escapes_and_zero_copy() {
        let got = parse(r#"x{a="q\"\\\n\t",b="plain"} 1"#, Format::Text).unwrap();
        let Entry::Sample { labels, .. } = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(labels[0].1, "q\"\\\n\\t");
        assert!(matches!(labels[0].1, Cow::Owned(_)));
        assert!(matches!(labels[1].1, Cow::Borrowed(_)));
    }

    #[test]
    fn text_comments() {
        use Format::Text as T;
        check(
            T,
            "# HELP x Some \\\\ help\\nnext \\\"q\\\"\n",
            &[Entry::Help {
                name: "x",
                text: Cow::Borrowed("Some \\ help\nnext \\\"q\\\""),
            }],
        );
        check(
            T,
            "# HELP x\n",
            &[Entry::Help {
                name: "x",
                text: Cow::Borrowed(""),
            }],
        );
        check(
            T,
            "# HELP x \n",
            &[Entry::Help {
                name: "x",
                text: Cow::Borrowed(""),
            }],
        );
        check(
            T,
            "# TYPE x counter\n",
            &[Entry::Type {
                name: "x",
                kind: MetricType::Counter,
            }],
        );
        check(
            T,
            "#\tTYPE  x\tsummary \n",
            &[Entry::Type {
                name: "x",
                kind: MetricType::Summary,
            }],
        );
        check(
            T,
            "# TYPE x untyped\n",
            &[Entry::Type {
                name: "x",
                kind: MetricType::Untyped,
            }],
        );
        check(
            T,
            "# just a comment\n#\n#HELP x y\n# UNIT x seconds\n# EOF\n",
            &[],
        );
        check(
            T,
            "# HELP a:b help\n",
            &[Entry::Help {
                name: "a:b",
                text: Cow::Borrowed("help"),
            }],
        );
    }

    #[test]
    fn openmetrics() {
        use Format::OpenMetrics as O;
        check(O, "# EOF\n", &[]);
        check(O, "# EOF", &[]);
        check(
            O,
            "# TYPE x info\n# UNIT x seconds\n# HELP x a \\\"b\\\"\nx_info{a=\"1\"} 1 1.5\n# EOF\n",
            &[
                Entry::Type {
                    name: "x",
                    kind: MetricType::Info,
                },
                Entry::Unit {
                    name: "x",
                    unit: "seconds",
                },
                Entry::Help {
                    name: "x",
                    text: Cow::Borrowed("a \"b\""),
                },
                s("x_info", &[("a", "1")], 1.0, Some(1500)),
            ],
        );
        check(
            O,
            "a_total 3 1520879607.789\n# EOF\n",
            &[s("a_total", &[], 3.0, Some(1520879607789))],
        );
        check(
            O,
            "a_bucket{le=\"1\"} 3 # {trace_id=\"x\"} 0.5 123.4\n# EOF\n",
            &[s("a_bucket", &[("le", "1")], 3.0, None)],
        );
        check(
            O,
            "a_bucket{le=\"1\"} 3 7 # {} 0.5\n# EOF\n",
            &[s("a_bucket", &[("le", "1")], 3.0, Some(7000))],
        );
        check(
            O,
            "# TYPE x unknown\n# EOF\n",
            &[Entry::Type {
                name: "x",
                kind: MetricType::Untyped,
            }],
        );
    }

    #[test]
    fn errors() {
        use Format::{OpenMetrics as O, Text as T};
        check_err(T, "up\n", 1, "expected value");
        check_err(T, "a 1\nb 2\nup{a=\"1\"}\n", 3, "expected value");
        check_err(T, "up abc\n", 1, "expected value");
        check_err(T, "up 1 2.5\n", 1, "expected timestamp");
        check_err(T, "up 1 2 3\n", 1, "expected end of line");
        check_err(T, "1up 1\n", 1, "expected metric name");
        check_err(T, "up{a=1} 1\n", 1, "opening a label value");
        check_err(T, "up{a=\"1} 1\n", 1, "closing the label value");
        check_err(T, "up{a=\"1\" b=\"2\"} 1\n", 1, "',' or '}'");
        check_err(T, "up{a} 1\n", 1, "'='");
        check_err(T, "up{,} 1\n", 1, "label name");
        check_err(T, "up{1a=\"x\"} 1\n", 1, "label name");
        check_err(T, "up{a=\"x\"\n", 1, "',' or '}'");
        check_err(T, "# TYPE x bogus\n", 1, "metric type");
        check_err(T, "# TYPE x info\n", 1, "metric type");
        check_err(T, "# TYPE 9x counter\n", 1, "metric name");
        check_err(T, "# HELP\n", 1, "metric name");
        check_err(T, "up 1 # {a=\"b\"} 1\n", 1, "expected timestamp");
        check_err(O, "up 1\n", 2, "# EOF");
        check_err(O, "", 1, "# EOF");
        check_err(O, "# EOF\nup 1\n", 2, "after \"# EOF\"");
        check_err(O, "# EOF\n\n", 2, "after \"# EOF\"");
        check_err(O, "up 1 # {a=\"b\" 1\n# EOF\n", 1, "',' or '}'");
        check_err(O, "up 1 1e400\n# EOF\n", 1, "timestamp");
        check_err(O, "# TYPE x untyped\n# EOF\n", 1, "metric type");
        // Errors name the column and what was found.
        check_err(T, "up{a=\"1\"} x1\n", 1, "column 11, got \"x1\"");
    }

    #[test]
    fn stops_after_first_error() {
        let mut p = Parser::new("bad\nup 1\n", Format::Text);
        assert!(matches!(p.next(), Some(Err(_))));
        assert!(p.next().is_none());
    }

    #[test]
    fn content_type() {
        assert_eq!(
            Format::from_content_type("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::from_content_type("text/plain; version=0.0.4"),
            Format::Text
        );
        assert_eq!(Format::from_content_type(""), Format::Text);
    }

    const BODY: &str = "# HELP http_requests_total The total \\\\ number\\n of requests.\n\
        # TYPE http_requests_total counter\n\
        http_requests_total{method=\"post\",code=\"200\",} 1027 1395066363000\n\
        http_requests_total{method=\"po\\\"st\",code=\"400\"}    3 1395066363000\n\
        \n\
        # Escaping in label values:\n\
        msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\n\
        metric_without_timestamp_and_labels 12.47\n\
        something_weird{problem=\"division by zero\"} +Inf -3982045\n\
        utf8{v=\"ünï 🌍\"} NaN\n\
        # TYPE rpc_duration_seconds summary\n\
        rpc_duration_seconds{quantile=\"0.5\"} 4773\n\
        rpc_duration_seconds_sum 1.7560473e+07\n";

    #[test]
    fn truncations_never_panic() {
        for format in [Format::Text, Format::OpenMetrics] {
            let om = format!("{BODY}# EOF\n");
            let body = if format == Format::Text { BODY } else { &om };
            assert!(parse(body, format).is_ok());
            for n in 0..body.len() {
                if let Some(prefix) = body.get(..n) {
                    let _ = parse(prefix, format);
                }
                if let Some(suffix) = body.get(n..) {
                    let _ = parse(suffix, format);
                }
            }
        }
        // Assorted garbage.
        for junk in [
            "{",
            "}",
            "\"",
            "#",
            "# ",
            "# TYPE",
            "# TYPE x",
            "x{",
            "x{a",
            "x{a=",
            "x{a=\"",
            "x{a=\"\\",
            "x 1 ",
            "\\",
            "x{a=\"\\\"} 1",
            "\u{0}",
            "é",
        ] {
            let _ = parse(junk, Format::Text);
            let _ = parse(junk, Format::OpenMetrics);
        }
    }

    /// Every line the one-pass fast path accepts, the general path parses to the same entry, and
    /// the fast path consumes exactly that line and its newline.
    #[track_caller]
    fn check_fast(line: &str, format: Format) {
        let Some((got, used)) = fast_sample(line, format) else {
            return;
        };
        let (raw, want_used) = match line.find('\n') {
            Some(n) => (&line[..n], n + 1),
            None => (line, line.len()),
        };
        assert_eq!(used, want_used, "{line:?}");
        assert!(!raw.ends_with('\r'), "{line:?}");
        match sample_line(raw, format) {
            Ok((_, want)) => assert_eq!(got, want, "{line:?} ({format:?})"),
            Err(e) => panic!("{line:?} ({format:?}): fast path accepted, general path: {e:?}"),
        }
    }

    #[test]
    fn fast_path_agrees_with_general_path() {
        let templates = [
            "http_requests_total{method=\"post\",code=\"200\",handler=\"/api\"} 1027 1395066363000\nx 1\n",
            "node_cpu_seconds_total{cpu=\"1\",mode=\"idle\"} 1.5e+06\n",
            "a:b{x=\"h\u{e4}\u{df}lich \u{1f30d} long value here\",} -0.25 -17",
            "up 1\n",
            "up{} 7\r\n",
            "x{a=\"p\\\"q\"} 3\n",
            "x{a=\"1\"} 1 123456789012345678\n",
            "x{a=\"1\"} 1 1234567890123456789\n",
            "x{a=\"1\"} NaN\n",
        ];
        let inserts = [
            "", " ", "\t", "\n", "\r", "\"", "\\", ",", "}", "{", "=", "-", "e", "#", "9", ".",
        ];
        for format in [Format::Text, Format::OpenMetrics] {
            for t in templates {
                check_fast(t, format);
                for (at, _) in t.char_indices() {
                    let (head, tail) = t.split_at(at);
                    let mut chars = tail.chars();
                    chars.next();
                    for ins in inserts {
                        // Replace the character at `at`, and insert before it.
                        check_fast(&format!("{head}{ins}{}", chars.as_str()), format);
                        check_fast(&format!("{head}{ins}{tail}"), format);
                    }
                }
            }
        }
        // The fast path really is taken for the common shapes.
        assert!(fast_sample(templates[0], Format::Text).is_some());
        assert!(fast_sample(templates[1], Format::OpenMetrics).is_some());
        assert!(fast_sample(templates[2], Format::Text).is_some());
        assert!(fast_sample(templates[5], Format::Text).is_none());
    }

    #[test]
    fn labels_spill_past_the_inline_capacity() {
        for n in 0..=INLINE_LABELS * 3 {
            let names: Vec<String> = (0..n).map(|k| format!("l{k}")).collect();
            let want: Vec<LabelPair<'_>> = names
                .iter()
                .map(|k| (k.as_str(), Cow::Owned(format!("v{k}"))))
                .collect();
            let got: Labels<'_> = want.iter().cloned().collect();
            assert_eq!(&got[..], &want[..], "{n} labels");
            assert_eq!(got.len(), n);
            assert_eq!(got.clone(), got);
            assert_eq!(format!("{got:?}"), format!("{want:?}"));
            assert_eq!((&got).into_iter().count(), n);
            assert_eq!(got.into_iter().collect::<Vec<_>>(), want, "{n} labels");
            // Parsed, through both paths (the second has a blank the fast path does not take).
            let set: Vec<String> = names.iter().map(|k| format!("{k}=\"v{k}\"")).collect();
            for line in [
                format!("x{{{}}} 1\n", set.join(",")),
                format!("x{{{}}}  1\n", set.join(",")),
            ] {
                let Ok(entries) = parse(&line, Format::Text) else {
                    panic!("{line:?}");
                };
                let [Entry::Sample { labels, .. }] = &entries[..] else {
                    panic!("{line:?}: {entries:?}");
                };
                assert_eq!(&labels[..], &want[..], "{line:?}");
            }
        }
    }

    #[test]
    fn swar_scan_finds_the_first_stop_byte() {
        let text = "abcdefghijklmnopqrstuvwxyz0123456789";
        for at in 0..text.len() {
            for stop in ['"', '\\', '\n'] {
                let mut s = text.to_string();
                s.replace_range(at..at + 1, &stop.to_string());
                for from in 0..=at {
                    assert_eq!(
                        find_quote_end(s.as_bytes(), from),
                        Some(at),
                        "{s:?} from {from}"
                    );
                }
                assert_eq!(find_quote_end(s.as_bytes(), at + 1), None, "{s:?}");
            }
        }
        // Bytes one above or below a stop byte (the borrow case of the zero-byte trick).
        assert_eq!(find_quote_end(b"!#!#!#!#[]\"", 0), Some(10));
        assert_eq!(find_quote_end(&[0x22 ^ 0x80; 9], 0), None);
        assert_eq!(find_quote_end(b"", 0), None);
        assert_eq!(find_quote_end(b"ab", 5), None);
    }

    #[test]
    fn agrees_with_prometheus_parse() {
        let body = "# HELP a_total A counter\n# TYPE a_total counter\n\
            a_total{x=\"1\",y=\"two\"} 17 1700000000000\n\
            a_total{x=\"2\",y=\"three\"} 18 1700000000000\n\
            # TYPE g gauge\ng 0.25 1700000000500\n\
            u{k=\"v\"} -4 1700000001000\n";
        let theirs =
            prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
        let ours: Vec<_> = parse(body, Format::Text)
            .unwrap()
            .into_iter()
            .filter_map(|e| match e {
                Entry::Sample {
                    name,
                    labels,
                    value,
                    timestamp,
                } => Some((name, labels, value, timestamp)),
                _ => None,
            })
            .collect();
        assert_eq!(theirs.samples.len(), ours.len());
        for (t, (name, labels, value, ts)) in theirs.samples.iter().zip(&ours) {
            assert_eq!(t.metric, *name);
            let v = match t.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                ref other => panic!("unexpected {other:?}"),
            };
            assert_eq!(v, *value);
            assert_eq!(t.timestamp.timestamp_millis(), ts.unwrap());
            assert_eq!(t.labels.len(), labels.len());
            for (k, v) in labels {
                assert_eq!(t.labels.get(k), Some(v.as_ref()), "label {k}");
            }
        }
        assert_eq!(
            theirs.docs.get("a_total").map(String::as_str),
            Some("A counter")
        );
    }
}
