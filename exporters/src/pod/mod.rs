//! Pod and container metrics with cAdvisor's names, read from cgroups v1, v2 or hybrid.
//!
//! The `container` collector walks every cgroup under the cgroup root (`<sysfs>/fs/cgroup`
//! unless [`Options::cgroupfs`](crate::Options::cgroupfs) says otherwise) and reports, per cgroup,
//! the series the kubelet's embedded cAdvisor reports, with its six labels `container`, `id`
//! (the cgroup path), `image`, `name` (the container ID), `namespace` and `pod` (empty when not
//! known, as the kubelet writes them):
//!
//! | metric | v1 | v2 |
//! | --- | --- | --- |
//! | `container_cpu_usage_seconds_total{cpu="total"}` | `cpuacct.usage` | `cpu.stat` usage_usec |
//! | `container_cpu_{user,system}_seconds_total` | `cpuacct.stat` (USER_HZ ticks) | `cpu.stat` user_usec, system_usec |
//! | `container_cpu_cfs_{periods,throttled_periods}_total`, `container_cpu_cfs_throttled_seconds_total` | `cpu.stat` (only with a quota, like cAdvisor) | `cpu.stat` |
//! | `container_spec_cpu_period`, `container_spec_cpu_quota` (µs; quota only when set) | `cpu.cfs_period_us`, `cpu.cfs_quota_us` | `cpu.max` |
//! | `container_memory_usage_bytes` | `memory.usage_in_bytes` | `memory.current` |
//! | `container_memory_working_set_bytes` | usage − `total_inactive_file` | usage − `inactive_file` |
//! | `container_memory_rss`, `container_memory_cache` | `total_rss`, `total_cache` | `anon`, `file` |
//! | `container_spec_memory_limit_bytes` (0 when unlimited: above 2^62) | `memory.limit_in_bytes` | `memory.max` |
//! | `container_oom_events_total` | `memory.oom_control` oom_kill | `memory.events` oom_kill |
//! | `container_fs_{reads,writes}_bytes_total{device}` | `blkio.io_service_bytes_recursive` (or the throttle variant) | `io.stat` rbytes, wbytes |
//! | `container_processes` | `cgroup.procs` of the cgroup and its descendants | same |
//! | `container_network_*_total{interface}` | pod cgroups and `/` only: `/proc/<pid>/net/dev` of a member process (cAdvisor's device exclusions `lo`, `veth*`, `docker*`, `nerdctl*`) | same |
//!
//! Pod identity comes from the cgroup path ([`identity`]) joined with names from
//! [`metadata`]. cAdvisor counts OOM events by watching the kernel log; the kernel's own
//! per-cgroup `oom_kill` counter is used here instead. A file that cannot be read or parsed skips
//! that metric of that cgroup, is logged, and makes the scrape report
//! `node_scrape_collector_success{collector="container"} 0`; everything else is still served.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use pharos_model::expfmt::{MetricFamily, MetricType};

use crate::{Collector, Error, Options, Result};

pub mod cgroup;
pub mod identity;
pub mod metadata;

use cgroup::{Hierarchies, Source};

/// Collector names this module registers.
pub const NAMES: &[&str] = &["container"];

/// Limits above this are "unlimited" and reported as 0, as cAdvisor does (2^62).
const MAX_MEMORY: u64 = 1 << 62;

/// Interface name prefixes cAdvisor leaves out of network metrics.
const IGNORED_INTERFACES: [&str; 4] = ["lo", "veth", "docker", "nerdctl"];

/// Builds the collector called `name`, or `None` for an unknown name.
pub fn build(name: &str, opts: &Options) -> Option<Box<dyn Collector>> {
    (name == "container").then(|| Box::new(Containers::new(opts)) as Box<dyn Collector>)
}

/// The `container` collector.
#[derive(Debug)]
pub struct Containers {
    root: PathBuf,
    procfs: PathBuf,
    sysfs: PathBuf,
    resolver: metadata::Resolver,
    logged_mode: bool,
    devices: HashMap<(u32, u32), String>,
}

impl Containers {
    /// Reads cgroups under `opts.cgroupfs` (default `<sysfs>/fs/cgroup`), processes under
    /// `opts.procfs`, device names under `<sysfs>/dev/block`, and names per `opts.metadata`.
    pub fn new(opts: &Options) -> Self {
        Self {
            root: opts
                .cgroupfs
                .clone()
                .unwrap_or_else(|| opts.sysfs.join("fs/cgroup")),
            procfs: opts.procfs.clone(),
            sysfs: opts.sysfs.clone(),
            resolver: metadata::Resolver::new(opts.metadata.clone(), &opts.rootfs),
            logged_mode: false,
            devices: HashMap::new(),
        }
    }

    /// `/dev/<name>` of block device `major:minor` from `<sysfs>/dev/block/M:m/uevent`, or
    /// `M:m` when sysfs does not know it.
    fn device(&mut self, dev: (u32, u32)) -> String {
        let sysfs = &self.sysfs;
        self.devices
            .entry(dev)
            .or_insert_with(|| {
                let uevent = sysfs.join(format!("dev/block/{}:{}/uevent", dev.0, dev.1));
                std::fs::read_to_string(uevent)
                    .ok()
                    .and_then(|t| {
                        t.lines()
                            .find_map(|l| l.strip_prefix("DEVNAME="))
                            .map(|n| format!("/dev/{n}"))
                    })
                    .unwrap_or_else(|| format!("{}:{}", dev.0, dev.1))
            })
            .clone()
    }
}

/// Counters of one cgroup; `None` where the hierarchy or file is absent.
#[derive(Debug, Default)]
struct Stats {
    cpu_usage: Option<f64>,
    cpu_user: Option<f64>,
    cpu_system: Option<f64>,
    periods: Option<u64>,
    throttled: Option<u64>,
    throttled_seconds: Option<f64>,
    quota: Option<u64>,
    period: Option<u64>,
    mem_usage: Option<u64>,
    working_set: Option<u64>,
    rss: Option<u64>,
    cache: Option<u64>,
    limit: Option<u64>,
    oom: Option<u64>,
    io: cgroup::IoBytes,
}

/// Collects per-file failures instead of failing the scrape.
#[derive(Default)]
struct Failures {
    count: usize,
    first: Option<Error>,
}

impl Failures {
    fn take<T>(&mut self, r: Result<Option<T>>) -> Option<T> {
        match r {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(collector = "container", error = %e, "skipping metric");
                self.count += 1;
                self.first.get_or_insert(e);
                None
            }
        }
    }
}

fn read_stats(h: &Hierarchies, id: &str, f: &mut Failures) -> Stats {
    let mut s = Stats::default();
    match &h.cpuacct {
        Some(Source::V1(root)) => {
            let dir = dir_of(root, id);
            s.cpu_usage = f
                .take(cgroup::read_u64(&dir.join("cpuacct.usage")))
                .map(|ns| ns as f64 / 1e9);
            if let Some(st) = f.take(cgroup::read_keyed(&dir.join("cpuacct.stat"))) {
                let hz = crate::node::cpu::USER_HZ;
                s.cpu_user = st.get("user").map(|t| *t as f64 / hz);
                s.cpu_system = st.get("system").map(|t| *t as f64 / hz);
            }
        }
        Some(Source::V2(root)) => {
            if let Some(st) = f.take(cgroup::read_keyed(&dir_of(root, id).join("cpu.stat"))) {
                s.cpu_usage = st.get("usage_usec").map(|u| *u as f64 / 1e6);
                s.cpu_user = st.get("user_usec").map(|u| *u as f64 / 1e6);
                s.cpu_system = st.get("system_usec").map(|u| *u as f64 / 1e6);
                // With the cpu controller off, v2 cpu.stat still has these three only.
                s.periods = st.get("nr_periods").copied();
                s.throttled = st.get("nr_throttled").copied();
                s.throttled_seconds = st.get("throttled_usec").map(|u| *u as f64 / 1e6);
            }
        }
        None => {}
    }
    match &h.cpu {
        Some(Source::V1(root)) => {
            let dir = dir_of(root, id);
            if let Some(st) = f.take(cgroup::read_keyed(&dir.join("cpu.stat"))) {
                s.periods = st.get("nr_periods").copied();
                s.throttled = st.get("nr_throttled").copied();
                s.throttled_seconds = st.get("throttled_time").map(|ns| *ns as f64 / 1e9);
            }
            s.period = f.take(cgroup::read_u64(&dir.join("cpu.cfs_period_us")));
            let quota = cgroup::read_opt(&dir.join("cpu.cfs_quota_us"));
            if let Some(q) = f.take(quota) {
                // -1: no quota.
                s.quota = q.trim().parse::<u64>().ok();
            }
        }
        Some(Source::V2(root)) => {
            let path = dir_of(root, id).join("cpu.max");
            if let Some(text) = f.take(cgroup::read_opt(&path)) {
                let mut it = text.split_ascii_whitespace();
                match (it.next(), it.next().map(str::parse::<u64>)) {
                    (Some(q), Some(Ok(p))) => {
                        s.period = Some(p);
                        s.quota = q.parse().ok();
                    }
                    _ => f
                        .take::<()>(Err(Error::Parse {
                            path,
                            line: 1,
                            msg: format!("want \"<quota|max> <period>\", got {:?}", text.trim()),
                        }))
                        .unwrap_or(()),
                }
            }
        }
        None => {}
    }
    match &h.memory {
        Some(Source::V1(root)) => {
            let dir = dir_of(root, id);
            s.mem_usage = f.take(cgroup::read_u64(&dir.join("memory.usage_in_bytes")));
            s.limit = f.take(cgroup::read_u64(&dir.join("memory.limit_in_bytes")));
            if let Some(st) = f.take(cgroup::read_keyed(&dir.join("memory.stat"))) {
                s.rss = st.get("total_rss").copied();
                s.cache = st.get("total_cache").copied();
                s.working_set = working_set(s.mem_usage, st.get("total_inactive_file"));
            }
            if let Some(st) = f.take(cgroup::read_keyed(&dir.join("memory.oom_control"))) {
                s.oom = st.get("oom_kill").copied();
            }
        }
        Some(Source::V2(root)) => {
            let dir = dir_of(root, id);
            s.mem_usage = f.take(cgroup::read_u64(&dir.join("memory.current")));
            if let Some(text) = f.take(cgroup::read_opt(&dir.join("memory.max"))) {
                let t = text.trim();
                s.limit = Some(if t == "max" {
                    u64::MAX
                } else {
                    f.take(t.parse::<u64>().map(Some).map_err(|_| Error::Parse {
                        path: dir.join("memory.max"),
                        line: 1,
                        msg: format!("invalid limit {t:?}"),
                    }))
                    .unwrap_or(u64::MAX)
                });
            }
            if let Some(st) = f.take(cgroup::read_keyed(&dir.join("memory.stat"))) {
                s.rss = st.get("anon").copied();
                s.cache = st.get("file").copied();
                s.working_set = working_set(s.mem_usage, st.get("inactive_file"));
            }
            if let Some(st) = f.take(cgroup::read_keyed(&dir.join("memory.events"))) {
                s.oom = st.get("oom_kill").copied();
            }
        }
        None => {}
    }
    match &h.io {
        Some(Source::V1(root)) => {
            let dir = dir_of(root, id);
            for file in [
                "blkio.io_service_bytes_recursive",
                "blkio.throttle.io_service_bytes_recursive",
            ] {
                let path = dir.join(file);
                if let Some(text) = f.take(cgroup::read_opt(&path))
                    && let Some(io) = f.take(cgroup::parse_blkio(&path, &text).map(Some))
                    && !io.is_empty()
                {
                    s.io = io;
                    break;
                }
            }
        }
        Some(Source::V2(root)) => {
            if let Some(text) = f.take(cgroup::read_opt(&dir_of(root, id).join("io.stat"))) {
                s.io = cgroup::parse_io_stat(&text);
            }
        }
        None => {}
    }
    s
}

fn dir_of(root: &Path, id: &str) -> PathBuf {
    Source::V1(root.to_path_buf()).dir(id)
}

/// Usage minus inactive file pages, never below 0 (cAdvisor's working set).
fn working_set(usage: Option<u64>, inactive_file: Option<&u64>) -> Option<u64> {
    let usage = usage?;
    Some(usage.saturating_sub(inactive_file.copied().unwrap_or(0)))
}

/// One family per metric, filled cgroup by cgroup.
struct Families(BTreeMap<&'static str, MetricFamily>);

impl Families {
    fn push(&mut self, name: &'static str, labels: &[(&str, &str)], value: f64) {
        let (help, kind) = describe(name);
        let mut l: Vec<(&str, &str)> = labels.to_vec();
        l.sort_unstable();
        self.0
            .entry(name)
            .or_insert_with(|| MetricFamily::new(name, help, kind))
            .push(&l, value);
    }
}

/// cAdvisor's HELP text and type of each family.
fn describe(name: &str) -> (&'static str, MetricType) {
    use MetricType::{Counter, Gauge};
    match name {
        "container_cpu_usage_seconds_total" => {
            ("Cumulative cpu time consumed in seconds.", Counter)
        }
        "container_cpu_user_seconds_total" => {
            ("Cumulative user cpu time consumed in seconds.", Counter)
        }
        "container_cpu_system_seconds_total" => {
            ("Cumulative system cpu time consumed in seconds.", Counter)
        }
        "container_cpu_cfs_periods_total" => {
            ("Number of elapsed enforcement period intervals.", Counter)
        }
        "container_cpu_cfs_throttled_periods_total" => {
            ("Number of throttled period intervals.", Counter)
        }
        "container_cpu_cfs_throttled_seconds_total" => (
            "Total time duration the container has been throttled.",
            Counter,
        ),
        "container_spec_cpu_period" => ("CPU period of the container.", Gauge),
        "container_spec_cpu_quota" => ("CPU quota of the container.", Gauge),
        "container_memory_usage_bytes" => (
            "Current memory usage in bytes, including all memory regardless of when it was accessed",
            Gauge,
        ),
        "container_memory_working_set_bytes" => ("Current working set in bytes.", Gauge),
        "container_memory_rss" => ("Size of RSS in bytes.", Gauge),
        "container_memory_cache" => ("Number of bytes of page cache memory.", Gauge),
        "container_spec_memory_limit_bytes" => ("Memory limit for the container.", Gauge),
        "container_oom_events_total" => (
            "Count of out of memory events observed for the container",
            Counter,
        ),
        "container_fs_reads_bytes_total" => ("Cumulative count of bytes read", Counter),
        "container_fs_writes_bytes_total" => ("Cumulative count of bytes written", Counter),
        "container_network_receive_bytes_total" => ("Cumulative count of bytes received", Counter),
        "container_network_receive_packets_total" => {
            ("Cumulative count of packets received", Counter)
        }
        "container_network_receive_errors_total" => (
            "Cumulative count of errors encountered while receiving",
            Counter,
        ),
        "container_network_transmit_bytes_total" => {
            ("Cumulative count of bytes transmitted", Counter)
        }
        "container_network_transmit_packets_total" => {
            ("Cumulative count of packets transmitted", Counter)
        }
        "container_network_transmit_errors_total" => (
            "Cumulative count of errors encountered while transmitting",
            Counter,
        ),
        "container_processes" => ("Number of processes running inside the container.", Gauge),
        _ => ("", MetricType::Untyped),
    }
}

/// The six label values of one cgroup.
struct Ident {
    container: String,
    id: String,
    image: String,
    name: String,
    namespace: String,
    pod: String,
}

impl Ident {
    fn labels<'a>(&'a self, extra: Option<(&'a str, &'a str)>) -> Vec<(&'a str, &'a str)> {
        let mut l = vec![
            ("container", self.container.as_str()),
            ("id", self.id.as_str()),
            ("image", self.image.as_str()),
            ("name", self.name.as_str()),
            ("namespace", self.namespace.as_str()),
            ("pod", self.pod.as_str()),
        ];
        l.extend(extra);
        l
    }
}

impl Collector for Containers {
    fn name(&self) -> &'static str {
        "container"
    }

    fn collect(&mut self, out: &mut Vec<MetricFamily>) -> Result<()> {
        let h = Hierarchies::detect(&self.root);
        if !self.logged_mode {
            self.logged_mode = true;
            tracing::info!(root = %self.root.display(), mode = h.mode.as_str(), "cgroup layout");
        }
        if h.mode == cgroup::Mode::None {
            return Err(Error::Read {
                path: self.root.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no cgroup v1 or v2 hierarchy mounted here",
                ),
            });
        }
        let ids = cgroup::walk(&h.sources());
        let idents: Vec<identity::Identity> = ids.iter().map(|id| identity::parse(id)).collect();

        // Processes: each cgroup's own members, read in the first hierarchy that has the cgroup,
        // then summed into every ancestor counted in the same hierarchy.
        let mut failures = Failures::default();
        let mut home: HashMap<&str, usize> = HashMap::new();
        let mut total: HashMap<(usize, &str), usize> = HashMap::new();
        // A few member processes per cgroup: any of them shows the pod's network namespace, and
        // one may exit between listing and reading.
        let mut member: HashMap<(usize, &str), Vec<u32>> = HashMap::new();
        for id in &ids {
            let Some((i, dir)) = h
                .procs
                .iter()
                .enumerate()
                .map(|(i, s)| (i, s.dir(id)))
                .find(|(_, d)| d.is_dir())
            else {
                continue;
            };
            home.insert(id.as_str(), i);
            let Some(text) = failures.take(cgroup::read_opt(&dir.join("cgroup.procs"))) else {
                continue;
            };
            let pids = cgroup::parse_procs(&text);
            for anc in ancestors(id) {
                *total.entry((i, anc)).or_default() += pids.len();
                let m = member.entry((i, anc)).or_default();
                m.extend(pids.iter().take(3usize.saturating_sub(m.len())));
            }
        }

        let cids: HashSet<&str> = idents
            .iter()
            .filter_map(|i| i.container_id.as_deref())
            .collect();
        let uids: HashSet<&str> = idents.iter().filter_map(|i| i.pod_uid.as_deref()).collect();
        if let Some(e) = self.resolver.refresh(&cids, &uids) {
            tracing::warn!(collector = "container", error = %e, "pod metadata unavailable");
        }

        let mut fam = Families(BTreeMap::new());
        for (id, ident) in ids.iter().zip(&idents) {
            let s = read_stats(&h, id, &mut failures);
            let mut labels = Ident {
                container: String::new(),
                id: id.clone(),
                image: String::new(),
                name: String::new(),
                namespace: String::new(),
                pod: String::new(),
            };
            if let Some(cid) = &ident.container_id {
                labels.name = cid.clone();
                if let Some(c) = self.resolver.container(cid) {
                    labels.container = c.container.clone();
                    labels.image = c.image.clone();
                    labels.namespace = c.namespace.clone();
                    labels.pod = c.pod.clone();
                }
            }
            if let Some(uid) = &ident.pod_uid
                && labels.pod.is_empty()
                && let Some(p) = self.resolver.pod(uid)
            {
                labels.namespace = p.namespace.clone();
                labels.pod = p.name.clone();
            }
            let base = labels.labels(None);
            if s.cpu_usage.is_some_and(|u| u > 0.0) {
                fam.push(
                    "container_cpu_usage_seconds_total",
                    &labels.labels(Some(("cpu", "total"))),
                    s.cpu_usage.unwrap_or(0.0),
                );
            }
            let mut put_base = |name, v: Option<f64>| {
                if let Some(v) = v {
                    fam.push(name, &base, v);
                }
            };
            put_base("container_cpu_user_seconds_total", s.cpu_user);
            put_base("container_cpu_system_seconds_total", s.cpu_system);
            // cAdvisor reports throttling only for cgroups with a quota.
            if s.quota.is_some() {
                put_base(
                    "container_cpu_cfs_periods_total",
                    s.periods.map(|v| v as f64),
                );
                put_base(
                    "container_cpu_cfs_throttled_periods_total",
                    s.throttled.map(|v| v as f64),
                );
                put_base(
                    "container_cpu_cfs_throttled_seconds_total",
                    s.throttled_seconds,
                );
            }
            put_base("container_spec_cpu_period", s.period.map(|v| v as f64));
            put_base("container_spec_cpu_quota", s.quota.map(|v| v as f64));
            put_base(
                "container_memory_usage_bytes",
                s.mem_usage.map(|v| v as f64),
            );
            put_base(
                "container_memory_working_set_bytes",
                s.working_set.map(|v| v as f64),
            );
            put_base("container_memory_rss", s.rss.map(|v| v as f64));
            put_base("container_memory_cache", s.cache.map(|v| v as f64));
            put_base(
                "container_spec_memory_limit_bytes",
                s.limit.map(|v| if v > MAX_MEMORY { 0.0 } else { v as f64 }),
            );
            put_base("container_oom_events_total", s.oom.map(|v| v as f64));
            let home = home.get(id.as_str()).copied();
            let processes = home.map(|i| total.get(&(i, id.as_str())).copied().unwrap_or(0));
            put_base("container_processes", processes.map(|v| v as f64));
            for (dev, (r, w)) in &s.io {
                let device = self.device(*dev);
                let l = labels.labels(Some(("device", device.as_str())));
                fam.push("container_fs_reads_bytes_total", &l, *r as f64);
                fam.push("container_fs_writes_bytes_total", &l, *w as f64);
            }
            // Network: the pod's (or, for `/`, the host's) namespace, seen through a member.
            let candidates: &[u32] = if id == "/" {
                &[1]
            } else if ident.is_pod() {
                home.and_then(|i| member.get(&(i, id.as_str())))
                    .map_or(&[], Vec::as_slice)
            } else {
                &[]
            };
            for pid in candidates {
                let path = self.procfs.join(format!("{pid}/net/dev"));
                match cgroup::read_opt(&path) {
                    Ok(Some(text)) => {
                        network(&mut fam, &labels, &text);
                        break;
                    }
                    Ok(None) => {}
                    // The process may have exited or be out of reach: not worth a failure.
                    Err(e) => tracing::debug!(error = %e, "no network counters"),
                }
            }
        }
        out.extend(fam.0.into_values());
        match failures.first {
            None => Ok(()),
            Some(first) => Err(Error::Partial {
                failed: failures.count,
                first: Box::new(first),
            }),
        }
    }
}

/// `id` and every ancestor of it up to `/`.
fn ancestors(id: &str) -> impl Iterator<Item = &str> {
    let mut cur = Some(id);
    std::iter::from_fn(move || {
        let this = cur?;
        cur = match this.rfind('/') {
            _ if this == "/" => None,
            Some(0) => Some("/"),
            Some(i) => Some(&this[..i]),
            None => None,
        };
        Some(this)
    })
}

/// `container_network_*_total{interface}` from a `/proc/<pid>/net/dev` text.
fn network(fam: &mut Families, labels: &Ident, text: &str) {
    // Columns after "iface:": rx bytes packets errs drop fifo frame compressed multicast,
    // tx bytes packets errs ...
    const COLS: [(usize, &str); 6] = [
        (0, "container_network_receive_bytes_total"),
        (1, "container_network_receive_packets_total"),
        (2, "container_network_receive_errors_total"),
        (8, "container_network_transmit_bytes_total"),
        (9, "container_network_transmit_packets_total"),
        (10, "container_network_transmit_errors_total"),
    ];
    for line in text.lines().skip(2) {
        let Some((iface, rest)) = line.split_once(':') else {
            continue;
        };
        let iface = iface.trim();
        if IGNORED_INTERFACES.iter().any(|p| iface.starts_with(p)) {
            continue;
        }
        let v: Vec<u64> = rest
            .split_ascii_whitespace()
            .map_while(|x| x.parse().ok())
            .collect();
        if v.len() < 16 {
            continue;
        }
        let l = labels.labels(Some(("interface", iface)));
        for (i, name) in COLS {
            fam.push(name, &l, v[i] as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_of() {
        let got: Vec<&str> = ancestors("/a/b/c").collect();
        assert_eq!(got, ["/a/b/c", "/a/b", "/a", "/"]);
        assert_eq!(ancestors("/").collect::<Vec<_>>(), ["/"]);
    }

    #[test]
    fn working_sets() {
        assert_eq!(working_set(Some(100), Some(&30)), Some(70));
        assert_eq!(working_set(Some(10), Some(&30)), Some(0));
        assert_eq!(working_set(Some(10), None), Some(10));
        assert_eq!(working_set(None, Some(&1)), None);
    }
}
