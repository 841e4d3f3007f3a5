//! JSON exactly as Prometheus 2.42 writes it (json-iterator in its standard-library-compatible
//! mode), so that responses match byte for byte:
//!
//! - strings escape `<`, `>`, `&`, U+2028 and U+2029 as `\u003c`-style escapes, and control
//!   characters other than `\n`, `\r`, `\t` as `\u00XX` (lower-case hex);
//! - sample values are strings formatted like Go's `strconv.AppendFloat(v, f, -1, 64)` with
//!   `f = 'e'` when `|v| < 1e-6` or `|v| >= 1e21` (`1e-07`, `1e+21`), else `'f'`; `NaN`,
//!   `+Inf`, `-Inf`;
//! - sample timestamps are seconds with exactly three fraction digits when not whole
//!   (`1672532100.780`);
//! - scalar and string results (marshalled by Go's `encoding/json` in Prometheus) and other
//!   floats as Go's `encoding/json` does (`-1.5`, `'e'` form with the exponent's leading zero
//!   removed); a scalar's value is never in exponent form.
//!
//! Query results are written by hand (they are the large responses); everything else goes
//! through serde with [`GoFormatter`].

use std::io;

use pharos_model::Labels;
use pharos_model::api::{QueryData, StringPoint};
use serde::Serialize;

/// Appends `s` as a JSON string literal, escaped as Go does.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    write_str_body(out, s);
    out.push(b'"');
}

fn write_str_body(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let esc: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            _ => None,
        };
        // U+2028 and U+2029 are E2 80 A8 / E2 80 A9 in UTF-8.
        let line_sep = b == 0xE2
            && bytes.get(i + 1) == Some(&0x80)
            && matches!(bytes.get(i + 2), Some(0xA8 | 0xA9));
        if esc.is_none() && b >= 0x20 && !matches!(b, b'<' | b'>' | b'&') && !line_sep {
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if let Some(e) = esc {
            out.extend_from_slice(e);
            i += 1;
        } else if line_sep {
            out.extend_from_slice(if bytes[i + 2] == 0xA8 {
                b"\\u2028"
            } else {
                b"\\u2029"
            });
            i += 3;
        } else {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xF) as usize]);
            i += 1;
        }
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Go's shortest `'e'` formatting: `1e-07`, `1.5e+21` (at least two exponent digits).
fn go_exp(v: f64) -> String {
    let s = format!("{v:e}");
    let Some((mant, exp)) = s.split_once('e') else {
        return s;
    };
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    let pad = if digits.len() < 2 { "0" } else { "" };
    format!("{mant}e{sign}{pad}{digits}")
}

/// Formats a sample value as Prometheus' API does (see the module docs).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        go_exp(v)
    } else {
        format!("{v}")
    }
}

/// Formats a float as Go's `encoding/json` does (`1e-7`, `1e+21`, `0.25`).
pub fn format_go_float(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let s = go_exp(v);
        // encoding/json turns e-07 into e-7.
        match s.find("e-0") {
            Some(i) if s.len() == i + 4 => format!("{}e-{}", &s[..i], &s[i + 3..]),
            _ => s,
        }
    } else {
        format!("{v}")
    }
}

/// Appends a millisecond timestamp as seconds: `1672532100.780`, `-1.500`, `1672532100`.
pub fn write_timestamp(out: &mut Vec<u8>, t: i64) {
    let mut t = t as i128;
    if t < 0 {
        out.push(b'-');
        t = -t;
    }
    out.extend_from_slice((t / 1000).to_string().as_bytes());
    let frac = t % 1000;
    if frac != 0 {
        out.extend_from_slice(format!(".{frac:03}").as_bytes());
    }
}

/// Appends `[t, "v"]`.
fn write_point(out: &mut Vec<u8>, t: i64, v: f64) {
    out.push(b'[');
    write_timestamp(out, t);
    out.extend_from_slice(b",\"");
    out.extend_from_slice(format_value(v).as_bytes());
    out.extend_from_slice(b"\"]");
}

/// Appends a label set as a JSON object (labels are sorted by name).
pub fn write_labels(out: &mut Vec<u8>, l: &Labels) {
    out.push(b'{');
    for (i, x) in l.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, &x.name);
        out.push(b':');
        write_str(out, &x.value);
    }
    out.push(b'}');
}

/// Writes the `data` of a query response, `{"resultType":..,"result":..}`, to `w`, one series
/// at a time (so a streamed body holds at most one series' text beyond its pending chunk).
pub fn write_query_data<W: io::Write + ?Sized>(w: &mut W, d: &QueryData) -> io::Result<()> {
    let kind = match d {
        QueryData::Vector(_) => "vector",
        QueryData::Matrix(_) => "matrix",
        QueryData::Scalar(_) => "scalar",
        QueryData::String(_) => "string",
    };
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(b"{\"resultType\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"result\":");
    match d {
        QueryData::Vector(v) => {
            out.push(b'[');
            for (i, s) in v.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"metric\":");
                write_labels(&mut out, &s.metric);
                out.extend_from_slice(b",\"value\":");
                write_point(&mut out, s.value.t, s.value.v);
                out.push(b'}');
                if out.len() >= 4096 {
                    w.write_all(&out)?;
                    out.clear();
                }
            }
            out.push(b']');
        }
        QueryData::Matrix(m) => {
            out.push(b'[');
            for (i, s) in m.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"metric\":");
                write_labels(&mut out, &s.metric);
                out.extend_from_slice(b",\"values\":[");
                for (j, p) in s.values.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    write_point(&mut out, p.t, p.v);
                    if out.len() >= 4096 {
                        w.write_all(&out)?;
                        out.clear();
                    }
                }
                out.extend_from_slice(b"]}");
            }
            out.push(b']');
        }
        // Scalars and strings are marshalled by Go's encoding/json in Prometheus 2.42: the time
        // is a float (`-1.5`, `1672532100.78`) and a scalar's value is never in exponent form.
        QueryData::Scalar(p) => {
            out.push(b'[');
            out.extend_from_slice(format_go_float(p.t as f64 / 1000.0).as_bytes());
            out.extend_from_slice(b",\"");
            let v = if p.v.is_finite() {
                format!("{}", p.v)
            } else {
                format_value(p.v)
            };
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\"]");
        }
        QueryData::String(StringPoint { t, s }) => {
            out.push(b'[');
            out.extend_from_slice(format_go_float(*t as f64 / 1000.0).as_bytes());
            out.push(b',');
            write_str(&mut out, s);
            out.push(b']');
        }
    }
    out.push(b'}');
    w.write_all(&out)
}

/// A serde_json formatter that escapes strings and formats floats as Go does.
#[derive(Debug, Default, Clone, Copy)]
pub struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut buf = Vec::with_capacity(fragment.len());
        write_str_body(&mut buf, fragment);
        w.write_all(&buf)
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        escape: serde_json::ser::CharEscape,
    ) -> io::Result<()> {
        use serde_json::ser::CharEscape as E;
        let s: String = match escape {
            E::Quote => "\\\"".into(),
            E::ReverseSolidus => "\\\\".into(),
            E::Solidus => "/".into(),
            E::LineFeed => "\\n".into(),
            E::CarriageReturn => "\\r".into(),
            E::Tab => "\\t".into(),
            E::Backspace => "\\u0008".into(),
            E::FormFeed => "\\u000c".into(),
            E::AsciiControl(b) => format!("\\u{b:04x}"),
        };
        w.write_all(s.as_bytes())
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, v: f64) -> io::Result<()> {
        w.write_all(format_go_float(v).as_bytes())
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, w: &mut W, v: f32) -> io::Result<()> {
        self.write_f64(w, v as f64)
    }
}

/// Writes `v` serialized with [`GoFormatter`] to `out`.
pub fn write_serde<W: io::Write, T: Serialize + ?Sized>(out: W, v: &T) -> serde_json::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(out, GoFormatter);
    v.serialize(&mut ser)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_value(v: f64, want: &str) {
        assert_eq!(format_value(v), want, "{v:e}");
    }

    #[test]
    fn values() {
        check_value(0.0, "0");
        check_value(-0.0, "-0");
        check_value(1.0, "1");
        check_value(0.1, "0.1");
        check_value(1e-7, "1e-07");
        check_value(1e-6, "0.000001");
        check_value(-0.000123, "-0.000123");
        check_value(1e21, "1e+21");
        check_value(1.5e300, "1.5e+300");
        check_value(1e20, "100000000000000000000");
        check_value(1.2345e-10, "1.2345e-10");
        check_value(f64::NAN, "NaN");
        check_value(f64::INFINITY, "+Inf");
        check_value(f64::NEG_INFINITY, "-Inf");
        check_value(f64::MIN_POSITIVE, "2.2250738585072014e-308");
    }

    #[test]
    fn go_floats() {
        for (v, want) in [
            (1e-7, "1e-7"),
            (1e21, "1e+21"),
            (0.25, "0.25"),
            (1e-10, "1e-10"),
        ] {
            assert_eq!(format_go_float(v), want);
        }
    }

    #[track_caller]
    fn check_ts(t: i64, want: &str) {
        let mut out = b"x".to_vec();
        write_timestamp(&mut out, t);
        assert_eq!(String::from_utf8(out).unwrap(), format!("x{want}"));
    }

    #[test]
    fn timestamps() {
        check_ts(0, "0");
        check_ts(1_672_532_100_780, "1672532100.780");
        check_ts(1_672_532_100_005, "1672532100.005");
        check_ts(1000, "1");
        check_ts(-1500, "-1.500");
        check_ts(-5, "-0.005");
        check_ts(i64::MIN, "-9223372036854775.808");
    }

    #[track_caller]
    fn check_str(s: &str, want: &str) {
        let mut out = b"[".to_vec();
        write_str(&mut out, s);
        out.push(b']');
        assert_eq!(String::from_utf8(out).unwrap(), format!("[{want}]"));
        let mut via_serde = Vec::new();
        write_serde(&mut via_serde, s).unwrap();
        assert_eq!(String::from_utf8(via_serde).unwrap(), want, "serde path");
    }

    #[test]
    fn strings() {
        check_str("plain", r#""plain""#);
        check_str("a\"b\\c", r#""a\"b\\c""#);
        check_str("<b>&", r#""\u003cb\u003e\u0026""#);
        check_str("ü\u{2028}x\u{2029}", r#""ü\u2028x\u2029""#);
        check_str(
            "\n\r\t\u{8}\u{c}\u{1}\u{1f}",
            r#""\n\r\t\u0008\u000c\u0001\u001f""#,
        );
        check_str("/", r#""/""#);
        check_str("", r#""""#);
    }
}
