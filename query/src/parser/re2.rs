//! The syntax checks of Go's `regexp/syntax` (RE2 with Perl extensions, as Prometheus compiles
//! label matchers: `^(?:<value>)$`), with Go's error texts. Rust's `regex` crate accepts some
//! patterns Go rejects (`a**`, `a{1001}`) and words its errors differently; this walk reports the
//! first error Go's parser would, so Pharos answers bad matchers as Prometheus does.

/// An error as Go prints it after `error parsing regexp: `.
fn err(code: &str, expr: &str) -> String {
    format!("{code}: `{expr}`")
}

const MISSING_REPEAT: &str = "missing argument to repetition operator";
const NESTED_REPEAT: &str = "invalid nested repetition operator";
const REPEAT_SIZE: &str = "invalid repeat count";
const CHAR_RANGE: &str = "invalid character class range";
const ESCAPE: &str = "invalid escape sequence";
const PERL_OP: &str = "invalid or unsupported Perl syntax";
const NAMED_CAPTURE: &str = "invalid named capture";

/// Checks the matcher value `value` as Prometheus' Go would; the error text (without the
/// `error parsing regexp: ` prefix) of the first problem.
pub(crate) fn check(value: &str) -> Result<(), String> {
    let whole = format!("^(?:{value})$");
    Parser { whole: &whole }.run()
}

struct Parser<'a> {
    whole: &'a str,
}

/// The length in bytes of the first character of `s` (0 if empty).
fn first_len(s: &str) -> usize {
    s.chars().next().map_or(0, char::len_utf8)
}

/// The text of `before` up to where `after` starts.
fn upto<'a>(before: &'a str, after: &str) -> &'a str {
    &before[..before.len() - after.len()]
}

/// Go's `parseInt` for repeat counts: digits without a leading zero; more than 8 digits is -1.
fn parse_int(s: &str) -> Option<(i64, &str)> {
    let b = s.as_bytes();
    if b.first().is_none_or(|c| !c.is_ascii_digit()) {
        return None;
    }
    if b.len() >= 2 && b[0] == b'0' && b[1].is_ascii_digit() {
        return None;
    }
    let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
    let digits = &s[..n];
    let v = if n > 8 {
        -1
    } else {
        digits.parse().unwrap_or(-1)
    };
    Some((v, &s[n..]))
}

/// Go's `parseRepeat`: `{min}`, `{min,}` or `{min,max}`; `None` if `s` is not one (then `{`
/// is a literal).
fn parse_repeat(s: &str) -> Option<(i64, i64, &str)> {
    let s = s.strip_prefix('{')?;
    let (min, s) = parse_int(s)?;
    let (mut min, mut max, s) = match s.strip_prefix(',') {
        None => (min, min, s),
        Some("") => return None,
        Some(rest) if rest.starts_with('}') => (min, -1, rest),
        Some(rest) => {
            let (max, rest) = parse_int(rest)?;
            (min, max, rest)
        }
    };
    if max < -1 {
        min = -1;
        max = 0;
    }
    let rest = s.strip_prefix('}')?;
    Some((min, max, rest))
}

/// Whether `\p{name}` names a Unicode class (checked with Rust's tables, close to Go's).
fn unicode_class_ok(name: &str) -> bool {
    let name = name.strip_prefix('^').unwrap_or(name);
    name == "Any" || regex::Regex::new(&format!(r"\p{{{name}}}")).is_ok()
}

const POSIX: [&str; 14] = [
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

impl<'a> Parser<'a> {
    fn run(&self) -> Result<(), String> {
        let mut t: &str = self.whole;
        // Open groups; whether the top of the stack is a group start or `|` (where a
        // repetition has no argument); the previous token's text if it was a repetition.
        let mut depth = 0usize;
        let mut at_marker = true;
        let mut last_repeat: Option<&str> = None;
        while !t.is_empty() {
            let mut repeat: Option<&str> = None;
            let c = t.as_bytes()[0];
            match c {
                b'(' => {
                    if t.starts_with("(?") {
                        let (rest, group) = self.perl_flags(t)?;
                        if group {
                            depth += 1;
                            at_marker = true;
                        }
                        t = rest;
                    } else {
                        depth += 1;
                        at_marker = true;
                        t = &t[1..];
                    }
                }
                b'|' => {
                    at_marker = true;
                    t = &t[1..];
                }
                b')' => {
                    if depth == 0 {
                        return Err(format!("unexpected ): `{}`", self.whole));
                    }
                    depth -= 1;
                    at_marker = false;
                    t = &t[1..];
                }
                b'^' | b'$' | b'.' => {
                    at_marker = false;
                    t = &t[1..];
                }
                b'[' => {
                    t = self.class(t)?;
                    at_marker = false;
                }
                b'*' | b'+' | b'?' => {
                    let before = t;
                    let mut after = &t[1..];
                    if let Some(a) = after.strip_prefix('?') {
                        after = a;
                    }
                    self.repeat(before, after, last_repeat, at_marker)?;
                    repeat = Some(before);
                    at_marker = false;
                    t = after;
                }
                b'{' => match parse_repeat(t) {
                    None => {
                        at_marker = false;
                        t = &t[1..];
                    }
                    Some((min, max, rest)) => {
                        let before = t;
                        if !(0..=1000).contains(&min) || max > 1000 || (max >= 0 && min > max) {
                            return Err(err(REPEAT_SIZE, upto(before, rest)));
                        }
                        let after = rest.strip_prefix('?').unwrap_or(rest);
                        self.repeat(before, after, last_repeat, at_marker)?;
                        repeat = Some(before);
                        at_marker = false;
                        t = after;
                    }
                },
                b'\\' => {
                    let b = t.as_bytes();
                    if b.len() >= 2 && matches!(b[1], b'A' | b'b' | b'B' | b'z') {
                        at_marker = false;
                        t = &t[2..];
                    } else if b.len() >= 2 && b[1] == b'Q' {
                        let lit = &t[2..];
                        let (lit, rest) = match lit.find(r"\E") {
                            Some(i) => (&lit[..i], &lit[i + 2..]),
                            None => (lit, ""),
                        };
                        if !lit.is_empty() {
                            at_marker = false;
                        }
                        t = rest;
                    } else if let Some(rest) = self.unicode_class(t)? {
                        at_marker = false;
                        t = rest;
                    } else if let Some(rest) = perl_class(t) {
                        at_marker = false;
                        t = rest;
                    } else {
                        t = escape(t)?;
                        at_marker = false;
                    }
                }
                _ => {
                    at_marker = false;
                    t = &t[first_len(t)..];
                }
            }
            last_repeat = repeat;
        }
        if depth > 0 {
            return Err(format!("missing closing ): `{}`", self.whole));
        }
        Ok(())
    }

    /// A repetition operator `before[..before.len()-after.len()]`: Go's nested-repetition and
    /// missing-argument checks.
    fn repeat(
        &self,
        before: &str,
        after: &str,
        last_repeat: Option<&str>,
        at_marker: bool,
    ) -> Result<(), String> {
        if let Some(last) = last_repeat {
            return Err(err(NESTED_REPEAT, upto(last, after)));
        }
        if at_marker {
            return Err(err(MISSING_REPEAT, upto(before, after)));
        }
        Ok(())
    }

    /// `(?...`: a named group, flags `(?i)` or a flagged group `(?i:`. Returns the rest and
    /// whether a group was opened.
    fn perl_flags(&self, s: &'a str) -> Result<(&'a str, bool), String> {
        if s.len() > 4 && s.as_bytes()[2] == b'P' && s.as_bytes()[3] == b'<' {
            let Some(end) = s.find('>') else {
                return Err(err(NAMED_CAPTURE, s));
            };
            let capture = &s[..=end];
            let name = &s[4..end];
            let valid =
                !name.is_empty() && name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric());
            if !valid {
                return Err(err(NAMED_CAPTURE, capture));
            }
            return Ok((&s[end + 1..], true));
        }
        let mut t = &s[2..];
        let mut negated = false;
        let mut saw_flag = false;
        while let Some(c) = t.chars().next() {
            t = &t[c.len_utf8()..];
            match c {
                'i' | 'm' | 's' | 'U' => saw_flag = true,
                '-' => {
                    if negated {
                        break;
                    }
                    negated = true;
                    saw_flag = false;
                }
                ':' | ')' => {
                    if negated && !saw_flag {
                        break;
                    }
                    return Ok((t, c == ':'));
                }
                _ => break,
            }
        }
        Err(err(PERL_OP, upto(s, t)))
    }

    /// `\p{Name}`, `\pL`, `\P...`: the rest after it, `None` if `s` is not one.
    fn unicode_class(&self, s: &'a str) -> Result<Option<&'a str>, String> {
        let b = s.as_bytes();
        if b.len() < 2 || b[0] != b'\\' || (b[1] != b'p' && b[1] != b'P') {
            return Ok(None);
        }
        let t = &s[2..];
        let Some(c) = t.chars().next() else {
            return Ok(None);
        };
        let (seq, name, rest) = if c != '{' {
            let n = 2 + c.len_utf8();
            (&s[..n], &s[2..n], &s[n..])
        } else {
            let Some(end) = s.find('}') else {
                return Err(err(CHAR_RANGE, s));
            };
            (&s[..=end], &s[3..end], &s[end + 1..])
        };
        if !unicode_class_ok(name) {
            return Err(err(CHAR_RANGE, seq));
        }
        Ok(Some(rest))
    }

    /// A character class `[...]` starting at `s`; the rest after it.
    fn class(&self, s: &'a str) -> Result<&'a str, String> {
        let mut t = &s[1..];
        if let Some(r) = t.strip_prefix('^') {
            t = r;
        }
        let mut first = true;
        while t.is_empty() || !t.starts_with(']') || first {
            first = false;
            if t.len() > 2
                && t.starts_with("[:")
                && let Some(i) = t[2..].find(":]")
            {
                let name = &t[..i + 4];
                let inner = name[2..name.len() - 2].trim_start_matches('^');
                if !POSIX.contains(&inner) {
                    return Err(err(CHAR_RANGE, name));
                }
                t = &t[i + 4..];
                continue;
            }
            if let Some(rest) = self.unicode_class(t)? {
                t = rest;
                continue;
            }
            if let Some(rest) = perl_class(t) {
                t = rest;
                continue;
            }
            let rng = t;
            let (lo, rest) = self.class_char(t, s)?;
            t = rest;
            if t.len() >= 2 && t.starts_with('-') && !t[1..].starts_with(']') {
                let (hi, rest) = self.class_char(&t[1..], s)?;
                t = rest;
                if hi < lo {
                    return Err(err(CHAR_RANGE, upto(rng, t)));
                }
            }
        }
        Ok(&t[1..])
    }

    /// One character of a class (maybe escaped); `class` is the class' text from `[` to the
    /// end of the whole expression, for the missing-bracket error.
    fn class_char(&self, s: &'a str, class: &str) -> Result<(u32, &'a str), String> {
        let Some(c) = s.chars().next() else {
            return Err(err("missing closing ]", class));
        };
        if c == '\\' {
            let rest = escape(s)?;
            return Ok((escaped_value(upto(s, rest)), rest));
        }
        Ok((c as u32, &s[c.len_utf8()..]))
    }
}

/// `\d`, `\D`, `\s`, `\S`, `\w`, `\W`: the rest after it.
fn perl_class(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    (b.len() >= 2 && b[0] == b'\\' && matches!(b[1], b'd' | b'D' | b's' | b'S' | b'w' | b'W'))
        .then(|| &s[2..])
}

/// The character an escape denotes (for class ranges); checked by [`escape`] already.
fn escaped_value(esc: &str) -> u32 {
    let body = &esc[1..];
    let mut chars = body.chars();
    match chars.next() {
        Some('a') => 7,
        Some('f') => 12,
        Some('n') => 10,
        Some('r') => 13,
        Some('t') => 9,
        Some('v') => 11,
        Some('x') => {
            let hex = body[1..].trim_start_matches('{').trim_end_matches('}');
            u32::from_str_radix(hex, 16).unwrap_or(0)
        }
        Some(d) if d.is_ascii_digit() => u32::from_str_radix(body, 8).unwrap_or(0),
        Some(c) => c as u32,
        None => 0,
    }
}

/// Go's `parseEscape`: a single-character escape at `s` (starting with `\`); the rest.
fn escape(s: &str) -> Result<&str, String> {
    let t = &s[1..];
    let Some(c) = t.chars().next() else {
        return Err("trailing backslash at end of expression: ``".to_string());
    };
    let mut t = &t[c.len_utf8()..];
    let invalid = |t: &str| Err(err(ESCAPE, upto(s, t)));
    match c {
        '1'..='7' if !t.starts_with(|d: char| ('0'..='7').contains(&d)) => invalid(t),
        '0'..='7' => {
            // Up to two more octal digits.
            for _ in 0..2 {
                if t.starts_with(|d: char| ('0'..='7').contains(&d)) {
                    t = &t[1..];
                }
            }
            Ok(t)
        }
        'x' => {
            if let Some(rest) = t.strip_prefix('{') {
                let mut r: u32 = 0;
                let mut nhex = 0;
                let mut it = rest;
                loop {
                    let Some(ch) = it.chars().next() else {
                        return invalid("");
                    };
                    it = &it[ch.len_utf8()..];
                    if ch == '}' {
                        break;
                    }
                    let Some(v) = ch.to_digit(16) else {
                        return invalid(it);
                    };
                    r = r * 16 + v;
                    if r > 0x10FFFF {
                        return invalid(it);
                    }
                    nhex += 1;
                }
                if nhex == 0 { invalid(it) } else { Ok(it) }
            } else {
                // Two characters are taken, then both must be hex digits.
                if t.is_empty() {
                    return invalid(t);
                }
                let mut rest = t;
                let mut ok = true;
                for _ in 0..2 {
                    match rest.chars().next() {
                        Some(ch) => {
                            ok &= ch.is_ascii_hexdigit();
                            rest = &rest[ch.len_utf8()..];
                        }
                        None => ok = false,
                    }
                }
                if ok { Ok(rest) } else { invalid(rest) }
            }
        }
        'a' | 'f' | 'n' | 'r' | 't' | 'v' => Ok(t),
        c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok(t),
        _ => invalid(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_re(value: &str, want: Result<(), &str>) {
        assert_eq!(check(value), want.map_err(str::to_string), "{value}");
    }

    /// Go's answers, as the real Prometheus 2.42 gives them (see the golden test
    /// `tests/integration/parse_errors.rs`).
    #[test]
    fn go_errors() {
        check_re("a**", Err("invalid nested repetition operator: `**`"));
        check_re("a++", Err("invalid nested repetition operator: `++`"));
        check_re(
            "x{2}{3}",
            Err("invalid nested repetition operator: `{2}{3}`"),
        );
        check_re("a*?", Ok(()));
        check_re("a*?+", Err("invalid nested repetition operator: `*?+`"));
        check_re("*a", Err("missing argument to repetition operator: `*`"));
        check_re("??", Err("missing argument to repetition operator: `??`"));
        check_re("a|*", Err("missing argument to repetition operator: `*`"));
        check_re("(?i)*", Err("missing argument to repetition operator: `*`"));
        check_re("a)", Err("unexpected ): `^(?:a))$`"));
        check_re("(a", Err("missing closing ): `^(?:(a)$`"));
        check_re("[a", Err("missing closing ]: `[a)$`"));
        check_re("[]a]", Ok(()));
        check_re("[z-a]", Err("invalid character class range: `z-a`"));
        check_re("[[:foo:]]", Err("invalid character class range: `[:foo:]`"));
        check_re("[[:alpha:]\\d-]", Ok(()));
        check_re("a{2,1}", Err("invalid repeat count: `{2,1}`"));
        check_re("a{1001}", Err("invalid repeat count: `{1001}`"));
        check_re("a{,5}", Ok(()));
        check_re("a{1000}", Ok(()));
        check_re("\\p{Foo}", Err("invalid character class range: `\\p{Foo}`"));
        check_re("\\p{Greek}\\pL", Ok(()));
        check_re("(?<n>a)", Err("invalid or unsupported Perl syntax: `(?<`"));
        check_re("(?z)", Err("invalid or unsupported Perl syntax: `(?z`"));
        check_re("(?P<n>a)(?i:b)(?-s)", Ok(()));
        check_re("(?P<n>a", Err("missing closing ): `^(?:(?P<n>a)$`"));
        check_re("(?P<>a)", Err("invalid named capture: `(?P<>`"));
        check_re("\\8", Err("invalid escape sequence: `\\8`"));
        check_re("\\y", Err("invalid escape sequence: `\\y`"));
        check_re("\\12\\0\\x41\\x{263a}\\.", Ok(()));
        check_re("\\Q", Err("missing closing ): `^(?:\\Q)$`"));
        check_re("\\Q*\\E+", Ok(()));
        check_re("\\", Err("missing closing ): `^(?:\\)$`"));
        check_re(".*foo.+bar(baz|qux)?", Ok(()));
        check_re(
            "[\\x{110000}]",
            Err("invalid escape sequence: `\\x{110000`"),
        );
        check_re("\\x{zz}", Err("invalid escape sequence: `\\x{z`"));
        check_re("\\x4", Err("invalid escape sequence: `\\x4)`"));
    }
}
