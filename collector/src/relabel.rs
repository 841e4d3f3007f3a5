//! Relabeling as in Prometheus' `relabel_configs` and `metric_relabel_configs`.
//!
//! [`process`] applies a list of [`RelabelConfig`] steps to a label set and returns the result, or
//! `None` when a `keep`/`drop` step dropped it. Regexes are fully anchored (`^(?:re)$`) and
//! replacements use `$1`, `${1}` and `$name` as in Go.
//!
//! ```
//! use pharos_collector::relabel::{process, RelabelConfig};
//! use pharos_model::Labels;
//! let rc: RelabelConfig = serde_norway::from_str("source_labels: [__address__]\nregex: '(.*):.*'\ntarget_label: host\n").unwrap();
//! let out = process(&Labels::from_pairs(&[("__address__", "a:9100")]), &[rc]).unwrap();
//! assert_eq!(out.get("host"), Some("a"));
//! ```

use std::collections::BTreeMap;
use std::fmt;

use pharos_model::{Label, Labels};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::is_label_name;

/// A relabel regex: the source text and its anchored compiled form.
#[derive(Clone)]
pub struct Regex {
    source: String,
    re: regex::Regex,
}

impl Regex {
    /// Compiles `source` anchored at both ends.
    pub fn new(source: &str) -> std::result::Result<Self, regex::Error> {
        Ok(Self {
            source: source.to_string(),
            re: regex::Regex::new(&format!("^(?:{source})$"))?,
        })
    }

    /// The regex as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True if the whole of `s` matches.
    pub fn is_match(&self, s: &str) -> bool {
        self.re.is_match(s)
    }
}

impl Default for Regex {
    /// `(.*)`, Prometheus' default.
    fn default() -> Self {
        Self {
            source: "(.*)".into(),
            re: regex::Regex::new("^(?:(.*))$").expect("a constant regex compiles"),
        }
    }
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Regex({:?})", self.source)
    }
}

impl PartialEq for Regex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Serialize for Regex {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Regex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Regex::new(&s).map_err(|e| serde::de::Error::custom(format!("invalid regex {s:?}: {e}")))
    }
}

/// What a relabel step does. Written in any case (`Replace`, `DROP`), as Prometheus accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Sets `target_label` to `replacement` (with captures) if the regex matches the joined source
    /// values.
    #[default]
    Replace,
    /// Drops the set unless the regex matches.
    Keep,
    /// Drops the set if the regex matches.
    Drop,
    /// Drops the set unless the joined source values equal `target_label`'s value.
    KeepEqual,
    /// Drops the set if the joined source values equal `target_label`'s value.
    DropEqual,
    /// Sets `target_label` to the MD5 of the joined source values modulo `modulus`.
    HashMod,
    /// Copies labels whose names match the regex to the name given by `replacement`.
    LabelMap,
    /// Removes labels whose names match.
    LabelDrop,
    /// Removes labels whose names do not match.
    LabelKeep,
    /// Sets `target_label` to the lowercased joined source values.
    Lowercase,
    /// Sets `target_label` to the uppercased joined source values.
    Uppercase,
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.to_ascii_lowercase().as_str() {
            "replace" => Action::Replace,
            "keep" => Action::Keep,
            "drop" => Action::Drop,
            "keepequal" => Action::KeepEqual,
            "dropequal" => Action::DropEqual,
            "hashmod" => Action::HashMod,
            "labelmap" => Action::LabelMap,
            "labeldrop" => Action::LabelDrop,
            "labelkeep" => Action::LabelKeep,
            "lowercase" => Action::Lowercase,
            "uppercase" => Action::Uppercase,
            _ => {
                return Err(serde::de::Error::custom(format!(
                    "unknown relabel action {s:?}"
                )));
            }
        })
    }
}

/// True if `s` may be a `target_label` (or a `labelmap` replacement): label-name characters and
/// `$1`/`${name}` references, as Prometheus' `relabelTarget` pattern.
fn is_relabel_target(s: &str) -> bool {
    let b = s.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    if b.is_empty() {
        return false;
    }
    // The first item must be a letter, `_` or a reference; then word characters or references.
    let mut i = 0;
    let mut first = true;
    while i < b.len() {
        if b[i] == b'$' {
            if b.get(i + 1) == Some(&b'{') {
                let end = b[i + 2..].iter().position(|&c| c == b'}');
                match end {
                    Some(n) if n > 0 && b[i + 2..i + 2 + n].iter().all(|&c| word(c)) => i += n + 3,
                    _ => return false,
                }
            } else {
                let n = b[i + 1..].iter().take_while(|&&c| word(c)).count();
                if n == 0 {
                    return false;
                }
                i += n + 1;
            }
        } else if (first && (b[i].is_ascii_alphabetic() || b[i] == b'_')) || (!first && word(b[i]))
        {
            i += 1;
        } else {
            return false;
        }
        first = false;
    }
    true
}

fn default_separator() -> String {
    ";".into()
}
fn default_replacement() -> String {
    "$1".into()
}

/// One relabel step, in Prometheus' YAML shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator` to form the input.
    #[serde(default)]
    pub source_labels: Vec<String>,
    /// Joins source values (`;`).
    #[serde(default = "default_separator")]
    pub separator: String,
    /// Anchored regex (`(.*)`).
    #[serde(default)]
    pub regex: Regex,
    /// For `hashmod`.
    #[serde(default)]
    pub modulus: u64,
    /// The label written by `replace`, `hashmod`, `lowercase`, `uppercase`; compared by
    /// `keepequal`/`dropequal`.
    #[serde(default)]
    pub target_label: String,
    /// Replacement with `$1`-style references (`$1`).
    #[serde(default = "default_replacement")]
    pub replacement: String,
    /// The action (`replace`).
    #[serde(default)]
    pub action: Action,
}

impl Default for RelabelConfig {
    fn default() -> Self {
        Self {
            source_labels: Vec::new(),
            separator: default_separator(),
            regex: Regex::default(),
            modulus: 0,
            target_label: String::new(),
            replacement: default_replacement(),
            action: Action::Replace,
        }
    }
}

impl RelabelConfig {
    /// Checks the fields the action needs, as Prometheus does at load.
    pub fn validate(&self) -> std::result::Result<(), String> {
        use Action::*;
        let needs_target = matches!(
            self.action,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        );
        if needs_target && self.target_label.is_empty() {
            return Err(format!(
                "relabel action {:?} requires target_label",
                self.action
            ));
        }
        let name = format!("{:?}", self.action).to_lowercase();
        if matches!(
            self.action,
            Replace | Lowercase | Uppercase | KeepEqual | DropEqual
        ) && !is_relabel_target(&self.target_label)
        {
            return Err(format!(
                "{:?} is invalid 'target_label' for {name} action",
                self.target_label
            ));
        }
        if self.action == HashMod && !is_label_name(&self.target_label) {
            return Err(format!(
                "{:?} is invalid 'target_label' for {name} action",
                self.target_label
            ));
        }
        if self.action == HashMod && self.modulus == 0 {
            return Err("relabel action hashmod requires a non-zero modulus".into());
        }
        if self.action == LabelMap && !is_relabel_target(&self.replacement) {
            return Err(format!(
                "{:?} is invalid 'replacement' for {name} action",
                self.replacement
            ));
        }
        if matches!(self.action, KeepEqual | DropEqual) {
            if self.replacement != default_replacement() {
                return Err(format!("'replacement' can not be set for {name} action"));
            }
            if self.regex.as_str() != "(.*)"
                || self.modulus != 0
                || self.separator != default_separator()
            {
                return Err(format!(
                    "{name} action requires only 'source_labels' and 'target_label', and no other fields"
                ));
            }
        }
        if matches!(self.action, LabelDrop | LabelKeep)
            && (!self.source_labels.is_empty()
                || !self.target_label.is_empty()
                || self.modulus != 0
                || self.separator != default_separator()
                || self.replacement != default_replacement())
        {
            return Err(format!(
                "relabel action {:?} only takes a regex",
                self.action
            ));
        }
        for l in &self.source_labels {
            if !is_label_name(l) {
                return Err(format!("invalid source label {l:?}"));
            }
        }
        Ok(())
    }
}

/// Applies `configs` in order; `None` if the set was dropped or ended up empty.
pub fn process(labels: &Labels, configs: &[RelabelConfig]) -> Option<Labels> {
    if configs.is_empty() {
        return Some(labels.clone());
    }
    let mut set: BTreeMap<String, String> = labels
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect();
    for c in configs {
        if !step(&mut set, c) {
            return None;
        }
    }
    let out = Labels::new(
        set.into_iter()
            .map(|(name, value)| Label { name, value })
            .collect(),
    );
    (!out.is_empty()).then_some(out)
}

/// The source label values joined with the separator (missing labels count as "").
fn join_sources(set: &BTreeMap<String, String>, c: &RelabelConfig) -> String {
    let mut v = String::new();
    for (i, name) in c.source_labels.iter().enumerate() {
        if i > 0 {
            v.push_str(&c.separator);
        }
        v.push_str(set.get(name).map_or("", String::as_str));
    }
    v
}

/// Sets `name` to `value`, or deletes it if `value` is empty.
fn put(set: &mut BTreeMap<String, String>, name: String, value: String) {
    if value.is_empty() {
        set.remove(&name);
    } else {
        set.insert(name, value);
    }
}

/// One step; false if the set is dropped.
fn step(set: &mut BTreeMap<String, String>, c: &RelabelConfig) -> bool {
    let joined = join_sources(set, c);
    match c.action {
        Action::Keep => return c.regex.is_match(&joined),
        Action::Drop => return !c.regex.is_match(&joined),
        Action::KeepEqual => {
            return joined == set.get(&c.target_label).map_or("", String::as_str);
        }
        Action::DropEqual => {
            return joined != set.get(&c.target_label).map_or("", String::as_str);
        }
        Action::Replace => {
            let value = joined;
            if let Some(caps) = c.regex.re.captures(&value) {
                let mut target = String::new();
                caps.expand(&c.target_label, &mut target);
                let mut res = String::new();
                caps.expand(&c.replacement, &mut res);
                // As Prometheus: an invalid expanded name or an empty value removes the label
                // named as written (a templated name rarely exists, so mostly a no-op).
                if !is_label_name(&target) || res.is_empty() {
                    set.remove(&c.target_label);
                } else {
                    set.insert(target, res);
                }
            }
        }
        Action::Lowercase => put(set, c.target_label.clone(), joined.to_lowercase()),
        Action::Uppercase => put(set, c.target_label.clone(), joined.to_uppercase()),
        Action::HashMod => {
            let sum = md5(joined.as_bytes());
            let mut tail = [0u8; 8];
            tail.copy_from_slice(&sum[8..]);
            let m = u64::from_be_bytes(tail) % c.modulus.max(1);
            put(set, c.target_label.clone(), m.to_string());
        }
        Action::LabelMap => {
            let mut added = Vec::new();
            for (name, value) in set.iter() {
                if let Some(caps) = c.regex.re.captures(name) {
                    let mut new_name = String::new();
                    caps.expand(&c.replacement, &mut new_name);
                    added.push((new_name, value.clone()));
                }
            }
            for (n, v) in added {
                put(set, n, v);
            }
        }
        Action::LabelDrop => set.retain(|name, _| !c.regex.is_match(name)),
        Action::LabelKeep => set.retain(|name, _| c.regex.is_match(name)),
    }
    true
}

/// MD5 (RFC 1321), for `hashmod` compatibility with Prometheus' sharding.
fn md5(input: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    // K[i] = floor(abs(sin(i + 1)) * 2^32).
    let k: [u32; 64] =
        std::array::from_fn(|i| (((i + 1) as f64).sin().abs() * 4_294_967_296.0) as u32);
    let mut a0: u32 = 0x6745_2301;
    let mut b0: u32 = 0xefcd_ab89;
    let mut c0: u32 = 0x98ba_dcfe;
    let mut d0: u32 = 0x1032_5476;
    let mut msg = input.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((input.len() as u64).wrapping_mul(8)).to_le_bytes());
    for chunk in msg.chunks_exact(64) {
        let m: [u32; 16] = std::array::from_fn(|i| {
            u32::from_le_bytes([
                chunk[4 * i],
                chunk[4 * i + 1],
                chunk[4 * i + 2],
                chunk[4 * i + 3],
            ])
        });
        let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        a0 = a0.wrapping_add(a);
        b0 = b0.wrapping_add(b);
        c0 = c0.wrapping_add(c);
        d0 = d0.wrapping_add(d);
    }
    let mut out = [0u8; 16];
    for (i, w) in [a0, b0, c0, d0].iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn md5_vectors() {
        assert_eq!(hex(&md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex(&md5(b"abc")), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            hex(&md5(b"The quick brown fox jumps over the lazy dog")),
            "9e107d9d372bb6826bd81d3542a419d6"
        );
        assert_eq!(hex(&md5(&[b'a'; 64])), "014842d480b571495a4a0363793f7367");
    }

    #[track_caller]
    fn check(input: &[(&str, &str)], yaml: &str, want: Option<&str>) {
        let configs: Vec<RelabelConfig> = serde_norway::from_str(yaml).unwrap();
        for c in &configs {
            c.validate().unwrap();
        }
        let got = process(&Labels::from_pairs(input), &configs).map(|l| l.to_string());
        assert_eq!(got.as_deref(), want, "{yaml}");
    }

    #[test]
    fn actions() {
        let base = [
            ("__address__", "host:9100"),
            ("job", "node"),
            ("__meta_x", "1"),
        ];
        check(
            &base,
            "- {source_labels: [__address__], regex: '(.*):(\\d+)', target_label: host, replacement: '${1}-$2'}",
            Some(r#"{__address__="host:9100", __meta_x="1", host="host-9100", job="node"}"#),
        );
        // No match: unchanged.
        check(
            &base,
            "- {source_labels: [job], regex: 'x', target_label: job, replacement: y}",
            Some(r#"{__address__="host:9100", __meta_x="1", job="node"}"#),
        );
        // Empty replacement deletes the target.
        check(
            &base,
            "- {source_labels: [job], target_label: job, replacement: ''}",
            Some(r#"{__address__="host:9100", __meta_x="1"}"#),
        );
        // Several sources joined with the separator; a missing one is "".
        check(
            &[("a", "1"), ("b", "2")],
            "- {source_labels: [a, b, c], separator: '/', target_label: j}",
            Some(r#"{a="1", b="2", j="1/2/"}"#),
        );
        check(
            &base,
            "- {action: keep, source_labels: [job], regex: node}",
            Some(r#"{__address__="host:9100", __meta_x="1", job="node"}"#),
        );
        check(
            &base,
            "- {action: keep, source_labels: [job], regex: nod}",
            None,
        );
        check(
            &base,
            "- {action: drop, source_labels: [job], regex: 'no.*'}",
            None,
        );
        check(
            &[("a", "x"), ("b", "x")],
            "- {action: keepequal, source_labels: [a], target_label: b}",
            Some(r#"{a="x", b="x"}"#),
        );
        check(
            &[("a", "x"), ("b", "y")],
            "- {action: keepequal, source_labels: [a], target_label: b}",
            None,
        );
        check(
            &[("a", "x"), ("b", "x")],
            "- {action: dropequal, source_labels: [a], target_label: b}",
            None,
        );
        check(
            &[("__meta_kubernetes_pod_label_app", "web"), ("x", "1")],
            "- {action: labelmap, regex: '__meta_kubernetes_pod_label_(.+)'}",
            Some(r#"{__meta_kubernetes_pod_label_app="web", app="web", x="1"}"#),
        );
        check(
            &base,
            "- {action: labeldrop, regex: '__meta_.*'}",
            Some(r#"{__address__="host:9100", job="node"}"#),
        );
        check(
            &base,
            "- {action: labelkeep, regex: 'job'}",
            Some(r#"{job="node"}"#),
        );
        check(
            &[("a", "MiXed")],
            "- {action: lowercase, source_labels: [a], target_label: b}",
            Some(r#"{a="MiXed", b="mixed"}"#),
        );
        check(
            &[("a", "MiXed")],
            "- {action: uppercase, source_labels: [a], target_label: a}",
            Some(r#"{a="MIXED"}"#),
        );
        // Anchored: a partial match is no match.
        check(
            &[("a", "abc")],
            "- {action: keep, source_labels: [a], regex: b}",
            None,
        );
        // Everything dropped: None.
        check(&[("a", "1")], "- {action: labeldrop, regex: '.*'}", None);
        // Target label with a capture reference.
        check(
            &[("a", "foo")],
            "- {source_labels: [a], regex: '(.*)', target_label: 'l_$1'}",
            Some(r#"{a="foo", l_foo="foo"}"#),
        );
    }

    #[test]
    fn hashmod_matches_prometheus() {
        // md5("abc") = 900150983cd24fb0 d6963f7d28e17f72; the low 8 bytes as a big-endian u64.
        let want = 0xd696_3f7d_28e1_7f72u64 % 7;
        check(
            &[("a", "abc")],
            "- {action: hashmod, source_labels: [a], modulus: 7, target_label: shard}",
            Some(&format!(r#"{{a="abc", shard="{want}"}}"#)),
        );
    }

    #[test]
    fn validation() {
        let bad = |yaml: &str| -> String {
            let c: RelabelConfig = serde_norway::from_str(yaml).unwrap();
            c.validate().unwrap_err()
        };
        assert!(bad("action: replace").contains("target_label"));
        assert!(bad("{action: hashmod, target_label: x}").contains("modulus"));
        assert!(bad("{action: labeldrop, source_labels: [a]}").contains("only takes a regex"));
        let e = serde_norway::from_str::<RelabelConfig>("action: explode").unwrap_err();
        assert!(e.to_string().contains("unknown relabel action \"explode\""));
    }

    /// Accepted and rejected as `promtool check config` (Prometheus 2.42) does.
    #[test]
    fn validation_matches_promtool() {
        #[track_caller]
        fn check(yaml: &str, want: std::result::Result<(), &str>) {
            let got = serde_norway::from_str::<RelabelConfig>(yaml)
                .map_err(|e| e.to_string())
                .and_then(|c| c.validate());
            match (got, want) {
                (Ok(()), Ok(())) => {}
                (Err(e), Err(w)) => assert!(e.contains(w), "{yaml}: {e} lacks {w}"),
                (g, w) => panic!("{yaml}: got {g:?}, want {w:?}"),
            }
        }
        check("{action: Replace, target_label: a}", Ok(()));
        check("{action: DROP, source_labels: [a]}", Ok(()));
        check("{action: ''}", Err("unknown relabel action \"\""));
        check(
            "{source_labels: [a], target_label: '1x'}",
            Err("\"1x\" is invalid 'target_label' for replace action"),
        );
        check("{source_labels: [a], target_label: 'l_${1}'}", Ok(()));
        check("{source_labels: [a], target_label: '${1}'}", Ok(()));
        check(
            "{action: uppercase, source_labels: [a], target_label: '${1}'}",
            Ok(()),
        );
        check(
            "{action: lowercase, source_labels: [a], target_label: '1x'}",
            Err("\"1x\" is invalid 'target_label' for lowercase action"),
        );
        check(
            "{action: hashmod, source_labels: [a], target_label: 'x$1', modulus: 2}",
            Err("\"x$1\" is invalid 'target_label' for hashmod action"),
        );
        check(
            "{action: hashmod, source_labels: [a], target_label: x}",
            Err("non-zero modulus"),
        );
        check(
            "{action: labelmap, regex: 'a(.*)', replacement: '1$1'}",
            Err("\"1$1\" is invalid 'replacement' for labelmap action"),
        );
        check(
            "{action: labelmap, regex: 'a(.*)', replacement: 'x-$1'}",
            Err("is invalid 'replacement'"),
        );
        check(
            "{action: labelmap, regex: 'a(.*)', replacement: 'x_$1'}",
            Ok(()),
        );
        check(
            "{action: keepequal, source_labels: [a], target_label: b, replacement: x}",
            Err("'replacement' can not be set for keepequal action"),
        );
        check(
            "{action: keepequal, source_labels: [a], target_label: b, regex: x}",
            Err("keepequal action requires only 'source_labels' and 'target_label'"),
        );
        check(
            "{action: dropequal, source_labels: [a], target_label: b, separator: ','}",
            Err("dropequal action requires only"),
        );
        check(
            "{action: dropequal, source_labels: [a], target_label: b, modulus: 3}",
            Err("dropequal action requires only"),
        );
        check(
            "{action: keepequal, source_labels: [a], target_label: '1b'}",
            Err("\"1b\" is invalid 'target_label' for keepequal action"),
        );
        check(
            "{action: keepequal, source_labels: [a], target_label: 'b$1'}",
            Ok(()),
        );
        check(
            "{action: labeldrop, regex: a, separator: ','}",
            Err("only takes a regex"),
        );
        check("{action: labelkeep, regex: a, replacement: '$1'}", Ok(()));
        check(
            "{action: drop, source_labels: ['a-b']}",
            Err("invalid source label \"a-b\""),
        );
    }

    /// `replace` with an empty result or an invalid expanded name removes the label named as
    /// written, as Prometheus does.
    #[test]
    fn replace_edge_cases() {
        check(
            &[("a", ""), ("l_", "x"), ("b", "1")],
            "- {source_labels: [a], target_label: 'l_$1', replacement: ''}",
            Some(r#"{b="1", l_="x"}"#),
        );
        check(
            &[("a", "1"), ("b", "2")],
            "- {source_labels: [a], regex: '(.*)', target_label: '${1}', replacement: v}",
            Some(r#"{a="1", b="2"}"#),
        );
        check(
            &[("a", "x"), ("b", "2")],
            "- {source_labels: [a], target_label: b, replacement: '$2'}",
            Some(r#"{a="x"}"#),
        );
    }
}
