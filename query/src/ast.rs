//! The PromQL abstract syntax tree, named after Prometheus' `promql/parser` types.
//!
//! Durations and offsets are `i64` milliseconds; `@` timestamps are milliseconds since the epoch.

use std::fmt;

use pharos_model::{MatchOp, Matcher};

/// The type an expression evaluates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// A single float.
    Scalar,
    /// A string.
    String,
    /// An instant vector.
    Vector,
    /// A range vector.
    Matrix,
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueType::Scalar => "scalar",
            ValueType::String => "string",
            ValueType::Vector => "instant vector",
            ValueType::Matrix => "range vector",
        })
    }
}

/// The `@` modifier.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AtModifier {
    /// `@ <unix seconds>`, stored in milliseconds.
    Timestamp(i64),
    /// `@ start()`: the start of the (range) query.
    Start,
    /// `@ end()`: the end of the (range) query.
    End,
}

/// `name{matchers} offset d @ t`.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorSelector {
    /// The metric name when written before the braces.
    pub name: Option<String>,
    /// All matchers, including the `__name__` equality matcher for `name`.
    pub matchers: Vec<Matcher>,
    /// `offset` in milliseconds (may be negative).
    pub offset: i64,
    /// The `@` modifier.
    pub at: Option<AtModifier>,
}

/// `selector[range]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixSelector {
    /// The selector (carries offset and `@`).
    pub vs: VectorSelector,
    /// Range in milliseconds.
    pub range: i64,
}

/// `expr[range:step] offset d @ t`.
#[derive(Debug, Clone, PartialEq)]
pub struct SubqueryExpr {
    /// The inner instant-vector expression.
    pub expr: Box<Expr>,
    /// Range in milliseconds.
    pub range: i64,
    /// Step in milliseconds; `None` means the engine's default resolution.
    pub step: Option<i64>,
    /// `offset` in milliseconds.
    pub offset: i64,
    /// The `@` modifier.
    pub at: Option<AtModifier>,
}

/// A function call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The function, from the function table.
    pub func: &'static crate::functions::Function,
    /// Arguments.
    pub args: Vec<Expr>,
}

/// Aggregation operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggOp {
    /// sum
    Sum,
    /// avg
    Avg,
    /// count
    Count,
    /// min
    Min,
    /// max
    Max,
    /// group
    Group,
    /// stddev
    Stddev,
    /// stdvar
    Stdvar,
    /// topk
    Topk,
    /// bottomk
    Bottomk,
    /// quantile
    Quantile,
    /// count_values
    CountValues,
}

impl AggOp {
    /// Looks up an aggregation by its (lower-case) keyword.
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "sum" => AggOp::Sum,
            "avg" => AggOp::Avg,
            "count" => AggOp::Count,
            "min" => AggOp::Min,
            "max" => AggOp::Max,
            "group" => AggOp::Group,
            "stddev" => AggOp::Stddev,
            "stdvar" => AggOp::Stdvar,
            "topk" => AggOp::Topk,
            "bottomk" => AggOp::Bottomk,
            "quantile" => AggOp::Quantile,
            "count_values" => AggOp::CountValues,
            _ => return None,
        })
    }

    /// The keyword.
    pub fn name(self) -> &'static str {
        match self {
            AggOp::Sum => "sum",
            AggOp::Avg => "avg",
            AggOp::Count => "count",
            AggOp::Min => "min",
            AggOp::Max => "max",
            AggOp::Group => "group",
            AggOp::Stddev => "stddev",
            AggOp::Stdvar => "stdvar",
            AggOp::Topk => "topk",
            AggOp::Bottomk => "bottomk",
            AggOp::Quantile => "quantile",
            AggOp::CountValues => "count_values",
        }
    }

    /// The type of the parameter, for aggregations that take one.
    pub fn param_type(self) -> Option<ValueType> {
        match self {
            AggOp::Topk | AggOp::Bottomk | AggOp::Quantile => Some(ValueType::Scalar),
            AggOp::CountValues => Some(ValueType::String),
            _ => None,
        }
    }
}

/// `op [by|without (labels)] ([param,] expr)`.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateExpr {
    /// The operator.
    pub op: AggOp,
    /// The aggregated expression.
    pub expr: Box<Expr>,
    /// The parameter of topk, bottomk, quantile and count_values.
    pub param: Option<Box<Expr>>,
    /// Labels of `by`/`without`.
    pub grouping: Vec<String>,
    /// True for `without`.
    pub without: bool,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// +
    Add,
    /// -
    Sub,
    /// *
    Mul,
    /// /
    Div,
    /// %
    Mod,
    /// ^
    Pow,
    /// atan2
    Atan2,
    /// ==
    Eql,
    /// !=
    Neq,
    /// <
    Lss,
    /// <=
    Lte,
    /// >
    Gtr,
    /// >=
    Gte,
    /// and
    And,
    /// or
    Or,
    /// unless
    Unless,
}

impl BinOp {
    /// Binding strength: higher binds tighter (`or` 1 … `^` 6).
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And | BinOp::Unless => 2,
            BinOp::Eql | BinOp::Neq | BinOp::Lss | BinOp::Lte | BinOp::Gtr | BinOp::Gte => 3,
            BinOp::Add | BinOp::Sub => 4,
            BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Atan2 => 5,
            BinOp::Pow => 6,
        }
    }

    /// True for the comparison operators.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eql | BinOp::Neq | BinOp::Lss | BinOp::Lte | BinOp::Gtr | BinOp::Gte
        )
    }

    /// True for `and`, `or`, `unless`.
    pub fn is_set(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }

    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Pow => "^",
            BinOp::Atan2 => "atan2",
            BinOp::Eql => "==",
            BinOp::Neq => "!=",
            BinOp::Lss => "<",
            BinOp::Lte => "<=",
            BinOp::Gtr => ">",
            BinOp::Gte => ">=",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::Unless => "unless",
        }
    }
}

/// Cardinality of vector matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cardinality {
    /// One-to-one.
    OneToOne,
    /// `group_left`.
    ManyToOne,
    /// `group_right`.
    OneToMany,
    /// Set operators.
    ManyToMany,
}

/// `on`/`ignoring` and `group_left`/`group_right` of a binary expression between vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorMatching {
    /// The cardinality.
    pub card: Cardinality,
    /// Labels of `on`/`ignoring`.
    pub labels: Vec<String>,
    /// True for `on`, false for `ignoring` (or nothing written).
    pub on: bool,
    /// Extra labels of `group_left(...)`/`group_right(...)` copied from the "one" side.
    pub include: Vec<String>,
}

/// `lhs op [bool] [matching] rhs`.
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryExpr {
    /// The operator.
    pub op: BinOp,
    /// Left operand.
    pub lhs: Box<Expr>,
    /// Right operand.
    pub rhs: Box<Expr>,
    /// Vector matching; `None` when at least one side is a scalar.
    pub matching: Option<VectorMatching>,
    /// The `bool` modifier of comparisons.
    pub return_bool: bool,
}

/// A PromQL expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A float literal.
    NumberLiteral(f64),
    /// A string literal (unquoted).
    StringLiteral(String),
    /// An instant vector selector.
    VectorSelector(VectorSelector),
    /// A range vector selector.
    MatrixSelector(MatrixSelector),
    /// A function call.
    Call(Call),
    /// An aggregation.
    AggregateExpr(AggregateExpr),
    /// A binary operation.
    BinaryExpr(BinaryExpr),
    /// A subquery.
    SubqueryExpr(SubqueryExpr),
    /// `( expr )`.
    Paren(Box<Expr>),
    /// `-expr` (unary plus is dropped by the parser).
    Unary(Box<Expr>),
}

impl Expr {
    /// The type the expression evaluates to.
    pub fn value_type(&self) -> ValueType {
        match self {
            Expr::NumberLiteral(_) => ValueType::Scalar,
            Expr::StringLiteral(_) => ValueType::String,
            Expr::VectorSelector(_) | Expr::AggregateExpr(_) => ValueType::Vector,
            Expr::MatrixSelector(_) | Expr::SubqueryExpr(_) => ValueType::Matrix,
            Expr::Call(c) => c.func.return_type,
            Expr::BinaryExpr(b) => {
                if b.lhs.value_type() == ValueType::Scalar
                    && b.rhs.value_type() == ValueType::Scalar
                {
                    ValueType::Scalar
                } else {
                    ValueType::Vector
                }
            }
            Expr::Paren(e) | Expr::Unary(e) => e.value_type(),
        }
    }

    /// The expression without enclosing parentheses.
    pub fn unparen(&self) -> &Expr {
        match self {
            Expr::Paren(e) => e.unparen(),
            e => e,
        }
    }
}

/// Writes `s` as a double-quoted PromQL string (Go escapes).
fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            c if (c as u32) < 0x20 || c as u32 == 0x7f => write!(f, "\\x{:02x}", c as u32)?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

fn fmt_at_offset(f: &mut fmt::Formatter<'_>, at: Option<AtModifier>, offset: i64) -> fmt::Result {
    match at {
        Some(AtModifier::Timestamp(t)) => write!(f, " @ {:.3}", t as f64 / 1000.0)?,
        Some(AtModifier::Start) => f.write_str(" @ start()")?,
        Some(AtModifier::End) => f.write_str(" @ end()")?,
        None => {}
    }
    if offset > 0 {
        write!(f, " offset {}", pharos_model::api::format_duration(offset))?;
    } else if offset < 0 {
        write!(
            f,
            " offset -{}",
            pharos_model::api::format_duration(-offset)
        )?;
    }
    Ok(())
}

fn fmt_selector(f: &mut fmt::Formatter<'_>, vs: &VectorSelector) -> fmt::Result {
    let rest: Vec<&Matcher> = vs
        .matchers
        .iter()
        .filter(|m| !(vs.name.is_some() && m.name == "__name__" && m.op == MatchOp::Eq))
        .collect();
    if let Some(n) = &vs.name {
        f.write_str(n)?;
    }
    if !rest.is_empty() || vs.name.is_none() {
        f.write_str("{")?;
        for (i, m) in rest.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{m}")?;
        }
        f.write_str("}")?;
    }
    Ok(())
}

impl fmt::Display for Expr {
    /// Formats the expression back to PromQL (close to Prometheus' `String()`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::NumberLiteral(v) => f.write_str(&pharos_model::api::format_value(*v)),
            Expr::StringLiteral(s) => write_quoted(f, s),
            Expr::VectorSelector(vs) => {
                fmt_selector(f, vs)?;
                fmt_at_offset(f, vs.at, vs.offset)
            }
            Expr::MatrixSelector(ms) => {
                fmt_selector(f, &ms.vs)?;
                write!(f, "[{}]", pharos_model::api::format_duration(ms.range))?;
                fmt_at_offset(f, ms.vs.at, ms.vs.offset)
            }
            Expr::SubqueryExpr(sq) => {
                write!(
                    f,
                    "{}[{}:{}]",
                    sq.expr,
                    pharos_model::api::format_duration(sq.range),
                    sq.step
                        .map(pharos_model::api::format_duration)
                        .unwrap_or_default()
                )?;
                fmt_at_offset(f, sq.at, sq.offset)
            }
            Expr::Call(c) => {
                write!(f, "{}(", c.func.name)?;
                for (i, a) in c.args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
            Expr::AggregateExpr(a) => {
                f.write_str(a.op.name())?;
                if a.without {
                    write!(f, " without ({}) ", a.grouping.join(", "))?;
                } else if !a.grouping.is_empty() {
                    write!(f, " by ({}) ", a.grouping.join(", "))?;
                }
                f.write_str("(")?;
                if let Some(p) = &a.param {
                    write!(f, "{p}, ")?;
                }
                write!(f, "{})", a.expr)
            }
            Expr::BinaryExpr(b) => {
                write!(f, "{} {}", b.lhs, b.op.as_str())?;
                if b.return_bool {
                    f.write_str(" bool")?;
                }
                if let Some(m) = &b.matching {
                    if m.on || !m.labels.is_empty() {
                        let kw = if m.on { "on" } else { "ignoring" };
                        write!(f, " {kw}({})", m.labels.join(", "))?;
                    }
                    match m.card {
                        Cardinality::ManyToOne => {
                            write!(f, " group_left({})", m.include.join(", "))?
                        }
                        Cardinality::OneToMany => {
                            write!(f, " group_right({})", m.include.join(", "))?
                        }
                        _ => {}
                    }
                }
                write!(f, " {}", b.rhs)
            }
            Expr::Paren(e) => write!(f, "({e})"),
            Expr::Unary(e) => write!(f, "-{e}"),
        }
    }
}
