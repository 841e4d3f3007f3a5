//! The PromQL parser: a nom lexer (`lexer`) and a recursive-descent parser with Prometheus'
//! operator precedence, followed by Prometheus' type checks.
//!
//! ```
//! use pharos_query::parser::parse;
//! let e = parse("sum by (job) (rate(http_requests_total[5m]))").unwrap();
//! assert_eq!(e.to_string(), "sum by (job) (rate(http_requests_total[5m]))");
//! assert_eq!(parse("rate(x)").unwrap_err().to_string(),
//!     "1:6: parse error: expected type range vector in call to function \"rate\", got instant vector");
//! ```

mod lexer;
mod re2;

use std::fmt;

use pharos_model::{MatchOp, Matcher};

use crate::ast::*;
use crate::functions;
use lexer::{Tok, Token};

/// A parse error: a byte position in the query and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset of the offending token.
    pub pos: usize,
    /// What is wrong.
    pub msg: String,
    /// 1-based line of `pos` (filled in by [`parse`]).
    pub line: usize,
    /// 1-based column of `pos` (filled in by [`parse`]).
    pub col: usize,
}

impl ParseError {
    pub(crate) fn new(pos: usize, msg: impl Into<String>) -> Self {
        Self {
            pos,
            msg: msg.into(),
            line: 1,
            col: pos + 1,
        }
    }

    fn locate(mut self, input: &str) -> Self {
        let before = input.get(..self.pos.min(input.len())).unwrap_or("");
        self.line = before.matches('\n').count() + 1;
        self.col = match before.rfind('\n') {
            Some(nl) => self.pos - nl,
            None => self.pos + 1,
        };
        self
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: parse error: {}", self.line, self.col, self.msg)
    }
}

impl std::error::Error for ParseError {}

type PResult<T> = Result<T, ParseError>;

/// Parses a PromQL expression and checks its types.
pub fn parse(input: &str) -> Result<Expr, ParseError> {
    parse_inner(input).map_err(|e| e.locate(input))
}

fn parse_inner(input: &str) -> PResult<Expr> {
    let toks = lexer::lex(input)?;
    let mut p = Parser {
        toks,
        i: 0,
        src: input,
    };
    if p.peek().tok == Tok::Eof {
        return Err(ParseError::new(0, "no expression found in input"));
    }
    let e = p.expr(0)?;
    let t = p.peek();
    if t.tok != Tok::Eof {
        return Err(ParseError::new(
            t.start,
            format!("unexpected {}", t.describe(input)),
        ));
    }
    Ok(e)
}

/// Parses a series selector such as `up{job="x"}` (for `match[]` parameters).
pub fn parse_metric_selector(input: &str) -> Result<Vec<Matcher>, ParseError> {
    match parse(input)? {
        Expr::VectorSelector(vs) if vs.offset == 0 && vs.at.is_none() => Ok(vs.matchers),
        _ => Err(ParseError::new(0, "expected vector selector").locate(input)),
    }
}

/// Parses a duration such as `5m` or `1h30m` into milliseconds.
pub fn parse_duration(input: &str) -> Option<i64> {
    match lexer::duration(input) {
        Ok(("", ms)) => Some(ms),
        _ => None,
    }
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    i: usize,
}

fn is_keyword(s: &str) -> bool {
    matches!(
        s.to_ascii_lowercase().as_str(),
        "and"
            | "or"
            | "unless"
            | "atan2"
            | "by"
            | "without"
            | "on"
            | "ignoring"
            | "group_left"
            | "group_right"
            | "bool"
            | "offset"
    ) || AggOp::from_name(&s.to_ascii_lowercase()).is_some()
}

fn is_label_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // The token list always ends with Eof, and `i` never moves past it.
        &self.toks[self.i.min(self.toks.len() - 1)]
    }

    fn peek_at(&self, n: usize) -> &Tok {
        &self.toks[(self.i + n).min(self.toks.len() - 1)].tok
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::Eof {
            self.i += 1;
        }
        t
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(&self.peek().tok, Tok::Punct(q) if *q == p)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(s) if s.eq_ignore_ascii_case(w))
    }

    fn unexpected<T>(&self, ctx: &str, expected: &str) -> PResult<T> {
        let t = self.peek();
        let mut msg = format!("unexpected {}", t.describe(self.src));
        if !ctx.is_empty() {
            msg.push_str(&format!(" in {ctx}"));
        }
        if !expected.is_empty() {
            msg.push_str(&format!(", expected {expected}"));
        }
        Err(ParseError::new(t.start, msg))
    }

    fn expect(&mut self, p: &str, ctx: &str) -> PResult<Token> {
        if self.is_punct(p) {
            Ok(self.next())
        } else {
            self.unexpected(ctx, &format!("{p:?}"))
        }
    }

    fn binop(&self) -> Option<BinOp> {
        Some(match &self.peek().tok {
            Tok::Punct(p) => match *p {
                "+" => BinOp::Add,
                "-" => BinOp::Sub,
                "*" => BinOp::Mul,
                "/" => BinOp::Div,
                "%" => BinOp::Mod,
                "^" => BinOp::Pow,
                "==" => BinOp::Eql,
                "!=" => BinOp::Neq,
                "<" => BinOp::Lss,
                "<=" => BinOp::Lte,
                ">" => BinOp::Gtr,
                ">=" => BinOp::Gte,
                _ => return None,
            },
            Tok::Ident(w) => match w.to_ascii_lowercase().as_str() {
                "and" => BinOp::And,
                "or" => BinOp::Or,
                "unless" => BinOp::Unless,
                "atan2" => BinOp::Atan2,
                _ => return None,
            },
            _ => return None,
        })
    }

    /// Precedence climbing over binary operators of at least `min_prec`.
    fn expr(&mut self, min_prec: u8) -> PResult<Expr> {
        let lhs_pos = self.peek().start;
        let mut lhs = self.unary()?;
        while let Some(op) = self.binop() {
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            let op_pos = self.next().start;
            let (return_bool, matching) = self.bin_modifiers(op)?;
            // `^` is right-associative; everything else is left-associative.
            let next_min = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs_pos = self.peek().start;
            let rhs = self.expr(next_min)?;
            let pos = Positions {
                op: op_pos,
                lhs: lhs_pos,
                rhs: rhs_pos,
            };
            lhs = build_binary(op, pos, lhs, rhs, return_bool, matching.map(|m| m.1))?;
        }
        Ok(lhs)
    }

    fn bin_modifiers(&mut self, op: BinOp) -> PResult<(bool, Option<(usize, VectorMatching)>)> {
        let mut return_bool = false;
        if self.is_word("bool") {
            let t = self.next();
            if !op.is_comparison() {
                return Err(ParseError::new(
                    t.start,
                    "bool modifier can only be used on comparisons",
                ));
            }
            return_bool = true;
        }
        let mut matching: Option<(usize, VectorMatching)> = None;
        if self.is_word("on") || self.is_word("ignoring") {
            let t = self.next();
            let on = matches!(&t.tok, Tok::Ident(w) if w.eq_ignore_ascii_case("on"));
            let labels = self.label_list("grouping opts")?;
            matching = Some((
                t.start,
                VectorMatching {
                    card: Cardinality::OneToOne,
                    labels,
                    on,
                    include: vec![],
                },
            ));
        }
        if self.is_word("group_left") || self.is_word("group_right") {
            let t = self.next();
            let left = matches!(&t.tok, Tok::Ident(w) if w.eq_ignore_ascii_case("group_left"));
            let include = if self.is_punct("(") {
                self.label_list("grouping opts")?
            } else {
                vec![]
            };
            let m = matching.get_or_insert((
                t.start,
                VectorMatching {
                    card: Cardinality::OneToOne,
                    labels: vec![],
                    on: false,
                    include: vec![],
                },
            ));
            m.1.card = if left {
                Cardinality::ManyToOne
            } else {
                Cardinality::OneToMany
            };
            m.1.include = include;
        }
        Ok((return_bool, matching))
    }

    /// `( label, ... )` with an optional trailing comma.
    fn label_list(&mut self, ctx: &str) -> PResult<Vec<String>> {
        self.expect("(", ctx)?;
        let mut out = Vec::new();
        loop {
            if self.is_punct(")") {
                self.next();
                return Ok(out);
            }
            match &self.peek().tok {
                Tok::Ident(w) if is_label_name(w) => {
                    out.push(w.clone());
                    self.next();
                }
                _ => return self.unexpected(ctx, "label"),
            }
            if self.is_punct(",") {
                self.next();
            } else if !self.is_punct(")") {
                return self.unexpected(ctx, "\",\" or \")\"");
            }
        }
    }

    fn unary(&mut self) -> PResult<Expr> {
        if self.is_punct("-") || self.is_punct("+") {
            let t = self.next();
            let neg = t.tok == Tok::Punct("-");
            // Unary operators bind like `*`: tighter than `+`, looser than `^`.
            let e = self.expr(BinOp::Pow.precedence())?;
            let vt = e.value_type();
            if vt != ValueType::Scalar && vt != ValueType::Vector {
                return Err(ParseError::new(
                    t.start,
                    format!(
                        "unary expression only allowed on expressions of type scalar or instant vector, got \"{vt}\""
                    ),
                ));
            }
            return Ok(match (neg, e) {
                (false, e) => e,
                (true, Expr::NumberLiteral(v)) => Expr::NumberLiteral(-v),
                (true, e) => Expr::Unary(Box::new(e)),
            });
        }
        let start = self.peek().start;
        let e = self.primary()?;
        self.postfix(e, start)
    }

    /// `[range]`, `[range:step]`, `offset d`, `@ t` after a primary expression.
    fn postfix(&mut self, mut e: Expr, start: usize) -> PResult<Expr> {
        loop {
            if self.is_punct("[") {
                let open = self.next();
                let range = self.duration("subquery or range selector")?;
                if self.is_punct(":") {
                    self.next();
                    let step = if self.is_punct("]") {
                        None
                    } else {
                        Some(self.duration("subquery selector")?)
                    };
                    self.expect("]", "subquery selector")?;
                    let vt = e.value_type();
                    if vt != ValueType::Vector {
                        return Err(ParseError::new(
                            open.start,
                            format!(
                                "subquery is only allowed on instant vector, got {vt} in {:?} instead",
                                e.to_string()
                            ),
                        ));
                    }
                    e = Expr::SubqueryExpr(SubqueryExpr {
                        expr: Box::new(e),
                        range,
                        step,
                        offset: 0,
                        at: None,
                    });
                } else {
                    self.expect("]", "range selector")?;
                    match e {
                        Expr::VectorSelector(vs) => {
                            if vs.offset != 0 || vs.at.is_some() {
                                return Err(ParseError::new(
                                    open.start,
                                    "no offset or @ modifiers allowed before range",
                                ));
                            }
                            e = Expr::MatrixSelector(MatrixSelector { vs, range });
                        }
                        _ => {
                            return Err(ParseError::new(
                                open.start,
                                "ranges only allowed for vector selectors",
                            ));
                        }
                    }
                }
            } else if self.is_word("offset") {
                self.next();
                let neg = if self.is_punct("-") {
                    self.next();
                    true
                } else {
                    if self.is_punct("+") {
                        self.next();
                    }
                    false
                };
                let d = self.duration("offset")?;
                let d = if neg { -d } else { d };
                let slot = match &mut e {
                    Expr::VectorSelector(vs) => &mut vs.offset,
                    Expr::MatrixSelector(ms) => &mut ms.vs.offset,
                    Expr::SubqueryExpr(sq) => &mut sq.offset,
                    _ => {
                        return Err(ParseError::new(
                            start,
                            "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery",
                        ));
                    }
                };
                if *slot != 0 {
                    return Err(ParseError::new(
                        start,
                        "offset may not be set multiple times",
                    ));
                }
                *slot = d;
            } else if self.is_punct("@") {
                self.next();
                let at = self.at_value()?;
                let slot = match &mut e {
                    Expr::VectorSelector(vs) => &mut vs.at,
                    Expr::MatrixSelector(ms) => &mut ms.vs.at,
                    Expr::SubqueryExpr(sq) => &mut sq.at,
                    _ => {
                        return Err(ParseError::new(
                            start,
                            "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery",
                        ));
                    }
                };
                if slot.is_some() {
                    return Err(ParseError::new(
                        start,
                        "@ <timestamp> may not be set multiple times",
                    ));
                }
                *slot = Some(at);
            } else {
                return Ok(e);
            }
        }
    }

    fn at_value(&mut self) -> PResult<AtModifier> {
        let t = self.peek().clone();
        let mut sign = 1.0;
        if self.is_punct("-") || self.is_punct("+") {
            if self.is_punct("-") {
                sign = -1.0;
            }
            self.next();
        }
        match self.peek().tok.clone() {
            Tok::Number(v) => {
                self.next();
                let ms = sign * v * 1000.0;
                if !ms.is_finite() || ms.abs() > i64::MAX as f64 {
                    return Err(ParseError::new(
                        t.start,
                        "timestamp out of bounds for @ modifier",
                    ));
                }
                Ok(AtModifier::Timestamp(ms.round() as i64))
            }
            Tok::Ident(w) if sign > 0.0 && (w == "start" || w == "end") => {
                self.next();
                self.expect("(", "@ modifier")?;
                self.expect(")", "@ modifier")?;
                Ok(if w == "start" {
                    AtModifier::Start
                } else {
                    AtModifier::End
                })
            }
            _ => self.unexpected("@", "timestamp"),
        }
    }

    fn duration(&mut self, ctx: &str) -> PResult<i64> {
        match self.peek().tok {
            Tok::Duration(d) => {
                self.next();
                Ok(d)
            }
            // As Prometheus: `x[5]`.
            Tok::Number(_) => Err(ParseError::new(
                self.peek().start,
                "missing unit character in duration",
            )),
            _ => self.unexpected(ctx, "duration"),
        }
    }

    fn primary(&mut self) -> PResult<Expr> {
        let t = self.peek().clone();
        match t.tok {
            Tok::Number(v) => {
                self.next();
                Ok(Expr::NumberLiteral(v))
            }
            Tok::Str(s) => {
                self.next();
                Ok(Expr::StringLiteral(s))
            }
            Tok::Punct("(") => {
                self.next();
                let e = self.expr(0)?;
                self.expect(")", "paren expression")?;
                Ok(Expr::Paren(Box::new(e)))
            }
            Tok::Punct("{") => self.selector(None, t.start),
            Tok::Ident(w) => {
                let lower = w.to_ascii_lowercase();
                let next = self.peek_at(1).clone();
                let next_is_grouping = matches!(&next, Tok::Ident(n)
                    if n.eq_ignore_ascii_case("by") || n.eq_ignore_ascii_case("without"));
                // An aggregation keyword names a metric only where a selector can end
                // (`foo * sum`, `sum{a="b"}`); before an operand it starts an aggregation.
                let operand_follows = match &next {
                    Tok::Ident(n) => !is_keyword(n),
                    Tok::Punct(p) => *p == "(",
                    Tok::Number(_) | Tok::Str(_) | Tok::Duration(_) => true,
                    Tok::Eof => false,
                };
                if let Some(op) = AggOp::from_name(&lower)
                    && (operand_follows || next_is_grouping)
                {
                    self.next();
                    return self.aggregation(op, t.start);
                }
                if next == Tok::Punct("(") && !is_keyword(&w) {
                    let Some(func) = functions::lookup(&w) else {
                        return Err(ParseError::new(
                            t.start,
                            format!("unknown function with name {w:?}"),
                        ));
                    };
                    self.next();
                    return self.call(func, t.start);
                }
                // Keywords other than the binary operators may name metrics (`sum`, `offset{}`),
                // but not when followed by "(" (`ignoring(x)` after `on(y)`).
                let operator = matches!(lower.as_str(), "and" | "or" | "unless" | "atan2");
                if operator || (is_keyword(&w) && next == Tok::Punct("(")) {
                    return self.unexpected("", "");
                }
                self.next();
                self.selector(Some(w), t.start)
            }
            Tok::Eof => self.unexpected("", ""),
            _ => self.unexpected("", ""),
        }
    }

    fn call(&mut self, func: &'static functions::Function, start: usize) -> PResult<Expr> {
        self.expect("(", "function call")?;
        let mut args = Vec::new();
        let mut arg_pos = Vec::new();
        loop {
            if self.is_punct(")") {
                self.next();
                break;
            }
            arg_pos.push(self.peek().start);
            args.push(self.expr(0)?);
            if self.is_punct(",") {
                self.next();
            } else if !self.is_punct(")") {
                return self.unexpected("function call", "\",\" or \")\"");
            }
        }
        let n = args.len();
        let nt = func.arg_types.len();
        if func.variadic == 0 {
            if n != nt {
                return Err(ParseError::new(
                    start,
                    format!(
                        "expected {nt} argument(s) in call to {:?}, got {n}",
                        func.name
                    ),
                ));
            }
        } else {
            let min = nt - 1;
            if n < min {
                return Err(ParseError::new(
                    start,
                    format!(
                        "expected at least {min} argument(s) in call to {:?}, got {n}",
                        func.name
                    ),
                ));
            }
            let max = nt - 1 + func.variadic.max(0) as usize;
            if func.variadic > 0 && n > max {
                return Err(ParseError::new(
                    start,
                    format!(
                        "expected at most {max} argument(s) in call to {:?}, got {n}",
                        func.name
                    ),
                ));
            }
        }
        for (i, a) in args.iter().enumerate() {
            let want = func.arg_types[i.min(nt - 1)];
            let got = a.value_type();
            if got != want {
                return Err(ParseError::new(
                    arg_pos.get(i).copied().unwrap_or(start),
                    format!(
                        "expected type {want} in call to function {:?}, got {got}",
                        func.name
                    ),
                ));
            }
        }
        Ok(Expr::Call(Call { func, args }))
    }

    fn aggregation(&mut self, op: AggOp, start: usize) -> PResult<Expr> {
        let mut grouping = None;
        if self.is_word("by") || self.is_word("without") {
            let without = self.is_word("without");
            self.next();
            grouping = Some((self.label_list("grouping opts")?, without));
        }
        if !self.is_punct("(") {
            return self.unexpected("aggregation", "\"(\"");
        }
        self.next();
        let mut args = Vec::new();
        let mut arg_pos = Vec::new();
        loop {
            if self.is_punct(")") {
                self.next();
                break;
            }
            arg_pos.push(self.peek().start);
            args.push(self.expr(0)?);
            if self.is_punct(",") {
                self.next();
            } else if !self.is_punct(")") {
                return self.unexpected("aggregation", "\",\" or \")\"");
            }
        }
        if self.is_word("by") || self.is_word("without") {
            if grouping.is_some() {
                return self.unexpected("", "");
            }
            let without = self.is_word("without");
            self.next();
            grouping = Some((self.label_list("grouping opts")?, without));
        }
        if args.is_empty() {
            return Err(ParseError::new(
                start,
                "no arguments for aggregate expression provided",
            ));
        }
        let want = if op.param_type().is_some() { 2 } else { 1 };
        if args.len() != want {
            return Err(ParseError::new(
                start,
                format!(
                    "wrong number of arguments for aggregate expression provided, expected {want}, got {}",
                    args.len()
                ),
            ));
        }
        let expr = args.pop().unwrap_or(Expr::NumberLiteral(0.0));
        let expr_pos = arg_pos.last().copied().unwrap_or(start);
        if expr.value_type() != ValueType::Vector {
            return Err(ParseError::new(
                expr_pos,
                format!(
                    "expected type instant vector in aggregation expression, got {}",
                    expr.value_type()
                ),
            ));
        }
        let param = args.pop();
        if let (Some(p), Some(want)) = (&param, op.param_type())
            && p.value_type() != want
        {
            return Err(ParseError::new(
                arg_pos[0],
                format!(
                    "expected type {want} in aggregation parameter, got {}",
                    p.value_type()
                ),
            ));
        }
        let (grouping, without) = grouping.unwrap_or_default();
        Ok(Expr::AggregateExpr(AggregateExpr {
            op,
            expr: Box::new(expr),
            param: param.map(Box::new),
            grouping,
            without,
        }))
    }

    /// `name`, `name{...}` or `{...}`; the name (if any) is already consumed.
    fn selector(&mut self, name: Option<String>, start: usize) -> PResult<Expr> {
        let mut matchers = Vec::new();
        if let Some(n) = &name {
            matchers.push(Matcher::eq("__name__", n.clone()));
        }
        if self.is_punct("{") {
            self.next();
            loop {
                if self.is_punct("}") {
                    self.next();
                    break;
                }
                let lt = self.peek().clone();
                let lname = match &lt.tok {
                    Tok::Ident(w) if is_label_name(w) => w.clone(),
                    _ => return self.unexpected("label matching", "identifier or \"}\""),
                };
                self.next();
                let op = match &self.peek().tok {
                    Tok::Punct("=") => MatchOp::Eq,
                    Tok::Punct("!=") => MatchOp::Ne,
                    Tok::Punct("=~") => MatchOp::Re,
                    Tok::Punct("!~") => MatchOp::NotRe,
                    _ => return self.unexpected("label matching", "label matching operator"),
                };
                self.next();
                let value = match &self.peek().tok {
                    Tok::Str(s) => s.clone(),
                    _ => return self.unexpected("label matching", "string"),
                };
                self.next();
                if lname == "__name__" && name.is_some() {
                    return Err(ParseError::new(
                        lt.start,
                        format!(
                            "metric name must not be set twice: {:?} or {value:?}",
                            name.as_deref().unwrap_or("")
                        ),
                    ));
                }
                let shown = value.clone();
                if matches!(op, MatchOp::Re | MatchOp::NotRe) {
                    // Go's syntax rules and texts first (Prometheus compiles with Go's RE2).
                    re2::check(&value).map_err(|e| {
                        ParseError::new(lt.start, format!("error parsing regexp: {e}"))
                    })?;
                }
                let m = Matcher::new(op, lname, value).map_err(|e| {
                    ParseError::new(
                        lt.start,
                        format!(
                            "error parsing regexp: {}",
                            regex_message(&shown, &e.to_string())
                        ),
                    )
                })?;
                matchers.push(m);
                if self.is_punct(",") {
                    self.next();
                } else if !self.is_punct("}") {
                    return self.unexpected("label matching", "\",\" or \"}\"");
                }
            }
        }
        if !matchers.iter().any(|m| !m.matches_empty()) {
            return Err(ParseError::new(
                start,
                "vector selector must contain at least one non-empty matcher",
            ));
        }
        Ok(Expr::VectorSelector(VectorSelector {
            name,
            matchers,
            offset: 0,
            at: None,
        }))
    }
}

/// Where the parts of a binary expression start, for error positions as Prometheus reports them.
struct Positions {
    op: usize,
    lhs: usize,
    rhs: usize,
}

/// Builds a binary expression with Prometheus' checks, in Prometheus' order.
fn build_binary(
    op: BinOp,
    pos: Positions,
    lhs: Expr,
    rhs: Expr,
    return_bool: bool,
    matching: Option<VectorMatching>,
) -> PResult<Expr> {
    let (lt, rt) = (lhs.value_type(), rhs.value_type());
    if op.is_comparison() && !return_bool && lt == ValueType::Scalar && rt == ValueType::Scalar {
        return Err(ParseError::new(
            pos.op,
            "comparisons between scalars must use BOOL modifier",
        ));
    }
    if let Some(m) = &matching
        && m.on
        && let Some(l) = m.include.iter().find(|l| m.labels.contains(l))
    {
        return Err(ParseError::new(
            pos.op,
            format!("label {l:?} must not occur in ON and GROUP clause at once"),
        ));
    }
    let ok = |t| t == ValueType::Scalar || t == ValueType::Vector;
    for (t, p) in [(lt, pos.lhs), (rt, pos.rhs)] {
        if !ok(t) {
            return Err(ParseError::new(
                p,
                "binary expression must contain only scalar and instant vector types",
            ));
        }
    }
    let both_vectors = lt == ValueType::Vector && rt == ValueType::Vector;
    let matching = match matching {
        Some(m) if !both_vectors => {
            if !m.labels.is_empty() {
                return Err(ParseError::new(
                    pos.lhs,
                    "vector matching only allowed between instant vectors",
                ));
            }
            None
        }
        Some(m) => {
            if op.is_set() && matches!(m.card, Cardinality::ManyToOne | Cardinality::OneToMany) {
                return Err(ParseError::new(
                    pos.lhs,
                    format!("no grouping allowed for \"{}\" operation", op.as_str()),
                ));
            }
            Some(m)
        }
        None if both_vectors => Some(VectorMatching {
            card: Cardinality::OneToOne,
            labels: vec![],
            on: false,
            include: vec![],
        }),
        None => None,
    };
    if op.is_set() && !both_vectors {
        return Err(ParseError::new(
            pos.lhs,
            format!(
                "set operator {:?} not allowed in binary scalar expression",
                op.as_str()
            ),
        ));
    }
    let matching = matching.map(|mut m| {
        if op.is_set() {
            m.card = Cardinality::ManyToMany;
        }
        m
    });
    Ok(Expr::BinaryExpr(BinaryExpr {
        op,
        lhs: Box::new(lhs),
        rhs: Box::new(rhs),
        matching,
        return_bool,
    }))
}

/// A regex error on one line, in Go's words where Prometheus' message is predictable (an
/// unclosed group); otherwise the regex crate's reason.
fn regex_message(re: &str, err: &str) -> String {
    if err.contains("unclosed group") {
        return format!("missing closing ): `^(?:{re})$`");
    }
    err.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or(err)
        .to_string()
}

#[cfg(test)]
mod tests;
