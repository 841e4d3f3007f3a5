//! The PromQL lexer: turns the query into tokens with byte positions.
//!
//! Each token kind is one small nom recognizer; the driver loop skips whitespace and `#` comments.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while};
use nom::character::complete::{char, digit0, digit1, hex_digit1, one_of, satisfy};
use nom::combinator::{opt, recognize};
use nom::multi::many1;
use nom::sequence::pair;
use nom::{IResult, Parser};

use super::ParseError;

/// A token kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// An identifier or keyword (may contain `:`).
    Ident(String),
    /// A number literal (including `Inf`/`NaN`).
    Number(f64),
    /// A duration literal in milliseconds.
    Duration(i64),
    /// A string literal, unquoted.
    Str(String),
    /// Punctuation and operators, as written.
    Punct(&'static str),
    /// The end of input.
    Eof,
}

/// A token with its byte span.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
}

impl Token {
    /// How Prometheus names the token in "unexpected ..." messages; `src` is the whole query.
    pub(crate) fn describe(&self, src: &str) -> String {
        let text = src.get(self.start..self.end).unwrap_or("");
        let quoted = |t: &str| {
            if t.chars().count() > 10 {
                format!("{:?}...", t.chars().take(10).collect::<String>())
            } else {
                format!("{t:?}")
            }
        };
        match &self.tok {
            Tok::Ident(s) => {
                let lower = s.to_ascii_lowercase();
                match lower.as_str() {
                    "and" | "or" | "unless" | "atan2" => format!("<op:{s}>"),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                    | "bool" | "offset" => format!("<{s}>"),
                    _ if crate::ast::AggOp::from_name(&lower).is_some() => format!("<aggr:{s}>"),
                    _ if s.contains(':') => format!("metric identifier {s:?}"),
                    _ => format!("identifier {s:?}"),
                }
            }
            Tok::Number(_) => format!("number {}", quoted(text)),
            Tok::Duration(_) => format!("duration {}", quoted(text)),
            Tok::Str(_) => format!("string {}", quoted(text)),
            Tok::Punct(p) => match *p {
                "(" | ")" | "{" | "}" | "[" | "]" | "," | ":" | "=" | "@" => format!("{p:?}"),
                _ => format!("<op:{p}>"),
            },
            Tok::Eof => "end of input".into(),
        }
    }
}

const PUNCTS: &[&str] = &[
    "==", "!=", "<=", ">=", "=~", "!~", "(", ")", "{", "}", "[", "]", ",", ":", "=", "+", "-", "*",
    "/", "%", "^", "<", ">", "@",
];

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
fn ident(i: &str) -> IResult<&str, &str> {
    recognize(pair(satisfy(is_ident_start), take_while(is_ident_char))).parse(i)
}

/// One `<digits><unit>` part of a duration.
fn duration_part(i: &str) -> IResult<&str, (&str, &str)> {
    pair(
        digit1,
        alt((
            tag("ms"),
            tag("s"),
            tag("m"),
            tag("h"),
            tag("d"),
            tag("w"),
            tag("y"),
        )),
    )
    .parse(i)
}

/// A (compound) duration such as `5m` or `1h30m`, in milliseconds.
pub(crate) fn duration(i: &str) -> IResult<&str, i64> {
    let (rest, parts) = many1(duration_part).parse(i)?;
    // A duration must not run into an identifier (`5min` is not a duration).
    if rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Verify,
        )));
    }
    let mut total: i64 = 0;
    let mut last_rank = usize::MAX;
    for (n, unit) in parts {
        let (rank, size) = match unit {
            "y" => (6, 365 * 86_400_000i64),
            "w" => (5, 7 * 86_400_000),
            "d" => (4, 86_400_000),
            "h" => (3, 3_600_000),
            "m" => (2, 60_000),
            "s" => (1, 1000),
            _ => (0, 1),
        };
        // Units must appear in decreasing order, each at most once.
        if rank >= last_rank {
            return Err(nom::Err::Error(nom::error::Error::new(
                i,
                nom::error::ErrorKind::Verify,
            )));
        }
        last_rank = rank;
        let n: i64 = n.parse().map_err(|_| {
            nom::Err::Error(nom::error::Error::new(i, nom::error::ErrorKind::Digit))
        })?;
        total = n
            .checked_mul(size)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| {
                nom::Err::Error(nom::error::Error::new(i, nom::error::ErrorKind::TooLarge))
            })?;
    }
    Ok((rest, total))
}

/// A number: hex `0x1f`, decimal with optional fraction and exponent.
fn number(i: &str) -> IResult<&str, &str> {
    let hex: IResult<&str, _> = pair(alt((tag("0x"), tag("0X"))), hex_digit1).parse(i);
    if let Ok((rest, _)) = hex {
        return Ok((rest, &i[..i.len() - rest.len()]));
    }
    let (mut rest, _) = alt((
        pair(digit1, opt(pair(char('.'), digit0))).map(|_| ()),
        pair(char('.'), digit1).map(|_| ()),
    ))
    .parse(i)?;
    let exp: IResult<&str, _> = (one_of("eE"), opt(one_of("+-")), digit1).parse(rest);
    if let Ok((r, _)) = exp {
        rest = r;
    }
    Ok((rest, &i[..i.len() - rest.len()]))
}

fn parse_number(s: &str) -> Option<f64> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return i64::from_str_radix(h, 16).ok().map(|v| v as f64);
    }
    // Like Go's ParseInt(s, 0, 64): a leading 0 on an all-digit literal means octal.
    if s.len() > 1
        && s.starts_with('0')
        && s.bytes().all(|b| b.is_ascii_digit())
        && let Ok(v) = i64::from_str_radix(&s[1..], 8)
    {
        return Some(v as f64);
    }
    s.parse().ok()
}

/// Unquotes a string literal starting at the quote; returns the value and the bytes consumed.
fn string_lit(input: &str, start: usize) -> Result<(String, usize), ParseError> {
    let mut chars = input.char_indices();
    let Some((_, q)) = chars.next() else {
        return Err(ParseError::new(start, "unterminated quoted string"));
    };
    let mut out = String::new();
    if q == '`' {
        for (i, c) in chars {
            if c == '`' {
                return Ok((out, i + 1));
            }
            out.push(c);
        }
        return Err(ParseError::new(start, "unterminated raw string"));
    }
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == q => return Ok((out, i + 1)),
            '\n' => return Err(ParseError::new(start, "unterminated quoted string")),
            '\\' => {
                let Some((j, e)) = chars.next() else { break };
                let simple = match e {
                    'a' => Some('\x07'),
                    'b' => Some('\x08'),
                    'f' => Some('\x0c'),
                    'n' => Some('\n'),
                    'r' => Some('\r'),
                    't' => Some('\t'),
                    'v' => Some('\x0b'),
                    '\\' => Some('\\'),
                    '"' | '\'' if e == q => Some(e),
                    _ => None,
                };
                if let Some(s) = simple {
                    out.push(s);
                    continue;
                }
                let (len, radix) = match e {
                    'x' => (2, 16),
                    'u' => (4, 16),
                    'U' => (8, 16),
                    '0'..='7' => (3, 8),
                    _ => {
                        return Err(ParseError::new(start + j - 1, "unknown escape sequence"));
                    }
                };
                let digits_start = if radix == 8 { j } else { j + 1 };
                let digits = input.get(digits_start..digits_start + len).unwrap_or("");
                let code = u32::from_str_radix(digits, radix)
                    .ok()
                    .filter(|_| digits.len() == len);
                let Some(code) = code else {
                    return Err(ParseError::new(start + j - 1, "invalid escape sequence"));
                };
                if radix == 8 || e == 'x' {
                    // Octal and \x escapes are bytes; treat as Latin-1 code points when not ASCII.
                    out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                } else {
                    match char::from_u32(code) {
                        Some(c) => out.push(c),
                        None => {
                            return Err(ParseError::new(start + j - 1, "invalid escape sequence"));
                        }
                    }
                }
                let skip = if radix == 8 { len - 1 } else { len };
                for _ in 0..skip {
                    chars.next();
                }
            }
            c => out.push(c),
        }
    }
    Err(ParseError::new(start, "unterminated quoted string"))
}

/// Splits `input` into tokens, ending with [`Tok::Eof`].
pub(crate) fn lex(input: &str) -> Result<Vec<Token>, ParseError> {
    let mut toks = Vec::new();
    let mut pos = 0;
    // Inside `[...]` a colon separates range and step instead of starting an identifier.
    let mut in_brackets = false;
    // A colon was seen inside the current brackets (the subquery step follows).
    let mut bracket_colon = false;
    let mut in_braces = false;
    let mut parens = 0usize;
    while pos < input.len() {
        let rest = &input[pos..];
        let Some(c) = rest.chars().next() else { break };
        if c.is_whitespace() {
            pos += c.len_utf8();
            continue;
        }
        if c == '#' {
            pos += rest.find('\n').unwrap_or(rest.len());
            continue;
        }
        let start = pos;
        if c == '"' || c == '\'' || c == '`' {
            let (s, used) = string_lit(rest, start)?;
            pos += used;
            toks.push(Token {
                tok: Tok::Str(s),
                start,
                end: pos,
            });
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && rest[1..].starts_with(|c: char| c.is_ascii_digit())) {
            if let Ok((r, ms)) = duration(rest) {
                pos += rest.len() - r.len();
                toks.push(Token {
                    tok: Tok::Duration(ms),
                    start,
                    end: pos,
                });
                continue;
            }
            let Ok((r, text)) = number(rest) else {
                return Err(ParseError::new(
                    start,
                    format!("bad number or duration syntax: {c:?}"),
                ));
            };
            if r.starts_with('.') {
                // As Prometheus: the number ends before a second point.
                return Err(ParseError::new(
                    start + text.len(),
                    "unexpected character: '.'",
                ));
            }
            if r.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                // Prometheus shows the number alone, or with the whole word after a duration
                // unit; inside a range it speaks of a duration.
                let bad = if r.starts_with(['s', 'm', 'h', 'd', 'w', 'y']) {
                    let end = r.find(|c: char| !is_ident_char(c)).unwrap_or(r.len());
                    &rest[..text.len() + end]
                } else {
                    text
                };
                let what = if in_brackets && !bracket_colon {
                    "bad duration syntax"
                } else {
                    "bad number or duration syntax"
                };
                return Err(ParseError::new(start, format!("{what}: {bad:?}")));
            }
            let Some(v) = parse_number(text) else {
                return Err(ParseError::new(
                    start,
                    format!("bad number syntax: {text:?}"),
                ));
            };
            pos += text.len();
            toks.push(Token {
                tok: Tok::Number(v),
                start,
                end: pos,
            });
            continue;
        }
        if is_ident_start(c)
            && !(in_brackets && c == ':')
            && let Ok((r, word)) = ident(rest)
        {
            pos += rest.len() - r.len();
            let lower = word.to_ascii_lowercase();
            let tok = match lower.as_str() {
                "inf" => Tok::Number(f64::INFINITY),
                "nan" => Tok::Number(f64::NAN),
                _ => Tok::Ident(word.to_string()),
            };
            toks.push(Token {
                tok,
                start,
                end: pos,
            });
            continue;
        }
        if !in_braces && (rest.starts_with("=~") || rest.starts_with("!~")) {
            return Err(ParseError::new(
                start,
                format!("unexpected character after '{c}': '~'"),
            ));
        }
        if c == '!' && !rest.starts_with("!=") && !rest.starts_with("!~") {
            let after = rest[1..]
                .chars()
                .next()
                .map(|a| format!("{a:?}"))
                .unwrap_or_default();
            return Err(ParseError::new(
                start,
                format!("unexpected character after '!': {after}"),
            ));
        }
        let Some(p) = PUNCTS.iter().find(|p| rest.starts_with(**p)) else {
            return Err(ParseError::new(
                start,
                format!("unexpected character: {c:?}"),
            ));
        };
        pos += p.len();
        match *p {
            "[" if in_brackets || in_braces => {
                return Err(ParseError::new(start, "unexpected left bracket '['"));
            }
            "[" => {
                in_brackets = true;
                bracket_colon = false;
            }
            ":" if in_brackets && bracket_colon => {
                return Err(ParseError::new(start, "unexpected colon ':'"));
            }
            ":" if in_brackets => bracket_colon = true,
            "]" if !in_brackets => {
                return Err(ParseError::new(start, "unexpected right bracket ']'"));
            }
            "]" => in_brackets = false,
            "{" if in_braces => {
                return Err(ParseError::new(start, "unexpected left brace '{'"));
            }
            "{" => in_braces = true,
            "}" if !in_braces => {
                return Err(ParseError::new(start, "unexpected character: '}'"));
            }
            "}" => in_braces = false,
            "(" => parens += 1,
            ")" if parens == 0 => {
                // Prometheus reports the position just after it.
                return Err(ParseError::new(
                    start + 1,
                    "unexpected right parenthesis ')'",
                ));
            }
            ")" => parens -= 1,
            _ => {}
        }
        toks.push(Token {
            tok: Tok::Punct(p),
            start,
            end: pos,
        });
    }
    if in_braces {
        return Err(ParseError::new(
            input.len(),
            "unexpected end of input inside braces",
        ));
    }
    if in_brackets {
        return Err(ParseError::new(input.len(), "unclosed left bracket"));
    }
    if parens > 0 {
        return Err(ParseError::new(input.len(), "unclosed left parenthesis"));
    }
    toks.push(Token {
        tok: Tok::Eof,
        start: input.len(),
        end: input.len(),
    });
    Ok(toks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, want: &[Tok]) {
        let got: Vec<Tok> = lex(input).unwrap().into_iter().map(|t| t.tok).collect();
        let mut want = want.to_vec();
        want.push(Tok::Eof);
        assert_eq!(got, want, "{input}");
    }

    #[test]
    fn tokens() {
        check("1h30m", &[Tok::Duration(5_400_000)]);
        check("5ms", &[Tok::Duration(5)]);
        check("0x1F", &[Tok::Number(31.0)]);
        check(
            "1e3 .5 5.",
            &[Tok::Number(1000.0), Tok::Number(0.5), Tok::Number(5.0)],
        );
        check("010", &[Tok::Number(8.0)]);
        check("inF", &[Tok::Number(f64::INFINITY)]);
        check(
            r#"foo:bar{a=~"x\n"} # comment"#,
            &[
                Tok::Ident("foo:bar".into()),
                Tok::Punct("{"),
                Tok::Ident("a".into()),
                Tok::Punct("=~"),
                Tok::Str("x\n".into()),
                Tok::Punct("}"),
            ],
        );
        check(
            r"`a\b` 'c\'d' '\x41\u00e9'",
            &[
                Tok::Str("a\\b".into()),
                Tok::Str("c'd".into()),
                Tok::Str("Aé".into()),
            ],
        );
        check(
            "a!=b",
            &[
                Tok::Ident("a".into()),
                Tok::Punct("!="),
                Tok::Ident("b".into()),
            ],
        );
    }

    #[test]
    fn errors() {
        for bad in ["\"abc", "5mm", "1.2.3", "$", "'\\q'", "1h1h"] {
            assert!(lex(bad).is_err(), "{bad}");
        }
    }
}
