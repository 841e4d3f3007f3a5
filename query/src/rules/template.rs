//! The subset of Go's `text/template` that alert labels and annotations use, with Prometheus'
//! template functions.
//!
//! Supported: text and `{{ }}` actions with `{{-`/`-}}` trimming and comments; variables
//! (`$labels`, `$value`, `$externalLabels`, `$externalURL`, `$` and ones declared with `:=`/`=`);
//! fields (`.Labels.job`, `$labels.job`); string, number, bool and nil literals; parenthesised
//! pipelines and `|` pipelines; `if`/`else if`/`else`, `range` (with `$i, $e :=` and `else`),
//! `with`, `end`. Functions: Go's `and or not len index eq ne lt le gt ge print printf println
//! html js urlquery` and Prometheus' `query first label value strvalue sortByLabel humanize
//! humanize1024 humanizeDuration humanizePercentage humanizeTimestamp title toUpper toLower
//! match reReplaceAll safeHtml stripPort args tableLink graphLink externalURL pathPrefix`.
//!
//! ```
//! use pharos_query::rules::template::{Data, Template};
//! let t = Template::parse("t", "{{ $labels.job }} at {{ $value | humanize }}").unwrap();
//! let mut d = Data::default();
//! d.labels.insert("job".into(), "node".into());
//! d.value = 12345.0;
//! assert_eq!(t.execute(&d, &|_| Ok(vec![])).unwrap(), "node at 12.35k");
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use pharos_model::Labels;

use super::gofmt::{format_e, format_f, format_g};

/// What a template sees: Prometheus' alert template data.
#[derive(Debug, Clone, Default)]
pub struct Data {
    /// The alert's labels (`$labels`, `.Labels`).
    pub labels: BTreeMap<String, String>,
    /// The configured external labels (`$externalLabels`).
    pub external_labels: BTreeMap<String, String>,
    /// The external URL (`$externalURL`).
    pub external_url: String,
    /// The sample value (`$value`).
    pub value: f64,
}

/// Runs a PromQL query for the `query` function: the resulting samples, or the error text.
pub type QueryFn<'a> = &'a dyn Fn(&str) -> Result<Vec<(Labels, f64)>, String>;

/// A template parse or execution error, formatted like Go's (`template: name:line: msg`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(pub String);

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TemplateError {}

type TResult<T> = Result<T, TemplateError>;

/// A template value.
#[derive(Debug, Clone, PartialEq)]
enum V {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Map(BTreeMap<String, V>),
    List(Vec<V>),
}

impl V {
    fn truthy(&self) -> bool {
        match self {
            V::Nil => false,
            V::Bool(b) => *b,
            V::Int(i) => *i != 0,
            V::Float(f) => *f != 0.0,
            V::Str(s) => !s.is_empty(),
            V::Map(m) => !m.is_empty(),
            V::List(l) => !l.is_empty(),
        }
    }

    fn print(&self, out: &mut String) {
        match self {
            V::Nil => out.push_str("<no value>"),
            V::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            V::Int(i) => out.push_str(&i.to_string()),
            V::Float(f) => out.push_str(&format_g(*f, None)),
            V::Str(s) => out.push_str(s),
            V::Map(m) => {
                out.push_str("map[");
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.print(out);
                }
                out.push(']');
            }
            V::List(l) => {
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.print(out);
                }
                out.push(']');
            }
        }
    }

    fn to_text(&self) -> String {
        let mut s = String::new();
        self.print(&mut s);
        s
    }

    fn str_map(m: &BTreeMap<String, String>) -> V {
        V::Map(
            m.iter()
                .map(|(k, v)| (k.clone(), V::Str(v.clone())))
                .collect(),
        )
    }

    fn sample(labels: &Labels, v: f64) -> V {
        let mut m = BTreeMap::new();
        m.insert(
            "Labels".into(),
            V::Map(
                labels
                    .iter()
                    .map(|l| (l.name.clone(), V::Str(l.value.clone())))
                    .collect(),
            ),
        );
        m.insert("Value".into(), V::Float(v));
        V::Map(m)
    }
}

// ---------------------------------------------------------------------------------------------
// Lexing and parsing

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Dot(Vec<String>),
    Var(String, Vec<String>),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    Ident(String),
    Pipe(Box<Pipe>, Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Pipe {
    decl: Vec<String>,
    assign: bool,
    cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Vec<(Pipe, Vec<Node>)>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Arg(Arg),
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
}

struct Action {
    line: usize,
    toks: Vec<Tok>,
}

enum Piece {
    Text(String),
    Action(Action),
}

fn err(name: &str, line: usize, msg: impl std::fmt::Display) -> TemplateError {
    TemplateError(format!("template: {name}:{line}: {msg}"))
}

fn split_fields(s: &str) -> Vec<String> {
    s.split('.')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect()
}

fn lex_action(name: &str, line: usize, s: &str) -> TResult<Vec<Tok>> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let word_end = |mut j: usize| {
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'.') {
            j += 1;
        }
        j
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'|' => {
                out.push(Tok::Pipe);
                i += 1
            }
            b'(' => {
                out.push(Tok::LParen);
                i += 1
            }
            b')' => {
                out.push(Tok::RParen);
                i += 1;
                // Field access on a parenthesised pipeline: `(...).Field`.
                if b.get(i) == Some(&b'.') {
                    let j = word_end(i);
                    out.push(Tok::Arg(Arg::Dot(split_fields(&s[i..j]))));
                    i = j;
                }
            }
            b',' => {
                out.push(Tok::Comma);
                i += 1
            }
            b':' if b.get(i + 1) == Some(&b'=') => {
                out.push(Tok::Declare);
                i += 2
            }
            b'=' => {
                out.push(Tok::Assign);
                i += 1
            }
            b'"' => {
                let mut j = i + 1;
                let mut v = String::new();
                loop {
                    match b.get(j) {
                        None => return Err(err(name, line, "unterminated quoted string")),
                        Some(b'"') => break,
                        Some(b'\\') => {
                            let e = b.get(j + 1).copied().unwrap_or(b'\\');
                            v.push(match e {
                                b'n' => '\n',
                                b't' => '\t',
                                b'r' => '\r',
                                b'"' => '"',
                                b'\\' => '\\',
                                other => other as char,
                            });
                            j += 2;
                        }
                        Some(_) => {
                            let ch = s[j..].chars().next().unwrap_or(' ');
                            v.push(ch);
                            j += ch.len_utf8();
                        }
                    }
                }
                out.push(Tok::Arg(Arg::Str(v)));
                i = j + 1;
            }
            b'`' => {
                let end = s[i + 1..]
                    .find('`')
                    .ok_or_else(|| err(name, line, "unterminated raw quoted string"))?;
                out.push(Tok::Arg(Arg::Str(s[i + 1..i + 1 + end].to_string())));
                i = i + end + 2;
            }
            b'$' => {
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                let var = s[i..j].to_string();
                let k = word_end(j);
                out.push(Tok::Arg(Arg::Var(var, split_fields(&s[j..k]))));
                i = k;
            }
            b'.' => {
                let j = word_end(i + 1);
                out.push(Tok::Arg(Arg::Dot(split_fields(&s[i..j]))));
                i = j;
            }
            b'0'..=b'9' | b'-' | b'+' => {
                let mut j = i + 1;
                while j < b.len()
                    && (b[j].is_ascii_alphanumeric()
                        || b[j] == b'.'
                        || ((b[j] == b'-' || b[j] == b'+') && matches!(b[j - 1], b'e' | b'E')))
                {
                    j += 1;
                }
                let t = &s[i..j];
                let arg = if let Ok(n) = t.parse::<i64>() {
                    Arg::Int(n)
                } else if let Some(h) = t.strip_prefix("0x") {
                    Arg::Int(
                        i64::from_str_radix(h, 16)
                            .map_err(|_| err(name, line, format!("bad number syntax: {t:?}")))?,
                    )
                } else {
                    Arg::Float(
                        t.parse::<f64>()
                            .map_err(|_| err(name, line, format!("bad number syntax: {t:?}")))?,
                    )
                };
                out.push(Tok::Arg(arg));
                i = j;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                let w = &s[i..j];
                out.push(Tok::Arg(match w {
                    "true" => Arg::Bool(true),
                    "false" => Arg::Bool(false),
                    "nil" => Arg::Nil,
                    _ => Arg::Ident(w.to_string()),
                }));
                i = j;
            }
            _ => {
                let ch = s[i..].chars().next().unwrap_or('?');
                return Err(err(name, line, format!("unexpected {ch:?} in command")));
            }
        }
    }
    Ok(out)
}

fn split_pieces(name: &str, text: &str) -> TResult<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut rest = text;
    let mut line = 1;
    while let Some(start) = rest.find("{{") {
        let mut before = &rest[..start];
        let after = &rest[start + 2..];
        let trim_left =
            after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n");
        if trim_left {
            before = before.trim_end();
        }
        line += rest[..start].matches('\n').count();
        if !before.is_empty() {
            pieces.push(Piece::Text(before.to_string()));
        }
        let inner_start = if trim_left { 1 } else { 0 };
        let body = &after[inner_start..];
        let (inner, after_close, trim_right) = if body.trim_start().starts_with("/*") {
            let end = body
                .find("*/")
                .ok_or_else(|| err(name, line, "unclosed comment"))?;
            let tail = &body[end + 2..];
            let tail_t = tail.trim_start();
            let (trim_right, skip) = if tail_t.starts_with("-}}") {
                (true, tail.len() - tail_t.len() + 3)
            } else if tail_t.starts_with("}}") {
                (false, tail.len() - tail_t.len() + 2)
            } else {
                return Err(err(name, line, "comment ends before closing delimiter"));
            };
            line += body[..end + 2 + skip].matches('\n').count();
            rest = &body[end + 2 + skip..];
            if trim_right {
                rest = rest.trim_start();
            }
            continue;
        } else {
            let end = find_close(body).ok_or_else(|| err(name, line, "unclosed action"))?;
            let inner = &body[..end];
            let (inner, trim_right) = match inner.strip_suffix(" -") {
                Some(i) => (i, true),
                None => match inner
                    .strip_suffix("\t-")
                    .or_else(|| inner.strip_suffix("\n-"))
                {
                    Some(i) => (i, true),
                    None => (inner, false),
                },
            };
            (inner, &body[end + 2..], trim_right)
        };
        let toks = lex_action(name, line, inner)?;
        pieces.push(Piece::Action(Action { line, toks }));
        line += inner.matches('\n').count();
        rest = if trim_right {
            after_close.trim_start()
        } else {
            after_close
        };
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_string()));
    }
    Ok(pieces)
}

/// Position of the closing `}}` of an action, skipping quoted strings.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

struct Parser<'a> {
    name: &'a str,
    pieces: std::vec::IntoIter<Piece>,
}

enum Stop {
    Eof,
    End,
    Else(Option<Pipe>, usize),
}

impl Parser<'_> {
    fn parse_pipe(&self, line: usize, toks: &[Tok]) -> TResult<Pipe> {
        let mut p = Pipe::default();
        let mut toks = toks;
        // Declarations: `$x :=`, `$x =`, `$i, $e :=`.
        let decl_end = toks
            .iter()
            .position(|t| matches!(t, Tok::Declare | Tok::Assign));
        if let Some(k) = decl_end {
            let vars: Vec<String> = toks[..k]
                .iter()
                .filter_map(|t| match t {
                    Tok::Arg(Arg::Var(v, f)) if f.is_empty() => Some(v.clone()),
                    _ => None,
                })
                .collect();
            let commas = toks[..k].iter().filter(|t| **t == Tok::Comma).count();
            if !vars.is_empty() && vars.len() == commas + 1 && vars.len() + commas == k {
                p.decl = vars;
                p.assign = toks[k] == Tok::Assign;
                toks = &toks[k + 1..];
            }
        }
        let mut depth = 0;
        let mut cur: Vec<Tok> = Vec::new();
        let mut cmds_toks: Vec<Vec<Tok>> = Vec::new();
        for t in toks {
            match t {
                Tok::LParen => depth += 1,
                Tok::RParen => depth -= 1,
                Tok::Pipe if depth == 0 => {
                    cmds_toks.push(std::mem::take(&mut cur));
                    continue;
                }
                _ => {}
            }
            cur.push(t.clone());
        }
        if depth != 0 {
            return Err(err(self.name, line, "unclosed left paren"));
        }
        cmds_toks.push(cur);
        for c in cmds_toks {
            if c.is_empty() {
                return Err(err(self.name, line, "missing value for command"));
            }
            p.cmds.push(self.parse_cmd(line, &c)?);
        }
        Ok(p)
    }

    fn parse_cmd(&self, line: usize, toks: &[Tok]) -> TResult<Vec<Arg>> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < toks.len() {
            match &toks[i] {
                Tok::Arg(Arg::Ident(f)) if !is_func(f) => {
                    return Err(err(self.name, line, format!("function {f:?} not defined")));
                }
                Tok::Arg(a) => out.push(a.clone()),
                Tok::LParen => {
                    let mut depth = 0;
                    let mut j = i;
                    loop {
                        match toks.get(j) {
                            Some(Tok::LParen) => depth += 1,
                            Some(Tok::RParen) => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            Some(_) => {}
                            None => return Err(err(self.name, line, "unclosed left paren")),
                        }
                        j += 1;
                    }
                    let inner = self.parse_pipe(line, &toks[i + 1..j])?;
                    let fields = match toks.get(j + 1) {
                        Some(Tok::Arg(Arg::Dot(f))) if !f.is_empty() => {
                            j += 1;
                            f.clone()
                        }
                        _ => Vec::new(),
                    };
                    out.push(Arg::Pipe(Box::new(inner), fields));
                    i = j;
                }
                t => {
                    return Err(err(self.name, line, format!("unexpected {t:?} in operand")));
                }
            }
            i += 1;
        }
        Ok(out)
    }

    /// Parses nodes until `end`, `else` or the end of input.
    fn list(&mut self) -> TResult<(Vec<Node>, Stop)> {
        let mut nodes = Vec::new();
        while let Some(p) = self.pieces.next() {
            let a = match p {
                Piece::Text(t) => {
                    nodes.push(Node::Text(t));
                    continue;
                }
                Piece::Action(a) => a,
            };
            let kw = match a.toks.first() {
                Some(Tok::Arg(Arg::Ident(k))) => k.as_str(),
                _ => "",
            };
            match kw {
                "end" => return Ok((nodes, Stop::End)),
                "else" => {
                    let rest = &a.toks[1..];
                    let cond = match rest.first() {
                        Some(Tok::Arg(Arg::Ident(k))) if k == "if" => {
                            Some(self.parse_pipe(a.line, &rest[1..])?)
                        }
                        None => None,
                        _ => return Err(err(self.name, a.line, "unexpected tokens after else")),
                    };
                    return Ok((nodes, Stop::Else(cond, a.line)));
                }
                "if" => {
                    let mut branches = vec![(self.parse_pipe(a.line, &a.toks[1..])?, Vec::new())];
                    let mut otherwise = Vec::new();
                    loop {
                        let (body, end) = self.list()?;
                        if let Some(last) = branches.last_mut() {
                            last.1 = body;
                        }
                        match end {
                            Stop::End => break,
                            Stop::Else(Some(c), _) => branches.push((c, Vec::new())),
                            Stop::Else(None, line) => {
                                let (body, end) = self.list()?;
                                if !matches!(end, Stop::End) {
                                    return Err(err(self.name, line, "expected end; found else"));
                                }
                                otherwise = body;
                                break;
                            }
                            Stop::Eof => return Err(err(self.name, a.line, "unexpected EOF")),
                        }
                    }
                    nodes.push(Node::If(branches, otherwise));
                }
                "range" | "with" => {
                    let pipe = self.parse_pipe(a.line, &a.toks[1..])?;
                    let (body, end) = self.list()?;
                    let otherwise = match end {
                        Stop::End => Vec::new(),
                        Stop::Else(None, line) => {
                            let (b, e) = self.list()?;
                            if !matches!(e, Stop::End) {
                                return Err(err(self.name, line, "expected end; found else"));
                            }
                            b
                        }
                        Stop::Else(Some(_), line) => {
                            return Err(err(self.name, line, "else if is only allowed after if"));
                        }
                        Stop::Eof => return Err(err(self.name, a.line, "unexpected EOF")),
                    };
                    nodes.push(if kw == "range" {
                        Node::Range(pipe, body, otherwise)
                    } else {
                        Node::With(pipe, body, otherwise)
                    });
                }
                "define" | "template" | "block" | "break" | "continue" => {
                    return Err(err(
                        self.name,
                        a.line,
                        format!("{kw:?} is not supported in Pharos' templates"),
                    ));
                }
                _ => {
                    if a.toks.is_empty() {
                        return Err(err(self.name, a.line, "missing value for command"));
                    }
                    nodes.push(Node::Action(self.parse_pipe(a.line, &a.toks)?))
                }
            }
        }
        Ok((nodes, Stop::Eof))
    }
}

const FUNCS: &[&str] = &[
    "and",
    "or",
    "not",
    "len",
    "index",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "print",
    "printf",
    "println",
    "html",
    "js",
    "urlquery",
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "sortByLabel",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "title",
    "toUpper",
    "toLower",
    "match",
    "reReplaceAll",
    "safeHtml",
    "stripPort",
    "args",
    "tableLink",
    "graphLink",
    "externalURL",
    "pathPrefix",
    "parseDuration",
];

fn is_func(f: &str) -> bool {
    FUNCS.contains(&f)
}

impl Template {
    /// Parses `text`; `name` appears in errors (Prometheus uses `__alert_<name>`).
    pub fn parse(name: &str, text: &str) -> Result<Template, TemplateError> {
        let pieces = split_pieces(name, text)?;
        let mut p = Parser {
            name,
            pieces: pieces.into_iter(),
        };
        let (nodes, end) = p.list()?;
        match end {
            Stop::Eof => Ok(Template {
                name: name.to_string(),
                nodes,
            }),
            Stop::End => Err(err(name, 1, "unexpected {{end}}")),
            Stop::Else(_, line) => Err(err(name, line, "unexpected {{else}}")),
        }
    }

    /// Runs the template on `data`; `query` answers the `query` function.
    pub fn execute(&self, data: &Data, query: QueryFn<'_>) -> Result<String, TemplateError> {
        let mut root = BTreeMap::new();
        root.insert("Labels".to_string(), V::str_map(&data.labels));
        root.insert(
            "ExternalLabels".to_string(),
            V::str_map(&data.external_labels),
        );
        root.insert("ExternalURL".to_string(), V::Str(data.external_url.clone()));
        root.insert("Value".to_string(), V::Float(data.value));
        let root = V::Map(root);
        let mut ex = Exec {
            name: &self.name,
            vars: vec![
                ("$".to_string(), root.clone()),
                ("$labels".to_string(), V::str_map(&data.labels)),
                (
                    "$externalLabels".to_string(),
                    V::str_map(&data.external_labels),
                ),
                (
                    "$externalURL".to_string(),
                    V::Str(data.external_url.clone()),
                ),
                ("$value".to_string(), V::Float(data.value)),
            ],
            query,
            external_url: &data.external_url,
            out: String::new(),
            steps: 0,
        };
        ex.nodes(&self.nodes, &root)?;
        Ok(ex.out)
    }
}

/// Expands `text` as Prometheus expands alert labels and annotations: on any error the result is
/// `<error expanding template: ...>`.
pub fn expand(name: &str, text: &str, data: &Data, query: QueryFn<'_>) -> String {
    if !text.contains("{{") {
        return text.to_string();
    }
    match Template::parse(name, text).and_then(|t| t.execute(data, query)) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(template = name, error = %e, "error expanding template");
            format!("<error expanding template: {e}>")
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Execution

/// Most actions one execution may run (bounds `range` over huge query results).
const MAX_STEPS: usize = 1_000_000;

struct Exec<'a> {
    name: &'a str,
    vars: Vec<(String, V)>,
    query: QueryFn<'a>,
    external_url: &'a str,
    out: String,
    steps: usize,
}

impl Exec<'_> {
    fn fail<T>(&self, msg: impl std::fmt::Display) -> TResult<T> {
        Err(TemplateError(format!(
            "template: {}: executing: {msg}",
            self.name
        )))
    }

    fn nodes(&mut self, nodes: &[Node], dot: &V) -> TResult<()> {
        for n in nodes {
            self.steps += 1;
            if self.steps > MAX_STEPS {
                return self.fail("too many steps");
            }
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipe(p, dot)?;
                    if p.decl.is_empty() {
                        v.print(&mut self.out);
                    }
                }
                Node::If(branches, otherwise) => {
                    let mark = self.vars.len();
                    let mut done = false;
                    for (c, body) in branches {
                        if self.pipe(c, dot)?.truthy() {
                            self.nodes(body, dot)?;
                            done = true;
                            break;
                        }
                    }
                    if !done {
                        self.nodes(otherwise, dot)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::With(p, body, otherwise) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p, dot)?;
                    if v.truthy() {
                        self.nodes(body, &v)?;
                    } else {
                        self.nodes(otherwise, dot)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::Range(p, body, otherwise) => {
                    let mark = self.vars.len();
                    let mut plain = p.clone();
                    plain.decl.clear();
                    let v = self.pipe(&plain, dot)?;
                    let items: Vec<(V, V)> = match v {
                        V::List(l) => l
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| (V::Int(i as i64), v))
                            .collect(),
                        V::Map(m) => m.into_iter().map(|(k, v)| (V::Str(k), v)).collect(),
                        V::Int(n) => (0..n.max(0)).map(|i| (V::Int(i), V::Int(i))).collect(),
                        V::Nil => Vec::new(),
                        other => {
                            return self
                                .fail(format!("range can't iterate over {}", other.to_text()));
                        }
                    };
                    if items.is_empty() {
                        self.nodes(otherwise, dot)?;
                    }
                    for (k, e) in items {
                        let inner = self.vars.len();
                        match p.decl.as_slice() {
                            [] => {}
                            [ev] => self.vars.push((ev.clone(), e.clone())),
                            [kv, ev, ..] => {
                                self.vars.push((kv.clone(), k));
                                self.vars.push((ev.clone(), e.clone()));
                            }
                        }
                        self.nodes(body, &e)?;
                        self.vars.truncate(inner);
                    }
                    self.vars.truncate(mark);
                }
            }
        }
        Ok(())
    }

    fn var(&self, name: &str) -> TResult<V> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => self.fail(format!("undefined variable: {name}")),
        }
    }

    fn pipe(&mut self, p: &Pipe, dot: &V) -> TResult<V> {
        let mut val: Option<V> = None;
        for cmd in &p.cmds {
            val = Some(self.cmd(cmd, dot, val)?);
        }
        let v = val.unwrap_or(V::Nil);
        if p.assign {
            if let Some(name) = p.decl.first() {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = v.clone(),
                    None => return self.fail(format!("undefined variable: {name}")),
                }
            }
        } else if let Some(name) = p.decl.last() {
            self.vars.push((name.clone(), v.clone()));
        }
        Ok(v)
    }

    fn field(&self, mut v: V, fields: &[String]) -> TResult<V> {
        for f in fields {
            v = match v {
                // missingkey=zero on map[string]string: a missing label is "".
                V::Map(mut m) => m.remove(f).unwrap_or(V::Str(String::new())),
                V::Nil => return self.fail(format!("nil pointer evaluating .{f}")),
                other => {
                    return self.fail(format!(
                        "can't evaluate field {f} in type {}",
                        type_name(&other)
                    ));
                }
            };
        }
        Ok(v)
    }

    fn arg(&mut self, a: &Arg, dot: &V) -> TResult<V> {
        match a {
            Arg::Dot(f) => self.field(dot.clone(), f),
            Arg::Var(n, f) => {
                let v = self.var(n)?;
                self.field(v, f)
            }
            Arg::Str(s) => Ok(V::Str(s.clone())),
            Arg::Int(i) => Ok(V::Int(*i)),
            Arg::Float(f) => Ok(V::Float(*f)),
            Arg::Bool(b) => Ok(V::Bool(*b)),
            Arg::Nil => Ok(V::Nil),
            Arg::Ident(f) => self.call(f, Vec::new()),
            Arg::Pipe(p, f) => {
                let mark = self.vars.len();
                let v = self.pipe(p, dot)?;
                self.vars.truncate(mark);
                self.field(v, f)
            }
        }
    }

    fn cmd(&mut self, cmd: &[Arg], dot: &V, piped: Option<V>) -> TResult<V> {
        match cmd.first() {
            Some(Arg::Ident(f)) => {
                // `and`/`or` short-circuit in Go; evaluating eagerly gives the same value here.
                let mut args = Vec::with_capacity(cmd.len());
                for a in &cmd[1..] {
                    args.push(self.arg(a, dot)?);
                }
                if let Some(p) = piped {
                    args.push(p);
                }
                self.call(f, args)
            }
            Some(a) => {
                if cmd.len() > 1 || piped.is_some() {
                    return self.fail("can't give argument to non-function");
                }
                self.arg(a, dot)
            }
            None => self.fail("empty command"),
        }
    }

    fn call(&mut self, f: &str, args: Vec<V>) -> TResult<V> {
        let n = args.len();
        let want = |k: usize| -> TResult<()> {
            if n == k {
                Ok(())
            } else {
                Err(TemplateError(format!(
                    "template: {}: executing: wrong number of args for {f}: want {k} got {n}",
                    self.name
                )))
            }
        };
        let num = |v: &V| -> TResult<f64> {
            match v {
                V::Float(f) => Ok(*f),
                V::Int(i) => Ok(*i as f64),
                V::Str(s) => s.trim().parse::<f64>().map_err(|e| {
                    TemplateError(format!(
                        "template: {}: executing: error calling {f}: strconv.ParseFloat: parsing {s:?}: {e}",
                        self.name
                    ))
                }),
                other => Err(TemplateError(format!(
                    "template: {}: executing: error calling {f}: can't convert {} to float",
                    self.name,
                    type_name(other)
                ))),
            }
        };
        let s = |v: &V| v.to_text();
        Ok(match f {
            "and" => {
                let mut last = V::Nil;
                for a in args {
                    if !a.truthy() {
                        return Ok(a);
                    }
                    last = a;
                }
                last
            }
            "or" => {
                let mut last = V::Nil;
                for a in args {
                    if a.truthy() {
                        return Ok(a);
                    }
                    last = a;
                }
                last
            }
            "not" => {
                want(1)?;
                V::Bool(!args[0].truthy())
            }
            "len" => {
                want(1)?;
                V::Int(match &args[0] {
                    V::Str(x) => x.len(),
                    V::List(l) => l.len(),
                    V::Map(m) => m.len(),
                    other => return self.fail(format!("len of {}", type_name(other))),
                } as i64)
            }
            "index" => {
                let mut it = args.into_iter();
                let mut v = it.next().unwrap_or(V::Nil);
                for k in it {
                    v = match (v, k) {
                        (V::Map(mut m), k) => {
                            m.remove(&k.to_text()).unwrap_or(V::Str(String::new()))
                        }
                        (V::List(l), V::Int(i)) => match l.get(i as usize) {
                            Some(x) if i >= 0 => x.clone(),
                            _ => {
                                return self
                                    .fail(format!("error calling index: index out of range: {i}"));
                            }
                        },
                        (other, _) => {
                            return self
                                .fail(format!("can't index item of type {}", type_name(&other)));
                        }
                    };
                }
                v
            }
            "eq" | "ne" | "lt" | "le" | "gt" | "ge" => {
                if n < 2 {
                    return self.fail(format!("wrong number of args for {f}: want 2 got {n}"));
                }
                let cmp = |a: &V, b: &V| -> Option<std::cmp::Ordering> {
                    match (a, b) {
                        (V::Str(x), V::Str(y)) => Some(x.cmp(y)),
                        (V::Bool(x), V::Bool(y)) => Some(x.cmp(y)),
                        (V::Int(x), V::Int(y)) => Some(x.cmp(y)),
                        (V::Int(_) | V::Float(_), V::Int(_) | V::Float(_)) => {
                            let fx = if let V::Int(i) = a {
                                *i as f64
                            } else if let V::Float(x) = a {
                                *x
                            } else {
                                0.0
                            };
                            let fy = if let V::Int(i) = b {
                                *i as f64
                            } else if let V::Float(x) = b {
                                *x
                            } else {
                                0.0
                            };
                            fx.partial_cmp(&fy)
                        }
                        (V::Nil, V::Nil) => Some(std::cmp::Ordering::Equal),
                        _ => None,
                    }
                };
                use std::cmp::Ordering::*;
                if f == "eq" {
                    // eq a b c ... is a==b || a==c ...
                    let mut any = false;
                    for b in &args[1..] {
                        match cmp(&args[0], b) {
                            Some(Equal) => any = true,
                            Some(_) => {}
                            None if matches!(args[0], V::Float(x) if x.is_nan()) => {}
                            None => {
                                return self
                                    .fail("error calling eq: incompatible types for comparison");
                            }
                        }
                    }
                    V::Bool(any)
                } else {
                    if n != 2 {
                        return self.fail(format!("wrong number of args for {f}: want 2 got {n}"));
                    }
                    let o = cmp(&args[0], &args[1]);
                    let is_nan = matches!((&args[0], &args[1]), (V::Float(x), _) if x.is_nan())
                        || matches!((&args[0], &args[1]), (_, V::Float(y)) if y.is_nan());
                    let o = match o {
                        Some(o) => o,
                        None if is_nan => return Ok(V::Bool(f == "ne")),
                        None => {
                            return self.fail(format!(
                                "error calling {f}: incompatible types for comparison"
                            ));
                        }
                    };
                    V::Bool(match f {
                        "ne" => o != Equal,
                        "lt" => o == Less,
                        "le" => o != Greater,
                        "gt" => o == Greater,
                        _ => o != Less,
                    })
                }
            }
            "print" => {
                // Go's Sprint: spaces between operands when neither is a string.
                let mut out = String::new();
                for (i, a) in args.iter().enumerate() {
                    if i > 0 && !matches!(a, V::Str(_)) && !matches!(args[i - 1], V::Str(_)) {
                        out.push(' ');
                    }
                    a.print(&mut out);
                }
                V::Str(out)
            }
            "println" => {
                let parts: Vec<String> = args.iter().map(V::to_text).collect();
                V::Str(format!("{}\n", parts.join(" ")))
            }
            "printf" => {
                let Some(V::Str(fmt)) = args.first() else {
                    return self.fail("printf: the format must be a string");
                };
                V::Str(sprintf(fmt, &args[1..]))
            }
            "html" | "safeHtml" => {
                let t: String = args.iter().map(V::to_text).collect();
                if f == "safeHtml" {
                    V::Str(t)
                } else {
                    V::Str(
                        t.replace('&', "&amp;")
                            .replace('<', "&lt;")
                            .replace('>', "&gt;")
                            .replace('"', "&#34;")
                            .replace('\'', "&#39;"),
                    )
                }
            }
            "js" => {
                let t: String = args.iter().map(V::to_text).collect();
                V::Str(
                    t.replace('\\', "\\\\")
                        .replace('\'', "\\'")
                        .replace('"', "\\\"")
                        .replace('<', "\\u003C")
                        .replace('>', "\\u003E"),
                )
            }
            "urlquery" => {
                let t: String = args.iter().map(V::to_text).collect();
                V::Str(query_escape(&t))
            }
            "query" => {
                want(1)?;
                let q = s(&args[0]);
                match (self.query)(&q) {
                    Ok(samples) => V::List(samples.iter().map(|(l, v)| V::sample(l, *v)).collect()),
                    Err(e) => return self.fail(format!("error calling query: {e}")),
                }
            }
            "first" => {
                want(1)?;
                match &args[0] {
                    V::List(l) => {
                        match l.first() {
                            Some(x) => x.clone(),
                            None => return self.fail(
                                "error calling first: first() called on vector with no elements",
                            ),
                        }
                    }
                    other => {
                        return self.fail(format!(
                            "error calling first: not a vector: {}",
                            type_name(other)
                        ));
                    }
                }
            }
            "label" => {
                want(2)?;
                let name = s(&args[0]);
                self.field(args[1].clone(), &["Labels".into(), name])?
            }
            "value" => {
                want(1)?;
                self.field(args[0].clone(), &["Value".into()])?
            }
            "strvalue" => {
                want(1)?;
                let l = self.field(args[0].clone(), &["Labels".into()])?;
                self.field(l, &["__value__".into()])?
            }
            "sortByLabel" => {
                want(2)?;
                let name = s(&args[0]);
                let V::List(mut l) = args[1].clone() else {
                    return self.fail("error calling sortByLabel: not a vector");
                };
                let key = |v: &V| match v {
                    V::Map(m) => match m.get("Labels") {
                        Some(V::Map(l)) => l.get(&name).map(V::to_text).unwrap_or_default(),
                        _ => String::new(),
                    },
                    _ => String::new(),
                };
                l.sort_by_key(key);
                V::List(l)
            }
            "humanize" => {
                want(1)?;
                V::Str(humanize(num(&args[0])?))
            }
            "humanize1024" => {
                want(1)?;
                V::Str(humanize1024(num(&args[0])?))
            }
            "humanizeDuration" => {
                want(1)?;
                V::Str(humanize_duration(num(&args[0])?))
            }
            "humanizePercentage" => {
                want(1)?;
                V::Str(format!("{}%", format_g(num(&args[0])? * 100.0, Some(4))))
            }
            "humanizeTimestamp" => {
                want(1)?;
                V::Str(humanize_timestamp(num(&args[0])?))
            }
            "parseDuration" => {
                want(1)?;
                let t = s(&args[0]);
                match pharos_model::parse_duration_ms(&t) {
                    Ok(ms) => V::Float(ms as f64 / 1000.0),
                    Err(e) => return self.fail(format!("error calling parseDuration: {e}")),
                }
            }
            "title" => {
                want(1)?;
                let t = s(&args[0]);
                let mut out = String::new();
                let mut start = true;
                for c in t.chars() {
                    if start && c.is_alphabetic() {
                        out.extend(c.to_uppercase());
                    } else {
                        out.push(c);
                    }
                    start = !c.is_alphanumeric() && c != '\'' && c != '_';
                }
                V::Str(out)
            }
            "toUpper" => {
                want(1)?;
                V::Str(s(&args[0]).to_uppercase())
            }
            "toLower" => {
                want(1)?;
                V::Str(s(&args[0]).to_lowercase())
            }
            "match" => {
                want(2)?;
                match regex::Regex::new(&s(&args[0])) {
                    Ok(re) => V::Bool(re.is_match(&s(&args[1]))),
                    Err(e) => return self.fail(format!("error calling match: {e}")),
                }
            }
            "reReplaceAll" => {
                want(3)?;
                match regex::Regex::new(&s(&args[0])) {
                    Ok(re) => V::Str(
                        re.replace_all(&s(&args[2]), s(&args[1]).as_str())
                            .into_owned(),
                    ),
                    Err(e) => return self.fail(format!("error calling reReplaceAll: {e}")),
                }
            }
            "stripPort" => {
                want(1)?;
                let h = s(&args[0]);
                V::Str(strip_port(&h))
            }
            "args" => {
                let mut m = BTreeMap::new();
                for (i, a) in args.into_iter().enumerate() {
                    m.insert(format!("arg{i}"), a);
                }
                V::Map(m)
            }
            "tableLink" => {
                want(1)?;
                V::Str(table_link(&s(&args[0])))
            }
            "graphLink" => {
                want(1)?;
                V::Str(format!(
                    "/graph?g0.expr={}&g0.tab=0",
                    query_escape(&s(&args[0]))
                ))
            }
            "externalURL" => V::Str(self.external_url.to_string()),
            "pathPrefix" => V::Str(
                self.external_url
                    .split_once("://")
                    .and_then(|(_, r)| r.find('/').map(|i| r[i..].to_string()))
                    .unwrap_or_default(),
            ),
            other => return self.fail(format!("function {other:?} not defined")),
        })
    }
}

fn type_name(v: &V) -> &'static str {
    match v {
        V::Nil => "nil",
        V::Bool(_) => "bool",
        V::Int(_) => "int",
        V::Float(_) => "float64",
        V::Str(_) => "string",
        V::Map(_) => "map[string]interface {}",
        V::List(_) => "[]interface {}",
    }
}

/// The `/graph` link Prometheus puts in `generatorURL` and `tableLink`.
pub fn table_link(expr: &str) -> String {
    format!("/graph?g0.expr={}&g0.tab=1", query_escape(expr))
}

/// Go's `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

fn strip_port(h: &str) -> String {
    if let Some(rest) = h.strip_prefix('[')
        && let Some(end) = rest.find(']')
    {
        return rest[..end].to_string();
    }
    match h.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|c| c.is_ascii_digit()) => {
            host.to_string()
        }
        _ => h.to_string(),
    }
}

/// Prometheus' `humanize`: SI prefixes, 4 significant digits.
pub fn humanize(mut v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format_g(v, Some(4));
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", format_g(v, Some(4)))
}

/// Prometheus' `humanize1024`: binary prefixes, 4 significant digits.
pub fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return format_g(v, Some(4));
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", format_g(v, Some(4)))
}

/// Prometheus' `humanizeDuration`: `1d 2h 3m 4s`, or seconds with SI prefixes below one.
pub fn humanize_duration(mut v: f64) -> String {
    if !v.is_finite() {
        return format_g(v, Some(4));
    }
    if v == 0.0 {
        return format!("{}s", format_g(v, Some(4)));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let d = v as i64;
        let (secs, mins, hours, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86_400);
        if days != 0 {
            return format!("{sign}{days}d {hours}h {mins}m {secs}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {mins}m {secs}s");
        }
        if mins != 0 {
            return format!("{sign}{mins}m {secs}s");
        }
        return format!("{sign}{}s", format_g(v, Some(4)));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", format_g(v, Some(4)))
}

/// Prometheus' `humanizeTimestamp`: Go's `time.Time.String()` in UTC.
pub fn humanize_timestamp(v: f64) -> String {
    if !v.is_finite() {
        return format_g(v, Some(4));
    }
    // Prometheus goes through model.Time: nanoseconds truncated to milliseconds.
    let ms = ((v * 1e9) as i64) / 1_000_000;
    let secs = ms.div_euclid(1000);
    let nanos = ms.rem_euclid(1000) * 1_000_000;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = pharos_model::api::civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    );
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    out
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%s %v %d %f %e %g %q %x %t %%` with flags
/// `-+ 0`, width and precision.
fn sprintf(fmt: &str, args: &[V]) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    let mut ai = 0;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&f) = chars.peek() {
            if "-+ 0#".contains(f) {
                flags.push(f);
                chars.next();
            } else {
                break;
            }
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            chars.next();
        }
        let mut prec: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                chars.next();
            }
            prec = Some(p.parse().unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(ai) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        ai += 1;
        let as_f = |a: &V| match a {
            V::Float(f) => Some(*f),
            V::Int(i) => Some(*i as f64),
            _ => None,
        };
        let mut s = match (verb, arg) {
            ('d', V::Int(i)) => i.to_string(),
            ('d', V::Float(f)) => format!("%!d(float64={})", format_g(*f, None)),
            ('f' | 'F', a) if as_f(a).is_some() => {
                format_f(as_f(a).unwrap_or(0.0), prec.unwrap_or(6))
            }
            ('e', a) if as_f(a).is_some() => {
                format_e(as_f(a).unwrap_or(0.0), Some(prec.unwrap_or(6)))
            }
            ('g', a) if as_f(a).is_some() => format_g(as_f(a).unwrap_or(0.0), prec),
            ('q', a) => format!("{:?}", a.to_text()),
            ('x', V::Int(i)) => format!("{i:x}"),
            ('x', V::Str(t)) => t.bytes().map(|b| format!("{b:02x}")).collect(),
            ('t', V::Bool(b)) => b.to_string(),
            ('s' | 'v', V::Float(f)) if prec.is_some() && verb == 'v' => format_g(*f, prec),
            ('s', V::Str(t)) | ('v', V::Str(t)) => match prec {
                Some(p) => t.chars().take(p).collect(),
                None => t.clone(),
            },
            ('v', a) => a.to_text(),
            ('s', a) if !matches!(a, V::Int(_) | V::Float(_) | V::Bool(_)) => a.to_text(),
            (v, a) => format!("%!{v}({}={})", type_name(a), a.to_text()),
        };
        if flags.contains('+')
            && as_f(arg).is_some_and(|f| f >= 0.0)
            && matches!(verb, 'd' | 'f' | 'e' | 'g' | 'v')
        {
            s.insert(0, '+');
        }
        if let Ok(w) = width.parse::<usize>() {
            let len = s.chars().count();
            if len < w {
                let pad = w - len;
                if flags.contains('-') {
                    s.push_str(&" ".repeat(pad));
                } else if flags.contains('0') && as_f(arg).is_some() {
                    let (sign, digits) = if s.starts_with(['-', '+']) {
                        s.split_at(1)
                    } else {
                        ("", s.as_str())
                    };
                    s = format!("{sign}{}{digits}", "0".repeat(pad));
                } else {
                    s = format!("{}{s}", " ".repeat(pad));
                }
            }
        }
        out.push_str(&s);
    }
    if ai < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[ai..]
            .iter()
            .map(|a| format!("{}={}", type_name(a), a.to_text()))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Data {
        let mut d = Data::default();
        d.labels.insert("instance".into(), "host:9100".into());
        d.labels.insert("job".into(), "node".into());
        d.external_labels.insert("cluster".into(), "lab".into());
        d.external_url = "http://pharos:9090/prefix".into();
        d.value = 0.25;
        d
    }

    fn query(q: &str) -> Result<Vec<(Labels, f64)>, String> {
        match q {
            "up" => Ok(vec![
                (
                    Labels::from_pairs(&[("__name__", "up"), ("instance", "b")]),
                    1.0,
                ),
                (
                    Labels::from_pairs(&[("__name__", "up"), ("instance", "a")]),
                    0.0,
                ),
            ]),
            "none" => Ok(vec![]),
            _ => Err(format!("bad query {q}")),
        }
    }

    #[track_caller]
    fn check(text: &str, want: &str) {
        let t = Template::parse("__alert_X", text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let got = t
            .execute(&data(), &query)
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(got, want, "{text}");
    }

    #[track_caller]
    fn check_err(text: &str, want: &str) {
        let got = Template::parse("__alert_X", text).and_then(|t| t.execute(&data(), &query));
        let e = got.expect_err(text).to_string();
        assert!(e.contains(want), "{text}: {e}");
    }

    #[test]
    fn variables_fields_and_text() {
        check("plain", "plain");
        check(
            "{{ $labels.instance }} of {{ .Labels.job }}",
            "host:9100 of node",
        );
        check("{{ $value }}", "0.25");
        check("{{ .Value }}", "0.25");
        check(
            "{{ $externalLabels.cluster }} {{ $externalURL }}",
            "lab http://pharos:9090/prefix",
        );
        check("[{{ $labels.missing }}]", "[]");
        check("a  {{- 1 -}}  b", "a1b");
        check("a {{/* c */}} b", "a  b");
        check("{{ $x := 3 }}{{ $x }}", "3");
        check("{{ $x := 3 }}{{ $x = 4 }}{{ $x }}", "4");
        check("{{ \"q\\\"s\" }} {{ `raw` }}", "q\"s raw");
        check("{{ $ | len }}", "4");
    }

    #[test]
    fn functions() {
        check("{{ humanize 1234567 }}", "1.235M");
        check("{{ humanize 0.0012 }}", "1.2m");
        check("{{ humanize 0 }}", "0");
        check("{{ 2048 | humanize1024 }}", "2ki");
        check("{{ humanize1024 0.5 }}", "0.5");
        check("{{ humanizeDuration 90061 }}", "1d 1h 1m 1s");
        check("{{ humanizeDuration 3.5 }}", "3.5s");
        check("{{ humanizeDuration 0.25 }}", "250ms");
        check("{{ humanizeDuration 0 }}", "0s");
        check("{{ $value | humanizePercentage }}", "25%");
        check(
            "{{ humanizeTimestamp 1435065584.128 }}",
            "2015-06-23 13:19:44.128 +0000 UTC",
        );
        check("{{ printf \"%.2f\" $value }}", "0.25");
        check(
            "{{ printf \"%s=%d %5.1f|%-3s|\" \"x\" 7 2.25 \"y\" }}",
            "x=7   2.2|y  |",
        );
        check("{{ printf \"%v %q\" 1.5 \"a\" }}", "1.5 \"a\"");
        check(
            "{{ \"abc\" | toUpper }} {{ title \"hello world\" }}",
            "ABC Hello World",
        );
        check(
            "{{ reReplaceAll \"(.*):.*\" \"$1\" $labels.instance }}",
            "host",
        );
        check("{{ stripPort $labels.instance }}", "host");
        check("{{ match \"^h\" $labels.instance }}", "true");
        check(
            "{{ tableLink \"up == 0\" }}",
            "/graph?g0.expr=up+%3D%3D+0&g0.tab=1",
        );
        check("{{ pathPrefix }}", "/prefix");
        check("{{ index $labels \"job\" }}", "node");
        check("{{ print 1 2 \"a\" }}", "1 2a");
    }

    #[test]
    fn control_flow_and_query() {
        check(
            "{{ if gt $value 0.5 }}high{{ else if gt $value 0.1 }}mid{{ else }}low{{ end }}",
            "mid",
        );
        check(
            "{{ if and (eq $labels.job \"node\") (ne 1 2) }}y{{ end }}",
            "y",
        );
        check("{{ if not true }}a{{ else }}b{{ end }}", "b");
        check(
            "{{ range query \"up\" }}{{ .Labels.instance }}={{ .Value }};{{ end }}",
            "b=1;a=0;",
        );
        check(
            "{{ range $i, $s := query \"up\" | sortByLabel \"instance\" }}{{ $i }}{{ $s.Labels.instance }}{{ end }}",
            "0a1b",
        );
        check(
            "{{ with query \"up\" }}{{ . | first | value }}{{ end }}",
            "1",
        );
        check(
            "{{ with query \"up\" }}{{ . | first | label \"instance\" }}{{ end }}",
            "b",
        );
        check(
            "{{ with query \"none\" }}x{{ else }}empty{{ end }}",
            "empty",
        );
        check("{{ range query \"none\" }}x{{ else }}none{{ end }}", "none");
        check("{{ (query \"up\" | first).Value }}", "1");
    }

    #[test]
    fn errors() {
        check_err("{{ nosuch 1 }}", "function \"nosuch\" not defined");
        check_err("{{ if 1 }}x", "unexpected EOF");
        check_err("{{ end }}", "unexpected {{end}}");
        check_err("{{ $nope }}", "undefined variable: $nope");
        check_err("{{ query \"boom\" }}", "bad query boom");
        check_err(
            "{{ with query \"none\" }}{{ . | first }}{{ end }}x{{ first (query \"none\") }}",
            "no elements",
        );
        check_err("{{ \"x", "unclosed action");
        check_err("{{ humanize \"abc\" }}", "ParseFloat");
        assert_eq!(
            expand("n", "{{ nosuch }}", &data(), &query),
            "<error expanding template: template: n:1: function \"nosuch\" not defined>"
        );
        assert_eq!(expand("n", "no braces", &data(), &query), "no braces");
    }
}
