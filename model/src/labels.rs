//! Label sets.

use std::fmt;

use serde::ser::{Serialize, SerializeMap, Serializer};

/// The label that holds a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// One label pair.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    /// Label name.
    pub name: String,
    /// Label value; an empty value means the label is absent.
    pub value: String,
}

/// A sorted set of label pairs with unique names, including `__name__` when the series has one.
///
/// The representation is private so it can change (interning, one shared buffer) without touching
/// callers. Labels with empty values are dropped on construction, as in Prometheus.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<Label>);

impl Labels {
    /// The empty label set.
    pub fn empty() -> Self {
        Self(Vec::new())
    }

    /// Builds a label set from pairs in any order; for duplicate names the last one wins and empty
    /// values are dropped.
    pub fn new(mut labels: Vec<Label>) -> Self {
        // Stable sort keeps insertion order among equal names, so "last wins" below is well defined.
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out: Vec<Label> = Vec::with_capacity(labels.len());
        for l in labels {
            match out.last_mut() {
                Some(last) if last.name == l.name => *last = l,
                _ => out.push(l),
            }
        }
        out.retain(|l| !l.value.is_empty());
        Self(out)
    }

    /// Builds a label set from `(name, value)` pairs.
    pub fn from_pairs<N: AsRef<str>, V: AsRef<str>>(pairs: &[(N, V)]) -> Self {
        Self::new(
            pairs
                .iter()
                .map(|(n, v)| Label {
                    name: n.as_ref().to_string(),
                    value: v.as_ref().to_string(),
                })
                .collect(),
        )
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    /// The metric name (`__name__`), if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// Iterates the pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        self.0.iter()
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A copy without `__name__`.
    pub fn without_metric_name(&self) -> Self {
        Self(
            self.0
                .iter()
                .filter(|l| l.name != METRIC_NAME)
                .cloned()
                .collect(),
        )
    }

    /// A builder starting from this set.
    pub fn builder(&self) -> LabelsBuilder {
        LabelsBuilder {
            labels: self.0.clone(),
        }
    }

    /// Keeps only the named labels (`by` grouping).
    pub fn keep(&self, names: &[String]) -> Self {
        Self(
            self.0
                .iter()
                .filter(|l| names.contains(&l.name))
                .cloned()
                .collect(),
        )
    }

    /// Drops the named labels and `__name__` (`without` grouping).
    pub fn drop_names(&self, names: &[String]) -> Self {
        Self(
            self.0
                .iter()
                .filter(|l| l.name != METRIC_NAME && !names.contains(&l.name))
                .cloned()
                .collect(),
        )
    }
}

impl fmt::Display for Labels {
    /// Formats as Prometheus does: `name{a="b", ...}`, or `{a="b"}` without a name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name();
        if let Some(n) = name {
            f.write_str(n)?;
        }
        let mut rest = self.0.iter().filter(|l| l.name != METRIC_NAME).peekable();
        if rest.peek().is_none() && name.is_some() {
            return Ok(());
        }
        f.write_str("{")?;
        let mut first = true;
        for l in rest {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{}=\"", l.name)?;
            for c in l.value.chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '"' => f.write_str("\\\"")?,
                    '\n' => f.write_str("\\n")?,
                    c => write!(f, "{c}")?,
                }
            }
            f.write_str("\"")?;
        }
        f.write_str("}")
    }
}

impl Serialize for Labels {
    /// Serializes as a JSON object, the shape of `metric` in the Prometheus API.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for l in &self.0 {
            m.serialize_entry(&l.name, &l.value)?;
        }
        m.end()
    }
}

/// Edits a label set: set and delete, then [`LabelsBuilder::build`].
#[derive(Debug, Clone, Default)]
pub struct LabelsBuilder {
    labels: Vec<Label>,
}

impl LabelsBuilder {
    /// Sets `name` to `value` (an empty value deletes it).
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        let name = name.into();
        self.labels.retain(|l| l.name != name);
        self.labels.push(Label {
            name,
            value: value.into(),
        });
        self
    }

    /// Deletes `name`.
    pub fn del(&mut self, name: &str) -> &mut Self {
        self.labels.retain(|l| l.name != name);
        self
    }

    /// The resulting sorted set.
    pub fn build(&self) -> Labels {
        Labels::new(self.labels.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_display(pairs: &[(&str, &str)], want: &str) {
        assert_eq!(Labels::from_pairs(pairs).to_string(), want);
    }

    #[test]
    fn display() {
        check_display(&[("__name__", "up")], "up");
        check_display(&[("job", "a"), ("__name__", "up")], r#"up{job="a"}"#);
        check_display(&[("b", "x\"y"), ("a", "1")], r#"{a="1", b="x\"y"}"#);
        check_display(&[], "{}");
    }

    #[test]
    fn sorted_unique_last_wins_and_empty_dropped() {
        let l = Labels::from_pairs(&[("b", "1"), ("a", "2"), ("b", "3"), ("c", "")]);
        let got: Vec<_> = l
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(got, vec![("a", "2"), ("b", "3")]);
        assert_eq!(l.get("b"), Some("3"));
        assert_eq!(l.get("c"), None);
    }

    #[test]
    fn builder_and_grouping() {
        let l = Labels::from_pairs(&[("__name__", "x"), ("a", "1"), ("b", "2")]);
        let mut b = l.builder();
        b.set("c", "3").del("a");
        assert_eq!(b.build().to_string(), r#"x{b="2", c="3"}"#);
        assert_eq!(l.keep(&["a".into()]).to_string(), r#"{a="1"}"#);
        assert_eq!(l.drop_names(&["a".into()]).to_string(), r#"{b="2"}"#);
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            r#"{"__name__":"x","a":"1","b":"2"}"#
        );
    }
}
