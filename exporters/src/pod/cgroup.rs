//! Finding the cgroup hierarchies (v1, v2, hybrid or none) under a cgroup mount root and reading
//! one cgroup's counters from them.
//!
//! Layouts recognised under the root (normally `/sys/fs/cgroup`):
//! - **v2** (unified): `cgroup.controllers` in the root itself.
//! - **v1**: one directory per hierarchy, named after its controllers (`memory`, `cpu,cpuacct`,
//!   often with `cpu` and `cpuacct` symlinks to the combined one, or separate `cpu` and `cpuacct`).
//! - **hybrid**: v1 hierarchies plus a v2 mount at `unified/` that holds few or no controllers.
//!   A controller attached to a v1 hierarchy cannot be on v2 at the same time, so each resource
//!   is read from its v1 hierarchy when there is one and from `unified/` otherwise.
//! - **none**: nothing of the above (no cgroup file system mounted).

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Which cgroup layout a root holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only v1 hierarchies.
    V1,
    /// The unified v2 hierarchy only.
    V2,
    /// v1 hierarchies and a v2 hierarchy at `unified/`.
    Hybrid,
    /// No cgroup hierarchy found.
    None,
}

impl Mode {
    /// `v1`, `v2`, `hybrid` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::V1 => "v1",
            Mode::V2 => "v2",
            Mode::Hybrid => "hybrid",
            Mode::None => "none",
        }
    }
}

/// Where one resource is read from: the mount point of its hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A v1 hierarchy mounted at this directory.
    V1(PathBuf),
    /// The v2 hierarchy mounted at this directory.
    V2(PathBuf),
}

impl Source {
    /// The hierarchy's mount point.
    pub fn root(&self) -> &Path {
        match self {
            Source::V1(p) | Source::V2(p) => p,
        }
    }

    /// The directory of cgroup `id` (`/` or `/a/b`) in this hierarchy.
    pub fn dir(&self, id: &str) -> PathBuf {
        let rel = id.trim_start_matches('/');
        if rel.is_empty() {
            self.root().to_path_buf()
        } else {
            self.root().join(rel)
        }
    }
}

/// The hierarchies that hold each resource this collector reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchies {
    /// The layout found.
    pub mode: Mode,
    /// CPU time used (v1 `cpuacct`, v2 `cpu.stat`, which v2 always has).
    pub cpuacct: Option<Source>,
    /// CFS quota, period and throttling (v1 `cpu`, v2 `cpu` controller).
    pub cpu: Option<Source>,
    /// Memory (v1 `memory`, v2 `memory` controller).
    pub memory: Option<Source>,
    /// Block I/O (v1 `blkio`, v2 `io` controller).
    pub io: Option<Source>,
    /// Where `cgroup.procs` is read to count processes and find a member process, in order of
    /// preference: a cgroup's processes are counted in the first of these that has it (v1
    /// `pids`, `memory`, `cpuacct`, `cpu`, `blkio`; or v2). Every v1 hierarchy holds every
    /// process once, so counting within one hierarchy never counts a process twice.
    pub procs: Vec<Source>,
}

impl Hierarchies {
    /// Inspects the cgroup mount root `root`. A missing or empty root gives [`Mode::None`].
    pub fn detect(root: &Path) -> Self {
        if root.join("cgroup.controllers").is_file() {
            let controllers = read_controllers(root);
            let v2 = |c: &str| {
                controllers
                    .iter()
                    .any(|x| x == c)
                    .then(|| Source::V2(root.to_path_buf()))
            };
            return Self {
                mode: Mode::V2,
                cpuacct: Some(Source::V2(root.to_path_buf())),
                cpu: v2("cpu"),
                memory: v2("memory"),
                io: v2("io"),
                procs: vec![Source::V2(root.to_path_buf())],
            };
        }
        let v1 = V1Mounts::scan(root);
        let unified = root.join("unified");
        let unified = unified
            .join("cgroup.controllers")
            .is_file()
            .then_some(unified);
        let unified_controllers = unified.as_deref().map(read_controllers).unwrap_or_default();
        let pick = |v1name: &str, v2name: &str| -> Option<Source> {
            if let Some(dir) = v1.get(v1name) {
                return Some(Source::V1(dir));
            }
            let u = unified.as_ref()?;
            unified_controllers
                .iter()
                .any(|c| c == v2name)
                .then(|| Source::V2(u.clone()))
        };
        let cpuacct = v1
            .get("cpuacct")
            .map(Source::V1)
            .or_else(|| unified.clone().map(Source::V2));
        let mut procs: Vec<Source> = Vec::new();
        for c in ["pids", "memory", "cpuacct", "cpu", "blkio"] {
            if let Some(dir) = v1.get(c)
                && !procs.iter().any(|s| s.root() == dir)
            {
                procs.push(Source::V1(dir));
            }
        }
        if procs.is_empty()
            && let Some(u) = &unified
        {
            procs.push(Source::V2(u.clone()));
        }
        let mode = match (v1.is_empty(), unified.is_some()) {
            (false, true) => Mode::Hybrid,
            (false, false) => Mode::V1,
            (true, true) => Mode::V2,
            (true, false) => Mode::None,
        };
        Self {
            mode,
            cpuacct,
            cpu: pick("cpu", "cpu"),
            memory: pick("memory", "memory"),
            io: pick("blkio", "io"),
            procs,
        }
    }

    /// The distinct hierarchies in use.
    pub fn sources(&self) -> Vec<&Source> {
        let mut out: Vec<&Source> = Vec::new();
        let single = [&self.cpuacct, &self.cpu, &self.memory, &self.io];
        for s in single.into_iter().flatten().chain(&self.procs) {
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out
    }
}

/// v1 hierarchies by controller name.
struct V1Mounts(BTreeMap<String, PathBuf>);

impl V1Mounts {
    /// Directories directly under `root` whose comma-separated names list controllers we read;
    /// a directory must hold `cgroup.procs` to count (so `unified/` and empty dirs do not).
    fn scan(root: &Path) -> Self {
        let mut map = BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(root) else {
            return Self(map);
        };
        let mut dirs: Vec<(String, PathBuf)> = entries
            .flatten()
            .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
            .filter(|(name, path)| name != "unified" && path.join("cgroup.procs").is_file())
            .collect();
        // Real directories before symlinks (`cpu` -> `cpu,cpuacct`), so the combined name wins.
        dirs.sort_by_key(|(_, p)| (p.is_symlink(), p.clone()));
        for (name, path) in dirs {
            for c in name.split(',') {
                if matches!(c, "cpu" | "cpuacct" | "memory" | "blkio" | "pids") {
                    map.entry(c.to_string()).or_insert_with(|| path.clone());
                }
            }
        }
        Self(map)
    }

    fn get(&self, controller: &str) -> Option<PathBuf> {
        self.0.get(controller).cloned()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn read_controllers(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("cgroup.controllers"))
        .map(|s| s.split_ascii_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Every cgroup (`/`, `/a`, `/a/b`, ...) below the roots of `sources`, sorted. Symlinks are not
/// followed; the walk stops at depth 32.
pub fn walk(sources: &[&Source]) -> Vec<String> {
    let mut ids = std::collections::BTreeSet::new();
    for s in sources {
        let root = s.root();
        if !root.is_dir() {
            continue;
        }
        ids.insert("/".to_string());
        let mut stack = vec![(root.to_path_buf(), String::new(), 0usize)];
        while let Some((dir, id, depth)) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let Ok(ft) = e.file_type() else { continue };
                if !ft.is_dir() || depth >= 32 {
                    continue;
                }
                let Ok(name) = e.file_name().into_string() else {
                    continue;
                };
                let child = format!("{id}/{name}");
                ids.insert(child.clone());
                stack.push((e.path(), child, depth + 1));
            }
        }
    }
    ids.into_iter().collect()
}

/// Reads a cgroup file; `Ok(None)` if it does not exist (the cgroup went away, or the kernel or
/// controller does not offer the file).
pub fn read_opt(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Parses a single-number file such as `memory.usage_in_bytes`.
pub fn read_u64(path: &Path) -> Result<Option<u64>> {
    let Some(text) = read_opt(path)? else {
        return Ok(None);
    };
    let t = text.trim();
    t.parse().map(Some).map_err(|_| Error::Parse {
        path: path.to_path_buf(),
        line: 1,
        msg: format!("invalid number {t:?}"),
    })
}

/// Parses a flat-keyed file (`key value` per line: `memory.stat`, `cpu.stat`, `memory.events`,
/// `cpuacct.stat`). Lines whose value is not a number are skipped (new kernel fields).
pub fn read_keyed(path: &Path) -> Result<Option<BTreeMap<String, u64>>> {
    let Some(text) = read_opt(path)? else {
        return Ok(None);
    };
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        if let (Some(k), Some(v)) = (f.next(), f.next())
            && let Ok(v) = v.parse()
        {
            map.insert(k.to_string(), v);
        }
    }
    Ok(Some(map))
}

/// Bytes read and written per block device (`major:minor`).
pub type IoBytes = BTreeMap<(u32, u32), (u64, u64)>;

/// Parses v1 `blkio.*io_service_bytes*` (`8:0 Read 4096` lines; `Total` lines ignored).
pub fn parse_blkio(path: &Path, text: &str) -> Result<IoBytes> {
    let mut out = IoBytes::new();
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        let [dev, op, value] = f[..] else { continue };
        let Some(dev) = parse_dev(dev) else { continue };
        let v: u64 = value.parse().map_err(|_| Error::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            msg: format!("invalid number {value:?}"),
        })?;
        let e = out.entry(dev).or_default();
        match op {
            "Read" => e.0 = v,
            "Write" => e.1 = v,
            _ => {}
        }
    }
    Ok(out)
}

/// Parses v2 `io.stat` (`8:0 rbytes=1 wbytes=2 rios=3 ...`).
pub fn parse_io_stat(text: &str) -> IoBytes {
    let mut out = IoBytes::new();
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let Some(dev) = f.next().and_then(parse_dev) else {
            continue;
        };
        let e = out.entry(dev).or_default();
        for kv in f {
            match kv.split_once('=') {
                Some(("rbytes", v)) => e.0 = v.parse().unwrap_or(0),
                Some(("wbytes", v)) => e.1 = v.parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    out
}

fn parse_dev(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Parses `cgroup.procs`: one pid per line.
pub fn parse_procs(text: &str) -> Vec<u32> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}
