//! Label matchers.

use std::fmt;

use regex::Regex;

/// The four matcher kinds of PromQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `=~`
    Re,
    /// `!~`
    NotRe,
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchOp::Eq => "=",
            MatchOp::Ne => "!=",
            MatchOp::Re => "=~",
            MatchOp::NotRe => "!~",
        })
    }
}

/// A label matcher. A missing label matches as the empty string, as in Prometheus; regexes are
/// fully anchored (`^(?:...)$`).
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Kind of match.
    pub op: MatchOp,
    /// The literal value or the regex source as written.
    pub value: String,
    re: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name && self.op == o.op && self.value == o.value
    }
}

impl Matcher {
    /// Creates a matcher; fails only for an invalid regex.
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, regex::Error> {
        let value = value.into();
        let re = match op {
            MatchOp::Re | MatchOp::NotRe => Some(Regex::new(&format!("^(?s:{value})$"))?),
            _ => None,
        };
        Ok(Self {
            name: name.into(),
            op,
            value,
            re,
        })
    }

    /// An equality matcher (never fails).
    pub fn eq(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            op: MatchOp::Eq,
            value: value.into(),
            re: None,
        }
    }

    /// True if `value` (the empty string for a missing label) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.re) {
            (MatchOp::Eq, _) => self.value == value,
            (MatchOp::Ne, _) => self.value != value,
            (MatchOp::Re, Some(re)) => re.is_match(value),
            (MatchOp::NotRe, Some(re)) => !re.is_match(value),
            // Unreachable by construction: regex ops always carry a compiled regex.
            (MatchOp::Re | MatchOp::NotRe, None) => false,
        }
    }

    /// True if the matcher matches the empty string (so it also selects series without the label).
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// True if all matchers accept `labels`.
    pub fn all_match(matchers: &[Matcher], labels: &crate::Labels) -> bool {
        matchers
            .iter()
            .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(op: MatchOp, pat: &str, input: &str, want: bool) {
        let m = Matcher::new(op, "l", pat).unwrap();
        assert_eq!(m.matches(input), want, "{m} on {input:?}");
    }

    #[test]
    fn semantics() {
        check(MatchOp::Eq, "a", "a", true);
        check(MatchOp::Eq, "", "", true);
        check(MatchOp::Ne, "a", "", true);
        check(MatchOp::Re, "a|b", "b", true);
        check(MatchOp::Re, "a", "ab", false); // anchored
        check(MatchOp::Re, ".*", "", true);
        check(MatchOp::Re, "a.b", "a\nb", true); // (?s): dot matches newline
        check(MatchOp::NotRe, "a.*", "abc", false);
        check(MatchOp::NotRe, "a.*", "b", true);
        assert!(Matcher::new(MatchOp::Re, "l", "(").is_err());
    }
}
