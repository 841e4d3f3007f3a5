//! `os`: `node_os_info` and `node_os_version` from `os-release(5)` under the root file system
//! (`<rootfs>/etc/os-release`, falling back to `<rootfs>/usr/lib/os-release`).

use std::collections::HashMap;
use std::path::PathBuf;

use pharos_model::expfmt::{MetricFamily, MetricType};

use super::{read, under};
use crate::{Collector, Options, Result};

/// `node_os_info` labels and the os-release keys they come from, in label order.
const INFO_LABELS: [(&str, &str); 12] = [
    ("build_id", "BUILD_ID"),
    ("id", "ID"),
    ("id_like", "ID_LIKE"),
    ("image_id", "IMAGE_ID"),
    ("image_version", "IMAGE_VERSION"),
    ("name", "NAME"),
    ("pretty_name", "PRETTY_NAME"),
    ("variant", "VARIANT"),
    ("variant_id", "VARIANT_ID"),
    ("version", "VERSION"),
    ("version_codename", "VERSION_CODENAME"),
    ("version_id", "VERSION_ID"),
];

/// The `os` collector.
#[derive(Debug)]
pub struct Os {
    paths: [PathBuf; 2],
}

impl Os {
    /// Reads `os-release` below `opts.rootfs`.
    pub fn new(opts: &Options) -> Self {
        Self {
            paths: [
                under(&opts.rootfs, "etc/os-release"),
                under(&opts.rootfs, "usr/lib/os-release"),
            ],
        }
    }
}

impl Collector for Os {
    fn name(&self) -> &'static str {
        "os"
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<()> {
        let text = match read(&self.paths[0]) {
            Ok(t) => t,
            Err(e) if e.is_not_found() => read(&self.paths[1])?,
            Err(e) => return Err(e),
        };
        let vars = parse_os_release(&text);
        let get = |key: &str| vars.get(key).map(String::as_str).unwrap_or("");
        let mut info = MetricFamily::new(
            "node_os_info",
            "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, \
             image_version, name, pretty_name, variant, variant_id, version, version_codename, \
             version_id.",
            MetricType::Gauge,
        );
        let labels: Vec<(&str, &str)> = INFO_LABELS.iter().map(|(l, k)| (*l, get(k))).collect();
        info.push(&labels, 1.0);
        out.push(info);
        let mut version = MetricFamily::new(
            "node_os_version",
            "Metric containing the major.minor part of the OS version.",
            MetricType::Gauge,
        );
        version.push(
            &[
                ("id", get("ID")),
                ("id_like", get("ID_LIKE")),
                ("name", get("NAME")),
            ],
            major_minor(get("VERSION_ID")),
        );
        out.push(version);
        Ok(())
    }
}

/// Parses `KEY=value` lines of os-release(5): values may be unquoted, 'single quoted' or
/// "double quoted" with backslash escapes. Comments and malformed lines are skipped.
pub fn parse_os_release(text: &str) -> HashMap<String, String> {
    let mut vars = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        vars.insert(key.trim().to_string(), unquote(raw.trim()));
    }
    vars
}

fn unquote(raw: &str) -> String {
    if let Some(inner) = raw.strip_prefix('\'') {
        return inner.strip_suffix('\'').unwrap_or(inner).to_string();
    }
    let Some(inner) = raw.strip_prefix('"') else {
        return raw.to_string();
    };
    let inner = inner.strip_suffix('"').unwrap_or(inner);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(e @ ('"' | '\\' | '$' | '`')) => out.push(e),
                Some(e) => {
                    out.push('\\');
                    out.push(e);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The leading `major[.minor]` of a version id as a number (`"22.04.3"` → 22.04); 0 if there
/// is none.
pub fn major_minor(version_id: &str) -> f64 {
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let major = digits(version_id);
    if major == 0 {
        return 0.0;
    }
    let mut end = major;
    if version_id[major..].starts_with('.') {
        end = major + 1 + digits(&version_id[major + 1..]);
    }
    version_id[..end]
        .trim_end_matches('.')
        .parse()
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        #[track_caller]
        fn check(input: &str, want: f64) {
            assert_eq!(major_minor(input), want, "{input:?}");
        }
        check("12", 12.0);
        check("22.04", 22.04);
        check("3.18.4", 3.18);
        check("7.", 7.0);
        check("rolling", 0.0);
        check("", 0.0);
    }

    #[test]
    fn quoting() {
        #[track_caller]
        fn check(input: &str, key: &str, want: &str) {
            assert_eq!(
                parse_os_release(input).get(key).map(String::as_str),
                Some(want)
            );
        }
        check("ID=debian\n", "ID", "debian");
        check("NAME=\"Debian GNU/Linux\"\n", "NAME", "Debian GNU/Linux");
        check("NAME='Single quoted'\n", "NAME", "Single quoted");
        check(r#"X="a \"b\" \\ \$c""#, "X", r#"a "b" \ $c"#);
        check("# comment\n\n ID = arch \n", "ID", "arch");
    }
}
