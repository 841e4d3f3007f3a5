//! Differential test against the real node_exporter 1.5 (Debian `prometheus-node-exporter`,
//! installed by `.ci/run`): both scrape this machine with the same collectors enabled, and every
//! family must agree on name, HELP, TYPE and label names; values that do not move between two
//! scrapes (memory and file system sizes, boot time, CPU and device label sets, uname) must be
//! equal.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pharos_exporters::{Exporter, Options, node};
use pharos_model::expfmt::{Entry, Format, MetricType, parse};

/// node_exporter 1.5's upstream default `--collector.filesystem.mount-points-exclude` (Debian's
/// package ships a different default that also hides `/run`, `/mnt` and `/media`).
const UPSTREAM_MOUNT_POINTS_EXCLUDE: &str =
    "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";

/// Families only one side has by design: node_exporter's own build info and Go runtime metrics.
fn own_metrics_of_node_exporter(name: &str) -> bool {
    name == "node_exporter_build_info"
        || name.starts_with("go_")
        || name.starts_with("process_")
        || name.starts_with("promhttp_")
}

/// node_exporter as a child process; killed on drop.
struct NodeExporter {
    child: Child,
    port: u16,
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> &'static str {
    const PATH: &str = "/usr/bin/prometheus-node-exporter";
    assert!(
        std::path::Path::new(PATH).exists(),
        "{PATH} is missing: install the Debian package prometheus-node-exporter (see .ci/run)"
    );
    PATH
}

/// Starts node_exporter on 127.0.0.1 with only `collectors` enabled and waits until it answers.
fn start(collectors: &[&str]) -> NodeExporter {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut cmd = Command::new(binary());
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--collector.disable-defaults")
        .arg(format!(
            "--collector.filesystem.mount-points-exclude={UPSTREAM_MOUNT_POINTS_EXCLUDE}"
        ))
        // Upstream 1.5 excludes no network device by default.
        .arg("--collector.netdev.device-exclude=")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for c in collectors {
        cmd.arg(format!("--collector.{c}"));
    }
    let child = cmd.spawn().expect("start prometheus-node-exporter");
    let mut ne = NodeExporter { child, port };
    for _ in 0..200 {
        if get(port, "/").is_some() {
            return ne;
        }
        if let Ok(Some(status)) = ne.child.try_wait() {
            panic!("prometheus-node-exporter exited at start: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("prometheus-node-exporter did not answer on 127.0.0.1:{port}");
}

/// The body of `GET path` (HTTP/1.0: no chunked encoding), or `None` if nothing listens yet.
fn get(port: u16, path: &str) -> Option<String> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(conn, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut resp = String::new();
    conn.read_to_string(&mut resp).ok()?;
    let (head, body) = resp.split_once("\r\n\r\n")?;
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    Some(body.to_string())
}

/// One family as parsed from a scrape.
#[derive(Debug, Default)]
struct Family {
    help: Option<String>,
    kind: Option<MetricType>,
    /// Every sample's labels (sorted by name) with its value.
    samples: BTreeMap<Vec<(String, String)>, f64>,
}

impl Family {
    fn label_names(&self) -> BTreeSet<Vec<&str>> {
        self.samples
            .keys()
            .map(|ls| ls.iter().map(|(n, _)| n.as_str()).collect())
            .collect()
    }
}

fn families(text: &str) -> BTreeMap<String, Family> {
    let mut out: BTreeMap<String, Family> = BTreeMap::new();
    for entry in parse(text, Format::Text).expect("valid text format") {
        match entry {
            Entry::Help { name, text } => {
                out.entry(name.to_string()).or_default().help = Some(text.into_owned())
            }
            Entry::Type { name, kind } => {
                out.entry(name.to_string()).or_default().kind = Some(kind)
            }
            Entry::Sample {
                name,
                labels,
                value,
                ..
            } => {
                let mut labels: Vec<(String, String)> = labels
                    .into_iter()
                    .map(|(n, v)| (n.to_string(), v.into_owned()))
                    .collect();
                labels.sort();
                out.entry(name.to_string())
                    .or_default()
                    .samples
                    .insert(labels, value);
            }
            Entry::Unit { .. } => {}
        }
    }
    out
}

/// The node collectors Pharos implements; node_exporter 1.5 has every one of them.
fn shared_collectors() -> Vec<&'static str> {
    node::NAMES.to_vec()
}

fn scrape_both() -> (BTreeMap<String, Family>, BTreeMap<String, Family>) {
    let collectors = shared_collectors();
    let ne = start(&collectors);
    let theirs = families(&get(ne.port, "/metrics").expect("scrape node_exporter"));
    let mut opts = Options::default();
    for name in Exporter::collector_names() {
        opts.collectors
            .insert((*name).to_string(), collectors.contains(name));
    }
    let ours = families(&Exporter::new(opts).render());
    (theirs, ours)
}

#[test]
fn same_families_help_type_and_label_names() {
    let (theirs, ours) = scrape_both();
    let mut problems = Vec::new();
    let names: BTreeSet<&String> = theirs.keys().chain(ours.keys()).collect();
    for name in names {
        if own_metrics_of_node_exporter(name) {
            continue;
        }
        let (Some(t), Some(o)) = (theirs.get(name), ours.get(name)) else {
            let side = if theirs.contains_key(name) {
                "node_exporter"
            } else {
                "pharos"
            };
            problems.push(format!("{name}: only {side} has it"));
            continue;
        };
        if t.help != o.help {
            problems.push(format!("{name}: HELP {:?} vs ours {:?}", t.help, o.help));
        }
        if t.kind != o.kind {
            problems.push(format!("{name}: TYPE {:?} vs ours {:?}", t.kind, o.kind));
        }
        if t.label_names() != o.label_names() {
            problems.push(format!(
                "{name}: label names {:?} vs ours {:?}",
                t.label_names(),
                o.label_names()
            ));
        }
    }
    // Both sides ran exactly the same collectors, all successfully.
    for fam in [&theirs, &ours] {
        let success = &fam["node_scrape_collector_success"];
        let ran: BTreeMap<&str, f64> = success
            .samples
            .iter()
            .map(|(ls, v)| (ls[0].1.as_str(), *v))
            .collect();
        let want: BTreeMap<&str, f64> = shared_collectors().into_iter().map(|c| (c, 1.0)).collect();
        if ran != want {
            problems.push(format!("collectors run: {ran:?}, want {want:?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Families whose samples (labels and values) must be identical: nothing in them changes
/// between two scrapes a few milliseconds apart.
const CONSTANT_VALUES: &[&str] = &[
    "node_memory_MemTotal_bytes",
    "node_memory_SwapTotal_bytes",
    "node_boot_time_seconds",
    "node_filesystem_size_bytes",
    "node_filesystem_readonly",
    "node_uname_info",
    "node_os_info",
    "node_os_version",
    "node_time_clocksource_available_info",
    "node_time_clocksource_current_info",
    "node_network_info",
    "node_network_mtu_bytes",
    "node_network_iface_id",
    "node_network_speed_bytes",
    "node_network_up",
];

/// Families whose label sets (not values) must be identical: one series per CPU and mode, per
/// disk, per mounted file system, per network device.
const SAME_SERIES: &[&str] = &[
    "node_cpu_seconds_total",
    "node_cpu_guest_seconds_total",
    "node_disk_reads_completed_total",
    "node_filesystem_avail_bytes",
    // XFS derives the inode total from free space: it may move between the two scrapes.
    "node_filesystem_files",
    "node_network_receive_bytes_total",
    "node_pressure_cpu_waiting_seconds_total",
    "node_scrape_collector_success",
];

#[test]
fn constant_values_and_series_agree() {
    let (theirs, ours) = scrape_both();
    let mut problems = Vec::new();
    let mut compared = 0;
    for name in CONSTANT_VALUES.iter().chain(SAME_SERIES) {
        let t = theirs.get(*name).map(|f| &f.samples);
        let o = ours.get(*name).map(|f| &f.samples);
        if t.is_none() && o.is_none() {
            continue; // absent on this machine for both (e.g. no swap, no PSI)
        }
        let (Some(t), Some(o)) = (t, o) else {
            problems.push(format!("{name}: present on one side only"));
            continue;
        };
        compared += 1;
        if CONSTANT_VALUES.contains(name) {
            if t != o {
                problems.push(format!(
                    "{name}:\n  node_exporter {t:?}\n  pharos        {o:?}"
                ));
            }
        } else if !t.keys().eq(o.keys()) {
            problems.push(format!(
                "{name} series:\n  node_exporter {:?}\n  pharos        {:?}",
                t.keys().collect::<Vec<_>>(),
                o.keys().collect::<Vec<_>>()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Memory, boot time, uname, cpu and the scrape bookkeeping exist on every Linux machine.
    assert!(compared >= 6, "only {compared} families compared");
}
