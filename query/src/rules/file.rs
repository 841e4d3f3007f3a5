//! Rule files in Prometheus' format: parsing, validation with promtool's messages, and the
//! file/line of every problem.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::Error;
use super::template::Template;
use crate::parser;

/// A rule file: `groups:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// The groups, evaluated independently.
    #[serde(default)]
    pub groups: Vec<GroupDesc>,
}

/// One group as written in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupDesc {
    /// Unique name within the file.
    #[serde(default)]
    pub name: String,
    /// Evaluation interval (default: the global `evaluation_interval`).
    #[serde(default)]
    pub interval: Option<String>,
    /// Most series a recording rule or alerts an alerting rule may produce (0: no limit).
    #[serde(default)]
    pub limit: usize,
    /// The rules, evaluated in order.
    #[serde(default)]
    pub rules: Vec<RuleDesc>,
}

/// One rule as written in the file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleDesc {
    /// Name of the series a recording rule writes.
    #[serde(default)]
    pub record: Option<String>,
    /// Name of an alerting rule.
    #[serde(default)]
    pub alert: Option<String>,
    /// The PromQL expression.
    #[serde(default)]
    pub expr: String,
    /// How long an alert stays pending before it fires.
    #[serde(default, rename = "for")]
    pub for_: Option<String>,
    /// How long an alert keeps firing after its condition cleared.
    #[serde(default)]
    pub keep_firing_for: Option<String>,
    /// Labels added (templates allowed in alerting rules).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations of alerting rules (templates allowed).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl RuleDesc {
    /// The rule's name (`record` or `alert`).
    pub fn name(&self) -> &str {
        self.record
            .as_deref()
            .or(self.alert.as_deref())
            .unwrap_or("")
    }
}

fn valid_label_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_metric_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses a Prometheus duration string field.
pub fn duration_field(s: &Option<String>) -> Result<i64, String> {
    match s.as_deref() {
        None | Some("") => Ok(0),
        Some(v) => pharos_model::parse_duration_ms(v),
    }
}

/// Finds the 1-based line and column of the value of `field` in the `index`-th rule (0-based)
/// of group `group` (as promtool reports them); the rule's first line if the field is absent.
fn rule_pos(text: &str, group: &str, index: usize, field: &str) -> (usize, usize) {
    let lines: Vec<&str> = text.lines().collect();
    let mut in_group = false;
    let mut rules_indent: Option<usize> = None;
    let mut seen = 0usize;
    let mut fallback = (1, 1);
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let key = trimmed.trim_start_matches("- ");
        if let Some(rest) = key.strip_prefix("name:") {
            let v = rest.trim().trim_matches(['"', '\'']);
            if v == group {
                in_group = true;
                rules_indent = None;
                seen = 0;
                fallback = (i + 1, indent + 1);
                continue;
            } else if in_group && trimmed.starts_with("- ") {
                in_group = false;
            }
        }
        if !in_group || !trimmed.starts_with("- ") {
            continue;
        }
        if rules_indent.is_some_and(|r| r != indent) {
            continue;
        }
        let is_rule = [
            "record:",
            "alert:",
            "expr:",
            "for:",
            "labels:",
            "annotations:",
            "keep_firing_for:",
        ]
        .iter()
        .any(|k| key.starts_with(k));
        if !is_rule {
            continue;
        }
        rules_indent = Some(indent);
        if seen < index {
            seen += 1;
            continue;
        }
        // The rule's block: this line and the following more-indented lines.
        for (j, l) in lines.iter().enumerate().skip(i) {
            let t = l.trim_start();
            let ind = l.len() - t.len();
            if j > i && !t.is_empty() && ind <= indent {
                break;
            }
            let k = t.trim_start_matches("- ");
            if let Some(rest) = k.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
                let value_off = rest.len() - rest.trim_start().len();
                let col = l.len() - k.len() + field.len() + 1 + value_off + 1;
                return (j + 1, col);
            }
        }
        return (i + 1, indent + 3);
    }
    fallback
}

/// Parses and validates one rule file's text. Errors say `file:line:col: ...` as promtool does.
pub fn parse_rule_file(text: &str, path: &Path) -> Result<RuleFile, Vec<Error>> {
    let file = path.display().to_string();
    let rf: RuleFile = serde_norway::from_str(text).map_err(|e| {
        let loc = e
            .location()
            .map(|l| format!("{}:{}: ", l.line(), l.column()))
            .unwrap_or_default();
        vec![Error::Load {
            file: file.clone(),
            msg: format!("{loc}{e}"),
        }]
    })?;
    let errs = validate(&rf, text, &file);
    if errs.is_empty() { Ok(rf) } else { Err(errs) }
}

/// promtool's checks on a parsed file; every problem is returned.
fn validate(rf: &RuleFile, text: &str, file: &str) -> Vec<Error> {
    let mut errs = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for g in &rf.groups {
        let err = |msg: String| Error::Load {
            file: file.to_string(),
            msg,
        };
        if g.name.is_empty() {
            errs.push(err("Groupname must not be empty".into()));
        } else if !seen.insert(g.name.clone()) {
            errs.push(err(format!(
                "groupname: \"{}\" is repeated in the same file",
                g.name
            )));
        }
        if let Err(e) = duration_field(&g.interval) {
            errs.push(err(format!("group {:?}: {e}", g.name)));
        }
        for (i, r) in g.rules.iter().enumerate() {
            for (field, msg) in validate_rule(r) {
                let pos = match field {
                    Some(f) => {
                        let (line, col) = rule_pos(text, &g.name, i, f);
                        format!("{line}:{col}: ")
                    }
                    None => String::new(),
                };
                errs.push(err(format!(
                    "{pos}group \"{}\", rule {}, \"{}\": {msg}",
                    g.name,
                    i + 1,
                    r.name()
                )));
            }
        }
    }
    errs
}

/// The checks of one rule (Prometheus' `RuleNode.Validate` plus template parsing): the field
/// each problem is about, and the message.
pub fn validate_rule(r: &RuleDesc) -> Vec<(Option<&'static str>, String)> {
    let mut out: Vec<(Option<&'static str>, String)> = Vec::new();
    match (&r.record, &r.alert) {
        (Some(_), Some(_)) => out.push((
            Some("record"),
            "only one of 'record' and 'alert' must be set".into(),
        )),
        (None, None) => out.push((
            Some("record"),
            "one of 'record' or 'alert' must be set".into(),
        )),
        _ => {}
    }
    if r.expr.trim().is_empty() {
        out.push((Some("expr"), "field 'expr' must be set in rule".into()));
    } else if let Err(e) = parser::parse(&r.expr) {
        out.push((Some("expr"), format!("could not parse expression: {e}")));
    }
    if let Some(rec) = &r.record {
        if !r.annotations.is_empty() {
            out.push((
                Some("record"),
                "invalid field 'annotations' in recording rule".into(),
            ));
        }
        if r.for_.is_some() {
            out.push((
                Some("record"),
                "invalid field 'for' in recording rule".into(),
            ));
        }
        if r.keep_firing_for.is_some() {
            out.push((
                Some("record"),
                "invalid field 'keep_firing_for' in recording rule".into(),
            ));
        }
        if !valid_metric_name(rec) {
            out.push((
                Some("record"),
                format!("invalid recording rule name: {rec}"),
            ));
        }
    }
    for k in r.labels.keys() {
        if !valid_label_name(k) {
            out.push((None, format!("invalid label name: {k}")));
        }
    }
    for k in r.annotations.keys() {
        if !valid_label_name(k) {
            out.push((None, format!("invalid annotation name: {k}")));
        }
    }
    if let Err(e) = duration_field(&r.for_) {
        out.push((Some("for"), e));
    }
    if let Err(e) = duration_field(&r.keep_firing_for) {
        out.push((Some("keep_firing_for"), e));
    }
    if let Some(a) = &r.alert {
        let name = format!("__alert_{a}");
        for m in [&r.labels, &r.annotations] {
            for v in m.values() {
                if let Err(e) = Template::parse(&name, v) {
                    out.push((None, e.to_string()));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(text: &str, want: &[&str]) {
        let got = match parse_rule_file(text, Path::new("r.yml")) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        };
        assert_eq!(got.len(), want.len(), "{got:?}");
        for (g, w) in got.iter().zip(want) {
            assert!(g.contains(w), "got {g:?}, want {w:?}");
        }
    }

    #[test]
    fn valid_and_invalid_files() {
        check(
            "groups:\n- name: g\n  rules:\n  - record: a:b\n    expr: up\n  - alert: X\n    expr: up == 0\n    for: 5m\n    annotations:\n      s: '{{ $labels.job }}'\n",
            &[],
        );
        check("", &[]);
        check(
            "groups:\n- name: g\n  rules:\n  - alert: X\n    expr: up ==\n",
            &[
                "r.yml: 5:11: group \"g\", rule 1, \"X\": could not parse expression: 1:6: parse error",
            ],
        );
        check(
            "groups:\n- name: g\n  rules:\n  - record: ok\n    expr: up\n  - record: 'bad name'\n    expr: up\n",
            &["6:13: group \"g\", rule 2, \"bad name\": invalid recording rule name: bad name"],
        );
        check(
            "groups:\n- name: g\n  rules:\n  - expr: up\n",
            &["4:5: group \"g\", rule 1, \"\": one of 'record' or 'alert' must be set"],
        );
        check(
            "groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n    for: 1m\n",
            &["invalid field 'for' in recording rule"],
        );
        check(
            "groups:\n- name: g\n  rules: []\n- name: g\n  rules: []\n",
            &["groupname: \"g\" is repeated in the same file"],
        );
        check(
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    annotations:\n      x: '{{ nope }}'\n",
            &["template: __alert_A:1: function \"nope\" not defined"],
        );
        check(
            "groups:\n- name: g\n  rulez: []\n",
            &["unknown field `rulez`"],
        );
        check(
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    for: 5x\n",
            &["not a valid duration string"],
        );
    }
}
