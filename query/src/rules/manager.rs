//! The rule manager: loads `rule_files`, runs each group on its interval in its own task, keeps
//! alert state across reloads, and hands due notifications to a sink (the notifier).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use pharos_model::storage::{Appendable, Queryable};

use super::Error;
use super::file::{RuleFile, parse_rule_file};
use super::group::{Group, RestoreOptions};
use super::json::{AlertsData, RulesData, RulesFilter, RulesProvider, alerts_data, rules_data};
use super::rule::{EvalContext, Notification};
use crate::Engine;

/// Receives the notifications due after each group evaluation.
pub type NotifySink = Arc<dyn Fn(Vec<Notification>) + Send + Sync>;

/// What the manager needs.
pub struct ManagerOptions {
    /// The PromQL engine.
    pub engine: Arc<Engine>,
    /// Where rule queries read.
    pub queryable: Arc<dyn Queryable>,
    /// Where rule results are written.
    pub appendable: Arc<dyn Appendable>,
    /// Where notifications go (none: alerts are only kept and shown).
    pub notify: Option<NotifySink>,
    /// Pharos' external URL, for `generatorURL` and templates.
    pub external_url: String,
    /// Least time between two notifications of the same firing alert (Prometheus: 1m).
    pub resend_delay_ms: i64,
    /// `for`-state restoration after a restart.
    pub restore: RestoreOptions,
}

struct Shared {
    opts: ManagerOptions,
    external_labels: RwLock<BTreeMap<String, String>>,
}

struct Task {
    group: Arc<Group>,
    stop: tokio::sync::watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

/// Counters of the manager, for Pharos' own metrics.
#[derive(Debug, Clone, Default)]
pub struct ManagerStats {
    /// Whether the last (re)load of the rule files succeeded.
    pub last_reload_ok: bool,
    /// Failed reloads so far.
    pub reload_failures: u64,
    /// Per group (file, name): interval s, last duration s, evaluations, failed evaluations.
    pub groups: Vec<GroupStats>,
}

/// Counters of one group.
#[derive(Debug, Clone, Default)]
pub struct GroupStats {
    /// `file;name`, as Prometheus' `rule_group` label.
    pub key: String,
    /// Interval in seconds.
    pub interval_s: f64,
    /// Duration of the last evaluation in seconds.
    pub last_duration_s: f64,
    /// Rule evaluations so far.
    pub evaluations: u64,
    /// Failed rule evaluations so far.
    pub failures: u64,
    /// Rules in the group.
    pub rules: usize,
}

/// Runs rule groups.
pub struct Manager {
    shared: Arc<Shared>,
    tasks: Mutex<Vec<Task>>,
    loaded_once: AtomicBool,
    last_reload_ok: AtomicBool,
    reload_failures: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Manager {
    /// A manager without groups.
    pub fn new(opts: ManagerOptions) -> Arc<Manager> {
        Arc::new(Manager {
            shared: Arc::new(Shared {
                opts,
                external_labels: RwLock::new(BTreeMap::new()),
            }),
            tasks: Mutex::new(Vec::new()),
            loaded_once: AtomicBool::new(false),
            last_reload_ok: AtomicBool::new(true),
            reload_failures: AtomicU64::new(0),
        })
    }

    /// Reads and validates the files matching `patterns` (relative to `base_dir`); every
    /// problem of every file is returned.
    pub fn load_files(
        patterns: &[String],
        base_dir: &Path,
    ) -> Result<Vec<(String, RuleFile)>, Vec<Error>> {
        let mut out = Vec::new();
        let mut errs = Vec::new();
        for p in patterns {
            let full = if Path::new(p).is_absolute() || base_dir == Path::new(".") {
                PathBuf::from(p)
            } else {
                base_dir.join(p)
            };
            let paths = match expand_glob(&full) {
                Ok(v) => v,
                Err(e) => {
                    errs.push(Error::Load {
                        file: p.clone(),
                        msg: e,
                    });
                    continue;
                }
            };
            if paths.is_empty() {
                tracing::warn!(pattern = %full.display(), "rule_files pattern matches no file");
            }
            for path in paths {
                let name = path.display().to_string();
                match std::fs::read_to_string(&path) {
                    Ok(text) => match parse_rule_file(&text, &path) {
                        Ok(rf) => out.push((name, rf)),
                        Err(e) => errs.extend(e),
                    },
                    Err(e) => errs.push(Error::Load {
                        file: name,
                        msg: format!("cannot read rule file: {e}"),
                    }),
                }
            }
        }
        if errs.is_empty() { Ok(out) } else { Err(errs) }
    }

    /// Loads the rule files and replaces the running groups. Groups with the same file and
    /// name keep their state. On any error nothing changes and the old rules keep running.
    /// Must be called within a tokio runtime.
    pub fn update(
        &self,
        patterns: &[String],
        base_dir: &Path,
        default_interval_ms: i64,
        external_labels: BTreeMap<String, String>,
    ) -> Result<(), Vec<Error>> {
        let res = Self::load_files(patterns, base_dir).and_then(|files| {
            let mut groups = Vec::new();
            for (path, rf) in &files {
                for g in &rf.groups {
                    groups
                        .push(Group::from_desc(g, path, default_interval_ms).map_err(|e| vec![e])?);
                }
            }
            Ok(groups)
        });
        let groups = match res {
            Ok(g) => g,
            Err(e) => {
                self.last_reload_ok.store(false, Ordering::SeqCst);
                self.reload_failures.fetch_add(1, Ordering::SeqCst);
                return Err(e);
            }
        };
        self.apply_groups(groups, external_labels);
        self.last_reload_ok.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Replaces the running groups with `groups` (state carried over by file and name).
    pub fn apply_groups(&self, groups: Vec<Group>, external_labels: BTreeMap<String, String>) {
        if let Ok(mut l) = self.shared.external_labels.write() {
            *l = external_labels;
        }
        let first = !self.loaded_once.swap(true, Ordering::SeqCst);
        let mut tasks = lock(&self.tasks);
        let old: Vec<Task> = std::mem::take(&mut *tasks);
        let mut old_by_key: BTreeMap<(String, String), Arc<Group>> = BTreeMap::new();
        for t in old {
            let _ = t.stop.send(true);
            t.handle.abort();
            old_by_key.insert((t.group.file.clone(), t.group.name.clone()), t.group);
        }
        for g in groups {
            let restore = first;
            if let Some(o) = old_by_key.get(&(g.file.clone(), g.name.clone())) {
                g.copy_state(o);
            } else if !restore {
                g.set_restored();
            }
            let g = Arc::new(g);
            let (tx, rx) = tokio::sync::watch::channel(false);
            let handle = tokio::spawn(run_group(self.shared.clone(), g.clone(), restore, rx));
            tasks.push(Task {
                group: g,
                stop: tx,
                handle,
            });
        }
    }

    /// Stops every group.
    pub fn stop(&self) {
        for t in lock(&self.tasks).drain(..) {
            let _ = t.stop.send(true);
            t.handle.abort();
        }
    }

    /// The running groups in load order.
    pub fn groups(&self) -> Vec<Arc<Group>> {
        lock(&self.tasks).iter().map(|t| t.group.clone()).collect()
    }

    /// Counters for Pharos' own metrics.
    pub fn stats(&self) -> ManagerStats {
        let groups = self
            .groups()
            .iter()
            .map(|g| {
                let (mut evaluations, mut failures) = (0, 0);
                for r in &g.rules {
                    let s = r.status();
                    evaluations += s.evaluations;
                    failures += s.failures;
                }
                let st = g.status.lock().map(|s| s.clone()).unwrap_or_default();
                GroupStats {
                    key: format!("{};{}", g.file, g.name),
                    interval_s: g.interval_ms as f64 / 1000.0,
                    last_duration_s: st.eval_seconds,
                    evaluations,
                    failures,
                    rules: g.rules.len(),
                }
            })
            .collect();
        ManagerStats {
            last_reload_ok: self.last_reload_ok.load(Ordering::SeqCst),
            reload_failures: self.reload_failures.load(Ordering::SeqCst),
            groups,
        }
    }
}

impl RulesProvider for Manager {
    fn rule_groups(&self, filter: &RulesFilter) -> RulesData {
        rules_data(&self.groups(), filter)
    }

    fn alerts(&self) -> AlertsData {
        alerts_data(&self.groups())
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A stable per-group offset within the interval, so groups do not all evaluate at once.
fn offset(g: &Group) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in g.file.bytes().chain([0]).chain(g.name.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    (h % g.interval_ms.max(1) as u64) as i64
}

async fn run_group(
    shared: Arc<Shared>,
    g: Arc<Group>,
    restore: bool,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let interval = g.interval_ms;
    let off = offset(&g);
    let mut evals = 0u64;
    loop {
        let now = pharos_model::now_ms();
        let next = (now - off).div_euclid(interval) * interval + interval + off;
        let wait = std::time::Duration::from_millis((next - now).max(0) as u64);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let (s2, g2) = (shared.clone(), g.clone());
        let do_restore = restore && evals == 1;
        let res = tokio::task::spawn_blocking(move || {
            let labels = s2
                .external_labels
                .read()
                .map(|l| l.clone())
                .unwrap_or_default();
            let ctx = EvalContext {
                engine: &s2.opts.engine,
                queryable: &*s2.opts.queryable,
                external_labels: &labels,
                external_url: &s2.opts.external_url,
            };
            let n = g2.eval(&ctx, &*s2.opts.appendable, next, s2.opts.resend_delay_ms);
            if do_restore {
                g2.restore_for_state(&ctx, pharos_model::now_ms(), s2.opts.restore);
            }
            n
        })
        .await;
        evals += 1;
        match res {
            Ok(n) if !n.is_empty() => {
                if let Some(sink) = &shared.opts.notify {
                    sink(n);
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(group = %g.name, error = %e, "rule group evaluation task failed")
            }
        }
    }
}

/// Expands a path pattern with `*`, `?` and `[...]` in any component (as Go's `filepath.Glob`);
/// a path without them is returned if it exists. Results are sorted.
pub fn expand_glob(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    let s = pattern.to_string_lossy();
    if !s.contains(['*', '?', '[']) {
        return Ok(if pattern.exists() {
            vec![pattern.to_path_buf()]
        } else {
            Vec::new()
        });
    }
    let mut current: Vec<PathBuf> = vec![if pattern.is_absolute() {
        PathBuf::from("/")
    } else {
        PathBuf::new()
    }];
    for comp in pattern.components() {
        let part = comp.as_os_str().to_string_lossy().to_string();
        if matches!(comp, std::path::Component::RootDir) {
            continue;
        }
        if !part.contains(['*', '?', '[']) {
            current = current.into_iter().map(|p| p.join(&part)).collect();
            continue;
        }
        let re = glob_regex(&part)?;
        let mut next = Vec::new();
        for dir in &current {
            let d = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir.as_path()
            };
            let Ok(rd) = std::fs::read_dir(d) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if re.is_match(&name) {
                    next.push(dir.join(name));
                }
            }
        }
        current = next;
    }
    let mut out: Vec<PathBuf> = current.into_iter().filter(|p| p.exists()).collect();
    out.sort();
    Ok(out)
}

fn glob_regex(part: &str) -> Result<regex::Regex, String> {
    let mut re = String::from("^");
    let mut chars = part.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                re.push('[');
                if chars.peek() == Some(&'!') || chars.peek() == Some(&'^') {
                    chars.next();
                    re.push('^');
                }
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == ']' {
                        closed = true;
                        break;
                    }
                    if c == '\\' || c == '[' {
                        re.push('\\');
                    }
                    re.push(c);
                }
                if !closed {
                    return Err(format!("syntax error in pattern {part:?}"));
                }
                re.push(']');
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).map_err(|e| format!("syntax error in pattern {part:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["a.yml", "b.yml", "c.yaml", "sub/d.yml"] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "").unwrap();
        }
        let names = |pat: &str| -> Vec<String> {
            expand_glob(&dir.path().join(pat))
                .unwrap()
                .iter()
                .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
                .collect()
        };
        assert_eq!(names("*.yml"), ["a.yml", "b.yml"]);
        assert_eq!(names("[ab].y*"), ["a.yml", "b.yml"]);
        assert_eq!(names("*/d.yml"), ["sub/d.yml"]);
        assert_eq!(names("c.yaml"), ["c.yaml"]);
        assert!(names("missing.yml").is_empty());
        assert!(expand_glob(&dir.path().join("[a.yml")).is_err());
    }
}
