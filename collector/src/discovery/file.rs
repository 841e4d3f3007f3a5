//! `file_sd_configs`: target groups read from JSON or YAML files.
//!
//! A file holds a list of `{targets: [...], labels: {...}}` groups, as for Prometheus. Patterns may
//! use `*`, `?` and `[...]` in the last path segment. Files are polled for changes (path set,
//! modification time, size) every second and re-read completely every `refresh_interval`; each
//! target gets `__meta_filepath`. A file that fails to read or parse is logged and keeps the
//! groups it had; a file that disappears takes its groups with it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::TargetGroup;
use crate::config::{Duration, StaticConfig, is_label_name};
use crate::{Error, Result};

fn default_refresh() -> Duration {
    Duration::from_secs(300)
}

/// One `file_sd_configs` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// File paths or patterns (`targets/*.json`); `.json`, `.yml` or `.yaml`.
    pub files: Vec<String>,
    /// Full re-read period (5m).
    #[serde(default = "default_refresh")]
    pub refresh_interval: Duration,
}

impl FileSdConfig {
    /// Checks extensions and that patterns are only in the last path segment.
    pub fn validate(&self) -> Result<()> {
        for f in &self.files {
            let ext_ok = [".json", ".yml", ".yaml"].iter().any(|e| f.ends_with(e));
            if !ext_ok {
                return Err(Error::InvalidConfig(format!(
                    "file_sd_configs: file {f:?} must have a .json, .yml or .yaml extension"
                )));
            }
            let dir = Path::new(f)
                .parent()
                .map(|p| p.to_string_lossy().to_string());
            if dir.is_some_and(|d| d.contains(['*', '?', '['])) {
                return Err(Error::InvalidConfig(format!(
                    "file_sd_configs: path {f:?} may only contain patterns in its last segment"
                )));
            }
        }
        if self.refresh_interval.0.is_zero() {
            return Err(Error::InvalidConfig(
                "file_sd_configs: refresh_interval must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// What a poll sees of one file: modification time and size.
type Stamp = (Option<SystemTime>, u64);

/// The state of one `file_sd_configs` entry between polls.
#[derive(Debug, Default)]
pub struct FileDiscovery {
    config: Option<FileSdConfig>,
    stamps: BTreeMap<PathBuf, Stamp>,
    groups: BTreeMap<PathBuf, Vec<TargetGroup>>,
}

impl FileDiscovery {
    /// A discovery for `config`, not read yet.
    pub fn new(config: FileSdConfig) -> Self {
        Self {
            config: Some(config),
            ..Self::default()
        }
    }

    /// The files matching the patterns now, with their stamps.
    fn scan(&self) -> BTreeMap<PathBuf, Stamp> {
        let mut out = BTreeMap::new();
        let Some(cfg) = &self.config else {
            return out;
        };
        for pattern in &cfg.files {
            for path in expand(pattern) {
                let stamp = std::fs::metadata(&path)
                    .map(|m| (m.modified().ok(), m.len()))
                    .unwrap_or((None, 0));
                out.insert(path, stamp);
            }
        }
        out
    }

    /// Re-reads the files if they changed since the last call (or always with `force`); returns
    /// the new groups if anything changed.
    pub fn poll(&mut self, force: bool) -> Option<Vec<TargetGroup>> {
        let stamps = self.scan();
        if !force && stamps == self.stamps {
            return None;
        }
        let mut groups: BTreeMap<PathBuf, Vec<TargetGroup>> = BTreeMap::new();
        for path in stamps.keys() {
            match read_file(path) {
                Ok(g) => {
                    groups.insert(path.clone(), g);
                }
                Err(e) => {
                    tracing::error!("file_sd: {e}");
                    if let Some(old) = self.groups.get(path) {
                        groups.insert(path.clone(), old.clone());
                    }
                }
            }
        }
        self.stamps = stamps;
        let changed = groups != self.groups;
        self.groups = groups;
        (changed || force).then(|| self.groups.values().flatten().cloned().collect())
    }

    /// The refresh interval.
    pub fn refresh_interval(&self) -> std::time::Duration {
        self.config
            .as_ref()
            .map_or(default_refresh(), |c| c.refresh_interval)
            .std()
    }
}

/// The target groups of one file, with `__meta_filepath`.
pub fn read_file(path: &Path) -> Result<Vec<TargetGroup>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        context: format!("reading {}", path.display()),
        source: e,
    })?;
    let shown = path.display().to_string();
    let parsed: Vec<StaticConfig> = if shown.ends_with(".json") {
        serde_json::from_str(&text).map_err(|e| Error::InvalidConfig(format!("{shown}: {e}")))?
    } else if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_norway::from_str(&text).map_err(|e| Error::InvalidConfig(format!("{shown}: {e}")))?
    };
    let mut out = Vec::with_capacity(parsed.len());
    for (i, sc) in parsed.iter().enumerate() {
        if let Some(name) = sc.labels.keys().find(|n| !is_label_name(n)) {
            return Err(Error::InvalidConfig(format!(
                "{shown}: group {i}: invalid label name {name:?}"
            )));
        }
        let mut g = TargetGroup::from_static(format!("{shown}:{i}"), sc);
        for t in &mut g.targets {
            t.insert("__meta_filepath".into(), shown.clone());
        }
        out.push(g);
    }
    Ok(out)
}

/// The existing files a pattern names, sorted.
fn expand(pattern: &str) -> Vec<PathBuf> {
    let path = Path::new(pattern);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if !name.contains(['*', '?', '[']) {
        return if path.is_file() {
            vec![path.to_path_buf()]
        } else {
            Vec::new()
        };
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| glob_match(name.as_bytes(), e.file_name().to_string_lossy().as_bytes()))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// Shell-style matching of one path segment: `*`, `?`, `[abc]`, `[a-z]`, `[!a]`/`[^a]`.
pub fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    match pat.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| glob_match(&pat[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && glob_match(&pat[1..], &s[1..]),
        Some(b'[') => {
            let Some(end) = pat.iter().skip(2).position(|c| *c == b']').map(|p| p + 2) else {
                return s.first() == Some(&b'[') && glob_match(&pat[1..], &s[1..]);
            };
            let Some(&c) = s.first() else {
                return false;
            };
            let mut class = &pat[1..end];
            let negate = matches!(class.first(), Some(b'!' | b'^'));
            if negate {
                class = &class[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negate && glob_match(&pat[end + 1..], &s[1..])
        }
        Some(&p) => s.first() == Some(&p) && glob_match(&pat[1..], &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(pat: &str, s: &str, want: bool) {
        assert_eq!(
            glob_match(pat.as_bytes(), s.as_bytes()),
            want,
            "{pat} ~ {s}"
        );
    }

    #[test]
    fn globs() {
        check("*.json", "a.json", true);
        check("*.json", "a.yml", false);
        check("t?.yml", "t1.yml", true);
        check("t?.yml", "t12.yml", false);
        check("[ab]*.json", "b1.json", true);
        check("[ab]*.json", "c1.json", false);
        check("[!ab]*.json", "c1.json", true);
        check("n[0-9].yaml", "n7.yaml", true);
        check("n[0-9].yaml", "nx.yaml", false);
        check("exact.json", "exact.json", true);
        check("*", "", true);
    }

    #[test]
    fn validation() {
        let ok = |f: &str| {
            FileSdConfig {
                files: vec![f.into()],
                refresh_interval: default_refresh(),
            }
            .validate()
        };
        assert!(ok("/etc/t/*.json").is_ok());
        assert!(ok("t.yaml").is_ok());
        assert!(ok("/etc/t/*.txt").is_err());
        assert!(ok("/etc/*/a.json").is_err());
    }

    #[test]
    fn reads_polls_and_keeps_groups_of_broken_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.json");
        let b = dir.path().join("b.yml");
        std::fs::write(
            &a,
            r#"[{"targets": ["h1:9100", "h2:9100"], "labels": {"env": "prod"}}]"#,
        )
        .unwrap();
        std::fs::write(&b, "- targets: ['h3:1']\n").unwrap();
        let mut d = FileDiscovery::new(FileSdConfig {
            files: vec![
                format!("{}/*.json", dir.path().display()),
                b.display().to_string(),
            ],
            refresh_interval: default_refresh(),
        });
        let g = d.poll(false).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].targets.len(), 2);
        assert_eq!(g[0].labels["env"], "prod");
        assert_eq!(g[0].targets[1]["__address__"], "h2:9100");
        assert_eq!(g[0].targets[1]["__meta_filepath"], a.display().to_string());
        assert_eq!(g[1].source, format!("{}:0", b.display()));
        // Unchanged: nothing to report; forced: the same groups again.
        assert!(d.poll(false).is_none());
        assert_eq!(d.poll(true).unwrap(), g);
        // A broken file keeps its groups (and is not reported as a change).
        std::fs::write(&b, "- targets: [\n").unwrap();
        assert!(d.poll(false).is_none());
        // A new file matching the pattern; a removed one.
        std::fs::write(dir.path().join("c.json"), r#"[{"targets": ["h4:1"]}]"#).unwrap();
        std::fs::remove_file(&a).unwrap();
        let g = d.poll(false).unwrap();
        let addrs: Vec<&str> = g
            .iter()
            .flat_map(|g| g.targets.iter().map(|t| t["__address__"].as_str()))
            .collect();
        assert_eq!(addrs, ["h3:1", "h4:1"]);
        assert!(read_file(&dir.path().join("missing.json")).is_err());
        std::fs::write(&a, r#"[{"targets": ["x:1"], "labels": {"bad-name": "v"}}]"#).unwrap();
        assert!(read_file(&a).unwrap_err().to_string().contains("bad-name"));
    }
}
