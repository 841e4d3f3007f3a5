//! Go's number formatting (`%v`, `%g`, `%.4g`, `%e`, `%f`) as the template functions and alert
//! values print numbers, so that annotations read exactly as they do under Prometheus.

/// Decimal digits and the decimal point position of `v` (`v = 0.d1d2... × 10^dp`), rounded to
/// `prec` significant digits, or the shortest round-trip digits when `prec` is `None`.
/// Trailing zeros are trimmed. `v` must be finite and non-negative.
fn digits(v: f64, prec: Option<usize>) -> (Vec<u8>, i32) {
    if v == 0.0 {
        return (vec![], 0);
    }
    let s = match prec {
        Some(p) => format!("{:.*e}", p.saturating_sub(1), v),
        None => format!("{v:e}"),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut d: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    while d.last() == Some(&b'0') {
        d.pop();
    }
    (d, exp + 1)
}

fn special(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("NaN".into())
    } else if v == f64::INFINITY {
        Some("+Inf".into())
    } else if v == f64::NEG_INFINITY {
        Some("-Inf".into())
    } else {
        None
    }
}

fn fmt_e(neg: bool, d: &[u8], dp: i32, frac_digits: usize) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    out.push(d.first().map(|&c| c as char).unwrap_or('0'));
    if frac_digits > 0 {
        out.push('.');
        for i in 1..=frac_digits {
            out.push(d.get(i).map(|&c| c as char).unwrap_or('0'));
        }
    }
    let exp = if d.is_empty() { 0 } else { dp - 1 };
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    let a = exp.unsigned_abs();
    if a < 10 {
        out.push('0');
    }
    out.push_str(&a.to_string());
    out
}

fn fmt_f(neg: bool, d: &[u8], dp: i32, frac_digits: usize) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if dp > 0 {
        for i in 0..dp as usize {
            out.push(d.get(i).map(|&c| c as char).unwrap_or('0'));
        }
    } else {
        out.push('0');
    }
    if frac_digits > 0 {
        out.push('.');
        for i in 0..frac_digits as i32 {
            let j = dp + i;
            let c = if j < 0 {
                '0'
            } else {
                d.get(j as usize).map(|&c| c as char).unwrap_or('0')
            };
            out.push(c);
        }
    }
    out
}

/// Go's `%g` with an optional precision (`%.4g` is `format_g(v, Some(4))`; `%v` is
/// `format_g(v, None)`).
pub fn format_g(v: f64, prec: Option<usize>) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let neg = v.is_sign_negative() && v != 0.0;
    let prec = prec.map(|p| p.max(1));
    let (d, dp) = digits(v.abs(), prec);
    let nd = d.len().max(1) as i32;
    let dp = if d.is_empty() { 1 } else { dp };
    let mut eprec = prec.map(|p| p as i32).unwrap_or(6);
    if prec.is_some() && eprec > nd && nd >= dp {
        eprec = nd;
    }
    if prec.is_none() {
        eprec = 6;
    }
    let exp = dp - 1;
    if exp < -4 || exp >= eprec {
        let p = prec.map(|p| (p as i32).min(nd)).unwrap_or(nd);
        return fmt_e(neg, &d, dp, (p - 1).max(0) as usize);
    }
    let p = match prec {
        Some(p) if (p as i32) > dp => nd,
        Some(p) => p as i32,
        None => nd,
    };
    fmt_f(neg, &d, dp, (p - dp).max(0) as usize)
}

/// Go's `%e` with a precision (default 6), or the shortest digits with `None` (as
/// `strconv.FormatFloat(v, 'e', -1, 64)`, which the API uses for alert values).
pub fn format_e(v: f64, prec: Option<usize>) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let neg = v.is_sign_negative() && v != 0.0;
    match prec {
        Some(p) => {
            let (d, dp) = digits(v.abs(), Some(p + 1));
            fmt_e(neg, &d, dp, p)
        }
        None => {
            let (d, dp) = digits(v.abs(), None);
            fmt_e(neg, &d, dp, d.len().saturating_sub(1))
        }
    }
}

/// Go's `%f` with a precision (default 6).
pub fn format_f(v: f64, prec: usize) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let s = format!("{:.*}", prec, v);
    if s.starts_with("-") && s.trim_start_matches(['-', '0', '.']).is_empty() {
        // Go keeps the sign of negative values that round to zero too.
        return s;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(got: String, want: &str) {
        assert_eq!(got, want);
    }

    #[test]
    fn go_formats() {
        check(format_g(1.0, None), "1");
        check(format_g(1e6, None), "1e+06");
        check(format_g(123456.0, None), "123456");
        check(format_g(123456789.0, None), "1.23456789e+08");
        check(format_g(0.0001, None), "0.0001");
        check(format_g(0.00001, None), "1e-05");
        check(format_g(0.5, None), "0.5");
        check(format_g(-2.25, None), "-2.25");
        check(format_g(0.0, None), "0");
        check(format_g(1234.5, Some(4)), "1234");
        check(format_g(12345.0, Some(4)), "1.234e+04");
        check(format_g(100.0, Some(4)), "100");
        check(format_g(1.5, Some(4)), "1.5");
        check(format_g(0.001, Some(4)), "0.001");
        check(format_g(0.0, Some(4)), "0");
        check(format_g(2.0 / 3.0, Some(4)), "0.6667");
        check(format_g(f64::NAN, Some(4)), "NaN");
        check(format_g(f64::INFINITY, Some(4)), "+Inf");
        check(format_e(1.0, None), "1e+00");
        check(format_e(1234.5, None), "1.2345e+03");
        check(format_e(0.05, None), "5e-02");
        check(format_e(1.0, Some(2)), "1.00e+00");
        check(format_f(1.0 / 3.0, 2), "0.33");
        check(format_f(2.0, 0), "2");
    }
}
